/* The plain-libevent TLS echo server: what a C programmer writes with libevent's OpenSSL
 * bufferevents and nothing else, used as the TLS reference for the echo benchmark
 * (echo.sh --tls).
 *
 * One thread, one event_base, an evconnlistener, and per connection an OpenSSL bufferevent
 * (bufferevent_openssl_socket_new, accepting) whose read callback moves its whole input
 * buffer to its output buffer, as ref_libevent_echo does in the clear. One SSL_CTX with
 * OpenSSL's defaults (TLS 1.2 at least, session tickets on, the default cipher suites and
 * groups); no watermarks and no tuning: libevent as people use it.
 *
 *   ref_libevent_tls_echo --port PORT [--host ADDR] --cert FILE --key FILE
 *
 * Prints nothing per connection; SIGINT or SIGTERM stops it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev); /* frees the SSL too (BEV_OPT_CLOSE_ON_FREE) */
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)sa;
    (void)salen;
    SSL_CTX *ctx = arg;
    struct event_base *base = evconnlistener_get_base(l);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SSL *ssl = SSL_new(ctx);
    if (!ssl) {
        evutil_closesocket(fd);
        return;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    static int told;
    if (!told) {
        fprintf(stderr, "ref_libevent_tls_echo: accept: %s\n", strerror(errno));
        told = 1;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

static SSL_CTX *make_ctx(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) &&
        SSL_CTX_use_certificate_chain_file(ctx, cert) == 1 &&
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 &&
        SSL_CTX_check_private_key(ctx) == 1)
        return ctx;
    char why[256];
    ERR_error_string_n(ERR_get_error(), why, sizeof(why));
    fprintf(stderr, "ref_libevent_tls_echo: cannot load %s / %s: %s\n", cert, key, why);
    SSL_CTX_free(ctx);
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"port", required_argument, NULL, 'p'},
                                             {"host", required_argument, NULL, 'h'},
                                             {"cert", required_argument, NULL, 'c'},
                                             {"key", required_argument, NULL, 'k'},
                                             {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1", *cert = NULL, *key = NULL;
    int port = -1, ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'h':
            host = optarg;
            break;
        case 'c':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        default:
            goto usage;
        }
    }
    if (optind != argc || port < 0 || port > 65535 || !cert || !key)
        goto usage;

    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "ref_libevent_tls_echo: not an IPv4 address: %s\n", host);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    SSL_CTX *ctx = make_ctx(cert, key);
    if (!ctx)
        return 1;
    struct event_base *base = event_base_new();
    if (!base) {
        fprintf(stderr, "ref_libevent_tls_echo: event_base_new failed\n");
        return 1;
    }
    struct evconnlistener *l =
        evconnlistener_new_bind(base, on_accept, ctx, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE,
                                SOMAXCONN, (struct sockaddr *)&sin, sizeof(sin));
    if (!l) {
        fprintf(stderr, "ref_libevent_tls_echo: cannot listen on %s:%d: %s\n", host, port,
                strerror(errno));
        return 1;
    }
    evconnlistener_set_error_cb(l, on_accept_error);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);

    event_base_dispatch(base);

    /* Connections still open at exit are left to the kernel, as in ref_libevent_echo. */
    event_free(sigint);
    event_free(sigterm);
    evconnlistener_free(l);
    event_base_free(base);
    SSL_CTX_free(ctx);
    return 0;

usage:
    fprintf(stderr,
            "usage: ref_libevent_tls_echo --port PORT [--host ADDR] --cert FILE --key FILE\n");
    return 2;
}
