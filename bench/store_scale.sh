# bench/store_scale.sh — the `store` part of bench/run.sh (sourced by it: its helpers and settings
# are in scope). How the store's costs grow with what it holds: a new goosed on an empty store, then
# on stores filled beforehand with BENCH_STORE_SESSIONS / 10 and BENCH_STORE_SESSIONS sessions
# (default 1,000,000; written straight into goosed.db with the sqlite3 shell, after a first start
# made the schema), each measuring
#   - durable creates under wrk (POST /api/sessions, -c$CONNS) and the bytes goosed wrote per create
#     (/proc/PID/io wchar: the WAL, the checkpoints into the database, the log);
#   - GET /api/sessions?limit=100 by cursor: the first page, and the page 90% deep (its cursor read
#     from the database), each under wrk for half the duration;
#   - for information, the same depth by offset (the compatible form, which walks every row before).
# Targets (issue 11): creates at the largest store ≥ 0.9 × the empty store's (the median over
# BENCH_STORE_ROUNDS interleaved rounds, default 7, of BENCH_STORE_SECONDS each, default 4, of each
# round's ratio); the deep page's p50 within 1.5 × the first page's. The growth from 1× to 10× the sessions goes to the scaling table.
# shellcheck shell=bash disable=SC2154 # results land in variables named at run time

STORE_MAX=${BENCH_STORE_SESSIONS:-1000000}
STORE_ROUNDS=${BENCH_STORE_ROUNDS:-7}
STORE_SECONDS=${BENCH_STORE_SECONDS:-4} # each round's creates (short: the rounds' sizes run close together)
STORE_STARTUP_RUNS=5
STORE_SIZES=(0 $((STORE_MAX / 10)) "$STORE_MAX")
STORE_LOAD=$(cut -d" " -f1-3 /proc/loadavg)

# store_fill HOME N: N sessions of the local user in HOME's goosed.db, created one microsecond apart
# over the hour before now, with time-ordered ids as goosed makes them, each with two messages (a
# user's text and the assistant's answer).
store_fill() {
    local db=$1/.local/share/goose/sessions/goosed.db n=$2
    local t0=$(($(date +%s) * 1000000 - 3600 * 1000000))
    sqlite3 "$db" <<SQL
PRAGMA journal_mode=WAL;
PRAGMA synchronous=OFF;
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $n)
INSERT INTO sessions(id, name, working_dir, created_us, updated_us, message_count, input_tokens,
                     output_tokens, user_id)
SELECT printf('%08x-%04x-7%03x-8%03x-%012x', (($t0 + i) / 1000) >> 16, (($t0 + i) / 1000) & 65535,
              i % 4096, 0, i),
       'stored ' || i, '/tmp', $t0 + i, $t0 + i, 2, 0, 0, '' FROM c;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $n),
  m(k) AS (VALUES (1), (2))
INSERT INTO messages(id, session_id, seq, role, content, created_us)
SELECT printf('%08x-%04x-7%03x-%x%03x-%012x', (($t0 + i) / 1000) >> 16, (($t0 + i) / 1000) & 65535,
              i % 4096, 8 + k, 0, i),
       printf('%08x-%04x-7%03x-8%03x-%012x', (($t0 + i) / 1000) >> 16, (($t0 + i) / 1000) & 65535,
              i % 4096, 0, i),
       k, CASE k WHEN 1 THEN 'user' ELSE 'assistant' END,
       '[{"type":"text","text":"' || CASE k WHEN 1 THEN 'question ' ELSE 'answer ' END || i || '"}]',
       $t0 + i FROM c CROSS JOIN m;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
}

# io_written PID: bytes the process has written so far (write and pwrite calls: the WAL, checkpoints
# into the database, the log; this kernel does not account write_bytes to processes).
io_written() { awk '/^wchar:/ {print $2}' "/proc/$1/io"; }

# The stores first (each filled once); then STORE_ROUNDS rounds of creates, each size on a new goosed
# in turn (in reverse order every other round), so that the machine's drift over minutes falls on
# every size alike and each round gives a ratio of its own. The empty store is a new one each round.
# The pages are read in the first round only.
store_home() { if [ "$1" = 0 ]; then echo "$WORK/store-0-r$2"; else echo "$WORK/store-$1"; fi; }
for size in "${STORE_SIZES[@]}"; do
    [ "$size" -gt 0 ] || continue
    GHOME=$(store_home "$size" 1)
    mkdir -m 700 "$GHOME"
    start_goosed "$WORK/goosed-store-$size-schema.log" # the schema, then stop
    stop_goosed
    t=$(date +%s)
    store_fill "$GHOME" "$size"
    [ "$size" = "$STORE_MAX" ] && record "sqlite3 goosed.db   # $size sessions inserted with one recursive INSERT (bench/store_scale.sh store_fill)"
    echo "bench: $size sessions stored in $(($(date +%s) - t)) s" >&2
