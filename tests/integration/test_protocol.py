"""Every request and reply of PROTOCOL.md, with python3-websockets against the real binary."""
import asyncio
import json
import re

from harness import (EXACT_DATA, Gateway, RawClient, connect, data_text, exact_publish_body, recv_json,
                     recv_until, run_tests)

KEY_ORDER = re.compile(r'^\{"seq":\d+,"ts":\d+,"type":"[^"]*","channel":"[^"]*","data":')


async def test_welcome_fields(binary):
    with Gateway(binary, WS_PING_INTERVAL="7s", WS_HEARTBEAT_TIMEOUT="20s", WS_REPLAY_SIZE=42,
                 WS_RESUME_TTL="12s") as gw:
        ws, welcome = await connect(gw)
        assert isinstance(welcome["ts"], int) and welcome["ts"] > 1_600_000_000_000
        data = welcome["data"]
        assert isinstance(data["session"], str) and data["session"]
        assert data["heartbeat_ms"] == 7000 and data["replay_size"] == 42
        assert data["resume_ttl_ms"] == 12000
        assert "seq" not in welcome
        await ws.close()


async def test_subscribe_publish_envelope_and_ids(binary):
    with Gateway(binary) as gw:
        a, _ = await connect(gw)
        b, _ = await connect(gw)
        other, _ = await connect(gw)
        await a.send(json.dumps({"type": "subscribe", "data": {"channels": ["BTCUSD", "ETHUSD", "BTCUSD"]}, "id": 1}))
        assert await recv_json(a) == {"type": "subscribed", "data": {"channels": ["BTCUSD", "ETHUSD"]}, "id": 1}
        await b.send(json.dumps({"type": "subscribe", "data": {"symbols": ["BTCUSD"]}, "id": "b-1"}))
        assert await recv_json(b) == {"type": "subscribed", "data": {"channels": ["BTCUSD"]}, "id": "b-1"}
        await other.send(json.dumps({"type": "subscribe", "data": {"channels": ["SOLUSD"]}}))
        assert (await recv_json(other))["type"] == "subscribed"

        assert gw.publish({"channel": "BTCUSD", "type": "price:update", "data": {"symbol": "BTCUSD", "price": 50000}}) == 1
        raw_a = await asyncio.wait_for(a.recv(), 3)
        raw_b = await asyncio.wait_for(b.recv(), 3)
        for raw in (raw_a, raw_b):
            assert KEY_ORDER.match(raw), raw
        ea, eb = json.loads(raw_a), json.loads(raw_b)
        assert ea["seq"] == 1 and eb["seq"] == 1
        assert ea["ts"] == eb["ts"]
        assert ea["type"] == "price:update" and ea["channel"] == "BTCUSD"
        assert ea["data"] == {"symbol": "BTCUSD", "price": 50000}
        assert list(ea.keys()) == ["seq", "ts", "type", "channel", "data"]

        # An array, a default type; only subscribers receive.
        assert gw.publish([{"channel": "ETHUSD", "data": 1}, {"channel": "NOBODY", "data": 2}]) == 2
        e = await recv_json(a)
        assert e["seq"] == 2 and e["type"] == "message" and e["channel"] == "ETHUSD" and e["data"] == 1
        try:
            extra = await recv_json(other, 0.5)
            raise AssertionError(f"non-subscriber received {extra}")
        except asyncio.TimeoutError:
            pass

        await a.send(json.dumps({"type": "unsubscribe", "data": {"channels": ["ETHUSD"]}, "id": [1, 2]}))
        assert await recv_json(a) == {"type": "unsubscribed", "data": {"channels": ["ETHUSD"]}, "id": [1, 2]}
        gw.publish([{"channel": "ETHUSD", "data": 3}, {"channel": "BTCUSD", "data": 4}])
        e = await recv_json(a)
        assert e["channel"] == "BTCUSD" and e["seq"] == 3, e
        for ws in (a, b, other):
            await ws.close()


