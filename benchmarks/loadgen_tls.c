/* loadgen's TLS client: see loadgen_tls.h. */
#include "loadgen_tls.h"

#include <stdio.h>

#ifdef BENCH_HAVE_OPENSSL
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static SSL_CTX *tls_ctx;

/* Why the last TLS call on this thread failed: OpenSSL's reason text, and the certificate
 * verification result when that is what failed. */
static void tls_why(SSL *ssl, int err, char why[LG_TLS_WHY])
{
    unsigned long e = ERR_peek_last_error();
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (v != X509_V_OK)
        snprintf(why, LG_TLS_WHY, "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
    else if (e != 0)
        ERR_error_string_n(e, why, LG_TLS_WHY);
    else if (err == SSL_ERROR_SYSCALL)
        snprintf(why, LG_TLS_WHY, "%s",
                 errno ? strerror(errno) : "connection closed by the server");
    else if (err == SSL_ERROR_ZERO_RETURN)
        snprintf(why, LG_TLS_WHY, "the server sent close_notify");
    else
        snprintf(why, LG_TLS_WHY, "SSL error %d", err);
    ERR_clear_error();
}

int lg_tls_init(const char *ca)
{
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (tls_ctx == NULL || !SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION) ||
        SSL_CTX_load_verify_locations(tls_ctx, ca, NULL) != 1) {
        char why[LG_TLS_WHY];
        tls_why(NULL, 0, why);
        fprintf(stderr, "loadgen: cannot set up TLS with CA file %s: %s\n", ca, why);
        return -1;
    }
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_read_ahead(tls_ctx, 1);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return 0;
}

void lg_tls_exit(void)
{
    SSL_CTX_free(tls_ctx);
    tls_ctx = NULL;
}

SSL *lg_tls_new(int fd, const char *name, char why[LG_TLS_WHY])
{
    SSL *ssl = SSL_new(tls_ctx);
    if (ssl == NULL || !SSL_set_fd(ssl, fd))
        goto fail;
    if (name != NULL) {
        struct in6_addr a;
        bool ip = inet_pton(AF_INET, name, &a) == 1 || inet_pton(AF_INET6, name, &a) == 1;
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (ip ? !X509_VERIFY_PARAM_set1_ip_asc(vp, name)
               : (!SSL_set1_host(ssl, name) || !SSL_set_tlsext_host_name(ssl, name)))
            goto fail;
    }
    SSL_set_connect_state(ssl);
    return ssl;
fail:
    tls_why(NULL, 0, why);
    SSL_free(ssl);
    return NULL;
}

void lg_tls_close(SSL **ssl, bool active)
{
    if (*ssl == NULL)
        return;
    if (active)
        (void)SSL_shutdown(*ssl);
    ERR_clear_error();
    SSL_free(*ssl);
    *ssl = NULL;
}

int lg_tls_step(SSL *ssl, enum lg_tls_want *want, char why[LG_TLS_WHY])
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *want = e == SSL_ERROR_WANT_WRITE ? LG_TLS_WANT_WRITE : LG_TLS_WANT_READ;
        return 0;
    }
    tls_why(ssl, e, why);
    return -1;
}

ssize_t lg_tls_send(SSL *ssl, const void *p, size_t len, char why[LG_TLS_WHY])
{
    ERR_clear_error();
    errno = 0;
    int n = SSL_write(ssl, p, (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(ssl, n);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        return 0;
    tls_why(ssl, e, why);
    return -1;
}

ssize_t lg_tls_recv(SSL *ssl, void *buf, size_t len, char why[LG_TLS_WHY])
{
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(ssl, buf, (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
        return -2;
    tls_why(ssl, e, why);
    return -1;
}
#else
int lg_tls_init(const char *ca)
{
    (void)ca;
    fprintf(stderr, "loadgen: built without OpenSSL; --tls is not available\n");
    return -1;
}
void lg_tls_exit(void)
{
}
struct ssl_st *lg_tls_new(int fd, const char *name, char why[LG_TLS_WHY])
{
    (void)fd;
    (void)name;
    snprintf(why, LG_TLS_WHY, "built without OpenSSL");
    return NULL;
}
void lg_tls_close(struct ssl_st **ssl, bool active)
{
    (void)ssl;
    (void)active;
}
int lg_tls_step(struct ssl_st *ssl, enum lg_tls_want *want, char why[LG_TLS_WHY])
{
    (void)ssl;
    (void)want;
    snprintf(why, LG_TLS_WHY, "built without OpenSSL");
    return -1;
}
ssize_t lg_tls_send(struct ssl_st *ssl, const void *p, size_t len, char why[LG_TLS_WHY])
{
    (void)ssl;
    (void)p;
    (void)len;
    snprintf(why, LG_TLS_WHY, "built without OpenSSL");
    return -1;
}
ssize_t lg_tls_recv(struct ssl_st *ssl, void *buf, size_t len, char why[LG_TLS_WHY])
{
    (void)ssl;
    (void)buf;
    (void)len;
    snprintf(why, LG_TLS_WHY, "built without OpenSSL");
    return -1;
}
#endif
