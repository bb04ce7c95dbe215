/* weft — the worker pool's timed waits, measured on a monotonic clock on every system, so
 * a wall-clock jump neither cuts a wait short nor stretches it.
 *
 * POSIX: the condition variables wait against CLOCK_MONOTONIC (pthread_condattr_setclock)
 * until an absolute deadline. winpthreads (MinGW's pthreads) waits against the wall clock
 * only and refuses CLOCK_MONOTONIC, so there each wait is the time left until the deadline,
 * read from the monotonic clock, through its pthread_cond_timedwait_relative_np. This
 * header is the pool's one place for that difference.
 */
#ifndef WEFT_POOL_TIMED_WAIT_PRIVATE_H
#define WEFT_POOL_TIMED_WAIT_PRIVATE_H

#include <errno.h>
#include <pthread.h>
#include <time.h>

/* Sets up attr so that timed waits measure time as weft__pool_timedwait does; 0 or an
 * errno value. */
static inline int weft__pool_condattr_init(pthread_condattr_t *attr)
{
    int rc = pthread_condattr_init(attr);
#ifndef _WIN32
    if (rc == 0) {
        rc = pthread_condattr_setclock(attr, CLOCK_MONOTONIC);
        if (rc != 0)
            pthread_condattr_destroy(attr);
    }
#endif
    return rc;
}

/* The monotonic deadline timeout_ms (>= 0) from now. */
static inline struct timespec weft__pool_deadline_after(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* pthread_cond_timedwait until the monotonic deadline: 0 when woken (perhaps spuriously),
 * ETIMEDOUT once the deadline has passed. */
static inline int weft__pool_timedwait(pthread_cond_t *cond, pthread_mutex_t *lock,
                                       const struct timespec *deadline)
{
#ifdef _WIN32
    struct timespec now, left;
    clock_gettime(CLOCK_MONOTONIC, &now);
    left.tv_sec = deadline->tv_sec - now.tv_sec;
    left.tv_nsec = deadline->tv_nsec - now.tv_nsec;
    if (left.tv_nsec < 0) {
        left.tv_sec--;
        left.tv_nsec += 1000000000L;
    }
    if (left.tv_sec < 0)
        return ETIMEDOUT;
    return pthread_cond_timedwait_relative_np(cond, lock, &left);
#else
    return pthread_cond_timedwait(cond, lock, deadline);
#endif
}

#endif /* WEFT_POOL_TIMED_WAIT_PRIVATE_H */
