#!/usr/bin/env bash
# shellcheck disable=SC2154 # results land in variables named at run time (wrk_run, start-up line)
# bench/run.sh — `make bench`: measures goosed beside nginx on this machine and writes docs/BENCHMARKS.md.
#
#   GOOSED_BIN=build-release/goosed bash bench/run.sh
#
# Runs BENCH_ROUNDS rounds of: nginx (static 200 "ok", access log to a file), goosed GET /status,
# goosed POST /api/sessions (durable: every 201 is committed and fsynced); each figure is the best
# of its rounds. Then nginx with its access log off (for information only) and the start-up timer
# (bench/startup.c). Same wrk settings for every run.
# Everything listens on 127.0.0.1 only; every run is bounded in time; whatever this script starts is
# stopped on every way out. Exit 0 when the benchmarks ran, whether or not the targets were met (the
# report says which); non-zero when a tool fails or goosed dies.
#
# Knobs (environment): GOOSED_BIN (default build/goosed), BENCH_ROUNDS (default 2), BENCH_DURATION
# (seconds per measured wrk run, default 10), BENCH_WARMUP (seconds, default 2), BENCH_THREADS (2),
# BENCH_CONNECTIONS (64), BENCH_STARTUP_RUNS (20), BENCH_REPORT (default docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

GOOSED_BIN=${GOOSED_BIN:-build/goosed}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
STARTUP_RUNS=${BENCH_STARTUP_RUNS:-20}
ROUNDS=${BENCH_ROUNDS:-2}
REPORT=${BENCH_REPORT:-docs/BENCHMARKS.md}
OUTDIR=$ROOT/bench/out # raw wrk output and server logs of the last run (git-ignored)
POST_BODY='{"name":"bench","working_directory":"/tmp"}'

die() {
    echo "bench: $*" >&2
    exit 1
}

