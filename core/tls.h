/* weft — the TLS layer's side of the core: what the loop, connection and wheel files call.
 *
 * TLS sits between the backend seam and the codec, and never touches a socket. Ciphertext
 * that weft__conn_recv_done receives is fed to OpenSSL through a BIO over that span, and the
 * plaintext it yields goes the way plain bytes go (weft__conn_deliver: on_traffic, codecs,
 * the inbound ring). Plaintext written to a TLS connection is gathered per connection into
 * records of up to 16 KiB, sealed before the loop sleeps (or at once outside a callback), and
 * the records join the connection's output through weft__conn_send_raw: the staging area,
 * the output queue, backpressure and the hard cap, on a readiness or a completion backend
 * alike. With kernel TLS (tls_ktls.c), once a connection switched, its plaintext goes to
 * weft__conn_send_raw as it is and the kernel seals it; OpenSSL only reads.
 * A connection's TLS state lives in a table of its loop by slot (weft__tls_loop), made
 * by the loop's first TLS connection, so a plain connection costs nothing but the test of
 * loop->tls. Everything here runs on the owning loop's thread, but the engine functions.
 */
#ifndef WEFT_TLS_PRIV_H
#define WEFT_TLS_PRIV_H

#include "internal.h"

typedef struct weft__tls_conn weft__tls_conn;

/* A loop's TLS connections by slot, the plaintext buffer they decrypt into, and the
 * connections with gathered plaintext to seal before the loop sleeps. */
typedef struct weft__tls_loop {
    weft__tls_conn **chunks[WEFT__CHUNK_MAX];
    uint8_t *pbuf;
    size_t pbuf_size;
    struct weft__tls_seal {
        weft_conn *c;
        uint32_t gen;
    } * seal;
    uint32_t nseal, seal_cap;
} weft__tls_loop;

/* c's TLS state, or NULL for a plain connection (or a stand-in without a slot). */
static inline weft__tls_conn *weft__tls_of(const weft_conn *c)
{
    const weft__tls_loop *t = c->loop->tls;
    if (t == NULL || (c->slot >> WEFT__CHUNK_SHIFT) >= WEFT__CHUNK_MAX)
        return NULL;
    weft__tls_conn **chunk = t->chunks[c->slot >> WEFT__CHUNK_SHIFT];
    return chunk != NULL ? chunk[c->slot & (WEFT__CHUNK_SIZE - 1u)] : NULL;
}

/* ---- pure helpers (tests/test_tls.c) ---- */
/* "h2,http/1.1" in ALPN's wire format (length-prefixed names; owned by the caller), or NULL
 * with *len 0 for NULL or "". 0, WEFT_EINVAL (an empty or over-255-byte name), WEFT_ENOMEM. */
int weft__tls_alpn_wire(const char *list, unsigned char **out, size_t *len);
/* The host of "tls://host:port" or "tls://[v6]:port" (owned by the caller), or NULL (a Unix
 * URL, or malformed). */
char *weft__tls_url_host(const char *url);

/* ---- control side ---- */
/* At start: the engine's TLS part (a copy of cfg->tls_client for the dials). 0 or
 * WEFT_ENOMEM. */
int weft__tls_engine_init(weft_engine *e, const weft_config *cfg);
void weft__tls_engine_free(weft_engine *e);
/* l was opened for a tls:// URL: it serves the engine's certificates (built from cfg.tls by
 * the first such listener). 0, or WEFT_ETLS / WEFT_ENOSYS with the reason logged. */
int weft__tls_listener_init(weft_engine *e, weft__listener *l);
/* A dial of a tls:// or tls+unix:// URL: the name to verify, as a token for the loop (freed
 * by weft__tls_dial_adopt or by free_token). 0, WEFT_ETLS, WEFT_ENOSYS or WEFT_ENOMEM. */
int weft__tls_dial_prepare(weft_engine *e, const char *url, void **token);
void weft__tls_dial_token_free(void *token, void *unused);

/* ---- loop side ---- */
/* c was accepted on a TLS listener: its server handshake starts (on_open once it is done). */
void weft__tls_accept(weft_conn *c, struct weft__tls_server *srv);
/* c is a dial of a TLS URL, connecting; token is weft__tls_dial_prepare's (ownership passes). */
void weft__tls_dial_adopt(weft_conn *c, void *token);
/* The dial c connected: its client handshake starts. */
void weft__tls_dial_connected(weft_conn *c);
/* The backend delivered n (weft__conn_recv_done's n) for c: true if c is TLS and it was
 * handled here. */
