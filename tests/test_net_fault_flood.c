/* Floods: connections opened and closed as fast as several threads can, and more clients
 * than the process has descriptors for. Afterwards nothing may be left behind: no open
 * descriptor, no live connection object, no buffer held. While out of descriptors the
 * acceptor must neither spin nor die, and must serve everyone once descriptors free up.
 *
 * This file lowers RLIMIT_NOFILE for its own process, so it is a test program of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "fd_limit.h"
#include "harness.h"

#if defined(__SANITIZE_THREAD__)
#define RSS_FACTOR 6
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RSS_FACTOR 6
#endif
#endif
#ifndef RSS_FACTOR
#define RSS_FACTOR 1
#endif

/* Closes with an error other than a reset: the peers here only close or reset. */
static long closed_unexpectedly(void)
{
    return atomic_load(&wt_counts.closed) - wt_closed_with(0) - wt_closed_with(WEFT_ECONNRESET) -
           wt_closed_with(WEFT_EPIPE);
}

static void flood_config(weft_config *cfg, unsigned loops)
{
    wt_counters_reset();
    wt_config(cfg, wt_echo_on_traffic, loops);
    cfg->handler.on_open = wt_count_open;
    cfg->handler.on_close = wt_count_close;
}

/* Every connection the engine took was closed again, and none waits to be opened (live
 * counts a connection from its hand-off to a loop). */
static bool all_closed(void *arg)
{
    weft_loop_stats t = wt_stats(arg);
    return t.live == 0 && t.accepted == t.closed;
}

/* Waits until the engine took every connection left in its backlog and closed each one it
 * took: all_closed as the final state, not a lull between two accepts. A last client goes
 * through the backlog behind every earlier one (the accept queue is first in, first out,
 * and there is one listener), so once its echo is back, every earlier peer was accepted or
 * dropped by the kernel; once it has left too, nothing more can arrive. The last client
 * counts as one connection accepted, opened and closed. */
static bool drain_backlog(const wt_server *s, int timeout_ms)
{
    int fd = wt_connect_tcp(s->port);
    if (fd < 0)
        return false;
    char c = 0;
    int rc = wt_exchange(fd, "s", 1, &c, 1, timeout_ms);
    wt_close(fd);
    return rc == 0 && c == 's' && wt_wait_for(all_closed, s->engine, timeout_ms);
}

/* ---- connect/close flood ---- */

#define FLOOD_THREADS 4

typedef struct flooder {
    int port;
    int cycles;
    int index;
    long echoed;
    long failed;
    int first_errno;
} flooder;

/* connect, every fourth time a one-byte echo, then close with a reset (SO_LINGER 0), so no
 * TIME_WAIT is left to run out of ports with. */
static void *flood_main(void *arg)
{
    flooder *f = arg;
    for (int i = 0; i < f->cycles; i++) {
        int fd = wt_connect_tcp(f->port);
        if (fd < 0) {
            if (f->failed++ == 0)
                f->first_errno = -fd;
            continue;
        }
        if ((i + f->index) % 4 == 0) {
            char c = (char)i, back;
            if (wt_exchange(fd, &c, 1, &back, 1, WT_TIMEOUT_MS) == 0 && back == c)
                f->echoed++;
            else if (f->failed++ == 0)
                f->first_errno = EIO;
        }
        (void)wt_linger_reset(fd);
        wt_close(fd);
    }
    return NULL;
}

