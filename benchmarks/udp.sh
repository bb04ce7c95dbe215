#!/usr/bin/env bash
# UDP echo benchmark: weft-udpecho (one loop) against ref_udp_echo, a one-thread
# recvmmsg/sendmmsg echo (the least a datagram echo server can do).
#
# For each case the two servers run alternately, REPS times each, every run on a fresh server
# and a random port on 127.0.0.1; the server is pinned to one CPU and the load generator
# (benchmarks/udp_echo.c) to another. Prints per case the median datagrams/s of each, the
# datagrams lost, and weft's ratio to the reference.
#
#   benchmarks/udp.sh [-d SECONDS] [-r REPS] [-c CASES]
#     -d  seconds per run (default 3)   -r  runs per server and case (default 3)
#     -c  comma list of cases: small,mtu (default both)
#
# Environment: BUILD_DIR (default build-bench), WEFT_BENCH_NO_BUILD=1, SERVER_CPU / CLIENT_CPU
# (default 0 and 1).
set -euo pipefail

DURATION=3
REPS=3
CASES=small,mtu
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
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
bench_build udp_echo ref_udp_echo weft-udpecho
CLIENT=$BUILD_DIR/benchmarks/udp_echo
declare -A SERVER_CMD
SERVER_CMD[weft]="$BUILD_DIR/examples/udpecho/weft-udpecho --addr udp://127.0.0.1:{port} --loops 1"
SERVER_CMD[ref]="$BUILD_DIR/benchmarks/ref_udp_echo --port {port}"
SERVERS=(weft ref)
need_bins "$CLIENT" "$BUILD_DIR/examples/udpecho/weft-udpecho" "$BUILD_DIR/benchmarks/ref_udp_echo"

declare -A CASE_LABEL CASE_ARGS
CASE_LABEL[small]="8 sockets x window 32 x 64 B"
CASE_ARGS[small]="--socks 8 --window 32 --size 64"
CASE_LABEL[mtu]="8 sockets x window 32 x 1472 B"
CASE_ARGS[mtu]="--socks 8 --window 32 --size 1472"
IFS=, read -r -a CASE_LIST <<<"$CASES"
for c in "${CASE_LIST[@]}"; do
    [ -n "${CASE_ARGS[$c]:-}" ] || { echo "udp.sh: unknown case '$c' (small,mtu)" >&2; exit 2; }
done

FAILURES=0

run_one() { # case server rep
    local c=$1 s=$2 rep=$3 port rc=0 line rate lost
    port=$((20000 + RANDOM % 12000))
    # shellcheck disable=SC2086 # the command is a word list on purpose
    "${SRV_PIN[@]}" ${SERVER_CMD[$s]//\{port\}/$port} >"$TMP/server.log" 2>&1 &
    SRV_PID=$!
    sleep 0.3 # a UDP bind has no handshake to wait for
    if ! kill -0 "$SRV_PID" 2>/dev/null; then
        echo "  [$c run $rep] $s: did not start:" >&2
        sed 's/^/    /' "$TMP/server.log" >&2
        SRV_PID=""
        FAILURES=$((FAILURES + 1))
        return
    fi
    # shellcheck disable=SC2086
    timeout "$LG_TIMEOUT" "${CLI_PIN[@]}" "$CLIENT" --port "$port" ${CASE_ARGS[$c]} \
        --duration "$DURATION" >"$TMP/client.out" 2>&1 || rc=$?
    kill -TERM "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=""
    line=$(grep '^RESULT ' "$TMP/client.out" || true)
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        echo "  [$c run $rep] $s: FAILED (exit $rc):" >&2
        sed 's/^/    /' "$TMP/client.out" >&2
        FAILURES=$((FAILURES + 1))
        return
    fi
    rate=$(sed -n 's/.*dgrams_per_s=\([0-9.]*\).*/\1/p' <<<"$line")
    lost=$(sed -n 's/.* lost=\([0-9]*\).*/\1/p' <<<"$line")
    echo "$c $s $rep $rate $lost" >>"$TMP/results"
    printf '  [%s run %d] %-5s %10s datagrams/s  %6s lost\n' "$c" "$rep" "$s" "$rate" "$lost"
}
col() { awk -v c="$1" -v s="$2" -v f="$3" '$1 == c && $2 == s { print $f }' "$TMP/results" | median; }

touch "$TMP/results"
echo "udp echo benchmark: ${#SERVERS[@]} servers x $REPS runs x ${DURATION}s per case; $PINNING"
for c in "${CASE_LIST[@]}"; do
    echo
    echo "== ${CASE_LABEL[$c]}"
    for rep in $(seq "$REPS"); do
        for k in 0 1; do
            run_one "$c" "${SERVERS[$(((rep - 1 + k) % 2))]}" "$rep"
        done
    done
done
echo
echo "== summary: median datagrams/s over $REPS runs of ${DURATION}s; $PINNING"
printf '%-34s %12s %12s %10s %10s %10s\n' case weft ref weft/ref "weft lost" "ref lost"
for c in "${CASE_LIST[@]}"; do
    w=$(col "$c" weft 4)
    r=$(col "$c" ref 4)
    printf '%-34s %12s %12s %10s %10s %10s\n' "${CASE_LABEL[$c]}" "${w:--}" "${r:--}" \
        "$(ratio "$w" "$r")" "$(col "$c" weft 5)" "$(col "$c" ref 5)"
    echo "CASE $c weft=${w:--} ref=${r:--} weft_ref=$(ratio "$w" "$r")" >>"$TMP/machine"
done
cat "$TMP/machine"
if [ $FAILURES -ne 0 ]; then
    echo "udp.sh: $FAILURES run(s) failed; see above" >&2
    exit 1
fi
