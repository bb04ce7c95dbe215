/* What only the io_uring backend has, under the conditions that break a completion backend:
 *
 * - a provided-buffer ring far too small for what arrives: 10,000 connections that all send
 *   at once into 8 buffers; every byte comes back, in order, and the ring really ran dry;
 * - a stop while operations are outstanding: receives armed on every connection, sends
 *   blocked in the kernel towards peers that do not read, connections just accepted; every
 *   on_open gets exactly one on_close and no buffer is left held, also with those sends
 *   zero-copy;
 * - a peer that resets while a zero-copy send (IORING_OP_SEND_ZC) to it is in flight: the
 *   connection closes with the reset, its memory comes back once the kernel lets go of it,
 *   and its neighbour goes on; and a zero-copy answer read slowly arrives whole while the
 *   loop's buffers are reused for a neighbour's echoes.
 *
 * The first two mean something on epoll too, so they run there as well (as a control: what
 * fails on both backends is not the ring's fault), without the io_uring counters; the
 * zero-copy ones are skipped there.
 * ctest runs this file once per backend (WEFT_BACKEND).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "counters.h"
#include "flood.h"
#include "harness.h"

/* valgrind 3.19 does not know that io_uring_enter may block: a thread waiting in it keeps
 * valgrind's scheduler lock, and every other thread of the process stops until it returns
 * (liburing issue 657), which for a loop or the acceptor with nothing to do is never. An
 * engine on io_uring cannot run under it; the ASan run covers these tests there. */
static bool skip_under_valgrind(void)
{
    if (!wt_valgrind() || !wt_uring())
        return false;
    print_message("io_uring under valgrind 3.19 stops every thread but the one waiting in "
                  "io_uring_enter; skipped (the ASan run covers it)\n");
    return true;
}

/* ---- a pipe between the test and a child process ---- */