async def test_seq_contiguous_across_channels(binary):
    with Gateway(binary) as gw:
        ws, _ = await connect(gw, "?channels=C1,C2,C3")
        assert (await recv_json(ws))["type"] == "subscribed"
        batch = [{"channel": f"C{i % 4}", "data": {"i": i}} for i in range(200)]
        gw.publish(batch)
        expected = [m for m in batch if m["channel"] != "C0"]
        for n, m in enumerate(expected, start=1):
            e = await recv_json(ws)
            assert e["seq"] == n, (e, n)
            assert e["data"] == m["data"] and e["channel"] == m["channel"]
        await ws.close()


async def test_snapshot_and_connect_channels(binary):
    with Gateway(binary) as gw:
        gw.publish([{"channel": "S1", "data": {"v": 1}}, {"channel": "S1", "data": {"v": 2}},
                    {"channel": "S2", "data": {"v": 3}}])
        await asyncio.sleep(0.2)
        ws, _ = await connect(gw, "?channels=S2")
        assert await recv_json(ws) == {"type": "subscribed", "data": {"channels": ["S2"]}}
        await ws.send(json.dumps({"type": "subscribe", "data": {"channels": ["S1", "S3"], "snapshot": True}, "id": 9}))
        assert (await recv_json(ws))["type"] == "subscribed"
        snap = await recv_json(ws)
        assert snap["seq"] == 1 and snap["channel"] == "S1" and snap["data"] == {"v": 2}, snap
        gw.publish({"channel": "S2", "data": {"v": 4}})
        e = await recv_json(ws)
        assert e["seq"] == 2 and e["channel"] == "S2" and e["data"] == {"v": 4}
        await ws.close()


async def test_heartbeat_pong(binary):
    with Gateway(binary) as gw:
        ws, _ = await connect(gw)
        await ws.send(json.dumps({"type": "heartbeat", "id": 5}))
        pong = await recv_json(ws)
        assert pong["type"] == "pong" and isinstance(pong["ts"], int) and pong["id"] == 5
        await ws.send(json.dumps({"type": "heartbeat"}))
        pong = await recv_json(ws)
        assert pong["type"] == "pong" and "id" not in pong
        await ws.close()


async def test_replay_ranges_and_ring(binary):
    with Gateway(binary, WS_REPLAY_SIZE=5) as gw:
        ws, _ = await connect(gw, "?channels=R")
        await recv_json(ws)
        gw.publish([{"channel": "R", "data": i} for i in range(1, 9)])
        for n in range(1, 9):
            assert (await recv_json(ws))["seq"] == n
        await ws.send(json.dumps({"type": "replay", "data": {"from": 5, "to": 7}, "id": "r"}))
        got = [await recv_json(ws) for _ in range(4)]
        assert [g["seq"] for g in got[:3]] == [5, 6, 7] and [g["data"] for g in got[:3]] == [5, 6, 7]
        assert got[3] == {"type": "replay_done", "data": {"from": 5, "to": 7, "sent": 3, "first_available": 4}, "id": "r"}
        # Beyond the ring: only what is held, and first_available says where it starts.
        await ws.send(json.dumps({"type": "replay", "data": {"from": 1, "to": 8}}))
        done, replayed = await recv_until(ws, lambda m: m["type"] == "replay_done")
        assert [m["seq"] for m in replayed] == [4, 5, 6, 7, 8]
        assert done["data"] == {"from": 1, "to": 8, "sent": 5, "first_available": 4}
        # `to` defaults to the last seq.
        await ws.send(json.dumps({"type": "replay", "data": {"from": 8}}))
        done, replayed = await recv_until(ws, lambda m: m["type"] == "replay_done")
        assert [m["seq"] for m in replayed] == [8] and done["data"]["to"] == 8
        # Replays do not advance the numbering.
        gw.publish({"channel": "R", "data": 9})
        assert (await recv_json(ws))["seq"] == 9
        await ws.send(json.dumps({"type": "replay", "data": {"from": 5, "to": 2}}))
        err = await recv_json(ws)
        assert err["type"] == "error" and err["data"]["code"] == "bad_request"
        await ws.close()


