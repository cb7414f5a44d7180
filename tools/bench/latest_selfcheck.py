#!/usr/bin/env python3
"""Self-check of loadclient's `--delivery latest` and `--observe-nats` against a fake gateway, so
the client's parsing and checks can be trusted independently of the real gateway.

It starts a nats-server, a small fake gateway (this script, asyncio) that reads odin.token.> on
NATS like the real one and serves WebSocket clients, the real `publisher` and `loadclient`, and
checks loadclient's JSON. The fake gateway delivers `latest` subscriptions by holding the newest
message per (client, channel) and sending the held ones every 50 ms with `"conflated": K` (the
messages it replaced), and `all` subscriptions (?channels= in the URL) message by message.

Cases:
  all        ?channels= subscription: every message, no conflated, staleness sampled
  latest     conflation: checks pass, everything ends on the newest
  bad-count  one client gets a wrong conflated count once: conflated_mismatch > 0
  frozen     one client stops getting one channel: final_short > 0, staleness grows
  old        the gateway does not echo the delivery (a gateway without the extension):
             every connection fails with no_latest

  latest_selfcheck.py --build build/rel [case ...]
"""
import argparse
import asyncio
import base64
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame(text):
    b = text.encode()
    n = len(b)
    if n < 126:
        head = bytes([0x81, n])
    elif n < 65536:
        head = bytes([0x81, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 127]) + n.to_bytes(8, "big")
    return head + b


async def read_frame(reader):
    h = await reader.readexactly(2)
    n = h[1] & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4) if h[1] & 0x80 else b"\0\0\0\0"
    data = bytearray(await reader.readexactly(n))
    for i in range(n):
        data[i] ^= mask[i & 3]
    return h[0] & 0x0F, bytes(data)


class Client:
    def __init__(self, writer, index):
        self.w = writer
        self.index = index
        self.seq = 0
        self.channels = []
        self.latest = False
        self.held = {}  # channel -> [envelope tail, replaced count]
        self.frozen = set()

    def send_data(self, tail, conflated):
        self.seq += 1
        c = f'"conflated":{conflated},' if conflated else ""
        self.w.write(frame('{"seq":%d,%s%s' % (self.seq, c, tail)))


