/* weft — load balancers: which loop gets a new connection.
 *
 * With more than one loop, the acceptor calls pick() once per connection it hands off, on
 * the acceptor thread. Connections a loop accepts itself (a single loop, reuse_port tcp://
 * and tls:// listeners) and dialled or enrolled ones are placed without it, but on_open and
 * on_close see every connection. A balancer is a vtable, one file per balancer in
 * loadbalance/, so a user balancer plugs in the same way.
 */
#ifndef WEFT_BALANCER_H
#define WEFT_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/error.h"
#include "weft/socket.h"
#include "weft/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum weft_lb_kind {
    WEFT_LB_ROUND_ROBIN = 0,
    WEFT_LB_LEAST_CONNECTIONS,
    WEFT_LB_CONSISTENT_HASH,
    WEFT_LB_RANDOM,
    WEFT_LB_CUSTOM
} weft_lb_kind;

struct weft_balancer_vtable;

typedef struct weft_lb_config {
    weft_lb_kind kind; /* default WEFT_LB_ROUND_ROBIN */
    unsigned vnodes;   /* consistent hash: virtual nodes per loop; default 160 */
    bool hash_port;    /* consistent hash: include the peer port; default false */
    uint64_t seed;     /* consistent hash's XXH3 seed, random's start (random with 0 seeds
                          itself from the clock); default 0 */
    const struct weft_balancer_vtable *custom; /* kind == WEFT_LB_CUSTOM; borrowed until the
                                                  balancer is destroyed */
    void *custom_ctx; /* custom: the state when the vtable has no create; never freed */
} weft_lb_config;

/* Fills every field with its default. */
WEFT_API void weft_lb_config_init(weft_lb_config *cfg);

/* What pick sees of the loops. live[i] is loop i's live connection count (handed off and
 * not yet closed), or NULL unless the balancer sets WEFT_LB_NEEDS_LIVE. */
typedef struct weft_lb_view {
    size_t nloops;
    const uint64_t *live;
} weft_lb_view;

#define WEFT_LB_NEEDS_LIVE 1u

typedef struct weft_balancer_vtable {
    const char *name;
    unsigned flags; /* WEFT_LB_NEEDS_LIVE */
    /* Makes the balancer's state for nloops loops. 0 or a negative WEFT_E* code. Optional
     * for a user balancer: without it the state is cfg->custom_ctx and destroy is not
     * called. */
    int (*create)(const weft_lb_config *cfg, size_t nloops, void **state);
    void (*destroy)(void *state);
    /* Returns a loop index < view->nloops. Acceptor thread only. peer may be NULL (e.g. a
     * Unix-socket peer without a name). */
    size_t (*pick)(void *state, const struct sockaddr *peer, socklen_t peer_len,
                   const weft_lb_view *view);
    /* Optional; called on the loop's own thread, so must be thread-safe. */
    void (*on_open)(void *state, size_t loop);
    void (*on_close)(void *state, size_t loop);
} weft_balancer_vtable;

typedef struct weft_balancer weft_balancer;

/* Makes a balancer for nloops loops from cfg (borrowed until this returns). *out is owned by
 * the caller (free with weft_balancer_destroy). Returns 0, WEFT_EINVAL (a NULL argument,
 * nloops 0, an unknown kind, no custom vtable or pick, vnodes 0), WEFT_ENOMEM, or a custom
 * create's own error. pick takes no lock: call it from one thread at a time. */
WEFT_API int weft_balancer_create(const weft_lb_config *cfg, size_t nloops, weft_balancer **out);
/* Frees b (NULL is ignored), calling the vtable's destroy when it has a create. */
WEFT_API void weft_balancer_destroy(weft_balancer *b);
/* Picks a loop; see weft_balancer_vtable.pick. view may be NULL when the balancer does not
 * need live counts. An out-of-range answer from a user balancer is reduced modulo nloops. */
WEFT_API size_t weft_balancer_pick(weft_balancer *b, const struct sockaddr *peer,
                                   socklen_t peer_len, const weft_lb_view *view);
/* Forward to the vtable's on_open / on_close, when it has them (a NULL b is ignored). */
WEFT_API void weft_balancer_on_open(weft_balancer *b, size_t loop);
WEFT_API void weft_balancer_on_close(weft_balancer *b, size_t loop);
/* True when pick wants view->live filled in (false for a NULL b). */
WEFT_API bool weft_balancer_needs_live(const weft_balancer *b);
/* The vtable's name ("round-robin", "least-connections", "consistent-hash", "random"), or
 * "custom" for a NULL b or an unnamed vtable; static, or borrowed from the vtable. */
WEFT_API const char *weft_balancer_get_name(const weft_balancer *b);

WEFT_API extern const weft_balancer_vtable weft_lb_round_robin;
WEFT_API extern const weft_balancer_vtable weft_lb_least_connections;
WEFT_API extern const weft_balancer_vtable weft_lb_consistent_hash;
WEFT_API extern const weft_balancer_vtable weft_lb_random;

#ifdef __cplusplus
}
#endif

#endif /* WEFT_BALANCER_H */
