"""A client that stops reading is cut with 4008; a reading client on the same channel receives
everything without a gap; memory stays bounded. A replay goes out in parts, each once the previous
one was written: a slow reader gets all of it, and a flood of replays holds little memory."""
import asyncio
import json
import time

from harness import Gateway, RawClient, connect, recv_json, run_tests, bounded_memory_env, memory_kb



def fill_ring(gw, channel, pad, count=100):
    for batch in range(count // 25):
        gw.publish([{"channel": channel, "data": {"n": batch * 25 + i, "pad": pad}} for i in range(25)])


def read_replay(client, count):
    """Reads one replay's data messages and its replay_done; returns (seqs, replay_done)."""
    seqs = []
    while True:
        frame = client.read_frame(10)
        assert frame is not None, f"closed after {len(seqs)} of {count} replayed messages"
        op, payload = frame
        assert op == 0x1, (op, payload[:40])
        if payload.startswith(b'{"seq":'):  # the seq from the head: no need to parse 32 KB
            seqs.append(int(payload[7:payload.index(b",")]))
            continue
        m = json.loads(payload)
        assert m.get("type") == "replay_done", m
        return seqs, m


async def test_replay_flood_is_bounded_and_answered_in_order(binary):
    """Issue 12, defect 8: one 4 KB write of 100 `replay` requests from a client that does not
    read used to be copied whole into its backlog before WS_CLIENT_QUEUE_BYTES was checked (237 MB
    of peak RSS). Now a replay goes out 64 KiB at a time, each part once the previous one was
    written, and the requests behind it wait: the gateway's peak RSS barely moves, a reading client
    is served meanwhile, and when the client reads at last it gets every replay whole, in order."""
    with Gateway(binary, WS_THREADS=1, WS_CLIENT_QUEUE_BYTES=8 << 20, **bounded_memory_env()) as gw:
        pad = "x" * 8_000  # 100 replays of 800 KB: 80 MB if they were queued at once
        hoarder = RawClient(gw.port, "/ws?channels=R")
        assert hoarder.read_http_head()[0] == 101
        honest, _ = await connect(gw, "?channels=H")
        await recv_json(honest)
        loop = asyncio.get_running_loop()
        fill_ring(gw, "R", pad)  # 100 messages of 8 KB in the hoarder's replay ring
        received = 0
        while received < 100:  # it reads them all, then stops reading
            op, payload = await loop.run_in_executor(None, hoarder.read_frame)
            received += payload.startswith(b'{"seq"')
        await asyncio.sleep(0.2)
        peak_before = memory_kb(gw, "VmHWM")
        requests = b"".join(RawClient.frame(0x1, json.dumps({"type": "replay", "data": {"from": 1},
                                                               "id": n}))
                            for n in range(100))
        assert len(requests) < 8192  # one write of a few KB (ids make it larger than the review's)
        hoarder.send_raw(requests)
        latencies = []
        for i in range(10):
            t0 = time.time()
            gw.publish({"channel": "H", "data": i})
            m = await recv_json(honest, 5)
            assert m["data"] == i, m
            latencies.append(time.time() - t0)
        await asyncio.sleep(0.5)
        grown_mb = (memory_kb(gw, "VmHWM") - peak_before) / 1024
        print(f"  peak RSS grew {grown_mb:.1f} MB for 100 replays of 100 x 8 KB (cap 8 MB); "
              f"honest round trip max {max(latencies) * 1000:.0f} ms")
        assert grown_mb < 16, grown_mb
        assert max(latencies) < 1.0, latencies
        # Now it reads: 100 whole replays, each answered in the order asked.
        for n in range(100):
            seqs, done = await loop.run_in_executor(None, read_replay, hoarder, 100)
            assert seqs == list(range(1, 101)), (n, seqs[:5], len(seqs))
            assert done["id"] == n and done["data"]["sent"] == 100, done
        assert gw.json("/stats")["slowClientDisconnects"] == 0
        hoarder.close()


async def test_replay_larger_than_the_queue_reaches_a_slow_reader(binary):
    """A replay of more than WS_CLIENT_QUEUE_BYTES (100 x 32 KB against 256 KiB) to a client on a
    small socket buffer that reads slowly: it used to be cut with 4008; now it gets every message,
    then `replay_done`, then the answer to the request it sent after the replay. Live messages
    keep flowing meanwhile, and nothing is lost."""
    with Gateway(binary, WS_THREADS=1, WS_CLIENT_QUEUE_BYTES=256 << 10) as gw:
        client = RawClient(gw.port, "/ws?channels=R", rcvbuf=4096)
        assert client.read_http_head()[0] == 101
        loop = asyncio.get_running_loop()
        for n in range(100):  # one at a time: a burst would be more than this client's queue
            gw.publish({"channel": "R", "data": {"n": n, "pad": "y" * 32_000}})
            while True:
                op, payload = await loop.run_in_executor(None, client.read_frame)
                if payload.startswith(b'{"seq"'):
                    break
        client.send_raw(RawClient.frame(0x1, json.dumps({"type": "replay", "data": {"from": 1},
                                                          "id": "r"}))
                        + RawClient.frame(0x1, json.dumps({"type": "heartbeat", "id": "h"})))
        gw.publish({"channel": "R", "data": {"n": "live"}})  # seq 101, during the replay

        def read_slowly():
            replayed, live, order = [], [], []
            while len(order) < 2 or len(live) < 1:
                frame = client.read_frame(10)
                assert frame is not None, f"closed after {len(replayed)} replayed messages"
                op, payload = frame
                if op != 0x1:
                    continue
                m = json.loads(payload)
                if "seq" in m:
                    (live if m["seq"] > 100 else replayed).append(m["seq"])
                    time.sleep(0.002)  # a slow reader: the replay outlasts many turns
                else:
                    order.append(m)
            return replayed, live, order

        replayed, live, order = await loop.run_in_executor(None, read_slowly)
        assert replayed == list(range(1, 101)), (replayed[:5], len(replayed))
        assert live == [101], live
        assert [m["type"] for m in order] == ["replay_done", "pong"], order
        assert order[0]["data"]["sent"] == 100 and order[0]["id"] == "r", order[0]
        assert gw.json("/stats")["slowClientDisconnects"] == 0
        client.close()


async def test_a_message_larger_than_the_queue_reaches_a_slow_reader(binary):
    """A message may be as large as WS_MAX_PAYLOAD_BYTES (1 MiB) even when WS_CLIENT_QUEUE_BYTES is
    far smaller: the rest of the frame the kernel is taking does not count toward the cap, so a
    slow reader gets it whole, and the messages behind it too. A small kernel send buffer
    (WS_SOCKET_SEND_BUFFER) keeps most of the frame in the gateway's backlog, as on a slow link."""
    with Gateway(binary, WS_CLIENT_QUEUE_BYTES="64K", WS_SOCKET_SEND_BUFFER="16K") as gw:
        client = RawClient(gw.port, "/ws?channels=BIG", rcvbuf=4096)
        assert client.read_http_head()[0] == 101
        loop = asyncio.get_running_loop()
        assert json.loads((await loop.run_in_executor(None, client.read_frame))[1])["type"] == "welcome"
        big = "z" * (900 << 10)
        gw.publish([{"channel": "BIG", "data": big}] + [{"channel": "BIG", "data": i} for i in range(3)])

        def read_slowly():
            seqs = []
            while len(seqs) < 4:
                frame = client.read_frame(10)
                assert frame is not None, f"closed after {seqs}"
                op, payload = frame
                assert op == 0x1, (op, payload[:60])
                m = json.loads(payload)
                if "seq" in m:
                    assert m["data"] == (big if m["seq"] == 1 else m["seq"] - 2), m["seq"]
                    seqs.append(m["seq"])
            return seqs

        await asyncio.sleep(0.5)  # the gateway holds most of the frame meanwhile
        assert await loop.run_in_executor(None, read_slowly) == [1, 2, 3, 4]
        assert gw.json("/stats")["slowClientDisconnects"] == 0
        client.close()


MESSAGES = 3000


async def test_slow_consumer_4008_others_untouched(binary):
    with Gateway(binary, WS_CLIENT_QUEUE_BYTES=65536) as gw:
        slow = RawClient(gw.port, "/ws?channels=S", rcvbuf=4096)
        assert slow.read_http_head()[0] == 101
        fast, _ = await connect(gw, "?channels=S", max_queue=None)
        await recv_json(fast)
        loop = asyncio.get_running_loop()

        def publish_all():
            for b in range(MESSAGES // 100):
                gw.publish([{"channel": "S", "data": {"n": b * 100 + i, "pad": "x" * 2000}} for i in range(100)])

        publishing = loop.run_in_executor(None, publish_all)
        last = 0
        while last < MESSAGES:
            m = await recv_json(fast, 10)
            if "seq" not in m:
                continue
            assert m["seq"] == last + 1, (m["seq"], last)
            assert m["data"]["n"] == last
            last = m["seq"]
        await publishing
        # The slow client reads now: whole frames, contiguous seqs, then close 4008.
        code, frames = await loop.run_in_executor(None, slow.read_until_close, 5)
        data = [json.loads(p) for op, p in frames if op == 0x1 and p.startswith(b'{"seq"')]
        assert code == 4008, code
        assert 0 < len(data) < MESSAGES
        assert [d["seq"] for d in data] == list(range(1, len(data) + 1))
        stats = gw.json("/stats")
        assert stats["slowClientDisconnects"] >= 1
        assert stats["memoryMB"] < 200, stats["memoryMB"]
        metrics = gw.http("GET", "/metrics")[2].decode()
        assert "ws_slow_consumer_disconnects_total 1" in metrics
        # The fast client is still served.
        gw.publish({"channel": "S", "data": {"n": "after"}})
        m = await recv_json(fast)
        assert m["seq"] == MESSAGES + 1
        await fast.close()
        slow.close()


if __name__ == "__main__":
    run_tests([test_replay_flood_is_bounded_and_answered_in_order,
               test_replay_larger_than_the_queue_reaches_a_slow_reader,
               test_a_message_larger_than_the_queue_reaches_a_slow_reader, test_slow_consumer_4008_others_untouched])
