/* Partial sends over loopback: with the test-only cap WEFT_TEST_SEND_CAP (core/send_cap.h)
 * no send carries more than 1 or 7 bytes, so every reply leaves in many sends, each of which
 * ends before the output queue does, and the rest must go next, in order. Loopback on Linux
 * and Wine on Windows take whole sends, so without the cap these paths would not run here.
 *
 * Each client asks for one large write ("L <bytes> <seed>") and for a burst of small writes
 * made in one callback ("S <count> <seed>"); both replies are wt_fill's pattern for the seed,
 * and the client checks every byte. The counters must add up: the writes the handler made,
 * the bytes it wrote against the engine's bytes_out, and the sends the cap cut short against
 * the least that many bytes need. Each backend's run goes through its own partial-send path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "harness.h"
#include "send_cap.h"

/* Two clients on one loop, so that two connections' partial sends interleave. */
#define CLIENTS 2
#define LOOPS   1
/* Under Wine every WSASend is a round trip through its wineserver: on two loaded cores one
 * took up to half a millisecond, so a run of a few thousand one-byte sends takes seconds.
 * The replies are sized for that, and waited for this long. */
#define REPLY_MS 60000

static _Atomic long writes_made;   /* weft_conn_write calls that succeeded */
static _Atomic long bytes_written; /* their bytes */
static _Atomic long write_errors;

/* WEFT_TEST_SEND_CAP for the engines started next; NULL: none. */
static void set_cap(const char *v)
{
#ifdef _WIN32
    (void)_putenv_s("WEFT_TEST_SEND_CAP", v != NULL ? v : ""); /* "" removes it */
#else
    if (v != NULL)
        (void)setenv("WEFT_TEST_SEND_CAP", v, 1);
    else
        (void)unsetenv("WEFT_TEST_SEND_CAP");
#endif
}

/* The size of small write i of a burst: 1 to 23 bytes. */
static size_t small_len(long i, unsigned seed)
{
    return 1 + (size_t)((unsigned long)i * 7u + seed) % 23u;
}

static size_t burst_bytes(long count, unsigned seed)
{
    size_t n = 0;
    for (long i = 0; i < count; i++)
        n += small_len(i, seed);
    return n;
}

static void wrote(weft_conn *c, const uint8_t *p, size_t n)
{
    if (weft_conn_write(c, p, n) != 0) {
        atomic_fetch_add(&write_errors, 1);
        return;
    }
    atomic_fetch_add(&writes_made, 1);
    atomic_fetch_add(&bytes_written, (long)n);
}

/* One request line: the reply is written whole, or in count small writes, all inside this
 * callback. */
static void serve_line(weft_conn *c, const uint8_t *f, size_t len)
{
    char line[64];
    char kind;
    long n;
    unsigned seed;
    if (len >= sizeof(line)) {
        atomic_fetch_add(&write_errors, 1);
        return;
    }
    memcpy(line, f, len);
    line[len] = '\0';
    if (sscanf(line, "%c %ld %u", &kind, &n, &seed) != 3 || n <= 0) {
        atomic_fetch_add(&write_errors, 1);
        return;
    }
    size_t total = kind == 'S' ? burst_bytes(n, seed) : (size_t)n;
    uint8_t *buf = malloc(total);
    if (buf == NULL) {
        atomic_fetch_add(&write_errors, 1);
        return;
    }
    wt_fill(buf, total, seed);
    if (kind == 'S') {
        size_t off = 0;
        for (long i = 0; i < n; i++) {
            size_t k = small_len(i, seed);
            wrote(c, buf + off, k);
            off += k;
        }
    } else {
        wrote(c, buf, total);
    }
    free(buf); /* weft copied what it did not send at once */
}

static weft_action serve(weft_conn *c)
{
    const uint8_t *f;
    size_t len;
    while (weft_conn_next_frame(c, &f, &len) == 1)
        serve_line(c, f, len);
    return WEFT_ACTION_NONE;
}

typedef struct expect {
    weft_engine *e;
    long bytes;
} expect;

/* Every byte written was sent (bytes_out is counted once a send finished). */
static bool all_sent(void *arg)
{
    const expect *x = arg;
    return wt_stats(x->e).bytes_out == (uint64_t)x->bytes;
}

static bool all_closed(void *arg)
{
    return wt_stats(arg).live == 0;
}

/* Runs CLIENTS clients on LOOPS loops, each asking for large bytes in one write and for a
 * burst of small writes, with cap (0: none). Checks every byte, then the counters. */
