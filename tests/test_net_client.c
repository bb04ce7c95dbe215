/* Outbound connections: weft_engine_dial and weft_engine_enroll. A dialled connection is
 * served like an accepted one (same handler, codec and connection API); a connect that fails
 * or takes too long ends in on_close with the reason and on_open never runs; a dial that
 * fails at once runs no callback at all.
 *
 * The servers here are weft engines on loopback (or plain sockets the test holds), and the
 * clients are client-only engines with no listener.
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
#ifndef _WIN32
#include <fcntl.h>
#include <sys/resource.h>
#endif

#include "counters.h"
#include "harness.h"
#include "platform.h" /* core's: a non-blocking socket and connect on either system */

/* ---- a client connection that sends its bytes and checks the echo ---- */

typedef struct peer {
    struct peer *self; /* what the context must still point at in every callback */
    uint8_t *want;     /* the bytes to send, and to get back */
    size_t len;
    size_t got;
    _Atomic int opened;
    _Atomic int closed;
    _Atomic int close_err;
    _Atomic int ctx_ok; /* 1 while every callback saw the dial's ctx */
    _Atomic int echoed; /* every byte came back, in order */
    _Atomic int mismatch;
} peer;

static _Atomic long traffic;

/* The shared counts (wt_counts) and this file's own. */
static void reset_state(void)
{
    wt_counters_reset();
    atomic_store(&traffic, 0);
}

static void peer_init(peer *p, size_t len, uint32_t seed)
{
    memset(p, 0, sizeof(*p));
    p->self = p;
    p->len = len;
    p->want = malloc(len ? len : 1);
    assert_non_null(p->want);
    wt_fill(p->want, len, seed);
    atomic_store(&p->ctx_ok, 1);
}

static void peer_free(peer *p)
{
    free(p->want);
    p->want = NULL;
}

static peer *peer_of(weft_conn *c)
{
    peer *p = weft_conn_get_context(c);
    if (p == NULL || p->self != p)
        return NULL;
    return p;
}

static weft_action peer_open(weft_conn *c)
{
    (void)wt_count_open(c);
    peer *p = peer_of(c);
    if (p == NULL)
        return WEFT_ACTION_CLOSE;
    atomic_store(&p->opened, 1);
    if (p->len > 0 && weft_conn_write(c, p->want, p->len) != 0)
        atomic_store(&p->mismatch, 1);
    return WEFT_ACTION_NONE;
}

static weft_action peer_traffic(weft_conn *c)
{
    atomic_fetch_add(&traffic, 1);
    peer *p = peer_of(c);
    if (p == NULL) {
        weft_conn_discard(c, weft_conn_get_buffered(c));
        return WEFT_ACTION_CLOSE;
    }
    const uint8_t *b;
    int n = weft_conn_peek(c, 0, &b);
    if (n <= 0)
        return WEFT_ACTION_NONE;
    if ((size_t)n > p->len - p->got || memcmp(b, p->want + p->got, (size_t)n) != 0)
        atomic_store(&p->mismatch, 1);
    p->got += (size_t)n;
    weft_conn_discard(c, (size_t)n);
    if (p->got >= p->len) {
        atomic_store(&p->echoed, 1);
        return WEFT_ACTION_CLOSE;
    }
    return WEFT_ACTION_NONE;
}

static void peer_close(weft_conn *c, int err)
{
    peer *p = weft_conn_get_context(c);
    if (p == NULL || p->self != p) {
        wt_count_close(c, err);
        return;
    }
    atomic_store(&p->close_err, err);
    wt_count_close(c, err);
    atomic_store(&p->closed, 1); /* last: a test that waited for it sees the counts too */
}

/* A client-only engine: no listener at all. */
static weft_engine *client_start(unsigned loops, weft_codec_config *codec,
                                 weft_action (*on_traffic)(weft_conn *))
{
    weft_config cfg;
    wt_config(&cfg, on_traffic ? on_traffic : peer_traffic, loops);
    cfg.handler.on_open = peer_open;
    cfg.handler.on_close = peer_close;
    if (codec != NULL)
        cfg.codec = *codec;
    weft_engine *e = NULL;
    assert_int_equal(weft_engine_start(&cfg, &e), 0);
    return e;
}

