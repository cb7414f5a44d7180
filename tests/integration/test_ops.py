"""Operations: /health, /stats, /metrics shapes and movement, /demo/channels, HTTP keep-alive,
POST /publish validation, configuration errors and --help."""
import asyncio
import http.client
import json
import re
import subprocess

import base64
import os
import time

from harness import Gateway, RawClient, connect, recv_json, run_tests

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.eE+-]+$|^[a-zA-Z_:][a-zA-Z0-9_:]*\{le="\+Inf"\} [0-9]+$')


def parse_metrics(text):
    samples = {}
    for line in text.strip().split("\n"):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert SAMPLE.match(line), f"not a Prometheus sample: {line!r}"
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


async def test_health_stats_metrics(binary):
    with Gateway(binary) as gw:
        health = gw.json("/health")
        assert health["status"] == "healthy"
        checks = health["checks"]
        assert set(checks) == {"cpu", "memory", "capacity", "broker"}
        assert isinstance(checks["cpu"]["percentage"], (int, float)) and isinstance(checks["cpu"]["threshold"], (int, float))
        assert checks["cpu"]["healthy"] is True
        assert isinstance(checks["memory"]["percentage"], (int, float)) and checks["memory"]["limit_mb"] > 0
        assert checks["memory"]["healthy"] is True
        assert checks["capacity"] == {"current": 0, "max": 10000, "percentage": 0}
        assert checks["broker"] == {"connected": True, "ready": True, "type": "embedded", "paused": False}

        stats = gw.json("/stats")
        for key in ("currentConnections", "memoryMB", "messagesIn", "messagesOut",
                    "slowClientDisconnects", "uptimeSeconds"):
            assert isinstance(stats[key], (int, float)), key
        clients = [(await connect(gw, "?channels=M"))[0] for _ in range(3)]
        for ws in clients:
            await recv_json(ws)
        gw.publish([{"channel": "M", "data": i} for i in range(5)])
        for ws in clients:
            for _ in range(5):
                await recv_json(ws)
        after = gw.json("/stats")
        assert after["currentConnections"] == 3
        assert after["messagesIn"] - stats["messagesIn"] == 5
        assert after["messagesOut"] - stats["messagesOut"] == 15
        assert gw.json("/health")["checks"]["capacity"]["current"] == 3

        status, headers, body = gw.http("GET", "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        m = parse_metrics(body.decode())
        for name in ("ws_connections_current", "ws_connections_accepted_total", "ws_messages_in_total",
                     "ws_messages_out_total", "ws_bytes_out_total", "ws_slow_consumer_disconnects_total",
                     "ws_replay_requests_total", 'ws_resumes_total{result="ok"}',
                     'ws_resumes_total{result="failed"}', "ws_rate_limited_total", "ws_cpu_percent",
                     "ws_memory_rss_bytes", 'ws_fanout_latency_seconds_bucket{le="+Inf"}',
                     "ws_fanout_latency_seconds_sum", "ws_fanout_latency_seconds_count",
                     'ws_connections_rejected_total{reason="at_capacity"}'):
            assert name in m, name
        assert m["ws_connections_current"] == 3
        assert m["ws_messages_out_total"] >= 15
        assert m["ws_memory_rss_bytes"] > 1_000_000
        assert m["ws_fanout_latency_seconds_count"] >= 5
        await clients[0].send(json.dumps({"type": "replay", "data": {"from": 1}}))
        await recv_json(clients[0])
        await asyncio.sleep(0.1)
        m2 = parse_metrics(gw.http("GET", "/metrics")[2].decode())
        assert m2["ws_replay_requests_total"] == m["ws_replay_requests_total"] + 1
        for ws in clients:
            await ws.close()


def test_handshake_duration_histogram(binary):
    """ws_handshake_duration_seconds counts every upgrade once, from the accept to the 101: a
    client that takes 0.6 s to send its request lands above 0.5 s, quick ones at once."""
    with Gateway(binary) as gw:
        quick = [RawClient(gw.port) for _ in range(3)]
        for c in quick:
            assert c.read_http_head()[0] == 101
        slow = RawClient(gw.port, upgrade=False)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
        slow.send_raw(request[:20])
        time.sleep(0.6)
        slow.send_raw(request[20:])
        assert slow.read_http_head()[0] == 101
        s = parse_metrics(gw.http("GET", "/metrics")[2].decode())
        name = "ws_handshake_duration_seconds"
        assert s[name + "_count"] == 4, s[name + "_count"]
        assert s[name + '_bucket{le="+Inf"}'] == 4
        assert s[name + '_bucket{le="0.25"}'] == 3, s[name + '_bucket{le="0.25"}']  # the quick ones
        assert s[name + '_bucket{le="0.5"}'] == 3  # not the slow one
        assert s[name + '_bucket{le="1"}'] == 4
        assert 0.6 <= s[name + "_sum"] < 3, s[name + "_sum"]
        stats = gw.json("/stats")
        assert stats["handshakeLatencyMs"]["p99"] >= 500, stats["handshakeLatencyMs"]
        for c in quick + [slow]:
            c.sock.close()


def test_demo_channels(binary):
    # The demo feed's symbols in its order (DemoFeed::symbol_names): 40 known ones, then SYM<n>.
    with Gateway(binary, WS_DEMO_FEED="1", WS_DEMO_RATE="1", WS_DEMO_SYMBOLS="12") as gw:
        status, headers, body = gw.http("GET", "/demo/channels")
        assert status == 200, (status, body)
        assert headers["Content-Type"] == "application/json"
        assert headers["Cache-Control"] == "no-store"
        channels = json.loads(body)["channels"]
        assert len(channels) == 12 and channels[0] == "BTCUSD" and channels[1] == "ETHUSD", channels
        assert len(set(channels)) == 12
        # HEAD: the GET's headers, no body; other methods: 405 like the other GET routes.
        status, head_headers, head_body = gw.http("HEAD", "/demo/channels")
        assert status == 200 and head_body == b"" and head_headers["Content-Length"] == str(len(body))
        status, _, _ = gw.http("POST", "/demo/channels", "{}")
        assert status == 405
    with Gateway(binary, WS_DEMO_FEED="1", WS_DEMO_RATE="1", WS_DEMO_SYMBOLS="45") as gw:
        channels = gw.json("/demo/channels")["channels"]
        assert len(channels) == 45 and channels[0] == "BTCUSD", channels
        assert channels[39] == "LDOUSD" and channels[40] == "SYM040" and channels[44] == "SYM044", channels
    with Gateway(binary) as gw:  # WS_DEMO_FEED off (the default)
        status, headers, body = gw.http("GET", "/demo/channels")
        assert status == 404, (status, body)
        assert headers["Content-Type"] == "application/json"
        assert isinstance(json.loads(body)["error"], str)


def test_keep_alive_and_paths(binary):
    with Gateway(binary) as gw:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
        for path in ("/health", "/stats", "/metrics", "/health"):
            status, _, _ = gw.http("GET", path, conn=conn)
            assert status == 200
        status, _, body = gw.http("GET", "/nope", conn=conn)
        assert status == 404 and "error" in json.loads(body)
        conn.close()


def test_http_idle_timeout(binary):
    # A keep-alive client that keeps making requests outlives WS_HANDSHAKE_TIMEOUT; a silent
    # connection does not.
    import socket
    import time
    with Gateway(binary, WS_HANDSHAKE_TIMEOUT="1s") as gw:
        busy = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
        silent = socket.create_connection(("127.0.0.1", gw.port))
        silent.settimeout(5)
        start = time.time()
        while time.time() - start < 2.5:
            status, _, _ = gw.http("POST", "/publish", {"channel": "k", "data": 1}, conn=busy)
            assert status == 200
            time.sleep(0.2)
        assert silent.recv(1) == b""  # closed by the gateway
        assert 0.9 <= time.time() - start <= 4
        busy.close()
        silent.close()


def test_publish_validation(binary):
    with Gateway(binary) as gw:
        before = gw.json("/stats")["messagesIn"]
        for body in ["not json", "{}", '{"data":1}', '{"channel":"a b","data":1}', '{"channel":5,"data":1}',
                     '{"channel":"ok","type":3,"data":1}', '{"channel":"ok"}',
                     '[{"channel":"ok","data":1},{"channel":"x/y","data":1}]']:
            status, headers, data = gw.http("POST", "/publish", body, {"Content-Type": "application/json"})
            assert status == 400, (body, status)
            assert headers["Content-Type"] == "application/json"
            assert isinstance(json.loads(data)["error"], str)
        assert gw.json("/stats")["messagesIn"] == before  # nothing published
        status, _, _ = gw.http("GET", "/publish")
        assert status == 405
        assert gw.publish([{"channel": "ok", "data": 1}, {"channel": "ok", "data": 2}]) == 2


def test_configuration_errors_and_help(binary):
    bad = subprocess.run([binary], env={"WS_MAX_CONNECTIONS": "abc"}, capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2, bad.returncode
    assert "WS_MAX_CONNECTIONS" in bad.stderr and "abc" in bad.stderr
    bad = subprocess.run([binary, "--resume-ttl=never"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "--resume-ttl" in bad.stderr
    ok = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    assert ok.returncode == 0
    for name in ("WS_MAX_CONNECTIONS", "WS_REPLAY_SIZE", "NATS_URL", "JS_STREAM_NAME", "WS_CPU_LIMIT",
                 "--max-connections"):
        assert name in ok.stdout, name


def test_json_logs(binary):
    gw = Gateway(binary, LOG_FORMAT="json", LOG_LEVEL="info")
    gw.stop()
    lines = [l for l in gw.output().splitlines() if l.strip()]
    assert len(lines) >= 2, lines
    for line in lines:
        entry = json.loads(line)
        assert set(entry) == {"ts", "level", "msg"}, entry
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", entry["ts"]), entry
    assert any("listening" in json.loads(l)["msg"] for l in lines)


if __name__ == "__main__":
    run_tests([test_health_stats_metrics, test_handshake_duration_histogram, test_demo_channels, test_keep_alive_and_paths, test_publish_validation,
               test_configuration_errors_and_help, test_json_logs, test_http_idle_timeout])
