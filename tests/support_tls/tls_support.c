/* TLS helpers for the loopback tests (tls_support.h). */
/* First: on Windows its Winsock headers bring wincrypt.h, whose X509_NAME macro OpenSSL's
 * headers undefine when they come after it. */
#include "harness.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls_support.h"

/* ---- the PKI ---- */

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v;
    X509V3_set_ctx_nodb(&v);
    X509V3_set_ctx(&v, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A certificate for key, signed by issuer (NULL: self-signed). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                       const char *san, long serial)
{
    X509 *x = X509_new();
    if (x == NULL)
        return NULL;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 7L * 86400L);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : n);
    X509 *by = issuer != NULL ? issuer : x;
    int rc = add_ext(x, by, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    rc |= add_ext(x, by, NID_key_usage,
                  ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    rc |= add_ext(x, by, NID_subject_key_identifier, "hash");
    if (!ca)
        rc |= add_ext(x, by, NID_ext_key_usage, "serverAuth,clientAuth");
    if (san != NULL)
        rc |= add_ext(x, by, NID_subject_alt_name, san);
    if (rc != 0 || !X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256())) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int ok =
        x != NULL ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    return ok ? 0 : -1;
}

/* A key and a certificate signed by ca, written to cert and key. */
static int leaf(const char *dir, const char *name, const char *cn, const char *san, X509 *ca,
                EVP_PKEY *ca_key, long serial, char *cert, char *key)
{
    snprintf(cert, 160, "%s/%s.crt", dir, name);
    snprintf(key, 160, "%s/%s.key", dir, name);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = k != NULL ? make_cert(k, cn, ca, ca_key, false, san, serial) : NULL;
    int rc = x != NULL && write_pem(cert, x, NULL) == 0 && write_pem(key, NULL, k) == 0 ? 0 : -1;
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

int wt_pki_make(wt_pki *p)
{
    memset(p, 0, sizeof(*p));
    if (wt_temp_dir(p->dir, sizeof(p->dir), "tls") != 0) {
        p->dir[0] = '\0';
        return -1;
    }
    int rc = 0;
    EVP_PKEY *cak = EVP_EC_gen("P-256"), *ocak = EVP_EC_gen("P-256");
    X509 *ca = cak != NULL ? make_cert(cak, "weft test CA", NULL, NULL, true, NULL, 1) : NULL;
    X509 *oca = ocak != NULL ? make_cert(ocak, "other test CA", NULL, NULL, true, NULL, 1) : NULL;
    snprintf(p->ca, sizeof(p->ca), "%s/ca.crt", p->dir);
    snprintf(p->other_ca, sizeof(p->other_ca), "%s/other-ca.crt", p->dir);
    if (ca == NULL || oca == NULL || write_pem(p->ca, ca, NULL) != 0 ||
        write_pem(p->other_ca, oca, NULL) != 0)
        rc = -1;
    const char *local = "DNS:localhost,IP:127.0.0.1";
    if (rc == 0)
        rc = leaf(p->dir, "server", "localhost", local, ca, cak, 2, p->server_cert, p->server_key);
    if (rc == 0)
        rc =
            leaf(p->dir, "server2", "reloaded", local, ca, cak, 3, p->server2_cert, p->server2_key);
    if (rc == 0)
        rc = leaf(p->dir, "client", "client", NULL, ca, cak, 4, p->client_cert, p->client_key);
    if (rc == 0)
        rc = leaf(p->dir, "other-client", "stranger", NULL, oca, ocak, 5, p->other_client_cert,
                  p->other_client_key);
    if (rc == 0)
        rc = leaf(p->dir, "alpha", "alpha.test", "DNS:alpha.test", ca, cak, 6, p->alpha_cert,
                  p->alpha_key);
    if (rc == 0)
        rc = leaf(p->dir, "beta", "beta.test", "DNS:beta.test", ca, cak, 7, p->beta_cert,
                  p->beta_key);
    X509_free(ca);
    X509_free(oca);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(ocak);
    if (rc != 0) {
        fprintf(stderr, "wt_pki_make: %s\n", ERR_reason_error_string(ERR_peek_error()));
        wt_pki_free(p);
    }
    return rc;
}

void wt_pki_free(wt_pki *p)
{
    const char *files[] = {
        p->ca,          p->other_ca,    p->server_cert, p->server_key,        p->server2_cert,
        p->server2_key, p->client_cert, p->client_key,  p->other_client_cert, p->other_client_key,
        p->alpha_cert,  p->alpha_key,   p->beta_cert,   p->beta_key};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (files[i][0] != '\0')
            (void)remove(files[i]);
    }
    if (p->dir[0] != '\0')
        (void)wt_temp_dir_remove(p->dir);
}

