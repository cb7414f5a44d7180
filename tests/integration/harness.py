"""Shared pieces of the integration tests: start the real odin-ws binary on a free loopback
port, talk to it with python3-websockets (a real third-party client) and with a raw-socket client
for the framing rules a library would hide, and a tiny runner that prints "N passed, M failed"."""
import argparse
import asyncio
import base64
import http.client
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import traceback

import websockets


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Stops a process this test started (by its Popen, never by name): `sig`, then SIGKILL after
    `timeout` seconds. Returns its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def es256_keys(directory):
    """Two P-256 keys and a public-key file in `directory` for WS_JWT_PUBLIC_KEY: returns
    (keys, path, install), where install(key) replaces the file atomically (then SIGHUP the
    gateway to rotate)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]
    path = os.path.join(directory, "key.pem")

    def install(key):
        with open(path + ".new", "wb") as f:
            f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
        os.replace(path + ".new", path)
    return keys, path, install


class Gateway:
    """One gateway process, stopped by PID when the test is done."""

    def __init__(self, binary, wait_ready=None, **env):
        """Starts the gateway and waits until it answers /health. With NATS (core or JetStream)
        it waits for 200 (`broker.ready`: the instance is subscribed or reads the stream, so what
        a test publishes from now on reaches it), unless wait_ready=False."""
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update({"WS_ADDR": f"127.0.0.1:{self.port}", "LOG_LEVEL": "warn", "LOG_FORMAT": "text"})
        self.env.update({k: str(v) for k, v in env.items()})
        # TLS (WS_TLS_CERT set): the test's own self-signed certificate is the only trust anchor.
        self.ssl = None
        if self.env.get("WS_TLS_CERT"):
            self.ssl = ssl.create_default_context(cafile=self.env["WS_TLS_CERT"])
        self.log = tempfile.NamedTemporaryFile(prefix="odin-ws-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([binary], env=self.env, stdout=self.log, stderr=self.log)
        if wait_ready is None:
            wait_ready = (self.env.get("WS_BROKER", "").lower() == "jetstream"
                          or bool(self.env.get("NATS_URL")))
        deadline = time.time() + (20 if wait_ready else 10)
        while time.time() < deadline:
            try:
                status, _, _ = self.http("GET", "/health")
                if status == 200 or (status == 503 and not wait_ready):
                    return  # answering; 503 = unhealthy by configuration
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("gateway did not start:\n" + self.output())

    @property
    def ws_url(self):
        return f"{'wss' if self.ssl else 'ws'}://127.0.0.1:{self.port}/ws"

    def connection(self):
        if self.ssl:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=5, context=self.ssl)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def http(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        conn = conn or self.connection()
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        finally:
            if own:
                conn.close()

    def json(self, path):
        status, _, data = self.http("GET", path)
        assert status == 200, (path, status, data)
        return json.loads(data)

    def publish(self, messages):
        status, _, data = self.http("POST", "/publish", messages, {"Content-Type": "application/json"})
        assert status == 200, (status, data)
        return json.loads(data)["published"]

    def output(self):
        with open(self.log.name, "r", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=10):
        return stop_process(self.proc, sig, timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


def memory_kb(gw, field="VmRSS"):
    """A field of the gateway's /proc status in KiB: VmRSS (resident now), VmHWM (its peak)."""
    with open(f"/proc/{gw.proc.pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{gw.proc.pid}/status")


def bounded_memory_env():
    """For a test that asserts the gateway's RSS: under ASan, freed memory waits in a quarantine
    (256 MB by default) instead of being reused, which a memory bound cannot tell from a leak.
    A small quarantine keeps what the test measures about the gateway. No effect otherwise."""
    return {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "")
            + ":quarantine_size_mb=4:thread_local_quarantine_size_kb=64"}


def under_sanitizer(gw):
    """True when the gateway runs an ASan or TSan build: their allocators never give memory back
    to the system, so a test cannot see RSS fall there."""
    with open(f"/proc/{gw.proc.pid}/maps") as f:
        return any("libasan" in line or "libtsan" in line for line in f)


