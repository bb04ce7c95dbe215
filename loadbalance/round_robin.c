/* weft — round-robin: loop 0, 1, ..., n-1, 0, ...
 *
 * pick runs on the acceptor thread only, so the cursor is a plain counter: no atomics on the
 * accept path.
 */
#include <stdlib.h>

#include "weft/balancer.h"

typedef struct rr_state {
    size_t next;
    size_t nloops;
} rr_state;

static int rr_create(const weft_lb_config *cfg, size_t nloops, void **state)
{
    (void)cfg;
    rr_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return WEFT_ENOMEM;
    s->nloops = nloops;
    *state = s;
    return 0;
}

static void rr_destroy(void *state)
{
    free(state);
}

static size_t rr_pick(void *state, const struct sockaddr *peer, socklen_t peer_len,
                      const weft_lb_view *view)
{
    (void)peer;
    (void)peer_len;
    (void)view;
    rr_state *s = state;
    size_t k = s->next;
    s->next = k + 1 == s->nloops ? 0 : k + 1;
    return k;
}

const weft_balancer_vtable weft_lb_round_robin = {
    .name = "round-robin",
    .flags = 0,
    .create = rr_create,
    .destroy = rr_destroy,
    .pick = rr_pick,
    .on_open = NULL,
    .on_close = NULL,
};
