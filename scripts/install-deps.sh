#!/usr/bin/env bash
# Installs the Debian 12 packages odin-ws needs to build, run and test: one `apt-get update`,
# then one `apt-get install -y`. Pass "test" to add what only the test suite needs, "bench" for
# the benchmark suite (tools/bench/run.sh), "cluster" for deploy/local-cluster.sh.
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config libboost1.81-dev libsimdjson-dev libspdlog-dev
          libfmt-dev libssl-dev libnats-dev libhiredis-dev zlib1g-dev)
if [[ "${1:-}" == "bench" ]]; then
  # iproute2 (ip, ss) and util-linux (unshare): tools/bench/kernel.py.
  # zopfli and libdeflate-tools: tools/bench/deflate_bound.py (the encoders compared).
  packages+=(nats-server python3 python3-matplotlib openssl gdb linux-perf iproute2 util-linux
             zopfli libdeflate-tools)
  command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
fi
if [[ "${1:-}" == "cluster" ]]; then
  packages+=(nats-server haproxy)
fi
if [[ "${1:-}" == "test" ]]; then
  # The fuzz stage: clang 14, and libFuzzer with the sanitizer runtimes, which are in
  # libclang-rt-14-dev, only a Recommends of clang's packages (skipped with --no-install-recommends).
  # openssl makes the TLS tests' certificates; python3-jwt and python3-cryptography their tokens.
  # haproxy balances the scale-out tests' gateways (test_cluster.py, the browser resume test); redis-server is
  # the Redis broker test's server. faketime steps the wall clock under the gateway (test_clock.py).
  # test_sdk_python.py installs clients/python offline into a venv (python3-venv, python3-pip,
  # python3-setuptools, python3-wheel) and type-checks it with mypy.
  # prometheus (with promtool) checks and runs deploy/prometheus/ (test_prometheus_kit.py, which
  # starts its own on a free port; on a systemd host the package also enables a service on :9090).
  packages+=(libgtest-dev libbenchmark-dev clang-format clang libclang-rt-14-dev nats-server
             python3 python3-websockets python3-jwt python3-cryptography openssl chromium haproxy
             redis-server faketime mypy python3-venv python3-pip python3-setuptools python3-wheel
             prometheus)
  command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y "${missing[@]}"
fi
