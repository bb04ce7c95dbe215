/* Buffer pool: sizes round up to power-of-two classes, a returned buffer is handed out again
 * from its own class, the free lists never keep more than their cap, and buffers above the
 * largest class are mappings of whole pages (less a small header) that grow in place within
 * their reservation and go back to the system, the last one after a while as a spare. A
 * resize keeps the bytes. The statistics say all of this. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bufpool.h"
#include "platform.h"
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

/* The capacity of a mapped buffer of size bytes: whole 2 MiB huge pages, or whole pages for
 * one of at most 1 MiB (a pool with small classes). */
static size_t mapped_cap(size_t size)
{
    size_t unit = size > ((size_t)1 << 20) ? (size_t)2 << 20 : weft__page_size();
    return (size + unit - 1) / unit * unit;
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
    assert_int_equal(cfg.max_cached_bytes, 2u << 20);
    assert_int_equal(cfg.spare_ms, 1000);
    assert_int_equal(cfg.reserve_size, (size_t)64 << 20);

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
                 /* Above the classes, mapped (0 here): not a power of two. */
                 {(1u << 20) + 1, 0},
                 {(8u << 20) + 4, 0},
                 {(20u << 20) + 4, 0}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t cap = 0;
        void *b = weft__bufpool_get(p, cases[i].ask, &cap);
        assert_non_null(b);
        size_t want = cases[i].cap != 0 ? cases[i].cap : mapped_cap(cases[i].ask);
        assert_int_equal(cap, want);
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
    weft__bufpool_config cfg;
    weft__bufpool_config_init(&cfg);
    cfg.max_pooled_size = 64 * 1024;
    cfg.spare_ms = 0; /* no spare: a mapping goes back at once */
    weft__bufpool *p;
    assert_int_equal(weft__bufpool_create(&cfg, &p), 0);
    size_t cap;

    void *big = weft__bufpool_get(p, 100 * 1024, &cap);
    assert_non_null(big);
    assert_int_equal(cap, mapped_cap(100 * 1024)); /* not the next power of two */
    assert_int_equal(stats_of(p).mapped_bytes, cap);
    memset(big, 0xab, cap);
    weft__bufpool_put(p, big, cap);

    weft__bufpool_stats st = stats_of(p);
    assert_int_equal(st.cached_bytes, 0);
    assert_int_equal(st.outstanding, 0);
    assert_int_equal(st.mapped_bytes, 0);
    void *again = weft__bufpool_get(p, 100 * 1024, &cap);
    assert_int_equal(stats_of(p).hits, 0);
    weft__bufpool_put(p, again, cap);

    /* The largest pooled class still is. */
    void *top = weft__bufpool_get(p, 64 * 1024, &cap);
    weft__bufpool_put(p, top, cap);
    assert_int_equal(stats_of(p).cached_bytes, 64 * 1024);
    weft__bufpool_destroy(p);
}

