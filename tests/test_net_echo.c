/* Echo over loopback: every client sends its own bytes and must get exactly those back,
 * whatever the number of loops, the number of connections, or how the bytes are cut into
 * writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "harness.h"

static _Atomic long traffic_calls;

/* The shared counts (wt_counts) and this file's own. */
static void reset_state(void)
{
    wt_counters_reset();
    atomic_store(&traffic_calls, 0);
}

static weft_action echo(weft_conn *c)
{
    atomic_fetch_add(&traffic_calls, 1);
    return wt_echo_on_traffic(c);
}

static bool all_closed_and_returned(void *arg)
{
    weft_loop_stats t = wt_stats(arg);
    return t.live == 0 && t.buffers_out == 0;
}

static void echo_config(weft_config *cfg, unsigned loops)
{
    wt_config(cfg, echo, loops);
    cfg->handler.on_open = wt_count_open;
    cfg->handler.on_close = wt_count_close;
}

/* ---- N clients on L loops ---- */

#define CLIENTS 8

static bool echoed_all(void *arg)
{
    weft_loop_stats t = wt_stats(arg);
    return t.bytes_in == t.bytes_out;
}

static void echo_with_loops(unsigned loops)
{
    reset_state();
    weft_config cfg;
    echo_config(&cfg, loops);
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    assert_true(s.port > 0);
    assert_int_equal(weft_engine_get_loop_count(s.engine), loops);
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
    }

    /* Three rounds per client, of different sizes, each checked byte for byte. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < CLIENTS; i++) {
            size_t n = 1 + (size_t)(i * 977 + round * 30011) % 70000;
            uint8_t *out = malloc(n), *in = malloc(n);
            assert_non_null(out);
            assert_non_null(in);
            wt_fill(out, n, (uint32_t)(i * 16 + round));
            assert_int_equal(wt_exchange(fds[i], out, n, in, n, WT_TIMEOUT_MS), 0);
            assert_memory_equal(in, out, n);
            free(out);
            free(in);
        }
    }

    /* Round-robin hand-off: the connections are spread evenly. A loop counts a send after
     * it returns, so the client may be a step ahead of bytes_out. */
    assert_true(wt_wait_for(echoed_all, s.engine, WT_TIMEOUT_MS));
    weft_loop_stats per[4];
    weft_stats st;
    assert_int_equal(weft_engine_get_stats(s.engine, &st, per), 0);
    assert_int_equal(st.nloops, loops);
    assert_int_equal(st.total.accepted, CLIENTS);
    for (unsigned k = 0; k < loops; k++)
        assert_int_equal(per[k].accepted, CLIENTS / loops);

    for (int i = 0; i < CLIENTS; i++)
        wt_close(fds[i]);
    assert_true(wt_wait_count(&wt_counts.closed, CLIENTS, WT_TIMEOUT_MS));
    wt_server_stop(&s);
    assert_int_equal(atomic_load(&wt_counts.opened), CLIENTS);
    assert_int_equal(atomic_load(&wt_counts.closed), CLIENTS);
}

static void test_echo_one_loop(void **state)
{
    (void)state;
    echo_with_loops(1);
}

static void test_echo_two_loops(void **state)
{
    (void)state;
    echo_with_loops(2);
}

static void test_echo_four_loops(void **state)
{
    (void)state;
    echo_with_loops(4);
}

/* ---- 1,000 connections at once, driven by poll from one thread ---- */

#define MANY 1000

typedef struct client {
    int fd;
    uint8_t *want;
    uint8_t *got;
    size_t len;
    size_t have;
} client;

static void test_thousand_concurrent_connections(void **state)
{
    (void)state;
    if (!wt_fd_limit_at_least(2 * MANY + 256))
        skip();
    reset_state();
    weft_config cfg;
    echo_config(&cfg, 2);
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    client *cl = calloc(MANY, sizeof(*cl));
    struct pollfd *pfds = calloc(MANY, sizeof(*pfds));
    assert_non_null(cl);
    assert_non_null(pfds);
    for (int i = 0; i < MANY; i++) {
        cl[i].fd = wt_connect_tcp(s.port);
        assert_true(cl[i].fd >= 0);
    }
    assert_true(wt_wait_count(&wt_counts.opened, MANY, WT_TIMEOUT_MS));

    for (int round = 0; round < 2; round++) {
        /* Every connection sends its own message; the kernel buffers take it whole. */
        for (int i = 0; i < MANY; i++) {
            client *c = &cl[i];
            c->len = 16 + (size_t)(i * 131 + round * 17) % 2000;
            c->want = malloc(c->len);
            c->got = malloc(c->len);
            assert_non_null(c->want);
            assert_non_null(c->got);
            c->have = 0;
            wt_fill(c->want, c->len, (uint32_t)(i * 2 + round));
            assert_int_equal(wt_send_all(c->fd, c->want, c->len, WT_TIMEOUT_MS), 0);
        }
        /* Then collect every answer, in whatever order they come. */
        int done = 0;
        int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
        while (done < MANY) {
            assert_true(wt_now_ms() < end);
            int n = 0;
            int idx[MANY];
            for (int i = 0; i < MANY; i++) {
                if (cl[i].have < cl[i].len) {
                    pfds[n] = (struct pollfd){cl[i].fd, POLLIN, 0};
                    idx[n++] = i;
                }
            }
            int pr = wt_poll(pfds, (wt_nfds)n, 1000);
            assert_true(pr >= 0 || wt_sock_errno() == EINTR);
            for (int k = 0; k < n && pr > 0; k++) {
                if (pfds[k].revents == 0)
                    continue;
                client *c = &cl[idx[k]];
                ssize_t r = wt_recv_now(c->fd, c->got + c->have, c->len - c->have);
                assert_true(r > 0 || (r < 0 && wt_sock_errno() == EAGAIN));
                if (r > 0)
                    c->have += (size_t)r;
                if (c->have == c->len) {
                    assert_memory_equal(c->got, c->want, c->len);
                    done++;
                }
            }
        }
        for (int i = 0; i < MANY; i++) {
            free(cl[i].want);
            free(cl[i].got);
        }
    }

    weft_loop_stats t = wt_stats(s.engine);
    assert_int_equal(t.accepted, MANY);
    assert_int_equal(t.live, MANY);
    for (int i = 0; i < MANY; i++)
        wt_close(cl[i].fd);
    assert_true(wt_wait_count(&wt_counts.closed, MANY, WT_TIMEOUT_MS));
    assert_true(wt_wait_for(all_closed_and_returned, s.engine, WT_TIMEOUT_MS));
    t = wt_stats(s.engine);
    assert_int_equal(t.live, 0);
    assert_int_equal(t.closed, MANY);
    wt_server_stop(&s);
    free(cl);
    free(pfds);
}

