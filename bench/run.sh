#!/usr/bin/env bash
# shellcheck disable=SC2154 # results land in variables named at run time (wrk_run, start-up line)
# bench/run.sh — `make bench`: measures goosed beside nginx on this machine and writes docs/BENCHMARKS.md.
#
#   GOOSED_BIN=build-release/goosed bash bench/run.sh
#
# Runs BENCH_ROUNDS rounds of: nginx (static 200 "ok", access log to a file), goosed GET /status,
# goosed POST /api/sessions (durable: every 201 is committed and fsynced); each figure is the best
# of its rounds. Then nginx with its access log off (for information only) and the start-up timer
# (bench/startup.c). Same wrk settings for every run. Then the agent benchmarks of issue 3: a new
# goosed whose OpenAI provider is the fake (tests/fakes/fake-provider.mjs, a separate Node process),
# driven by bench/agent.mjs: BENCH_AGENT_REPLIES concurrent replies (peak RSS meanwhile), the
# first-token latency goosed adds, and the relay's throughput. Then the memory benchmarks (issue 11,
# target 5): BENCH_MEMORY_REPLIES concurrent replies (500 to 5,000, each size on a new goosed)
# against the same load straight to the fake (reply by reply), goosed's CPU per token and memory per
# running reply; and 10,000 idle watchers (SSE clients of GET /api/sessions/{id}/events, on another
# new goosed): memory per watcher and GET /status latency while they are connected. The history
# part (bench/history.sh) and the growth table from 1x to 10x the work (bench/growth.sh, from the
# store, history and memory parts' figures) are issue 11's targets 2 and 6.
# Everything listens on 127.0.0.1 only; every run is bounded in time; whatever this script starts is
# stopped on every way out. Exit 0 when the benchmarks ran, whether or not the targets were met (the
# report says which); non-zero when a tool fails or goosed dies.
#
# Knobs (environment): GOOSED_BIN (default build/goosed), BENCH_ROUNDS (default 2), BENCH_DURATION
# (seconds per measured wrk run, default 10), BENCH_WARMUP (seconds, default 2), BENCH_THREADS (2),
# BENCH_CONNECTIONS (64), BENCH_STARTUP_RUNS (20), BENCH_REPORT (default docs/BENCHMARKS.md);
# agent benchmarks: BENCH_AGENT_REPLIES (500 concurrent replies), BENCH_AGENT_TOKENS (50 tokens each),
# BENCH_AGENT_INTERVAL_MS (20 ms apart), BENCH_AGENT_ROUNDS (2 rounds of those, each after a warm-up
# of BENCH_AGENT_REPLIES_WARMUP = BENCH_AGENT_REPLIES concurrent replies), BENCH_AGENT_SAMPLES
# (500 first-token samples each way, after BENCH_AGENT_WARMUP = 50), BENCH_AGENT_RELAY_TOKENS
# (100000 tokens at full speed), BENCH_AGENT_RELAY_RUNS (3), BENCH_AGENT_TIMEOUT (120 s per
# bench/agent.mjs run); memory benchmarks: BENCH_MEMORY_REPLIES (the batch sizes, "500 1000 2000 5000"; each
# reply BENCH_AGENT_TOKENS tokens BENCH_AGENT_INTERVAL_MS apart), BENCH_MEMORY_SESSIONS (100) ×
# BENCH_MEMORY_WATCHERS_PER_SESSION (100) watchers, BENCH_MEMORY_STATUS_SAMPLES (1000 GET /status),
# BENCH_MEMORY_LOCAL_ADDRS (the connections to goosed come from 127.0.0.1 .. 127.0.0.K; default: 1,
# or more when the ephemeral port range is short), BENCH_MEMORY_TIMEOUT (300 s per bench/agent.mjs run).
# MCP benchmarks (issue 8; bench/mcp.mjs, server-everything over stdio as a config.yaml extension):
# BENCH_MCP_CALLS_PER_REPLY (50 echo calls in each reply; at most 64, the OpenAI reader's limit),
# BENCH_MCP_REPLIES (20 measured replies of those, after 1 not counted; the direct client makes as many
# calls as are measured through goosed, after as many warm-up calls as one reply has),
# BENCH_MCP_SESSIONS (the session counts, "1 10 100", each on a goosed of its own),
# BENCH_MCP_LOAD_CALLS (20 echo calls per session when they all call at once), BENCH_MCP_START_BATCH
# (10: more sessions than that start their servers that many at a time), BENCH_MCP_TIMEOUT (600 s
# per bench/mcp.mjs run).
# Tracing overhead (issue 10; BENCH_ONLY=tracing): GET /status under wrk and the concurrent replies,
# each on a new goosed with traces off, then on (OTLP/HTTP to tests/api/lib/otlp_receiver.mjs
# --discard, which reads and acknowledges every export without decoding it); BENCH_ROUNDS rounds. Each
# cost is taken within a round (on against the off run beside it) and judged on its median over the
# rounds; the figures shown are the best round of each for GET /status and the worst for the replies.
# BENCH_ONLY: a comma-separated subset of http (nginx, goosed under wrk, start-up), agent (issue 3's
# agent benchmarks), memory, mcp and tracing, e.g. BENCH_ONLY=memory; a partial run writes only its own sections,
# to bench/out/BENCHMARKS.md unless BENCH_REPORT says otherwise (docs/BENCHMARKS.md is the full run's).
# BENCH_ONLY=metrics: what metrics cost (bench/metrics_overhead.sh; BENCH_METRICS_ROUNDS, default 5).
# BENCH_ONLY=store: the store as it grows (bench/store_scale.sh; BENCH_STORE_SESSIONS, default 1M;
# BENCH_STORE_ROUNDS, default 7; BENCH_STORE_SECONDS, default 4).
# BENCH_ONLY=history: a session's history of 1,000 and 10,000 messages served by goosed against SQLite
# alone reading the same rows (bench/history.sh, bench/history_read.c; BENCH_HISTORY_MESSAGES,
# BENCH_HISTORY_ROUNDS, BENCH_HISTORY_SECONDS).
# A reply through goosed that errors or arrives incomplete (or a watcher that fails to connect) makes
# the exit status 1, after the report is written (its "Problems seen" says what happened).
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
ONLY=${BENCH_ONLY:-http,agent,memory,mcp,metrics,tracing,store,history}
for part in ${ONLY//,/ }; do
    case $part in http | agent | memory | mcp | metrics | tracing | store | history) ;; *) echo "bench: BENCH_ONLY: unknown part '$part' (http, agent, memory, mcp, metrics, tracing, store, history)" >&2 && exit 2 ;; esac
done
want() { [[ ,$ONLY, == *,$1,* ]]; } # want PART: whether this run measures PART
# abba ROUND A B: "A B" in odd rounds, "B A" in even ones: two modes compared round by round take
# turns at going first, so that neither gains from its place (a warmer machine, a fresher one).
abba() { if (($1 % 2)); then echo "$2 $3"; else echo "$3 $2"; fi; }
FULL=no
want http && want agent && want memory && want mcp && want metrics && want tracing && want store && want history && FULL=yes
if [ "$FULL" = yes ]; then REPORT=${BENCH_REPORT:-docs/BENCHMARKS.md}; else REPORT=${BENCH_REPORT:-bench/out/BENCHMARKS.md}; fi
OUTDIR=$ROOT/bench/out # raw wrk output and server logs of the last run (git-ignored)
POST_BODY='{"name":"bench","working_directory":"/tmp"}'
AGENT_REPLIES=${BENCH_AGENT_REPLIES:-500}
AGENT_TOKENS=${BENCH_AGENT_TOKENS:-50}
AGENT_INTERVAL_MS=${BENCH_AGENT_INTERVAL_MS:-20}
AGENT_ROUNDS=${BENCH_AGENT_ROUNDS:-2}
# As wide as the measured batch: the client opens its connections to the fake before timing, so
# goosed gets its pool of provider connections opened before timing too.
AGENT_REPLIES_WARMUP=${BENCH_AGENT_REPLIES_WARMUP:-${BENCH_AGENT_REPLIES:-500}}
AGENT_SAMPLES=${BENCH_AGENT_SAMPLES:-500}
AGENT_WARMUP=${BENCH_AGENT_WARMUP:-50}
RELAY_TOKENS=${BENCH_AGENT_RELAY_TOKENS:-100000}
RELAY_RUNS=${BENCH_AGENT_RELAY_RUNS:-3}
AGENT_TIMEOUT=${BENCH_AGENT_TIMEOUT:-120}
MEM_SIZES=${BENCH_MEMORY_REPLIES:-500 1000 2000 5000}
MEM_SESSIONS=${BENCH_MEMORY_SESSIONS:-100}
MEM_PER_SESSION=${BENCH_MEMORY_WATCHERS_PER_SESSION:-100}
MEM_WATCHERS=$((MEM_SESSIONS * MEM_PER_SESSION))
MEM_STATUS_SAMPLES=${BENCH_MEMORY_STATUS_SAMPLES:-1000}
MEM_TIMEOUT=${BENCH_MEMORY_TIMEOUT:-300}
MCP_PER_REPLY=${BENCH_MCP_CALLS_PER_REPLY:-50}
MCP_REPLIES=${BENCH_MCP_REPLIES:-20}
MCP_SESSIONS=${BENCH_MCP_SESSIONS:-1 10 100}
MCP_LOAD_CALLS=${BENCH_MCP_LOAD_CALLS:-20}
MCP_TIMEOUT=${BENCH_MCP_TIMEOUT:-600}
MCP_START_BATCH=${BENCH_MCP_START_BATCH:-10}
MEM_BATCH_TIMEOUT=60 # a reply not finished this long after its batch began counts as failed
MEM_MAX_REPLIES=0 # the largest batch
for n in $MEM_SIZES; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_MEMORY_REPLIES: '$n' is not a positive whole number" >&2 && exit 2; }
    [ "$n" -le "$MEM_MAX_REPLIES" ] || MEM_MAX_REPLIES=$n
done
MEM_PEAK_CONNS=$((MEM_MAX_REPLIES > MEM_WATCHERS ? MEM_MAX_REPLIES : MEM_WATCHERS))
# goosed's bounds for the memory benchmarks, set explicitly and high enough for their load: every
# connection of a run comes from the one client (whose addresses count as one client or as few).
MEM_LIMITS=("GOOSE_MAX_CONNECTIONS=$((MEM_PEAK_CONNS + 1024))"
    "GOOSE_MAX_CONNECTIONS_PER_CLIENT=$((MEM_PEAK_CONNS + 1024))"
    "GOOSE_MAX_WATCHERS_PER_SESSION=$((MEM_PER_SESSION + 256))"
    "GOOSE_MAX_REPLIES=$((MEM_MAX_REPLIES + 256))")
# Ephemeral ports: connect() shares one between different destinations, but keep the connections
# to goosed within half the range (TIME_WAIT from earlier runs takes some); past that, spread them
# over more loopback addresses.
read -r PORT_LO PORT_HI </proc/sys/net/ipv4/ip_local_port_range
EPHEMERAL=$((PORT_HI - PORT_LO + 1))
MEM_ADDRS=${BENCH_MEMORY_LOCAL_ADDRS:-$(((2 * MEM_PEAK_CONNS + EPHEMERAL - 1) / EPHEMERAL))}

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
if want http; then
    command -v wrk >/dev/null || missing+=(wrk)
    [ -n "$NGINX" ] || missing+=(nginx-light)
    command -v cc >/dev/null || missing+=(gcc)
fi
want http || ! want metrics || command -v wrk >/dev/null || missing+=(wrk) # metrics: wrk too
want http || ! want store || command -v wrk >/dev/null || missing+=(wrk)     # store: wrk too
! want store || command -v sqlite3 >/dev/null || missing+=(sqlite3)          # store: fills goosed.db
want http || ! want history || command -v wrk >/dev/null || missing+=(wrk)   # history: wrk too
! want history || command -v cc >/dev/null || missing+=(gcc)                  # history: history_read.c
command -v node >/dev/null || missing+=(nodejs) # bench/agent.mjs and the fake provider
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}"
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
if want http; then
    [ -x "$NGINX" ] || die "nginx not found after install"
    command -v wrk >/dev/null || die "wrk not found after install"
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
    die "bench/agent.mjs needs Node 18 or later (found $(node --version))"

# 500 concurrent replies hold about 2 sockets per reply in each process (client, goosed, the fake);
# the memory benchmarks' largest batch as many, and each watcher one in the client and one in goosed.
# The limit set here is inherited by goosed, the fake and the client.
NEED_FDS=$((2 * AGENT_REPLIES + 256))
NEED_FOR=("$AGENT_REPLIES concurrent replies")
# (A reply holds 2 in goosed, its client's and its provider's; a watcher 1 in goosed and 1 in the client.)
MEM_NEED_FDS=$(((2 * MEM_MAX_REPLIES > MEM_WATCHERS ? 2 * MEM_MAX_REPLIES : MEM_WATCHERS) + 256))
if want memory && [ "$MEM_NEED_FDS" -gt "$NEED_FDS" ]; then
    NEED_FDS=$MEM_NEED_FDS
    NEED_FOR=("$MEM_MAX_REPLIES concurrent replies and $MEM_WATCHERS watchers")
fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED_FDS" ]; then
    # the soft limit up to the hard one (or to what is needed, when the hard one is unlimited)
    hard=$(ulimit -Hn)
    if [ "$hard" = unlimited ]; then ulimit -n "$NEED_FDS"; else ulimit -n "$hard"; fi
    if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED_FDS" ]; then
        die "open-file limit $(ulimit -n) (hard limit $hard) is below the $NEED_FDS that ${NEED_FOR[*]} need (raise ulimit -Hn)"
    fi
fi
OPEN_FILES=$(ulimit -n)

# --- scratch space and cleanup --------------------------------------------------------------------
# On disk, not tmpfs, so that fsync costs what it costs (the store's durability is part of the test).
WORK=$(mktemp -d /var/tmp/goosed-bench.XXXXXX)
WORK_FS=$(df -PT "$WORK" | awk 'NR == 2 {print $2}')
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR"
GOOSED_PID=
NGINX_PREFIX=
FAKE_PID=

