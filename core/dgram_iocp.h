/* weft — the IOCP backend's datagram sockets (dgram_iocp.c), as backend_iocp.c calls them.
 *
 * A datagram socket is associated with its loop's completion port under a key of its own,
 * so the backend hands every completion that carries that key here without knowing what
 * its OVERLAPPED sits in. The backend counts the receives in flight from what these calls
 * return, and ends each batch of completions with weft__dgram_recv_end. Loop thread only.
 */
#ifndef WEFT_DGRAM_IOCP_H
#define WEFT_DGRAM_IOCP_H

#include "internal.h"

#define WIN32_LEAN_AND_MEAN
#include <windows.h>

/* The completion key of a datagram socket's receives (the backend's own keys are below). */
#define WEFT__IOCP_KEY_DGRAM 2

/* Starts receiving on the datagram socket l of loop: the first time, associates it with port
 * and allocates its buffers; then posts every receive not outstanding. Returns how many it
 * posted, or a negative WEFT_E* code (logged) when it could post none. */
int weft__iocp_dgram_start(weft__loop *loop, weft__listener *l, HANDLE port);
/* Stops receiving on l: what is outstanding is cancelled and completes as such. */
void weft__iocp_dgram_stop(weft__listener *l);
/* One receive completed (bytes transferred, key WEFT__IOCP_KEY_DGRAM): its datagram goes to
 * weft__dgram_recv, and it is posted again while l receives. Returns how many receives it
 * posted. */
unsigned weft__iocp_dgram_done(weft__loop *loop, OVERLAPPED *ov, DWORD bytes);
/* Frees l's buffers unless a receive is still with the kernel (then they stay: the loop
 * waited for them at quit and gave up). */
void weft__iocp_dgram_free(weft__listener *l);

#endif /* WEFT_DGRAM_IOCP_H */
