/* weft — the clocks: CLOCK_MONOTONIC for timers and busy polling, the coarse one (a few
 * nanoseconds to read, a tick of resolution) for stamping connection activity. */
#include <time.h>

#include "internal.h"

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
