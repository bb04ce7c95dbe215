/* weft — what tls.c and tls_ctx.c share: an engine's certificate sets and client context.
 * Private to those two files (and the TLS fuzz target, which compiles tls.c).
 */
#ifndef WEFT_TLS_CTX_H
#define WEFT_TLS_CTX_H

#include <openssl/ssl.h>

#include "tls.h"

/* A certificate set: the default context and the SNI ones, by reference. */
typedef struct ctxset {
    _Atomic unsigned refs;
    SSL_CTX *def;
    unsigned char *alpn; /* wire format: length-prefixed names */
    size_t alpn_len;
    bool ktls; /* its handshakes ask for kernel TLS once done */
    size_t nsni;
    struct {
        char *name;
        SSL_CTX *ctx;
    } sni[];
} ctxset;

struct weft__tls_server {
    pthread_mutex_t mu;
    ctxset *cur;
};

struct weft__tls_engine {
    struct weft__tls_server server; /* cur is NULL until a tls:// listener made it */
    pthread_mutex_t client_mu;
    SSL_CTX *client; /* made by the first tls dial */
    weft_tls_config ccfg;
    char *strs[8];                /* ccfg's strings, copied at start */
    _Atomic int ktls_kernel;      /* what the kernel said of its tls module (tls_ktls.c) */
    _Atomic bool ktls_said_suite; /* a suite kernel TLS does not take was said */
};

/* Drops a reference to s; the last frees it. NULL is fine. */
void weft__tls_ctxset_put(ctxset *s);
/* OpenSSL's reason for the earliest error queued on this thread (or fallback), and the
 * queue cleared. */
const char *weft__tls_ssl_reason(const char *fallback);
/* OpenSSL's keylog line (tls.c): a connection that asked for ktls takes its send key. */
void weft__tls_keylog(const SSL *ssl, const char *line);

#endif /* WEFT_TLS_CTX_H */
