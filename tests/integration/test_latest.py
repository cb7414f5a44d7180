"""Latest-value subscriptions and a rate per subscription (docs/protocol.md, "Extension:
latest-value subscriptions and a rate per subscription"), with python3-websockets and raw sockets
against the real binary: `max_hz` paces a channel and every message it sends is the newest,
`conflated` counts exactly the messages skipped, a `latest` reader that stops reading is never
cut and costs the gateway one held message per channel while an `all` reader is cut with 4008,
and replay and resume keep the frames, their counts and the numbering."""
import asyncio
import bisect
import json
import re
import socket
import time

import websockets

from harness import (Gateway, RawClient, bounded_memory_env, connect, memory_kb, recv_json, recv_until,
                     run_tests)

# A data envelope: v1's keys in v1's order, with `conflated` (a count, never 0) right after `seq`.
ENVELOPE = re.compile(r'^\{"seq":\d+,(?:"conflated":[1-9]\d*,)?"ts":\d+,"type":"[^"]*",'
                      r'"channel":"[^"]*","data":')
V1_ENVELOPE = re.compile(r'^\{"seq":\d+,"ts":\d+,"type":"[^"]*","channel":"[^"]*","data":')
JSON = {"Content-Type": "application/json"}
SLACK = 0.020  # how long a message acknowledged by POST /publish may take to become the newest


def subscribe(channels, request_id=None, **options):
    request = {"type": "subscribe", "data": {"channels": channels, **options}}
    if request_id is not None:
        request["id"] = request_id
    return json.dumps(request)


def metrics(gw):
    """Every sample of /metrics by metric name (labels summed); absent names are absent."""
    _, _, body = gw.http("GET", "/metrics")
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            sample, value = line.rsplit(" ", 1)
            name = sample.split("{", 1)[0]
            values[name] = values.get(name, 0.0) + float(value)
    return values


def rate(times):
    """Messages per second between the first and the last of these arrival times."""
    assert len(times) >= 3, f"too few messages to measure a rate: {len(times)}"
    return (len(times) - 1) / (times[-1] - times[0])


class Paced:
    """Publishes `count` messages {"n": 0..count-1} on one channel, one every 1/rate s, from a
    thread over one keep-alive HTTP connection. acked[n]: when POST /publish answered for message
    n, i.e. when the gateway had it."""

    def __init__(self, gw, channel, per_second, count):
        self.gw, self.channel, self.per_second, self.count = gw, channel, per_second, count
        self.acked = []

    def run(self):
        conn = self.gw.connection()
        try:
            start = time.monotonic()
            for n in range(self.count):
                delay = start + n / self.per_second - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                status, _, body = self.gw.http("POST", "/publish", {"channel": self.channel, "data": {"n": n}},
                                               JSON, conn=conn)
                assert status == 200, (status, body)
                self.acked.append(time.monotonic())
        finally:
            conn.close()

    def newest_before(self, t):
        """The largest n the gateway had acknowledged before t (-1: none)."""
        return bisect.bisect_left(self.acked, t) - 1


