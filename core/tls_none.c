/* weft — TLS in a build without it (WEFT_WITH_TLS=OFF): a tls:// URL fails at start (or at
 * the dial) with a clear error, and no connection is ever a TLS one, so the loop side below
 * is never reached. */
#include <string.h>

#include "tls.h"

void weft_tls_config_init(weft_tls_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->min_version = WEFT_TLS_1_2;
    cfg->session_tickets = true;
}

int weft__tls_engine_init(weft_engine *e, const weft_config *cfg)
{
    (void)e;
    (void)cfg;
    return 0;
}

void weft__tls_engine_free(weft_engine *e)
{
    (void)e;
}

int weft__tls_listener_init(weft_engine *e, weft__listener *l)
{
    (void)l;
    weft__log(e, WEFT_LOG_ERROR,
              "tls: this weft was built without TLS (WEFT_WITH_TLS=OFF): "
              "tls:// cannot be served");
    return WEFT_ENOSYS;
}

int weft__tls_dial_prepare(weft_engine *e, const char *url, void **token)
{
    *token = NULL;
    weft__log(e, WEFT_LOG_ERROR,
              "tls: this weft was built without TLS (WEFT_WITH_TLS=OFF): "
              "cannot dial %s",
              url);
    return WEFT_ENOSYS;
}

void weft__tls_dial_token_free(void *token, void *unused)
{
    (void)token;
    (void)unused;
}

void weft__tls_accept(weft_conn *c, struct weft__tls_server *srv)
{
    (void)srv;
    weft__conn_close_now(c, WEFT_ENOSYS);
}

void weft__tls_dial_adopt(weft_conn *c, void *token)
{
    (void)token;
    weft__conn_close_now(c, WEFT_ENOSYS);
}

void weft__tls_dial_connected(weft_conn *c)
{
    weft__conn_close_now(c, WEFT_ENOSYS);
}

bool weft__tls_recv(weft_conn *c, const uint8_t *data, ssize_t n)
{
    (void)c;
    (void)data;
    (void)n;
    return false;
}

int weft__tls_send(weft_conn *c, const struct iovec *iov, int iovcnt)
{
    return weft__conn_send_raw(c, iov, iovcnt);
}

void weft__tls_close_notify(weft_conn *c)
{
    (void)c;
}

void weft__tls_drained(weft_conn *c)
{
    (void)c;
}

bool weft__tls_seal_pending(weft__loop *loop)
{
    (void)loop;
    return false;
}

bool weft__tls_deadline(const weft_conn *c, uint32_t *when, int *why)
{
    (void)c;
    (void)when;
    (void)why;
    return false;
}

void weft__tls_conn_free(weft_conn *c)
{
    (void)c;
}

void weft__tls_loop_free(weft__loop *loop)
{
    (void)loop;
}

int weft_engine_tls_reload(weft_engine *e, const weft_tls_config *tls)
{
    (void)e;
    (void)tls;
    return WEFT_ENOSYS;
}

bool weft_conn_is_tls(const weft_conn *c)
{
    (void)c;
    return false;
}

const char *weft_conn_tls_alpn(const weft_conn *c)
{
    (void)c;
    return NULL;
}

const char *weft_conn_tls_server_name(const weft_conn *c)
{
    (void)c;
    return NULL;
}

const char *weft_conn_tls_error(const weft_conn *c)
{
    (void)c;
    return NULL;
}

bool weft_conn_tls_ktls(const weft_conn *c)
{
    (void)c;
    return false;
}
