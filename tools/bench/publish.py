#!/usr/bin/env python3
"""Publishes through POST /publish at a steady rate: each message's data carries "t" (unix ns at
send, for latency) and padding to a given size. Usage:
  publish.py --port 3002 --rate 10 --count 100 --channels 1 [--size 500] [--batch 1]"""
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
a = p.parse_args()

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
