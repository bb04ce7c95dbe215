/* weft — platform.h on POSIX systems: mmap and mprotect for address space, clock_gettime
 * for the clocks (CLOCK_MONOTONIC, and CLOCK_MONOTONIC_COARSE: a few nanoseconds to read),
 * glibc's strerrordesc_np for errno's descriptions, descriptors and errno for sockets, an
 * eventfd for the wakeup, sigtimedwait for the stop signals. */
#ifndef _GNU_SOURCE /* the build defines it already; a bare redefinition is -Werror */
#define _GNU_SOURCE
#endif
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

void *weft__vm_map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *weft__vm_remap(void *p, size_t old_len, size_t new_len)
{
    void *q = mremap(p, old_len, new_len, MREMAP_MAYMOVE);
    return q == MAP_FAILED ? NULL : q;
}

void weft__vm_unmap(void *p, size_t len)
{
    munmap(p, len);
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

/* ---- sockets ---- */

int weft__sock_close(weft__sock s)
{
    return close(s) == 0 ? 0 : -errno;
}

int weft__sock_err(void)
{
    return -errno;
}

int weft__sock_err_of(unsigned long code)
{
    return -(int)code;
}

int weft__net_init(void)
{
    return 0;
}

bool weft__sock_again(int err)
{
    return err == -EAGAIN || err == -EWOULDBLOCK || err == -EINTR;
}

int weft__sock_open(int family, int type, weft__sock *out)
{
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    *out = fd;
    return 0;
}

int weft__sock_connect(weft__sock s, const struct sockaddr *sa, socklen_t len)
{
    if (connect(s, sa, len) == 0)
        return 0;
    /* EINTR: the connect goes on in the background, like EINPROGRESS (a retry would only
     * say EALREADY). For a Unix socket EAGAIN means the listener's backlog is full: that
     * connect is over, not in progress. */
    int err = errno;
    return err == EINPROGRESS || err == EINTR ? -EINPROGRESS : -err;
}

int weft__sock_nonblock(weft__sock s, bool *was)
{
    int fl = fcntl(s, F_GETFL);
    if (fl < 0 || fcntl(s, F_SETFL, fl | O_NONBLOCK) != 0)
        return -errno;
    if (was != NULL)
        *was = (fl & O_NONBLOCK) != 0;
    return 0;
}

int weft__sock_blocking(weft__sock s)
{
    int fl = fcntl(s, F_GETFL);
    if (fl < 0 || fcntl(s, F_SETFL, fl & ~O_NONBLOCK) != 0)
        return -errno;
    return 0;
}

int weft__sock_inq(weft__sock s)
{
    int n;
    return ioctl(s, SIOCINQ, &n) == 0 ? n : -1;
}

int weft__sock_outq(weft__sock s)
{
    int n;
    return ioctl(s, SIOCOUTQ, &n) == 0 ? n : -1;
}

int weft__sock_shutdown_wr(weft__sock s)
{
    return shutdown(s, SHUT_WR) == 0 ? 0 : -errno;
}

int weft__sock_keepalive(weft__sock s, int idle_s)
{
    int on = 1;
    if (setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
        setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof(idle_s)) != 0)
        return -errno;
    return 0;
}

int weft__sock_listen_opts(weft__sock s, bool reuse_port)
{
    int on = 1;
    (void)setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (reuse_port && setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0)
        return -errno;
    return 0;
}

void weft__unix_remove_stale(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        (void)unlink(path);
}

const char *weft__sock_missing_unix(void)
{
    return NULL;
}

const char *weft__sock_missing_reuse_port(void)
{
    return NULL;
}

/* ---- datagrams: sendmmsg and recvmmsg, DGRAM_CHUNK at a time ---- */

#define DGRAM_CHUNK 16

int weft__sock_sendmsgs(weft__sock s, const weft__dgram_msg *msgs, unsigned n)
{
    struct mmsghdr mm[DGRAM_CHUNK];
    struct iovec iov[DGRAM_CHUNK];
    unsigned done = 0;
    while (done < n) {
        unsigned k = n - done < DGRAM_CHUNK ? n - done : DGRAM_CHUNK;
        memset(mm, 0, k * sizeof(mm[0]));
        for (unsigned i = 0; i < k; i++) {
            const weft__dgram_msg *m = &msgs[done + i];
            iov[i].iov_base = m->data;
            iov[i].iov_len = m->len;
            mm[i].msg_hdr.msg_name = m->peer;
            mm[i].msg_hdr.msg_namelen = m->peer_len;
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        int got = sendmmsg(s, mm, k, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return done > 0 ? (int)done : -errno;
        }
        done += (unsigned)got;
        if ((unsigned)got < k)
            break;
    }
    return (int)done;
}

int weft__sock_recvmsgs(weft__sock s, weft__dgram_msg *msgs, unsigned n)
{
    struct mmsghdr mm[DGRAM_CHUNK];
    struct iovec iov[DGRAM_CHUNK];
    if (n > DGRAM_CHUNK)
        n = DGRAM_CHUNK;
    memset(mm, 0, n * sizeof(mm[0]));
    for (unsigned i = 0; i < n; i++) {
        iov[i].iov_base = msgs[i].data;
        iov[i].iov_len = msgs[i].len;
        mm[i].msg_hdr.msg_name = msgs[i].peer;
        mm[i].msg_hdr.msg_namelen = msgs[i].peer_len;
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    int got;
    do {
        got = recvmmsg(s, mm, n, MSG_DONTWAIT, NULL);
    } while (got < 0 && errno == EINTR);
    if (got < 0)
        return -errno;
    for (int i = 0; i < got; i++) {
        msgs[i].len = mm[i].msg_len;
        msgs[i].peer_len = mm[i].msg_hdr.msg_namelen;
        msgs[i].truncated = (mm[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    }
    return got;
}

ssize_t weft__sock_sendto(weft__sock s, const struct iovec *iov, int iovcnt,
                          const struct sockaddr *to, socklen_t tolen)
{
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_name = (void *)to;
    mh.msg_namelen = tolen;
    mh.msg_iov = (struct iovec *)iov;
    mh.msg_iovlen = (size_t)iovcnt;
    ssize_t n;
    do {
        n = sendmsg(s, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

/* ---- the wakeup: an eventfd ---- */

int weft__waker_init(weft__waker *w)
{
    w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->ready = w->fd >= 0;
    return w->ready ? 0 : -errno;
}

void weft__waker_destroy(weft__waker *w)
{
    if (w->ready)
        close(w->fd);
    w->fd = -1;
    w->ready = false;
}

void weft__waker_wake(weft__waker *w)
{
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(w->fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    /* EAGAIN means the counter is already non-zero: the loop will wake anyway. */
}

void weft__waker_drain(weft__waker *w)
{
    uint64_t v;
    ssize_t r;
    do {
        r = read(w->fd, &v, sizeof(v));
    } while (r < 0 && errno == EINTR);
}

/* ---- processors, threads and signals ---- */

unsigned weft__cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}

int weft__thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -rc;
}

int weft__wait_stop_signal(const _Atomic int *stopped)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int sig = 0;
    while (!atomic_load(stopped)) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        int s = sigtimedwait(&set, NULL, &ts);
        if (s == SIGINT || s == SIGTERM) {
            sig = s;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return sig;
}
