/* A loop's wakeup (core's weft__waker, platform.h) watched as a loop's backend watches it,
 * for the tests of what wakes a loop, on POSIX systems and Windows alike. On POSIX systems
 * the waker is an eventfd: a wait polls it, and weft__waker_drain reads it. On Windows it
 * is a completion posted to the loop's port, which the IOCP backend makes: here
 * wt_waker_attach makes one, and a wait takes the completion, as the backend does.
 */
#ifndef WEFT_TEST_WAKER_H
#define WEFT_TEST_WAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "platform.h"

/* Gives an initialised waker what a backend gives it before any thread wakes the loop (a
 * completion port on Windows; nothing on POSIX systems): 0 or a negated errno.
 * wt_waker_detach undoes it; call it before the waker is destroyed. */
int wt_waker_attach(weft__waker *w);
void wt_waker_detach(weft__waker *w);

/* Waits up to timeout_ms for a wakeup, as the loop does before it drains its inbox: true
 * when one came. A loop's wait and then its drain have taken the wakeup, on either system
 * (the wait takes it on Windows, the drain on POSIX systems). */
bool wt_waker_wait(weft__waker *w, int timeout_ms);

/* How many wakeups were written and not yet taken; it takes them. */
uint64_t wt_waker_take(weft__waker *w);

#endif /* WEFT_TEST_WAKER_H */
