/* weft — TLS through OpenSSL 3, between the backend seam and the codec (tls.h says how).
 *
 * OpenSSL never sees the socket: a connection's SSL reads from a BIO over the span the
 * backend just delivered (no copy into a memory BIO) and writes its records through
 * weft__conn_send_raw, so they take the same path plain output takes. SSL_MODE_RELEASE_BUFFERS
 * gives OpenSSL's buffers back while a connection is idle. The certificate sets and the
 * engine's part are tls_ctx.c's; kernel TLS sends are tls_ktls.c's.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tls_ctx.h"

/* The most plaintext in one record. */
#define RECORD_MAX 16384u

struct weft__tls_conn {
    SSL *ssl;
    weft_conn *c;
    ctxset *set;       /* a listener's: the certificates it was accepted with */
    const uint8_t *in; /* the ciphertext being fed to OpenSSL */
    size_t in_len;
    uint8_t *pend; /* plaintext gathered into the next record */
    uint32_t pend_len, pend_cap;
    uint32_t hs_start; /* loop clock when the handshake began */
    bool established, failed, shutdown_sent, listed, connecting;
    bool ktls;        /* the kernel does the record layer (sends; OpenSSL still reads) */
    bool ktls_notify; /* the kernel's close_notify waits for the output to drain */
    weft__ktls *k;    /* ktls asked for: the way to the switch (tls_ktls.c) */
    const char *err;  /* static text, OpenSSL's or ours */
    const char *why;  /* ours, when fail() is about kernel TLS */
    char alpn[32];
};

/* OpenSSL's keylog line for a connection that asked for ktls. */
void weft__tls_keylog(const SSL *ssl, const char *line)
{
    weft__tls_conn *t = SSL_get_app_data(ssl);
    if (t != NULL && t->k != NULL && !t->ktls)
        weft__ktls_keylog(t->k, ssl, line);
}

/* ---- the BIO over weft's buffers ---- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    weft__tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->ktls) {
        /* The kernel seals what leaves now and OpenSSL's record would break its sequence
         * (a KeyUpdate's answer, an alert): the connection cannot go on. */
        if (ERR_peek_error() == 0) /* an alert says its own reason */
            t->why = "OpenSSL had a record to send after the switch to kernel TLS";
        return 0;
    }
    if (t->k != NULL)
        weft__ktls_outbound(t->k, (const uint8_t *)data, len);
    struct iovec iov = {(void *)data, len};
    if (weft__conn_send_raw(t->c, &iov, 1) != 0)
        return 0;
    *written = len;
    return 1;
}

static int bio_read(BIO *b, char *out, size_t len, size_t *got)
{
    weft__tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->in_len == 0) {
        BIO_set_retry_read(b); /* the next delivery goes on from here */
        return 0;
    }
    size_t n = len < t->in_len ? len : t->in_len;
    memcpy(out, t->in, n);
    t->in += n;
    t->in_len -= n;
    *got = n;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    weft__tls_conn *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* records leave with the connection's output */
    case BIO_CTRL_PENDING:
        return t != NULL ? (long)t->in_len : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    (void)b;
    return 1;
}

static void bio_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weft");
    if (m == NULL)
        return;
    BIO_meth_set_write_ex(m, bio_write);
    BIO_meth_set_read_ex(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    BIO_meth_set_destroy(m, bio_destroy);
    bio_method = m;
}

/* ---- a loop's TLS connections ---- */

static weft__tls_loop *loop_table(weft__loop *loop)
{
    if (loop->tls != NULL)
        return loop->tls;
    weft__tls_loop *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->pbuf_size = loop->rbuf_size;
    t->pbuf = malloc(t->pbuf_size);
    if (t->pbuf == NULL) {
        free(t);
        return NULL;
    }
    loop->tls = t;
    return t;
}

/* A TLS state for c from ctx, filed under c's slot. NULL: no memory. */
static weft__tls_conn *conn_new(weft_conn *c, SSL_CTX *ctx)
{
    pthread_once(&bio_once, bio_make);
    weft__tls_loop *tl = loop_table(c->loop);
    if (tl == NULL || bio_method == NULL)
        return NULL;
    uint32_t ci = c->slot >> WEFT__CHUNK_SHIFT;
    if (tl->chunks[ci] == NULL) {
        tl->chunks[ci] = calloc(WEFT__CHUNK_SIZE, sizeof(weft__tls_conn *));
        if (tl->chunks[ci] == NULL)
            return NULL;
    }
    weft__tls_conn *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->c = c;
    t->ssl = SSL_new(ctx);
    BIO *b = t->ssl != NULL ? BIO_new(bio_method) : NULL;
    if (b == NULL) {
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b);
    SSL_set_app_data(t->ssl, t);
    t->hs_start = c->loop->now_ms;
    tl->chunks[ci][c->slot & (WEFT__CHUNK_SIZE - 1u)] = t;
    return t;
}

