#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): small realistic
inputs for each parser, valid ones and a few of each kind of refusal. The committed files are the
output of this script plus crash reproducers (crash-*), which it leaves alone. Rerun it after
changing an input format; the names are stable, so git shows what changed."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MASK = b"\x37\xfa\x21\x3d"

# fuzz_frame's byte 0 picks the limit from this list (byte 0 % 11) and the handler's behaviour
# (byte 0 // 11 % 4), byte 1 seeds the read sizes.
LIMITS = [0, 1, 2, 16, 125, 126, 127, 1000, 65535, 65536, 1 << 20]


def frame(first, payload, masked=True, length_form=None, mask=MASK):
    n = len(payload)
    out = bytes([first])
    bit = 0x80 if masked else 0
    form = length_form or (7 if n < 126 else 16 if n <= 0xFFFF else 64)
    if form == 7:
        out += bytes([bit | n])
    elif form == 16:
        out += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        out += bytes([bit | 127]) + struct.pack(">Q", n)
    if masked:
        out += mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return out


def text(s, fin=True):
    return frame((0x80 if fin else 0) | 0x1, s.encode() if isinstance(s, str) else s)


def cont(s, fin=True):
    return frame((0x80 if fin else 0) | 0x0, s.encode() if isinstance(s, str) else s)


def close(code=None, reason=b""):
    return frame(0x88, b"" if code is None else struct.pack(">H", code) + reason)


def frame_corpus():
    sub = json.dumps({"type": "subscribe", "id": 1, "data": {"channels": ["BTC-USD"]}})
    limit_64k = LIMITS.index(65536)
    c = {
        "text_hello": (limit_64k, 0, text("hello")),
        "text_utf8": (limit_64k, 0, text("€ price 𝄞 ü")),
        "text_empty": (limit_64k, 0, text("")),
        "text_subscribe_json": (limit_64k, 0, text(sub)),
        "text_len16": (limit_64k, 0, text("x" * 200)),
        "text_len64_nonminimal": (limit_64k, 0, frame(0x81, b"abc", length_form=64)),
        "text_zero_mask": (limit_64k, 0, frame(0x81, b"plain", mask=b"\0\0\0\0")),
        "fragmented": (limit_64k, 0, text("hel", fin=False) + cont("lo")),
        "fragmented_three": (limit_64k, 0, text("a", fin=False) + cont("b", fin=False) + cont("c")),
        "fragmented_utf8_split_char": (limit_64k, 0,
                                       text("€".encode()[:1], fin=False) + cont("€".encode()[1:])),
        "fragmented_ping_inside": (limit_64k, 0,
                                   text("ab", fin=False) + frame(0x89, b"p") + cont("cd")),
        "fragmented_empty_first": (limit_64k, 0, text("", fin=False) + cont("x")),
        "ping": (limit_64k, 0, frame(0x89, b"are you there")),
        "pong": (limit_64k, 0, frame(0x8A, b"")),
        "close_normal": (limit_64k, 0, close(1000, b"bye")),
        "close_empty": (limit_64k, 0, close()),
        "close_app_code_utf8": (limit_64k, 0, close(4000, "fermé".encode())),
        "stream_split_reads": (limit_64k, 0x5A,
                               text("one") + frame(0x89, b"") + text("two", fin=False) +
                               cont("three") + close(1001)),
        "stream_split_reads_2": (limit_64k, 0xC3, text("x" * 300) + text("y" * 130) + close(1000)),
        "split_control_in_fragmented": (limit_64k, 0x11,
                                        text("m" * 40, fin=False) + frame(0x89, b"q" * 100) +
                                        cont("n" * 40)),
        "limit16_too_big": (LIMITS.index(16), 0, text("x" * 17)),
        "limit16_fragments_too_big": (LIMITS.index(16), 0x07,
                                      text("x" * 10, fin=False) + cont("y" * 10)),
        "limit16_exact": (LIMITS.index(16), 0x03, text("x" * 8, fin=False) + cont("y" * 8)),
        "limit0_empty_ok": (LIMITS.index(0), 0, text("") + frame(0x89, b"")),
        "bad_unmasked": (limit_64k, 0, frame(0x81, b"hi", masked=False)),
        "bad_binary": (limit_64k, 0, frame(0x82, b"\x00\x01")),
        "bad_rsv": (limit_64k, 0, frame(0xC1, b"hi")),
        "bad_opcode": (limit_64k, 0, frame(0x83, b"")),
        "bad_utf8": (limit_64k, 0, text(b"\xed\xa0\x80")),
        "bad_fragmented_control": (limit_64k, 0, frame(0x09, b"")),
        "bad_continuation_first": (limit_64k, 0, cont("x")),
        "bad_close_code": (limit_64k, 0, close(1005)),
        "bad_close_one_byte": (limit_64k, 0, frame(0x88, b"\x03")),
        "bad_ping_too_long": (limit_64k, 0, frame(0x89, b"p" * 126)),
        "bad_len64_msb": (limit_64k, 0, b"\x81\xff\x80" + b"\0" * 7 + MASK),
        "after_close_ignored": (limit_64k, 0x21, close(1000) + text("late")),
        # Handler behaviours (byte 0 // 11): 1 stops reading on every third event, 2 releases
        # the reader's buffers in every callback, 3 both.
        "handler_stops": (limit_64k + 11, 0x35,
                          text("a") + text("b") + text("c") + text("d") + frame(0x89, b"")),
        "handler_releases_in_fragmented": (limit_64k + 22, 0x0B,
                                           text("ab", fin=False) + frame(0x89, b"p" * 20) +
                                           cont("cd")),
        "handler_releases_on_text": (limit_64k + 22, 0x62,
                                     text("x" * 50, fin=False) + cont("y" * 50) + text("z")),
        "handler_stops_and_releases": (limit_64k + 33, 0x44,
                                       text("m", fin=False) + cont("n") + frame(0x8A, b"o") +
                                       close(1000)),
    }
    return {name: bytes([limit, seed]) + data for name, (limit, seed, data) in c.items()}


