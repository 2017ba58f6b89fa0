#!/usr/bin/env bash
# bench/compare.sh REV [ROUNDS] — the agent benchmarks (BENCH_ONLY=agent of bench/run.sh) of this
# checkout and of git revision REV, interleaved on this machine (this, REV, this, REV, ...), so that
# a change is judged against its base under the same conditions rather than against figures taken
# on another day or another machine. Builds REV in a temporary worktree (removed at the end) and
# writes a table of the key figures of every round to bench/out/compare.md.
#
#   bash bench/compare.sh 143e912 2
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: bench/compare.sh REV [ROUNDS]}
ROUNDS=${2:-2}
OUT=bench/out # bench/run.sh empties it at each run: the rounds' reports are kept in $keep
base=$(mktemp -d)
keep=$(mktemp -d)
trap 'git worktree remove --force "$base" >/dev/null 2>&1 || rm -rf "$base"; rm -rf "$keep"' EXIT
git worktree add -q --detach "$base" "$REV"
for dir in . "$base"; do
    cmake -S "$dir" -B "$dir/build-release" -DCMAKE_BUILD_TYPE=Release -DGOOSED_TESTS=OFF >/dev/null
    cmake --build "$dir/build-release" -j"$(nproc)" >/dev/null
done
here=$(git rev-parse --short HEAD)
there=$(git -C "$base" rev-parse --short HEAD)

# The value column of one row of a report ("| name | value | ..."), shortened.
cell() { grep -F "| $2" "$1" | head -1 | cut -d'|' -f3 | sed 's/^ *//; s/ *$//' | cut -c1-48; }

{
    echo "# goosed $here against $there: the agent benchmarks, interleaved"
    echo
    echo "Command: \`bash bench/compare.sh $REV $ROUNDS\` (each run: \`BENCH_ONLY=agent bash bench/run.sh\`)."
    echo
    echo "| run | 500 concurrent replies, worst ÷ 1,000 ms | peak RSS | first token added, p50 | relay, tokens/s |"
    echo "|---|---|---|---|---|"
} >"$keep/compare.md"
for r in $(seq "$ROUNDS"); do
    for side in "$here" "$there"; do
        bin=$PWD/build-release/goosed
        [ "$side" = "$here" ] || bin=$base/build-release/goosed
        rep=$keep/report-$side-$r.md
        echo "compare: round $r, $side" >&2
        BENCH_ONLY=agent BENCH_REPORT=$rep GOOSED_BIN=$bin bash bench/run.sh >"$keep/run-$side-$r.log" 2>&1 ||
            { echo "compare: $side round $r: bench/run.sh failed:" >&2; tail -20 "$keep/run-$side-$r.log" >&2; }
        echo "| $side, round $r | $(cell "$rep" "500 concurrent replies") | $(cell "$rep" "goosed peak RSS") |" \
            "$(cell "$rep" "first-token latency added by goosed, p50") | $(cell "$rep" "relay throughput") |" >>"$keep/compare.md"
    done
done
mkdir -p "$OUT"
cp "$keep/compare.md" "$OUT/compare.md"
cat "$OUT/compare.md"
