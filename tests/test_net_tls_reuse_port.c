/* tls:// under reuse_port: a SO_REUSEPORT socket per loop, each TLS handshake on the loop
 * that accepted it. Many TLS clients spread over every loop, each echo is verified, the
 * per-loop statistics count exactly what each loop took, and the engine stops clean.
 *
 * The balancer is set to consistent-hash on purpose: with a hand-off, every client from
 * 127.0.0.1 would land on one loop (shown first, as the control), so clients spread over
 * all the loops can only be the kernel's doing. Every connection is greeted with one byte,
 * the index of the loop whose on_open ran, so each client learns where its handshake ran.
 * The loops share one certificate set, so a session ticket from one loop resumes on another
 * and a certificate reload reaches every loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "counters.h"
#include "harness.h"
#include "tls_suite.h"

#define LOOPS 4
/* With 64 connections hashed over 4 sockets, the chance that one socket gets none is
 * 4 * (3/4)^64, about 4e-8: every loop getting some is safe to assert. */
#define CLIENTS         64
#define CONTROL_CLIENTS 8

/* Counts the open, then greets with the index of the loop it runs on. */
static weft_action greet_with_loop(weft_conn *c)
{
    weft_action a = wt_count_open(c); /* counted before the client can know of it */
    uint8_t b = (uint8_t)weft_conn_get_loop(c);
    weft_conn_write(c, &b, 1);
    return a;
}

static void start(wt_server *s, bool reuse_port)
{
    wt_counters_reset();
    weft_config cfg;
    wt_tls_config(&cfg, wt_echo_on_traffic, LOOPS);
    cfg.handler.on_open = greet_with_loop;
    cfg.lb.kind = WEFT_LB_CONSISTENT_HASH; /* a hand-off would put one address on one loop */
    cfg.reuse_port = reuse_port;
    assert_int_equal(wt_server_start(s, &cfg), 0);
    assert_memory_equal(s->url, "tls://", 6);
}

/* A client that verifies the server against the test CA, offering session (or none). */
static SSL *resuming_client(int port, SSL_SESSION *session)
{
    wt_tls_opts o = {.ca = wt_tls_pki.ca, .host = "localhost", .session = session};
    SSL *c = wt_tls_client(port, &o);
    assert_non_null(c);
    return c;
}

static SSL *verified_client(int port)
{
    return resuming_client(port, NULL);
}

/* The greeting: the loop that ran c's handshake and on_open. */
static int landed_on(SSL *c)
{
    uint8_t b = 0xff;
    assert_int_equal(wt_tls_recv_exact(c, &b, 1), 0);
    assert_in_range(b, 0, LOOPS - 1);
    return b;
}

static void echo_check(SSL *c, uint32_t seed)
{
    uint8_t out[1500], in[1500];
    wt_fill(out, sizeof(out), seed);
    assert_int_equal(wt_tls_send_all(c, out, sizeof(out)), 0);
    assert_int_equal(wt_tls_recv_exact(c, in, sizeof(in)), 0);
    assert_memory_equal(in, out, sizeof(out));
}

static void loop_stats(weft_engine *e, weft_loop_stats pl[LOOPS])
{
    weft_stats st;
    assert_int_equal(weft_engine_get_loop_count(e), LOOPS);
    assert_int_equal(weft_engine_get_stats(e, &st, pl), 0);
}

/* No connection live, no buffer out (a wt_wait_for predicate). */
static bool all_idle(void *engine)
{
    weft_stats st;
    return weft_engine_get_stats(engine, &st, NULL) == 0 && st.total.live == 0 &&
           wt_buffers_back(engine);
}