static void client_stop(weft_engine *e)
{
    weft_engine_stop(e);
    weft_engine_wait(e);
}

static void echo_server(wt_server *s, unsigned loops, const char *listen)
{
    weft_config cfg;
    wt_config(&cfg, wt_echo_on_traffic, loops);
    cfg.listen[0] = listen;
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

static bool int_set(void *arg)
{
    return atomic_load((_Atomic int *)arg) != 0;
}

/* ---- connect success ---- */

/* on_open runs once connected, with the dial's ctx; bytes go out and come back through the
 * same connection API an accepted connection has; on_close ends it with 0. */
static void test_dial_success(void **state)
{
    (void)state;
    reset_state();
    wt_server s;
    echo_server(&s, 1, NULL);
    weft_engine *e = client_start(1, NULL, NULL);

    peer p;
    peer_init(&p, 100000, 7);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", s.port);
    assert_int_equal(weft_engine_dial(e, url, -1, 2000, &p), 0);

    assert_true(wt_wait_for(int_set, &p.closed, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&p.opened), 1);
    assert_int_equal(atomic_load(&p.echoed), 1);
    assert_int_equal(atomic_load(&p.mismatch), 0);
    assert_int_equal(atomic_load(&p.ctx_ok), 1);
    assert_int_equal(atomic_load(&p.close_err), 0);
    assert_int_equal(p.got, p.len);
    assert_int_equal(atomic_load(&wt_counts.opened), 1);
    assert_int_equal(atomic_load(&wt_counts.closed), 1);
    weft_loop_stats st = wt_stats(e);
    assert_int_equal(st.bytes_out, p.len);
    assert_int_equal(st.bytes_in, p.len);

    client_stop(e);
    wt_server_stop(&s);
    peer_free(&p);
}

/* ---- refused ---- */

/* A TCP socket bound to 127.0.0.1 on a port the kernel picks, that address in sa: a port
 * no one else can take while the socket is held, listening or not. */
static int bound_loopback_socket(struct sockaddr_in *sa)
{
    assert_int_equal(weft__net_init(), 0);
    weft__sock s;
    assert_int_equal(weft__sock_open(AF_INET, SOCK_STREAM, &s), 0);
    int fd = (int)s;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    socklen_t sl = sizeof(*sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &sl), 0);
    return fd;
}

static bool no_live_conn(void *arg)
{
    return wt_stats(arg).live == 0;
}

/* A port bound by a socket that does not listen answers SYN with RST: on_close with
 * WEFT_ECONNREFUSED, on_open never. Holding the socket keeps anyone else off the port. */
static void test_dial_refused(void **state)
{
    (void)state;
    reset_state();
    struct sockaddr_in sa;
    int hold = bound_loopback_socket(&sa);

    weft_engine *e = client_start(1, NULL, NULL);
    peer p;
    peer_init(&p, 10, 1);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ntohs(sa.sin_port));
    assert_int_equal(weft_engine_dial(e, url, 0, 2000, &p), 0);
    assert_true(wt_wait_for(int_set, &p.closed, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&p.close_err), WEFT_ECONNREFUSED);
    assert_int_equal(atomic_load(&p.opened), 0);
    assert_int_equal(atomic_load(&wt_counts.opened), 0);
    assert_int_equal(atomic_load(&p.ctx_ok), 1);
    /* The engine counts the close once on_close has returned, a moment after p.closed. */
    assert_true(wt_wait_for(no_live_conn, e, WT_TIMEOUT_MS));

    client_stop(e);
    wt_close(hold);
    peer_free(&p);
}

/* ---- timeout ---- */

/* Waits up to ms for a non-blocking connect on fd to finish; true if it did. */
static bool connect_done(int fd, int ms)
{
    struct pollfd pf = {fd, POLLOUT, 0};
    if (wt_poll(&pf, 1, ms) != 1)
        return false;
    int err = 0;
    socklen_t el = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, (void *)&err, &el);
    return err == 0;
}