void weft__tls_conn_free(weft_conn *c)
{
    weft__tls_conn *t = weft__tls_of(c);
    if (t == NULL)
        return;
    c->loop->tls->chunks[c->slot >> WEFT__CHUNK_SHIFT][c->slot & (WEFT__CHUNK_SIZE - 1u)] = NULL;
    SSL_free(t->ssl);
    weft__tls_ctxset_put(t->set);
    weft__ktls_free(t->k);
    free(t->pend);
    free(t);
}

void weft__tls_loop_free(weft__loop *loop)
{
    weft__tls_loop *tl = loop->tls;
    if (tl == NULL)
        return;
    for (uint32_t i = 0; i < WEFT__CHUNK_MAX; i++) {
        if (tl->chunks[i] == NULL)
            continue;
        for (uint32_t k = 0; k < WEFT__CHUNK_SIZE; k++) {
            weft__tls_conn *t = tl->chunks[i][k];
            if (t != NULL) {
                SSL_free(t->ssl);
                weft__tls_ctxset_put(t->set);
                weft__ktls_free(t->k);
                free(t->pend);
                free(t);
            }
        }
        free(tl->chunks[i]);
    }
    free(tl->pbuf);
    free(tl->seal);
    free(tl);
    loop->tls = NULL;
}

static bool gone(const weft_conn *c)
{
    return (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING)) != 0;
}

/* The TLS of c failed (OpenSSL's error queue says why): the alert OpenSSL wrote goes out,
 * then c closes with WEFT_ETLS. */
static void fail(weft_conn *c, weft__tls_conn *t, const char *fallback)
{
    t->err = t->why != NULL ? t->why : weft__tls_ssl_reason(fallback);
    ERR_clear_error();
    t->failed = true;
    weft__log_peer(c->loop, WEFT_LOG_INFO, "conn %u/%u: TLS: %s; closing", c->loop->index, c->slot,
                   t->err);
    weft__conn_close_graceful(c, WEFT_ETLS);
}

/* ---- writing ---- */

static void enlist(weft_conn *c, weft__tls_conn *t)
{
    if (t->listed)
        return;
    weft__tls_loop *tl = c->loop->tls;
    if (tl->nseal == tl->seal_cap) {
        uint32_t cap = tl->seal_cap == 0 ? 64u : tl->seal_cap * 2u;
        struct weft__tls_seal *n = realloc(tl->seal, cap * sizeof(*n));
        if (n == NULL)
            return; /* sealed by the next write, or by the close */
        tl->seal = n;
        tl->seal_cap = cap;
    }
    tl->seal[tl->nseal++] =
        (struct weft__tls_seal){c, atomic_load_explicit(&c->gen, memory_order_relaxed)};
    t->listed = true;
}

/* ---- kernel TLS: the switch ---- */

/* Every byte OpenSSL sealed for c has left weft: none queued, staged or in flight. */
static bool drained(const weft_conn *c)
{
    return weft__conn_pending(c) == 0 && !(c->flags & (CONN_SENDING | CONN_STAGED));
}

/* c asked for ktls and may switch: it does once its output drained. */
static void ktls_try(weft_conn *c, weft__tls_conn *t)
{
    if (t->ktls || t->k == NULL || !t->established || t->failed || t->shutdown_sent ||
        (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING)) || !drained(c))
        return;
    if (weft__ktls_switch(c, t->k) == 0) {
        t->ktls = true;
        return;
    }
    weft__ktls_free(t->k);
    t->k = NULL;
}

void weft__tls_drained(weft_conn *c)
{
    weft__tls_conn *t = weft__tls_of(c);
    if (t == NULL || t->k == NULL || (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING)))
        return;
    if (!t->ktls) {
        ktls_try(c, t);
    } else if (t->ktls_notify && drained(c)) {
        t->ktls_notify = false;
        weft__ktls_close_notify(c, t->k);
    }
}