/* ---- the client ---- */

static void reason(char *err, size_t len, const char *fallback)
{
    if (err == NULL || len == 0)
        return;
    unsigned long e = ERR_peek_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    snprintf(err, len, "%s", r != NULL ? r : fallback);
}

/* A blocking call that a signal interrupted (EINTR): to be made again. A timeout of the
 * socket's (EAGAIN) is not. */
static bool interrupted(SSL *s, int r)
{
    int e = SSL_get_error(s, r);
    return (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && errno == EINTR;
}

static int count_ticket(SSL *s, SSL_SESSION *session)
{
    (void)session;
    int *n = SSL_get_app_data(s);
    if (n != NULL)
        (*n)++;
    return 0; /* no reference kept */
}

SSL *wt_tls_connect(int fd, const wt_tls_opts *o, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return NULL;
    if (o->max_version != 0)
        SSL_CTX_set_max_proto_version(ctx, o->max_version);
    if (o->ca != NULL) {
        SSL_CTX_load_verify_locations(ctx, o->ca, NULL);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (o->cert != NULL) {
        SSL_CTX_use_certificate_chain_file(ctx, o->cert);
        SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM);
    }
    if (o->alpn != NULL) {
        unsigned char wire[1024];
        size_t n = 0;
        const char *p = o->alpn;
        while (*p != '\0' && n < sizeof(wire) - 256) {
            const char *c = strchr(p, ',');
            size_t l = c != NULL ? (size_t)(c - p) : strlen(p);
            wire[n++] = (unsigned char)l;
            memcpy(wire + n, p, l);
            n += l;
            p += l + (c != NULL);
        }
        SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)n);
    }
    if (o->tickets != NULL) {
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, count_ticket);
    }
    SSL *s = SSL_new(ctx);
    SSL_CTX_free(ctx); /* s holds it */
    if (s == NULL)
        return NULL;
    SSL_set_app_data(s, o->tickets);
    SSL_set_fd(s, fd);
    if (o->session != NULL)
        SSL_set_session(s, o->session);
    const char *sni = o->sni != NULL ? o->sni : o->host;
    if (sni != NULL && strcmp(sni, "127.0.0.1") != 0)
        SSL_set_tlsext_host_name(s, sni);
    if (o->ca != NULL && o->host != NULL) {
        if (strcmp(o->host, "127.0.0.1") == 0)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), o->host);
        else
            SSL_set1_host(s, o->host);
    }
    int cr;
    while ((cr = SSL_connect(s)) != 1 && interrupted(s, cr)) {
    }
    if (cr != 1) {
        reason(err, errlen, "handshake failed");
        SSL_free(s);
        return NULL;
    }
    return s;
}

int wt_tls_send_all(SSL *s, const void *p, size_t n)
{
    size_t w;
    int r;
    if (n == 0)
        return 0;
    while ((r = SSL_write_ex(s, p, n, &w)) != 1 && interrupted(s, r)) {
    }
    return r == 1 ? 0 : -1;
}

int wt_tls_recv_exact(SSL *s, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t r;
        int rc = SSL_read_ex(s, (uint8_t *)p + got, n - got, &r);
        if (rc != 1) {
            if (interrupted(s, rc))
                continue;
            return -1;
        }
        got += r;
    }
    return 0;
}

