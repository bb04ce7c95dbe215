/* A client thread that floods a server: it sends len bytes of data on fd without blocking,
 * in 256 KiB sends, waiting (10 ms at most) for room whenever a send is refused, until all
 * went, an error, or 3 x WT_TIMEOUT_MS. What it did is readable from other threads while it
 * runs: how far it got, how many sends were refused for want of room (every buffer between
 * it and a server that stopped reading is full), and the error that stopped it. */
#ifndef WEFT_TEST_FLOOD_H
#define WEFT_TEST_FLOOD_H

#include <stdatomic.h>
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

#endif /* WEFT_TEST_FLOOD_H */