class FakeGateway:
    def __init__(self, mode, nats_port):
        self.mode = mode
        self.nats_port = nats_port
        self.clients = []
        self.count = 0
        self.bad_done = False

    async def serve(self, port, ready):
        server = await asyncio.start_server(self.on_client, "127.0.0.1", port, backlog=1024)
        nr, nw = await asyncio.open_connection("127.0.0.1", self.nats_port)
        await nr.readline()  # INFO
        nw.write(b'CONNECT {"verbose":false,"headers":true}\r\nSUB odin.token.> 1\r\nPING\r\n')
        await nw.drain()
        while (await nr.readline()).strip() != b"PONG":
            pass
        ready.set()
        asyncio.ensure_future(self.flusher())
        async with server:
            while True:
                line = await nr.readline()
                if not line:
                    return
                parts = line.split()
                if parts and parts[0] == b"PING":
                    nw.write(b"PONG\r\n")
                    continue
                if not parts or parts[0] not in (b"MSG", b"HMSG"):
                    continue
                size = int(parts[-1])
                hdr = int(parts[-2]) if parts[0] == b"HMSG" else 0
                body = (await nr.readexactly(size + 2))[:size]
                channel = parts[1].decode()[len("odin.token."):]
                tail = ('"ts":%d,"type":"price:update","channel":"%s","data":%s}'
                        % (int(time.time() * 1000), channel, body[hdr:].decode()))
                self.on_message(channel, tail)

    def on_message(self, channel, tail):
        for c in self.clients:
            if channel not in c.channels:
                continue
            if not c.latest:
                c.send_data(tail, 0)
                continue
            h = c.held.get(channel)
            c.held[channel] = [tail, h[1] + 1 if h else 0]

    async def flusher(self):
        rounds = 0
        while True:
            await asyncio.sleep(0.05)
            rounds += 1
            for c in self.clients:
                for channel, (tail, replaced) in list(c.held.items()):
                    del c.held[channel]
                    if self.mode == "frozen" and c.index == 1 and channel == c.channels[0] and rounds > 10:
                        continue  # this client's first channel is never sent again
                    if self.mode == "bad-count" and c.index == 0 and replaced and not self.bad_done:
                        replaced += 1
                        self.bad_done = True
                    c.send_data(tail, replaced)

    async def on_client(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        path = lines[0].split()[1]
        key = next(l.split(":", 1)[1].strip() for l in lines if l.lower().startswith("sec-websocket-key"))
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        c = Client(writer, self.count)
        self.count += 1
        writer.write(frame('{"type":"welcome","data":{"session":"x","heartbeat_ms":30000}}'))
        if "?channels=" in path:
            c.channels = path.split("?channels=", 1)[1].split(",")
            writer.write(frame('{"type":"subscribed","data":{"channels":%s}}' % json.dumps(c.channels)))
        else:
            op, data = await read_frame(reader)
            req = json.loads(data)
            c.channels = req["data"]["channels"]
            c.latest = req["data"].get("delivery") == "latest" or "max_hz" in req["data"]
            echo = "" if self.mode == "old" else ',"delivery":"latest"'
            writer.write(frame('{"type":"subscribed","data":{"channels":%s%s}}' % (json.dumps(c.channels), echo)))
        self.clients.append(c)
        try:
            while True:
                op, _ = await read_frame(reader)
                if op == 8:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


def run_case(build, mode):
    nats_port, port = free_port(), free_port()
    nats = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(nats_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", nats_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        gw = FakeGateway(mode, nats_port)
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        threading.Thread(target=lambda: loop.run_until_complete(gw.serve(port, ready)), daemon=True).start()
        ready.wait(10)
        channels, per_conn, conns, rate, seconds = 4, 2, 20, 400, 5
        count = rate * seconds
        expect = count // channels * per_conn
        ready_file = tempfile.mktemp(prefix="selfcheck-ready-")
        argv = [os.path.join(build, "loadclient"), "--port", str(port), "--connections", str(conns),
                "--channels", str(channels), "--per-conn", str(per_conn), "--expect", str(expect),
                "--duration", str(seconds + 5), "--ready-file", ready_file,
                "--observe-nats", f"127.0.0.1:{nats_port}"]
        if mode != "all":
            argv += ["--delivery", "latest"]
        client = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        while not os.path.exists(ready_file) and client.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        if os.path.exists(ready_file):
            os.unlink(ready_file)
            subprocess.run([os.path.join(build, "publisher"), "--nats", f"127.0.0.1:{nats_port}",
                            "--rate", str(rate), "--channels", str(channels), "--count", str(count)],
                           check=True, capture_output=True)
        out, err = client.communicate(timeout=60)
        r = json.loads(out.strip().splitlines()[-1])
        return r, client.returncode, err
    finally:
        nats.terminate()
        nats.wait()


def check(mode, r, code):
    cc, st = r.get("channel_check", {}), r.get("staleness_ms", {})
    n = r["connections"]
    slots = n * 2
    expect = {
        "all": [("connections", n == 20), ("delivery 100%", r["delivery_percent"] == 100),
                ("no conflated", cc.get("conflated") == 0), ("no mismatch", cc.get("conflated_mismatch") == 0),
                ("all on newest", cc.get("final_newest") == slots), ("staleness sampled", st.get("samples", 0) > 0),
                ("observer saw 2000, no gaps", r["observer"]["messages"] == 2000 and r["observer"]["gaps"] == 0),
                ("exit 0", code == 0)],
        "latest": [("connections", n == 20), ("delivery < 100% (conflated)", r["delivery_percent"] < 100),
                   ("conflated > 0", cc.get("conflated", 0) > 0), ("no mismatch", cc.get("conflated_mismatch") == 0),
                   ("no order errors", cc.get("order_errors") == 0), ("seq contiguous", r["gaps"] == 0),
                   ("all on newest", cc.get("final_newest") == slots and cc.get("final_short") == 0
                    and cc.get("final_over") == 0),
                   ("staleness p99 < 500 ms", 0 < st.get("p99", 0) < 500 and st.get("samples", 0) > 0),
                   ("exit 0", code == 0)],
        "bad-count": [("one mismatch", cc.get("conflated_mismatch") == 1), ("final over", cc.get("final_over") == 1),
                      ("exit 1", code == 1)],
        "frozen": [("final short: one slot", cc.get("final_short") == 1 and cc.get("final_newest") == slots - 1),
                   ("staleness max > 3 s", st.get("max", 0) > 3000), ("exit 1", code == 1)],
        "old": [("no connection", n == 0 and r["failures"].get("no_latest") == 20), ("exit 1", code == 1)],
    }[mode]
    bad = [what for what, good in expect if not good]
    return bad


def main():
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # clients leaving mid-send are expected
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/release")
    ap.add_argument("cases", nargs="*", default=["all", "latest", "bad-count", "frozen", "old"])
    a = ap.parse_args()
    failed = 0
    for mode in a.cases:
        r, code, err = run_case(os.path.abspath(a.build), mode)
        bad = check(mode, r, code)
        summary = {k: r.get(k) for k in ("connections", "received", "delivery_percent", "gaps",
                                         "channel_check", "staleness_ms", "failures")}
        print(f"{mode}: {'ok' if not bad else 'FAILED: ' + ', '.join(bad)}  {json.dumps(summary)}")
        if bad:
            failed += 1
            print(err[-2000:], file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
