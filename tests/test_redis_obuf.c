/* weft-redis's client-output-buffer-limit rules without an engine: sizes parsed as
 * redis-server parses them, the hard and soft verdicts as Redis's
 * checkClientOutputBufferLimits gives them, and the recent peak INFO reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "obuf.h"

static void test_sizes_parse_as_redis_config_does(void **state)
{
    static const struct {
        const char *in;
        uint64_t want;
    } good[] = {
        {"0", 0},
        {"4096", 4096},
        {"10b", 10},
        {"1k", 1000},
        {"1kb", 1024},
        {"2m", 2000000},
        {"64mb", 64ull << 20},
        {"64MB", 64ull << 20},
        {"1g", 1000000000},
        {"1Gb", 1ull << 30},
        {"18446744073709551615", UINT64_MAX},
    };
    static const char *const bad[] = {
        "", "mb", "-1", "1 mb", "1t", "1kbb", "0x10", "18446744073709551616", "17179869184gb",
    };
    uint64_t v;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 12345;
        if (!obuf_parse_bytes(good[i].in, &v) || v != good[i].want)
            fail_msg("'%s': got %llu", good[i].in, (unsigned long long)v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (obuf_parse_bytes(bad[i], &v))
            fail_msg("'%s' was accepted", bad[i]);
    assert_false(obuf_parse_bytes(NULL, &v));
}

static void test_limit_parses_formats_and_defaults(void **state)
{
    obuf_limit lim;
    char buf[96];

    (void)state;
    obuf_limit_init(&lim);
    assert_int_equal(obuf_limit_format(&lim, buf, sizeof(buf)), strlen("normal 67108864 0 0"));
    assert_string_equal(buf, "normal 67108864 0 0");
    assert_true(obuf_limit_parse(&lim, "256mb", "64mb", "60"));
    obuf_limit_format(&lim, buf, sizeof(buf));
    assert_string_equal(buf, "normal 268435456 67108864 60");
    /* A bad word leaves the limit as it was. */
    assert_false(obuf_limit_parse(&lim, "1mb", "1mb", "-1"));
    assert_false(obuf_limit_parse(&lim, "1mb", "1mb", "1s"));
    assert_false(obuf_limit_parse(&lim, "1mb", "x", "1"));
    assert_false(obuf_limit_parse(&lim, "1mb", "1mb", NULL));
    obuf_limit_format(&lim, buf, sizeof(buf));
    assert_string_equal(buf, "normal 268435456 67108864 60");
    /* Cut to the buffer, never past it. */
    assert_int_equal(obuf_limit_format(&lim, buf, 7), 6);
    assert_string_equal(buf, "normal");
}

static void test_hard_limit_closes_at_once(void **state)
{
    obuf_limit lim = {.hard = 1000, .soft = 0, .soft_seconds = 0};
    int64_t since = 0;

    (void)state;
    assert_int_equal(obuf_check(&lim, &since, 999, 5), OBUF_OK);
    assert_int_equal(obuf_check(&lim, &since, 1000, 5), OBUF_HARD); /* "at or above" */
    lim.hard = 0;                                                   /* no limit */
    assert_int_equal(obuf_check(&lim, &since, UINT64_MAX, 5), OBUF_OK);
    assert_int_equal(since, 0);
}

static void test_soft_limit_needs_to_last(void **state)
{
    obuf_limit lim = {.hard = 0, .soft = 100, .soft_seconds = 2};
    int64_t since = 0;

    (void)state;
    /* Over it: the clock starts; still over when the time is up, but not before: closed. */
    assert_int_equal(obuf_check(&lim, &since, 100, 10000), OBUF_OK);
    assert_int_equal(since, 10000);
    assert_int_equal(obuf_check(&lim, &since, 500, 12000), OBUF_OK);
    assert_int_equal(obuf_check(&lim, &since, 500, 12001), OBUF_SOFT);
    /* Dropping under it resets the clock: going over again starts afresh. */
    since = 0;
    assert_int_equal(obuf_check(&lim, &since, 150, 20000), OBUF_OK);
    assert_int_equal(obuf_check(&lim, &since, 99, 21000), OBUF_OK);
    assert_int_equal(since, 0);
    assert_int_equal(obuf_check(&lim, &since, 150, 22500), OBUF_OK);
    assert_int_equal(obuf_check(&lim, &since, 150, 23000), OBUF_OK);
    assert_int_equal(since, 22500);
    /* A clock reading of 0 still starts it. */
    since = 0;
    assert_int_equal(obuf_check(&lim, &since, 150, 0), OBUF_OK);
    assert_true(since != 0);
    /* The hard limit wins over a running soft clock. */
    lim.hard = 1000;
    assert_int_equal(obuf_check(&lim, &since, 1000, 1), OBUF_HARD);
}

static void test_recent_peak_covers_eight_seconds(void **state)
{
    obuf_peak pk;

    (void)state;
    obuf_peak_init(&pk, 100);
    assert_int_equal(obuf_peak_get(&pk), 0);
    obuf_peak_note(&pk, 5000);
    obuf_peak_note(&pk, 300);
    assert_int_equal(obuf_peak_get(&pk), 5000);
    obuf_peak_advance(&pk, 101);
    obuf_peak_note(&pk, 700);
    obuf_peak_advance(&pk, 107); /* 100's second is still among the last eight */
    assert_int_equal(obuf_peak_get(&pk), 5000);
    obuf_peak_advance(&pk, 108);
    assert_int_equal(obuf_peak_get(&pk), 700);
    obuf_peak_advance(&pk, 1000); /* a long gap empties every slot */
    assert_int_equal(obuf_peak_get(&pk), 0);
    obuf_peak_advance(&pk, 999); /* the clock never runs backwards here */
    obuf_peak_note(&pk, 42);
    assert_int_equal(obuf_peak_get(&pk), 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_parse_as_redis_config_does),
        cmocka_unit_test(test_limit_parses_formats_and_defaults),
        cmocka_unit_test(test_hard_limit_closes_at_once),
        cmocka_unit_test(test_soft_limit_needs_to_last),
        cmocka_unit_test(test_recent_peak_covers_eight_seconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
