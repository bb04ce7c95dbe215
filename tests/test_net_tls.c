/* TLS over loopback: tls:// listeners and dials with certificates made at test time. Echo on
 * 1 and 4 loops with and without codecs, a large payload, backpressure from a peer that does
 * not read, async writes in order, mutual TLS, ALPN, SNI, a certificate reload under live
 * connections, dials that verify, and hostile peers (a handshake that never finishes, plain
 * HTTP, a record cut off then a reset, abandoned handshakes, a huge ClientHello,
 * renegotiation). */
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
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "harness.h"
#include "tls_suite.h"

/* What the handlers saw, for the test thread. */
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static char seen_error[128];
static char seen_alpn[32];
static char seen_sni[64];
static char seen_open_error[128]; /* weft_conn_tls_error in on_open: must be "" */
static _Atomic long tls_errors;
static _Atomic long timeouts;
static _Atomic long resets;
static weft_conn_ref last_ref; /* seen_mu */
static _Atomic long tls_opens;

static void reset_state(void)
{
    wt_counters_reset();
    pthread_mutex_lock(&seen_mu);
    seen_error[0] = seen_alpn[0] = seen_sni[0] = seen_open_error[0] = '\0';
    pthread_mutex_unlock(&seen_mu);
    atomic_store(&tls_errors, 0);
    atomic_store(&timeouts, 0);
    atomic_store(&resets, 0);
    atomic_store(&tls_opens, 0);
}

static void copy_seen(char *dst, size_t n, const char *src)
{
    pthread_mutex_lock(&seen_mu);
    snprintf(dst, n, "%s", src != NULL ? src : "");
    pthread_mutex_unlock(&seen_mu);
}

static bool seen_has(const char *buf, const char *what)
{
    pthread_mutex_lock(&seen_mu);
    bool has = strstr(buf, what) != NULL;
    pthread_mutex_unlock(&seen_mu);
    return has;
}

static weft_action on_open(weft_conn *c)
{
    if (weft_conn_is_tls(c))
        atomic_fetch_add(&tls_opens, 1);
    copy_seen(seen_alpn, sizeof(seen_alpn), weft_conn_tls_alpn(c));
    copy_seen(seen_sni, sizeof(seen_sni), weft_conn_tls_server_name(c));
    copy_seen(seen_open_error, sizeof(seen_open_error), weft_conn_tls_error(c));
    pthread_mutex_lock(&seen_mu);
    last_ref = weft_conn_get_ref(c);
    pthread_mutex_unlock(&seen_mu);
    return wt_count_open(c);
}

static void on_close(weft_conn *c, int err)
{
    if (err == WEFT_ETLS) {
        copy_seen(seen_error, sizeof(seen_error), weft_conn_tls_error(c));
        atomic_fetch_add(&tls_errors, 1);
    } else if (err == WEFT_ETIMEDOUT) {
        atomic_fetch_add(&timeouts, 1);
    } else if (err == WEFT_ECONNRESET) {
        atomic_fetch_add(&resets, 1);
    }
    wt_count_close(c, err);
}

static void tls_config(weft_config *cfg, weft_action (*traffic)(weft_conn *), unsigned loops)
{
    wt_tls_config(cfg, traffic, loops);
    cfg->handler.on_open = on_open;
    cfg->handler.on_close = on_close;
}

static wt_tls_opts opts_ca(void)
{
    wt_tls_opts o = {.ca = wt_tls_pki.ca, .host = "localhost"};
    return o;
}

/* Starts the server cfg describes, with what the handlers saw reset. */
static void serve(wt_server *s, const weft_config *cfg)
{
    reset_state();
    assert_int_equal(wt_server_start(s, cfg), 0);
}

/* A TLS server on loops loops with traffic as its handler and no other change. */
static void serve_tls(wt_server *s, weft_action (*traffic)(weft_conn *), unsigned loops)
{
    weft_config cfg;
    tls_config(&cfg, traffic, loops);
    serve(s, &cfg);
}

/* A client that verifies the server against the test CA; its handshake must succeed. */
static SSL *verified_client(int port)
{
    SSL *c = wt_tls_client(port, NULL);
    assert_non_null(c);
    return c;
}

/* Sends msg (a short string) and reads the same bytes back. */
static void echo_check(SSL *c, const char *msg)
{
    size_t n = strlen(msg);
    uint8_t b[16];
    assert_true(n <= sizeof(b));
    assert_int_equal(wt_tls_send_all(c, msg, n), 0);
    assert_int_equal(wt_tls_recv_exact(c, b, n), 0);
    assert_memory_equal(b, msg, n);
}

static void wait_closed(long n)
{
    assert_true(wt_wait_count(&wt_counts.closed, n, WT_TIMEOUT_MS));
}

/* Closes c (with close_notify when notify) and waits until n connections have closed. */
static void close_and_wait(SSL *c, bool notify, long n)
{
    wt_tls_close(c, notify);
    wait_closed(n);
}

/* ---- echo ---- */

