# bench/history.sh — the `history` part of bench/run.sh (sourced by it: its helpers and settings are
# in scope). Issue 11, target 2: a session's history served from the stored JSON text, against the
# rate at which SQLite alone reads the same rows (bench/history_read.c) from the same file.
#
# One new goosed (GOOSE_MAX_BODY_SIZE raised to 64 MiB for the imports); for each size in
# BENCH_HISTORY_MESSAGES (default "1000 10000") a session of that many messages of mixed content
# (text, tool requests, tool responses, thinking: bench/history.mjs, one POST /api/sessions/import).
# Then BENCH_HISTORY_ROUNDS rounds (default 3); in each, for each size, side by side:
#   - the whole history: history_read (one reader) and GET /api/sessions/{id}/messages (wrk, one
#     connection), BENCH_HISTORY_SECONDS each (default 2);
#   - a page of 100 by cursor, the first (?limit=100&cursor=) and the one 90% deep, both ways;
#   - 8 clients at once: GET of the whole history on 8 connections (wrk -t2 -c8) and history_read
#     with 8 readers.
# The rates are compared round by round (goosed's requests/s ÷ SQLite's reads/s in the same round);
# min / median / max of those ratios over the rounds. Targets: the whole history at each size, the
# median ratio ≥ 0.8.
# shellcheck shell=bash disable=SC2154 # results land in variables named at run time

HIST_SIZES=${BENCH_HISTORY_MESSAGES:-1000 10000}
HIST_ROUNDS=${BENCH_HISTORY_ROUNDS:-3}
HIST_SECONDS=${BENCH_HISTORY_SECONDS:-2}
HIST_PAGE=100
HIST_CLIENTS=8
HIST_LOAD=$(cut -d" " -f1-3 /proc/loadavg)
HIST_START=$SECONDS
for n in $HIST_SIZES; do
    if ! [[ $n =~ ^[1-9][0-9]*$ ]] || [ "$n" -gt 10000 ]; then
        die "BENCH_HISTORY_MESSAGES: '$n' is not a whole number 1..10000 (an import takes at most 10000 messages)"
    fi
