/* A client thread that floods a server: it sends len bytes of data on fd without blocking,
 * in 256 KiB sends, waiting (10 ms at most) for room whenever a send is refused, until all
 * went, an error, or 3 x WT_TIMEOUT_MS. What it did is readable from other threads while it
 * runs: how far it got, how many sends were refused for want of room (every buffer between
 * it and a server that stopped reading is full), and the error that stopped it. */
#ifndef WEFT_TEST_FLOOD_H
#define WEFT_TEST_FLOOD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wt_flood {
    int fd;
    const uint8_t *data;
    size_t len;
    _Atomic size_t sent;
    _Atomic long full; /* sends refused because every buffer on the way was full */
    _Atomic int error; /* the errno value that stopped it, or 0 */
} wt_flood;

/* The thread's body (pthread_create's start routine); arg is the wt_flood. */
void *wt_flood_main(void *arg);

/* Whether the flood is stuck against a server that stopped reading it: the server paused
 * reading (pauses > 0), and for WT_FLOOD_STUCK_MS it took no bytes (bytes_in) while sends
 * were refused. Nothing drains while the client does not read, so that is a state; the time
 * only tells it from a lull of a loop slowed by a loaded machine or by Wine (every socket
 * call a round trip to wineserver), which can take no bytes for a few milliseconds while it
 * still works through a queue. Fed each sample of the server's stats; watch starts zeroed
 * by wt_flood_watch_init. */
#define WT_FLOOD_STUCK_MS 200
typedef struct wt_flood_watch {
    long full_mark;   /* refused sends when the server was last seen paused ... */
    uint64_t in_mark; /* ... the bytes it had taken then ... */
    int64_t since;    /* ... and since when */
} wt_flood_watch;
void wt_flood_watch_init(wt_flood_watch *watch);
bool wt_flood_stuck(wt_flood_watch *watch, wt_flood *w, uint64_t pauses, uint64_t bytes_in);

#endif /* WEFT_TEST_FLOOD_H */