case $GOOSED_BIN in /*) ;; *) GOOSED_BIN=$ROOT/$GOOSED_BIN ;; esac
[ -x "$GOOSED_BIN" ] || die "$GOOSED_BIN is not an executable (build it first: make, or set GOOSED_BIN)"

# --- tools: wrk and nginx-light from Debian, quietly, only when missing ---------------------------
NGINX=$(command -v nginx || true)
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; } || true
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -n "$NGINX" ] || missing+=(nginx-light)
command -v cc >/dev/null || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}"
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
[ -x "$NGINX" ] || die "nginx not found after install"
command -v wrk >/dev/null || die "wrk not found after install"

# --- scratch space and cleanup --------------------------------------------------------------------
# On disk, not tmpfs, so that fsync costs what it costs (the store's durability is part of the test).
WORK=$(mktemp -d /var/tmp/goosed-bench.XXXXXX)
WORK_FS=$(df -PT "$WORK" | awk 'NR == 2 {print $2}')
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR"
GOOSED_PID=
NGINX_PREFIX=

stop_goosed() { # SIGTERM, then up to 12 s for the graceful shutdown, then SIGKILL; sets GOOSED_RC
    GOOSED_RC=
    [ -n "$GOOSED_PID" ] || return 0
    kill -TERM "$GOOSED_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 120; i++)); do
        kill -0 "$GOOSED_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$GOOSED_PID" 2>/dev/null; then
        echo "bench: goosed did not stop within 12 s of SIGTERM; killing it" >&2
        kill -KILL "$GOOSED_PID" 2>/dev/null || true
    fi
    GOOSED_RC=0
    wait "$GOOSED_PID" 2>/dev/null || GOOSED_RC=$?
    GOOSED_PID=
}

stop_nginx() {
    [ -n "$NGINX_PREFIX" ] || return 0
    local pid
    pid=$(cat "$NGINX_PREFIX/nginx.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    cp "$NGINX_PREFIX/error.log" "$OUTDIR/nginx-$(basename "$NGINX_PREFIX")-error.log" 2>/dev/null || true
    NGINX_PREFIX=
}

cleanup() {
    local rc=$?
    set +e
    stop_nginx
    stop_goosed
    if [ -f "$WORK/goosed.log" ]; then
        { grep -v ' access: ' "$WORK/goosed.log"; echo "... last access lines:"; grep ' access: ' "$WORK/goosed.log" | tail -n 20; } >"$OUTDIR/goosed.log"
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers --------------------------------------------------------------------------------------
# Recorded commands, in run order, for the report.
COMMANDS=()
record() { COMMANDS+=("$*"); }

STARTUP=$WORK/startup
cc -std=c11 -O2 -Wall -Wextra -o "$STARTUP" bench/startup.c
record "cc -std=c11 -O2 -Wall -Wextra -o startup bench/startup.c"

# http METHOD PORT PATH [BODY]: one request over bash's /dev/tcp; sets HTTP_CODE and HTTP_HEADERS.
http() {
    local method=$1 port=$2 path=$3 body=${4-} fd line
    HTTP_CODE='' HTTP_HEADERS=''
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
    if [ -n "$body" ]; then
        printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
            "$method" "$path" "${#body}" "$body" >&"$fd"
    else
        printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$method" "$path" >&"$fd"
    fi
    while IFS= read -r -t 5 line <&"$fd"; do
        line=${line%$'\r'}
        [ -z "$line" ] && break
        HTTP_HEADERS+=$line$'\n'
    done
    exec {fd}<&-
    line=${HTTP_HEADERS%%$'\n'*}
    line=${line#HTTP/1.? }
    HTTP_CODE=${line%% *}
}

expect() { # expect CODE METHOD PORT PATH [BODY]
    local want=$1
    shift
    http "$@" || die "$1 $3: request failed"
    [ "$HTTP_CODE" = "$want" ] || die "$1 $3: expected $want, got '$HTTP_CODE'"
}

wait_port() { # wait_port PORT PID: until PORT accepts (10 s at most) while PID lives
    local i
    for ((i = 0; i < 200; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# wrk_run NAME URL SCRIPT [warm]: the measured run, after a warm-up run when asked; its WRK_RESULT
# fields become variables NAME_rps, NAME_non2xx, ... and its full output goes to bench/out/NAME.txt.
wrk_run() {
    local name=$1 url=$2 script=$3 out=$OUTDIR/$1.txt line kv
    if [ "${4-}" = warm ]; then
        wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$script" "$url" >"$OUTDIR/$name.warmup.txt" ||
            die "wrk warm-up for $name failed (see $OUTDIR/$name.warmup.txt)"
    fi
    local cmd=(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency -s "$script" "$url")
    [[ " ${COMMANDS[*]} " == *" ${cmd[*]} "* ]] || record "${cmd[*]}"
    echo "bench: ${cmd[*]}" >&2
    "${cmd[@]}" >"$out" || die "wrk for $name failed (see $out)"
    line=$(grep '^WRK_RESULT ' "$out") || die "wrk for $name printed no result line (see $out)"
    for kv in ${line#WRK_RESULT }; do
        printf -v "${name}_${kv%%=*}" '%s' "${kv#*=}"
    done
}

# best NAME: copies the fields of the round with the most requests/s (NAME_1 .. NAME_ROUNDS) to NAME_*.
best() {
    local name=$1 r b=1 f v
    for ((r = 2; r <= ROUNDS; r++)); do
        v=${name}_${r}_rps f=${name}_${b}_rps
        if awk "BEGIN { exit !(${!v} > ${!f}) }"; then b=$r; fi
    done
    for f in rps requests non2xx connect read write timeout p50_ms p99_ms max_ms; do
        v=${name}_${b}_$f
        printf -v "${name}_$f" '%s' "${!v}"
    done
    printf -v "${name}_round" '%s' "$b"
}

# --- nginx ------------------------------------------------------------------------------------------
# start_nginx NAME ACCESS_LOG: sets NGINX_PORT.
start_nginx() {
    local name=$1 access=$2
    NGINX_PREFIX=$WORK/$name
    mkdir -p "$NGINX_PREFIX"
    NGINX_PORT=$("$STARTUP" --free-port)
    [ "$access" = on ] && access=$NGINX_PREFIX/access.log
    sed -e "s|@PORT@|$NGINX_PORT|g" -e "s|@ACCESS_LOG@|$access|g" -e "s|@PREFIX@|$NGINX_PREFIX|g" \
        bench/nginx.conf >"$NGINX_PREFIX/nginx.conf"
    local cmd=("$NGINX" -p "$NGINX_PREFIX" -e "$NGINX_PREFIX/error.log" -c "$NGINX_PREFIX/nginx.conf")
    record "${cmd[*]}   # conf: bench/nginx.conf with @PORT@=$NGINX_PORT @ACCESS_LOG@=$2"
    "${cmd[@]}" || die "nginx failed to start (conf $NGINX_PREFIX/nginx.conf)"
    local i pid=
    for ((i = 0; i < 100; i++)); do
        pid=$(cat "$NGINX_PREFIX/nginx.pid" 2>/dev/null || true)
        [ -n "$pid" ] && break
        sleep 0.05
    done
    if [ -z "$pid" ] || ! wait_port "$NGINX_PORT" "$pid"; then die "nginx did not listen on $NGINX_PORT"; fi
    expect 200 GET "$NGINX_PORT" /status
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# nginx (access log on) and goosed both stay up through the rounds; each round measures nginx, then
# goosed GET /status, then goosed POST /api/sessions, so both see the same background load.
start_nginx nginx on
NGINX_URL=http://127.0.0.1:$NGINX_PORT/status

GHOME=$WORK/home
mkdir -m 700 "$GHOME"
GLOG=$WORK/goosed.log # big (one line per request): bench/out/ keeps all but the access lines
gcmd=(env -i "HOME=$GHOME" "PATH=$PATH" "$GOOSED_BIN" --host 127.0.0.1 --port 0)
record "${gcmd[*]/#PATH=*/PATH=\$PATH} 2>goosed.log   # HOME: a new empty directory, so the SQLite file is new"
"${gcmd[@]}" 2>"$GLOG" </dev/null >/dev/null &
GOOSED_PID=$!
GPORT=
for ((i = 0; i < 200; i++)); do
    GPORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$GLOG" | head -n1)
    [ -n "$GPORT" ] && break
    kill -0 "$GOOSED_PID" 2>/dev/null || break
    sleep 0.05
