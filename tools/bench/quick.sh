#!/usr/bin/env bash
# The two figures of the gateway issue's closing note, measured on this machine in one command:
#  (a) RSS per connection at 10,000 idle subscribed connections, then with full replay rings;
#  (b) fan-out: 10,000 clients on one channel, 10 messages/s for 10 s: time for a message to
#      reach all of them, and per-delivery latency.
# Usage: tools/bench/quick.sh [build-dir]   (default build/release, built if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/release}
if [[ ! -x $build/odin-ws || ! -x $build/loadclient ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target odin-ws loadclient >/dev/null
fi
N=${N:-10000}
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tmp=$(mktemp -d)
gw_pid=""
lc_pid=""
cleanup() {
  [[ -n $lc_pid ]] && kill "$lc_pid" 2>/dev/null || true
  [[ -n $gw_pid ]] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
wait_file() { for _ in $(seq 1 600); do [[ -s $1 ]] && return 0; sleep 0.1; done; echo "timeout waiting for $1" >&2; return 1; }
start_gateway() {
  WS_ADDR=127.0.0.1:$port WS_THREADS=${WS_THREADS:-0} WS_MAX_CONNECTIONS=20000 WS_REPLAY_SIZE=100 LOG_LEVEL=warn \
    "$build/odin-ws" >"$tmp/gw.log" 2>&1 &
  gw_pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0; sleep 0.1; done
  echo "gateway did not start" >&2; cat "$tmp/gw.log" >&2; return 1
}
stop_gateway() { kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true; gw_pid=""; }

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "== (a) memory: $N connections, each subscribed to 5 of 100 channels"
start_gateway
base=$(rss_kb "$gw_pid")
"$build/loadclient" --port "$port" --connections "$N" --channels 100 --per-conn 5 --duration 60 \
  --ready-file "$tmp/ready" >"$tmp/lc_a.json" &
lc_pid=$!
wait_file "$tmp/ready"
sleep 1
idle=$(rss_kb "$gw_pid")
# 2,000 messages over the 100 channels: every connection receives 100, so every ring is full.
/usr/bin/python3 tools/bench/publish.py --port "$port" --rate 2000 --count 2000 --channels 100 --batch 100 >/dev/null
sleep 2
full=$(rss_kb "$gw_pid")
kill -INT "$lc_pid"; wait "$lc_pid" || true; lc_pid=""
stop_gateway
connect_rate=$(/usr/bin/python3 -c "import json; print(json.load(open('$tmp/lc_a.json'))['connections_per_second'])")
printf "RSS before clients:          %8.1f MiB\n" "$(echo "$base/1024" | bc -l)"
printf "RSS, %d idle:            %8.1f MiB  -> %.0f bytes per connection (added), %.0f (total/N)\n" "$N" \
  "$(echo "$idle/1024" | bc -l)" "$(echo "($idle-$base)*1024/$N" | bc -l)" "$(echo "$idle*1024/$N" | bc -l)"
printf "RSS, %d full rings:      %8.1f MiB  -> %.0f bytes per connection (added), %.0f (total/N)\n" "$N" \
  "$(echo "$full/1024" | bc -l)" "$(echo "($full-$base)*1024/$N" | bc -l)" "$(echo "$full*1024/$N" | bc -l)"
echo "connections per second (upgrade + welcome + subscribed, one client process): $connect_rate"

echo "== (b) fan-out: $N clients on one channel, 10 messages/s for 10 s, 500-byte payloads"
start_gateway
"$build/loadclient" --port "$port" --connections "$N" --channels 1 --per-conn 1 --duration 30 \
  --expect 100 --ready-file "$tmp/ready_b" >"$tmp/lc_b.json" &
lc_pid=$!
wait_file "$tmp/ready_b"
sleep 1
/usr/bin/python3 tools/bench/publish.py --port "$port" --rate 10 --count 100 --channels 1 --size 500 >/dev/null
wait "$lc_pid" || true; lc_pid=""
stop_gateway
/usr/bin/python3 - "$tmp/lc_b.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"delivered {r['delivery_percent']:.2f}% ({r['received']} messages), gaps {r['gaps']}, duplicates {r['duplicates']}")
print(f"time to reach all {r['connections']} clients: p50 {r['reach_all_ms']['p50']:.1f} ms, p99 {r['reach_all_ms']['p99']:.1f} ms, max {r['reach_all_ms']['max']:.1f} ms ({r['messages_complete']} messages)")
print(f"per-delivery latency: p50 {r['latency_ms']['p50']:.1f} ms, p90 {r['latency_ms']['p90']:.1f}, p99 {r['latency_ms']['p99']:.1f}, max {r['latency_ms']['max']:.1f}")
PY
