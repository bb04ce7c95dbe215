/* weft — platform.h on Windows: VirtualAlloc and VirtualFree for address space, the
 * performance counter and the tick count for the clocks, the C runtime's table for errno's
 * descriptions. */
#include "platform.h"

#include <stdlib.h>

#define WIN32_LEAN_AND_MEAN
#include <windows.h>

size_t weft__page_size(void)
{
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    size_t page = si.dwPageSize;
    return page > 0 && (page & (page - 1)) == 0 ? page : 4096;
}

void *weft__vm_reserve(size_t len, size_t align)
{
    size_t page = weft__page_size();
    if (align < page)
        align = page;
    if (len > SIZE_MAX - align)
        return NULL;
    /* A reservation is released whole or not at all, so it cannot be trimmed to an
     * alignment as munmap trims a mapping: find an aligned address inside a larger one,
     * give that back and reserve exactly there. Another thread may take the address in
     * between; then try again. */
    for (int attempt = 0; attempt < 16; attempt++) {
        uint8_t *r = VirtualAlloc(NULL, len + align, MEM_RESERVE, PAGE_NOACCESS);
        if (r == NULL)
            return NULL;
        uint8_t *base = (uint8_t *)(((uintptr_t)r + align - 1) & ~(uintptr_t)(align - 1));
        VirtualFree(r, 0, MEM_RELEASE);
        void *got = VirtualAlloc(base, len, MEM_RESERVE, PAGE_NOACCESS);
        if (got == base)
            return base;
        if (got != NULL)
            VirtualFree(got, 0, MEM_RELEASE);
    }
    return NULL;
}

int weft__vm_commit(void *addr, size_t len)
{
    return VirtualAlloc(addr, len, MEM_COMMIT, PAGE_READWRITE) != NULL ? 0 : -1;
}

void weft__vm_decommit(void *addr, size_t len)
{
    (void)VirtualFree(addr, len, MEM_DECOMMIT);
}

/* Large pages on Windows need a privilege a server rarely holds and are never given
 * unasked: nothing to advise. */
void weft__vm_advise_huge(void *addr, size_t len)
{
    (void)addr;
    (void)len;
}

void weft__vm_release(void *base, size_t len)
{
    (void)len;
    VirtualFree(base, 0, MEM_RELEASE);
}

/* The runtime's table, not strerror(), whose buffer the next call on the thread reuses.
 * The table covers the C errno values; the POSIX ones the runtime adds above it (the
 * socket errors) have no text there, and weft's own table names those. */
const char *weft__errno_text(int errnum)
{
    return errnum > 0 && errnum < _sys_nerr ? _sys_errlist[errnum] : NULL;
}

uint64_t weft__mono_ns(void)
{
    LARGE_INTEGER freq, now;
    QueryPerformanceFrequency(&freq); /* fixed at boot, and cheap to read */
    QueryPerformanceCounter(&now);
    uint64_t f = (uint64_t)freq.QuadPart, t = (uint64_t)now.QuadPart;
    /* Whole seconds and the remainder apart, so that t * 1e9 cannot overflow. */
    return t / f * 1000000000u + t % f * 1000000000u / f;
}

uint64_t weft__coarse_ns(void)
{
    return (uint64_t)GetTickCount64() * 1000000u;
}