UPGRADE = ("GET /ws{query} HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: {version}\r\n\r\n")


def upgrade(query="", version="13"):
    return UPGRADE.format(query=query, version=version).encode()


def http_corpus():
    body = json.dumps({"channel": "BTC-USD", "type": "price", "data": {"p": 1}}).encode()
    post = (b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    chunked = (b"POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    c = {
        "upgrade": (0, upgrade()),
        "upgrade_channels": (0, upgrade("?channels=BTC-USD,ETH-USD")),
        "upgrade_channels_encoded": (0x3C, upgrade("?x=1&channels=a%2Cb%2cc,a")),
        "upgrade_channels_bad": (0, upgrade("?channels=ok,bad%20name")),
        "upgrade_channels_empty_name": (0, upgrade("?channels=a,,b")),
        "upgrade_version_12": (0, upgrade(version="12")),
        "upgrade_split": (0x77, upgrade("?channels=x")),
        "upgrade_then_frame": (0, upgrade() + frame(0x81, b"hi")),
        "upgrade_http10": (0, upgrade().replace(b"HTTP/1.1", b"HTTP/1.0")),
        "upgrade_no_key": (0, upgrade().replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                                                b"")),
        "upgrade_bad_key": (0, upgrade().replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short")),
        "upgrade_post": (0, upgrade().replace(b"GET", b"POST")),
        "upgrade_tokens": (0, upgrade().replace(b"Connection: Upgrade",
                                                b"Connection: keep-alive, Upgrade")),
        "health": (0, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
        "metrics_http10": (0, b"GET /metrics HTTP/1.0\r\n\r\n"),
        "head_index": (0, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        "publish": (0, post),
        "publish_split": (0x2B, post),
        "publish_chunked": (0x19, chunked),
        "pipelined": (0x4D, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + post +
                      b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n"),
        "bad_request_line": (0, b"GET\r\n\r\n"),
        "bad_content_length": (0, b"POST /publish HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
        "body_over_limit": (0, b"POST /publish HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n"),
        "header_folding": (0, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n  more\r\n\r\n"),
    }
    return {name: bytes([seed]) + data for name, (seed, data) in c.items()}


def upgrade_corpus():
    """fuzz_upgrade: byte 0 the channel cap, then the query string, '\n', extra header lines."""
    c = {
        "channels": (100, b"channels=BTC-USD,ETH-USD"),
        "channels_encoded": (2, b"x=1&channels=a%2Cb%2cc,a"),
        "channels_over_cap": (3, b"channels=" + b",".join(b"c%d" % i for i in range(40))),
        "channels_dups_over_scan": (50, b"channels=" + b",".join(b"c%d" % (i % 25)
                                                                for i in range(100))),
        "channels_bad_after_cap": (1, b"channels=a,b,bad%20name"),
        "channels_bad": (10, b"channels=ok,,x"),
        "channels_trailing": (10, b"channels=a%2C"),
        "channels_cap_zero": (0, b"channels=a"),
        "channels_twice": (5, b"channels=a&channels=b"),
        "token_and_channels": (5, b"token=abc&channels=x.y:z"),
        "no_query": (5, b""),
        "extra_headers": (5, b"channels=a\nOrigin: https://example.com\r\n"
                             b"Sec-WebSocket-Protocol: x\r\n"),
        "version_12": (5, b"channels=a\nSec-WebSocket-Version: 12\r\n"),
    }
    return {name: bytes([cap]) + data for name, (cap, data) in c.items()}


def client_request_corpus():
    reqs = {
        "subscribe": {"type": "subscribe", "id": 1, "data": {"channels": ["BTC-USD", "ETH-USD"]}},
        "subscribe_snapshot": {"type": "subscribe", "data": {"channels": ["A"], "snapshot": True}},
        "subscribe_symbols_dups": {"type": "subscribe", "id": "s",
                                   "data": {"symbols": ["A", "B", "A"]}},
        "unsubscribe": {"type": "unsubscribe", "id": [1, {"k": None}], "data": {"channels": ["A"]}},
        "heartbeat": {"type": "heartbeat", "id": 42},
        "replay": {"type": "replay", "id": "r", "data": {"from": 5, "to": 7}},
        "replay_open_end": {"type": "replay", "data": {"from": 1}},
        "resume": {"type": "resume", "data": {"session": "0123456789abcdef", "last_seq": 12}},
        "auth": {"type": "auth", "id": 3, "data": {"token": "eyJhbGciOiJIUzI1NiJ9.e30.sig"}},
        "unknown": {"type": "dance", "id": "z"},
        "no_type": {"data": {}},
        "subscribe_no_data": {"type": "subscribe", "id": 77},
        "subscribe_bad_name": {"type": "subscribe", "data": {"channels": ["ok", "a b"]}},
        "subscribe_empty": {"type": "subscribe", "data": {"channels": []}},
        "replay_from_zero": {"type": "replay", "data": {"from": 0}},
        "replay_to_before_from": {"type": "replay", "data": {"from": 5, "to": 2}},
        "replay_to_negative": {"type": "replay", "data": {"from": 1, "to": -1}},
        "resume_short_id": {"type": "resume", "data": {"session": "abc", "last_seq": 1}},
        # Resume on any instance: stream position and channels (they go together).
        "resume_position": {"type": "resume", "id": "r",
                            "data": {"session": "0123456789abcd01", "last_seq": 7,
                                     "last_pos": 4711, "channels": ["BTC-USD", "ETH-USD",
                                                                    "BTC-USD"]}},
        "resume_position_symbols": {"type": "resume", "data": {"session": "0123456789abcd00",
                                                               "last_seq": 0, "last_pos": 0,
                                                               "symbols": ["A"]}},
        "resume_position_no_channels": {"type": "resume", "data": {"session": "0123456789abcdef",
                                                                   "last_seq": 1, "last_pos": 5}},
        "resume_position_bad_name": {"type": "resume", "data": {"session": "0123456789abcdef",
                                                                "last_seq": 1, "last_pos": 5,
                                                                "channels": ["a b"]}},
        "resume_position_negative": {"type": "resume", "data": {"session": "0123456789abcdef",
                                                                "last_seq": 1, "last_pos": -1,
                                                                "channels": ["A"]}},
        # Lists around the 3-name cap the target also parses with, and past its 16-name scan.
        "unsubscribe_over_cap": {"type": "unsubscribe", "data": {"channels": ["a", "b", "c", "d"]}},
        "subscribe_long_dups": {"type": "subscribe",
                                "data": {"channels": [f"c{i % 20}" for i in range(60)]}},
        "auth_no_token": {"type": "auth", "data": {"token": 5}},
    }
    c = {name: json.dumps(r).encode() for name, r in reqs.items()}
    c["not_json"] = b"not json"
    c["array"] = b"[1,2]"
    c["escapes"] = (b'{"type":"subscribe","id":"\\u00e9\\ud83d\\ude00",'
                    b'"data":{"channels":["\\u0041"]}}')
    c["big_numbers"] = b'{"type":"replay","id":1e308,"data":{"from":18446744073709551615}}'
    return c


def publish_corpus():
    bodies = {
        "single": {"channel": "BTC-USD", "type": "price:update", "data": {"p": 64000.5, "v": 3}},
        "default_type": {"channel": "news", "data": "headline"},
        "array": [{"channel": "a", "data": 1}, {"channel": "b", "type": "t", "data": [1, 2]},
                  {"channel": "c.d:e_f-g", "data": {"nested": {"x": [True, False, None]}}}],
        "data_null": {"channel": "a", "data": None},
        "data_unicode": {"channel": "a", "data": "é𝄞\u0000\n"},
        "long_data": {"channel": "a", "data": "x" * 100},
        "empty_array": [],
        "bad_channel": {"channel": "a b", "data": 1},
        "bad_second_item": [{"channel": "a", "data": 1}, {"channel": "x/y", "data": 1}],
        "no_data": {"channel": "a"},
        "type_not_string": {"channel": "a", "type": 7, "data": 1},
        "not_object_item": [{"channel": "a", "data": 1}, 3],
    }
    c = {name: json.dumps(b, ensure_ascii=False).encode() for name, b in bodies.items()}
    c["numbers"] = b'{"channel":"n","data":[-0.0,1e-7,1E+300,-9223372036854775808,18446744073709551615]}'
    c["whitespace"] = b' [ { "channel" : "w" ,\n "data" : { } } ] '
    c["not_json"] = b"{channel: a}"
    return c


def write(target, files):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("fuzz_frame", frame_corpus())
    write("fuzz_http_request", http_corpus())
    write("fuzz_client_request", client_request_corpus())
    write("fuzz_upgrade", upgrade_corpus())
    write("fuzz_publish_body", publish_corpus())