done
[[ $HIST_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_HISTORY_ROUNDS: '$HIST_ROUNDS' is not a positive whole number"

HISTORY_READ=$WORK/history_read
cc -std=c11 -O2 -Wall -Wextra -pthread -o "$HISTORY_READ" bench/history_read.c -lsqlite3 ||
    die "cannot build bench/history_read.c (it needs SQLite's header and library: libsqlite3-dev)"
record "cc -std=c11 -O2 -Wall -Wextra -pthread -o history_read bench/history_read.c -lsqlite3"

# hist_sql NAME ARGS...: one history_read run; its fields become NAME_reads_s, NAME_p50_ms, ...
hist_sql() {
    local name=$1 line kv
    shift
    echo "bench: history_read $*" >&2
    line=$("$HISTORY_READ" -s "$HIST_SECONDS" "$@" 2>"$OUTDIR/$name.err") || {
        cat "$OUTDIR/$name.err" >&2
        die "history_read $* failed (see $OUTDIR/$name.err)"
    }
    for kv in $line; do printf -v "${name}_${kv%%=*}" '%s' "${kv#*=}"; done
}

GHOME=$WORK/history-home
mkdir -m 700 "$GHOME"
start_goosed "$WORK/goosed-history.log" GOOSE_MAX_BODY_SIZE=67108864
HIST_DB=$GHOME/.local/share/goose/sessions/goosed.db
[ -f "$HIST_DB" ] || die "goosed's database is not at $HIST_DB"
for n in $HIST_SIZES; do
    hcmd=(node bench/history.mjs --goosed "http://127.0.0.1:$GPORT" --messages "$n")
    record "${hcmd[*]}   # POST /api/sessions/import of $n messages"
    line=$("${hcmd[@]}") || die "bench/history.mjs could not import $n messages"
    for kv in ${line#HISTORY_RESULT }; do printf -v "hist_${n}_${kv%%=*}" '%s' "${kv#*=}"; done
    v=hist_${n}_id
    [ "$(printf '%s' "${!v}" | tr -d '0-9a-f-')" = "" ] || die "bench/history.mjs printed an odd session id '${!v}'"
    record "history_read -s $HIST_SECONDS [-l $HIST_PAGE] [-a $((n * 9 / 10))] [-t $HIST_CLIENTS] goosed.db <session of $n messages>"
done
goosed_alive

saved_t=$THREADS saved_c=$CONNS saved_d=$DURATION
DURATION=$HIST_SECONDS
for ((r = 1; r <= HIST_ROUNDS; r++)); do
    for n in $HIST_SIZES; do
        v=hist_${n}_id
        sid=${!v}
        url=http://127.0.0.1:$GPORT/api/sessions/$sid/messages
        deep=$((n * 9 / 10))
        THREADS=1 CONNS=1
        hist_sql "hist_sql_full_${n}_$r" "$HIST_DB" "$sid"
        wrk_run "hist_g_full_${n}_$r" "$url" bench/status.lua "$([ "$r" = 1 ] && echo warm)"
        hist_sql "hist_sql_first_${n}_$r" -l "$HIST_PAGE" "$HIST_DB" "$sid"
        wrk_run "hist_g_first_${n}_$r" "$url?limit=$HIST_PAGE&cursor=" bench/status.lua
        hist_sql "hist_sql_deep_${n}_$r" -l "$HIST_PAGE" -a "$deep" "$HIST_DB" "$sid"
        wrk_run "hist_g_deep_${n}_$r" "$url?limit=$HIST_PAGE&cursor=$deep" bench/status.lua
        THREADS=2 CONNS=$HIST_CLIENTS
        hist_sql "hist_sql_par_${n}_$r" -t "$HIST_CLIENTS" "$HIST_DB" "$sid"
        wrk_run "hist_g_par_${n}_$r" "$url" bench/status.lua
        goosed_alive
    done
done
THREADS=$saved_t CONNS=$saved_c DURATION=$saved_d
HIST_RSS=$(rss_kb "$GOOSED_PID")
HIST_HWM=$(hwm_kb "$GOOSED_PID")
stop_goosed
HIST_EXIT=$GOOSED_RC
grep -q 'shutdown complete' "$WORK/goosed-history.log" && HIST_SHUTDOWN=yes || HIST_SHUTDOWN=no
HIST_BAD=$(grep -Ec ' (ERROR|WARN) ' "$WORK/goosed-history.log" || true)
HIST_SECONDS_TOOK=$((SECONDS - HIST_START))

# hist_stat FIGURE VAR_PREFIX VAR_SUFFIX: min/median/max of a figure over the rounds, into
# FIGURE_min, FIGURE_med, FIGURE_max (e.g. hist_stat hist_g_full_1000_p50 hist_g_full_1000 p50_ms).
hist_stat() {
    local out=$1 pre=$2 suf=$3 vals=() r v
    for ((r = 1; r <= HIST_ROUNDS; r++)); do
        v=${pre}_${r}_$suf
        vals+=("${!v:-0}")
    done
    read -r "${out}_min" "${out}_med" "${out}_max" < <(mmm "${vals[@]}")
}

# history_results: the ratios, the verdicts and the targets (after run.sh defines calc, MISSED).
history_results() {
    local n k r g s vals
    for n in $HIST_SIZES; do
        for k in full first deep par; do
            vals=()
            for ((r = 1; r <= HIST_ROUNDS; r++)); do
                g=hist_g_${k}_${n}_${r}_rps s=hist_sql_${k}_${n}_${r}_reads_s
                vals+=("$(calc "printf \"%.3f\", ${!g:-0} / (${!s:-0} > 0 ? ${!s} : 1)")")
            done
            read -r "hist_ratio_${k}_${n}_min" "hist_ratio_${k}_${n}_med" "hist_ratio_${k}_${n}_max" < <(mmm "${vals[@]}")
            for f in rps p50_ms p99_ms max_ms; do hist_stat "hist_g_${k}_${n}_$f" "hist_g_${k}_$n" "$f"; done
            for f in reads_s p50_ms p99_ms; do hist_stat "hist_sql_${k}_${n}_$f" "hist_sql_${k}_$n" "$f"; done
        done
        v=hist_ratio_full_${n}_med
        printf -v "HIST_OK_$n" '%s' "$(verdict "${!v} >= 0.8")"
        v=HIST_OK_$n
        [ "${!v}" = PASS ] || MISSED+=("history of $(fmt_int "$n") messages against SQLite alone")
        NTARGETS=$((NTARGETS + 1))
    done
}

report_history() {
    local n rows='' every='' r ok
    for n in $HIST_SIZES; do
        ok=HIST_OK_$n
        rows+="| the whole history of $(fmt_int "$n") messages ($(fmt_int "$(num "hist_${n}_body_bytes")") bytes as imported), one client: goosed's requests/s ÷ SQLite alone's reads/s, median (min–max) of $HIST_ROUNDS rounds | $(fmt %.2f "hist_ratio_full_${n}_med") ($(fmt %.2f "hist_ratio_full_${n}_min")–$(fmt %.2f "hist_ratio_full_${n}_max")): $(fmt %.1f "hist_g_full_${n}_rps_med")/s, p50 $(fmt %.2f "hist_g_full_${n}_p50_ms_med") ms, p99 $(fmt %.2f "hist_g_full_${n}_p99_ms_med") ms | $(fmt %.1f "hist_sql_full_${n}_reads_s_med")/s, p50 $(fmt %.2f "hist_sql_full_${n}_p50_ms_med") ms, p99 $(fmt %.2f "hist_sql_full_${n}_p99_ms_med") ms | ≥ 0.8 × | ${!ok} |"$'\n'
        for k in first deep; do
            local what="the first page of $HIST_PAGE (\`?limit=$HIST_PAGE&cursor=\`)"
            [ "$k" = deep ] && what="the page of $HIST_PAGE 90% deep (\`?limit=$HIST_PAGE&cursor=$((n * 9 / 10))\`)"
            rows+="| $what of $(fmt_int "$n") messages, one client | $(fmt %.2f "hist_ratio_${k}_${n}_med") ($(fmt %.2f "hist_ratio_${k}_${n}_min")–$(fmt %.2f "hist_ratio_${k}_${n}_max")): $(fmt_int "$(num "hist_g_${k}_${n}_rps_med")")/s, p50 $(fmt %.3f "hist_g_${k}_${n}_p50_ms_med") ms, p99 $(fmt %.3f "hist_g_${k}_${n}_p99_ms_med") ms | $(fmt_int "$(num "hist_sql_${k}_${n}_reads_s_med")")/s, p50 $(fmt %.3f "hist_sql_${k}_${n}_p50_ms_med") ms, p99 $(fmt %.3f "hist_sql_${k}_${n}_p99_ms_med") ms | information | — |"$'\n'
        done
        rows+="| the whole history of $(fmt_int "$n") messages, $HIST_CLIENTS clients at once (SQLite: $HIST_CLIENTS readers) | $(fmt %.2f "hist_ratio_par_${n}_med") ($(fmt %.2f "hist_ratio_par_${n}_min")–$(fmt %.2f "hist_ratio_par_${n}_max")): $(fmt %.1f "hist_g_par_${n}_rps_med")/s, p50 $(fmt %.1f "hist_g_par_${n}_p50_ms_med") ms, **p99 $(fmt %.1f "hist_g_par_${n}_p99_ms_med") ms** (max of rounds $(fmt %.1f "hist_g_par_${n}_p99_ms_max") ms) | $(fmt %.1f "hist_sql_par_${n}_reads_s_med")/s, p50 $(fmt %.1f "hist_sql_par_${n}_p50_ms_med") ms, p99 $(fmt %.1f "hist_sql_par_${n}_p99_ms_med") ms | information (issue 11 measured p99 1.7–3.0 s at 10,000) | — |"$'\n'
        for ((r = 1; r <= HIST_ROUNDS; r++)); do
            every+="| $r | $(fmt_int "$n") | $(av "hist_g_full_${n}_${r}_rps") / $(av "hist_sql_full_${n}_${r}_reads_s") | $(av "hist_g_first_${n}_${r}_rps") / $(av "hist_sql_first_${n}_${r}_reads_s") | $(av "hist_g_deep_${n}_${r}_rps") / $(av "hist_sql_deep_${n}_${r}_reads_s") | $(av "hist_g_par_${n}_${r}_rps") / $(av "hist_sql_par_${n}_${r}_reads_s") | $(av "hist_g_par_${n}_${r}_p99_ms") / $(av "hist_sql_par_${n}_${r}_p99_ms") ms | $(errs "hist_g_full_${n}_$r"), $(errs "hist_g_par_${n}_$r") |"$'\n'
        done
    done
    cat <<EOF

## History (issue 11, target 2)

A session's messages served by goosed (\`GET /api/sessions/{id}/messages\`, from the stored JSON text) against
SQLite alone reading the same rows from the same file (\`bench/history_read.c\`: the store's statement
\`SELECT id, role, content, created_us, seq FROM messages WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3\`,
prepared once, stepping over every row and touching each column's text; no JSON), side by side in each round.

| benchmark | goosed ÷ SQLite alone | SQLite alone | target | result |
|---|---|---|---|---|
${rows%$'\n'}

The sessions: made by \`bench/history.mjs\` with one \`POST /api/sessions/import\` each, in a repeating pattern of four
messages (a user's text; the assistant's text and a \`tool_request\`; the \`tool_response\` with about 1 KB of command
output; the assistant's \`thinking\` and its answer), texts with characters JSON escapes and non-ASCII ones.
Import times: $(for n in $HIST_SIZES; do printf '%s messages %s ms; ' "$(fmt_int "$n")" "$(av "hist_${n}_import_ms")"; done | sed 's/; $//').
One client: \`wrk -t1 -c1 -d${HIST_SECONDS}s\` on one keep-alive connection, against \`history_read\` with one reader for
${HIST_SECONDS} s; $HIST_CLIENTS clients: \`wrk -t2 -c$HIST_CLIENTS\`, against $HIST_CLIENTS readers (each its own connection).
Latency p50 / p99 per request (wrk) and per read (history_read); with few requests in ${HIST_SECONDS} s, p99 is the slowest.
Each figure: the median of $HIST_ROUNDS rounds; the ratio is taken within each round, then its median (min–max).

| round | messages | whole history, requests/s goosed / SQLite | first page | page 90% deep | $HIST_CLIENTS clients | $HIST_CLIENTS clients p99 goosed / SQLite | errors (wrk, one client and $HIST_CLIENTS) |
|---|---|---|---|---|---|---|---|
${every%$'\n'}

goosed (GOOSE_MAX_BODY_SIZE=67108864 for the imports; otherwise its defaults): RSS $(mb "$HIST_RSS") at the end, peak (VmHWM)
$(mb "$HIST_HWM"); $HIST_BAD WARN/ERROR lines; exit status $HIST_EXIT on SIGTERM, \`shutdown complete\` logged: $HIST_SHUTDOWN.
Command: \`BENCH_ONLY=history make bench\` (\`BENCH_HISTORY_MESSAGES\`, \`BENCH_HISTORY_ROUNDS\`, \`BENCH_HISTORY_SECONDS\`). Load
average when it started: $HIST_LOAD; these runs took $HIST_SECONDS_TOOK s.
EOF
}
