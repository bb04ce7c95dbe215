/* weft — the TLS layer's side of the core: what the loop, connection and wheel files call.
 *
 * TLS sits between the backend seam and the codec, and never touches a socket. Ciphertext
 * that weft__conn_recv_done receives is fed to OpenSSL through a BIO over that span, and the
 * plaintext it yields goes the way plain bytes go (weft__conn_deliver: on_traffic, codecs,
 * the inbound ring). Plaintext written to a TLS connection is gathered per connection into
 * records of up to 16 KiB, sealed before the loop sleeps (or at once outside a callback), and
 * the records join the connection's output through weft__conn_send_raw: the staging area,
 * the output queue, backpressure and the hard cap, on a readiness or a completion backend
 * alike. A connection's TLS state lives in a table of its loop by slot (weft__tls_loop), made
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
/* c's handshake is done and its settings ask for ktls: true if the kernel took over c's
 * record layer. The first call for an engine (*probed false) asks the kernel and says at
 * INFO why it stays in userland; later ones do not touch the socket. */
bool weft__tls_ktls_start(weft_conn *c, _Atomic bool *probed);

#endif /* WEFT_TLS_PRIV_H */
