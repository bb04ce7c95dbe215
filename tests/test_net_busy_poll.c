/* busy_poll_us: a loop that polls before it sleeps serves exactly as one that sleeps, stops
 * polling once the traffic stops (a timer alone does not start it again), does not poll
 * after a request that came later than the budget, and stops promptly while it polls.
 *
 * Each of these is asserted on the loop's sleeps counter (one per blocking wait), not on
 * time or CPU: a poll is a wait that is not counted, so a poll that catches the next event
 * shows as one sleep fewer, on any machine, however loaded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

#define BUDGET_US 50000 /* far longer than a tick or a loopback round trip */
#define TICK_MS   20

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
    cfg.handler.on_open = wt_count_open;
    cfg.handler.on_close = wt_count_close;
    wt_counters_reset();
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

/* n round trips of sizes 1..512 on fd, each checked byte for byte. When slow is not NULL
 * it counts the round trips i > 0 whose span from the start of round trip i - 1 to the end
 * of i reached the budget: only in such a span can a polling loop have polled a whole
 * budget in vain (its poll after request i - 1 begins after that request was sent and ends,
 * at the latest, when request i arrives) and so rightly slept. */
static int round_trips_timed(int fd, int n, uint32_t seed, int *slow)
{
    uint8_t out[512], in[512];
    int64_t prev = -1;
    for (int i = 0; i < n; i++) {
        size_t len = 1 + (size_t)(i * 37) % sizeof(out);
        wt_fill(out, len, seed + (uint32_t)i);
        int64_t t0 = wt_now_ms();
        int rc = wt_exchange(fd, out, len, in, len, wt_timeout_ms());
        if (rc != 0)
            return rc;
        if (memcmp(out, in, len) != 0)
            return -1;
        if (slow != NULL && prev >= 0 && wt_now_ms() - prev >= BUDGET_US / 1000)
            (*slow)++;
        prev = t0;
    }
    return 0;
}

static int round_trips(int fd, int n, uint32_t seed)
{
    return round_trips_timed(fd, n, seed, NULL);
}

static void test_polling_loop_echoes_then_rests(void **state)
{
    (void)state;
    atomic_store(&ticks, 0);
    wt_server s;
    start(&s, BUDGET_US, TICK_MS);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
    }
    int rounds = wt_slow() ? 50 : 500;
    uint64_t sleeps0 = wt_stats(s.engine).sleeps;
    long ticks_before = atomic_load(&ticks);
    int slow = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(round_trips_timed(fds[i], rounds, (uint32_t)i * 1000u, &slow), 0);
    /* A request that comes within the budget is caught by the poll: the loop sleeps only
     * where a span of two round trips reached the budget, and after such a sleep at most
     * once more until a wait within the budget heats it again; or after a tick ended a
     * poll, since a timer is no reason to poll again (without polling it sleeps about once
     * per round trip). On an unloaded machine no span comes near the budget and the round
     * trips take a few ticks; a loaded one, or Wine's slow loopback, excuses as many sleeps
     * as it made spans slow and ticks run. The constant covers the first request on each
     * connection, whose span is not seen. */
    uint64_t slept = wt_stats(s.engine).sleeps - sleeps0;
    long ticked = atomic_load(&ticks) - ticks_before;
    print_message("%d round trips, %d spans past the budget, %ld ticks, %llu sleeps\n", 3 * rounds,
                  slow, ticked, (unsigned long long)slept);
    assert_true(slept <= 2 * (uint64_t)slow + (uint64_t)ticked + 3 * 2 + (uint64_t)rounds / 50);

    /* Quiet now. After one budget the loop sleeps, and the tick that keeps waking it brings
     * no traffic, so it does not poll again: every tick then ends a sleep. Were it polling
     * after a tick, the 50 ms poll would run the next 20 ms tick itself, without a sleep in
     * between. The first tick or two after the traffic may still fall into its last poll. */
    assert_true(wt_wait_count(&ticks, atomic_load(&ticks) + 2, wt_timeout_ms()));
    uint64_t sleeps1 = wt_stats(s.engine).sleeps; /* before ticks0: see below */
    long ticks0 = atomic_load(&ticks);
    int64_t t1 = wt_now_ms();
    assert_true(wt_wait_count(&ticks, ticks0 + 30, wt_timeout_ms()));
    long woke = atomic_load(&ticks) - ticks0;
    uint64_t idle_sleeps = wt_stats(s.engine).sleeps - sleeps1;
    int64_t idle_ms = wt_now_ms() - t1;
    print_message("idle %lld ms: %ld ticks, %llu sleeps\n", (long long)idle_ms, woke,
                  (unsigned long long)idle_sleeps);
    /* Each tick runs in one wait for events, and a wait is counted before it begins: only
     * the wait in progress when sleeps1 was read can hold a counted tick uncounted. */
    assert_true(idle_sleeps + 1 >= (uint64_t)woke);
    /* Nor does it spin: the tick and the 100 ms timer wheel are all that wake an idle loop
     * (a loop spinning on something always ready would count a sleep per turn). The bound
     * is twice that, so a slow machine, which only wakes it less often, cannot break it. */
    assert_true(idle_sleeps <= 2 * ((uint64_t)woke + (uint64_t)idle_ms / 100 + 2));

    /* And it serves again after resting. */
    assert_int_equal(round_trips(fds[1], 20, 77), 0);
    for (int i = 0; i < 3; i++)
        wt_close(fds[i]);
    wt_server_stop(&s);
}

