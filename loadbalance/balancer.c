/* weft — the balancer front: picks a vtable from the config and forwards to it.
 *
 * Each built-in balancer lives in its own file and only fills in a vtable; this file owns
 * validation and the handle, so the acceptor talks to one type whatever the kind.
 */
#include <stdlib.h>

#include "weft/balancer.h"

struct weft_balancer {
    const weft_balancer_vtable *vt;
    void *state;
    size_t nloops;
};

void weft_lb_config_init(weft_lb_config *cfg)
{
    if (cfg == NULL)
        return;
    cfg->kind = WEFT_LB_ROUND_ROBIN;
    cfg->vnodes = 160;
    cfg->hash_port = false;
    cfg->seed = 0;
    cfg->custom = NULL;
    cfg->custom_ctx = NULL;
}

static const weft_balancer_vtable *vtable_for(const weft_lb_config *cfg)
{
    switch (cfg->kind) {
    case WEFT_LB_ROUND_ROBIN:
        return &weft_lb_round_robin;
    case WEFT_LB_LEAST_CONNECTIONS:
        return &weft_lb_least_connections;
    case WEFT_LB_CONSISTENT_HASH:
        return &weft_lb_consistent_hash;
    case WEFT_LB_RANDOM:
        return &weft_lb_random;
    case WEFT_LB_CUSTOM:
        /* A user balancer must at least answer pick; create and destroy are optional so a
         * stateless one can live on custom_ctx alone. */
        if (cfg->custom == NULL || cfg->custom->pick == NULL)
            return NULL;
        return cfg->custom;
    }
    return NULL; /* an out-of-range kind */
}

int weft_balancer_create(const weft_lb_config *cfg, size_t nloops, weft_balancer **out)
{
    if (out == NULL)
        return WEFT_EINVAL;
    *out = NULL;
    if (cfg == NULL || nloops == 0)
        return WEFT_EINVAL;

    const weft_balancer_vtable *vt = vtable_for(cfg);
    if (vt == NULL)
        return WEFT_EINVAL;

    weft_balancer *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return WEFT_ENOMEM;
    b->vt = vt;
    b->nloops = nloops;
    b->state = cfg->custom_ctx;
    if (vt->create != NULL) {
        b->state = NULL;
        int rc = vt->create(cfg, nloops, &b->state);
        if (rc != 0) { /* anything but 0 is a failure, whatever its sign */
            free(b);
            return rc < 0 ? rc : WEFT_EINVAL;
        }
    }
    *out = b;
    return 0;
}

void weft_balancer_destroy(weft_balancer *b)
{
    if (b == NULL)
        return;
    /* destroy undoes create: without a create the state is the borrowed custom_ctx, which is
     * the caller's to free. */
    if (b->vt->destroy != NULL && b->vt->create != NULL)
        b->vt->destroy(b->state);
    free(b);
}

size_t weft_balancer_pick(weft_balancer *b, const struct sockaddr *peer, socklen_t peer_len,
                          const weft_lb_view *view)
{
    weft_lb_view fallback = {b->nloops, NULL};
    if (view == NULL || view->nloops == 0)
        view = &fallback;
    size_t k = b->vt->pick(b->state, peer, peer_len, view);
    /* The built-ins never answer out of range; a user balancer might, and an index past the
     * last loop would be a crash in the acceptor, so fold it back in rather than trust it. */
    if (k >= view->nloops)
        k %= view->nloops;
    return k;
}

void weft_balancer_on_open(weft_balancer *b, size_t loop)
{
    if (b != NULL && b->vt->on_open != NULL)
        b->vt->on_open(b->state, loop);
}

void weft_balancer_on_close(weft_balancer *b, size_t loop)
{
    if (b != NULL && b->vt->on_close != NULL)
        b->vt->on_close(b->state, loop);
}

bool weft_balancer_needs_live(const weft_balancer *b)
{
    return b != NULL && (b->vt->flags & WEFT_LB_NEEDS_LIVE) != 0;
}

const char *weft_balancer_get_name(const weft_balancer *b)
{
    if (b == NULL || b->vt->name == NULL)
        return "custom";
    return b->vt->name;
}