static void echo_loops(unsigned loops, int clients)
{
    wt_server s;
    serve_tls(&s, wt_echo_on_traffic, loops);
    assert_memory_equal(s.url, "tls://", 6);
    SSL *ss[8];
    for (int i = 0; i < clients; i++)
        ss[i] = verified_client(s.port);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < clients; i++) {
            uint8_t out[3000], in[3000];
            wt_fill(out, sizeof(out), (uint32_t)(i * 7 + round));
            assert_int_equal(wt_tls_send_all(ss[i], out, sizeof(out)), 0);
            assert_int_equal(wt_tls_recv_exact(ss[i], in, sizeof(in)), 0);
            assert_memory_equal(in, out, sizeof(out));
        }
    }
    assert_int_equal(atomic_load(&tls_opens), clients);
    /* close_notify from the client is an orderly close. */
    for (int i = 0; i < clients; i++)
        wt_tls_close(ss[i], true);
    wait_closed(clients);
    assert_int_equal(wt_closed_with(0), clients);
    wt_server_stop(&s);
}

static void test_echo_one_loop(void **state)
{
    (void)state;
    echo_loops(1, 4);
}

static void test_echo_four_loops(void **state)
{
    (void)state;
    echo_loops(4, 8);
}

static weft_action frame_echo(weft_conn *c)
{
    const uint8_t *f;
    size_t n;
    while (weft_conn_next_frame(c, &f, &n) == WEFT_FRAME)
        weft_conn_write_frame(c, f, n);
    return WEFT_ACTION_NONE;
}

/* Frames cut anywhere by records still decode; the replies are framed plaintext. */
static void codec_echo(weft_codec_kind kind, unsigned loops)
{
    weft_config cfg;
    tls_config(&cfg, frame_echo, loops);
    cfg.codec.kind = kind;
    cfg.codec.length_field.length_field_length = 2;
    cfg.codec.length_field.initial_bytes_to_strip = 2;
    wt_server s;
    serve(&s, &cfg);
    for (int k = 0; k < 4; k++) {
        SSL *c = verified_client(s.port);
        uint8_t wire[8192];
        size_t n = 0;
        for (int i = 0; i < 100; i++) {
            char msg[40];
            int l = snprintf(msg, sizeof(msg), "message %d of client %d", i, k);
            if (kind == WEFT_CODEC_LINE) {
                memcpy(wire + n, msg, (size_t)l);
                wire[n + (size_t)l] = '\n';
                n += (size_t)l + 1;
            } else {
                wire[n] = (uint8_t)(l >> 8);
                wire[n + 1] = (uint8_t)l;
                memcpy(wire + n + 2, msg, (size_t)l);
                n += (size_t)l + 2;
            }
        }
        /* In odd pieces, so frames straddle records. */
        for (size_t off = 0; off < n; off += 777)
            assert_int_equal(wt_tls_send_all(c, wire + off, n - off < 777 ? n - off : 777), 0);
        uint8_t back[8192];
        assert_int_equal(wt_tls_recv_exact(c, back, n), 0);
        assert_memory_equal(back, wire, n);
        wt_tls_close(c, true);
    }
    wait_closed(4);
    assert_int_equal(wt_closed_with(0), 4);
    wt_server_stop(&s);
}

static void test_line_codec(void **state)
{
    (void)state;
    codec_echo(WEFT_CODEC_LINE, 4);
}

static void test_length_field_codec(void **state)
{
    (void)state;
    codec_echo(WEFT_CODEC_LENGTH_FIELD, 1);
}

/* ---- big payloads and backpressure ---- */

static void test_large_payload(void **state)
{
    (void)state;
    wt_server s;
    serve_tls(&s, wt_echo_on_traffic, 2);
    SSL *c = verified_client(s.port);
    size_t n = 8u << 20;
    uint8_t *out = malloc(n), *in = malloc(n);
    wt_fill(out, n, 42);
    assert_int_equal(wt_tls_exchange(c, out, n, in, n, wt_grace_ms(30000)), 0);
    assert_memory_equal(in, out, n);
    free(out);
    free(in);
    close_and_wait(c, true, 1);
    wt_server_stop(&s);
}

static _Atomic long max_pending;

static weft_action echo_watch(weft_conn *c)
{
    weft_action a = wt_echo_on_traffic(c);
    long p = (long)weft_conn_get_pending_out(c);
    long m = atomic_load(&max_pending);
    while (p > m && !atomic_compare_exchange_weak(&max_pending, &m, p)) {
    }
    return a;
}

static bool paused(void *arg)
{
    return wt_stats(arg).backpressure_pauses > 0;
}

/* A peer that writes and never reads: the echo's records pile up to the high-water mark,
 * reading pauses, and what is queued stays bounded by it. */
static void test_non_reading_peer(void **state)
{
    (void)state;
    atomic_store(&max_pending, 0);
    weft_config cfg;
    tls_config(&cfg, echo_watch, 1);
    cfg.write_high_water = 256u * 1024u;
    wt_server s;
    serve(&s, &cfg);
    SSL *c = verified_client(s.port);
    int fd = SSL_get_fd(c);
    (void)wt_setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, 64 * 1024);
    (void)wt_send_timeout_ms(fd, 200);
    uint8_t chunk[16384];
    wt_fill(chunk, sizeof(chunk), 1);
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    while (!paused(s.engine) && wt_now_ms() < end) {
        size_t w;
        if (SSL_write_ex(c, chunk, sizeof(chunk), &w) != 1)
            break; /* the kernel's buffers are full too */
    }
    assert_true(wt_wait_for(paused, s.engine, WT_TIMEOUT_MS));
    /* Bounded: the mark, plus one read's worth of echo and its records' overhead. */
    assert_true(atomic_load(&max_pending) <= (long)(256u * 1024u + 80u * 1024u));
    assert_int_equal(wt_counts.closed, 0);
    wt_close(fd);
    SSL_free(c);
    wait_closed(1);
    wt_server_stop(&s);
}

