/* Kernel TLS sends after the switch, with a userland stand-in for the kernel.
 *
 * The machines these tests run on have no tls module, so the two kernel calls are replaced
 * (weft__ktls_ops) by a record layer of the test's own that does what the kernel does with
 * the crypto_info weft hands it: from TLS_TX on, it seals what the connection sends into
 * TLS 1.3 records with that key, IV and sequence number, and writes a close_notify record
 * when asked. Everything else is weft's production path: the key taken from OpenSSL's keylog
 * and derived, the records OpenSSL sealed first counted (the session tickets: a wrong count
 * and the client cannot decrypt the first byte after the switch), the switch only once the
 * output drained (the stand-in refuses TLS_TX otherwise, as the kernel would mangle what
 * still waits), plaintext through the connection's output, and a real OpenSSL client on the
 * other side checking every record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/tls.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"
#include "tls.h"
#include "tls_suite.h"

/* ---- the stand-in for the kernel ---- */

typedef struct soft {
    const EVP_CIPHER *aead;
    uint8_t key[32], iv[12];
    uint64_t seq;
} soft;

static _Atomic long soft_ulps, soft_txs, soft_undrained, soft_alerts, soft_records;
static _Atomic long soft_first_seq = -1; /* rec_seq of the latest TLS_TX */

static void soft_reset(void)
{
    atomic_store(&soft_ulps, 0);
    atomic_store(&soft_txs, 0);
    atomic_store(&soft_undrained, 0);
    atomic_store(&soft_alerts, 0);
    atomic_store(&soft_records, 0);
    atomic_store(&soft_first_seq, -1);
}

static int soft_ulp(weft_conn *c)
{
    (void)c;
    atomic_fetch_add(&soft_ulps, 1);
    return 0;
}

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int soft_tx(weft_conn *c, const void *info, size_t len, void **state)
{
    /* The kernel seals everything that leaves from now on: a byte of OpenSSL's still in
     * weft's queue, staged or in flight would reach the peer sealed twice. */
    if (weft__conn_pending(c) != 0 || (c->flags & (CONN_SENDING | CONN_STAGED))) {
        atomic_fetch_add(&soft_undrained, 1);
        return -EBUSY;
    }
    const struct tls_crypto_info *ci = info;
    if (len < sizeof(*ci) || ci->version != TLS_1_3_VERSION)
        return -EINVAL;
    soft *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    const unsigned char *rec_seq;
    if (ci->cipher_type == TLS_CIPHER_AES_GCM_128 &&
        len == sizeof(struct tls12_crypto_info_aes_gcm_128)) {
        const struct tls12_crypto_info_aes_gcm_128 *g = info;
        s->aead = EVP_aes_128_gcm();
        memcpy(s->key, g->key, 16);
        memcpy(s->iv, g->salt, 4);
        memcpy(s->iv + 4, g->iv, 8);
        rec_seq = g->rec_seq;
    } else if (ci->cipher_type == TLS_CIPHER_AES_GCM_256 &&
               len == sizeof(struct tls12_crypto_info_aes_gcm_256)) {
        const struct tls12_crypto_info_aes_gcm_256 *g = info;
        s->aead = EVP_aes_256_gcm();
        memcpy(s->key, g->key, 32);
        memcpy(s->iv, g->salt, 4);
        memcpy(s->iv + 4, g->iv, 8);
        rec_seq = g->rec_seq;
    } else if (ci->cipher_type == TLS_CIPHER_CHACHA20_POLY1305 &&
               len == sizeof(struct tls12_crypto_info_chacha20_poly1305)) {
        const struct tls12_crypto_info_chacha20_poly1305 *g = info;
        s->aead = EVP_chacha20_poly1305();
        memcpy(s->key, g->key, 32);
        memcpy(s->iv, g->iv, 12);
        rec_seq = g->rec_seq;
    } else {
        free(s);
        return -EINVAL;
    }
    s->seq = be64(rec_seq);
    atomic_store(&soft_first_seq, (long)s->seq);
    atomic_fetch_add(&soft_txs, 1);
    *state = s;
    return 0;
}

