"""The Python client package (clients/python, `odin_ws`) as a user gets it: pip-installed offline
into a fresh virtual environment (setuptools and websockets from Debian's system site-packages),
type-checked with mypy --strict, then run from that environment against the real gateway:
exactly-once in-order delivery with gaps replayed and reconnects resumed, JWT refresh in-band
before expiry and with a fresh token after a 401, `max_hz` / `latest` with their `conflated`
counts, permessage-deflate, clean cancellation, and JetStream behind HAProxy with the instance
the client is on killed with SIGKILL (the client resumes on the other one, nothing lost or
repeated).

The first tests run here (install, mypy); each SDK test then runs in a child process with the
virtual environment's python (this file again, told which test by ODIN_SDK_TEST), so what is
tested is the installed package, not the source tree."""
import asyncio
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from harness import Gateway, RawClient, es256_keys, metric, run_tests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
PACKAGE = os.path.join(REPO, "clients", "python")
CHILD_TEST = os.environ.get("ODIN_SDK_TEST")
VENV = {"path": None, "error": "the install test did not run"}


def _cleanup_venv():
    if VENV.get("work") and not CHILD_TEST:
        shutil.rmtree(VENV["work"], ignore_errors=True)


atexit.register(_cleanup_venv)


def venv_python(binary):
    if VENV["path"] is None and VENV["error"] == "the install test did not run":  # e.g. -k chose
        VENV["error"] = "the install failed"
        test_installs_offline_into_a_fresh_venv(binary)
    assert VENV["path"], f"no virtual environment: {VENV['error']}"
    return os.path.join(VENV["path"], "bin", "python")


def run(cmd, timeout, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


# ---- parent: install and type-check --------------------------------------------------------

def test_installs_offline_into_a_fresh_venv(binary):
    VENV["error"] = "the install failed"
    work = tempfile.mkdtemp(prefix="odin-sdk-py-")
    VENV["work"] = work
    venv = os.path.join(work, "venv")
    # --without-pip: the venv's python runs the system's pip (python3-pip, seen through the
    # system site-packages), which saves the seconds ensurepip takes to copy one in.
    r = run(["/usr/bin/python3", "-m", "venv", "--without-pip", "--system-site-packages", venv], 60)
    assert r.returncode == 0, r.stderr
    # No index, no build isolation: nothing may come from the network; setuptools (the build
    # backend) and websockets (the dependency) are the system's.
    # From a copy: setuptools builds in the source directory (build/, *.egg-info), and the
    # tree under test stays as it is.
    source = os.path.join(work, "src")
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__",
                                                                   ".mypy_cache"))
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    r = run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--no-index", "--no-build-isolation",
             source], 120, env=env, cwd=work)
    assert r.returncode == 0, r.stdout + r.stderr
    VENV["path"] = venv
    probe = ("import odin_ws, os, websockets; d = os.path.dirname(odin_ws.__file__); "
             "print(d); print(os.path.exists(os.path.join(d, 'py.typed'))); print(websockets.__version__)")
    r = run([os.path.join(venv, "bin", "python"), "-c", probe], 30, cwd=work)
    assert r.returncode == 0, r.stderr
    where, typed, ws_version = r.stdout.split()
    assert where.startswith(venv), f"odin_ws imported from {where}, not the venv"
    assert typed == "True", "py.typed not installed"
    print(f"  installed into {venv} (websockets {ws_version} from the system)")


