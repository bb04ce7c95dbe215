/* weft — TLS: tls:// listeners and dials.
 *
 * TLS is a transport of weft's own, as tcp:// and unix:// are: a server written for plain TCP
 * becomes a TLS server by listening on "tls://host:port" and naming a certificate in
 * weft_config.tls. on_traffic, codecs, async writes, timeouts and backpressure see and send
 * plaintext; weft encrypts and decrypts between the socket and the codec, through buffers of
 * its own (OpenSSL with a BIO over weft's buffers), on every backend.
 *
 * A TLS connection's on_open runs once its handshake finished. A handshake that fails ends in
 * on_close(conn, WEFT_ETLS) without on_open (weft_conn_tls_error says why, in OpenSSL's words:
 * "certificate verify failed", "no shared cipher", ...); one that does not finish within
 * tls_handshake_timeout_ms ends in on_close(conn, WEFT_ETIMEDOUT). The peer's close_notify is
 * an orderly close (err 0); a TCP FIN without it is a truncation (WEFT_ETLS, "unexpected eof
 * while reading"). A graceful close (weft_conn_close, a stop) sends close_notify after the
 * queued output; weft_conn_abort does not. Renegotiation is refused.
 */
#ifndef WEFT_TLS_H
#define WEFT_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "weft/conn.h"
#include "weft/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether the peer's certificate is checked. DEFAULT means NONE for a listener (no client
 * certificate asked for) and REQUIRED for a dial (the server's certificate and its name are
 * verified). */
typedef enum weft_tls_verify {
    WEFT_TLS_VERIFY_DEFAULT = 0,
    WEFT_TLS_VERIFY_NONE,     /* not asked for, or not checked */
    WEFT_TLS_VERIFY_OPTIONAL, /* a listener asks for a client certificate and checks one that
                                 comes, but lets a client without one in */
    WEFT_TLS_VERIFY_REQUIRED  /* a certificate that verifies against the CA is a must */
} weft_tls_verify;

typedef enum weft_tls_version {
    WEFT_TLS_1_2 = 0x0303, /* the default minimum; 1.0 and 1.1 are always refused */
    WEFT_TLS_1_3 = 0x0304
} weft_tls_version;

/* One more name a listener answers to (SNI): a client asking for server_name gets this
 * certificate; others get weft_tls_config's. Strings are borrowed as the config's are. */
typedef struct weft_tls_sni {
    const char *server_name; /* "api.example.com" (exact match, case-insensitive) */
    const char *cert_file;   /* PEM: the certificate, then its chain */
    const char *key_file;    /* PEM private key */
} weft_tls_sni;

/* TLS settings: weft_config.tls for the tls:// listeners, weft_config.tls_client for
 * weft_engine_dial("tls://..."). Strings and the sni array are borrowed until the call that
 * takes the config (weft_engine_start, weft_engine_tls_reload) returns. */
typedef struct weft_tls_config {
    const char *cert_file;        /* PEM: the certificate, then its chain (a listener must have
                                   one; a dial presents it as its client certificate) */
    const char *key_file;         /* PEM private key for cert_file */
    const char *ca_file;          /* PEM CA bundle to verify the peer with; NULL (and no ca_dir):
                                   a dial uses the system's CA store */
    const char *ca_dir;           /* a hashed CA directory (c_rehash) */
    weft_tls_verify verify_peer;  /* default WEFT_TLS_VERIFY_DEFAULT (see above) */
    weft_tls_version min_version; /* default WEFT_TLS_1_2 */
    const char *ciphers;          /* TLS 1.2 cipher list (OpenSSL syntax); NULL: OpenSSL's */
    const char *ciphersuites; /* TLS 1.3 suites ("TLS_AES_128_GCM_SHA256:..."); NULL: OpenSSL's */
    const char *alpn;         /* comma-separated protocols, preferred first ("h2,http/1.1"):
                                   a listener picks the first it shares with the client, a dial
                                   offers them; NULL: no ALPN */
    const weft_tls_sni *sni;  /* listeners: more names with their own certificates */
    size_t nsni;
    bool session_tickets;    /* resumption by session tickets, one sent per full handshake;
                                default true (false: none are sent) */
    const char *server_name; /* dials: the name sent as SNI and checked against the
                                   certificate; NULL: the host of the URL */
    /* Kernel TLS sends after the handshake; default false. TLS 1.3 with AES-GCM or
     * ChaCha20-Poly1305 over TCP: once the handshake's records have left, the kernel seals
     * what the connection sends (receiving stays in userland). Otherwise, or where the
     * kernel has no tls module, userland TLS, said once per engine at INFO. After the
     * switch a KeyUpdate asked by the peer closes the connection (WEFT_ETLS). README,
     * "Kernel TLS". */
    bool ktls;
} weft_tls_config;

/* Fills every field with its default. */
WEFT_API void weft_tls_config_init(weft_tls_config *cfg);

/* Loads new certificates (and every other setting of tls) for every tls:// listener of a
 * running engine: handshakes that start afterwards use them, connections already open keep
 * theirs. All or nothing: on an error (a file that does not load, a key that does not match)
 * the old settings stay. Returns 0, WEFT_EINVAL (no TLS listener, a NULL argument), WEFT_ETLS
 * (the files; the reason is logged) or WEFT_ENOSYS (built without TLS). Any thread. */
WEFT_API int weft_engine_tls_reload(weft_engine *engine, const weft_tls_config *tls);

/* Whether conn is a TLS connection. Owning loop's thread, as every call below. */
WEFT_API bool weft_conn_is_tls(const weft_conn *conn);

/* The protocol ALPN chose ("h2"), or NULL (none, or not TLS). Static for conn's life: valid
 * until on_close returns. */
WEFT_API const char *weft_conn_tls_alpn(const weft_conn *conn);

/* The name the client asked for by SNI, or NULL. Valid until on_close returns. */
WEFT_API const char *weft_conn_tls_server_name(const weft_conn *conn);

/* Why conn's TLS failed, in OpenSSL's words ("certificate verify failed"), or NULL when it
 * did not (yet). Meant for on_close(conn, WEFT_ETLS); valid until on_close returns. */
WEFT_API const char *weft_conn_tls_error(const weft_conn *conn);

/* Whether the kernel seals what conn sends (kTLS, weft_tls_config.ktls), or false (userland
 * TLS, or not TLS). False in on_open: the switch waits for the handshake's last records to
 * leave. */
WEFT_API bool weft_conn_tls_ktls(const weft_conn *conn);

/* The same as weft_conn_tls_alpn, under the name. */
#define weft_conn_alpn weft_conn_tls_alpn

#ifdef __cplusplus
}
#endif

#endif /* WEFT_TLS_H */