/* Writes all n bytes of p to fd; false when the other side is gone. */
static bool pipe_put(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads exactly n bytes from fd within timeout_ms; false on EOF, an error or the timeout. */
static bool pipe_get(int fd, void *p, size_t n, int timeout_ms)
{
    uint8_t *b = p;
    int64_t end = wt_now_ms() + timeout_ms;
    while (n > 0) {
        int64_t left = end - wt_now_ms();
        if (left <= 0)
            return false;
        struct pollfd pf = {fd, POLLIN, 0};
        int rc = poll(&pf, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            continue;
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        b += r;
        n -= (size_t)r;
    }
    return true;
}

/* Waits for pid within timeout_ms, then kills it if it is still there; its exit status, or
 * -1 when it did not exit by itself with one. */
static int child_exit(pid_t pid, int timeout_ms)
{
    int64_t end = wt_now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (wt_now_ms() > end) {
            kill(pid, SIGKILL);
            (void)waitpid(pid, &status, 0);
            return -1;
        }
        wt_sleep_ms(5);
    }
}

/* ---- buffer-ring exhaustion: 10,000 connections send at once into 8 buffers ---- */

/* The server's 10,000 sockets and the clients' 10,000 would need more descriptors than a
 * common hard limit (20,000) gives one process, so the clients run in a child. Buffers of
 * one message each: with 64 KiB ones, 8 hold 256 messages, and a kernel that completes a
 * few dozen receives per wait (Linux 6.18 with DEFER_TASKRUN does) never runs the ring dry.
 * Under a heavy slowdown (TSan, valgrind) a tenth of the connections still sends 60 times
 * what the ring holds. */
#define FLOOD_CONNS      10000
#define FLOOD_CONNS_SLOW 1000
#define FLOOD_BYTES      2048
#define FLOOD_BUFFERS    8u
#define FLOOD_BUF_SIZE   ((size_t)2048)
#define FLOOD_LOOPS      2u

/* What the child tells the test at each stage: connected (all of them), sent (all), read
 * back (the result); or, where it failed, how far it got and why. */
typedef struct flood_result {
    int stage;    /* how far the child got: 1 connected, 2 sent, 3 read back */
    int ok;       /* connections whose bytes all came back, in order */
    int first;    /* the first one that did not, or -1 */
    int err;      /* its error (-errno, -EPIPE on an early EOF), 1 for wrong bytes, 2 for
                     more bytes or no EOF after them */
    long elapsed; /* ms from the first send to the last byte read back */
} flood_result;

/* The child: n connections, then on 'G' every one sends its pattern, then every one reads
 * its echo back and the server's EOF. Never returns; reports over out and by its exit
 * status. */
static void flood_child(int in, int out, int n)
{
    flood_result res = {0, 0, -1, 0, 0};
    int port = 0;
    int *fds = calloc((size_t)n, sizeof(*fds));
    uint8_t *want = malloc(FLOOD_BYTES), *got = malloc(FLOOD_BYTES);
    if (fds == NULL || want == NULL || got == NULL || !pipe_get(in, &port, sizeof(port), 60000))
        _exit(2);
    for (int i = 0; i < n; i++) {
        fds[i] = wt_connect_tcp(port);
        if (fds[i] < 0) {
            res.first = i;
            res.err = fds[i];
            (void)pipe_put(out, &res, sizeof(res));
            _exit(3);
        }
    }
    res.stage = 1;
    char go = 0;
    if (!pipe_put(out, &res, sizeof(res)) || !pipe_get(in, &go, 1, 60000) || go != 'G')
        _exit(4);
    int64_t t0 = wt_now_ms();
    for (int i = 0; i < n; i++) {
        wt_fill(want, FLOOD_BYTES, (uint32_t)i + 1);
        int rc = wt_send_all(fds[i], want, FLOOD_BYTES, WT_TIMEOUT_MS);
        if (rc != 0) {
            res.first = i;
            res.err = rc;
            (void)pipe_put(out, &res, sizeof(res));
            _exit(5);
        }
    }
    res.stage = 2;
    if (!pipe_put(out, &res, sizeof(res)))
        _exit(6);
    for (int i = 0; i < n; i++) {
        wt_fill(want, FLOOD_BYTES, (uint32_t)i + 1);
        int rc = wt_recv_exact(fds[i], got, FLOOD_BYTES, WT_TIMEOUT_MS);
        if (rc == 0 && memcmp(got, want, FLOOD_BYTES) != 0)
            rc = 1;
        if (rc == 0)
            rc = wt_recv_eof(fds[i], WT_TIMEOUT_MS) == 0 ? 0 : 2; /* and nothing after it */
        if (rc == 0) {
            res.ok++;
        } else if (res.first < 0) {
            res.first = i;
            res.err = rc;
        }
    }
    res.elapsed = (long)(wt_now_ms() - t0);
    res.stage = 3;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    bool told = pipe_put(out, &res, sizeof(res));
    _exit(told && res.ok == n ? 0 : 7);
}

/* Each loop holds its first on_traffic until every client has sent: the sends then wait
 * in the kernel all together, and the loop's next wait meets all of them at once with 8
 * buffers, whatever the speed of the machine. */
static _Atomic int flood_gate;
static _Atomic int flood_held[FLOOD_LOOPS];

/* Echoes, and closes a connection once its whole message went back: the server closes
 * first, so the 10,000 TIME_WAITs are the server's, on its one port, and do not hold
 * loopback's ephemeral ports for a minute. */
static weft_action gated_echo(weft_conn *c)
{
    unsigned k = weft_conn_get_loop(c);
    if (k < FLOOD_LOOPS && atomic_exchange(&flood_held[k], 1) == 0) {
        int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
        while (!atomic_load(&flood_gate) && wt_now_ms() < end)
            wt_sleep_ms(1);
    }
    uintptr_t echoed = (uintptr_t)weft_conn_get_context(c);
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    if (n > 0 && weft_conn_write(c, p, (size_t)n) == 0) {
        weft_conn_discard(c, (size_t)n);
        echoed += (uintptr_t)n;
        weft_conn_set_context(c, (void *)echoed);
    }
    return echoed >= FLOOD_BYTES ? WEFT_ACTION_CLOSE : WEFT_ACTION_NONE;
}

static const char *flood_why(int err)
{
    return err == 1 ? "wrong bytes" : err == 2 ? "no EOF after them" : weft_err_name(err);
}

/* Reads the child's next report and fails unless it reached stage want. */
static void flood_expect(int fd, int want, int timeout_ms, flood_result *res)
{
    memset(res, 0, sizeof(*res));
    if (!pipe_get(fd, res, sizeof(*res), timeout_ms))
        fail_msg("the client process said nothing within %d ms (stage %d)", timeout_ms, want);
    if (res->stage != want)
        fail_msg("the client process stopped at stage %d: connection #%d failed (%s)", res->stage,
                 res->first, flood_why(res->err));
}

/* The child, until the test has reaped it; a failed test kills it in its teardown. */
static pid_t flood_pid;

static int flood_teardown(void **state)
{
    (void)state;
    if (flood_pid > 0) {
        kill(flood_pid, SIGKILL);
        (void)waitpid(flood_pid, NULL, 0);
        flood_pid = 0;
    }
    return 0;
}

static void test_buffer_ring_exhaustion_every_byte_in_order(void **state)
{
    (void)state;
    if (skip_under_valgrind())
        skip();
    wt_counters_reset();
    atomic_store(&flood_gate, 0);
    for (unsigned k = 0; k < FLOOD_LOOPS; k++)
        atomic_store(&flood_held[k], 0);
    int n = wt_slow() ? FLOOD_CONNS_SLOW : FLOOD_CONNS;
    bool uring = wt_uring();

    /* The child first, while this process has no threads of the engine's. */
    int to_child[2], from_child[2];
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(from_child), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    flood_pid = pid;
    if (pid == 0) {
        close(to_child[1]);
        close(from_child[0]);
        flood_child(to_child[0], from_child[1], n);
    }
    close(to_child[0]);
    close(from_child[1]);

    weft_config cfg;
    wt_config(&cfg, gated_echo, FLOOD_LOOPS);
    cfg.handler.on_open = wt_count_open;
    cfg.handler.on_close = wt_count_close;
    cfg.uring_buffers = FLOOD_BUFFERS;
    cfg.read_buffer_size = FLOOD_BUF_SIZE;
    cfg.backlog = 4096;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    assert_true(pipe_put(to_child[1], &s.port, sizeof(s.port)));

    /* All connect, and the server has opened every one, before any sends. */
    flood_result res;
    flood_expect(from_child[0], 1, WT_TIMEOUT_MS * 2, &res);
    assert_true(wt_wait_count(&wt_counts.opened, n, WT_TIMEOUT_MS));
    assert_true(pipe_put(to_child[1], "G", 1));
    flood_expect(from_child[0], 2, WT_TIMEOUT_MS * 2, &res);
    atomic_store(&flood_gate, 1);

    flood_expect(from_child[0], 3, WT_TIMEOUT_MS * 6, &res);
    int status = child_exit(pid, WT_TIMEOUT_MS);
    flood_pid = 0;
    close(to_child[1]);
    close(from_child[0]);
    if (res.ok != n)
        fail_msg("%d of %d connections got their bytes back; the first that did not: #%d (%s)",
                 res.ok, n, res.first, flood_why(res.err));
    assert_int_equal(status, 0);

    /* The server closed each once its echo went: in order, none with an error. */
    assert_true(wt_wait_count(&wt_counts.closed, n, WT_TIMEOUT_MS));
    assert_true(wt_wait_for(wt_buffers_back, s.engine, WT_TIMEOUT_MS));
    weft_loop_stats t = wt_stats(s.engine);
    printf("ring exhaustion (%s): %d connections x %d bytes, %u buffers of %zu bytes per loop, "
           "%u loops: all echoed in order in %ld ms; %llu exhaustions, %llu submissions, %llu "
           "completions\n",
           uring ? "io_uring" : "epoll", n, FLOOD_BYTES, FLOOD_BUFFERS, cfg.read_buffer_size,
           FLOOD_LOOPS, res.elapsed, (unsigned long long)t.buffer_exhaustions,
           (unsigned long long)t.submissions, (unsigned long long)t.completions);
    assert_int_equal(atomic_load(&wt_counts.opened), n);
    assert_int_equal(atomic_load(&wt_counts.closed_err), 0);
    assert_int_equal(wt_closed_with(0), n);
    assert_int_equal(t.accepted, (uint64_t)n);
    assert_int_equal(t.closed, t.accepted);
    assert_int_equal(t.live, 0);
    assert_int_equal(t.bytes_in, (uint64_t)n * FLOOD_BYTES);
    assert_int_equal(t.bytes_out, (uint64_t)n * FLOOD_BYTES);
    assert_int_equal(t.buffers_out, 0);
    if (uring) {
        assert_true(t.buffer_exhaustions > 0); /* the ring really ran dry */
        /* Waiting receives are re-armed as buffers come back, not all at every pass: a few
         * stops per connection, where re-arming all of them made it n * n / buffers. */
        assert_true(t.buffer_exhaustions <= 32u * (uint64_t)n);
    } else
        assert_int_equal(t.buffer_exhaustions, 0);
    wt_server_stop(&s);
}

/* ---- stop while operations are outstanding ---- */

/* Idle connections (a receive armed, nothing else), connections whose 1 MiB answer is
 * blocked in the kernel towards a peer that does not read, and fresh ones the stop finds
 * just accepted or still on their way to a loop. */
#define STOP_IDLE       256
#define STOP_BIG        64
#define STOP_FRESH      64
#define STOP_SLOW_SHARE 4 /* under a heavy slowdown: a quarter of each */
#define STOP_ANSWER     ((size_t)1 << 20)
#define STOP_RECS       (STOP_IDLE + STOP_BIG + STOP_FRESH)

/* One per connection on_open saw; on_close counts into it. */
typedef struct conn_rec {
    weft_conn_ref ref;
    _Atomic int closes;
    _Atomic int big; /* its answer was queued */
    _Atomic int err;
} conn_rec;

static conn_rec recs[STOP_RECS];
static _Atomic long nrecs;
static _Atomic long closes_unopened; /* on_close with no on_open before it */
static _Atomic long big_queued;
static _Atomic long big_write_rc;
static weft_loop_stats final_stats; /* read in on_shutdown, before the engine is freed */
static _Atomic int shutdown_seen;
static _Atomic long stop_at = -1; /* the on_open that stops the engine */

/* Errors the engine logs (a backend that gave up waiting for the kernel says so). */
static _Atomic long error_logs;
static char first_error[256];

static void count_errors(void *ctx, weft_log_level level, const char *msg)
{
    (void)ctx;
    if (level >= WEFT_LOG_ERROR && atomic_fetch_add(&error_logs, 1) == 0)
        snprintf(first_error, sizeof(first_error), "%s", msg);
}

static weft_action rec_open(weft_conn *c)
{
    long i = atomic_fetch_add(&nrecs, 1);
    if (i < STOP_RECS) {
        recs[i].ref = weft_conn_get_ref(c);
        weft_conn_set_context(c, &recs[i]);
    }
    if (i == atomic_load(&stop_at))
        weft_engine_stop(weft_conn_get_engine(c));
    return wt_count_open(c);
}

static void rec_close(weft_conn *c, int err)
{
    conn_rec *r = weft_conn_get_context(c);
    if (r == NULL) {
        atomic_fetch_add(&closes_unopened, 1);
    } else {
        atomic_store(&r->err, err);
        atomic_fetch_add(&r->closes, 1);
    }
    wt_count_close(c, err);
}

static void rec_shutdown(weft_engine *e)
{
    final_stats = wt_stats(e);
    atomic_store(&shutdown_seen, 1);
}

/* "big": a 1 MiB answer, through a small send buffer so that it cannot all go; anything
 * else is echoed. */
static weft_action big_or_echo(weft_conn *c)
{
    const uint8_t *p;
    if (weft_conn_peek(c, 3, &p) != 3 || memcmp(p, "big", 3) != 0)
        return wt_echo_on_traffic(c);
    weft_conn_discard(c, weft_conn_get_buffered(c));
    int sz = 32 * 1024;
    (void)setsockopt(weft_conn_get_fd(c), SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    static uint8_t answer[STOP_ANSWER];
    int rc = weft_conn_write(c, answer, sizeof(answer));
    if (rc != 0) {
        atomic_store(&big_write_rc, rc);
        return WEFT_ACTION_CLOSE;
    }
    conn_rec *r = weft_conn_get_context(c);
    if (r != NULL)
        atomic_store(&r->big, 1);
    atomic_fetch_add(&big_queued, 1);
    return WEFT_ACTION_NONE;
}

typedef struct out_goal {
    weft_engine *engine;
    uint64_t bytes;
} out_goal;

static bool bytes_out_reached(void *arg)
{
    out_goal *g = arg;
    return wt_stats(g->engine).bytes_out >= g->bytes;
}

/* zc_min: the engine's uring_zc_min, so the blocked sends can be zero-copy ones. */
static void stop_case(size_t zc_min)
{
    wt_counters_reset();
    memset(recs, 0, sizeof(recs));
    atomic_store(&nrecs, 0);
    atomic_store(&closes_unopened, 0);
    atomic_store(&big_queued, 0);
    atomic_store(&big_write_rc, 0);
    atomic_store(&shutdown_seen, 0);
    atomic_store(&stop_at, -1);
    atomic_store(&error_logs, 0);
    memset(&final_stats, 0, sizeof(final_stats));
    int share = wt_slow() ? STOP_SLOW_SHARE : 1;
    int nidle = STOP_IDLE / share, nbig = STOP_BIG / share, nfresh = STOP_FRESH / share;
    bool uring = wt_uring();

    weft_config cfg;
    wt_config(&cfg, big_or_echo, 2);
    cfg.handler.on_open = rec_open;
    cfg.handler.on_close = rec_close;
    cfg.handler.on_shutdown = rec_shutdown;
    cfg.uring_zc_min = zc_min;
    cfg.log_cb = count_errors;
    cfg.stop_timeout_ms = 300; /* the non-readers never drain: the stop gives up on them */
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);

    /* Idle: one echo each, so each has been served and has its receive armed again. */
    int fds[STOP_RECS];
    int nfds = 0;
    for (int i = 0; i < nidle; i++) {
        int fd = wt_connect_tcp(s.port);
        assert_true(fd >= 0);
        fds[nfds++] = fd;
        char in[2];
        assert_int_equal(wt_exchange(fd, "hi", 2, in, 2, WT_TIMEOUT_MS), 0);
        assert_memory_equal(in, "hi", 2);
    }

    /* Non-readers: a small window and no reading, so the answer's send stays in flight. */
    for (int i = 0; i < nbig; i++) {
        int fd = wt_connect_tcp(s.port);
        assert_true(fd >= 0);
        int sz = 16 * 1024;
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
        fds[nfds++] = fd;
        assert_int_equal(wt_send_all(fd, "big", 3, WT_TIMEOUT_MS), 0);
    }
    assert_true(wt_wait_count(&big_queued, nbig, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&big_write_rc), 0);
    /* Each answer has started to go (the kernel took a first part) ... */
    out_goal goal = {s.engine, (uint64_t)nidle * 2 + (uint64_t)nbig * 16 * 1024};
    assert_true(wt_wait_for(bytes_out_reached, &goal, WT_TIMEOUT_MS));
    /* ... and none can finish: the rest waits on the peer, in the kernel or the queue. */
    long nrec = atomic_load(&nrecs);
    int blocked = 0;
    for (long i = 0; i < nrec && i < STOP_RECS; i++) {
        if (!atomic_load(&recs[i].big))
            continue;
        size_t pending = 0;
        assert_int_equal(weft_async_get_pending_out(s.engine, recs[i].ref, &pending), 0);
        assert_true(pending > 0);
        blocked++;
    }
    assert_int_equal(blocked, nbig);
    weft_loop_stats before = wt_stats(s.engine);

    /* Fresh: connects started in a burst without waiting for them; the first of them to
     * open stops the engine, so the stop finds the rest in the backlog, on their way to a
     * loop, or just open. */
    atomic_store(&stop_at, atomic_load(&nrecs));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)s.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < nfresh; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        assert_true(rc == 0 || errno == EINPROGRESS || errno == ECONNREFUSED);
        fds[nfds++] = fd;
    }
    int64_t t0 = wt_now_ms();
    wt_server_stop(&s);
    int64_t stop_ms = wt_now_ms() - t0;

    /* Every connection on_open saw was closed exactly once; none was closed unseen. */
    assert_true(atomic_load(&shutdown_seen));
    long opened = atomic_load(&wt_counts.opened);
    assert_int_equal(atomic_load(&nrecs), opened);
    assert_true(opened <= STOP_RECS);
    assert_true(opened >= nidle + nbig);
    long timed_out = 0;
    for (long i = 0; i < opened; i++) {
        if (atomic_load(&recs[i].closes) != 1)
            fail_msg("connection #%ld: on_close ran %d times", i, atomic_load(&recs[i].closes));
        if (atomic_load(&recs[i].big) && atomic_load(&recs[i].err) == WEFT_ETIMEDOUT)
            timed_out++;
    }
    assert_int_equal(atomic_load(&closes_unopened), 0);
    if (atomic_load(&error_logs) != 0)
        fail_msg("the stop logged %ld errors, the first: %s", atomic_load(&error_logs),
                 first_error);
    assert_int_equal(atomic_load(&wt_counts.closed), opened);
    printf("stop (%s%s): %d idle, %d with a blocked 1 MiB send, %d fresh (%ld opened): stopped "
           "in %lld ms; before it %llu submissions, %llu completions; %ld non-readers timed out; "
           "after it accepted %llu, closed %llu, buffers out %llu\n",
           uring ? "io_uring" : "epoll", zc_min > 0 ? ", zero-copy" : "", nidle, nbig, nfresh,
           opened, (long long)stop_ms, (unsigned long long)before.submissions,
           (unsigned long long)before.completions, timed_out,
           (unsigned long long)final_stats.accepted, (unsigned long long)final_stats.closed,
           (unsigned long long)final_stats.buffers_out);
    assert_int_equal(final_stats.accepted, (uint64_t)opened);
    assert_int_equal(final_stats.closed, final_stats.accepted);
    assert_int_equal(final_stats.live, 0);
    assert_int_equal(final_stats.buffers_out, 0);
    if (zc_min > 0)
        assert_true(final_stats.zerocopy_sends > 0);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
}

