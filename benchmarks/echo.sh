#!/usr/bin/env bash
# Echo benchmark: weft-echo (1 loop) on each I/O backend against raw epoll, plain libevent and
# raw io_uring reference servers.
#
# For each case the servers run alternately, in a rotating order, REPS times each, every run
# on a fresh server and a random free port on 127.0.0.1; the server is pinned to one CPU and
# the load generator to another. Prints per case the median msgs/s of each server, then
# summaries with weft's ratios to the references and of its two backends, and the targets.
#
#   benchmarks/echo.sh [-d SECONDS] [-r REPS] [-c CASES] [-b|--backend epoll|io_uring|both]
#                      [--tls]
#     -d  seconds per run (default 3)       -r  runs per server and case (default 3, min 1)
#     -c  comma list of cases: p1,p16,16k,256k,churn (default p1,p16,16k,churn)
#     -b  which weft backends run (default both): epoll runs weft-epoll with the epoll and
#         libevent references, io_uring runs weft-uring with the io_uring reference
#     --tls  everything over TLS: weft-echo on a tls:// address against the libevent TLS
#         reference (ref_libevent_tls_echo, OpenSSL bufferevents) only, with a certificate
#         made for the run; loadgen --tls verifies it, and churn is a full handshake per
#         connection
#
# Environment: BUILD_DIR (default build-bench), WEFT_BENCH_NO_BUILD=1 (use what is built),
# WEFT_ECHO_BIN (a weft-echo to use), WEFT_ECHO_CMD (a full server command in place of weft's,
# with {port} standing for the port; e.g. a reference server, to test this script),
# SERVER_CPU / CLIENT_CPU (default 0 and 1), BUSY_POLL (weft-echo's --busy-poll in
# microseconds, default 50; 0 measures weft with the engine's default of no busy polling),
# URING_ZC_MIN (bytes: adds weft-uring-zc, weft-uring with --uring-zc-min, zero-copy sends).
# weft's backend is chosen with WEFT_BACKEND=epoll|io_uring in the server's environment.
set -euo pipefail

DURATION=3
REPS=3
CASES=p1,p16,16k,churn
BACKEND=both
TLS=0
usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }
args=()
for a in "$@"; do
    case $a in
    --backend) args+=(-b) ;;
    --backend=*) args+=(-b "${a#--backend=}") ;;
    --tls) args+=(-t) ;;
    --help) args+=(-h) ;;
    *) args+=("$a") ;;
    esac
done
set -- ${args[@]+"${args[@]}"}
while getopts "d:r:c:b:th" o; do
    case $o in
    d) DURATION=$OPTARG ;;
    r) REPS=$OPTARG ;;
    c) CASES=$OPTARG ;;
    b) BACKEND=$OPTARG ;;
    t) TLS=1 ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
case $BACKEND in
epoll | io_uring | both) ;;
*) echo "echo.sh: --backend wants epoll, io_uring or both" >&2; exit 2 ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benchmarks/bench_lib.sh
. "$ROOT/benchmarks/bench_lib.sh"
check_run_args

targets=(loadgen ref_epoll_echo ref_libevent_echo)
[ -d "$ROOT/examples/echo" ] && [ -z "${WEFT_ECHO_CMD:-}${WEFT_ECHO_BIN:-}" ] && targets+=(weft-echo)
bench_build "${targets[@]}"
# Built only where liburing (libevent_openssl) is; a missing one is reported below, not an
# error.
for t in ref_uring_echo ref_libevent_tls_echo; do
    [ -n "${WEFT_BENCH_NO_BUILD:-}" ] || cmake --build "$BUILD_DIR" -j 2 --target $t \
        >/dev/null 2>&1 || true
done

LOADGEN=$BUILD_DIR/benchmarks/loadgen
need_bins "$LOADGEN" "$BUILD_DIR/benchmarks/ref_epoll_echo" "$BUILD_DIR/benchmarks/ref_libevent_echo"
LG_TLS=()
if [ $TLS = 1 ]; then
    tls_certs "$TMP" || exit 1
    LG_TLS=(--tls --tls-ca "$TMP/ca.crt")
fi

