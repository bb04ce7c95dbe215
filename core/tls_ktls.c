/* weft — kernel TLS send offload (weft_tls_config.ktls): TLS 1.3, TX only.
 *
 * TLS never touches the socket through OpenSSL (DESIGN.md), so OpenSSL's own kTLS
 * (SSL_OP_ENABLE_KTLS), which needs a socket BIO, is out. This is weft's own path:
 *
 *   1. The key. OpenSSL's keylog callback hands us our side's application traffic secret
 *      (SERVER_TRAFFIC_SECRET_0 on an accepted connection, CLIENT_TRAFFIC_SECRET_0 on a dial);
 *      key and IV come from it by HKDF-Expand-Label (RFC 8446 7.1, 7.3) and the secret is
 *      wiped at once.
 *   2. The sequence number. Every record OpenSSL writes passes through weft's BIO; until the
 *      switch each one is trial-decrypted with the derived key at the next sequence number,
 *      and counted when its tag verifies. Handshake-key records before the first success do
 *      not verify and are not counted; a record after it that does not verify means OpenSSL
 *      changed its key (a KeyUpdate) and the connection stays in userland. This was chosen
 *      over counting records with SSL_set_msg_callback because it depends on nothing of
 *      OpenSSL's internal ordering (when it changes its write key relative to Finished, how
 *      many tickets it sends, whether it writes an alert): a record is counted exactly when
 *      it is one the kernel's counter must follow. A GCM or Poly1305 tag verifying by chance
 *      is a 2^-128 event. It costs one decryption of each record written between the
 *      handshake and the switch, which is normally the session tickets.
 *   3. The switch, when every byte OpenSSL sealed has left weft's output queue and no send is
 *      in flight (tls.c asks at the end of the handshake, after its writes, and when
 *      conn_write.c says the output drained): the "tls" upper-layer protocol, attached at the
 *      end of the handshake, gets the send key (TLS_TX) with the counted sequence number.
 *      From then on plaintext goes to the output queue as it is and the kernel seals it;
 *      OpenSSL still decrypts what arrives but must write nothing: tls.c closes the
 *      connection (WEFT_ETLS) if it tries, or if the peer asks for a KeyUpdate.
 *
 * The two kernel calls, the plaintext path and the one direct record (close_notify) are
 * weft__ktls_ops; tests put a userland record layer there, since the machines they run on
 * have no tls module.
 */
#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tls.h"

#ifndef TCP_ULP
#define TCP_ULP 31 /* linux/tcp.h; glibc's netinet/tcp.h has it since 2.27 */
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

#define REC_HDR     5u
#define REC_TAG     16u
#define REC_CT_MAX  (16384u + 256u) /* RFC 8446 5.2: the most a TLSCiphertext may hold */
#define TYPE_APPDAT 23u

struct weft__ktls {
    bool server;      /* whose secret: SERVER_ or CLIENT_TRAFFIC_SECRET_0 */
    bool keyed;       /* key and iv hold the send key */
    bool counted_one; /* a record verified under it: a failure now means a new key */
    bool broken;      /* it will never do: stay in userland */
    uint16_t cipher;  /* TLS_CIPHER_* */
    uint8_t key[32], iv[12];
    size_t key_len;
    uint64_t seq; /* records sealed under the key so far */
    /* A record split over BIO writes, put together. */
    uint8_t hdr[REC_HDR];
    size_t hdr_have;
    uint8_t *body;
    size_t body_len, body_have;
    const weft__ktls_ops *ops; /* the ones current when the connection began */
    void *state;               /* the ops' own, from tx */
};

/* ---- the kernel ---- */

