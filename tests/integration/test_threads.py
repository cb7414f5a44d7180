"""Several event-loop threads at once (WS_THREADS=4): publishes from several HTTP connections in
parallel to subscribers spread over the threads, and resumes that cross threads while publishes go
on. Every subscriber gets every message of its channels exactly once, with `seq` 1, 2, 3, ... and
each publisher's messages in the order it sent them. The ThreadSanitizer stage of scripts/test.sh
runs this file (ctest label `threads`), so what it drives is what TSan checks."""
import asyncio
import http.client
import json
import time

from harness import Gateway, connect, recv_json, run_tests

THREADS = 4
# Long enough for a ThreadSanitizer build, which runs the gateway several times slower.
RECEIVE_TIMEOUT = 30


def publisher(gw, p, channels, batches, pause):
    """Publishes `batches` batches on one keep-alive HTTP connection, one message per channel in
    each, the data naming the publisher and the batch. Runs on its own Python thread."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        for i in range(batches):
            batch = [{"channel": c, "data": {"p": p, "i": i}} for c in channels]
            status, _, body = gw.http("POST", "/publish", batch, {"Content-Type": "application/json"},
                                      conn=conn)
            assert status == 200 and json.loads(body)["published"] == len(channels), (status, body)
            if pause:
                time.sleep(pause)
    finally:
        conn.close()


async def publish_in_parallel(gw, publishers, channels, batches, pause=0.0):
    await asyncio.gather(*(asyncio.to_thread(publisher, gw, p, channels, batches, pause)
                           for p in range(publishers)))


def check_exactly_once(messages, channels, publishers, batches):
    """`messages`: the data envelopes one session received, in arrival order, over however many
    connections. Asserts seq 1..N without gap or repeat and every (publisher, batch) of every
    channel once, each publisher's in order."""
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(1, len(seqs) + 1)), f"seq not 1..N: {seqs[:50]}"
    for channel in channels:
        got = [(m["data"]["p"], m["data"]["i"]) for m in messages if m["channel"] == channel]
        assert len(got) == len(set(got)), f"{channel}: duplicates"
        assert sorted(got) == [(p, i) for p in range(publishers) for i in range(batches)], \
            f"{channel}: {len(got)} of {publishers * batches} messages"
        for p in range(publishers):
            order = [i for q, i in got if q == p]
            assert order == sorted(order), f"{channel}: publisher {p} out of order"


def thread_of(session):
    return int(session[-2:], 16)  # the session id's last byte names its event-loop thread


async def receive(ws, count, into):
    while len(into) < count:
        msg = await recv_json(ws, RECEIVE_TIMEOUT)
        if "seq" in msg:
            into.append(msg)


async def test_parallel_publishes_reach_every_subscriber_once(binary):
    channels, publishers, batches = ["TH0", "TH1", "TH2"], 4, 40
    with Gateway(binary, WS_THREADS=THREADS, WS_REPLAY_SIZE=1000) as gw:
        subscribers = []
        threads = set()
        for _ in range(12):
            ws, welcome = await connect(gw, "?channels=" + ",".join(channels))
            assert (await recv_json(ws))["type"] == "subscribed"
            subscribers.append(ws)
            threads.add(thread_of(welcome["data"]["session"]))
        assert len(threads) > 1, "all subscribers on one thread"
        received = [[] for _ in subscribers]
        total = len(channels) * publishers * batches
        await asyncio.gather(publish_in_parallel(gw, publishers, channels, batches),
                             *(receive(ws, total, got) for ws, got in zip(subscribers, received)))
        for got in received:
            check_exactly_once(got, channels, publishers, batches)
        for ws in subscribers:
            await ws.close()


async def subscribe(gw, channel):
    ws, welcome = await connect(gw, f"?channels={channel}")
    assert (await recv_json(ws))["type"] == "subscribed"
    return ws, welcome["data"]["session"]


async def hop_between_connections(gw, ws, session, total, hops):
    """One client, subscribed on `ws`: `hops` times hangs up after a few messages and resumes on
    a new connection (which the kernel may hand to any thread), until it has `total` messages.
    Returns them and how many resumes landed on another thread than the session's."""
    messages, crossed = [], 0
    for hop in range(hops):
        await receive(ws, min(total, len(messages) + 1 + hop), messages)
        await ws.close()
        ws, fresh = await connect(gw)
        crossed += thread_of(fresh["data"]["session"]) != thread_of(session)
        last_seq = messages[-1]["seq"] if messages else 0
        await ws.send(json.dumps({"type": "resume", "data": {"session": session, "last_seq": last_seq}}))
        while True:
            msg = await recv_json(ws, RECEIVE_TIMEOUT)
            if "seq" in msg:
                messages.append(msg)
            else:
                assert msg["type"] == "resumed" and msg["data"]["session"] == session, msg
                break
    await receive(ws, total, messages)
    await ws.close()
    return messages, crossed


async def test_resume_across_threads_while_publishing(binary):
    channel, publishers, batches, clients, hops = "HOP", 3, 40, 6, 4
    with Gateway(binary, WS_THREADS=THREADS, WS_REPLAY_SIZE=1000) as gw:
        total = publishers * batches
        subscribed = [await subscribe(gw, channel) for _ in range(clients)]
        results = await asyncio.gather(
            publish_in_parallel(gw, publishers, [channel], batches, pause=0.01),
            *(hop_between_connections(gw, ws, session, total, hops) for ws, session in subscribed))
        crossed = 0
        for messages, n in results[1:]:
            check_exactly_once(messages, [channel], publishers, batches)
            crossed += n
        # 24 resumes on 4 threads: all landing on their session's own thread is (1/4)^24.
        assert crossed > 0, "no resume crossed threads"


if __name__ == "__main__":
    run_tests([test_parallel_publishes_reach_every_subscriber_once,
               test_resume_across_threads_while_publishing])
