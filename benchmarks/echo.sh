#!/usr/bin/env bash
# Echo benchmark: weft-echo (1 loop) against the raw epoll reference and plain libevent.
#
# For each case the three servers run alternately, in a rotating order, REPS times each, every
# run on a fresh server and a random free port on 127.0.0.1; the server is pinned to one CPU and
# the load generator to another. Prints per case the median msgs/s of each server and weft's
# ratio to each reference, then a summary and the issue's targets.
#
#   benchmarks/echo.sh [-d SECONDS] [-r REPS] [-c CASES]
#     -d  seconds per run (default 3)       -r  runs per server and case (default 3, min 1)
#     -c  comma list of cases: p1,p16,16k,churn (default all)
#
# Environment: BUILD_DIR (default build-bench), WEFT_BENCH_NO_BUILD=1 (use what is built),
# WEFT_ECHO_BIN (a weft-echo to use), WEFT_ECHO_CMD (a full server command in place of weft's,
# with {port} standing for the port; e.g. a reference server, to test this script),
# SERVER_CPU / CLIENT_CPU (default 0 and 1), BUSY_POLL (weft-echo's --busy-poll in
# microseconds, default 50; 0 measures weft with the engine's default of no busy polling).
set -euo pipefail

DURATION=3
REPS=3
CASES=p1,p16,16k,churn
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
while getopts "d:r:c:h" o; do
    case $o in
    d) DURATION=$OPTARG ;;
    r) REPS=$OPTARG ;;
    c) CASES=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benchmarks/bench_lib.sh
. "$ROOT/benchmarks/bench_lib.sh"
check_run_args

targets=(loadgen ref_epoll_echo ref_libevent_echo)
[ -d "$ROOT/examples/echo" ] && [ -z "${WEFT_ECHO_CMD:-}${WEFT_ECHO_BIN:-}" ] && targets+=(weft-echo)
bench_build "${targets[@]}"

LOADGEN=$BUILD_DIR/benchmarks/loadgen
need_bins "$LOADGEN" "$BUILD_DIR/benchmarks/ref_epoll_echo" "$BUILD_DIR/benchmarks/ref_libevent_echo"

declare -A SERVER_CMD
SERVER_CMD[epoll]="$BUILD_DIR/benchmarks/ref_epoll_echo --port {port}"
SERVER_CMD[libevent]="$BUILD_DIR/benchmarks/ref_libevent_echo --port {port}"
SERVERS=()
WEFT_BIN=${WEFT_ECHO_BIN:-$BUILD_DIR/examples/echo/weft-echo}
if [ -n "${WEFT_ECHO_CMD:-}" ]; then
    SERVER_CMD[weft]=$WEFT_ECHO_CMD
    echo "note: the weft slot runs: $WEFT_ECHO_CMD"
    SERVERS+=(weft)
elif [ -x "$WEFT_BIN" ]; then
    SERVER_CMD[weft]="$WEFT_BIN --addr tcp://127.0.0.1:{port} --loops 1 --busy-poll ${BUSY_POLL:-50}"
    echo "note: the weft slot runs: ${SERVER_CMD[weft]}"
    SERVERS+=(weft)
else
    echo "note: no weft-echo at $WEFT_BIN; measuring the references only"
fi
SERVERS+=(epoll libevent)

# ---- case table ----
declare -A CASE_LABEL CASE_ARGS
CASE_LABEL[p1]="64 conns x 64 B, pipeline 1"
CASE_ARGS[p1]="--conns 64 --size 64 --pipeline 1"
CASE_LABEL[p16]="64 conns x 64 B, pipeline 16"
CASE_ARGS[p16]="--conns 64 --size 64 --pipeline 16"
CASE_LABEL[16k]="8 conns x 16 KiB, pipeline 1"
CASE_ARGS[16k]="--conns 8 --size 16384 --pipeline 1"
CASE_LABEL[churn]="churn: connect, 64 B echo, close; x16"
CASE_ARGS[churn]="--churn --conns 16 --size 64 --src-spread 250"
IFS=, read -r -a CASE_LIST <<<"$CASES"
for c in "${CASE_LIST[@]}"; do
    [ -n "${CASE_ARGS[$c]:-}" ] || { echo "echo.sh: unknown case '$c' (p1,p16,16k,churn)" >&2; exit 2; }
done

FAILURES=0
echo "echo benchmark: ${#SERVERS[@]} servers x $REPS runs x ${DURATION}s per case; $PINNING"
echo "servers: ${SERVERS[*]} (weft-echo with --loops 1)"

