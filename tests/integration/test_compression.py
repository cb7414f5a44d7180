"""permessage-deflate (docs/protocol.md, "Extension: compression") against the real binary: the
negotiation answered to real offers and to broken ones, the frame form read with zlib's own
inflate, byte-for-byte data to python3-websockets with and without compression, one compressed
copy per message however many clients read it, compressed client requests, the protocol errors
(RSV1 where it may not be, a frame compressed without negotiation, a decompression bomb),
replay, resume and TLS with compressed frames, and WS_COMPRESSION=false."""
import asyncio
import json
import os
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from harness import Gateway, RawClient, connect, recv_json, run_tests  # noqa: E402
from test_latest import metrics  # noqa: E402
from test_tls import make_certificate  # noqa: E402

TRAILER = b"\x00\x00\xff\xff"


def market(i):
    """A realistic ~500-byte market object (the seeds' size): an order-book update with real
    numbers, different in every message."""
    bids = [[f"{43251.17 - j * 0.37 - i * 0.01:.2f}", f"{0.125 + j * 0.031 + i * 0.001:.4f}"] for j in range(5)]
    asks = [[f"{43251.90 + j * 0.41 + i * 0.01:.2f}", f"{0.211 + j * 0.027 + i * 0.001:.4f}"] for j in range(5)]
    return {"symbol": "BTCUSD", "seq": 88120000 + i, "bid": bids[0][0], "ask": asks[0][0],
            "last": f"{43251.55 + i * 0.02:.2f}", "volume24h": f"{18342.771 + i * 0.5:.3f}",
            "change24h": "-1.37", "high24h": "43980.00", "low24h": "42710.15", "bids": bids, "asks": asks,
            "exchange": "odin", "ts": 1733220000123 + i}


def inflate(payload):
    """What a client inflates a compressed message's payload to (RFC 7692 7.2.2)."""
    d = zlib.decompressobj(-15)
    return d.decompress(payload + TRAILER) + d.flush()


def deflate(text):
    """A client message compressed as RFC 7692 7.2.1 asks (no context: a fresh compressor)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = c.compress(text.encode() if isinstance(text, str) else text) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(TRAILER)
    return data[:-4]


def read_frame_rsv(raw, timeout=5):
    """(opcode, rsv bits, payload) of the next frame, or None at EOF."""
    while len(raw.buf) < 1:
        chunk = raw.sock.recv(65536)
        if not chunk:
            return None
        raw.buf += chunk
    rsv = (raw.buf[0] >> 4) & 0x7
    frame = raw.read_frame(timeout)
    return None if frame is None else (frame[0], rsv, frame[1])


def upgrade(gw, offer, path="/ws"):
    """A raw client that offered `offer` (a string, a list of header lines, or None); returns it
    with the 101's headers, its welcome already read."""
    headers = None
    if isinstance(offer, str):
        headers = {"Sec-WebSocket-Extensions": offer}
    raw = RawClient(gw.port, path=path, headers=headers, upgrade=not isinstance(offer, list))
    if isinstance(offer, list):  # several header lines
        import base64
        key = base64.b64encode(os.urandom(16)).decode()
        lines = "".join(f"Sec-WebSocket-Extensions: {v}\r\n" for v in offer)
        raw.send_raw(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     f"Sec-WebSocket-Version: 13\r\n{lines}\r\n".encode())
    status, headers = raw.read_http_head()
    assert status == 101, (offer, status, headers)
    op, rsv, payload = read_frame_rsv(raw)
    assert op == 0x1 and rsv == 0 and json.loads(payload)["type"] == "welcome", (op, rsv, payload)
    return raw, headers