static int ssl_write(weft_conn *c, weft__tls_conn *t, const void *p, size_t n)
{
    size_t w;
    if (t->ktls) {
        struct iovec iov = {(void *)p, n};
        return weft__ktls_send(c, t->k, &iov, 1);
    }
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, p, n, &w) == 1) {
        if (t->k != NULL)
            ktls_try(c, t); /* what was before may be gone already */
        return 0;
    }
    if (gone(c))
        return c->close_err < 0 ? c->close_err : WEFT_ECLOSED;
    fail(c, t, "write failed");
    return WEFT_ETLS;
}

/* What was gathered becomes one record (its memory goes back: an idle connection keeps
 * none). */
static int seal(weft_conn *c, weft__tls_conn *t)
{
    if (t->pend_len == 0)
        return 0;
    int rc = ssl_write(c, t, t->pend, t->pend_len);
    free(t->pend);
    t->pend = NULL;
    t->pend_len = t->pend_cap = 0;
    return rc;
}

static int gather(weft__tls_conn *t, const uint8_t *p, size_t n)
{
    if (n > UINT32_MAX - t->pend_len)
        return WEFT_EOUTCAP;
    if (t->pend_len + n > t->pend_cap) {
        size_t cap = t->pend_cap == 0 ? 1024u : t->pend_cap;
        while (cap < t->pend_len + n)
            cap *= 2u;
        if (cap > UINT32_MAX)
            cap = UINT32_MAX;
        uint8_t *np = realloc(t->pend, cap);
        if (np == NULL)
            return WEFT_ENOMEM;
        t->pend = np;
        t->pend_cap = (uint32_t)cap;
    }
    memcpy(t->pend + t->pend_len, p, n);
    t->pend_len += (uint32_t)n;
    return 0;
}

int weft__tls_send(weft_conn *c, const struct iovec *iov, int iovcnt)
{
    weft__tls_conn *t = weft__tls_of(c);
    if (t->failed)
        return WEFT_ECLOSED;
    if (t->ktls) {
        /* The kernel makes the records: plaintext joins the output as it is, behind what
         * was gathered before the switch. */
        int rc = seal(c, t);
        return rc != 0 ? rc : weft__ktls_send(c, t->k, iov, iovcnt);
    }
    size_t cap = c->loop->engine->cfg.write_hard_cap;
    int rc = 0;
    for (int i = 0; i < iovcnt && rc == 0; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t n = iov[i].iov_len;
        if (!t->established) {
            /* Before on_open (an early write): kept until the handshake is done. */
            if (t->pend_len + n > cap) {
                weft__conn_close_now(c, WEFT_EOUTCAP);
                return WEFT_EOUTCAP;
            }
            rc = gather(t, p, n);
            continue;
        }
        while (n > 0 && rc == 0) {
            if (t->pend_len == 0 && n >= RECORD_MAX) {
                /* Whole records straight from the caller's bytes. */
                size_t whole = n - n % RECORD_MAX;
                rc = ssl_write(c, t, p, whole);
                p += whole;
                n -= whole;
                continue;
            }
            size_t take = RECORD_MAX - t->pend_len;
            if (take > n)
                take = n;
            rc = gather(t, p, take);
            p += take;
            n -= take;
            if (rc == 0 && t->pend_len == RECORD_MAX)
                rc = seal(c, t);
        }
    }
    if (rc == 0 && t->pend_len > 0) {
        if (t->established && c->loop->depth == 0)
            rc = seal(c, t); /* outside a callback nothing else will */
        else
            enlist(c, t);
    }
    if (rc != 0 && !gone(c))
        weft__conn_close_now(c, rc);
    return rc;
}

bool weft__tls_seal_pending(weft__loop *loop)
{
    weft__tls_loop *tl = loop->tls;
    if (tl->nseal == 0)
        return false;
    while (tl->nseal > 0) {
        struct weft__tls_seal s = tl->seal[--tl->nseal];
        weft_conn *c = s.c;
        if (gone(c) || atomic_load_explicit(&c->gen, memory_order_relaxed) != s.gen)
            continue;
        weft__tls_conn *t = weft__tls_of(c);
        if (t == NULL || !t->listed)
            continue;
        t->listed = false;
        if (t->established && !t->failed)
            (void)seal(c, t);
    }
    return true;
}

void weft__tls_close_notify(weft_conn *c)
{
    weft__tls_conn *t = weft__tls_of(c);
    if (t == NULL || !t->established || t->failed || t->shutdown_sent)
        return;
    if (seal(c, t) != 0)
        return;
    t->shutdown_sent = true;
    if (t->ktls) {
        /* The kernel's record, written directly behind the output: now, or once it drained
         * (weft__tls_drained runs before the close goes on). */
        if (drained(c))
            weft__ktls_close_notify(c, t->k);
        else
            t->ktls_notify = true;
        return;
    }
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl); /* close_notify, through the BIO into c's output */
    ERR_clear_error();
}