/* A connect that hangs, on loopback only: a listener with backlog 0 whose accept queue is
 * full and never accepted. Linux then drops further SYNs (ListenOverflows) and the client
 * keeps retransmitting, so its connect stays in progress. The queue is filled until one
 * probe connect demonstrably hangs, so the test proves its own premise. */
static void test_dial_timeout(void **state)
{
    (void)state;
    reset_state();
    struct sockaddr_in sa;
    int lfd = bound_loopback_socket(&sa);
    assert_int_equal(listen(lfd, 0), 0);

    int fill[16];
    int nfill = 0;
    bool hangs = false;
    while (nfill < 16 && !hangs) {
        weft__sock fs;
        assert_int_equal(weft__sock_open(AF_INET, SOCK_STREAM, &fs), 0);
        int fd = (int)fs;
        fill[nfill++] = fd;
        int rc = weft__sock_connect(fs, (struct sockaddr *)&sa, sizeof(sa));
        if (rc == 0)
            continue;
        assert_int_equal(rc, -EINPROGRESS);
        hangs = !connect_done(fd, 300);
    }
    if (!hangs) {
        for (int i = 0; i < nfill; i++)
            wt_close(fill[i]);
        wt_close(lfd);
        print_message("no loopback connect would hang (accept queue never filled); "
                      "skipping the connect timeout test\n");
        skip();
    }

    weft_engine *e = client_start(1, NULL, NULL);
    peer p;
    peer_init(&p, 10, 2);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ntohs(sa.sin_port));
    int64_t t0 = wt_now_ms();
    assert_int_equal(weft_engine_dial(e, url, -1, 300, &p), 0);
    assert_true(wt_wait_for(int_set, &p.closed, WT_TIMEOUT_MS));
    int64_t took = wt_now_ms() - t0;
    assert_int_equal(atomic_load(&p.close_err), WEFT_ETIMEDOUT);
    assert_int_equal(atomic_load(&p.opened), 0);
    assert_int_equal(atomic_load(&wt_counts.opened), 0);
    /* The deadline is kept by a 100 ms timer wheel: not early (the clock was read before the
     * dial, and the loop clock is coarse), and not much late. */
    print_message("connect timeout of 300 ms fired after %lld ms\n", (long long)took);
    assert_true(took >= 250);
    assert_true(took < 300 + wt_grace_ms(3000));

    client_stop(e);
    for (int i = 0; i < nfill; i++)
        wt_close(fill[i]);
    wt_close(lfd);
    peer_free(&p);
}

/* ---- many outbound connections ---- */

/* Raises the fd limit as far as allowed; returns the soft limit. */
static long raise_nofile(void)
{
#ifdef _WIN32
    return 1L << 20; /* no descriptor limit for sockets there */
#else
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
#endif
}

typedef struct many_arg {
    peer *peers;
    int n;
} many_arg;

static bool all_peers_closed(void *arg)
{
    many_arg *m = arg;
    for (int i = 0; i < m->n; i++)
        if (!atomic_load(&m->peers[i].closed))
            return false;
    return true;
}

/* 500 dials from one client-only engine (two loops, round-robin) to a weft echo server in
 * the same process; each connection checks its own bytes. */