done
[ -n "$GPORT" ] || { cat "$GLOG" >&2; die "goosed did not log 'listening on http://127.0.0.1:PORT'"; }

goosed_alive() {
    kill -0 "$GOOSED_PID" 2>/dev/null && return 0
    echo "bench: goosed died; last lines of its log:" >&2
    tail -n 20 "$GLOG" >&2
    GOOSED_PID=
    exit 1
}

# A few requests of each kind, then a second of quiet: that is "idle".
for i in 1 2 3; do expect 200 GET "$GPORT" /status; done
expect 200 GET "$GPORT" /api/health
expect 201 POST "$GPORT" /api/sessions "$POST_BODY"
expect 200 GET "$GPORT" /api/sessions
sleep 1
goosed_alive
IDLE_RSS=$(rss_kb "$GOOSED_PID")
record "awk '/^VmRSS:/' /proc/<goosed pid>/status   # idle: after start-up, 6 requests and 1 s of quiet"

for ((r = 1; r <= ROUNDS; r++)); do
    warm=$([ "$r" = 1 ] && echo warm || echo)
    wrk_run "nginx_$r" "$NGINX_URL" bench/status.lua "$warm"
    wrk_run "goosed_status_$r" "http://127.0.0.1:$GPORT/status" bench/status.lua "$warm"
    goosed_alive
    wrk_run "goosed_post_$r" "http://127.0.0.1:$GPORT/api/sessions" bench/post_session.lua "$warm"
    goosed_alive
done
LOAD_RSS=$(rss_kb "$GOOSED_PID")
PEAK_RSS=$(hwm_kb "$GOOSED_PID")
sleep 2
AFTER_RSS=$(rss_kb "$GOOSED_PID")
expect 200 GET "$GPORT" '/api/sessions?limit=1'
STORED=$(printf '%s' "$HTTP_HEADERS" | tr -d '\r' | awk -F': *' 'tolower($1) == "x-total-count" {print $2}')
stop_goosed
GOOSED_EXIT=$GOOSED_RC
grep -q 'shutdown complete' "$GLOG" && SHUTDOWN_LOGGED=yes || SHUTDOWN_LOGGED=no
ACCESS_LINES=$(grep -c ' access: ' "$GLOG" || true)
BAD_LINES=$(grep -Ec ' (ERROR|WARN) ' "$GLOG" || true)