def test_mypy_strict(binary):
    """The package itself under --strict, and a program using it (from the venv, through its
    py.typed) type-checks; a wrong use of the API is caught."""
    py = venv_python(binary)
    cache = os.path.join(os.path.dirname(os.path.abspath(binary)), "mypy-cache-sdk-py")
    mypy = ["/usr/bin/python3", "-m", "mypy", "--strict", "--cache-dir", cache, "--python-executable", py]
    r = run(mypy + ["-p", "odin_ws"], 120)
    assert r.returncode == 0, r.stdout + r.stderr
    sample_dir = tempfile.mkdtemp(prefix="odin-sdk-mypy-")
    try:
        good = os.path.join(sample_dir, "good.py")
        with open(good, "w") as f:
            f.write("from odin_ws import Message, OdinClient\n\n\n"
                    "async def token() -> str:\n    return 'x'\n\n\n"
                    "async def main() -> int:\n"
                    "    async with OdinClient('ws://127.0.0.1:1/ws', get_token=token) as client:\n"
                    "        await client.subscribe(['A'], max_hz=4)\n"
                    "        async for msg in client:\n"
                    "            m: Message = msg\n"
                    "            return m.seq + m.conflated\n"
                    "    return 0\n")
        bad = os.path.join(sample_dir, "bad.py")
        with open(bad, "w") as f:
            f.write("from odin_ws import OdinClient\n\n\n"
                    "async def main() -> str:\n"
                    "    async for msg in OdinClient('ws://x/ws'):\n"
                    "        return msg.seq\n"
                    "    return ''\n")
        r = run(mypy + [good], 60, cwd=sample_dir)
        assert r.returncode == 0, r.stdout + r.stderr
        r = run(mypy + [bad], 60, cwd=sample_dir)
        assert r.returncode == 1 and "Incompatible return value" in r.stdout, r.stdout + r.stderr
    finally:
        shutil.rmtree(sample_dir, ignore_errors=True)


def in_venv(name, timeout=45):
    """A test that runs in the venv's python (this file, in child mode)."""
    def test(binary):
        py = venv_python(binary)
        env = dict(os.environ, ODIN_SDK_TEST=name, PYTHONDONTWRITEBYTECODE="1")
        r = run([py, os.path.abspath(__file__), "--binary", os.path.abspath(binary)], timeout, env=env, cwd=HERE)
        out = (r.stdout + r.stderr).rstrip()
        if out:
            print("\n".join("  | " + line for line in out.splitlines()))
        assert r.returncode == 0 and "1 passed, 0 failed" in r.stdout, f"{name} failed in the venv"
    test.__name__ = name
    return test


# ---- child: the SDK against the gateway ----------------------------------------------------

def sdk():
    import odin_ws
    assert os.path.realpath(odin_ws.__file__).startswith(os.path.realpath(sys.prefix)), odin_ws.__file__
    return odin_ws


async def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class Collector:
    """Consumes a client with `async for` in a task; records messages and events."""

    def __init__(self, client, events=("disconnected", "resumed", "resume_failed", "gap",
                                       "replay_done", "authenticated", "error", "subscribed")):
        self.client = client
        self.messages = []
        self.events = []
        for name in events:
            client.on(name, lambda d, name=name: self.events.append((name, d)))
        self.task = asyncio.ensure_future(self._consume())

    async def _consume(self):
        async for msg in self.client:
            self.messages.append(msg)

    def named(self, name):
        return [d for n, d in self.events if n == name]

    async def until(self, count, timeout=10):
        await wait_for(lambda: len(self.messages) >= count, timeout, f"{count} messages, have {len(self.messages)}")

    def assert_exactly_once(self, expected, ignore=()):
        """seq 1..N without a hole or repeat, and exactly `expected` [(channel, data)] in order
        per channel (channels in `ignore` aside)."""
        seqs = [m.seq for m in self.messages]
        assert seqs == list(range(1, len(seqs) + 1)), f"seq not contiguous: {seqs}"
        got = [(m.channel, m.data) for m in self.messages if m.channel not in ignore]
        assert len(got) == len(expected), f"{len(got)} messages, expected {len(expected)}"
        for channel in {c for c, _ in expected}:
            mine = [d for c, d in got if c == channel]
            want = [d for c, d in expected if c == channel]
            assert mine == want, f"{channel}: got {mine}, want {want}"
        assert all(m.gap is None for m in self.messages), [m.gap for m in self.messages if m.gap]


def publish(gw, channel, values):
    return gw.publish([{"channel": channel, "type": "tick", "data": v} for v in values])


