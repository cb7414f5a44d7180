#!/usr/bin/env bash
# Builds odin-ws (Release) and runs it with the embedded broker and the demo feed: open
# http://localhost:3002/. Extra arguments are passed to the gateway (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release --target odin-ws
export WS_DEMO_FEED="${WS_DEMO_FEED:-1}" LOG_FORMAT="${LOG_FORMAT:-text}"
exec ./build/release/odin-ws "$@"
