"""RFC 6455 rules on the wire, with a raw-socket client (a library would refuse to send these)."""
import json

from harness import Gateway, RawClient, run_tests


def opened(gw, path="/ws"):
    c = RawClient(gw.port, path)
    status, headers = c.read_http_head()
    assert status == 101, status
    op, payload = c.read_frame()
    assert op == 0x1 and json.loads(payload)["type"] == "welcome"
    return c


def expect_close(gw, frames, code):
    c = opened(gw)
    for f in frames:
        c.send_raw(f)
    got, _ = c.read_until_close()
    assert got == code, (got, code)
    assert c.read_frame(3) is None  # then the server closes TCP
    c.close()


def test_protocol_errors(binary):
    F = RawClient.frame
    with Gateway(binary) as gw:
        expect_close(gw, [F(0x1, '{"type":"heartbeat"}', masked=False)], 1002)
        expect_close(gw, [F(0x1, "x", rsv=4)], 1002)
        expect_close(gw, [F(0x3, "")], 1002)
        expect_close(gw, [F(0xB, "")], 1002)
        expect_close(gw, [F(0x9, b"p" * 126)], 1002)
        expect_close(gw, [F(0x9, "p", fin=False)], 1002)
        expect_close(gw, [F(0x0, "lonely")], 1002)
        expect_close(gw, [F(0x1, "a", fin=False), F(0x1, "b")], 1002)
        expect_close(gw, [F(0x1, b"\xff\xfe")], 1007)
        expect_close(gw, [F(0x1, b"\xed\xa0\x80")], 1007)
        expect_close(gw, [F(0x1, '{"type":', fin=False), F(0x0, b"\xc0\xaf", fin=False)], 1007)
        expect_close(gw, [F(0x8, b"\x03\xed")], 1002)  # 1005 may not be sent
        expect_close(gw, [F(0x8, b"\x03\xe7")], 1002)  # 999
        expect_close(gw, [F(0x8, b"\x03")], 1002)


def test_fragments_with_interleaved_ping(binary):
    with Gateway(binary) as gw:
        c = opened(gw)
        c.send_frame(0x1, '{"type":"hea', fin=False)
        c.send_frame(0x9, "are you there")
        c.send_frame(0x0, 'rtbeat","id":', fin=False)
        c.send_frame(0x0, '"frag"}')
        op, payload = c.read_frame()
        assert (op, payload) == (0xA, b"are you there")
        op, payload = c.read_frame()
        msg = json.loads(payload)
        assert op == 0x1 and msg["type"] == "pong" and msg["id"] == "frag"
        # A UTF-8 character split across fragments is valid.
        c.send_frame(0x1, b'{"type":"heartbeat","id":"\xe2\x82', fin=False)
        c.send_frame(0x0, b'\xac"}')
        assert json.loads(c.read_frame()[1])["id"] == "\u20ac"
        c.close()


def test_close_handshake_and_ping(binary):
    with Gateway(binary) as gw:
        c = opened(gw)
        c.send_frame(0x9, b"\x00\x01binary-safe")
        assert c.read_frame() == (0xA, b"\x00\x01binary-safe")
        c.send_frame(0x8, b"\x03\xe8bye")
        code, _ = c.read_until_close()
        assert code == 1000
        assert c.read_frame(3) is None
        c.close()


def test_bad_upgrades(binary):
    with Gateway(binary) as gw:
        base = {"Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}

        def attempt(method="GET", drop=None, **override):
            headers = dict(base)
            headers.update(override)
            if drop:
                del headers[drop]
            return gw.http(method, "/ws", headers=headers)

        status, _, body = attempt(drop="Sec-WebSocket-Key")
        assert status == 400 and "error" in json.loads(body)
        status, _, body = attempt(**{"Sec-WebSocket-Key": "not-base64-16"})
        assert status == 400 and "error" in json.loads(body)
        status, headers, body = attempt(**{"Sec-WebSocket-Version": "8"})
        assert status == 426 and headers.get("Sec-WebSocket-Version") == "13" and "error" in json.loads(body)
        status, _, body = attempt(method="POST")
        assert status in (400, 405) and "error" in json.loads(body)
        status, _, body = gw.http("GET", "/ws")
        assert status == 400 and "error" in json.loads(body)


if __name__ == "__main__":
    run_tests([test_protocol_errors, test_fragments_with_interleaved_ping,
               test_close_handshake_and_ping, test_bad_upgrades])
