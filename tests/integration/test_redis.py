"""Redis pub/sub as the broker (WS_BROKER=redis) against a real redis-server (Debian's) on a free
loopback port, with messages published by an independent client speaking RESP on a plain socket
(not hiredis): two gateway instances with clients spread over both, a steady stream from PUBLISH
and POST /publish (every client gets every message of its channels once, in order, seq
contiguous; the object form's type arrives as `type`), bad broker input dropped and counted, a
Redis restart in the middle (health goes disconnected then connected again, delivery continues,
and what is published while the gateway is not subscribed is lost: Redis pub/sub keeps nothing),
a Redis that goes silent (noticed by PING), the CPU pause, resume (only on the instance that ran
the session: no positions), the intake rate cap, AUTH, and the settings refused at start-up (exit 2)."""
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from harness import (EXACT_DATA, Gateway, connect, data_text, exact_publish_body, metric, free_port,
                     recv_json, run_tests)

REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")


class RedisError(Exception):
    pass


class RedisClient:
    """A RESP2 client on a plain socket: commands, and replies read one at a time."""

    def __init__(self, port, password=None, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        if password:
            self.command("AUTH", password)

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("Redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("Redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self, timeout=5):
        self.sock.settimeout(timeout)
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exactly(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply(timeout) for _ in range(n)]
        raise RedisError(f"unexpected reply {line!r}")

    def command(self, *args):
        self.send(*args)
        return self.reply()

    def publish(self, channel, payload):
        """PUBLISH; returns how many subscriptions (a gateway's PSUBSCRIBE counts once) got it."""
        if not isinstance(payload, bytes):
            payload = payload.encode()
        return self.command("PUBLISH", channel, payload)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RedisServer:
    """One redis-server on a free loopback port, no persistence, stopped by its own PID;
    restart() keeps the port."""

    def __init__(self, port=None, password=None):
        self.port = port or free_port()
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="odin-redis-")
        self.log = os.path.join(self.dir, "redis.log")
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://{':' + self.password + '@' if self.password else ''}127.0.0.1:{self.port}"

    def start(self, timeout=10):
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", self.dir, "--logfile", self.log]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            try:
                with RedisClient(self.port, self.password, timeout=1) as c:
                    if c.command("PING") == "PONG":
                        return
            except (OSError, EOFError, RedisError):
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start:\n" + self.output())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, down_seconds=0.0):
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def output(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_gateway(binary, redis, **env):
    env.setdefault("LOG_LEVEL", "info")
    return Gateway(binary, WS_BROKER="redis", REDIS_URL=redis.url, **env)


def broker_health(gw):
    status, _, body = gw.http("GET", "/health")
    return status, json.loads(body)["checks"]["broker"]


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


async def subscribed(gw, channels):
    ws, _ = await connect(gw, "?channels=" + ",".join(channels))
    ack = await recv_json(ws)
    assert ack["type"] == "subscribed", ack
    return ws


async def drain(ws, into, seconds):
    """Appends every data message arriving within `seconds` to `into`."""
    deadline = time.time() + seconds
    while True:
        left = deadline - time.time()
        if left <= 0:
            return
        try:
            raw = await asyncio.wait_for(ws.recv(), left)
        except asyncio.TimeoutError:
            return
        msg = json.loads(raw)
        if "seq" in msg:
            into.append(msg)


async def collect_until(clients, done, timeout):
    """Receives on every client until done(received lists) holds."""
    received = [[] for _ in clients]
    deadline = time.time() + timeout
    while not done(received):
        assert time.time() < deadline, f"received {[len(r) for r in received]}"
        for ws, got in zip(clients, received):
            await drain(ws, got, 0.01)
    return received


def assert_in_order(got, expected, label):
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(1, len(seqs) + 1)), f"{label}: seq not contiguous from 1: {seqs[:30]}"
    keys = [(m["channel"], m["type"], json.dumps(m["data"], sort_keys=True)) for m in got]
    want = [(c, t, json.dumps(d, sort_keys=True)) for c, t, d in expected]
    assert keys == want, (f"{label}: {len(keys)} received, {len(want)} expected; first difference at "
                          f"{next((i for i, (a, b) in enumerate(zip(keys, want)) if a != b), min(len(keys), len(want)))}")


