# bench/growth.sh — issue 11, targets 5, 2 and 6 at a glance (sourced by bench/run.sh; its helpers,
# settings and results are in scope). After every part's results:
#   growth_results  the table of how each figure grows from 1× to 10× the work (sessions stored:
#                   the store part's 100k → 1M; history length: the history part's 1,000 → 10,000
#                   messages; concurrent replies: the memory part's 500 → 5,000), each with the growth
#                   expected (flat for a per-item cost or a rate, linear for a total) and a verdict;
#                   one target: every figure grows no faster than expected (within GROWTH_SLACK);
#                   and the one-line-per-target table of issue 11's new targets for the report's top.
#   report_scale_top, report_growth: their sections.
# A part that did not run leaves its rows out.
# shellcheck shell=bash disable=SC2154 # results land in variables named at run time

GROWTH_SLACK=1.5 # a figure may grow this much more than expected (or a rate fall this much) and pass

GROWTH_ROWS=
GROWTH_BAD=()
# growth_row WORK SMALL BIG LABEL UNIT V1 V10 EXPECT BETTER: one row; EXPECT flat, linear, or
# "as R1 R10 WHAT": the growth of the same figure measured without goosed (WHAT, from R1 to R10;
# at least flat), for a figure the load itself makes grow, such as a burst of N requests' wait for
# their first token; BETTER lower (a cost) or higher (a rate). A row whose figures are missing is
# left out.
growth_row() {
    local work=$1 small=$2 big=$3 label=$4 unit=$5 v1=$6 v10=$7 expect=$8 better=$9 w f e ok
    [ -n "$v1" ] && [ -n "$v10" ] || return 0
    calc "exit !($v1 > 0 && $v10 > 0)" || return 0
    w=$(calc "printf \"%.4g\", $big / $small")
    f=$(calc "printf \"%.2f\", $v10 / $v1")
    local r1='' r10='' rwhat=''
    if [[ $expect == as\ * ]]; then
        read -r _ r1 r10 rwhat <<<"$expect"
        [[ $r1 =~ ^[0-9.]+$ && $r10 =~ ^[0-9.]+$ ]] || return 0
        calc "exit !($r1 > 0 && $r10 > 0)" || return 0
        e=$(calc "printf \"%.2f\", ($r10 / $r1 > 1 ? $r10 / $r1 : 1)")
    elif [ "$expect" = flat ]; then e=1; else e=$w; fi
    if [ "$better" = lower ]; then
        ok=$(verdict "$f <= $e * $GROWTH_SLACK")
    else
        ok=$(verdict "$f >= $e / $GROWTH_SLACK")
    fi
    [ "$ok" = PASS ] || GROWTH_BAD+=("$label")
    local what="flat (× 1)"
    if [ -n "$rwhat" ]; then
        what="as $rwhat ($(gnum "$r1") → $(gnum "$r10") $unit: × $e)"
    elif [ "$expect" != flat ]; then
        what="linear (× $w)"
    fi
    [ "$better" = lower ] && what+=", at most × $(calc "printf \"%.3g\", $e * $GROWTH_SLACK")" ||
        what+=", at least × $(calc "printf \"%.3g\", $e / $GROWTH_SLACK")"
    GROWTH_ROWS+="| $work: $(fmt_int "$small") → $(fmt_int "$big") | $label | $(gnum "$v1") $unit | $(gnum "$v10") $unit | × $f | $what | $ok |"$'\n'
}

# gnum V: a figure for the growth table (whole from 100 up, with thousands separated; else 3 digits)
gnum() {
    if calc "exit !($1 >= 100)"; then fmt_int "$1"; else calc "printf \"%.3g\", $1"; fi
}

