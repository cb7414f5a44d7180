#!/usr/bin/env bash
# Starts the Node.js benchmark peer. Installs the locked dependencies on first use, then execs
# node, so this script's PID is the gateway's PID (benchmarks stop it by PID).
#   PORT=3012 HOST=127.0.0.1 NATS_URL=nats://127.0.0.1:4222 tools/bench/peers/node/start.sh
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -d node_modules/ws || ! -d node_modules/nats ]]; then
  if [[ -f package-lock.json ]]; then
    npm ci --no-audit --no-fund --loglevel=error >&2
  else
    npm install --no-audit --no-fund --loglevel=error >&2
  fi
fi
exec node gateway.js
