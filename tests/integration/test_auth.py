"""WS_AUTH=jwt end to end, with tokens made by Debian's python3-jwt (PyJWT) and keys made by
python3-cryptography: an independent implementation signs, the gateway verifies. Valid, expired,
not-yet-valid, wrongly signed, malformed and alg-confused tokens; the channels claim with
wildcards; refresh with `auth`; close 4001 at expiry; resume only by the same subject; key
rotation on SIGHUP; bad key settings stop the start with 2."""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import jwt
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness import (Gateway, RawClient, close_code_of, connect, es256_keys, metric, recv_json, recv_until,
                     run_tests)

SECRET = "test-secret-that-is-at-least-32-bytes!"


def token(claims=None, key=SECRET, alg="HS256", **extra):
    body = {"sub": "alice", "exp": int(time.time()) + 3600, "channels": [">"]}
    body.update(claims or {})
    body.update(extra)
    for k in [k for k, v in body.items() if v is None]:
        del body[k]
    return jwt.encode(body, key, algorithm=alg)


def upgrade(gw, path="/ws", headers=None):
    c = RawClient(gw.port, path=path, headers=headers)
    try:
        status, head = c.read_http_head()
        while status != 101 and len(c.buf) < int(head.get("content-length", 0)):
            c.buf += c.sock.recv(4096)
        return status, head, c.buf
    finally:
        c.close()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_upgrade_accepts_valid_tokens_and_refuses_the_rest(binary):
    with Gateway(binary, WS_AUTH="jwt", WS_JWT_SECRET=SECRET) as gw:
        assert upgrade(gw, "/ws?token=" + token())[0] == 101
        assert upgrade(gw, headers={"Authorization": "Bearer " + token()})[0] == 101
        now = int(time.time())
        unsigned = b64url(b'{"alg":"none","typ":"JWT"}') + "." + b64url(b'{"sub":"alice","channels":[">"]}') + "."
        cases = [
            (None, "token missing"),
            (token(exp=now - 10), "token expired"),
            (token(nbf=now + 600), "token not yet valid"),
            (token(key="another-secret-that-is-32-bytes-long!!"), "bad signature"),
            ("abc", "malformed token"),
            (".".join(token().split(".")[:2] + [token(sub="bob").split(".")[2]]), "bad signature"),
            (".".join(token().split(".")[:1] + [token(sub="root").split(".")[1]] + token().split(".")[2:]),
             "bad signature"),
            (unsigned, "unsupported alg"),
        ]
        for tok, reason in cases:
            status, head, body = upgrade(gw, "/ws" + (f"?token={tok}" if tok else ""))
            assert status == 401, (reason, status, body)
            assert json.loads(body)["error"] == reason, (reason, body)
            assert head["www-authenticate"].startswith("Bearer"), head
        metrics = gw.http("GET", "/metrics")[2].decode()
        assert 'ws_connections_refused_total{reason="unauthorized"} 8' in metrics, metrics


