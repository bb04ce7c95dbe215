/* Fuzzes the server side of weft's TLS: each input is sent by a raw TCP client to a tls://
 * listener of a running engine (one loop, certificates made at start), so its bytes go the
 * path every TLS connection's go (the backend, weft__conn_recv_done, the BIO over the
 * delivered span, OpenSSL, the codec). When the input's first byte is odd a real ClientHello
 * goes first, so the fuzzer also reaches the states after the server's answer. Each input
 * ends with a FIN and waits for the server to close, so the engine has handled all of it
 * before the next one starts; a crash, a leak or a hang in the engine is the finding. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft/weft.h>

#include "tls_support.h"

static weft_engine *engine;
static int port;
static uint8_t hello[2048];
static size_t hello_len;
static wt_pki pki;

static weft_action echo(weft_conn *c)
{
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    if (n > 0) {
        weft_conn_write(c, p, (size_t)n);
        weft_conn_discard(c, (size_t)n);
    }
    return WEFT_ACTION_NONE;
}

static void stop_engine(void)
{
    weft_engine_stop(engine);
    weft_engine_wait(engine);
    wt_pki_free(&pki);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (wt_pki_make(&pki) != 0)
        abort();
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.listen[0] = "tls://127.0.0.1:0";
    cfg.loops = 1;
    cfg.log_level = WEFT_LOG_OFF;
    cfg.tls.cert_file = pki.server_cert;
    cfg.tls.key_file = pki.server_key;
    cfg.tls.alpn = "h2,http/1.1";
    cfg.handler.on_traffic = echo;
    if (weft_engine_start(&cfg, &engine) != 0)
        abort();
    port = weft_engine_get_listen_port(engine, 0);
    atexit(stop_engine);
    hello_len = wt_tls_client_hello(hello, sizeof(hello));
    return 0;
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server closed: that is an answer too */
        p += w;
        n -= (size_t)w;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        abort();
    if (size > 0 && (data[0] & 1))
        send_all(fd, hello, hello_len);
    send_all(fd, data, size);
    shutdown(fd, SHUT_WR);
    /* Until the server closes: it must, on a FIN without close_notify. */
    uint8_t buf[4096];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10000) != 1)
            abort(); /* the engine hangs on this input */
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0)
            break;
    }
    close(fd);
    return 0;
}
