#!/usr/bin/env bash
# UDP echo benchmark: weft-udpecho (one loop) on each I/O backend against ref_udp_echo, a
# one-thread recvmmsg/sendmmsg echo (the least a datagram echo server can do).
#
# Servers: weft-epoll (WEFT_BACKEND=epoll: readiness, then recvmmsg), weft-uring
# (WEFT_BACKEND=io_uring: a one-shot poll, then recvmmsg, the default there), weft-umsg
# (io_uring with WEFT_URING_DGRAM=multishot: a multishot recvmsg from provided buffers) and
# ref. For each case the servers run alternately (the order rotates
# every repetition), REPS times each, every run on a fresh server and a random port on
# 127.0.0.1; the server is pinned to one CPU and the load generator (benchmarks/udp_echo.c) to
# another. Prints per case the median datagrams/s of each, the datagrams lost, the server's
# CPU time per echoed datagram, and the ratios: weft to the reference, and the io_uring ways
# in to each other and to epoll.
#
#   benchmarks/udp.sh [-d SECONDS] [-r REPS] [-c CASES] [-b|--backend epoll|io_uring|both]
#     -d  seconds per run (default 3)   -r  runs per server and case (default 3)
#     -c  comma list of cases: small,mtu (default both)
#     -b  which weft backends run (default both; io_uring runs weft-uring and weft-umsg)
#
# Environment: BUILD_DIR (default build-bench), WEFT_BENCH_NO_BUILD=1, SERVER_CPU / CLIENT_CPU
# (default 0 and 1).
set -euo pipefail

DURATION=3
REPS=3
CASES=small,mtu
BACKEND=both
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
args=()
for a in "$@"; do
    case $a in
    --backend) args+=(-b) ;;
    --backend=*) args+=(-b "${a#--backend=}") ;;
    --help) args+=(-h) ;;
    *) args+=("$a") ;;
    esac
done
set -- ${args[@]+"${args[@]}"}
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
case $BACKEND in
epoll | io_uring | both) ;;
*) echo "udp.sh: --backend wants epoll, io_uring or both" >&2; exit 2 ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benchmarks/bench_lib.sh
. "$ROOT/benchmarks/bench_lib.sh"
check_run_args
bench_build udp_echo ref_udp_echo weft-udpecho
CLIENT=$BUILD_DIR/benchmarks/udp_echo
WEFT_BIN=$BUILD_DIR/examples/udpecho/weft-udpecho
need_bins "$CLIENT" "$WEFT_BIN" "$BUILD_DIR/benchmarks/ref_udp_echo"
weft_cmd="$WEFT_BIN --addr udp://127.0.0.1:{port} --loops 1"
declare -A SERVER_CMD
SERVERS=()
if [ "$BACKEND" != io_uring ]; then
    SERVER_CMD[weft-epoll]="env WEFT_BACKEND=epoll $weft_cmd"
    SERVERS+=(weft-epoll)
fi
if [ "$BACKEND" != epoll ]; then
    SERVER_CMD[weft-uring]="env WEFT_BACKEND=io_uring $weft_cmd"
    SERVER_CMD[weft-umsg]="env WEFT_BACKEND=io_uring WEFT_URING_DGRAM=multishot $weft_cmd"
    SERVERS+=(weft-uring weft-umsg)
fi
SERVER_CMD[ref]="$BUILD_DIR/benchmarks/ref_udp_echo --port {port}"
SERVERS+=(ref)
has() { [ -n "${SERVER_CMD[$1]:-}" ]; }

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
NO_RING=0 # io_uring runs that had no io_uring instance: the backend did not take effect