done

# Start-up with each store (before the creates): bench/startup.c on the size's HOME, kept; the
# empty store's first start makes it.
STORE_STARTUP=$WORK/startup-store
cc -std=c11 -O2 -Wall -Wextra -o "$STORE_STARTUP" bench/startup.c || die "cannot build bench/startup.c"
for size in "${STORE_SIZES[@]}"; do
    GHOME=$(store_home "$size" 0)
    [ "$size" = 0 ] && mkdir -m 700 "$GHOME"
    [ "$size" = 0 ] || GHOME=$(store_home "$size" 1)
    scmd=("$STORE_STARTUP" -n "$STORE_STARTUP_RUNS" -H "$GHOME" "$GOOSED_BIN")
    [ "$size" = "$STORE_MAX" ] && record "startup -n $STORE_STARTUP_RUNS -H <the HOME of $size sessions> $GOOSED_BIN"
    echo "bench: ${scmd[*]}" >&2
    line=$("${scmd[@]}" 2>"$OUTDIR/store_startup_$size.err") ||
        die "start-up with $size sessions failed (see $OUTDIR/store_startup_$size.err)"
    for kv in $line; do printf -v "store_startup_${size}_${kv%%=*}" '%s' "${kv#*=}"; done
done

for ((r = 1; r <= STORE_ROUNDS; r++)); do
    order=("${STORE_SIZES[@]}")
    [ $((r % 2)) = 1 ] || order=("${STORE_SIZES[2]}" "${STORE_SIZES[1]}" "${STORE_SIZES[0]}")
    for size in "${order[@]}"; do
        GHOME=$(store_home "$size" "$r")
        [ -d "$GHOME" ] || mkdir -m 700 "$GHOME"
        start_goosed "$WORK/goosed-store-$size-r$r.log"
        w0=$(io_written "$GOOSED_PID")
        saved=$DURATION
        DURATION=$STORE_SECONDS
        wrk_run "store_post_${size}_r$r" "http://127.0.0.1:$GPORT/api/sessions" bench/post_session.lua warm
        DURATION=$saved
        goosed_alive
        w1=$(io_written "$GOOSED_PID")
        v=store_post_${size}_r${r}_requests
        printf -v "store_bytes_${size}_r$r" '%s' "$(((w1 - w0) / (${!v} > 0 ? ${!v} : 1)))"
        printf -v "store_total_${size}_r$r" '%s' \
            "$(sqlite3 "$GHOME/.local/share/goose/sessions/goosed.db" "SELECT coalesce(sum(n), 0) FROM session_counts")"
        if [ "$r" = 1 ]; then
            # the cursor of the row 90% deep, read beside goosed (WAL lets a reader in)
            v=store_total_${size}_r1
            total=${!v}
            depth=$((total * 9 / 10))
            cursor=$(sqlite3 "$GHOME/.local/share/goose/sessions/goosed.db" \
                "SELECT created_us || '_' || id FROM sessions ORDER BY created_us DESC, id DESC LIMIT 1 OFFSET $depth")
            printf -v "store_depth_$size" '%s' "$depth"
            saved=$DURATION
            DURATION=$(((saved + 1) / 2))
            wrk_run "store_first_$size" "http://127.0.0.1:$GPORT/api/sessions?limit=100&cursor=" bench/status.lua
            wrk_run "store_deep_$size" "http://127.0.0.1:$GPORT/api/sessions?limit=100&cursor=$cursor" bench/status.lua
            wrk_run "store_offset_$size" "http://127.0.0.1:$GPORT/api/sessions?limit=100&offset=$depth" bench/status.lua
            DURATION=$saved
            goosed_alive
        fi
        stop_goosed
    done
done

# Each size's figures: those of its median round by creates/s (store_post_SIZE_*, store_bytes_SIZE,
# store_total_SIZE: the sessions after that round's creates).
for size in "${STORE_SIZES[@]}"; do
    ranked=$(for ((r = 1; r <= STORE_ROUNDS; r++)); do v=store_post_${size}_r${r}_rps; echo "${!v} $r"; done | sort -g)
    m=$(echo "$ranked" | sed -n "$(((STORE_ROUNDS + 1) / 2))p" | cut -d' ' -f2)
    for f in rps requests non2xx connect read write timeout p50_ms p99_ms max_ms; do
        v=store_post_${size}_r${m}_$f
        printf -v "store_post_${size}_$f" '%s' "${!v}"
    done
    v=store_bytes_${size}_r$m
    printf -v "store_bytes_$size" '%s' "${!v}"
    v=store_total_${size}_r$m
    printf -v "store_total_$size" '%s' "${!v}"
done