/* What the kernel does with plaintext sent on a TLS_TX socket: records of up to 16 KiB. */
static int soft_send(weft_conn *c, void *state, const struct iovec *iov, int iovcnt)
{
    soft *s = state;
    enum { BATCH = 4 };
    static _Thread_local uint8_t out[BATCH * (16384 + 22)];
    size_t o = 0;
    for (int i = 0; i < iovcnt; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t n = iov[i].iov_len;
        while (n > 0) {
            size_t take = n < 16384 ? n : 16384;
            size_t r = wt_tls13_seal(s->aead, s->key, s->iv, s->seq++, 23, p, take, out + o);
            if (r == 0)
                return WEFT_ETLS;
            atomic_fetch_add(&soft_records, 1);
            o += r;
            p += take;
            n -= take;
            if (o > sizeof(out) - (16384 + 22)) {
                struct iovec v = {out, o};
                int rc = weft__conn_send_raw(c, &v, 1);
                if (rc != 0)
                    return rc;
                o = 0;
            }
        }
    }
    if (o == 0)
        return 0;
    struct iovec v = {out, o};
    return weft__conn_send_raw(c, &v, 1);
}

/* sendmsg with a TLS_SET_RECORD_TYPE cmsg: one record of that type, straight out. */
static ssize_t soft_record(weft_conn *c, void *state, uint8_t type, const void *p, size_t n)
{
    soft *s = state;
    uint8_t rec[64];
    if (n > sizeof(rec) - 22)
        return -EMSGSIZE;
    size_t r = wt_tls13_seal(s->aead, s->key, s->iv, s->seq++, type, p, n, rec);
    ssize_t w = send(c->fd, rec, r, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0)
        return -errno;
    if (type == 21)
        atomic_fetch_add(&soft_alerts, 1);
    return w == (ssize_t)r ? (ssize_t)n : -EIO;
}

static void soft_release(void *state)
{
    OPENSSL_cleanse(state, sizeof(soft));
    free(state);
}

static const weft__ktls_ops soft_ops = {soft_ulp, soft_tx, soft_send, soft_record, soft_release};

/* ---- the server ---- */

/* What the server's connections said of themselves, in on_traffic and on_close. */
static _Atomic long traffic_ktls, traffic_user, close_ktls, keyupdate_closes;
static pthread_mutex_t ref_mu = PTHREAD_MUTEX_INITIALIZER;
static weft_conn_ref last_ref;
static _Atomic long log_not_used, log_unavailable;

static void capture(void *ctx, weft_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    if (strncmp(msg, "kernel TLS not used", 19) == 0)
        atomic_fetch_add(&log_not_used, 1);
    if (strncmp(msg, "kernel TLS unavailable", 22) == 0)
        atomic_fetch_add(&log_unavailable, 1);
}

static _Atomic bool greet; /* on_open writes "hello" (before the switch: OpenSSL seals it) */

static weft_action on_open(weft_conn *c)
{
    pthread_mutex_lock(&ref_mu);
    last_ref = weft_conn_get_ref(c);
    pthread_mutex_unlock(&ref_mu);
    if (atomic_load(&greet))
        weft_conn_write(c, "hello", 5);
    return wt_count_open(c);
}

static weft_action echo(weft_conn *c)
{
    atomic_fetch_add(weft_conn_tls_ktls(c) ? &traffic_ktls : &traffic_user, 1);
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    if (n == 3 && memcmp(p, "bye", 3) == 0) {
        weft_conn_discard(c, 3);
        weft_conn_write(c, "ok", 2);
        return WEFT_ACTION_CLOSE;
    }
    return wt_echo_on_traffic(c);
}

static void on_close(weft_conn *c, int err)
{
    if (weft_conn_tls_ktls(c))
        atomic_fetch_add(&close_ktls, 1);
    const char *why = weft_conn_tls_error(c);
    if (err == WEFT_ETLS && why != NULL && strstr(why, "KeyUpdate") != NULL)
        atomic_fetch_add(&keyupdate_closes, 1);
    wt_count_close(c, err);
}