async def test_two_instances_steady_stream_from_publish_and_post(binary):
    total = 300
    with RedisServer() as redis, redis_gateway(binary, redis) as a, redis_gateway(binary, redis) as b:
        for gw in (a, b):
            status, broker = broker_health(gw)
            assert status == 200 and broker == {"connected": True, "ready": True, "type": "redis", "paused": False}, broker
        plan = [(a, ["R1"]), (b, ["R1"]), (a, ["R2"]), (b, ["R2"]), (a, ["R1", "R2"]), (b, ["R1", "R2"])]
        clients = [await subscribed(gw, chans) for gw, chans in plan]
        tap = RedisClient(redis.port)  # an independent subscriber: sees what POST /publish sends
        assert tap.command("SUBSCRIBE", "odin.token.R1", "odin.token.R2")[0] == b"subscribe"
        tap.reply()
        expected = []  # (channel, type, data) in publish order
        errors = []

        def publish():
            try:
                with RedisClient(redis.port) as pub:
                    for i in range(total):
                        channel = "R1" if i % 3 else "R2"
                        if i % 5 == 0:  # through the gateway: answered after Redis took it
                            assert a.publish([{"channel": channel, "type": "post", "data": {"i": i}}]) == 1
                            expected.append((channel, "post", {"i": i}))
                        elif i % 5 == 1:  # object form: its type travels with it
                            got = pub.publish("odin.token." + channel,
                                              json.dumps({"data": {"i": i, "p": 1.5}, "type": "tick"}))
                            assert got == 3, got  # both gateways' pattern subscriptions and the tap
                            expected.append((channel, "tick", {"i": i, "p": 1.5}))
                        elif i % 5 == 2:  # text that is not JSON
                            assert pub.publish("odin.token." + channel, f"text {i}") == 3
                            expected.append((channel, "message", f"text {i}"))
                        else:  # any other JSON is the data of a "message"
                            assert pub.publish("odin.token." + channel,
                                               json.dumps({"i": i, "type": "x"})) == 3
                            expected.append((channel, "message", {"i": i, "type": "x"}))
                        time.sleep(0.002)
            except Exception as e:  # reported below
                errors.append(e)

        publisher = threading.Thread(target=publish)
        start = time.time()
        publisher.start()

        def complete(received):
            if publisher.is_alive():
                return False
            return all(len(r) >= len([e for e in expected if e[0] in chans])
                       for r, (_, chans) in zip(received, plan))

        received = await collect_until(clients, complete, 40)
        elapsed = time.time() - start
        publisher.join(5)
        assert not errors, errors
        assert len(expected) == total
        for ws, got, (gw, chans) in zip(clients, received, plan):
            await drain(ws, got, 0.2)  # nothing more may come
            assert_in_order(got, [e for e in expected if e[0] in chans],
                            f"client on {'a' if gw is a else 'b'} {chans}")
        # POST /publish sent the object form: the tap sees type and data as given.
        posts = []
        while len(posts) < total // 5:
            kind, channel, payload = tap.reply(5)
            if payload.startswith(b'{"type":"post"'):
                posts.append(json.loads(payload))
        assert posts == [{"type": "post", "data": {"i": i}} for i in range(0, total, 5)], posts[:3]
        for gw in (a, b):
            assert metric(gw, "ws_broker_messages_received_total") == total
            assert metric(gw, "ws_broker_messages_delivered_total") == total
        assert metric(a, "ws_publish_messages_total") == total // 5
        print(f"  {total} messages to 6 clients on 2 instances in {elapsed:.1f} s")
        tap.close()
        for ws in clients:
            await ws.close()