static void test_last_mapping_is_kept_as_a_spare_until_trimmed(void **state)
{
    (void)state;
    weft__bufpool *p = pool_with(0, 64 * 1024, 0); /* spare_ms: 1000 */
    size_t cap_a, cap;

    uint8_t *a = weft__bufpool_get(p, 300 * 1024, &cap_a);
    assert_int_equal(cap_a, mapped_cap(300 * 1024));
    memset(a, 1, cap_a);
    weft__bufpool_put(p, a, cap_a);
    weft__bufpool_stats st = stats_of(p);
    assert_int_equal(st.cached_bytes, cap_a); /* the spare */
    assert_int_equal(st.mapped_bytes, 0);
    assert_int_equal(st.maps, 1);

    /* A smaller request gets it whole: its pages are already there. */
    uint8_t *b = weft__bufpool_get(p, 100 * 1024, &cap);
    assert_ptr_equal(b, a);
    assert_int_equal(cap, cap_a);
    st = stats_of(p);
    assert_int_equal(st.maps, 1);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.cached_bytes, 0);

    /* A smaller one coming back while a bigger is spare goes. */
    size_t cap_c;
    uint8_t *c = weft__bufpool_get(p, 200 * 1024, &cap_c);
    assert_int_equal(stats_of(p).maps, 2);
    weft__bufpool_put(p, b, cap);
    weft__bufpool_put(p, c, cap_c);
    assert_int_equal(stats_of(p).cached_bytes, cap_a);

    /* A bigger request than it holds, within its reservation: it grows in place. */
    uint8_t *d = weft__bufpool_get(p, 3u << 20, &cap);
    assert_ptr_equal(d, a);
    assert_int_equal(cap, mapped_cap(3u << 20));
    assert_int_equal(stats_of(p).maps, 2);
    assert_int_equal(d[cap_a - 1], 1); /* still the same pages */
    memset(d, 2, cap);
    weft__bufpool_put(p, d, cap);
    assert_int_equal(stats_of(p).cached_bytes, mapped_cap(3u << 20));

    /* Kept for spare_ms from the first trim after it came back, then unmapped. */
    weft__bufpool_trim(p, 5000);
    weft__bufpool_trim(p, 5999);
    assert_int_equal(stats_of(p).cached_bytes, mapped_cap(3u << 20));
    weft__bufpool_trim(p, 6000);
    st = stats_of(p);
    assert_int_equal(st.cached_bytes, 0);
    assert_int_equal(st.outstanding, 0);
    assert_int_equal(st.out_bytes, 0);

    /* The free lists' cap does not count the spare, nor the spare the lists. */
    void *e = weft__bufpool_get(p, 300 * 1024, &cap);
    weft__bufpool_put(p, e, cap);
    void *f = weft__bufpool_get(p, 4096, &cap);
    weft__bufpool_put(p, f, cap);
    assert_int_equal(stats_of(p).cached_bytes, mapped_cap(300 * 1024) + 4096);
    weft__bufpool_destroy(p); /* unmaps the spare */
}

static void test_spare_that_cannot_grow_enough_is_not_used(void **state)
{
    (void)state;
    weft__bufpool_config cfg;
    weft__bufpool_config_init(&cfg);
    cfg.max_pooled_size = 64 * 1024;
    cfg.reserve_size = 1u << 20; /* mappings reserve 1 MiB */
    weft__bufpool *p;
    assert_int_equal(weft__bufpool_create(&cfg, &p), 0);
    size_t cap, cap2;
    void *a = weft__bufpool_get(p, 200 * 1024, &cap);
    weft__bufpool_put(p, a, cap);
    void *b = weft__bufpool_get(p, 2u << 20, &cap2); /* past the spare's reservation */
    assert_non_null(b);
    assert_int_equal(cap2, mapped_cap(2u << 20));
    assert_int_equal(stats_of(p).maps, 2);
    assert_int_equal(stats_of(p).cached_bytes, cap); /* the spare is still there */
    weft__bufpool_put(p, b, cap2);                   /* and the bigger one replaces it */
    assert_int_equal(stats_of(p).cached_bytes, cap2);
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
    void *c = weft__bufpool_get(p, 300, &cap); /* above max_pooled_size: mapped */
    assert_int_equal(cap, mapped_cap(300));
    weft__bufpool_put(p, c, cap);

    weft__bufpool_stats st = stats_of(p);
    assert_int_equal(st.gets, 3);
    assert_int_equal(st.cached_bytes, 64 + 128 + mapped_cap(300)); /* and the spare */
    weft__bufpool_destroy(p);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7u);
}

static int holds(const uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != (uint8_t)(seed + i * 7u))
            return 0;
    }
    return 1;
}

