/* weft-proxy's core (examples/proxy) in-process: bytes pass both ways intact, a slow end
 * holds the other back instead of filling the proxy's memory, and a close on either side
 * closes the other.
 *
 * The backend is a plain blocking socket served by test threads (so it can be made slow on
 * purpose) or a weft echo engine; the clients are plain blocking sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "proxy.h"

/* ---- a byte stream anyone can check: byte o is table[o % PERIOD] ---- */

#define PERIOD 65521u /* prime: a stream shifted by anything short of a period mismatches */
#define CHUNK  (64u * 1024u)

typedef struct pattern {
    uint8_t t[PERIOD + CHUNK];
} pattern;

static pattern pat_a, pat_b; /* client -> backend, backend -> client */

static void pattern_init(pattern *p, uint32_t seed)
{
    wt_fill(p->t, PERIOD, seed);
    for (size_t i = 0; i < CHUNK; i++) /* CHUNK > PERIOD: byte by byte, the tail wraps */
        p->t[PERIOD + i] = p->t[i];
}

/* ---- stream threads ---- */

typedef struct stream {
    int fd;
    const pattern *pat;
    uint64_t total;
    size_t chunk;  /* bytes per call */
    int pause_us;  /* sleep after each call: a slow end */
    uint64_t done; /* bytes moved */
    int err;       /* 0, or -errno, -EPIPE (early EOF), -EBADMSG (wrong byte) */
    pthread_t thread;
} stream;

static void *send_stream(void *arg)
{
    stream *s = arg;
    while (s->done < s->total) {
        size_t off = (size_t)(s->done % PERIOD);
        size_t n = s->chunk;
        if (n > s->total - s->done)
            n = (size_t)(s->total - s->done);
        ssize_t w = wt_send(s->fd, s->pat->t + off, n);
        if (w < 0) {
            int err = wt_sock_errno();
            if (err == EINTR)
                continue;
            s->err = err == EAGAIN ? -ETIMEDOUT : -err;
            break;
        }
        s->done += (uint64_t)w;
        if (s->pause_us > 0)
            usleep((useconds_t)s->pause_us);
    }
    return NULL;
}

static void *recv_stream(void *arg)
{
    stream *s = arg;
    uint8_t *buf = malloc(CHUNK);
    while (buf != NULL && s->done < s->total) {
        size_t n = s->chunk;
        if (n > s->total - s->done)
            n = (size_t)(s->total - s->done);
        ssize_t r = wt_recv(s->fd, buf, n);
        if (r < 0) {
            int err = wt_sock_errno();
            if (err == EINTR)
                continue;
            s->err = err == EAGAIN ? -ETIMEDOUT : -err;
            break;
        }
        if (r == 0) {
            s->err = -EPIPE;
            break;
        }
        if (memcmp(buf, s->pat->t + s->done % PERIOD, (size_t)r) != 0) {
            s->err = -EBADMSG;
            break;
        }
        s->done += (uint64_t)r;
        if (s->pause_us > 0)
            usleep((useconds_t)s->pause_us);
    }
    free(buf);
    return NULL;
}

static void stream_start(stream *s, int fd, const pattern *p, uint64_t total, size_t chunk,
                         int pause_us, void *(*fn)(void *))
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->pat = p;
    s->total = total;
    s->chunk = chunk;
    s->pause_us = pause_us;
    assert_int_equal(pthread_create(&s->thread, NULL, fn, s), 0);
}

/* ---- the backend: a listening socket the test accepts on ---- */

static int backend_listen(int *port)
{
    int fd = wt_listen_tcp(64, port);
    assert_true(fd >= 0);
    return fd;
}

/* The next connection to the backend: blocking, with the test's timeouts. */
static int backend_accept(int lfd)
{
    int fd = wt_accept(lfd, WT_TIMEOUT_MS);
    assert_true(fd >= 0);
    return fd;
}

/* Caps fd's receive buffer. A slow reader's buffer would otherwise grow to tens of MiB on
 * loopback, enough to take a whole test's stream without the proxy ever holding the other
 * end back, which is what the test is about. */