static void start_with(wt_server *s, const char *suites, bool tickets, unsigned loops)
{
    wt_counters_reset();
    soft_reset();
    atomic_store(&traffic_ktls, 0);
    atomic_store(&traffic_user, 0);
    atomic_store(&close_ktls, 0);
    atomic_store(&keyupdate_closes, 0);
    atomic_store(&log_not_used, 0);
    atomic_store(&log_unavailable, 0);
    atomic_store(&greet, false);
    weft__ktls_ops_current = &soft_ops;
    weft_config cfg;
    wt_tls_config(&cfg, echo, loops);
    cfg.tls.ciphersuites = suites;
    cfg.tls.session_tickets = tickets;
    cfg.tls.ktls = true;
    cfg.handler.on_open = on_open;
    cfg.handler.on_close = on_close;
    cfg.log_cb = capture;
    cfg.log_level = WEFT_LOG_INFO;
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

static void stop(wt_server *s)
{
    wt_server_stop(s);
    assert_int_equal(atomic_load(&soft_undrained), 0);
    assert_int_equal(atomic_load(&log_unavailable), 0);
}

static SSL *client_v(int port, int max_version)
{
    wt_tls_opts o = {.ca = wt_tls_pki.ca, .host = "localhost", .max_version = max_version};
    SSL *c = wt_tls_client(port, &o);
    assert_non_null(c);
    return c;
}

static SSL *client(int port)
{
    return client_v(port, 0);
}

/* The loop switches right after the handshake's last records left: a reply sent with them
 * may reach the client first. Waits for n switches in all. */
static void switched(long n)
{
    assert_true(wt_wait_count(&soft_txs, n, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&soft_txs), n);
}

static void echo_once(SSL *c, size_t n, uint32_t seed)
{
    uint8_t *out = malloc(n), *in = malloc(n);
    assert_non_null(out);
    assert_non_null(in);
    wt_fill(out, n, seed);
    assert_int_equal(wt_tls_exchange(c, out, n, in, n, wt_grace_ms(WT_TIMEOUT_MS)), 0);
    assert_memory_equal(in, out, n);
    free(out);
    free(in);
}

/* The server's first bytes after the switch: the client reads them only if the sequence
 * number continued from the tickets OpenSSL sent. */
static void switched_echo(const char *suites, const char *name)
{
    wt_server s;
    start_with(&s, suites, true, 2);
    SSL *c = client(s.port);
    print_message("suite %s: %s\n", name, SSL_get_cipher_name(c));
    assert_string_equal(SSL_get_cipher_name(c), name);
    static const size_t sizes[] = {1, 100, 16383, 16384, 16385, 100000, 8u << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        echo_once(c, sizes[i], (uint32_t)i);
    /* Switched once, after the tickets (OpenSSL sends two by default), and every echo but
     * maybe the first came back through the kernel's path. */
    switched(1);
    assert_int_equal(atomic_load(&soft_ulps), 1);
    assert_true(atomic_load(&soft_first_seq) > 0);
    assert_true(atomic_load(&soft_records) > (long)((8u << 20) / 16384u));
    assert_true(atomic_load(&traffic_ktls) > 0);
    wt_tls_close(c, true);
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(0), 1);
    assert_int_equal(atomic_load(&close_ktls), 1);
    stop(&s);
}

static void test_echo_aes_256_gcm(void **state)
{
    (void)state;
    switched_echo("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384");
}

static void test_echo_aes_128_gcm(void **state)
{
    (void)state;
    switched_echo("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256");
}

static void test_echo_chacha20(void **state)
{
    (void)state;
    switched_echo("TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256");
}

/* A greeting written in on_open goes through OpenSSL, behind the tickets: the kernel's first
 * number is one more than without it. */
static void test_write_in_on_open_is_counted(void **state)
{
    (void)state;
    wt_server s;
    start_with(&s, NULL, true, 1);
    SSL *c = client(s.port);
    switched(1); /* nothing written yet: only the tickets came before */
    long plain = atomic_load(&soft_first_seq);
    echo_once(c, 1000, 5);
    wt_tls_close(c, true);
    atomic_store(&greet, true);
    c = client(s.port);
    char hello[5];
    assert_int_equal(wt_tls_recv_exact(c, hello, 5), 0);
    assert_memory_equal(hello, "hello", 5);
    echo_once(c, 30000, 6);
    switched(2);
    assert_int_equal(atomic_load(&soft_first_seq), plain + 1);
    wt_tls_close(c, true);
    assert_true(wt_wait_count(&wt_counts.closed, 2, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(0), 2);
    stop(&s);
}

#define ASYNC_N 500

/* Writes from another thread after the switch arrive whole and in order; a server-side
 * close then sends the kernel's close_notify behind them. */
static void test_async_in_order_then_close_notify(void **state)
{
    (void)state;
    wt_server s;
    start_with(&s, NULL, true, 2);
    SSL *c = client(s.port);
    echo_once(c, 10, 1);
    switched(1);
    pthread_mutex_lock(&ref_mu);
    weft_conn_ref ref = last_ref;
    pthread_mutex_unlock(&ref_mu);
    for (int i = 0; i < ASYNC_N; i++) {
        char msg[16];
        snprintf(msg, sizeof(msg), "%08d", i);
        assert_int_equal(weft_async_write(s.engine, ref, msg, 8), 0);
    }
    static char buf[8 * ASYNC_N + 1];
    assert_int_equal(wt_tls_recv_exact(c, buf, 8 * ASYNC_N), 0);
    for (int i = 0; i < ASYNC_N; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%08d", i);
        assert_memory_equal(buf + 8 * i, want, 8);
    }
    assert_int_equal(weft_async_close(s.engine, ref), 0);
    assert_int_equal(wt_tls_recv_close(c), 0); /* close_notify, not a bare FIN */
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(0), 1);
    assert_int_equal(atomic_load(&soft_alerts), 1);
    wt_tls_close(c, false);
    stop(&s);
}

/* A close from on_traffic, behind the reply: "ok", then close_notify; the client's
 * SSL_read says SSL_ERROR_ZERO_RETURN. */
static void test_close_from_callback(void **state)
{
    (void)state;
    wt_server s;
    start_with(&s, NULL, true, 1);
    SSL *c = client(s.port);
    echo_once(c, 3000, 2);
    assert_int_equal(wt_tls_send_all(c, "bye", 3), 0);
    char ok[2];
    assert_int_equal(wt_tls_recv_exact(c, ok, 2), 0);
    assert_memory_equal(ok, "ok", 2);
    char b;
    int r = SSL_read(c, &b, 1);
    assert_int_equal(r, 0);
    assert_int_equal(SSL_get_error(c, r), SSL_ERROR_ZERO_RETURN);
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(0), 1);
    assert_int_equal(atomic_load(&soft_alerts), 1);
    wt_tls_close(c, false);
    stop(&s);
}