# For information: nginx with its access log off, once.
stop_nginx
start_nginx nginx_nolog off
wrk_run nginx_nolog "http://127.0.0.1:$NGINX_PORT/status" bench/status.lua warm
stop_nginx

# --- start-up ---------------------------------------------------------------------------------------
scmd=(env TMPDIR="$WORK" "$STARTUP" -n "$STARTUP_RUNS" "$GOOSED_BIN")
record "${scmd[*]}"
echo "bench: ${scmd[*]}" >&2
STARTUP_LINE=$("${scmd[@]}" 2>"$OUTDIR/startup.err") || {
    cat "$OUTDIR/startup.err" >&2
    die "start-up timer failed"
}
for kv in $STARTUP_LINE; do printf -v "startup_${kv%%=*}" '%s' "${kv#*=}"; done

# --- report -----------------------------------------------------------------------------------------
calc() { awk "BEGIN { $1 }"; }
best nginx
best goosed_status
best goosed_post
fmt_int() { printf '%.0f' "$1" | sed ':a; s/\B[0-9]\{3\}\>/,&/; ta'; }
verdict() { calc "print (($1) ? \"PASS\" : \"FAIL\")"; }

STATUS_RATIO=$(calc "printf \"%.2f\", $goosed_status_rps / $nginx_rps")
POST_RATIO=$(calc "printf \"%.2f\", $goosed_post_rps / $nginx_rps")
NOLOG_RATIO=$(calc "printf \"%.2f\", $goosed_status_rps / $nginx_nolog_rps")
STATUS_OK=$(verdict "$goosed_status_rps >= 0.5 * $nginx_rps")
POST_OK=$(verdict "$goosed_post_rps >= 0.15 * $nginx_rps")
RSS_OK=$(verdict "$IDLE_RSS * 1024 < 10000000")
STARTUP_OK=$(verdict "$startup_median_ms < 50")
mb() { calc "printf \"%.1f MB\", $1 * 1024 / 1e6"; }

errs() { # errs NAME: "0" or a description of non-2xx responses and socket errors
    local non2xx=${1}_non2xx connect=${1}_connect read=${1}_read write=${1}_write timeout=${1}_timeout
    if [ "${!non2xx}${!connect}${!read}${!write}${!timeout}" = 00000 ]; then
        echo 0
    else
        echo "non-2xx ${!non2xx}; socket errors: connect ${!connect}, read ${!read}, write ${!write}, timeout ${!timeout}"
    fi
}