static void run(size_t cap, long large, long small)
{
    char capstr[32];
    snprintf(capstr, sizeof(capstr), "%zu", cap);
    set_cap(cap != 0 ? capstr : NULL);
    wt_counters_reset();
    atomic_store(&writes_made, 0);
    atomic_store(&bytes_written, 0);
    atomic_store(&write_errors, 0);

    weft_config cfg;
    wt_config(&cfg, serve, LOOPS);
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.handler.on_open = wt_count_open;
    cfg.handler.on_close = wt_count_close;
    wt_server s;
    int rc = wt_server_start(&s, &cfg);
    set_cap(NULL);
    assert_int_equal(rc, 0);

    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = wt_connect_tcp(s.port);
        assert_true(fds[i] >= 0);
    }
    assert_true(wt_wait_count(&wt_counts.opened, CLIENTS, WT_TIMEOUT_MS));

    /* Both requests of every client first, so the loops send to all of them at once. */
    for (int i = 0; i < CLIENTS; i++) {
        char req[96];
        int n = snprintf(req, sizeof(req), "L %ld %d\nS %ld %d\n", large + i, 10 * i + 1, small + i,
                         10 * i + 2);
        assert_int_equal(wt_send_all(fds[i], req, (size_t)n, WT_TIMEOUT_MS), 0);
    }
    long want_bytes = 0, want_writes = 0, min_cuts = 0;
    for (int i = 0; i < CLIENTS; i++) {
        want_writes += 1 + small + i; /* the large one, and the burst */
        size_t lens[2] = {(size_t)(large + i), burst_bytes(small + i, 10u * (unsigned)i + 2)};
        for (int r = 0; r < 2; r++) {
            uint8_t *want = malloc(lens[r]), *got = malloc(lens[r]);
            assert_non_null(want);
            assert_non_null(got);
            wt_fill(want, lens[r], 10u * (unsigned)i + 1u + (unsigned)r);
            int rc_recv = wt_recv_exact(fds[i], got, lens[r], REPLY_MS);
            if (rc_recv != 0) /* how far the sends got, for the failure's report */
                print_message("client %d reply %d: %d; bytes_out %llu of %ld, cuts %llu\n", i, r,
                              rc_recv, (unsigned long long)wt_stats(s.engine).bytes_out,
                              atomic_load(&bytes_written),
                              (unsigned long long)weft__send_cap_cuts(s.engine));
            assert_int_equal(rc_recv, 0);
            assert_memory_equal(got, want, lens[r]);
            free(want);
            free(got);
            want_bytes += (long)lens[r];
            /* A reply of T bytes, queued whole before its first send: every send but those
             * of its last cap bytes offers more than the cap, and carries at most cap. */
            if (cap != 0)
                min_cuts += (long)(lens[r] / cap) - 1;
        }
    }

    assert_int_equal(atomic_load(&write_errors), 0);
    assert_int_equal(atomic_load(&writes_made), want_writes);
    assert_int_equal(atomic_load(&bytes_written), want_bytes);
    expect x = {s.engine, want_bytes};
    assert_true(wt_wait_for(all_sent, &x, WT_TIMEOUT_MS));
    uint64_t cuts = weft__send_cap_cuts(s.engine);
    if (cap == 0)
        assert_int_equal(cuts, 0);
    else
        assert_true(cuts >= (uint64_t)min_cuts);
    assert_true(wt_stats(s.engine).bytes_in > 0);

    for (int i = 0; i < CLIENTS; i++)
        wt_close(fds[i]);
    assert_true(wt_wait_for(all_closed, s.engine, WT_TIMEOUT_MS));
    wt_server_stop(&s);
    assert_int_equal(atomic_load(&wt_counts.closed), CLIENTS);
    assert_int_equal(atomic_load(&wt_counts.closed_err), 0);
}

/* Without the cap nothing is cut: the counter the capped runs assert on means something. */
static void test_no_cap_cuts_nothing(void **state)
{
    (void)state;
    run(0, 100000, 3000);
}

/* One byte per send: every byte of a reply is a send of its own. */
static void test_cap_one_byte(void **state)
{
    (void)state;
    run(1, 700, 50);
}

/* Seven bytes per send: sends end inside writes and inside the queue's chunks, and the
 * large reply (past one 16 KiB chunk) has a send that spans two of them. */
static void test_cap_seven_bytes(void **state)
{
    (void)state;
    run(7, 17000, 150);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_cap_cuts_nothing),
        cmocka_unit_test(test_cap_one_byte),
        cmocka_unit_test(test_cap_seven_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