# store_results: the figures, the verdicts and the targets (after run.sh defines calc, MISSED).
store_results() {
    local small=${STORE_SIZES[0]} big=${STORE_SIZES[2]} v w
    local ratios=() r
    for ((r = 1; r <= STORE_ROUNDS; r++)); do
        v=store_post_${small}_r${r}_rps
        w=store_post_${big}_r${r}_rps
        ratios+=("$(calc "printf \"%.3f\", ${!w} / (${!v} > 0 ? ${!v} : 1)")")
    done
    local sorted
    sorted=$(printf '%s\n' "${ratios[@]}" | sort -g)
    STORE_CREATE_RATIO=$(echo "$sorted" | sed -n "$(((STORE_ROUNDS + 1) / 2))p")
    STORE_CREATE_RANGE="$(echo "$sorted" | head -1)–$(echo "$sorted" | tail -1)"
    STORE_CREATE_ROUNDS=$(IFS=/ && echo "${ratios[*]}")
    STORE_CREATE_OK=$(verdict "$STORE_CREATE_RATIO >= 0.9")
    v=store_first_${big}_p50_ms
    w=store_deep_${big}_p50_ms
    STORE_DEEP_RATIO=$(calc "printf \"%.2f\", ${!w} / (${!v} > 0 ? ${!v} : 1)")
    STORE_DEEP_OK=$(verdict "${!w} <= 1.5 * ${!v}")
    [ "$STORE_CREATE_OK" = PASS ] || MISSED+=("durable creates at $(fmt_int "$big") sessions stored")
    [ "$STORE_DEEP_OK" = PASS ] || MISSED+=("a page 90% deep at $(fmt_int "$big") sessions")
    NTARGETS=$((NTARGETS + 2))
}

report_store() {
    local rows= size
    for size in "${STORE_SIZES[@]}"; do
        rows+="| $(fmt_int "$(num "store_total_$size")") | $(av "store_startup_${size}_median_ms") ms | $(fmt_int "$(num "store_post_${size}_rps")") | $(fmt_int "$(num "store_bytes_$size")") B | $(av "store_post_${size}_p99_ms") ms | $(av "store_first_${size}_p50_ms") ms | $(av "store_deep_${size}_p50_ms") ms | $(av "store_offset_${size}_p50_ms") ms |"$'\n'
    done
    cat <<EOF

## The store as it grows

A new goosed on an empty store, then on stores of $(fmt_int "${STORE_SIZES[1]}") and $(fmt_int "$STORE_MAX")
sessions (filled beforehand with the sqlite3 shell). Creates: \`wrk -t$THREADS -c$CONNS -d${STORE_SECONDS}s\` on
\`POST /api/sessions\` (after ${WARMUP} s of warm-up), in $STORE_ROUNDS rounds; each round runs every size on a new goosed in turn (in reverse
order every other round; the empty store a new one each round, the others keep what earlier rounds
created), and gives its own ratio of the largest store's creates/s to the empty store's; the target is
judged on the median of those ratios. Each size's row below is its median round. Start-up: from
starting goosed on that store (as filled, before any create; the empty one made by the first of these
starts) to the answer of its first \`GET /status\`, median of $STORE_STARTUP_RUNS starts (\`bench/startup.c -H\`); the
filled stores hold two messages per session (a user's text and the answer), so the crash repair at
start-up has every session's last message to look at if it reads them. Bytes written per create:
goosed's \`wchar\` in \`/proc/PID/io\` (its writes: the WAL, checkpoints into the database, the access log). Pages of 100 sessions: the first (\`?cursor=\`) and the one 90% deep by cursor, and the
same depth by offset for comparison, each under wrk for $(((DURATION + 1) / 2)) s.

| target | figure | result |
|---|---|---|
| creates at $(fmt_int "$STORE_MAX") sessions ≥ 0.9 × on an empty store (median of $STORE_ROUNDS rounds' ratios) | $STORE_CREATE_RATIO × ($STORE_CREATE_RANGE; rounds: $STORE_CREATE_ROUNDS) | $STORE_CREATE_OK |
| a page 90% deep by cursor at $(fmt_int "$STORE_MAX") sessions: p50 ≤ 1.5 × the first page's | $STORE_DEEP_RATIO × | $STORE_DEEP_OK |

| sessions stored (after the creates) | start-up, before the creates | creates/s | bytes written per create | create p99 | first page p50 | page 90% deep p50 | same depth by offset p50 |
|---|---|---|---|---|---|---|---|
${rows%$'\n'}

Command: \`BENCH_ONLY=store make bench\` (\`BENCH_STORE_SESSIONS\`, default 1,000,000; \`BENCH_STORE_ROUNDS\`, default 7; \`BENCH_STORE_SECONDS\`, default 4). Load average
when it started: $STORE_LOAD.
EOF
}
