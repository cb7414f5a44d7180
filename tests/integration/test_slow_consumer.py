"""A client that stops reading is cut with 4008; a reading client on the same channel receives
everything without a gap; memory stays bounded."""
import asyncio
import json

from harness import Gateway, RawClient, connect, recv_json, run_tests, bounded_memory_env, memory_kb



async def test_replay_flood_is_capped_while_it_is_produced(binary):
    """Issue 12, defect 8: one 4 KB write of 100 `replay` requests from a client that does not
    read used to be copied whole into its backlog before WS_CLIENT_QUEUE_BYTES was checked (237 MB
    of peak RSS). Now the cap holds while the output is produced: the client is cut with 4008 and
    the gateway's peak RSS barely moves; a reading client is served meanwhile."""
    with Gateway(binary, WS_THREADS=1, WS_CLIENT_QUEUE_BYTES=8 << 20, **bounded_memory_env()) as gw:
        pad = "x" * 32_000
        hoarder = RawClient(gw.port, "/ws?channels=R", rcvbuf=4096)
        assert hoarder.read_http_head()[0] == 101
        honest, _ = await connect(gw, "?channels=H")
        await recv_json(honest)
        loop = asyncio.get_running_loop()
        for batch in range(4):  # 100 messages of 32 KB in the hoarder's replay ring
            gw.publish([{"channel": "R", "data": {"n": batch * 25 + i, "pad": pad}} for i in range(25)])
        received = 0
        while received < 100:  # it reads them all, then stops reading
            op, payload = await loop.run_in_executor(None, hoarder.read_frame)
            received += payload.startswith(b'{"seq"')
        await asyncio.sleep(0.2)
        peak_before = memory_kb(gw, "VmHWM")
        requests = b"".join(RawClient.frame(0x1, json.dumps({"type": "replay", "data": {"from": 1}}))
                            for _ in range(100))
        assert len(requests) < 5000
        hoarder.send_raw(requests)
        gw.publish({"channel": "H", "data": "still here"})
        m = await recv_json(honest, 5)
        assert m["data"] == "still here", m
        await asyncio.sleep(0.5)
        grown_mb = (memory_kb(gw, "VmHWM") - peak_before) / 1024
        print(f"  peak RSS grew {grown_mb:.1f} MB for 100 replays of 100 x 32 KB (cap 8 MB)")
        assert grown_mb < 40, grown_mb
        assert gw.json("/stats")["slowClientDisconnects"] >= 1
        hoarder.close()

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
    run_tests([test_replay_flood_is_capped_while_it_is_produced, test_slow_consumer_4008_others_untouched])