/* ---- requests held back at the mark, then close_notify ---- */

#define HELD_N 256

/* The client sends every request and its close_notify at once. The server decrypts them
 * together, answers up to the high-water mark and meets the close_notify with the rest
 * held back: those are answered too once the client reads, in order, and only then does
 * the server's close_notify end the stream. */
static void test_requests_held_at_the_mark_then_close_notify(void **state)
{
    (void)state;
    atomic_store(&wt_amplified, 0);
    weft_config cfg;
    tls_config(&cfg, wt_amplify_on_traffic, 1);
    cfg.codec.kind = WEFT_CODEC_FIXED_LENGTH;
    cfg.codec.fixed_length.frame_length = 4;
    cfg.write_high_water = 2 * WT_AMPLIFY_BYTES;
    wt_server s;
    serve(&s, &cfg);
    SSL *c = verified_client(s.port);
    (void)wt_setsockopt_int(SSL_get_fd(c), SOL_SOCKET, SO_RCVBUF, 64 * 1024);
    uint8_t req[HELD_N * 4];
    for (uint32_t i = 0; i < HELD_N; i++)
        memcpy(req + 4 * i, &i, 4);
    assert_int_equal(wt_tls_send_all(c, req, sizeof(req)), 0);
    assert_int_equal(SSL_shutdown(c), 0); /* ours sent, the server's not seen yet */
    assert_true(wt_wait_for(paused, s.engine, WT_TIMEOUT_MS));
    assert_true(atomic_load(&wt_amplified) < HELD_N);
    assert_int_equal(wt_counts.closed, 0);

    uint8_t *in = malloc(WT_AMPLIFY_BYTES);
    assert_non_null(in);
    for (uint32_t i = 0; i < HELD_N; i++) {
        assert_int_equal(wt_tls_recv_exact(c, in, WT_AMPLIFY_BYTES), 0);
        uint32_t got;
        memcpy(&got, in, 4);
        assert_int_equal(got, i);
    }
    assert_int_equal(wt_tls_recv_close(c), 0);
    wait_closed(1);
    assert_int_equal(wt_counts.last_err, 0);
    assert_int_equal(atomic_load(&wt_amplified), HELD_N);
    free(in);
    wt_tls_close(c, false);
    wt_server_stop(&s);
}

/* ---- async writes ---- */

#define ASYNC_N 500

static weft_action ignore(weft_conn *c)
{
    weft_conn_discard(c, 0);
    return WEFT_ACTION_NONE;
}

/* Writes from another thread arrive whole and in the order of the calls. */
static void test_async_in_order(void **state)
{
    (void)state;
    wt_server s;
    serve_tls(&s, ignore, 2);
    SSL *c = verified_client(s.port);
    assert_true(wt_wait_count(&wt_counts.opened, 1, WT_TIMEOUT_MS));
    pthread_mutex_lock(&seen_mu);
    weft_conn_ref ref = last_ref;
    pthread_mutex_unlock(&seen_mu);
    for (int i = 0; i < ASYNC_N; i++) {
        char msg[16];
        snprintf(msg, sizeof(msg), "%08d", i);
        assert_int_equal(weft_async_write(s.engine, ref, msg, 8), 0);
    }
    char buf[8 * ASYNC_N + 1];
    assert_int_equal(wt_tls_recv_exact(c, buf, 8 * ASYNC_N), 0);
    for (int i = 0; i < ASYNC_N; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%08d", i);
        assert_memory_equal(buf + 8 * i, want, 8);
    }
    /* A server-side close sends close_notify after the queued bytes. */
    assert_int_equal(weft_async_close(s.engine, ref), 0);
    assert_int_equal(wt_tls_recv_close(c), 0);
    close_and_wait(c, false, 1);
    assert_int_equal(wt_closed_with(0), 1);
    wt_server_stop(&s);
}

/* Worker-pool answers: each request line is answered from a worker with
 * weft_async_write_frame; one worker, so the answers come in the order of the requests. */
typedef struct job {
    weft_engine *e;
    weft_conn_ref ref;
    char line[32];
} job;

static void answer(void *arg, int status)
{
    job *j = arg;
    if (status == 0) {
        char reply[48];
        int n = snprintf(reply, sizeof(reply), "done %s", j->line);
        (void)weft_async_write_frame(j->e, j->ref, reply, (size_t)n);
    }
    free(j);
}

