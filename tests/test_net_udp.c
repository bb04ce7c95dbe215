/* Datagrams: udp:// and unixgram:// listeners. Each datagram is one on_traffic call, the
 * reply is one datagram, and nothing is ever merged or split; weft_conn_get_peer_addr is the
 * sender; a datagram too big for the read buffer is dropped and counted.
 *
 * The server's handler echoes, except for a few requests that start with '?', which ask it
 * to report what it sees (the sender's address, its loop) or to send elsewhere.
 *
 * The same on Windows (the IOCP backend's overlapped WSARecvFrom), with the client sockets of
 * wt_sock.h; there unixgram:// is refused at start (Winsock has no Unix datagram sockets),
 * which the unixgram cases check before they report themselves skipped, and a UDP port is
 * one socket served by loop 0, Windows having no SO_REUSEPORT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h> /* unlink, access */

#include "harness.h"
#include "platform.h" /* core's: what the system lacks (unix sockets, SO_REUSEPORT) */

#ifndef SOCK_CLOEXEC
#define SOCK_CLOEXEC 0 /* Windows: sockets are not inherited unless asked */
#endif

#define MAX_DGRAM 1472 /* the largest UDP payload in one 1500-byte Ethernet frame */

/* One datagram out on a connected client socket (Winsock's send takes a char pointer and
 * an int length). */
static ssize_t dsend(int fd, const void *p, size_t n)
{
    return send(fd, p, (int)n, 0);
}

/* A receive timeout on a client socket: a safety net, every wait here is a poll first. */
static void recv_timeout(int fd)
{
#ifdef _WIN32
    DWORD tv = (DWORD)WT_TIMEOUT_MS; /* Winsock's is in milliseconds */
#else
    struct timeval tv = {WT_TIMEOUT_MS / 1000, 0};
#endif
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, (const void *)&tv, sizeof(tv));
}

/* Where the system has no Unix datagram sockets, a unixgram:// listener must be refused at
 * start, with the reason logged; then the test says it is skipped, and why. */
static bool unixgram_refused(void)
{
    const char *why = weft__sock_missing_unix();
    if (why == NULL)
        return false;
    weft_config cfg;
    wt_config(&cfg, wt_echo_on_traffic, 1);
    char path[100], listen[120];
    wt_unix_path(path, sizeof(path), "ugno");
    snprintf(listen, sizeof(listen), "unixgram://%s", path);
    cfg.listen[0] = listen;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), WEFT_EAFNOSUPPORT);
    print_message("SKIPPED: %s\n", why);
    return true;
}

/* Where "?fwd" requests are sent with weft_conn_sendto. Set before the server starts. */
static struct sockaddr_storage fwd_to;
static socklen_t fwd_len;
static _Atomic long handler_bad; /* a handler saw something it should not have */
/* "?stall": the handler says it is stalled, then holds its loop until released (or for
 * WT_TIMEOUT_MS at most), so that a burst waits in the server's socket meanwhile. */
static _Atomic int stall_in, stall_release;

static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, ntohs(s4->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else if (ss->ss_family == AF_UNIX) {
        snprintf(buf, len, "unix:%s", ((const struct sockaddr_un *)ss)->sun_path);
    } else {
        snprintf(buf, len, "family %d", ss->ss_family);
    }
}

static weft_action dgram_handler(weft_conn *c)
{
    if (!weft_conn_is_datagram(c))
        atomic_fetch_add(&handler_bad, 1);
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    if (n >= 5 && memcmp(p, "?addr", 5) == 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char buf[200];
        if (weft_conn_get_peer_addr(c, &ss, &sl) != 0)
            snprintf(buf, sizeof(buf), "no peer");
        else
            format_addr(&ss, buf, sizeof(buf));
        weft_conn_write(c, buf, strlen(buf));
    } else if (n >= 5 && memcmp(p, "?loop", 5) == 0) {
        char buf[32];
        snprintf(buf, sizeof(buf), "loop %u", weft_conn_get_loop(c));
        weft_conn_write(c, buf, strlen(buf));
    } else if (n >= 6 && memcmp(p, "?stall", 6) == 0) {
        atomic_store(&stall_in, 1);
        int64_t t0 = wt_now_ms();
        while (!atomic_load(&stall_release) && wt_now_ms() - t0 < WT_TIMEOUT_MS)
            wt_sleep_ms(1);
        weft_conn_write(c, "stalled", 7);
    } else if (n >= 4 && memcmp(p, "?fwd", 4) == 0) {
        if (weft_conn_sendto(c, (struct sockaddr *)&fwd_to, fwd_len, p + 4, (size_t)n - 4) != 0)
            atomic_fetch_add(&handler_bad, 1);
        weft_conn_write(c, "sent", 4);
    } else if (n > 0) {
        if (weft_conn_write(c, p, (size_t)n) != 0)
            atomic_fetch_add(&handler_bad, 1);
    }
    /* Bytes left unread go with the datagram; reading a part must not leak into the next. */
    return WEFT_ACTION_NONE;
}

