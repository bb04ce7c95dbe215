/* Small helpers shared by the benchmark programs (linked into each of them). */
#ifndef WEFT_BENCH_UTIL_H
#define WEFT_BENCH_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include <weft/weft.h>

/* Seconds on the monotonic clock, for measuring intervals. */
double bench_now_s(void);

/* A weft_log_cb that drops every message, so the engine stays quiet during a run. */
void bench_quiet_log(void *ctx, weft_log_level level, const char *msg);

/* A blocking TCP socket with TCP_NODELAY connected to 127.0.0.1:port; with timeout_s > 0 its
 * reads and writes give up after that many seconds. Returns the fd (owned by the caller) or
 * -1. */
int bench_connect_loopback(int port, int timeout_s);

/* The reference echo servers' command line: --port PORT [--host ADDR], and --unix PATH when
 * path is not NULL. *host defaults to 127.0.0.1 and *path to NULL. Returns 0, or -1 when the
 * command line is wrong (the caller prints its usage). */
int bench_server_args(int argc, char **argv, const char **host, int *port, const char **path);

/* A listening stream socket on host:port, or on the Unix socket path when path is not NULL
 * (a stale file there is removed first). type_flags are or-ed into SOCK_STREAM
 * (SOCK_NONBLOCK, SOCK_CLOEXEC); with nodelay a TCP listener gets TCP_NODELAY, which the
 * sockets it accepts inherit. Returns the fd (owned by the caller), or -1 with the reason
 * printed after prog. */
int bench_listen(const char *prog, const char *host, int port, const char *path, int type_flags,
                 bool nodelay);

/* SIGINT and SIGTERM call on_stop, without SA_RESTART so that a blocking wait returns EINTR;
 * SIGPIPE is ignored. */
void bench_stop_on_signals(void (*on_stop)(int));

/* A latency histogram of nanoseconds: exact below 64, then 64 buckets per power of two
 * (about 1.6% wide), up to 2^64. Zero it to start. */
#define BENCH_HIST_SUB     64u
#define BENCH_HIST_BUCKETS (BENCH_HIST_SUB + 58u * BENCH_HIST_SUB)
struct bench_hist {
    uint64_t count[BENCH_HIST_BUCKETS];
    uint64_t total;
};
void bench_hist_add(struct bench_hist *h, uint64_t ns);
void bench_hist_merge(struct bench_hist *into, const struct bench_hist *h);
/* The value below which `permille` thousandths of the samples fall (0 when there are none). */
double bench_hist_percentile(const struct bench_hist *h, unsigned permille);

#endif
