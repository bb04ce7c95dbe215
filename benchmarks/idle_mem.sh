#!/usr/bin/env bash
# Idle-connection memory: the server's RSS growth per connection that did one echo and then
# sits idle, for weft-echo (1 loop) on each I/O backend, the raw epoll reference and plain
# libevent.
#
#   benchmarks/idle_mem.sh [-n CONNS] [-w WARMUP] [-m spread|burst|both] [--burst]
#                          [-b|--backend epoll|io_uring|both] [--tls]
#     -n  idle connections to measure (default 10000; 3000 with --tls)
#     -w  warm-up connections opened before the baseline (default 256)
#     -m  how the CONNS connections do their echo (default spread):
#         spread  in batches of 256, each batch's echoes awaited before the next connects
#         burst   all connect, then all send 64 B, then all echoes are read, so the server
#                 sees every connection write at about the same moment
#         both    one run of each, side by side
#     --burst  the same as -m burst
#     -b  weft's backend (default both): weft-epoll runs weft-echo with WEFT_BACKEND=epoll,
#         weft-uring with WEFT_BACKEND=io_uring
#     --tls  idle TLS connections (each did its handshake and one echo): weft-echo on a
#         tls:// address, the libevent TLS reference, redis-server with --tls-port and
#         weft-redis with --tls-port (these two answer a PING), one certificate made for the
#         run; the handshakes run one after the other also with --burst
#
# For each server and mode: start it, open WARMUP connections (one echo each) so one-time
# costs are paid, read VmRSS, open CONNS more, wait for the server to settle, read VmRSS
# again, and print (growth in bytes) / CONNS. RSS is user-space memory only; kernel socket
# buffers are not in it.
#
# Environment: BUILD_DIR (default build-bench), WEFT_BENCH_NO_BUILD=1, WEFT_ECHO_BIN,
# WEFT_ECHO_CMD (as for echo.sh, {port} stands for the port). GNET_ECHO_CMD and
# LIBHV_ECHO_CMD add a gnet and a libhv echo server ({port} likewise; one event loop each)
# when they are set; nothing is fetched or built for them.
set -euo pipefail

CONNS=
WARMUP=256
MODE=spread
BACKEND=both
TLS=0
usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }
args=()
for a in "$@"; do
    case $a in
    --burst) args+=(-m burst) ;;
    --backend) args+=(-b) ;;
    --backend=*) args+=(-b "${a#--backend=}") ;;
    --tls) args+=(-t) ;;
    --help) args+=(-h) ;;
    *) args+=("$a") ;;
    esac
done
set -- ${args[@]+"${args[@]}"}
while getopts "n:w:m:b:th" o; do
    case $o in
    n) CONNS=$OPTARG ;;
    w) WARMUP=$OPTARG ;;
    m) MODE=$OPTARG ;;
    b) BACKEND=$OPTARG ;;
    t) TLS=1 ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
# A TLS connection's handshake takes the client a few milliseconds: fewer of them by default.
[ -n "$CONNS" ] || { [ $TLS = 1 ] && CONNS=3000 || CONNS=10000; }
[[ $CONNS =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ ]] || { usage >&2; exit 2; }
case $MODE in
spread | burst) MODES=("$MODE") ;;
both) MODES=(spread burst) ;;
*) usage >&2; exit 2 ;;
esac
case $BACKEND in
epoll) WEFT_SLOTS=(weft-epoll) ;;
io_uring) WEFT_SLOTS=(weft-uring) ;;
both) WEFT_SLOTS=(weft-epoll weft-uring) ;;
*) usage >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benchmarks/bench_lib.sh
. "$ROOT/benchmarks/bench_lib.sh"

targets=(idle_conns ref_epoll_echo ref_libevent_echo)
[ -d "$ROOT/examples/echo" ] && [ -z "${WEFT_ECHO_CMD:-}${WEFT_ECHO_BIN:-}" ] && targets+=(weft-echo)
[ $TLS = 1 ] && [ -d "$ROOT/examples/redis" ] && targets+=(weft-redis)
bench_build "${targets[@]}"
# Built only where libevent_openssl is; a missing one is reported below, not an error.
[ $TLS = 0 ] || [ -n "${WEFT_BENCH_NO_BUILD:-}" ] ||
    cmake --build "$BUILD_DIR" -j 2 --target ref_libevent_tls_echo >/dev/null 2>&1 || true
IDLE=$BUILD_DIR/benchmarks/idle_conns
need_bins "$IDLE"
CLIENT_TLS=()
if [ $TLS = 1 ]; then
    tls_certs "$TMP" || exit 1
    CLIENT_TLS=(--tls-ca "$TMP/ca.crt")
