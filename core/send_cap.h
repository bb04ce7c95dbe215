/* weft — for tests only: a cap on the bytes one send may carry, so that the paths that finish
 * a partial send run on systems whose kernel takes whole sends (loopback on Linux; Wine,
 * where every WSASend completes in full).
 *
 * WEFT_TEST_SEND_CAP=N in the environment, read once as each engine starts, makes the
 * connection layer hand its backend at most N bytes per send (conn_write.c), whichever the
 * backend (a WSASend, a send/sendmsg, a send submission): the completion (or the call) then
 * reports fewer bytes than the output queue held, and the rest must go next, in order.
 * Never for production: it turns a reply of L bytes into L / N sends, and an engine that
 * has it says so in its log. Not a public API: nothing under include/ names it, and it may
 * change or go at any time.
 */
#ifndef WEFT_SEND_CAP_H
#define WEFT_SEND_CAP_H

#include <stddef.h>
#include <stdint.h>

#include "weft/engine.h"
#include "weft/socket.h"

struct weft__loop;

/* WEFT_TEST_SEND_CAP's value for engine e (logged as a warning when set), or 0 for none:
 * unset, empty, 0 or not a number (that last one logged too). */
size_t weft__send_cap_env(weft_engine *e);

/* Loop thread, with loop->send_cap != 0: the first send_cap bytes of iov[0..iovcnt) as
 * entries of out (room for iovcnt; they point into iov's memory), and their count. A send cut
 * short by the cap is counted in the loop's capped_sends. */
int weft__send_cap_apply(struct weft__loop *loop, const struct iovec *iov, int iovcnt,
                         struct iovec *out);

/* Sends of e's loops the cap cut short so far (counted by weft__send_cap_apply). Any
 * thread, while e is valid. */
uint64_t weft__send_cap_cuts(weft_engine *e);

#endif /* WEFT_SEND_CAP_H */