static void small_receive_buffer(int fd)
{
    assert_int_equal(wt_setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, 64 * 1024), 0);
}

/* ---- the proxy under test ---- */

typedef struct proxy_fixture {
    proxy_state ps;
    wt_server srv;
    char backend[64];
} proxy_fixture;

static void proxy_start(proxy_fixture *f, const char *backend, unsigned loops, size_t mark)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->backend, sizeof(f->backend), "%s", backend);
    proxy_options_init(&f->ps.opt);
    f->ps.opt.backend = f->backend;
    f->ps.opt.connect_timeout_ms = 2000;
    if (mark > 0)
        f->ps.opt.high_mark = mark;
    weft_config cfg;
    wt_config(&cfg, NULL, loops);
    assert_int_equal(proxy_configure(&cfg, &f->ps), 0);
    assert_int_equal(wt_server_start(&f->srv, &cfg), 0);
}

static bool proxy_idle(void *arg)
{
    proxy_fixture *f = arg;
    return wt_stats(f->srv.engine).live == 0 && atomic_load(&f->ps.live_pairs) == 0;
}

static void proxy_stop(proxy_fixture *f)
{
    wt_server_stop(&f->srv);
    assert_int_equal(atomic_load(&f->ps.live_pairs), 0); /* every pair freed */
}

/* Samples the proxy engine's buffer_bytes (ring buffers held by its connections) until
 * told to stop, keeping the largest value. */
typedef struct sampler {
    weft_engine *e;
    _Atomic int stop;
    uint64_t max_buffer;
    pthread_t thread;
} sampler;

static void *sample(void *arg)
{
    sampler *s = arg;
    while (!atomic_load(&s->stop)) {
        uint64_t b = wt_stats(s->e).buffer_bytes;
        if (b > s->max_buffer)
            s->max_buffer = b;
        wt_sleep_ms(2);
    }
    return NULL;
}

/* ---- 64 MiB each way, slow backend ---- */

#define BIG (64ull << 20)

/* The client sends 64 MiB to the backend and the backend 64 MiB to the client, at once. The
 * backend reads slowly (32 KiB, then a pause), so the client-to-backend direction spends
 * most of its time throttled: the proxy must stop reading the client rather than queue
 * what the backend has not taken. Every byte is checked at both ends, and the proxy's
 * buffers stay a small fraction of what passed through. */
