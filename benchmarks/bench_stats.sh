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