static void test_connect_close_flood(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_fd_count());
    /* 20,000 in a normal build; a tenth under a heavy slowdown, where 20,000 would take
     * minutes and prove nothing more. */
    const int total = wt_slow() ? 2000 : 20000;
    weft_config cfg;
    flood_config(&cfg, 2);
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fds_before = wt_fd_count();
    long rss_before = wt_rss_kb();
    assert_true(fds_before > 0);

    int64_t t0 = wt_now_ms();
    pthread_t th[FLOOD_THREADS];
    flooder fl[FLOOD_THREADS];
    for (int i = 0; i < FLOOD_THREADS; i++) {
        fl[i] = (flooder){.port = s.port, .cycles = total / FLOOD_THREADS, .index = i};
        assert_int_equal(pthread_create(&th[i], NULL, flood_main, &fl[i]), 0);
    }
    long echoed = 0, failed = 0;
    for (int i = 0; i < FLOOD_THREADS; i++) {
        pthread_join(th[i], NULL);
        echoed += fl[i].echoed;
        failed += fl[i].failed;
        if (fl[i].failed > 0)
            printf("flood thread %d: %ld failures, first: %s\n", i, fl[i].failed,
                   strerror(fl[i].first_errno));
    }
    int64_t ms = wt_now_ms() - t0;

    assert_true(drain_backlog(&s, WT_TIMEOUT_MS));
    assert_true(wt_wait_for(wt_buffers_back, s.engine, WT_TIMEOUT_MS));
    int fds_after = wt_fd_count();
    long rss_after = wt_rss_kb();
    weft_stats st;
    weft_engine_get_stats(s.engine, &st, NULL);
    uint64_t accepted = st.total.accepted - 1; /* drain_backlog's client is not the flood's */
    printf("flood: %d connect/close cycles (%ld with an echo) by %d threads in %lld ms "
           "(%.0f/s); accepted %llu, closed %llu, live %llu, rejected %llu, accept errors "
           "%llu; fds %d -> %d; buffers held %llu (%llu bytes); RSS %ld -> %ld KiB\n",
           total, echoed, FLOOD_THREADS, (long long)ms, ms > 0 ? total * 1000.0 / ms : 0.0,
           (unsigned long long)accepted, (unsigned long long)(st.total.closed - 1),
           (unsigned long long)st.total.live, (unsigned long long)st.rejected,
           (unsigned long long)st.accept_errors, fds_before, fds_after,
           (unsigned long long)st.total.buffers_out, (unsigned long long)st.total.buffer_bytes,
           rss_before, rss_after);
    assert_int_equal(failed, 0);
    assert_int_equal(echoed, total / 4);
    /* A peer reset while still in the backlog may be dropped by the kernel before accept
     * sees it; every one the server did accept was closed again, once. */
    assert_true(accepted >= (uint64_t)echoed);
    assert_true(accepted <= (uint64_t)total);
    assert_int_equal(st.total.accepted, st.total.closed);
    assert_int_equal(atomic_load(&wt_counts.opened), (long)st.total.accepted);
    assert_int_equal(atomic_load(&wt_counts.closed), (long)st.total.accepted);
    assert_int_equal(closed_unexpectedly(), 0);
    assert_int_equal(st.total.live, 0);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.total.buffers_out, 0);
    assert_int_equal(st.total.buffer_bytes, 0);
    assert_int_equal(fds_after, fds_before);
    /* Connection objects are reused slots; the flood must not grow the process by more
     * than a few chunks of them. */
    assert_true(rss_after - rss_before < 32 * 1024 * RSS_FACTOR);

    /* And the server still serves. */
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    char in[4];
    assert_int_equal(wt_exchange(fd, "end", 3, in, 3, WT_TIMEOUT_MS), 0);
    wt_close(fd);
    wt_server_stop(&s);
}

/* ---- more clients than descriptors ---- */

#define CLIENTS 60
#define SPARE   10 /* descriptors left to the server under the lowered limit */

/* Reads whatever echo arrived without blocking; marks the clients that got theirs. */
static int collect_echoes(const int *fds, bool *served, int n)
{
    int count = 0;
    for (int i = 0; i < n; i++) {
        if (!served[i] && fds[i] >= 0) {
            char c;
            if (wt_recv_now(fds[i], &c, 1) == 1 && c == 'x')
                served[i] = true;
        }
        count += served[i];
    }
    return count;
}

