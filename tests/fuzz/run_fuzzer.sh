#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on a working copy of its committed seed corpus
# (new inputs go to the copy, never to the repo), then prints one summary line: seconds,
# executions, executions/s, coverage (cov, ft), corpus size (inputs libFuzzer keeps). Exits
# non-zero on any crash, leak, timeout, out-of-memory, sanitizer report or violated invariant;
# the end of the log is printed then, with the reproducer left in WORK_DIR/artifacts. Used by the
# `fuzz` ctests and by scripts/fuzz.sh.
# Usage: run_fuzzer.sh BINARY SEED_CORPUS_DIR WORK_DIR SECONDS [DICT]
# FUZZ_TIMEOUT: seconds one input may take (default 10; wall time, so a campaign niced beside
# heavy work needs more, or it reports the starvation as timeouts).
set -uo pipefail
if [[ $# -lt 4 ]]; then
  echo "usage: $0 BINARY SEED_CORPUS_DIR WORK_DIR SECONDS [DICT]" >&2
  exit 2
fi
binary=$1 seeds=$2 work=$3 seconds=$4 dict=${5:-}
name=$(basename "$binary")
mkdir -p "$work/corpus" "$work/artifacts"
# -n: entries found by earlier runs stay, so longer runs build on shorter ones.
cp -n "$seeds"/* "$work/corpus/"
args=(-max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 -print_final_stats=1
      -artifact_prefix="$work/artifacts/")
[[ -n $dict ]] && args+=(-dict="$dict")
log=$work/last-run.log
started=$(date +%s)
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
  "$binary" "${args[@]}" "$work/corpus" >"$log" 2>&1
status=$?
elapsed=$(( $(date +%s) - started ))
# libFuzzer's exit status covers crashes, leaks, timeouts and OOM; the grep is a backstop for a
# report that did not end the process.
if grep -qE 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:|invariant violated' \
     "$log"; then
  [[ $status -eq 0 ]] && status=1
fi
stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
cov_line=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$cov_line")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$cov_line")
# libFuzzer's own corpus count (inputs that add coverage), not the files the copy has gathered.
corpus=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$cov_line")
printf '%-20s %5ss %12s execs %9s exec/s  cov %-6s ft %-6s corpus %-6s %s\n' "$name" "$elapsed" \
  "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" \
  "${corpus:-?}" "$([[ $status -eq 0 ]] && echo ok || echo "FAILED (exit $status)")"
if [[ $status -ne 0 ]]; then
  echo "--- end of $log ---"
  tail -n 80 "$log"
  echo "--- artifacts in $work/artifacts: ---"
  ls -l "$work/artifacts"
fi
exit "$status"