static void test_stop_while_submissions_are_outstanding(void **state)
{
    (void)state;
    if (skip_under_valgrind())
        skip();
    stop_case(0);
}

/* The same with the blocked sends zero-copy: what the kernel holds of them for a peer that
 * never reads is the loop's own memory, and the stop must get it back (the connections it
 * closes on the stop's timeout are reset) instead of waiting for notifications that would
 * come only when the peer read. */
static void test_stop_while_zero_copy_sends_wait_for_non_readers(void **state)
{
    (void)state;
    if (!wt_uring()) {
        print_message("zero-copy sends are io_uring's (IORING_OP_SEND_ZC); skipped on epoll\n");
        skip();
    }
    if (skip_under_valgrind())
        skip();
    stop_case((size_t)64 << 10);
}

/* ---- a reset while a zero-copy send is in flight ---- */

/* Sends of at least ZC_MIN go out with IORING_OP_SEND_ZC: the kernel reads the bytes from
 * the connection's queue (or the caller's buffer) while they are on the wire, and says when
 * it is done with them in a second completion. A reset in between must neither free that
 * memory early nor leave it held. */
#define ZC_MIN    ((size_t)64 << 10)
#define ZC_ANSWER ((size_t)8 << 20)
#define ZC_READ   ((size_t)1 << 20)
#define ZC_ECHO   ((size_t)256 << 10)

