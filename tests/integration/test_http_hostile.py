"""Hostile HTTP clients before the upgrade, driven by real client sockets: pipelined requests
whose answers are never read (the gateway's RSS stays bounded and honest clients keep being
served), an answer larger than WS_CLIENT_QUEUE_BYTES nobody reads (slow consumer), HEAD without a
body, the process-wide socket cap WS_MAX_SOCKETS, WS_MAX_REQUESTS_PER_CONNECTION, and
POST /publish requiring WS_PUBLISH_TOKEN from loopback peers too."""
import asyncio
import json
import os
import shutil
import socket
import tempfile
import time

from harness import Gateway, connect, metric, recv_json, run_tests, bounded_memory_env, memory_kb

WEB_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "web")



def read_response(sock, buf=b""):
    """Reads one HTTP response (Content-Length framed); returns (status, headers, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"closed before a response: {buf[:80]!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
    return int(lines[0].split()[1]), headers, rest


def raw_get(port, request):
    """The whole bytes of one response to `request` (Content-Length framed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head = data.split(b"\r\n\r\n", 1)[0]
    _, headers, _ = read_response(None, data)
    size = len(head) + 4 + int(headers["content-length"])
    while len(data) < size:
        data += s.recv(65536)
    s.close()
    return data


def send_without_blocking(sock, data, seconds):
    """Sends as much of `data` as the peer takes within `seconds` (a peer that stops reading
    fills the kernel's buffers); returns the bytes sent."""
    sock.setblocking(False)
    sent = 0
    deadline = time.time() + seconds
    while sent < len(data) and time.time() < deadline:
        try:
            sent += sock.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
    sock.setblocking(True)
    return sent


async def honest_round_trips(gw, ws, rounds):
    """Publishes `rounds` messages one by one while `ws` is subscribed; returns the latencies."""
    latencies = []
    for i in range(rounds):
        t0 = time.time()
        assert gw.publish({"channel": "HONEST", "data": {"i": i}}) == 1
        while True:
            msg = await recv_json(ws, 5)
            if msg.get("channel") == "HONEST":
                break
        assert msg["data"] == {"i": i}, msg
        latencies.append(time.time() - t0)
    return latencies


async def test_pipelined_requests_never_read_keep_rss_bounded(binary):
    # The vector of the review: 256 KiB of pipelined GETs of a 36 KB file (the page's client
    # module was that size then; about 6,000 requests) that the client never reads. Before the fix every answer was queued at once
    # (RSS 8 -> 344 MB); now reading stops at 64 KiB unsent, so the connection holds that plus
    # the kernel's buffers.
    web = tempfile.mkdtemp(prefix="odin-web-")
    with open(os.path.join(web, "asset.js"), "wb") as f:
        f.write(b"x" * 36000)
    request = b"GET /asset.js HTTP/1.1\r\nHost: x\r\n\r\n"
    count = (256 * 1024) // len(request)
    with Gateway(binary, WS_THREADS=1, WS_WEB_ROOT=web, **bounded_memory_env()) as gw:
        status, _, one = gw.http("GET", "/asset.js")
        assert status == 200 and len(one) == 36000
        ws, _ = await connect(gw, "?channels=HONEST")
        assert (await recv_json(ws))["type"] == "subscribed"
        await honest_round_trips(gw, ws, 5)  # warm
        before = memory_kb(gw)
        attackers = []
        for _ in range(2):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", gw.port))
            attackers.append((s, send_without_blocking(s, request * count, 3)))
        await asyncio.sleep(0.5)
        latencies = await honest_round_trips(gw, ws, 20)
        status, _, _ = gw.http("GET", "/health")
        assert status == 200
        peak = memory_kb(gw)
        growth_mb = (peak - before) / 1024
        print(f"  RSS before {before / 1024:.1f} MB, with 2 x {count} unread pipelined requests "
              f"{peak / 1024:.1f} MB; honest round trip max {max(latencies) * 1000:.0f} ms")
        assert growth_mb < 24, f"RSS grew by {growth_mb:.0f} MB"
        assert max(latencies) < 1.0, latencies
        # Paused, not dropped: a client that reads late gets every answer, in order.
        one_response = raw_get(gw.port, request)
        late = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        late.sendall(request * 400)  # 14 MB of answers: more than the kernel's buffers hold
        await asyncio.sleep(1)
        expected = one_response * 400
        received = b""
        while len(received) < len(expected):
            chunk = late.recv(1 << 20)
            assert chunk, f"closed after {len(received)} of {len(expected)} bytes"
            received += chunk
        assert received == expected
        late.close()
        for a, _ in attackers:
            a.close()
        await ws.close()
        assert gw.proc.poll() is None
    shutil.rmtree(web, ignore_errors=True)


def test_keep_alive_idle_after_a_pause_still_times_out(binary):
    # Reading resumes once paused answers drain, and the connection is then idle like any other:
    # it must be closed WS_HANDSHAKE_TIMEOUT after that. (A regression: the resume stamped the
    # idle start on the wall clock while the sweep measures on the monotonic one, so such a
    # connection was never closed and held its socket for ever.)
    request = b"GET /sdk/odin-client.js HTTP/1.1\r\nHost: x\r\n\r\n"
    with Gateway(binary, WS_HANDSHAKE_TIMEOUT="2s") as gw:
        one = raw_get(gw.port, request)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", gw.port))
        count = 40  # 1.4 MB of answers: well past the 64 KiB pause
        s.sendall(request * count)
        time.sleep(0.5)  # the gateway pauses with the kernel's buffers full
        s.settimeout(10)
        received = b""
        while len(received) < len(one) * count:
            chunk = s.recv(1 << 20)
            assert chunk, f"closed after {len(received)} bytes"
            received += chunk
        assert received == one * count
        idle_from = time.time()
        s.settimeout(15)
        try:
            tail = s.recv(1)
        except socket.timeout:
            tail = None
        assert tail == b"", "an idle keep-alive connection was not closed after the pause"
        # The idle clock starts once the gateway wrote the last answer, a little before the
        # client has read it all: at most the timeout plus the sweep's period after.
        waited = time.time() - idle_from
        assert waited < 6, waited
        s.close()


def test_unterminated_chunk_extension_is_refused_not_buffered(binary):
    # Found by fuzz_http_request (issue-12 campaign): Beast scans a chunk header's quoted
    # extension for its closing quote and waits, so the gateway buffered everything the client
    # sent after it (40 MB sent: RSS +39 MB) until WS_HANDSHAKE_TIMEOUT. Now a wait with more
    # than WS_MAX_HEADER_BYTES unconsumed is refused with 400.
    with Gateway(binary, **bounded_memory_env()) as gw:
        before = memory_kb(gw)
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        s.sendall(b"POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b'10;name="abc')
        # 16 KiB at a time until the answer comes (at most 20 MiB), so the client reads the 400
        # before its own sending makes the gateway's close a reset.
        sent, answer = 0, b""
        s.setblocking(False)
        while sent < (20 << 20) and b"\r\n\r\n" not in answer:
            try:
                sent += s.send(b"a" * 16384)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.01)
            try:
                answer += s.recv(4096)
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
        grown_mb = (memory_kb(gw) - before) / 1024
        s.close()
        print(f"  sent {sent >> 10} KiB after the chunk header; RSS +{grown_mb:.1f} MB")
        assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
        assert b"WS_MAX_HEADER_BYTES" in answer, answer
        assert grown_mb < 8, grown_mb
        assert gw.http("GET", "/health")[0] == 200


def test_answer_larger_than_the_queue_nobody_reads_is_a_slow_consumer(binary):
    web = tempfile.mkdtemp(prefix="odin-web-")
    try:
        with open(os.path.join(web, "big.txt"), "wb") as f:
            f.write(b"x" * (24 << 20))
        with Gateway(binary, WS_WEB_ROOT=web, WS_CLIENT_QUEUE_BYTES="1M") as gw:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", gw.port))
            s.sendall(b"GET /big.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            deadline = time.time() + 5
            while metric(gw, "ws_slow_consumer_disconnects_total") < 1:
                assert time.time() < deadline, "never closed as a slow consumer"
                time.sleep(0.05)
            # Dropped: reading now ends well before the whole answer.
            s.settimeout(5)
            got = 0
            try:
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
            except ConnectionResetError:
                pass
            assert got < (24 << 20), got
            s.close()
            assert gw.http("GET", "/health")[0] == 200
    finally:
        shutil.rmtree(web, ignore_errors=True)


def test_head_has_the_headers_of_get_and_no_body(binary):
    with Gateway(binary) as gw:
        for path in ("/sdk/odin-client.js", "/app.js", "/health", "/nope"):
            get_status, get_headers, get_body = gw.http("GET", path)
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
            # HEAD then GET /health on one connection: a body after the HEAD answer would be
            # read as the start of the second response.
            s.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() +
                      b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, rest = read_response(s)
            assert status == get_status, (path, status)
            assert int(headers["content-length"]) == len(get_body), (path, headers)
            assert headers["content-type"] == get_headers["Content-Type"]
            status, headers, rest = read_response(s, rest)
            assert status == 200, (path, status, rest[:80])
            s.close()


def test_process_wide_socket_cap(binary):
    with Gateway(binary, WS_MAX_SOCKETS=12, WS_MAX_CONNECTIONS=8) as gw:
        async def scenario():
            held = [await connect(gw) for _ in range(6)]  # WebSocket sockets count
            idle = []
            for _ in range(6):  # so do sockets that never send a request
                s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
                idle.append(s)
            time.sleep(0.2)
            refused = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
            refused.settimeout(5)
            data = b""
            try:
                while True:
                    chunk = refused.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            assert data.startswith(b"HTTP/1.1 503"), data
            refused.close()
            for s in idle:
                s.close()
            time.sleep(0.3)
            # Room again: an honest client is served.
            metrics = gw.http("GET", "/metrics")[2].decode()
            assert 'ws_connections_refused_total{reason="socket_limit"} 1' in metrics, metrics
            ws, _ = await connect(gw)
            await ws.close()
            for ws, _ in held:
                await ws.close()
        asyncio.run(scenario())


def test_request_limit_per_keep_alive_connection(binary):
    with Gateway(binary, WS_MAX_REQUESTS_PER_CONNECTION=3) as gw:
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 5)
        rest = b""
        for i in range(3):
            status, headers, rest = read_response(s, rest)
            assert status in (200, 503), status
            body_len = int(headers["content-length"])
            while len(rest) < body_len:
                rest += s.recv(65536)
            rest = rest[body_len:]
            assert (headers.get("connection", "").lower() == "close") == (i == 2), (i, headers)
        while True:  # nothing more: the connection ends after the third answer
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        assert rest == b"", rest[:80]
        s.close()


def test_publish_token_is_required_from_loopback_too(binary):
    body = {"channel": "T", "data": 1}
    with Gateway(binary, WS_PUBLISH_TOKEN="s3cret-token") as gw:
        status, headers, data = gw.http("POST", "/publish", body)
        assert status == 401 and b"bearer token" in data, (status, data)
        assert headers.get("WWW-Authenticate", "").startswith("Bearer"), headers
        for wrong in ("Bearer s3cret-toke", "Bearer s3cret-tokenX", "Bearer ", "s3cret-token",
                      "Basic s3cret-token"):
            status, _, _ = gw.http("POST", "/publish", body, {"Authorization": wrong})
            assert status == 401, (wrong, status)
        status, _, data = gw.http("POST", "/publish", body, {"Authorization": "Bearer s3cret-token"})
        assert status == 200 and json.loads(data) == {"published": 1}, (status, data)
    # Trusting loopback peers again is a choice an operator makes explicitly.
    with Gateway(binary, WS_PUBLISH_TOKEN="s3cret-token", WS_PUBLISH_REQUIRE_TOKEN="false") as gw:
        status, _, data = gw.http("POST", "/publish", body)
        assert status == 200, (status, data)


if __name__ == "__main__":
    run_tests([
        test_pipelined_requests_never_read_keep_rss_bounded,
        test_keep_alive_idle_after_a_pause_still_times_out,
        test_unterminated_chunk_extension_is_refused_not_buffered,
        test_answer_larger_than_the_queue_nobody_reads_is_a_slow_consumer,
        test_head_has_the_headers_of_get_and_no_body,
        test_process_wide_socket_cap,
        test_request_limit_per_keep_alive_connection,
        test_publish_token_is_required_from_loopback_too,
    ])
