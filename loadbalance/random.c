/* weft — random: each connection goes to a uniformly chosen loop.
 *
 * splitmix64 is the generator: one add and three multiply-xorshift steps per pick, full
 * 2^64 period, and every seed (0 included) is a good one. pick runs on the acceptor thread
 * only, so the state is a plain integer. cfg->seed makes the sequence reproducible; 0 asks
 * for a seed from the clock, so two processes do not walk the same sequence.
 */
#include <stdlib.h>
#include <time.h>

#include "weft/balancer.h"

typedef struct rnd_state {
    uint64_t x;
    size_t nloops;
} rnd_state;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t clock_seed(void *salt)
{
    struct timespec rt = {0, 0};
    struct timespec mono = {0, 0};
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    uint64_t x = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
    /* The monotonic clock and the heap address differ between processes started in the same
     * nanosecond, which the wall clock alone would not. */
    x ^= ((uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec) << 17;
    x ^= (uint64_t)(uintptr_t)salt;
    return splitmix64(&x);
}

static int rnd_create(const weft_lb_config *cfg, size_t nloops, void **state)
{
    /* pick maps 32 random bits onto the loops, which needs nloops to fit in 32 bits. */
    if (nloops > UINT32_MAX)
        return WEFT_EINVAL;
    rnd_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return WEFT_ENOMEM;
    s->nloops = nloops;
    s->x = cfg->seed != 0 ? cfg->seed : clock_seed(s);
    *state = s;
    return 0;
}

static void rnd_destroy(void *state)
{
    free(state);
}

static size_t rnd_pick(void *state, const struct sockaddr *peer, socklen_t peer_len,
                       const weft_lb_view *view)
{
    (void)peer;
    (void)peer_len;
    (void)view;
    rnd_state *s = state;
    /* Lemire's multiply-shift instead of a modulo: no division, and the bias for a few
     * dozen loops out of 2^32 is far below anything measurable. */
    uint64_t r = splitmix64(&s->x) >> 32;
    return (size_t)((r * (uint64_t)s->nloops) >> 32);
}

const weft_balancer_vtable weft_lb_random = {
    .name = "random",
    .flags = 0,
    .create = rnd_create,
    .destroy = rnd_destroy,
    .pick = rnd_pick,
    .on_open = NULL,
    .on_close = NULL,
};