/* The client asks for a KeyUpdate: the kernel has the old key and OpenSSL may not send,
 * so the connection closes with WEFT_ETLS and says why; the server goes on. */
static void test_key_update_closes(void **state)
{
    (void)state;
    wt_server s;
    start_with(&s, NULL, true, 1);
    SSL *c = client(s.port);
    echo_once(c, 100, 3);
    switched(1); /* before it, OpenSSL would answer and the connection stay in userland */
    assert_int_equal(SSL_key_update(c, SSL_KEY_UPDATE_REQUESTED), 1);
    assert_int_equal(SSL_do_handshake(c), 1); /* sends it */
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(WEFT_ETLS), 1);
    assert_int_equal(atomic_load(&keyupdate_closes), 1);
    assert_int_equal(atomic_load(&soft_alerts), 0);
    assert_true(wt_tls_recv_close(c) != 0); /* no close_notify: the connection failed */
    wt_tls_close(c, false);
    /* Another client still switches and echoes. */
    SSL *d = client(s.port);
    echo_once(d, 40000, 4);
    switched(2);
    wt_tls_close(d, true);
    assert_true(wt_wait_count(&wt_counts.closed, 2, WT_TIMEOUT_MS));
    stop(&s);
}

/* A TLS 1.2 client: not offloaded, said once for the engine, userland TLS goes on. */
static void test_tls12_stays_in_userland(void **state)
{
    (void)state;
    wt_server s;
    start_with(&s, NULL, true, 2);
    for (int i = 0; i < 3; i++) {
        SSL *c = client_v(s.port, TLS1_2_VERSION);
        echo_once(c, 20000, (uint32_t)i);
        wt_tls_close(c, true);
    }
    assert_true(wt_wait_count(&wt_counts.closed, 3, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(0), 3);
    assert_int_equal(atomic_load(&soft_ulps), 0);
    assert_int_equal(atomic_load(&soft_txs), 0);
    assert_int_equal(atomic_load(&traffic_ktls), 0);
    assert_int_equal(atomic_load(&log_not_used), 1);
    stop(&s);
}

/* ---- a dial ---- */

static _Atomic long dial_ktls, dial_echoes, dial_closes, dial_errors;

static weft_action dial_open(weft_conn *c)
{
    weft_conn_write(c, "ping", 4); /* before the switch: through OpenSSL */
    return WEFT_ACTION_NONE;
}

static weft_action dial_traffic(weft_conn *c)
{
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    if (n >= 4 && memcmp(p, "ping", 4) == 0) {
        weft_conn_discard(c, 4);
        weft_conn_write(c, "pong", 4); /* after it: through the kernel's path */
    } else if (n >= 4 && memcmp(p, "pong", 4) == 0) {
        weft_conn_discard(c, 4);
        if (weft_conn_tls_ktls(c))
            atomic_fetch_add(&dial_ktls, 1);
        atomic_fetch_add(&dial_echoes, 1);
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

/* The dialling engine switches (with the client's secret), the userland server reads its
 * records, and the dial's close sends close_notify: the server sees an orderly close. */
static void test_dial_switches(void **state)
{
    (void)state;
    wt_server s;
    weft_config scfg;
    wt_counters_reset();
    soft_reset();
    wt_tls_config(&scfg, wt_echo_on_traffic, 1);
    assert_int_equal(wt_server_start(&s, &scfg), 0);
    atomic_store(&dial_ktls, 0);
    atomic_store(&dial_echoes, 0);
    atomic_store(&dial_closes, 0);
    atomic_store(&dial_errors, 0);
    weft__ktls_ops_current = &soft_ops;
    weft_config cfg;
    wt_config(&cfg, dial_traffic, 1);
    cfg.listen[0] = NULL;
    cfg.handler.on_open = dial_open;
    cfg.handler.on_close = dial_close;
    cfg.tls_client.ca_file = wt_tls_pki.ca;
    cfg.tls_client.server_name = "localhost";
    cfg.tls_client.ktls = true;
    weft_engine *e;
    assert_int_equal(weft_engine_start(&cfg, &e), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_engine_dial(e, s.url, -1, 0, NULL), 0);
    assert_true(wt_wait_count(&dial_closes, 3, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&dial_echoes), 3);
    assert_int_equal(atomic_load(&dial_errors), 0);
    assert_int_equal(atomic_load(&dial_ktls), 3);
    assert_int_equal(atomic_load(&soft_txs), 3);
    /* A client sends no tickets, but its "ping" went through OpenSSL before the switch. */
    assert_int_equal(atomic_load(&soft_first_seq), 1);
    assert_int_equal(atomic_load(&soft_alerts), 3);
    weft_engine_stop(e);
    assert_int_equal(weft_engine_wait(e), 0);
    assert_true(wt_wait_count(&wt_counts.closed, 3, WT_TIMEOUT_MS));
    assert_int_equal(wt_closed_with(0), 3); /* close_notify, read by OpenSSL */
    stop(&s);
}

int main(void)
{
    const weft__ktls_ops *kernel = weft__ktls_ops_current;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_aes_256_gcm),
        cmocka_unit_test(test_echo_aes_128_gcm),
        cmocka_unit_test(test_echo_chacha20),
        cmocka_unit_test(test_write_in_on_open_is_counted),
        cmocka_unit_test(test_async_in_order_then_close_notify),
        cmocka_unit_test(test_close_from_callback),
        cmocka_unit_test(test_key_update_closes),
        cmocka_unit_test(test_tls12_stays_in_userland),
        cmocka_unit_test(test_dial_switches),
    };
    int rc = wt_tls_run_tests(tests);
    weft__ktls_ops_current = kernel;
    return rc;
}
