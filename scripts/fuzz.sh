#!/usr/bin/env bash
# Long fuzzing runs: builds the libFuzzer targets (clang, -DWEFT_BUILD_FUZZ=ON, ASan+UBSan)
# in build/fuzz and runs each tests/fuzz/fuzz_<unit> in turn for SECONDS (default 600),
# starting from its checked-in corpus tests/fuzz/corpus/<unit>/. ctest only smoke-runs the
# same targets for a few seconds; this is the long run, for before a release or after a
# change to a codec.
#
#   scripts/fuzz.sh [SECONDS] [UNIT...]      e.g. scripts/fuzz.sh 60 codec_line codec_delimiter
#
# The checked-in corpus is only read. New inputs go to build/fuzz/corpus-new/<unit>/ and are
# kept, so the next run picks up where this one stopped; merge the interesting ones into the
# repository by hand with
#   build/fuzz/tests/fuzz_<unit> -merge=1 tests/fuzz/corpus/<unit> build/fuzz/corpus-new/<unit>
# Crashing inputs go to build/fuzz/artifacts/<unit>/. The script stops at the first crash
# (or leak, timeout, out-of-memory), names the target and the input, prints the command that
# reproduces it, and exits 1. WEFT_JOBS sets the build's parallelism (default: all CPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
weft_require_packages "${WEFT_BUILD_PACKAGES[@]}" clang libclang-rt-14-dev

seconds=600
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
build=build/fuzz
jobs=${WEFT_JOBS:-$(nproc 2>/dev/null || echo 2)}

# Which units: those named, else every tests/fuzz/fuzz_*.c.
units=()
if [ $# -gt 0 ]; then
    for u in "$@"; do
        u=${u#fuzz_}
        if [ ! -f "tests/fuzz/fuzz_$u.c" ]; then
            echo "fuzz: no target tests/fuzz/fuzz_$u.c" >&2
            exit 2
        fi
        units+=("$u")
    done
else
    for src in tests/fuzz/fuzz_*.c; do
        [ -e "$src" ] || continue
        u=$(basename "$src" .c)
        units+=("${u#fuzz_}")
    done
fi
if [ ${#units[@]} -eq 0 ]; then
    echo "fuzz: no targets in tests/fuzz/" >&2
    exit 2
fi

echo "== build $build (clang, ASan+UBSan, libFuzzer)"
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DWEFT_SANITIZE=address,undefined -DWEFT_BUILD_FUZZ=ON \
    -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_BUILD_BENCHMARKS=OFF >/dev/null
targets=()
for u in "${units[@]}"; do
    targets+=(--target "fuzz_$u")
done
cmake --build "$build" -j "$jobs" "${targets[@]}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

for u in "${units[@]}"; do
    bin=$build/tests/fuzz_$u
    seed=tests/fuzz/corpus/$u
    work=$build/corpus-new/$u
    artifacts=$build/artifacts/$u
    mkdir -p "$work" "$artifacts"
    dirs=("$work") # libFuzzer writes new inputs into the first directory only
    [ -d "$seed" ] && dirs+=("$seed")
    log=$build/fuzz_$u.log
    echo "== fuzz_$u for ${seconds}s (log: $log)"
    marker=$(mktemp "$build/.start.XXXXXX")
    set +e
    "$bin" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "${dirs[@]}" >"$log" 2>&1
    rc=$?
    set -e
    if [ $rc -ne 0 ]; then
        input=$(find "$artifacts" -type f -newer "$marker" \
            \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) |
            head -n 1)
        rm -f "$marker"
        echo "fuzz: fuzz_$u failed (exit $rc)" >&2
        grep -m 1 -E 'ERROR: |runtime error: |deadly signal' "$log" >&2 || true
        if [ -n "$input" ]; then
            echo "fuzz: input: $input" >&2
            echo "fuzz: reproduce: $bin $input" >&2
        else
            echo "fuzz: no input was saved; see $log" >&2
        fi
        exit 1
    fi
    rm -f "$marker"
    grep -E '^stat::number_of_executed_units' "$log" | sed "s/^/   /" || true
done
echo "== every fuzz target ran ${seconds}s without a crash"