growth_results() {
    local s b n1 n2 m1 m2 n
    if want store; then
        s=${STORE_SIZES[1]} b=${STORE_SIZES[2]}
        local work="sessions stored"
        growth_row "$work" "$s" "$b" "start-up to the first answer, median" ms "$(av2 "store_startup_${s}_median_ms")" "$(av2 "store_startup_${b}_median_ms")" flat lower
        growth_row "$work" "$s" "$b" "durable creates/s" /s "$(av2 "store_post_${s}_rps")" "$(av2 "store_post_${b}_rps")" flat higher
        growth_row "$work" "$s" "$b" "bytes written per create" B "$(av2 "store_bytes_$s")" "$(av2 "store_bytes_$b")" flat lower
        growth_row "$work" "$s" "$b" "create latency p50" ms "$(av2 "store_post_${s}_p50_ms")" "$(av2 "store_post_${b}_p50_ms")" flat lower
        growth_row "$work" "$s" "$b" "first page of 100 by cursor, p50" ms "$(av2 "store_first_${s}_p50_ms")" "$(av2 "store_first_${b}_p50_ms")" flat lower
        growth_row "$work" "$s" "$b" "page of 100 90% deep by cursor, p50" ms "$(av2 "store_deep_${s}_p50_ms")" "$(av2 "store_deep_${b}_p50_ms")" flat lower
        growth_row "$work" "$s" "$b" "the same depth by offset (the compatible form, O(offset)), p50" ms "$(av2 "store_offset_${s}_p50_ms")" "$(av2 "store_offset_${b}_p50_ms")" linear lower
    fi
    if want history; then
        read -r n1 n2 < <(printf '%s\n' $HIST_SIZES | sort -n | sed -n '1p;$p' | paste -sd ' ')
        if [ -n "$n2" ] && [ "$n1" != "$n2" ]; then
            local work="history length (messages)"
            growth_row "$work" "$n1" "$n2" "whole history, one client: latency p50" ms "$(av2 "hist_g_full_${n1}_p50_ms_med")" "$(av2 "hist_g_full_${n2}_p50_ms_med")" linear lower
            growth_row "$work" "$n1" "$n2" "whole history, one client: messages served per second" /s "$(calc "print $(num "hist_g_full_${n1}_rps_med") * $n1")" "$(calc "print $(num "hist_g_full_${n2}_rps_med") * $n2")" flat higher
            growth_row "$work" "$n1" "$n2" "whole history: goosed ÷ SQLite alone (median ratio)" × "$(av2 "hist_ratio_full_${n1}_med")" "$(av2 "hist_ratio_full_${n2}_med")" flat higher
            growth_row "$work" "$n1" "$n2" "page of 100 90% deep by cursor, p50" ms "$(av2 "hist_g_deep_${n1}_p50_ms_med")" "$(av2 "hist_g_deep_${n2}_p50_ms_med")" flat lower
            growth_row "$work" "$n1" "$n2" "whole history, $HIST_CLIENTS clients at once: p99" ms "$(av2 "hist_g_par_${n1}_p99_ms_med")" "$(av2 "hist_g_par_${n2}_p99_ms_med")" linear lower
        fi
    fi
    if want memory; then
        read -r m1 m2 < <(printf '%s\n' $MEM_SIZES | sort -n | sed -n '1p;$p' | paste -sd ' ')
        if [ -n "$m2" ] && [ "$m1" != "$m2" ]; then
            local work="concurrent replies"
            growth_row "$work" "$m1" "$m2" "reply through goosed ÷ the fake alone's, median" × "$(av2 "mem_${m1}_wd_p50")" "$(av2 "mem_${m2}_wd_p50")" flat lower
            growth_row "$work" "$m1" "$m2" "reply through goosed ÷ the fake alone's, worst" × "$(av2 "mem_${m1}_wd_max")" "$(av2 "mem_${m2}_wd_max")" flat lower
            # All N requests are sent at once: the p50 waits behind N/2 others, straight from the
            # fake too. What goosed adds shows in how much faster its figure grows than the fake's.
            growth_row "$work" "$m1" "$m2" "request → first token through goosed, p50" ms "$(av2 "mem_${m1}_w_first_ms_p50")" "$(av2 "mem_${m2}_w_first_ms_p50")" \
                "as $(av2 "mem_${m1}_d_first_ms_p50") $(av2 "mem_${m2}_d_first_ms_p50") straight from the fake" lower
            growth_row "$work" "$m1" "$m2" "goosed's CPU per token" µs "$(av2 "mem_${m1}_w_cpu_us_per_token")" "$(av2 "mem_${m2}_w_cpu_us_per_token")" flat lower
            growth_row "$work" "$m1" "$m2" "memory per running reply" kB "$(av2 "mem_${m1}_per_reply_kb")" "$(av2 "mem_${m2}_per_reply_kb")" flat lower
            growth_row "$work" "$m1" "$m2" "goosed's memory for all of them (peak − before)" kB "$(av2 "mem_${m1}_delta_kb")" "$(av2 "mem_${m2}_delta_kb")" linear lower
        fi
    fi
    if [ -n "$GROWTH_ROWS" ]; then
        GROWTH_OK=$(verdict "${#GROWTH_BAD[@]} == 0")
        if [ "$GROWTH_OK" != PASS ]; then
            local bad
            bad=$(printf '%s; ' "${GROWTH_BAD[@]}")
            MISSED+=("growth from 1× to 10× the work (faster than expected: ${bad%; })")
        fi
        NTARGETS=$((NTARGETS + 1))
    fi
    scale_summary
}

av2() { printf '%s' "${!1:-}"; } # the value of variable NAME, empty when the run did not report it

