#!/usr/bin/env bash
# The scale-out topology on this one machine, in one command: a three-node NATS cluster with
# JetStream (deploy/nats/), three odin-ws gateways consuming one stream kept on all three nodes
# (JS_STREAM_REPLICAS=3, the demo feed published by the first), and HAProxy in front
# (deploy/haproxy.cfg). Installs its Debian packages, builds the gateway, prints the URLs, and
# on Ctrl-C (or SIGTERM) stops everything it started, by PID.
#
#   deploy/local-cluster.sh            clients connect to ws://127.0.0.1:3002/ws
#
# Ports: HAProxy 3002 (ODIN_LB_PORT to change), its status page 8404, gateways 3101-3103,
# NATS clients 4222-4224, NATS routes 6222-6224, NATS monitoring 8222-8224 (all on 127.0.0.1).
# Extra gateway settings can be given in the environment (e.g. WS_DEMO_RATE=200).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

scripts/install-deps.sh cluster
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release --target odin-ws

lb_port=${ODIN_LB_PORT:-3002}
stats_port=8404
gw_ports=(3101 3102 3103)
nats_ports=(4222 4223 4224)
nats_urls="nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# GET a path from a local port with bash alone; prints the response (status line first).
http_get() {
  local out
  { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&"$fd"
  out=$(timeout 2 cat <&"$fd") || true
  exec {fd}>&-
  printf '%s' "$out"
}

for p in "$lb_port" "$stats_port" "${gw_ports[@]}" "${nats_ports[@]}" 6222 6223 6224 8222 8223 8224; do
  if port_open "$p"; then
    echo "port $p on 127.0.0.1 is in use (another local cluster running?)" >&2
    exit 1
  fi
done

run_dir=$(mktemp -d /tmp/odin-cluster.XXXXXX)
pids=()
names=()
stopping=0
stop_all() {
  ((stopping)) && return
  stopping=1
  trap - INT TERM
  echo
  echo "stopping..."
  # Front to back: HAProxy, the gateways (they drain: close 1001 to their clients), then NATS.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  if ((${1:-0})); then
    echo "logs kept in $run_dir" >&2
  else
    rm -rf "$run_dir"
  fi
}
trap 'stop_all 1' EXIT
trap 'stop_all 0; trap - EXIT; exit 0' INT TERM

start() {  # start NAME LOG COMMAND...: runs it in the background and remembers its PID
  local name=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  pids+=($!)
  names+=("$name")
}
wait_for() {  # wait_for WHAT SECONDS TEST...: polls TEST every 0.2 s
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "$what did not come up; logs in $run_dir:" >&2
      tail -n 20 "$run_dir"/*.log >&2
      exit 1
    fi
    local i
    for i in "${!pids[@]}"; do
      if ! kill -0 "${pids[i]}" 2>/dev/null; then
        echo "${names[i]} exited; logs in $run_dir:" >&2
        tail -n 20 "$run_dir"/*.log >&2
        exit 1
      fi
    done
    sleep 0.2
  done
}

# NATS: each node runs a copy of its file with the JetStream store in the run directory.
for n in 1 2 3; do
  sed "s|^\([[:space:]]*store_dir:\).*|\1 \"$run_dir/nats-$n\"|" "deploy/nats/node-$n.conf" >"$run_dir/nats-$n.conf"
  start "nats-$n" "$run_dir/nats-$n.log" nats-server -c "$run_dir/nats-$n.conf"
done
meta_leader() { http_get 8222 /jsz | grep -q '"leader"'; }
wait_for "the NATS cluster (JetStream meta leader)" 30 meta_leader

start_gateway() {  # start_gateway N: gateway N (1-3); the first one publishes the demo feed
  local n=$1 demo=0
  [[ $n == 1 ]] && demo=${WS_DEMO_FEED:-1}
  start "gateway-$n" "$run_dir/gateway-$n.log" env WS_ADDR="127.0.0.1:${gw_ports[n - 1]}" \
    WS_INSTANCE_ID="gw$n" WS_BROKER=jetstream NATS_URL="$nats_urls" JS_STREAM_REPLICAS=3 \
    WS_DEMO_FEED="$demo" WS_DRAIN_TIMEOUT="${WS_DRAIN_TIMEOUT:-5s}" LOG_FORMAT="${LOG_FORMAT:-text}" \
    "$repo/build/release/odin-ws"
}
for n in 1 2 3; do start_gateway "$n"; done
healthy() { local p; for p in "${gw_ports[@]}"; do http_get "$p" /health | head -1 | grep -q ' 200 ' || return 1; done; }
wait_for "the gateways (/health 200: JetStream stream and consumers ready)" 60 healthy

start haproxy "$run_dir/haproxy.log" env ODIN_LB_ADDR="127.0.0.1:$lb_port" \
  ODIN_LB_STATS="127.0.0.1:$stats_port" ODIN_LB_MAXCONN=9000 \
  ODIN_GW1="127.0.0.1:${gw_ports[0]}" ODIN_GW2="127.0.0.1:${gw_ports[1]}" ODIN_GW3="127.0.0.1:${gw_ports[2]}" \
  haproxy -db -f deploy/haproxy.cfg
wait_for HAProxy 10 port_open "$lb_port"

cat <<EOF

odin-ws local cluster is up (logs and NATS stores in $run_dir):
  page, through HAProxy:   http://127.0.0.1:$lb_port/
  WebSocket:               ws://127.0.0.1:$lb_port/ws
  HAProxy status page:     http://127.0.0.1:$stats_port/
  gateways (direct):       http://127.0.0.1:3101/stats  http://127.0.0.1:3102/stats  http://127.0.0.1:3103/stats
  NATS clients:            $nats_urls
  NATS monitoring:         http://127.0.0.1:8222/jsz?streams=1 (and 8223, 8224)
  publish:                 curl -X POST http://127.0.0.1:$lb_port/publish -d '{"channel":"news","data":"hi"}'
Try a failover: kill -9 a gateway (PIDs: ${pids[3]} ${pids[4]} ${pids[5]}; the first also publishes
the demo feed); its clients resume on another instance, and this script starts it again a second later.
Ctrl-C stops everything.
EOF

# Wait until interrupted. A gateway that dies (try kill -9) is started again after a second, as
# systemd's Restart=on-failure would; any other process that exits is reported.
while true; do
  for i in "${!pids[@]}"; do
    if [[ -n "${pids[i]}" ]] && ! kill -0 "${pids[i]}" 2>/dev/null; then
      wait "${pids[i]}" 2>/dev/null && status=0 || status=$?
      echo "${names[i]} (PID ${pids[i]}) exited with status $status; see $run_dir/${names[i]}.log" >&2
      pids[i]=""
      if [[ ${names[i]} == gateway-* ]]; then
        sleep 1
        start_gateway "${names[i]#gateway-}"
        echo "${names[i]} started again: PID ${pids[-1]}" >&2
      fi
    fi
  done
  sleep 1 &
  wait $! || true
done
