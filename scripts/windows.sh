#!/usr/bin/env bash
# weft for 64-bit Windows: cross-built with mingw-w64 and tested under Wine, from a fresh
# Debian 12 machine.
#
#   scripts/windows.sh deps    the Debian packages, and cmocka and OpenSSL 3 (static, trimmed
#                              to what weft uses) cross-built from Debian's source packages
#                              (cached under build/windows/deps)
#   scripts/windows.sh build   deps, then configures and builds build/windows/weft
#   scripts/windows.sh test    build, then runs the Windows test suite under Wine (ctest)
#   scripts/windows.sh smoke   build, then starts weft-echo.exe and weft-redis.exe under Wine on
#                              free loopback ports and drives them from Linux: redis-cli (PING,
#                              SET, GET, INCR, a pipeline of 1,000 commands, every answer
#                              checked; then the same over its TLS port with redis-cli --tls,
#                              and a client trusting another CA refused), redis-benchmark -q
#                              -n 20000 -t set,get, and the Linux
#                              build of benchmarks/loadgen against weft-echo.exe (every byte
#                              checked; once more with WEFT_TEST_SEND_CAP=7, so that every send
#                              is partial). Each client is bounded by a timeout; the servers are
#                              stopped with SIGINT (Wine makes it Ctrl+C) and must exit 0. The
#                              numbers it prints are a smoke check: Wine is not Windows.
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

# The openssl source package's versions the private apt knows, newest first.
openssl_versions() {
    apt-cache "${APT_PRIVATE[@]}" showsrc openssl 2>/dev/null |
        sed -n 's/^Version: //p' | sort -u | sort -r -V
}

# OpenSSL 3, static (libssl.a, libcrypto.a, headers), cross-built from Debian's openssl source
# package into build/windows/deps. Only what weft and its tests use is built: TLS 1.2 and 1.3
# with their AEAD suites, ECDHE and X25519, RSA and EC certificates; no engines, no legacy
# ciphers, no DTLS/QUIC, no apps, tests or docs. A run that finds it there skips it.
openssl_build() {
    if [ -f "$deps/lib64/libssl.a" ] && [ -f "$deps/lib64/libcrypto.a" ] &&
        [ -f "$deps/include/openssl/ssl.h" ]; then
        echo "== openssl: cached in ${deps#"$root"/}"
        return 0
    fi
    step "openssl: Debian source package"
    apt_private
    apt-get -qq "${APT_PRIVATE[@]}" update ||
        echo "weft: some deb-src indexes could not be fetched; trying apt-get source anyway" >&2
    local src=$out/src-openssl v dir=
    # The newest version listed may be one the mirror no longer has (its .dsc answered 404
    # once): then the older ones listed are tried in turn.
    for v in $(openssl_versions); do
        rm -rf "$src"
        mkdir -p "$src"
        if (cd "$src" && apt-get -qq "${APT_PRIVATE[@]}" source "openssl=$v" >/dev/null 2>&1); then
            dir=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'openssl-*' | head -n 1)
            [ -n "$dir" ] && break
        fi
        echo "   openssl $v: could not be fetched; trying an older one" >&2
    done
    if [ -z "$dir" ]; then
        echo "weft: apt-get source openssl fetched none of: $(openssl_versions | tr '\n' ' ')" >&2
        return 1
    fi
    step_done
    step "openssl: cross-build ($(basename "$dir"))"
    local opts=(no-shared no-tests no-module no-dso no-engine no-dynamic-engine
        no-legacy no-autoload-config
        no-async no-comp no-ct no-ocsp no-cms no-ts no-srp no-psk no-srtp no-sctp no-dtls
        no-ssl3 no-ssl3-method no-tls1 no-tls1-method no-tls1_1 no-tls1_1-method no-dtls1
        no-dtls1_2 no-nextprotoneg no-gost no-sm2 no-sm3 no-sm4 no-aria no-bf no-blake2
        no-camellia no-cast no-des no-idea no-md2 no-md4 no-mdc2 no-rc2 no-rc4 no-rc5 no-rmd160
        no-seed no-whirlpool no-siphash no-scrypt no-cmac no-dsa no-ec2m no-ui-console
        no-padlockeng no-capieng no-afalgeng no-devcryptoeng no-loadereng no-uplink
        no-fips no-ktls)
    # Its compiler warnings go to a log of their own, shown if the build fails.
    local log=$out/openssl-build.log
    if ! (cd "$dir" && ./Configure mingw64 --cross-compile-prefix=x86_64-w64-mingw32- \
        --prefix="$deps" --openssldir="$deps/ssl" --libdir=lib64 "${opts[@]}" &&
        make -s -j "$jobs" build_libs && make -s install_dev) >"$log" 2>&1 ||
        [ ! -f "$deps/lib64/libssl.a" ] || [ ! -f "$deps/lib64/libcrypto.a" ]; then
        tail -n 30 "$log" >&2
        echo "weft: the openssl build installed no lib64/libssl.a and lib64/libcrypto.a" \
            "(${log#"$root"/})" >&2
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
    openssl_build
}

