"""NATS pieces of the integration tests: start a real nats-server (optionally with JetStream file
storage) on a free loopback port, and an independent client that speaks the NATS text protocol on
a plain socket (PUB/HPUB, MSG/HMSG, request/reply, JetStream publish with Msg-Id deduplication and
$JS.API calls), so the gateway's nats.c intake is checked against something that is not nats.c.
The client reconnects to the same URL after socket errors, which lets a test restart the server."""
import collections
import json
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

NATS_SERVER = os.environ.get("NATS_SERVER", "/usr/sbin/nats-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsError(Exception):
    pass


class NatsTimeout(NatsError):
    pass


class NatsNoResponders(NatsError):
    pass


class JetStreamError(NatsError):
    def __init__(self, error):
        self.error = error
        self.code = error.get("code")
        self.err_code = error.get("err_code")
        super().__init__(f"JetStream error {self.code}/{self.err_code}: {error.get('description')}")


class NatsServer:
    """One nats-server process, stopped by its own PID; restart() keeps the port and the store."""

    def __init__(self, jetstream=False, port=None, args=()):
        self.port = port or free_port()
        self.jetstream = jetstream
        self.args = list(args)
        self.store_dir = tempfile.mkdtemp(prefix="odin-nats-js-") if jetstream else None
        self.log = tempfile.NamedTemporaryFile(prefix="odin-nats-", suffix=".log", delete=False)
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout=10):
        cmd = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port)]
        if self.jetstream:
            cmd += ["-js", "-sd", self.store_dir]
        with open(self.log.name, "ab") as log:
            self.proc = subprocess.Popen(cmd + self.args, stdout=log, stderr=log)
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            try:
                if self._ready(deadline):
                    return
            except (OSError, NatsError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("nats-server did not start:\n" + self.output())

    def _ready(self, deadline):
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            data = b""
            while b"\r\n" not in data and time.time() < deadline:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                data += chunk
            if not data.startswith(b"INFO "):
                return False
        if not self.jetstream:
            return True
        client = NatsClient(self.url, reconnect=False)
        try:
            return "error" not in client.js_api("INFO", timeout=1)
        finally:
            client.close()

    def output(self):
        with open(self.log.name, "r", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=5):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode if self.proc else None

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        self.start()

    def cleanup(self):
        self.stop()
        if self.store_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)
        try:
            os.unlink(self.log.name)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


class Msg:
    """A received message; headers is a dict (a repeated name keeps its last value, all pairs are
    in header_list); status is the HMSG status code (e.g. 503 for no responders) or None."""

    def __init__(self, subject, reply, data, header_block=None):
        self.subject, self.reply, self.data = subject, reply, data
        self.headers, self.header_list, self.status, self.description = {}, [], None, ""
        if header_block is not None:
            lines = header_block.decode("utf-8", "replace").split("\r\n")
            first = lines[0].split(" ", 2)
            if first[0] != "NATS/1.0":
                raise NatsError(f"bad header block {header_block!r}")
            if len(first) > 1 and first[1]:
                self.status = int(first[1])
                self.description = first[2] if len(first) > 2 else ""
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    self.header_list.append((name, value.strip()))
                    self.headers[name] = value.strip()

    def json(self):
        return json.loads(self.data)

    def __repr__(self):
        return f"Msg({self.subject!r}, reply={self.reply!r}, headers={self.headers!r}, data={self.data!r})"


_LOST = object()  # put into a request's inbox queue when its connection drops


class Subscription:
    def __init__(self, client, sid, subject, queue_group=None, fail_on_disconnect=False):
        self.client, self.sid, self.subject, self.queue_group = client, sid, subject, queue_group
        self.fail_on_disconnect = fail_on_disconnect
        self.queue = queue.Queue()

    def next_msg(self, timeout=2):
        deadline = time.time() + timeout
        while True:
            try:
                item = self.queue.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty:
                raise NatsTimeout(f"no message on {self.subject!r} within {timeout}s") from None
            if item is _LOST:
                if self.fail_on_disconnect:
                    raise ConnectionError(f"connection lost while waiting on {self.subject!r}")
                continue
            return item

    def unsubscribe(self):
        self.client._unsubscribe(self)


class _Conn:
    def __init__(self, sock):
        self.sock, self.alive, self.pongs = sock, True, collections.deque()


def _header_block(headers):
    out = "NATS/1.0\r\n"
    for name, value in headers.items():
        name, value = str(name), str(value)
        if not name or any(c in name for c in ": \t\r\n") or "\r" in value or "\n" in value:
            raise ValueError(f"header not allowed by the NATS protocol: {name!r}: {value!r}")
        out += f"{name}: {value}\r\n"
    return (out + "\r\n").encode()


