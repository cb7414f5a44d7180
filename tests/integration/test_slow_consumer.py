"""A client that stops reading is cut with 4008; a reading client on the same channel receives
everything without a gap; memory stays bounded."""
import asyncio
import json

from harness import Gateway, RawClient, connect, recv_json, run_tests

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
    run_tests([test_slow_consumer_4008_others_untouched])
