"""Resume within this instance (PROTOCOL.md "resume"), including across event-loop threads."""
import asyncio
import json

import websockets

from harness import Gateway, connect, recv_json, recv_until, run_tests


async def resume_once(gw, channel):
    ws, welcome = await connect(gw, f"?channels={channel}")
    await recv_json(ws)
    session = welcome["data"]["session"]
    gw.publish([{"channel": channel, "data": i} for i in range(1, 4)])
    for n in range(1, 4):
        assert (await recv_json(ws))["seq"] == n
    await ws.close()
    gw.publish([{"channel": channel, "data": i} for i in range(4, 7)])  # while away
    ws2, _ = await connect(gw)
    await ws2.send(json.dumps({"type": "resume", "data": {"session": session, "last_seq": 3}, "id": "res"}))
    resumed, replayed = await recv_until(ws2, lambda m: m["type"] != "message" and "seq" not in m)
    assert resumed == {"type": "resumed", "data": {"session": session, "replayed": 3}, "id": "res"}, resumed
    assert [(m["seq"], m["data"]) for m in replayed] == [(4, 4), (5, 5), (6, 6)]
    gw.publish({"channel": channel, "data": 7})  # numbering and subscriptions continue
    e = await recv_json(ws2)
    assert e["seq"] == 7 and e["data"] == 7 and e["channel"] == channel
    await ws2.close()


async def test_resume_replays_missed_messages(binary):
    # Ten rounds on two threads: a resume lands on the session's thread or must cross to it.
    with Gateway(binary, WS_THREADS=2) as gw:
        for i in range(10):
            await resume_once(gw, f"RES{i}")


async def test_resume_single_thread(binary):
    with Gateway(binary, WS_THREADS=1) as gw:
        await resume_once(gw, "ONE")


async def test_resume_takes_over_a_live_connection(binary):
    with Gateway(binary) as gw:
        ws, welcome = await connect(gw, "?channels=T")
        await recv_json(ws)
        gw.publish({"channel": "T", "data": 1})
        assert (await recv_json(ws))["seq"] == 1
        ws2, _ = await connect(gw)
        await ws2.send(json.dumps({"type": "resume", "data": {"session": welcome["data"]["session"], "last_seq": 1}}))
        assert (await recv_json(ws2))["type"] == "resumed"
        try:
            await asyncio.wait_for(ws.recv(), 3)
            raise AssertionError("the old connection should have been closed")
        except websockets.ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1000


async def expect_resume_failed(gw, session, last_seq):
    ws, welcome = await connect(gw)
    await ws.send(json.dumps({"type": "resume", "data": {"session": session, "last_seq": last_seq}, "id": 3}))
    err = await recv_json(ws)
    assert err["type"] == "error" and err["data"]["code"] == "resume_failed" and err["id"] == 3, err
    # The connection goes on with the fresh session its welcome announced.
    await ws.send(json.dumps({"type": "subscribe", "data": {"channels": ["AFTER"]}}))
    assert (await recv_json(ws))["type"] == "subscribed"
    gw.publish({"channel": "AFTER", "data": "x"})
    e = await recv_json(ws)
    assert e["seq"] == 1 and e["data"] == "x"
    await ws.close()
    return welcome["data"]["session"]


async def test_resume_failed_cases(binary):
    with Gateway(binary, WS_REPLAY_SIZE=5, WS_RESUME_TTL="1s", WS_THREADS=2) as gw:
        await expect_resume_failed(gw, "0123456789abcdef", 0)   # unknown (thread 0xef: none)
        await expect_resume_failed(gw, "0123456789abcd00", 0)   # unknown on thread 0
        await expect_resume_failed(gw, "0123456789abcd01", 0)   # unknown on thread 1
        # Whatever the id looks like: unknown is resume_failed, not bad_request.
        await expect_resume_failed(gw, "0123456789abcdef0123456789abcd01", 0)
        await expect_resume_failed(gw, "not an id", 0)
        await expect_resume_failed(gw, "", 0)
        # The ring no longer reaches back.
        ws, welcome = await connect(gw, "?channels=RING")
        await recv_json(ws)
        gw.publish({"channel": "RING", "data": 0})
        assert (await recv_json(ws))["seq"] == 1
        await ws.close()
        gw.publish([{"channel": "RING", "data": i} for i in range(10)])
        await asyncio.sleep(0.1)
        await expect_resume_failed(gw, welcome["data"]["session"], 1)
        # Ahead of what the session sent.
        ws, welcome = await connect(gw)
        await ws.close()
        await expect_resume_failed(gw, welcome["data"]["session"], 5)
        # Expired.
        ws, welcome = await connect(gw)
        await ws.close()
        await asyncio.sleep(2.5)
        await expect_resume_failed(gw, welcome["data"]["session"], 0)


async def test_resume_only_first(binary):
    with Gateway(binary) as gw:
        ws, welcome = await connect(gw)
        await ws.send(json.dumps({"type": "heartbeat"}))
        await recv_json(ws)
        await ws.send(json.dumps({"type": "resume", "data": {"session": welcome["data"]["session"], "last_seq": 0}}))
        err = await recv_json(ws)
        assert err["type"] == "error" and err["data"]["code"] == "bad_request", err
        await ws.close()


if __name__ == "__main__":
    run_tests([test_resume_replays_missed_messages, test_resume_single_thread,
               test_resume_takes_over_a_live_connection, test_resume_failed_cases,
               test_resume_only_first])
