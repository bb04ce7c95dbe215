/* on_drain: a producer that stops at a mark and goes on when its queue has gone to the
 * kernel sends everything, in order, without polling and without the queue growing past
 * the mark plus one chunk. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define TOTAL (32u << 20)
#define CHUNK (64u * 1024u)
#define MARK  (256u * 1024u)

static uint8_t pattern[CHUNK + 256];
static _Atomic long drains;
static _Atomic long max_pending;
static size_t produced; /* loop thread only: one connection */

/* Writes chunks until the queue passes the mark or everything is out. */
static void produce(weft_conn *c)
{
    while (produced < TOTAL && weft_conn_get_pending_out(c) <= MARK) {
        size_t n = TOTAL - produced < CHUNK ? TOTAL - produced : CHUNK;
        if (weft_conn_write(c, pattern + produced % 251, n) != 0)
            return;
        produced += n;
        long p = (long)weft_conn_get_pending_out(c);
        if (p > atomic_load(&max_pending))
            atomic_store(&max_pending, p);
    }
}

static void on_drain(weft_conn *c)
{
    atomic_fetch_add(&drains, 1);
    produce(c);
}

static weft_action on_traffic(weft_conn *c)
{
    weft_conn_discard(c, weft_conn_get_buffered(c));
    produced = 0;
    produce(c);
    return WEFT_ACTION_NONE;
}

static void test_drain_paces_a_producer(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i % 251);
    atomic_store(&drains, 0);
    atomic_store(&max_pending, 0);
    wt_server s;
    weft_config cfg;
    wt_config(&cfg, on_traffic, 1);
    cfg.handler.on_drain = on_drain;
    assert_int_equal(wt_server_start(&s, &cfg), 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_int_equal(wt_send_all(fd, "go", 2, wt_timeout_ms()), 0);
    uint8_t *buf = malloc(TOTAL);
    assert_non_null(buf);
    /* Read slowly at first, so the kernel pushes back and the producer has to wait. */
    wt_sleep_ms(100);
    assert_int_equal(wt_recv_exact(fd, buf, TOTAL, wt_timeout_ms()), 0);
    for (size_t i = 0; i < TOTAL; i += 4093)
        assert_int_equal(buf[i], (uint8_t)(i % 251));
    assert_true(atomic_load(&drains) > 0);
    /* Never more queued than the mark plus the chunk that crossed it. */
    assert_true(atomic_load(&max_pending) <= (long)(MARK + CHUNK));
    print_message("32 MiB in %ld drains; queue peaked at %ld KiB\n", atomic_load(&drains),
                  atomic_load(&max_pending) / 1024);
    free(buf);
    wt_close(fd);
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drain_paces_a_producer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
