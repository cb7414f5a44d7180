"""TLS (WS_TLS_CERT / WS_TLS_KEY): wss:// and https:// on the one listener with a self-signed
certificate the test makes with the openssl command; plain HTTP to the TLS port; large and many
messages through records; resume across threads (the TLS state moves with the socket); SIGHUP
reloads the certificate without touching open connections; bad files stop the start with 2."""
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from harness import Gateway, connect, recv_json, recv_until, run_tests


def make_certificate(directory, name, common_name="localhost", key_type="ec"):
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    new_key = (["-newkey", "rsa:2048"] if key_type == "rsa"
               else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    subprocess.run(
        ["openssl", "req", "-x509", *new_key, "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + common_name,
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True)
    return cert, key


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class Certificates:
    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="odin-tls-")
        self.cert, self.key = make_certificate(self.dir, "server")
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)


async def test_wss_and_https_on_one_listener(binary):
    with Certificates() as certs, Gateway(binary, WS_TLS_CERT=certs.cert, WS_TLS_KEY=certs.key) as gw:
        health = gw.json("/health")  # https://
        assert health["status"] in ("healthy", "degraded"), health
        ws, welcome = await connect(gw, "?channels=BTCUSD")
        assert ws.transport.get_extra_info("ssl_object").version() in ("TLSv1.3", "TLSv1.2")
        assert (await recv_json(ws))["type"] == "subscribed"
        assert gw.publish({"channel": "BTCUSD", "type": "price:update", "data": {"price": 1}}) == 1
        msg = await recv_json(ws)
        assert msg["seq"] == 1 and msg["data"] == {"price": 1} and msg["channel"] == "BTCUSD", msg
        await ws.send(json.dumps({"type": "heartbeat", "id": 7}))
        pong = await recv_json(ws)
        assert pong["type"] == "pong" and pong["id"] == 7, pong
        await ws.close()


async def test_large_and_many_messages_arrive_whole_and_in_order(binary):
    with Certificates() as certs, Gateway(binary, WS_TLS_CERT=certs.cert, WS_TLS_KEY=certs.key,
                                          WS_CLIENT_QUEUE_BYTES="16M") as gw:
        ws, _ = await connect(gw, "?channels=big,many")
        await recv_json(ws)
        big = "x" * 60000  # several TLS records
        gw.publish({"channel": "big", "data": {"pad": big}})
        msg = await recv_json(ws)
        assert msg["data"]["pad"] == big, len(msg["data"].get("pad", ""))
        batch = [{"channel": "many", "data": {"n": i}} for i in range(2000)]
        assert gw.publish(batch) == 2000
        for i in range(2000):
            m = await recv_json(ws)
            assert m["data"]["n"] == i and m["seq"] == i + 2, (i, m)
        await ws.close()


def test_plain_http_to_the_tls_port_gets_a_readable_answer(binary):
    with Certificates() as certs, Gateway(binary, WS_TLS_CERT=certs.cert, WS_TLS_KEY=certs.key) as gw:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), data
        assert json.loads(body)["error"] == "this port speaks TLS: use https:// or wss://", body
        # A TLS handshake that fails does not disturb the next client.
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
            s.sendall(b"\x16\x03\x01\x00\x05hello")
            s.settimeout(5)
            try:
                while s.recv(4096):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
        assert gw.json("/health")["checks"]["capacity"]["current"] == 0
        metrics = gw.http("GET", "/metrics")[2].decode()
        assert 'ws_connections_refused_total{reason="tls_failed"} 1' in metrics, metrics


async def test_resume_moves_the_tls_connection_between_threads(binary):
    with Certificates() as certs, Gateway(binary, WS_TLS_CERT=certs.cert, WS_TLS_KEY=certs.key,
                                          WS_THREADS=4) as gw:
        ws, welcome = await connect(gw, "?channels=r")
        await recv_json(ws)
        session, last = welcome["data"]["session"], 0
        for round_ in range(8):  # SO_REUSEPORT spreads connections: most rounds change thread
            gw.publish({"channel": "r", "data": {"round": round_, "before": True}})
            m = await recv_json(ws)
            assert m["data"] == {"round": round_, "before": True}, m
            last = m["seq"]
            await ws.close()
            gw.publish({"channel": "r", "data": {"round": round_, "away": True}})
            ws, _ = await connect(gw)
            await ws.send(json.dumps({"type": "resume", "data": {"session": session, "last_seq": last}}))
            resumed, before = await recv_until(ws, lambda m: m["type"] == "resumed")
            assert [m["data"] for m in before] == [{"round": round_, "away": True}], before
            assert resumed["data"]["session"] == session and resumed["data"]["replayed"] == 1
            # Requests right after the resume are answered by the session's thread, over TLS.
            await ws.send(json.dumps({"type": "heartbeat", "id": round_}))
            assert (await recv_json(ws))["id"] == round_
        await ws.close()