cmd_build() {
    cmd_deps
    step "weft: cross-build ${out#"$root"/}/weft"
    cmake -S "$root" -B "$out/weft" -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_CMOCKA_ROOT="$deps" -DWEFT_OPENSSL_ROOT="$deps" \
        -DWEFT_WITH_TLS=ON >/dev/null # ON said here: a build dir from before TLS cached OFF
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
    if wineserver -p 2>/dev/null; then
        trap 'wineserver -k 2>/dev/null || true' EXIT
    else # one is running for this prefix already (started by hand): use it, leave it be
        echo "   a wineserver for ${WINEPREFIX#"$root"/} was running already: using it"
    fi
    wine cmd /c exit >/dev/null 2>&1 </dev/null
    step_done
    step "test ${out#"$root"/}/weft"
    (cd "$out/weft" && ctest --output-on-failure -j "$jobs" --timeout 600)
    step_done
}

# ---- smoke: the Windows servers under Wine, driven by Linux clients over loopback ----

host=$out/host # the Linux build of benchmarks/loadgen
smoke_pids=()
smoke_fail() {
    echo "weft: smoke: $*" >&2
    exit 1
}

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 60 s (Wine starts slowly) until 127.0.0.1:$1 accepts, while pid $2 lives.
wait_listening() {
    local i
    for ((i = 0; i < 600; i++)); do
        if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; then
            return 0
        fi
        kill -0 "$2" 2>/dev/null || smoke_fail "the server (pid $2) exited before it listened on $1"
        sleep 0.1
    done
    smoke_fail "nothing listens on 127.0.0.1:$1 after 60 s"
}

# Starts "$@" under Wine in the background, its output in $log; its pid in $server_pid.
start_server() {
    local log=$1
    shift
    wine "$@" >"$log" 2>&1 </dev/null &
    server_pid=$!
    smoke_pids+=("$server_pid")
}

# Stops pid $1 with SIGINT (Ctrl+C under Wine) and checks that it exited 0 within 30 s.
stop_server() {
    local pid=$1 name=$2 i rc=0
    kill -INT "$pid" 2>/dev/null || smoke_fail "$name (pid $pid) is not running"
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        smoke_fail "$name did not stop within 30 s of SIGINT"
    fi
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || smoke_fail "$name exited with status $rc after SIGINT"
    echo "   $name stopped cleanly (SIGINT, exit 0)"
}

# Runs redis-cli with a timeout; prints its answer.
rcli() {
    timeout 30 redis-cli -h 127.0.0.1 -p "$rport" "$@"
}

expect_reply() {
    local want=$1 got
    shift
    got=$(rcli "$@") || smoke_fail "redis-cli $* failed"
    [ "$got" = "$want" ] || smoke_fail "redis-cli $*: got '$got', want '$want'"
}

