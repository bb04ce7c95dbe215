/* Least-connections always picks a loop with the fewest live connections, and spreads ties. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/balancer.h"

#define MAX_LOOPS 16

static weft_balancer *make_lc(size_t nloops)
{
    weft_lb_config cfg;
    weft_lb_config_init(&cfg);
    cfg.kind = WEFT_LB_LEAST_CONNECTIONS;
    weft_balancer *b = NULL;
    assert_int_equal(weft_balancer_create(&cfg, nloops, &b), 0);
    assert_non_null(b);
    return b;
}

static uint64_t min_of(const uint64_t *live, size_t n)
{
    uint64_t m = live[0];
    for (size_t i = 1; i < n; i++)
        if (live[i] < m)
            m = live[i];
    return m;
}

/* A deterministic script source, so a failure replays exactly. */
static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_asks_for_live_counts(void **unused)
{
    (void)unused;
    weft_balancer *b = make_lc(4);
    assert_true(weft_balancer_needs_live(b));
    assert_string_equal(weft_balancer_get_name(b), "least-connections");
    weft_balancer_destroy(b);
}

static void test_scripted_churn_always_picks_a_minimum(void **unused)
{
    (void)unused;
    static const size_t sizes[] = {1, 2, 3, 4, 7, MAX_LOOPS};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        weft_balancer *b = make_lc(n);
        uint64_t live[MAX_LOOPS];
        memset(live, 0, sizeof(live));
        weft_lb_view view = {n, live};
        uint64_t x = 0x9e3779b97f4a7c15u + n;
        uint64_t total = 0;

        /* 20,000 steps of opens and closes, biased to open while few are live; each close
         * drops one connection from a random loop, as clients hang up in any order. */
        for (int step = 0; step < 20000; step++) {
            uint64_t r = next_rand(&x);
            bool open = total < 8 || r % 100 < (total < 200 ? 60u : 40u);
            if (open) {
                size_t k = weft_balancer_pick(b, NULL, 0, &view);
                assert_in_range(k, 0, n - 1);
                assert_int_equal(live[k], min_of(live, n));
                live[k]++;
                total++;
            } else {
                size_t k = (size_t)(r >> 32) % n;
                while (live[k] == 0)
                    k = k + 1 == n ? 0 : k + 1;
                live[k]--;
                total--;
            }
        }
        weft_balancer_destroy(b);
    }
}

static void test_forty_connections_spread_ten_per_loop(void **unused)
{
    (void)unused;
    weft_balancer *b = make_lc(4);
    uint64_t live[4] = {0, 0, 0, 0};
    weft_lb_view view = {4, live};

    for (int i = 0; i < 40; i++)
        live[weft_balancer_pick(b, NULL, 0, &view)]++;
    for (int k = 0; k < 4; k++)
        assert_int_equal(live[k], 10);

    /* Loop 0's clients all leave: the next ten connections go there and nowhere else. */
    live[0] = 0;
    for (int i = 0; i < 10; i++)
        live[weft_balancer_pick(b, NULL, 0, &view)]++;
    for (int k = 0; k < 4; k++)
        assert_int_equal(live[k], 10);
    weft_balancer_destroy(b);
}

static void test_ties_rotate_when_counts_lag(void **unused)
{
    (void)unused;
    /* A burst of accepts before any loop has counted its hand-off: all counts stay equal, and
     * the picks still go round every loop instead of piling onto loop 0. */
    weft_balancer *b = make_lc(5);
    uint64_t live[5] = {3, 3, 3, 3, 3};
    weft_lb_view view = {5, live};
    for (size_t i = 0; i < 15; i++)
        assert_int_equal(weft_balancer_pick(b, NULL, 0, &view), i % 5);

    /* Among the tied minimum only, still rotating: loops 1 and 3 are the least loaded. */
    live[1] = 1;
    live[3] = 1;
    size_t first = weft_balancer_pick(b, NULL, 0, &view);
    size_t second = weft_balancer_pick(b, NULL, 0, &view);
    assert_true((first == 1 && second == 3) || (first == 3 && second == 1));
    weft_balancer_destroy(b);
}

static void test_without_counts_degrades_to_round_robin(void **unused)
{
    (void)unused;
    weft_balancer *b = make_lc(3);
    weft_lb_view view = {3, NULL};
    for (size_t i = 0; i < 9; i++)
        assert_int_equal(weft_balancer_pick(b, NULL, 0, &view), i % 3);
    weft_balancer_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_asks_for_live_counts),
        cmocka_unit_test(test_scripted_churn_always_picks_a_minimum),
        cmocka_unit_test(test_forty_connections_spread_ten_per_loop),
        cmocka_unit_test(test_ties_rotate_when_counts_lag),
        cmocka_unit_test(test_without_counts_degrades_to_round_robin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
