/* What every TLS loopback test file shares: the suite's PKI (wt_pki_make before the file's
 * first test, wt_pki_free after its last), its main() around that, a tls:// server config
 * with the PKI's server certificate, and a client that verifies the server.
 *
 * Apart from tls_support.h (which the TLS fuzz target links too, without the harness) since
 * these need the harness and cmocka.
 */
#ifndef WEFT_TEST_TLS_SUITE_H
#define WEFT_TEST_TLS_SUITE_H

#include "harness.h"
#include "tls_support.h"

/* The PKI of the running test file: valid from its first test to its last. */
extern wt_pki wt_tls_pki;

/* cmocka group setup and teardown: make and remove wt_tls_pki. 0, or -1 (printed). */
int wt_tls_suite_setup(void **state);
int wt_tls_suite_teardown(void **state);

/* A TLS test file's main(): its tests (an array of struct CMUnitTest) between the two. */
#define wt_tls_run_tests(tests) \
    cmocka_run_group_tests(tests, wt_tls_suite_setup, wt_tls_suite_teardown)

/* wt_config for one listener on tls://127.0.0.1:0 that presents the PKI's server certificate
 * (for localhost and 127.0.0.1), with opens and closes counted (wt_count_open,
 * wt_count_close). The strings are borrowed until the server stops. */
void wt_tls_config(weft_config *cfg, weft_action (*on_traffic)(weft_conn *), unsigned loops);

/* wt_connect_tcp, tried again when a signal interrupted the connect (the io_uring backend's
 * threads make that happen to a test's blocking calls now and then). */
int wt_tls_connect_tcp(int port);

/* A new connection to port (failing the test if the connect does) and a client handshake on
 * it with o; NULL o: verify the server against the PKI's CA, as localhost. The SSL
 * (wt_tls_close frees it and its socket), or NULL with the reason printed and the socket
 * closed. */
SSL *wt_tls_client(int port, const wt_tls_opts *o);

#endif /* WEFT_TEST_TLS_SUITE_H */