async def test_bad_broker_input_is_counted_and_never_delivered(binary):
    with RedisServer() as redis, redis_gateway(binary, redis, WS_MAX_PAYLOAD_BYTES=1024) as gw, \
            RedisClient(redis.port) as pub:
        ws = await subscribed(gw, ["BAD"])
        pub.publish("odin.token.a/b", "{}")                               # not a channel name
        pub.publish("odin.token." + "x" * 200, "{}")                       # name too long
        pub.publish("odin.token.BAD", '{"x":"' + "y" * 2000 + '"}')        # over 1024 bytes
        pub.publish("odin.token.BAD", b'{"x":"\xff\xfe"}')                  # not UTF-8
        pub.publish("odin.token.BAD", '{"type":"","data":1}')              # empty type
        pub.publish("odin.token.BAD", json.dumps({"type": "t" * 200, "data": 1}))  # type too long
        pub.publish("odin.token.BAD", '{"type":"good","data":{"ok":true}}')
        got = []
        await drain(ws, got, 1.0)
        assert [(m["seq"], m["type"], m["data"]) for m in got] == [(1, "good", {"ok": True})], got
        _, _, body = gw.http("GET", "/metrics")
        text = body.decode()
        for reason, count in (("bad_subject", 2), ("oversized", 1), ("invalid_utf8", 1), ("bad_type", 2)):
            assert f'ws_broker_messages_rejected_total{{reason="{reason}"}} {count}' in text, (reason, text)
        assert metric(gw, "ws_broker_messages_received_total") == 7
        assert "dropped 1 message(s) from Redis: invalid_utf8" in gw.output()
        assert gw.proc.poll() is None
        await ws.close()


async def test_redis_restart_health_and_delivery_and_what_is_lost(binary):
    with RedisServer() as redis, redis_gateway(binary, redis) as a, redis_gateway(binary, redis) as b:
        clients = [await subscribed(gw, ["UP"]) for gw in (a, b, a, b)]
        received = [[] for _ in clients]
        delivered = []  # data values every client must get, in order
        with RedisClient(redis.port) as pub:
            for i in range(50):
                assert pub.publish("odin.token.UP", json.dumps(i)) == 2
                delivered.append(i)
        for ws, got in zip(clients, received):
            await drain(ws, got, 0.3)

        redis.stop()
        for gw in (a, b):  # the closed socket is noticed at once
            wait_for(lambda: broker_health(gw)[1]["connected"] is False, 5, "disconnected")
            status, body = gw.http("POST", "/publish", [{"channel": "UP", "data": 1}])[0::2]
            assert status == 503 and b"Redis is not connected" in body, (status, body)
            assert broker_health(gw)[0] == 503
        # Down for 2 s: the gateways retry with backoff (0.1, 0.2, 0.4, 0.8, 1.6 s ...), so the
        # first messages after the restart meet nobody subscribed: Redis drops them.
        time.sleep(2.0)
        redis.start()
        lost, maybe = [], []
        with RedisClient(redis.port) as pub:
            i = 1000
            while not all(broker_health(gw)[1]["connected"] for gw in (a, b)):
                n = pub.publish("odin.token.UP", json.dumps(i))
                (lost if n == 0 else maybe).append((i, n))
                i += 1
                time.sleep(0.01)
            assert lost, "every message after the restart found a subscriber: no loss to show"
            for i in range(100, 150):
                assert pub.publish("odin.token.UP", json.dumps(i)) == 2
                delivered.append(i)
        for ws, got in zip(clients, received):
            await drain(ws, got, 1.0)
        lost_values = {i for i, _ in lost}
        publish_order = delivered[:50] + sorted([i for i, _ in lost + maybe]) + delivered[50:]
        for n, got in enumerate(received):
            data = [m["data"] for m in got]
            seqs = [m["seq"] for m in got]
            assert seqs == list(range(1, len(seqs) + 1)), f"client {n}: seq {seqs}"
            assert not lost_values & set(data), f"client {n} got a message Redis dropped"
            assert [d for d in data if d not in {i for i, _ in maybe}] == delivered, f"client {n}: {data}"
            assert data == [i for i in publish_order if i in set(data)], f"client {n} out of order: {data}"
        # A message that met n subscribed instances reached the clients of exactly n of them
        # (clients 0 and 2 are on a, 1 and 3 on b).
        for i, n in maybe:
            on = [any(m["data"] == i for m in got) for got in received]
            assert on[0] == on[2] and on[1] == on[3] and on[0] + on[1] == n, (i, n, on)
        for gw in (a, b):
            out = gw.output()
            assert out.count("Redis disconnected") == 1 and out.count("Redis reconnected") == 1, out
            assert metric(gw, "ws_broker_disconnects_total") == 1
            assert metric(gw, "ws_broker_reconnects_total") == 1
            assert broker_health(gw) == (200, {"connected": True, "ready": True, "type": "redis", "paused": False})
        # POST /publish works again on the new connection.
        assert a.publish([{"channel": "UP", "type": "after", "data": 7}]) == 1
        for ws in clients:
            after = []
            await drain(ws, after, 0.5)
            assert [(m["type"], m["data"]) for m in after] == [("after", 7)], after
        print(f"  {len(lost)} message(s) published while no gateway was subscribed: lost, as Redis "
              f"pub/sub does; {len(maybe)} reached one instance")
        for ws in clients:
            await ws.close()