# Servers: weft-epoll and weft-uring are weft-echo with WEFT_BACKEND=epoll and =io_uring;
# epoll, libevent and uring are the references.
declare -A SERVER_CMD
WEFT_BIN=${WEFT_ECHO_BIN:-$BUILD_DIR/examples/echo/weft-echo}
URING_BIN=$BUILD_DIR/benchmarks/ref_uring_echo
LEVTLS_BIN=$BUILD_DIR/benchmarks/ref_libevent_tls_echo
weft_cmd=""
if [ -n "${WEFT_ECHO_CMD:-}" ]; then
    weft_cmd=$WEFT_ECHO_CMD
elif [ -x "$WEFT_BIN" ] && [ $TLS = 1 ]; then
    weft_cmd="$WEFT_BIN --addr tls://127.0.0.1:{port} --tls-cert $TMP/server.crt"
    weft_cmd+=" --tls-key $TMP/server.key --loops 1 --busy-poll ${BUSY_POLL:-50}"
elif [ -x "$WEFT_BIN" ]; then
    weft_cmd="$WEFT_BIN --addr tcp://127.0.0.1:{port} --loops 1 --busy-poll ${BUSY_POLL:-50}"
else
    echo "note: no weft-echo at $WEFT_BIN; measuring the references only"
fi
[ -n "$weft_cmd" ] && echo "note: the weft slots run: WEFT_BACKEND=epoll|io_uring $weft_cmd"
SERVERS=()
if [ $TLS = 1 ]; then
    # One reference over TLS, whichever backends run: plain libevent with OpenSSL bufferevents.
    if [ "$BACKEND" != io_uring ] && [ -n "$weft_cmd" ]; then
        SERVER_CMD[weft-epoll]="env WEFT_BACKEND=epoll $weft_cmd"
        SERVERS+=(weft-epoll)
    fi
    if [ "$BACKEND" != epoll ] && [ -n "$weft_cmd" ]; then
        SERVER_CMD[weft-uring]="env WEFT_BACKEND=io_uring $weft_cmd"
        SERVERS+=(weft-uring)
    fi
    if [ -x "$LEVTLS_BIN" ]; then
        SERVER_CMD[libevent-tls]="$LEVTLS_BIN --port {port} --cert $TMP/server.crt --key $TMP/server.key"
        SERVERS+=(libevent-tls)
    else
        echo "note: no $LEVTLS_BIN (libevent_openssl missing?); the TLS reference is left out"
    fi
elif [ "$BACKEND" != io_uring ]; then
    if [ -n "$weft_cmd" ]; then
        SERVER_CMD[weft-epoll]="env WEFT_BACKEND=epoll $weft_cmd"
        SERVERS+=(weft-epoll)
    fi
    SERVER_CMD[epoll]="$BUILD_DIR/benchmarks/ref_epoll_echo --port {port}"
    SERVER_CMD[libevent]="$BUILD_DIR/benchmarks/ref_libevent_echo --port {port}"
    SERVERS+=(epoll libevent)
fi
if [ "$BACKEND" != epoll ] && [ $TLS = 0 ]; then
    if [ -n "$weft_cmd" ]; then
        SERVER_CMD[weft-uring]="env WEFT_BACKEND=io_uring $weft_cmd"
        SERVERS+=(weft-uring)
        if [ -n "${URING_ZC_MIN:-}" ] && [ -z "${WEFT_ECHO_CMD:-}" ]; then
            SERVER_CMD[weft-uring-zc]="env WEFT_BACKEND=io_uring $weft_cmd --uring-zc-min $URING_ZC_MIN"
            SERVERS+=(weft-uring-zc)
        fi
    fi
    if [ -x "$URING_BIN" ]; then
        SERVER_CMD[uring]="$URING_BIN --port {port}"
        SERVERS+=(uring)
    else
        echo "note: no $URING_BIN (liburing-dev missing?); the io_uring reference is left out"
    fi
