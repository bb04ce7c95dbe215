#!/usr/bin/env bash
# weft-redis --loops 1 on each I/O backend against redis-server (persistence off) with
# redis-benchmark: -c 50, ping_inline ping_mbulk set get incr lpush mset, once plain and once
# with -P 16.
#
# The servers run side by side (fresh ones for every repetition, on random loopback ports),
# pinned to one CPU; redis-benchmark is pinned to another. Every test is run against one
# server and then at once against the others, the order rotated on every repetition, so a
# burst of load from elsewhere on the machine hits all alike. Prints each test's median
# requests/s over REPS repetitions (default 5), each weft's ratio to redis, the geometric
# mean of the ratios, the servers' CPU time per request (weft/redis, from /proc; below 1
# means weft spent less), weft-uring against weft-epoll, and the load average before and
# after. weft-redis runs with its defaults (which include --busy-poll 50) plus WEFT_ARGS;
# weft-epoll and weft-uring are it with WEFT_BACKEND=epoll and =io_uring.
#
# With --tls every server also listens on a TLS port (the same certificate, made for the run
# with the openssl command, --tls-auth-clients no) and redis-benchmark runs with --tls
# --cacert against that port; N and NP default to 30000 and 200000 then.
#
#   benchmarks/redis.sh [-b|--backend epoll|io_uring|both] [--tls]     (default both)
#   REPS=7 N=200000 NP=2000000 benchmarks/redis.sh
#   WEFT_ARGS="--busy-poll 0" benchmarks/redis.sh
set -euo pipefail
BACKEND=${BACKEND:-both}
TLS=0
while [ $# -gt 0 ]; do
    case $1 in
    --tls) TLS=1; shift ;;
    -b | --backend) BACKEND=${2:-}; shift 2 || shift ;;
    --backend=*) BACKEND=${1#--backend=}; shift ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "redis.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case $BACKEND in
epoll) SERVERS=(weft-epoll redis) ;;
io_uring) SERVERS=(weft-uring redis) ;;
both) SERVERS=(weft-epoll weft-uring redis) ;;
*) echo "redis.sh: --backend wants epoll, io_uring or both" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
# shellcheck source=benchmarks/bench_stats.sh
. benchmarks/bench_stats.sh # cpu_ticks, uring_fds, tls_certs

REPS=${REPS:-5}
# Over TLS a request costs several times more, so fewer of them keep a run to minutes.
if [ $TLS = 1 ]; then DN=30000 DNP=200000; else DN=100000 DNP=1000000; fi
N=${N:-$DN}   # requests per test, plain
NP=${NP:-$DNP} # requests per test, pipelined
LIMIT=${LIMIT:-120} # seconds one redis-benchmark run may take
read -r -a WEFT_ARGS <<<"${WEFT_ARGS:-}"
TESTS=(ping_inline ping_mbulk set get incr lpush mset)

missing=()
for tool in redis-server redis-benchmark redis-cli taskset timeout python3 cmake openssl; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "redis.sh: missing: ${missing[*]}" >&2
    echo "redis.sh: install with: sudo apt-get install redis-server redis-tools util-linux" \
        "coreutils python3 cmake" >&2
    exit 1
fi

cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DWEFT_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j 2 --target weft-redis >/dev/null
WEFT=build/release/examples/redis/weft-redis

ncpu=$(nproc)
SERVER_CPU=0
CLIENT_CPU=$((ncpu > 1 ? 1 : 0))
[ "$ncpu" -gt 1 ] || echo "redis.sh: one CPU only: server and client share it" >&2

out=$(mktemp -d)
declare -A pid=() port=() tport=()
stop_servers() {
    local p
    for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pid[@]}"; do wait "$p" 2>/dev/null || true; done
    pid=()
}
bench_pid=
cleanup() {
    [ -z "$bench_pid" ] || kill "$bench_pid" 2>/dev/null || true
    stop_servers
    rm -rf "$out"
}
trap cleanup EXIT
trap 'echo "redis.sh: interrupted" >&2; exit 130' INT TERM