async def test_silent_redis_is_noticed_by_ping(binary):
    # A Redis that stops answering without closing the socket (SIGSTOP: the kernel keeps the
    # connection open) is noticed by the intake's PING: quiet 5 s, then 5 s without an answer.
    with RedisServer() as redis, redis_gateway(binary, redis) as gw:
        ws = await subscribed(gw, ["STILL"])
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            start = time.time()
            wait_for(lambda: broker_health(gw)[1]["connected"] is False, 16, "the silent Redis noticed")
            noticed = time.time() - start
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        assert 9.5 <= noticed <= 12, noticed
        wait_for(lambda: broker_health(gw)[0] == 200, 15, "reconnected")
        with RedisClient(redis.port) as pub:
            assert pub.publish("odin.token.STILL", "1") == 1
        got = []
        await drain(ws, got, 1.0)
        assert [(m["seq"], m["data"]) for m in got] == [(1, 1)], got
        out = gw.output()
        assert "(no answer to PING for 10 s): reconnecting" in out and "Redis reconnected" in out, out
        print(f"  noticed after {noticed:.1f} s")
        await ws.close()


async def test_cpu_pause_then_resume_delivers_what_redis_held(binary):
    # A tiny CPU budget (5% of a core, paused above half of it): a steady stream pushes the
    # gateway over the line and intake pauses; what is published meanwhile waits in Redis' output
    # buffer for the connection (well under its limit here), and arrives once CPU is back down.
    with RedisServer() as redis, \
            redis_gateway(binary, redis, WS_CPU_LIMIT="0.05", WS_CPU_PAUSE_THRESHOLD="50",
                          WS_CPU_REJECT_THRESHOLD="100") as gw:
        clients = [await subscribed(gw, ["HOT"]) for _ in range(4)]
        state = {"published": 0, "done": False, "health": None, "error": None}

        def publish():
            try:
                with RedisClient(redis.port) as pub:
                    deadline = time.time() + 25
                    while time.time() < deadline and metric(gw, "ws_broker_pauses_total") < 1:
                        for _ in range(100):
                            pub.send("PUBLISH", "odin.token.HOT", json.dumps(state["published"]))
                            state["published"] += 1
                        for _ in range(100):
                            pub.reply()
                        time.sleep(0.02)
                    state["health"] = gw.json("/health")
                    for _ in range(500):  # while paused: these wait in Redis
                        assert pub.publish("odin.token.HOT", json.dumps(state["published"])) == 1
                        state["published"] += 1
            except Exception as e:  # reported below
                state["error"] = e
            state["done"] = True

        publisher = threading.Thread(target=publish)
        publisher.start()
        # Generous: with 5% of a core the gateway pauses again while it delivers what Redis held,
        # so on a loaded machine (CI, a sanitizer build) the backlog arrives in slow steps.
        received = await collect_until(
            clients, lambda r: state["done"] and all(len(x) >= state["published"] for x in r), 120)
        publisher.join(5)
        assert state["error"] is None, state["error"]
        for got in received:
            assert [m["seq"] for m in got] == list(range(1, state["published"] + 1))
            assert [m["data"] for m in got] == list(range(state["published"]))
        assert state["health"]["status"] == "degraded" and state["health"]["checks"]["broker"]["paused"], state
        out = gw.output()
        assert "broker intake paused" in out and "broker intake resumed" in out, out
        assert "Redis disconnected" not in out, out
        print(f"  {state['published']} messages, {int(metric(gw, 'ws_broker_pauses_total'))} pause(s)")
        for ws in clients:
            await ws.close()


