/* The platform layer (core/platform.h) keeps the same promises on every system: reserved
 * address space comes aligned and inaccessible, committed parts are zeroed memory that may
 * be given back and committed again, the clocks only go forward and agree with each other,
 * and errno values have the system's static descriptions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "platform.h"
#include "weft/error.h"

#define MIB ((size_t)1 << 20)
#define MS  1000000u

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

static void test_page_size_is_a_power_of_two(void **unused)
{
    (void)unused;
    size_t page = weft__page_size();
    assert_true(page >= 4096);
    assert_int_equal(page & (page - 1), 0);
}

static void test_reservation_is_aligned_and_commits_in_place(void **unused)
{
    (void)unused;
    size_t page = weft__page_size();
    static const size_t aligns[] = {0, 4096, 64 * 1024, 2 * MIB};
    for (size_t a = 0; a < sizeof(aligns) / sizeof(aligns[0]); a++) {
        size_t len = 3 * MIB;
        uint8_t *base = weft__vm_reserve(len, aligns[a]);
        assert_non_null(base);
        assert_int_equal((uintptr_t)base % (aligns[a] > page ? aligns[a] : page), 0);

        /* The first page and a run further in are committed, written and read back. */
        assert_int_equal(weft__vm_commit(base, page), 0);
        assert_int_equal(weft__vm_commit(base + MIB, 4 * page), 0);
        assert_true(all_zero(base, page));
        assert_true(all_zero(base + MIB, 4 * page));
        memset(base, 0xa5, page);
        memset(base + MIB, 0x5a, 4 * page);
        assert_int_equal(base[page - 1], 0xa5);
        assert_int_equal(base[MIB + 4 * page - 1], 0x5a);

        /* Given back and committed again, the run is fresh zeroed memory; the first page,
         * not given back, kept its bytes. */
        weft__vm_decommit(base + MIB, 4 * page);
        assert_int_equal(weft__vm_commit(base + MIB, 4 * page), 0);
        assert_true(all_zero(base + MIB, 4 * page));
        assert_int_equal(base[0], 0xa5);

        /* Growing a committed run in place keeps what it held. */
        memset(base + MIB, 0x11, page);
        assert_int_equal(weft__vm_commit(base + MIB, 8 * page), 0);
        assert_int_equal(base[MIB], 0x11);
        assert_true(all_zero(base + MIB + 4 * page, 4 * page));

        weft__vm_advise_huge(base, len); /* advice only: nothing to see, nothing breaks */
        weft__vm_release(base, len);
    }
}

static void test_many_reservations_come_and_go(void **unused)
{
    (void)unused;
    /* As the buffer pool makes them: 64 MiB of address space each, a little committed. */
    for (int i = 0; i < 64; i++) {
        uint8_t *base = weft__vm_reserve(64 * MIB, 2 * MIB);
        assert_non_null(base);
        assert_int_equal((uintptr_t)base % (2 * MIB), 0);
        assert_int_equal(weft__vm_commit(base, 2 * MIB), 0);
        base[2 * MIB - 1] = (uint8_t)i;
        weft__vm_release(base, 64 * MIB);
    }
}

static void test_clocks_go_forward_together(void **unused)
{
    (void)unused;
    uint64_t m0 = weft__mono_ns();
    uint64_t c0 = weft__coarse_ns();
    uint64_t start = weft__mono_ns(); /* after c0: the wait below is all after it */
    uint64_t last = start, now;
    while ((now = weft__mono_ns()) - start < 50 * MS) {
        assert_true(now >= last);
        last = now;
    }
    uint64_t c1 = weft__coarse_ns();
    uint64_t m1 = weft__mono_ns();
    /* At least 50 ms passed between the coarse reads: the coarse clock saw it, give or
     * take its tick (at most 16 ms: a Windows tick, or a Linux jiffy at HZ=100), and saw no
     * more time than the monotonic clock around it did. */
    assert_true(c1 >= c0);
    assert_true(c1 - c0 + 20 * MS >= 50 * MS);
    assert_true(c1 - c0 <= m1 - m0 + 20 * MS);
}

static void test_errno_has_static_descriptions(void **unused)
{
    (void)unused;
    const char *s = weft__errno_text(EINVAL);
    assert_non_null(s);
    assert_true(strlen(s) > 0);
    assert_ptr_equal(weft__errno_text(EINVAL), s); /* the same static string every time */
    assert_non_null(weft__errno_text(ENOENT));
    /* weft_strerror names its own table's errors itself and falls back to these. */
    assert_string_equal(weft_strerror(WEFT_EINVAL), "invalid argument");
    assert_string_equal(weft_strerror(-EDOM), weft__errno_text(EDOM));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_size_is_a_power_of_two),
        cmocka_unit_test(test_reservation_is_aligned_and_commits_in_place),
        cmocka_unit_test(test_many_reservations_come_and_go),
        cmocka_unit_test(test_clocks_go_forward_together),
        cmocka_unit_test(test_errno_has_static_descriptions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
