/* A full descriptor table on purpose; see fd_limit.h. */
#include "fd_limit.h"

#include <errno.h>

#ifdef _WIN32
const char *wt_missing_fd_limit(void)
{
    return "Windows has no per-process descriptor limit for sockets (RLIMIT_NOFILE) to fill";
}

int wt_fd_limit_lower(int spare)
{
    (void)spare;
    errno = ENOSYS;
    return -1;
}

int wt_fd_limit_restore(void)
{
    errno = ENOSYS;
    return -1;
}

int wt_fd_take(void)
{
    return -ENOSYS;
}

void wt_fd_put(int fd)
{
    (void)fd;
}
#else
#include <sys/resource.h>
#include <unistd.h>

static struct rlimit saved;

const char *wt_missing_fd_limit(void)
{
    return NULL;
}

int wt_fd_limit_lower(int spare)
{
    if (getrlimit(RLIMIT_NOFILE, &saved) != 0)
        return -1;
    int lowest_free = dup(0);
    if (lowest_free < 0)
        return -1;
    close(lowest_free);
    struct rlimit rl = saved;
    rl.rlim_cur = (rlim_t)lowest_free + (rlim_t)spare;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

int wt_fd_limit_restore(void)
{
    return setrlimit(RLIMIT_NOFILE, &saved);
}

int wt_fd_take(void)
{
    int fd = dup(0);
    return fd >= 0 ? fd : -errno;
}

void wt_fd_put(int fd)
{
    close(fd);
}
#endif
