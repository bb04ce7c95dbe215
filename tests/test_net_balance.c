/* The balancers inside a running engine: least-connections evens out live connections and
 * refills a loop that emptied, consistent-hash keeps a client address on one loop across
 * reconnects, round-robin walks the loops in order, random reaches all of them, reuse_port
 * leaves the spreading to the kernel, and the statistics count exactly what happened.
 *
 * Every connection is greeted with one byte, the index of the loop that owns it (taken with
 * weft_conn_get_loop in on_open), so each client learns where it landed without shared state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"
#include "platform.h" /* core's: whether the system has SO_REUSEPORT */

#define LOOPS 4

/* Greets with the loop's index, so the client knows where it landed. */
static weft_action greet_with_loop(weft_conn *c)
{
    weft_action a = wt_count_open(c); /* counted before the client can know of it */
    uint8_t b = (uint8_t)weft_conn_get_loop(c);
    weft_conn_write(c, &b, 1);
    return a;
}

static void start_server(wt_server *s, weft_lb_kind kind, bool reuse_port)
{
    wt_counters_reset();
    weft_config cfg;
    wt_config(&cfg, wt_echo_on_traffic, LOOPS);
    cfg.handler.on_open = greet_with_loop;
    cfg.handler.on_close = wt_count_close;
    cfg.lb.kind = kind;
    cfg.lb.seed = 0x5eed;
    cfg.reuse_port = reuse_port;
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

/* Reads the greeting: the loop the connection was handed to. */
static int landed_on(int fd)
{
    uint8_t b = 0xff;
    assert_int_equal(wt_recv_exact(fd, &b, 1, WT_TIMEOUT_MS), 0);
    assert_in_range(b, 0, LOOPS - 1);
    return b;
}

static void per_loop_stats(weft_engine *e, weft_loop_stats out[LOOPS])
{
    weft_stats s;
    assert_int_equal(weft_engine_get_loop_count(e), LOOPS);
    assert_int_equal(weft_engine_get_stats(e, &s, out), 0);
    assert_int_equal(s.nloops, LOOPS);
}

typedef struct live_want {
    weft_engine *engine;
    unsigned loop;
    uint64_t live;
} live_want;

static bool loop_live_is(void *arg)
{
    live_want *w = arg;
    weft_loop_stats pl[LOOPS];
    weft_stats s;
    weft_engine_get_stats(w->engine, &s, pl);
    return pl[w->loop].live == w->live;
}

/* ---- least connections ---- */

#define LC_CONNS 40

static void test_least_connections_evens_out_and_refills(void **state)
{
    (void)state;
    wt_server s;
    start_server(&s, WEFT_LB_LEAST_CONNECTIONS, false);
    int fds[LC_CONNS + LC_CONNS / LOOPS];
    int loop_of[LC_CONNS];

    /* All at once: live counts are raised at hand-off, so a burst of accepts still sees
     * its own choices and spreads evenly. */
    for (int i = 0; i < LC_CONNS; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
    }
    int per[LOOPS] = {0};
    for (int i = 0; i < LC_CONNS; i++) {
        loop_of[i] = landed_on(fds[i]);
        per[loop_of[i]]++;
    }
    assert_true(wt_wait_count(&wt_counts.opened, LC_CONNS, WT_TIMEOUT_MS));
    weft_loop_stats pl[LOOPS];
    per_loop_stats(s.engine, pl);
    for (int k = 0; k < LOOPS; k++) {
        assert_int_equal(per[k], LC_CONNS / LOOPS);
        assert_int_equal(atomic_load(&wt_counts.opened_on[k]), LC_CONNS / LOOPS);
        assert_int_equal(pl[k].live, LC_CONNS / LOOPS);
        assert_int_equal(pl[k].accepted, LC_CONNS / LOOPS);
    }

    /* Empty loop 0; once it has counted its closes it is the least loaded by ten. */
    for (int i = 0; i < LC_CONNS; i++) {
        if (loop_of[i] == 0) {
            wt_close(fds[i]);
            fds[i] = -1;
        }
    }
    live_want w = {s.engine, 0, 0};
    assert_true(wt_wait_for(loop_live_is, &w, WT_TIMEOUT_MS));

    for (int i = LC_CONNS; i < LC_CONNS + LC_CONNS / LOOPS; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
    }
    for (int i = LC_CONNS; i < LC_CONNS + LC_CONNS / LOOPS; i++)
        assert_int_equal(landed_on(fds[i]), 0);

    assert_true(wt_wait_count(&wt_counts.opened, LC_CONNS + LC_CONNS / LOOPS, WT_TIMEOUT_MS));
    per_loop_stats(s.engine, pl);
    for (int k = 0; k < LOOPS; k++) {
        assert_int_equal(pl[k].live, LC_CONNS / LOOPS);
        assert_int_equal(pl[k].accepted, k == 0 ? 2 * LC_CONNS / LOOPS : LC_CONNS / LOOPS);
        assert_int_equal(pl[k].closed, k == 0 ? LC_CONNS / LOOPS : 0);
    }
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            wt_close(fds[i]);
    wt_server_stop(&s);
}

/* ---- consistent hash ---- */

#define CH_FIRST  2
#define CH_LAST   20
#define CH_ROUNDS 4

static void test_consistent_hash_keeps_each_address_on_one_loop(void **state)
{
    (void)state;
    wt_server s;
    start_server(&s, WEFT_LB_CONSISTENT_HASH, false);
    int home[CH_LAST + 1];
    int fds[CH_LAST + 1];
    bool used[LOOPS] = {false};
    long conns = 0;

    for (int round = 0; round < CH_ROUNDS; round++) {
        for (int a = CH_FIRST; a <= CH_LAST; a++) {
            char ip[32];
            snprintf(ip, sizeof(ip), "127.0.0.%d", a);
            fds[a] = wt_connect_tcp_from(ip, s.port);
            assert_true(fds[a] >= 0);
            conns++;
        }
        for (int a = CH_FIRST; a <= CH_LAST; a++) {
            int k = landed_on(fds[a]);
            if (round == 0)
                home[a] = k;
            assert_int_equal(k, home[a]);
            used[k] = true;
        }
        /* Each round closes everything before the next reconnects, so a loop's load can
         * not be what keeps an address in place. */
        for (int a = CH_FIRST; a <= CH_LAST; a++)
            wt_close(fds[a]);
        assert_true(wt_wait_count(&wt_counts.closed, conns, WT_TIMEOUT_MS));
    }
    /* Nineteen addresses over four loops: one loop taking them all would mean the address
     * is not what gets hashed. */
    int nused = 0;
    for (int k = 0; k < LOOPS; k++)
        nused += used[k];
    assert_true(nused >= 2);
    wt_server_stop(&s);
}

/* ---- round robin and random ---- */

static void test_round_robin_walks_the_loops_in_order(void **state)
{
    (void)state;
    wt_server s;
    start_server(&s, WEFT_LB_ROUND_ROBIN, false);
    for (int i = 0; i < 3 * LOOPS; i++) {
        int fd = wt_connect_tcp(s.port);
        assert_true(fd >= 0);
        assert_int_equal(landed_on(fd), i % LOOPS);
        wt_close(fd);
    }
    wt_server_stop(&s);
}

#define RANDOM_CONNS 64

static void test_random_reaches_every_loop(void **state)
{
    (void)state;
    wt_server s;
    start_server(&s, WEFT_LB_RANDOM, false);
    int per[LOOPS] = {0};
    for (int i = 0; i < RANDOM_CONNS; i++) {
        int fd = wt_connect_tcp(s.port);
        assert_true(fd >= 0);
        per[landed_on(fd)]++;
        wt_close(fd);
    }
    for (int k = 0; k < LOOPS; k++)
        assert_true(per[k] > 0);
    wt_server_stop(&s);
}

/* ---- reuse_port ---- */

#define RP_CONNS 32

static void test_reuse_port_with_a_balancer_set_still_serves(void **state)
{
    (void)state;
    const char *no_reuse_port = weft__sock_missing_reuse_port();
    if (no_reuse_port != NULL) {
        print_message("SKIPPED: %s\n", no_reuse_port);
        skip();
    }
    wt_server s;
    /* The balancer is ignored for TCP here: every loop accepts on its own socket. */
    start_server(&s, WEFT_LB_LEAST_CONNECTIONS, true);
    int fds[RP_CONNS];
    int per[LOOPS] = {0};
    for (int i = 0; i < RP_CONNS; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < RP_CONNS; i++) {
        per[landed_on(fds[i])]++;
        char out[16], in[16];
        snprintf(out, sizeof(out), "conn-%06d", i);
        assert_int_equal(wt_exchange(fds[i], out, 11, in, 11, WT_TIMEOUT_MS), 0);
        assert_memory_equal(in, out, 11);
    }
    assert_true(wt_wait_count(&wt_counts.opened, RP_CONNS, WT_TIMEOUT_MS));
    weft_loop_stats pl[LOOPS];
    per_loop_stats(s.engine, pl);
    int nused = 0;
    for (int k = 0; k < LOOPS; k++) {
        assert_int_equal(pl[k].accepted, per[k]);
        assert_int_equal(pl[k].live, per[k]);
        nused += per[k] > 0;
    }
    /* The kernel hashes the four-tuple; 32 source ports all on one socket of four would
     * mean nothing spreads them. */
    assert_true(nused >= 2);
    for (int i = 0; i < RP_CONNS; i++)
        wt_close(fds[i]);
    wt_server_stop(&s);
}

/* ---- statistics ---- */

#define ST_CONNS 10

static bool all_closed(void *arg)
{
    weft_engine *e = arg;
    weft_loop_stats t = wt_stats(e);
    return t.closed == ST_CONNS && t.live == 0;
}

static void test_stats_count_exactly_what_happened(void **state)
{
    (void)state;
    wt_server s;
    start_server(&s, WEFT_LB_ROUND_ROBIN, false);
    uint64_t in_on[LOOPS] = {0}, out_on[LOOPS] = {0}, conns_on[LOOPS] = {0};
    uint64_t in_total = 0, out_total = 0;

    for (int i = 0; i < ST_CONNS; i++) {
        int fd = wt_connect_tcp(s.port);
        assert_true(fd >= 0);
        int k = landed_on(fd);
        size_t n = 1000 + 97 * (size_t)i;
        uint8_t *out = malloc(n), *in = malloc(n);
        assert_non_null(out);
        assert_non_null(in);
        wt_fill(out, n, (uint32_t)i);
        assert_int_equal(wt_exchange(fd, out, n, in, n, WT_TIMEOUT_MS), 0);
        assert_memory_equal(in, out, n);
        free(out);
        free(in);
        conns_on[k]++;
        in_on[k] += n;
        out_on[k] += n + 1; /* the echo and the greeting */
        in_total += n;
        out_total += n + 1;
        wt_close(fd);
    }
    assert_true(wt_wait_for(all_closed, s.engine, WT_TIMEOUT_MS));

    weft_loop_stats pl[LOOPS];
    weft_stats st;
    assert_int_equal(weft_engine_get_stats(s.engine, &st, pl), 0);
    assert_int_equal(st.total.accepted, ST_CONNS);
    assert_int_equal(st.total.closed, ST_CONNS);
    assert_int_equal(st.total.live, 0);
    assert_int_equal(st.total.bytes_in, in_total);
    assert_int_equal(st.total.bytes_out, out_total);
    assert_int_equal(st.total.frames, 0); /* no codec */
    assert_int_equal(st.total.decode_errors, 0);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.accept_errors, 0);
    for (int k = 0; k < LOOPS; k++) {
        assert_int_equal(pl[k].accepted, conns_on[k]);
        assert_int_equal(pl[k].closed, conns_on[k]);
        assert_int_equal(pl[k].live, 0);
        assert_int_equal(pl[k].bytes_in, in_on[k]);
        assert_int_equal(pl[k].bytes_out, out_on[k]);
        assert_int_equal(atomic_load(&wt_counts.opened_on[k]), (long)conns_on[k]);
        assert_int_equal(atomic_load(&wt_counts.closed_on[k]), (long)conns_on[k]);
    }
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_least_connections_evens_out_and_refills),
        cmocka_unit_test(test_consistent_hash_keeps_each_address_on_one_loop),
        cmocka_unit_test(test_round_robin_walks_the_loops_in_order),
        cmocka_unit_test(test_random_reaches_every_loop),
        cmocka_unit_test(test_reuse_port_with_a_balancer_set_still_serves),
        cmocka_unit_test(test_stats_count_exactly_what_happened),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
