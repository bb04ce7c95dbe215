#!/usr/bin/env bash
# Builds weft and runs the main job: the echo example on 127.0.0.1:9000 (Ctrl-C stops it).
# Extra arguments go to the server.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
weft_require_packages "${WEFT_BUILD_PACKAGES[@]}"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DWEFT_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
echo "weft-echo listening on tcp://127.0.0.1:9000 (Ctrl-C stops it)"
exec build/release/examples/echo/weft-echo --addr tcp://127.0.0.1:9000 "$@"
