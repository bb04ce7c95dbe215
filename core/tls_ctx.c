/* weft — TLS through OpenSSL 3: certificate sets, the engine's TLS part, the dials' context.
 *
 * Certificates: every tls:// listener of an engine serves one set (the default certificate
 * and the SNI ones), shared by reference: a handshake takes a reference to the set current
 * when it starts, and weft_engine_tls_reload swaps in a new set under a lock, so connections
 * already open keep theirs and new handshakes get the new one. tls.c runs the connections.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tls_ctx.h"

void weft__tls_ctxset_put(ctxset *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    SSL_CTX_free(s->def);
    for (size_t i = 0; i < s->nsni; i++) {
        SSL_CTX_free(s->sni[i].ctx);
        free(s->sni[i].name);
    }
    free(s->alpn);
    free(s);
}

/* "h2,http/1.1" in ALPN's wire format (owned by the caller), or NULL with *len 0. */
int weft__tls_alpn_wire(const char *list, unsigned char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (list == NULL || *list == '\0')
        return 0;
    size_t n = strlen(list);
    unsigned char *w = malloc(n + 1);
    if (w == NULL)
        return WEFT_ENOMEM;
    size_t o = 0;
    const char *p = list;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t l = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (l == 0 || l > 255) {
            free(w);
            return WEFT_EINVAL;
        }
        w[o++] = (unsigned char)l;
        memcpy(w + o, p, l);
        o += l;
        p += l;
        if (*p == ',')
            p++;
    }
    *out = w;
    *len = o;
    return 0;
}