async def test_errors(binary):
    with Gateway(binary, WS_MAX_CHANNELS_PER_CONN=3) as gw:
        ws, _ = await connect(gw)

        async def expect_error(request, code):
            await ws.send(request if isinstance(request, str) else json.dumps(request))
            msg = await recv_json(ws)
            assert msg["type"] == "error", (request, msg)
            assert msg["data"]["code"] == code, (request, msg)
            assert isinstance(msg["data"]["message"], str) and msg["data"]["message"]
            assert "seq" not in msg
            return msg

        await expect_error("not json", "bad_request")
        await expect_error("[1,2]", "bad_request")
        await expect_error({"data": {}}, "bad_request")
        m = await expect_error({"type": "subscribe", "id": 77}, "bad_request")
        assert m["id"] == 77
        for bad in ["", "x" * 129, "a b", "x/y"]:
            await expect_error({"type": "subscribe", "data": {"channels": [bad]}}, "bad_request")
        await expect_error({"type": "subscribe", "data": {"channels": []}}, "bad_request")
        m = await expect_error({"type": "dance", "id": "z"}, "unknown_type")
        assert m["id"] == "z"
        await ws.send(json.dumps({"type": "subscribe", "data": {"channels": ["A", "B"]}}))
        assert (await recv_json(ws))["type"] == "subscribed"
        await expect_error({"type": "subscribe", "data": {"channels": ["C", "D"]}}, "too_many_channels")
        await ws.send(json.dumps({"type": "subscribe", "data": {"channels": ["C", "A"]}}))
        assert (await recv_json(ws))["data"]["channels"] == ["C", "A"]
        await ws.close()
        # ?channels= with a bad name refuses the upgrade.
        status, _, body = gw.http("GET", "/ws?channels=ok,bad%20name", headers={
            "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
        assert status == 400 and "error" in json.loads(body)


async def test_publish_data_reaches_clients_byte_for_byte(binary):
    with Gateway(binary) as gw:
        ws, _ = await connect(gw, "?channels=EXACT")
        assert (await recv_json(ws))["type"] == "subscribed"
        status, _, body = gw.http("POST", "/publish", exact_publish_body("EXACT"))
        assert status == 200 and json.loads(body) == {"published": len(EXACT_DATA)}, body
        got = [data_text(await asyncio.wait_for(ws.recv(), 3)) for _ in EXACT_DATA]
        assert got == EXACT_DATA, got
        await ws.close()


async def test_one_mib_data_message_by_default(binary):
    data = '"' + "x" * ((1 << 20) - 2) + '"'  # 1 MiB, as large as NATS carries by default
    with Gateway(binary) as gw:
        ws, _ = await connect(gw, "?channels=BIG")
        assert (await recv_json(ws))["type"] == "subscribed"
        # A client with a small receive buffer gets it whole too: one message larger than
        # WS_CLIENT_QUEUE_BYTES (256 KiB) is not a slow consumer.
        slow = RawClient(gw.port, path="/ws?channels=BIG", rcvbuf=4096)
        assert slow.read_http_head()[0] == 101
        for expected in ("welcome", "subscribed"):
            assert json.loads(slow.read_frame()[1])["type"] == expected
        status, _, body = gw.http("POST", "/publish", '{"channel":"BIG","data":' + data + '}')
        assert status == 200, (status, body[:200])
        assert data_text(await asyncio.wait_for(ws.recv(), 10)) == data
        await asyncio.sleep(0.3)
        opcode, payload = slow.read_frame(10)
        assert opcode == 1 and data_text(payload.decode()) == data, (opcode, payload[:100])
        slow.close()
        status, _, body = gw.http("POST", "/publish", '{"channel":"BIG","data":' + data + ' }')
        assert status == 200, (status, body[:200])  # spaces around data are not data
        assert data_text(await asyncio.wait_for(ws.recv(), 10)) == data
        status, _, body = gw.http("POST", "/publish", '{"channel":"BIG","data":"x' + data[1:] + '}')
        assert status == 400 and b"WS_MAX_PAYLOAD_BYTES" in body, (status, body)
        await ws.close()


if __name__ == "__main__":
    run_tests([test_welcome_fields, test_subscribe_publish_envelope_and_ids,
               test_seq_contiguous_across_channels, test_snapshot_and_connect_channels,
               test_heartbeat_pong, test_replay_ranges_and_ring, test_errors,
               test_publish_data_reaches_clients_byte_for_byte, test_one_mib_data_message_by_default])