# scale_summary: SCALE_TABLE, one line per issue 11 target measured by this run's history, memory
# and growth parts (the http, agent and store parts have their own tables).
scale_summary() {
    local rows='' n v p
    if want history; then
        for n in $HIST_SIZES; do
            v=HIST_OK_$n
            rows+="| history served from the stored text: the whole history of $(fmt_int "$n") messages ≥ 0.8 × SQLite alone reading its rows (median of $HIST_ROUNDS rounds) | $(fmt %.2f "hist_ratio_full_${n}_med") × ($(fmt %.2f "hist_ratio_full_${n}_min")–$(fmt %.2f "hist_ratio_full_${n}_max")); $HIST_CLIENTS clients at once: p99 $(fmt %.0f "hist_g_par_${n}_p99_ms_med") ms | ${!v} |"$'\n'
        done
    fi
    if want http; then
        rows+="| \`GET /status\` ≥ 0.9 × nginx's static 200 (best of 2 rounds each, same run) | $STATUS_RATIO × | $STATUS11_OK |"$'\n'
        rows+="| durable creates ≥ 0.8 × the ideal group commit, or ≥ 0.4 × nginx (same run) | $GC_RATIO × ideal, $POST_RATIO × nginx | $GC_OK |"$'\n'
    fi
    if want agent; then
        rows+="| relay of one fast reply ≥ 0.9 × the fake alone (100,000 tokens at full speed; each run's goosed ÷ fake, median of $RELAY_RUNS runs) | median $RELAY_R_MED × (min $RELAY_R_MIN, max $RELAY_R_MAX) | $RELAY_RATIO_OK |"$'\n'
    fi
    if want memory; then
        for n in $MEM_SIZES; do
            v=MEM_RATIO_OK_$n p=mem_$n
            rows+="| $(fmt_int "$n") concurrent replies: every reply through goosed ≤ 1.2 × the same rank's straight from the fake | median $(fmt %.2f "${p}_wd_p50") ×, max $(fmt %.2f "${p}_wd_max") ×; $(fmt_int "$(num "${p}_wd_over")") of $(fmt_int "$n") over | ${!v} |"$'\n'
        done
        rows+="| goosed's CPU per token ≤ 10 µs (at each of $(printf '%s\n' $MEM_SIZES | sed 's/$/,/' | tr '\n' ' ' | sed 's/, $//') replies) | $(for n in $MEM_SIZES; do printf '%s / ' "$(fmt %.1f "mem_${n}_w_cpu_us_per_token")"; done | sed 's| / $||') µs | $MEM_CPU_OK |"$'\n'
        rows+="| memory ≤ 40 kB per running reply (at each) | $(for n in $MEM_SIZES; do printf '%s / ' "$(fmt %.1f "mem_${n}_per_reply_kb")"; done | sed 's| / $||') kB | $MEM_KB_OK |"$'\n'
        rows+="| memory ≤ 10 kB per idle watcher ($(fmt_int "$MEM_WATCHERS") watchers) | $(fmt %.1f watch_per_watcher_kb) kB | $WATCH_KB_OK |"$'\n'
        rows+="| $(fmt_int "$MEM_WATCHERS") idle watchers connected: \`GET /status\` p99 < 10 ms | $(av watch_status_ms_p99) ms ($(fmt_int "$(num watch_connected)") connected) | $WATCH_STATUS_OK |"$'\n'
    fi
    if [ -n "$GROWTH_ROWS" ]; then
        rows+="| every figure grows from 1× to 10× the work no faster than expected (the growth table below) | $((${#GROWTH_BAD[@]})) of $(printf '%s' "$GROWTH_ROWS" | grep -c '^|') faster than expected | $GROWTH_OK |"$'\n'
    fi
    SCALE_TABLE=
    [ -z "$rows" ] || SCALE_TABLE="| issue 11 target | this run | result |
|---|---|---|
${rows%$'\n'}"
}

report_scale_top() {
    [ -n "$SCALE_TABLE" ] || return 0
    echo
    cat <<EOF
$SCALE_TABLE
EOF
}

report_growth() {
    [ -n "$GROWTH_ROWS" ] || return 0
    cat <<EOF

## How each figure grows from 1× to 10× the work (issue 11, target 6)

Each figure at the smaller and the larger work of this run, the growth factor (10× ÷ 1×), the growth expected
(flat for a per-item cost, a latency of one item or a rate; linear for a total or a whole that holds every
item; for the first token of N replies requested at once, which wait behind each other straight from the
fake too, the growth of the same figure straight from the fake in the same run), and the verdict: a cost passes when it grew at most $GROWTH_SLACK × what is expected, a rate when it fell to no
less than 1 ÷ $GROWTH_SLACK of it. Figures as in their sections: sessions stored from the store part (after its
creates), history length from the history part (medians of its rounds), concurrent replies from the memory
part (the second batch, goosed's provider connections open; memory from the first).

| work (1× → 10×) | figure | at 1× | at 10× | growth | expected | verdict |
|---|---|---|---|---|---|---|
${GROWTH_ROWS%$'\n'}
EOF
}
