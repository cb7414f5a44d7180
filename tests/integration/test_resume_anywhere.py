"""Resume on any instance (docs/protocol.md): in JetStream mode envelopes carry the stream position,
and a client whose gateway died resumes on another one from its position and channels. Real
nats-server, real gateways killed with SIGKILL, python3-websockets clients: every message exactly
once, seq contiguous, whether the new instance replays from its own history, reads the stream
back (it started after the client's position), or is behind the client (it skips what the client
already has). Also: positions absent in other modes, and the refusals that stay never-partial."""
import asyncio
import json
import signal
import threading
import time

import websockets

from harness import Gateway, connect, metric, recv_json, run_tests
from nats_support import NatsClient, NatsServer


class Client:
    """A client that keeps what it needs to resume anywhere: session, last seq, position."""

    def __init__(self, channels):
        self.channels = channels
        self.session = None
        self.seq = 0
        self.pos = 0
        self.data = []  # (seq, pos, channel, data) of every data message, in arrival order
        self.ws = None

    def note(self, msg):
        if "seq" in msg:
            self.data.append((msg["seq"], msg["pos"], msg["channel"], msg["data"]))
            self.seq = msg["seq"]
            self.pos = max(self.pos, msg["pos"])
        elif msg.get("type") in ("subscribed", "resumed") and "pos" in msg.get("data", {}):
            self.pos = max(self.pos, msg["data"]["pos"])
            if msg["type"] == "resumed":
                self.session = msg["data"]["session"]

    async def open(self, gw):
        self.ws, welcome = await connect(gw, "?channels=" + ",".join(self.channels))
        self.session = welcome["data"]["session"]
        self.note(await recv_json(self.ws))

    async def resume(self, gw):
        """Reconnects to `gw` and resumes; returns the `resumed` reply (or the error)."""
        self.ws, _ = await connect(gw)
        await self.ws.send(json.dumps({"type": "resume", "data": {
            "session": self.session, "last_seq": self.seq, "last_pos": self.pos,
            "channels": self.channels}}))
        while True:
            msg = await recv_json(self.ws, 10)
            self.note(msg)
            if msg.get("type") in ("resumed", "error"):
                return msg

    async def read_until(self, predicate, timeout):
        deadline = time.time() + timeout
        while not predicate():
            left = deadline - time.time()
            assert left > 0, f"timed out with {len(self.data)} messages"
            try:
                self.note(json.loads(await asyncio.wait_for(self.ws.recv(), left)))
            except websockets.ConnectionClosed:
                return

    def assert_exactly_once(self, expected):
        seqs = [s for s, _, _, _ in self.data]
        assert seqs == list(range(1, len(seqs) + 1)), f"seq not contiguous: {seqs}"
        positions = [p for _, p, _, _ in self.data]
        assert positions == sorted(positions), f"not in stream order: {positions}"
        got = [(c, d) for _, _, c, d in self.data]
        missing = [e for e in expected if e not in got]
        assert not missing and len(got) == len(expected) and sorted(got) == sorted(expected), (
            f"{len(got)} of {len(expected)}; missing {missing[:10]}; "
            f"duplicates {len(got) - len(set(got))}")


class Publisher:
    """Publishes i = 0, 1, ... on channels in turn through NATS (the stream stores them)."""

    def __init__(self, url, channels):
        self.url = url
        self.channels = channels
        self.sent = []  # (channel, i)
        self.stream_seq = {}  # i -> stream sequence, from the JetStream publish ack
        self.errors = []
        self.stop = threading.Event()
        self.thread = None

    def publish(self, count, interval=0.0):
        with NatsClient(self.url) as pub:
            for _ in range(count):
                if self.stop.is_set():
                    return
                i = len(self.sent)
                channel = self.channels[i % len(self.channels)]
                ack = pub.js_publish("odin.token." + channel, json.dumps(i).encode(), msg_id=f"m{i}",
                                     headers={"Type": "tick"}, retry_until=time.time() + 10)
                self.stream_seq[i] = ack["seq"]
                self.sent.append((channel, i))
                if interval:
                    time.sleep(interval)

    def start(self, count, interval):
        def run():
            try:
                self.publish(count, interval)
            except Exception as e:  # reported by the test
                self.errors.append(e)
        self.thread = threading.Thread(target=run)
        self.thread.start()

    def join(self):
        self.thread.join(30)
        assert not self.errors, self.errors

    def expected(self, channels):
        return [(c, i) for c, i in self.sent if c in channels]


