/* Buffer pool: sizes round up to power-of-two classes, a returned buffer is handed out again
 * from its own class, the free lists never keep more than their cap, and buffers above the
 * largest class go straight back to malloc. The statistics say all of this. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bufpool.h"
#include "weft/error.h"

static weft__bufpool *pool_with(size_t min_size, size_t max_pooled, size_t max_cached)
{
    weft__bufpool_config cfg;
    weft__bufpool_config_init(&cfg);
    if (min_size)
        cfg.min_size = min_size;
    if (max_pooled)
        cfg.max_pooled_size = max_pooled;
    if (max_cached)
        cfg.max_cached_bytes = max_cached;
    weft__bufpool *p = NULL;
    assert_int_equal(weft__bufpool_create(&cfg, &p), 0);
    assert_non_null(p);
    return p;
}

static weft__bufpool_stats stats_of(const weft__bufpool *p)
{
    weft__bufpool_stats st;
    weft__bufpool_get_stats(p, &st);
    return st;
}

static void test_defaults_and_bad_configs(void **state)
{
    (void)state;
    weft__bufpool_config cfg;
    weft__bufpool *p = NULL;

    weft__bufpool_config_init(&cfg);
    assert_int_equal(cfg.min_size, 4096);
    assert_int_equal(cfg.max_pooled_size, 1u << 20);
    assert_int_equal(cfg.max_cached_bytes, 8u << 20);

    cfg.min_size = 3000; /* not a power of two */
    assert_int_equal(weft__bufpool_create(&cfg, &p), WEFT_EINVAL);
    weft__bufpool_config_init(&cfg);
    cfg.max_pooled_size = 1024; /* below the smallest class */
    assert_int_equal(weft__bufpool_create(&cfg, &p), WEFT_EINVAL);
    cfg.min_size = 0;
    assert_int_equal(weft__bufpool_create(&cfg, &p), WEFT_EINVAL);
    assert_null(p);
    assert_int_equal(weft__bufpool_create(NULL, NULL), WEFT_EINVAL);
}

static void test_sizes_round_up_to_classes(void **state)
{
    (void)state;
    weft__bufpool *p = pool_with(0, 0, 0);
    static const struct {
        size_t ask, cap;
    } cases[] = {{0, 4096},
                 {1, 4096},
                 {4096, 4096},
                 {4097, 8192},
                 {65535, 65536},
                 {1u << 20, 1u << 20},
                 {(1u << 20) + 1, 2u << 20}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t cap = 0;
        void *b = weft__bufpool_get(p, cases[i].ask, &cap);
        assert_non_null(b);
        assert_int_equal(cap, cases[i].cap);
        memset(b, 0xa5, cap); /* the whole capacity is usable */
        weft__bufpool_put(p, b, cap);
    }
    weft__bufpool_destroy(p);
}

static void test_returned_buffer_is_reused_from_its_class(void **state)
{
    (void)state;
    weft__bufpool *p = pool_with(0, 0, 0);
    size_t cap_a, cap_b, cap_c;

    void *a = weft__bufpool_get(p, 5000, &cap_a);
    weft__bufpool_put(p, a, cap_a);
    void *b = weft__bufpool_get(p, 100, &cap_b);  /* another class: not a hit */
    void *c = weft__bufpool_get(p, 8000, &cap_c); /* a's class: a comes back */

    assert_int_equal(cap_b, 4096);
    assert_ptr_equal(c, a);
    assert_int_equal(cap_c, 8192);
    weft__bufpool_stats st = stats_of(p);
    assert_int_equal(st.gets, 3);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.outstanding, 2);
    assert_int_equal(st.out_bytes, 4096 + 8192);
    assert_int_equal(st.cached_bytes, 0);

    weft__bufpool_put(p, b, cap_b);
    weft__bufpool_put(p, c, cap_c);
    st = stats_of(p);
    assert_int_equal(st.outstanding, 0);
    assert_int_equal(st.out_bytes, 0);
    assert_int_equal(st.cached_bytes, 4096 + 8192);
    weft__bufpool_destroy(p);
}