static void udp_server_bufs(wt_server *s, const char *listen, unsigned loops, size_t rbuf,
                            unsigned uring_buffers)
{
    atomic_store(&handler_bad, 0);
    weft_config cfg;
    wt_config(&cfg, dgram_handler, loops);
    cfg.listen[0] = listen;
    if (rbuf > 0)
        cfg.read_buffer_size = rbuf;
    if (uring_buffers > 0)
        cfg.uring_buffers = uring_buffers;
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

static void udp_server(wt_server *s, const char *listen, unsigned loops, size_t rbuf)
{
    udp_server_bufs(s, listen, loops, rbuf, 0);
}

/* A UDP socket of family bound to ip (port 0) and connected to the server's port on
 * server_ip, with receive and send timeouts. */
static int udp_client(int family, const char *ip, const char *server_ip, int port)
{
    int fd = (int)socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    recv_timeout(fd);
    int big = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, (const void *)&big, sizeof(big));
    struct sockaddr_storage me, srv;
    memset(&me, 0, sizeof(me));
    memset(&srv, 0, sizeof(srv));
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&me, *b = (struct sockaddr_in *)&srv;
        a->sin_family = b->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
        assert_int_equal(inet_pton(AF_INET, server_ip, &b->sin_addr), 1);
        b->sin_port = htons((uint16_t)port);
        len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&me, *b = (struct sockaddr_in6 *)&srv;
        a->sin6_family = b->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
        assert_int_equal(inet_pton(AF_INET6, server_ip, &b->sin6_addr), 1);
        b->sin6_port = htons((uint16_t)port);
        len = sizeof(*a);
    }
    assert_int_equal(bind(fd, (struct sockaddr *)&me, len), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&srv, len), 0);
    return fd;
}

/* Receives one datagram within ms; its length, or -1 on a timeout. Once poll said the
 * socket is readable a datagram waits there, so a plain recv takes it at once (on Windows
 * one call, where wt_recv_now makes three). */
static ssize_t recv_within(int fd, void *buf, size_t len, int ms)
{
    struct pollfd pf = {fd, POLLIN, 0};
    if (wt_poll(&pf, 1, ms) != 1)
        return -1;
    return recv(fd, buf, (int)len, 0);
}

static void ask(int fd, const char *q, char *out, size_t outlen)
{
    assert_int_equal(dsend(fd, q, strlen(q)), (ssize_t)strlen(q));
    ssize_t n = recv_within(fd, out, outlen - 1, WT_TIMEOUT_MS);
    assert_true(n >= 0);
    out[n] = '\0';
}

/* The handler's reply can reach the client a moment before the loop counts it: wait for
 * the counts rather than read them once. */
typedef struct dg_want {
    weft_engine *e;
    uint64_t in, out;
} dg_want;

static bool dg_counted(void *arg)
{
    dg_want *w = arg;
    weft_loop_stats st = wt_stats(w->e);
    return st.datagrams_in >= w->in && st.datagrams_out >= w->out;
}

static weft_loop_stats wait_dgrams(weft_engine *e, uint64_t in, uint64_t out)
{
    dg_want w = {e, in, out};
    (void)wt_wait_for(dg_counted, &w, WT_TIMEOUT_MS);
    return wt_stats(e);
}

/* ---- 10,000 datagrams, sizes 1..1472 ---- */

#define ECHO_COUNT 10000
#define WINDOW     16

static size_t size_of(uint32_t seq)
{
    return 1 + seq % MAX_DGRAM;
}

/* Echo of 10,000 datagrams of every size from 1 to 1472, at most WINDOW in flight. Sizes in
 * a window are all different, so a reply names its request by its length alone and then
 * must equal it byte for byte: a merged, split, corrupt or stray reply has no match. A
 * request whose reply does not come within WT_TIMEOUT_MS counts as lost: a reply that is
 * merely late (a loaded machine) is not a loss. With a window this small nothing on
 * loopback has a reason to drop a datagram, so loss must be zero. The run is bounded by its
 * progress, not its total time (under Wine on a loaded machine a datagram's round trip
 * costs milliseconds): every WT_TIMEOUT_MS at least one request is answered or lost, and a
 * window's worth of losses ends it. */