def test_negotiation_answers(binary):
    """Real offers get the documented answers; offers the gateway must decline (RFC 7692 5) and
    garbage get no extension and the upgrade still succeeds."""
    cases = [
        # Chromium and npm ws.
        ("permessage-deflate; client_max_window_bits", "permessage-deflate; client_no_context_takeover"),
        # Firefox.
        ("permessage-deflate", "permessage-deflate; client_no_context_takeover"),
        # Both windows limited (python3-websockets 10.4 as a server offers 12/12).
        ("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
         "permessage-deflate; client_no_context_takeover; server_max_window_bits=12"),
        ("permessage-deflate; server_no_context_takeover",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ('permessage-deflate; server_max_window_bits="10"',
         "permessage-deflate; client_no_context_takeover; server_max_window_bits=10"),
        # Declined: invalid value, unknown parameter, a parameter twice; then nothing else offered.
        ("permessage-deflate; server_max_window_bits=7", None),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; foo", None),
        ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
        ("permessage-deflate; client_max_window_bits=08", None),
        # The first offer declined, the second taken; other extensions ignored.
        ("permessage-deflate; server_max_window_bits=20, permessage-deflate",
         "permessage-deflate; client_no_context_takeover"),
        ("x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=10",
         "permessage-deflate; client_no_context_takeover; server_max_window_bits=10"),
        ("x-webkit-deflate-frame", None),
        # Garbage.
        (";;;,=,", None),
        ("permessage-deflate; server_max_window_bits=1" + "0" * 5000, None),
        # Several header lines.
        (["x-foo", "permessage-deflate; client_max_window_bits"],
         "permessage-deflate; client_no_context_takeover"),
    ]
    with Gateway(binary) as gw:
        for offer, expected in cases:
            raw, headers = upgrade(gw, offer)
            assert headers.get("sec-websocket-extensions") == expected, (offer, headers)
            raw.close()
    with Gateway(binary, WS_COMPRESSION="false") as gw:
        raw, headers = upgrade(gw, "permessage-deflate; client_max_window_bits")
        assert "sec-websocket-extensions" not in headers, headers
        raw.close()


def test_frame_form_inflates_to_the_uncompressed_envelope(binary):
    """A compressed frame has RSV1, starts with the client's `{"seq":N,` as a stored DEFLATE block
    and inflates with zlib to exactly what an uncompressed client reads; a message too small to
    gain goes uncompressed to the compressing client too."""
    with Gateway(binary) as gw:
        comp, _ = upgrade(gw, "permessage-deflate; client_max_window_bits", "/ws?channels=PX")
        plain, _ = upgrade(gw, None, "/ws?channels=PX")
        for raw in (comp, plain):
            assert json.loads(read_frame_rsv(raw)[2])["type"] == "subscribed"
        gw.publish([{"channel": "PX", "data": market(i)} for i in range(20)] + [{"channel": "PX", "data": 1}])
        for i in range(21):
            op, rsv, payload = read_frame_rsv(comp)
            op_p, rsv_p, text = read_frame_rsv(plain)
            assert op == op_p == 0x1 and rsv_p == 0, (op, op_p, rsv_p)
            if i < 20:
                assert rsv == 4, f"message {i} not compressed"
                prefix = f'{{"seq":{i + 1},'.encode()
                # A stored block: BFINAL=0 BTYPE=00, then LEN, NLEN (little-endian), then the prefix.
                assert payload[0] == 0 and int.from_bytes(payload[1:3], "little") == len(prefix), payload[:8]
                assert int.from_bytes(payload[3:5], "little") == 0xFFFF ^ len(prefix)
                assert payload[5:5 + len(prefix)] == prefix
                assert inflate(payload) == text, i
                assert len(payload) < 0.6 * len(text), (len(payload), len(text))
                assert json.loads(text)["data"] == market(i)
            else:
                assert rsv == 0 and payload == text and json.loads(text)["data"] == 1, (rsv, payload)
        comp.close()
        plain.close()


async def test_python_websockets_with_and_without_compression(binary):
    """python3-websockets negotiates compression by default: it receives the same bytes as a client
    without it, seq contiguous; /metrics counts one compressed connection and every message once."""
    with Gateway(binary) as gw:
        comp, _ = await connect(gw, "?channels=PY")
        plain, _ = await connect(gw, "?channels=PY", compression=None)
        assert [type(e).__name__ for e in comp.extensions] == ["PerMessageDeflate"], comp.extensions
        assert plain.extensions == []
        for ws in (comp, plain):
            assert (await recv_json(ws))["type"] == "subscribed"
        m0 = metrics(gw)
        assert m0.get("ws_compressed_connections") == 1.0, m0.get("ws_compressed_connections")
        published = [market(i) for i in range(100)]
        gw.publish([{"channel": "PY", "data": d} for d in published])
        got = {}
        for name, ws in (("comp", comp), ("plain", plain)):
            got[name] = [await asyncio.wait_for(ws.recv(), 5) for _ in published]
        for i, (a, b) in enumerate(zip(got["comp"], got["plain"])):
            assert a == b, i  # same seq on both (both got exactly these 100), same bytes
            m = json.loads(a)
            assert m["seq"] == i + 1 and m["data"] == published[i], (i, m)
        m1 = metrics(gw)
        compressed = m1["ws_compressed_messages_total"] - m0.get("ws_compressed_messages_total", 0)
        assert compressed == len(published), compressed
        ratio = m1["ws_compression_output_bytes_total"] / m1["ws_compression_input_bytes_total"]
        print(f"  100 market messages of ~{len(got['plain'][0])} bytes: compressed to {ratio:.0%}; "
              f"{1e6 * m1['ws_compression_seconds_total'] / m1['ws_compressed_messages_total']:.1f} us each")
        assert ratio < 0.6, ratio
        await comp.close()
        await plain.close()


async def test_a_thousand_clients_share_one_compressed_copy(binary):
    """1,000 compressing clients on one channel: each message is compressed once (the metric counts
    20 for 20 messages, not 20,000), and every client gets every message exactly."""
    with Gateway(binary, WS_MAX_CONNECTIONS=2000) as gw:
        clients = await asyncio.gather(*[connect(gw, "?channels=MANY") for _ in range(1000)])
        wss = [ws for ws, _ in clients]
        for ws in wss:
            assert (await recv_json(ws, 10))["type"] == "subscribed"
        m0 = metrics(gw)
        assert m0["ws_compressed_connections"] == 1000.0
        published = [market(i) for i in range(20)]
        gw.publish([{"channel": "MANY", "data": d} for d in published])

        async def read_all(ws):
            return [json.loads(await asyncio.wait_for(ws.recv(), 20)) for _ in published]

        results = await asyncio.gather(*[read_all(ws) for ws in wss])
        for got in results:
            assert [m["data"] for m in got] == published
            assert [m["seq"] for m in got] == list(range(1, 21))
        m1 = metrics(gw)
        compressed = m1["ws_compressed_messages_total"] - m0.get("ws_compressed_messages_total", 0)
        assert compressed == 20, f"{compressed} compressions for 20 messages to 1,000 clients"
        assert m1["ws_messages_out_total"] - m0["ws_messages_out_total"] >= 20_000
        await asyncio.gather(*[ws.close() for ws in wss])


def test_compressed_client_requests(binary):
    """A client may compress its requests: whole, and fragmented (RSV1 on the first frame only)."""
    with Gateway(binary) as gw:
        raw, _ = upgrade(gw, "permessage-deflate")
        request = deflate(json.dumps({"type": "subscribe", "id": "a", "data": {"channels": ["CA"]}}))
        raw.send_frame(0x1, request, rsv=4)
        op, rsv, payload = read_frame_rsv(raw)
        assert json.loads(payload)["type"] == "subscribed" and json.loads(payload)["id"] == "a", payload
        request = deflate(json.dumps({"type": "subscribe", "id": "b", "data": {"channels": ["CB"]}}))
        raw.send_frame(0x1, request[:5], fin=False, rsv=4)
        raw.send_frame(0x0, request[5:], fin=True)
        op, rsv, payload = read_frame_rsv(raw)
        assert json.loads(payload)["id"] == "b", payload
        raw.close()


def test_protocol_errors(binary):
    """RSV1 on a control frame or a continuation, a compressed frame without negotiation, a frame
    that is not DEFLATE, and a bomb that inflates past WS_MAX_MESSAGE_BYTES: each closed with its
    code, and the gateway goes on serving others."""
    with Gateway(binary) as gw:
        def closed_with(offer, frames):
            raw, _ = upgrade(gw, offer)
            for f in frames:
                raw.send_raw(f)
            code, _ = raw.read_until_close()
            raw.close()
            return code

        F = RawClient.frame
        assert closed_with("permessage-deflate", [F(0x9, b"hi", rsv=4)]) == 1002
        assert closed_with("permessage-deflate", [F(0x1, deflate('{"ty'), fin=False, rsv=4),
                                                  F(0x0, b"x", rsv=4)]) == 1002
        assert closed_with(None, [F(0x1, deflate('{"type":"heartbeat"}'), rsv=4)]) == 1002
        assert closed_with("permessage-deflate", [F(0x1, b"\xff\xff\xff\xff", rsv=4)]) == 1007
        assert closed_with("permessage-deflate", [F(0x1, deflate(b"\xff\xfe" * 10), rsv=4)]) == 1007
        bomb = deflate(b"[" + b" " * (3 << 20) + b"]")  # 3 MiB
        assert len(bomb) < 4096, len(bomb)  # under WS_MAX_MESSAGE_BYTES as it travels
        assert closed_with("permessage-deflate", [F(0x1, bomb, rsv=4)]) == 1009
        raw, _ = upgrade(gw, "permessage-deflate", "/ws?channels=OK")
        assert json.loads(read_frame_rsv(raw)[2])["type"] == "subscribed"
        raw.close()


def test_server_max_window_bits_limits_what_goes_compressed(binary):
    """A client that asked for server_max_window_bits=9 gets compressed only messages of at most
    2^9 bytes (every back-reference then fits its window); longer ones go uncompressed."""
    with Gateway(binary) as gw:
        raw, headers = upgrade(gw, "permessage-deflate; server_max_window_bits=9", "/ws?channels=WB")
        assert headers["sec-websocket-extensions"].endswith("server_max_window_bits=9"), headers
        assert json.loads(read_frame_rsv(raw)[2])["type"] == "subscribed"
        short = {"p": ["43251.17"] * 30}  # compressible, well under 512 bytes as an envelope
        gw.publish([{"channel": "WB", "data": market(1)}, {"channel": "WB", "data": short}])
        op, rsv, payload = read_frame_rsv(raw)
        assert rsv == 0 and json.loads(payload)["data"] == market(1), "over 2^9 bytes: uncompressed"
        op, rsv, payload = read_frame_rsv(raw)
        assert rsv == 4, "under 2^9 bytes: compressed"
        d = zlib.decompressobj(-9)
        text = d.decompress(payload + TRAILER)
        assert json.loads(text)["data"] == short
        raw.close()


async def test_replay_and_resume_send_compressed_frames_that_match(binary):
    """Replay and resume re-send what a compressing client got, with the same bytes."""
    with Gateway(binary) as gw:
        ws, welcome = await connect(gw, "?channels=RR")
        await recv_json(ws)
        gw.publish([{"channel": "RR", "data": market(i)} for i in range(10)])
        first = [await asyncio.wait_for(ws.recv(), 5) for _ in range(10)]
        await ws.send(json.dumps({"type": "replay", "data": {"from": 3}}))
        replayed = []
        while True:
            m = await asyncio.wait_for(ws.recv(), 5)
            if json.loads(m).get("type") == "replay_done":
                break
            replayed.append(m)
        assert replayed == first[2:], "replay re-sends the same envelopes"
        await ws.close()
        gw.publish([{"channel": "RR", "data": market(i)} for i in range(10, 15)])
        ws2, _ = await connect(gw)
        await ws2.send(json.dumps({"type": "resume", "data": {"session": welcome["data"]["session"],
                                                               "last_seq": 10}}))
        got = []
        while len(got) < 5:
            m = json.loads(await asyncio.wait_for(ws2.recv(), 5))
            if "seq" in m:
                got.append(m)
        assert [m["seq"] for m in got] == list(range(11, 16))
        assert [m["data"] for m in got] == [market(i) for i in range(10, 15)]
        assert [type(e).__name__ for e in ws2.extensions] == ["PerMessageDeflate"]
        await ws2.close()


async def test_tls_with_compression(binary):
    """Compressed frames over TLS: the data arrives exactly."""
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_certificate(d, "c")
        with Gateway(binary, WS_TLS_CERT=cert, WS_TLS_KEY=key) as gw:
            ws, _ = await connect(gw, "?channels=TLS")
            assert [type(e).__name__ for e in ws.extensions] == ["PerMessageDeflate"]
            await recv_json(ws)
            gw.publish([{"channel": "TLS", "data": market(i)} for i in range(30)])
            got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(30)]
            assert [m["data"] for m in got] == [market(i) for i in range(30)]
            assert metrics(gw)["ws_compressed_messages_total"] == 30
            await ws.close()


if __name__ == "__main__":
    run_tests([test_negotiation_answers, test_frame_form_inflates_to_the_uncompressed_envelope,
               test_python_websockets_with_and_without_compression,
               test_a_thousand_clients_share_one_compressed_copy, test_compressed_client_requests,
               test_protocol_errors, test_server_max_window_bits_limits_what_goes_compressed,
               test_replay_and_resume_send_compressed_frames_that_match, test_tls_with_compression])