static weft_action to_worker(weft_conn *c)
{
    const uint8_t *f;
    size_t n;
    while (weft_conn_next_frame(c, &f, &n) == WEFT_FRAME) {
        job *j = calloc(1, sizeof(*j));
        j->e = weft_conn_get_engine(c);
        j->ref = weft_conn_get_ref(c);
        memcpy(j->line, f, n < sizeof(j->line) - 1 ? n : sizeof(j->line) - 1);
        if (weft_pool_submit(weft_engine_get_pool(j->e), answer, j) != 0)
            free(j);
    }
    return WEFT_ACTION_NONE;
}

static void test_worker_answers_in_order(void **state)
{
    (void)state;
    weft_config cfg;
    tls_config(&cfg, to_worker, 2);
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.workers = 1;
    wt_server s;
    serve(&s, &cfg);
    SSL *c = verified_client(s.port);
    char req[4096], want[8192];
    size_t rl = 0, wl = 0;
    for (int i = 0; i < 200; i++) {
        rl += (size_t)snprintf(req + rl, sizeof(req) - rl, "%d\n", i);
        wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "done %d\n", i);
    }
    assert_int_equal(wt_tls_send_all(c, req, rl), 0);
    char got[8192];
    assert_int_equal(wt_tls_recv_exact(c, got, wl), 0);
    assert_memory_equal(got, want, wl);
    close_and_wait(c, true, 1);
    wt_server_stop(&s);
}

/* ---- mutual TLS, ALPN, SNI ---- */

static void test_mutual_tls(void **state)
{
    (void)state;
    weft_config cfg;
    tls_config(&cfg, wt_echo_on_traffic, 1);
    cfg.tls.ca_file = wt_tls_pki.ca;
    cfg.tls.verify_peer = WEFT_TLS_VERIFY_REQUIRED;
    wt_server s;
    serve(&s, &cfg);
    /* Accepted: a certificate from the CA. */
    wt_tls_opts o = opts_ca();
    o.cert = wt_tls_pki.client_cert;
    o.key = wt_tls_pki.client_key;
    SSL *c = wt_tls_client(s.port, &o);
    assert_non_null(c);
    echo_check(c, "ping");
    close_and_wait(c, true, 1);
    assert_int_equal(atomic_load(&wt_counts.opened), 1);
    /* Refused: no certificate, then one from another CA. TLS 1.3 clients finish before the
     * server decides, so they learn it at their first read. */
    wt_tls_opts none = opts_ca();
    wt_tls_opts stranger = opts_ca();
    stranger.cert = wt_tls_pki.other_client_cert;
    stranger.key = wt_tls_pki.other_client_key;
    const wt_tls_opts *bad[2] = {&none, &stranger};
    for (int i = 0; i < 2; i++) {
        c = wt_tls_client(s.port, bad[i]);
        if (c != NULL) {
            uint8_t b[4];
            (void)wt_tls_send_all(c, "ping", 4);
            assert_int_not_equal(wt_tls_recv_exact(c, b, 4), 0);
            wt_tls_close(c, false);
        }
        wait_closed(2 + i);
    }
    assert_int_equal(atomic_load(&tls_errors), 2);
    assert_int_equal(atomic_load(&wt_counts.opened), 1); /* the refused were never opened */
    assert_true(seen_has(seen_error, "certificate"));
    wt_server_stop(&s);
}

