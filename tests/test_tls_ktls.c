/* tls_ktls.c's pure parts: the send key derived from a TLS 1.3 application traffic secret
 * (RFC 8448's "Simple 1-RTT Handshake" trace), and the records OpenSSL sealed under it
 * counted, whatever comes before them and however they are split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/tls.h>
#include <openssl/evp.h>
#include <string.h>

#include "tls.h"
#include "tls_support.h"

/* RFC 8448 3: {server} and {client} "derive write traffic keys for application data". */
static const uint8_t server_secret[32] = {
    0xa1, 0x1a, 0xf9, 0xf0, 0x55, 0x31, 0xf8, 0x56, 0xad, 0x47, 0x11, 0x6b, 0x45, 0xa9, 0x50, 0x32,
    0x82, 0x04, 0xb4, 0xf4, 0x4b, 0xfb, 0x6b, 0x3a, 0x4b, 0x4f, 0x1f, 0x3f, 0xcb, 0x63, 0x16, 0x43};
static const uint8_t server_key[16] = {0x9f, 0x02, 0x28, 0x3b, 0x6c, 0x9c, 0x07, 0xef,
                                       0xc2, 0x6b, 0xb9, 0xf2, 0xac, 0x92, 0xe3, 0x56};
static const uint8_t server_iv[12] = {0xcf, 0x78, 0x2b, 0x88, 0xdd, 0x83,
                                      0x54, 0x9a, 0xad, 0xf1, 0xe9, 0x84};
static const uint8_t client_secret[32] = {
    0x9e, 0x40, 0x64, 0x6c, 0xe7, 0x9a, 0x7f, 0x9d, 0xc0, 0x5a, 0xf8, 0x88, 0x9b, 0xce, 0x65, 0x52,
    0x87, 0x5a, 0xfa, 0x0b, 0x06, 0xdf, 0x00, 0x87, 0xf7, 0x92, 0xeb, 0xb7, 0xc1, 0x75, 0x04, 0xa5};
static const uint8_t client_key[16] = {0x17, 0x42, 0x2d, 0xda, 0x59, 0x6e, 0xd5, 0xd9,
                                       0xac, 0xd8, 0x90, 0xe3, 0xc6, 0x3f, 0x50, 0x51};
static const uint8_t client_iv[12] = {0x5b, 0x78, 0x92, 0x3d, 0xee, 0x08,
                                      0x57, 0x90, 0x33, 0xe5, 0x23, 0xd9};

static void test_expand_label_matches_rfc8448(void **state)
{
    (void)state;
    uint8_t key[16], iv[12];
    assert_int_equal(weft__tls13_expand_label("SHA256", server_secret, 32, "key", key, 16), 0);
    assert_int_equal(weft__tls13_expand_label("SHA256", server_secret, 32, "iv", iv, 12), 0);
    assert_memory_equal(key, server_key, 16);
    assert_memory_equal(iv, server_iv, 12);
    assert_int_equal(weft__tls13_expand_label("SHA256", client_secret, 32, "key", key, 16), 0);
    assert_int_equal(weft__tls13_expand_label("SHA256", client_secret, 32, "iv", iv, 12), 0);
    assert_memory_equal(key, client_key, 16);
    assert_memory_equal(iv, client_iv, 12);
    /* A label that cannot fit HkdfLabel is refused, not cut. */
    char big[260];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(weft__tls13_expand_label("SHA256", server_secret, 32, big, key, 16), -1);
}

/* Records sealed with RFC 8448's server key (the suite is TLS_AES_128_GCM_SHA256 there),
 * behind records under another key (as the handshake's are), fed one byte at a time or a
 * whole flight at once: only those under the key count. */
