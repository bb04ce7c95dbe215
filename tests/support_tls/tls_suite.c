/* The TLS test files' shared setup (tls_suite.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "counters.h"
#include "tls_suite.h"

wt_pki wt_tls_pki;

int wt_tls_suite_setup(void **state)
{
    (void)state;
    return wt_pki_make(&wt_tls_pki);
}

int wt_tls_suite_teardown(void **state)
{
    (void)state;
    wt_pki_free(&wt_tls_pki);
    return 0;
}

void wt_tls_config(weft_config *cfg, weft_action (*on_traffic)(weft_conn *), unsigned loops)
{
    wt_config(cfg, on_traffic, loops);
    cfg->listen[0] = "tls://127.0.0.1:0";
    cfg->tls.cert_file = wt_tls_pki.server_cert;
    cfg->tls.key_file = wt_tls_pki.server_key;
    cfg->handler.on_open = wt_count_open;
    cfg->handler.on_close = wt_count_close;
}

int wt_tls_connect_tcp(int port)
{
    int fd = -EINTR;
    for (int i = 0; i < 5 && fd == -EINTR; i++)
        fd = wt_connect_tcp(port);
    return fd;
}

SSL *wt_tls_client(int port, const wt_tls_opts *o)
{
    wt_tls_opts verified = {.ca = wt_tls_pki.ca, .host = "localhost"};
    int fd = wt_tls_connect_tcp(port);
    if (fd < 0)
        fail_msg("connect to port %d: %d", port, fd); /* the server is not the one failing */
    char err[128];
    SSL *s = wt_tls_connect(fd, o != NULL ? o : &verified, err, sizeof(err));
    if (s == NULL) {
        print_message("handshake: %s\n", err);
        wt_close(fd);
    }
    return s;
}
