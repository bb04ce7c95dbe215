/* Out of descriptors: with the process's fd table full, accept fails with EMFILE while a
 * peer waits in the backlog. The acceptor must back off instead of spinning on a listener
 * that stays readable, and must serve that peer once descriptors free up.
 *
 * This file lowers RLIMIT_NOFILE for its own process, so it is a test program of its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fd_limit.h"
#include "harness.h"

#define MAX_FILLERS 256

typedef struct fd_famine {
    int fillers[MAX_FILLERS];
    int nfillers;
} fd_famine;

/* Lowers the fd limit just above what is open and takes every descriptor left. */
static void famine_begin(fd_famine *f)
{
    assert_int_equal(wt_fd_limit_lower(32), 0);
    f->nfillers = 0;
    for (;;) {
        int fd = wt_fd_take();
        if (fd < 0) {
            assert_int_equal(fd, -EMFILE);
            break;
        }
        assert_true(f->nfillers < MAX_FILLERS);
        f->fillers[f->nfillers++] = fd;
    }
}

/* Gives one descriptor back (for a client socket). */
static void famine_spare_one(fd_famine *f)
{
    assert_true(f->nfillers > 0);
    wt_fd_put(f->fillers[--f->nfillers]);
}

static void famine_end(fd_famine *f)
{
    while (f->nfillers > 0)
        wt_fd_put(f->fillers[--f->nfillers]);
    assert_int_equal(wt_fd_limit_restore(), 0);
}

static bool accept_failed(void *arg)
{
    weft_stats st;
    weft_engine_get_stats(arg, &st, NULL);
    return st.accept_errors > 0;
}

static void survive_emfile(bool reuse_port)
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
    wt_config(&cfg, wt_echo_on_traffic, 1);
    cfg.reuse_port = reuse_port;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int first = wt_connect_tcp(s.port);
    assert_true(first >= 0);
    char in[16];
    assert_int_equal(wt_exchange(first, "before", 6, in, 6, WT_TIMEOUT_MS), 0);

    /* Fill the fd table, then connect one more peer: the kernel completes its handshake,
     * but the server has no descriptor to accept it with. */
    fd_famine f;
    famine_begin(&f);
    famine_spare_one(&f);
    int late = wt_connect_tcp(s.port);
    assert_true(late >= 0);
    assert_int_equal(wt_send_all(late, "after", 5, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_for(accept_failed, s.engine, WT_TIMEOUT_MS));

    /* For a second, the listener stays readable and accept keeps failing: the server must
     * wait, not spin. A spinning acceptor fails accept millions of times a second; one that
     * backs off (10 ms, doubling up to 1 s) a handful. A slow machine fails it less often,
     * not more. */
    weft_stats before, after;
    weft_engine_get_stats(s.engine, &before, NULL);
    wt_sleep_ms(1000);
    weft_engine_get_stats(s.engine, &after, NULL);
    printf("%s: %llu accept errors in a second out of descriptors\n",
           reuse_port ? "reuse_port" : "acceptor",
           (unsigned long long)(after.accept_errors - before.accept_errors));
    assert_true(after.accept_errors - before.accept_errors < 100);
    assert_int_equal(after.total.accepted, 1);

    /* The connection that was there keeps working meanwhile. */
    assert_int_equal(wt_exchange(first, "during", 6, in, 6, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, "during", 6);

    /* Descriptors come back: the waiting peer is accepted and served. */
    famine_end(&f);
    assert_int_equal(wt_recv_exact(late, in, 5, WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, "after", 5);
    assert_int_equal(wt_stats(s.engine).accepted, 2);

    wt_close(first);
    wt_close(late);
    wt_server_stop(&s);
}

static void test_acceptor_survives_emfile(void **state)
{
    (void)state;
    survive_emfile(false);
}

static void test_reuse_port_loop_survives_emfile(void **state)
{
    (void)state;
    survive_emfile(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acceptor_survives_emfile),
        cmocka_unit_test(test_reuse_port_loop_survives_emfile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
