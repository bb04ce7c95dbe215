/* Consistent hash: an address always lands on the same loop, the loops share the addresses
 * fairly, and adding a loop moves only the addresses the new loop takes over. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "weft/balancer.h"

#define NADDRS 100000

/* 100,000 IPv4 and 100,000 IPv6 peers, built once. Half are consecutive (clients behind
 * one provider's block), half scattered, because a hash that copes with one shape of input
 * may still clump the other. */
static struct sockaddr_in *v4;
static struct sockaddr_in6 *v6;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int make_addresses(void **unused)
{
    (void)unused;
    v4 = calloc(NADDRS, sizeof(*v4));
    v6 = calloc(NADDRS, sizeof(*v6));
    if (v4 == NULL || v6 == NULL)
        return -1;
    uint64_t x = 2024;
    for (uint32_t i = 0; i < NADDRS; i++) {
        uint64_t r = splitmix(&x);
        v4[i].sin_family = AF_INET;
        v4[i].sin_port = htons((uint16_t)(1024 + i % 60000));
        /* 10.0.0.0 upwards, or anywhere. */
        v4[i].sin_addr.s_addr = htonl(i % 2 == 0 ? 0x0a000000u + i : (uint32_t)r);

        v6[i].sin6_family = AF_INET6;
        v6[i].sin6_port = v4[i].sin_port;
        unsigned char *a = v6[i].sin6_addr.s6_addr;
        a[0] = 0x20; /* 2001:db8::/32 */
        a[1] = 0x01;
        a[2] = 0x0d;
        a[3] = 0xb8;
        if (i % 2 == 0) { /* consecutive hosts in one /64 */
            a[12] = (unsigned char)(i >> 24);
            a[13] = (unsigned char)(i >> 16);
            a[14] = (unsigned char)(i >> 8);
            a[15] = (unsigned char)i;
        } else { /* random subnet and interface id */
            uint64_t r2 = splitmix(&x);
            memcpy(a + 4, &r, 4);
            memcpy(a + 8, &r2, 8);
        }
    }
    return 0;
}

static int free_addresses(void **unused)
{
    (void)unused;
    free(v4);
    free(v6);
    return 0;
}

static weft_balancer *make_ch(size_t nloops, unsigned vnodes, uint64_t seed, bool hash_port)
{
    weft_lb_config cfg;
    weft_lb_config_init(&cfg);
    cfg.kind = WEFT_LB_CONSISTENT_HASH;
    if (vnodes != 0)
        cfg.vnodes = vnodes;
    cfg.seed = seed;
    cfg.hash_port = hash_port;
    weft_balancer *b = NULL;
    assert_int_equal(weft_balancer_create(&cfg, nloops, &b), 0);
    assert_non_null(b);
    return b;
}

static size_t pick4(weft_balancer *b, const struct sockaddr_in *a)
{
    return weft_balancer_pick(b, (const struct sockaddr *)a, sizeof(*a), NULL);
}

static size_t pick6(weft_balancer *b, const struct sockaddr_in6 *a)
{
    return weft_balancer_pick(b, (const struct sockaddr *)a, sizeof(*a), NULL);
}

static void test_defaults_and_name(void **unused)
{
    (void)unused;
    weft_lb_config cfg;
    weft_lb_config_init(&cfg);
    assert_int_equal(cfg.vnodes, 160);
    assert_false(cfg.hash_port);
    weft_balancer *b = make_ch(4, 0, 0, false);
    assert_string_equal(weft_balancer_get_name(b), "consistent-hash");
    assert_false(weft_balancer_needs_live(b));
    weft_balancer_destroy(b);
}

/* The ring as documented, the slow way: point (loop, r) is XXH3 of loop and r as two
 * little-endian 32-bit words, a peer's key is XXH3 of its address bytes (and port, network
 * order), and the owner is the first point at or after the key, wrapping; equal points go
 * to the lower loop. */