run_one() { # case server rep
    local c=$1 s=$2 rep=$3 port rc=0 line rate lost total cpu ns
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
    # env execs the server: SRV_PID is the server itself, its CPU time is the server's.
    case $s in weft-uring | weft-umsg) [ "$(uring_fds "$SRV_PID")" -gt 0 ] || NO_RING=$((NO_RING + 1)) ;; esac
    # shellcheck disable=SC2086
    timeout "$LG_TIMEOUT" "${CLI_PIN[@]}" "$CLIENT" --port "$port" ${CASE_ARGS[$c]} \
        --duration "$DURATION" >"$TMP/client.out" 2>&1 || rc=$?
    cpu=$(cpu_ticks "$SRV_PID")
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
    total=$(sed -n 's/.* dgrams=\([0-9]*\).*/\1/p' <<<"$line")
    # Server CPU per echoed datagram (its receive and its reply), in nanoseconds.
    ns=$(awk -v m="$total" -v t="$cpu" -v hz="$CLK_TCK" \
        'BEGIN { if (m > 0 && t != "") printf "%.0f", t / hz * 1e9 / m; else print "-" }')
    echo "$c $s $rep $rate $lost $ns" >>"$TMP/results"
    printf '  [%s run %d] %-10s %10s datagrams/s  %6s lost  %6s ns server CPU/datagram\n' \
        "$c" "$rep" "$s" "$rate" "$lost" "$ns"
}
col() { awk -v c="$1" -v s="$2" -v f="$3" '$1 == c && $2 == s && $f != "-" { print $f }' "$TMP/results" | median; }
# inv_ratio A B: B / A (for costs: how many times cheaper A is than B).
inv_ratio() { ratio "$2" "$1"; }

touch "$TMP/results"
echo "udp echo benchmark: ${#SERVERS[@]} servers x $REPS runs x ${DURATION}s per case; $PINNING"
echo "servers: ${SERVERS[*]} (weft-udpecho with --loops 1)"
for c in "${CASE_LIST[@]}"; do
    echo
    echo "== ${CASE_LABEL[$c]}"
    n=${#SERVERS[@]}
    for rep in $(seq "$REPS"); do
        for k in $(seq 0 $((n - 1))); do
            run_one "$c" "${SERVERS[$(((rep - 1 + k) % n))]}" "$rep"
        done
    done
done
echo
echo "== summary: median over $REPS runs of ${DURATION}s; $PINNING"
printf '%-32s %-10s %12s %8s %10s %10s\n' case server datagrams/s lost "ns CPU/dg" "x ref"
for c in "${CASE_LIST[@]}"; do
    r=$(col "$c" ref 4)
    for s in "${SERVERS[@]}"; do
        v=$(col "$c" "$s" 4)
        printf '%-32s %-10s %12s %8s %10s %10s\n' "${CASE_LABEL[$c]}" "$s" "${v:--}" \
            "$(col "$c" "$s" 5)" "$(col "$c" "$s" 6)" "$(ratio "$v" "$r")"
    done
done
echo
echo "== ratios of the medians (datagrams/s; CPU: how many times less server CPU per datagram)"
printf '%-32s %-24s %10s %10s\n' case pair "dg/s" "CPU"
pair() { # case a b
    local a b ca cb
    a=$(col "$1" "$2" 4)
    b=$(col "$1" "$3" 4)
    ca=$(col "$1" "$2" 6)
    cb=$(col "$1" "$3" 6)
    printf '%-32s %-24s %10s %10s\n' "${CASE_LABEL[$1]}" "$2 / $3" "$(ratio "$a" "$b")" \
        "$(inv_ratio "$ca" "$cb")"
    echo "PAIR $1 $2/$3 dgps=$(ratio "$a" "$b") cpu=$(inv_ratio "$ca" "$cb")" >>"$TMP/machine"
}
for c in "${CASE_LIST[@]}"; do
    for s in "${SERVERS[@]}"; do
        [ "$s" = ref ] || pair "$c" "$s" ref
    done
    if has weft-uring; then
        pair "$c" weft-umsg weft-uring
        has weft-epoll && pair "$c" weft-uring weft-epoll
    fi
    line="CASE $c"
    for s in "${SERVERS[@]}"; do
        line+=" $s=$(col "$c" "$s" 4) ${s}_ns=$(col "$c" "$s" 6)"
    done
    echo "$line" >>"$TMP/machine"
done
cat "$TMP/machine"
if [ $NO_RING -ne 0 ]; then
    echo "udp.sh: $NO_RING io_uring run(s) had no io_uring instance (the kernel refused it?):" \
        "those figures are epoll's" >&2
fi
if [ $FAILURES -ne 0 ]; then
    echo "udp.sh: $FAILURES run(s) failed; see above" >&2
    exit 1
fi
