# bench/metrics_overhead.sh — the `metrics` part of bench/run.sh (sourced by it: its helpers and
# settings are in scope). What metrics cost: GET /status throughput under wrk and the
# BENCH_AGENT_REPLIES concurrent replies, each on a new goosed with `GOOSE_METRICS=true` (scraped
# every second meanwhile, as a Prometheus would) and with `GOOSE_METRICS=false`, alternating (on
# first in odd rounds, off first in even ones, so that neither gains from its place), for
# BENCH_METRICS_ROUNDS rounds (default 5: one 10 s /status run swings by 10-20 % on a shared 2-CPU
# machine, and the median of 3 rounds' costs followed those swings, from -16 % to +7 % between full
# runs of the same code). The cost is taken within each round (on against the off run beside it)
# and judged on its median over the rounds. Target: metrics cost less than 5% of either,
# and of /status's CPU per request.
# shellcheck shell=bash disable=SC2154 # results land in variables named at run time

METRICS_ROUNDS=${BENCH_METRICS_ROUNDS:-5}
METRICS_SCRAPER_PID=
METRICS_LOAD=$(cut -d" " -f1-3 /proc/loadavg)
METRICS_RUNS=()

# metrics_scrape_start: GET /metrics every second until metrics_scrape_stop (a scraper's load).
metrics_scrape_start() {
    local url=http://127.0.0.1:$GPORT/metrics
    (while kill -0 "$GOOSED_PID" 2>/dev/null; do
        curl -s -o /dev/null "$url" || true
        sleep 1
    done) &
    METRICS_SCRAPER_PID=$!
}
metrics_scrape_stop() {
    [ -z "$METRICS_SCRAPER_PID" ] || { kill "$METRICS_SCRAPER_PID" 2>/dev/null || true; wait "$METRICS_SCRAPER_PID" 2>/dev/null || true; }
    METRICS_SCRAPER_PID=
}

for ((r = 1; r <= METRICS_ROUNDS; r++)); do
    for m in $(abba "$r" on off); do # which goes first alternates by round
        flag=$([ "$m" = on ] && echo true || echo false)
        GHOME=$WORK/metrics-status-$m-$r
        mkdir -m 700 "$GHOME"
        start_goosed "$WORK/goosed-metrics-status-$m-$r.log" "GOOSE_METRICS=$flag"
        [ "$m" = off ] || metrics_scrape_start
        d=$DURATION
        DURATION=$WARMUP
        wrk_run "mstatus_${m}_${r}_warmup" "http://127.0.0.1:$GPORT/status" bench/status.lua
        DURATION=$d
        c0=$(cpu_ticks "$GOOSED_PID")
        instr_start "$GOOSED_PID"
        wrk_run "mstatus_${m}_$r" "http://127.0.0.1:$GPORT/status" bench/status.lua
        instr=$(instr_stop)
        c1=$(cpu_ticks "$GOOSED_PID")
        printf -v "mstatus_${m}_${r}_gcpu_us" '%s' "$(per_request "$(awk "BEGIN { printf \"%.0f\", ($c1 - $c0) / $TICKS * 1e6 }")" "mstatus_${m}_$r")"
        printf -v "mstatus_${m}_${r}_instr" '%s' "$(per_request "$instr" "mstatus_${m}_$r")"
        goosed_alive
        metrics_scrape_stop
        stop_goosed

        start_agent_goosed "metrics-replies-$m-$r" "GOOSE_METRICS=$flag"
        [ "$m" = off ] || metrics_scrape_start
        agent_run "mreplies_${m}_$r" replies --replies "$AGENT_REPLIES" --tokens "$AGENT_TOKENS" \
            --interval-ms "$AGENT_INTERVAL_MS" --warmup "$AGENT_REPLIES_WARMUP"
        goosed_alive
        metrics_scrape_stop
        stop_agent_goosed "mreplies_${m}_${r}_goosed"
    done
done