TLS_ARGS=()
BENCH_TLS=()
if [ $TLS = 1 ]; then
    # A throw-away CA and a server certificate for 127.0.0.1, for this run only.
    tls_certs "$out" || exit 1
    TLS_ARGS=(--tls-cert-file "$out/server.crt" --tls-key-file "$out/server.key"
        --tls-auth-clients no)
    BENCH_TLS=(--tls --cacert "$out/ca.crt")
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

NO_RING=0 # weft-uring servers that had no io_uring instance: the backend did not take effect
start_server() { # name
    local p tp=0 tls=()
    p=$(free_port)
    if [ $TLS = 1 ]; then
        tp=$(free_port)
        tls=(--tls-port "$tp" "${TLS_ARGS[@]}")
    fi
    case $1 in
    weft-epoll | weft-uring)
        local b=epoll
        [ "$1" = weft-uring ] && b=io_uring
        taskset -c $SERVER_CPU env WEFT_BACKEND=$b "$WEFT" --port "$p" --loops 1 \
            ${tls[@]+"${tls[@]}"} ${WEFT_ARGS[@]+"${WEFT_ARGS[@]}"} >"$out/$1.log" 2>&1 &
        ;;
    redis) taskset -c $SERVER_CPU redis-server --port "$p" --bind 127.0.0.1 --save '' \
        --appendonly no --daemonize no --logfile '' ${tls[@]+"${tls[@]}"} >"$out/$1.log" 2>&1 & ;;
    esac
    pid[$1]=$!
    port[$1]=$p
    [ $TLS = 1 ] && tport[$1]=$tp
    for _ in $(seq 100); do
        if redis-cli -p "$p" ping >/dev/null 2>&1; then
            [ "$1" != weft-uring ] || [ "$(uring_fds "${pid[$1]}")" -gt 0 ] || NO_RING=$((NO_RING + 1))
            return 0
        fi
        kill -0 "${pid[$1]}" 2>/dev/null || break
        sleep 0.05
    done
    echo "redis.sh: $1 did not start on port $p:" >&2
    cat "$out/$1.log" >&2
    exit 1
}