static size_t reference_pick(size_t nloops, unsigned vnodes, uint64_t seed,
                             const unsigned char *key, size_t key_len)
{
    uint64_t h = XXH3_64bits_withSeed(key, key_len, seed);
    bool found = false, wrap_found = false;
    uint64_t best = 0, lowest = 0;
    size_t best_loop = 0, lowest_loop = 0;
    for (uint32_t loop = 0; loop < nloops; loop++) {
        for (uint32_t r = 0; r < vnodes; r++) {
            unsigned char w[8] = {(unsigned char)loop,
                                  (unsigned char)(loop >> 8),
                                  (unsigned char)(loop >> 16),
                                  (unsigned char)(loop >> 24),
                                  (unsigned char)r,
                                  (unsigned char)(r >> 8),
                                  (unsigned char)(r >> 16),
                                  (unsigned char)(r >> 24)};
            uint64_t p = XXH3_64bits_withSeed(w, sizeof(w), seed);
            if (p >= h && (!found || p < best)) {
                found = true;
                best = p;
                best_loop = loop;
            }
            if (!wrap_found || p < lowest) {
                wrap_found = true;
                lowest = p;
                lowest_loop = loop;
            }
        }
    }
    return found ? best_loop : lowest_loop;
}

static void test_matches_the_documented_ring(void **unused)
{
    (void)unused;
    const size_t nloops = 5;
    const unsigned vnodes = 7; /* a sparse ring, so wrapping round is common */
    const uint64_t seed = 3;
    for (int with_port = 0; with_port <= 1; with_port++) {
        weft_balancer *b = make_ch(nloops, vnodes, seed, with_port);
        for (size_t i = 0; i < 2000; i++) {
            unsigned char key[18];
            memcpy(key, &v4[i].sin_addr, 4);
            memcpy(key + 4, &v4[i].sin_port, 2);
            assert_int_equal(pick4(b, &v4[i]),
                             reference_pick(nloops, vnodes, seed, key, with_port ? 6 : 4));
            memcpy(key, v6[i].sin6_addr.s6_addr, 16);
            memcpy(key + 16, &v6[i].sin6_port, 2);
            assert_int_equal(pick6(b, &v6[i]),
                             reference_pick(nloops, vnodes, seed, key, with_port ? 18 : 16));
        }
        weft_balancer_destroy(b);
    }
}

static void test_same_address_same_loop(void **unused)
{
    (void)unused;
    /* Two separately built balancers stand for a restart: the mapping must survive it. */
    weft_balancer *a = make_ch(8, 0, 0, false);
    weft_balancer *b = make_ch(8, 0, 0, false);
    unsigned char *first = malloc(NADDRS);
    assert_non_null(first);
    for (size_t i = 0; i < NADDRS; i++) {
        size_t k = pick4(a, &v4[i]);
        assert_in_range(k, 0, 7);
        first[i] = (unsigned char)k;
    }
    for (size_t i = 0; i < NADDRS; i++) {
        assert_int_equal(pick4(a, &v4[i]), first[i]);
        assert_int_equal(pick4(b, &v4[i]), first[i]);
    }
    for (size_t i = 0; i < NADDRS; i++) {
        size_t k = pick6(a, &v6[i]);
        assert_in_range(k, 0, 7);
        first[i] = (unsigned char)k;
    }
    for (size_t i = 0; i < NADDRS; i++) {
        assert_int_equal(pick6(a, &v6[i]), first[i]);
        assert_int_equal(pick6(b, &v6[i]), first[i]);
    }
    free(first);
    weft_balancer_destroy(a);
    weft_balancer_destroy(b);
}