def sequencer_units(binary):
    """The reorder buffer, gap replay and position tracking without a network."""
    from odin_ws._sequencer import Message, Sequencer, Stats

    class Host:
        def __init__(self):
            self.out, self.events, self.replays, self.timers = [], [], [], []

        def deliver(self, m):
            self.out.append(m)

        def emit(self, e, d):
            self.events.append((e, d))

        def can_replay(self):
            return True

        def connected(self):
            return True

        def replay(self, a, b, on_timeout):
            self.replays.append((a, b, on_timeout))

        def call_later(self, delay, cb):
            self.timers.append(cb)

            class H:
                def cancel(self):
                    pass
            return H()

    def msg(n, pos=None):
        return Message(seq=n, ts=0, type="t", channel="c", data=n, pos=pos)

    h, stats = Host(), Stats()
    s = Sequencer(h, stats, max_buffered=5)
    for n in (1, 2, 4, 5):
        s.on_data(msg(n, pos=100 + n))
    assert [m.seq for m in h.out] == [1, 2] and s.buffered == 2 and s.position == 102
    assert [(a, b) for a, b, _ in h.replays] == [(3, 3)] and stats.gaps == 1
    s.on_data(msg(3, pos=103))  # the replay brings it
    s.on_data(msg(4, pos=104))  # a duplicate
    assert [m.seq for m in h.out] == [1, 2, 3, 4, 5] and stats.duplicates == 1 and s.position == 105
    s.on_replay_done({"sent": 1, "first_available": 1})
    assert h.events[-1] == ("replay_done", {"from": 3, "to": 3, "sent": 1, "first_available": 1, "lost": None})
    # A hole the gateway no longer holds: given up, reported once on the next message.
    s.on_data(msg(8))
    assert h.replays[-1][:2] == (6, 7)
    s.on_replay_done({"sent": 0, "first_available": 8})
    assert [m.seq for m in h.out][-1] == 8 and h.out[-1].gap is not None
    assert (h.out[-1].gap.start, h.out[-1].gap.end) == (6, 7) and stats.lost_messages == 2
    # A reply's position waits until what came before it is delivered.
    s.on_data(msg(10, pos=210))
    s.reply_pos(300)
    assert s.position == 105
    h.replays[-1][2]()  # the replay of 9 timed out: 9 lost, 10 delivered, the reply's pos taken
    assert [m.seq for m in h.out][-1] == 10 and s.position == 300
    # rate_limited replays are retried, then given up.
    s.on_data(msg(12))
    s.on_replay_refused("rate_limited")
    assert len(h.timers) == 1
    h.timers.pop()()
    assert h.replays[-1][:2] == (11, 11)
    s.on_replay_refused("bad_request")
    assert [m.seq for m in h.out][-1] == 12
    # Beyond max_buffered a hole is given up without waiting for the replay.
    for n in range(14, 21):
        s.on_data(msg(n))
    assert h.out[-1].seq >= 14 and s.buffered <= 5
    # restart: a new numbering.
    s.restart()
    s.on_data(msg(1))
    assert h.out[-1].seq == 1 and s.position is None


class Dropping:
    """Makes a client lose the data frames with the given seqs the first time they arrive, as a
    lossy path would: the client must notice the gap and have them replayed."""

    def __init__(self, client, seqs):
        self.seqs = set(seqs)
        original = client._on_frame

        async def on_frame(text):
            if isinstance(text, str) and text.startswith('{"seq":'):
                seq = json.loads(text)["seq"]
                if seq in self.seqs:
                    self.seqs.discard(seq)
                    return
            await original(text)
        client._on_frame = on_frame


async def ordered_exactly_once(binary):
    odin_ws = sdk()
    with Gateway(binary, WS_REPLAY_SIZE=500) as gw:
        client = odin_ws.OdinClient(gw.ws_url, backoff_initial=0.3, backoff_max=0.3)
        dropper = Dropping(client, {5, 6, 40})
        await client.connect()
        first_session = client.session
        assert await client.subscribe(["A", "B"], snapshot=False) == ["A", "B"]
        got = Collector(client)
        expected = []
        for batch in range(4):
            values = list(range(batch * 30, batch * 30 + 30))
            for ch in ("A", "B"):
                publish(gw, ch, values[:15] if ch == "A" else values[15:])
                expected += [(ch, v) for v in (values[:15] if ch == "A" else values[15:])]
            if batch in (1, 2):
                await got.until(len(expected))
                drops = len(got.named("disconnected"))
                client.drop()  # as if the network failed: reconnect and resume
                await wait_for(lambda: len(got.named("disconnected")) > drops, 5, "the drop")
                publish(gw, "A", [f"away{batch}"])  # published while away: the resume re-sends it
                expected.append(("A", f"away{batch}"))
                await wait_for(lambda: len(got.named("resumed")) > drops, 5, "the resume")
        await got.until(len(expected))
        await asyncio.sleep(0.2)  # nothing more (a repeat) may follow
        got.assert_exactly_once(expected)
        assert not dropper.seqs, f"frames not dropped: {dropper.seqs}"
        assert len(got.named("gap")) >= 2 and client.stats.replays >= 2, got.events
        resumed = got.named("resumed")
        assert len(resumed) == 2 and client.session == first_session, got.events
        assert all(r["replayed"] >= 1 and not r["restored"] for r in resumed), resumed
        assert client.stats.lost_messages == 0 and client.stats.reconnects == 2
        assert client.last_seq == len(expected)
        assert client.compressed, client.extensions  # offered by default, accepted by the gateway
        await client.close()
        await asyncio.wait_for(got.task, 2)  # the iterator ends at close()