static void test_proxy_64mib_slow_backend(void **state)
{
    (void)state;
    pattern_init(&pat_a, 1);
    pattern_init(&pat_b, 2);
    int bport;
    int lfd = backend_listen(&bport);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", bport);
    proxy_fixture f;
    proxy_start(&f, url, 2, 256 * 1024);
    sampler smp = {.e = f.srv.engine};
    assert_int_equal(pthread_create(&smp.thread, NULL, sample, &smp), 0);

    int cfd = wt_connect_tcp(f.srv.port);
    assert_true(cfd >= 0);
    int bfd = backend_accept(lfd);
    int64_t t0 = wt_now_ms();
    stream c_out, c_in, b_out, b_in;
    small_receive_buffer(bfd);
    stream_start(&b_in, bfd, &pat_a, BIG, 32 * 1024, 1000, recv_stream); /* slow */
    stream_start(&b_out, bfd, &pat_b, BIG, CHUNK, 0, send_stream);
    stream_start(&c_out, cfd, &pat_a, BIG, CHUNK, 0, send_stream);
    stream_start(&c_in, cfd, &pat_b, BIG, CHUNK, 0, recv_stream);
    pthread_join(c_out.thread, NULL);
    pthread_join(c_in.thread, NULL);
    pthread_join(b_out.thread, NULL);
    pthread_join(b_in.thread, NULL);
    int64_t took = wt_now_ms() - t0;
    atomic_store(&smp.stop, 1);
    pthread_join(smp.thread, NULL);

    print_message("64 MiB each way in %lld ms; proxy buffers peaked at %llu KiB; %llu pauses\n",
                  (long long)took, (unsigned long long)(smp.max_buffer >> 10),
                  (unsigned long long)atomic_load(&f.ps.pauses));
    assert_int_equal(c_out.err, 0);
    assert_int_equal(c_in.err, 0);
    assert_int_equal(b_out.err, 0);
    assert_int_equal(b_in.err, 0);
    assert_true(c_in.done == BIG && b_in.done == BIG);
    assert_true(atomic_load(&f.ps.pauses) > 0); /* the slow backend did hold the client back */
    /* Each direction holds at most the mark plus a read or two, in rings rounded up to a
     * power of two: well under 4 MiB for the pair, against 128 MiB that went through. */
    assert_true(smp.max_buffer <= 4u << 20);

    /* The client leaves: the backend sees its end close too, and the pair is freed. */
    wt_close(cfd);
    assert_int_equal(wt_recv_eof(bfd, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_for(proxy_idle, &f, WT_TIMEOUT_MS));
    assert_true(wt_wait_for(wt_buffers_back, f.srv.engine, WT_TIMEOUT_MS));
    weft_loop_stats st = wt_stats(f.srv.engine);
    assert_int_equal(st.buffers_out, 0);
    wt_close(bfd);
    wt_close(lfd);
    proxy_stop(&f);
}

/* ---- the other direction: a slow client ---- */

/* The backend sends 16 MiB and the client reads slowly: now the backend's end is paused
 * while the client's queue drains. */
static void test_proxy_slow_client(void **state)
{
    (void)state;
    pattern_init(&pat_a, 3);
    pattern_init(&pat_b, 4);
    int bport;
    int lfd = backend_listen(&bport);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", bport);
    proxy_fixture f;
    proxy_start(&f, url, 1, 128 * 1024);
    sampler smp = {.e = f.srv.engine};
    assert_int_equal(pthread_create(&smp.thread, NULL, sample, &smp), 0);
    int cfd = wt_connect_tcp(f.srv.port);
    assert_true(cfd >= 0);
    int bfd = backend_accept(lfd);
    const uint64_t n = 16u << 20;
    stream c_out, c_in, b_out, b_in;
    /* Slow: 32 KiB a millisecond, slower than the proxy can pass bytes on, or ten times
     * slower under WEFT_TEST_SLOW, where the proxy itself may not be faster than that. */
    small_receive_buffer(cfd);
    stream_start(&c_in, cfd, &pat_b, n, 32 * 1024, wt_grace_ms(1) * 1000, recv_stream);
    stream_start(&b_out, bfd, &pat_b, n, CHUNK, 0, send_stream);
    stream_start(&c_out, cfd, &pat_a, n, CHUNK, 0, send_stream);
    stream_start(&b_in, bfd, &pat_a, n, CHUNK, 0, recv_stream);
    pthread_join(c_out.thread, NULL);
    pthread_join(c_in.thread, NULL);
    pthread_join(b_out.thread, NULL);
    pthread_join(b_in.thread, NULL);
    atomic_store(&smp.stop, 1);
    pthread_join(smp.thread, NULL);
    print_message("16 MiB to a slow client; proxy buffers peaked at %llu KiB; %llu pauses\n",
                  (unsigned long long)(smp.max_buffer >> 10),
                  (unsigned long long)atomic_load(&f.ps.pauses));
    assert_int_equal(c_out.err, 0);
    assert_int_equal(c_in.err, 0);
    assert_int_equal(b_out.err, 0);
    assert_int_equal(b_in.err, 0);
    assert_true(atomic_load(&f.ps.pauses) > 0);
    assert_true(smp.max_buffer <= 4u << 20);

    /* The backend leaves first this time: the client sees EOF. */
    wt_close(bfd);
    assert_int_equal(wt_recv_eof(cfd, WT_TIMEOUT_MS), 0);
    assert_true(wt_wait_for(proxy_idle, &f, WT_TIMEOUT_MS));
    wt_close(cfd);
    wt_close(lfd);
    proxy_stop(&f);
}

/* ---- many pairs through to a weft echo backend ---- */

/* 32 clients at once, on two loops, through the proxy to a weft echo server: each gets its
 * own 1 MiB back. */
static void test_proxy_many_to_echo(void **state)
{
    (void)state;
    weft_config ecfg;
    wt_config(&ecfg, wt_echo_on_traffic, 2);
    wt_server echo;
    assert_int_equal(wt_server_start(&echo, &ecfg), 0);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", echo.port);
    proxy_fixture f;
    proxy_start(&f, url, 2, 0);

    enum { N = 32 };
    const size_t len = 1u << 20;
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = wt_connect_tcp(f.srv.port);
        assert_true(fds[i] >= 0);
    }
    uint8_t *out = malloc(len), *in = malloc(len);
    assert_non_null(out);
    assert_non_null(in);
    for (int i = 0; i < N; i++) {
        wt_fill(out, len, (uint32_t)i);
        assert_int_equal(wt_exchange(fds[i], out, len, in, len, WT_TIMEOUT_MS), 0);
        assert_memory_equal(in, out, len);
    }
    for (int i = 0; i < N; i++)
        wt_close(fds[i]);
    assert_true(wt_wait_for(proxy_idle, &f, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&f.ps.pairs), N);
    assert_int_equal(atomic_load(&f.ps.dial_failures), 0);
    weft_stats st;
    weft_loop_stats per[2];
    weft_engine_get_stats(f.srv.engine, &st, per);
    assert_true(per[0].accepted > 0 && per[1].accepted > 0);
    assert_int_equal(st.total.accepted, 2 * N); /* each pair: one accepted, one dialled */
    free(out);
    free(in);
    proxy_stop(&f);
    wt_server_stop(&echo);
}