static void test_dial_500(void **state)
{
    (void)state;
    reset_state();
    int n = 500;
    long lim = raise_nofile();
    if (lim < 2 * n + 64) {
        n = (int)(lim - 64) / 2;
        print_message("fd limit %ld: dialling %d connections instead of 500\n", lim, n);
    }
    wt_server s;
    echo_server(&s, 2, NULL);
    weft_engine *e = client_start(2, NULL, NULL);

    peer *peers = calloc((size_t)n, sizeof(*peers));
    assert_non_null(peers);
    for (int i = 0; i < n; i++)
        peer_init(&peers[i], 1000 + (size_t)i * 7, (uint32_t)i + 100);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", s.port);
    for (int i = 0; i < n; i++)
        assert_int_equal(weft_engine_dial(e, url, -1, 5000, &peers[i]), 0);

    many_arg m = {peers, n};
    assert_true(wt_wait_for(all_peers_closed, &m, 2 * WT_TIMEOUT_MS));
    int ok = 0, bad = 0, errs = 0;
    for (int i = 0; i < n; i++) {
        ok += atomic_load(&peers[i].echoed);
        bad += atomic_load(&peers[i].mismatch) || !atomic_load(&peers[i].ctx_ok);
        errs += atomic_load(&peers[i].close_err) != 0;
    }
    assert_int_equal(bad, 0);
    assert_int_equal(errs, 0);
    assert_int_equal(ok, n);
    assert_int_equal(atomic_load(&wt_counts.opened), n);
    weft_stats st;
    weft_loop_stats per[2];
    assert_int_equal(weft_engine_get_stats(e, &st, per), 0);
    assert_int_equal(st.total.accepted, (uint64_t)n);
    /* Round-robin: both loops dialled. */
    assert_true(per[0].accepted > 0 && per[1].accepted > 0);

    client_stop(e);
    wt_server_stop(&s);
    for (int i = 0; i < n; i++)
        peer_free(&peers[i]);
    free(peers);
}

/* ---- a codec on a client connection ---- */

#define LINES 200

static _Atomic int lines_ok;
static _Atomic int lines_bad;
static _Atomic int lines_done;

static weft_action lines_open(weft_conn *c)
{
    (void)wt_count_open(c);
    for (int i = 0; i < LINES; i++) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "line %d", i);
        if (weft_conn_write_frame(c, buf, (size_t)n) != 0)
            atomic_fetch_add(&lines_bad, 1);
    }
    return WEFT_ACTION_NONE;
}

static weft_action lines_traffic(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    int rc;
    while ((rc = weft_conn_next_frame(c, &f, &len)) == 1) {
        char want[32];
        int n = snprintf(want, sizeof(want), "line %d", atomic_load(&lines_ok));
        if ((size_t)n != len || memcmp(f, want, len) != 0)
            atomic_fetch_add(&lines_bad, 1);
        else
            atomic_fetch_add(&lines_ok, 1);
    }
    if (rc < 0)
        atomic_fetch_add(&lines_bad, 1);
    if (atomic_load(&lines_ok) == LINES) {
        atomic_store(&lines_done, 1);
        return WEFT_ACTION_CLOSE;
    }
    return WEFT_ACTION_NONE;
}

/* A line codec on the client engine: frames are encoded on the way out (the raw echo
 * server returns the bytes) and decoded one line at a time on the way back. */
static void test_dial_codec(void **state)
{
    (void)state;
    reset_state();
    atomic_store(&lines_ok, 0);
    atomic_store(&lines_bad, 0);
    atomic_store(&lines_done, 0);
    wt_server s;
    echo_server(&s, 1, NULL);
    weft_config cfg;
    wt_config(&cfg, lines_traffic, 1);
    cfg.handler.on_open = lines_open;
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.codec.line.max_length = 1024;
    weft_engine *e;
    assert_int_equal(weft_engine_start(&cfg, &e), 0);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", s.port);
    assert_int_equal(weft_engine_dial(e, url, -1, 2000, NULL), 0);
    assert_true(wt_wait_for(int_set, &lines_done, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&lines_bad), 0);
    assert_int_equal(atomic_load(&lines_ok), LINES);
    assert_int_equal(wt_stats(e).frames, LINES);
    client_stop(e);
    wt_server_stop(&s);
}

/* ---- enroll ---- */

static weft_action enrolled_echo(weft_conn *c)
{
    peer *p = weft_conn_get_context(c);
    if (p == NULL || p->self != p)
        atomic_store(&lines_bad, 1);
    return wt_echo_on_traffic(c);
}

/* One end of a socketpair joins the engine with its ctx and echoes; the test talks to it
 * through the other end, then closes that end and sees on_close(0). */