/* Closes every client with close_notify and checks each close was orderly. */
static void close_all(SSL **cs, int n)
{
    for (int i = 0; i < n; i++)
        wt_tls_close(cs[i], true);
    assert_true(wt_wait_count(&wt_counts.closed, n, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(0), n);
}

/* The control: without reuse_port the acceptor hands off by consistent hash, and one client
 * address always gets the same loop. */
static void test_hand_off_keeps_one_address_on_one_loop(void **state)
{
    (void)state;
    wt_server s;
    start(&s, false);
    SSL *cs[CONTROL_CLIENTS];
    int first = -1;
    for (int i = 0; i < CONTROL_CLIENTS; i++) {
        cs[i] = verified_client(s.port);
        int k = landed_on(cs[i]);
        if (first < 0)
            first = k;
        assert_int_equal(k, first);
        echo_check(cs[i], (uint32_t)i);
    }
    weft_loop_stats pl[LOOPS];
    loop_stats(s.engine, pl);
    assert_int_equal(pl[first].accepted, CONTROL_CLIENTS);
    close_all(cs, CONTROL_CLIENTS);
    wt_server_stop(&s);
}

/* With reuse_port every loop accepts on its own socket and runs its own handshakes: the
 * clients spread over all of them, and each loop's counts are exactly the clients it
 * greeted. */
static void test_reuse_port_spreads_tls_over_every_loop(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_reuse_port());
    wt_server s;
    start(&s, true);
    /* One URL, however many sockets serve it. */
    char url[128];
    assert_true(weft_engine_get_listen_addr(s.engine, 0, url, sizeof(url)) > 0);
    assert_string_equal(url, s.url);
    assert_int_equal(weft_engine_get_listen_addr(s.engine, 1, url, sizeof(url)), WEFT_EINVAL);

    static SSL *cs[CLIENTS];
    int per[LOOPS] = {0};
    for (int i = 0; i < CLIENTS; i++) {
        cs[i] = verified_client(s.port);
        per[landed_on(cs[i])]++;
    }
    /* All of them open at once, each echoing twice, interleaved. */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < CLIENTS; i++)
            echo_check(cs[i], (uint32_t)(i * 31 + round));
    assert_int_equal(atomic_load(&wt_counts.opened), CLIENTS);

    weft_loop_stats pl[LOOPS];
    loop_stats(s.engine, pl);
    for (int k = 0; k < LOOPS; k++) {
        print_message("loop %d: %d TLS connections\n", k, per[k]);
        assert_true(per[k] > 0);
        assert_int_equal(pl[k].accepted, per[k]);
        assert_int_equal(pl[k].live, per[k]);
        assert_int_equal(atomic_load(&wt_counts.opened_on[k]), per[k]);
    }
    close_all(cs, CLIENTS);
    for (int k = 0; k < LOOPS; k++)
        assert_int_equal(atomic_load(&wt_counts.closed_on[k]), per[k]);

    /* Nothing left open: every loop's live count is back to 0, its buffers returned. */
    assert_true(wt_wait_for(all_idle, s.engine, WT_TIMEOUT_MS));
    loop_stats(s.engine, pl);
    for (int k = 0; k < LOOPS; k++) {
        assert_int_equal(pl[k].live, 0);
        assert_int_equal(pl[k].closed, per[k]);
    }
    wt_server_stop(&s);
}

#define RESUMES 16

/* A ticket issued on one loop resumes on every loop: of 16 resumptions the kernel sends some
 * elsewhere (all 16 on the first loop of 4 is a chance of 4^-16), and each one is a resumed
 * session whose echo is intact. */
static void test_session_resumes_on_another_loop(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_reuse_port());
    wt_server s;
    start(&s, true);
    SSL *first = verified_client(s.port);
    int home = landed_on(first); /* the tickets came before the greeting: they are read */
    SSL_SESSION *ticket = SSL_get1_session(first);
    assert_non_null(ticket);
    assert_true(SSL_SESSION_is_resumable(ticket));
    wt_tls_close(first, true);
    int elsewhere = 0;
    for (int i = 0; i < RESUMES; i++) {
        SSL *c = resuming_client(s.port, ticket);
        assert_int_equal(SSL_session_reused(c), 1);
        elsewhere += landed_on(c) != home;
        echo_check(c, (uint32_t)i);
        wt_tls_close(c, true);
    }
    SSL_SESSION_free(ticket);
    print_message("%d of %d resumptions on another loop than the ticket's\n", elsewhere, RESUMES);
    assert_true(elsewhere > 0);
    assert_true(wt_wait_count(&wt_counts.closed, RESUMES + 1, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(0), RESUMES + 1);
    wt_server_stop(&s);
}

/* A reload while a connection lives: every loop's new handshakes present the new
 * certificate, and the connection from before goes on with the old one. */
static void test_reload_reaches_every_loop(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_reuse_port());
    wt_server s;
    start(&s, true);
    SSL *old = verified_client(s.port);
    (void)landed_on(old);
    char cn[64];
    wt_tls_peer_cn(old, cn, sizeof(cn));
    assert_string_equal(cn, "localhost");
    weft_tls_config next;
    weft_tls_config_init(&next);
    next.cert_file = wt_tls_pki.server2_cert;
    next.key_file = wt_tls_pki.server2_key;
    assert_int_equal(weft_engine_tls_reload(s.engine, &next), 0);
    int per[LOOPS] = {0};
    for (int i = 0; i < CLIENTS; i++) {
        SSL *c = verified_client(s.port);
        per[landed_on(c)]++;
        wt_tls_peer_cn(c, cn, sizeof(cn));
        assert_string_equal(cn, "reloaded");
        echo_check(c, (uint32_t)i);
        wt_tls_close(c, true);
    }
    for (int k = 0; k < LOOPS; k++)
        assert_true(per[k] > 0);
    echo_check(old, 99);
    wt_tls_close(old, true);
    assert_true(wt_wait_count(&wt_counts.closed, CLIENTS + 1, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(0), CLIENTS + 1);
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_off_keeps_one_address_on_one_loop),
        cmocka_unit_test(test_reuse_port_spreads_tls_over_every_loop),
        cmocka_unit_test(test_session_resumes_on_another_loop),
        cmocka_unit_test(test_reload_reaches_every_loop),
    };
    return wt_tls_run_tests(tests);
}