static void test_alpn(void **state)
{
    (void)state;
    weft_config cfg;
    tls_config(&cfg, wt_echo_on_traffic, 1);
    cfg.tls.alpn = "h2,http/1.1";
    wt_server s;
    serve(&s, &cfg);
    /* The server's preference wins. */
    wt_tls_opts o = opts_ca();
    o.alpn = "http/1.1,h2";
    SSL *c = wt_tls_client(s.port, &o);
    assert_non_null(c);
    const unsigned char *p;
    unsigned n;
    SSL_get0_alpn_selected(c, &p, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(p, "h2", 2);
    assert_true(wt_wait_count(&wt_counts.opened, 1, WT_TIMEOUT_MS));
    assert_true(seen_has(seen_alpn, "h2"));
    wt_tls_close(c, true);
    o.alpn = "http/1.1";
    c = wt_tls_client(s.port, &o);
    assert_non_null(c);
    assert_true(wt_wait_count(&wt_counts.opened, 2, WT_TIMEOUT_MS));
    assert_true(seen_has(seen_alpn, "http/1.1"));
    close_and_wait(c, true, 2);
    wt_server_stop(&s);
}

/* A full handshake gets one session ticket (not OpenSSL's default two), it resumes, and the
 * resumed session gets one of its own; with session_tickets off, none come. */
static void test_one_ticket_per_handshake(void **state)
{
    (void)state;
    for (int on = 1; on >= 0; on--) {
        wt_counters_reset();
        weft_config cfg;
        tls_config(&cfg, wt_echo_on_traffic, 1);
        cfg.tls.session_tickets = on;
        wt_server s;
        serve(&s, &cfg);
        int tickets = 0;
        wt_tls_opts o = opts_ca();
        o.tickets = &tickets;
        SSL *c = wt_tls_client(s.port, &o);
        assert_non_null(c);
        echo_check(c, "ticket"); /* the tickets came before the echo: they are read */
        assert_int_equal(tickets, on);
        SSL_SESSION *session = SSL_get1_session(c);
        wt_tls_close(c, true);
        if (on) {
            tickets = 0;
            o.session = session;
            c = wt_tls_client(s.port, &o);
            assert_non_null(c);
            assert_int_equal(SSL_session_reused(c), 1);
            echo_check(c, "again");
            assert_int_equal(tickets, 1);
            wt_tls_close(c, true);
        }
        SSL_SESSION_free(session);
        wait_closed(on ? 2 : 1);
        wt_server_stop(&s);
    }
}

static void test_sni(void **state)
{
    (void)state;
    weft_config cfg;
    tls_config(&cfg, wt_echo_on_traffic, 1);
    weft_tls_sni names[2] = {{"alpha.test", wt_tls_pki.alpha_cert, wt_tls_pki.alpha_key},
                             {"beta.test", wt_tls_pki.beta_cert, wt_tls_pki.beta_key}};
    cfg.tls.sni = names;
    cfg.tls.nsni = 2;
    wt_server s;
    serve(&s, &cfg);
    const char *hosts[3] = {"alpha.test", "beta.test", "localhost"};
    for (int i = 0; i < 3; i++) {
        wt_tls_opts o = opts_ca();
        o.host = hosts[i]; /* verified against the name: only the right certificate passes */
        SSL *c = wt_tls_client(s.port, &o);
        assert_non_null(c);
        char cn[64];
        wt_tls_peer_cn(c, cn, sizeof(cn));
        assert_string_equal(cn, hosts[i]);
        assert_true(wt_wait_count(&wt_counts.opened, i + 1, WT_TIMEOUT_MS));
        assert_true(seen_has(seen_sni, hosts[i]));
        wt_tls_close(c, true);
    }
    /* A name the listener does not have gets the default certificate, which fails it. */
    wt_tls_opts o = opts_ca();
    o.host = "gamma.test";
    assert_null(wt_tls_client(s.port, &o));
    wait_closed(4);
    wt_server_stop(&s);
}

/* Clients one after another on one loop, each unlike the one before: what one connection
 * negotiated (SNI name and certificate, ALPN choice, client certificate, a failure's reason)
 * is never what the next one sees. */
static void test_nothing_carries_over(void **state)
{
    (void)state;
    weft_config cfg;
    tls_config(&cfg, wt_echo_on_traffic, 1);
    weft_tls_sni names[1] = {{"alpha.test", wt_tls_pki.alpha_cert, wt_tls_pki.alpha_key}};
    cfg.tls.sni = names;
    cfg.tls.nsni = 1;
    cfg.tls.alpn = "h2,http/1.1";
    cfg.tls.ca_file = wt_tls_pki.ca;
    cfg.tls.verify_peer = WEFT_TLS_VERIFY_OPTIONAL;
    wt_server s;
    serve(&s, &cfg);
    /* SNI alpha.test, ALPN h2 and a client certificate. */
    wt_tls_opts a = opts_ca();
    a.host = "alpha.test";
    a.alpn = "h2";
    a.cert = wt_tls_pki.client_cert;
    a.key = wt_tls_pki.client_key;
    SSL *c = wt_tls_client(s.port, &a);
    assert_non_null(c);
    char cn[64];
    wt_tls_peer_cn(c, cn, sizeof(cn));
    assert_string_equal(cn, "alpha.test");
    echo_check(c, "alpha");
    assert_true(seen_has(seen_sni, "alpha.test") && seen_has(seen_alpn, "h2"));
    close_and_wait(c, true, 1);
    /* A certificate from a CA the server does not trust: refused, with a reason. */
    wt_tls_opts x = opts_ca();
    x.cert = wt_tls_pki.other_client_cert;
    x.key = wt_tls_pki.other_client_key;
    c = wt_tls_client(s.port, &x);
    if (c != NULL) { /* TLS 1.3: the client learns it at its first read */
        uint8_t b[4];
        (void)wt_tls_send_all(c, "ping", 4);
        assert_int_not_equal(wt_tls_recv_exact(c, b, 4), 0);
        wt_tls_close(c, false);
    }
    wait_closed(2);
    assert_int_equal(atomic_load(&tls_errors), 1);
    assert_true(seen_has(seen_error, "certificate"));
    /* No SNI (an IP address), no ALPN, no certificate: the default certificate, and nothing
     * of the two before. */
    wt_tls_opts b = opts_ca();
    b.host = "127.0.0.1";
    c = wt_tls_client(s.port, &b);
    assert_non_null(c);
    wt_tls_peer_cn(c, cn, sizeof(cn));
    assert_string_equal(cn, "localhost");
    echo_check(c, "plain");
    pthread_mutex_lock(&seen_mu);
    assert_string_equal(seen_sni, "");
    assert_string_equal(seen_alpn, "");
    assert_string_equal(seen_open_error, "");
    pthread_mutex_unlock(&seen_mu);
    close_and_wait(c, true, 3);
    assert_int_equal(atomic_load(&wt_counts.opened), 2);
    assert_int_equal(atomic_load(&tls_errors), 1);
    wt_server_stop(&s);
}

/* ---- reload ---- */

static void test_reload(void **state)
{
    (void)state;
    wt_server s;
    serve_tls(&s, wt_echo_on_traffic, 2);
    SSL *old = verified_client(s.port);
    char cn[64];
    wt_tls_peer_cn(old, cn, sizeof(cn));
    assert_string_equal(cn, "localhost");
    /* A broken reload changes nothing. */
    weft_tls_config bad;
    weft_tls_config_init(&bad);
    bad.cert_file = wt_tls_pki.server2_cert;
    bad.key_file = wt_tls_pki.server_key; /* not its key */
    assert_int_equal(weft_engine_tls_reload(s.engine, &bad), WEFT_ETLS);
    weft_tls_config next;
    weft_tls_config_init(&next);
    next.cert_file = wt_tls_pki.server2_cert;
    next.key_file = wt_tls_pki.server2_key;
    assert_int_equal(weft_engine_tls_reload(s.engine, &next), 0);
    SSL *fresh = verified_client(s.port);
    wt_tls_peer_cn(fresh, cn, sizeof(cn));
    assert_string_equal(cn, "reloaded");
    /* Both live on. */
    SSL *both[2] = {old, fresh};
    for (int i = 0; i < 2; i++) {
        echo_check(both[i], "hello");
        wt_tls_close(both[i], true);
    }
    wait_closed(2);
    assert_int_equal(wt_closed_with(0), 2);
    wt_server_stop(&s);
}

/* ---- dials ---- */

static _Atomic long dial_opens, dial_echoes, dial_closes, dial_tls_errors;
static char dial_error[128];

static weft_action dial_open(weft_conn *c)
{
    atomic_fetch_add(&dial_opens, 1);
    weft_conn_write(c, "ping\n", 5);
    return WEFT_ACTION_NONE;
}

static weft_action dial_traffic(weft_conn *c)
{
    if (weft_conn_get_buffered(c) >= 5) {
        atomic_fetch_add(&dial_echoes, 1);
        weft_conn_discard(c, 0);
        return WEFT_ACTION_CLOSE;
    }
    return WEFT_ACTION_NONE;
}

static void dial_close(weft_conn *c, int err)
{
    if (err == WEFT_ETLS) {
        copy_seen(dial_error, sizeof(dial_error), weft_conn_tls_error(c));
        atomic_fetch_add(&dial_tls_errors, 1);
    }
    atomic_fetch_add(&dial_closes, 1);
}

/* A client engine, with the dial counts reset, that dials url verifying the server against ca
 * (and name, when not NULL); returns once that connection has closed. The engine is the
 * caller's to stop with engine_stop. */
static weft_engine *dial_and_wait(const char *url, const char *ca, const char *name)
{
    atomic_store(&dial_opens, 0);
    atomic_store(&dial_echoes, 0);
    atomic_store(&dial_closes, 0);
    atomic_store(&dial_tls_errors, 0);
    weft_config cfg;
    wt_config(&cfg, dial_traffic, 1);
    cfg.listen[0] = NULL;
    cfg.handler.on_open = dial_open;
    cfg.handler.on_close = dial_close;
    cfg.tls_client.ca_file = ca;
    cfg.tls_client.server_name = name;
    weft_engine *e;
    assert_int_equal(weft_engine_start(&cfg, &e), 0);
    assert_int_equal(weft_engine_dial(e, url, -1, 0, NULL), 0);
    assert_true(wt_wait_count(&dial_closes, 1, WT_TIMEOUT_MS));
    return e;
}

static void engine_stop(weft_engine *e)
{
    weft_engine_stop(e);
    weft_engine_wait(e);
}

static void dial_once(int port, const char *ca, const char *name, bool ok)
{
    char url[64];
    snprintf(url, sizeof(url), "tls://127.0.0.1:%d", port);
    weft_engine *e = dial_and_wait(url, ca, name);
    if (ok) {
        assert_int_equal(atomic_load(&dial_opens), 1);
        assert_int_equal(atomic_load(&dial_echoes), 1);
        assert_int_equal(atomic_load(&dial_tls_errors), 0);
    } else {
        assert_int_equal(atomic_load(&dial_opens), 0);
        assert_int_equal(atomic_load(&dial_tls_errors), 1);
        assert_true(seen_has(dial_error, "certificate verify failed"));
    }
    engine_stop(e);
}

static void test_dial_verify(void **state)
{
    (void)state;
    wt_server s;
    serve_tls(&s, wt_echo_on_traffic, 1);
    dial_once(s.port, wt_tls_pki.ca, NULL, true);             /* 127.0.0.1 is in the certificate */
    dial_once(s.port, wt_tls_pki.ca, "localhost", true);      /* so is localhost */
    dial_once(s.port, wt_tls_pki.other_ca, NULL, false);      /* an unknown issuer */
    dial_once(s.port, wt_tls_pki.ca, "wrong.example", false); /* a name the certificate lacks */
    wait_closed(4);
    wt_server_stop(&s);
}

/* TLS over a Unix socket, both ways: the name to check is the configured one. */
static void test_tls_over_unix(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_unix());
    char path[108], listen[128];
    wt_unix_path(path, sizeof(path), "tls");
    snprintf(listen, sizeof(listen), "tls+unix://%s", path);
    weft_config cfg;
    tls_config(&cfg, wt_echo_on_traffic, 1);
    cfg.listen[0] = listen;
    wt_server s;
    serve(&s, &cfg);
    assert_string_equal(s.url, listen);
    weft_engine *e = dial_and_wait(listen, wt_tls_pki.ca, "localhost");
    assert_int_equal(atomic_load(&dial_echoes), 1);
    engine_stop(e);
    wait_closed(1);
    assert_int_equal(wt_closed_with(0), 1);
    wt_server_stop(&s);
}