async def test_sighup_reloads_the_certificate_without_dropping_connections(binary):
    with Certificates() as certs:
        first_der = der_of(certs.cert)
        new_cert, new_key = make_certificate(certs.dir, "next", "reloaded.localhost")
        trust = ssl.create_default_context(cafile=certs.cert)
        trust.load_verify_locations(cafile=new_cert)
        live_cert = os.path.join(certs.dir, "live.crt")
        live_key = os.path.join(certs.dir, "live.key")
        shutil.copy(certs.cert, live_cert)
        shutil.copy(certs.key, live_key)
        with Gateway(binary, WS_TLS_CERT=live_cert, WS_TLS_KEY=live_key) as gw:
            gw.ssl = trust  # https:// for publishing, before and after the reload
            old, _ = await connect(gw, "?channels=h", ssl=trust)
            await recv_json(old)
            assert old.transport.get_extra_info("ssl_object").getpeercert(True) == first_der

            # A broken key file: the reload is refused, the old certificate stays in use.
            with open(live_key, "w") as f:
                f.write("not a key\n")
            gw.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 5
            while "TLS not reloaded" not in gw.output() and time.time() < deadline:
                await asyncio.sleep(0.05)
            assert "WS_TLS_KEY" in gw.output(), gw.output()
            probe, _ = await connect(gw, ssl=trust)
            assert probe.transport.get_extra_info("ssl_object").getpeercert(True) == first_der
            await probe.close()

            shutil.copy(new_cert, live_cert)
            shutil.copy(new_key, live_key)
            gw.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 5
            fresh_der = None
            while time.time() < deadline:
                fresh, _ = await connect(gw, ssl=trust)
                fresh_der = fresh.transport.get_extra_info("ssl_object").getpeercert(True)
                await fresh.close()
                if fresh_der != first_der:
                    break
                await asyncio.sleep(0.1)
            assert fresh_der == der_of(new_cert)
            # The connection made before both reloads still receives.
            gw.publish({"channel": "h", "data": {"after": "reload"}})
            m = await recv_json(old)
            assert m["data"] == {"after": "reload"} and m["seq"] == 1, m
            await old.close()


def tls12_handshake(port, cipher):
    """The suite an `openssl s_client -tls1_2 -cipher <cipher>` handshake agreed on, or None."""
    run = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-cipher", cipher,
         "-servername", "localhost"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    for line in run.stdout.splitlines():
        if "Cipher is " in line and run.returncode == 0:
            agreed = line.rsplit("Cipher is ", 1)[1].strip()
            return None if agreed == "(NONE)" else agreed
    return None


def test_tls12_offers_only_forward_secret_aead_suites(binary):
    # Static-RSA key exchange (no forward secrecy) and CBC with SHA-1 were accepted in TLS 1.2.
    refused = ["AES128-SHA", "AES256-SHA", "AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA",
               "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA256", "DHE-RSA-AES128-GCM-SHA256"]
    with Certificates() as certs:
        rsa_cert, rsa_key = make_certificate(certs.dir, "rsa", key_type="rsa")
        for cert, key, accepted in [
                (rsa_cert, rsa_key, ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                                     "ECDHE-RSA-CHACHA20-POLY1305"]),
                (certs.cert, certs.key, ["ECDHE-ECDSA-AES128-GCM-SHA256",
                                         "ECDHE-ECDSA-CHACHA20-POLY1305"])]:
            with Gateway(binary, WS_TLS_CERT=cert, WS_TLS_KEY=key) as gw:
                for cipher in accepted:
                    assert tls12_handshake(gw.port, cipher) == cipher, (cert, cipher)
                for cipher in refused:
                    assert tls12_handshake(gw.port, cipher) is None, (cert, cipher)
                # Whatever the client offers first, the server picks an ECDHE AEAD suite.
                agreed = tls12_handshake(gw.port, "AES128-SHA:" + accepted[0])
                assert agreed == accepted[0], agreed
                assert gw.json("/health")["status"] in ("healthy", "degraded")


def test_bad_tls_settings_stop_the_start_with_status_2(binary):
    with Certificates() as certs:
        other_cert, other_key = make_certificate(certs.dir, "other")
        cases = [
            ({"WS_TLS_CERT": certs.cert}, "WS_TLS_CERT and WS_TLS_KEY"),
            ({"WS_TLS_CERT": certs.cert, "WS_TLS_KEY": other_key}, "key values mismatch"),
            ({"WS_TLS_CERT": os.path.join(certs.dir, "missing.crt"), "WS_TLS_KEY": certs.key},
             "WS_TLS_CERT: cannot load"),
        ]
        for env, expected in cases:
            full = dict(os.environ, WS_ADDR="127.0.0.1:0", LOG_FORMAT="text", **env)
            run = subprocess.run([binary], env=full, capture_output=True, text=True, timeout=20)
            assert run.returncode == 2, (env, run.returncode, run.stderr, run.stdout)
            assert expected in run.stderr + run.stdout, (expected, run.stderr, run.stdout)


if __name__ == "__main__":
    run_tests([
        test_wss_and_https_on_one_listener,
        test_large_and_many_messages_arrive_whole_and_in_order,
        test_plain_http_to_the_tls_port_gets_a_readable_answer,
        test_resume_moves_the_tls_connection_between_threads,
        test_sighup_reloads_the_certificate_without_dropping_connections,
        test_bad_tls_settings_stop_the_start_with_status_2,
        test_tls12_offers_only_forward_secret_aead_suites,
    ])