fi
[ ${#SERVERS[@]} -gt 0 ] || { echo "echo.sh: no server to measure" >&2; exit 1; }
has() { [ -n "${SERVER_CMD[$1]:-}" ]; }

# ---- case table ----
declare -A CASE_LABEL CASE_ARGS
CASE_LABEL[p1]="64 conns x 64 B, pipeline 1"
CASE_ARGS[p1]="--conns 64 --size 64 --pipeline 1"
CASE_LABEL[p16]="64 conns x 64 B, pipeline 16"
CASE_ARGS[p16]="--conns 64 --size 64 --pipeline 16"
CASE_LABEL[16k]="8 conns x 16 KiB, pipeline 1"
CASE_ARGS[16k]="--conns 8 --size 16384 --pipeline 1"
CASE_LABEL[256k]="4 conns x 256 KiB, pipeline 1"
CASE_ARGS[256k]="--conns 4 --size 262144 --pipeline 1"
CASE_LABEL[churn]="churn: connect, 64 B echo, close; x16"
CASE_ARGS[churn]="--churn --conns 16 --size 64 --src-spread 250"
IFS=, read -r -a CASE_LIST <<<"$CASES"
for c in "${CASE_LIST[@]}"; do
    [ -n "${CASE_ARGS[$c]:-}" ] || { echo "echo.sh: unknown case '$c' (p1,p16,16k,256k,churn)" >&2; exit 2; }
done

FAILURES=0
NO_RING=0 # weft-uring runs that had no io_uring instance: the backend did not take effect
TLS_LABEL=""
[ $TLS = 0 ] || TLS_LABEL=" over TLS (TLS 1.3, ECDSA P-256 certificate made for the run)"
echo "echo benchmark$TLS_LABEL: ${#SERVERS[@]} servers x $REPS runs x ${DURATION}s per case; $PINNING"
echo "servers: ${SERVERS[*]} (weft-echo with --loops 1)"

run_one() { # case server rep
    local c=$1 s=$2 rep=$3 rc=0 line msgs p50 p99 cpu total eff ns rings
    if ! start_server "$s"; then
        FAILURES=$((FAILURES + 1))
        return
    fi
    rings=$(uring_fds "$SRV_PID")
    [ "$s" != weft-uring ] || [ "$rings" -gt 0 ] || NO_RING=$((NO_RING + 1))
    # shellcheck disable=SC2086
    timeout "$LG_TIMEOUT" "${CLI_PIN[@]}" "$LOADGEN" --host 127.0.0.1 --port "$SRV_PORT" \
        ${CASE_ARGS[$c]} ${LG_TLS[@]+"${LG_TLS[@]}"} --duration "$DURATION" >"$TMP/loadgen.out" 2>&1 &
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
    ns=$(awk -v m="$total" -v t="$cpu" -v hz="$CLK_TCK" 'BEGIN { if (m > 0) printf "%.0f", t / hz * 1e9 / m; else print "" }')
    echo "$c $s $rep $msgs $p50 $p99 ${eff:--} ${ns:--}" >>"$TMP/results"
    printf '  [%s run %d] %-12s %10s msgs/s  p50 %8s us  p99 %8s us  %10s msgs/server-CPU-s  %6s ns/msg\n' \
        "$c" "$rep" "$s" "$msgs" "$p50" "$p99" "${eff:--}" "${ns:--}"
}

col() { # case server field(4=msgs 5=p50 6=p99 7=msgs per server CPU-s 8=server CPU ns per msg) [median|best] -> that statistic over the runs
    local pick=median
    [ "${4:-median}" = best ] && pick=best
    awk -v c="$1" -v s="$2" -v f="$3" '$1 == c && $2 == s && $f != "-" { print $f }' "$TMP/results" 2>/dev/null | $pick
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
    printf '  %-12s %12s %10s %10s\n' server "msgs/s" "p50 us" "p99 us"
    for s in "${SERVERS[@]}"; do
        printf '  %-12s %12s %10s %10s   (median of %d)\n' "$s" "$(col "$c" "$s" 4)" \
            "$(col "$c" "$s" 5)" "$(col "$c" "$s" 6)" "$REPS"
    done
done

echo
# The ratios the summaries print: numerator/denominator, when both servers ran.
RATIOS=()
ALL_RATIOS=(weft-epoll/epoll weft-epoll/libevent weft-uring/uring weft-uring/weft-epoll
    weft-uring-zc/weft-uring)
[ $TLS = 0 ] || ALL_RATIOS=(weft-epoll/libevent-tls weft-uring/libevent-tls weft-uring/weft-epoll)
for r in "${ALL_RATIOS[@]}"; do
    has "${r%/*}" && has "${r#*/}" && RATIOS+=("$r")
done
MEET_EPOLL=yes MEET_LIBEVENT=yes MEET_URING=yes MEET_GAIN=yes MEET_TLS_EPOLL=yes MEET_TLS_URING=yes
# summary STAT: median (the figures the targets are judged on), best (the fastest run of each
# server, which on a shared machine shows what each can do when left alone), efficiency
# (messages per server CPU-second: what each message costs the server, which other jobs on the
# machine disturb far less than they disturb throughput) or cpu (server CPU ns per message,
# the same figure the other way up).
summary() {
    local stat=$1 field=4 pick=median c s r v line
    echo
    case $stat in
    median) echo "== summary: median msgs/s over $REPS runs of ${DURATION}s; $PINNING" ;;
    best)
        echo "== best run of each server (for comparison; noise only ever slows a run down)"
        pick=best
        ;;
    efficiency)
        echo "== efficiency: median messages per second of server CPU time (user + system)"
        field=7
        ;;
    cpu)
        echo "== server CPU per message: median ns of server CPU time (user + system) per echo"
        field=8
        ;;
    esac
    printf '%-6s' case
    for s in "${SERVERS[@]}"; do printf ' %12s' "$s"; done
    [ "$stat" = cpu ] || for r in "${RATIOS[@]}"; do printf ' %*s' $((${#r} > 6 ? ${#r} : 6)) "$r"; done
    echo
    for c in "${CASE_LIST[@]}"; do
        declare -A V=()
        line="CASE $c stat=$stat"
        printf '%-6s' "$c"
        for s in "${SERVERS[@]}"; do
            V[$s]=$(col "$c" "$s" $field $pick)
            printf ' %12s' "${V[$s]:--}"
            line+=" $s=${V[$s]:--}"
        done
        if [ "$stat" != cpu ]; then
            for r in "${RATIOS[@]}"; do
                v=$(ratio "${V[${r%/*}]}" "${V[${r#*/}]}")
                printf ' %*s' $((${#r} > 6 ? ${#r} : 6)) "$v"
                line+=" ${r/\//_}=$v"
                case $stat.$r in
                median.weft-epoll/epoll) below "$v" 0.90 && MEET_EPOLL=no ;;
                median.weft-epoll/libevent) below "$v" 1.0001 && MEET_LIBEVENT=no ;;
                median.weft-uring/uring) below "$v" 0.95 && MEET_URING=no ;;
                median.weft-epoll/libevent-tls) below "$v" 1.20 && MEET_TLS_EPOLL=no ;;
                median.weft-uring/libevent-tls) below "$v" 1.20 && MEET_TLS_URING=no ;;
                efficiency.weft-uring/weft-epoll) [ "$c" = 16k ] || ! below "$v" 1.10 || MEET_GAIN=no ;;
                esac
            done
        fi
        echo
        echo "$line" >>"$TMP/machine"
        unset V
    done
}
below() { [ "$1" = "-" ] || awk -v r="$1" -v t="$2" 'BEGIN { exit !(r < t) }'; } # ratio threshold
summary median
summary best
summary efficiency
summary cpu
echo
for c in "${CASE_LIST[@]}"; do printf '%-6s %s\n' "$c" "${CASE_LABEL[$c]}"; done
echo
target() { # name verdict ratio...
    local name=$1 verdict=$2 r
    shift 2
    for r in "$@"; do
        [[ " ${RATIOS[*]} " == *" $r "* ]] || { verdict="not measured"; break; }
    done
    echo "target $name: $verdict"
}
if [ $TLS = 1 ]; then
    target "weft-epoll >= 1.20x libevent-tls in every case (TLS)" $MEET_TLS_EPOLL \
        weft-epoll/libevent-tls
    target "weft-uring >= 1.20x libevent-tls in every case (TLS)" $MEET_TLS_URING \
        weft-uring/libevent-tls
else
    target "weft-epoll >= 0.90x epoll in every case" $MEET_EPOLL weft-epoll/epoll
    target "weft-epoll ahead of plain libevent in every case" $MEET_LIBEVENT weft-epoll/libevent
    target "weft-uring >= 0.95x uring in every case" $MEET_URING weft-uring/uring
    target "weft-uring >= 1.10x weft-epoll in msgs per server CPU-s, small messages" $MEET_GAIN \
        weft-uring/weft-epoll
fi
if [ $NO_RING -gt 0 ]; then
    echo "note: $NO_RING weft-uring run(s) had no io_uring instance open: weft did not take" \
        "WEFT_BACKEND=io_uring, so those figures are its default backend's"
fi
cat "$TMP/machine"
if [ $FAILURES -ne 0 ]; then
    echo "echo.sh: $FAILURES run(s) failed; see above" >&2
    exit 1
fi
