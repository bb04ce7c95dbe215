/* Test harness for loopback integration tests: an engine on 127.0.0.1 (or a Unix socket)
 * and blocking client sockets with deadlines, so a bug fails a test instead of hanging it.
 *
 * Everything here runs on the test's own threads. Handlers run on loop threads and must not
 * call cmocka's assert_* there (a failed assert longjmps on the wrong stack): record into
 * atomics and assert on the test thread.
 */
#ifndef WEFT_TEST_HARNESS_H
#define WEFT_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/weft.h>

#include "wt_sock.h"

/* 1 in the Windows build, else 0. The Windows tests run under Wine, where every socket call
 * is a round trip to wineserver (0.1 to 0.7 ms): a test that makes hundreds of thousands of
 * them moves fewer messages over fewer connections there (a constant, so that the counts
 * can size arrays), with every assertion kept. */
#ifdef _WIN32
#define WT_WINDOWS 1
#else
#define WT_WINDOWS 0
#endif

/* Every blocking step of a test gives up after this long: 10 s, or 60 s when wt_slow(). */
#define WT_TIMEOUT_MS (wt_timeout_ms())

/* True when the environment says the tests run under a heavy slowdown: scripts/test.sh
 * sets WEFT_TEST_SLOW=1 for the ThreadSanitizer suite and scripts/valgrind.sh for memcheck.
 * Tests then relax their time bounds (wt_grace_ms) and scale down their repetition counts;
 * they never skip an assertion. */
bool wt_slow(void);
int wt_timeout_ms(void);

/* How much later than its deadline something may happen and still pass: ms, or
 * WT_SLOW_FACTOR times ms when wt_slow(). For the upper bounds that only time can state
 * (a timeout fires eventually, a stop gives up); a lower bound (not early) is never
 * relaxed, and what a counter can state is asserted on the counter instead. */
#define WT_SLOW_FACTOR 10
int wt_grace_ms(int ms);

/* True under valgrind (scripts/valgrind.sh sets WEFT_TEST_VALGRIND=1). valgrind emulates
 * RLIMIT_NOFILE instead of passing it to the kernel: a descriptor over the lowered limit is
 * accepted by the kernel and then closed by valgrind, so the peer is lost instead of waiting
 * in the backlog. Tests that lower the fd limit cannot run there. */
bool wt_valgrind(void);

/* No connection of engine holds a buffer (a wt_wait_for predicate). On a completion backend
 * a connection closed mid-send gives its queue back once the kernel confirms the send's
 * cancel, a moment after on_close. */
bool wt_buffers_back(void *engine);

/* The engines this test starts run on io_uring (WEFT_BACKEND, or AUTO where it can run). */
bool wt_uring(void);

/* What this system lacks for unix:// listeners and for reuse_port: NULL when it has it, else
 * a sentence that says what is missing (weft's own words, as its engine start would). */
const char *wt_missing_unix(void);
const char *wt_missing_reuse_port(void);

/* What Wine (8.0), which runs the Windows suite, does not do as Linux and Windows do: NULL
 * elsewhere, else a sentence that says what. wt_missing_reset: a close with SO_LINGER
 * {1, 0} still ends the stream in order (FIN), so a peer is never shown a reset.
 * wt_missing_send_backpressure: every overlapped send completes in full at once, so a peer
 * that does not read never holds back what the server sends. */
const char *wt_missing_reset(void);
const char *wt_missing_send_backpressure(void);

/* NULL unless loopback moves too few bytes a second for a test that must push hundreds of
 * MiB through it before its deadline (Wine), else why. */
const char *wt_missing_bulk_loopback(void);

/* NULL where wt_fd_count can count this process's descriptors, else why not. */
const char *wt_missing_fd_count(void);

/* NULL where wt_connect_tcp_small can ask for small segments (TCP_MAXSEG), else why not. */
const char *wt_missing_tcp_maxseg(void);

/* In a cmocka test: when why is not NULL, says "SKIPPED: why" and skips the test. */
#define WT_SKIP_IF(why)                              \
    do {                                             \
        const char *wt_why_ = (why);                 \
        if (wt_why_ != NULL) {                       \
            print_message("SKIPPED: %s\n", wt_why_); \
            skip();                                  \
        }                                            \
    } while (0)

typedef struct wt_server {
    weft_engine *engine;
    int port;      /* listener 0's TCP port, or 0 for a Unix listener */
    char url[200]; /* listener 0's bound address */
} wt_server;

/* Fills cfg with defaults, a quiet log and on_traffic = handler. Listens on
 * tcp://127.0.0.1:0 unless the caller sets cfg->listen[0]. */
void wt_config(weft_config *cfg, weft_action (*on_traffic)(weft_conn *), unsigned loops);

/* Starts cfg's engine and records its first listener's address. Returns 0 or the
 * weft_engine_start error. */
int wt_server_start(wt_server *s, const weft_config *cfg);

/* Stops the engine and waits for it (on_shutdown runs in here). */
void wt_server_stop(wt_server *s);