bool weft__tls_recv(weft_conn *c, const uint8_t *data, ssize_t n);
/* Plaintext for TLS connection c (open, not closing). weft__conn_send's answers. */
int weft__tls_send(weft_conn *c, const struct iovec *iov, int iovcnt);
/* A graceful close begins: what was gathered is sealed, then close_notify queued. */
void weft__tls_close_notify(weft_conn *c);
/* Seals what the iteration gathered; true if any connection was waiting for it. */
bool weft__tls_seal_pending(weft__loop *loop);
/* c's handshake deadline (WEFT_ETIMEDOUT), if it is a TLS connection in its handshake. */
bool weft__tls_deadline(const weft_conn *c, uint32_t *when, int *why);
/* c finished (after on_close): its TLS state goes. */
void weft__tls_conn_free(weft_conn *c);
void weft__tls_loop_free(weft__loop *loop);

/* ---- kernel TLS (tls_ktls.c) ---- */
/* c's output drained (conn_write.c: its queue and staging empty, no send in flight): a
 * connection waiting to hand its send key to the kernel does it now. */
void weft__tls_drained(weft_conn *c);

/* The kernel's part of kernel TLS: the one seam tests replace (with a userland record layer
 * that does what the kernel would with the same crypto_info). Every call is on c's loop. */
typedef struct weft__ktls_ops {
    /* setsockopt(TCP_ULP, "tls"): 0 or a negated errno. */
    int (*ulp)(weft_conn *c);
    /* setsockopt(SOL_TLS, TLS_TX, info, len), info a struct tls12_crypto_info_*: 0 or a
     * negated errno; *state is handed to the calls below (the kernel's: NULL). */
    int (*tx)(weft_conn *c, const void *info, size_t len, void **state);
    /* Plaintext for c once TX is set: weft__conn_send_raw (the kernel seals it). */
    int (*send)(weft_conn *c, void *state, const struct iovec *iov, int iovcnt);
    /* One record of this type straight to the socket, nonblocking (sendmsg with a
     * TLS_SET_RECORD_TYPE cmsg), once the output drained: bytes taken or a negated errno. */
    ssize_t (*record)(weft_conn *c, void *state, uint8_t type, const void *p, size_t n);
    void (*release)(void *state); /* NULL: nothing to free */
} weft__ktls_ops;

/* The kernel's, unless a test set its own; a connection keeps those current when it began. */
extern const weft__ktls_ops *weft__ktls_ops_current;

/* A connection's way to the switch: its send key, and the records sealed under it. */
typedef struct weft__ktls weft__ktls;
struct ssl_st;

/* HKDF-Expand-Label(secret, label, "", out_len) of RFC 8446 7.1, md "SHA256" or "SHA384".
 * 0 or -1. */
int weft__tls13_expand_label(const char *md, const uint8_t *secret, size_t secret_len,
                             const char *label, uint8_t *out, size_t out_len);
/* NULL: no memory. server: the accepted side's secret is the one sent with. */
weft__ktls *weft__ktls_new(bool server);
/* Wipes and frees k (and the ops' state). */
void weft__ktls_free(weft__ktls *k);
/* OpenSSL's keylog line for ssl: the traffic secret of our side becomes the send key. */
void weft__ktls_keylog(weft__ktls *k, const struct ssl_st *ssl, const char *line);
/* The send key from the application traffic secret of TLS 1.3 suite (0x1301..0x1303);
 * -1 for another suite. The caller wipes secret. */
int weft__ktls_set_secret(weft__ktls *k, uint16_t suite, const uint8_t *secret, size_t len);
/* Bytes OpenSSL wrote (whole records or parts of them), before the switch: counted. */
void weft__ktls_outbound(weft__ktls *k, const uint8_t *p, size_t n);
/* Records sealed under the send key so far, and whether a switch could follow them (keyed,
 * the key still OpenSSL's, no record half written). */
uint64_t weft__ktls_seq(const weft__ktls *k);
bool weft__ktls_usable(const weft__ktls *k);
/* c's handshake is done and its settings ask for ktls: true if c can switch later (TCP,
 * TLS 1.3 with an offloaded suite, the ULP attached). Says at INFO once per engine why
 * not (*kernel: the engine's answer from the kernel; *said_suite: the suite was said). */
bool weft__ktls_start(weft_conn *c, weft__ktls *k, const struct ssl_st *ssl, _Atomic int *kernel,
                      _Atomic bool *said_suite);
/* The send key to the kernel, with the records counted; c's output must be drained. 0, or
 * not (logged; c goes on in userland TLS). k's key is wiped either way. */
int weft__ktls_switch(weft_conn *c, weft__ktls *k);
/* After the switch: plaintext for c, and the close_notify record. */
int weft__ktls_send(weft_conn *c, weft__ktls *k, const struct iovec *iov, int iovcnt);
void weft__ktls_close_notify(weft_conn *c, weft__ktls *k);

#endif /* WEFT_TLS_PRIV_H */