def js_gateway(binary, nats, wait_ready=True, **env):
    return Gateway(binary, wait_ready=wait_ready, NATS_URL=nats.url, WS_BROKER="jetstream",
                   LOG_LEVEL="info", **env)


async def test_positions_are_the_stream_sequence(binary):
    with NatsServer(jetstream=True) as nats, js_gateway(binary, nats) as gw:
        client = Client(["P1"])
        await client.open(gw)
        assert client.pos >= 0
        pub = Publisher(nats.url, ["P1", "P2"])
        pub.publish(10)
        await client.read_until(lambda: len(client.data) == 5, 10)
        # A reply's position is what the connection's own worker thread has drained: another
        # thread may still be one message behind the client's, never ahead of the stream.
        deadline = time.monotonic() + 10
        while True:
            raw_ws, _ = await connect(gw, "?channels=P2")
            ack = await recv_json(raw_ws)
            assert ack["data"]["pos"] <= pub.stream_seq[9], ack
            if ack["data"]["pos"] == pub.stream_seq[9]:
                break  # everything drained so far
            assert time.monotonic() < deadline, ack
            await raw_ws.close()
            await asyncio.sleep(0.05)
        for seq, pos, channel, i in client.data:
            assert pos == pub.stream_seq[i], (pos, i, pub.stream_seq)
        pub.publish(1)  # the key order: seq, pos, ts, ...
        pub.publish(1)
        raw = await asyncio.wait_for(raw_ws.recv(), 5)
        assert raw.startswith('{"seq":1,"pos":%d,"ts":' % pub.stream_seq[11]), raw
        await raw_ws.close()
        await client.ws.close()
    with Gateway(binary) as embedded:  # no stream, no positions
        ws, _ = await connect(embedded, "?channels=E")
        assert "pos" not in (await recv_json(ws))["data"]
        embedded.publish([{"channel": "E", "data": 1}])
        raw = await asyncio.wait_for(ws.recv(), 5)
        assert raw.startswith('{"seq":1,"ts":'), raw
        await ws.close()


async def test_kill9_then_resume_on_another_instance_from_its_history(binary):
    channels = ["KA", "KB"]
    with NatsServer(jetstream=True) as nats, js_gateway(binary, nats) as a, js_gateway(binary, nats) as b:
        clients = [Client(channels), Client(["KA"])]
        for c in clients:
            await c.open(a)
        pub = Publisher(nats.url, ["KA", "KB", "KC"])
        pub.start(240, 0.01)
        await clients[0].read_until(lambda: len(clients[0].data) >= 40, 20)
        a.stop(signal.SIGKILL)  # kill -9, by PID
        await asyncio.sleep(0.3)  # the stream goes on while the clients are away
        for c in clients:
            reply = await c.resume(b)
            assert reply["type"] == "resumed" and reply["data"]["restored"] is True, reply
            assert reply["data"]["replayed"] > 0, reply
        pub.join()
        for c in clients:
            expected = pub.expected(c.channels)
            await c.read_until(lambda c=c: len(c.data) >= len(expected), 20)
            c.assert_exactly_once(expected)
            await c.ws.close()
        assert metric(b, 'ws_resumes_total{result="restored"}') == 2


async def test_resume_on_an_instance_started_later_reads_the_stream(binary):
    with NatsServer(jetstream=True) as nats, js_gateway(binary, nats) as a:
        client = Client(["LA", "LB"])
        await client.open(a)
        pub = Publisher(nats.url, ["LA", "LB", "LC"])
        pub.publish(30)
        await client.read_until(lambda: len(client.data) == 20, 10)
        a.stop(signal.SIGKILL)  # kill -9, by PID
        pub.publish(15)  # missed by the client; published before the new instance existed
        with js_gateway(binary, nats) as late:
            reply = await client.resume(late)
            assert reply["type"] == "resumed" and reply["data"]["restored"], reply
            assert reply["data"]["replayed"] == 10, reply
            pub.publish(15)
            expected = pub.expected(client.channels)
            await client.read_until(lambda: len(client.data) >= len(expected), 10)
            client.assert_exactly_once(expected)
            await client.ws.close()


