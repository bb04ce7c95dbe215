/* weft — kernel TLS where there is none (Windows): tls_ktls.c's seam, answering "no".
 *
 * Kernel TLS is Linux's (the "tls" upper-layer protocol). Here a connection that asks for it
 * (weft_tls_config.ktls) is told no at the end of its handshake, said once per engine at
 * INFO, and goes on in userland TLS as one that never asked; the rest of the seam is never
 * reached then, and does nothing.
 */
#include <stdlib.h>

#include "tls.h"

struct weft__ktls {
    bool server;
};

/* No kernel to replace: nothing sends through these. */
const weft__ktls_ops *weft__ktls_ops_current = NULL;

weft__ktls *weft__ktls_new(bool server)
{
    weft__ktls *k = calloc(1, sizeof(*k));
    if (k != NULL)
        k->server = server;
    return k;
}

void weft__ktls_free(weft__ktls *k)
{
    free(k);
}

void weft__ktls_keylog(weft__ktls *k, const struct ssl_st *ssl, const char *line)
{
    (void)k;
    (void)ssl;
    (void)line;
}

int weft__ktls_set_secret(weft__ktls *k, uint16_t suite, const uint8_t *secret, size_t len)
{
    (void)k;
    (void)suite;
    (void)secret;
    (void)len;
    return -1;
}

void weft__ktls_outbound(weft__ktls *k, const uint8_t *p, size_t n)
{
    (void)k;
    (void)p;
    (void)n;
}

uint64_t weft__ktls_seq(const weft__ktls *k)
{
    (void)k;
    return 0;
}

bool weft__ktls_usable(const weft__ktls *k)
{
    (void)k;
    return false;
}

bool weft__ktls_start(weft_conn *c, weft__ktls *k, const struct ssl_st *ssl, _Atomic int *kernel,
                      _Atomic bool *said_suite)
{
    (void)k;
    (void)ssl;
    (void)said_suite;
    if (atomic_exchange_explicit(kernel, 1, memory_order_relaxed) == 0)
        weft__log(c->loop->engine, WEFT_LOG_INFO,
                  "kernel TLS is Linux's: not on this system; using userland TLS");
    return false;
}

int weft__ktls_switch(weft_conn *c, weft__ktls *k)
{
    (void)c;
    (void)k;
    return -1;
}

int weft__ktls_send(weft_conn *c, weft__ktls *k, const struct iovec *iov, int iovcnt)
{
    (void)k;
    return weft__conn_send_raw(c, iov, iovcnt);
}

void weft__ktls_close_notify(weft_conn *c, weft__ktls *k)
{
    (void)c;
    (void)k;
}