# stop_pid PID SECONDS: SIGTERM, up to SECONDS for it to exit, then SIGKILL. Non-zero when it had
# to be killed. (Polls: nginx's master is not our child, so `wait` cannot time it.)
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    return 1
}

stop_goosed() { # SIGTERM, then up to 12 s for the graceful shutdown, then SIGKILL; sets GOOSED_RC
    GOOSED_RC=
    [ -n "$GOOSED_PID" ] || return 0
    stop_pid "$GOOSED_PID" 12 || echo "bench: goosed did not stop within 12 s of SIGTERM; killed it" >&2
    GOOSED_RC=0
    wait "$GOOSED_PID" 2>/dev/null || GOOSED_RC=$?
    GOOSED_PID=
}

stop_nginx() {
    [ -n "$NGINX_PREFIX" ] || return 0
    local pid
    pid=$(cat "$NGINX_PREFIX/nginx.pid" 2>/dev/null || true)
    [ -z "$pid" ] || stop_pid "$pid" 5 || true
    cp "$NGINX_PREFIX/error.log" "$OUTDIR/nginx-$(basename "$NGINX_PREFIX")-error.log" 2>/dev/null || true
    NGINX_PREFIX=
}

stop_fake() { # the fake provider: SIGTERM, up to 5 s, then SIGKILL
    [ -n "$FAKE_PID" ] || return 0
    stop_pid "$FAKE_PID" 5 || true
    wait "$FAKE_PID" 2>/dev/null || true
    FAKE_PID=
}

