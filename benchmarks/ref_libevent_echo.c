/* The plain-libevent echo server: what a C programmer writes with libevent and nothing else,
 * used as the "plain libevent" reference for the echo benchmark.
 *
 * One thread, one event_base, an evconnlistener, a bufferevent per connection whose read
 * callback moves its whole input buffer to its output buffer (evbuffer_add_buffer). No
 * watermarks, no tuning: the point is libevent as people use it.
 *
 *   ref_libevent_echo --port PORT [--host ADDR]
 *
 * Prints nothing per connection; SIGINT or SIGTERM stops it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "bench_util.h"

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)sa;
    (void)salen;
    (void)arg;
    struct event_base *base = evconnlistener_get_base(l);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
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
        fprintf(stderr, "ref_libevent_echo: accept: %s\n", strerror(errno));
        told = 1;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    const char *host;
    int port;
    if (bench_server_args(argc, argv, &host, &port, NULL) != 0)
        goto usage;

    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "ref_libevent_echo: not an IPv4 address: %s\n", host);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    if (!base) {
        fprintf(stderr, "ref_libevent_echo: event_base_new failed\n");
        return 1;
    }
    struct evconnlistener *l =
        evconnlistener_new_bind(base, on_accept, NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE,
                                SOMAXCONN, (struct sockaddr *)&sin, sizeof(sin));
    if (!l) {
        fprintf(stderr, "ref_libevent_echo: cannot listen on %s:%d: %s\n", host, port,
                strerror(errno));
        return 1;
    }
    evconnlistener_set_error_cb(l, on_accept_error);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);

    event_base_dispatch(base);

    /* Connections still open at exit are left to the kernel; a benchmark server need not
     * track them just to free them. */
    event_free(sigint);
    event_free(sigterm);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;

usage:
    fprintf(stderr, "usage: ref_libevent_echo --port PORT [--host ADDR]\n");
    return 2;
}
