#!/usr/bin/env bash
# Runs the integration tests (ctest label "integration") under valgrind memcheck, as a
# check beside the ASan/UBSan and TSan runs of scripts/test.sh: memcheck sees uninitialised
# reads and leaks in an unmodified, unsanitised build.
#
#   scripts/valgrind.sh [CTEST-ARGS...]      e.g. scripts/valgrind.sh -R fault_peers
#
# Builds a plain Debug build (gcc, no sanitizer) in build/valgrind with valgrind set as the
# tests' launcher (CMAKE_CROSSCOMPILING_EMULATOR, which add_test puts in front of every
# test program), then runs `ctest -L integration`. Any memcheck error, and any definite or
# indirect leak, makes that test exit 99 and fail; possibly-lost and still-reachable blocks
# are not errors (libevent and glibc keep some for the process's life). Children the tests
# start (weft-redis) run under memcheck too; system tools (redis-cli, redis-benchmark) do
# not.
#
# valgrind slows a program down 20-50x, so the script sets WEFT_TEST_SLOW=1: the tests then
# relax their time bounds (timeouts 60 s instead of 10 s, latency bounds loosened) and scale
# down repetition counts, but keep every assertion. It also sets WEFT_TEST_VALGRIND=1: valgrind
# emulates RLIMIT_NOFILE (a descriptor over a lowered limit is accepted by the kernel, then
# closed by valgrind, so the peer is lost), so the tests that lower the fd limit
# (test_net_emfile, the fd-limit cases of test_net_fault_flood) report themselves skipped
# there; the sanitizer runs cover them. Each test gets up to WEFT_VALGRIND_TIMEOUT
# seconds (default 1800). WEFT_JOBS sets the build's and ctest's parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
weft_require_packages "${WEFT_BUILD_PACKAGES[@]}" valgrind "${WEFT_TEST_PACKAGES[@]}"

build=build/valgrind
jobs=${WEFT_JOBS:-2}
timeout=${WEFT_VALGRIND_TIMEOUT:-1800}

memcheck="valgrind;--tool=memcheck;--error-exitcode=99;--leak-check=full"
memcheck+=";--errors-for-leak-kinds=definite,indirect;--show-leak-kinds=definite,indirect"
memcheck+=";--num-callers=30;--fair-sched=yes;--trace-children=yes"
memcheck+=";--trace-children-skip=*/redis-cli,*/redis-benchmark,*/redis-server,/bin/*,/usr/bin/*"

echo "== build $build (gcc, Debug, tests under valgrind memcheck)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=gcc -DWEFT_SANITIZE= \
    -DWEFT_BUILD_BENCHMARKS=OFF "-DCMAKE_CROSSCOMPILING_EMULATOR=$memcheck" >/dev/null
cmake --build "$build" -j "$jobs" >/dev/null

echo "== ctest -L integration under memcheck (WEFT_TEST_SLOW=1, ${timeout}s per test)"
cd "$build"
WEFT_TEST_SLOW=1 WEFT_TEST_VALGRIND=1 ctest -L integration --output-on-failure -j "$jobs" --timeout "$timeout" "$@"
echo "== memcheck: no errors, no definite or indirect leaks"
