/* weft — least-connections: the loop with the fewest live connections.
 *
 * The counts are the engine's (view->live), kept by the loops themselves, so this balancer
 * needs no on_open/on_close of its own and takes no lock. Ties are broken by scanning from a
 * cursor that moves past each pick: a burst of accepts that lands before the loops have
 * counted the previous hand-offs still spreads over the tied loops instead of piling onto
 * loop 0. The answer is a deterministic function of the counts and the pick history.
 */
#include <stdlib.h>

#include "weft/balancer.h"

typedef struct lc_state {
    size_t start;
    size_t nloops;
} lc_state;

static int lc_create(const weft_lb_config *cfg, size_t nloops, void **state)
{
    (void)cfg;
    lc_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return WEFT_ENOMEM;
    s->nloops = nloops;
    *state = s;
    return 0;
}

static void lc_destroy(void *state)
{
    free(state);
}

static size_t lc_pick(void *state, const struct sockaddr *peer, socklen_t peer_len,
                      const weft_lb_view *view)
{
    (void)peer;
    (void)peer_len;
    lc_state *s = state;
    size_t n = view->nloops < s->nloops ? view->nloops : s->nloops;
    size_t start = s->start < n ? s->start : 0;

    size_t best = start;
    if (view->live != NULL) {
        uint64_t best_live = view->live[start];
        /* Two runs instead of a modulo per step: start..n-1, then 0..start-1. */
        for (size_t i = start + 1; i < n && best_live != 0; i++) {
            if (view->live[i] < best_live) {
                best = i;
                best_live = view->live[i];
            }
        }
        for (size_t i = 0; i < start && best_live != 0; i++) {
            if (view->live[i] < best_live) {
                best = i;
                best_live = view->live[i];
            }
        }
    }
    /* Without counts (a caller that ignored WEFT_LB_NEEDS_LIVE) this degrades to
     * round-robin rather than to always loop 0. */
    s->start = best + 1 == n ? 0 : best + 1;
    return best;
}

const weft_balancer_vtable weft_lb_least_connections = {
    .name = "least-connections",
    .flags = WEFT_LB_NEEDS_LIVE,
    .create = lc_create,
    .destroy = lc_destroy,
    .pick = lc_pick,
    .on_open = NULL,
    .on_close = NULL,
};
