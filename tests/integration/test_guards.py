"""Guards against hostile clients: WS_ALLOWED_ORIGINS (403), a slowloris crowd that trickles
headers (closed at WS_HANDSHAKE_TIMEOUT while honest clients connect), WS_MAX_CONNECTIONS_PER_IP,
the HTTP request size caps (431 / 413) and WS_CLIENT_MAX_BYTES_PER_SEC (1008)."""
import asyncio
import json
import socket
import time

import websockets

from harness import Gateway, RawClient, close_code_of, connect, recv_json, run_tests


def upgrade_status(gw, headers=None, source=None):
    c = RawClient(gw.port, headers=headers, source=source)
    try:
        status, _ = c.read_http_head()
        body = c.buf
        return status, body
    finally:
        c.close()


def test_allowed_origins(binary):
    with Gateway(binary, WS_ALLOWED_ORIGINS="https://app.example.com, https://*.example.org") as gw:
        assert upgrade_status(gw, {"Origin": "https://app.example.com"})[0] == 101
        assert upgrade_status(gw, {"Origin": "HTTPS://APP.EXAMPLE.COM"})[0] == 101
        assert upgrade_status(gw, {"Origin": "https://eu.prices.example.org"})[0] == 101
        assert upgrade_status(gw)[0] == 101  # no Origin: not a browser
        for bad in ("https://evil.example", "http://app.example.com", "https://example.org",
                    "https://app.example.com:8443", "null", "https://x.example.org.evil.example"):
            status, body = upgrade_status(gw, {"Origin": bad})
            assert status == 403, (bad, status)
            assert body.endswith(b'{"error":"origin not allowed"}'), (bad, body)
        metrics = gw.http("GET", "/metrics")[2].decode()
        assert 'ws_connections_refused_total{reason="origin"} 6' in metrics, metrics


async def test_slowloris_crowd_is_cut_and_honest_clients_connect(binary):
    with Gateway(binary, WS_HANDSHAKE_TIMEOUT="1s") as gw:
        crowd = []
        for i in range(300):  # bounded: 300 sockets, about 2.5 s
            s = socket.socket()
            s.setblocking(True)
            s.connect(("127.0.0.1", gw.port))
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
            crowd.append(s)
        started = time.time()
        honest = []
        closed_at = {}
        while time.time() - started < 2.5:
            # The crowd keeps trickling a header byte at a time: a deadline per request, not
            # per byte, is what cuts it.
            for i, s in enumerate(crowd):
                if i in closed_at:
                    continue
                try:
                    s.send(b"X")
                except OSError:
                    closed_at[i] = time.time() - started
            if len(honest) < 20:
                t0 = time.time()
                ws, _ = await connect(gw)
                honest.append(time.time() - t0)
                await ws.close()
            await asyncio.sleep(0.1)
        # Every crowd socket got a 408 (or was closed) within the timeout plus the sweep period.
        for i, s in enumerate(crowd):
            s.settimeout(2)
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:80]
            s.close()
        assert len(closed_at) == len(crowd), f"{len(crowd) - len(closed_at)} still open"
        assert max(closed_at.values()) < 2.5, sorted(closed_at.values())[-5:]
        assert len(honest) == 20 and max(honest) < 0.5, honest
        metrics = gw.http("GET", "/metrics")[2].decode()
        assert 'ws_connections_refused_total{reason="handshake_timeout"} 300' in metrics, metrics