int wt_tls_exchange(SSL *s, const void *out, size_t out_len, void *in, size_t in_len,
                    int timeout_ms)
{
    int fd = SSL_get_fd(s);
    (void)wt_set_nonblocking(fd);
    size_t sent = 0, got = 0;
    int rc = -1;
    int64_t end = wt_now_ms() + timeout_ms;
    while (wt_now_ms() < end) {
        bool want_out = false;
        if (sent < out_len) {
            size_t w, chunk = out_len - sent > 65536 ? 65536 : out_len - sent;
            if (SSL_write_ex(s, (const uint8_t *)out + sent, chunk, &w) == 1) {
                sent += w;
            } else {
                int e = SSL_get_error(s, 0);
                if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
                    break;
                want_out = e == SSL_ERROR_WANT_WRITE;
            }
        }
        bool broken = false;
        while (got < in_len) {
            size_t r;
            if (SSL_read_ex(s, (uint8_t *)in + got, in_len - got, &r) == 1) {
                got += r;
                continue;
            }
            int e = SSL_get_error(s, 0);
            broken = e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
            break;
        }
        if (broken)
            break;
        if (got == in_len && sent == out_len) {
            rc = 0;
            break;
        }
        struct pollfd pfd = {fd, POLLIN | (want_out ? POLLOUT : 0), 0};
        (void)wt_poll(&pfd, 1, 50);
    }
    (void)wt_set_blocking(fd);
    return rc;
}

int wt_tls_recv_close(SSL *s)
{
    uint8_t b[256];
    for (;;) {
        size_t r;
        int rc = SSL_read_ex(s, b, sizeof(b), &r);
        if (rc == 1 || interrupted(s, rc))
            continue;
        int e = SSL_get_error(s, rc);
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL)
            return ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING ? 1 : -1;
        return -1;
    }
}

void wt_tls_peer_cn(SSL *s, char *buf, size_t len)
{
    buf[0] = '\0';
    X509 *x = SSL_get1_peer_certificate(s);
    if (x == NULL)
        return;
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)len);
    X509_free(x);
}

void wt_tls_close(SSL *s, bool notify)
{
    if (s == NULL)
        return;
    int fd = SSL_get_fd(s);
    if (notify)
        (void)SSL_shutdown(s);
    SSL_free(s);
    wt_close(fd);
}

size_t wt_tls_client_hello(uint8_t *buf, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *s = SSL_new(ctx);
    BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
    SSL_set_bio(s, r, w);
    SSL_set_connect_state(s);
    (void)SSL_do_handshake(s);
    int n = BIO_read(w, buf, (int)cap);
    SSL_free(s);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return n > 0 ? (size_t)n : 0;
}

size_t wt_tls13_seal(const EVP_CIPHER *aead, const uint8_t *key, const uint8_t iv[12], uint64_t seq,
                     uint8_t type, const void *p, size_t n, uint8_t *out)
{
    size_t body = n + 1 + 16;
    if (body > 16384 + 256)
        return 0;
    out[0] = 23; /* application_data outside, whatever is inside */
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    uint8_t nonce[12];
    memcpy(nonce, iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(seq >> (8 * i));
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0, l3 = 0;
    bool ok = x != NULL && EVP_EncryptInit_ex(x, aead, NULL, key, nonce) == 1 &&
              EVP_EncryptUpdate(x, NULL, &l1, out, 5) == 1 &&
              EVP_EncryptUpdate(x, out + 5, &l1, p, (int)n) == 1 &&
              EVP_EncryptUpdate(x, out + 5 + l1, &l2, &type, 1) == 1 &&
              EVP_EncryptFinal_ex(x, out + 5 + l1 + l2, &l3) == 1 &&
              EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, out + 5 + n + 1) == 1;
    EVP_CIPHER_CTX_free(x);
    return ok ? 5 + body : 0;
}