/* ---- reading ---- */

static void established(weft_conn *c, weft__tls_conn *t)
{
    t->established = true;
    const unsigned char *p;
    unsigned n;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (n > 0 && n < sizeof(t->alpn)) {
        memcpy(t->alpn, p, n);
        t->alpn[n] = '\0';
    }
    struct weft__tls_engine *te = c->loop->engine->tls;
    if (t->k != NULL &&
        !weft__ktls_start(c, t->k, t->ssl, &te->ktls_kernel, &te->ktls_said_suite)) {
        weft__ktls_free(t->k);
        t->k = NULL;
    }
    c->active_ms = c->loop->now_ms;
    weft__conn_announce(c); /* on_open, and the idle timeout from now on */
    if (t->pend_len > 0 && !gone(c))
        enlist(c, t);
    if (t->k != NULL && !gone(c))
        ktls_try(c, t); /* the handshake's last records may have left already */
}

static void handshake(weft_conn *c, weft__tls_conn *t)
{
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        established(c, t);
        return;
    }
    int err = SSL_get_error(t->ssl, r);
    if (err == SSL_ERROR_WANT_READ || gone(c))
        return;
    fail(c, t, "handshake failed");
}

/* Decrypts what was fed, a buffer at a time, and hands it on as plain input. */
static void read_plain(weft_conn *c, weft__tls_conn *t, bool hold)
{
    weft__tls_loop *tl = c->loop->tls;
    for (;;) {
        size_t len = 0;
        int err = SSL_ERROR_NONE;
        ERR_clear_error();
        while (len < tl->pbuf_size) {
            size_t got;
            int r = SSL_read_ex(t->ssl, tl->pbuf + len, tl->pbuf_size - len, &got);
            if (r != 1) {
                err = SSL_get_error(t->ssl, r);
                break;
            }
            len += got;
        }
        if (t->ktls && err != SSL_ERROR_ZERO_RETURN &&
            SSL_get_key_update_type(t->ssl) != SSL_KEY_UPDATE_NONE) {
            /* The peer asked for our key to change: the kernel has the old one. */
            t->why = "the peer asked for a KeyUpdate, which kernel TLS sends cannot answer";
            fail(c, t, t->why);
            return;
        }
        if (len > 0 && hold) {
            /* A completion backend's bytes for a connection that paused: kept, as plain
             * ones are, for when reading resumes. */
            int rc = weft__ring_append(&c->in, c->loop->bufpool, tl->pbuf, len,
                                       c->loop->engine->cfg.max_inbound);
            if (rc != 0) {
                weft__conn_close_now(c, rc == WEFT_EOUTCAP ? WEFT_EINCAP : rc);
                return;
            }
        } else if (len > 0) {
            c->active_ms = c->loop->now_ms;
            weft__conn_deliver(c, tl->pbuf, len);
        }
        if (c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING | CONN_DECODE_FAILED))
            return; /* nobody reads the rest */
        if (err == SSL_ERROR_NONE)
            continue; /* the buffer filled: more waits */
        if (err == SSL_ERROR_WANT_READ)
            return;
        if (err == SSL_ERROR_ZERO_RETURN) { /* close_notify: an orderly end */
            ERR_clear_error();
            weft__conn_peer_ended(c);
            return;
        }
        fail(c, t, "bad record");
        return;
    }
}

bool weft__tls_recv(weft_conn *c, const uint8_t *data, ssize_t n)
{
    weft__tls_conn *t = weft__tls_of(c);
    if (t == NULL)
        return false;
    weft__loop *loop = c->loop;
    /* A completion backend may deliver what it had under way after c stopped wanting input:
     * an end of input is met again once reading resumes, and bytes for a closing connection
     * are dropped, as for plain ones; bytes for a paused one are decrypted and kept. */
    bool wants = (c->flags & (CONN_READING | CONN_PAUSED | CONN_CLOSING)) == CONN_READING;
    if (n >= 0 && !wants && (n == 0 || (c->flags & CONN_CLOSING)))
        return true;
    weft__loop_enter(loop);
    if (n < 0) {
        weft__conn_close_now(c, (int)n);
    } else if (n == 0) {
        /* A FIN without close_notify: whatever it cut off, the peer did not say it was done. */
        c->flags |= CONN_PEER_EOF;
        if (!t->failed)
            t->err = t->established ? "unexpected eof while reading"
                                    : "peer closed the connection during the handshake";
        weft__conn_close_now(c, WEFT_ETLS);
    } else {
        WEFT__STAT_ADD(loop->stats.bytes_in, n);
        t->in = data;
        t->in_len = (size_t)n;
        if (!t->established && !t->failed)
            handshake(c, t);
        /* Bytes behind the handshake (a client's first request) are read, unless on_open
         * closed the connection: then nobody reads them, as with a plain close. */
        if (t->established && !t->failed &&
            !(c->flags & (CONN_CLOSED | CONN_CLOSE_PENDING | CONN_CLOSING)))
            read_plain(c, t, !wants);
        t->in = NULL;
        t->in_len = 0;
    }
    weft__loop_leave(loop);
    return true;
}