static void test_port_ignored_unless_asked(void **unused)
{
    (void)unused;
    weft_balancer *b = make_ch(8, 0, 0, false);
    weft_balancer *bp = make_ch(8, 0, 0, true);
    int moved = 0;
    for (size_t i = 0; i < 1000; i++) {
        struct sockaddr_in a = v4[i];
        struct sockaddr_in6 a6 = v6[i];
        size_t k = pick4(b, &a);
        size_t k6 = pick6(b, &a6);
        size_t kp = pick4(bp, &a);
        a.sin_port = htons(ntohs(a.sin_port) + 1);
        a6.sin6_port = a.sin_port;
        /* Reconnecting from another ephemeral port: same loop by default. */
        assert_int_equal(pick4(b, &a), k);
        assert_int_equal(pick6(b, &a6), k6);
        moved += pick4(bp, &a) != kp;
    }
    /* With hash_port the port is part of the key: about 7 in 8 land elsewhere. */
    assert_true(moved > 800);
    weft_balancer_destroy(b);
    weft_balancer_destroy(bp);
}

static void test_v4_mapped_v6_is_the_v4_address(void **unused)
{
    (void)unused;
    weft_balancer *b = make_ch(8, 0, 0, false);
    for (size_t i = 0; i < 10000; i++) {
        struct sockaddr_in6 m;
        memset(&m, 0, sizeof(m));
        m.sin6_family = AF_INET6;
        m.sin6_port = v4[i].sin_port;
        m.sin6_addr.s6_addr[10] = 0xff;
        m.sin6_addr.s6_addr[11] = 0xff;
        memcpy(m.sin6_addr.s6_addr + 12, &v4[i].sin_addr, 4);
        assert_int_equal(pick6(b, &m), pick4(b, &v4[i]));
    }
    weft_balancer_destroy(b);
}

/* Fills count[] with how many of the addresses land on each loop. */
static void tally(weft_balancer *b, bool six, size_t *count)
{
    for (size_t i = 0; i < NADDRS; i++)
        count[six ? pick6(b, &v6[i]) : pick4(b, &v4[i])]++;
}

/* The worst ratio of a loop's count to its fair share, both ways. */
static void spread(const size_t *count, size_t n, double *lo, double *hi)
{
    double fair = (double)NADDRS / (double)n;
    *lo = *hi = (double)count[0] / fair;
    for (size_t k = 1; k < n; k++) {
        double r = (double)count[k] / fair;
        *lo = r < *lo ? r : *lo;
        *hi = r > *hi ? r : *hi;
    }
}

static void test_spread_over_eight_loops(void **unused)
{
    (void)unused;
    weft_balancer *b = make_ch(8, 0, 0, false);
    for (int six = 0; six <= 1; six++) {
        size_t count[8] = {0};
        tally(b, six, count);
        double lo, hi;
        spread(count, 8, &lo, &hi);
        printf("# spread, IPv%d, 8 loops, 160 vnodes, seed 0: %.3f .. %.3f of fair share\n",
               six ? 6 : 4, lo, hi);
        assert_true(hi <= 1.15);
        assert_true(lo >= 0.85);
    }
    weft_balancer_destroy(b);
}

static void test_spread_holds_for_any_seed_with_more_vnodes(void **unused)
{
    (void)unused;
    /* A ring's balance is a draw: with 160 random points per loop a loop's share has a
     * standard deviation near 1/sqrt(160), about 8%, so the default meets the 15% bound for
     * seed 0 but misses it for about 3 seeds in 10. 640 points per loop (about 4%) met it
     * for all of 500 seeds, IPv4 and IPv6; check a handful here, so a ring that loses
     * balance shows up as a failure. */
    for (uint64_t seed = 1; seed <= 8; seed++) {
        weft_balancer *b = make_ch(8, 640, seed, false);
        size_t count[8] = {0};
        tally(b, seed % 2 == 0, count);
        double lo, hi;
        spread(count, 8, &lo, &hi);
        assert_true(hi <= 1.15);
        assert_true(lo >= 0.85);
        weft_balancer_destroy(b);
    }
}