cleanup() {
    local rc=$?
    set +e
    stop_nginx
    stop_goosed
    stop_fake
    [ -z "${OTLP_PID-}" ] || stop_pid "$OTLP_PID" 5 || true
    if [ -f "$WORK/goosed.log" ]; then
        { grep -v ' access: ' "$WORK/goosed.log"; echo "... last access lines:"; grep ' access: ' "$WORK/goosed.log" | tail -n 20; } >"$OUTDIR/goosed.log"
    fi
    for f in "$WORK"/goosed-*.log; do [ -f "$f" ] && cp "$f" "$OUTDIR/"; done
    [ -f "$WORK/fake.err" ] && cp "$WORK/fake.err" "$OUTDIR/fake-provider.err"
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

# wait_listening FILE PID WHAT: the port from FILE's `listening on http://127.0.0.1:PORT` line (10 s at
# most, while PID lives), into LISTEN_PORT.
wait_listening() {
    local i
    LISTEN_PORT=
    for ((i = 0; i < 200; i++)); do
        # (the log may not exist yet: the shell that starts the server makes it)
        LISTEN_PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$1" 2>/dev/null | head -n1 || true)
        [ -n "$LISTEN_PORT" ] && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    cat "$1" >&2
    die "$3 did not print 'listening on http://127.0.0.1:PORT'"
}

# start_goosed LOG ENV...: goosed with only HOME, PATH and ENV in its environment, stderr to LOG; sets
# GOOSED_PID, GPORT and GOOSED_LOG.
start_goosed() {
    GOOSED_LOG=$1
    shift
    local cmd=(env -i "HOME=$GHOME" "PATH=$PATH" "$@" "$GOOSED_BIN" --host 127.0.0.1 --port 0)
    record "${cmd[*]/#PATH=*/PATH=\$PATH} 2>$(basename "$GOOSED_LOG")   # HOME: a new empty directory, so the SQLite file is new"
    "${cmd[@]}" 2>"$GOOSED_LOG" </dev/null >/dev/null &
    GOOSED_PID=$!
    wait_listening "$GOOSED_LOG" "$GOOSED_PID" goosed
    GPORT=$LISTEN_PORT
}

goosed_alive() {
    kill -0 "$GOOSED_PID" 2>/dev/null && return 0
    echo "bench: goosed died; last lines of its log:" >&2
    tail -n 20 "$GOOSED_LOG" >&2
    GOOSED_PID=
    exit 1
}

# --- the store as it grows (the store part) ----------------------------------------------------------
if want store; then source bench/store_scale.sh; fi

# --- a long history against SQLite alone (the history part) -------------------------------------------
if want history; then source bench/history.sh; fi

# --- nginx beside goosed under wrk, and the start-up time (the http part) ---------------------------
if want http; then
    STARTUP=$WORK/startup
    cc -std=c11 -O2 -Wall -Wextra -o "$STARTUP" bench/startup.c
    record "cc -std=c11 -O2 -Wall -Wextra -o startup bench/startup.c"
    GROUPCOMMIT=$WORK/groupcommit
    cc -std=c11 -O2 -Wall -Wextra -pthread -o "$GROUPCOMMIT" bench/groupcommit.c
    record "cc -std=c11 -O2 -Wall -Wextra -pthread -o groupcommit bench/groupcommit.c"

    # nginx (access log on) and goosed both stay up through the rounds; each round measures nginx, then
    # goosed GET /status, then goosed POST /api/sessions, so both see the same background load.
    start_nginx nginx on
    NGINX_URL=http://127.0.0.1:$NGINX_PORT/status

    GHOME=$WORK/home
    mkdir -m 700 "$GHOME"
    GLOG=$WORK/goosed.log # big (one line per request): bench/out/ keeps all but the access lines
    start_goosed "$GLOG"

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
        # the same file system's ideal group commit, right after: what the creates are held to
        gcmd=("$GROUPCOMMIT" -t "$CONNS" -s "$DURATION" "$GHOME")
        [ "$r" = 1 ] && record "groupcommit -t $CONNS -s $DURATION <goosed's data directory>"
        line=$("${gcmd[@]}") || die "groupcommit failed"
        for kv in $line; do printf -v "gc_${r}_${kv%%=*}" '%s' "${kv#*=}"; done
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

    # --- start-up -----------------------------------------------------------------------------------
    scmd=(env TMPDIR="$WORK" "$STARTUP" -n "$STARTUP_RUNS" "$GOOSED_BIN")
    record "${scmd[*]}"
    echo "bench: ${scmd[*]}" >&2
    STARTUP_LINE=$("${scmd[@]}" 2>"$OUTDIR/startup.err") || {
        cat "$OUTDIR/startup.err" >&2
        die "start-up timer failed"
    }
    for kv in $STARTUP_LINE; do printf -v "startup_${kv%%=*}" '%s' "${kv#*=}"; done
fi

# --- agent benchmarks (issue 3) ---------------------------------------------------------------------
# goosed between a client and an LLM provider played by the fake (a separate Node process): a new
# goosed on a new HOME, its OpenAI provider pointed at the fake; bench/agent.mjs scripts the fake,
# sends the load, checks every reply and prints one AGENT_RESULT line of JSON. The memory benchmarks
# use the same fake.
FAKE_ERR_LINES=0
if want agent || want memory || want mcp || want metrics || want tracing; then
    fcmd=(node tests/fakes/fake-provider.mjs --no-log --host 127.0.0.1 --port 0)
    record "${fcmd[*]} >fake.out   # prints 'listening on http://127.0.0.1:PORT' when ready"
    "${fcmd[@]}" >"$WORK/fake.out" 2>"$WORK/fake.err" </dev/null &
    FAKE_PID=$!
    wait_listening "$WORK/fake.out" "$FAKE_PID" "the fake provider"
    FAKE_URL=http://127.0.0.1:$LISTEN_PORT
fi

# start_agent_goosed NAME [ENV...]: a new goosed on a new HOME, its OpenAI provider the fake, ENV in
# its environment too, stderr to $WORK/goosed-NAME.log.
start_agent_goosed() {
    GHOME=$WORK/$1-home
    mkdir -m 700 "$GHOME"
    local name=$1
    shift
    start_goosed "$WORK/goosed-$name.log" "XDG_DATA_HOME=$GHOME/.local/share" GOOSE_PROVIDER=openai \
        GOOSE_MODEL=gpt-4o OPENAI_API_KEY=sk-bench "OPENAI_HOST=$FAKE_URL" "$@"
}

# stop_agent_goosed NAME: SIGTERM; sets NAME_exit (its exit status), NAME_shutdown (yes when it logged
# `shutdown complete`) and NAME_bad (its WARN/ERROR lines).
stop_agent_goosed() {
    local log=$GOOSED_LOG
    stop_goosed
    printf -v "$1_exit" '%s' "$GOOSED_RC"
    printf -v "$1_shutdown" '%s' "$(grep -q 'shutdown complete' "$log" && echo yes || echo no)"
    printf -v "$1_bad" '%s' "$(grep -Ec ' (ERROR|WARN) ' "$log" || true)"
}

# agent_run NAME MODE [ARGS]: one bench/agent.mjs run; the fields of its AGENT_RESULT line become
# variables NAME_field (NAME_rc: its exit status; 1 means a reply failed or was incomplete). Its
# stdout goes to bench/out/agent-NAME.txt, its progress and failures to bench/out/agent-NAME.err.
agent_run() {
    local name=$1 mode=$2 out=$OUTDIR/agent-$1.txt err=$OUTDIR/agent-$1.err rc=0 line k v
    shift 2
    local cmd=(node bench/agent.mjs "$mode" "$@" --goosed "http://127.0.0.1:$GPORT" --fake "$FAKE_URL"
        --goosed-pid "$GOOSED_PID" --fake-pid "$FAKE_PID" --timeout-s "${RUN_TIMEOUT:-$AGENT_TIMEOUT}")
    local shown="${cmd[*]}"
    shown=${shown/--goosed-pid $GOOSED_PID/--goosed-pid <goosed pid>}
    record "${shown/--fake-pid $FAKE_PID/--fake-pid <fake pid>}"
    echo "bench: ${cmd[*]}" >&2
    "${cmd[@]}" >"$out" 2>"$err" || rc=$?
    line=$(grep '^AGENT_RESULT ' "$out") || {
        cat "$err" >&2
        die "bench/agent.mjs $mode exited with status $rc and printed no result line (see $err)"
    }
    [ "$rc" = 0 ] || sed 's/^/    /' "$err" >&2
    # shellcheck disable=SC2016 # the backquotes are JavaScript's
    while IFS='=' read -r k v; do
        printf -v "${name}_$k" '%s' "$v"
    done < <(node -e '
        for (const [k, v] of Object.entries(JSON.parse(process.argv[1])))
            console.log(`${k}=${String(v ?? "").replace(/[\n`|]/g, " ")}`);' "${line#AGENT_RESULT }")
    printf -v "${name}_rc" '%s' "$rc"
}

# First-token latency and relay throughput on one goosed (quiet, few sessions); then the concurrent
# replies on a new goosed, so that its VmHWM covers those rounds and nothing else.
if want agent; then
    start_agent_goosed latency
    agent_run ftl first-token --samples "$AGENT_SAMPLES" --warmup "$AGENT_WARMUP"
    goosed_alive
    agent_run relay throughput --tokens "$RELAY_TOKENS" --runs "$RELAY_RUNS"
    goosed_alive
    stop_agent_goosed latency_goosed
    start_agent_goosed replies
    AGENT_IDLE_RSS=$(rss_kb "$GOOSED_PID")
    for ((r = 1; r <= AGENT_ROUNDS; r++)); do
        agent_run "replies_$r" replies --replies "$AGENT_REPLIES" --tokens "$AGENT_TOKENS" \
            --interval-ms "$AGENT_INTERVAL_MS" --warmup "$AGENT_REPLIES_WARMUP"
        goosed_alive
    done
    AGENT_END_RSS=$(rss_kb "$GOOSED_PID")
    stop_agent_goosed replies_goosed
fi

# --- memory per concurrent reply and per idle watcher -------------------------------------------------
# Each batch size on a goosed of its own (a new HOME, the fake as its provider), so that its base and
# peak belong to that batch alone; then the watchers on another new goosed. Their bounds are set
# explicitly (MEM_LIMITS); the open-file limit was raised above for goosed, the fake and the client.
MEM_RUNS=()
MEM_START=$SECONDS
if want memory; then
    RUN_TIMEOUT=$MEM_TIMEOUT
    for n in $MEM_SIZES; do
        start_agent_goosed "memory-$n" "${MEM_LIMITS[@]}"
        agent_run "mem_$n" memory --replies "$n" --tokens "$AGENT_TOKENS" --interval-ms "$AGENT_INTERVAL_MS" \
            --warmup "$n" --local-addresses "$MEM_ADDRS" --batch-timeout-s "$MEM_BATCH_TIMEOUT"
        goosed_alive
        stop_agent_goosed "mem_${n}_goosed"
        MEM_RUNS+=("mem_$n")
    done
    start_agent_goosed watchers "${MEM_LIMITS[@]}"
    agent_run watch watchers --sessions "$MEM_SESSIONS" --per-session "$MEM_PER_SESSION" \
        --samples "$MEM_STATUS_SAMPLES" --warmup 50 --local-addresses "$MEM_ADDRS"
    goosed_alive
    stop_agent_goosed watch_goosed
    MEM_RUNS+=(watch)
    unset RUN_TIMEOUT
fi
MEM_SECONDS=$((SECONDS - MEM_START))

# --- MCP extensions (issue 8) -------------------------------------------------------------------------
# server-everything over stdio, called directly by bench/mcp.mjs and as an extension of goosed
# (config.yaml's `extensions:` map), with the fake as goosed's provider and GOOSE_MAX_TURNS=1: every
# reply is one provider request whose K echo calls goosed runs one after the other. Each goosed has a
# HOME of its own; each session gets its own server process.
MCP_RUNS=()
MCP_COMMANDS=()
MCP_START=$SECONDS
# mcp_run NAME MODE [ARGS]: one bench/mcp.mjs run; its MCP_RESULT fields become variables NAME_field
# (NAME_rc: its exit status). Its stdout goes to bench/out/mcp-NAME.txt, its stderr to .err.
mcp_run() {
    local name=$1 mode=$2 out=$OUTDIR/mcp-$1.txt err=$OUTDIR/mcp-$1.err rc=0 line k v
    shift 2
    local cmd=(node bench/mcp.mjs "$mode" "$@" --timeout-s "$MCP_TIMEOUT")
    [ "$mode" = direct ] || cmd+=(--goosed "http://127.0.0.1:$GPORT" --fake "$FAKE_URL" --goosed-pid "$GOOSED_PID")
    local shown="${cmd[*]}"
    shown=${shown/--goosed-pid $GOOSED_PID/--goosed-pid <goosed pid>}
    record "$shown"
    MCP_COMMANDS+=("$shown")
    echo "bench: ${cmd[*]}" >&2
    "${cmd[@]}" >"$out" 2>"$err" || rc=$?
    line=$(grep '^MCP_RESULT ' "$out") || {
        cat "$err" >&2
        die "bench/mcp.mjs $mode exited with status $rc and printed no result line (see $err)"
    }
    [ "$rc" = 0 ] || sed 's/^/    /' "$err" >&2
    # shellcheck disable=SC2016 # the backquotes are JavaScript's
    while IFS='=' read -r k v; do
        printf -v "${name}_$k" '%s' "$v"
    done < <(node -e '
        for (const [k, v] of Object.entries(JSON.parse(process.argv[1])))
            console.log(`${k}=${String(v ?? "").replace(/[\n`|]/g, " ")}`);' "${line#MCP_RESULT }")
    printf -v "${name}_rc" '%s' "$rc"
    MCP_RUNS+=("$name")
}

# start_mcp_goosed NAME: a new goosed whose config.yaml enables server-everything over stdio.
start_mcp_goosed() {
    GHOME=$WORK/$1-home
    mkdir -m 700 "$GHOME"
    mkdir -p "$GHOME/.config/goose"
    cat >"$GHOME/.config/goose/config.yaml" <<YAML
extensions:
  everything:
    enabled: true
    name: everything
    type: stdio
    cmd: $(command -v node)
    args:
    - $EVERYTHING
    - stdio
    timeout: 300
YAML
    start_goosed "$WORK/goosed-$1.log" "XDG_DATA_HOME=$GHOME/.local/share" GOOSE_PROVIDER=openai \
        GOOSE_MODEL=gpt-4o OPENAI_API_KEY=sk-bench "OPENAI_HOST=$FAKE_URL" GOOSE_MAX_TURNS=1 \
        GOOSE_CONTEXT_LIMIT=100000000
    MCP_COMMANDS+=("${COMMANDS[-1]}   # config.yaml: extensions: everything: {type: stdio, cmd: node, args: [$REL_EVERYTHING, stdio], timeout: 300}")
}

# stop_mcp_goosed NAME: as stop_agent_goosed, and NAME_left: server processes still alive 2 s later.
stop_mcp_goosed() {
    local pid=$GOOSED_PID kids
    kids=$(pgrep -P "$pid" | tr '\n' ' ' || true)
    stop_agent_goosed "$1"
    sleep 2
    local left=0 k
    for k in $kids; do kill -0 "$k" 2>/dev/null && left=$((left + 1)); done
    printf -v "$1_left" '%s' "$left"
}

if want mcp; then
    EVERYTHING=$ROOT/node_modules/@modelcontextprotocol/server-everything/dist/index.js
    REL_EVERYTHING=${EVERYTHING#"$ROOT"/}
    [ -f "$EVERYTHING" ] || die "$EVERYTHING is missing (npm ci installs the pinned packages)"
    MCP_MEASURED=$((MCP_REPLIES * (MCP_PER_REPLY - 1)))
    mcp_run mcp_direct direct --server "$REL_EVERYTHING" --calls "$MCP_MEASURED" --warmup "$MCP_PER_REPLY"
    start_mcp_goosed mcp-latency
    mcp_run mcp_lat latency --calls-per-reply "$MCP_PER_REPLY" --replies "$MCP_REPLIES" --warmup 1
    goosed_alive
    stop_mcp_goosed mcp_lat_goosed
    MCP_GOOSEDS=(mcp_lat_goosed)
    for n in $MCP_SESSIONS; do
        start_mcp_goosed "mcp-$n"
        batch=()
        [ "$n" -le "$MCP_START_BATCH" ] || batch=(--start-batch "$MCP_START_BATCH")
        mcp_run "mcp_s$n" sessions --sessions "$n" --calls-per-reply "$MCP_LOAD_CALLS" "${batch[@]}"
        goosed_alive
        stop_mcp_goosed "mcp_s${n}_goosed"
        MCP_GOOSEDS+=("mcp_s${n}_goosed")
    done
fi
MCP_SECONDS=$((SECONDS - MCP_START))
METRICS_RUNS=()
# CPU per request of a goosed under wrk, for the metrics and tracing parts: cpu_ticks PID is its
# utime + stime in clock ticks; instr_start PID / instr_stop count the instructions it executes
# meanwhile with `perf stat -e instructions -p PID` (instr_stop prints the count, or nothing where
# perf cannot count instructions, as in many virtual machines).
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
INSTR_OK=no
perf stat -e instructions -x, -- true 2>&1 | grep -q '^[0-9][0-9]*,' && INSTR_OK=yes
INSTR_PID=
instr_start() {
    [ "$INSTR_OK" = yes ] || return 0
    perf stat -e instructions -x, -o "$WORK/instr.out" -p "$1" 2>/dev/null &
    INSTR_PID=$!
}
instr_stop() {
    [ -n "$INSTR_PID" ] || return 0
    kill -INT "$INSTR_PID" 2>/dev/null || true
    wait "$INSTR_PID" 2>/dev/null || true
    INSTR_PID=
    awk -F, '$3 ~ /^instructions/ && $1 ~ /^[0-9]+$/ { print $1 }' "$WORK/instr.out"
}
# per_request COUNT NAME: COUNT ÷ NAME_requests, with one decimal ("" when COUNT is "").
per_request() {
    local n=${2}_requests
    [ -n "$1" ] && awk "BEGIN { printf \"%.1f\", $1 / ${!n} }"
}
if want metrics; then source bench/metrics_overhead.sh; fi # what metrics cost (uses the fake)

# --- tracing overhead (issue 10) ----------------------------------------------------------------------
# The same load on a goosed with traces off and on a goosed exporting every span (the default sampler,
# parentbased_always_on: all of them) over OTLP/HTTP to a receiver that acknowledges each export at
# once without decoding it (a collector on another machine would not share these CPUs; this one does).
# Each measurement runs on a new goosed on a new HOME; off and on alternate within each round (which goes first: abba).
TRACE_START=$SECONDS
if want tracing; then
    rcmd=(node tests/api/lib/otlp_receiver.mjs --discard)
    record "${rcmd[*]} >otlp.out   # prints 'listening on http://127.0.0.1:PORT' when ready"
    "${rcmd[@]}" >"$WORK/otlp.out" 2>"$WORK/otlp.err" </dev/null &
    OTLP_PID=$!
    wait_listening "$WORK/otlp.out" "$OTLP_PID" "the OTLP receiver"
    OTLP_URL=http://127.0.0.1:$LISTEN_PORT
    otlp_count() { node -e 'fetch(process.argv[1]).then((r) => r.json()).then((j) => console.log(`${j.exports} ${j.spans_bytes}`))' "$OTLP_URL/_count"; }
    for ((r = 1; r <= ROUNDS; r++)); do
        for mode in $(abba "$r" off on); do # which goes first alternates by round
            GHOME=$WORK/trace-$mode-$r-home
            mkdir -m 700 "$GHOME"
            tenv=()
            [ "$mode" = on ] && tenv=("OTEL_EXPORTER_OTLP_ENDPOINT=$OTLP_URL")
            start_goosed "$WORK/goosed-trace-$mode-$r.log" "${tenv[@]}"
            expect 200 GET "$GPORT" /status
            d=$DURATION
            DURATION=$WARMUP
            wrk_run "trace_status_${mode}_${r}_warmup" "http://127.0.0.1:$GPORT/status" bench/status.lua
            DURATION=$d
            g0=$(cpu_ticks "$GOOSED_PID") o0=$(cpu_ticks "$OTLP_PID")
            instr_start "$GOOSED_PID"
            wrk_run "trace_status_${mode}_$r" "http://127.0.0.1:$GPORT/status" bench/status.lua
            instr=$(instr_stop)
            g1=$(cpu_ticks "$GOOSED_PID") o1=$(cpu_ticks "$OTLP_PID")
            printf -v "trace_status_${mode}_${r}_instr" '%s' "$(per_request "$instr" "trace_status_${mode}_$r")"
            # CPU per request, in microseconds: goosed's, and the receiver's
            n=trace_status_${mode}_${r}_requests
            printf -v "trace_status_${mode}_${r}_gcpu_us" '%s' "$(awk "BEGIN { printf \"%.1f\", ($g1 - $g0) / $TICKS * 1e6 / ${!n} }")"
            printf -v "trace_status_${mode}_${r}_ocpu_us" '%s' "$(awk "BEGIN { printf \"%.1f\", ($o1 - $o0) / $TICKS * 1e6 / ${!n} }")"
            goosed_alive
            stop_goosed
            printf -v "trace_status_${mode}_${r}_exit" '%s' "$GOOSED_RC"
        done
    done
    read -r TRACE_EXPORTS_STATUS TRACE_BYTES_STATUS < <(otlp_count)
    best trace_status_off # the best round of each: trace_status_off_rps, ...
    best trace_status_on
    for ((r = 1; r <= AGENT_ROUNDS; r++)); do
        for mode in $(abba "$r" off on); do # which goes first alternates by round
            tenv=()
            [ "$mode" = on ] && tenv=("OTEL_EXPORTER_OTLP_ENDPOINT=$OTLP_URL")
            start_agent_goosed "trace-replies-$mode-$r" "${tenv[@]}"
            agent_run "trr_${mode}_$r" replies --replies "$AGENT_REPLIES" --tokens "$AGENT_TOKENS" \
                --interval-ms "$AGENT_INTERVAL_MS" --warmup "$AGENT_REPLIES_WARMUP"
            goosed_alive
            stop_agent_goosed "trr_${mode}_${r}_goosed"
        done
    done
    read -r TRACE_EXPORTS TRACE_BYTES < <(otlp_count)
    stop_pid "$OTLP_PID" 5 || true
    wait "$OTLP_PID" 2>/dev/null || true
    OTLP_PID=
fi
TRACE_SECONDS=$((SECONDS - TRACE_START))
if [ -n "$FAKE_PID" ]; then
    stop_fake
    FAKE_ERR_LINES=$(grep -c . "$WORK/fake.err" || true)
fi

# --- report -----------------------------------------------------------------------------------------
calc() { awk "BEGIN { $1 }"; }
# mmm VALUES...: "min median max" of the values (the median of an even count: the mean of the two
# middle ones).
mmm() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%s %s %s\n", v[1], m, v[NR] }'
}
# round_best PREFIX FIELD max|min ROUNDS: the most (or the least) of PREFIX_<round>_FIELD over the
# rounds that have it; nothing when none has.
round_best() {
    local best= v r
    for ((r = 1; r <= $4; r++)); do
        v=${1}_${r}_$2
        v=${!v:-}
        [ -n "$v" ] || continue
        if [ -z "$best" ] || calc "exit !($v $([ "$3" = max ] && echo '>' || echo '<') $best)"; then best=$v; fi
    done
    printf '%s' "$best"
}
# paired_cost NAME PREFIX FIELD loss|gain ROUNDS: what a feature costs in percent, round by round
# (PREFIX_on_R_FIELD against PREFIX_off_R_FIELD, run beside it within a minute), into NAME_min,
# NAME_med, NAME_max (the median is what a target judges): "loss" for a rate (the share of off's
# lost), "gain" for a time or CPU (the share added to off's). Pairing the rounds keeps the machine's
# drift between rounds (±15% in GET /status requests/s for the same binary here) out of the
# comparison; the best round of each mode compares two extremes of that noise.
paired_cost() {
    local r on off vals=()
    for ((r = 1; r <= $5; r++)); do
        on=${2}_on_${r}_$3 off=${2}_off_${r}_$3
        on=${!on:-} off=${!off:-}
        [ -n "$on" ] && [ -n "$off" ] && calc "exit !($off > 0)" || continue
        if [ "$4" = loss ]; then
            vals+=("$(calc "printf \"%.1f\", 100 * (1 - $on / $off)")")
        else
            vals+=("$(calc "printf \"%.1f\", 100 * ($on / $off - 1)")")
        fi
    done
    [ ${#vals[@]} -gt 0 ] || vals=(100)
    read -r "${1}_min" "${1}_med" "${1}_max" < <(mmm "${vals[@]}")
}

fmt_int() { printf '%.0f' "$1" | sed ':a; s/\B[0-9]\{3\}\>/,&/; ta'; }
verdict() { calc "print (($1) ? \"PASS\" : \"FAIL\")"; }
mb() { calc "printf \"%.1f MB\", $1 * 1024 / 1e6"; }

errs() { # errs NAME: "0" or a description of non-2xx responses and socket errors
    local non2xx=${1}_non2xx connect=${1}_connect read=${1}_read write=${1}_write timeout=${1}_timeout
    if [ "${!non2xx}${!connect}${!read}${!write}${!timeout}" = 00000 ]; then
        echo 0
    else
        echo "non-2xx ${!non2xx}; socket errors: connect ${!connect}, read ${!read}, write ${!write}, timeout ${!timeout}"
    fi
}

# av NAME: the value of variable NAME ("n/a" when the run did not report it);
# fmt FORMAT NAME: the same, printf-formatted.
av() { printf '%s' "${!1:-n/a}"; }
fmt() {
    local v=${!2:-}
    if [ -z "$v" ]; then printf 'n/a'; else calc "printf \"$1\", $v"; fi
}
num() { printf '%s' "${!1:-0}"; } # for comparisons: a missing figure counts as 0
PROVIDER_MS=$((AGENT_TOKENS * AGENT_INTERVAL_MS))
LIMIT_MS=$(calc "printf \"%.0f\", 1.2 * $PROVIDER_MS")
MISSED=()
NTARGETS=0

# The http part.
if want http; then
    best nginx
    best goosed_status
    best goosed_post

    # the ideal group commit of the round whose creates were best (the disk's pace swings)
    v=gc_${goosed_post_round}_records_s
    gc_records_s=${!v}
    GC_RATIO=$(calc "printf \"%.2f\", $goosed_post_rps / $gc_records_s")
    GC_OK=$(verdict "$goosed_post_rps >= 0.8 * $gc_records_s || $goosed_post_rps >= 0.4 * $nginx_rps")
    STATUS_RATIO=$(calc "printf \"%.2f\", $goosed_status_rps / $nginx_rps")
    POST_RATIO=$(calc "printf \"%.2f\", $goosed_post_rps / $nginx_rps")
    NOLOG_RATIO=$(calc "printf \"%.2f\", $goosed_status_rps / $nginx_nolog_rps")
    STATUS_OK=$(verdict "$goosed_status_rps >= 0.5 * $nginx_rps")
    STATUS11_OK=$(verdict "$goosed_status_rps >= 0.9 * $nginx_rps") # issue 11, target 3
    POST_OK=$(verdict "$goosed_post_rps >= 0.15 * $nginx_rps")
    RSS_OK=$(verdict "$IDLE_RSS * 1024 < 10000000")
    STARTUP_OK=$(verdict "$startup_median_ms < 50")

    TABLE="| benchmark | goosed | nginx | ratio | target | result |
|---|---|---|---|---|---|
| \`GET /status\`, requests/s | $(fmt_int "$goosed_status_rps") | $(fmt_int "$nginx_rps") | $STATUS_RATIO | ≥ 0.50 × nginx | $STATUS_OK |
| \`POST /api/sessions\` (durable), requests/s | $(fmt_int "$goosed_post_rps") | $(fmt_int "$nginx_rps") (static \`GET\`) | $POST_RATIO | ≥ 0.15 × nginx | $POST_OK |
| the same against the file system's ideal group commit (\`bench/groupcommit.c\`, same round) | $(fmt_int "$goosed_post_rps") | $(fmt_int "$gc_records_s") records/s | $GC_RATIO | ≥ 0.8 × ideal, or ≥ 0.4 × nginx | $GC_OK |
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
    [ "$STATUS_OK" = PASS ] || MISSED+=("GET /status")
    [ "$POST_OK" = PASS ] || MISSED+=("POST /api/sessions")
    [ "$RSS_OK" = PASS ] || MISSED+=("idle RSS")
    [ "$STARTUP_OK" = PASS ] || MISSED+=("start-up")
    [ "$GC_OK" = PASS ] || MISSED+=("durable creates against the ideal group commit")
    [ "$STATUS11_OK" = PASS ] || MISSED+=("GET /status at 0.9 × nginx")
    NTARGETS=$((NTARGETS + 6))
fi

# The agent benchmarks.
if want agent; then
    WORST=1 # the round whose slowest reply through goosed was slowest
    OVER_TOTAL=0
    AGENT_HWM=0
    REPLIES_RC=0
    for ((r = 1; r <= AGENT_ROUNDS; r++)); do
        if calc "exit !($(num "replies_${r}_g_ratio_max") > $(num "replies_${WORST}_g_ratio_max"))"; then WORST=$r; fi
        v=replies_${r}_g_over_limit e=replies_${r}_g_errors h=replies_${r}_hwm_kb c=replies_${r}_rc
        OVER_TOTAL=$((OVER_TOTAL + ${!v:-0} + ${!e:-0}))
        [ "${!h:-0}" -le "$AGENT_HWM" ] || AGENT_HWM=${!h}
        [ "${!c}" = 0 ] || REPLIES_RC=${!c}
    done
    W=replies_$WORST
    # Every reply of every round within 1.2 x the provider's time, and none failed.
    REPLIES_OK=$(verdict "$OVER_TOTAL == 0 && $REPLIES_RC == 0")
    AGENT_RSS_OK=$(verdict "$AGENT_HWM > 0 && $AGENT_HWM * 1024 < 128000000")
    FTL_OK=$(verdict "$ftl_rc == 0 && $(num ftl_added_p50_ms) < 1")
    RELAY_OK=$(verdict "$relay_rc == 0 && $relay_g_complete_runs == $RELAY_RUNS")
    # Issue 11, target 4: the relay at 0.9 x the fake alone. Each run asks the fake directly, then
    # goosed; the ratio of each run's pair, min / median / max over the runs (the median judged).
    RELAY_RATIOS=()
    for ((r = 1; r <= RELAY_RUNS; r++)); do
        RELAY_RATIOS+=("$(calc "printf \"%.3f\", $(num "relay_g${r}_tps") / $(num "relay_d${r}_tps")")")
    done
    read -r RELAY_R_MIN RELAY_R_MED RELAY_R_MAX < <(printf '%s\n' "${RELAY_RATIOS[@]}" | sort -g |
        awk '{v[NR] = $1} END {printf "%s %s %s\n", v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[NR]}')
    RELAY_RATIO_OK=FAIL
    [ "$RELAY_OK" != PASS ] || RELAY_RATIO_OK=$(verdict "$RELAY_R_MED >= 0.9")
    ALL_REPLIES=$((AGENT_ROUNDS * AGENT_REPLIES))
    BATCH_RATIO=$(calc "printf \"%.2f\", $(num "${W}_g_batch_wall_ms") / $PROVIDER_MS")
    BATCH_CMP=$(calc "print ($(num "${W}_g_batch_wall_ms") <= $LIMIT_MS) ? \"within\" : \"over\"")

    AGENT_TABLE="| benchmark | goosed | the fake alone | target | result |
|---|---|---|---|---|
| $AGENT_REPLIES concurrent replies ($AGENT_TOKENS tokens, $AGENT_INTERVAL_MS ms apart): each reply's time ÷ the provider's $(fmt_int "$PROVIDER_MS") ms, worst of $AGENT_ROUNDS rounds | max $(fmt %.2f "${W}_g_ratio_max") (p50 $(fmt %.2f "${W}_g_ratio_p50"), p99 $(fmt %.2f "${W}_g_ratio_p99")); $OVER_TOTAL of $(fmt_int "$ALL_REPLIES") replies over 1.2 or failed | max $(fmt %.2f "${W}_d_ratio_max") (p50 $(fmt %.2f "${W}_d_ratio_p50"), p99 $(fmt %.2f "${W}_d_ratio_p99")) | every reply ≤ 1.2 × | $REPLIES_OK |
| the same: batch wall time, first request sent to last \`message_complete\`, worst round | $(fmt_int "$(num "${W}_g_batch_wall_ms")") ms ($BATCH_RATIO × $(fmt_int "$PROVIDER_MS") ms, $BATCH_CMP $(fmt_int "$LIMIT_MS") ms) | $(fmt_int "$(num "${W}_d_batch_wall_ms")") ms | information (1.2 × = $(fmt_int "$LIMIT_MS") ms) | — |
| goosed peak RSS (VmHWM) during the concurrent replies (a goosed of their own, $AGENT_ROUNDS rounds) | $(mb "$AGENT_HWM") ($AGENT_HWM kB) | — | < 128 MB | $AGENT_RSS_OK |
| first-token latency added by goosed, p50 of $ftl_samples sequential samples | $(fmt %.3f ftl_added_p50_ms) ms ($(fmt %.3f ftl_g_first_ms_p50) − $(fmt %.3f ftl_d_first_ms_p50)) | $(fmt %.3f ftl_d_first_ms_p50) ms | < 1 ms | $FTL_OK |
| the same, p99 | $(fmt %.3f ftl_added_p99_ms) ms ($(fmt %.3f ftl_g_first_ms_p99) − $(fmt %.3f ftl_d_first_ms_p99)) | $(fmt %.3f ftl_d_first_ms_p99) ms | information | — |
| relay throughput: one reply of $(fmt_int "$RELAY_TOKENS") tokens at full speed, tokens/s, best of $RELAY_RUNS | $(fmt_int "$relay_g_tps_best") | $(fmt_int "$relay_d_tps_best") | every token arrives | $RELAY_OK ($relay_g_complete_runs of $RELAY_RUNS runs complete) |
| the same through goosed ÷ the fake alone, run by run (issue 11, target 4) | median $RELAY_R_MED × (min $RELAY_R_MIN, max $RELAY_R_MAX) | 1 × | median ≥ 0.9 × | $RELAY_RATIO_OK |"

    # The concurrent replies, every round, both ways.
    rrow() { # rrow ROUND PREFIX LABEL
        local p=replies_$1_$2 cpu
        cpu="$(av "${p}_goosed_cpu_s") / $(av "${p}_fake_cpu_s") / $(av "${p}_client_cpu_s") s in $(av "${p}_wall_s") s"
        [ "$2" = d ] && cpu="— / $(av "${p}_fake_cpu_s") / $(av "${p}_client_cpu_s") s in $(av "${p}_wall_s") s"
        echo "| round $1: $3 | $(av "${p}_errors") | $(fmt %.0f "${p}_dur_ms_p50") / $(fmt %.0f "${p}_dur_ms_p99") / $(fmt %.0f "${p}_dur_ms_max") ms | $(fmt %.2f "${p}_ratio_p50") / $(fmt %.2f "${p}_ratio_p99") / $(fmt %.2f "${p}_ratio_max") | $(av "${p}_over_limit") | $(fmt %.1f "${p}_first_ms_p50") / $(fmt %.1f "${p}_first_ms_p99") / $(fmt %.1f "${p}_first_ms_max") ms | $(fmt %.0f "${p}_stream_ms_p50") / $(fmt %.0f "${p}_stream_ms_max") ms | $(fmt %.1f "${p}_tail_ms_p50") / $(fmt %.1f "${p}_tail_ms_p99") ms | $(fmt_int "$(num "${p}_batch_wall_ms")") ms | $cpu |"
    }
    REPLY_DETAILS="| run | failed | reply time p50 / p99 / max | ÷ $(fmt_int "$PROVIDER_MS") ms p50 / p99 / max | over 1.2 × | request → first token p50 / p99 / max | first → last token p50 / max | last token → end p50 / p99 | batch wall time | CPU goosed / fake / client |
|---|---|---|---|---|---|---|---|---|---|"
    LATENESS=()
    for ((r = 1; r <= AGENT_ROUNDS; r++)); do
        REPLY_DETAILS+=$'\n'$(rrow "$r" d "the fake directly")
        REPLY_DETAILS+=$'\n'$(rrow "$r" g "through goosed")
        LATENESS+=("round $r: mean $(av "replies_${r}_d_fake_late_mean_ms") ms, max $(av "replies_${r}_d_fake_late_max_ms") ms when called directly; mean $(av "replies_${r}_g_fake_late_mean_ms") ms, max $(av "replies_${r}_g_fake_late_max_ms") ms behind goosed")
    done
    LATENESS_TEXT=$(printf '%s; ' "${LATENESS[@]}")
    HWM_TEXT=
    for ((r = 1; r <= AGENT_ROUNDS; r++)); do
        HWM_TEXT+="$(av "replies_${r}_hwm_kb") kB after round $r, "
    done

    FTL_DETAILS="| first token | p50 | p99 | min | mean | max | samples |
|---|---|---|---|---|---|---|
| the fake directly (\`POST $(av ftl_direct_path)\`, the body goosed sends it) | $(av ftl_d_first_ms_p50) ms | $(av ftl_d_first_ms_p99) ms | $(av ftl_d_first_ms_min) ms | $(av ftl_d_first_ms_mean) ms | $(av ftl_d_first_ms_max) ms | $(av ftl_d_samples) |
| through goosed (\`POST /api/sessions/{id}/messages/stream\`, a new session each) | $(av ftl_g_first_ms_p50) ms | $(av ftl_g_first_ms_p99) ms | $(av ftl_g_first_ms_min) ms | $(av ftl_g_first_ms_mean) ms | $(av ftl_g_first_ms_max) ms | $(av ftl_g_samples) |
| added by goosed (difference of the two) | $(av ftl_added_p50_ms) ms | $(av ftl_added_p99_ms) ms | | | | |"

    RELAY_DETAILS="| run | through goosed: tokens/s | tokens received | in text chunks | \`events_lost\` errors | reply stored complete | goosed CPU | the fake directly: tokens/s | tokens received |
|---|---|---|---|---|---|---|---|---|"
    RELAY_LOST_RUNS=0
    RELAY_STORED_RUNS=0
    for ((r = 1; r <= RELAY_RUNS; r++)); do
        v=relay_g${r}_lost_events s=relay_g${r}_stored_ok
        [ "${!v:-0}" = 0 ] || RELAY_LOST_RUNS=$((RELAY_LOST_RUNS + 1))
        [ "${!s:-}" != true ] || RELAY_STORED_RUNS=$((RELAY_STORED_RUNS + 1))
        RELAY_DETAILS+=$'\n'"| $r | $(fmt_int "$(num "relay_g${r}_tps")") | $(fmt_int "$(num "relay_g${r}_tokens")") of $(fmt_int "$RELAY_TOKENS") | $(fmt_int "$(num "relay_g${r}_chunks")") | $(av "relay_g${r}_lost_events") | $(av "relay_g${r}_stored_ok") | $(av "relay_g${r}_goosed_cpu_s") s | $(fmt_int "$(num "relay_d${r}_tps")") | $(fmt_int "$(num "relay_d${r}_tokens")") of $(fmt_int "$RELAY_TOKENS") |"
    done
    [ "$REPLIES_OK" = PASS ] || MISSED+=("$AGENT_REPLIES concurrent replies within 1.2 × the provider's time")
    [ "$AGENT_RSS_OK" = PASS ] || MISSED+=("peak RSS under $AGENT_REPLIES concurrent replies")
    [ "$FTL_OK" = PASS ] || MISSED+=("added first-token latency")
    [ "$RELAY_OK" = PASS ] || MISSED+=("relay throughput: every token arrives")
    [ "$RELAY_RATIO_OK" = PASS ] || MISSED+=("relay throughput at 0.9 × the fake alone")
    NTARGETS=$((NTARGETS + 5))
fi

# The memory and concurrency benchmarks (issue 11, target 5).
if want memory; then
    MEM_TABLE="| benchmark | goosed | the fake alone | target | result |
|---|---|---|---|---|"
    MEM_DETAILS="| replies at once | RSS before: base / with their connections | peak: VmHWM / VmRSS every 10 ms | after the first batch / 1 s after the second closed | per reply | per connection alone | failed | reply time ÷ $(fmt_int "$PROVIDER_MS") ms through goosed p50 / p99 / max | request → first token through goosed p50 / max | batch wall time | CPU goosed / fake / client | second batch: failed, ÷ $(fmt_int "$PROVIDER_MS") ms p50 / p99 / max, peak (VmHWM) | the fake alone ÷ $(fmt_int "$PROVIDER_MS") ms p50 / p99 / max |
|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    MEM_EXITS=()
    MEM_RATIO_ROWS= MEM_CPU_ROWS= MEM_KB_ROWS=
    for n in $MEM_SIZES; do
        p=mem_$n
        MEM_DETAILS+=$'\n'"| $(fmt_int "$n") | $(av "${p}_rss_base_kb") / $(av "${p}_rss_conns_kb") kB | $(av "${p}_hwm_peak_kb") / $(av "${p}_rss_sampled_max_kb") kB | $(av "${p}_rss_end_kb") / $(av "${p}_rss_closed_kb") kB | $(fmt %.1f "${p}_per_reply_kb") kB | $(fmt %.1f "${p}_per_conn_kb") kB | $(av "${p}_g_errors") | $(fmt %.2f "${p}_g_ratio_p50") / $(fmt %.2f "${p}_g_ratio_p99") / $(fmt %.2f "${p}_g_ratio_max") | $(fmt %.0f "${p}_g_first_ms_p50") / $(fmt %.0f "${p}_g_first_ms_max") ms | $(fmt_int "$(num "${p}_g_batch_wall_ms")") ms | $(av "${p}_g_goosed_cpu_s") / $(av "${p}_g_fake_cpu_s") / $(av "${p}_g_client_cpu_s") s in $(av "${p}_g_wall_s") s | $(av "${p}_w_errors"), $(fmt %.2f "${p}_w_ratio_p50") / $(fmt %.2f "${p}_w_ratio_p99") / $(fmt %.2f "${p}_w_ratio_max"), $(av "${p}_w_hwm_peak_kb") kB | $(fmt %.2f "${p}_d_ratio_p50") / $(fmt %.2f "${p}_d_ratio_p99") / $(fmt %.2f "${p}_d_ratio_max") |"
        MEM_EXITS+=("${p}_goosed")
        # issue 11, target 5: the second batch (goosed's provider connections open) against the same N
        # straight to the fake, reply by reply (paired by rank); goosed's CPU per token; memory per reply
        printf -v "MEM_RATIO_OK_$n" '%s' "$(verdict "$(num "${p}_rc") == 0 && $(num "${p}_wd_n") == $n && $(num "${p}_wd_over") == 0")"
        printf -v "MEM_CPU_OK_$n" '%s' "$(verdict "$(num "${p}_w_cpu_us_per_token") > 0 && $(num "${p}_w_cpu_us_per_token") <= 10")"
        printf -v "MEM_KB_OK_$n" '%s' "$(verdict "$(num "${p}_per_reply_kb") > 0 && $(num "${p}_per_reply_kb") <= 40")"
        ok=MEM_RATIO_OK_$n
        [ "${!ok}" = PASS ] || MISSED+=("$(fmt_int "$n") concurrent replies within 1.2 × the fake alone")
        NTARGETS=$((NTARGETS + 1))
        MEM_RATIO_ROWS+=$'\n'"| $(fmt_int "$n") replies at once ($AGENT_TOKENS tokens, $AGENT_INTERVAL_MS ms apart; a goosed of their own): each reply through goosed ÷ the reply of the same rank when the same $(fmt_int "$n") go straight to the fake | min $(fmt %.2f "${p}_wd_min"), median $(fmt %.2f "${p}_wd_p50"), max $(fmt %.2f "${p}_wd_max"); $(fmt_int "$(num "${p}_wd_over")") of $(fmt_int "$n") over 1.2 or failed (reply p50 $(fmt_int "$(num "${p}_w_dur_ms_p50")") ms, max $(fmt_int "$(num "${p}_w_dur_ms_max")") ms) | reply p50 $(fmt_int "$(num "${p}_d_dur_ms_p50")") ms, max $(fmt_int "$(num "${p}_d_dur_ms_max")") ms | every reply ≤ 1.2 × | ${!ok} |"
        ok=MEM_CPU_OK_$n
        MEM_CPU_ROWS+=$'\n'"| goosed's CPU per token relayed, $(fmt_int "$n") replies at once (utime + stime over the batch ÷ $(fmt_int "$((n * AGENT_TOKENS))") tokens) | $(fmt %.2f "${p}_w_cpu_us_per_token") µs, of it $(fmt %.2f "${p}_w_sys_us_per_token") µs in the kernel (stime) (first batch, opening its provider connections: $(fmt %.2f "${p}_g_cpu_us_per_token") µs) | the fake alone, same load: $(calc "printf \"%.2f\", $(num "${p}_d_fake_cpu_s") * 1000000 / $((n * AGENT_TOKENS))") µs per token | ≤ 10 µs | ${!ok} |"
        ok=MEM_KB_OK_$n
        MEM_KB_ROWS+=$'\n'"| memory per running reply, $(fmt_int "$n") at once: (peak − before) ÷ $(fmt_int "$n") | $(fmt %.1f "${p}_per_reply_kb") kB: RSS $(mb "$(num "${p}_rss_base_kb")") before, peak $(mb "$(num "${p}_peak_kb")") | — | ≤ 40 kB | ${!ok} |"
    done
    MEM_EXITS+=(watch_goosed)
    MEM_CPU_OK=PASS MEM_KB_OK=PASS
    for n in $MEM_SIZES; do
        ok=MEM_CPU_OK_$n
        [ "${!ok}" = PASS ] || MEM_CPU_OK=FAIL
        ok=MEM_KB_OK_$n
        [ "${!ok}" = PASS ] || MEM_KB_OK=FAIL
    done
    [ "$MEM_CPU_OK" = PASS ] || MISSED+=("goosed's CPU per token under concurrent replies")
    [ "$MEM_KB_OK" = PASS ] || MISSED+=("memory per running reply")
    WATCH_KB_OK=$(verdict "$(num watch_rc) == 0 && $(num watch_per_watcher_kb) <= 10")
    WATCH_HALF_OK=$(verdict "$(num watch_rc) == 0 && $(num watch_half_connected) == $(num watch_half) && $(num watch_per_watcher_kb_half) <= 10")
    [ "$WATCH_HALF_OK" = PASS ] || MISSED+=("memory per idle watcher at $(fmt_int "$(num watch_half)")")
    WATCH_STATUS_OK=$(verdict "$(num watch_rc) == 0 && $(num watch_connected) == $MEM_WATCHERS && $(num watch_status_ms_p99) > 0 && $(num watch_status_ms_p99) < 10")
    [ "$WATCH_KB_OK" = PASS ] || MISSED+=("memory per idle watcher")
    [ "$WATCH_STATUS_OK" = PASS ] || MISSED+=("GET /status p99 with $(fmt_int "$MEM_WATCHERS") idle watchers")
    NTARGETS=$((NTARGETS + 4))
    MEM_TABLE+="$MEM_RATIO_ROWS$MEM_CPU_ROWS$MEM_KB_ROWS"
    MEM_TABLE+=$'\n'"| memory per idle watcher at half the load (issue 7: at 5,000): the first $(fmt_int "$(num watch_half)") of the clients below connected, (connected − before) ÷ $(fmt_int "$(num watch_half)") | $(fmt %.1f watch_per_watcher_kb_half) kB per watcher: RSS $(mb "$(num watch_rss_base_kb)") before, $(mb "$(num watch_rss_half_kb)") with them connected; $(fmt_int "$(num watch_half_connected)") of $(fmt_int "$(num watch_half)") connected | — | ≤ 10 kB | $WATCH_HALF_OK |"
    MEM_TABLE+=$'\n'"| memory per idle watcher: $(fmt_int "$MEM_WATCHERS") SSE clients of \`GET /api/sessions/{id}/events\` ($MEM_SESSIONS sessions × $MEM_PER_SESSION, each on its own connection; a goosed of their own), (connected − before) ÷ $(fmt_int "$MEM_WATCHERS") | $(fmt %.1f watch_per_watcher_kb) kB per watcher: RSS $(mb "$(num watch_rss_base_kb)") before, $(mb "$(num watch_rss_connected_kb)") with them connected; $(fmt_int "$(num watch_connected)") of $(fmt_int "$MEM_WATCHERS") connected | — | ≤ 10 kB | $WATCH_KB_OK |
| \`GET /status\` latency while those $(fmt_int "$MEM_WATCHERS") watchers are connected, $(fmt_int "$MEM_STATUS_SAMPLES") sequential requests | p50 $(av watch_status_ms_p50) ms, p99 $(av watch_status_ms_p99) ms (with none connected: p50 $(av watch_idle_status_ms_p50) ms, p99 $(av watch_idle_status_ms_p99) ms) | — | p99 < 10 ms, all connected | $WATCH_STATUS_OK |"
    MEM_WATCH_TEXT="Watchers: the $(fmt_int "$MEM_WATCHERS") connected in $(av watch_connect_wall_s) s (goosed used $(av watch_connect_goosed_cpu_s) s of CPU meanwhile)."
    MEM_WATCH_TEXT+=" goosed's RSS: $(av watch_rss_base_kb) kB before, $(av watch_rss_connected_kb) kB with them connected (VmHWM $(av watch_hwm_connected_kb) kB),"
    MEM_WATCH_TEXT+=" $(av watch_rss_after_status_kb) kB after the \`GET /status\` samples, $(av watch_rss_closed_kb) kB 1 s after they closed."
    MEM_WATCH_TEXT+=" While idle they received $(av watch_idle_bytes) bytes after their response heads; goosed closed $(av watch_dropped) of them."
    MEM_WATCH_TEXT+=" \`GET /status\`, $(av watch_status_samples) samples while they were connected: p50 $(av watch_status_ms_p50) ms, p99 $(av watch_status_ms_p99) ms,"
    MEM_WATCH_TEXT+=" max $(av watch_status_ms_max) ms (goosed used $(av watch_status_goosed_cpu_s) s of CPU for them); before they connected: p50"
    MEM_WATCH_TEXT+=" $(av watch_idle_status_ms_p50) ms, p99 $(av watch_idle_status_ms_p99) ms, max $(av watch_idle_status_ms_max) ms."
    MEM_EXIT_TEXT=
    for g in "${MEM_EXITS[@]}"; do
        x=${g}_exit sd=${g}_shutdown b=${g}_bad
        label=${g%_goosed}
        [ "$label" = watch ] && label=watchers || label="${label#mem_} replies"
        MEM_EXIT_TEXT+="$label: ${!b} WARN/ERROR lines, exit status ${!x}, \`shutdown complete\` ${!sd}; "
    done
    MEM_EXIT_TEXT=${MEM_EXIT_TEXT%; }
fi

# The MCP benchmarks.
if want mcp; then
    MCP_ADDED_P50=$(calc "printf \"%.3f\", $(num mcp_lat_call_ms_p50) - $(num mcp_direct_call_ms_p50)")
    MCP_ADDED_P99=$(calc "printf \"%.3f\", $(num mcp_lat_call_ms_p99) - $(num mcp_direct_call_ms_p99)")
    MCP_ADDED_MEAN=$(calc "printf \"%.3f\", $(num mcp_lat_call_ms_mean) - $(num mcp_direct_call_ms_mean)")
    MCP_OK=$(verdict "$mcp_direct_rc == 0 && $mcp_lat_rc == 0 && $MCP_ADDED_P50 < 1")
    [ "$MCP_OK" = PASS ] || MISSED+=("MCP tool call overhead")
    NTARGETS=$((NTARGETS + 1))
    MCP_BIG=0
    for n in $MCP_SESSIONS; do [ "$n" -le "$MCP_BIG" ] || MCP_BIG=$n; done
    B=mcp_s$MCP_BIG
    MCP_TABLE="| benchmark | through goosed | server-everything directly | target | result |
|---|---|---|---|---|
| \`echo\` tool call round trip over stdio, p50 of $(fmt_int "$(num mcp_lat_call_ms_n)") sequential calls | $(av mcp_lat_call_ms_p50) ms | $(av mcp_direct_call_ms_p50) ms | added by goosed < 1 ms: $MCP_ADDED_P50 ms | $MCP_OK |
| the same, p99 | $(av mcp_lat_call_ms_p99) ms | $(av mcp_direct_call_ms_p99) ms | information: added $MCP_ADDED_P99 ms | — |
| the same, mean | $(av mcp_lat_call_ms_mean) ms | $(av mcp_direct_call_ms_mean) ms | information: added $MCP_ADDED_MEAN ms | — |
| $MCP_BIG sessions calling tools at once, each its own server ($MCP_LOAD_CALLS echo calls each, $(fmt_int "$(num "${B}_load_calls")") in all) | wall $(fmt_int "$(num "${B}_load_wall_ms")") ms ($(fmt_int "$(num "${B}_load_calls_per_s")") calls/s); per call (a reply's time ÷ $MCP_LOAD_CALLS) p50 $(fmt %.1f "${B}_load_reply_per_call_ms_p50") ms, max $(fmt %.1f "${B}_load_reply_per_call_ms_max") ms; peak memory $(mb "$(num "${B}_load_peak_goosed_kb")") goosed + $(mb "$(num "${B}_load_peak_servers_kb")") servers (RSS) | — | reported | — |
| per-session cost of a stdio server (server-everything): start-up added to the session's first reply, p50, with $(for n in $MCP_SESSIONS; do if [ "$n" -le "$MCP_START_BATCH" ]; then printf '%s / ' "$n"; else printf '%s (%s at a time) / ' "$n" "$MCP_START_BATCH"; fi; done | sed 's| / $||') sessions starting at once | $(for n in $MCP_SESSIONS; do printf '%s ms / ' "$(calc "printf \"%.0f\", $(num "mcp_s${n}_with_ttft_ms_p50") - $(num "mcp_s${n}_without_ttft_ms_p50")")"; done | sed 's| / $||') | spawn to \`tools/list\` answer, alone: $(fmt %.0f mcp_direct_start_tools_ms) ms | reported | — |
| the same: memory per session (the server's process), RSS / PSS, with ${MCP_SESSIONS// / / } sessions | $(for n in $MCP_SESSIONS; do printf '%s / %s, ' "$(mb "$(num "mcp_s${n}_server_rss_per_session_kb")")" "$(mb "$(num "mcp_s${n}_server_pss_per_session_kb")")"; done | sed 's|, $||') | alone, after the calls: $(mb "$(num mcp_direct_server_rss_kb)") / $(mb "$(num mcp_direct_server_pss_kb)") | reported | — |"
    MCP_DETAILS="| sessions | first reply → first token, without the extension: p50 / max | with it: p50 / max | added, p50 | batch wall time without / with | server processes | servers' RSS: total / per session | PSS: total / per session | goosed RSS: before / after first replies without / with | all calling at once: wall, calls/s, per call (intervals) p50 / p99 / max, reply p50 / max | peak RSS while calling: goosed + servers | goosed CPU: starting the servers / the calls |
|---|---|---|---|---|---|---|---|---|---|---|---|"
    for n in $MCP_SESSIONS; do
        p=mcp_s$n
        MCP_DETAILS+=$'\n'"| $n | $(av "${p}_without_ttft_ms_p50") / $(av "${p}_without_ttft_ms_max") ms | $(av "${p}_with_ttft_ms_p50") / $(av "${p}_with_ttft_ms_max") ms | $(calc "printf \"%.1f\", $(num "${p}_with_ttft_ms_p50") - $(num "${p}_without_ttft_ms_p50")") ms | $(fmt_int "$(num "${p}_without_wall_ms")") / $(fmt_int "$(num "${p}_with_wall_ms")") ms | $(av "${p}_server_procs") | $(mb "$(num "${p}_server_rss_kb")") / $(mb "$(num "${p}_server_rss_per_session_kb")") | $(mb "$(num "${p}_server_pss_kb")") / $(mb "$(num "${p}_server_pss_per_session_kb")") | $(av "${p}_goosed_rss_base_kb") / $(av "${p}_goosed_rss_without_kb") / $(av "${p}_goosed_rss_with_kb") kB | $(fmt_int "$(num "${p}_load_wall_ms")") ms, $(fmt_int "$(num "${p}_load_calls_per_s")")/s, $(av "${p}_load_call_ms_p50") / $(av "${p}_load_call_ms_p99") / $(av "${p}_load_call_ms_max") ms, $(fmt %.0f "${p}_load_reply_ms_p50") / $(fmt %.0f "${p}_load_reply_ms_max") ms | $(mb "$(num "${p}_load_peak_goosed_kb")") + $(mb "$(num "${p}_load_peak_servers_kb")") | $(av "${p}_with_goosed_cpu_s") / $(av "${p}_load_goosed_cpu_s") s |"
    done
    MCP_EXIT_TEXT=
    for g in "${MCP_GOOSEDS[@]}"; do
        x=${g}_exit sd=${g}_shutdown b=${g}_bad l=${g}_left
        label=${g%_goosed}
        label=${label#mcp_}
        [ "$label" = lat ] && label="round trip" || label="${label#s} sessions"
        MCP_EXIT_TEXT+="$label: ${!b} WARN/ERROR lines, exit status ${!x}, \`shutdown complete\` ${!sd}, ${!l} server processes left 2 s after; "
    done
    MCP_EXIT_TEXT=${MCP_EXIT_TEXT%; }
fi

if want metrics; then metrics_results; fi
if want store; then store_results; fi
if want history; then history_results; fi
source bench/growth.sh # issue 11's targets at a glance, and how each figure grows from 1× to 10×
growth_results

GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo "none (no commit yet)")
if [ -n "$(git status --porcelain -- . ":!$REPORT" ":!bench/out" 2>/dev/null)" ]; then
    GIT_REV="$GIT_REV, with uncommitted changes"
fi
CPU=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
[ -n "$CPU" ] || CPU=unknown

case $NTARGETS in 9) TARGETS_WORD=nine ;; 8) TARGETS_WORD=eight ;; 5) TARGETS_WORD=five ;; 4) TARGETS_WORD=four ;; 1) TARGETS_WORD=one ;; *) TARGETS_WORD=$NTARGETS ;; esac
if [ "$NTARGETS" = 0 ]; then
    SUMMARY="No targets in this run: its figures are reported."
elif [ ${#MISSED[@]} -eq 0 ]; then
    SUMMARY="All $TARGETS_WORD targets met."
    [ "$NTARGETS" != 1 ] || SUMMARY="The one target met."
else
    SUMMARY=$(printf '%s, ' "${MISSED[@]}")
    SUMMARY="Of $TARGETS_WORD targets, missed: ${SUMMARY%, }."
    [ "$NTARGETS" != 1 ] || SUMMARY="The one target missed: ${SUMMARY#*missed: }"
fi


# Anything that looked wrong, for the report's "Problems seen".
PROBLEMS=()
if want http; then
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
fi
if want agent; then
    for run in $(seq -f 'replies_%g' 1 "$AGENT_ROUNDS") ftl relay; do
        c=${run}_rc e=${run}_errors f=${run}_first_error
        [ "${!c}" = 0 ] || PROBLEMS+=("\`bench/agent.mjs\` run \`$run\` (bench/out/agent-$run.err): ${!e} replies failed or were incomplete; the first: ${!f}.")
    done
    if [ "$REPLIES_OK" != PASS ]; then
        PROBLEMS+=("$OVER_TOTAL of $(fmt_int "$ALL_REPLIES") concurrent replies through goosed took longer than 1.2 × $(fmt_int "$PROVIDER_MS") ms (or failed). \
In the worst round the time went to the first token: request → first token p50 $(fmt %.0f "${W}_g_first_ms_p50") ms, \
max $(fmt %.0f "${W}_g_first_ms_max") ms through goosed against p50 $(fmt %.0f "${W}_d_first_ms_p50") ms, max $(fmt %.0f "${W}_d_first_ms_max") ms \
from the fake alone; after the first token, the stream took p50 $(fmt %.0f "${W}_g_stream_ms_p50") ms (the fake's schedule: \
$((AGENT_TOKENS - 1)) × $AGENT_INTERVAL_MS = $(((AGENT_TOKENS - 1) * AGENT_INTERVAL_MS)) ms) and the end (last token → \`message_complete\`) \
p99 $(fmt %.1f "${W}_g_tail_ms_p99") ms. The machine's $(nproc) CPUs were shared: during that run goosed used \
$(av "${W}_g_goosed_cpu_s") s of CPU, the fake $(av "${W}_g_fake_cpu_s") s and the client $(av "${W}_g_client_cpu_s") s, in $(av "${W}_g_wall_s") s.")
    fi
    if [ "$RELAY_LOST_RUNS" -gt 0 ]; then
        PROBLEMS+=("Relay: through goosed, the $(fmt_int "$RELAY_TOKENS")-token reply reached the client incomplete in $RELAY_LOST_RUNS of \
$RELAY_RUNS runs, with \`events_lost\` error events (the client's stream fell more than the event ring's 1024 events behind), \
while goosed stored the complete reply in $RELAY_STORED_RUNS of $RELAY_RUNS: the tokens reached goosed and were dropped between its \
event bus and the client's stream. The same client read every token from the fake directly.")
    fi
    for gd in latency replies; do
        x=${gd}_goosed_exit sd=${gd}_goosed_shutdown b=${gd}_goosed_bad
        if [ "${!b}" -gt 0 ]; then
            first=$(grep -Em1 ' (ERROR|WARN) ' "$WORK/goosed-$gd.log" | cut -c1-200)
            PROBLEMS+=("goosed of the agent benchmarks ($gd) logged ${!b} WARN/ERROR lines; the first: \`$first\`.")
        fi
        [ "${!x}" = 0 ] || PROBLEMS+=("goosed of the agent benchmarks ($gd) exited with status ${!x} after SIGTERM (expected 0).")
        [ "${!sd}" = yes ] || PROBLEMS+=("goosed of the agent benchmarks ($gd) did not log \`shutdown complete\` after SIGTERM.")
    done
fi
if want memory; then
    for run in "${MEM_RUNS[@]}"; do
        c=${run}_rc e=${run}_errors f=${run}_first_error h=${run}_hwm_reset
        what="replies failed or were incomplete"
        [ "$run" != watch ] || what="watchers failed to connect or were closed, or GET /status requests failed"
        [ "${!c}" = 0 ] || PROBLEMS+=("\`bench/agent.mjs\` run \`$run\` (bench/out/agent-$run.err): ${!e:-some} $what; the first: ${!f:-see the file}.")
        [ "${!h:-true}" = true ] || PROBLEMS+=("run \`$run\`: goosed's VmHWM could not be reset (/proc/PID/clear_refs), so its peak counts from start-up.")
    done
    for g in "${MEM_EXITS[@]}"; do
        x=${g}_exit sd=${g}_shutdown b=${g}_bad log=${g%_goosed}
        [ "$log" = watch ] && log=watchers || log=memory-${log#mem_}
        if [ "${!b}" -gt 0 ]; then
            first=$(grep -Em1 ' (ERROR|WARN) ' "$WORK/goosed-$log.log" | cut -c1-200)
            PROBLEMS+=("goosed of the memory benchmarks ($log) logged ${!b} WARN/ERROR lines; the first: \`$first\`.")
        fi
        [ "${!x}" = 0 ] || PROBLEMS+=("goosed of the memory benchmarks ($log) exited with status ${!x} after SIGTERM (expected 0).")
        [ "${!sd}" = yes ] || PROBLEMS+=("goosed of the memory benchmarks ($log) did not log \`shutdown complete\` after SIGTERM.")
    done
fi
if want mcp; then
    for run in "${MCP_RUNS[@]}"; do
        c=${run}_rc e=${run}_errors f=${run}_first_error
        [ "${!c}" = 0 ] || PROBLEMS+=("\`bench/mcp.mjs\` run \`$run\` (bench/out/mcp-$run.err): ${!e:-some} calls or replies failed; the first: ${!f:-see the file}.")
    done
    for g in "${MCP_GOOSEDS[@]}"; do
        x=${g}_exit sd=${g}_shutdown b=${g}_bad l=${g}_left log=${g%_goosed}
        log=${log#mcp_}
        [ "$log" = lat ] && log=mcp-latency || log=mcp-${log#s}
        if [ "${!b}" -gt 0 ]; then
            first=$(grep -Em1 ' (ERROR|WARN) ' "$WORK/goosed-$log.log" | cut -c1-200)
            PROBLEMS+=("goosed of the MCP benchmarks ($log) logged ${!b} WARN/ERROR lines; the first: \`$first\`.")
        fi
        [ "${!x}" = 0 ] || PROBLEMS+=("goosed of the MCP benchmarks ($log) exited with status ${!x} after SIGTERM (expected 0).")
        [ "${!sd}" = yes ] || PROBLEMS+=("goosed of the MCP benchmarks ($log) did not log \`shutdown complete\` after SIGTERM.")
        [ "${!l}" = 0 ] || PROBLEMS+=("goosed of the MCP benchmarks ($log) left ${!l} server processes running 2 s after it exited.")
    done
fi
if want history; then
    for n in $HIST_SIZES; do
        for ((r = 1; r <= HIST_ROUNDS; r++)); do
            for k in full first deep par; do
                e=$(errs "hist_g_${k}_${n}_$r")
                [ "$e" = 0 ] || PROBLEMS+=("wrk run \`hist_g_${k}_${n}_$r\` (history): $e.")
            done
        done
    done
    if [ "$HIST_BAD" -gt 0 ]; then
        first=$(grep -Em1 ' (ERROR|WARN) ' "$WORK/goosed-history.log" | cut -c1-200)
        PROBLEMS+=("goosed of the history benchmarks logged $HIST_BAD WARN/ERROR lines; the first: \`$first\`.")
    fi
    [ "$HIST_EXIT" = 0 ] || PROBLEMS+=("goosed of the history benchmarks exited with status $HIST_EXIT after SIGTERM (expected 0).")
    [ "$HIST_SHUTDOWN" = yes ] || PROBLEMS+=("goosed of the history benchmarks did not log \`shutdown complete\` after SIGTERM.")
fi
[ "$FAKE_ERR_LINES" = 0 ] || PROBLEMS+=("the fake provider wrote $FAKE_ERR_LINES lines to stderr (bench/out/fake-provider.err).")
if [ ${#PROBLEMS[@]} -eq 0 ]; then
    PROBLEM_TEXT="None: no non-2xx answers, no socket errors, no failed or incomplete replies, no WARN/ERROR log lines, clean exits on SIGTERM."
else
    PROBLEM_TEXT=$(printf -- '- %s\n' "${PROBLEMS[@]}")
fi


# The report, section by section (each but the first starts with its blank line).
# --- tracing overhead: figures and section ---
if want tracing; then
    # the replies: the worst round of each mode (the highest p50 of each reply's time ÷ the provider's)
    for mode in off on; do
        w=1
        for ((r = 2; r <= AGENT_ROUNDS; r++)); do
            if calc "exit !($(num "trr_${mode}_${r}_g_ratio_p50") > $(num "trr_${mode}_${w}_g_ratio_p50"))"; then w=$r; fi
        done
        printf -v "TRR_${mode}" '%s' "trr_${mode}_$w"
    done
    pct() { calc "printf \"%.1f\", ($1) * 100"; }
    # the costs judged: round by round (on against the off run beside it), their median
    paired_cost TS trace_status rps loss "$ROUNDS"
    paired_cost TSC trace_status gcpu_us gain "$ROUNDS"
    paired_cost TR trr g_ratio_p50 gain "$AGENT_ROUNDS"
    TS_COST=$TS_med TSC_COST=$TSC_med TR_COST=$TR_med
    TRM_COST=$(pct "$(num "${TRR_on}_g_ratio_max") / $(num "${TRR_off}_g_ratio_max") - 1")
    for mode in off on; do # CPU per request: the least of the rounds (the least disturbed)
        for f in gcpu_us ocpu_us instr; do
            printf -v "trace_status_${mode}_$f" '%s' "$(round_best "trace_status_$mode" "$f" min "$ROUNDS")"
        done
    done
    TSI_COST=—
    [ -z "$trace_status_on_instr" ] || TSI_COST="$(pct "$(num trace_status_on_instr) / $(num trace_status_off_instr) - 1") %"
    TRC_COST=$(pct "$(num "${TRR_on}_g_goosed_cpu_s") / $(num "${TRR_off}_g_goosed_cpu_s") - 1")
    met() { calc "print ($1 < 5) ? \"met\" : \"missed\""; }
    TS_OK=$(met "$TS_COST")
    TSC_OK=$(met "$TSC_COST")
    TR_OK=$(met "$TR_COST")
    TRACE_TABLE="| benchmark | traces off | traces on | cost | target | result |
| --- | --- | --- | --- | --- | --- |
| \`GET /status\` requests/s, best of $ROUNDS rounds (wrk $THREADS threads, $CONNS connections, $DURATION s); cost: the share lost, median of the rounds (min – max) | $(fmt_int "$(num trace_status_off_rps)") | $(fmt_int "$(num trace_status_on_rps)") | $TS_COST % ($TS_min – $TS_max) | < 5 % | $TS_OK |
| the same, goosed's CPU time per request (utime + stime ÷ requests, the least of $ROUNDS rounds); cost: the share added, median of the rounds | $(av trace_status_off_gcpu_us) µs | $(av trace_status_on_gcpu_us) µs | $TSC_COST % ($TSC_min – $TSC_max) | < 5 % | $TSC_OK |
| the same, instructions goosed executed per request (\`perf stat -e instructions -p PID\`, the least of $ROUNDS rounds) | $(av trace_status_off_instr) | $(av trace_status_on_instr) | $TSI_COST | information | — |
| the same, the receiver's CPU time per request (its share of this machine) | — | $(av trace_status_on_ocpu_us) µs | — | information | — |
| $AGENT_REPLIES concurrent replies ($AGENT_TOKENS tokens, $AGENT_INTERVAL_MS ms apart): each reply's time ÷ the provider's $(fmt_int "$PROVIDER_MS") ms, p50, worst of $AGENT_ROUNDS rounds; cost: the share added, median of the rounds | $(fmt %.3f "${TRR_off}_g_ratio_p50") | $(fmt %.3f "${TRR_on}_g_ratio_p50") | $TR_COST % ($TR_min – $TR_max) | < 5 % | $TR_OK |
| the same, the slowest reply | $(fmt %.3f "${TRR_off}_g_ratio_max") | $(fmt %.3f "${TRR_on}_g_ratio_max") | $TRM_COST % | information | — |
| the same, goosed's CPU time for the measured replies | $(av "${TRR_off}_g_goosed_cpu_s") s | $(av "${TRR_on}_g_goosed_cpu_s") s | $TRC_COST % | information | — |
| \`GET /status\` latency p50 / p99 (the best round) | $(av trace_status_off_p50_ms) / $(av trace_status_off_p99_ms) ms | $(av trace_status_on_p50_ms) / $(av trace_status_on_p99_ms) ms | — | information | — |"
fi
report_tracing() {
    want metrics || printf '\n## Metrics and tracing overhead\n'
    cat <<EOT

### Tracing

goosed with OpenTelemetry traces off (no endpoint: the default) and on
(\`OTEL_EXPORTER_OTLP_ENDPOINT\` set, default sampler \`parentbased_always_on\`: every request,
turn and provider call is a span, exported in batches of 512 over OTLP/HTTP protobuf). The receiver
(\`tests/api/lib/otlp_receiver.mjs --discard\`) acknowledges each export without decoding it, and runs on
this machine: its CPU counts against goosed's. Each figure comes from a new goosed on a new \`HOME\`; off
and on alternate within each round, off first in odd rounds and on first in even ones. A cost is taken
round by round (on against the off run beside it) and judged on its median over the rounds: the machine
drifts between rounds by more than the 5 % judged. Load average at the start: $LOAD_START.

$TRACE_TABLE

The receiver counted $(av TRACE_EXPORTS_STATUS) exports ($(fmt_int "$(num TRACE_BYTES_STATUS)") bytes) during the \`GET /status\` runs and
$(av TRACE_EXPORTS) ($(fmt_int "$(num TRACE_BYTES)") bytes) by the end of the replies. These runs took $TRACE_SECONDS s.
EOT
}
# The container image: not built by make bench (it takes minutes and a Debian mirror) but by
# make deploy-test, which leaves its figures in build/deploy/image-report.json; shown when present.
report_image() {
    local f=build/deploy/image-report.json
    [ -f "$f" ] || { printf '\n## Container image\n\nNot measured: run `make deploy-test` first (it builds the image and writes %s).\n' "$f"; return; }
    node -e '
const fs = require("fs");
const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
const when = fs.statSync(process.argv[1]).mtime.toISOString().slice(0, 16).replace("T", " ");
const n = (v, u) => (v === undefined ? "n/a" : `${v}${u}`);
console.log(`
## Container image

Measured by \`make deploy-test\` (tests/deploy/image.test.mjs) at ${when} UTC, on this machine: the
Dockerfile built with \`buildah bud --isolation=chroot\` on a debootstrapped Debian bookworm, then
\`goose server\` started from the image with \`buildah run\` and asked for \`/status\` until it answered.

| what | measured |
|---|---|
| image size (\`buildah images\`) | ${n(r.image_size, "")} (root file system ${r.rootfs_bytes ? r.rootfs_bytes.toLocaleString("en") : "n/a"} bytes unpacked) |
| \`buildah run\` to the first \`/status\` answer | ${n(r.start_to_status_ms, " ms")} |
| this build (${r.build_seconds > 60 ? "cold: base and packages fetched" : "warm: layers cached"}) | ${n(r.build_seconds === undefined ? undefined : Math.round(r.build_seconds), " s")} |
| storage driver | ${n(r.storage_driver, "")} |`);
' "$f"
}

report_top() {
    cat <<EOF
# Benchmarks

Generated by \`make bench\` (\`bench/run.sh\`) — do not edit by hand; run it again.

$PARTIAL$SUMMARY
EOF
}
report_http_top() {
    echo
    cat <<EOF
$TABLE

Ratios are goosed's requests/s over nginx's requests/s for a static 200 \`ok\`, measured in the same run with the
same wrk settings; each requests/s figure is the best of $ROUNDS rounds (see every run below). Against nginx with its
access log off, the \`GET /status\` ratio would be $NOLOG_RATIO. A durable session create answers 201 only after its
row is committed and fsynced (SQLite, WAL, \`synchronous=FULL\`; the data directory is on $WORK_FS).
EOF
}
report_agent_top() {
    echo
    cat <<EOF
## Agent benchmarks (issue 3)

goosed between a client and an LLM provider played by the fake (\`tests/fakes/fake-provider.mjs\`, a separate Node
process on the same machine), as its \`openai\` provider; the client is \`bench/agent.mjs\`. "The fake alone" is the
same client calling the fake directly, the same way, in the same run.

$AGENT_TABLE

A reply's time runs from sending \`POST /api/sessions/{id}/messages/stream\` to receiving its \`message_complete\`
event; the provider's time for it is $AGENT_TOKENS tokens × $AGENT_INTERVAL_MS ms = $(fmt_int "$PROVIDER_MS") ms (the fake writes the first token at once and
token k at k × $AGENT_INTERVAL_MS ms after it, so its own schedule ends at $(((AGENT_TOKENS - 1) * AGENT_INTERVAL_MS)) ms). The target is judged on every reply of
every round: each must complete, with exactly its $AGENT_TOKENS tokens' text, within 1.2 × $(fmt_int "$PROVIDER_MS") ms = $(fmt_int "$LIMIT_MS") ms of its own request.
The batch wall time (first request sent to the last \`message_complete\`) is shown beside it for comparison and
is not what the verdict uses. First-token latency: the time from sending the request to receiving the first
text delta, through goosed (\`message_chunk\`) and from the fake directly (the first \`delta.content\`); goosed's
added latency is the difference of the two p50s (and p99s). Relay throughput: tokens received ÷ the time
from sending the request to receiving the last one; "every token arrives" means every run delivered the whole
text \`w0 w1 … w$((RELAY_TOKENS - 1))\` and its end event. A client that falls behind gets the text that
is waiting for it merged into fewer, bigger \`message_chunk\` events (nothing it already saw changes), so
goosed's chunk count is below the token count when the client is the slower side.
EOF
}
report_memory_top() {
    echo
    cat <<EOF
## Concurrent replies and idle watchers (issue 11, target 5)

The client is \`bench/agent.mjs\` again, the provider the same fake; each batch size and the watchers run on a
goosed of their own, its bounds set for the load ($MEM_LIMITS_TEXT; open files $OPEN_FILES).

$MEM_TABLE

Through goosed against the fake alone: at each size, the same N streams are first asked of the fake directly
(after a warm-up of N), then twice of goosed; the second batch through goosed (its provider connections open,
as a server's are in use) is compared reply by reply with the direct one, paired by rank: the k-th fastest
through goosed over the k-th fastest straight from the fake, so the fastest meet the fastest and the slowest
the slowest (both batches share the machine's $(nproc) CPUs with the fake and the client). A reply that failed
or did not end counts as over 1.2. CPU per token: goosed's utime + stime (\`/proc/PID/stat\`) over that second
batch ÷ the tokens it delivered; the first batch's, which includes opening N provider connections, is shown
beside it. Every size runs once (one round).

Memory per concurrent reply: on a new goosed, 2N + 1 sessions are created and one short reply is asked first, on
connections closed before the base is read, so "before" (\`VmRSS\`) holds start-up, the store and the provider
set-up but no reply. The client then opens the N connections to goosed, goosed's \`VmHWM\` is reset (5 written to
\`/proc/PID/clear_refs\`), and one message goes out on each at the same moment; the peak is \`VmHWM\` after the
batch (or \`VmRSS\` sampled every 10 ms meanwhile, if that was higher). (peak − before) ÷ N is all one more
concurrent reply costs goosed: its client's connection, its reply and its connection to the provider. Unlike the
agent benchmarks' $AGENT_REPLIES concurrent replies, no warm-up batch goes through goosed (its memory would be in
"before"), so goosed opens its N provider connections inside the batch: the reply times include that, and the
1.2 × target is judged on the next batch. A second batch of N follows at once on the same connections, to N other
sessions, with goosed's provider connections open (goosed's provider client keeps up to 1,024 idle ones): its times are the ones
compared with the fake alone's. The fake alone: the same N streams asked of the fake directly, after a warm-up of N. Memory per idle
watcher: on a new goosed, $MEM_SESSIONS sessions, then $(fmt_int "$MEM_WATCHERS") clients ($MEM_PER_SESSION per session, each on its own
connection) send \`GET /api/sessions/{id}/events\` and stay connected, idle; once every one has its \`200\` head
and 1 s has passed, (\`VmRSS\` − \`VmRSS\` before they connected) ÷ $(fmt_int "$MEM_WATCHERS"); the first half of them
connect first, and the same figure is taken 1 s after they have, before the others connect. \`GET /status\` latency:
$(fmt_int "$MEM_STATUS_SAMPLES") sequential requests on one keep-alive connection (after 50 not counted), from sending the request to
receiving the whole answer, while the watchers are connected, and before they connected for comparison. kB are
the 1,024-byte units of \`/proc/PID/status\`.
EOF
}
report_reference() {
    echo
    cat <<EOF
## Reference point (quoted, not measured by us)

Issue 2 quotes an agent server written in TypeScript, measured on this machine. Those numbers are quoted from
the issue; this bench did not run that server.

| | TypeScript server (quoted from issue 2) | goosed (this run) |
|---|---|---|
| health requests/s | about 1,100 | $(fmt_int "$goosed_status_rps") (\`GET /status\`) |
| session creates/s | about 180 | $(fmt_int "$goosed_post_rps") |
| idle memory | 310 MB | $(mb "$IDLE_RSS") RSS |
EOF
}
report_http_every_run() {
    echo
    cat <<EOF
$DETAILS

Errors: wrk's count of non-2xx/3xx responses and of socket errors; anything but 0 is a problem to look at.

goosed memory: idle $(mb "$IDLE_RSS") ($IDLE_RSS kB); right after the load $(mb "$LOAD_RSS") ($LOAD_RSS kB),
peak (VmHWM) $(mb "$PEAK_RSS") ($PEAK_RSS kB), 2 s later $(mb "$AFTER_RSS") ($AFTER_RSS kB).
Sessions in the store after the run (\`X-Total-Count\`): ${STORED:-unknown}; the measured POST runs had $CREATED 2xx answers
(with the first request; the warm-up's creates come on top).
goosed wrote $ACCESS_LINES access-log lines and $BAD_LINES WARN/ERROR lines; on SIGTERM it exited with status
$GOOSED_EXIT and logged \`shutdown complete\`: $SHUTDOWN_LOGGED.
EOF
}
report_agent_every_run() {
    echo
    cat <<EOF
### Agent benchmarks, every run

$AGENT_REPLIES concurrent replies ($AGENT_TOKENS tokens, $AGENT_INTERVAL_MS ms apart), each round first from the fake directly, then through goosed
(new sessions, created before the timed part; "failed": replies that errored or arrived incomplete):

$REPLY_DETAILS

The fake's own lateness in writing paced tokens (\`GET /_fake/stats\`): ${LATENESS_TEXT%; }.
Each round started with a warm-up of $(av replies_1_warmup) concurrent replies each way (same script; not counted, but checked):
the client holds its connections to the fake open before timing, and the warm-up gives goosed its pool of
provider connections the same way (goosed's provider client keeps up to 1,024 idle ones). All
$AGENT_REPLIES requests were written within $(av replies_1_g_send_spread_ms) ms (round 1, through goosed). These rounds ran on a goosed of their own:
RSS $(mb "$AGENT_IDLE_RSS") after start-up; VmHWM ${HWM_TEXT%, }; RSS $(mb "$AGENT_END_RSS") after the last round.

First-token latency, $(av ftl_samples) samples each way after $(av ftl_warmup) warm-up samples, alternating the fake directly and goosed on
one keep-alive connection each (the fake's script: $(av ftl_tokens) tokens $(av ftl_interval_ms) ms apart; its request body: $(av ftl_body_bytes) bytes); over the
measured samples goosed used $(av ftl_m_goosed_cpu_s) s of CPU, the fake $(av ftl_m_fake_cpu_s) s, the client $(av ftl_m_client_cpu_s) s, in $(av ftl_m_wall_s) s:

$FTL_DETAILS

Relay throughput, one reply of $(fmt_int "$RELAY_TOKENS") tokens written by the fake at full speed, each run first from the fake directly,
then through goosed (a new session each run):

$RELAY_DETAILS

The agent benchmarks' two goosed processes (first-token and relay; concurrent replies) wrote $latency_goosed_bad and
$replies_goosed_bad WARN/ERROR lines; on SIGTERM they exited with status $latency_goosed_exit and $replies_goosed_exit and logged \`shutdown complete\`:
$latency_goosed_shutdown and $replies_goosed_shutdown.
EOF
}
report_memory_every_run() {
    echo
    cat <<EOF
### Memory, every run

Concurrent replies, one goosed per size ($AGENT_TOKENS tokens, $AGENT_INTERVAL_MS ms apart; "failed": replies that errored, arrived
incomplete or did not end within $MEM_BATCH_TIMEOUT s):

$MEM_DETAILS

$MEM_WATCH_TEXT

The memory benchmarks' goosed processes: ${MEM_EXIT_TEXT}. These runs took $MEM_SECONDS s in all.
EOF
}
report_mcp() {
    echo
    cat <<EOR
## MCP extensions (issue 8)

\`@modelcontextprotocol/server-everything\` ($(node -p "require('./node_modules/@modelcontextprotocol/server-everything/package.json').version")) over stdio, called by a client directly and as
an extension of goosed (config.yaml's \`extensions:\` map, \`type: stdio\`, \`cmd: node\`); goosed's provider is the fake,
the client \`bench/mcp.mjs\`. Figures from a machine shared with other work at the time (load average $LOAD_START
before the run): the tails (p99, max) especially carry other processes' noise.

$MCP_TABLE

What each number includes:

- **Directly**: \`bench/mcp.mjs direct\` spawns \`node $REL_EVERYTHING stdio\`, sends \`initialize\`,
  \`notifications/initialized\` and \`tools/list\`, then $(av mcp_direct_warmup) \`tools/call\` \`echo\` (not counted) and
  $(fmt_int "$(num mcp_direct_calls)") more, one at a time. A call's time runs from writing its request line to the server's
  stdin to parsing its answer from its stdout: Node's JSON encoding and parsing, the two pipes, and the
  server's own work.
- **Through goosed**: \`bench/mcp.mjs latency\`, one session; the fake answers every provider request with
  $MCP_PER_REPLY \`everything__echo\` calls in one assistant message, and \`GOOSE_MAX_TURNS=1\` ends the reply after
  them, so a reply is one provider request and $MCP_PER_REPLY tool calls that goosed runs one after the other on the
  session's own server. One reply first (not counted: it starts the server and warms its JIT, as the direct
  client's warm-up does), then $MCP_REPLIES replies on \`POST /api/sessions/{id}/messages/stream\`. A call's time is the
  interval between the arrival at the client of two consecutive \`tool_result\` events of a reply, so $((MCP_PER_REPLY - 1))
  per reply: goosed publishing one result (the event, its JSON), starting the next call (permission check,
  the registry, JSON-RPC encoding, the write to the server's stdin), the server's work, reading and parsing its
  answer, turning it into a result and publishing that. The SSE delivery to the client is in both ends of the
  interval and cancels out, except for its jitter: two events read in one socket read get one arrival time
  (so a few intervals are near 0 and the one before is longer; the mean is not affected). The first call of
  each reply is left out (its interval would include the rest of the provider's stream and the fsynced write of
  the assistant message): from the last \`tool_call\` event to the first \`tool_result\`, p50 $(av mcp_lat_first_ms_p50) ms.
  "Added by goosed" is the difference of the two p50s (p99s, means). goosed used $(av mcp_lat_goosed_cpu_s) s of CPU over the $MCP_REPLIES
  measured replies ($(av mcp_lat_wall_s) s), which includes each reply's provider request and history (growing to
  $(( (MCP_REPLIES + 1) * MCP_PER_REPLY )) calls and results).
  Both clients share the machine's $(nproc) CPUs with the server; through goosed, goosed and the fake share them too.
- **Sessions** (\`bench/mcp.mjs sessions --sessions N\`, one new goosed per N): N sessions with the extension and N
  with it disabled (a per-session override, \`"extensions": [{"name": "everything", "enabled": false}]\`) are
  created first. The N without it then send their first message at the same moment (the fake answers \`ok\`),
  then the N with it: goosed starts each session's server, initializes it and lists its tools before asking
  the provider, so the first reply's time to its first \`message_chunk\` with the extension, minus the same
  without it, is the start-up a stdio server adds to a session. Memory: 1 s later, the sum of \`VmRSS\`, and of
  \`Pss\` (\`/proc/PID/smaps_rollup\`, which shares the pages of the \`node\` binary and its libraries between the
  processes that map them), over goosed's descendant processes (the servers, and the two \`bwrap\` processes of
  the sandbox each runs under; "server processes" counts the servers alone), divided by N. Then the N sessions
  with the extension all send one message at the same moment, $MCP_LOAD_CALLS echo calls each (the servers are running
  by then): wall time from the first request to the last \`message_complete\`, per-call times as above, and the
  peak of goosed's \`VmRSS\` plus its descendants' (sampled every 50 ms). Under that load the intervals between
  \`tool_result\` arrivals mostly measure how the client's reads batch events (many arrive together: p50 near 0),
  so the headline per-call figure is each reply's time divided by its $MCP_LOAD_CALLS calls. More than $MCP_START_BATCH sessions start their
  servers $MCP_START_BATCH at a time (each batch of first replies after the previous one ended; "batch wall time" is
  then the sum): 100 server-everything processes started at once on this $(nproc)-CPU machine each need about half a
  second of CPU, and none answered \`initialize\` within goosed's 30 s start timeout (\`MCP_START_TIMEOUT_MS\`),
  so that case measures the timeout, not the cost.

$MCP_DETAILS

Server start-up alone (\`direct\`): spawn to the \`initialize\` answer $(av mcp_direct_start_init_ms) ms, to the \`tools/list\` answer
$(av mcp_direct_start_tools_ms) ms ($(av mcp_direct_tools) tools, protocol $(av mcp_direct_protocol)); its memory after the calls: RSS $(av mcp_direct_server_rss_kb) kB, PSS $(av mcp_direct_server_pss_kb) kB.
Per call, directly: min $(av mcp_direct_call_ms_min) ms, max $(av mcp_direct_call_ms_max) ms; through goosed: min $(av mcp_lat_call_ms_min) ms, max $(av mcp_lat_call_ms_max) ms.
The MCP benchmarks' goosed processes: ${MCP_EXIT_TEXT}. These runs took $MCP_SECONDS s in all.

Commands (paths under a temporary directory; ports picked free at run time):

\`\`\`sh
$(printf '%s\n' "${MCP_COMMANDS[@]}" | sed "s|$WORK|\$TMP|g; s|$ROOT/||g")
\`\`\`
EOR
}
report_problems() {
    echo
    cat <<EOF
## Problems seen

$PROBLEM_TEXT
EOF
}
report_how_head() {
    echo
    cat <<EOF
## How it was measured

- Machine: $(nproc) CPUs, $CPU; Linux $(uname -r); $(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory.
  Load average before the run: $LOAD_START. $SHARED
- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ). Commit: $GIT_REV. Binary: \`${GOOSED_BIN#"$ROOT"/}\` ($("$GOOSED_BIN" --version 2>/dev/null || echo "version unknown")).
EOF
}
report_how_http() {
    cat <<EOF
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
EOF
}
report_how_agent() {
    cat <<EOF
- Agent benchmarks: the fake provider (\`tests/fakes/fake-provider.mjs --no-log\`, Node $(node --version)) and two new goosed
  processes, one for the first-token and relay runs, then one for the concurrent replies, each on a new empty \`HOME\` on
  $WORK_FS, with \`GOOSE_PROVIDER=openai GOOSE_MODEL=gpt-4o OPENAI_HOST=<the fake>\`, log level info, stderr to a file
  (goosed logs one access line and two agent lines per reply, nothing per token). The client,
  \`bench/agent.mjs\`, uses node:net sockets with its own small HTTP/1.1 reader (keep-alive, chunked) and
  \`process.hrtime.bigint()\` when the bytes arrive; it scripts the fake (\`POST /_fake/script\`), asks goosed for one
  short warm-up reply first, and sends the fake directly the very body goosed sent it then. The client, the fake and
  goosed share the machine's $(nproc) CPUs. CPU times are utime + stime from \`/proc/PID/stat\` (goosed, the fake) and
  \`process.cpuUsage()\` (the client) over the measured part; RSS figures come from \`/proc/PID/status\`.
EOF
}
report_how_memory() {
    cat <<EOF
- Memory benchmarks: the same fake provider; one new goosed per batch size and one for the watchers, each on a new
  empty \`HOME\` on $WORK_FS, configured as for the agent benchmarks and with its bounds set in its environment,
  high enough for the load: $MEM_LIMITS_TEXT.
  Open-file limit (\`ulimit -n\`, inherited by goosed, the fake and the client): $OPEN_FILES. The client's
  connections to goosed come from $MEM_ADDR_TEXT (ephemeral ports $PORT_LO–$PORT_HI). \`VmRSS\` and \`VmHWM\` from \`/proc/PID/status\`, read by the client.
EOF
}
report_commands() {
    echo
    cat <<EOF
Commands, in the order they ran (paths under a temporary directory; ports picked free at run time):

\`\`\`sh
$(printf '%s\n' "${COMMANDS[@]}" | sed "s|$WORK|\$TMP|g; s|$ROOT/||g")
\`\`\`
EOF
}

PARTIAL=
[ "$FULL" = yes ] || PARTIAL="A partial run (\`BENCH_ONLY=$ONLY\`): only the sections of those parts.

"
SHARED="wrk runs on the same machine, so it shares the CPUs with the server."
want http || SHARED="The client runs on the same machine, so it shares the CPUs with goosed."
# shellcheck disable=SC2016 # the backquotes are Markdown's
MEM_LIMITS_TEXT=$(printf '`%s` ' "${MEM_LIMITS[@]}")
MEM_LIMITS_TEXT=${MEM_LIMITS_TEXT% }
if [ "$MEM_ADDRS" = 1 ]; then MEM_ADDR_TEXT=127.0.0.1; else MEM_ADDR_TEXT="127.0.0.1 .. 127.0.0.$MEM_ADDRS in turn"; fi

mkdir -p "$(dirname "$REPORT")"
{
    report_top
    report_scale_top
    if want http; then report_http_top; fi
    if want agent; then report_agent_top; fi
    if want memory; then report_memory_top; fi
    if want http; then report_reference; fi
    printf '\n## Every run\n'
    if want http; then report_http_every_run; fi
    if want agent; then report_agent_every_run; fi
    if want memory; then report_memory_every_run; fi
    if want mcp; then report_mcp; fi
    if want metrics; then report_metrics; fi
    if want tracing; then report_tracing; fi
    if want store; then report_store; fi
    if want history; then report_history; fi
    report_growth
    if [ "$FULL" = yes ]; then report_image; fi
    report_problems
    report_how_head
    if want http; then report_how_http; fi
    if want agent; then report_how_agent; fi
    if want memory; then report_how_memory; fi
    report_commands
} >"$REPORT"

echo
echo "$SUMMARY"
if want http; then printf '\n%s\n' "$TABLE"; fi
if want agent; then printf '\n%s\n' "$AGENT_TABLE"; fi
if want memory; then printf '\n%s\n' "$MEM_TABLE"; fi
if want mcp; then printf '\n%s\n\n%s\n' "$MCP_TABLE" "$MCP_DETAILS"; fi
if want tracing; then printf '\n%s\n' "$TRACE_TABLE"; fi
if want http; then printf '\n%s\n' "$DETAILS"; fi
echo
echo "Problems seen:"
echo "$PROBLEM_TEXT"
echo
echo "bench: wrote $REPORT (raw output in bench/out/)"
FAILED_RUNS=()
AGENT_RUNS=()
if want agent; then
    for ((r = 1; r <= AGENT_ROUNDS; r++)); do AGENT_RUNS+=("replies_$r"); done
    AGENT_RUNS+=(ftl relay)
fi
if want tracing; then
    for ((r = 1; r <= AGENT_ROUNDS; r++)); do AGENT_RUNS+=("trr_off_$r" "trr_on_$r"); done
fi
for run in "${AGENT_RUNS[@]}" "${MEM_RUNS[@]}" "${MCP_RUNS[@]}" "${METRICS_RUNS[@]}"; do
    c=${run}_rc
    [ "${!c}" = 0 ] || FAILED_RUNS+=("$run")
done
if [ ${#FAILED_RUNS[@]} -gt 0 ]; then
    echo "bench: FAIL: replies through goosed (or watchers) failed or arrived incomplete in: ${FAILED_RUNS[*]} (see \"Problems seen\" in $REPORT and bench/out/agent-*.err)" >&2
    exit 1
fi