fi
declare -A CLIENT_ARGS # per server: what else idle_conns needs (--redis for a Redis server)

declare -A SERVER_CMD
SERVERS=()
WEFT_BIN=${WEFT_ECHO_BIN:-$BUILD_DIR/examples/echo/weft-echo}
weft_cmd=""
if [ -n "${WEFT_ECHO_CMD:-}" ]; then
    weft_cmd=$WEFT_ECHO_CMD
    echo "note: the weft slots run: $WEFT_ECHO_CMD"
elif [ -x "$WEFT_BIN" ] && [ $TLS = 1 ]; then
    weft_cmd="$WEFT_BIN --addr tls://127.0.0.1:{port} --tls-cert $TMP/server.crt"
    weft_cmd+=" --tls-key $TMP/server.key --loops 1"
elif [ -x "$WEFT_BIN" ]; then
    weft_cmd="$WEFT_BIN --addr tcp://127.0.0.1:{port} --loops 1"
else
    echo "note: no weft-echo at $WEFT_BIN; measuring the references only"
fi
if [ -n "$weft_cmd" ]; then
    for s in "${WEFT_SLOTS[@]}"; do
        b=epoll
        [ "$s" = weft-uring ] && b=io_uring
        SERVER_CMD[$s]="env WEFT_BACKEND=$b $weft_cmd"
        SERVERS+=("$s")
    done
fi
if [ $TLS = 1 ]; then
    # The references over TLS: libevent with OpenSSL bufferevents, redis-server's TLS port
    # and, beside it, weft-redis's (on weft's first backend of -b; its plain listener takes
    # a port of the kernel's choosing). Both Redis servers are sent a PING, not an echo.
    LEVTLS=$BUILD_DIR/benchmarks/ref_libevent_tls_echo
    if [ -x "$LEVTLS" ]; then
        SERVER_CMD[libevent-tls]="$LEVTLS --port {port} --cert $TMP/server.crt --key $TMP/server.key"
        SERVERS+=(libevent-tls)
    else
        echo "note: no $LEVTLS (libevent_openssl missing?); the libevent TLS reference is left out"
    fi
    tls_redis="--tls-port {port} --tls-cert-file $TMP/server.crt --tls-key-file $TMP/server.key --tls-auth-clients no"
    WREDIS=$BUILD_DIR/examples/redis/weft-redis
    if [ -x "$WREDIS" ]; then
        b=epoll
        [ "${WEFT_SLOTS[0]}" = weft-uring ] && b=io_uring
        SERVER_CMD[weft-redis]="env WEFT_BACKEND=$b $WREDIS --port 0 --loops 1 $tls_redis"
        CLIENT_ARGS[weft-redis]=--redis
        SERVERS+=(weft-redis)
    else
        echo "note: no $WREDIS; weft-redis is left out"
    fi
    if command -v redis-server >/dev/null; then
        # Its default maxclients, 10,000, would refuse the last of the warm-up and -n ones.
        SERVER_CMD[redis]="redis-server --port 0 --bind 127.0.0.1 --dir $TMP --appendonly no"
        SERVER_CMD[redis]+=" --maxclients $((CONNS + WARMUP + 64)) $tls_redis"
        CLIENT_ARGS[redis]=--redis
        SERVERS+=(redis)
    else
        echo "note: no redis-server (Debian: redis-server); it is left out"
    fi
else
    SERVER_CMD[epoll]="$BUILD_DIR/benchmarks/ref_epoll_echo --port {port}"
    SERVER_CMD[libevent]="$BUILD_DIR/benchmarks/ref_libevent_echo --port {port}"
    SERVERS+=(epoll libevent)
fi
# The other frameworks the issue compares with, only when the caller has them.
for ref in gnet libhv; do
    var=$(echo "$ref" | tr '[:lower:]' '[:upper:]')_ECHO_CMD
    if [ -n "${!var:-}" ]; then
        SERVER_CMD[$ref]=${!var}
        SERVERS+=("$ref")
    else
        echo "note: $ref not measured (set $var to a command with {port} to include it)"
    fi
done

# Servers and the client inherit this; each side needs one fd per connection and a few more.
NEED=$((CONNS + WARMUP + 64))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED" ]; then
    ulimit -n "$NEED" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED" ]; then
        echo "idle_mem.sh: need 'ulimit -n' >= $NEED; the hard limit is $(ulimit -Hn)" >&2
        exit 1
    fi
fi

# Unpinned: the memory a server holds does not depend on where it runs.
SRV_PIN=()
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