static void test_udp_echo_10000(void **state)
{
    (void)state;
    wt_server s;
    udp_server(&s, "udp://127.0.0.1:0", 1, 0);
    int fd = udp_client(AF_INET, "127.0.0.1", "127.0.0.1", s.port);

    uint8_t req[MAX_DGRAM], got[MAX_DGRAM + 16];
    uint32_t win[WINDOW];
    int64_t sent_at[WINDOW];
    int inflight = 0;
    uint32_t next = 0;
    long lost = 0, bad = 0, ok = 0;
    int64_t t0 = wt_now_ms(), progress = t0;
    while ((next < ECHO_COUNT || inflight > 0) && lost <= WINDOW) {
        while (next < ECHO_COUNT && inflight < WINDOW) {
            size_t len = size_of(next);
            wt_fill(req, len, next);
            assert_int_equal(dsend(fd, req, len), (ssize_t)len);
            win[inflight] = next;
            sent_at[inflight] = wt_now_ms();
            inflight++;
            next++;
        }
        ssize_t n = recv_within(fd, got, sizeof(got), 50);
        if (n > 0) {
            int k;
            for (k = 0; k < inflight; k++)
                if (size_of(win[k]) == (size_t)n)
                    break;
            if (k == inflight) {
                bad++;
                continue;
            }
            wt_fill(req, (size_t)n, win[k]);
            if (memcmp(req, got, (size_t)n) != 0)
                bad++;
            else
                ok++;
            progress = wt_now_ms();
            memmove(&win[k], &win[k + 1], (size_t)(inflight - k - 1) * sizeof(win[0]));
            memmove(&sent_at[k], &sent_at[k + 1], (size_t)(inflight - k - 1) * sizeof(sent_at[0]));
            inflight--;
        } else if (inflight > 0 && wt_now_ms() - sent_at[0] > WT_TIMEOUT_MS) {
            lost++;
            progress = wt_now_ms();
            memmove(&win[0], &win[1], (size_t)(inflight - 1) * sizeof(win[0]));
            memmove(&sent_at[0], &sent_at[1], (size_t)(inflight - 1) * sizeof(sent_at[0]));
            inflight--;
        }
        assert_true(wt_now_ms() - progress < 2 * WT_TIMEOUT_MS);
    }
    print_message("udp echo: %ld of %d datagrams back intact, %ld lost, %ld bad, %lld ms\n", ok,
                  ECHO_COUNT, lost, bad, (long long)(wt_now_ms() - t0));
    assert_int_equal(bad, 0);
    assert_int_equal(lost, 0);
    assert_int_equal(ok, ECHO_COUNT);
    weft_loop_stats st = wait_dgrams(s.engine, ECHO_COUNT, ECHO_COUNT);
    assert_int_equal(st.datagrams_in, ECHO_COUNT);
    assert_int_equal(st.datagrams_out, ECHO_COUNT);
    assert_int_equal(st.datagrams_dropped, 0);
    assert_int_equal(st.live, 0); /* a datagram socket is not a connection */
    assert_int_equal(atomic_load(&handler_bad), 0);
    wt_close(fd);
    wt_server_stop(&s);
}

/* ---- never merged, never split ---- */

/* A burst sent without reading in between: the server sees each datagram on its own (a
 * merge would echo one long reply, a split two short ones), so every reply has exactly the
 * length and bytes of one request. */
