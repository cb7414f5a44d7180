"""Self-protection: rate limit then 1008, 1009, 1003, 503 at the cap, heartbeat timeout 4000."""
import asyncio
import json
import time

import websockets

from harness import Gateway, RawClient, connect, recv_json, run_tests


async def test_rate_limit_then_1008(binary):
    with Gateway(binary, WS_CLIENT_RATE=5, WS_CLIENT_BURST=10) as gw:
        ws, _ = await connect(gw)
        for i in range(10):
            await ws.send(json.dumps({"type": "heartbeat", "id": i}))
        for i in range(10):
            assert (await recv_json(ws))["type"] == "pong"
        await ws.send(json.dumps({"type": "heartbeat", "id": "over"}))
        err = await recv_json(ws)
        assert err["type"] == "error" and err["data"]["code"] == "rate_limited" and err["id"] == "over", err
        code = None
        try:
            for i in range(200):
                await ws.send(json.dumps({"type": "heartbeat"}))
            while True:
                await recv_json(ws)
        except websockets.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
        assert code == 1008, code
        metrics = gw.http("GET", "/metrics")[2].decode()
        assert "ws_rate_limited_total " in metrics and "ws_rate_limited_total 0\n" not in metrics


async def test_rate_limit_spares_a_client_at_the_rate(binary):
    with Gateway(binary, WS_CLIENT_RATE=20, WS_CLIENT_BURST=5) as gw:
        ws, _ = await connect(gw)
        for i in range(30):  # 1.5 s at ~13/s: under the rate, never refused
            await ws.send(json.dumps({"type": "heartbeat"}))
            assert (await recv_json(ws))["type"] == "pong"
            await asyncio.sleep(0.075)
        await ws.close()


def test_too_big_and_binary(binary):
    with Gateway(binary, WS_MAX_MESSAGE_BYTES=1024) as gw:
        c = RawClient(gw.port)
        assert c.read_http_head()[0] == 101
        c.read_frame()  # welcome
        c.send_text('{"type":"heartbeat","pad":"' + "x" * 900 + '"}')  # under the limit
        assert b"pong" in c.read_frame()[1]
        c.send_text("x" * 1025)
        code, _ = c.read_until_close()
        assert code == 1009, code
        c.close()
        c = RawClient(gw.port)
        c.read_http_head()
        c.read_frame()
        c.send_frame(0x2, b"\x00\x01")
        code, _ = c.read_until_close()
        assert code == 1003, code
        c.close()


async def test_503_at_capacity(binary):
    with Gateway(binary, WS_MAX_CONNECTIONS=2) as gw:
        a, _ = await connect(gw)
        b, _ = await connect(gw)
        c = RawClient(gw.port)
        status, headers = c.read_http_head()
        assert status == 503, status
        assert "retry-after" in headers
        length = int(headers["content-length"])
        while len(c.buf) < length:
            c.buf += c.sock.recv(4096)
        assert json.loads(c.buf[:length]) == {"error": "at_capacity"}
        c.close()
        await a.close()
        await asyncio.sleep(0.3)
        d, _ = await connect(gw)  # a slot is free again
        metrics = gw.http("GET", "/metrics")[2].decode()
        assert 'ws_connections_rejected_total{reason="at_capacity"} 1' in metrics, metrics
        await b.close()
        await d.close()


def test_memory_admission(binary):
    # A memory limit the process is already past: upgrades are refused with 503 "memory", while
    # the plain endpoints keep answering (and /health says why).
    with Gateway(binary, WS_MEMORY_LIMIT="1M", WS_MEMORY_REJECT_THRESHOLD=90) as gw:
        c = RawClient(gw.port)
        status, headers = c.read_http_head()
        assert status == 503 and "retry-after" in headers, (status, headers)
        length = int(headers["content-length"])
        while len(c.buf) < length:
            c.buf += c.sock.recv(4096)
        assert json.loads(c.buf[:length]) == {"error": "memory"}
        c.close()
        status, _, body = gw.http("GET", "/health")
        health = json.loads(body)
        assert health["checks"]["memory"]["healthy"] is False
        assert health["status"] == "unhealthy" and status == 503, (status, health)
        metrics = gw.http("GET", "/metrics")[2].decode()
        assert 'ws_connections_rejected_total{reason="memory"} 1' in metrics


def test_cpu_admission(binary):
    # A CPU limit so small that any work passes the threshold: after the next one-second sample,
    # upgrades are refused with 503 "cpu"; /health reports the CPU check unhealthy.
    with Gateway(binary, WS_CPU_LIMIT="0.0001", WS_CPU_REJECT_THRESHOLD=1) as gw:
        deadline = time.time() + 6
        refused = False
        while time.time() < deadline and not refused:
            for _ in range(50):  # make some CPU time to measure
                gw.http("GET", "/metrics")
            c = RawClient(gw.port)
            status, headers = c.read_http_head()
            if status == 503:
                length = int(headers["content-length"])
                while len(c.buf) < length:
                    c.buf += c.sock.recv(4096)
                assert json.loads(c.buf[:length]) == {"error": "cpu"}
                refused = True
            c.close()
        assert refused, "never refused for CPU"
        health = json.loads(gw.http("GET", "/health")[2])
        assert health["checks"]["cpu"]["healthy"] is False and health["status"] == "degraded", health
        metrics = gw.http("GET", "/metrics")[2].decode()
        assert 'ws_connections_rejected_total{reason="cpu"}' in metrics


async def test_heartbeat_timeout(binary):
    with Gateway(binary, WS_PING_INTERVAL="300ms", WS_HEARTBEAT_TIMEOUT="1200ms") as gw:
        silent = RawClient(gw.port)
        silent.read_http_head()
        live, _ = await connect(gw)  # websockets answers pings by itself
        start = time.time()
        pings = 0
        code = None
        while time.time() - start < 5:
            f = await asyncio.get_running_loop().run_in_executor(None, silent.read_frame, 5)
            if f is None:
                break
            if f[0] == 0x9:
                pings += 1
            if f[0] == 0x8:
                code = int.from_bytes(f[1][:2], "big")
                break
        elapsed = time.time() - start
        assert pings >= 2, pings
        assert code == 4000, code
        assert 1.0 <= elapsed <= 3.5, elapsed
        await asyncio.sleep(0.5)
        assert live.open, "a client that answers pings must stay connected"
        await live.send(json.dumps({"type": "heartbeat"}))
        assert (await recv_json(live))["type"] == "pong"
        await live.close()
        silent.close()


if __name__ == "__main__":
    run_tests([test_rate_limit_then_1008, test_rate_limit_spares_a_client_at_the_rate,
               test_too_big_and_binary, test_503_at_capacity, test_memory_admission,
               test_cpu_admission, test_heartbeat_timeout])