static uint8_t *zc_pattern; /* ZC_ANSWER bytes of pattern, made by the test */
static _Atomic long zc_write_rc;
static _Atomic long zc_frees; /* free_cb calls for weft_async_write_zc's buffer */

/* "big": the 8 MiB answer through weft_conn_write; anything else is echoed. */
static weft_action zc_big_or_echo(weft_conn *c)
{
    const uint8_t *p;
    if (weft_conn_peek(c, 3, &p) != 3 || memcmp(p, "big", 3) != 0)
        return wt_echo_on_traffic(c);
    weft_conn_discard(c, weft_conn_get_buffered(c));
    int rc = weft_conn_write(c, zc_pattern, ZC_ANSWER);
    if (rc != 0) {
        atomic_store(&zc_write_rc, rc);
        return WEFT_ACTION_CLOSE;
    }
    return WEFT_ACTION_NONE;
}

static void zc_free(void *data, void *ctx)
{
    (void)ctx;
    free(data);
    atomic_fetch_add(&zc_frees, 1);
}

static void reset(int fd)
{
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
}

static void echo_large(int fd, uint32_t seed)
{
    uint8_t *out = malloc(ZC_ECHO), *in = malloc(ZC_ECHO);
    assert_non_null(out);
    assert_non_null(in);
    wt_fill(out, ZC_ECHO, seed);
    assert_int_equal(wt_exchange(fd, out, ZC_ECHO, in, ZC_ECHO, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, out, ZC_ECHO);
    free(out);
    free(in);
}

/* The answer comes from weft_conn_write (copied into the queue) or, with by_ref, from
 * weft_async_write_zc (the caller's buffer, sent without a copy). */
static void zc_reset_case(bool by_ref)
{
    wt_counters_reset();
    memset(recs, 0, sizeof(recs));
    atomic_store(&nrecs, 0);
    atomic_store(&closes_unopened, 0);
    atomic_store(&stop_at, -1);
    atomic_store(&zc_write_rc, 0);
    atomic_store(&zc_frees, 0);
    weft_config cfg;
    wt_config(&cfg, zc_big_or_echo, 1);
    cfg.handler.on_open = rec_open;
    cfg.handler.on_close = rec_close;
    cfg.uring_zc_min = ZC_MIN;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);

    /* A neighbour on the same (only) loop, served before and after. */
    int neighbour = wt_connect_tcp(s.port);
    assert_true(neighbour >= 0);
    echo_large(neighbour, 21);

    /* A small receive window, so the kernel cannot take the whole answer before the reset
     * (at most the server's send buffer, a few MiB, plus this). */
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    int sz = 64 * 1024;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
    assert_true(wt_wait_count(&wt_counts.opened, 2, WT_TIMEOUT_MS));
    if (by_ref) {
        uint8_t *answer = malloc(ZC_ANSWER);
        assert_non_null(answer);
        memcpy(answer, zc_pattern, ZC_ANSWER);
        assert_int_equal(
            weft_async_write_zc(s.engine, recs[1].ref, answer, ZC_ANSWER, zc_free, NULL), 0);
    } else {
        assert_int_equal(wt_send_all(fd, "big", 3, WT_TIMEOUT_MS), 0);
    }

    /* 1 MiB of it, every byte the answer's, then a reset with the rest in flight. */
    uint8_t *in = malloc(ZC_READ);
    assert_non_null(in);
    assert_int_equal(wt_recv_exact(fd, in, ZC_READ, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, zc_pattern, ZC_READ);
    free(in);
    reset(fd);

    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&recs[1].closes), 1);
    int err = atomic_load(&recs[1].err);
    if (err != WEFT_ECONNRESET && err != WEFT_EPIPE)
        fail_msg("the reset connection closed with %s, want WEFT_ECONNRESET or WEFT_EPIPE",
                 weft_err_name(err));
    assert_int_equal(atomic_load(&zc_write_rc), 0);
    /* The queue (or the caller's buffer) comes back once the kernel's notification says it
     * no longer reads it, a moment after on_close. */
    assert_true(wt_wait_for(wt_buffers_back, s.engine, WT_TIMEOUT_MS));
    if (by_ref)
        assert_true(wt_wait_count(&zc_frees, 1, WT_TIMEOUT_MS));
    weft_loop_stats t = wt_stats(s.engine);
    printf("zero-copy %s: an %zu-byte answer, 1 MiB read, then RST: closed with %s after %llu "
           "bytes out; %llu zero-copy sends\n",
           by_ref ? "weft_async_write_zc" : "weft_conn_write", ZC_ANSWER, weft_err_name(err),
           (unsigned long long)t.bytes_out, (unsigned long long)t.zerocopy_sends);
    assert_true(t.zerocopy_sends > 0);
    assert_true(t.bytes_out < ZC_ANSWER + 2 * ZC_ECHO);
    assert_int_equal(t.buffers_out, 0);

    /* The neighbour on the same loop never noticed: its large echo still comes back whole. */
    echo_large(neighbour, 22);
    close(neighbour);
    assert_true(wt_wait_count(&wt_counts.closed, 2, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&wt_counts.closed_err), 1);
    assert_int_equal(atomic_load(&closes_unopened), 0);
    wt_server_stop(&s);
    assert_int_equal(atomic_load(&zc_frees), by_ref ? 1 : 0);
}