async def test_restore_keeps_latest_options_and_sends_only_the_newest(binary):
    """A restored `latest` channel (data.options) gets only its newest missed message, with
    `conflated` counting the others; an `all` channel beside it gets every one; seq stays
    contiguous and the options hold for live messages after the resume."""
    with NatsServer(jetstream=True) as nats, js_gateway(binary, nats) as a, js_gateway(binary, nats) as b:
        client = Client(["RA", "RB"])
        await client.open(a)
        pub = Publisher(nats.url, ["RA", "RB"])
        pub.publish(20)
        await client.read_until(lambda: len(client.data) == 20, 10)
        a.stop(signal.SIGKILL)  # kill -9, by PID
        pub.publish(30)  # 15 on each channel, missed by the client
        client.ws, _ = await connect(b)
        await client.ws.send(json.dumps({"type": "resume", "data": {
            "session": client.session, "last_seq": client.seq, "last_pos": client.pos,
            "channels": client.channels, "options": {"RB": {"delivery": "latest"}}}}))
        frames = []
        while True:
            msg = await recv_json(client.ws, 10)
            client.note(msg)
            if "seq" in msg:
                frames.append(msg)
            if msg.get("type") in ("resumed", "error"):
                break
        assert msg["type"] == "resumed" and msg["data"]["restored"], msg
        assert msg["data"]["replayed"] == 16, msg
        missed_a = [i for c, i in pub.sent[20:] if c == "RA"]
        missed_b = [i for c, i in pub.sent[20:] if c == "RB"]
        assert [f["data"] for f in frames if f["channel"] == "RA"] == missed_a
        assert all("conflated" not in f for f in frames if f["channel"] == "RA")
        got_b = [f for f in frames if f["channel"] == "RB"]
        assert len(got_b) == 1 and got_b[0]["data"] == missed_b[-1], got_b
        assert got_b[0]["conflated"] == len(missed_b) - 1, got_b
        seqs = [s for s, _, _, _ in client.data]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        # Live, one message at a time: nothing is behind, so a latest channel gets each one too,
        # without conflated (messages that reach the gateway together may be skipped for all but
        # the newest, docs/protocol.md).
        for k in range(1, 5):
            pub.publish(1)
            await client.read_until(lambda: len(client.data) == 20 + 16 + k, 10)
        assert [d for _, _, c, d in client.data[-4:]] == [i for _, i in pub.sent[-4:]]
        await client.ws.close()
        deadline = time.time() + 5  # the count is published once a second
        while metric(b, "ws_conflated_messages_total") < len(missed_b) - 1 and time.time() < deadline:
            await asyncio.sleep(0.2)
        assert metric(b, "ws_conflated_messages_total") == len(missed_b) - 1


async def test_resume_on_an_instance_behind_the_client_skips_what_it_has(binary):
    with NatsServer(jetstream=True) as nats, js_gateway(binary, nats) as fast, \
            js_gateway(binary, nats, WS_MAX_NATS_RATE=25) as slow:
        client = Client(["BEHIND"])
        await client.open(fast)
        watcher, _ = await connect(slow, "?channels=BEHIND")  # to see how far behind it is
        await recv_json(watcher)
        pub = Publisher(nats.url, ["BEHIND"])
        pub.publish(60)
        await client.read_until(lambda: len(client.data) == 60, 10)
        fast.stop(signal.SIGKILL)  # kill -9, by PID
        reply = await client.resume(slow)
        assert reply["type"] == "resumed" and reply["data"]["restored"], reply
        assert reply["data"]["replayed"] == 0 and reply["data"]["pos"] == client.pos, reply
        seen = 0
        while seen < 60:  # the slow instance catches up: nothing of it reaches the client again
            msg = json.loads(await asyncio.wait_for(watcher.recv(), 10))
            seen += "seq" in msg
        pub.publish(10)
        expected = pub.expected(["BEHIND"])
        await client.read_until(lambda: len(client.data) >= len(expected), 10)
        client.assert_exactly_once(expected)
        await watcher.close()
        await client.ws.close()


