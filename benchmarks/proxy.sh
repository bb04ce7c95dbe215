#!/usr/bin/env bash
# Proxy benchmark: benchmarks/loadgen through weft-proxy to an echo backend, against the same
# load sent to the backend directly. The ratio says what the extra hop costs.
#
# Each case runs direct and proxied alternately, REPS times each, on fresh processes and
# random ports on 127.0.0.1. Pinning on a 2-CPU machine: direct = backend on CPU 0, loadgen
# on CPU 1; proxied = weft-proxy on CPU 0, backend and loadgen sharing CPU 1. The proxied
# backend thus competes with the load generator, so the ratio is a floor, not a fair split.
#
#   benchmarks/proxy.sh [-d SECONDS] [-r REPS] [-c CASES] [-b weft|epoll]
#     -d  seconds per run (default 3)   -r  runs per mode and case (default 3)
#     -c  comma list of cases: p16,16k (default both)
#     -b  backend: weft-echo (default) or the raw epoll reference, ref_epoll_echo
#
# Environment: BUILD_DIR (default build-bench), WEFT_BENCH_NO_BUILD=1.
set -euo pipefail

DURATION=3
REPS=3
CASES=p16,16k
BACKEND=weft
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
while getopts "d:r:c:b:h" o; do
    case $o in
    d) DURATION=$OPTARG ;;
    r) REPS=$OPTARG ;;
    c) CASES=$OPTARG ;;
    b) BACKEND=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benchmarks/bench_lib.sh
. "$ROOT/benchmarks/bench_lib.sh"
check_run_args
bench_build loadgen ref_epoll_echo weft-echo weft-proxy
LOADGEN=$BUILD_DIR/benchmarks/loadgen
PROXY=$BUILD_DIR/examples/proxy/weft-proxy
case $BACKEND in
weft) BACKEND_CMD="$BUILD_DIR/examples/echo/weft-echo --addr tcp://127.0.0.1:{port} --loops 1" ;;
epoll) BACKEND_CMD="$BUILD_DIR/benchmarks/ref_epoll_echo --port {port}" ;;
*) echo "proxy.sh: -b wants weft or epoll" >&2; exit 2 ;;
esac
need_bins "$LOADGEN" "$PROXY" "${BACKEND_CMD%% *}"

# PIN0 is bench_lib's server CPU, PIN1 its load generator CPU.
PIN0=("${SRV_PIN[@]}")
PIN1=("${CLI_PIN[@]}")
if [ ${#PIN0[@]} -gt 0 ]; then
    PINNING="direct: backend CPU ${SERVER_CPU:-0}, loadgen CPU ${CLIENT_CPU:-1}; proxied: proxy CPU ${SERVER_CPU:-0}, backend + loadgen CPU ${CLIENT_CPU:-1}"
fi

declare -A CASE_LABEL CASE_ARGS
CASE_LABEL[p16]="64 conns x 64 B, pipeline 16"
CASE_ARGS[p16]="--conns 64 --size 64 --pipeline 16"
CASE_LABEL[16k]="8 conns x 16 KiB, pipeline 1"
CASE_ARGS[16k]="--conns 8 --size 16384 --pipeline 1"
IFS=, read -r -a CASE_LIST <<<"$CASES"
for c in "${CASE_LIST[@]}"; do
    [ -n "${CASE_ARGS[$c]:-}" ] || { echo "proxy.sh: unknown case '$c' (p16,16k)" >&2; exit 2; }
done

# spawn LOG PIN... -- CMD...: starts it in the background, appends its pid to PIDS.
spawn() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    PIDS+=($!)
}
stop_all() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}

FAILURES=0

run_one() { # case mode rep
    local c=$1 mode=$2 rep=$3 bport pport target rc=0 line msgs mb
    bport=$(free_port)
    # shellcheck disable=SC2086
    if [ "$mode" = direct ]; then
        spawn "$TMP/backend.log" "${PIN0[@]}" ${BACKEND_CMD//\{port\}/$bport}
        target=$bport
    else
        spawn "$TMP/backend.log" "${PIN1[@]}" ${BACKEND_CMD//\{port\}/$bport}
        pport=$(free_port)
        wait_port "$bport" || true
        spawn "$TMP/proxy.log" "${PIN0[@]}" "$PROXY" --listen "tcp://127.0.0.1:$pport" \
            --backend "tcp://127.0.0.1:$bport" --loops 1
        target=$pport
    fi
    if ! wait_port "$target"; then
        echo "  [$c run $rep] $mode: servers did not come up" >&2
        cat "$TMP"/*.log >&2 || true
        stop_all
        FAILURES=$((FAILURES + 1))
        return
    fi
    # shellcheck disable=SC2086
    timeout "$LG_TIMEOUT" "${PIN1[@]}" "$LOADGEN" --host 127.0.0.1 --port "$target" \
        ${CASE_ARGS[$c]} --duration "$DURATION" >"$TMP/loadgen.out" 2>&1 || rc=$?
    stop_all
    line=$(grep '^RESULT ' "$TMP/loadgen.out" || true)
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        echo "  [$c run $rep] $mode: FAILED (loadgen exit $rc):" >&2
        sed 's/^/    /' "$TMP/loadgen.out" >&2
        FAILURES=$((FAILURES + 1))
        return
    fi
    msgs=$(sed -n 's/.* msgs_per_s=\([0-9.]*\).*/\1/p' <<<"$line")
    mb=$(sed -n 's/.* mb_per_s=\([0-9.]*\).*/\1/p' <<<"$line")
    echo "$c $mode $rep $msgs $mb" >>"$TMP/results"
    printf '  [%s run %d] %-7s %10s msgs/s %9s MB/s\n' "$c" "$rep" "$mode" "$msgs" "$mb"
}
col() { awk -v c="$1" -v s="$2" -v f="$3" '$1 == c && $2 == s { print $f }' "$TMP/results" | median; }

touch "$TMP/results"
MODES=(direct proxied)
echo "proxy benchmark: backend $BACKEND, $REPS runs x ${DURATION}s per mode and case; $PINNING"
for c in "${CASE_LIST[@]}"; do
    echo
    echo "== ${CASE_LABEL[$c]}"
    for rep in $(seq "$REPS"); do
        for k in 0 1; do
            run_one "$c" "${MODES[$(((rep - 1 + k) % 2))]}" "$rep"
        done
    done
done
echo
echo "== summary: median over $REPS runs of ${DURATION}s (MB/s: echoed payload, one way)"
printf '%-32s %12s %12s %10s %10s %14s\n' case "direct/s" "proxied/s" "direct MB" "proxy MB" \
    proxied/direct
for c in "${CASE_LIST[@]}"; do
    d=$(col "$c" direct 4)
    p=$(col "$c" proxied 4)
    printf '%-32s %12s %12s %10s %10s %14s\n' "${CASE_LABEL[$c]}" "${d:--}" "${p:--}" \
        "$(col "$c" direct 5)" "$(col "$c" proxied 5)" "$(ratio "$p" "$d")"
    echo "CASE $c backend=$BACKEND direct=${d:--} proxied=${p:--} ratio=$(ratio "$p" "$d")" >>"$TMP/machine"
done
cat "$TMP/machine"
if [ $FAILURES -ne 0 ]; then
    echo "proxy.sh: $FAILURES run(s) failed; see above" >&2
    exit 1
fi