static size_t flight(uint8_t *buf, int nother, int nours)
{
    static const uint8_t other_key[16] = {1, 2, 3};
    static const uint8_t other_iv[12] = {4, 5, 6};
    size_t n = 0;
    buf[n++] = 20; /* the compatibility ChangeCipherSpec: plaintext, not counted */
    buf[n++] = 3;
    buf[n++] = 3;
    buf[n++] = 0;
    buf[n++] = 1;
    buf[n++] = 1;
    uint8_t pt[300];
    memset(pt, 0x42, sizeof(pt));
    for (int i = 0; i < nother; i++)
        n += wt_tls13_seal(EVP_aes_128_gcm(), other_key, other_iv, (uint64_t)i, 22, pt, 100,
                           buf + n);
    for (int i = 0; i < nours; i++)
        n += wt_tls13_seal(EVP_aes_128_gcm(), server_key, server_iv, (uint64_t)i, 22, pt,
                           (size_t)(50 + 100 * i), buf + n);
    return n;
}

static void test_records_under_the_key_are_counted(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    size_t n = flight(buf, 3, 2);
    /* Whole. */
    weft__ktls *k = weft__ktls_new(true);
    assert_non_null(k);
    assert_int_equal(weft__ktls_set_secret(k, 0x1301, server_secret, 32), 0);
    weft__ktls_outbound(k, buf, n);
    assert_int_equal(weft__ktls_seq(k), 2);
    assert_true(weft__ktls_usable(k));
    weft__ktls_free(k);
    /* A byte at a time. */
    k = weft__ktls_new(true);
    assert_int_equal(weft__ktls_set_secret(k, 0x1301, server_secret, 32), 0);
    for (size_t i = 0; i < n; i++)
        weft__ktls_outbound(k, buf + i, 1);
    assert_int_equal(weft__ktls_seq(k), 2);
    assert_true(weft__ktls_usable(k));
    /* Half a record written: no switch could follow it. */
    uint8_t rec[200];
    size_t rl = wt_tls13_seal(EVP_aes_128_gcm(), server_key, server_iv, 2, 23, "x", 1, rec);
    weft__ktls_outbound(k, rec, 3);
    assert_false(weft__ktls_usable(k));
    weft__ktls_outbound(k, rec + 3, rl - 3);
    assert_int_equal(weft__ktls_seq(k), 3);
    assert_true(weft__ktls_usable(k));
    /* A record under another key after ours: OpenSSL changed its key (a KeyUpdate). */
    static const uint8_t next_key[16] = {9};
    rl = wt_tls13_seal(EVP_aes_128_gcm(), next_key, server_iv, 0, 23, "y", 1, rec);
    weft__ktls_outbound(k, rec, rl);
    assert_int_equal(weft__ktls_seq(k), 3);
    assert_false(weft__ktls_usable(k));
    weft__ktls_free(k);
}

static void test_unkeyed_and_other_suites(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    size_t n = flight(buf, 1, 2);
    weft__ktls *k = weft__ktls_new(false);
    /* No secret yet: nothing can be counted, and no switch may happen. */
    weft__ktls_outbound(k, buf, n);
    assert_int_equal(weft__ktls_seq(k), 0);
    assert_false(weft__ktls_usable(k));
    /* TLS_AES_128_CCM_SHA256 is not offloaded. */
    assert_int_equal(weft__ktls_set_secret(k, 0x1304, server_secret, 32), -1);
    assert_false(weft__ktls_usable(k));
    /* The SHA-384 and ChaCha20 suites key up (their own vectors are not in RFC 8448). */
    assert_int_equal(weft__ktls_set_secret(k, 0x1302, server_secret, 32), 0);
    assert_true(weft__ktls_usable(k));
    assert_int_equal(weft__ktls_set_secret(k, 0x1303, server_secret, 32), 0);
    assert_true(weft__ktls_usable(k));
    weft__ktls_free(k);
}

/* OpenSSL's keylog line for the other side's secret is not ours. */
static void test_keylog_takes_our_side_only(void **state)
{
    (void)state;
    weft__ktls *k = weft__ktls_new(true);
    weft__ktls_keylog(k, NULL,
                      "CLIENT_TRAFFIC_SECRET_0 00 "
                      "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5");
    assert_false(weft__ktls_usable(k));
    weft__ktls_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand_label_matches_rfc8448),
        cmocka_unit_test(test_records_under_the_key_are_counted),
        cmocka_unit_test(test_unkeyed_and_other_suites),
        cmocka_unit_test(test_keylog_takes_our_side_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
