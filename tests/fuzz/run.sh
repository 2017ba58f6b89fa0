#!/usr/bin/env bash
# Runs each libFuzzer harness of a GOOSED_FUZZ build for a fixed time (make fuzz).
#   tests/fuzz/run.sh BUILD_DIR SECONDS [NAME...]   (NAME: fuzz_router ...; default: all)
# Each starts from its seeds (tests/fuzz/corpus/NAME) and keeps what it finds in
# BUILD_DIR/corpus/NAME (the tree's corpus is never written); a crash, leak or hang is saved in
# BUILD_DIR/artifacts/ and makes the script fail. A summary line per harness: runs, coverage.
set -u
build=${1:?usage: run.sh BUILD_DIR SECONDS [NAME...]}
secs=${2:-60}
shift 2 || true
here=$(cd "$(dirname "$0")" && pwd)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in "$here"/fuzz_*.c; do names+=("$(basename "$f" .c)"); done
fi
mkdir -p "$build/artifacts" "$build/logs"
failed=0
for n in "${names[@]}"; do
  bin="$build/$n"
  [ -x "$bin" ] || { echo "$n: not built ($bin)"; failed=1; continue; }
  mkdir -p "$build/corpus/$n"
  log="$build/logs/$n.log"
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$n-" \
    "$build/corpus/$n" "$here/corpus/$n" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "$n: ok, ${runs:-?} runs in ${secs}s, ${cov:-cov: ?}, ${ft:-ft: ?}"
  else
    failed=1
    echo "$n: FAILED (exit $rc) after ${runs:-?} runs; see $log and $build/artifacts/$n-*"
    grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error' "$log" || true
  fi
done
exit $failed