static void test_enroll_socketpair(void **state)
{
    (void)state;
#ifdef _WIN32
    (void)enrolled_echo;
    print_message("SKIPPED: Winsock has no socketpair (nor pipes as sockets)\n");
    skip();
#else
    reset_state();
    atomic_store(&lines_bad, 0);
    weft_engine *e = client_start(2, NULL, enrolled_echo);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    peer p;
    peer_init(&p, 0, 0);
    assert_int_equal(weft_engine_enroll(e, sv[1], 1, &p), 0);
    assert_true(wt_wait_for(int_set, &p.opened, WT_TIMEOUT_MS));

    uint8_t out[50000], in[50000];
    wt_fill(out, sizeof(out), 9);
    assert_int_equal(wt_exchange(sv[0], out, sizeof(out), in, sizeof(in), WT_TIMEOUT_MS), 0);
    assert_memory_equal(in, out, sizeof(out));
    wt_close(sv[0]);
    assert_true(wt_wait_for(int_set, &p.closed, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&p.close_err), 0);
    assert_int_equal(atomic_load(&lines_bad), 0);
    weft_loop_stats per[2];
    weft_stats st;
    weft_engine_get_stats(e, &st, per);
    assert_int_equal(per[1].accepted, 1);

    /* Not a stream socket, or not a socket at all: refused at once, fd stays ours. */
    int dg = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_int_equal(weft_engine_enroll(e, dg, -1, NULL), WEFT_EINVAL);
    assert_int_equal(fcntl(dg, F_GETFD), FD_CLOEXEC);
    wt_close(dg);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    assert_true(weft_engine_enroll(e, pfd[0], -1, NULL) < 0);
    wt_close(pfd[0]);
    wt_close(pfd[1]);
    int sv2[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), 0);
    assert_int_equal(weft_engine_enroll(e, sv2[0], 7, NULL), WEFT_EINVAL); /* no loop 7 */
    assert_int_equal(fcntl(sv2[0], F_GETFL) & O_NONBLOCK, 0);              /* left as it was */
    wt_close(sv2[0]);
    wt_close(sv2[1]);

    client_stop(e);
    peer_free(&p);
#endif
}

/* A TCP socket connected by the caller (blocking, to a weft echo server) is enrolled and
 * then checks its echo like a dialled one. */
static void test_enroll_connected_tcp(void **state)
{
    (void)state;
    reset_state();
    wt_server s;
    echo_server(&s, 1, NULL);
    weft_engine *e = client_start(1, NULL, NULL);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    peer p;
    peer_init(&p, 300000, 11);
    assert_int_equal(weft_engine_enroll(e, fd, -1, &p), 0);
    assert_true(wt_wait_for(int_set, &p.closed, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&p.echoed), 1);
    assert_int_equal(atomic_load(&p.mismatch), 0);
    assert_int_equal(atomic_load(&p.close_err), 0);
    client_stop(e);
    wt_server_stop(&s);
    peer_free(&p);
}

/* ---- unix:// ---- */

static void test_dial_unix(void **state)
{
    (void)state;
    const char *no_unix = weft__sock_missing_unix();
    reset_state();
    if (no_unix != NULL) { /* refused inside the call, as a listen is, and no callback */
        weft_engine *e = client_start(1, NULL, NULL);
        peer q;
        peer_init(&q, 1, 1);
        assert_int_equal(weft_engine_dial(e, "unix://weft-no-such.sock", -1, 2000, &q),
                         WEFT_EAFNOSUPPORT);
        client_stop(e);
        assert_int_equal(atomic_load(&q.opened) + atomic_load(&q.closed), 0);
        print_message("SKIPPED: %s\n", no_unix);
        skip();
    }
    char path[100], listen[120], url[120];
    wt_unix_path(path, sizeof(path), "dial");
    snprintf(listen, sizeof(listen), "unix://%s", path);
    wt_server s;
    echo_server(&s, 1, listen);
    weft_engine *e = client_start(1, NULL, NULL);
    peer p;
    peer_init(&p, 200000, 5);
    snprintf(url, sizeof(url), "unix://%s", path);
    assert_int_equal(weft_engine_dial(e, url, -1, 2000, &p), 0);
    assert_true(wt_wait_for(int_set, &p.closed, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&p.opened), 1);
    assert_int_equal(atomic_load(&p.echoed), 1);
    assert_int_equal(atomic_load(&p.mismatch), 0);
    assert_int_equal(atomic_load(&p.close_err), 0);

    /* A path nobody listens on fails inside the call: no callback. */
    peer q;
    peer_init(&q, 1, 1);
    char missing[120];
    snprintf(missing, sizeof(missing), "unix://%s.missing", path);
    assert_int_equal(weft_engine_dial(e, missing, -1, 2000, &q), WEFT_ENOENT);

    client_stop(e);
    /* Checked once the engine has stopped, when no callback can come any more. */
    assert_int_equal(atomic_load(&q.opened) + atomic_load(&q.closed), 0);
    wt_server_stop(&s);
    peer_free(&p);
    peer_free(&q);
}

