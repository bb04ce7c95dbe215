/* Stop under load: weft_engine_stop() while 100 clients stream through an echo server.
 *
 * Per connection the server counts the bytes weft_conn_write accepted and the client counts
 * the bytes it received (checking every one against what it sent). After the stop each
 * connection either got everything the server accepted, or its on_close says why not: a
 * clean WEFT_ESHUTDOWN promises that the queued output was flushed, so it must come with
 * every byte delivered. No crash, no descriptor left open.
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

#include "counters.h"
#include "harness.h"

#define CLIENTS 100
#define CHUNK   4096
#define NO_ERR  1 /* on_close not called yet */

/* Indexed by the client's local port, which both sides know. */
static _Atomic long accepted_bytes[65536];
static _Atomic long close_err[65536];

static int peer_port(weft_conn *c)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (weft_conn_get_peer_addr(c, &ss, &len) != 0 || ss.ss_family != AF_INET)
        return 0;
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static weft_action on_open(weft_conn *c)
{
    weft_conn_set_context(c, (void *)(intptr_t)peer_port(c));
    return WEFT_ACTION_NONE;
}

/* Echo, counting what weft_conn_write accepted. */
static weft_action counting_echo(weft_conn *c)
{
    int port = (int)(intptr_t)weft_conn_get_context(c);
    const uint8_t *p;
    int n = weft_conn_peek(c, 0, &p);
    if (n > 0 && weft_conn_write(c, p, (size_t)n) == 0) {
        atomic_fetch_add(&accepted_bytes[port], n);
        weft_conn_discard(c, (size_t)n);
    }
    return WEFT_ACTION_NONE;
}

static void on_close(weft_conn *c, int err)
{
    int port = (int)(intptr_t)weft_conn_get_context(c);
    atomic_store(&close_err[port], err);
    wt_count_close(c, err);
}

typedef struct client {
    int fd;
    int port;
    uint32_t seed;
    uint64_t sent;     /* bytes of the stream sent */
    uint64_t received; /* bytes of the echo received, all checked */
    bool done;         /* EOF or error seen */
    int end_errno;     /* 0 on EOF */
    bool mismatch;
} client;

typedef struct stream_ctx {
    client c[CLIENTS];
    _Atomic bool stop_sending;
    _Atomic bool pause_reading; /* and send without the in-flight limit */
    _Atomic long received_total;
} stream_ctx;

/* The byte at offset off of client seed's stream. */
static uint8_t stream_byte(uint32_t seed, uint64_t off)
{
    uint64_t x = (off / 64) * 0x9e3779b97f4a7c15ull + seed;
    x ^= x >> 29;
    return (uint8_t)(x + off % 64);
}

/* Every client sends its stream and reads back its echo, until its connection ends. */
static void *stream_main(void *arg)
{
    stream_ctx *s = arg;
    int64_t end = wt_now_ms() + 3 * WT_TIMEOUT_MS;
    uint8_t buf[CHUNK];
    for (;;) {
        struct pollfd p[CLIENTS];
        int open = 0;
        bool sending = !atomic_load(&s->stop_sending);
        bool reading = !atomic_load(&s->pause_reading);
        for (int i = 0; i < CLIENTS; i++) {
            client *c = &s->c[i];
            p[i] = (struct pollfd){c->done ? -1 : c->fd,
                                   (short)((reading ? POLLIN : 0) | (sending ? POLLOUT : 0)), 0};
            open += !c->done;
        }
        if (open == 0 || wt_now_ms() > end)
            return NULL;
        if (wt_poll(p, CLIENTS, 10) <= 0)
            continue;
        for (int i = 0; i < CLIENTS; i++) {
            client *c = &s->c[i];
            if (c->done)
                continue;
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = wt_recv_now(c->fd, buf, sizeof(buf));
                if (r == 0 || (r < 0 && wt_sock_errno() != EAGAIN && wt_sock_errno() != EINTR)) {
                    c->done = true;
                    c->end_errno = r == 0 ? 0 : wt_sock_errno();
                    continue;
                }
                for (ssize_t k = 0; k < r; k++) {
                    if (buf[k] != stream_byte(c->seed, c->received + (uint64_t)k))
                        c->mismatch = true;
                }
                if (r > 0) {
                    c->received += (uint64_t)r;
                    atomic_fetch_add(&s->received_total, r);
                }
            }
            /* Keep no more than 256 KiB in flight, so the echo flows both ways. */
            if (sending && (p[i].revents & POLLOUT) &&
                (!reading || c->sent - c->received < 256 * 1024)) {
                for (size_t k = 0; k < CHUNK; k++)
                    buf[k] = stream_byte(c->seed, c->sent + k);
                ssize_t w = wt_send_now(c->fd, buf, CHUNK);
                if (w > 0)
                    c->sent += (uint64_t)w;
            }
        }
    }
}

typedef enum stop_mode {
    CLIENTS_STOP_SENDING, /* at the stop the clients only read */
    CLIENTS_KEEP_SENDING, /* they go on streaming until their connection ends */
    CLIENTS_BACKED_UP     /* they stopped reading just before the stop, so the server holds
                             queued output, and keep sending; they read again after it */
} stop_mode;

static const char *mode_name[] = {"clients stop sending", "clients keep sending",
                                  "clients backed up"};