async def test_resume_only_on_the_instance_that_ran_the_session(binary):
    # No stream positions in Redis mode, so no restore on another instance: there, a resume with
    # last_pos and channels fails; on the instance that ran the session, the v1 resume replays
    # from the connection's ring.
    with RedisServer() as redis, redis_gateway(binary, redis) as a, redis_gateway(binary, redis) as b, \
            RedisClient(redis.port) as pub:
        ws, welcome = await connect(a, "?channels=RS")
        session = welcome["data"]["session"]
        ack = await recv_json(ws)
        assert ack == {"type": "subscribed", "data": {"channels": ["RS"]}}, ack  # no "pos"
        for i in range(3):
            assert pub.publish("odin.token.RS", json.dumps(i)) == 2
        got = []
        await drain(ws, got, 0.5)
        assert [(m["seq"], m["data"]) for m in got] == [(1, 0), (2, 1), (3, 2)], got
        assert all("pos" not in m for m in got), got
        await ws.close()
        for i in range(3, 5):
            assert pub.publish("odin.token.RS", json.dumps(i)) == 2
        other, _ = await connect(b)
        await other.send(json.dumps({"type": "resume", "id": 1, "data": {
            "session": session, "last_seq": 3, "last_pos": 3, "channels": ["RS"]}}))
        err = await recv_json(other)
        assert err["type"] == "error" and err["data"]["code"] == "resume_failed", err
        await other.close()
        again, _ = await connect(a)
        await again.send(json.dumps({"type": "resume", "data": {"session": session, "last_seq": 3}}))
        replayed = [await recv_json(again) for _ in range(3)]
        assert [(m.get("seq"), m.get("data")) for m in replayed[:2]] == [(4, 3), (5, 4)], replayed
        assert replayed[2] == {"type": "resumed", "data": {"session": session, "replayed": 2}}, replayed
        await again.close()


async def test_intake_rate_cap_holds_near_the_limit(binary):
    total = 400
    with RedisServer() as redis, redis_gateway(binary, redis, WS_MAX_NATS_RATE=100) as gw, \
            RedisClient(redis.port) as pub:
        ws = await subscribed(gw, ["RATE"])
        for i in range(total):
            pub.send("PUBLISH", "odin.token.RATE", json.dumps(i))  # pipelined
        for _ in range(total):
            assert pub.reply() == 1
        start = time.time()
        times, data = [], []
        while len(times) < total:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if "seq" in msg:
                times.append(time.time() - start)
                data.append(msg["data"])
        assert data == list(range(total))
        rate = (total - 50) / (times[-1] - times[49])  # after the first tenth of a second's burst
        print(f"  {total} messages in {times[-1]:.2f} s; steady rate {rate:.1f}/s")
        assert 85 <= rate <= 115, rate
        await ws.close()


async def test_auth_and_not_up_yet(binary):
    port = free_port()
    url = f"redis://:Pa55word@127.0.0.1:{port}/3"
    with Gateway(binary, WS_BROKER="redis", REDIS_URL=url, LOG_LEVEL="info") as gw:
        status, broker = broker_health(gw)
        assert status == 503 and broker["connected"] is False, broker
        with RedisServer(port=port, password="Pa55word") as redis:
            wait_for(lambda: broker_health(gw)[0] == 200, 10, "connected")
            ws = await subscribed(gw, ["LATE"])
            with RedisClient(redis.port, "Pa55word") as pub:
                assert pub.publish("odin.token.LATE", '{"type":"t","data":1}') == 1
            got = []
            await drain(ws, got, 1.0)
            assert [(m["type"], m["data"]) for m in got] == [("t", 1)], got
            assert gw.publish([{"channel": "LATE", "data": 2}]) == 1
            await ws.close()
        out = gw.output()
        assert "not usable yet" in out and "Redis connected to redis://:***@127.0.0.1" in out, out
        assert "Pa55word" not in out, out
    # A wrong password: never connected, the reason logged, the password never.
    with RedisServer(password="right-one") as redis, \
            Gateway(binary, WS_BROKER="redis", REDIS_URL=f"redis://:wrong-one@127.0.0.1:{redis.port}",
                    LOG_LEVEL="info") as gw:
        status, broker = broker_health(gw)
        assert status == 503 and broker["connected"] is False
        out = gw.output()
        assert "AUTH refused" in out and "wrong-one" not in out, out