/* ---- hostile peers ---- */

static bool closed_one(void *arg)
{
    (void)arg;
    return atomic_load(&wt_counts.closed) >= 1;
}

/* A client that connects and never finishes its handshake is closed at the deadline. */
static void test_handshake_timeout(void **state)
{
    (void)state;
    weft_config cfg;
    tls_config(&cfg, wt_echo_on_traffic, 1);
    cfg.tls_handshake_timeout_ms = 300;
    wt_server s;
    serve(&s, &cfg);
    int fd = wt_tls_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_int_equal(wt_send_all(fd, "\x16\x03\x01", 3, WT_TIMEOUT_MS), 0); /* a slow hello */
    assert_true(wt_wait_for(closed_one, NULL, wt_grace_ms(5000)));
    assert_int_equal(atomic_load(&timeouts), 1);
    assert_int_equal(atomic_load(&wt_counts.opened), 0);
    assert_int_equal(wt_recv_eof(fd, WT_TIMEOUT_MS), 0);
    wt_close(fd);
    wt_server_stop(&s);
}

static void test_plain_http(void **state)
{
    (void)state;
    wt_server s;
    serve_tls(&s, wt_echo_on_traffic, 1);
    int fd = wt_tls_connect_tcp(s.port);
    const char *req = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_int_equal(wt_send_all(fd, req, strlen(req), WT_TIMEOUT_MS), 0);
    wait_closed(1);
    assert_int_equal(atomic_load(&tls_errors), 1);
    assert_true(seen_has(seen_error, "http request"));
    /* What comes back is at most an alert record, nothing in plain text. */
    uint8_t b[64];
    ssize_t n = wt_recv(fd, b, sizeof(b));
    assert_true(n <= 0 || b[0] == 0x15);
    wt_close(fd);
    wt_server_stop(&s);
}