async def resume_failed_resubscribes_with_snapshot(binary):
    """More was published while away than the replay ring holds: the resume fails, the client
    takes the fresh session and subscribes its channels again with a snapshot (the newest value
    at once, numbered from 1 on the new session)."""
    odin_ws = sdk()
    with Gateway(binary, WS_REPLAY_SIZE=5) as gw:
        client = odin_ws.OdinClient(gw.ws_url, backoff_initial=0.3, backoff_max=0.3)
        await client.connect()
        await client.subscribe(["R1", "R2"], snapshot=False)
        got = Collector(client, events=("disconnected", "resumed", "resume_failed", "subscribed"))
        publish(gw, "R1", [0, 1])
        await got.until(2)
        old = client.session
        client.drop()
        await wait_for(lambda: got.named("disconnected"), 5, "the drop")
        publish(gw, "R1", list(range(2, 20)))
        publish(gw, "R2", ["r2"])
        await wait_for(lambda: got.named("resume_failed"), 5, "resume_failed")
        await got.until(4)
        failed = got.named("resume_failed")[0]
        assert failed["session"] == old and failed["new_session"] == client.session != old, failed
        assert not got.named("resumed")
        fresh = got.messages[2:]
        assert sorted((m.seq, m.channel, m.data) for m in fresh) == [(1, "R1", 19), (2, "R2", "r2")] or \
            sorted((m.seq, m.channel, m.data) for m in fresh) == [(1, "R2", "r2"), (2, "R1", 19)], fresh
        assert client.channels == ["R1", "R2"] and client.last_seq == 2
        publish(gw, "R2", ["live"])
        await got.until(5)
        assert (got.messages[-1].seq, got.messages[-1].data) == (3, "live")
        await client.close()


async def slow_consumer_pauses_reading(binary):
    """An application that does not keep up: at max_queue messages waiting the client stops
    reading the socket (the kernel and the gateway hold the rest), and the connection lives on;
    then every message arrives once, in order."""
    odin_ws = sdk()
    with Gateway(binary) as gw:
        client = odin_ws.OdinClient(gw.ws_url, max_queue=10, heartbeat_interval=0.2, pong_timeout=0.4)
        drops = []
        client.on("disconnected", drops.append)
        await client.connect()
        await client.subscribe("S", snapshot=False)
        publish(gw, "S", list(range(300)))
        await asyncio.sleep(1.0)  # several pong timeouts: a paused reader is not a dead connection
        assert 10 <= client.stats.received < 300, client.stats
        data = []
        async for msg in client:
            data.append((msg.seq, msg.data))
            if len(data) == 300:
                break
        assert data == [(i + 1, i) for i in range(300)], data[:20]
        assert not drops, drops
        await client.close()