run_one() { # case server rep
    local c=$1 s=$2 rep=$3 rc=0 line msgs p50 p99 cpu total eff
    if ! start_server "$s"; then
        FAILURES=$((FAILURES + 1))
        return
    fi
    # shellcheck disable=SC2086
    timeout "$LG_TIMEOUT" "${CLI_PIN[@]}" "$LOADGEN" --host 127.0.0.1 --port "$SRV_PORT" \
        ${CASE_ARGS[$c]} --duration "$DURATION" >"$TMP/loadgen.out" 2>&1 &
    LG_PID=$!
    wait "$LG_PID" || rc=$?
    LG_PID=""
    cpu=$(cpu_ticks "$SRV_PID")
    stop_server "$s" || FAILURES=$((FAILURES + 1))
    line=$(grep '^RESULT ' "$TMP/loadgen.out" || true)
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        echo "  [$c run $rep] $s: FAILED (loadgen exit $rc):" >&2
        sed 's/^/    /' "$TMP/loadgen.out" >&2
        FAILURES=$((FAILURES + 1))
        return
    fi
    msgs=$(sed -n 's/.* msgs_per_s=\([0-9.]*\).*/\1/p' <<<"$line")
    p50=$(sed -n 's/.* p50_us=\([0-9.]*\).*/\1/p' <<<"$line")
    p99=$(sed -n 's/.* p99_us=\([0-9.]*\).*/\1/p' <<<"$line")
    total=$(sed -n 's/.* msgs=\([0-9]*\).*/\1/p' <<<"$line")
    eff=$(awk -v m="$total" -v t="$cpu" -v hz="$CLK_TCK" 'BEGIN { if (t > 0) printf "%.0f", m / (t / hz); else print "" }')
    echo "$c $s $rep $msgs $p50 $p99 $eff" >>"$TMP/results"
    printf '  [%s run %d] %-8s %10s msgs/s  p50 %8s us  p99 %8s us  %10s msgs/server-CPU-s\n' \
        "$c" "$rep" "$s" "$msgs" "$p50" "$p99" "${eff:--}"
}

col() { # case server field(4=msgs 5=p50 6=p99 7=msgs per server CPU-s) [median|best] -> that statistic over the runs
    local pick=median
    [ "${4:-median}" = best ] && pick=best
    awk -v c="$1" -v s="$2" -v f="$3" '$1 == c && $2 == s { print $f }' "$TMP/results" 2>/dev/null | $pick
}
best() { sort -g | tail -n 1; }

touch "$TMP/results"
for c in "${CASE_LIST[@]}"; do
    echo
    echo "== ${CASE_LABEL[$c]}  (loadgen ${CASE_ARGS[$c]})"
    n=${#SERVERS[@]}
    for rep in $(seq "$REPS"); do
        for k in $(seq 0 $((n - 1))); do
            run_one "$c" "${SERVERS[$(((rep - 1 + k) % n))]}" "$rep"
        done
    done
    printf '  %-9s %12s %10s %10s\n' server "msgs/s" "p50 us" "p99 us"
    for s in "${SERVERS[@]}"; do
        printf '  %-9s %12s %10s %10s   (median of %d)\n' "$s" "$(col "$c" "$s" 4)" \
            "$(col "$c" "$s" 5)" "$(col "$c" "$s" 6)" "$REPS"
    done
done

echo
MEET_EPOLL=yes
MEET_LIBEVENT=yes
# summary STAT: median (the figures the targets are judged on), best (the fastest run of each
# server, which on a shared machine shows what each can do when left alone) or efficiency
# (messages per server CPU-second: what each message costs the server, which other jobs on the
# machine disturb far less than they disturb throughput).
summary() {
    local stat=$1 field=4 c w e l re rl
    echo
    if [ "$stat" = median ]; then
        echo "== summary: median msgs/s over $REPS runs of ${DURATION}s; $PINNING"
    elif [ "$stat" = best ]; then
        echo "== best run of each server (for comparison; noise only ever slows a run down)"
    else
        echo "== efficiency: median messages per second of server CPU time (user + system)"
        stat=median
        field=7
    fi
    printf '%-38s %12s %12s %12s %10s %13s\n' case weft epoll libevent weft/epoll weft/libevent
    for c in "${CASE_LIST[@]}"; do
        w=$(col "$c" weft $field "$stat")
        e=$(col "$c" epoll $field "$stat")
        l=$(col "$c" libevent $field "$stat")
        re=$(ratio "$w" "$e")
        rl=$(ratio "$w" "$l")
        printf '%-38s %12s %12s %12s %10s %13s\n' "${CASE_LABEL[$c]}" "${w:--}" "${e:--}" \
            "${l:--}" "$re" "$rl"
        echo "CASE $c stat=$1 weft=${w:--} epoll=${e:--} libevent=${l:--} weft_epoll=$re weft_libevent=$rl" >>"$TMP/machine"
        [ "$1" = median ] || continue
        if [ "$re" = "-" ] || awk -v r="$re" 'BEGIN { exit !(r < 0.90) }'; then MEET_EPOLL=no; fi
        if [ "$rl" = "-" ] || awk -v r="$rl" 'BEGIN { exit !(r <= 1.0) }'; then MEET_LIBEVENT=no; fi
    done
}
summary median
summary best
summary efficiency
echo
if [ -n "${SERVER_CMD[weft]:-}" ]; then
    echo "target weft >= 0.90x epoll in every case: $MEET_EPOLL"
    echo "target weft ahead of plain libevent in every case: $MEET_LIBEVENT"
else
    echo "targets: not measured (no weft-echo)"
fi
cat "$TMP/machine"
if [ $FAILURES -ne 0 ]; then
    echo "echo.sh: $FAILURES run(s) failed; see above" >&2
    exit 1
fi
