/* weft — platform.h on POSIX systems: mmap and mprotect for address space, clock_gettime
 * for the clocks (CLOCK_MONOTONIC, and CLOCK_MONOTONIC_COARSE: a few nanoseconds to read),
 * glibc's strerrordesc_np for errno's descriptions. */
#ifndef _GNU_SOURCE /* the build defines it already; a bare redefinition is -Werror */
#define _GNU_SOURCE
#endif
#include "platform.h"

#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

size_t weft__page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 && ((size_t)page & ((size_t)page - 1)) == 0 ? (size_t)page : 4096;
}

void *weft__vm_reserve(size_t len, size_t align)
{
    size_t page = weft__page_size();
    if (align < page)
        align = page;
    if (len > SIZE_MAX - align)
        return NULL;
    /* Room to align, then the unaligned head and tail go back: munmap may cut a mapping
     * anywhere on a page. */
    size_t span = len + align - page;
    uint8_t *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        return NULL;
    uint8_t *base = (uint8_t *)(((uintptr_t)r + align - 1) & ~(uintptr_t)(align - 1));
    if (base > r)
        munmap(r, (size_t)(base - r));
    if (base + len < r + span)
        munmap(base + len, (size_t)(r + span - (base + len)));
    return base;
}

int weft__vm_commit(void *addr, size_t len)
{
    return mprotect(addr, len, PROT_READ | PROT_WRITE) == 0 ? 0 : -1;
}

void weft__vm_decommit(void *addr, size_t len)
{
    (void)madvise(addr, len, MADV_DONTNEED);
    (void)mprotect(addr, len, PROT_NONE);
}

void weft__vm_advise_huge(void *addr, size_t len)
{
#ifdef MADV_HUGEPAGE
    (void)madvise(addr, len, MADV_HUGEPAGE);
#else
    (void)addr;
    (void)len;
#endif
}

void weft__vm_release(void *base, size_t len)
{
    munmap(base, len);
}

const char *weft__errno_text(int errnum)
{
    return strerrordesc_np(errnum);
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t weft__mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t weft__coarse_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC_COARSE);
}
