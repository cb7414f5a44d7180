"""NATS and JetStream intake against a real nats-server (Debian's), with messages published by an
independent client speaking the NATS protocol over a plain socket (nats_support.py): delivery
and envelope, bad broker input, a NATS restart in the middle of a JetStream stream, two
instances on one NATS, the CPU pause, the intake rate cap, and a NATS that is not up yet."""
import asyncio
import json
import re
import threading
import time

from harness import (EXACT_DATA, Gateway, connect, data_text, exact_publish_body, metric, recv_json,
                     run_tests)
from nats_support import NatsClient, NatsProxy, NatsServer, free_port


async def subscribed(gw, channels):
    ws, _ = await connect(gw, "?channels=" + ",".join(channels))
    ack = await recv_json(ws)
    assert ack["type"] == "subscribed", ack
    return ws


async def collect(ws, count, timeout):
    """Receives `count` data messages (raw text and parsed) within `timeout` seconds."""
    got = []
    deadline = time.time() + timeout
    while len(got) < count:
        left = deadline - time.time()
        assert left > 0, f"only {len(got)} of {count} messages arrived"
        raw = await asyncio.wait_for(ws.recv(), left)
        msg = json.loads(raw)
        if "seq" in msg:
            got.append((raw, msg))
    return got


async def quiet(ws, seconds=0.5):
    """Asserts nothing more arrives for a while."""
    try:
        extra = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected message: {extra}")


def assert_exactly_once_in_order(messages, expected_data):
    seqs = [m["seq"] for _, m in messages]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"seq not contiguous: {seqs[:20]}..."
    data = [m["data"] for _, m in messages]
    # One publisher, one after the other: stream order is publish order, and every instance
    # delivers in stream order (a message lost in flight is read back before the next one).
    assert data == sorted(data), f"out of order: {data}"
    assert sorted(data) == sorted(expected_data) and len(set(data)) == len(data), (
        f"{len(data)} messages, missing {sorted(set(expected_data) - set(data))[:10]}, "
        f"duplicates {len(data) - len(set(data))}")


async def test_core_nats_reaches_exactly_the_subscribers(binary):
    with NatsServer() as nats, Gateway(binary, NATS_URL=nats.url) as gw, NatsClient(nats.url) as pub:
        health = gw.json("/health")
        assert health["checks"]["broker"] == {"connected": True, "ready": True, "type": "nats", "paused": False}, health
        btc, eth, both = (await subscribed(gw, ["BTCUSD"]), await subscribed(gw, ["ETHUSD"]),
                          await subscribed(gw, ["BTCUSD", "ETHUSD"]))
        pub.publish("odin.token.BTCUSD", b'{"price": 64000.5, "symbol":"BTCUSD"}', headers={"Type": "price:update"})
        pub.publish("odin.token.ETHUSD", "not json: caf\u00e9 \"quoted\"".encode())
        pub.publish("odin.token.SOLUSD", b"{}")  # nobody subscribed
        pub.flush()
        [(raw, m)] = await collect(btc, 1, 5)
        assert raw.startswith('{"seq":1,"ts":'), raw
        assert list(m) == ["seq", "ts", "type", "channel", "data"], raw
        assert m["type"] == "price:update" and m["channel"] == "BTCUSD"
        assert raw.endswith(',"data":{"price": 64000.5, "symbol":"BTCUSD"}}'), raw  # verbatim
        [(_, m)] = await collect(eth, 1, 5)
        assert m["type"] == "message" and m["data"] == "not json: caf\u00e9 \"quoted\"", m
        got = await collect(both, 2, 5)
        assert [(x["seq"], x["channel"]) for _, x in got] == [(1, "BTCUSD"), (2, "ETHUSD")], got
        for ws in (btc, eth, both):
            await quiet(ws, 0.3)
        assert metric(gw, "ws_broker_messages_received_total") == 3

        # POST /publish in NATS mode goes through NATS (the independent client sees it, with
        # its Type header) and answers after the flush.
        tap = pub.subscribe("odin.token.>")
        pub.flush()
        assert gw.publish([{"channel": "BTCUSD", "type": "trade", "data": {"q": 2}}]) == 1
        seen = tap.next_msg(3)
        assert seen.subject == "odin.token.BTCUSD" and seen.headers.get("Type") == "trade", seen
        assert json.loads(seen.data) == {"q": 2}
        [(_, m)] = await collect(btc, 1, 5)
        assert m["type"] == "trade" and m["data"] == {"q": 2} and m["seq"] == 2
        for ws in (btc, eth, both):
            await ws.close()