/* ---- calls that fail at once run no callback ---- */

static void test_dial_bad_url(void **state)
{
    (void)state;
    reset_state();
    weft_engine *e = client_start(1, NULL, NULL);
    peer p;
    peer_init(&p, 1, 1);
    static const char *bad[] = {"",
                                "tcp://",
                                "tcp://127.0.0.1",
                                "tcp://127.0.0.1:99999",
                                "tcp://::1:80",
                                "http://127.0.0.1:80",
                                "127.0.0.1:80",
                                "tcp://127.0.0.1:8x",
                                "udp://127.0.0.1:9000",
                                "unixgram:///tmp/x.sock",
                                "unix://"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = weft_engine_dial(e, bad[i], -1, 1000, &p);
        if (rc != WEFT_EBADADDR)
            print_message("dial '%s' gave %s\n", bad[i], weft_err_name(rc));
        assert_int_equal(rc, WEFT_EBADADDR);
    }
    assert_int_equal(weft_engine_dial(e, "tcp://127.0.0.1:1", 5, 1000, &p), WEFT_EINVAL);
    assert_int_equal(weft_engine_dial(e, NULL, -1, 1000, &p), WEFT_EINVAL);
    assert_int_equal(wt_stats(e).live, 0);
    /* Once the engine has stopped no callback can come any more: none came. */
    client_stop(e);
    assert_int_equal(atomic_load(&wt_counts.opened), 0);
    assert_int_equal(atomic_load(&wt_counts.closed), 0);
    peer_free(&p);
}

static void test_dial_after_stop(void **state)
{
    (void)state;
    reset_state();
    wt_server s;
    echo_server(&s, 1, NULL);
    weft_engine *e = client_start(1, NULL, NULL);
    peer p;
    peer_init(&p, 1, 1);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", s.port);
    weft_engine_stop(e);
    assert_int_equal(weft_engine_dial(e, url, -1, 1000, &p), WEFT_ESHUTDOWN);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_int_equal(weft_engine_enroll(e, fd, -1, &p), WEFT_ESHUTDOWN);
    weft_engine_wait(e);
    assert_int_equal(atomic_load(&wt_counts.opened), 0);
    assert_int_equal(atomic_load(&wt_counts.closed), 0);
    wt_close(fd);
    wt_server_stop(&s);
    peer_free(&p);
}

/* A dial still connecting when the engine stops ends in on_close (never on_open), and
 * weft_engine_wait returns well before the connect timeout. */