static void test_reset_while_a_zero_copy_send_is_in_flight(void **state)
{
    (void)state;
    if (!wt_uring()) {
        print_message("zero-copy sends are io_uring's (IORING_OP_SEND_ZC); skipped on epoll\n");
        skip();
    }
    if (skip_under_valgrind())
        skip();
    zc_pattern = malloc(ZC_ANSWER);
    assert_non_null(zc_pattern);
    wt_fill(zc_pattern, ZC_ANSWER, 11);
    zc_reset_case(false);
    zc_reset_case(true);
    free(zc_pattern);
    zc_pattern = NULL;
}

/* A zero-copy send finishes long before the kernel is done with its bytes (a reader this
 * slow holds them for the whole answer): the chunks it emptied must not go back to the pool
 * meanwhile, where the neighbour's echoes would take them and write over what the kernel
 * has yet to deliver. */
static void test_a_zero_copy_answer_arrives_whole_while_the_loop_reuses_buffers(void **state)
{
    (void)state;
    if (!wt_uring()) {
        print_message("zero-copy sends are io_uring's (IORING_OP_SEND_ZC); skipped on epoll\n");
        skip();
    }
    if (skip_under_valgrind())
        skip();
    zc_pattern = malloc(ZC_ANSWER);
    assert_non_null(zc_pattern);
    wt_fill(zc_pattern, ZC_ANSWER, 12);
    wt_counters_reset();
    atomic_store(&zc_write_rc, 0);
    weft_config cfg;
    wt_config(&cfg, zc_big_or_echo, 1);
    cfg.handler.on_open = wt_count_open;
    cfg.handler.on_close = wt_count_close;
    cfg.uring_zc_min = ZC_MIN;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int neighbour = wt_connect_tcp(s.port);
    assert_true(neighbour >= 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    int sz = 64 * 1024;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
    assert_int_equal(wt_send_all(fd, "big", 3, WT_TIMEOUT_MS), 0);

    /* The answer in pieces, a large echo of the neighbour's between any two. */
    uint8_t *in = malloc(ZC_ANSWER);
    assert_non_null(in);
    size_t piece = ZC_ANSWER / 16;
    for (size_t off = 0; off < ZC_ANSWER; off += piece) {
        assert_int_equal(wt_recv_exact(fd, in + off, piece, WT_TIMEOUT_MS), 0);
        echo_large(neighbour, (uint32_t)(100 + off / piece));
    }
    if (memcmp(in, zc_pattern, ZC_ANSWER) != 0) {
        size_t i = 0;
        while (in[i] == zc_pattern[i])
            i++;
        fail_msg("the zero-copy answer differs from byte %zu on", i);
    }
    free(in);
    assert_int_equal(atomic_load(&zc_write_rc), 0);
    weft_loop_stats t = wt_stats(s.engine);
    printf("zero-copy: an %zu-byte answer read in 16 pieces with a %zu-byte echo between: "
           "whole; %llu zero-copy sends, %llu connection(s) back to copying\n",
           ZC_ANSWER, ZC_ECHO, (unsigned long long)t.zerocopy_sends,
           (unsigned long long)t.zerocopy_copied);
    assert_true(t.zerocopy_copied <= 2); /* at most once per connection */
    assert_true(t.zerocopy_sends > 0);
    close(fd);
    close(neighbour);
    assert_true(wt_wait_count(&wt_counts.closed, 2, WT_TIMEOUT_MS));
    assert_true(wt_wait_for(wt_buffers_back, s.engine, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&wt_counts.closed_err), 0);
    wt_server_stop(&s);
    free(zc_pattern);
    zc_pattern = NULL;
}

/* ---- zero-copy bytes count towards the output limits ---- */

/* A zero-copy send finishes when the kernel took the bytes, but their chunks stay held until
 * the peer took them too: for a peer that does not read, everything the socket buffers can
 * hold. Those held bytes count as queued ones: the high-water mark pauses the connection
 * with them, the hard cap counts them, and when they are let go reading resumes as it does
 * when queued bytes leave. */
#define ZCB_FLOOD ((size_t)16 << 20)
#define ZCB_HW    ((size_t)128 << 10)

static _Atomic long zcb_max_pending; /* the largest weft_conn_get_pending_out after a write */

static weft_action zcb_echo(weft_conn *c)
{
    weft_action a = wt_echo_on_traffic(c);
    long pending = (long)weft_conn_get_pending_out(c);
    long seen = atomic_load(&zcb_max_pending);
    while (pending > seen && !atomic_compare_exchange_weak(&zcb_max_pending, &seen, pending))
        ;
    return a;
}

static void test_zero_copy_bytes_held_for_a_non_reader_count_towards_the_mark(void **state)
{
    (void)state;
    if (!wt_uring()) {
        print_message("zero-copy sends are io_uring's (IORING_OP_SEND_ZC); skipped on epoll\n");
        skip();
    }
    if (skip_under_valgrind())
        skip();
    wt_counters_reset();
    atomic_store(&zcb_max_pending, 0);
    weft_config cfg;
    wt_config(&cfg, zcb_echo, 1);
    cfg.handler.on_close = wt_count_close;
    cfg.uring_zc_min = 4096; /* every echo of a read goes zero-copy */
    cfg.write_high_water = ZCB_HW;
    const size_t bound = ZCB_HW + cfg.read_buffer_size; /* the mark, passed by one read */
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    /* The peer's window is smaller than any zero-copy send, so none is fully delivered and
     * none is reported copied (loopback copies what it delivers) before the peer reads; the
     * server's send buffer is the default: the kernel could hold megabytes there. */
    int fd = wt_connect_tcp_small(s.port, 2048, 16384);
    assert_true(fd >= 0);
    uint8_t *data = malloc(ZCB_FLOOD);
    uint8_t *in = malloc(1 << 20);
    assert_non_null(data);
    assert_non_null(in);
    wt_fill(data, ZCB_FLOOD, 21);
    wt_flood w = {.fd = fd, .data = data, .len = ZCB_FLOOD};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wt_flood_main, &w), 0);

    /* Phase 1: the client only writes, until it is stuck: the server paused reading it and,
     * while it took no more bytes, sends were refused (flood.h). */
    uint64_t max_buffer_bytes = 0, max_held = 0;
    wt_flood_watch watch;
    wt_flood_watch_init(&watch);
    int64_t end = wt_now_ms() + 2 * WT_TIMEOUT_MS;
    for (;;) {
        assert_true(wt_now_ms() < end);
        weft_loop_stats t = wt_stats(s.engine);
        if (t.buffer_bytes > max_buffer_bytes)
            max_buffer_bytes = t.buffer_bytes;
        if (t.zerocopy_held_bytes > max_held)
            max_held = t.zerocopy_held_bytes;
        if (wt_flood_stuck(&watch, &w, t.backpressure_pauses, t.bytes_in))
            break;
        wt_sleep_ms(2);
    }
    weft_loop_stats t = wt_stats(s.engine);
    printf("zero-copy to a non-reader: %llu bytes read, %llu zero-copy sends, at most %llu "
           "bytes held and %ld pending (mark %zu), %llu buffer bytes out at most\n",
           (unsigned long long)t.bytes_in, (unsigned long long)t.zerocopy_sends,
           (unsigned long long)max_held, atomic_load(&zcb_max_pending), ZCB_HW,
           (unsigned long long)max_buffer_bytes);
    assert_int_equal(atomic_load(&w.error), 0);
    assert_true(atomic_load(&w.sent) < ZCB_FLOOD); /* held back: the server stopped reading */
    assert_true(t.zerocopy_sends > 0);
    assert_true(t.zerocopy_held_bytes > 0); /* the peer reads nothing: nothing was let go */
    /* Held bytes counted: the mark paused the connection, passed by one read at most. */
    assert_true((size_t)atomic_load(&zcb_max_pending) >= ZCB_HW);
    assert_true((size_t)atomic_load(&zcb_max_pending) <= bound);
    assert_true(max_held <= bound);
    assert_true(max_buffer_bytes <= 2 * bound);

    /* Phase 2: the peer reads. As held bytes are let go reading resumes: every byte comes
     * back, in order, and the bounds hold all along. */
    assert_int_equal(wt_setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, 1 << 20), 0);
    size_t got = 0;
    while (got < ZCB_FLOOD) {
        size_t n = ZCB_FLOOD - got < (1 << 20) ? ZCB_FLOOD - got : (1 << 20);
        ssize_t r = recv(fd, in, n, 0);
        assert_true(r > 0);
        assert_memory_equal(in, data + got, (size_t)r);
        got += (size_t)r;
        t = wt_stats(s.engine);
        if (t.buffer_bytes > max_buffer_bytes)
            max_buffer_bytes = t.buffer_bytes;
        if (t.zerocopy_held_bytes > max_held)
            max_held = t.zerocopy_held_bytes;
    }
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&w.sent), ZCB_FLOOD);
    assert_true((size_t)atomic_load(&zcb_max_pending) <= bound);
    assert_true(max_held <= bound);
    assert_true(max_buffer_bytes <= 2 * bound);
    assert_int_equal(atomic_load(&wt_counts.closed), 0);
    close(fd);
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&wt_counts.last_err), 0);
    assert_true(wt_wait_for(wt_buffers_back, s.engine, WT_TIMEOUT_MS));
    assert_int_equal(wt_stats(s.engine).zerocopy_held_bytes, 0);
    wt_server_stop(&s);
    free(data);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_buffer_ring_exhaustion_every_byte_in_order, flood_teardown),
        cmocka_unit_test(test_stop_while_submissions_are_outstanding),
        cmocka_unit_test(test_stop_while_zero_copy_sends_wait_for_non_readers),
        cmocka_unit_test(test_reset_while_a_zero_copy_send_is_in_flight),
        cmocka_unit_test(test_a_zero_copy_answer_arrives_whole_while_the_loop_reuses_buffers),
        cmocka_unit_test(test_zero_copy_bytes_held_for_a_non_reader_count_towards_the_mark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