/* A record cut off and a reset: that connection ends, the next is served. */
static void test_truncation_reset(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_reset());
    wt_server s;
    serve_tls(&s, wt_echo_on_traffic, 1);
    SSL *c = verified_client(s.port);
    int fd = SSL_get_fd(c);
    /* An application-data record header claiming 200 bytes, then 10 of them. */
    uint8_t rec[15] = {0x17, 0x03, 0x03, 0x00, 0xc8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    assert_int_equal(wt_send_all(fd, rec, sizeof(rec), WT_TIMEOUT_MS), 0);
    (void)wt_linger_reset(fd);
    close_and_wait(c, false, 1);
    assert_int_equal(atomic_load(&resets), 1);
    c = verified_client(s.port);
    echo_check(c, "hi");
    close_and_wait(c, true, 2);
    assert_int_equal(atomic_load(&tls_errors), 0);
    wt_server_stop(&s);
}

/* A FIN without close_notify, after a good exchange, is reported as a truncation. */
static void test_truncation(void **state)
{
    (void)state;
    wt_server s;
    serve_tls(&s, wt_echo_on_traffic, 1);
    SSL *c = verified_client(s.port);
    echo_check(c, "hi");
    close_and_wait(c, false, 1);
    assert_int_equal(atomic_load(&tls_errors), 1);
    assert_true(seen_has(seen_error, "unexpected eof"));
    wt_server_stop(&s);
}

static bool none_live(void *arg)
{
    weft_loop_stats t = wt_stats(arg);
    return t.live == 0 && t.buffers_out == 0;
}

typedef struct abandoned_want {
    weft_engine *engine;
    long n;
} abandoned_want;

static bool abandoned_settled(void *arg)
{
    const abandoned_want *w = arg;
    weft_stats st;
    weft_engine_get_stats(w->engine, &st, NULL);
    return atomic_load(&wt_counts.closed) + (long)st.accept_errors >= w->n;
}

/* Handshakes opened and dropped halfway, by FIN or by reset: each is closed, none opened,
 * and a real client is served afterwards. WEFT_TEST_TLS_ABANDONED sets the count (10000 for
 * the full run); by default a few hundred, cheap enough for CI. */