class NatsClient:
    """A blocking NATS client on a plain socket with one background reader thread."""

    def __init__(self, url=None, timeout=5, name="odin-test", reconnect=True):
        self.timeout, self.name, self.reconnect = timeout, name, reconnect
        self.url, self.server_info, self.errors, self.reconnects = None, None, [], 0
        self._lock = threading.RLock()
        self._conn, self._subs, self._next_sid = None, {}, 1
        if url:
            self.connect(url)

    def connect(self, url):
        with self._lock:
            self.url = url
            self._open()

    def _open(self):
        u = urllib.parse.urlsplit(self.url)
        sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 4222), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # SUB+PUB pairs, no Nagle wait
        try:
            buf = bytearray()
            line = self._read_line(sock, buf)
            if not line.startswith(b"INFO "):
                raise NatsError(f"expected INFO, got {line!r}")
            self.server_info = json.loads(line[5:])
            opts = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                    "protocol": 1, "name": self.name}
            sock.sendall(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
            while True:
                line = self._read_line(sock, buf)
                if line == b"PONG":
                    break
                if line.startswith(b"-ERR"):
                    raise NatsError(f"server refused CONNECT: {line.decode(errors='replace')}")
                if line == b"PING":
                    sock.sendall(b"PONG\r\n")
            conn = _Conn(sock)
            for sub in self._subs.values():  # subscriptions survive a reconnect
                if not sub.fail_on_disconnect:
                    sock.sendall(self._sub_line(sub))
        except BaseException:
            sock.close()
            raise
        self._conn = conn
        threading.Thread(target=self._read_loop, args=(conn, buf), daemon=True).start()
        return conn

    def _read_line(self, sock, buf):
        while b"\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection during the handshake")
            buf += chunk
        i = buf.index(b"\r\n")
        line = bytes(buf[:i])
        del buf[:i + 2]
        return line

    def _live(self):
        with self._lock:
            if self._conn is None:
                if self.url is None:
                    raise ConnectionError("not connected")
                if not self.reconnect:
                    raise ConnectionError(f"connection to {self.url} lost")
                self._open()
                self.reconnects += 1
            return self._conn

    def _send(self, data, pong=None):
        for attempt in range(2):
            with self._lock:
                conn = self._live()
                try:
                    if pong is not None:
                        conn.pongs.append(pong)
                    conn.sock.sendall(data)
                    return
                except OSError:
                    self._drop(conn)
                    if attempt or not self.reconnect or pong is not None:
                        raise

    def _read_loop(self, conn, buf):
        try:
            while conn.alive:
                try:
                    chunk = conn.sock.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                buf += chunk
                self._process(conn, buf)
        except (OSError, ValueError, NatsError) as e:
            self.errors.append(repr(e))
        finally:
            self._drop(conn)

    def _process(self, conn, buf):
        while True:
            i = buf.find(b"\r\n")
            if i < 0:
                return
            line = bytes(buf[:i])
            op = line.split(b" ", 1)[0].upper()
            if op in (b"MSG", b"HMSG"):
                args = line.decode().split()
                hlen = int(args[-2]) if op == b"HMSG" else 0
                total = int(args[-1])
                reply = args[3] if len(args) == (6 if op == b"HMSG" else 5) else None
                end = i + 2 + total
                if len(buf) < end + 2:
                    return
                body = bytes(buf[i + 2:end])
                del buf[:end + 2]
                msg = Msg(args[1], reply, body[hlen:], body[:hlen] if op == b"HMSG" else None)
                sub = self._subs.get(int(args[2]))
                if sub is not None:
                    sub.queue.put(msg)
                continue
            del buf[:i + 2]
            if op == b"PING":
                with self._lock:
                    if conn.alive:
                        conn.sock.sendall(b"PONG\r\n")
            elif op == b"PONG":
                if conn.pongs:
                    conn.pongs.popleft().set()
            elif op == b"-ERR":
                self.errors.append(line.decode(errors="replace"))

    def _drop(self, conn):
        with self._lock:
            if not conn.alive:
                return
            conn.alive = False
            if self._conn is conn:
                self._conn = None
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.sock.close()
            while conn.pongs:
                conn.pongs.popleft().set()  # waiters see the connection is gone
            for sub in self._subs.values():
                sub.queue.put(_LOST)

    def _sub_line(self, sub):
        group = f" {sub.queue_group}" if sub.queue_group else ""
        return f"SUB {sub.subject}{group} {sub.sid}\r\n".encode()

    def subscribe(self, subject, queue_group=None, _fail_on_disconnect=False):
        with self._lock:
            sub = Subscription(self, self._next_sid, subject, queue_group, _fail_on_disconnect)
            self._next_sid += 1
            self._subs[sub.sid] = sub
            try:
                self._send(self._sub_line(sub))
            except BaseException:
                del self._subs[sub.sid]
                raise
            return sub

    def _unsubscribe(self, sub):
        with self._lock:
            if self._subs.pop(sub.sid, None) is not None and self._conn is not None:
                try:
                    self._send(f"UNSUB {sub.sid}\r\n".encode())
                except OSError:
                    pass

    def publish(self, subject, payload=b"", headers=None, reply=None):
        if isinstance(payload, str):
            payload = payload.encode()
        reply_part = f" {reply}" if reply else ""
        if headers:
            hdr = _header_block(headers)
            head = f"HPUB {subject}{reply_part} {len(hdr)} {len(hdr) + len(payload)}\r\n".encode()
            self._send(head + hdr + payload + b"\r\n")
        else:
            self._send(f"PUB {subject}{reply_part} {len(payload)}\r\n".encode() + payload + b"\r\n")

    def flush(self, timeout=5):
        pong = threading.Event()
        with self._lock:
            self._send(b"PING\r\n", pong)
            conn = self._conn
        if not pong.wait(timeout):
            raise NatsTimeout(f"no PONG within {timeout}s")
        if conn is None or not conn.alive:
            raise ConnectionError("connection lost during flush")

    def request(self, subject, payload=b"", headers=None, timeout=2):
        inbox = "_INBOX." + os.urandom(12).hex()
        sub = self.subscribe(inbox, _fail_on_disconnect=True)
        try:
            self.publish(subject, payload, headers, reply=inbox)
            try:
                msg = sub.next_msg(timeout)
            except NatsTimeout:
                raise NatsTimeout(f"no reply to {subject!r} within {timeout}s") from None
        finally:
            self._unsubscribe(sub)
        if msg.status == 503 and not msg.data:
            raise NatsNoResponders(f"no responders for {subject!r}")
        return msg

    def js_api(self, subject_suffix, body=None, timeout=2, check=False):
        """Returns the parsed $JS.API reply (with its "error" member, unless check=True raises)."""
        data = json.dumps(body).encode() if body is not None else b""
        reply = json.loads(self.request("$JS.API." + subject_suffix, data, timeout=timeout).data)
        if check and "error" in reply:
            raise JetStreamError(reply["error"])
        return reply

    def js_publish(self, subject, payload, msg_id=None, headers=None, timeout=2, retry_until=None):
        """Publishes to a stream and returns the PubAck dict. With retry_until (a time.time()
        deadline) socket errors, timeouts, no responders and 503 errors are retried every 100 ms,
        reconnecting as needed; msg_id keeps the retries from being stored twice."""
        hdrs = dict(headers or {})
        if msg_id is not None:
            hdrs["Nats-Msg-Id"] = str(msg_id)
        while True:
            wait = timeout if retry_until is None else max(0.1, min(timeout, retry_until - time.time()))
            try:
                ack = json.loads(self.request(subject, payload, hdrs or None, wait).data)
                if "error" in ack:
                    raise JetStreamError(ack["error"])
                return ack
            except (OSError, NatsTimeout, NatsNoResponders, JetStreamError) as e:
                if isinstance(e, JetStreamError) and e.code != 503:
                    raise
                if retry_until is None or time.time() + 0.1 >= retry_until:
                    raise
                time.sleep(0.1)

    def close(self):
        with self._lock:
            self.url = None
            if self._conn is not None:
                self._drop(self._conn)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NatsProxy:
    """A TCP proxy between the gateway and nats-server. While `dropping` is set it drops the
    gateway's acks (PUB/HPUB to $JS.ACK. subjects); with `sub_delay` > 0 it holds the gateway's
    bytes for that many seconds when they contain a SUB (and, the stream being ordered, all that
    follows it). Everything else passes unchanged."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_port()
        self.dropping = threading.Event()
        self.dropped = 0
        self.sub_delay = 0.0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(8)
        self.stop = threading.Event()
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def _accept(self):
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(client, server, bytearray()),
                             daemon=True).start()

    def _filter(self, buf):
        """Complete protocol operations out of `buf`, acks left out while dropping."""
        out = bytearray()
        while True:
            end = buf.find(b"\r\n")
            if end < 0:
                return bytes(out)
            line = bytes(buf[:end])
            words = line.split()
            op = words[0].upper() if words else b""
            size = end + 2
            if op in (b"PUB", b"HPUB"):
                size += int(words[-1]) + 2
                if len(buf) < size:
                    return bytes(out)
                if self.dropping.is_set() and words[1].startswith(b"$JS.ACK."):
                    self.dropped += 1
                    del buf[:size]
                    continue
            if op == b"SUB" and self.sub_delay > 0:
                time.sleep(self.sub_delay)
            out += buf[:size]
            del buf[:size]

    def _pump(self, source, sink, parse):
        try:
            while not self.stop.is_set():
                readable, _, _ = select.select([source], [], [], 0.2)
                if not readable:
                    continue
                data = source.recv(65536)
                if not data:
                    break
                if parse is not None:
                    parse += data
                    data = self._filter(parse)
                if data:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.listener.close()
        for s in self.sockets:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
