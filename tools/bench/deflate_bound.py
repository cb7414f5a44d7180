#!/usr/bin/env python3
"""How small can one message get? The compression ratio of the gateway's own data messages under
every DEFLATE encoder Debian has, each message compressed alone (as odin-ws compresses once for
all recipients, with no context between messages), beside what a per-connection context would
reach. It answers whether a better encoder could meet a wire-bytes target, or whether only
context could.

It starts odin-ws (embedded broker) and the bench publisher (POST /publish, --payload market or
tick), reads the messages as a client sees them (uncompressed), and compresses each message's
shared tail (everything after `{"seq":N,`) with:
  zlib at levels 1, 6 (the gateway's) and 9; libdeflate at 12 (libdeflate-gzip, its strongest);
  zopfli (--i15, an exhaustive optimal-parse search); and zlib 6 with the previous message of the
  same channel as preset dictionary (what a compressor with context takeover could reach at best).
Writes docs/bench/compression-bound.md (included by report.py) unless --no-write.

Usage: tools/bench/deflate_bound.py [--build build/release] [--count 200] [--no-write]
Needs: zopfli and libdeflate-tools (scripts/install-deps.sh bench), python3-websockets.
"""
import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import zlib

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "docs", "bench", "compression-bound.md")
CHANNELS = 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def collect(build, payload, count):
    port = free_port()
    env = dict(os.environ, WS_ADDR=f"127.0.0.1:{port}", LOG_LEVEL="warn")
    gw = subprocess.Popen([os.path.join(build, "odin-ws")], env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{port}/ws?channels=" + ",".join(f"ch{c}" for c in range(CHANNELS)),
                    compression=None, max_size=None)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        while '"subscribed"' not in await asyncio.wait_for(ws.recv(), 5):
            pass
        pub = subprocess.Popen([os.path.join(build, "publisher"), "--http", f"127.0.0.1:{port}",
                                "--rate", "200", "--channels", str(CHANNELS), "--count", str(count),
                                "--payload", payload], stdout=subprocess.DEVNULL)
        messages = [await asyncio.wait_for(ws.recv(), 10) for _ in range(count)]
        pub.wait(10)
        await ws.close()
        return messages
    finally:
        gw.terminate()
        gw.wait(10)


def tail_and_channel(message):
    m = re.match(r'\{"seq":\d+,', message)
    assert m, message[:40]
    channel = re.search(r'"channel":"([^"]*)"', message).group(1)
    return message[m.end():].encode(), channel


def zlib_raw(data, level, zdict=None):
    z = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY,
                         **({"zdict": zdict} if zdict else {}))
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return len(out) - 4  # RFC 7692 7.2.1: the sync flush's 4 bytes are not sent


def libdeflate12(data):
    gz = subprocess.run(["libdeflate-gzip", "-12", "-c"], input=data, capture_output=True, check=True)
    return len(gz.stdout) - 18  # gzip: 10-byte header, 8-byte trailer around the raw DEFLATE


def zopfli(data, workdir):
    path = os.path.join(workdir, "m")
    with open(path, "wb") as f:
        f.write(data)
    subprocess.run(["zopfli", "--deflate", "--i15", path], check=True, capture_output=True)
    return os.path.getsize(path + ".deflate")


def measure(messages):
    tails = [tail_and_channel(m) for m in messages]
    raw = sum(len(t) for t, _ in tails)
    previous = {}
    with_context = 0
    for t, channel in tails:
        with_context += zlib_raw(t, 6, previous.get(channel))
        previous[channel] = t
    with tempfile.TemporaryDirectory() as workdir:
        rows = [
            ("zlib level 1", sum(zlib_raw(t, 1) for t, _ in tails)),
            ("zlib level 6 (the gateway's)", sum(zlib_raw(t, 6) for t, _ in tails)),
            ("zlib level 9", sum(zlib_raw(t, 9) for t, _ in tails)),
            ("libdeflate level 12", sum(libdeflate12(t) for t, _ in tails)),
            ("zopfli (15 iterations)", sum(zopfli(t, workdir) for t, _ in tails)),
            ("zlib level 6, previous message of the channel as dictionary (context; not "
             "compress-once)", with_context),
        ]
    return raw / len(tails), [(name, size / raw) for name, size in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    results = {}
    for payload in ("market", "tick"):
        results[payload] = measure(asyncio.run(collect(args.build, payload, args.count)))
    lines = [
        "Encoders on the same messages (`tools/bench/deflate_bound.py --count %d`, %s): compressed "
        "size of each message's shared tail / its size, every message alone unless the row says "
        "otherwise." % (args.count, time.strftime("%Y-%m-%dT%H:%M:%S")),
        "",
        "| encoder | market (%.0f-byte tail) | tick (%.0f-byte tail) |" % (
            results["market"][0], results["tick"][0]),
        "|---|---|---|",
    ]
    for (name, market), (_, tick) in zip(results["market"][1], results["tick"][1]):
        lines.append("| %s | %.3f | %.3f |" % (name, market, tick))
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        with open(OUT, "w") as f:
            f.write(text)
        print("wrote", os.path.relpath(OUT, ROOT), file=sys.stderr)


if __name__ == "__main__":
    main()