static void test_abandoned_handshakes(void **state)
{
    (void)state;
    wt_server s;
    serve_tls(&s, wt_echo_on_traffic, 2);
    long n = wt_slow() ? 60 : 300;
    const char *env = getenv("WEFT_TEST_TLS_ABANDONED");
    if (env != NULL && atol(env) > 0)
        n = atol(env);
    uint8_t hello[2048];
    size_t hl = wt_tls_client_hello(hello, sizeof(hello));
    assert_true(hl > 10);
    for (long i = 0; i < n; i++) {
        int fd = wt_tls_connect_tcp(s.port);
        assert_true(fd >= 0);
        assert_int_equal(wt_send_all(fd, hello, hl / 2, WT_TIMEOUT_MS), 0);
        if (i % 2 == 0)
            (void)wt_linger_reset(fd);
        wt_close(fd);
    }
    /* Each one the server took is closed; one gone before it was taken is counted as an
     * accept error instead (Windows' AcceptEx reports a peer that reset in the backlog). */
    abandoned_want w = {s.engine, n};
    assert_true(wt_wait_for(abandoned_settled, &w, wt_grace_ms(30000)));
    assert_int_equal(atomic_load(&wt_counts.opened), 0);
    SSL *c = verified_client(s.port);
    echo_check(c, "ok");
    weft_stats st;
    weft_engine_get_stats(s.engine, &st, NULL);
    close_and_wait(c, true, n + 1 - (long)st.accept_errors);
    assert_int_equal(atomic_load(&wt_counts.closed) + (long)st.accept_errors, n + 1);
    print_message("%ld abandoned handshakes: %ld closed, %llu gone before they were accepted\n", n,
                  atomic_load(&wt_counts.closed) - 1, (unsigned long long)st.accept_errors);
    assert_true(wt_wait_for(none_live, s.engine, WT_TIMEOUT_MS)); /* counted after on_close */
    wt_server_stop(&s);
}

/* A ClientHello of more than 16 KiB (a long ALPN list) spans records: served all the same. */
static void test_big_client_hello(void **state)
{
    (void)state;
    weft_config cfg;
    tls_config(&cfg, wt_echo_on_traffic, 1);
    cfg.tls.alpn = "weft";
    wt_server s;
    serve(&s, &cfg);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    static unsigned char wire[20000];
    size_t n = 0;
    while (n + 61 < 17000) {
        wire[n] = 60;
        memset(wire + n + 1, 'a' + (int)(n % 26), 60);
        n += 61;
    }
    memcpy(wire + n, "\x04weft", 5);
    n += 5;
    assert_int_equal(SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)n), 0);
    int fd = wt_tls_connect_tcp(s.port);
    SSL *c = SSL_new(ctx);
    SSL_CTX_free(ctx);
    SSL_set_fd(c, fd);
    int rc;
    while ((rc = SSL_connect(c)) != 1 && SSL_get_error(c, rc) == SSL_ERROR_WANT_READ &&
           errno == EINTR) {
    }
    assert_int_equal(rc, 1);
    echo_check(c, "big");
    assert_true(seen_has(seen_alpn, "weft"));
    close_and_wait(c, true, 1);
    wt_server_stop(&s);
}

/* A TLS 1.2 client asking to renegotiate is refused; the connection itself is not harmed
 * beyond what the client does about the refusal. */
static void test_renegotiation_refused(void **state)
{
    (void)state;
    wt_server s;
    serve_tls(&s, wt_echo_on_traffic, 1);
    wt_tls_opts o = opts_ca();
    o.max_version = TLS1_2_VERSION;
    SSL *c = wt_tls_client(s.port, &o);
    assert_non_null(c);
    assert_int_equal(SSL_version(c), TLS1_2_VERSION);
    assert_int_equal(SSL_renegotiate(c), 1);
    int rc = SSL_do_handshake(c);
    /* The server answers the new hello with a no_renegotiation alert, never a handshake. */
    uint8_t b[2];
    if (rc == 1 && wt_tls_send_all(c, "re", 2) == 0)
        rc = wt_tls_recv_exact(c, b, 2) == 0 && SSL_renegotiate_pending(c) == 0 ? 2 : 0;
    assert_int_not_equal(rc, 2);
    close_and_wait(c, false, 1);
    wt_server_stop(&s);
}

static void test_bad_config_fails_start(void **state)
{
    (void)state;
    weft_config cfg;
    wt_config(&cfg, wt_echo_on_traffic, 1);
    cfg.listen[0] = "tls://127.0.0.1:0"; /* no certificate */
    weft_engine *e;
    assert_int_equal(weft_engine_start(&cfg, &e), WEFT_ETLS);
    cfg.tls.cert_file = wt_tls_pki.server_cert;
    cfg.tls.key_file = wt_tls_pki.client_key; /* not its key */
    assert_int_equal(weft_engine_start(&cfg, &e), WEFT_ETLS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_one_loop),
        cmocka_unit_test(test_echo_four_loops),
        cmocka_unit_test(test_line_codec),
        cmocka_unit_test(test_length_field_codec),
        cmocka_unit_test(test_large_payload),
        cmocka_unit_test(test_non_reading_peer),
        cmocka_unit_test(test_requests_held_at_the_mark_then_close_notify),
        cmocka_unit_test(test_async_in_order),
        cmocka_unit_test(test_worker_answers_in_order),
        cmocka_unit_test(test_mutual_tls),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_one_ticket_per_handshake),
        cmocka_unit_test(test_sni),
        cmocka_unit_test(test_nothing_carries_over),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_dial_verify),
        cmocka_unit_test(test_tls_over_unix),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_plain_http),
        cmocka_unit_test(test_truncation_reset),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_abandoned_handshakes),
        cmocka_unit_test(test_big_client_hello),
        cmocka_unit_test(test_renegotiation_refused),
        cmocka_unit_test(test_bad_config_fails_start),
    };
    return wt_tls_run_tests(tests);
}