class Receiver:
    """Reads a websockets connection in the background: every frame with its arrival time."""

    def __init__(self, ws):
        self.ws = ws
        self.frames = []  # (monotonic arrival time, raw text, parsed)
        self.closed = None
        self.data_arrived = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self):
        try:
            async for raw in self.ws:
                self.frames.append((time.monotonic(), raw, json.loads(raw)))
                if "seq" in self.frames[-1][2]:
                    self.data_arrived.set()
            self.closed = "closed normally"
        except websockets.ConnectionClosed as e:
            self.closed = e

    def data(self, channel=None):
        return [f for f in self.frames if "seq" in f[2] and channel in (None, f[2]["channel"])]

    async def until(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def next_data(self, timeout=3):
        """Waits for the next data frame; returns its arrival time."""
        self.data_arrived.clear()
        await asyncio.wait_for(self.data_arrived.wait(), timeout)
        return self.data()[-1][0]

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


def check_seq_contiguous(seqs, what, first=1):
    assert seqs == list(range(first, first + len(seqs))), (
        f"{what}: seq not contiguous from {first}: {seqs[:10]}...{seqs[-5:]}",
        [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1][:10])


def check_latest_accounting(envelopes, published, what, previous=-1):
    """The rules of `conflated` on one channel of a `latest` subscription, from its data frames
    as (raw, parsed), when the channel's messages were {"n": previous+1 .. published-1}, all of
    them while subscribed: each newer than the one before, K = how many were skipped since the
    previous one received (the key absent when 0), ending on the newest, and sum(K) + received ==
    published. Returns sum(K)."""
    values = [m["data"]["n"] for _, m in envelopes]
    for raw, m in envelopes:
        assert ENVELOPE.match(raw), f"{what}: envelope keys: {raw[:120]}"
    assert values == sorted(set(values)), f"{what}: values not increasing: {values[:40]}"
    assert values and values[-1] == published - 1, (
        f"{what}: ended on {values[-1] if values else None}, the last published was {published - 1}")
    conflated = sum(m.get("conflated", 0) for _, m in envelopes)
    wrong, prev = [], previous
    for _, m in envelopes:
        skipped = m["data"]["n"] - prev - 1
        if m.get("conflated", 0) != skipped:
            wrong.append(f"seq {m['seq']} (value {m['data']['n']}) says conflated "
                         f"{m.get('conflated', 0)}, {skipped} were skipped since the previous one")
        prev = m["data"]["n"]
    assert conflated + len(envelopes) == published - previous - 1 and not wrong, (
        f"{what}: sum(conflated) {conflated} + received {len(envelopes)}, published "
        f"{published - previous - 1}; " + "; ".join(wrong[:5]))
    return conflated


def check_newest(envelopes, pub, what):
    """Each message was the newest when sent: no message the gateway had acknowledged more than
    SLACK before the frame arrived is newer than it."""
    stale = []
    for t, _, m in envelopes:
        floor = pub.newest_before(t - SLACK)
        if m["data"]["n"] < floor:
            stale.append((m["seq"], m["data"]["n"], floor))
    assert not stale, (f"{what}: not the newest when sent (seq, value, newest acknowledged "
                       f"{SLACK * 1000:.0f} ms before it arrived): {stale[:10]}")


async def latest_client(gw, channels, **options):
    ws, welcome = await connect(gw)
    await ws.send(subscribe(channels, "sub", **options))
    reply = await recv_json(ws)
    assert reply["type"] == "subscribed" and reply["data"]["channels"] == channels, reply
    return ws, welcome


async def test_max_hz_paces_newest_values_and_counts_the_rest(binary):
    """One publisher at 100 msg/s for 4 s. A `max_hz: 4` subscriber gets 4 +/- 0.5 messages per
    second, each the newest at its send time, the last one published at the end, seq contiguous,
    and conflated counts adding up; an `all` subscriber on the same gateway gets all 400 in order
    with no `conflated` key."""
    with Gateway(binary) as gw:
        lat, _ = await latest_client(gw, ["RATE"], delivery="latest", max_hz=4)
        every, _ = await connect(gw, "?channels=RATE", max_queue=None)
        assert await recv_json(every) == {"type": "subscribed", "data": {"channels": ["RATE"]}}
        lat_rx, all_rx = Receiver(lat), Receiver(every)
        pub = Paced(gw, "RATE", 100, 400)
        started = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, pub.run)
        stopped = time.monotonic()
        assert stopped - started < 8, f"the publisher took {stopped - started:.1f} s for 4 s of messages"
        await asyncio.sleep(0.6)  # more than two slots: the held newest value goes out
        await all_rx.until(lambda: len(all_rx.data()) >= 400, 5)
        await lat_rx.stop()
        await all_rx.stop()
        got = lat_rx.data()
        steady = [t for t, _, _ in got if started + 0.5 <= t <= stopped]
        hz = rate(steady)
        gaps = [b - a for a, b in zip(steady, steady[1:])]
        conflated = sum(m.get("conflated", 0) for _, _, m in got)
        print(f"  max_hz 4: {hz:.2f} msg/s over the steady {steady[-1] - steady[0]:.2f} s, smallest gap "
              f"{min(gaps) * 1000:.0f} ms; {len(got)} of 400 received, sum(conflated) {conflated}")
        assert 3.5 <= hz <= 4.5, f"max_hz 4: {hz:.2f} messages/s ({len(got)} of 400 received)"
        assert min(gaps) >= 0.5 / 4, f"max_hz 4: two messages {min(gaps) * 1000:.0f} ms apart"
        check_seq_contiguous([m["seq"] for _, _, m in got], "latest client")
        check_latest_accounting([(raw, m) for _, raw, m in got], 400, "max_hz 4")
        check_newest(got, pub, "max_hz 4")
        # The `all` subscriber: every message, in order, v1 envelopes.
        everything = all_rx.data()
        assert [m["data"]["n"] for _, _, m in everything] == list(range(400)), len(everything)
        check_seq_contiguous([m["seq"] for _, _, m in everything], "all client")
        assert all(V1_ENVELOPE.match(raw) and "conflated" not in m for _, raw, m in everything)
        assert lat_rx.closed is None and all_rx.closed is None, (lat_rx.closed, all_rx.closed)
        await lat.close()
        await every.close()