async def test_ready_means_subscribed(binary):
    """/health says ready only once nats-server has the instance's SUB: a message published right
    after it arrives, even when the SUB is slow to reach the server (held 1 s by a proxy)."""
    with NatsServer() as nats, NatsProxy(nats.port) as proxy:
        proxy.sub_delay = 1.0
        started = time.monotonic()
        with Gateway(binary, NATS_URL=proxy.url) as gw, NatsClient(nats.url) as pub:
            assert time.monotonic() - started >= proxy.sub_delay  # it did wait for the SUB
            ws = await subscribed(gw, ["READY"])
            pub.publish("odin.token.READY", b'{"n":1}')
            pub.flush()
            [(_, m)] = await collect(ws, 1, 5)
            assert m["data"] == {"n": 1}, m
            await ws.close()


async def test_bad_broker_input_is_counted_and_never_delivered(binary):
    with NatsServer() as nats, Gateway(binary, NATS_URL=nats.url, WS_MAX_PAYLOAD_BYTES=1024) as gw, \
            NatsClient(nats.url) as pub:
        ws = await subscribed(gw, ["BAD"])
        pub.publish("odin.token.a/b", b"{}")                               # not a channel name
        pub.publish("odin.token." + "x" * 200, b"{}")                       # name too long
        pub.publish("odin.token.BAD", b'{"x":"' + b"y" * 2000 + b'"}')     # over 1024 bytes
        pub.publish("odin.token.BAD", b'{"x":"\xff\xfe"}')                   # not UTF-8
        pub.publish("odin.token.BAD", b"{}", headers={"Type": "t" * 200})   # type too long
        pub.publish("odin.token.BAD", b'{"ok":true}', headers={"Type": "good"})
        pub.flush()
        [(raw, m)] = await collect(ws, 1, 5)
        assert m["seq"] == 1 and m["data"] == {"ok": True} and m["type"] == "good", raw
        await quiet(ws, 0.3)
        _, _, body = gw.http("GET", "/metrics")
        text = body.decode()
        for reason, count in (("bad_subject", 2), ("oversized", 1), ("invalid_utf8", 1), ("bad_type", 1)):
            assert f'ws_broker_messages_rejected_total{{reason="{reason}"}} {count}' in text, (reason, text)
        assert "dropped 1 message(s) from NATS: invalid_utf8" in gw.output()
        assert gw.proc.poll() is None
        await ws.close()


async def test_jetstream_restart_mid_stream_loses_nothing(binary):
    total, restart_at = 300, 120
    with NatsServer(jetstream=True) as nats, \
            Gateway(binary, NATS_URL=nats.url, WS_BROKER="jetstream", JS_CONSUMER_ACK_WAIT="2s",
                    LOG_LEVEL="info") as gw:
        assert gw.json("/health")["checks"]["broker"]["type"] == "jetstream"
        clients = [await subscribed(gw, ["JS1"]) for _ in range(3)] + [await subscribed(gw, ["JS1", "JS2"])]
        errors = []

        def publish():
            try:
                with NatsClient(nats.url) as pub:
                    deadline = time.time() + 40
                    for i in range(total):
                        if i == restart_at:
                            nats.restart()
                        pub.js_publish(f"odin.token.JS{1 + i % 2}", json.dumps(i).encode(), msg_id=f"m{i}",
                                       headers={"Type": "tick"}, retry_until=deadline)
                        time.sleep(0.01)
            except Exception as e:  # reported by the test below
                errors.append(e)

        publisher = threading.Thread(target=publish)
        publisher.start()
        js1 = [i for i in range(total) if i % 2 == 0]
        results = [await collect(ws, len(js1), 45) for ws in clients[:3]] + [await collect(clients[3], total, 45)]
        publisher.join(45)
        assert not errors, errors
        for got in results[:3]:
            assert_exactly_once_in_order(got, js1)
        assert_exactly_once_in_order(results[3], list(range(total)))
        await asyncio.sleep(2.5)  # past the ack wait: a redelivery would show now
        for ws in clients:
            await quiet(ws, 0.3)
        out = gw.output()
        assert out.count("NATS disconnected") == 1 and out.count("NATS reconnected") == 1, out
        assert metric(gw, "ws_broker_disconnects_total") == 1 and metric(gw, "ws_broker_reconnects_total") == 1
        for ws in clients:
            await ws.close()