# metrics_results: the figures, the verdicts and the targets (after run.sh defines calc, MISSED).
metrics_results() {
    local r
    local v prefix field best
    # each mode's best round: VARIABLE PREFIX FIELD max|min; a figure no round has counts as 0
    # (instructions: n/a)
    while read -r v prefix field best; do
        printf -v "$v" '%s' "$(round_best "$prefix" "$field" "$best" "$METRICS_ROUNDS")"
        printf -v "$v" '%s' "${!v:-0}"
    done <<'EOT'
MS_ON mstatus_on rps max
MS_OFF mstatus_off rps max
MS_CPU_ON mstatus_on gcpu_us min
MS_CPU_OFF mstatus_off gcpu_us min
MS_INSTR_ON mstatus_on instr min
MS_INSTR_OFF mstatus_off instr min
MR_ON_WALL mreplies_on g_batch_wall_ms min
MR_OFF_WALL mreplies_off g_batch_wall_ms min
MR_ON_CPU mreplies_on g_goosed_cpu_s min
MR_OFF_CPU mreplies_off g_goosed_cpu_s min
MR_ON_P50 mreplies_on g_ratio_p50 min
MR_OFF_P50 mreplies_off g_ratio_p50 min
EOT
    # cost in percent, round by round: the throughput lost, the time and CPU added
    paired_cost MS_COST mstatus rps loss "$METRICS_ROUNDS"
    paired_cost MS_CPU_COST mstatus gcpu_us gain "$METRICS_ROUNDS"
    paired_cost MR_WALL_COST mreplies g_batch_wall_ms gain "$METRICS_ROUNDS"
    paired_cost MR_CPU_COST mreplies g_goosed_cpu_s gain "$METRICS_ROUNDS"
    MS_INSTR_COST=—
    [ "$MS_INSTR_OFF" = 0 ] || MS_INSTR_COST="$(calc "printf \"%.1f\", 100 * ($MS_INSTR_ON / $MS_INSTR_OFF - 1)")%"
    MS_OK=$(verdict "$MS_COST_med < 5")
    MS_CPU_OK=$(verdict "$MS_CPU_COST_med < 5")
    MR_OK=$(verdict "$MR_WALL_COST_med < 5")
    [ "$MS_OK" = PASS ] || MISSED+=("metrics' cost on GET /status")
    [ "$MS_CPU_OK" = PASS ] || MISSED+=("metrics' CPU per GET /status")
    [ "$MR_OK" = PASS ] || MISSED+=("metrics' cost on $AGENT_REPLIES concurrent replies")
    NTARGETS=$((NTARGETS + 3))
    for ((r = 1; r <= METRICS_ROUNDS; r++)); do METRICS_RUNS+=("mreplies_on_$r" "mreplies_off_$r"); done
}

report_metrics() {
    local r m rows=
    for ((r = 1; r <= METRICS_ROUNDS; r++)); do
        for m in on off; do
            rows+="| $r | $m | $(fmt_int "$(num "mstatus_${m}_${r}_rps")") | $(av "mstatus_${m}_${r}_p99_ms") ms | $(av "mstatus_${m}_${r}_gcpu_us") µs | $(fmt_int "$(num "mreplies_${m}_${r}_g_batch_wall_ms")") ms | $(fmt %.2f "mreplies_${m}_${r}_g_ratio_p50") / $(fmt %.2f "mreplies_${m}_${r}_g_ratio_max") | $(av "mreplies_${m}_${r}_g_goosed_cpu_s") s | $(av "mreplies_${m}_${r}_g_errors") |"$'\n'
        done
    done
    cat <<EOF

## Metrics and tracing overhead

### Metrics

Metrics on (\`GOOSE_METRICS=true\`, \`GET /metrics\` scraped every second meanwhile) against off
(\`GOOSE_METRICS=false\`), each run on a new goosed, $METRICS_ROUNDS rounds of both (on first in odd rounds,
off first in even ones, so that neither gains from its place). The cost is taken round by round (on
against the off run beside it) and judged on its median over the rounds (min–max beside it); the
figures of each mode are its best round, for information. Target: less than 5% cost.

| benchmark | metrics on (best round) | metrics off (best round) | cost, median of rounds (min–max) | target | result |
|---|---|---|---|---|---|
| GET /status, requests/s (wrk -t$THREADS -c$CONNS -d${DURATION}s): the share lost | $(fmt_int "$MS_ON") | $(fmt_int "$MS_OFF") | $MS_COST_med% ($MS_COST_min – $MS_COST_max) | < 5% | $MS_OK |
| the same: goosed's CPU time per request (utime + stime ÷ requests), the share added | $MS_CPU_ON µs | $MS_CPU_OFF µs | $MS_CPU_COST_med% ($MS_CPU_COST_min – $MS_CPU_COST_max) | < 5% | $MS_CPU_OK |
| the same: instructions goosed executed per request (\`perf stat -e instructions -p PID\`; the least round) | $([ "$MS_INSTR_ON" = 0 ] && echo n/a || fmt_int "$MS_INSTR_ON") | $([ "$MS_INSTR_OFF" = 0 ] && echo n/a || fmt_int "$MS_INSTR_OFF") | $MS_INSTR_COST | information | — |
| $AGENT_REPLIES concurrent replies ($AGENT_TOKENS tokens, $AGENT_INTERVAL_MS ms apart): batch wall time, the share added | $(fmt_int "$MR_ON_WALL") ms | $(fmt_int "$MR_OFF_WALL") ms | $MR_WALL_COST_med% ($MR_WALL_COST_min – $MR_WALL_COST_max) | < 5% | $MR_OK |
| the same: goosed CPU during the batch | $MR_ON_CPU s | $MR_OFF_CPU s | $MR_CPU_COST_med% ($MR_CPU_COST_min – $MR_CPU_COST_max) | information | — |
| the same: each reply's time ÷ the provider's, p50 | $MR_ON_P50 | $MR_OFF_P50 | | information | — |

Every run:

| round | metrics | /status requests/s | /status p99 | /status CPU per request | replies: batch wall time | ÷ provider p50 / max | goosed CPU | failed replies |
|---|---|---|---|---|---|---|---|---|
${rows%$'\n'}

Command: \`BENCH_ONLY=metrics make bench\` (\`BENCH_METRICS_ROUNDS\`, default 5). Load average when it
started: $METRICS_LOAD.
EOF
}
