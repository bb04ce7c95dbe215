# shellcheck shell=bash disable=SC2034 # sourced: CLK_TCK is used by the caller
# Sourced by the benchmark scripts (through bench_lib.sh, or alone by redis.sh, which runs its
# servers its own way): small helpers with no side effects.

# cpu_ticks PID: user + system time of all its threads so far, in clock ticks.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print ""; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }

# uring_fds PID: how many io_uring instances the process holds open (0 when it runs on epoll),
# so a script can tell which backend a server really used.
uring_fds() { find "/proc/$1/fd" -lname 'anon_inode:\[io_uring\]' 2>/dev/null | wc -l; }

# tls_certs DIR: a throw-away CA (DIR/ca.crt) and a server certificate for 127.0.0.1 signed by
# it (DIR/server.crt, DIR/server.key; ECDSA P-256, valid for a day), for one run's TLS
# servers and clients. The caller removes DIR; no key material outlives the run.
tls_certs() {
    local d=$1
    command -v openssl >/dev/null || { echo "$(basename "$0"): --tls needs the openssl command" >&2; return 1; }
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=bench-ca -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
            -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null &&
        printf 'subjectAltName=IP:127.0.0.1\n' >"$d/san.ext" &&
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
            -CAcreateserial -days 1 -extfile "$d/san.ext" -out "$d/server.crt" 2>/dev/null ||
        { echo "$(basename "$0"): cannot make the run's TLS certificates" >&2; return 1; }
}
