/* tls.c's pure parts: ALPN lists in wire format, the host of a tls:// URL, the config's
 * defaults and the error code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tls.h"

static void test_alpn_wire(void **state)
{
    (void)state;
    unsigned char *w;
    size_t n;
    assert_int_equal(weft__tls_alpn_wire("h2,http/1.1", &w, &n), 0);
    assert_int_equal(n, 12);
    assert_memory_equal(w, "\x02h2\x08http/1.1", 12);
    free(w);
    assert_int_equal(weft__tls_alpn_wire("redis", &w, &n), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(w, "\x05redis", 6);
    free(w);
    /* None at all is not an error: no ALPN. */
    assert_int_equal(weft__tls_alpn_wire(NULL, &w, &n), 0);
    assert_null(w);
    assert_int_equal(n, 0);
    assert_int_equal(weft__tls_alpn_wire("", &w, &n), 0);
    assert_null(w);
    /* An empty name, a trailing comma and a name over 255 bytes are refused. */
    assert_int_equal(weft__tls_alpn_wire("h2,,x", &w, &n), WEFT_EINVAL);
    assert_int_equal(weft__tls_alpn_wire(",h2", &w, &n), WEFT_EINVAL);
    char big[300];
    memset(big, 'a', 256);
    big[256] = '\0';
    assert_int_equal(weft__tls_alpn_wire(big, &w, &n), WEFT_EINVAL);
    big[255] = '\0';
    assert_int_equal(weft__tls_alpn_wire(big, &w, &n), 0);
    assert_int_equal(n, 256);
    assert_int_equal(w[0], 255);
    free(w);
}

static void test_url_host(void **state)
{
    (void)state;
    char *h = weft__tls_url_host("tls://example.com:443");
    assert_string_equal(h, "example.com");
    free(h);
    h = weft__tls_url_host("tls://127.0.0.1:6379");
    assert_string_equal(h, "127.0.0.1");
    free(h);
    h = weft__tls_url_host("tls://[::1]:443");
    assert_string_equal(h, "::1");
    free(h);
    assert_null(weft__tls_url_host("tls+unix:///run/x.sock"));
    assert_null(weft__tls_url_host("tls://:443"));
    assert_null(weft__tls_url_host("tls://nocolon"));
}

static void test_config_defaults(void **state)
{
    (void)state;
    weft_tls_config t;
    memset(&t, 0x5a, sizeof(t));
    weft_tls_config_init(&t);
    assert_null(t.cert_file);
    assert_null(t.ca_file);
    assert_int_equal(t.verify_peer, WEFT_TLS_VERIFY_DEFAULT);
    assert_int_equal(t.min_version, WEFT_TLS_1_2);
    assert_true(t.session_tickets);
    assert_null(t.sni);
    weft_config cfg;
    weft_config_init(&cfg);
    assert_int_equal(cfg.tls_handshake_timeout_ms, 10000);
    assert_true(cfg.tls.session_tickets);
    assert_int_equal(cfg.tls_client.verify_peer, WEFT_TLS_VERIFY_DEFAULT);
    assert_string_equal(weft_err_name(WEFT_ETLS), "WEFT_ETLS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpn_wire),
        cmocka_unit_test(test_url_host),
        cmocka_unit_test(test_config_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
