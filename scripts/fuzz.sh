#!/usr/bin/env bash
# Longer fuzzing runs than the `fuzz` ctests (docs/fuzzing.md): builds build/fuzz with clang and
# ODIN_FUZZ=ON, then runs each target in turn, never two at once, for SECONDS each (default 600)
# on the build tree's copy of its corpus (build/fuzz/fuzz-work/<target>/corpus, shared with the
# ctests, so runs build on each other; the repo's corpus is not touched). Prints executions,
# executions/s and coverage per target; exits non-zero if any target found a problem (its
# reproducer is then in build/fuzz/fuzz-work/<target>/artifacts).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
all_targets=(fuzz_frame fuzz_http_request fuzz_upgrade fuzz_client_request fuzz_publish_body
             fuzz_redis_payload fuzz_jwt)
seconds=600
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")
build=build/fuzz
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DODIN_FUZZ=ON -DODIN_BROWSER_TESTS=OFF \
  >/dev/null
cmake --build "$build" --target fuzz_targets -j2
status=0
for target in "${targets[@]}"; do
  dict=tests/fuzz/$target.dict
  [[ -f $dict ]] || dict=""
  bash tests/fuzz/run_fuzzer.sh "$build/$target" "tests/fuzz/corpus/$target" \
    "$build/fuzz-work/$target" "$seconds" $dict || status=1
done
if [[ $status -ne 0 ]]; then echo "FUZZING FOUND PROBLEMS"; else echo "FUZZING CLEAN"; fi
exit $status