static void test_stop_while_connecting(void **state)
{
    (void)state;
    reset_state();
    struct sockaddr_in sa;
    int lfd = bound_loopback_socket(&sa);
    assert_int_equal(listen(lfd, 0), 0);
    int fill[16], nfill = 0;
    bool hangs = false;
    while (nfill < 16 && !hangs) {
        weft__sock fs;
        assert_int_equal(weft__sock_open(AF_INET, SOCK_STREAM, &fs), 0);
        int fd = (int)fs;
        fill[nfill++] = fd;
        if (weft__sock_connect(fs, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            hangs = !connect_done(fd, 300);
    }
    if (!hangs) {
        for (int i = 0; i < nfill; i++)
            wt_close(fill[i]);
        wt_close(lfd);
        print_message("no loopback connect would hang; skipping\n");
        skip();
    }
    weft_engine *e = client_start(1, NULL, NULL);
    peer p;
    peer_init(&p, 1, 1);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ntohs(sa.sin_port));
    /* The connect timeout is twice the bound on the stop below, so a stop that waited for
     * it could not pass; WEFT_ESHUTDOWN (not WEFT_ETIMEDOUT) says the same without a clock. */
    const int stop_bound_ms = wt_grace_ms(4000);
    assert_int_equal(weft_engine_dial(e, url, -1, 2 * (unsigned)stop_bound_ms, &p), 0);
    wt_sleep_ms(100);
    int64_t t0 = wt_now_ms();
    client_stop(e);
    assert_true(wt_now_ms() - t0 < stop_bound_ms);
    assert_int_equal(atomic_load(&p.closed), 1);
    assert_int_equal(atomic_load(&p.opened), 0);
    assert_int_equal(atomic_load(&p.close_err), WEFT_ESHUTDOWN);
    for (int i = 0; i < nfill; i++)
        wt_close(fill[i]);
    wt_close(lfd);
    peer_free(&p);
}

/* ---- a user balancer sees opens and closes in pairs ---- */

static _Atomic long lb_opens;
static _Atomic long lb_closes;

static size_t lb_pick(void *st, const struct sockaddr *addr, socklen_t plen,
                      const weft_lb_view *view)
{
    (void)st;
    (void)addr;
    (void)plen;
    (void)view;
    return 0;
}

static void lb_open(void *st, size_t loop)
{
    (void)st;
    (void)loop;
    atomic_fetch_add(&lb_opens, 1);
}

static void lb_close(void *st, size_t loop)
{
    (void)st;
    (void)loop;
    atomic_fetch_add(&lb_closes, 1);
}

static const weft_balancer_vtable counting_lb = {
    .name = "counting", .pick = lb_pick, .on_open = lb_open, .on_close = lb_close};

/* A least-connections style balancer counts live connections with on_open / on_close; a dial
 * that never connected must not be closed in its books without having been opened. */
static void test_failed_dial_balancer_pairs(void **state)
{
    (void)state;
    reset_state();
    atomic_store(&lb_opens, 0);
    atomic_store(&lb_closes, 0);
    struct sockaddr_in sa;
    int hold = bound_loopback_socket(&sa);

    weft_config cfg;
    wt_config(&cfg, peer_traffic, 2);
    cfg.handler.on_open = peer_open;
    cfg.handler.on_close = peer_close;
    cfg.lb.kind = WEFT_LB_CUSTOM;
    cfg.lb.custom = &counting_lb;
    weft_engine *e;
    assert_int_equal(weft_engine_start(&cfg, &e), 0);
    peer p;
    peer_init(&p, 1, 1);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ntohs(sa.sin_port));
    assert_int_equal(weft_engine_dial(e, url, -1, 2000, &p), 0);
    assert_true(wt_wait_for(int_set, &p.closed, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&p.close_err), WEFT_ECONNREFUSED);
    client_stop(e);
    assert_int_equal(atomic_load(&lb_opens), 0);
    assert_int_equal(atomic_load(&lb_closes), 0);
    wt_close(hold);
    peer_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dial_success),
        cmocka_unit_test(test_dial_refused),
        cmocka_unit_test(test_dial_timeout),
        cmocka_unit_test(test_dial_500),
        cmocka_unit_test(test_dial_codec),
        cmocka_unit_test(test_enroll_socketpair),
        cmocka_unit_test(test_enroll_connected_tcp),
        cmocka_unit_test(test_dial_unix),
        cmocka_unit_test(test_dial_bad_url),
        cmocka_unit_test(test_dial_after_stop),
        cmocka_unit_test(test_stop_while_connecting),
        cmocka_unit_test(test_failed_dial_balancer_pairs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