async def test_changing_max_hz_takes_effect_at_once(binary):
    """100 msg/s for ~7.5 s on a `max_hz: 4` subscription. 120 ms after a message (one held, about
    12 skipped) the client subscribes the channel again with max_hz 10: the held message goes out
    within a new slot with its count, and the rate from then on is 10 +/- 1 per second. Right after
    a later message it subscribes again with max_hz 2: the next slot is half a second after that
    message. The accounting runs on across both changes."""
    with Gateway(binary) as gw:
        lat, _ = await latest_client(gw, ["RATE"], delivery="latest", max_hz=4)
        lat_rx = Receiver(lat)
        pub = Paced(gw, "RATE", 100, 750)
        started = time.monotonic()
        publishing = asyncio.get_running_loop().run_in_executor(None, pub.run)
        await asyncio.sleep(2.3)
        before_faster = await lat_rx.next_data()
        await asyncio.sleep(0.12)  # mid-slot: the newest value is held, ~12 skipped
        await lat.send(subscribe(["RATE"], "faster", max_hz=10))
        await asyncio.sleep(3.0)
        before_slower = await lat_rx.next_data()
        await lat.send(subscribe(["RATE"], "slower", max_hz=2))  # right after a message
        await publishing
        stopped = time.monotonic()
        assert stopped - started < 12, f"the publisher took {stopped - started:.1f} s for 7.5 s of messages"
        await asyncio.sleep(1.1)
        await lat_rx.stop()
        replies = {m.get("id"): (t, m) for t, _, m in lat_rx.frames if "seq" not in m}
        assert set(replies) == {"faster", "slower"}, replies
        faster, slower = replies["faster"][0], replies["slower"][0]
        got = lat_rx.data()
        times = [t for t, _, _ in got]
        at4 = [t for t in times if started + 0.5 <= t <= before_faster]
        at10 = [t for t in times if before_faster < t < before_slower]
        at2 = [t for t in times if before_slower < t <= stopped]
        hz4, hz10 = rate(at4), rate(at10)
        first_wait = at10[0] - faster
        in_first_second = sum(1 for t in at10 if t <= faster + 1.0)
        gaps10 = [b - a for a, b in zip([before_faster] + at10, at10)]
        gaps2 = [b - a for a, b in zip([before_slower] + at2, at2)]
        print(f"  max_hz 4: {hz4:.2f} msg/s; changed to 10 120 ms after a message: the next one "
              f"{first_wait * 1000:.0f} ms after `subscribed`, then {hz10:.2f} msg/s ({in_first_second} in "
              f"the first second), smallest gap {min(gaps10) * 1000:.0f} ms; changed to 2 right after a "
              f"message: gaps {[round(g * 1000) for g in gaps2]} ms")
        problems = []  # every rule this run broke, not just the first

        def check(ok, message):
            if not ok:
                problems.append(message)

        check(3.5 <= hz4 <= 4.5, f"max_hz 4 before the change: {hz4:.2f} messages/s")
        check(9 <= hz10 <= 11, f"max_hz 10 after the change: {hz10:.2f} messages/s")
        check(first_wait <= 0.2, f"first message {first_wait * 1000:.0f} ms after the change to 10")
        check(in_first_second >= 8, f"{in_first_second} messages in the first second at max_hz 10")
        check(min(gaps10) >= 0.5 / 10, f"max_hz 10: two messages {min(gaps10) * 1000:.0f} ms apart")
        check(len(at2) >= 3 and min(gaps2) >= 0.8 / 2,
              f"max_hz 2 from right after a message: gaps {[round(g * 1000) for g in gaps2]} ms "
              f"(`subscribed` {(slower - before_slower) * 1000:.0f} ms after that message)")
        for rule, args in ((check_seq_contiguous, ([m["seq"] for _, _, m in got], "latest client")),
                           (check_latest_accounting, ([(raw, m) for _, raw, m in got], 750,
                                                      "max_hz 4, then 10, then 2")),
                           (check_newest, (got, pub, "max_hz 4, then 10, then 2"))):
            try:
                rule(*args)
            except AssertionError as e:
                problems.append(str(e))
        check(replies["faster"][1]["data"].get("max_hz") == 10, replies["faster"])
        check(replies["slower"][1]["data"].get("max_hz") == 2, replies["slower"])
        assert not problems, "\n".join(map(str, problems))
        await lat.close()