static void test_udp_boundaries(void **state)
{
    (void)state;
    wt_server s;
    udp_server(&s, "udp://127.0.0.1:0", 1, 0);
    int fd = udp_client(AF_INET, "127.0.0.1", "127.0.0.1", s.port);
    enum { BURST = 32 };
    static const size_t sizes[BURST] = {
        1,    2,    3,    7,    8,    15,   16,   17,   100, 255, 256, 257, 511, 512, 513, 999,
        1000, 1023, 1024, 1025, 1200, 1400, 1471, 1472, 4,   5,   6,   9,   10,  11,  12,  13};
    uint8_t buf[MAX_DGRAM], got[4096];
    for (int i = 0; i < BURST; i++) {
        wt_fill(buf, sizes[i], (uint32_t)i + 500);
        assert_int_equal(dsend(fd, buf, sizes[i]), (ssize_t)sizes[i]);
    }
    bool seen[BURST] = {false};
    for (int r = 0; r < BURST; r++) {
        ssize_t n = recv_within(fd, got, sizeof(got), WT_TIMEOUT_MS);
        assert_true(n > 0);
        int k;
        for (k = 0; k < BURST; k++)
            if (sizes[k] == (size_t)n && !seen[k])
                break;
        assert_true(k < BURST);
        wt_fill(buf, sizes[k], (uint32_t)k + 500);
        assert_memory_equal(buf, got, sizes[k]);
        seen[k] = true;
    }
    assert_true(recv_within(fd, got, sizeof(got), 100) < 0); /* nothing extra */
    weft_loop_stats st = wait_dgrams(s.engine, BURST, BURST);
    assert_int_equal(st.datagrams_in, BURST);
    assert_int_equal(st.datagrams_out, BURST);
    wt_close(fd);
    wt_server_stop(&s);
}

/* ---- peer addresses ---- */

static void check_peer_addr(int fd, int family)
{
    struct sockaddr_storage me;
    socklen_t ml = sizeof(me);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &ml), 0);
    assert_int_equal(me.ss_family, family);
    char want[200], got[200];
    format_addr(&me, want, sizeof(want));
    ask(fd, "?addr", got, sizeof(got));
    assert_string_equal(got, want);
}

/* The handler formats weft_conn_get_peer_addr; it must be each client's own address and port,
 * from a non-default loopback address too. */
static void test_udp_peer_ipv4(void **state)
{
    (void)state;
    wt_server s;
    udp_server(&s, "udp://127.0.0.1:0", 1, 0);
    int a = udp_client(AF_INET, "127.0.0.1", "127.0.0.1", s.port);
    int b = udp_client(AF_INET, "127.0.0.9", "127.0.0.1", s.port);
    for (int i = 0; i < 3; i++) {
        check_peer_addr(a, AF_INET);
        check_peer_addr(b, AF_INET);
    }
    wt_close(a);
    wt_close(b);
    wt_server_stop(&s);
}

static bool ipv6_loopback_usable(void)
{
    int fd = (int)socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::1", &sa.sin6_addr);
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    wt_close(fd);
    return ok;
}

static void test_udp_peer_ipv6(void **state)
{
    (void)state;
    if (!ipv6_loopback_usable()) {
        print_message("::1 is not available here; skipping the IPv6 test\n");
        skip();
    }
    wt_server s;
    udp_server(&s, "udp://[::1]:0", 1, 0);
    assert_int_equal(strncmp(s.url, "udp://[::1]:", 12), 0);
    int fd = udp_client(AF_INET6, "::1", "::1", s.port);
    check_peer_addr(fd, AF_INET6);
    uint8_t out[MAX_DGRAM], in[MAX_DGRAM];
    wt_fill(out, sizeof(out), 66);
    assert_int_equal(dsend(fd, out, sizeof(out)), (ssize_t)sizeof(out));
    assert_int_equal(recv_within(fd, in, sizeof(in), WT_TIMEOUT_MS), (ssize_t)sizeof(out));
    assert_memory_equal(in, out, sizeof(out));
    wt_close(fd);
    wt_server_stop(&s);
}

/* ---- unixgram ---- */

/* A Unix datagram client must bind a path of its own, or the server has nowhere to answer.
 * Echo of many sizes, then the peer address the handler sees is the client's path. */
static void test_unixgram_echo(void **state)
{
    (void)state;
    if (unixgram_refused())
        skip();
    char spath[100], cpath[100], listen[120];
    wt_unix_path(spath, sizeof(spath), "ugs");
    wt_unix_path(cpath, sizeof(cpath), "ugc");
    snprintf(listen, sizeof(listen), "unixgram://%s", spath);
    wt_server s;
    udp_server(&s, listen, 2, 0);
    assert_string_equal(s.url, listen);

    int fd = (int)socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un me, srv;
    memset(&me, 0, sizeof(me));
    memset(&srv, 0, sizeof(srv));
    me.sun_family = srv.sun_family = AF_UNIX;
    strcpy(me.sun_path, cpath);
    strcpy(srv.sun_path, spath);
    unlink(cpath);
    assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&srv, sizeof(srv)), 0);

    uint8_t out[8192], in[8192 + 16];
    for (uint32_t i = 0; i < 500; i++) {
        size_t len = 1 + (i * 37) % sizeof(out);
        wt_fill(out, len, i);
        assert_int_equal(dsend(fd, out, len), (ssize_t)len);
        ssize_t n = recv_within(fd, in, sizeof(in), WT_TIMEOUT_MS);
        assert_int_equal(n, (ssize_t)len);
        assert_memory_equal(in, out, len);
    }
    char got[200], want[200];
    snprintf(want, sizeof(want), "unix:%s", cpath);
    ask(fd, "?addr", got, sizeof(got));
    assert_string_equal(got, want);
    /* Served by loop 0, whatever the number of loops. */
    ask(fd, "?loop", got, sizeof(got));
    assert_string_equal(got, "loop 0");
    weft_loop_stats st = wait_dgrams(s.engine, 502, 502);
    assert_int_equal(st.datagrams_in, 502);
    assert_int_equal(st.datagrams_out, 502);
    wt_close(fd);
    unlink(cpath);
    wt_server_stop(&s);
    /* The server's socket file goes with the engine. */
    assert_int_equal(access(spath, F_OK), -1);
}

