"""Scale-out: three gateways on a three-node NATS cluster (JetStream, stream replicated 3 times)
behind HAProxy running deploy/haproxy.cfg (cluster_support.py). Clients are python3-websockets
connected through HAProxy; a steady stream is published to NATS. Checked: the clients spread over
the instances and each receives every message of its channels in order with contiguous seq; the
same while one NATS node (one with gateways on it, the stream's leader if possible) is stopped and
brought back; and after kill -9 of
one gateway (and after SIGTERM: a drain), its clients reconnect through HAProxy, resume on another
instance (resume with last_pos and channels, docs/protocol.md) and still end with every message
exactly once; and an upgrade refused with 503 is retried by HAProxy on another instance."""
import asyncio
import json
import signal
import statistics
import threading
import time

import websockets

from cluster_support import Cluster
from harness import metric, run_tests
from nats_support import NatsClient, NatsError

CHANNELS = ["CLA", "CLB", "CLC", "CLD"]


def channels_of(k):
    return [CHANNELS[k % 4], CHANNELS[(k + 1) % 4]]


class Client:
    """A client written like a real resuming one: it tracks its session, seq and position, and on
    a close reconnects through the balancer and sends resume with session, last_seq, last_pos and
    channels. resume_failed is recorded as a failure (the tests require none)."""

    def __init__(self, url, channels):
        self.url, self.channels = url, channels
        self.received = {ch: [] for ch in channels}  # data per channel, in arrival order
        self.seqs, self.errors, self.failure = [], [], None
        self.session, self.last_seq, self.pos, self.last_data_pos = None, 0, None, None
        self.resumes = []  # one dict per reconnection: times and the resumed reply
        self.ready = asyncio.Event()
        self.stopping = False
        self.task, self.ws = None, None

    def start(self):
        self.task = asyncio.ensure_future(self._run())

    def count(self):
        return sum(len(v) for v in self.received.values())

    def _take_pos(self, pos):
        if pos is not None:
            self.pos = pos if self.pos is None else max(self.pos, pos)

    def _data(self, msg, now):
        if msg["seq"] != self.last_seq + 1:
            self.errors.append(f"seq {msg['seq']} after {self.last_seq}")
        self.last_seq = msg["seq"]
        self.seqs.append(msg["seq"])
        # JetStream mode: every data message carries its stream position, increasing on a
        # session (no snapshots are asked for here), across a restore too.
        if not isinstance(msg.get("pos"), int):
            self.errors.append(f"data message without pos: {msg}")
        elif self.last_data_pos is not None and msg["pos"] <= self.last_data_pos:
            self.errors.append(f"pos {msg['pos']} after {self.last_data_pos}")
        else:
            self.last_data_pos = msg["pos"]
        self._take_pos(msg.get("pos"))
        if msg.get("channel") not in self.received:
            self.errors.append(f"message of a channel not subscribed: {msg}")
            return
        self.received[msg["channel"]].append(msg["data"])
        if self.resumes and self.resumes[-1].get("first_data") is None:
            self.resumes[-1]["first_data"] = now

    async def _run(self):
        try:
            ws = self.ws = await websockets.connect(f"{self.url}?channels={','.join(self.channels)}",
                                                    max_size=None)
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert welcome["type"] == "welcome", welcome
            self.session = welcome["data"]["session"]
            sub = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert sub["type"] == "subscribed", sub
            self._take_pos(sub["data"].get("pos"))
            self.ready.set()
            while True:
                try:
                    async for raw in ws:
                        msg = json.loads(raw)
                        if "seq" in msg:
                            self._data(msg, time.monotonic())
                        elif msg["type"] == "error":
                            self.errors.append(msg)
                except websockets.ConnectionClosed:
                    pass
                if self.stopping:
                    return
                ws = self.ws = await self._resume(time.monotonic())
                if ws is None:
                    return
        except Exception as e:  # reported by the test
            self.failure = f"{type(e).__name__}: {e}"
            self.ready.set()

    async def _resume(self, closed_at):
        record = {"closed": closed_at, "first_data": None}
        self.resumes.append(record)
        deadline = closed_at + 15
        while True:  # HAProxy retries another instance itself; this covers anything left
            try:
                ws = await websockets.connect(self.url, max_size=None, open_timeout=5)
                break
            except (OSError, websockets.InvalidHandshake, asyncio.TimeoutError) as e:
                if time.monotonic() > deadline:
                    self.failure = f"could not reconnect: {e}"
                    return None
                await asyncio.sleep(0.05)
        record["connected"] = time.monotonic()
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert welcome["type"] == "welcome", welcome
        await ws.send(json.dumps({"type": "resume", "id": "r", "data": {
            "session": self.session, "last_seq": self.last_seq, "last_pos": self.pos,
            "channels": self.channels}}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            now = time.monotonic()
            if "seq" in msg:  # re-sent messages come before the reply
                self._data(msg, now)
            elif msg["type"] == "resumed":
                record.update(resumed=now, reply=msg["data"])
                self.session = msg["data"]["session"]
                self._take_pos(msg["data"].get("pos"))
                return ws
            elif msg["type"] == "error":
                self.failure = f"resume refused: {msg}"
                await ws.close()
                return None

    async def stop(self):
        self.stopping = True
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        if self.ws is not None:
            await self.ws.close()


class Publisher(threading.Thread):
    """Publishes `total` messages at `rate` per second to the stream, channel i % 4, data i,
    each with a Nats-Msg-Id and waiting for its ack; moves to another NATS node when its node
    fails. actions maps a message index to a function run just before that message."""

    def __init__(self, cluster, total, rate, actions=None):
        super().__init__(daemon=True)
        self.cluster, self.total, self.rate, self.actions = cluster, total, rate, actions or {}
        self.error, self.longest_stall, self.done_at = None, 0.0, None

    def expected(self, channel):
        return [i for i in range(self.total) if CHANNELS[i % 4] == channel]

    def run(self):
        nodes = self.cluster.nats.nodes
        clients = {}
        current = 0
        start = time.monotonic()
        try:
            for i in range(self.total):
                if i in self.actions:
                    self.actions[i]()
                time.sleep(max(0.0, start + i / self.rate - time.monotonic()))
                began = time.monotonic()
                while True:
                    node = nodes[current % 3]
                    try:
                        if node.proc.poll() is not None:
                            raise ConnectionError("node stopped")
                        if current not in clients:
                            clients[current] = NatsClient(node.url, reconnect=False, timeout=1)
                        clients[current].js_publish(f"odin.token.{CHANNELS[i % 4]}", json.dumps(i),
                                                    msg_id=f"cl-{i}", headers={"Type": "tick"},
                                                    timeout=1, retry_until=time.time() + 1)
                        break
                    except (OSError, NatsError) as e:
                        if time.monotonic() - began > 20:
                            raise RuntimeError(f"message {i} not stored within 20 s: {e!r}")
                        old = clients.pop(current, None)
                        if old:
                            old.close()
                        current = (current + 1) % 3
                self.longest_stall = max(self.longest_stall, time.monotonic() - began)
            self.done_at = time.monotonic()
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            for c in clients.values():
                c.close()


async def start_clients(cluster, n):
    clients = [Client(cluster.lb.ws_url, channels_of(k)) for k in range(n)]
    for c in clients:  # one after another: leastconn sees each connection before the next
        c.start()
        await asyncio.wait_for(c.ready.wait(), 15)
        assert c.failure is None, c.failure
    return clients


def diagnose(cluster, clients, publisher):
    """What a failure needs: who got how much, and the processes' own words."""
    expected = {ch: len(publisher.expected(ch)) for ch in CHANNELS}
    counts = [f"{c.count()}/{sum(expected[ch] for ch in c.channels)}" for c in clients]
    out = [f"received per client: {' '.join(counts)}",
           f"publisher: error {publisher.error!r}, longest stall {publisher.longest_stall:.2f}s"]
    for i, gw in enumerate(cluster.gateways):
        out.append(f"--- gw{i + 1} (exit {gw.proc.poll()}):\n" + gw.output()[-2500:])
    return "\n".join(out)


async def finish(clients, publisher, timeout, cluster=None):
    try:
        await _finish(clients, publisher, timeout)
    except AssertionError as e:
        if cluster is None:
            raise
        raise AssertionError(f"{e}\n{diagnose(cluster, clients, publisher)}") from None


async def _finish(clients, publisher, timeout):
    """Waits for the publisher and for every client to hold every message, then a quiet moment
    (a repeat would show), stops the clients and checks exactly once, in order, seq contiguous."""
    deadline = time.monotonic() + timeout
    while publisher.is_alive() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not publisher.is_alive(), "publisher still running"
    assert publisher.error is None, repr(publisher.error)
    expected = {ch: publisher.expected(ch) for ch in CHANNELS}
    want = {id(c): sum(len(expected[ch]) for ch in c.channels) for c in clients}
    while time.monotonic() < deadline and any(c.count() < want[id(c)] and c.failure is None for c in clients):
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    for c in clients:
        await c.stop()
    for k, c in enumerate(clients):
        assert c.failure is None, f"client {k}: {c.failure}"
        assert not c.errors, f"client {k}: {c.errors[:5]}"
        for ch in c.channels:
            got = c.received[ch]
            assert got == expected[ch], (
                f"client {k} {ch}: {len(got)} of {len(expected[ch])} messages, "
                f"missing {sorted(set(expected[ch]) - set(got))[:10]}, "
                f"duplicates {len(got) - len(set(got))}, in order {got == sorted(got)}")
        assert c.seqs == list(range(1, len(c.seqs) + 1)), f"client {k}: seq {c.seqs[:20]}..."


async def test_clients_spread_and_receive_every_message(binary):
    with Cluster(binary, WS_DRAIN_TIMEOUT="2s") as cluster:
        clients = await start_clients(cluster, 45)
        per_gateway = cluster.connections()
        print(f"  connections per gateway through HAProxy: {per_gateway}")
        assert sum(per_gateway) == 45, per_gateway
        assert all(12 <= n <= 18 for n in per_gateway), per_gateway  # leastconn: 15 each
        info = cluster.nats.stream_info()
        assert info["config"]["num_replicas"] == 3, info["config"]
        assert len(info["cluster"].get("replicas", [])) == 2, info["cluster"]  # + the leader
        publisher = Publisher(cluster, total=120, rate=40)
        publisher.start()
        await finish(clients, publisher, 30, cluster)


async def test_nats_node_stopped_mid_stream(binary):
    with Cluster(binary, WS_DRAIN_TIMEOUT="2s", JS_CONSUMER_ACK_WAIT="2s") as cluster:
        clients = await start_clients(cluster, 30)
        # The node to stop: one that gateways are connected to (they must move to another URL of
        # NATS_URL), the stream's leader (the hardest to lose) when that is one of them.
        leader = cluster.nats.stream_info()["cluster"]["leader"]
        on_node = {node.server_name: cluster.nats.gateway_clients(node) for node in cluster.nats.nodes}
        with_gateways = [name for name, n in on_node.items() if n]
        victim = cluster.nats.node_named(leader if leader in with_gateways else with_gateways[0])
        events = {}

        def stop_node():
            events["stopped"] = time.monotonic()
            victim.stop()  # SIGTERM by PID

        def restart_node():
            victim.start()
            events["restarted"] = time.monotonic()

        publisher = Publisher(cluster, total=240, rate=40, actions={60: stop_node, 180: restart_node})
        publisher.start()
        await finish(clients, publisher, 45, cluster)
        cluster.nats.wait_formed(10)
        reconnects = []
        for gw in cluster.gateways:
            assert gw.proc.poll() is None, gw.output()
            reconnects.append(int(metric(gw, "ws_broker_reconnects_total")))
        print(f"  stopped {victim.server_name} ({'the stream leader, ' if victim.server_name == leader else ''}"
              f"{on_node[victim.server_name]} gateway(s) on it) for "
              f"{events['restarted'] - events['stopped']:.1f} s; longest publish stall "
              f"{publisher.longest_stall * 1000:.0f} ms; stream leader now "
              f"{cluster.nats.stream_info()['cluster']['leader']}; NATS reconnections per gateway {reconnects}")
        assert sum(reconnects) == on_node[victim.server_name], (reconnects, on_node)


async def test_full_instance_refusal_is_retried_elsewhere(binary):
    # deploy/haproxy.cfg retries an upgrade a gateway refuses with 503 on another instance. gw1
    # takes 3 connections (HAProxy is not told: its per-server cap is the test's 2000), so
    # leastconn keeps choosing it and every further upgrade it refuses must be retried.
    with Cluster(binary, per_gateway=({"WS_MAX_CONNECTIONS": 3}, {}, {}), WS_DRAIN_TIMEOUT="2s") as cluster:
        clients = await start_clients(cluster, 24)
        per_gateway = cluster.connections()
        print(f"  connections per gateway, gw1 capped at 3: {per_gateway}")
        assert per_gateway[0] == 3 and sum(per_gateway) == 24, per_gateway
        rejected = cluster.gateways[0].json("/stats")["connectionsRejected"]
        assert rejected >= 5, rejected  # leastconn sent it more, each one refused and retried
        assert cluster.lb.server_states()["gw1"] == "UP"  # a full instance stays in
        publisher = Publisher(cluster, total=40, rate=40)
        publisher.start()
        await finish(clients, publisher, 20, cluster)


async def failover(binary, sig):
    """Stops the gateway holding the most clients with `sig` mid-stream; its clients must
    reconnect through HAProxy, resume on another instance and miss nothing. Returns the figures."""
    with Cluster(binary, WS_DRAIN_TIMEOUT="2s", WS_RESUME_TTL="10s") as cluster:
        clients = await start_clients(cluster, 30)
        victim = max(range(3), key=lambda i: cluster.connections()[i])
        on_victim = cluster.connections()[victim]
        name = f"gw{victim + 1}"
        killed = {}

        def stop_gateway():  # by PID; SIGKILL: no close frames; SIGTERM: drain, close 1001
            killed["at"] = time.monotonic()
            threading.Thread(target=cluster.gateways[victim].stop, args=(sig,), daemon=True).start()
            threading.Thread(target=watch_haproxy, daemon=True).start()

        def watch_haproxy():  # when the balancer takes the instance out
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if cluster.lb.server_states()[name] != "UP":
                    killed["down"] = time.monotonic()
                    return
                time.sleep(0.01)

        publisher = Publisher(cluster, total=200, rate=40, actions={60: stop_gateway})
        publisher.start()
        await finish(clients, publisher, 40, cluster)
        moved = [c for c in clients if c.resumes]
        assert len(moved) == on_victim, f"{len(moved)} clients reconnected, {on_victim} were on {name}"
        for c in moved:
            assert len(c.resumes) == 1, c.resumes
            r = c.resumes[0]
            assert r["reply"].get("restored") is True, r["reply"]
            assert r["first_data"] is not None, r
        assert "down" in killed, f"HAProxy did not take {name} out within 5 s"
        assert cluster.gateways[victim].proc.poll() is not None and cluster.connections()[victim] is None
        data_again = sorted(c.resumes[0]["first_data"] - killed["at"] for c in moved)
        resumed = sorted(c.resumes[0]["resumed"] - killed["at"] for c in moved)
        replayed = sum(c.resumes[0]["reply"]["replayed"] for c in moved)
        how = "kill -9" if sig == signal.SIGKILL else "SIGTERM (drain)"
        print(f"  {how} {name} with {on_victim} of 30 clients: data again after median "
              f"{statistics.median(data_again) * 1000:.0f} ms, max {data_again[-1] * 1000:.0f} ms "
              f"(resumed: median {statistics.median(resumed) * 1000:.0f} ms, max {resumed[-1] * 1000:.0f} ms); "
              f"{replayed} messages re-sent, 0 lost, 0 repeated; out of HAProxy after "
              f"{(killed['down'] - killed['at']) * 1000:.0f} ms")


async def test_gateway_killed_clients_resume_elsewhere(binary):
    await failover(binary, signal.SIGKILL)


async def test_gateway_drained_clients_resume_elsewhere(binary):
    await failover(binary, signal.SIGTERM)


if __name__ == "__main__":
    run_tests([
        test_clients_spread_and_receive_every_message,
        test_nats_node_stopped_mid_stream,
        test_full_instance_refusal_is_retried_elsewhere,
        test_gateway_killed_clients_resume_elsewhere,
        test_gateway_drained_clients_resume_elsewhere,
    ])
