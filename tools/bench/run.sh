#!/usr/bin/env bash
# The benchmark suite in one command: installs what it needs (Debian packages, the Node peer's npm
# packages), builds the Release binaries, runs the scenarios and rewrites docs/benchmarks.md with
# its plots. Usage: tools/bench/run.sh all|fanout|sustained|maxrate|capacity|slow|burst|tls|scale|conflate|compression [bench.py options]
# e.g. tools/bench/run.sh fanout --targets odin,blaster --repeat 1
# `tls` (odin plain against odin over TLS; not part of `all`) also uses openssl, and perf and gdb
# for its profiles and heap figures when they are there. `scale` (not part of `all`): 100,000 clients on
# several gateways sharing one JetStream nats-server, e.g. tools/bench/run.sh scale --repeat 3.
# `conflate` (not part of `all`): 12,000 clients x 5 of 100 channels at twice the deliverable
# rate, `latest` subscriptions against `all`; --rate R gives the deliverable per-client rate,
# else it is searched first (about 5 minutes in all).
# `compression` (not part of `all`): permessage-deflate negotiated (loadclient --deflate) against
# WS_COMPRESSION=false, alternating: 12,000 clients x 5 of 100 channels at 25 msg/s per client
# for 30 s with ~500-byte market objects (publisher --payload market), a 10-s pair with ~180-byte
# ticks, and the idle RSS per connection of 10,000 clients; --repeat N pairs (medians quoted).
# ODIN_BENCH_BUILD=dir builds and measures in that directory instead of build/release.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-deps.sh bench
build=${ODIN_BENCH_BUILD:-build/release}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target odin-ws loadclient publisher blaster
if [[ "${1:-}" != conflate && "${1:-}" != compression && ! -d tools/bench/peers/node/node_modules ]]; then  # conflate: odin only
  (cd tools/bench/peers/node && npm ci --no-audit --no-fund --loglevel=error)
fi
/usr/bin/python3 tools/bench/bench.py "$@" --build "$build"
/usr/bin/python3 tools/bench/report.py
