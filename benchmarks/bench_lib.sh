# shellcheck shell=bash disable=SC2034 # sourced: the variables set here are used by the caller
# Sourced by the benchmark scripts, right after they set ROOT (the source tree): the build
# directory and build step, CPU pinning, server start/stop on a free 127.0.0.1 port (never
# leaving one behind), the server's CPU time and small statistics helpers.
# The caller defines SERVER_CMD (an associative array: name -> command, {port} standing for
# the port) before calling start_server.

BENCH=$(basename "$0") # names the calling script in messages

# ---- build (Release) unless WEFT_BENCH_NO_BUILD is set; an up-to-date build is a no-op ----
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac

# bench_build TARGET...: configures BUILD_DIR if it is new, then builds the targets.
bench_build() {
    [ -z "${WEFT_BENCH_NO_BUILD:-}" ] || return 0
    if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DWEFT_BUILD_TESTS=OFF \
            -DWEFT_BUILD_BENCHMARKS=ON >/dev/null
    fi
    cmake --build "$BUILD_DIR" -j 2 --target "$@" >/dev/null
}

# need_bins FILE...: exits if one of them is not an executable.
need_bins() {
    local b
    for b in "$@"; do
        [ -x "$b" ] || { echo "$BENCH: missing $b (build failed?)" >&2; exit 1; }
    done
}

# check_run_args: exits with status 2 unless REPS and DURATION (the -r and -d options) are sane.
check_run_args() {
    [[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "$BENCH: -r wants a positive integer" >&2; exit 2; }
    [[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "$BENCH: -d wants seconds" >&2; exit 2; }
    # The load generator's deadline: twice the run plus room to connect and report.
    LG_TIMEOUT=$(awk -v d="$DURATION" 'BEGIN { printf "%d", d * 2 + 30 }')
}

# ---- pinning ----
NCPU=$(nproc 2>/dev/null || echo 1)
if [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null; then
    SRV_PIN=(taskset -c "${SERVER_CPU:-0}")
    CLI_PIN=(taskset -c "${CLIENT_CPU:-1}")
    PINNING="server on CPU ${SERVER_CPU:-0}, load generator on CPU ${CLIENT_CPU:-1}"
else
    SRV_PIN=()
    CLI_PIN=()
    PINNING="not pinned (one CPU or no taskset): server and load generator share the CPU"
fi

# ---- servers: start on a free port, stop, and never leave one behind ----
TMP=$(mktemp -d)
SRV_PID=""
LG_PID=""
PIDS=() # other background processes a script starts; killed on exit
cleanup() {
    local p
    if [ -n "$LG_PID" ]; then kill "$LG_PID" 2>/dev/null || true; fi
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    if [ -n "$SRV_PID" ]; then
        kill -TERM "$SRV_PID" 2>/dev/null || true
        sleep 0.2
        kill -KILL "$SRV_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: prints a port on 127.0.0.1 that nothing listens on, below the usual ephemeral range.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12000))
        port_in_use "$p" || { echo "$p"; return; }
    done
}

# wait_port PORT: waits up to 5 s for something to listen on it.
wait_port() {
    for _ in $(seq 100); do
        port_in_use "$1" && return 0
        sleep 0.05
    done
    return 1
}

# start_server NAME: sets SRV_PID and SRV_PORT, or fails.
start_server() {
    local name=$1 tries=0 port cmd
    while [ $tries -lt 10 ]; do
        tries=$((tries + 1))
        port=$((20000 + RANDOM % 12000)) # below the usual ephemeral range
        port_in_use "$port" && continue
        cmd=${SERVER_CMD[$name]//\{port\}/$port}
        # shellcheck disable=SC2086 # the command is a word list on purpose
        "${SRV_PIN[@]}" $cmd >"$TMP/server.log" 2>&1 &
        SRV_PID=$!
        for _ in $(seq 100); do
            if ! kill -0 "$SRV_PID" 2>/dev/null; then
                break
            fi
            if port_in_use "$port"; then
                SRV_PORT=$port
                return 0
            fi
            sleep 0.05
        done
        kill -KILL "$SRV_PID" 2>/dev/null || true
        wait "$SRV_PID" 2>/dev/null || true
        SRV_PID=""
        echo "$BENCH: $name did not come up on port $port:" >&2
        sed 's/^/  /' "$TMP/server.log" >&2
    done
    return 1
}

# stop_server NAME: SIGTERM, then SIGKILL after 3 s. Fails if the server did not exit cleanly.
stop_server() {
    local name=$1 rc=0
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for _ in $(seq 60); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$SRV_PID" 2>/dev/null; then
        echo "$BENCH: $name ignored SIGTERM for 3 s; killing it" >&2
        kill -KILL "$SRV_PID" 2>/dev/null || true
    fi
    wait "$SRV_PID" 2>/dev/null || rc=$?
    SRV_PID=""
    if [ $rc -ne 0 ] && [ $rc -ne 143 ]; then
        echo "$BENCH: $name exited with status $rc:" >&2
        sed 's/^/  /' "$TMP/server.log" >&2
        return 1
    fi
    return 0
}

# cpu_ticks, CLK_TCK, median, ratio
# shellcheck source=benchmarks/bench_stats.sh
. "$ROOT/benchmarks/bench_stats.sh"