/* ---- several loops ---- */

/* Every loop has its own SO_REUSEPORT socket and the kernel spreads senders over them by
 * their address: 64 client sockets reach all four loops (the chance that a loop gets none
 * by hashing is about 4 * (3/4)^64, 4e-8). Where the system has no SO_REUSEPORT (Windows)
 * the port is one socket, and loop 0 serves every sender. */
static void test_udp_reuseport_loops(void **state)
{
    (void)state;
    enum { LOOPS = 4, CLIENTS = 64 };
    const char *no_reuse = weft__sock_missing_reuse_port();
    if (no_reuse != NULL)
        print_message("%s: one socket, served by loop 0\n", no_reuse);
    wt_server s;
    udp_server(&s, "udp://127.0.0.1:0", LOOPS, 0);
    int hits[LOOPS] = {0};
    for (int i = 0; i < CLIENTS; i++) {
        int fd = udp_client(AF_INET, "127.0.0.1", "127.0.0.1", s.port);
        char got[64];
        ask(fd, "?loop", got, sizeof(got));
        unsigned k = LOOPS;
        assert_int_equal(sscanf(got, "loop %u", &k), 1);
        assert_true(k < LOOPS);
        hits[k]++;
        /* And an echo on the same socket, answered by the same loop's socket. */
        uint8_t out[300], in[300];
        wt_fill(out, sizeof(out), (uint32_t)i);
        assert_int_equal(dsend(fd, out, sizeof(out)), (ssize_t)sizeof(out));
        assert_int_equal(recv_within(fd, in, sizeof(in), WT_TIMEOUT_MS), (ssize_t)sizeof(out));
        assert_memory_equal(in, out, sizeof(out));
        wt_close(fd);
    }
    weft_stats st;
    weft_loop_stats per[LOOPS];
    assert_int_equal(weft_engine_get_stats(s.engine, &st, per), 0);
    for (int k = 0; k < LOOPS; k++) {
        print_message("loop %d served %d of %d senders\n", k, hits[k], CLIENTS);
        if (no_reuse != NULL)
            assert_int_equal(hits[k], k == 0 ? CLIENTS : 0);
        else
            assert_true(hits[k] > 0);
        assert_int_equal(per[k].datagrams_in, (uint64_t)hits[k] * 2);
    }
    wt_server_stop(&s);
}

/* ---- oversize ---- */

/* With a 1 KiB read buffer, a 1025-byte datagram cannot be taken whole: it is dropped (not
 * cut to 1024 bytes), counted in datagrams_dropped, and the next one is served. Exactly
 * 1024 bytes still fit. */
static void test_udp_oversize_dropped(void **state)
{
    (void)state;
    wt_server s;
    udp_server(&s, "udp://127.0.0.1:0", 1, 1024);
    int fd = udp_client(AF_INET, "127.0.0.1", "127.0.0.1", s.port);
    uint8_t big[MAX_DGRAM], small[100], in[MAX_DGRAM];
    wt_fill(big, sizeof(big), 1);
    wt_fill(small, sizeof(small), 2);
    assert_int_equal(dsend(fd, big, 1025), 1025);
    assert_int_equal(dsend(fd, big, sizeof(big)), (ssize_t)sizeof(big));
    assert_int_equal(dsend(fd, small, sizeof(small)), (ssize_t)sizeof(small));
    assert_int_equal(recv_within(fd, in, sizeof(in), WT_TIMEOUT_MS), (ssize_t)sizeof(small));
    assert_memory_equal(in, small, sizeof(small));
    assert_int_equal(dsend(fd, big, 1024), 1024);
    assert_int_equal(recv_within(fd, in, sizeof(in), WT_TIMEOUT_MS), 1024);
    assert_memory_equal(in, big, 1024);
    assert_true(recv_within(fd, in, sizeof(in), 100) < 0);
    weft_loop_stats st = wait_dgrams(s.engine, 2, 2);
    assert_int_equal(st.datagrams_dropped, 2);
    assert_int_equal(st.datagrams_in, 2);
    assert_int_equal(st.datagrams_out, 2);
    wt_close(fd);
    wt_server_stop(&s);
}

