/* weft_tls_config.ktls with the real kernel calls, on a kernel without the tls module (the
 * test machines'; test_net_tls_ktls_tx.c runs the switch itself against a stand-in): each
 * connection must go on in userland TLS (weft_conn_tls_ktls false, every echo intact), and
 * the engine must say why exactly once, at INFO, however many connections and loops asked:
 * "kernel TLS unavailable: ..." (setsockopt(TCP_ULP) failed). Without ktls nothing is
 * said. Accepted connections and dials alike; a tls+unix connection stays in userland
 * without asking, and leaves the question to the first TCP one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"
#include "tls_suite.h"

#define LOOPS   2
#define CLIENTS 8

/* One engine's log lines about kernel TLS. */
typedef struct ktls_log {
    pthread_mutex_t mu;
    int lines;       /* lines that mention kernel TLS */
    int unavailable; /* of them, INFO lines starting "kernel TLS unavailable: " */
    char first[256];
} ktls_log;

static ktls_log server_log = {.mu = PTHREAD_MUTEX_INITIALIZER};
static ktls_log dial_log = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void log_reset(ktls_log *l)
{
    pthread_mutex_lock(&l->mu);
    l->lines = l->unavailable = 0;
    l->first[0] = '\0';
    pthread_mutex_unlock(&l->mu);
}

