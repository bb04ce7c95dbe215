/* weft-redis — the system-dependent helpers (system.h): one block per system. */
#include "system.h"

#include <stdio.h>
#include <stdlib.h>
#ifdef _WIN32
#include <malloc.h>
#else
#include <sys/utsname.h>
#endif

#ifdef _WIN32
void *redis_aligned_alloc(size_t align, size_t size)
{
    return _aligned_malloc(size, align);
}

void redis_aligned_free(void *p)
{
    _aligned_free(p);
}

void redis_os_name(char *buf, size_t len)
{
    snprintf(buf, len, "Windows");
}
#else
void *redis_aligned_alloc(size_t align, size_t size)
{
    return aligned_alloc(align, size);
}

void redis_aligned_free(void *p)
{
    free(p);
}

void redis_os_name(char *buf, size_t len)
{
    struct utsname u;
    if (uname(&u) != 0)
        snprintf(buf, len, "unknown");
    else
        snprintf(buf, len, "%s %s %s", u.sysname, u.release, u.machine);
}
#endif