TABLE="| benchmark | goosed | nginx | ratio | target | result |
|---|---|---|---|---|---|
| \`GET /status\`, requests/s | $(fmt_int "$goosed_status_rps") | $(fmt_int "$nginx_rps") | $STATUS_RATIO | ≥ 0.50 × nginx | $STATUS_OK |
| \`POST /api/sessions\` (durable), requests/s | $(fmt_int "$goosed_post_rps") | $(fmt_int "$nginx_rps") (static \`GET\`) | $POST_RATIO | ≥ 0.15 × nginx | $POST_OK |
| idle RSS | $(mb "$IDLE_RSS") ($IDLE_RSS kB) | — | — | < 10 MB | $RSS_OK |
| start-up to first answered request, median of $startup_n | $startup_median_ms ms (max $startup_max_ms ms) | — | — | < 50 ms | $STARTUP_OK |"

row() { # row NAME LABEL: one line of the every-run table
    local n=$1 rps=${1}_rps req=${1}_requests p50=${1}_p50_ms p99=${1}_p99_ms max=${1}_max_ms
    echo "| $2 | $(fmt_int "${!rps}") | $(fmt_int "${!req}") | ${!p50} ms | ${!p99} ms | ${!max} ms | $(errs "$n") |"
}
RUNS=()
DETAILS="| run | requests/s | requests | latency p50 | latency p99 | latency max | errors |
|---|---|---|---|---|---|---|"
for ((r = 1; r <= ROUNDS; r++)); do
    RUNS+=("nginx_$r" "goosed_status_$r" "goosed_post_$r")
    DETAILS+=$'\n'$(row "nginx_$r" "round $r: nginx static 200, access log to a file")
    DETAILS+=$'\n'$(row "goosed_status_$r" "round $r: goosed \`GET /status\`")
    DETAILS+=$'\n'$(row "goosed_post_$r" "round $r: goosed \`POST /api/sessions\`")
done
RUNS+=(nginx_nolog)
DETAILS+=$'\n'$(row nginx_nolog "nginx static 200, access log off (information only)")

GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo "none (no commit yet)")
if [ -n "$(git status --porcelain -- . ":!$REPORT" ":!bench/out" 2>/dev/null)" ]; then
    GIT_REV="$GIT_REV, with uncommitted changes"
fi
CPU=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
[ -n "$CPU" ] || CPU=unknown
MISSED=()
[ "$STATUS_OK" = PASS ] || MISSED+=("GET /status")
[ "$POST_OK" = PASS ] || MISSED+=("POST /api/sessions")
[ "$RSS_OK" = PASS ] || MISSED+=("idle RSS")
[ "$STARTUP_OK" = PASS ] || MISSED+=("start-up")
if [ ${#MISSED[@]} -eq 0 ]; then
    SUMMARY="All four targets met."
else
    SUMMARY=$(printf '%s, ' "${MISSED[@]}")
    SUMMARY="Targets missed: ${SUMMARY%, }."
fi

# Anything that looked wrong, for the report's "Problems seen".
PROBLEMS=()
for run in "${RUNS[@]}"; do
    e=$(errs "$run")
    [ "$e" = 0 ] || PROBLEMS+=("wrk run \`$run\`: $e.")
done
if [ "$BAD_LINES" -gt 0 ]; then
    first=$(grep -Em1 ' (ERROR|WARN) ' "$GLOG" | cut -c1-200)
    PROBLEMS+=("goosed logged $BAD_LINES WARN/ERROR lines under load; the first: \`$first\`.")
fi
[ "$GOOSED_EXIT" = 0 ] || PROBLEMS+=("goosed exited with status $GOOSED_EXIT after SIGTERM (expected 0).")
[ "$SHUTDOWN_LOGGED" = yes ] || PROBLEMS+=("goosed did not log \`shutdown complete\` after SIGTERM.")
if [ "$startup_bad_exits" != 0 ]; then
    first=$({ grep -m1 'Fatal' "$OUTDIR/startup.err" || grep -m1 -E 'exited with|did not exit' "$OUTDIR/startup.err"; } | sed 's/^ *//' | cut -c1-200)
    PROBLEMS+=("start-up timer: goosed did not exit 0 after SIGTERM in $startup_bad_exits of $startup_n runs (\`$first\`; full logs in bench/out/startup.err).")
fi
CREATED=1 # the priming POST, plus every 2xx of the measured POST runs (warm-up creates not counted)
for ((r = 1; r <= ROUNDS; r++)); do
    req=goosed_post_${r}_requests bad=goosed_post_${r}_non2xx
    CREATED=$((CREATED + ${!req} - ${!bad}))
done
if [ -z "$STORED" ] || [ "$STORED" -lt "$CREATED" ]; then
    PROBLEMS+=("the store holds ${STORED:-an unknown number of} sessions, fewer than the $CREATED answered 2xx by the measured runs.")
fi
if [ ${#PROBLEMS[@]} -eq 0 ]; then
    PROBLEM_TEXT="None: no non-2xx answers, no socket errors, no WARN/ERROR log lines, clean exits on SIGTERM."
else
    PROBLEM_TEXT=$(printf -- '- %s\n' "${PROBLEMS[@]}")
fi

mkdir -p "$(dirname "$REPORT")"
{
    cat <<EOF
# Benchmarks

Generated by \`make bench\` (\`bench/run.sh\`) — do not edit by hand; run it again.

$SUMMARY

$TABLE

Ratios are goosed's requests/s over nginx's requests/s for a static 200 \`ok\`, measured in the same run with the
same wrk settings; each requests/s figure is the best of $ROUNDS rounds (see every run below). Against nginx with its
access log off, the \`GET /status\` ratio would be $NOLOG_RATIO. A durable session create answers 201 only after its
row is committed and fsynced (SQLite, WAL, \`synchronous=FULL\`; the data directory is on $WORK_FS).

## Reference point (quoted, not measured by us)

Issue 2 quotes an agent server written in TypeScript, measured on this machine. Those numbers are quoted from
the issue; this bench did not run that server.

| | TypeScript server (quoted from issue 2) | goosed (this run) |
|---|---|---|
| health requests/s | about 1,100 | $(fmt_int "$goosed_status_rps") (\`GET /status\`) |
| session creates/s | about 180 | $(fmt_int "$goosed_post_rps") |
| idle memory | 310 MB | $(mb "$IDLE_RSS") RSS |

## Every run

$DETAILS

Errors: wrk's count of non-2xx/3xx responses and of socket errors; anything but 0 is a problem to look at.

goosed memory: idle $(mb "$IDLE_RSS") ($IDLE_RSS kB); right after the load $(mb "$LOAD_RSS") ($LOAD_RSS kB),
peak (VmHWM) $(mb "$PEAK_RSS") ($PEAK_RSS kB), 2 s later $(mb "$AFTER_RSS") ($AFTER_RSS kB).
Sessions in the store after the run (\`X-Total-Count\`): ${STORED:-unknown}; the measured POST runs had $CREATED 2xx answers
(with the first request; the warm-up's creates come on top).
goosed wrote $ACCESS_LINES access-log lines and $BAD_LINES WARN/ERROR lines; on SIGTERM it exited with status
$GOOSED_EXIT and logged \`shutdown complete\`: $SHUTDOWN_LOGGED.

## Problems seen

$PROBLEM_TEXT

## How it was measured

- Machine: $(nproc) CPUs, $CPU; Linux $(uname -r); $(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory.
  Load average before the run: $LOAD_START. wrk runs on the same machine, so it shares the CPUs with the server.
- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ). Commit: $GIT_REV. Binary: \`${GOOSED_BIN#"$ROOT"/}\` ($("$GOOSED_BIN" --version 2>/dev/null || echo "version unknown")).
- Tools: $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), $("$NGINX" -v 2>&1 | sed 's/^nginx version: //').
- wrk: $THREADS threads, $CONNS keep-alive connections, ${DURATION} s per measured run, \`--timeout 5s\`; before the
  first round, a ${WARMUP} s warm-up run against each URL (not counted). $ROUNDS rounds, each measuring nginx, then
  goosed \`GET /status\`, then goosed \`POST /api/sessions\` (both servers up throughout), so both face the same
  background load; the tables take each server's best round. Results come from \`bench/report.lua\`'s \`done\` hook.
- \`POST /api/sessions\` body: \`$POST_BODY\`, \`Content-Type: application/json\` (\`bench/post_session.lua\`).
- nginx (\`bench/nginx.conf\`): \`worker_processes auto\` ($(nproc) workers, as many as goosed has cores), keep-alive
  up to 1,000,000 requests per connection, \`return 200 "ok"\`. Its access log is on and written to a file, one
  line per request, because goosed also writes one access line per request (to stderr, which the bench sends to a
  file); the second nginx run, with the access log off, is shown for information and is not compared.
- goosed: default configuration, log level info, a new empty \`HOME\` on $WORK_FS (so a new SQLite file), only
  \`HOME\` and \`PATH\` in its environment, stderr to a file. Idle RSS is \`VmRSS\` from \`/proc/PID/status\` after start-up, six
  requests (3 × \`GET /status\`, \`GET /api/health\`, \`POST /api/sessions\`, \`GET /api/sessions\`) and 1 s of quiet.
- Start-up (\`bench/startup.c\`): fork/exec \`goosed --host 127.0.0.1 --port P\` on a new \`HOME\`, connect every
  0.2 ms until the port accepts, send \`GET /status\`, read the whole answer (200 \`ok\`) and stop the clock;
  then SIGTERM and wait for exit 0. Repeated $startup_n times (min $startup_min_ms ms, median $startup_median_ms ms, max $startup_max_ms ms).

Commands, in the order they ran (paths under a temporary directory; ports picked free at run time):

\`\`\`sh
$(printf '%s\n' "${COMMANDS[@]}" | sed "s|$WORK|\$TMP|g; s|$ROOT/||g")
\`\`\`
EOF
} >"$REPORT"

echo
echo "$SUMMARY"
echo
echo "$TABLE"
echo
echo "$DETAILS"
echo
echo "Problems seen:"
echo "$PROBLEM_TEXT"
echo
echo "bench: wrote $REPORT (raw output in bench/out/)"