static int kernel_ulp(weft_conn *c)
{
    return setsockopt(c->fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0 ? 0 : -errno;
}

static int kernel_tx(weft_conn *c, const void *info, size_t len, void **state)
{
    *state = NULL;
    return setsockopt(c->fd, SOL_TLS, TLS_TX, info, (socklen_t)len) == 0 ? 0 : -errno;
}

static int kernel_send(weft_conn *c, void *state, const struct iovec *iov, int iovcnt)
{
    (void)state;
    return weft__conn_send_raw(c, iov, iovcnt); /* the kernel seals it on the way out */
}

static ssize_t kernel_record(weft_conn *c, void *state, uint8_t type, const void *p, size_t n)
{
    (void)state;
    union {
        char buf[CMSG_SPACE(sizeof(uint8_t))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct iovec iov = {(void *)p, n};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_TLS;
    cm->cmsg_type = TLS_SET_RECORD_TYPE;
    cm->cmsg_len = CMSG_LEN(sizeof(uint8_t));
    *CMSG_DATA(cm) = type;
    ssize_t r = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    return r < 0 ? -errno : r;
}

static const weft__ktls_ops kernel_ops = {kernel_ulp, kernel_tx, kernel_send, kernel_record, NULL};

const weft__ktls_ops *weft__ktls_ops_current = &kernel_ops;

/* ---- keys ---- */

int weft__tls13_expand_label(const char *md, const uint8_t *secret, size_t secret_len,
                             const char *label, uint8_t *out, size_t out_len)
{
    /* HkdfLabel: uint16 length, opaque label<7..255> = "tls13 " + label, context<0..255>
     * (empty here). */
    uint8_t info[2 + 1 + 255 + 1];
    size_t ll = strlen(label);
    if (ll > 255 - 6 || out_len > 0xffff)
        return -1;
    size_t n = 0;
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kc = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (kc == NULL)
        return -1;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM p[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(kc, out, out_len, p);
    EVP_KDF_CTX_free(kc);
    return ok == 1 ? 0 : -1;
}

weft__ktls *weft__ktls_new(bool server)
{
    weft__ktls *k = calloc(1, sizeof(*k));
    if (k != NULL) {
        k->server = server;
        k->ops = weft__ktls_ops_current;
    }
    return k;
}

void weft__ktls_free(weft__ktls *k)
{
    if (k == NULL)
        return;
    if (k->state != NULL && k->ops->release != NULL)
        k->ops->release(k->state);
    free(k->body);
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

int weft__ktls_set_secret(weft__ktls *k, uint16_t suite, const uint8_t *secret, size_t len)
{
    const char *md;
    switch (suite) {
    case 0x1301: /* TLS_AES_128_GCM_SHA256 */
        k->cipher = TLS_CIPHER_AES_GCM_128;
        k->key_len = 16;
        md = "SHA256";
        break;
    case 0x1302: /* TLS_AES_256_GCM_SHA384 */
        k->cipher = TLS_CIPHER_AES_GCM_256;
        k->key_len = 32;
        md = "SHA384";
        break;
    case 0x1303: /* TLS_CHACHA20_POLY1305_SHA256 */
        k->cipher = TLS_CIPHER_CHACHA20_POLY1305;
        k->key_len = 32;
        md = "SHA256";
        break;
    default:
        return -1; /* a suite the kernel path does not take: tls.c's start says so */
    }
    if (weft__tls13_expand_label(md, secret, len, "key", k->key, k->key_len) != 0 ||
        weft__tls13_expand_label(md, secret, len, "iv", k->iv, sizeof(k->iv)) != 0) {
        OPENSSL_cleanse(k->key, sizeof(k->key));
        OPENSSL_cleanse(k->iv, sizeof(k->iv));
        return -1;
    }
    k->keyed = true;
    k->seq = 0;
    k->counted_one = false;
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

void weft__ktls_keylog(weft__ktls *k, const SSL *ssl, const char *line)
{
    const char *want = k->server ? "SERVER_TRAFFIC_SECRET_0 " : "CLIENT_TRAFFIC_SECRET_0 ";
    if (strncmp(line, want, strlen(want)) != 0)
        return;
    if (k->keyed) { /* a second first secret cannot be: do not guess */
        k->broken = true;
        return;
    }
    const char *hex = strrchr(line, ' ');
    const SSL_CIPHER *sc = SSL_get_current_cipher(ssl);
    if (sc == NULL)
        sc = SSL_get_pending_cipher(ssl);
    if (hex == NULL || sc == NULL)
        return;
    hex++;
    uint8_t secret[64];
    size_t n = 0;
    for (; hex[0] != '\0' && hex[1] != '\0' && n < sizeof(secret); hex += 2) {
        int hi = hexval(hex[0]), lo = hexval(hex[1]);
        if (hi < 0 || lo < 0)
            break;
        secret[n++] = (uint8_t)(hi << 4 | lo);
    }
    (void)weft__ktls_set_secret(k, (uint16_t)SSL_CIPHER_get_protocol_id(sc), secret, n);
    OPENSSL_cleanse(secret, sizeof(secret));
}

/* ---- counting the records sealed under the key ---- */

static const EVP_CIPHER *aead(uint16_t cipher)
{
    switch (cipher) {
    case TLS_CIPHER_AES_GCM_128:
        return EVP_aes_128_gcm();
    case TLS_CIPHER_AES_GCM_256:
        return EVP_aes_256_gcm();
    default:
        return EVP_chacha20_poly1305();
    }
}

/* Whether the record hdr + body (body_len bytes, the tag last) opens with k's key at k->seq. */
static bool opens(const weft__ktls *k, const uint8_t *hdr, const uint8_t *body, size_t body_len)
{
    if (body_len < REC_TAG + 1)
        return false;
    uint8_t nonce[12];
    memcpy(nonce, k->iv, sizeof(nonce));
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(k->seq >> (8 * i));
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    bool ok = x != NULL && EVP_DecryptInit_ex(x, aead(k->cipher), NULL, k->key, nonce) == 1;
    int outl;
    uint8_t scratch[1024];
    ok = ok && EVP_DecryptUpdate(x, NULL, &outl, hdr, REC_HDR) == 1;
    size_t ct = body_len - REC_TAG;
    for (size_t o = 0; ok && o < ct; o += sizeof(scratch)) {
        size_t m = ct - o < sizeof(scratch) ? ct - o : sizeof(scratch);
        ok = EVP_DecryptUpdate(x, scratch, &outl, body + o, (int)m) == 1;
    }
    ok = ok && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, REC_TAG, (void *)(body + ct)) == 1;
    ok = ok && EVP_DecryptFinal_ex(x, scratch, &outl) == 1;
    EVP_CIPHER_CTX_free(x);
    OPENSSL_cleanse(scratch, sizeof(scratch));
    return ok;
}

static void record(weft__ktls *k, const uint8_t *hdr, const uint8_t *body, size_t len)
{
    /* Only protected records matter; a TLS 1.3 protected record is always type 23 outside.
     * Plaintext handshake records and the compatibility ChangeCipherSpec are not. */
    if (!k->keyed || hdr[0] != TYPE_APPDAT)
        return;
    if (opens(k, hdr, body, len)) {
        k->seq++;
        k->counted_one = true;
    } else if (k->counted_one) {
        k->broken = true; /* sealed under another key: OpenSSL updated its own */
    }
}

void weft__ktls_outbound(weft__ktls *k, const uint8_t *p, size_t n)
{
    while (n > 0 && !k->broken) {
        if (k->hdr_have < REC_HDR) {
            size_t take = REC_HDR - k->hdr_have < n ? REC_HDR - k->hdr_have : n;
            memcpy(k->hdr + k->hdr_have, p, take);
            k->hdr_have += take;
            p += take;
            n -= take;
            if (k->hdr_have < REC_HDR)
                return;
            k->body_len = (size_t)k->hdr[3] << 8 | k->hdr[4];
            k->body_have = 0;
            if (k->body_len > REC_CT_MAX) {
                k->broken = true;
                return;
            }
        }
        if (k->body_have == 0 && n >= k->body_len) { /* the whole record here: in place */
            record(k, k->hdr, p, k->body_len);
            p += k->body_len;
            n -= k->body_len;
            k->hdr_have = 0;
            continue;
        }
        if (k->body == NULL && (k->body = malloc(REC_CT_MAX)) == NULL) {
            k->broken = true;
            return;
        }
        size_t take = k->body_len - k->body_have < n ? k->body_len - k->body_have : n;
        memcpy(k->body + k->body_have, p, take);
        k->body_have += take;
        p += take;
        n -= take;
        if (k->body_have == k->body_len) {
            record(k, k->hdr, k->body, k->body_len);
            k->hdr_have = 0;
            k->body_have = 0;
        }
    }
}

uint64_t weft__ktls_seq(const weft__ktls *k)
{
    return k->seq;
}

bool weft__ktls_usable(const weft__ktls *k)
{
    return k->keyed && !k->broken && k->hdr_have == 0;
}

/* ---- starting, switching, sending ---- */

enum { KERNEL_UNKNOWN, KERNEL_ASKING, KERNEL_NO, KERNEL_YES };

bool weft__ktls_start(weft_conn *c, weft__ktls *k, const SSL *ssl, _Atomic int *kernel,
                      _Atomic bool *said_suite)
{
    /* Kernel TLS is TCP's: a tls+unix connection stays in userland without asking, and
     * leaves the question to the engine's first TCP one. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) != 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return false;
    weft_engine *e = c->loop->engine;
    if (SSL_version(ssl) != TLS1_3_VERSION || !k->keyed || k->broken) {
        if (!atomic_exchange_explicit(said_suite, true, memory_order_relaxed))
            weft__log(e, WEFT_LOG_INFO,
                      "kernel TLS not used for %s with %s: weft offloads TLS 1.3 with AES-GCM "
                      "or ChaCha20-Poly1305 only; using userland TLS",
                      SSL_get_version(ssl), SSL_get_cipher_name(ssl));
        return false;
    }
    /* A kernel without the module runs modprobe for every request: it is asked once, and
     * only a yes makes later connections ask again (each needs its own ULP). */
    int st = atomic_load_explicit(kernel, memory_order_relaxed);
    if (st == KERNEL_NO || st == KERNEL_ASKING)
        return false;
    if (st == KERNEL_UNKNOWN && !atomic_compare_exchange_strong(kernel, &st, KERNEL_ASKING))
        return false; /* another loop asks now */
    int rc = k->ops->ulp(c);
    if (st == KERNEL_UNKNOWN)
        atomic_store(kernel, rc == 0 ? KERNEL_YES : KERNEL_NO);
    if (rc != 0) {
        if (st == KERNEL_UNKNOWN)
            weft__log(e, WEFT_LOG_INFO,
                      "kernel TLS unavailable: setsockopt(TCP_ULP, \"tls\"): %s%s; using "
                      "userland TLS",
                      strerror(-rc), rc == -ENOENT ? " (the kernel has no tls module)" : "");
        else
            weft__log_peer(c->loop, WEFT_LOG_INFO,
                           "conn %u/%u: kernel TLS: setsockopt(TCP_ULP, \"tls\"): %s; using "
                           "userland TLS",
                           c->loop->index, c->slot, strerror(-rc));
        return false;
    }
    return true;
}

int weft__ktls_switch(weft_conn *c, weft__ktls *k)
{
    if (!weft__ktls_usable(k)) {
        weft__log_peer(c->loop, WEFT_LOG_INFO,
                       "conn %u/%u: kernel TLS: OpenSSL changed its send key before the switch; "
                       "staying in userland TLS",
                       c->loop->index, c->slot);
        return -1;
    }
    union {
        struct tls12_crypto_info_aes_gcm_128 g128;
        struct tls12_crypto_info_aes_gcm_256 g256;
        struct tls12_crypto_info_chacha20_poly1305 cc;
    } u;
    memset(&u, 0, sizeof(u));
    uint8_t seq[8];
    for (int i = 0; i < 8; i++)
        seq[i] = (uint8_t)(k->seq >> (56 - 8 * i));
    size_t len;
    switch (k->cipher) {
    case TLS_CIPHER_AES_GCM_128: /* the 12-byte IV is the kernel's salt, then its iv */
        u.g128.info.version = TLS_1_3_VERSION;
        u.g128.info.cipher_type = TLS_CIPHER_AES_GCM_128;
        memcpy(u.g128.salt, k->iv, 4);
        memcpy(u.g128.iv, k->iv + 4, 8);
        memcpy(u.g128.key, k->key, 16);
        memcpy(u.g128.rec_seq, seq, 8);
        len = sizeof(u.g128);
        break;
    case TLS_CIPHER_AES_GCM_256:
        u.g256.info.version = TLS_1_3_VERSION;
        u.g256.info.cipher_type = TLS_CIPHER_AES_GCM_256;
        memcpy(u.g256.salt, k->iv, 4);
        memcpy(u.g256.iv, k->iv + 4, 8);
        memcpy(u.g256.key, k->key, 32);
        memcpy(u.g256.rec_seq, seq, 8);
        len = sizeof(u.g256);
        break;
    default:
        u.cc.info.version = TLS_1_3_VERSION;
        u.cc.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
        memcpy(u.cc.iv, k->iv, 12);
        memcpy(u.cc.key, k->key, 32);
        memcpy(u.cc.rec_seq, seq, 8);
        len = sizeof(u.cc);
        break;
    }
    int rc = k->ops->tx(c, &u, len, &k->state);
    /* The kernel has its copy, or nobody needs one: ours goes either way. */
    OPENSSL_cleanse(&u, sizeof(u));
    OPENSSL_cleanse(k->key, sizeof(k->key));
    OPENSSL_cleanse(k->iv, sizeof(k->iv));
    k->keyed = false;
    free(k->body);
    k->body = NULL;
    if (rc != 0) {
        /* Without TX keys the ULP leaves the socket plain TCP: userland goes on. */
        weft__log_peer(c->loop, WEFT_LOG_INFO,
                       "conn %u/%u: kernel TLS: setsockopt(TLS_TX): %s; staying in userland TLS",
                       c->loop->index, c->slot, strerror(-rc));
        return rc;
    }
    return 0;
}

int weft__ktls_send(weft_conn *c, weft__ktls *k, const struct iovec *iov, int iovcnt)
{
    return k->ops->send(c, k->state, iov, iovcnt);
}

void weft__ktls_close_notify(weft_conn *c, weft__ktls *k)
{
    static const uint8_t alert[2] = {1, 0}; /* warning, close_notify */
    ssize_t n = k->ops->record(c, k->state, 21, alert, sizeof(alert));
    if (n != (ssize_t)sizeof(alert))
        weft__log_peer(c->loop, WEFT_LOG_DEBUG,
                       "conn %u/%u: kernel TLS: close_notify not sent (%s); the peer sees a "
                       "bare FIN",
                       c->loop->index, c->slot, n < 0 ? strerror((int)-n) : "short write");
}