async def test_two_instances_each_receive_every_message(binary):
    with NatsServer(jetstream=True) as nats, \
            Gateway(binary, NATS_URL=nats.url, WS_BROKER="jetstream") as a, \
            Gateway(binary, NATS_URL=nats.url, WS_BROKER="jetstream") as b, NatsClient(nats.url) as pub:
        clients = [await subscribed(gw, ["PAIR"]) for gw in (a, b, a, b)]
        names = pub.js_api("CONSUMER.NAMES.ODIN_TOKENS")["consumers"]
        assert sorted(names) == sorted(f"ws-server-{_consumer_suffix(gw)}" for gw in (a, b)), names
        for i in range(50):
            pub.publish("odin.token.PAIR", json.dumps(i).encode())  # plain NATS: stored by the stream
        pub.flush()
        for ws in clients:
            assert_exactly_once_in_order(await collect(ws, 50, 10), list(range(50)))
            await ws.close()


def _hostname():
    import socket
    return socket.gethostname()


async def test_cpu_pause_then_resume_loses_nothing(binary):
    # A tiny CPU budget (5% of a core, paused above half of it): a steady stream pushes the
    # gateway over the line, intake pauses while the stream keeps the messages, CPU falls, intake
    # resumes, and every client still gets every message once, in order.
    with NatsServer(jetstream=True) as nats, \
            Gateway(binary, NATS_URL=nats.url, WS_BROKER="jetstream", WS_CPU_LIMIT="0.05",
                    WS_CPU_PAUSE_THRESHOLD="50", WS_CPU_REJECT_THRESHOLD="100", LOG_LEVEL="info") as gw:
        clients = [await subscribed(gw, ["HOT"]) for _ in range(4)]
        state = {"published": 0, "done": False, "held": None, "health": None}

        def publish():
            with NatsClient(nats.url) as pub:
                deadline = time.time() + 25
                while time.time() < deadline and metric(gw, "ws_broker_pauses_total") < 1:
                    for _ in range(100):
                        pub.publish("odin.token.HOT", json.dumps(state["published"]).encode())
                        state["published"] += 1
                    pub.flush()
                    time.sleep(0.02)
                state["health"] = gw.json("/health")
                for _ in range(500):  # while paused: these wait in the stream
                    pub.publish("odin.token.HOT", json.dumps(state["published"]).encode())
                    state["published"] += 1
                pub.flush()
                info = pub.js_api(f"CONSUMER.INFO.ODIN_TOKENS.ws-server-{_consumer_suffix(gw)}")
                state["held"] = info.get("num_pending")
            state["done"] = True

        publisher = threading.Thread(target=publish)
        publisher.start()
        received = [[] for _ in clients]
        deadline = time.time() + 50
        while not state["done"] or any(len(r) < state["published"] for r in received):
            assert time.time() < deadline, f"received {[len(r) for r in received]} of {state['published']}"
            for ws, got in zip(clients, received):
                try:
                    while True:
                        raw = await asyncio.wait_for(ws.recv(), 0.01)
                        msg = json.loads(raw)
                        if "seq" in msg:
                            got.append((raw, msg))
                except asyncio.TimeoutError:
                    pass
        publisher.join(5)
        for got in received:
            assert_exactly_once_in_order(got, list(range(state["published"])))
        assert metric(gw, "ws_broker_pauses_total") >= 1, gw.output()
        assert state["health"]["status"] == "degraded" and state["health"]["checks"]["broker"]["paused"], state
        assert state["held"] and state["held"] > 0, state  # the stream held them during the pause
        out = gw.output()
        assert "broker intake paused" in out and "broker intake resumed" in out, out
        print(f"  {state['published']} messages, {int(metric(gw, 'ws_broker_pauses_total'))} pause(s), "
              f"{state['held']} held in the stream while paused")
        for ws in clients:
            await ws.close()