def test_rs256_and_es256_keys_and_no_algorithm_confusion(binary):
    tmp = tempfile.mkdtemp(prefix="odin-jwt-")
    try:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        rsa_pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        path = os.path.join(tmp, "rsa.pem")
        with open(path, "wb") as f:
            f.write(rsa_pem)
        with Gateway(binary, WS_AUTH="jwt", WS_JWT_PUBLIC_KEY=path) as gw:
            assert upgrade(gw, "/ws?token=" + token(key=rsa_key, alg="RS256"))[0] == 101
            # HS256 "signed" with the public key as the secret: the classic confusion attack.
            header = b64url(b'{"alg":"HS256","typ":"JWT"}')
            payload = b64url(json.dumps({"sub": "eve", "channels": [">"]}).encode())
            sig = b64url(hmac.new(rsa_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
            status, _, body = upgrade(gw, f"/ws?token={header}.{payload}.{sig}")
            assert status == 401 and json.loads(body)["error"] == "unsupported alg", body
        ec_key = ec.generate_private_key(ec.SECP256R1())
        ec_pem = ec_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        with Gateway(binary, WS_AUTH="jwt", WS_JWT_PUBLIC_KEY=ec_pem, WS_JWT_AUDIENCE="prices",
                     WS_JWT_ISSUER="https://auth.test") as gw:
            good = token(key=ec_key, alg="ES256", aud=["other", "prices"], iss="https://auth.test")
            assert upgrade(gw, "/ws?token=" + good)[0] == 101
            for tok, reason in [
                (token(key=ec_key, alg="ES256", aud="other", iss="https://auth.test"), "wrong audience"),
                (token(key=ec_key, alg="ES256", aud="prices", iss="https://evil.test"), "wrong issuer"),
                (token(key=rsa_key, alg="RS256", aud="prices", iss="https://auth.test"), "unsupported alg"),
            ]:
                status, _, body = upgrade(gw, "/ws?token=" + tok)
                assert status == 401 and json.loads(body)["error"] == reason, (reason, body)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def test_channels_claim_with_wildcards(binary):
    with Gateway(binary, WS_AUTH="jwt", WS_JWT_SECRET=SECRET) as gw:
        tok = token({"channels": ["prices.*", "trades.BTC.>", "ETHUSD"]})
        ws, _ = await connect(gw, "?channels=ETHUSD&token=" + tok)
        assert (await recv_json(ws))["type"] == "subscribed"
        await ws.send(json.dumps({"type": "subscribe", "id": 1,
                                  "data": {"channels": ["prices.BTC", "trades.BTC.spot", "trades.BTC.a.b"]}}))
        reply = await recv_json(ws)
        assert reply["type"] == "subscribed" and reply["id"] == 1, reply
        for bad in (["prices.BTC.x"], ["prices"], ["trades.BTC"], ["prices.ETH", "secret"]):
            await ws.send(json.dumps({"type": "subscribe", "id": "x", "data": {"channels": bad}}))
            err = await recv_json(ws)
            assert err["type"] == "error" and err["data"]["code"] == "forbidden" and err["id"] == "x", (bad, err)
        # The refused request subscribed nothing, not even its allowed part.
        gw.publish([{"channel": "prices.ETH", "data": 1}, {"channel": "prices.BTC", "data": 2}])
        msg = await recv_json(ws)
        assert msg["channel"] == "prices.BTC" and msg["seq"] == 1, msg
        await ws.close()
        status, _, body = upgrade(gw, "/ws?channels=ETHUSD,secret&token=" + tok)
        assert status == 403 and json.loads(body)["error"] == "channel secret is not allowed by the token", body
        # No channels claim: nothing may be subscribed.
        ws, _ = await connect(gw, "?token=" + token({"channels": None}))
        await ws.send(json.dumps({"type": "subscribe", "data": {"channels": ["ETHUSD"]}}))
        assert (await recv_json(ws))["data"]["code"] == "forbidden"
        await ws.close()


async def test_expiry_closes_with_4001_unless_refreshed(binary):
    with Gateway(binary, WS_AUTH="jwt", WS_JWT_SECRET=SECRET) as gw:
        short = token(exp=int(time.time()) + 2)
        lapsing, _ = await connect(gw, "?channels=a&token=" + short)
        refreshed, _ = await connect(gw, "?channels=a,b&token=" + short)
        await recv_json(lapsing)
        await recv_json(refreshed)
        # Bad refreshes leave the old token in force.
        await refreshed.send(json.dumps({"type": "auth", "id": 1, "data": {"token": "nope"}}))
        err = await recv_json(refreshed)
        assert err["data"] == {"code": "invalid_token", "message": "malformed token"} and err["id"] == 1, err
        await refreshed.send(json.dumps({"type": "auth", "id": 2, "data": {"token": token(sub="mallory")}}))
        err = await recv_json(refreshed)
        assert err["data"]["code"] == "forbidden" and err["id"] == 2, err
        # A good one that no longer allows `b`.
        fresh_exp = int(time.time()) + 600
        await refreshed.send(json.dumps({"type": "auth", "id": 3,
                                         "data": {"token": token({"channels": ["a"]}, exp=fresh_exp)}}))
        dropped = await recv_json(refreshed)
        assert dropped == {"type": "unsubscribed", "data": {"channels": ["b"]}}, dropped
        ok = await recv_json(refreshed)
        assert ok == {"type": "authenticated", "data": {"expires_at": fresh_exp * 1000}, "id": 3}, ok
        started = time.time()
        code = None
        try:
            await recv_json(lapsing, timeout=5)
        except websockets.ConnectionClosed as e:
            code = close_code_of(e)
            reason = e.rcvd.reason
        assert code == 4001 and reason == "token expired", code
        assert time.time() - started < 4
        gw.publish([{"channel": "a", "data": "after"}, {"channel": "b", "data": "gone"}])
        msg = await recv_json(refreshed)
        assert msg["channel"] == "a" and msg["data"] == "after", msg
        await refreshed.send(json.dumps({"type": "heartbeat"}))
        assert (await recv_json(refreshed))["type"] == "pong"  # nothing from `b` in between
        await refreshed.close()
        metrics = gw.http("GET", "/metrics")[2].decode()
        assert "ws_token_expired_disconnects_total 1\n" in metrics and "ws_token_refreshes_total 1\n" in metrics


async def test_resume_only_by_the_same_subject(binary):
    with Gateway(binary, WS_AUTH="jwt", WS_JWT_SECRET=SECRET) as gw:
        alice = token({"channels": ["a", "b"]})
        ws, welcome = await connect(gw, "?channels=a,b&token=" + alice)
        await recv_json(ws)
        session = welcome["data"]["session"]
        await ws.close()
        gw.publish([{"channel": "a", "data": 1}, {"channel": "b", "data": 2}])
        bob, _ = await connect(gw, "?token=" + token(sub="bob"))
        await bob.send(json.dumps({"type": "resume", "data": {"session": session, "last_seq": 0}}))
        assert (await recv_json(bob))["data"]["code"] == "resume_failed"
        await bob.close()
        # Alice again, with a token that no longer allows `b`: resuming would replay `b`.
        narrow, _ = await connect(gw, "?token=" + token({"channels": ["a"]}))
        await narrow.send(json.dumps({"type": "resume", "data": {"session": session, "last_seq": 0}}))
        assert (await recv_json(narrow))["data"]["code"] == "resume_failed"
        await narrow.close()
        again, _ = await connect(gw, "?token=" + token({"channels": ["a", "b.>", "b"]}))
        await again.send(json.dumps({"type": "resume", "data": {"session": session, "last_seq": 0}}))
        resumed, before = await recv_until(again, lambda m: m["type"] == "resumed")
        assert [m["data"] for m in before] == [1, 2] and resumed["data"]["replayed"] == 2, before
        gw.publish([{"channel": "b", "data": 3}])
        msg = await recv_json(again)
        assert msg["data"] == 3 and msg["seq"] == 3, msg
        await again.close()


async def test_no_resume_with_tokens_without_a_subject(binary):
    """Tokens without `sub` would all be one identity: each could resume the others' sessions."""
    with Gateway(binary, WS_AUTH="jwt", WS_JWT_SECRET=SECRET) as gw:
        anonymous = token({"channels": ["a"]}, sub=None)
        assert "sub" not in jwt.decode(anonymous, options={"verify_signature": False})
        ws, welcome = await connect(gw, "?channels=a&token=" + anonymous)
        await recv_json(ws)
        await ws.close()
        other, _ = await connect(gw, "?token=" + token({"channels": ["a"]}, sub=None))
        await other.send(json.dumps({"type": "resume", "data": {
            "session": welcome["data"]["session"], "last_seq": 0}}))
        assert (await recv_json(other))["data"]["code"] == "resume_failed"
        await other.close()


async def test_key_rotation_on_sighup_and_bad_settings(binary):
    tmp = tempfile.mkdtemp(prefix="odin-jwt-")
    try:
        keys, path, install = es256_keys(tmp)
        install(keys[0])
        with Gateway(binary, WS_AUTH="jwt", WS_JWT_PUBLIC_KEY=path) as gw:
            old_ws, _ = await connect(gw, "?token=" + token(key=keys[0], alg="ES256"))
            install(keys[1])
            gw.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 5
            while upgrade(gw, "/ws?token=" + token(key=keys[1], alg="ES256"))[0] != 101:
                assert time.time() < deadline, gw.output()
                await asyncio.sleep(0.05)
            assert upgrade(gw, "/ws?token=" + token(key=keys[0], alg="ES256"))[0] == 401
            await old_ws.send(json.dumps({"type": "heartbeat"}))  # open connections are untouched
            assert (await recv_json(old_ws))["type"] == "pong"
            await old_ws.close()
        for env, expected in [
            ({"WS_JWT_SECRET": "tiny-s3cret"}, "WS_JWT_SECRET: "),
            ({"WS_JWT_PUBLIC_KEY": os.path.join(tmp, "missing.pem")}, "WS_JWT_PUBLIC_KEY: cannot read"),
            ({"WS_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
             "WS_JWT_PUBLIC_KEY: "),
        ]:
            full = dict(os.environ, WS_ADDR="127.0.0.1:0", LOG_FORMAT="text", WS_AUTH="jwt", **env)
            run = subprocess.run([binary], env=full, capture_output=True, text=True, timeout=20)
            assert run.returncode == 2 and expected in run.stderr + run.stdout, (env, run.returncode, run.stderr)
            assert "tiny-s3cret" not in run.stderr + run.stdout  # secrets are never echoed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def test_far_future_expiry_does_not_wrap_into_the_past(binary):
    # exp * 1000 overflowed int64 (undefined behaviour; in practice a negative expiry, so the
    # sweep closed the connection with 4001 at once).
    with Gateway(binary, WS_AUTH="jwt", WS_JWT_SECRET=SECRET, WS_JWT_LEEWAY="60") as gw:
        far = token(exp=2**63 - 1)
        ws, _ = await connect(gw, "?channels=a&token=" + far)
        await recv_json(ws)
        await ws.send(json.dumps({"type": "auth", "id": 1, "data": {"token": token(exp=2**62)}}))
        ok = await recv_json(ws)
        assert ok["type"] == "authenticated" and ok["data"]["expires_at"] > time.time() * 1000, ok
        await asyncio.sleep(2.5)  # at least two sweeps
        await ws.send(json.dumps({"type": "heartbeat"}))
        assert (await recv_json(ws))["type"] == "pong"
        await ws.close()
        assert metric(gw, "ws_token_expired_disconnects_total") == 0


async def test_auth_request_without_auth_enabled(binary):
    with Gateway(binary) as gw:
        ws, _ = await connect(gw)
        await ws.send(json.dumps({"type": "auth", "id": 9, "data": {"token": token()}}))
        err = await recv_json(ws)
        assert err["data"] == {"code": "bad_request", "message": "authentication is not enabled"}, err
        await ws.close()


if __name__ == "__main__":
    run_tests([
        test_upgrade_accepts_valid_tokens_and_refuses_the_rest,
        test_rs256_and_es256_keys_and_no_algorithm_confusion,
        test_channels_claim_with_wildcards,
        test_expiry_closes_with_4001_unless_refreshed,
        test_resume_only_by_the_same_subject,
        test_no_resume_with_tokens_without_a_subject,
        test_key_rotation_on_sighup_and_bad_settings,
        test_auth_request_without_auth_enabled,
        test_far_future_expiry_does_not_wrap_into_the_past,
    ])
