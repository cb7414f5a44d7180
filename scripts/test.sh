#!/usr/bin/env bash
# Builds and runs the whole test suite twice: a normal build, then under AddressSanitizer +
# UndefinedBehaviorSanitizer (without the SDK and Prometheus-kit tests, label `sdk`). Unit
# (GoogleTest), integration (python3-websockets against the binary), browser (headless Chromium),
# the client SDKs (clients/js, clients/python) and the Prometheus kit (deploy/prometheus). Then
# ThreadSanitizer on the unit tests and the integration tests that run several event-loop threads
# against each other (label `threads`). Then the parsers' libFuzzer targets, built with clang,
# each for ODIN_FUZZ_SECONDS (40). Exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
if [[ -f tests/browser/package-lock.json ]]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
# Formatting is part of the contract.
clang-format --dry-run -Werror $(git ls-files 'src/*.cpp' 'src/*.hpp' 'tests/*.cpp' 'tools/*.cpp')

status=0
# The layer table (docs/architecture.md): an include against it names its file and line here, and
# fails the build too (one CMake library per folder).
/usr/bin/python3 tools/layers/check_layers.py || status=1
# run_suite DIR CTEST_ARGS... -- CMAKE_ARGS...
run_suite() {
  local dir=$1; shift
  local ctest_args=()
  while [[ $1 != -- ]]; do ctest_args+=("$1"); shift; done
  shift
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir"
  echo "=== ctest in $dir ==="
  ctest --test-dir "$dir" --output-on-failure --timeout 300 "${ctest_args[@]}" || status=1
}
run_suite build/test -- -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The client SDKs' and the Prometheus kit's tests (label `sdk`) test code outside the gateway, and
# the gateway paths they drive are covered under the sanitizers by the other tests: they run in the
# normal build only, which keeps the whole command inside CI's time budget.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build/sanitize -LE sdk -- -DCMAKE_BUILD_TYPE=Debug -DODIN_SANITIZE=ON
# ThreadSanitizer: any report fails the stage. Reports go to files (log_path), because a gateway
# started by an integration test logs to a temporary file the test deletes; tests/tsan.supp holds
# suppressions for third-party code only.
tsan_start=$(date +%s)
rm -rf build/tsan/tsan-reports && mkdir -p build/tsan/tsan-reports
cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DODIN_TSAN=ON \
  -DODIN_BROWSER_TESTS=OFF >/dev/null
cmake --build build/tsan --target odin-ws unit_tests
echo "=== ctest in build/tsan (unit, threads) ==="
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp log_path=$PWD/build/tsan/tsan-reports/report" \
  ctest --test-dir build/tsan -L 'unit|threads' --output-on-failure --timeout 300 || status=1
if compgen -G 'build/tsan/tsan-reports/report*' >/dev/null; then
  echo "ThreadSanitizer reports:"
  cat build/tsan/tsan-reports/report*
  status=1
fi
echo "=== ThreadSanitizer stage: $(( $(date +%s) - tsan_start )) s ==="
# Fuzzing (clang, libFuzzer): only the fuzz targets are built, the gcc builds above cover the rest.
# 40 s per target (ODIN_FUZZ_SECONDS) keeps the whole command inside CI's time budget; longer
# campaigns: docs/fuzzing.md.
CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DODIN_FUZZ=ON -DODIN_BROWSER_TESTS=OFF \
  -DODIN_FUZZ_SECONDS=40 >/dev/null
cmake --build build/fuzz --target fuzz_targets
echo "=== ctest in build/fuzz (fuzz) ==="
# Two at a time: each fuzzer is one process on one core, and nothing else runs by now.
ctest --test-dir build/fuzz -L fuzz --output-on-failure -j2 || status=1
if [[ $status -ne 0 ]]; then echo "TEST SUITE FAILED"; else echo "TEST SUITE PASSED"; fi
exit $status