def _consumer_suffix(gw):
    return f"{re.sub('[^A-Za-z0-9_-]', '_', _hostname())}-{gw.port}"


async def test_intake_rate_cap_holds_near_the_limit(binary):
    total = 400
    with NatsServer(jetstream=True) as nats, \
            Gateway(binary, NATS_URL=nats.url, WS_BROKER="jetstream", WS_MAX_NATS_RATE=100) as gw, \
            NatsClient(nats.url) as pub:
        ws = await subscribed(gw, ["RATE"])
        for i in range(total):
            pub.publish("odin.token.RATE", json.dumps(i).encode())
        pub.flush()
        start = time.time()
        times = []
        while len(times) < total:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if "seq" in msg:
                times.append(time.time() - start)
        elapsed = times[-1]
        rate = (total - 50) / (times[-1] - times[49])  # after the first tenth of a second's burst
        print(f"  {total} messages in {elapsed:.2f} s; steady rate {rate:.1f}/s")
        assert 85 <= rate <= 115, rate
        await ws.close()


async def test_nats_not_up_yet_then_connected(binary):
    port = free_port()
    with Gateway(binary, wait_ready=False, NATS_URL=f"nats://127.0.0.1:{port}", LOG_LEVEL="info") as gw:
        status, _, body = gw.http("GET", "/health")
        health = json.loads(body)
        assert status == 503 and health["status"] == "unhealthy", health
        assert health["checks"]["broker"]["connected"] is False
        with NatsServer(port=port) as nats, NatsClient(nats.url) as pub:
            deadline = time.time() + 10
            while gw.http("GET", "/health")[0] != 200:
                assert time.time() < deadline, gw.output()
                await asyncio.sleep(0.1)
            ws = await subscribed(gw, ["LATE"])
            await asyncio.sleep(0.2)
            pub.publish("odin.token.LATE", b"1")
            pub.flush()
            [(_, m)] = await collect(ws, 1, 5)
            assert m["data"] == 1
            await ws.close()
        assert "not reachable yet" in gw.output() and "NATS connected" in gw.output()


async def test_publish_data_is_the_nats_payload_byte_for_byte(binary):
    big = b'"' + b"y" * ((1 << 20) - 2) + b'"'  # 1 MiB: NATS' default max_payload
    for mode in ("nats", "jetstream"):
        with NatsServer(jetstream=mode == "jetstream") as nats, \
                Gateway(binary, NATS_URL=nats.url, WS_BROKER=mode) as gw, NatsClient(nats.url) as pub:
            tap = pub.subscribe("odin.token.EXACT")
            pub.flush()
            ws = await subscribed(gw, ["EXACT"])
            status, _, body = gw.http("POST", "/publish", exact_publish_body("EXACT"))
            assert status == 200 and json.loads(body) == {"published": len(EXACT_DATA)}, body
            assert [tap.next_msg(3).data for _ in EXACT_DATA] == [d.encode() for d in EXACT_DATA]
            got = await collect(ws, len(EXACT_DATA), 5)
            assert [data_text(raw) for raw, _ in got] == EXACT_DATA, (mode, got)
            # A 1 MiB message arrives whole: from another NATS publisher, and from POST /publish.
            pub.publish("odin.token.EXACT", big)
            pub.flush()
            [(raw, _)] = await collect(ws, 1, 10)
            assert data_text(raw).encode() == big, mode
            status, _, body = gw.http("POST", "/publish", b'{"channel":"EXACT","data":' + big + b'}')
            assert status == 200, (mode, status, body[:200])
            assert tap.next_msg(5).data == big
            [(raw, _)] = await collect(ws, 1, 10)
            assert data_text(raw).encode() == big, mode
            await ws.close()


if __name__ == "__main__":
    run_tests([
        test_core_nats_reaches_exactly_the_subscribers,
        test_ready_means_subscribed,
        test_bad_broker_input_is_counted_and_never_delivered,
        test_jetstream_restart_mid_stream_loses_nothing,
        test_two_instances_each_receive_every_message,
        test_cpu_pause_then_resume_loses_nothing,
        test_intake_rate_cap_holds_near_the_limit,
        test_nats_not_up_yet_then_connected,
        test_publish_data_is_the_nats_payload_byte_for_byte,
    ])
