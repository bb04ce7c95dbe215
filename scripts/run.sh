#!/usr/bin/env bash
# Builds weft and runs the main job: weft-redis, the Redis-protocol sample, on
# 127.0.0.1:6380 (Ctrl-C stops it). Talk to it with redis-cli -p 6380. Extra arguments go to
# the server (see weft-redis --help).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
weft_require_packages "${WEFT_LIB_PACKAGES[@]}"
# Only what the main job needs: the weft-redis target and the library it links, no tests or
# benchmarks (the options are given every time, so an older build/release cache cannot differ).
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DWEFT_BUILD_EXAMPLES=ON \
    -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_BENCHMARKS=OFF -DWEFT_BUILD_FUZZ=OFF >/dev/null
cmake --build build/release --target weft-redis -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
echo "weft-redis on 127.0.0.1:6380 (Ctrl-C stops it); try: redis-cli -p 6380 ping"
exec build/release/examples/redis/weft-redis --port 6380 "$@"
