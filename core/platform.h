/* weft — what the core asks of the operating system below its sockets: the page size,
 * reserved-then-committed address space, the clocks and errno's descriptions. One file fills it in per system,
 * platform_posix.c or platform_win.c, chosen by the build; nothing else in the core asks
 * which system it runs on for these.
 *
 * A reservation is address space only: nothing in it may be touched until it is
 * committed, and committing more of it never moves what is already there (the buffer
 * pool's mapped buffers grow in place this way). Any thread; no state is kept here.
 */
#ifndef WEFT_PLATFORM_PRIVATE_H
#define WEFT_PLATFORM_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

/* The system's page size, a power of two. */
size_t weft__page_size(void);

/* Reserves len bytes of address space starting at a multiple of align (a power of two, at
 * least the page size), none of it accessible; NULL when out of address space. Released
 * whole with weft__vm_release(base, len). */
void *weft__vm_reserve(size_t len, size_t align);

/* Makes [addr, addr + len) of a reservation readable and writable (whole pages); 0, or -1
 * when the system has no memory for it. */
int weft__vm_commit(void *addr, size_t len);

/* Gives the memory of [addr, addr + len) back to the system and makes it inaccessible
 * again; the address space stays reserved. */
void weft__vm_decommit(void *addr, size_t len);

/* Asks for huge pages over [addr, addr + len) where the system gives them unasked;
 * elsewhere it does nothing. */
void weft__vm_advise_huge(void *addr, size_t len);

/* Releases a reservation made by weft__vm_reserve, committed parts and all. */
void weft__vm_release(void *base, size_t len);

/* The system's own description of errno value errnum, a static string (thread-safe, never
 * overwritten), or NULL when it has none. */
const char *weft__errno_text(int errnum);

/* A monotonic clock in nanoseconds, and a cheaper coarse one (a scheduler tick of
 * resolution) for stamping activity. */
uint64_t weft__mono_ns(void);
uint64_t weft__coarse_ns(void);

#endif /* WEFT_PLATFORM_PRIVATE_H */
