/* The core of weft-proxy: a TCP (or Unix socket) proxy built from weft's client side.
 *
 * Every accepted connection dials the backend onto its own loop, so the two ends of a pair
 * live on one thread and forward to each other with plain weft_conn_write. Backpressure runs
 * both ways: when one end has more than high_mark bytes queued for its peer, the proxy stops
 * reading the other end (weft_conn_pause_read) and resumes it once that queue has gone to
 * the kernel (on_drain). When either end closes, the other is closed after its queued bytes are sent.
 */
#ifndef WEFT_PROXY_H
#define WEFT_PROXY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/weft.h>

typedef struct proxy_options {
    const char *backend;         /* tcp://host:port or unix:///path; borrowed while the
                                    engine runs */
    unsigned connect_timeout_ms; /* the backend dial's; default 5000 */
    size_t high_mark;            /* queued bytes that pause the other end; default 256 KiB */
} proxy_options;

/* What the proxy did; readable from any thread. */
typedef struct proxy_state {
    proxy_options opt;
    _Atomic uint64_t pairs;         /* client connections accepted */
    _Atomic uint64_t dial_failures; /* backend dials that failed (the client was closed) */
    _Atomic uint64_t pauses;        /* times an end stopped reading for its peer */
    _Atomic uint64_t live_pairs;    /* pairs whose memory is still held */
} proxy_state;

void proxy_options_init(proxy_options *o);

/* Makes cfg run the proxy described by ps->opt: sets the handler and user_data (ps, owned
 * by the caller, must outlive the engine), and timeouts that suit a byte pipe. The caller
 * sets cfg->listen and cfg->loops. Returns 0 or WEFT_EINVAL (no backend). */
int proxy_configure(weft_config *cfg, proxy_state *ps);

#endif /* WEFT_PROXY_H */
