#!/usr/bin/env bash
# Builds weft three times and runs the whole suite in each: a plain build (gcc),
# AddressSanitizer + UndefinedBehaviorSanitizer (clang, with the libFuzzer smoke runs), and
# ThreadSanitizer (gcc, with the tests' slow-machine allowances); then cross-builds it for
# Windows and runs the Windows suite under Wine (scripts/windows.sh test). Also checks
# formatting. Exits non-zero on the first failure.
#
# WEFT_TEST_WINDOWS=0 leaves the Windows suite out (it needs mingw-w64 and Wine, about 200
# MiB of packages, and a few minutes the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
windows=${WEFT_TEST_WINDOWS:-1}
packages=("${WEFT_BUILD_PACKAGES[@]}" clang libclang-rt-14-dev clang-format
    "${WEFT_TEST_PACKAGES[@]}")
[ "$windows" = 0 ] || packages+=("${WEFT_WINDOWS_PACKAGES[@]}")
weft_require_packages "${packages[@]}"

jobs=$(nproc 2>/dev/null || echo 2)

echo "== format check"
git ls-files -- '*.c' '*.h' 2>/dev/null | xargs -r clang-format --dry-run --Werror

run_suite() {
    local dir=$1
    shift
    echo "== build $dir"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j "$jobs" >/dev/null
    echo "== test $dir"
    (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 600)
}

run_suite build/test-release -DCMAKE_C_COMPILER=gcc
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build/test-asan -DCMAKE_C_COMPILER=clang -DWEFT_SANITIZE=address,undefined \
    -DWEFT_BUILD_FUZZ=ON -DWEFT_BUILD_BENCHMARKS=OFF
# ThreadSanitizer slows a program down 5-15x, and more on a loaded machine: the TSan suite
# runs with the same slow-machine allowances as valgrind (WEFT_TEST_SLOW=1; see
# tests/support/harness.h): relaxed time bounds and fewer repetitions, every assertion kept.
WEFT_TEST_SLOW=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    run_suite build/test-tsan -DCMAKE_C_COMPILER=gcc -DWEFT_SANITIZE=thread \
    -DWEFT_BUILD_BENCHMARKS=OFF
if [ "$windows" != 0 ]; then
    echo "== Windows suite (cross-built with mingw-w64, run under Wine)"
    bash scripts/windows.sh test
fi
echo "== all suites passed"