# A command as RESP: an array of bulk strings.
resp() {
    printf '*%d\r\n' $#
    local a
    for a in "$@"; do
        printf '$%d\r\n%s\r\n' ${#a} "$a"
    done
}

# redis-cli over TLS against weft-redis.exe's TLS port ($tport), verifying its certificate
# against the smoke's CA ($out/smoke/ca.crt): every answer checked.
tcli() {
    timeout 30 redis-cli --tls --cacert "$out/smoke/ca.crt" -h 127.0.0.1 -p "$tport" "$@"
}

expect_tls_reply() {
    local want=$1 got
    shift
    got=$(tcli "$@") || smoke_fail "redis-cli --tls $* failed"
    [ "$got" = "$want" ] || smoke_fail "redis-cli --tls $*: got '$got', want '$want'"
}

# A CA and a certificate for 127.0.0.1 signed by it, made by the Linux openssl command.
smoke_certs() {
    local d=$out/smoke
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=weft smoke CA" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
        -CAcreateserial -days 2 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
}

smoke_redis_tls() {
    step "redis-cli --tls: PING, SET, GET, INCR, and the plain port's keys"
    expect_tls_reply PONG PING
    expect_tls_reply OK SET smoke:tls "hello over tls"
    expect_tls_reply "hello over tls" GET smoke:tls
    expect_reply "hello over tls" GET smoke:tls # one keyspace behind both ports
    expect_tls_reply "value-499" GET smoke:k499
    tcli DEL smoke:tlscounter >/dev/null
    expect_tls_reply 1 INCR smoke:tlscounter
    expect_tls_reply 42 INCRBY smoke:tlscounter 41
    step_done

    step "redis-cli --tls --pipe: 1,000 commands"
    local cmds=$out/smoke/tls-pipe.resp i said
    : >"$cmds"
    tcli DEL smoke:tlspipe >/dev/null
    for ((i = 0; i < 500; i++)); do
        resp SET "smoke:t$i" "tls-$i" >>"$cmds"
        resp INCR smoke:tlspipe >>"$cmds"
    done
    said=$(timeout 60 redis-cli --tls --cacert "$out/smoke/ca.crt" -h 127.0.0.1 -p "$tport" \
        --pipe <"$cmds" 2>&1) || smoke_fail "redis-cli --tls --pipe failed: $said"
    echo "$said" | grep -q 'errors: 0, replies: 1000' ||
        smoke_fail "redis-cli --tls --pipe: $(echo "$said" | tail -n 1)"
    expect_tls_reply 500 GET smoke:tlspipe
    expect_tls_reply "tls-0" GET smoke:t0
    expect_tls_reply "tls-499" GET smoke:t499
    echo "   $(echo "$said" | tail -n 1)"
    step_done

    step "redis-cli --tls against another CA: refused"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=another CA" -keyout "$out/smoke/other.key" -out "$out/smoke/other.crt" \
        2>/dev/null
    local got
    if got=$(timeout 30 redis-cli --tls --cacert "$out/smoke/other.crt" -h 127.0.0.1 \
        -p "$tport" PING 2>&1) && [ "$got" = PONG ]; then
        smoke_fail "redis-cli --tls with another CA was answered: $got"
    fi
    echo "   refused: $(echo "$got" | head -n 1)"
    step_done
}

smoke_redis() {
    step "redis-cli: PING, SET, GET, INCR"
    expect_reply PONG PING
    expect_reply OK SET smoke:key "hello windows"
    expect_reply "hello windows" GET smoke:key
    rcli DEL smoke:counter >/dev/null
    expect_reply 1 INCR smoke:counter
    expect_reply 2 INCR smoke:counter
    expect_reply 42 INCRBY smoke:counter 40
    step_done

    # 1,000 commands in one pipeline through redis-cli --pipe: 500 SETs and 500 INCRs.
    step "redis-cli --pipe: 1,000 commands"
    local cmds=$out/smoke/pipe.resp i
    : >"$cmds"
    rcli DEL smoke:pipe >/dev/null
    for ((i = 0; i < 500; i++)); do
        resp SET "smoke:k$i" "value-$i" >>"$cmds"
        resp INCR smoke:pipe >>"$cmds"
    done
    local said
    said=$(timeout 60 redis-cli -h 127.0.0.1 -p "$rport" --pipe <"$cmds" 2>&1) ||
        smoke_fail "redis-cli --pipe failed: $said"
    echo "$said" | grep -q 'errors: 0, replies: 1000' ||
        smoke_fail "redis-cli --pipe: $(echo "$said" | tail -n 1)"
    echo "   $(echo "$said" | tail -n 1)"
    step_done

    # And 1,000 more in one write over a plain socket, each answer checked byte for byte: a
    # GET of every key the first pipeline set, and an INCR after each.
    step "pipeline of 1,000 commands, every answer checked"
    local want=$out/smoke/pipe.want got=$out/smoke/pipe.got
    : >"$cmds"
    : >"$want"
    for ((i = 0; i < 500; i++)); do
        resp GET "smoke:k$i" >>"$cmds"
        local v="value-$i"
        printf '$%d\r\n%s\r\n' ${#v} "$v" >>"$want"
        resp INCR smoke:pipe >>"$cmds"
        printf ':%d\r\n' $((501 + i)) >>"$want"
    done
    local n
    n=$(wc -c <"$want")
    timeout 60 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; cat "$2" >&3; head -c "$3" <&3 >"$4"' \
        _ "$rport" "$cmds" "$n" "$got" || smoke_fail "the pipeline got no full answer in 60 s"
    cmp -s "$want" "$got" || smoke_fail "the pipeline's answers differ from the expected ones"
    echo "   1000 answers, $n bytes, as expected"
    step_done

    step "redis-benchmark -q -n 20000 -t set,get"
    local bench
    bench=$(timeout 600 redis-benchmark -h 127.0.0.1 -p "$rport" -q -n 20000 -t set,get 2>&1 |
        tr '\r' '\n' | grep 'requests per second') || smoke_fail "redis-benchmark failed"
    echo "$bench" | grep -q '^SET: ' && echo "$bench" | grep -q '^GET: ' ||
        smoke_fail "redis-benchmark printed no SET and GET results: $bench"
    echo "$bench" | sed 's/^/   /'
    step_done
}

# loadgen against the echo server on $1: every echoed byte is checked by loadgen itself, which
# exits 1 on a mismatch; its RESULT line must say errors=0.
run_loadgen() {
    local port=$1 what=$2 said
    shift 2
    said=$(timeout 60 "$host/benchmarks/loadgen" --host 127.0.0.1 --port "$port" "$@" 2>&1) ||
        smoke_fail "loadgen ($what) failed: $said"
    echo "$said" | grep -q '^RESULT .*errors=0' || smoke_fail "loadgen ($what): $said"
    echo "$said" | grep -v '^RESULT' | sed "s/^/   $what: /"
}

cmd_smoke() {
    cmd_build
    step "packages (the Linux clients)"
    weft_require_packages "${WEFT_LIB_PACKAGES[@]}" redis-tools python3 openssl
    step_done
    step "loadgen: Linux build ${host#"$root"/}"
    cmake -S "$root" -B "$host" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_BUILD_TESTS=OFF \
        -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_BUILD_BENCHMARKS=ON >/dev/null
    cmake --build "$host" -j "$jobs" --target loadgen >/dev/null
    step_done
    wine_prefix
    step "wine: start"
    wineserver -p 2>/dev/null || true # one may be running for this prefix already
    trap 'for p in "${smoke_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
          wineserver -k 2>/dev/null || true' EXIT
    wine cmd /c exit >/dev/null 2>&1 </dev/null
    step_done
    mkdir -p "$out/smoke"
    local exe=$out/weft/examples

    step "certificates for the TLS port (openssl)"
    smoke_certs
    step_done
    step "weft-redis.exe --loops 2, with a TLS port"
    start_server "$out/smoke/redis.log" "$exe/redis/weft-redis.exe" --port 0 --loops 2 \
        --tls-port 0 --tls-cert-file "$(winepath -w "$out/smoke/server.crt")" \
        --tls-key-file "$(winepath -w "$out/smoke/server.key")" --tls-auth-clients no
    local redis_pid=$server_pid i
    rport=
    tport=
    for ((i = 0; i < 600; i++)); do
        rport=$(sed -n 's/^weft-redis ready on port \([0-9]*\).*/\1/p' "$out/smoke/redis.log")
        tport=$(sed -n 's/^weft-redis ready on port .*; tls port \([0-9]*\).*/\1/p' \
            "$out/smoke/redis.log")
        [ -n "$rport" ] && break
        kill -0 "$redis_pid" 2>/dev/null || smoke_fail "weft-redis.exe exited: $(cat "$out/smoke/redis.log")"
        sleep 0.1
    done
    [ -n "$rport" ] || smoke_fail "weft-redis.exe did not say its port within 60 s"
    [ -n "$tport" ] || smoke_fail "weft-redis.exe said no TLS port: $(cat "$out/smoke/redis.log")"
    echo "   listening on 127.0.0.1:$rport, TLS on 127.0.0.1:$tport"
    step_done
    smoke_redis
    smoke_redis_tls
    step "weft-redis.exe: stop"
    stop_server "$redis_pid" weft-redis.exe
    step_done

    local eport
    eport=$(free_port)
    step "weft-echo.exe --loops 2 on 127.0.0.1:$eport"
    start_server "$out/smoke/echo.log" "$exe/echo/weft-echo.exe" --addr "tcp://127.0.0.1:$eport" \
        --loops 2
    local echo_pid=$server_pid
    wait_listening "$eport" "$echo_pid"
    step_done
    step "loadgen against weft-echo.exe, 5 s each"
    run_loadgen "$eport" "64 B x 64 conns" --conns 64 --size 64 --duration 5
    run_loadgen "$eport" "16 KiB x 16 conns, 4 deep" --conns 16 --size 16384 --pipeline 4 \
        --duration 5
    run_loadgen "$eport" "churn x 8" --churn --conns 8 --duration 5
    step_done
    step "weft-echo.exe: stop"
    stop_server "$echo_pid" weft-echo.exe
    step_done

    # The same echo with every send cut to 7 bytes (the test-only WEFT_TEST_SEND_CAP): the
    # partial-send path under real load, every byte still checked.
    eport=$(free_port)
    step "weft-echo.exe with WEFT_TEST_SEND_CAP=7 on 127.0.0.1:$eport"
    WEFT_TEST_SEND_CAP=7 start_server "$out/smoke/echo-cap.log" "$exe/echo/weft-echo.exe" \
        --addr "tcp://127.0.0.1:$eport" --loops 2
    echo_pid=$server_pid
    wait_listening "$eport" "$echo_pid"
    run_loadgen "$eport" "1000 B x 8 conns, sends of 7 B" --conns 8 --size 1000 --duration 5
    stop_server "$echo_pid" "weft-echo.exe (capped)"
    grep -q 'WEFT_TEST_SEND_CAP=7' "$out/smoke/echo-cap.log" ||
        smoke_fail "the capped weft-echo.exe did not log its cap: $(cat "$out/smoke/echo-cap.log")"
    step_done
    echo "== smoke passed (Wine is not Windows: these numbers are not a benchmark)"
}

case "${1:-}" in
deps) cmd_deps ;;
build) cmd_build ;;
test) cmd_test ;;
smoke) cmd_smoke ;;
clean) rm -rf "$out" ;;
*)
    echo "usage: scripts/windows.sh deps|build|test|smoke|clean" >&2
    exit 2
    ;;
esac
