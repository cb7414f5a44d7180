#!/usr/bin/env python3
"""Publishes at a steady rate, through POST /publish or straight on NATS (plain NATS protocol;
a JetStream stream over the subjects stores them): each message's data carries "t" (unix ns at
send, for latency) and padding to a given size. Usage:
  publish.py --port 3002 --rate 10 --count 100 --channels 1 [--size 500] [--batch 1]
  publish.py --nats 127.0.0.1:4222 [--prefix odin.token.] --rate 10 --count 100 --channels 1"""
import argparse
import http.client
import json
import time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, default=3002)
p.add_argument("--rate", type=float, default=10)
p.add_argument("--count", type=int, default=100)
p.add_argument("--channels", type=int, default=1)
p.add_argument("--size", type=int, default=500)
p.add_argument("--batch", type=int, default=1, help="messages per request")
p.add_argument("--nats", help="host:port of a NATS server to publish on instead of POST /publish")
p.add_argument("--prefix", default="odin.token.")
a = p.parse_args()

if a.nats:
    import socket
    host, port = a.nats.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.recv(4096)  # INFO
    sock.sendall(b'CONNECT {"verbose":false,"headers":true}\r\n')
    head = b"NATS/1.0\r\nType: price:update\r\n\r\n"
    pad = "x" * max(0, a.size - 60)
    start = time.time()
    for n in range(a.count):
        delay = start + n / a.rate - time.time()
        if delay > 0:
            time.sleep(delay)
        data = json.dumps({"t": time.time_ns(), "n": n, "pad": pad}).encode()
        subject = f"{a.prefix}ch{n % a.channels}".encode()
        sock.sendall(b"HPUB %s %d %d\r\n%s%s\r\n" % (subject, len(head), len(head) + len(data), head, data))
    sock.sendall(b"PING\r\n")
    reply = b""
    while b"PONG" not in reply:  # the server has every message once it answers
        reply += sock.recv(4096)
    print(json.dumps({"published": a.count, "seconds": round(time.time() - start, 3)}))
    raise SystemExit(0)

conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
pad = "x" * max(0, a.size - 60)
start = time.time()
sent = 0
while sent < a.count:
    due = start + sent / a.rate
    delay = due - time.time()
    if delay > 0:
        time.sleep(delay)
    batch = [{"channel": f"ch{(sent + i) % a.channels}", "type": "price:update",
              "data": {"t": time.time_ns(), "n": sent + i, "pad": pad}}
             for i in range(min(a.batch, a.count - sent))]
    conn.request("POST", "/publish", json.dumps(batch), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200, body
    sent += len(batch)
print(json.dumps({"published": sent, "seconds": round(time.time() - start, 3)}))
