/* Counting on_open / on_close handlers; see counters.h. */
#include "counters.h"

#include <stdatomic.h>
#include <stddef.h>

#include "harness.h"

wt_counters wt_counts = {.last_err = 1};

/* Closes by error: 0 and negated errno values up to 255 in the first slots, weft's own
 * codes (from -4000 down) after them, and one slot for anything else. */
#define ERRNO_SLOTS 256
#define WEFT_SLOTS  256
#define OTHER_SLOT  (ERRNO_SLOTS + WEFT_SLOTS)

static _Atomic long closed_by_err[OTHER_SLOT + 1];

static size_t err_slot(int err)
{
    if (err <= 0 && err > -ERRNO_SLOTS)
        return (size_t)-err;
    if (err <= -4000 && err > -4000 - WEFT_SLOTS)
        return ERRNO_SLOTS + (size_t)(-4000 - err);
    return OTHER_SLOT;
}

void wt_counters_reset(void)
{
    atomic_store(&wt_counts.opened, 0);
    atomic_store(&wt_counts.closed, 0);
    atomic_store(&wt_counts.closed_err, 0);
    atomic_store(&wt_counts.last_err, 1);
    atomic_store(&wt_counts.first_close_ms, 0);
    atomic_store(&wt_counts.last_close_ms, 0);
    for (int i = 0; i < WT_COUNT_LOOPS; i++) {
        atomic_store(&wt_counts.opened_on[i], 0);
        atomic_store(&wt_counts.closed_on[i], 0);
    }
    for (size_t i = 0; i <= OTHER_SLOT; i++)
        atomic_store(&closed_by_err[i], 0);
}

weft_action wt_count_open(weft_conn *c)
{
    unsigned k = weft_conn_get_loop(c);
    if (k < WT_COUNT_LOOPS)
        atomic_fetch_add(&wt_counts.opened_on[k], 1);
    atomic_fetch_add(&wt_counts.opened, 1);
    return WEFT_ACTION_NONE;
}

void wt_count_close(weft_conn *c, int err)
{
    int64_t now = wt_now_ms();
    int64_t zero = 0;
    atomic_compare_exchange_strong(&wt_counts.first_close_ms, &zero, now);
    atomic_store(&wt_counts.last_close_ms, now);
    unsigned k = weft_conn_get_loop(c);
    if (k < WT_COUNT_LOOPS)
        atomic_fetch_add(&wt_counts.closed_on[k], 1);
    atomic_fetch_add(&closed_by_err[err_slot(err)], 1);
    if (err != 0)
        atomic_fetch_add(&wt_counts.closed_err, 1);
    atomic_store(&wt_counts.last_err, err);
    atomic_fetch_add(&wt_counts.closed, 1);
}

long wt_closed_with(int err)
{
    size_t slot = err_slot(err);
    return slot == OTHER_SLOT ? 0 : atomic_load(&closed_by_err[slot]);
}