/* ---- sendto a third address ---- */

/* "?fwd<payload>" makes the handler send <payload> with weft_conn_sendto to a third socket
 * (not the sender) and answer the sender "sent". The third socket gets exactly the payload,
 * from the server's address. */
static void test_udp_sendto_third(void **state)
{
    (void)state;
    int third = (int)socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in ta;
    memset(&ta, 0, sizeof(ta));
    ta.sin_family = AF_INET;
    ta.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(third, (struct sockaddr *)&ta, sizeof(ta)), 0);
    fwd_len = sizeof(fwd_to);
    assert_int_equal(getsockname(third, (struct sockaddr *)&fwd_to, &fwd_len), 0);

    wt_server s;
    udp_server(&s, "udp://127.0.0.1:0", 1, 0);
    int fd = udp_client(AF_INET, "127.0.0.1", "127.0.0.1", s.port);
    char got[64];
    ask(fd, "?fwdhello, third party", got, sizeof(got));
    assert_string_equal(got, "sent");

    char buf[64];
    struct sockaddr_in from;
    socklen_t fl = sizeof(from);
    struct pollfd pf = {third, POLLIN, 0};
    assert_int_equal(wt_poll(&pf, 1, WT_TIMEOUT_MS), 1);
    ssize_t n = recvfrom(third, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
    assert_int_equal(n, (ssize_t)strlen("hello, third party"));
    assert_memory_equal(buf, "hello, third party", (size_t)n);
    assert_int_equal(ntohs(from.sin_port), s.port);
    assert_int_equal(wait_dgrams(s.engine, 1, 2).datagrams_out, 2);
    assert_int_equal(atomic_load(&handler_bad), 0);
    wt_close(fd);
    wt_close(third);
    wt_server_stop(&s);
}

/* ---- a burst from many senders while the loop is busy ---- */

/* The kernel's count of datagrams it dropped on the IPv4 UDP socket bound to port (a full
 * receive buffer), from /proc/net/udp; 0 if the socket is not listed. */
static long kernel_drops(int port)
{
    FILE *f = fopen("/proc/net/udp", "r");
    if (f == NULL)
        return 0;
    char line[512];
    long drops = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned ip, lport;
        if (sscanf(line, " %*d: %x:%x", &ip, &lport) != 2 || lport != (unsigned)port)
            continue;
        /* The last field is the drop count. */
        char *last = strrchr(line, ' ');
        if (last != NULL)
            drops = strtol(last + 1, NULL, 10);
    }
    fclose(f);
    return drops;
}

/* The payload of burst datagram k of sender i: a header naming both, then a pattern. */
static size_t burst_payload(uint8_t *buf, int i, int k, size_t len)
{
    wt_fill(buf, len, (uint32_t)(i * 1000 + k));
    char head[16];
    int h = snprintf(head, sizeof(head), "b%03d.%03d", i, k);
    memcpy(buf, head, (size_t)h);
    return len;
}

typedef struct burst_served {
    weft_engine *e;
    int port;
    long drops0, sent;
} burst_served;

static bool burst_done(void *arg)
{
    burst_served *b = arg;
    weft_loop_stats st = wt_stats(b->e);
    long kd = b->port > 0 ? kernel_drops(b->port) - b->drops0 : 0;
    return (long)(st.datagrams_in + st.datagrams_dropped) + kd >= b->sent &&
           st.datagrams_out >= st.datagrams_in;
}

typedef struct burst_want {
    int senders, per_sender; /* per_sender datagrams from each sender */
    size_t rbuf;             /* the server's read buffer */
    size_t (*size_of)(int i, int k);
} burst_want;

