# Sourced by run.sh and test.sh: makes sure the Debian packages named in "$@" are installed.
# As root it installs what is missing; otherwise it prints the exact apt-get line and fails.
weft_require_packages() {
    local missing=()
    local p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "weft: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || return 1
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || return 1
    else
        echo "weft: missing Debian packages. Install them with:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        return 1
    fi
}

# What building the library and the example programs needs (run.sh).
# (liburing-dev: the io_uring backend, and the raw io_uring benchmark reference; libssl-dev:
# OpenSSL 3, for TLS.)
WEFT_LIB_PACKAGES=(cmake make gcc pkg-config libevent-dev libxxhash-dev liburing-dev libssl-dev)
# What building everything needs: the tests add cmocka.
WEFT_BUILD_PACKAGES=("${WEFT_LIB_PACKAGES[@]}" libcmocka-dev)
# The clients the weft-redis tests drive against it (test.sh, valgrind.sh): redis-cli and
# redis-benchmark (redis-tools), and redis-py with ssl=True over TLS (python3-redis, run by
# Debian's python3).
WEFT_TEST_PACKAGES=(redis-tools python3 python3-redis)
# The Windows build and its suite under Wine (windows.sh; test.sh runs it last): cmake and
# make build cmocka and weft, dpkg-dev unpacks the cmocka and openssl source packages
# (dpkg-source), perl runs OpenSSL's Configure, libxxhash-dev gives xxhash.h, used header-only.
WEFT_WINDOWS_PACKAGES=(cmake make pkg-config dpkg-dev xz-utils perl gcc-mingw-w64-x86-64 wine64
    wine libxxhash-dev)
# What benchmarks/report.sh needs on top: redis for the weft-redis suite, gnuplot for charts,
# the openssl command for the certificates the --tls runs make.
WEFT_BENCH_PACKAGES=("${WEFT_BUILD_PACKAGES[@]}" util-linux redis-server redis-tools python3
    gnuplot-nox openssl)