async def test_max_hz_spacing_when_messages_are_sparse(binary):
    """max_hz 4 with messages that come now and then: value 0 after a quiet second (sent at once),
    value 1 0.4 s later (at once: its slot was free), value 2 50 ms after 1 arrived (held for the
    slot 1/4 s after 1). Three rounds: 2 never comes less than 1/max_hz (with 20% slack) after 1."""
    with Gateway(binary) as gw:
        ws, _ = await latest_client(gw, ["SPARSE"], max_hz=4)
        gaps = []
        for round_ in range(3):
            await asyncio.sleep(1.0)
            base = 3 * round_
            gw.publish({"channel": "SPARSE", "data": {"n": base}})
            first = await recv_json(ws)
            assert first["data"] == {"n": base} and "conflated" not in first, first
            await asyncio.sleep(0.4)
            gw.publish({"channel": "SPARSE", "data": {"n": base + 1}})
            got = []
            for value in (base + 1, base + 2):
                if value == base + 2:
                    await asyncio.sleep(0.05)
                    gw.publish({"channel": "SPARSE", "data": {"n": value}})
                m = await recv_json(ws, 2)
                got.append((time.monotonic(), m))
            assert [(m["data"]["n"], m.get("conflated")) for _, m in got] == [(base + 1, None), (base + 2, None)], got
            gaps.append(got[1][0] - got[0][0])
        print(f"  max_hz 4: value 1 published 0.4 s after 0, value 2 50 ms after 1 arrived; they came {[round(g * 1000) for g in gaps]} ms apart")
        assert min(gaps) >= 0.8 / 4, f"max_hz 4: messages {[round(g * 1000) for g in gaps]} ms apart"
        await ws.close()


async def expect_paced(gw, ws, channel, first, count, max_hz, what):
    """Publishes values first..first+count-1 on `channel` in one POST to a connection whose only
    traffic is that channel and whose last value there was first-1 (or none): a `max_hz`
    subscription sends at most the first and then the newest (the burst arrives at once), the
    second one slot later. Returns the data messages."""
    gw.publish([{"channel": channel, "data": {"n": first + i}} for i in range(count)])
    got = []
    deadline = time.monotonic() + 2.5 / max_hz
    while time.monotonic() < deadline:
        try:
            raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        got.append((time.monotonic(), raw, json.loads(raw)))
    data = [(t, raw, m) for t, raw, m in got if "seq" in m]
    assert len(data) == len(got), (what, [m for _, _, m in got if "seq" not in m])
    values = [m["data"]["n"] for _, _, m in data]
    assert 1 <= len(data) <= 2, f"{what}: a burst of {count} at max_hz {max_hz} gave {values}"
    assert all(m["channel"] == channel for _, _, m in data), (what, data)
    if len(data) == 2:
        gap = data[1][0] - data[0][0]
        assert gap >= 0.8 / max_hz, f"{what}: {gap * 1000:.0f} ms between two messages at max_hz {max_hz}"
    check_latest_accounting([(raw, m) for _, raw, m in data], first + count, what, previous=first - 1)
    return data


async def expect_all(gw, ws, channel, first, count, what, unsubscribed=None):
    """Publishes `count` values on `channel` in one POST (after one on `unsubscribed`, which must
    not arrive): an `all` subscription gets every one, in order, without `conflated`."""
    batch = [{"channel": channel, "data": {"n": first + i}} for i in range(count)]
    if unsubscribed:
        batch.insert(0, {"channel": unsubscribed, "data": {"n": -1}})
    gw.publish(batch)
    got = [json.loads(await asyncio.wait_for(ws.recv(), 3)) for _ in range(count)]
    assert [(m.get("channel"), m.get("data")) for m in got] == [(channel, {"n": first + i}) for i in range(count)], (
        what, got[:3])
    assert not any("conflated" in m for m in got), (what, [m for m in got if "conflated" in m][:3])
    check_seq_contiguous([m["seq"] for m in got], what, got[0]["seq"])
    try:
        extra = await recv_json(ws, 0.3)
        raise AssertionError(f"{what}: unexpected {extra}")
    except asyncio.TimeoutError:
        pass
    return got