async def test_restore_is_never_partial(binary):
    with NatsServer(jetstream=True) as nats, js_gateway(binary, nats, WS_REPLAY_SIZE=10) as a, \
            js_gateway(binary, nats, WS_REPLAY_SIZE=10) as b:
        client = Client(["NP"])
        await client.open(a)
        pub = Publisher(nats.url, ["NP"])
        pub.publish(5)
        await client.read_until(lambda: len(client.data) == 5, 10)
        a.stop(signal.SIGKILL)  # kill -9, by PID
        pub.publish(11)  # one more than the replay buffer holds
        reply = await client.resume(b)
        assert reply["type"] == "error" and reply["data"]["code"] == "resume_failed", reply
        # The fresh session is untouched: subscribed to nothing.
        pub.publish(1)
        try:
            extra = await asyncio.wait_for(client.ws.recv(), 1)
            raise AssertionError(f"a failed resume delivered {extra}")
        except asyncio.TimeoutError:
            pass
        await client.ws.close()
    with Gateway(binary) as embedded:  # no stream positions: a position is not enough
        client = Client(["NP"])
        ws, welcome = await connect(embedded)
        await ws.send(json.dumps({"type": "resume", "data": {
            "session": "0123456789abcdef", "last_seq": 3, "last_pos": 7, "channels": ["NP"]}}))
        reply = await recv_json(ws)
        assert reply["data"]["code"] == "resume_failed", reply
        await ws.close()


async def test_a_gap_in_the_stream_is_read_back_in_order(binary):
    """Stream messages that never reach the instance (lost in flight, or skipped by a consumer
    made anew) are read back from the stream before the next one goes out. Made deterministic
    here: with the gateway stopped (SIGSTOP), 20 messages are stored and its consumer is replaced
    by one that starts after them."""
    consumer = "ws-server-gapper"
    with NatsServer(jetstream=True) as nats, js_gateway(binary, nats, WS_INSTANCE_ID="gapper") as gw, \
            NatsClient(nats.url) as api:
        client = Client(["GAP"])
        await client.open(gw)
        pub = Publisher(nats.url, ["GAP"])
        pub.publish(20)
        await client.read_until(lambda: len(client.data) == 20, 10)
        gw.proc.send_signal(signal.SIGSTOP)
        try:
            api.js_api(f"CONSUMER.DELETE.ODIN_TOKENS.{consumer}", check=True)
            pub.publish(20)  # after the delete: the gateway's outstanding pull cannot bring them
            api.js_api(f"CONSUMER.DURABLE.CREATE.ODIN_TOKENS.{consumer}", {
                "stream_name": "ODIN_TOKENS", "config": {
                    "durable_name": consumer, "ack_policy": "explicit", "deliver_policy": "new",
                    "filter_subject": "odin.token.>"}}, check=True)
        finally:
            gw.proc.send_signal(signal.SIGCONT)
        pub.publish(10)
        expected = pub.expected(["GAP"])
        await client.read_until(lambda: len(client.data) >= len(expected), 15)
        client.assert_exactly_once(expected)
        assert [d for _, _, _, d in client.data] == list(range(50))  # publish order = stream order
        assert metric(gw, "ws_broker_gap_filled_total") == 20, gw.output()[-2000:]
        assert "were lost on the way: 20 read back" in gw.output()
        await client.ws.close()


def test_health_waits_for_the_stream_consumer(binary):
    """Connected to NATS is not enough in JetStream mode: until the instance reads the stream
    through its consumer, a client sent to it would miss what is published meanwhile, so /health
    stays 503 (here: another stream already claims the subjects, so ours cannot be made)."""
    with NatsServer(jetstream=True) as nats, NatsClient(nats.url) as api:
        api.js_api("STREAM.CREATE.SQUATTER", {"name": "SQUATTER", "subjects": ["odin.token.>"]},
                   check=True)
        with js_gateway(binary, nats, wait_ready=False) as gw:
            time.sleep(1)
            status, _, body = gw.http("GET", "/health")
            broker = json.loads(body)["checks"]["broker"]
            assert status == 503 and broker["connected"] is True and broker["ready"] is False, body
            api.js_api("STREAM.DELETE.SQUATTER", check=True)
            deadline = time.time() + 15
            while gw.http("GET", "/health")[0] != 200:
                assert time.time() < deadline, gw.output()
                time.sleep(0.2)
            assert json.loads(gw.http("GET", "/health")[2])["checks"]["broker"]["ready"] is True


if __name__ == "__main__":
    run_tests([
        test_positions_are_the_stream_sequence,
        test_kill9_then_resume_on_another_instance_from_its_history,
        test_resume_on_an_instance_started_later_reads_the_stream,
        test_restore_keeps_latest_options_and_sends_only_the_newest,
        test_resume_on_an_instance_behind_the_client_skips_what_it_has,
        test_restore_is_never_partial,
        test_a_gap_in_the_stream_is_read_back_in_order,
        test_health_waits_for_the_stream_consumer,
    ])