/* Every sender fd[i] sends its datagrams while the server's only loop is held by "?stall"
 * from ctl, so they all wait in the server's socket at once (with io_uring's multishot
 * recvmsg, more than the loop's datagram buffers: the receive runs out of buffers and is
 * re-armed once they are back). Then every sender must get back exactly its own datagrams, each once and intact,
 * and nothing else; a datagram larger than the read buffer is dropped and counted; a
 * datagram the kernel dropped for a full socket buffer (*kdrops) is the only one that may
 * be missing. Returns the number of replies. */
static long burst_run(wt_server *s, int ctl, const int *fd, const burst_want *w, long *kdrops,
                      int port)
{
    long drops0 = port > 0 ? kernel_drops(port) : 0;
    atomic_store(&stall_in, 0);
    atomic_store(&stall_release, 0);
    assert_int_equal(dsend(ctl, "?stall", 6), 6);
    int64_t t0 = wt_now_ms();
    while (!atomic_load(&stall_in)) {
        assert_true(wt_now_ms() - t0 < WT_TIMEOUT_MS);
        wt_sleep_ms(1);
    }
    static uint8_t buf[70000], got[70000];
    long big = 0, sent = 0;
    for (int k = 0; k < w->per_sender; k++) {
        for (int i = 0; i < w->senders; i++) {
            size_t len = burst_payload(buf, i, k, w->size_of(i, k));
            assert_int_equal(dsend(fd[i], buf, len), (ssize_t)len);
            if (len > w->rbuf)
                big++;
            sent++;
        }
    }
    atomic_store(&stall_release, 1);
    char reply[16];
    ssize_t n = recv_within(ctl, reply, sizeof(reply), WT_TIMEOUT_MS);
    assert_int_equal(n, 7);
    assert_memory_equal(reply, "stalled", 7);

    /* Served when every datagram was read (or dropped, by the server or the kernel) and
     * every reply sent: then the replies wait in the senders' sockets. */
    burst_served bs = {s->engine, port, drops0, sent + 1};
    assert_true(wt_wait_for(burst_done, &bs, 2 * WT_TIMEOUT_MS));
    *kdrops = port > 0 ? kernel_drops(port) - drops0 : 0;
    long replies = 0, bad = 0;
    for (int i = 0; i < w->senders; i++) {
        bool seen[64] = {false};
        assert_true(w->per_sender <= 64);
        /* Its replies, then 100 ms of silence: nothing more may come. */
        int expect = 0;
        for (int k = 0; k < w->per_sender; k++)
            expect += w->size_of(i, k) <= w->rbuf;
        for (int r = 0; r < expect + 1; r++) {
            n = recv_within(fd[i], got, sizeof(got), 100);
            if (n < 0)
                break;
            int si = -1, k = -1;
            if (n < 8 || sscanf((const char *)got, "b%3d.%3d", &si, &k) != 2 || si != i || k < 0 ||
                k >= w->per_sender || seen[k] || (size_t)n != w->size_of(i, k)) {
                bad++;
                continue;
            }
            burst_payload(buf, i, k, (size_t)n);
            if (memcmp(buf, got, (size_t)n) != 0) {
                bad++;
                continue;
            }
            seen[k] = true;
            replies++;
        }
    }
    weft_loop_stats st = wait_dgrams(s->engine, (uint64_t)(replies + 1), (uint64_t)(replies + 1));
    print_message("burst: %ld datagrams from %d senders, %ld too big, %ld echoed, %ld bad, %ld "
                  "dropped by the kernel; %llu buffer exhaustions\n",
                  sent, w->senders, big, replies, bad, *kdrops,
                  (unsigned long long)st.buffer_exhaustions);
    assert_int_equal(bad, 0);
    assert_int_equal(replies, sent - big - *kdrops);
    assert_int_equal(st.datagrams_in, (uint64_t)(replies + 1));
    assert_int_equal(st.datagrams_out, (uint64_t)(replies + 1));
    assert_int_equal(st.datagrams_dropped, (uint64_t)big);
    assert_int_equal(atomic_load(&handler_bad), 0);
    /* With io_uring's multishot recvmsg (WEFT_URING_DGRAM=multishot) the burst outnumbers
     * the loop's datagram buffers, and the receive meets that. */
    const char *mode = getenv("WEFT_URING_DGRAM");
    if (weft_engine_get_backend(s->engine) == WEFT_BACKEND_IO_URING && mode != NULL &&
        strcmp(mode, "multishot") == 0)
        assert_true(st.buffer_exhaustions > 0);
    return replies;
}

#define BURST_RBUF 1024

/* 24 senders x 6: sizes from 8 bytes to just over the read buffer; every sender's third is
 * one byte too big, its last exactly the read buffer. 144 datagrams this small fit the
 * kernel's default socket buffer (212992 bytes), so the kernel has no reason to drop one. */
