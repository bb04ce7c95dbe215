/* Counting on_open / on_close handlers for the loopback tests, kept here once instead of a
 * copy in every test file.
 *
 * The handlers run on loop threads and only record into atomics; a test reads them on its
 * own thread, e.g. wt_wait_count(&wt_counts.closed, n, WT_TIMEOUT_MS). There is one set per
 * process: a test calls wt_counters_reset() before it starts its engine. A test's own
 * handler may count through them too, by calling wt_count_open / wt_count_close.
 */
#ifndef WEFT_TEST_COUNTERS_H
#define WEFT_TEST_COUNTERS_H

#include <stdint.h>

#include <weft/weft.h>

/* Loops whose opens and closes are also counted one by one (weft_conn_get_loop). */
#define WT_COUNT_LOOPS 16

typedef struct wt_counters {
    _Atomic long opened;            /* on_open calls */
    _Atomic long closed;            /* on_close calls (counted last: see below) */
    _Atomic long closed_err;        /* on_close calls with an error (err != 0) */
    _Atomic long last_err;          /* err of the latest on_close; 1 (no weft code) before any */
    _Atomic int64_t first_close_ms; /* wt_now_ms() at the first on_close; 0 before it */
    _Atomic int64_t last_close_ms;  /* wt_now_ms() at the latest on_close */
    _Atomic long opened_on[WT_COUNT_LOOPS];
    _Atomic long closed_on[WT_COUNT_LOOPS];
} wt_counters;

extern wt_counters wt_counts;

/* Zeroes every count (last_err becomes 1). Call it while no engine runs. */
void wt_counters_reset(void);

/* An on_open that counts the connection. */
weft_action wt_count_open(weft_conn *c);

/* An on_close that counts the close and its error. closed is counted after everything
 * else, so a test that waited for it sees the rest of what that close recorded. */
void wt_count_close(weft_conn *c, int err);

/* on_close calls whose err was exactly err: 0 (orderly closes), a negated errno or a
 * WEFT_E* code. */
long wt_closed_with(int err);

#endif /* WEFT_TEST_COUNTERS_H */