async def test_subscribed_echo_and_bad_options(binary):
    """`subscribed` echoes the options when the request had any (delivery always, max_hz when
    given) and is v1's reply without them; bad options are bad_request and change nothing: an
    `all` channel stays `all`, a `max_hz` channel keeps its rate, an unsubscribed channel stays
    unsubscribed."""
    with Gateway(binary) as gw:
        ws, _ = await connect(gw, "?channels=V1")
        assert await recv_json(ws) == {"type": "subscribed", "data": {"channels": ["V1"]}}
        echoes = [
            ({"channels": ["V2"]}, {"channels": ["V2"]}),
            ({"channels": ["V3"], "snapshot": True}, {"channels": ["V3"]}),
            ({"channels": ["L1", "L2", "L1"], "delivery": "latest", "max_hz": 4},
             {"channels": ["L1", "L2"], "delivery": "latest", "max_hz": 4}),
            ({"channels": ["L3"], "delivery": "latest"}, {"channels": ["L3"], "delivery": "latest"}),
            ({"channels": ["L4"], "max_hz": 0.5}, {"channels": ["L4"], "delivery": "latest", "max_hz": 0.5}),
            ({"symbols": ["L5"], "max_hz": 1000}, {"channels": ["L5"], "delivery": "latest", "max_hz": 1000}),
            ({"channels": ["L6"], "max_hz": 0.1, "delivery": "latest"},
             {"channels": ["L6"], "delivery": "latest", "max_hz": 0.1}),
            ({"channels": ["A1"], "delivery": "all"}, {"channels": ["A1"], "delivery": "all"}),
        ]
        wrong = []
        for n, (data, expected) in enumerate(echoes):
            await ws.send(json.dumps({"type": "subscribe", "data": data, "id": n}))
            reply = await recv_json(ws)
            if reply != {"type": "subscribed", "data": expected, "id": n}:
                wrong.append((data, reply))
        assert not wrong, "subscribed echo (request, reply):\n" + "\n".join(map(str, wrong))
        bad = [{"max_hz": 0}, {"max_hz": 5000}, {"max_hz": "abc"}, {"delivery": "bogus"},
               {"delivery": "all", "max_hz": 4}, {"max_hz": -1}, {"max_hz": 0.05}, {"max_hz": 1000.5},
               {"max_hz": True}, {"delivery": 1}, {"delivery": "latest", "max_hz": 0}]
        for n, options in enumerate(bad):
            await ws.send(subscribe(["V1", "L1", "NEW1"], f"bad{n}", **options))
            reply = await recv_json(ws)
            assert reply["type"] == "error" and reply["data"]["code"] == "bad_request", (options, reply)
            assert reply["id"] == f"bad{n}" and reply["data"]["message"], reply
        # Nothing changed: V1 is still `all`, L1 still at 4 per second, NEW1 not subscribed.
        await expect_all(gw, ws, "V1", 0, 20, "V1 after bad options", unsubscribed="NEW1")
        await expect_paced(gw, ws, "L1", 0, 20, 4, "L1 after bad options")
        await ws.close()


async def test_changing_options_of_a_subscribed_channel(binary):
    """`latest` to `all`: the held message goes out first, then every message. A subscribe
    without options leaves `latest` options as they were and `all` as it was."""
    with Gateway(binary) as gw:
        ws, _ = await latest_client(gw, ["C"], max_hz=0.2)  # one message per 5 s
        gw.publish({"channel": "C", "data": {"n": 0}})
        first = await recv_json(ws)  # the slot is free: at once
        assert first["data"] == {"n": 0} and first["seq"] == 1 and "conflated" not in first, first
        gw.publish([{"channel": "C", "data": {"n": n}} for n in (1, 2, 3)])  # held: 3, 2 skipped
        try:
            early = await recv_json(ws, 1.0)
            raise AssertionError(f"max_hz 0.2: a second message within a second: {early}")
        except asyncio.TimeoutError:
            pass
        await ws.send(subscribe(["C"], "all", delivery="all"))
        reply, got = await recv_until(ws, lambda m: "seq" not in m)
        assert reply == {"type": "subscribed", "data": {"channels": ["C"], "delivery": "all"}, "id": "all"}, reply
        gw.publish([{"channel": "C", "data": {"n": n}} for n in (4, 5, 6)])
        while len(got) < 4:
            got.append(await recv_json(ws))
        assert [(m["seq"], m["data"]["n"], m.get("conflated")) for m in got] == [
            (2, 3, 2), (3, 4, None), (4, 5, None), (5, 6, None)], got
        # Without options: C stays `all`.
        await ws.send(subscribe(["C"], "plain"))
        assert await recv_json(ws) == {"type": "subscribed", "data": {"channels": ["C"]}, "id": "plain"}
        await expect_all(gw, ws, "C", 7, 10, "C after a plain subscribe")
        # A `latest` channel keeps its rate through a plain subscribe.
        await ws.send(subscribe(["P"], "p4", max_hz=4))
        assert (await recv_json(ws))["type"] == "subscribed"
        await ws.send(subscribe(["P"], "plain-p"))
        assert await recv_json(ws) == {"type": "subscribed", "data": {"channels": ["P"]}, "id": "plain-p"}
        await expect_paced(gw, ws, "P", 0, 20, 4, "P after a plain subscribe")
        await ws.close()


SLOW_CHANNELS = [f"SL{i:02d}" for i in range(20)]
SLOW_SECONDS = 10
SLOW_TICK = 0.05
SLOW_BATCH = 50  # per tick: 1000 messages of ~1 KB per second over the 20 channels
CONFLATE_BYTES = 65536
# 4008 after 1 MiB of backlog: half a second of this load, so that the reading client (Python, on
# a shared machine) is not cut for a pause of its own; the stalled `all` client passes it at once.
QUEUE_BYTES = 1 << 20