static size_t udp_burst_size(int i, int k)
{
    if (k == 2)
        return BURST_RBUF + 1;
    if (k == 5)
        return BURST_RBUF; /* exactly the read buffer: still whole */
    return 8 + (size_t)((i * 37 + k * 101) % 200);
}

/* Many senders, one burst, one loop with only 8 datagram buffers (io_uring): every reply
 * goes back to the address its request came from. */
static void test_udp_burst_many_senders(void **state)
{
    (void)state;
    enum { SENDERS = 24, PER = 6 };
    wt_server s;
    udp_server_bufs(&s, "udp://127.0.0.1:0", 1, BURST_RBUF, 8);
    int ctl = udp_client(AF_INET, "127.0.0.1", "127.0.0.1", s.port);
    int fd[SENDERS];
    for (int i = 0; i < SENDERS; i++)
        fd[i] = udp_client(AF_INET, "127.0.0.1", "127.0.0.1", s.port);
    burst_want w = {SENDERS, PER, BURST_RBUF, udp_burst_size};
    long kdrops = 0;
    burst_run(&s, ctl, fd, &w, &kdrops, s.port);
    /* And the loop serves as before once the burst is over. */
    char got[64];
    ask(fd[0], "?loop", got, sizeof(got));
    assert_string_equal(got, "loop 0");
    for (int i = 0; i < SENDERS; i++)
        wt_close(fd[i]);
    wt_close(ctl);
    wt_server_stop(&s);
}

/* unixgram: a receiving socket queues at most net.unix.max_dgram_qlen datagrams (10 by
 * default; a sender meets EAGAIN beyond), so the burst is 5 senders x 2, one too big. */
static size_t unix_burst_size(int i, int k)
{
    return i == 3 && k == 1 ? BURST_RBUF + 100 : 100 + (size_t)(i * 150 + k * 7);
}

static void test_unixgram_burst_many_senders(void **state)
{
    (void)state;
    if (unixgram_refused())
        skip();
    enum { SENDERS = 5, PER = 2 };
    char spath[100], cpath[SENDERS + 1][100], listen[120];
    wt_unix_path(spath, sizeof(spath), "ubs");
    snprintf(listen, sizeof(listen), "unixgram://%s", spath);
    wt_server s;
    udp_server_bufs(&s, listen, 1, BURST_RBUF, 4);
    int fd[SENDERS + 1];
    for (int i = 0; i <= SENDERS; i++) {
        char tag[8];
        snprintf(tag, sizeof(tag), "ubc%d", i);
        wt_unix_path(cpath[i], sizeof(cpath[i]), tag);
        fd[i] = (int)socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(fd[i] >= 0);
        struct sockaddr_un me, srv;
        memset(&me, 0, sizeof(me));
        memset(&srv, 0, sizeof(srv));
        me.sun_family = srv.sun_family = AF_UNIX;
        strcpy(me.sun_path, cpath[i]);
        strcpy(srv.sun_path, spath);
        unlink(cpath[i]);
        assert_int_equal(bind(fd[i], (struct sockaddr *)&me, sizeof(me)), 0);
        assert_int_equal(connect(fd[i], (struct sockaddr *)&srv, sizeof(srv)), 0);
        struct timeval tv = {WT_TIMEOUT_MS / 1000, 0};
        setsockopt(fd[i], SOL_SOCKET, SO_SNDTIMEO, (const void *)&tv, sizeof(tv));
    }
    burst_want w = {SENDERS, PER, BURST_RBUF, unix_burst_size};
    long kdrops = 0;
    /* fd[SENDERS] is the control socket. */
    burst_run(&s, fd[SENDERS], fd, &w, &kdrops, 0);
    for (int i = 0; i <= SENDERS; i++) {
        wt_close(fd[i]);
        unlink(cpath[i]);
    }
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_udp_echo_10000),
        cmocka_unit_test(test_udp_boundaries),
        cmocka_unit_test(test_udp_peer_ipv4),
        cmocka_unit_test(test_udp_peer_ipv6),
        cmocka_unit_test(test_unixgram_echo),
        cmocka_unit_test(test_udp_reuseport_loops),
        cmocka_unit_test(test_udp_oversize_dropped),
        cmocka_unit_test(test_udp_sendto_third),
        cmocka_unit_test(test_udp_burst_many_senders),
        cmocka_unit_test(test_unixgram_burst_many_senders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