bench() { # name mode test rep index
    local args csv=$out/$1.$2.$(printf %02d "$5").$4.csv
    if [ "$2" = plain ]; then args=(-n "$N"); else args=(-n "$NP" -P 16); fi
    # In the background and waited for, so that a signal is handled at once, not after
    # the run.
    local bp=${port[$1]}
    [ $TLS = 1 ] && bp=${tport[$1]}
    timeout "$LIMIT" taskset -c $CLIENT_CPU redis-benchmark -p "$bp" \
        ${BENCH_TLS[@]+"${BENCH_TLS[@]}"} -c 50 "${args[@]}" -t "$3" --csv >"$csv" \
        2>"$out/bench.err" &
    bench_pid=$!
    local t0 t1
    t0=$(cpu_ticks "${pid[$1]}")
    if ! wait "$bench_pid"; then
        echo "redis.sh: redis-benchmark against $1 ($3, $2) failed or took over ${LIMIT}s:" >&2
        cat "$out/bench.err" >&2
        exit 1
    fi
    t1=$(cpu_ticks "${pid[$1]}")
    echo "$((t1 - t0))" >"${csv%.csv}.cpu"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for rep in $(seq "$REPS"); do
    for name in "${SERVERS[@]}"; do start_server "$name"; done
    n=${#SERVERS[@]}
    order=()
    for k in $(seq 0 $((n - 1))); do order+=("${SERVERS[$(((rep - 1 + k) % n))]}"); done
    for mode in plain p16; do
        for i in "${!TESTS[@]}"; do
            for name in "${order[@]}"; do bench "$name" "$mode" "${TESTS[$i]}" "$rep" "$i"; done
        done
    done
    stop_servers
    echo "rep $rep/$REPS done" >&2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
[ $TLS = 0 ] || echo "every server over TLS (redis-benchmark --tls)"

python3 - "$out" "$REPS" "$load_before" "$load_after" "$(nproc)" "$N" "$NP" "$CLK_TCK" \
    "${SERVERS[@]}" <<'PY'
import csv, glob, math, statistics, sys
out, reps, before, after, ncpu = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
nreq = {"plain": int(sys.argv[6]), "p16": int(sys.argv[7])}
hz = float(sys.argv[8])
servers = sys.argv[9:]
wefts = [s for s in servers if s != "redis"]
def load(name, mode):
    runs, cpu, order = {}, {}, []
    for path in sorted(glob.glob(f"{out}/{name}.{mode}.*.csv")):
        ticks = float(open(path[:-4] + ".cpu").read())
        for row in csv.reader(open(path)):
            if row and row[0] != "test":
                if row[0] not in runs:
                    order.append(row[0])
                rps = float(row[1])
                runs.setdefault(row[0], []).append(rps)
                # every server gets the same number of requests: ticks compare as they are
                cpu.setdefault(row[0], []).append(ticks)
    return ({t: statistics.median(runs[t]) for t in order},
            {t: statistics.median(cpu[t]) for t in order})
def gmean(xs):
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")
print(f"load average {before} before, {after} after ({ncpu} CPUs)")
worst = {w: math.inf for w in wefts}
worst_gain = math.inf
machine = []
for mode, title in (("plain", "plain (-c 50)"), ("p16", "pipelined (-c 50 -P 16)")):
    data = {s: load(s, mode) for s in servers}
    r, rc = data["redis"]
    print(f"\n{title}, median of {reps} alternating runs, requests/s; cpu/req is weft's over redis's")
    head = f"{'test':<16}" + "".join(f" {s:>12}" for s in servers)
    for w in wefts:
        head += f" {w + '/redis':>17} {'cpu/req':>8}"
    both = "weft-epoll" in wefts and "weft-uring" in wefts
    if both:
        head += f" {'uring/epoll':>12} {'cpu/req':>8}"
    print(head)
    ratios = {w: [] for w in wefts}
    gains = []
    for t in r:
        if any(t not in data[w][0] for w in wefts):
            continue
        line = f"{t:<16}" + "".join(f" {data[s][0][t]:>12.0f}" for s in servers)
        for w in wefts:
            (x, xc) = data[w]
            ratio = x[t] / r[t]
            ratios[w].append(ratio)
            worst[w] = min(worst[w], ratio)
            cpu = f"{xc[t] / rc[t]:>8.2f}" if rc[t] > 0 else f"{'-':>8}"
            line += f" {ratio:>17.2f} {cpu}"
        if both:
            (e, ec), (u, uc) = data["weft-epoll"], data["weft-uring"]
            gain = u[t] / e[t]
            gains.append(gain)
            worst_gain = min(worst_gain, gain)
            cpu = f"{uc[t] / ec[t]:>8.2f}" if ec[t] > 0 else f"{'-':>8}"
            line += f" {gain:>12.2f} {cpu}"
        print(line)
        for s in servers:
            us = data[s][1][t] / hz * 1e6 / nreq[mode]
            machine.append(f"REDIS mode={mode} test={t.split()[0]} server={s} rps={data[s][0][t]:.0f} "
                           f"cpu_us_per_req={us:.3f}")
    line = f"{'geometric mean':<16}" + "".join(f" {'':>12}" for s in servers)
    for w in wefts:
        line += f" {gmean(ratios[w]):>17.2f} {'':>8}"
    if both:
        line += f" {gmean(gains):>12.2f}"
    print(line)
print()
for w in wefts:
    print(f"lowest single ratio {w}/redis: {worst[w]:.2f}")
if worst_gain != math.inf:
    verdict = "yes" if worst_gain >= 0.95 else "no"
    print(f"lowest single ratio weft-uring/weft-epoll: {worst_gain:.2f}")
    print(f"target weft-uring not behind weft-epoll by more than noise (every test >= 0.95x): {verdict}")
print("\n".join(machine))
PY
if [ "$NO_RING" -gt 0 ]; then
    echo "note: $NO_RING weft-uring server(s) had no io_uring instance open: weft did not take" \
        "WEFT_BACKEND=io_uring, so those figures are its default backend's"
fi
