"""Self-test of nats_support.py against the real nats-server: headers and payloads byte-exact,
JetStream Msg-Id deduplication, and no loss and no duplicates across a server restart in the
middle of a stream. Run: /usr/bin/python3 tests/integration/nats_support_selftest.py"""
import os
import sys
import threading
import time
import traceback

from nats_support import NatsClient, NatsNoResponders, NatsServer, NatsTimeout

PAYLOADS = [b"plain", "prix \u20ac \u00e9t\u00e9 \u6771\u4eac \U0001F680".encode(), b"line1\r\nline2\r\n\r\nend",
            b"", b"x" * 100000, b"MSG fake 1 3\r\nabc\r\n"]


def test_core_headers_and_payloads(srv):
    with NatsClient(srv.url) as sub_client, NatsClient(srv.url) as pub_client:
        info = pub_client.js_api("STREAM.CREATE.T1", {"name": "T1", "subjects": ["t1.>"], "storage": "file"})
        assert "error" not in info, info
        sub = sub_client.subscribe("t1.>")
        sub_client.flush()
        for i, data in enumerate(PAYLOADS):
            headers = {"Type": "price:update", "X-Seq": str(i)} if i % 2 == 0 else None
            pub_client.publish(f"t1.core.{i}", data, headers=headers)
        pub_client.flush()
        for i, data in enumerate(PAYLOADS):
            msg = sub.next_msg(2)
            assert msg.subject == f"t1.core.{i}", msg
            assert msg.data == data, (i, msg.data[:80])
            want = {"Type": "price:update", "X-Seq": str(i)} if i % 2 == 0 else {}
            assert msg.headers == want, (i, msg.headers)
        pub_client.publish("t1.str", "caf\u00e9", headers={"Type": "price:update"})
        msg = sub.next_msg(2)
        assert (msg.data, msg.headers) == ("caf\u00e9".encode(), {"Type": "price:update"}), msg


def test_request_reply_and_errors(srv):
    with NatsClient(srv.url) as responder, NatsClient(srv.url) as client:
        sub = responder.subscribe("svc.echo")
        responder.flush()

        def serve():
            msg = sub.next_msg(2)
            responder.publish(msg.reply, msg.data[::-1], headers={"Echo": msg.headers.get("In", "")})
        t = threading.Thread(target=serve)
        t.start()
        reply = client.request("svc.echo", b"abc", headers={"In": "1"})
        t.join(3)
        assert (reply.data, reply.headers) == (b"cba", {"Echo": "1"}), reply
        try:
            client.request("svc.nobody", b"x", timeout=1)
            raise AssertionError("expected no responders")
        except NatsNoResponders:
            pass
        quiet = responder.subscribe("svc.quiet")
        responder.flush()
        start = time.time()
        try:
            client.request("svc.quiet", b"x", timeout=0.3)
            raise AssertionError("expected a timeout")
        except NatsTimeout:
            assert time.time() - start < 1
        quiet.unsubscribe()


def test_jetstream_dedup_and_restart(srv):
    with NatsClient(srv.url) as c:
        c.js_api("STREAM.PURGE.T1", check=True)  # the core test's messages went into the stream too
        for i in range(20):
            ack = c.js_publish("t1.js", f"m{i}", msg_id=f"id-{i}")
            assert ack["stream"] == "T1" and not ack.get("duplicate"), ack
        first = c.js_api("STREAM.INFO.T1", check=True)["state"]["first_seq"]
        ack = c.js_publish("t1.js", "m5", msg_id="id-5")
        assert ack.get("duplicate") is True and ack["seq"] == first + 5, ack
        assert c.js_api("CONSUMER.NAMES.T1")["consumers"] in (None, [])
        assert c.js_api("STREAM.INFO.NOPE")["error"]["code"] == 404

        restarter = threading.Thread(target=srv.restart)
        deadline = time.time() + 30
        acks = []
        for i in range(20, 220):
            if i == 60:
                restarter.start()
            if 60 <= i < 160:
                time.sleep(0.003)  # spread the publishes over the restart window
            acks.append(c.js_publish("t1.js", f"m{i}", msg_id=f"id-{i}", retry_until=deadline))
        restarter.join(15)
        assert not restarter.is_alive()
        assert c.reconnects >= 1, "the restart did not interrupt the stream"
        seqs = [a["seq"] for a in acks]
        assert seqs == list(range(first + 20, first + 220)), seqs
        state = c.js_api("STREAM.INFO.T1", check=True)["state"]
        assert state["messages"] == 220 and state["last_seq"] == first + 219, state
        again = c.js_publish("t1.js", "m100", msg_id="id-100")  # dedup state survived the restart
        assert again.get("duplicate") is True and again["seq"] == first + 100, again
        try:
            c.js_publish("nostream.x", "x", timeout=1)
            raise AssertionError("expected no responders for a subject without a stream")
        except NatsNoResponders:
            pass
        print(f"  restart: {c.reconnects} reconnect(s), {sum(1 for a in acks if a.get('duplicate'))} "
              f"duplicate ack(s) for retried publishes", flush=True)


def main():
    passed = failed = 0
    start = time.time()
    srv = NatsServer(jetstream=True)
    store = srv.store_dir
    try:
        for test in (test_core_headers_and_payloads, test_request_reply_and_errors,
                     test_jetstream_dedup_and_restart):
            t0 = time.time()
            try:
                test(srv)
                passed += 1
                print(f"PASS {test.__name__} ({time.time() - t0:.1f}s)", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {test.__name__} ({time.time() - t0:.1f}s)", flush=True)
                traceback.print_exc()
        port = srv.port
        srv.stop()
        try:
            NatsClient(f"nats://127.0.0.1:{port}", timeout=1)
            failed += 1
            print("FAIL server still answering after stop()")
        except OSError:
            passed += 1
            print("PASS stop")
    except Exception:
        failed += 1
        traceback.print_exc()
    finally:
        srv.cleanup()
    if os.path.exists(store):
        failed += 1
        print("FAIL store dir left behind")
    print(f"{passed} passed, {failed} failed ({time.time() - start:.1f}s)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