static void test_resize_keeps_the_bytes_across_kinds(void **state)
{
    (void)state;
    weft__bufpool *p = pool_with(0, 64 * 1024, 0);
    size_t cap, ncap;

    /* Class to class: copied. */
    uint8_t *b = weft__bufpool_get(p, 1000, &cap);
    fill(b, 1000, 1);
    b = weft__bufpool_resize(p, b, cap, 1000, 20000, &ncap);
    assert_non_null(b);
    assert_int_equal(ncap, 32 * 1024);
    assert_true(holds(b, 1000, 1));
    weft__bufpool_stats st = stats_of(p);
    assert_int_equal(st.resizes, 1);
    assert_int_equal(st.copied_bytes, 1000);
    assert_int_equal(st.outstanding, 1);
    assert_int_equal(st.out_bytes, 32 * 1024);

    /* Class to mapping: copied once more. */
    fill(b, ncap, 2);
    cap = ncap;
    b = weft__bufpool_resize(p, b, cap, cap, 3u << 20, &ncap);
    assert_non_null(b);
    assert_int_equal(ncap, mapped_cap(3u << 20));
    assert_true(holds(b, cap, 2));
    st = stats_of(p);
    assert_int_equal(st.copied_bytes, 1000 + 32 * 1024);
    assert_int_equal(st.mapped_bytes, ncap);
    assert_int_equal(st.out_bytes, ncap);

    /* Mapping to a bigger one within its reservation (64 MiB): in place, nothing copied. */
    fill(b, ncap, 3);
    cap = ncap;
    uint8_t *grown = weft__bufpool_resize(p, b, cap, cap, 40u << 20, &ncap);
    assert_ptr_equal(grown, b);
    assert_int_equal(ncap, mapped_cap(40u << 20));
    assert_true(holds(b, cap, 3));
    st = stats_of(p);
    assert_int_equal(st.copied_bytes, 1000 + 32 * 1024);
    assert_int_equal(st.resizes, 3);
    assert_int_equal(st.maps, 1);

    /* And smaller again, in place: the pages past the new end go back. */
    cap = ncap;
    grown = weft__bufpool_resize(p, b, cap, 5000, 2u << 20, &ncap);
    assert_ptr_equal(grown, b);
    assert_int_equal(ncap, mapped_cap(2u << 20));
    assert_true(holds(b, 5000, 3));
    assert_int_equal(stats_of(p).mapped_bytes, ncap);

    /* Past the reservation: a new mapping, and the kept bytes copied into it. */
    cap = ncap;
    b = weft__bufpool_resize(p, b, cap, 5000, 70u << 20, &ncap);
    assert_non_null(b);
    assert_int_equal(ncap, mapped_cap(70u << 20));
    assert_true(holds(b, 5000, 3));
    st = stats_of(p);
    assert_int_equal(st.copied_bytes, 1000 + 32 * 1024 + 5000);
    assert_int_equal(st.maps, 2);
    assert_int_equal(st.resizes, 5);

    /* Back down to a class: the kept bytes are copied, the mapping goes. */
    cap = ncap;
    b = weft__bufpool_resize(p, b, cap, 5000, 6000, &ncap);
    assert_non_null(b);
    assert_int_equal(ncap, 8192);
    assert_true(holds(b, 5000, 3));
    st = stats_of(p);
    assert_int_equal(st.mapped_bytes, 0);
    assert_int_equal(st.out_bytes, 8192);
    assert_int_equal(st.outstanding, 1);

    /* Same capacity: the same buffer, no resize counted. */
    uint8_t *same = weft__bufpool_resize(p, b, ncap, 5000, 7000, &cap);
    assert_ptr_equal(same, b);
    assert_int_equal(cap, 8192);
    assert_int_equal(stats_of(p).resizes, 6);

    weft__bufpool_put(p, b, cap);
    st = stats_of(p);
    assert_int_equal(st.outstanding, 0);
    assert_int_equal(st.out_bytes, 0);
    weft__bufpool_destroy(p);
}

static void test_resize_of_null_is_a_get(void **state)
{
    (void)state;
    weft__bufpool *p = pool_with(0, 0, 0);
    size_t cap;
    void *b = weft__bufpool_resize(p, NULL, 0, 0, 100, &cap);
    assert_non_null(b);
    assert_int_equal(cap, 4096);
    assert_int_equal(stats_of(p).gets, 1);
    assert_int_equal(stats_of(p).resizes, 0);
    weft__bufpool_put(p, b, cap);
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
        cmocka_unit_test(test_resize_keeps_the_bytes_across_kinds),
        cmocka_unit_test(test_resize_of_null_is_a_get),
        cmocka_unit_test(test_last_mapping_is_kept_as_a_spare_until_trimmed),
        cmocka_unit_test(test_spare_that_cannot_grow_enough_is_not_used),
        cmocka_unit_test(test_small_min_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