wait_line() { # word timeout_s: waits until the client prints a line starting with word
    local word=$1 deadline=$((SECONDS + $2))
    while [ $SECONDS -lt "$deadline" ]; do
        grep -q "^$word " "$TMP/client.out" 2>/dev/null && return 0
        kill -0 "$LG_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

FAILURES=0
NO_RING=0 # weft-uring runs that had no io_uring instance: the backend did not take effect
declare -A RESULT
[ $TLS = 0 ] || echo "over TLS: every connection did a full handshake (TLS 1.3, ECDSA P-256) before its echo"
echo "idle memory: $CONNS idle connections after $WARMUP warm-up ones; servers: ${SERVERS[*]}; modes: ${MODES[*]}"
for mode in "${MODES[@]}"; do
    burst_arg=()
    [ "$mode" = burst ] && burst_arg=(--burst)
    for s in "${SERVERS[@]}"; do
        if ! start_server "$s"; then
            FAILURES=$((FAILURES + 1))
            continue
        fi
        rss_start=$(rss_kb "$SRV_PID")
        [ "$s" != weft-uring ] || [ "$(uring_fds "$SRV_PID")" -gt 0 ] || NO_RING=$((NO_RING + 1))
        # shellcheck disable=SC2086 # CLIENT_ARGS is a word list
        "$IDLE" --port "$SRV_PORT" --conns "$CONNS" --warmup "$WARMUP" --hold 300 ${burst_arg[@]+"${burst_arg[@]}"} \
            ${CLIENT_TLS[@]+"${CLIENT_TLS[@]}"} ${CLIENT_ARGS[$s]:-} >"$TMP/client.out" 2>"$TMP/client.err" &
        LG_PID=$!
        ok=1
        if wait_line WARM 120; then
            sleep 0.5
            rss0=$(rss_kb "$SRV_PID")
            kill -USR1 "$LG_PID"
            if wait_line READY 300; then
                sleep 1 # let the server finish with the last batch
                rss1=$(rss_kb "$SRV_PID")
            else
                ok=0
            fi
        else
            ok=0
        fi
        kill -USR1 "$LG_PID" 2>/dev/null || true
        wait "$LG_PID" || ok=0
        LG_PID=""
        kill -TERM "$SRV_PID" 2>/dev/null || true
        rc=0
        wait "$SRV_PID" || rc=$?
        SRV_PID=""
        if [ $ok -eq 0 ]; then
            echo "  $s ($mode): FAILED" >&2
            sed 's/^/    /' "$TMP/client.err" "$TMP/server.log" >&2
            FAILURES=$((FAILURES + 1))
            continue
        fi
        [ $rc -eq 0 ] || [ $rc -eq 143 ] || echo "  note: $s exited with status $rc on SIGTERM" >&2
        per=$(awk -v a="$rss0" -v b="$rss1" -v n="$CONNS" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
        RESULT[$s.$mode]=$per
        printf '  %-12s %-6s RSS %7s kB at start, %7s kB after warm-up, %7s kB with %d more idle: %5s bytes/conn\n' \
            "$s" "$mode" "$rss_start" "$rss0" "$rss1" "$CONNS" "$per"
        echo "IDLE $s mode=$mode rss_start_kb=$rss_start rss_base_kb=$rss0 rss_idle_kb=$rss1 conns=$CONNS bytes_per_conn=$per" >>"$TMP/machine"
    done
done

echo
printf '%-13s' server
for mode in "${MODES[@]}"; do printf ' %16s' "$mode B/conn"; done
echo
for s in "${SERVERS[@]}"; do
    printf '%-13s' "$s"
    for mode in "${MODES[@]}"; do printf ' %16s' "${RESULT[$s.$mode]:--}"; done
    echo
done
for s in "${WEFT_SLOTS[@]}"; do
    for mode in "${MODES[@]}"; do
        [ -n "${RESULT[$s.$mode]:-}" ] || continue
        if [ $TLS = 1 ]; then # no target of its own: beside redis-server's idle TLS connections
            [ -n "${RESULT[redis.$mode]:-}" ] &&
                echo "$s over redis-server, bytes per idle TLS connection ($mode):" \
                    "$(ratio "${RESULT[$s.$mode]}" "${RESULT[redis.$mode]}")"
            continue
        fi
        verdict=no
        [ "${RESULT[$s.$mode]}" -le 320 ] && verdict=yes
        echo "target $s <= 320 bytes per idle connection ($mode): $verdict"
    done
done
if [ $NO_RING -gt 0 ]; then
    echo "note: $NO_RING weft-uring run(s) had no io_uring instance open: weft did not take" \
        "WEFT_BACKEND=io_uring, so those figures are its default backend's"
fi
[ -f "$TMP/machine" ] && cat "$TMP/machine"
if [ $FAILURES -ne 0 ]; then
    echo "idle_mem.sh: $FAILURES server(s) failed; see above" >&2
    exit 1
fi