def test_settings_refused_at_start(binary):
    def run(**env):
        full = dict(os.environ, WS_ADDR="127.0.0.1:0", LOG_FORMAT="text", **env)
        return subprocess.run([binary], env=full, capture_output=True, text=True, timeout=10)

    r = run(WS_BROKER="redis")
    assert r.returncode == 2 and "WS_BROKER=redis needs REDIS_URL" in r.stderr, r
    r = run(WS_BROKER="redis", REDIS_URL="redis://:hunter22@127.0.0.1:99999")
    assert r.returncode == 2 and r.stderr.startswith("odin-ws: REDIS_URL: expected redis://"), r
    assert "hunter22" not in r.stderr + r.stdout, r
    r = run(WS_BROKER="redis", REDIS_URL="redis://127.0.0.1", WS_HISTORY_SIZE="64")
    assert r.returncode == 2 and "WS_HISTORY_SIZE" in r.stderr and "jetstream" in r.stderr, r
    r = run(WS_BROKER="redis", REDIS_URL="redis://127.0.0.1", WS_HISTORY_MAX_AGE="1m")
    assert r.returncode == 2 and "WS_HISTORY_MAX_AGE" in r.stderr, r
    r = run(WS_BROKER="kafka")
    assert r.returncode == 2 and "redis" in r.stderr, r


async def test_jetstream_settings_are_noticed_as_ignored(binary):
    with RedisServer() as redis, redis_gateway(binary, redis, JS_STREAM_NAME="PRICES",
                                               JS_STREAM_MAX_AGE="1m") as gw:
        assert broker_health(gw)[0] == 200
        assert "WS_BROKER=redis: JS_STREAM_NAME, JS_STREAM_MAX_AGE ignored" in gw.output()


async def test_publish_data_reaches_redis_and_clients_byte_for_byte(binary):
    big = '"' + "z" * ((1 << 20) - 2) + '"'  # 1 MiB, as large as NATS carries by default
    with RedisServer() as redis, redis_gateway(binary, redis) as gw:
        tap = RedisClient(redis.port)
        assert tap.command("SUBSCRIBE", "odin.token.EXACT")[0] == b"subscribe"
        ws = await subscribed(gw, ["EXACT"])
        status, _, body = gw.http("POST", "/publish", exact_publish_body("EXACT"))
        assert status == 200 and json.loads(body) == {"published": len(EXACT_DATA)}, body
        for d in EXACT_DATA:  # the object form, with data as it was given
            kind, channel, payload = tap.reply(5)
            assert payload == b'{"type":"message","data":' + d.encode() + b'}', payload
        got = [data_text(await asyncio.wait_for(ws.recv(), 5)) for _ in EXACT_DATA]
        assert got == EXACT_DATA, got
        status, _, body = gw.http("POST", "/publish", '{"channel":"EXACT","data":' + big + '}')
        assert status == 200, (status, body[:200])
        assert data_text(await asyncio.wait_for(ws.recv(), 10)) == big
        tap.close()
        await ws.close()


if __name__ == "__main__":
    run_tests([
        test_two_instances_steady_stream_from_publish_and_post,
        test_bad_broker_input_is_counted_and_never_delivered,
        test_redis_restart_health_and_delivery_and_what_is_lost,
        test_silent_redis_is_noticed_by_ping,
        test_cpu_pause_then_resume_delivers_what_redis_held,
        test_resume_only_on_the_instance_that_ran_the_session,
        test_intake_rate_cap_holds_near_the_limit,
        test_auth_and_not_up_yet,
        test_settings_refused_at_start,
        test_jetstream_settings_are_noticed_as_ignored,
        test_publish_data_reaches_redis_and_clients_byte_for_byte,
    ])
