/* TLS helpers for the loopback tests: a throw-away PKI made at test time, and a TLS client on
 * a blocking test socket.
 *
 * wt_pki_make() generates, with OpenSSL's API, a CA, a server certificate for localhost and
 * 127.0.0.1, a client certificate, a second ("other") CA with a client certificate of its own,
 * certificates for the SNI names alpha.test and beta.test, and a second server certificate
 * (CN "reloaded") for reload tests: EC P-256 keys, PEM files in a fresh directory of the
 * system's temporary one (wt_temp_dir), removed by wt_pki_free(). No key material comes from
 * anywhere else.
 */
#ifndef WEFT_TEST_TLS_SUPPORT_H
#define WEFT_TEST_TLS_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

typedef struct wt_pki {
    char dir[128];
    char ca[160], other_ca[160];
    char server_cert[160], server_key[160];
    char server2_cert[160], server2_key[160];
    char client_cert[160], client_key[160];
    char other_client_cert[160], other_client_key[160];
    char alpha_cert[160], alpha_key[160];
    char beta_cert[160], beta_key[160];
} wt_pki;

/* 0, or -1 with the reason printed. */
int wt_pki_make(wt_pki *p);
void wt_pki_free(wt_pki *p);

/* What a test client offers and checks; NULL fields are left out. */
typedef struct wt_tls_opts {
    const char *ca;         /* verify the server against it (and its name: host) */
    const char *host;       /* the name checked (and sent as SNI unless sni is set) */
    const char *sni;        /* the SNI name to send */
    const char *cert, *key; /* a client certificate */
    const char *alpn;       /* comma-separated */
    int max_version;        /* 0 or TLS1_2_VERSION, ... */
    SSL_SESSION *session;   /* offered for resumption (borrowed; SSL_session_reused says) */
    int *tickets;           /* counts the session tickets the server sends, as they are read */
} wt_tls_opts;

/* Handshakes as a client on fd (blocking, with the harness's timeouts). Returns the SSL (its
 * fd is fd; wt_tls_close frees both) or NULL, with OpenSSL's reason in err. */
SSL *wt_tls_connect(int fd, const wt_tls_opts *o, char *err, size_t errlen);

/* Writes / reads all n bytes: 0 or -1. */
int wt_tls_send_all(SSL *s, const void *p, size_t n);
int wt_tls_recv_exact(SSL *s, void *p, size_t n);

/* Sends out and receives in_len bytes at once (non-blocking, so a large echo cannot deadlock),
 * within timeout_ms: 0 or -1. */
int wt_tls_exchange(SSL *s, const void *out, size_t out_len, void *in, size_t in_len,
                    int timeout_ms);

/* After the peer's close: 0 when it sent close_notify, 1 on a bare EOF, -1 on an error. */
int wt_tls_recv_close(SSL *s);

/* The CN of the server's certificate into buf. */
void wt_tls_peer_cn(SSL *s, char *buf, size_t len);

/* Sends close_notify (when notify), frees the SSL and closes its fd. */
void wt_tls_close(SSL *s, bool notify);

/* The first flight of a real client's handshake (its ClientHello record) into buf: its length,
 * or 0 if none was made. No socket is involved. */
size_t wt_tls_client_hello(uint8_t *buf, size_t cap);

/* A TLS 1.3 record (RFC 8446 5.2) into out (n + 22 bytes): the 5-byte header as AAD, the
 * plaintext with its inner content type, AEAD with nonce = iv XOR seq. aead is
 * EVP_aes_128_gcm(), EVP_aes_256_gcm() or EVP_chacha20_poly1305(). Returns its length, or 0. */
size_t wt_tls13_seal(const EVP_CIPHER *aead, const uint8_t *key, const uint8_t iv[12], uint64_t seq,
                     uint8_t type, const void *p, size_t n, uint8_t *out);

#endif /* WEFT_TEST_TLS_SUPPORT_H */
