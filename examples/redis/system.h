/* weft-redis — what it asks of the system that differs between POSIX systems and Windows,
 * so that the command code asks no system which it is.
 *
 * Memory aligned to more than malloc gives (a cache line, so that each loop's counters sit
 * on their own): C11's aligned_alloc where the C library has it, _aligned_malloc on
 * Windows, whose runtime has no aligned_alloc and whose aligned blocks must go back through
 * _aligned_free, not free. And the system's name, for INFO.
 */
#ifndef WEFT_REDIS_SYSTEM_H
#define WEFT_REDIS_SYSTEM_H

#include <stddef.h>

/* size bytes at a multiple of align (a power of two; size a multiple of it, as C11 asks), or
 * NULL when out of memory. Owned by the caller, who frees it with redis_aligned_free. */
void *redis_aligned_alloc(size_t align, size_t size);
/* Frees what redis_aligned_alloc gave (NULL does nothing). */
void redis_aligned_free(void *p);

/* The system's name and machine, as INFO's os: field says it ("Linux 6.1.0-13-amd64
 * x86_64", "Windows"), into buf (owned by the caller, len bytes, NUL-terminated). */
void redis_os_name(char *buf, size_t len);

#endif
