#!/usr/bin/env bash
# weft for 64-bit Windows: cross-built with mingw-w64 and tested under Wine, from a fresh
# Debian 12 machine.
#
#   scripts/windows.sh deps    the Debian packages, and cmocka cross-built from Debian's
#                              source package (cached under build/windows/deps)
#   scripts/windows.sh build   deps, then configures and builds build/windows/weft
#   scripts/windows.sh test    build, then runs the Windows test suite under Wine (ctest)
#   scripts/windows.sh clean   removes build/windows (the packages stay)
#
# What builds and runs for Windows so far (weft on its completion port backend, weft-echo,
# the tests ported) is in the README's "Building for Windows".
#
# Wine runs in a private prefix, build/windows/wine, with no display: WINEDEBUG=-all,
# winemenubuilder off. Each step prints how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

root=$(pwd)
out=$root/build/windows
deps=$out/deps
jobs=$(nproc 2>/dev/null || echo 2)
[ "$jobs" -gt 2 ] && jobs=2 # leave the machine usable; the suite is small
toolchain=$root/cmake/toolchain-mingw64.cmake

# cmake and make build cmocka and weft; dpkg-dev unpacks the source package (dpkg-source);
# libxxhash-dev gives xxhash.h, used header-only.
WEFT_WINDOWS_PACKAGES=(cmake make pkg-config dpkg-dev xz-utils gcc-mingw-w64-x86-64 wine64 wine
    libxxhash-dev)

export WINEPREFIX=$out/wine
export WINEDEBUG=-all
export WINEDLLOVERRIDES=winemenubuilder.exe=d

step_start=0
step() {
    step_start=$(date +%s)
    echo "== $*"
}
step_done() {
    echo "   ($(($(date +%s) - step_start)) s)"
}

# A private apt directory with deb-src entries for the machine's own Debian mirrors, so
# that `apt-get source` works without touching the machine's sources. The entries are the
# machine's, turned into deb-src: one-line ones in sources.list files, deb822 stanzas in
# .sources files.
apt_private() {
    local dir=$out/apt
    mkdir -p "$dir/sources.list.d" "$dir/lists/partial" "$dir/cache/archives/partial"
    : >"$dir/sources.list"
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >>"$dir/sources.list"
    done
    rm -f "$dir/sources.list.d/"*.sources
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        sed 's/^Types:.*/Types: deb-src/' "$f" >"$dir/sources.list.d/$(basename "$f")"
    done
    APT_PRIVATE=(-o "Dir::Etc::SourceList=$dir/sources.list"
        -o "Dir::Etc::SourceParts=$dir/sources.list.d"
        -o "Dir::State::Lists=$dir/lists"
        -o "Dir::Cache=$dir/cache"
        -o "APT::Sandbox::User=$(id -un)")
}

# cmocka, static, cross-built from Debian's source package into build/windows/deps.
cmocka_build() {
    if [ -f "$deps/lib/libcmocka-static.a" ] && [ -f "$deps/include/cmocka.h" ]; then
        echo "== cmocka: cached in ${deps#"$root"/}"
        return 0
    fi
    step "cmocka: Debian source package"
    apt_private
    local src=$out/src
    rm -rf "$src"
    mkdir -p "$src"
    # A third-party repository among the machine's entries may have no source indexes;
    # apt-get source below says so clearly if Debian's did not come either.
    apt-get -qq "${APT_PRIVATE[@]}" update ||
        echo "weft: some deb-src indexes could not be fetched; trying apt-get source anyway" >&2
    (cd "$src" && apt-get -qq "${APT_PRIVATE[@]}" source cmocka >/dev/null)
    local dir
    dir=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'cmocka-*' | head -n 1)
    if [ -z "$dir" ]; then
        echo "weft: apt-get source cmocka left no cmocka-* directory in ${src#"$root"/}" >&2
        return 1
    fi
    step_done
    step "cmocka: cross-build ($(basename "$dir"))"
    cmake -S "$dir" -B "$out/cmocka-build" -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$deps" -DWITH_STATIC_LIB=ON \
        -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF -DPICKY_DEVELOPER=OFF >/dev/null
    cmake --build "$out/cmocka-build" -j "$jobs" >/dev/null
    cmake --install "$out/cmocka-build" >/dev/null
    if [ ! -f "$deps/lib/libcmocka-static.a" ]; then
        echo "weft: the cmocka build installed no lib/libcmocka-static.a" >&2
        return 1
    fi
    step_done
}

# The private Wine prefix, made once.
wine_prefix() {
    if [ -f "$WINEPREFIX/system.reg" ]; then
        return 0
    fi
    step "wine: prefix ${WINEPREFIX#"$root"/}"
    mkdir -p "$WINEPREFIX"
    wine wineboot --init >/dev/null 2>&1
    wineserver -w
    step_done
}

cmd_deps() {
    step "packages"
    weft_require_packages "${WEFT_WINDOWS_PACKAGES[@]}"
    step_done
    cmocka_build
}

cmd_build() {
    cmd_deps
    step "weft: cross-build ${out#"$root"/}/weft"
    cmake -S "$root" -B "$out/weft" -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_CMOCKA_ROOT="$deps" >/dev/null
    cmake --build "$out/weft" -j "$jobs" >/dev/null
    step_done
}

cmd_test() {
    cmd_build
    wine_prefix
    # One wineserver for the whole run (-p: it stays when the last program exits), so each
    # test starts warm; and the first Wine program starts here, not under ctest, because
    # the background services it starts keep its output open and ctest would wait on them.
    step "wine: start"
    wineserver -p
    trap 'wineserver -k 2>/dev/null || true' EXIT
    wine cmd /c exit >/dev/null 2>&1 </dev/null
    step_done
    step "test ${out#"$root"/}/weft"
    (cd "$out/weft" && ctest --output-on-failure -j "$jobs" --timeout 600)
    step_done
}

case "${1:-}" in
deps) cmd_deps ;;
build) cmd_build ;;
test) cmd_test ;;
clean) rm -rf "$out" ;;
*)
    echo "usage: scripts/windows.sh deps|build|test|clean" >&2
    exit 2
    ;;
esac
