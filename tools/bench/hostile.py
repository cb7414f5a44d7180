#!/usr/bin/env python3
"""Honest clients under attack: for each hostile input of issue 12, 1,000 honest clients (the
benchmark load client, 10 channels) receive 20 msg/s published on NATS for 15 s while the attack
runs against the same gateway. Reported per vector: how much of it was sent, the gateway's RSS and
CPU before and during the attack (peak RSS too), and the honest clients' delivery, p99 and lost
messages, next to a run without attack. Every attack is bounded in count and time and sends only
to 127.0.0.0/8; everything started is stopped by PID (bench.py's Proc).

Usage: tools/bench/hostile.py [--build build/release] [--vectors a,b] [--out FILE]
(build the Release binaries first: tools/bench/run.sh does, or
 cmake --build build/release --target odin-ws loadclient publisher blaster)
"""
import argparse
import base64
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

HONEST = dict(connections=1000, channels=10, per_conn=1, rate=20.0, seconds=15.0, size=500)


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    return bench.proc_jiffies(pid) / os.sysconf("SC_CLK_TCK")


def stats(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
        return json.load(r)


def upgrade_request(path):
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def frame(payload, opcode=0x1, masked=True):
    payload = payload.encode() if isinstance(payload, str) else payload
    n = len(payload)
    head = bytes([0x80 | opcode])
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n <= 0xFFFF:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_connect(port, path, source=None, rcvbuf=None, timeout=5):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source:
        s.bind((source, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(upgrade_request(path))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise EOFError("closed during the upgrade")
        head += chunk
    return s, head.split(b"\r\n\r\n", 1)[1]


def publish(port, items):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/publish", data=json.dumps(items).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def hold_then_close(stop, socks, seconds):
    """Keeps `socks` open until the run ends (or `seconds`), then closes them."""
    stop.wait(seconds)
    for s in socks:
        s.close()


def repeat(stop, count, once):
    """Calls once(i) for i < count until the run ends; returns how many did not raise OSError."""
    done = 0
    for i in range(count):
        if stop.is_set():
            break
        try:
            once(i)
            done += 1
        except OSError:
            pass
    return done


class Attack:
    """Runs `body(stop_event, port)` in a thread; what it returns is the attack's account."""

    def __init__(self, body):
        self.body = body

    def __call__(self, ports, procs):
        pid, port = procs[0].pid, ports[0]
        stop = threading.Event()
        before = dict(rss_kb=status_kb(pid, "VmRSS"), hwm_kb=status_kb(pid, "VmHWM"),
                      cpu_s=cpu_seconds(pid), at=time.time())
        account = {}

        def run():
            try:
                account.update(self.body(stop, port))
            except Exception as e:  # an attack that breaks is reported, never hides the run
                account["error"] = f"{type(e).__name__}: {e}"

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def finish():
            after = dict(rss_kb=status_kb(pid, "VmRSS"), hwm_kb=status_kb(pid, "VmHWM"),
                         cpu_s=cpu_seconds(pid), at=time.time())
            stop.set()
            thread.join(30)
            s = stats(port)
            return dict(account=account, rss_before_kb=before["rss_kb"], rss_after_kb=after["rss_kb"],
                        peak_rss_kb=after["hwm_kb"],
                        cpu_percent=100 * (after["cpu_s"] - before["cpu_s"]) / (after["at"] - before["at"]),
                        slow_closes=s.get("slowClientDisconnects", 0))
        return finish


# ---- the attacks ----------------------------------------------------------------------------

def pipelined_gets(stop, port):
    """2 sockets x 256 KiB of pipelined GET /sdk/odin-client.js whose answers are never read."""
    request = b"GET /sdk/odin-client.js HTTP/1.1\r\nHost: x\r\n\r\n"
    socks, sent = [], 0
    for _ in range(2):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        data, off, deadline = request * ((256 * 1024) // len(request)), 0, time.time() + 3
        while off < len(data) and time.time() < deadline:
            try:
                off += s.send(data[off:off + 65536])
            except BlockingIOError:
                time.sleep(0.01)
        sent += off
        socks.append(s)
    hold_then_close(stop, socks, 20)
    return dict(amount=f"{sent // 1024} KiB of pipelined requests on 2 sockets, never read")


def detached_sessions(stop, port):
    """Connect with ?channels= (100 fresh names) and hang up, over and over: 1,500 times."""
    def once(i):
        names = ",".join(f"h{i}x{j}" for j in range(100))
        ws_connect(port, f"/ws?channels={names}", source=f"127.0.{1 + i % 200}.9")[0].close()

    n = repeat(stop, 1500, once)
    return dict(amount=f"{n} sessions opened with 100 fresh channels each and abandoned")


def replay_flood(stop, port):
    """5 clients, each with 100 x 32 KB in its ring, send 100 `replay` requests in one write and
    never read again."""
    pad = "x" * 32_000
    clients = []
    for c in range(5):
        s, rest = ws_connect(port, f"/ws?channels=hostileR{c}")
        clients.append(s)
        for b in range(4):
            publish(port, [{"channel": f"hostileR{c}", "data": {"n": b * 25 + i, "pad": pad}}
                           for i in range(25)])
        got = rest  # it reads its 100 messages (3.2 MB), then stops reading for good
        while got.count(b'{"seq":') < 100:
            got += s.recv(1 << 20)
    requests = b"".join(frame(json.dumps({"type": "replay", "data": {"from": 1}})) for _ in range(100))
    for s in clients:
        s.sendall(requests)
    hold_then_close(stop, clients, 20)
    return dict(amount=f"5 clients x 100 replays of 100 x 32 KB ({len(requests)} B each), never read")


def long_channel_lists(stop, port):
    """300 upgrades whose ?channels= list is 8 KB of names (far past the 100-channel cap)."""
    names = ",".join(f"c{j:05d}" for j in range(1300))[:8000].rsplit(",", 1)[0]
    n = repeat(stop, 300, lambda i: ws_connect(port, f"/ws?channels={names}")[0].close())
    return dict(amount=f"{n} upgrades with an 8 KB channel list")


def slow_readers(stop, port):
    """200 clients on every honest channel that never read (4 KB receive buffers)."""
    channels = ",".join(f"ch{j}" for j in range(HONEST["channels"]))
    socks = []
    for i in range(200):
        try:
            socks.append(ws_connect(port, f"/ws?channels={channels}", rcvbuf=4096,
                                    source=f"127.0.{1 + i % 200}.10")[0])
        except OSError:
            pass
    hold_then_close(stop, socks, 20)
    return dict(amount=f"{len(socks)} subscribers to all 10 channels that never read")


def request_flood(stop, port):
    """50 clients sending 2,000 heartbeats each, as fast as the socket takes them."""
    beats = frame(json.dumps({"type": "heartbeat"})) * 2000
    sent = 0
    socks = []
    for i in range(50):
        try:
            s, _ = ws_connect(port, "/ws", source=f"127.0.{1 + i}.11")
            s.settimeout(2)
            try:
                s.sendall(beats)
                sent += 2000
            except OSError:
                pass
            socks.append(s)
        except OSError:
            pass
    hold_then_close(stop, socks, 15)
    return dict(amount=f"{sent:,} heartbeat requests from 50 clients")


def bad_frames(stop, port):
    """2,000 connections that each send an unmasked frame (a protocol error: 1002)."""
    def once(i):
        s, _ = ws_connect(port, "/ws", source=f"127.0.{1 + i % 200}.12")
        s.sendall(frame("{}", masked=False))
        s.close()

    n = repeat(stop, 2000, once)
    return dict(amount=f"{n} connections sending an unmasked frame")


def slowloris(stop, port):
    """2,000 sockets that send an HTTP request one byte per second (cut at WS_HANDSHAKE_TIMEOUT)."""
    socks = []
    for i in range(2000):
        try:
            s = socket.socket()
            s.bind((f"127.0.{1 + i % 200}.13", 0))
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            socks.append(s)
        except OSError:
            pass
    line = b"GET /ws HTTP/1.1\r\nX-Slow: " + b"a" * 100
    for k in range(len(line)):
        if stop.wait(1):
            break
        for s in socks:
            try:
                s.send(line[k:k + 1])
            except OSError:
                pass
    for s in socks:
        s.close()
    return dict(amount=f"{len(socks)} sockets sending a request one byte per second")


def resume_far_back(stop, port):
    """JetStream: 200 `resume` requests from position 1 on fresh connections (each needs a
    read-back of the stream), in a burst."""
    socks = []
    for i in range(200):
        try:
            s, _ = ws_connect(port, "/ws", source=f"127.0.{1 + i % 200}.14")
            s.sendall(frame(json.dumps({"type": "resume", "data": {
                "session": "00000000000000000000000000000001", "last_seq": 0, "last_pos": 1,
                "channels": ["ch0", "ch1", "ch2"]}})))
            socks.append(s)
        except OSError:
            pass
    hold_then_close(stop, socks, 15)
    return dict(amount=f"{len(socks)} resumes from stream position 1")


VECTORS = {
    "none": (None, "nats"),
    "pipelined_gets": (pipelined_gets, "nats"),
    "detached_sessions": (detached_sessions, "nats"),
    "replay_flood": (replay_flood, "nats"),
    "long_channel_lists": (long_channel_lists, "nats"),
    "slow_readers": (slow_readers, "nats"),
    "request_flood": (request_flood, "nats"),
    "bad_frames": (bad_frames, "nats"),
    "slowloris": (slowloris, "nats"),
    "none_jetstream": (None, "jetstream"),
    "resume_far_back": (resume_far_back, "jetstream"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(bench.ROOT, "build", "release"))
    ap.add_argument("--vectors", default=",".join(VECTORS))
    ap.add_argument("--out", default=None, help="a JSON file for the results")
    a = ap.parse_args()
    b = bench.Bench(a.build, 0)
    results = []
    for name in a.vectors.split(","):
        body, broker = VECTORS[name]
        bench.log(f"== {name} ({broker})")
        r = b.run("odin", broker=broker, during=Attack(body) if body else None, **HONEST)
        row = dict(vector=name, broker=broker, delivered=r["delivery_percent"],
                   lost=r["expected"] - r["received"], gaps=r["gaps"], duplicates=r["duplicates"],
                   p50=r["latency_ms"]["p50"], p99=r["latency_ms"]["p99"],
                   closed=r.get("closed", 0), during=r.get("during"))
        results.append(row)
        print(json.dumps(row), flush=True)
    print("\n| input | amount | gateway RSS before -> during (peak) | gateway CPU during | honest: "
          "delivered, p50 / p99 | lost |")
    print("|---|---|---|---|---|---|")
    for row in results:
        d = row["during"] or {}
        acc = d.get("account", {})
        rss = (f"{d['rss_before_kb'] / 1024:.1f} -> {d['rss_after_kb'] / 1024:.1f} MB "
               f"({d['peak_rss_kb'] / 1024:.1f})" if d else "-")
        cpu = f"{d['cpu_percent']:.0f}%" if d else "-"
        print(f"| {row['vector']} ({row['broker']}) | {acc.get('amount', acc.get('error', 'no attack'))} "
              f"| {rss} | {cpu} | {row['delivered']:.2f}%, {row['p50']:.1f} / {row['p99']:.1f} ms "
              f"| {row['lost']} |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
