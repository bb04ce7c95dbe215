#!/usr/bin/env bash
# Soak: weft-echo under a mix of echo load, connection churn and slow peers for MINUTES
# (default 2), watching the server for leaks.
#
#   benchmarks/soak.sh [MINUTES]
#
# Builds a Release tree in build/soak, starts weft-echo (2 loops, line codec, idle timeout
# 5 s, read timeout 1 s, max 2000 connections) on a free loopback port and runs
# benchmarks/soak_client.c against it: 50 echo connections checking every line, 2 threads
# of connect/echo/reset churn, 50 slow peers trickling a byte per 100 ms (closed by the
# read timeout, then reconnecting). Every 10 s it prints the server's RSS, its open fds and
# its statistics (SIGUSR1 makes weft-echo print them to stderr).
#
# At the end it compares the server's RSS at the end of the warm-up (the first quarter of
# the run, at least 20 s) with its RSS at the end, and fails if it grew by more than 5 %.
# It also fails if the client saw a wrong echo or a well-behaved connection closed, or if
# the server died. WEFT_JOBS sets the build's parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
weft_require_packages "${WEFT_BUILD_PACKAGES[@]}"

minutes=${1:-2}
if ! [[ $minutes =~ ^[0-9]+$ ]] || [ "$minutes" -lt 1 ]; then
    echo "usage: benchmarks/soak.sh [MINUTES]" >&2
    exit 2
fi
seconds=$((minutes * 60))
warmup=$((seconds / 4))
[ "$warmup" -lt 20 ] && warmup=20
build=build/soak
jobs=${WEFT_JOBS:-2}

echo "== build $build (Release)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWEFT_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target weft-echo soak_client >/dev/null
echo_bin=$(find "$build" -type f -name weft-echo -perm -u+x | head -n 1)
client_bin=$build/benchmarks/soak_client

# A free port: bind port 0 and read back what the kernel chose.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp "${TMPDIR:-/tmp}/weft-soak.XXXXXX")
"$echo_bin" --addr "tcp://127.0.0.1:$port" --loops 2 --codec line --idle-ms 5000 \
    --read-timeout-ms 1000 --max-conns 2000 2>"$log" &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -f "$log"
}
trap cleanup EXIT
sleep 0.5
kill -0 "$server"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$server/status"; }
fds() { find "/proc/$server/fd" -mindepth 1 -maxdepth 1 | wc -l; }
stats() {
    local before
    before=$(wc -l <"$log")
    kill -USR1 "$server"
    sleep 0.2
    tail -n +"$((before + 1))" "$log" | grep -E '^total' || true
}

echo "== soak ${minutes} min on 127.0.0.1:$port (warm-up ${warmup} s)"
"$client_bin" --port "$port" --seconds "$seconds" --echo 50 --churn 2 --slow 50 &
client=$!

start=$(date +%s)
rss_warm=
rss_first=$(rss_kb)
printf '%6s %10s %6s  %s\n' "t(s)" "RSS(KiB)" "fds" "stats: loop live accepted closed bytes_in bytes_out pauses"
while kill -0 "$client" 2>/dev/null; do
    sleep 10
    kill -0 "$server" || { echo "soak: weft-echo died" >&2; exit 1; }
    t=$(($(date +%s) - start))
    rss=$(rss_kb)
    printf '%6d %10d %6d  %s\n' "$t" "$rss" "$(fds)" "$(stats)"
    if [ -z "$rss_warm" ] && [ "$t" -ge "$warmup" ]; then
        rss_warm=$rss
    fi
done
set +e
wait "$client"
client_rc=$?
set -e
rss_end=$(rss_kb)
[ -n "$rss_warm" ] || rss_warm=$rss_first
growth=$(awk -v a="$rss_warm" -v b="$rss_end" 'BEGIN { printf "%.2f", (b - a) * 100.0 / a }')
echo "== RSS: start ${rss_first} KiB, after warm-up ${rss_warm} KiB, end ${rss_end} KiB: ${growth} % growth after warm-up"
if [ "$client_rc" -ne 0 ]; then
    echo "soak: the client saw wrong echoes or closed well-behaved connections" >&2
    exit 1
fi
if awk -v g="$growth" 'BEGIN { exit !(g > 5.0) }'; then
    echo "soak: RSS grew by more than 5 % after warm-up" >&2
    exit 1
fi
echo "== soak passed"