static void clients_over_the_fd_limit(bool reuse_port)
{
    WT_SKIP_IF(wt_missing_fd_limit());
    if (wt_valgrind()) {
        printf("skipped: valgrind emulates RLIMIT_NOFILE and drops the peers over it\n");
        skip();
    }
    if (wt_uring()) {
        /* Seen on Linux 6.18: io_uring's accept takes descriptors past a lowered soft
         * RLIMIT_NOFILE, so lowering it does not make a full table for the server. */
        printf("skipped: io_uring's accept does not honour a lowered RLIMIT_NOFILE\n");
        skip();
    }
    weft_config cfg;
    flood_config(&cfg, 1);
    cfg.reuse_port = reuse_port;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fds_before = wt_fd_count();

    /* The clients' sockets are made first: a descriptor numbered above the limit stays
     * usable after the limit is lowered, so only the server runs short. */
    int fds[CLIENTS];
    bool served[CLIENTS] = {false};
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = wt_socket_tcp();
        assert_true(fds[i] >= 0);
    }
    assert_int_equal(wt_fd_limit_lower(SPARE), 0);

    for (int i = 0; i < CLIENTS; i++) {
        /* The kernel completes it into the backlog. */
        assert_int_equal(wt_connect_fd(fds[i], s.port), 0);
        assert_int_equal(send(fds[i], "x", 1, MSG_NOSIGNAL), 1);
    }
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    weft_stats st;
    do {
        assert_true(wt_now_ms() < end);
        wt_sleep_ms(5);
        weft_engine_get_stats(s.engine, &st, NULL);
    } while (st.accept_errors == 0);

    /* Out of descriptors for a second: no spinning. A spinning acceptor fails accept tens
     * of thousands of times a second, one that backs off a handful (a slow machine fewer,
     * not more). */
    weft_stats before, after;
    weft_engine_get_stats(s.engine, &before, NULL);
    wt_sleep_ms(1000);
    weft_engine_get_stats(s.engine, &after, NULL);
    /* The first SPARE are served: each one the server took gets its echo. (It may have
     * taken the last of them just now; its echo follows.) */
    int first_served;
    end = wt_now_ms() + WT_TIMEOUT_MS;
    while ((first_served = collect_echoes(fds, served, CLIENTS)) < (int)after.total.accepted) {
        assert_true(wt_now_ms() < end);
        wt_sleep_ms(5);
    }
    printf("fd limit (%s): %d clients, %d descriptors spare: %llu accepted, %d served, "
           "%llu accept errors in 1 s while starved\n",
           reuse_port ? "reuse_port" : "acceptor", CLIENTS, SPARE,
           (unsigned long long)after.total.accepted, first_served,
           (unsigned long long)(after.accept_errors - before.accept_errors));
    assert_true(after.accept_errors - before.accept_errors < 100);
    assert_true(after.total.accepted > 0);
    assert_true(after.total.accepted <= SPARE);
    assert_int_equal(first_served, (int)wt_stats(s.engine).accepted);

    /* Served clients leave: their descriptors come back and the acceptor takes more. */
    for (int i = 0; i < CLIENTS; i++) {
        if (served[i]) {
            wt_close(fds[i]);
            fds[i] = -1;
        }
    }
    end = wt_now_ms() + WT_TIMEOUT_MS;
    while (collect_echoes(fds, served, CLIENTS) <= first_served) {
        assert_true(wt_now_ms() < end);
        wt_sleep_ms(5);
    }

    /* The limit comes back: everyone still waiting is served. */
    assert_int_equal(wt_fd_limit_restore(), 0);
    end = wt_now_ms() + WT_TIMEOUT_MS;
    while (collect_echoes(fds, served, CLIENTS) < CLIENTS) {
        assert_true(wt_now_ms() < end);
        wt_sleep_ms(5);
    }
    for (int i = 0; i < CLIENTS; i++) {
        if (fds[i] >= 0)
            wt_close(fds[i]);
    }
    /* Every client was served, so every one was accepted: nothing is left to arrive. */
    assert_true(wt_wait_for(all_closed, s.engine, WT_TIMEOUT_MS));
    weft_engine_get_stats(s.engine, &st, NULL);
    assert_int_equal(st.total.accepted, CLIENTS);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(closed_unexpectedly(), 0);
    assert_int_equal(wt_fd_count(), fds_before);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    char in[4];
    assert_int_equal(wt_exchange(fd, "end", 3, in, 3, WT_TIMEOUT_MS), 0);
    wt_close(fd);
    wt_server_stop(&s);
}

static void test_clients_over_the_fd_limit(void **state)
{
    (void)state;
    clients_over_the_fd_limit(false);
}

static void test_clients_over_the_fd_limit_reuse_port(void **state)
{
    (void)state;
    clients_over_the_fd_limit(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_close_flood),
        cmocka_unit_test(test_clients_over_the_fd_limit),
        cmocka_unit_test(test_clients_over_the_fd_limit_reuse_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