bool weft__tls_deadline(const weft_conn *c, uint32_t *when, int *why)
{
    const weft__tls_conn *t = weft__tls_of(c);
    unsigned ms = c->loop->engine->cfg.tls_handshake_timeout_ms;
    if (t == NULL || t->established || t->connecting || ms == 0)
        return false;
    *when = t->hs_start + ms;
    *why = WEFT_ETIMEDOUT;
    return true;
}

/* ---- starting ---- */

void weft__tls_accept(weft_conn *c, struct weft__tls_server *srv)
{
    weft_engine *e = c->loop->engine;
    if (e->balancer != NULL) /* counted from now, as every accepted connection */
        weft_balancer_on_open(e->balancer, c->loop->index);
    pthread_mutex_lock(&srv->mu);
    ctxset *s = srv->cur;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&srv->mu);
    weft__tls_conn *t = conn_new(c, s->def);
    if (t == NULL) {
        weft__tls_ctxset_put(s);
        weft__conn_close_now(c, WEFT_ENOMEM);
        return;
    }
    t->set = s;
    if (s->ktls && (t->k = weft__ktls_new(true)) == NULL) {
        weft__conn_close_now(c, WEFT_ENOMEM);
        return;
    }
    SSL_set_accept_state(t->ssl);
    weft__conn_update_interest(c);
    weft__wheel_schedule(c); /* by the handshake deadline */
}

void weft__tls_dial_adopt(weft_conn *c, void *token)
{
    char *name = token;
    weft__tls_conn *t = conn_new(c, c->loop->engine->tls->client);
    if (t == NULL) {
        free(name);
        weft__conn_close_now(c, WEFT_ENOMEM);
        return;
    }
    t->connecting = true;
    if (c->loop->engine->tls->ccfg.ktls && (t->k = weft__ktls_new(false)) == NULL) {
        free(name);
        weft__conn_close_now(c, WEFT_ENOMEM);
        return;
    }
    SSL_set_connect_state(t->ssl);
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    if (is_ip) {
        (void)X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name);
    } else if (name[0] != '\0') {
        (void)SSL_set_tlsext_host_name(t->ssl, name);
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        (void)SSL_set1_host(t->ssl, name);
    }
    ERR_clear_error();
    free(name);
}

void weft__tls_dial_connected(weft_conn *c)
{
    weft__tls_conn *t = weft__tls_of(c);
    weft_engine *e = c->loop->engine;
    if (e->balancer != NULL)
        weft_balancer_on_open(e->balancer, c->loop->index);
    t->connecting = false;
    t->hs_start = c->loop->now_ms;
    weft__conn_update_interest(c);
    weft__wheel_schedule(c);
    weft__loop_enter(c->loop);
    handshake(c, t); /* the ClientHello */
    weft__loop_leave(c->loop);
}

/* ---- public connection API (owning loop's thread) ---- */

bool weft_conn_is_tls(const weft_conn *c)
{
    return weft__tls_of(c) != NULL;
}

const char *weft_conn_tls_alpn(const weft_conn *c)
{
    const weft__tls_conn *t = weft__tls_of(c);
    return t != NULL && t->alpn[0] != '\0' ? t->alpn : NULL;
}

const char *weft_conn_tls_server_name(const weft_conn *c)
{
    const weft__tls_conn *t = weft__tls_of(c);
    return t != NULL ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

bool weft_conn_tls_ktls(const weft_conn *c)
{
    const weft__tls_conn *t = weft__tls_of(c);
    return t != NULL && t->ktls;
}

const char *weft_conn_tls_error(const weft_conn *c)
{
    const weft__tls_conn *t = weft__tls_of(c);
    return t != NULL ? t->err : NULL;
}
