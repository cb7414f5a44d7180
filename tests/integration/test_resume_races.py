"""Resume races: connections resuming each other's sessions, bouncing between event-loop threads
and hanging up against each other, in many randomized rounds (issue 12, defect 1: a connection
that came back from another thread was bound to a session another connection had resumed in the
meantime; when that one hung up, the session was freed under the first).

The invariant, seen from outside: a session has at most one connection. So once a round settles,
every connection still open receives exactly the messages of the channel it subscribed to, and
nothing else; and the gateway is still up (in the ASan build a use-after-free aborts it)."""
import asyncio
import json
import random

import websockets

from harness import Gateway, connect, recv_json, run_tests

TTL_S = 0.3
IMPOSSIBLE_SEQ = 10**9  # more than any session sent: the resume fails where the session lives


def thread_of(session):
    return int(session[-2:], 16)  # the routing byte, the last two hex digits of the id


async def settle(ws, timeout=0.3):
    """Reads what is waiting; returns (replies, closed)."""
    replies = []
    try:
        while True:
            replies.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    except asyncio.TimeoutError:
        return replies, False
    except websockets.ConnectionClosed:
        return replies, True


async def one_round(gw, rng, round_no):
    # Enough clients that some land on each of the two threads.
    clients = []
    for _ in range(6):
        ws, welcome = await connect(gw)
        clients.append((ws, welcome["data"]["session"]))
    by_thread = {}
    for c in clients:
        by_thread.setdefault(thread_of(c[1]), []).append(c)
    if len(by_thread) < 2:
        for ws, _ in clients:
            await ws.close()
        return False
    threads = sorted(by_thread)
    rng.shuffle(threads)
    x = by_thread[threads[0]][0]  # bounces: resumes a session of the other thread, and fails
    z = by_thread[threads[1]][0]
    others = [c for c in clients if c is not x and c is not z]
    y = rng.choice(others)  # resumes x's fresh session meanwhile
    w = rng.choice([c for c in others if c is not y])  # a third party: resumes y's or x's
    sends = [
        x[0].send(json.dumps({"type": "resume",
                              "data": {"session": z[1], "last_seq": IMPOSSIBLE_SEQ}})),
        y[0].send(json.dumps({"type": "resume", "data": {"session": x[1], "last_seq": 0}})),
    ]
    if rng.random() < 0.5:
        target = rng.choice([x[1], y[1]])
        sends.append(w[0].send(json.dumps({"type": "resume",
                                           "data": {"session": target, "last_seq": 0}})))
    rng.shuffle(sends)
    await asyncio.gather(*sends)
    await asyncio.sleep(rng.random() * 0.01)
    # Some hang up; the sessions they held are freed after the TTL.
    open_clients = []
    for ws, session in clients:
        if ws is not x[0] and rng.random() < 0.4:
            await ws.close()
        else:
            open_clients.append(ws)
    await asyncio.sleep(TTL_S * 2.5)
    settled = await asyncio.gather(*(settle(ws, 0.05) for ws in open_clients))
    survivors = [ws for ws, (_, closed) in zip(open_clients, settled) if not closed]
    # Each survivor subscribes to a channel of its own; each must get its message and no other.
    channels = {}
    for i, ws in enumerate(survivors):
        channel = f"RACE{round_no}X{i}"
        channels[ws] = channel
        await ws.send(json.dumps({"type": "subscribe", "data": {"channels": [channel]}}))
    settled = await asyncio.gather(*(settle(ws, 0.2) for ws in survivors))
    for ws, (replies, closed) in zip(survivors, settled):
        if closed:  # taken over late by a resume still in flight: fine, it is not a survivor
            channels.pop(ws)
            continue
        assert any(r.get("type") == "subscribed" and r["data"]["channels"] == [channels[ws]]
                   for r in replies), replies
    gw.publish([{"channel": c, "data": c} for c in channels.values()])
    settled = await asyncio.gather(*(settle(ws, 0.2) for ws in channels))
    for (ws, channel), (replies, _) in zip(channels.items(), settled):
        data = [r for r in replies if "seq" in r]
        assert [r["channel"] for r in data] == [channel], (channel, replies)
    for ws, _ in clients:
        await ws.close()
    assert gw.proc.poll() is None, "the gateway died:\n" + gw.output()
    return True


async def test_resume_bounce_and_hang_up_races(binary):
    rng = random.Random(1234)
    with Gateway(binary, WS_THREADS=2, WS_RESUME_TTL=f"{int(TTL_S * 1000)}ms") as gw:
        played = 0
        for round_no in range(20):
            played += await one_round(gw, rng, round_no)
        assert played >= 10, played
        assert gw.proc.poll() is None, "the gateway died:\n" + gw.output()
        # Nothing leaked: with every client gone, every session expires.
        await asyncio.sleep(TTL_S * 3)
        stats = gw.json("/stats")
        assert stats["sessions"] == 0 and stats["currentConnections"] == 0, stats


async def test_a_session_in_transit_cannot_be_resumed(binary):
    """Deterministic form of the race: x's resume bounces off the other thread while y tries to
    resume x's fresh session; y must be refused, x keeps its session alone."""
    with Gateway(binary, WS_THREADS=2, WS_RESUME_TTL="300ms") as gw:
        for attempt in range(25):
            clients = [await connect(gw) for _ in range(4)]
            ids = [w["data"]["session"] for _, w in clients]
            pair = next(((i, j) for i in range(4) for j in range(4)
                         if thread_of(ids[i]) != thread_of(ids[j])), None)
            if pair is None:
                for ws, _ in clients:
                    await ws.close()
                continue
            xi, zi = pair
            yi = next(k for k in range(4) if k not in pair)
            x, y = clients[xi][0], clients[yi][0]
            await asyncio.gather(
                x.send(json.dumps({"type": "resume", "id": "x",
                                   "data": {"session": ids[zi], "last_seq": IMPOSSIBLE_SEQ}})),
                y.send(json.dumps({"type": "resume", "id": "y",
                                   "data": {"session": ids[xi], "last_seq": 0}})))
            (x_replies, x_closed), (y_replies, _) = await asyncio.gather(settle(x, 0.4),
                                                                         settle(y, 0.4))
            y_reply = next(r for r in y_replies if r.get("id") == "y")
            if y_reply["type"] == "resumed":
                # y came after x was back on its session: a plain takeover, x is closed.
                assert x_closed, x_replies
            else:
                assert y_reply["data"]["code"] == "resume_failed", y_reply
                assert not x_closed
                # y hangs up; x's session must outlive y's fresh one.
                await y.close()
                await asyncio.sleep(0.8)
                await x.send(json.dumps({"type": "subscribe", "data": {"channels": ["TRANSIT"]}}))
                assert (await recv_json(x))["type"] == "subscribed"
                gw.publish({"channel": "TRANSIT", "data": attempt})
                assert (await recv_json(x))["data"] == attempt
            for ws, _ in clients:
                await ws.close()
        assert gw.proc.poll() is None, "the gateway died:\n" + gw.output()


if __name__ == "__main__":
    run_tests([test_resume_bounce_and_hang_up_races, test_a_session_in_transit_cannot_be_resumed])
