#!/usr/bin/env bash
# weft-redis --loops 1 against redis-server (persistence off) with redis-benchmark: -c 50,
# ping_inline ping_mbulk set get incr lpush mset, once plain and once with -P 16. The two
# servers alternate within one run, REPS times (default 3), each on a fresh random loopback
# port; the server is pinned to one CPU and redis-benchmark to another. Prints each test's
# median requests/s, the ratio weft/redis and the geometric mean of the ratios.
#
#   benchmarks/redis.sh            REPS=5 N=200000 NP=1000000 benchmarks/redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
N=${N:-100000}    # requests per test, plain
NP=${NP:-1000000} # requests per test, pipelined
TESTS=ping_inline,ping_mbulk,set,get,incr,lpush,mset
for tool in redis-server redis-benchmark redis-cli taskset python3; do
    command -v "$tool" >/dev/null || { echo "redis.sh: $tool is missing" >&2; exit 1; }
done

cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DWEFT_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j 2 --target weft-redis >/dev/null
WEFT=build/release/examples/redis/weft-redis

ncpu=$(nproc)
SERVER_CPU=0
CLIENT_CPU=$((ncpu > 1 ? 1 : 0))
out=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$out"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_server() { # name port
    case $1 in
    weft) taskset -c $SERVER_CPU "$WEFT" --port "$2" --loops 1 >/dev/null 2>&1 & ;;
    redis) taskset -c $SERVER_CPU redis-server --port "$2" --bind 127.0.0.1 --save '' \
        --appendonly no --daemonize no --logfile /dev/null >/dev/null 2>&1 & ;;
    esac
    server_pid=$!
    for _ in $(seq 100); do
        redis-cli -p "$2" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "redis.sh: $1 did not start" >&2
    exit 1
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

for rep in $(seq "$REPS"); do
    for name in weft redis; do
        port=$(free_port)
        start_server $name "$port"
        for mode in plain p16; do
            if [ $mode = plain ]; then args=(-n "$N"); else args=(-n "$NP" -P 16); fi
            timeout 300 taskset -c $CLIENT_CPU redis-benchmark -p "$port" -c 50 "${args[@]}" \
                -t $TESTS --csv >"$out/$name.$mode.$rep.csv"
        done
        stop_server
        echo "rep $rep/$REPS: $name done" >&2
    done
done

python3 - "$out" "$REPS" <<'PY'
import csv, glob, math, statistics, sys
out, reps = sys.argv[1], int(sys.argv[2])
def load(name, mode):
    runs = {}
    for path in glob.glob(f"{out}/{name}.{mode}.*.csv"):
        for row in csv.reader(open(path)):
            if row and row[0] != "test":
                runs.setdefault(row[0], []).append(float(row[1]))
    return {t: statistics.median(v) for t, v in runs.items()}
worst = 10.0
for mode, title in (("plain", "plain (-c 50)"), ("p16", "pipelined (-c 50 -P 16)")):
    w, r = load("weft", mode), load("redis", mode)
    print(f"\n{title}, median of {reps} alternating runs, requests/s")
    print(f"{'test':<16} {'weft-redis':>12} {'redis-server':>13} {'ratio':>7}")
    ratios = []
    for t in r:
        if t not in w:
            continue
        ratio = w[t] / r[t]
        ratios.append(ratio)
        worst = min(worst, ratio)
        print(f"{t:<16} {w[t]:>12.0f} {r[t]:>13.0f} {ratio:>7.2f}")
    gm = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(f"{'geometric mean':<16} {'':>12} {'':>13} {gm:>7.2f}")
print(f"\nlowest single ratio: {worst:.2f}")
PY