def read_until_newest(client, published, what):
    """Reads a raw client's frames until every channel's newest value came, then 0.5 s more;
    returns its data frames as (raw, parsed). It must never be closed."""
    frames, last = [], {}
    deadline = time.monotonic() + 30
    while any(last.get(ch) != n - 1 for ch, n in published.items()):
        assert time.monotonic() < deadline, f"{what}: newest values never came: {last}"
        try:
            frame = client.read_frame(10)
        except socket.timeout:
            raise AssertionError(f"{what}: nothing for 10 s; last values {last}, published {published}")
        assert frame is not None, f"{what}: connection closed (EOF) after {len(frames)} messages"
        op, payload = frame
        assert op != 0x8, f"{what}: closed with {payload[:2].hex()} after {len(frames)} messages"
        if op == 0x9:
            client.send_frame(0xA, payload)
        elif op == 0x1:
            text = payload.decode()
            m = json.loads(text)
            assert "seq" in m, (what, m)
            frames.append((text, m))
            last[m["channel"]] = m["data"]["n"]
    while True:
        try:
            frame = client.read_frame(0.5)
        except socket.timeout:
            break
        assert frame is not None and frame[0] != 0x1, (what, "after the newest values", frame)
    return frames


async def test_stalled_latest_reader_is_never_cut_and_holds_one_message_per_channel(binary):
    """A raw client on a 4 KiB receive buffer subscribes `latest` to 20 channels and reads nothing
    for 10 s while 1000 messages of 1 KB per second go to those channels. It is never closed, and
    when it reads it gets seq 1, 2, 3, ... ending on every channel's newest value, with conflated
    counts adding up per channel; it was sent little more than WS_CONFLATE_BYTES. An `all` raw
    client in the same situation is closed with 4008; a reading client gets everything meanwhile.
    /metrics and /stats show the held messages and the conflated count; memory stays bounded."""
    with Gateway(binary, WS_CLIENT_QUEUE_BYTES=QUEUE_BYTES, WS_CONFLATE_BYTES=CONFLATE_BYTES,
                 WS_SOCKET_SEND_BUFFER="16K", **bounded_memory_env()) as gw:
        loop = asyncio.get_running_loop()
        names = ",".join(SLOW_CHANNELS)
        lazy = RawClient(gw.port, "/ws", rcvbuf=4096)
        assert lazy.read_http_head()[0] == 101
        assert json.loads(lazy.read_frame()[1])["type"] == "welcome"
        lazy.send_text(subscribe(SLOW_CHANNELS, "lazy", delivery="latest"))
        reply = json.loads(lazy.read_frame()[1])
        assert reply["type"] == "subscribed" and reply["data"]["channels"] == SLOW_CHANNELS, reply
        stuck = RawClient(gw.port, "/ws?channels=" + names, rcvbuf=4096)
        assert stuck.read_http_head()[0] == 101
        for expected in ("welcome", "subscribed"):
            assert json.loads(stuck.read_frame()[1])["type"] == expected
        reader, _ = await connect(gw, "?channels=" + names, max_queue=None)
        assert (await recv_json(reader))["type"] == "subscribed"
        reader_rx = Receiver(reader)
        await asyncio.sleep(0.2)
        peak_before_kb = memory_kb(gw, "VmHWM")
        stats_before = gw.json("/stats")
        published = {ch: 0 for ch in SLOW_CHANNELS}
        pad = "p" * 1000

        def publish_all():
            conn = gw.connection()
            try:
                start = time.monotonic()
                for tick in range(int(SLOW_SECONDS / SLOW_TICK)):
                    delay = start + tick * SLOW_TICK - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    batch = []
                    for i in range(SLOW_BATCH):
                        ch = SLOW_CHANNELS[i % len(SLOW_CHANNELS)]
                        batch.append({"channel": ch, "data": {"n": published[ch], "pad": pad}})
                        published[ch] += 1
                    status, _, body = gw.http("POST", "/publish", batch, JSON, conn=conn)
                    assert status == 200, (status, body)
            finally:
                conn.close()

        started = time.monotonic()
        publishing = loop.run_in_executor(None, publish_all)
        # The `all` client that does not read is cut with 4008 once its backlog passes
        # WS_CLIENT_QUEUE_BYTES; it reads then (the gateway writes the close frame within 5 s
        # or drops the socket), the `latest` one goes on not reading.
        cut_after, code, frames = None, None, []
        while time.monotonic() - started < SLOW_SECONDS * 0.8:
            if cut_after is None and (await loop.run_in_executor(None, metrics, gw)).get(
                    "ws_slow_consumer_disconnects_total", 0) >= 1:
                cut_after = time.monotonic() - started
                code, frames = await loop.run_in_executor(None, stuck.read_until_close, 5)
            await asyncio.sleep(0.1)
        during = await loop.run_in_executor(None, metrics, gw)
        stats_during = await loop.run_in_executor(None, gw.json, "/stats")
        await publishing
        total = sum(published.values())
        took = time.monotonic() - started
        assert took < SLOW_SECONDS * 2, f"publishing {total} messages took {took:.1f} s"
        # The reading client got everything, in order, while the two others did not read.
        complete = await reader_rx.until(lambda: len(reader_rx.data()) >= total, 10)
        everything = reader_rx.data()
        assert complete, f"the reading client got {len(everything)} of {total} ({reader_rx.closed})"
        check_seq_contiguous([m["seq"] for _, _, m in everything], "reading client")
        for ch in SLOW_CHANNELS:
            values = [m["data"]["n"] for _, _, m in everything if m["channel"] == ch]
            assert values == list(range(published[ch])), (ch, values[:5], len(values))
        assert not any("conflated" in m for _, _, m in everything)
        # The `all` client that did not read: 4008.
        assert cut_after is not None, "the `all` client that did not read was not cut"
        assert code == 4008, (code, len(frames))
        # The `latest` client that did not read: still there, every newest value.
        lazy_frames = await loop.run_in_executor(None, read_until_newest, lazy, published, "latest reader")
        check_seq_contiguous([m["seq"] for _, m in lazy_frames], "latest reader")
        conflated = 0
        for ch in SLOW_CHANNELS:
            conflated += check_latest_accounting([f for f in lazy_frames if f[1]["channel"] == ch],
                                                 published[ch], f"latest reader, {ch}")
        sent_bytes = sum(len(raw) for raw, _ in lazy_frames)
        lazy.send_text(json.dumps({"type": "heartbeat", "id": "alive"}))
        while True:
            op, payload = lazy.read_frame(5)
            if op == 0x1:
                pong = json.loads(payload)
                assert pong["type"] == "pong" and pong["id"] == "alive", pong
                break
        # /metrics and /stats show what each event loop copied at its last sweep (up to 1 s ago).
        for _ in range(40):
            after = await loop.run_in_executor(None, metrics, gw)
            if after.get("ws_held_messages") == 0 and after.get("ws_conflated_messages_total") == conflated:
                break
            await asyncio.sleep(0.1)
        stats_after = gw.json("/stats")
        grown_mb = (memory_kb(gw, "VmHWM") - peak_before_kb) / 1024
        print(f"  published {total} in {took:.1f} s; latest reader: {len(lazy_frames)} messages "
              f"({sent_bytes >> 10} KiB), sum(conflated) {conflated}; all reader: {len(frames)} frames "
              f"then 4008 after {cut_after:.1f} s; during the stall: held {during.get('ws_held_messages')}, conflated "
              f"{during.get('ws_conflated_messages_total')}, latest subscriptions "
              f"{during.get('ws_latest_subscriptions')}; after: held {after.get('ws_held_messages')}, "
              f"conflated {after.get('ws_conflated_messages_total')}; peak RSS +{grown_mb:.1f} MiB, "
              f"memoryMB {stats_before['memoryMB']} -> {stats_after['memoryMB']}")
        assert conflated > 0 and sent_bytes < CONFLATE_BYTES + (512 << 10), (conflated, sent_bytes)
        assert during.get("ws_conflated_messages_total", 0) > 0, during.get("ws_conflated_messages_total")
        assert 1 <= during.get("ws_held_messages", 0) <= len(SLOW_CHANNELS), during.get("ws_held_messages")
        assert during.get("ws_latest_subscriptions") == len(SLOW_CHANNELS), during.get("ws_latest_subscriptions")
        assert stats_during.get("conflatedMessages", 0) > 0, stats_during
        assert 1 <= stats_during.get("heldMessages", 0) <= len(SLOW_CHANNELS), stats_during
        assert stats_during.get("latestSubscriptions") == len(SLOW_CHANNELS), stats_during
        assert after.get("ws_held_messages") == 0, after.get("ws_held_messages")
        assert after.get("ws_conflated_messages_total") == conflated, (after.get("ws_conflated_messages_total"),
                                                                       conflated)
        assert stats_after.get("conflatedMessages") == conflated, stats_after
        assert after.get("ws_slow_consumer_disconnects_total") == 1, after.get("ws_slow_consumer_disconnects_total")
        assert grown_mb < 64, f"peak RSS grew {grown_mb:.1f} MiB"
        assert stats_after["memoryMB"] - stats_before["memoryMB"] < 64, (stats_before["memoryMB"],
                                                                          stats_after["memoryMB"])
        lazy.close()
        stuck.close()
        await reader_rx.stop()
        await reader.close()