async def test_connections_per_ip_cap(binary):
    with Gateway(binary, WS_MAX_CONNECTIONS_PER_IP=5) as gw:
        held = []
        for _ in range(5):
            c = RawClient(gw.port, source="127.0.0.7")
            assert c.read_http_head()[0] == 101
            held.append(c)
        over = RawClient(gw.port, source="127.0.0.7", upgrade=False)
        data = b""
        try:
            while True:
                chunk = over.sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        over.close()
        assert data.startswith(b"HTTP/1.1 429") and b"too many connections from this address" in data, data
        # Other addresses are not affected.
        ws, _ = await connect(gw)
        await ws.close()
        # A slot comes back when its connection ends.
        held.pop().close()
        deadline = time.time() + 3
        while True:
            c = RawClient(gw.port, source="127.0.0.7")
            try:
                if c.read_http_head()[0] == 101:
                    held.append(c)
                    break
            except (EOFError, ConnectionResetError):
                c.close()
            assert time.time() < deadline, "slot not released"
            await asyncio.sleep(0.05)
        for c in held:
            c.close()
        metrics = gw.http("GET", "/metrics")[2].decode()
        assert 'ws_connections_refused_total{reason="address_limit"} 0' not in metrics, metrics


def test_request_size_caps(binary):
    with Gateway(binary, WS_MAX_HEADER_BYTES=2048, WS_MAX_BODY_BYTES=2048) as gw:
        status, _ = upgrade_status(gw, {"X-Pad": "p" * 1500})
        assert status == 101
        status, body = upgrade_status(gw, {"X-Pad": "p" * 3000})
        assert status == 431 and b"request header too large" in body, (status, body)
        status, _, body = gw.http("POST", "/publish", json.dumps({"channel": "a", "data": "x" * 3000}),
                                  {"Content-Type": "application/json"})
        assert status == 413 and b"request body too large" in body, (status, body)
        assert gw.publish({"channel": "a", "data": "x" * 1500}) == 1


async def test_bytes_per_second_cap(binary):
    with Gateway(binary, WS_CLIENT_MAX_BYTES_PER_SEC=10000, WS_MAX_MESSAGE_BYTES=4096) as gw:
        pad = "p" * 3900
        honest, _ = await connect(gw)
        for i in range(4):  # ~4 KB/s, under the cap
            await honest.send(json.dumps({"type": "heartbeat", "id": i, "pad": pad}))
            assert (await recv_json(honest))["type"] == "pong"
            await asyncio.sleep(0.6)
        flood, _ = await connect(gw)
        code = reason = None
        try:
            for i in range(50):
                await flood.send(json.dumps({"type": "heartbeat", "pad": pad}))
            while True:
                await recv_json(flood)
        except websockets.ConnectionClosed as e:
            code, reason = close_code_of(e), e.rcvd.reason if e.rcvd else None
        assert code == 1008 and reason == "sending too fast", (code, reason)
        await honest.send(json.dumps({"type": "heartbeat", "id": "still"}))
        assert (await recv_json(honest))["id"] == "still"
        await honest.close()
        metrics = gw.http("GET", "/metrics")[2].decode()
        assert "ws_flood_disconnects_total 1\n" in metrics, metrics


def test_bad_guard_settings_exit_2(binary):
    import os
    import subprocess
    cases = [
        ({"WS_ALLOWED_ORIGINS": "example.com"}, "WS_ALLOWED_ORIGINS"),
        ({"WS_ALLOWED_ORIGINS": "https://a.*.example.com"}, "WS_ALLOWED_ORIGINS"),
        ({"WS_CLIENT_MAX_BYTES_PER_SEC": "1000"}, "WS_CLIENT_MAX_BYTES_PER_SEC"),
        ({"WS_MAX_HEADER_BYTES": "10"}, "WS_MAX_HEADER_BYTES"),
        ({"WS_MAX_CONNECTIONS_PER_IP": "-1"}, "WS_MAX_CONNECTIONS_PER_IP"),
    ]
    for env, name in cases:
        full = dict(os.environ, WS_ADDR="127.0.0.1:0", **env)
        run = subprocess.run([binary], env=full, capture_output=True, text=True, timeout=20)
        assert run.returncode == 2 and name in run.stderr, (env, run.returncode, run.stderr)


if __name__ == "__main__":
    run_tests([
        test_allowed_origins,
        test_slowloris_crowd_is_cut_and_honest_clients_connect,
        test_connections_per_ip_cap,
        test_request_size_caps,
        test_bytes_per_second_cap,
        test_bad_guard_settings_exit_2,
    ])