/* ---- how the bytes are cut ---- */

static void test_client_writes_one_byte_per_send(void **state)
{
    (void)state;
    reset_state();
    weft_config cfg;
    echo_config(&cfg, 1);
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    uint8_t out[3000], in[3000];
    wt_fill(out, sizeof(out), 7);

    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(send(fd, (const void *)&out[i], 1, MSG_NOSIGNAL), 1);
    assert_int_equal(wt_recv_exact(fd, in, sizeof(in), WT_TIMEOUT_MS), 0);

    assert_memory_equal(in, out, sizeof(out));
    assert_true(atomic_load(&traffic_calls) >= 1);
    wt_close(fd);
    wt_server_stop(&s);
}

/* Answers every byte with its own weft_conn_write call. */
static weft_action trickle(weft_conn *c)
{
    uint8_t b;
    while (weft_conn_read(c, &b, 1) == 1) {
        if (weft_conn_write(c, &b, 1) != 0)
            return WEFT_ACTION_CLOSE;
    }
    return WEFT_ACTION_NONE;
}

#define TRICKLE_BYTES 200000u

static bool all_bytes_counted(void *arg)
{
    weft_loop_stats t = wt_stats(arg);
    return t.bytes_in == TRICKLE_BYTES && t.bytes_out == TRICKLE_BYTES;
}

static void test_server_writes_one_byte_per_write(void **state)
{
    (void)state;
    reset_state();
    weft_config cfg;
    echo_config(&cfg, 1);
    cfg.handler.on_traffic = trickle;
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    size_t n = TRICKLE_BYTES;
    uint8_t *out = malloc(n), *in = malloc(n);
    assert_non_null(out);
    assert_non_null(in);
    wt_fill(out, n, 8);

    assert_int_equal(wt_exchange(fd, out, n, in, n, WT_TIMEOUT_MS), 0);

    assert_memory_equal(in, out, n);
    /* The loop counts a send after it returns, so the client may be a step ahead. */
    assert_true(wt_wait_for(all_bytes_counted, s.engine, WT_TIMEOUT_MS));
    weft_loop_stats t = wt_stats(s.engine);
    assert_int_equal(t.bytes_in, TRICKLE_BYTES);
    assert_int_equal(t.bytes_out, TRICKLE_BYTES);
    wt_close(fd);
    wt_server_stop(&s);
    free(out);
    free(in);
}

static void test_eight_mib_payload(void **state)
{
    (void)state;
    reset_state();
    weft_config cfg;
    echo_config(&cfg, 2);
    wt_server s;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    size_t n = 8u << 20;
    uint8_t *out = malloc(n), *in = malloc(n);
    assert_non_null(out);
    assert_non_null(in);
    wt_fill(out, n, 9);

    assert_int_equal(wt_exchange(fd, out, n, in, n, WT_TIMEOUT_MS), 0);

    assert_memory_equal(in, out, n);
    assert_true(atomic_load(&traffic_calls) > 1); /* it came in many reads */
    wt_close(fd);
    assert_true(wt_wait_count(&wt_counts.closed, 1, WT_TIMEOUT_MS));
    /* Every ring buffer went back once the connection was gone. */
    assert_true(wt_wait_for(all_closed_and_returned, s.engine, WT_TIMEOUT_MS));
    weft_loop_stats t = wt_stats(s.engine);
    assert_int_equal(t.buffers_out, 0);
    assert_int_equal(t.buffer_bytes, 0);
    wt_server_stop(&s);
    free(out);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_one_loop),
        cmocka_unit_test(test_echo_two_loops),
        cmocka_unit_test(test_echo_four_loops),
        cmocka_unit_test(test_thousand_concurrent_connections),
        cmocka_unit_test(test_client_writes_one_byte_per_send),
        cmocka_unit_test(test_server_writes_one_byte_per_write),
        cmocka_unit_test(test_eight_mib_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