static void test_growing_moves_only_what_the_new_loop_takes(void **unused)
{
    (void)unused;
    unsigned char *before = malloc(2 * NADDRS);
    assert_non_null(before);
    weft_balancer *prev = make_ch(1, 0, 0, false);
    for (size_t i = 0; i < NADDRS; i++) {
        before[i] = (unsigned char)pick4(prev, &v4[i]);
        before[NADDRS + i] = (unsigned char)pick6(prev, &v6[i]);
    }
    double worst_excess = -1.0;
    for (size_t n = 1; n <= 16; n++) {
        weft_balancer *next = make_ch(n + 1, 0, 0, false);
        size_t moved = 0;
        for (size_t i = 0; i < 2 * NADDRS; i++) {
            size_t k = i < NADDRS ? pick4(next, &v4[i]) : pick6(next, &v6[i - NADDRS]);
            if (k != before[i]) {
                /* An address that moves, moves to the new loop; never between old ones. */
                assert_int_equal(k, n);
                moved++;
            }
            before[i] = (unsigned char)k;
        }
        double frac = (double)moved / (2.0 * NADDRS);
        double bound = 1.0 / (double)(n + 1) + 0.05;
        if (frac - 1.0 / (double)(n + 1) > worst_excess)
            worst_excess = frac - 1.0 / (double)(n + 1);
        printf("# grow %2zu -> %2zu loops: %.4f moved (ideal %.4f, bound %.4f)\n", n, n + 1, frac,
               1.0 / (double)(n + 1), bound);
        assert_true(frac <= bound);
        assert_true(moved > 0);
        weft_balancer_destroy(prev);
        prev = next;
    }
    printf("# worst excess over 1/(N+1): %+.4f\n", worst_excess);
    weft_balancer_destroy(prev);
    free(before);
}

static void test_seed_reshuffles(void **unused)
{
    (void)unused;
    weft_balancer *a = make_ch(8, 0, 0, false);
    weft_balancer *b = make_ch(8, 0, 99, false);
    int differ = 0;
    for (size_t i = 0; i < 1000; i++)
        differ += pick4(a, &v4[i]) != pick4(b, &v4[i]);
    assert_true(differ > 700);
    weft_balancer_destroy(a);
    weft_balancer_destroy(b);
}

static void test_peer_without_ip_goes_round_robin(void **unused)
{
    (void)unused;
    weft_balancer *b = make_ch(3, 0, 0, false);
    struct sockaddr_un un;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    struct sockaddr_in short4 = v4[0];
    for (size_t i = 0; i < 9; i++) {
        size_t k;
        switch (i % 3) {
        case 0:
            k = weft_balancer_pick(b, NULL, 0, NULL);
            break;
        case 1: /* an unnamed Unix peer: only the family is there */
            k = weft_balancer_pick(b, (struct sockaddr *)&un, sizeof(un.sun_family), NULL);
            break;
        default: /* a truncated IPv4 name must not be read past its length */
            k = weft_balancer_pick(b, (struct sockaddr *)&short4, 4, NULL);
            break;
        }
        assert_int_equal(k, i % 3);
    }
    weft_balancer_destroy(b);
}

static void test_zero_vnodes_rejected(void **unused)
{
    (void)unused;
    weft_lb_config cfg;
    weft_lb_config_init(&cfg);
    cfg.kind = WEFT_LB_CONSISTENT_HASH;
    cfg.vnodes = 0;
    weft_balancer *b = (weft_balancer *)&cfg; /* must be reset to NULL */
    assert_int_equal(weft_balancer_create(&cfg, 4, &b), WEFT_EINVAL);
    assert_null(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_name),
        cmocka_unit_test(test_matches_the_documented_ring),
        cmocka_unit_test(test_same_address_same_loop),
        cmocka_unit_test(test_port_ignored_unless_asked),
        cmocka_unit_test(test_v4_mapped_v6_is_the_v4_address),
        cmocka_unit_test(test_spread_over_eight_loops),
        cmocka_unit_test(test_spread_holds_for_any_seed_with_more_vnodes),
        cmocka_unit_test(test_growing_moves_only_what_the_new_loop_takes),
        cmocka_unit_test(test_seed_reshuffles),
        cmocka_unit_test(test_peer_without_ip_goes_round_robin),
        cmocka_unit_test(test_zero_vnodes_rejected),
    };
    return cmocka_run_group_tests(tests, make_addresses, free_addresses);
}