def metric(gw, name):
    """Sum of a Prometheus metric's samples whose name and labels start with `name`."""
    _, _, body = gw.http("GET", "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# `data` texts that must reach clients (and brokers) exactly as POST /publish got them: a price's
# trailing zero, an exponent, a \u escape, an escaped slash, and all of them nested.
EXACT_DATA = ['50000.10', '1e-7', '"caf\\u00e9"', '"\\/"',
              '{"p":50000.10, "q":[1e-7], "s":"caf\\u00e9\\/"}']


def exact_publish_body(channel):
    """A POST /publish body (text, not re-serialised by json.dumps) of one item per EXACT_DATA."""
    return "[" + ",".join(f'{{"channel":"{channel}","data":{d}}}' for d in EXACT_DATA) + "]"


def data_text(raw):
    """The raw text of a data message's `data` (the envelope's last member)."""
    return raw[raw.index('"data":', raw.index('"channel":')) + len('"data":'):-1]


async def recv_json(ws, timeout=3):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws, predicate, timeout=3):
    """Receives messages until one matches; returns (match, messages before it)."""
    seen = []
    deadline = time.time() + timeout
    while True:
        msg = await recv_json(ws, max(0.05, deadline - time.time()))
        if predicate(msg):
            return msg, seen
        seen.append(msg)


async def connect(gw, query="", **kw):
    if gw.ssl and "ssl" not in kw:
        kw["ssl"] = gw.ssl
    ws = await websockets.connect(gw.ws_url + query, max_size=None, **kw)
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


class RawClient:
    """A WebSocket client on a plain socket: sends any frame, reads frames as they are."""

    def __init__(self, port, path="/ws", rcvbuf=None, headers=None, upgrade=True, source=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:  # another loopback address, e.g. 127.0.0.7, to act as another client host
            self.sock.bind((source, 0))
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        if upgrade:
            key = base64.b64encode(os.urandom(16)).decode()
            extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
            self.send_raw(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          f"Sec-WebSocket-Version: 13\r\n{extra}\r\n".encode())

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_http_head(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed before the HTTP response")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        return status, headers

    @staticmethod
    def frame(opcode, payload=b"", fin=True, masked=True, rsv=0):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        mask_bit = 0x80 if masked else 0
        if n < 126:
            head = bytes([b0, mask_bit | n])
        elif n <= 0xFFFF:
            head = bytes([b0, mask_bit | 126]) + struct.pack(">H", n)
        else:
            head = bytes([b0, mask_bit | 127]) + struct.pack(">Q", n)
        if not masked:
            return head + payload
        mask = os.urandom(4)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def send_frame(self, opcode, payload=b"", **kw):
        self.send_raw(self.frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(0x1, text)

    def read_frame(self, timeout=5):
        """Returns (opcode, payload), or None at EOF."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                n = self.buf[1] & 0x7F
                h = 2
                if n == 126 and len(self.buf) >= 4:
                    n, h = struct.unpack(">H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, h = struct.unpack(">Q", self.buf[2:10])[0], 10
                if (self.buf[1] & 0x7F) < 126 or h > 2:
                    if len(self.buf) >= h + n:
                        op = self.buf[0] & 0x0F
                        payload = self.buf[h:h + n]
                        self.buf = self.buf[h + n:]
                        return op, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def read_until_close(self, timeout=5):
        """Reads frames until a close frame (returns its code and the frames before) or EOF."""
        frames = []
        while True:
            f = self.read_frame(timeout)
            if f is None:
                return None, frames
            if f[0] == 0x8:
                code = struct.unpack(">H", f[1][:2])[0] if len(f[1]) >= 2 else 1005
                return code, frames
            frames.append(f)

    def close(self):
        self.sock.close()


def close_code_of(exc):
    """The close code a websockets ConnectionClosed exception carries (10.x API)."""
    rcvd = getattr(exc, "rcvd", None)
    return rcvd.code if rcvd is not None else getattr(exc, "code", None)


def run_tests(tests):
    """Runs test functions (sync or async) taking the binary path; prints the summary."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("-k", default="")
    args = parser.parse_args()
    passed = failed = 0
    for test in tests:
        if args.k and args.k not in test.__name__:
            continue
        start = time.time()
        try:
            result = test(args.binary)
            if asyncio.iscoroutine(result):
                asyncio.run(asyncio.wait_for(result, 60))
            passed += 1
            print(f"PASS {test.__name__} ({time.time() - start:.1f}s)", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {test.__name__} ({time.time() - start:.1f}s)", flush=True)
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