async def heartbeat_detects_a_dead_connection(binary):
    """The gateway stops answering (SIGSTOP): no pong, so the client declares the connection
    dead, and once the gateway runs again it reconnects and resumes without a loss."""
    odin_ws = sdk()
    with Gateway(binary) as gw:
        client = odin_ws.OdinClient(gw.ws_url, heartbeat_interval=0.2, pong_timeout=0.6, connect_timeout=1,
                                    backoff_initial=0.1, backoff_max=0.3)
        await client.connect()
        await client.subscribe("H", snapshot=False)
        got = Collector(client)
        publish(gw, "H", [0])
        await got.until(1)
        await wait_for(lambda: client.stats.rtt is not None, 2, "a pong")  # heartbeats answered
        os.kill(gw.proc.pid, signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            await wait_for(lambda: got.named("disconnected"), 3, "the dead connection")
            assert got.named("disconnected")[0] == {"code": 1006, "reason": "no pong"}, got.events
            assert time.monotonic() - stopped < 1.5
        finally:
            os.kill(gw.proc.pid, signal.SIGCONT)
        publish(gw, "H", [1])
        await wait_for(lambda: got.named("resumed"), 10, "the resume")
        await got.until(2)
        got.assert_exactly_once([("H", 0), ("H", 1)])
        await client.close()


async def cancel_and_close_leave_nothing(binary):
    odin_ws = sdk()

    def sockets():
        n = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
            except OSError:
                pass
        return n

    with Gateway(binary) as gw:
        before_sockets = sockets()
        before_tasks = set(asyncio.all_tasks())

        async def consumer(seen):
            async with odin_ws.OdinClient(gw.ws_url) as client:
                await client.subscribe("C")
                async for msg in client:
                    seen.append(msg)

        seen = []
        task = asyncio.ensure_future(consumer(seen))
        await wait_for(lambda: gw.json("/stats")["currentConnections"] == 1, 5, "the connection")
        await asyncio.sleep(0.1)
        publish(gw, "C", [1])
        await wait_for(lambda: seen, 5, "a message")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        await asyncio.sleep(0)
        left = set(asyncio.all_tasks()) - before_tasks
        assert not left, f"tasks left behind: {left}"
        assert sockets() == before_sockets, "a socket was left open"
        await wait_for(lambda: gw.json("/stats")["currentConnections"] == 0, 5, "the gateway to see the close")
        # close() while reconnecting (nothing listens on the port: refused) ends the retry loop too.
        with socket.socket() as bound:
            bound.bind(("127.0.0.1", 0))  # held, never listening: a connect is refused
            before_sockets = sockets()
            client = odin_ws.OdinClient(f"ws://127.0.0.1:{bound.getsockname()[1]}/ws", backoff_initial=0.05)
            connecting = asyncio.ensure_future(client.connect())
            await asyncio.sleep(0.3)
            assert client.state == odin_ws.ClientState.RECONNECTING, client.state
            await client.close()
            await asyncio.gather(connecting, return_exceptions=True)
            assert isinstance(connecting.exception(), odin_ws.OdinError), connecting
            assert not set(asyncio.all_tasks()) - before_tasks and sockets() == before_sockets

            # A consumer cancelled while its `async with` is still connecting.
            async def never_connects():
                async with odin_ws.OdinClient(f"ws://127.0.0.1:{bound.getsockname()[1]}/ws",
                                              backoff_initial=0.05) as client:
                    async for _ in client:
                        pass

            task = asyncio.ensure_future(never_connects())
            await asyncio.sleep(0.3)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled()
            assert not set(asyncio.all_tasks()) - before_tasks and sockets() == before_sockets


async def latest_and_max_hz(binary):
    odin_ws = sdk()
    with Gateway(binary) as gw:
        client = odin_ws.OdinClient(gw.ws_url)
        subscribed = []
        client.on("subscribed", subscribed.append)
        await client.connect()
        await client.subscribe("PACED", max_hz=2, snapshot=False)
        await client.subscribe("NEWEST", delivery="latest", snapshot=False)
        assert client.options_of("PACED") == {"delivery": "latest", "max_hz": 2}
        assert {"channels": ["PACED"], "delivery": "latest", "max_hz": 2} in subscribed, subscribed
        try:
            await client.subscribe("BAD", delivery="all", max_hz=3)
            raise AssertionError("max_hz with delivery all accepted")
        except odin_ws.OdinError as e:
            assert e.code == "bad_request"
        got = Collector(client)
        start = time.monotonic()
        for i in range(40):
            publish(gw, "PACED", [i])
            await asyncio.sleep(0.025)  # 40 messages over ~1 s
        publish(gw, "NEWEST", list(range(200)))
        paced = lambda: [m for m in got.messages if m.channel == "PACED"]
        newest = lambda: [m for m in got.messages if m.channel == "NEWEST"]
        await wait_for(lambda: paced() and paced()[-1].data == 39 and newest() and newest()[-1].data == 199,
                       5, "the newest of both channels")
        elapsed = time.monotonic() - start
        p = paced()
        # At most 2 a second (plus the first at once), every one the newest, counts adding up.
        assert len(p) <= 2 * elapsed + 2, f"{len(p)} messages in {elapsed:.2f} s at max_hz 2"
        assert [m.data for m in p] == sorted(m.data for m in p)
        assert sum(m.conflated for m in p) + len(p) == 40, [(m.data, m.conflated) for m in p]
        assert client.conflated_total("PACED") == 40 - len(p) > 0
        n = newest()
        assert sum(m.conflated for m in n) + len(n) == 200 and [m.data for m in n] == sorted(m.data for m in n)
        assert client.stats.conflated == (40 - len(p)) + (200 - len(n))
        assert [m.seq for m in got.messages] == list(range(1, len(got.messages) + 1))
        await client.close()


async def compression_negotiated(binary):
    """permessage-deflate offered by default and taken by the gateway; over TLS (wss://) too."""
    odin_ws = sdk()
    from test_tls import make_certificate
    tmp = tempfile.mkdtemp(prefix="odin-sdk-tls-")
    try:
        cert, key = make_certificate(tmp, "server")
        with Gateway(binary, WS_TLS_CERT=cert, WS_TLS_KEY=key) as gw:
            await compressed_and_not(odin_ws, gw, ssl=gw.ssl)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def compressed_and_not(odin_ws, gw, **options):
    on = odin_ws.OdinClient(gw.ws_url, **options)
    off = odin_ws.OdinClient(gw.ws_url, compression=False, **options)
    await on.connect()
    await off.connect()
    assert on.compressed and not off.compressed, (on.extensions, off.extensions)
    assert gw.json("/stats")["compressedConnections"] == 1
    for c in (on, off):
        await c.subscribe("Z", snapshot=False)
    big = {"text": "odin " * 2000, "n": list(range(300))}
    got_on, got_off = Collector(on), Collector(off)
    publish(gw, "Z", [big])
    await got_on.until(1)
    await got_off.until(1)
    assert got_on.messages[0].data == big == got_off.messages[0].data
    assert metric(gw, "ws_compressed_messages_total") >= 1
    await on.close()
    await off.close()


# JWT: tokens signed ES256 with a key the gateway reads from a file, re-read on SIGHUP.
def upgrade_status(gw, token):
    c = RawClient(gw.port, headers={"Authorization": "Bearer " + token})
    try:
        return c.read_http_head()[0]
    finally:
        c.close()


async def token_refresh(binary):
    odin_ws = sdk()
    import jwt
    tmp = tempfile.mkdtemp(prefix="odin-sdk-jwt-")
    try:
        keys, path, install = es256_keys(tmp)
        install(keys[0])
        issued = []
        signer = {"key": keys[0], "life": 3}

        async def get_token():
            exp = int(time.time()) + signer["life"]
            issued.append(exp)
            return jwt.encode({"sub": "alice", "exp": exp, "channels": [">"]}, signer["key"], algorithm="ES256")

        with Gateway(binary, WS_AUTH="jwt", WS_JWT_PUBLIC_KEY=path, WS_JWT_LEEWAY="0") as gw:
            client = odin_ws.OdinClient(gw.ws_url, get_token=get_token, token_refresh_margin=1.0,
                                        backoff_initial=0.05, backoff_max=0.2)
            await client.connect()
            await client.subscribe("T", snapshot=False)
            got = Collector(client)
            expected = []
            # 5 s on a 3 s token: the connection lives on through in-band refreshes.
            for i in range(10):
                publish(gw, "T", [i])
                expected.append(("T", i))
                await asyncio.sleep(0.5)
            await got.until(len(expected))
            assert not got.named("disconnected"), got.events
            assert len(got.named("authenticated")) >= 2 and len(issued) >= 3, (issued, got.events)
            assert client.token_expires_at is not None and client.token_expires_at > time.time()
            assert metric(gw, "ws_token_refreshes_total") >= 2
            assert metric(gw, "ws_token_expired_disconnects_total") == 0
            # A long-lived token of the old key, then the key rotates: the reconnect's cached token
            # gets 401, the client asks get_token for a new one and resumes the session.
            signer["life"] = 600
            await client.refresh_token()
            install(keys[1])
            signer["key"] = keys[1]
            gw.proc.send_signal(signal.SIGHUP)
            probe = jwt.encode({"sub": "probe", "exp": int(time.time()) + 60}, keys[1], algorithm="ES256")
            await wait_for(lambda: upgrade_status(gw, probe) == 101, 5, "the new key")
            before = len(issued)
            client.drop()
            publish(gw, "T", ["while away"])
            expected.append(("T", "while away"))
            await wait_for(lambda: got.named("resumed"), 10, "the resume")
            assert [e for e in got.named("error") if e["code"] == "unauthorized"], got.events
            assert len(issued) == before + 1
            publish(gw, "T", ["after"])
            expected.append(("T", "after"))
            await got.until(len(expected))
            await asyncio.sleep(0.1)
            got.assert_exactly_once(expected)
            await client.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def jetstream_kill9_resumes_elsewhere(binary):
    """Two JetStream gateways behind deploy/haproxy.cfg (its third server entry is the second
    gateway again); the one the client is on dies with SIGKILL mid-stream; the client resumes on
    the other from its position: every message once, in order, seq contiguous."""
    odin_ws = sdk()
    from cluster_support import Haproxy
    from nats_support import NatsServer
    with NatsServer(jetstream=True) as nats:
        gws = []
        lb = None
        try:
            for i in (1, 2):
                gws.append(Gateway(binary, NATS_URL=nats.url, WS_BROKER="jetstream", WS_INSTANCE_ID=f"gw{i}"))
            lb = Haproxy([gws[0], gws[1], gws[1]])
            client = odin_ws.OdinClient(lb.ws_url, backoff_initial=0.1, backoff_max=0.5)
            await client.connect()
            await client.subscribe(["J1", "J2"], snapshot=False)
            await client.subscribe("J3", delivery="latest", snapshot=False)  # restored with its option
            got = Collector(client)
            counts = [gw.json("/stats")["currentConnections"] for gw in gws]
            assert sorted(counts) == [0, 1], counts
            victim, survivor = (gws[0], gws[1]) if counts[0] == 1 else (gws[1], gws[0])
            expected = []

            latest = []

            def send(tag, n):
                for ch in ("J1", "J2"):
                    values = [f"{tag}{i}" for i in range(n)]
                    publish(survivor, ch, values)
                    expected.extend((ch, v) for v in values)
                values = [len(latest) + i for i in range(n)]
                publish(survivor, "J3", values)
                latest.extend(values)

            def j3():
                return [m for m in got.messages if m.channel == "J3"]

            send("before", 15)
            await wait_for(lambda: len(got.messages) >= len(expected) and j3() and j3()[-1].data == latest[-1],
                           10, "the first messages")
            assert client.position is not None and client.position > 0
            os.kill(victim.proc.pid, signal.SIGKILL)
            victim.proc.wait(5)
            send("during", 15)  # in the stream; the client is between instances
            await wait_for(lambda: got.named("resumed"), 15, "the resume on the other instance")
            send("after", 10)
            await wait_for(lambda: len(got.messages) - len(j3()) >= len(expected) and j3()[-1].data == latest[-1],
                           10, "every message")
            await asyncio.sleep(0.2)
            got.assert_exactly_once(expected, ignore=("J3",))
            # The latest channel: in order, ends on the newest, and what it skipped is counted.
            newest = j3()
            assert [m.data for m in newest] == sorted({m.data for m in newest}), [m.data for m in newest]
            assert sum(m.conflated for m in newest) + len(newest) == len(latest), (
                [(m.data, m.conflated) for m in newest], len(latest))
            assert client.options_of("J3") == {"delivery": "latest", "max_hz": None}
            resumed = got.named("resumed")
            assert len(resumed) == 1 and resumed[0]["restored"] is True, resumed
            assert client.session == resumed[0]["session"] != resumed[0]["previous_session"]
            positions = [m.pos for m in got.messages]
            assert positions == sorted(positions) and None not in positions
            assert survivor.json("/stats")["currentConnections"] == 1
            await client.close()
        finally:
            if lb:
                lb.cleanup()
            for gw in gws:
                gw.__exit__(None, None, None)


CHILD_TESTS = {f.__name__: f for f in (sequencer_units, ordered_exactly_once, resume_failed_resubscribes_with_snapshot,
                                       slow_consumer_pauses_reading, heartbeat_detects_a_dead_connection,
                                       cancel_and_close_leave_nothing,
                                       latest_and_max_hz, compression_negotiated, token_refresh,
                                       jetstream_kill9_resumes_elsewhere)}

if __name__ == "__main__":
    if CHILD_TEST:
        run_tests([CHILD_TESTS[CHILD_TEST]])
    else:
        run_tests([test_installs_offline_into_a_fresh_venv, test_mypy_strict]
                  + [in_venv(name) for name in CHILD_TESTS])