static void capture(void *ctx, weft_log_level level, const char *msg)
{
    ktls_log *l = ctx;
    if (strstr(msg, "kernel TLS") == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    if (l->lines++ == 0)
        snprintf(l->first, sizeof(l->first), "%s", msg);
    if (level == WEFT_LOG_INFO && strncmp(msg, "kernel TLS unavailable: ", 24) == 0)
        l->unavailable++;
    pthread_mutex_unlock(&l->mu);
}

/* Checks l saw exactly want lines about kernel TLS, each an INFO "unavailable" one. */
static void expect_said(ktls_log *l, int want, const char *who)
{
    pthread_mutex_lock(&l->mu);
    int lines = l->lines, unavailable = l->unavailable;
    char first[256];
    snprintf(first, sizeof(first), "%s", l->first);
    pthread_mutex_unlock(&l->mu);
    if (lines > 0)
        print_message("%s said: %s\n", who, first);
    assert_int_equal(lines, want);
    assert_int_equal(unavailable, want);
}

/* What the accepted connections said of themselves in on_open. */
static _Atomic long opens_tls, opens_ktls;

static weft_action on_open(weft_conn *c)
{
    if (weft_conn_is_tls(c))
        atomic_fetch_add(&opens_tls, 1);
    if (weft_conn_tls_ktls(c))
        atomic_fetch_add(&opens_ktls, 1);
    return wt_count_open(c);
}

/* listen[1]: a second URL to serve, or NULL. */
static void start2(wt_server *s, bool ktls, const char *listen0, const char *listen1)
{
    wt_counters_reset();
    log_reset(&server_log);
    atomic_store(&opens_tls, 0);
    atomic_store(&opens_ktls, 0);
    weft_config cfg;
    wt_tls_config(&cfg, wt_echo_on_traffic, LOOPS);
    cfg.listen[0] = listen0;
    cfg.listen[1] = listen1;
    cfg.tls.ktls = ktls;
    cfg.reuse_port = true; /* both loops accept, so both run handshakes that ask */
    cfg.handler.on_open = on_open;
    cfg.log_cb = capture;
    cfg.log_ctx = &server_log;
    cfg.log_level = WEFT_LOG_INFO;
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

static void start(wt_server *s, bool ktls)
{
    start2(s, ktls, "tls://127.0.0.1:0", NULL);
}

/* Handshakes on fd, verifying the server against the test CA. */
static SSL *verified_on(int fd)
{
    assert_true(fd >= 0);
    wt_tls_opts o = {.ca = wt_tls_pki.ca, .host = "localhost"};
    char err[128];
    SSL *c = wt_tls_connect(fd, &o, err, sizeof(err));
    if (c == NULL) {
        print_message("handshake: %s\n", err);
        close(fd);
    }
    assert_non_null(c);
    return c;
}

static SSL *verified_client(int port)
{
    SSL *c = wt_tls_client(port, NULL);
    assert_non_null(c);
    return c;
}

/* CLIENTS clients, all open at once, each echoing 20 KiB (more than one record) twice. */
static void echo_clients(int port)
{
    SSL *cs[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        cs[i] = verified_client(port);
    static uint8_t out[20000], in[20000];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < CLIENTS; i++) {
            wt_fill(out, sizeof(out), (uint32_t)(i * 13 + round));
            assert_int_equal(wt_tls_exchange(cs[i], out, sizeof(out), in, sizeof(in),
                                             wt_grace_ms(WT_TIMEOUT_MS)),
                             0);
            assert_memory_equal(in, out, sizeof(out));
        }
    }
    for (int i = 0; i < CLIENTS; i++)
        wt_tls_close(cs[i], true);
    assert_true(wt_wait_count(&wt_counts.closed, CLIENTS, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(0), CLIENTS);
}

static void test_ktls_falls_back_to_userland(void **state)
{
    (void)state;
    wt_server s;
    start(&s, true);
    echo_clients(s.port);
    assert_int_equal(atomic_load(&opens_tls), CLIENTS);
    assert_int_equal(atomic_load(&opens_ktls), 0);
    /* Said once for the engine, not once per connection or per loop. */
    expect_said(&server_log, 1, "the server");
    wt_server_stop(&s);
}

static void test_without_ktls_nothing_is_said(void **state)
{
    (void)state;
    wt_server s;
    start(&s, false);
    echo_clients(s.port);
    assert_int_equal(atomic_load(&opens_tls), CLIENTS);
    assert_int_equal(atomic_load(&opens_ktls), 0);
    expect_said(&server_log, 0, "the server");
    wt_server_stop(&s);
}

/* A tls+unix connection first: it does not ask the kernel (kernel TLS is TCP's), so the
 * TCP connection after it is the one that does, and the answer is about TCP. */
static void test_unix_connection_is_not_the_probe(void **state)
{
    (void)state;
    char path[108], url[128];
    wt_unix_path(path, sizeof(path), "ktls");
    snprintf(url, sizeof(url), "tls+unix://%s", path);
    wt_server s;
    start2(&s, true, url, "tls://127.0.0.1:0");
    int port = weft_engine_get_listen_port(s.engine, 1);
    assert_true(port > 0);

    SSL *u = verified_on(wt_connect_unix(path));
    uint8_t b[5];
    assert_int_equal(wt_tls_send_all(u, "unix!", 5), 0);
    assert_int_equal(wt_tls_recv_exact(u, b, 5), 0);
    assert_memory_equal(b, "unix!", 5);
    assert_true(wt_wait_count(&wt_counts.opened, 1, WT_TIMEOUT_MS));
    expect_said(&server_log, 0, "the server, after a Unix connection");

    SSL *t = verified_client(port);
    assert_int_equal(wt_tls_send_all(t, "tcp!!", 5), 0);
    assert_int_equal(wt_tls_recv_exact(t, b, 5), 0);
    assert_memory_equal(b, "tcp!!", 5);
    expect_said(&server_log, 1, "the server, after a TCP connection");
    assert_int_equal(atomic_load(&opens_ktls), 0);
    wt_tls_close(t, true);
    /* On a Unix socket the server's close_notify to a client already gone would be EPIPE:
     * this client waits for it before it goes. */
    assert_true(SSL_shutdown(u) >= 0);
    assert_int_equal(wt_tls_recv_close(u), 0);
    wt_tls_close(u, false);
    assert_true(wt_wait_count(&wt_counts.closed, 2, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(0), 2);
    wt_server_stop(&s);
}

/* ---- a dial with ktls ---- */

static _Atomic long dial_opens, dial_ktls, dial_echoes, dial_closes, dial_errors;

static weft_action dial_open(weft_conn *c)
{
    atomic_fetch_add(&dial_opens, 1);
    if (weft_conn_tls_ktls(c))
        atomic_fetch_add(&dial_ktls, 1);
    weft_conn_write(c, "ping", 4);
    return WEFT_ACTION_NONE;
}

static weft_action dial_traffic(weft_conn *c)
{
    const uint8_t *p;
    int n = weft_conn_peek(c, 4, &p);
    if (n == 4 && memcmp(p, "ping", 4) == 0) {
        atomic_fetch_add(&dial_echoes, 1);
        weft_conn_discard(c, 4);
        return WEFT_ACTION_CLOSE;
    }
    return WEFT_ACTION_NONE;
}

static void dial_close(weft_conn *c, int err)
{
    (void)c;
    if (err != 0)
        atomic_fetch_add(&dial_errors, 1);
    atomic_fetch_add(&dial_closes, 1);
}

static void test_dial_with_ktls_falls_back(void **state)
{
    (void)state;
    wt_server s;
    start(&s, false);
    log_reset(&dial_log);
    atomic_store(&dial_opens, 0);
    atomic_store(&dial_ktls, 0);
    atomic_store(&dial_echoes, 0);
    atomic_store(&dial_closes, 0);
    atomic_store(&dial_errors, 0);
    weft_config cfg;
    wt_config(&cfg, dial_traffic, 1);
    cfg.listen[0] = NULL;
    cfg.handler.on_open = dial_open;
    cfg.handler.on_close = dial_close;
    cfg.tls_client.ca_file = wt_tls_pki.ca;
    cfg.tls_client.server_name = "localhost";
    cfg.tls_client.ktls = true;
    cfg.log_cb = capture;
    cfg.log_ctx = &dial_log;
    cfg.log_level = WEFT_LOG_INFO;
    weft_engine *e;
    assert_int_equal(weft_engine_start(&cfg, &e), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_engine_dial(e, s.url, -1, 0, NULL), 0);
    assert_true(wt_wait_count(&dial_closes, 3, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&dial_opens), 3);
    assert_int_equal(atomic_load(&dial_echoes), 3);
    assert_int_equal(atomic_load(&dial_errors), 0);
    assert_int_equal(atomic_load(&dial_ktls), 0);
    weft_engine_stop(e);
    assert_int_equal(weft_engine_wait(e), 0);
    expect_said(&dial_log, 1, "the dialling engine");
    /* The server, without ktls, said nothing about it. */
    assert_true(wt_wait_count(&wt_counts.closed, 3, WT_TIMEOUT_MS));
    expect_said(&server_log, 0, "the server");
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ktls_falls_back_to_userland),
        cmocka_unit_test(test_without_ktls_nothing_is_said),
        cmocka_unit_test(test_unix_connection_is_not_the_probe),
        cmocka_unit_test(test_dial_with_ktls_falls_back),
    };
    return wt_tls_run_tests(tests);
}
