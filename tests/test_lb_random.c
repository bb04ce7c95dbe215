/* Random reaches every loop, about evenly, and a fixed seed replays the same sequence. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/balancer.h"

#define MAX_LOOPS 32

static weft_balancer *make_random(size_t nloops, uint64_t seed)
{
    weft_lb_config cfg;
    weft_lb_config_init(&cfg);
    cfg.kind = WEFT_LB_RANDOM;
    cfg.seed = seed;
    weft_balancer *b = NULL;
    assert_int_equal(weft_balancer_create(&cfg, nloops, &b), 0);
    assert_non_null(b);
    return b;
}

static void test_covers_every_loop_evenly(void **unused)
{
    (void)unused;
    static const size_t sizes[] = {1, 2, 3, 8, 17, MAX_LOOPS};
    static const uint64_t seeds[] = {0, 1, 42};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (size_t z = 0; z < sizeof(seeds) / sizeof(seeds[0]); z++) {
            size_t n = sizes[s];
            weft_balancer *b = make_random(n, seeds[z]);
            weft_lb_view view = {n, NULL};
            unsigned count[MAX_LOOPS];
            memset(count, 0, sizeof(count));
            const unsigned per_loop = 10000;
            for (size_t i = 0; i < per_loop * n; i++) {
                size_t k = weft_balancer_pick(b, NULL, 0, &view);
                assert_in_range(k, 0, n - 1);
                count[k]++;
            }
            /* 10,000 expected per loop has a standard deviation under 100, so +-10% is more
             * than ten deviations: only a broken generator or mapping fails this. */
            for (size_t k = 0; k < n; k++)
                assert_in_range(count[k], per_loop * 9 / 10, per_loop * 11 / 10);
            weft_balancer_destroy(b);
        }
    }
}

static void test_fixed_seed_replays(void **unused)
{
    (void)unused;
    weft_balancer *a = make_random(8, 7);
    weft_balancer *b = make_random(8, 7);
    weft_balancer *c = make_random(8, 8);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        size_t ka = weft_balancer_pick(a, NULL, 0, NULL);
        assert_int_equal(ka, weft_balancer_pick(b, NULL, 0, NULL));
        differ += ka != weft_balancer_pick(c, NULL, 0, NULL);
    }
    /* Another seed is another sequence: about 7 picks in 8 differ. */
    assert_true(differ > 700);
    weft_balancer_destroy(a);
    weft_balancer_destroy(b);
    weft_balancer_destroy(c);
}

static void test_describes_itself(void **unused)
{
    (void)unused;
    weft_balancer *b = make_random(3, 0);
    assert_string_equal(weft_balancer_get_name(b), "random");
    assert_false(weft_balancer_needs_live(b));
    weft_balancer_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_covers_every_loop_evenly),
        cmocka_unit_test(test_fixed_seed_replays),
        cmocka_unit_test(test_describes_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