static void test_free_list_is_last_in_first_out(void **state)
{
    (void)state;
    weft__bufpool *p = pool_with(0, 0, 0);
    size_t cap;
    void *x = weft__bufpool_get(p, 10, &cap);
    void *y = weft__bufpool_get(p, 10, &cap);

    weft__bufpool_put(p, x, cap);
    weft__bufpool_put(p, y, cap);

    /* The most recently returned buffer is the warmest in cache: it goes out first. */
    assert_ptr_equal(weft__bufpool_get(p, 10, &cap), y);
    assert_ptr_equal(weft__bufpool_get(p, 10, &cap), x);
    assert_int_equal(stats_of(p).hits, 2);
    weft__bufpool_put(p, x, cap);
    weft__bufpool_put(p, y, cap);
    weft__bufpool_destroy(p);
}

static void test_cached_bytes_stay_under_the_cap(void **state)
{
    (void)state;
    weft__bufpool *p = pool_with(0, 0, 16 * 1024);
    void *bufs[6];
    size_t cap = 0;
    for (int i = 0; i < 6; i++)
        bufs[i] = weft__bufpool_get(p, 4096, &cap);

    for (int i = 0; i < 6; i++)
        weft__bufpool_put(p, bufs[i], cap);

    weft__bufpool_stats st = stats_of(p);
    assert_int_equal(st.cached_bytes, 16 * 1024); /* four kept, two freed */
    assert_int_equal(st.outstanding, 0);
    for (int i = 0; i < 6; i++)
        bufs[i] = weft__bufpool_get(p, 4096, &cap);
    st = stats_of(p);
    assert_int_equal(st.hits, 4);
    assert_int_equal(st.cached_bytes, 0);
    for (int i = 0; i < 6; i++)
        weft__bufpool_put(p, bufs[i], cap);
    weft__bufpool_destroy(p);
}

static void test_oversize_buffers_are_not_cached(void **state)
{
    (void)state;
    weft__bufpool *p = pool_with(0, 64 * 1024, 0);
    size_t cap;

    void *big = weft__bufpool_get(p, 100 * 1024, &cap);
    assert_non_null(big);
    assert_int_equal(cap, 128 * 1024);
    weft__bufpool_put(p, big, cap);

    weft__bufpool_stats st = stats_of(p);
    assert_int_equal(st.cached_bytes, 0);
    assert_int_equal(st.outstanding, 0);
    void *again = weft__bufpool_get(p, 100 * 1024, &cap);
    assert_int_equal(stats_of(p).hits, 0);
    weft__bufpool_put(p, again, cap);

    /* The largest pooled class still is. */
    void *top = weft__bufpool_get(p, 64 * 1024, &cap);
    weft__bufpool_put(p, top, cap);
    assert_int_equal(stats_of(p).cached_bytes, 64 * 1024);
    weft__bufpool_destroy(p);
}

static void test_small_min_size(void **state)
{
    (void)state;
    weft__bufpool *p = pool_with(64, 256, 0);
    size_t cap;

    void *a = weft__bufpool_get(p, 1, &cap);
    assert_int_equal(cap, 64);
    weft__bufpool_put(p, a, cap);
    void *b = weft__bufpool_get(p, 65, &cap);
    assert_int_equal(cap, 128);
    weft__bufpool_put(p, b, cap);
    void *c = weft__bufpool_get(p, 300, &cap); /* above max_pooled_size */
    assert_int_equal(cap, 512);
    weft__bufpool_put(p, c, cap);

    weft__bufpool_stats st = stats_of(p);
    assert_int_equal(st.gets, 3);
    assert_int_equal(st.cached_bytes, 64 + 128);
    weft__bufpool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_bad_configs),
        cmocka_unit_test(test_sizes_round_up_to_classes),
        cmocka_unit_test(test_returned_buffer_is_reused_from_its_class),
        cmocka_unit_test(test_free_list_is_last_in_first_out),
        cmocka_unit_test(test_cached_bytes_stay_under_the_cap),
        cmocka_unit_test(test_oversize_buffers_are_not_cached),
        cmocka_unit_test(test_small_min_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