/* OpenSSL's reason for the earliest error queued on this thread, and the queue cleared. */
const char *weft__tls_ssl_reason(const char *fallback)
{
    unsigned long e = ERR_peek_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r != NULL ? r : fallback;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    const ctxset *s = arg;
    /* The server's order: the first of ours the client offers. */
    for (size_t i = 0; i < s->alpn_len; i += 1u + s->alpn[i]) {
        for (unsigned j = 0; j < inlen; j += 1u + in[j]) {
            if (in[j] == s->alpn[i] && j + 1u + in[j] <= inlen &&
                memcmp(in + j + 1, s->alpn + i + 1, in[j]) == 0) {
                *out = in + j + 1;
                *outlen = in[j];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int sni_select(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const ctxset *s = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < s->nsni; i++) {
        if (strcasecmp(name, s->sni[i].name) == 0) {
            SSL_set_SSL_CTX(ssl, s->sni[i].ctx);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* An SSL_CTX for cfg's role; cert and key may differ from cfg's (an SNI name's). NULL with
 * the reason logged. */
static SSL_CTX *ctx_new(weft_engine *e, const weft_tls_config *cfg, bool server, const char *cert,
                        const char *key)
{
    const char *what = "context";
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL)
        goto fail;
    int min = cfg->min_version >= WEFT_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    what = "minimum version";
    if (!SSL_CTX_set_min_proto_version(ctx, min))
        goto fail;
    uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
    if (!cfg->session_tickets)
        opts |= SSL_OP_NO_TICKET;
    SSL_CTX_set_options(ctx, opts);
    /* One ticket per full handshake, not OpenSSL's two: a client resumes with it, and a
     * resumed session gets a fresh one. Each ticket is an encryption and a record more for
     * every handshake (churn of full handshakes, benchmarks/echo.sh --tls: 0.80 ms instead of
     * 0.95 ms of server CPU each). Without tickets, none: SSL_OP_NO_TICKET alone still has a
     * TLS 1.3 server send two, for resumption from its own session cache. */
    if (server)
        SSL_CTX_set_num_tickets(ctx, cfg->session_tickets ? 1 : 0);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (cfg->ktls)
        SSL_CTX_set_keylog_callback(ctx, weft__tls_keylog); /* the send key for the kernel */
    what = "ciphers";
    if (cfg->ciphers != NULL && !SSL_CTX_set_cipher_list(ctx, cfg->ciphers))
        goto fail;
    what = "ciphersuites";
    if (cfg->ciphersuites != NULL && !SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites))
        goto fail;
    if (server && (cert == NULL || key == NULL)) {
        weft__log(e, WEFT_LOG_ERROR, "tls: a tls:// listener needs tls.cert_file and tls.key_file");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (cert != NULL) {
        what = cert;
        if (!SSL_CTX_use_certificate_chain_file(ctx, cert))
            goto fail;
        what = key != NULL ? key : cert;
        if (!SSL_CTX_use_PrivateKey_file(ctx, key != NULL ? key : cert, SSL_FILETYPE_PEM) ||
            !SSL_CTX_check_private_key(ctx))
            goto fail;
    }
    what = "CA";
    if (cfg->ca_file != NULL || cfg->ca_dir != NULL) {
        if (!SSL_CTX_load_verify_locations(ctx, cfg->ca_file, cfg->ca_dir))
            goto fail;
    } else if (!server && !SSL_CTX_set_default_verify_paths(ctx)) {
        goto fail;
    }
    weft_tls_verify v = cfg->verify_peer;
    if (server) {
        if (v == WEFT_TLS_VERIFY_OPTIONAL || v == WEFT_TLS_VERIFY_REQUIRED) {
            int mode = SSL_VERIFY_PEER;
            if (v == WEFT_TLS_VERIFY_REQUIRED)
                mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
            SSL_CTX_set_verify(ctx, mode, NULL);
            if (cfg->ca_file != NULL) {
                STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
                if (names != NULL)
                    SSL_CTX_set_client_CA_list(ctx, names);
            }
        }
        static const unsigned char sid[] = "weft";
        SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    } else {
        SSL_CTX_set_verify(ctx, v == WEFT_TLS_VERIFY_NONE ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                           NULL);
    }
    ERR_clear_error();
    return ctx;
fail:
    weft__log(e, WEFT_LOG_ERROR, "tls: %s: %s", what, weft__tls_ssl_reason("cannot be loaded"));
    SSL_CTX_free(ctx);
    return NULL;
}

/* The listeners' certificate set from cfg. 0 or WEFT_ETLS / WEFT_ENOMEM (logged). */
static int ctxset_build(weft_engine *e, const weft_tls_config *cfg, ctxset **out)
{
    *out = NULL;
    if (cfg->nsni > 0 && cfg->sni == NULL)
        return WEFT_EINVAL;
    ctxset *s = calloc(1, sizeof(*s) + cfg->nsni * sizeof(s->sni[0]));
    if (s == NULL)
        return WEFT_ENOMEM;
    atomic_init(&s->refs, 1u);
    s->ktls = cfg->ktls;
    int rc = weft__tls_alpn_wire(cfg->alpn, &s->alpn, &s->alpn_len);
    if (rc != 0) {
        weft__log(e, WEFT_LOG_ERROR, "tls: alpn list '%s' is malformed", cfg->alpn);
        weft__tls_ctxset_put(s);
        return rc;
    }
    s->def = ctx_new(e, cfg, true, cfg->cert_file, cfg->key_file);
    if (s->def == NULL) {
        weft__tls_ctxset_put(s);
        return WEFT_ETLS;
    }
    for (size_t i = 0; i < cfg->nsni; i++) {
        const weft_tls_sni *n = &cfg->sni[i];
        if (n->server_name == NULL) {
            weft__tls_ctxset_put(s);
            return WEFT_EINVAL;
        }
        s->sni[i].ctx = ctx_new(e, cfg, true, n->cert_file, n->key_file);
        s->sni[i].name = strdup(n->server_name);
        s->nsni = i + 1;
        if (s->sni[i].ctx == NULL || s->sni[i].name == NULL) {
            weft__tls_ctxset_put(s);
            return s->sni[i].ctx == NULL ? WEFT_ETLS : WEFT_ENOMEM;
        }
    }
    /* Every context of the set answers for ALPN the same way; SNI is asked of the first. */
    SSL_CTX_set_tlsext_servername_callback(s->def, sni_select);
    SSL_CTX_set_tlsext_servername_arg(s->def, s);
    if (s->alpn != NULL) {
        SSL_CTX_set_alpn_select_cb(s->def, alpn_select, s);
        for (size_t i = 0; i < s->nsni; i++)
            SSL_CTX_set_alpn_select_cb(s->sni[i].ctx, alpn_select, s);
    }
    *out = s;
    return 0;
}

/* ---- the engine's side ---- */

void weft_tls_config_init(weft_tls_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->verify_peer = WEFT_TLS_VERIFY_DEFAULT;
    cfg->min_version = WEFT_TLS_1_2;
    cfg->session_tickets = true;
}

int weft__tls_engine_init(weft_engine *e, const weft_config *cfg)
{
    struct weft__tls_engine *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return WEFT_ENOMEM;
    pthread_mutex_init(&t->server.mu, NULL);
    pthread_mutex_init(&t->client_mu, NULL);
    e->tls = t;
    /* The dials' settings outlive the start that borrowed them: copied. */
    t->ccfg = cfg->tls_client;
    t->ccfg.sni = NULL;
    t->ccfg.nsni = 0;
    const char **fields[] = {&t->ccfg.cert_file, &t->ccfg.key_file,   &t->ccfg.ca_file,
                             &t->ccfg.ca_dir,    &t->ccfg.ciphers,    &t->ccfg.ciphersuites,
                             &t->ccfg.alpn,      &t->ccfg.server_name};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (*fields[i] == NULL)
            continue;
        t->strs[i] = strdup(*fields[i]);
        if (t->strs[i] == NULL)
            return WEFT_ENOMEM;
        *fields[i] = t->strs[i];
    }
    return 0;
}

void weft__tls_engine_free(weft_engine *e)
{
    struct weft__tls_engine *t = e->tls;
    if (t == NULL)
        return;
    weft__tls_ctxset_put(t->server.cur);
    SSL_CTX_free(t->client);
    for (size_t i = 0; i < sizeof(t->strs) / sizeof(t->strs[0]); i++)
        free(t->strs[i]);
    pthread_mutex_destroy(&t->server.mu);
    pthread_mutex_destroy(&t->client_mu);
    free(t);
    e->tls = NULL;
}

int weft__tls_listener_init(weft_engine *e, weft__listener *l)
{
    struct weft__tls_engine *t = e->tls;
    if (t->server.cur == NULL) {
        int rc = ctxset_build(e, &e->cfg.tls, &t->server.cur);
        if (rc != 0)
            return rc;
    }
    l->tls = &t->server;
    return 0;
}

int weft_engine_tls_reload(weft_engine *e, const weft_tls_config *tls)
{
    if (e == NULL || tls == NULL || e->tls == NULL || e->tls->server.cur == NULL)
        return WEFT_EINVAL;
    ctxset *s;
    int rc = ctxset_build(e, tls, &s);
    if (rc != 0)
        return rc;
    struct weft__tls_server *srv = &e->tls->server;
    pthread_mutex_lock(&srv->mu);
    ctxset *old = srv->cur;
    srv->cur = s;
    pthread_mutex_unlock(&srv->mu);
    weft__tls_ctxset_put(old); /* handshakes that took it keep it until they finish */
    weft__log(e, WEFT_LOG_INFO, "tls: certificates reloaded");
    return 0;
}

char *weft__tls_url_host(const char *url)
{
    if (strncmp(url, "tls://", 6) != 0)
        return NULL;
    const char *h = url + 6, *end;
    if (*h == '[') {
        h++;
        end = strchr(h, ']');
    } else {
        end = strrchr(h, ':');
    }
    if (end == NULL || end == h)
        return NULL;
    size_t n = (size_t)(end - h);
    char *host = malloc(n + 1); /* strndup is not in every C library (mingw's) */
    if (host != NULL) {
        memcpy(host, h, n);
        host[n] = '\0';
    }
    return host;
}

int weft__tls_dial_prepare(weft_engine *e, const char *url, void **token)
{
    struct weft__tls_engine *t = e->tls;
    *token = NULL;
    pthread_mutex_lock(&t->client_mu);
    if (t->client == NULL) {
        t->client = ctx_new(e, &t->ccfg, false, t->ccfg.cert_file, t->ccfg.key_file);
        if (t->client != NULL && t->ccfg.alpn != NULL) {
            unsigned char *w;
            size_t wl;
            if (weft__tls_alpn_wire(t->ccfg.alpn, &w, &wl) != 0 ||
                SSL_CTX_set_alpn_protos(t->client, w, (unsigned)wl) != 0) {
                SSL_CTX_free(t->client);
                t->client = NULL;
                weft__log(e, WEFT_LOG_ERROR, "tls: tls_client.alpn is malformed");
            }
            free(w);
        }
    }
    bool ok = t->client != NULL;
    pthread_mutex_unlock(&t->client_mu);
    if (!ok)
        return WEFT_ETLS;
    char *name =
        t->ccfg.server_name != NULL ? strdup(t->ccfg.server_name) : weft__tls_url_host(url);
    if (name == NULL)
        name = strdup(""); /* no name: the chain is verified, no host name */
    if (name == NULL)
        return WEFT_ENOMEM;
    *token = name;
    return 0;
}

void weft__tls_dial_token_free(void *token, void *unused)
{
    (void)unused;
    free(token);
}
