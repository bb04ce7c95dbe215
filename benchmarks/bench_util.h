/* Small helpers shared by the benchmark programs (linked into each of them). */
#ifndef WEFT_BENCH_UTIL_H
#define WEFT_BENCH_UTIL_H

#include <weft/weft.h>

/* Seconds on the monotonic clock, for measuring intervals. */
double bench_now_s(void);

/* A weft_log_cb that drops every message, so the engine stays quiet during a run. */
void bench_quiet_log(void *ctx, weft_log_level level, const char *msg);

/* A blocking TCP socket with TCP_NODELAY connected to 127.0.0.1:port; with timeout_s > 0 its
 * reads and writes give up after that many seconds. Returns the fd (owned by the caller) or
 * -1. */
int bench_connect_loopback(int port, int timeout_s);

#endif