#define TRICKLE_BUDGET_US 5000
#define TRICKLE_GAP_MS    20
#define TRICKLE_REQUESTS  40

static void test_trickle_does_not_poll(void **state)
{
    (void)state;
    wt_server s;
    start(&s, TRICKLE_BUDGET_US, 0);
    int fd = wt_connect_tcp(s.port);
    int probe = wt_connect_tcp(s.port);
    assert_true(fd >= 0);
    assert_true(probe >= 0);
    /* A request every 20 ms against a 5 ms budget: the wait before each one is longer than
     * the budget, so the loop stays cold and does not poll after it; polling after each one
     * would spend 40 x 5 ms for nothing. To see it without a clock, each answer is followed
     * at once by a probe on a second connection. A cold loop handles the request, then
     * waits for the probe: two sleeps a request. A loop polling after the request finds the
     * probe in its poll: one sleep. (After the probe, 5 ms after the request at most, the
     * loop is rightly hot and polls once.) */
    assert_int_equal(round_trips(fd, 1, 99), 0); /* first request: code paths warm */
    assert_int_equal(round_trips(probe, 1, 98), 0);
    wt_sleep_ms(TRICKLE_GAP_MS);
    uint64_t sleeps0 = wt_stats(s.engine).sleeps;
    for (int i = 0; i < TRICKLE_REQUESTS; i++) {
        assert_int_equal(round_trips(fd, 1, (uint32_t)i), 0);
        assert_int_equal(round_trips(probe, 1, (uint32_t)i + 1000u), 0);
        wt_sleep_ms(TRICKLE_GAP_MS);
    }
    uint64_t slept = wt_stats(s.engine).sleeps - sleeps0;
    print_message("%d requests %d ms apart, each with a probe: %llu sleeps\n", TRICKLE_REQUESTS,
                  TRICKLE_GAP_MS, (unsigned long long)slept);
    /* The answer to a probe leaves at the end of the loop's turn, so the probe always finds
     * the loop between turns and a cold loop counts a wait for it, however fast the machine.
     * The wait for the very first request began before sleeps0 was read. A few requests
     * may be misjudged hot when the loop thread itself was held up for most of a gap;
     * polling after every request would count about one sleep each. */
    assert_true(slept >= 2 * TRICKLE_REQUESTS - 1 - TRICKLE_REQUESTS / 8);
    wt_close(fd);
    wt_close(probe);
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
    wt_close(fd);
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
    /* The poll saw the stop: the connection was closed for it (WEFT_ESHUTDOWN) and not by
     * the stop timeout (WEFT_ETIMEDOUT after wt_timeout_ms), and well before that. */
    assert_int_equal(atomic_load(&wt_counts.closed), 1);
    assert_int_equal(wt_closed_with(WEFT_ESHUTDOWN), 1);
    assert_true(took < wt_grace_ms(2000));
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
