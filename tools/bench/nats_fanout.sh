#!/usr/bin/env bash
# End to end through NATS: a real nats-server (JetStream, file storage), the gateway in
# WS_BROKER=jetstream (or nats) mode, N clients on one channel (one loadclient process), and
# 10 messages/s for 10 s published straight on NATS with a send timestamp in each payload.
# Reports the time from the NATS publish to the last of the N clients.
#   tools/bench/nats_fanout.sh [build-dir] [connections] [jetstream|nats]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/release}
N=${2:-10000}
mode=${3:-jetstream}
if [[ ! -x $build/odin-ws || ! -x $build/loadclient ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target odin-ws loadclient >/dev/null
fi
tmp=$(mktemp -d)
nats_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
nats-server -js -sd "$tmp/js" -a 127.0.0.1 -p "$nats_port" >"$tmp/nats.log" 2>&1 &
pids+=($!)
sleep 0.5
WS_ADDR=127.0.0.1:$port NATS_URL=nats://127.0.0.1:$nats_port WS_BROKER=$mode WS_MAX_CONNECTIONS=$((N + 100)) \
  WS_CPU_REJECT_THRESHOLD=100 WS_CPU_PAUSE_THRESHOLD=100 LOG_LEVEL=warn "$build/odin-ws" >"$tmp/gw.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "localhost:$port/health" >/dev/null && break; sleep 0.1; done
"$build/loadclient" --port "$port" --connections "$N" --channels 1 --per-conn 1 --duration 30 \
  --expect 100 --ready-file "$tmp/ready" >"$tmp/lc.json" &
lc=$!
for _ in $(seq 600); do [[ -f $tmp/ready ]] && break; sleep 0.1; done
sleep 1
/usr/bin/python3 tools/bench/publish.py --nats "127.0.0.1:$nats_port" --rate 10 --count 100 --channels 1 --size 500 >/dev/null
wait "$lc" || true
echo "== NATS ($mode) -> odin-ws -> $N clients on one channel, 10 messages/s for 10 s, 500-byte payloads"
/usr/bin/python3 - "$tmp/lc.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"delivered {r['delivery_percent']:.2f}% ({r['received']} messages), gaps {r['gaps']}, duplicates {r['duplicates']}")
print(f"NATS publish to the last of {r['connections']} clients: p50 {r['reach_all_ms']['p50']:.1f} ms, p99 {r['reach_all_ms']['p99']:.1f} ms, max {r['reach_all_ms']['max']:.1f} ms ({r['messages_complete']} messages)")
print(f"per-delivery latency: p50 {r['latency_ms']['p50']:.1f} ms, p99 {r['latency_ms']['p99']:.1f} ms")
PY