async def resume_latest_once(gw, latest_ch, all_ch):
    ws, welcome = await connect(gw)
    session = welcome["data"]["session"]
    await ws.send(subscribe([latest_ch], "l", max_hz=4))
    assert (await recv_json(ws))["type"] == "subscribed"
    await ws.send(subscribe([all_ch], "a"))
    assert (await recv_json(ws))["type"] == "subscribed"
    gw.publish({"channel": latest_ch, "data": {"n": 0}})
    m = await recv_json(ws)
    assert (m["seq"], m["data"], m.get("conflated")) == (1, {"n": 0}, None), m
    await ws.close()  # not a graceful shutdown: the session stays, detached
    # While away: `all` messages are numbered and kept in the ring, `latest` ones only held.
    gw.publish([{"channel": all_ch, "data": {"n": 0}}] + [{"channel": latest_ch, "data": {"n": n}} for n in range(1, 11)]
               + [{"channel": all_ch, "data": {"n": n}} for n in (1, 2)])
    await asyncio.sleep(0.3)
    ws2, _ = await connect(gw)
    await ws2.send(json.dumps({"type": "resume", "data": {"session": session, "last_seq": 1}, "id": "res"}))
    got = [await recv_json(ws2) for _ in range(5)]
    assert [(m.get("seq"), m.get("channel"), m.get("data"), m.get("conflated")) for m in got[:3]] == [
        (2, all_ch, {"n": 0}, None), (3, all_ch, {"n": 1}, None), (4, all_ch, {"n": 2}, None)], got
    assert got[3] == {"type": "resumed", "data": {"session": session, "replayed": 3}, "id": "res"}, got[3]
    newest = got[4]
    assert (newest.get("seq"), newest.get("channel"), newest.get("data"), newest.get("conflated")) == (
        5, latest_ch, {"n": 10}, 9), newest
    # The subscription kept its options (a burst: at most the first and the newest) and numbering.
    data = await expect_paced(gw, ws2, latest_ch, 11, 10, 4, f"{latest_ch} after resume")
    check_seq_contiguous([m["seq"] for _, _, m in data], "after resume", 6)
    gw.publish({"channel": all_ch, "data": {"n": 3}})
    m = await recv_json(ws2)
    assert (m["seq"], m["data"], m.get("conflated")) == (6 + len(data), {"n": 3}, None), m
    await ws2.close()