/* A TCP socket as wt_connect_tcp makes them (blocking, with the timeouts and TCP_NODELAY),
 * not yet connected: the fd or -errno. wt_connect_fd connects it to 127.0.0.1:port: 0 or
 * -errno. */
int wt_socket_tcp(void);
int wt_connect_fd(int fd, int port);

/* A blocking client socket with SO_RCVTIMEO and SO_SNDTIMEO of WT_TIMEOUT_MS, connected to
 * 127.0.0.1:port or to the Unix socket at path. Returns the fd or -errno. */
int wt_connect_tcp(int port);
int wt_connect_unix(const char *path);

/* A listening Unix socket at path (a file left there first is removed) with that backlog,
 * and a non-blocking connect to one: the fd, or -errno (-EAGAIN when the backlog is full). */
int wt_listen_unix(const char *path, int backlog);
int wt_connect_unix_now(const char *path);

/* A TCP socket bound to a free port of 127.0.0.1, its port in *port: the fd or -errno.
 * wt_bind_tcp's does not listen (a connect to it is refused while it holds the port);
 * wt_listen_tcp's listens with that backlog. wt_accept waits up to timeout_ms for a
 * connection on such a listener and accepts it: a blocking socket with wt_connect_tcp's
 * timeouts, or -errno (-ETIMEDOUT when none came). */
int wt_bind_tcp(int *port);
int wt_listen_tcp(int backlog, int *port);
int wt_accept(int lfd, int timeout_ms);

/* As wt_connect_tcp, but with a receive buffer of rcvbuf bytes and segments of at most mss
 * bytes, both set before the connect so that the window the peer sees is small from the
 * start (Winsock has no TCP_MAXSEG to set: only the buffer there). Returns the fd or -errno
 * (of the first option refused). */
int wt_connect_tcp_small(int port, int rcvbuf, int mss);

/* As wt_connect_tcp, but bound to the local IPv4 address src_ip (e.g. "127.0.0.7", any
 * address in 127/8 works on Linux) before connecting, so a test can choose the peer address
 * the server sees. Returns the fd or -errno. */
int wt_connect_tcp_from(const char *src_ip, int port);

/* Sends all n bytes or fails: 0, or -errno (-ETIMEDOUT past timeout_ms). */
int wt_send_all(int fd, const void *data, size_t n, int timeout_ms);

/* Receives exactly n bytes: 0, -ECONNRESET/-errno, -EPIPE on an early EOF, -ETIMEDOUT. */
int wt_recv_exact(int fd, void *buf, size_t n, int timeout_ms);

/* Waits for the peer's EOF: 0 on EOF, 1 if bytes came instead, -errno on an error. */
int wt_recv_eof(int fd, int timeout_ms);

/* Sends out[0..out_len) and receives in_len bytes into in, both at once, so neither side's
 * buffers fill up and deadlock a large echo. 0 or -errno / -ETIMEDOUT / -EPIPE. */
int wt_exchange(int fd, const void *out, size_t out_len, void *in, size_t in_len, int timeout_ms);

/* A fresh directory of this process's own in the system's temporary directory ("weft-TAG-"
 * and a unique part): 0 with its path in buf, or -1 (said on stderr). */
int wt_temp_dir(char *buf, size_t len, const char *tag);
/* Removes the directory, empty by now; 0 or -1. */
int wt_temp_dir_remove(const char *dir);

/* A unique Unix socket path under /tmp for this process and tag. */
void wt_unix_path(char *buf, size_t len, const char *tag);

/* Fills p with n bytes of a pattern that depends on seed, so every connection can check its
 * own data. */
void wt_fill(uint8_t *p, size_t n, uint32_t seed);

int64_t wt_now_ms(void);
void wt_sleep_ms(int ms);

/* Polls pred(arg) every millisecond until it holds or timeout_ms passes. */
bool wt_wait_for(bool (*pred)(void *arg), void *arg, int timeout_ms);

/* Waits until *counter >= want. */
bool wt_wait_count(const _Atomic long *counter, long want, int timeout_ms);

/* The engine's totals. What a test can state with these counters (sleeps, wakeups,
 * accept_errors, ...) it asserts on them, not on CPU or wall time, which say as much about
 * how busy the machine was. */
weft_loop_stats wt_stats(weft_engine *e);

/* An echo on_traffic: writes back everything buffered. */
weft_action wt_echo_on_traffic(weft_conn *c);

/* With a codec: answers each frame with WT_AMPLIFY_BYTES bytes that start with the frame,
 * counting the answers in wt_amplified, so that a few small requests take the queue past
 * a small high-water mark while the rest wait in the buffer. For one loop (the answer is
 * built in one buffer). */
#define WT_AMPLIFY_BYTES (32 * 1024)
extern _Atomic long wt_amplified;
weft_action wt_amplify_on_traffic(weft_conn *c);

/* This process's resident set (VmRSS of /proc/self/status) in KiB, or -1. */
long wt_rss_kb(void);

/* Descriptors open in this process (entries of /proc/self/fd; on Windows its handles, of
 * every kind), or -1. */
int wt_fd_count(void);

#endif /* WEFT_TEST_HARNESS_H */