static void stop_while_streaming(stop_mode mode)
{
    for (int i = 0; i < 65536; i++) {
        atomic_store(&accepted_bytes[i], 0);
        atomic_store(&close_err[i], NO_ERR);
    }
    wt_counters_reset();
    int fds_before = wt_fd_count();
    weft_config cfg;
    wt_config(&cfg, counting_echo, 2);
    cfg.handler.on_open = on_open;
    cfg.handler.on_close = on_close;
    cfg.write_high_water = 128 * 1024;
    cfg.stop_timeout_ms = wt_slow() ? 10000 : 2000;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);

    stream_ctx *sc = calloc(1, sizeof(*sc));
    assert_non_null(sc);
    for (int i = 0; i < CLIENTS; i++) {
        client *c = &sc->c[i];
        c->fd = wt_connect_tcp(s.port);
        assert_true(c->fd >= 0);
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        assert_int_equal(getsockname(c->fd, (struct sockaddr *)&sa, &len), 0);
        c->port = ntohs(sa.sin_port);
        c->seed = (uint32_t)i * 7919u + 1;
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stream_main, sc), 0);

    /* Stream for a while, then stop the engine in the middle of it. */
    int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
    while (atomic_load(&sc->received_total) < CLIENTS * 64 * 1024) {
        assert_true(wt_now_ms() < end);
        wt_sleep_ms(5);
    }
    wt_sleep_ms(200);
    if (mode == CLIENTS_BACKED_UP) {
        /* Half the connections backed up: the kernel's buffers on the way (which it lets
         * grow to MiBs each) full, and the server's own queues past the mark. That is some
         * 400 MiB through loopback, 3-7 s on a loaded 2-core machine. */
        atomic_store(&sc->pause_reading, true);
        end = wt_now_ms() + 3 * WT_TIMEOUT_MS;
        while (wt_stats(s.engine).backpressure_pauses < CLIENTS / 2) {
            assert_true(wt_now_ms() < end);
            wt_sleep_ms(5);
        }
    }
    if (mode == CLIENTS_STOP_SENDING)
        atomic_store(&sc->stop_sending, true);
    int64_t t0 = wt_now_ms();
    assert_int_equal(weft_engine_stop(s.engine), 0);
    if (mode == CLIENTS_BACKED_UP) {
        wt_sleep_ms(100);
        atomic_store(&sc->pause_reading, false);
    }
    weft_engine_wait(s.engine);
    int64_t stop_ms = wt_now_ms() - t0;
    s.engine = NULL;
    atomic_store(&sc->stop_sending, true);
    pthread_join(th, NULL);

    /* Every connection was closed once, each client saw its end. */
    assert_int_equal(atomic_load(&wt_counts.closed), CLIENTS);
    long clean = 0, timed_out = 0, reset_err = 0, lost_clean = 0;
    uint64_t acc_total = 0, rcv_total = 0, lost_bytes = 0;
    for (int i = 0; i < CLIENTS; i++) {
        client *c = &sc->c[i];
        long acc = atomic_load(&accepted_bytes[c->port]);
        long err = atomic_load(&close_err[c->port]);
        assert_true(c->done);
        assert_false(c->mismatch);
        assert_true(err != NO_ERR);
        assert_true(c->received <= (uint64_t)acc);
        acc_total += (uint64_t)acc;
        rcv_total += c->received;
        if (err == WEFT_ESHUTDOWN) {
            clean++;
            /* A clean close promises the queued output left: all of it arrived. */
            if (c->received != (uint64_t)acc) {
                lost_clean++;
                lost_bytes += (uint64_t)acc - c->received;
            }
        } else if (err == WEFT_ETIMEDOUT) {
            timed_out++;
        } else if (err == WEFT_ECONNRESET || err == WEFT_EPIPE) {
            reset_err++;
        } else {
            fail_msg("client %d: on_close reported %s", i, weft_err_name((int)err));
        }
        wt_close(c->fd);
    }
    printf("stop (%s after stop): %d streaming clients, stop took %lld ms; server accepted %llu "
           "bytes for sending, clients received %llu; closes: %ld WEFT_ESHUTDOWN (%ld of them "
           "short by %llu bytes), %ld WEFT_ETIMEDOUT, %ld reset\n",
           mode_name[mode], CLIENTS, (long long)stop_ms, (unsigned long long)acc_total,
           (unsigned long long)rcv_total, clean, lost_clean, (unsigned long long)lost_bytes,
           timed_out, reset_err);
    assert_int_equal(lost_clean, 0);
    assert_true(stop_ms <= (long long)cfg.stop_timeout_ms + wt_grace_ms(1000));
    assert_int_equal(wt_fd_count(), fds_before);
    free(sc);
}

static void test_stop_while_clients_stream_and_then_stop(void **state)
{
    (void)state;
    stop_while_streaming(CLIENTS_STOP_SENDING);
}

static void test_stop_while_clients_keep_streaming(void **state)
{
    (void)state;
    stop_while_streaming(CLIENTS_KEEP_SENDING);
}

static void test_stop_while_clients_are_backed_up(void **state)
{
    (void)state;
    WT_SKIP_IF(wt_missing_bulk_loopback()); /* some 400 MiB to back half of them up */
    stop_while_streaming(CLIENTS_BACKED_UP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_while_clients_stream_and_then_stop),
        cmocka_unit_test(test_stop_while_clients_keep_streaming),
        cmocka_unit_test(test_stop_while_clients_are_backed_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