async def test_resume_sends_the_newest_value_held_while_detached(binary):
    """A session with a `latest` (max_hz 4) and an `all` channel closes; 10 values on the first and
    3 on the second are published meanwhile. The resume re-sends the 3 (numbered while detached),
    then `resumed`, then the newest `latest` value with conflated 9, seq contiguous with the
    previous connection; the subscription keeps its rate. Four rounds on two event-loop threads
    (the resume lands on the session's thread or crosses to it)."""
    with Gateway(binary, WS_THREADS=2) as gw:
        for round_ in range(4):
            await resume_latest_once(gw, f"RL{round_}", f"RA{round_}")


async def test_replay_and_resume_resend_conflated_frames_unchanged(binary):
    """After a frame with conflated K, a replay of its seq gives the same frame (seq, ts, data, K),
    a replay of all gives every frame as first sent (no key where there was none), and a resume
    from before it re-sends it the same way."""
    with Gateway(binary) as gw:
        ws, welcome = await latest_client(gw, ["RP"], max_hz=2)
        gw.publish([{"channel": "RP", "data": {"n": n}} for n in range(10)])
        raws, sent = [], []
        while not sent or sent[-1]["data"]["n"] != 9:
            raws.append(await asyncio.wait_for(ws.recv(), 3))
            sent.append(json.loads(raws[-1]))
            assert "seq" in sent[-1], sent
        check_latest_accounting(list(zip(raws, sent)), 10, "RP")
        conflated = [m for m in sent if "conflated" in m]
        assert conflated, sent
        frame = conflated[-1]
        await ws.send(json.dumps({"type": "replay", "data": {"from": frame["seq"], "to": frame["seq"]}, "id": "one"}))
        again = await recv_json(ws)
        assert again == frame, (again, frame)
        done = await recv_json(ws)
        assert done["type"] == "replay_done" and done["data"]["sent"] == 1 and done["id"] == "one", done
        await ws.send(json.dumps({"type": "replay", "data": {"from": 1}, "id": "all"}))
        again = [await recv_json(ws) for _ in range(len(sent))]
        assert again == sent, (again, sent)
        done = await recv_json(ws)
        assert done["type"] == "replay_done" and done["data"]["sent"] == len(sent), done
        await ws.close()
        ws2, _ = await connect(gw)
        await ws2.send(json.dumps({"type": "resume", "data": {"session": welcome["data"]["session"],
                                                              "last_seq": frame["seq"] - 1}}))
        assert await recv_json(ws2) == frame
        resumed = await recv_json(ws2)
        assert resumed["type"] == "resumed" and resumed["data"]["replayed"] == 1, resumed
        await ws2.close()


if __name__ == "__main__":
    run_tests([test_max_hz_paces_newest_values_and_counts_the_rest,
               test_changing_max_hz_takes_effect_at_once,
               test_max_hz_spacing_when_messages_are_sparse,
               test_subscribed_echo_and_bad_options,
               test_changing_options_of_a_subscribed_channel,
               test_stalled_latest_reader_is_never_cut_and_holds_one_message_per_channel,
               test_resume_sends_the_newest_value_held_while_detached,
               test_replay_and_resume_resend_conflated_frames_unchanged])
