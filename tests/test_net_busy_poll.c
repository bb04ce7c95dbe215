/* busy_poll_us: a loop that polls before it sleeps serves exactly as one that sleeps, stops
 * polling once the traffic stops (a timer alone does not start it again), does not poll
 * between requests that come further apart than the budget, and stops promptly while it
 * polls. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define BUDGET_US 50000 /* long enough that a poll that never ends would show in CPU time */

static _Atomic long ticks;

static weft_action on_tick(weft_engine *e, unsigned loop)
{
    (void)e;
    (void)loop;
    atomic_fetch_add(&ticks, 1);
    return WEFT_ACTION_NONE;
}

static void start(wt_server *s, unsigned budget_us, unsigned tick_ms)
{
    weft_config cfg;
    wt_config(&cfg, wt_echo_on_traffic, 1);
    cfg.busy_poll_us = budget_us;
    cfg.tick_ms = tick_ms;
    cfg.stop_timeout_ms = (unsigned)wt_timeout_ms(); /* a lost stop would show as a hang */
    cfg.handler.on_tick = on_tick;
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

/* n round trips of sizes 1..512 on fd, each checked byte for byte. */
static int round_trips(int fd, int n, uint32_t seed)
{
    uint8_t out[512], in[512];
    for (int i = 0; i < n; i++) {
        size_t len = 1 + (size_t)(i * 37) % sizeof(out);
        wt_fill(out, len, seed + (uint32_t)i);
        int rc = wt_exchange(fd, out, len, in, len, wt_timeout_ms());
        if (rc != 0)
            return rc;
        if (memcmp(out, in, len) != 0)
            return -1;
    }
    return 0;
}

static void test_polling_loop_echoes_then_rests(void **state)
{
    (void)state;
    atomic_store(&ticks, 0);
    wt_server s;
    start(&s, BUDGET_US, 20);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
    }
    int rounds = wt_slow() ? 50 : 500;
    uint64_t sleeps0 = wt_stats(s.engine).sleeps;
    for (int i = 0; i < 3; i++)
        assert_int_equal(round_trips(fds[i], rounds, (uint32_t)i * 1000u), 0);
    /* Each answer comes back well within the budget: the loop polls instead of sleeping
     * (without polling it sleeps about once per round trip). */
    uint64_t slept = wt_stats(s.engine).sleeps - sleeps0;
    print_message("%d round trips, %llu sleeps\n", 3 * rounds, (unsigned long long)slept);
    assert_true(slept * 4 < (uint64_t)(3 * rounds));

    /* Quiet now: after one budget the loop sleeps, and the 20 ms tick that keeps waking it
     * brings no traffic, so it does not poll again. Polling on, it would burn most of the
     * window (a 50 ms poll after every 20 ms tick). */
    wt_sleep_ms(200);
    long ticks0 = atomic_load(&ticks);
    int64_t cpu0 = wt_cpu_ms();
    wt_sleep_ms(600);
    int64_t cpu = wt_cpu_ms() - cpu0;
    long woke = atomic_load(&ticks) - ticks0;
    print_message("idle 600 ms: %lld ms CPU, %ld ticks\n", (long long)cpu, woke);
    assert_true(woke >= 5); /* the tick did wake the loop */
    assert_true(cpu < (wt_slow() ? 300 : 150));

    /* And it serves again after resting. */
    assert_int_equal(round_trips(fds[1], 20, 77), 0);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    wt_server_stop(&s);
}

static void test_trickle_does_not_poll(void **state)
{
    (void)state;
    wt_server s;
    start(&s, 5000, 0);
    int fd = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    /* A request every 20 ms against a 5 ms budget: polling after each one would spend
     * 40 x 5 ms = 200 ms. The waits for I/O are longer than the budget, so the loop stays
     * cold and sleeps between requests. */
    assert_int_equal(round_trips(fd, 1, 99), 0); /* first request: code paths warm */
    wt_sleep_ms(20);
    uint64_t sleeps0 = wt_stats(s.engine).sleeps;
    int64_t cpu0 = wt_cpu_ms();
    for (int i = 0; i < 40; i++) {
        assert_int_equal(round_trips(fd, 1, (uint32_t)i), 0);
        wt_sleep_ms(20);
    }
    int64_t cpu = wt_cpu_ms() - cpu0;
    uint64_t slept = wt_stats(s.engine).sleeps - sleeps0;
    print_message("40 requests 20 ms apart: %lld ms CPU, %llu sleeps\n", (long long)cpu,
                  (unsigned long long)slept);
    assert_true(slept >= 40);
    assert_true(cpu < (wt_slow() ? 300 : 100));
    close(fd);
    wt_server_stop(&s);
}

typedef struct pinger {
    int port;
    _Atomic bool stop;
    _Atomic long rounds;
} pinger;

/* Round trips until told to stop or the server goes. */
static void *ping_thread(void *arg)
{
    pinger *p = arg;
    int fd = wt_connect_tcp(p->port);
    if (fd < 0)
        return NULL;
    while (!atomic_load(&p->stop) && round_trips(fd, 1, 5) == 0)
        atomic_fetch_add(&p->rounds, 1);
    close(fd);
    return NULL;
}

static void test_stop_while_polling(void **state)
{
    (void)state;
    wt_server s;
    start(&s, BUDGET_US, 0);
    pinger p = {.port = s.port};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, ping_thread, &p), 0);
    bool busy = wt_wait_count(&p.rounds, 100, wt_timeout_ms());
    int64_t t0 = wt_now_ms();
    wt_server_stop(&s); /* the connection is busy: the loop is polling, not sleeping */
    int64_t took = wt_now_ms() - t0;
    atomic_store(&p.stop, true);
    pthread_join(th, NULL);
    print_message("stopped in %lld ms after %ld round trips\n", (long long)took,
                  atomic_load(&p.rounds));
    assert_true(busy);
    assert_true(took < 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_polling_loop_echoes_then_rests),
        cmocka_unit_test(test_trickle_does_not_poll),
        cmocka_unit_test(test_stop_while_polling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