/* ---- a backend nobody answers ---- */

/* The backend port is bound but not listening: the dial is refused, and the client, whose
 * bytes have nowhere to go, is closed. */
static void test_proxy_backend_refused(void **state)
{
    (void)state;
    int hport;
    int hold = wt_bind_tcp(&hport);
    assert_true(hold >= 0);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", hport);
    proxy_fixture f;
    proxy_start(&f, url, 1, 0);
    int cfd = wt_connect_tcp(f.srv.port);
    assert_true(cfd >= 0);
    assert_int_equal(wt_send_all(cfd, "hello?", 6, WT_TIMEOUT_MS), 0);
    int rc = wt_recv_eof(cfd, WT_TIMEOUT_MS);
    assert_true(rc == 0 || rc == -ECONNRESET);
    assert_true(wt_wait_for(proxy_idle, &f, WT_TIMEOUT_MS));
    assert_int_equal(atomic_load(&f.ps.dial_failures), 1);
    wt_close(cfd);
    wt_close(hold);
    proxy_stop(&f);
}

/* The client goes away before the backend has even answered: the late backend connection
 * is closed as soon as it opens and nothing leaks. */
static void test_proxy_client_leaves_early(void **state)
{
    (void)state;
    int bport;
    int lfd = backend_listen(&bport);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", bport);
    proxy_fixture f;
    proxy_start(&f, url, 1, 0);
    for (int i = 0; i < 20; i++) {
        int cfd = wt_connect_tcp(f.srv.port);
        assert_true(cfd >= 0);
        wt_close(cfd);
    }
    /* The kernel completes the backend handshakes; the proxy closes each backend end. */
    for (int i = 0; i < 20; i++) {
        int bfd = backend_accept(lfd);
        int rc = wt_recv_eof(bfd, WT_TIMEOUT_MS);
        assert_true(rc == 0 || rc == -ECONNRESET);
        wt_close(bfd);
    }
    assert_true(wt_wait_for(proxy_idle, &f, WT_TIMEOUT_MS));
    wt_close(lfd);
    proxy_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_64mib_slow_backend),
        cmocka_unit_test(test_proxy_slow_client),
        cmocka_unit_test(test_proxy_many_to_echo),
        cmocka_unit_test(test_proxy_backend_refused),
        cmocka_unit_test(test_proxy_client_leaves_early),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
