/* Round-robin hands out loops 0, 1, ..., n-1 and starts again, whatever the peer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/balancer.h"

static weft_balancer *make_rr(size_t nloops)
{
    weft_lb_config cfg;
    weft_lb_config_init(&cfg);
    assert_int_equal(cfg.kind, WEFT_LB_ROUND_ROBIN); /* the default kind */
    weft_balancer *b = NULL;
    assert_int_equal(weft_balancer_create(&cfg, nloops, &b), 0);
    assert_non_null(b);
    return b;
}

static void test_order_cycles_through_every_loop(void **unused)
{
    (void)unused;
    static const size_t sizes[] = {1, 2, 3, 8, 13};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        weft_balancer *b = make_rr(n);
        weft_lb_view view = {n, NULL};
        /* Five full turns: the sequence is exactly 0..n-1 each time. */
        for (size_t turn = 0; turn < 5; turn++)
            for (size_t i = 0; i < n; i++)
                assert_int_equal(weft_balancer_pick(b, NULL, 0, &view), i);
        weft_balancer_destroy(b);
    }
}

static void test_peer_does_not_matter(void **unused)
{
    (void)unused;
    weft_balancer *b = make_rr(4);
    weft_lb_view view = {4, NULL};
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    /* The same peer again and again still walks the loops in order. */
    for (size_t i = 0; i < 12; i++)
        assert_int_equal(weft_balancer_pick(b, (struct sockaddr *)&a, sizeof(a), &view), i % 4);
    weft_balancer_destroy(b);
}

static void test_describes_itself(void **unused)
{
    (void)unused;
    weft_balancer *b = make_rr(2);
    assert_string_equal(weft_balancer_get_name(b), "round-robin");
    assert_false(weft_balancer_needs_live(b));
    /* No-op notifications are allowed on a balancer that does not track them. */
    weft_balancer_on_open(b, 1);
    weft_balancer_on_close(b, 1);
    assert_int_equal(weft_balancer_pick(b, NULL, 0, NULL), 0);
    assert_int_equal(weft_balancer_pick(b, NULL, 0, NULL), 1);
    weft_balancer_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_cycles_through_every_loop),
        cmocka_unit_test(test_peer_does_not_matter),
        cmocka_unit_test(test_describes_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
