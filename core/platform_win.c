/* weft — platform.h on Windows: VirtualAlloc and VirtualFree for address space, the
 * performance counter and the tick count for the clocks, the C runtime's table for errno's
 * descriptions, Winsock for sockets (errors mapped to errno values), the loop's completion
 * port for its wakeup, a console control handler for the stop events. */
#include "platform.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <mstcpip.h>

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

void *weft__vm_map(size_t len)
{
    return VirtualAlloc(NULL, len, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
}

/* Windows moves no mapping: a new one, a copy, and the old one goes. */
void *weft__vm_remap(void *p, size_t old_len, size_t new_len)
{
    void *q = weft__vm_map(new_len);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old_len < new_len ? old_len : new_len);
    VirtualFree(p, 0, MEM_RELEASE);
    return q;
}

void weft__vm_unmap(void *p, size_t len)
{
    (void)len;
    VirtualFree(p, 0, MEM_RELEASE);
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

/* ---- sockets: Winsock, with its errors mapped to errno values ---- */

#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif

/* Winsock and system codes an overlapped socket operation ends with, as errno values. The
 * C runtime's EAGAIN (11) is not its EWOULDBLOCK (140): "would block" is EAGAIN here, the
 * value the core looks for. */
static const struct {
    unsigned long code;
    int err;
} err_map[] = {
    {WSAEWOULDBLOCK, EAGAIN},
    {WSAEINTR, EINTR},
    {WSAEINPROGRESS, EINPROGRESS},
    {WSAEALREADY, EALREADY},
    {WSAENOTSOCK, ENOTSOCK},
    {WSAEDESTADDRREQ, EDESTADDRREQ},
    {WSAEMSGSIZE, EMSGSIZE},
    {WSAEPROTOTYPE, EPROTOTYPE},
    {WSAENOPROTOOPT, ENOPROTOOPT},
    {WSAEPROTONOSUPPORT, EPROTONOSUPPORT},
    {WSAEOPNOTSUPP, EOPNOTSUPP},
    {WSAEAFNOSUPPORT, EAFNOSUPPORT},
    {WSAEADDRINUSE, EADDRINUSE},
    {WSAEADDRNOTAVAIL, EADDRNOTAVAIL},
    {WSAENETDOWN, ENETDOWN},
    {WSAENETUNREACH, ENETUNREACH},
    {WSAENETRESET, ENETRESET},
    {WSAECONNABORTED, ECONNABORTED},
    {WSAECONNRESET, ECONNRESET},
    {WSAENOBUFS, ENOBUFS},
    {WSAEISCONN, EISCONN},
    {WSAENOTCONN, ENOTCONN},
    {WSAESHUTDOWN, EPIPE},
    {WSAETIMEDOUT, ETIMEDOUT},
    {WSAECONNREFUSED, ECONNREFUSED},
    {WSAEHOSTUNREACH, EHOSTUNREACH},
    {WSAEMFILE, EMFILE},
    {WSAEACCES, EACCES},
    {WSAEINVAL, EINVAL},
    {WSAEFAULT, EFAULT},
    {WSAEBADF, EBADF},
    {WSANOTINITIALISED, EINVAL},
    {WSA_OPERATION_ABORTED, ECANCELED},  /* ERROR_OPERATION_ABORTED: CancelIoEx, a close */
    {ERROR_NETNAME_DELETED, ECONNRESET}, /* how a reset peer ends a pending receive */
    {ERROR_CONNECTION_ABORTED, ECONNABORTED},
    {ERROR_CONNECTION_REFUSED, ECONNREFUSED},
    {ERROR_PORT_UNREACHABLE, ECONNREFUSED},
    {ERROR_HOST_UNREACHABLE, EHOSTUNREACH},
    {ERROR_NETWORK_UNREACHABLE, ENETUNREACH},
    {ERROR_SEM_TIMEOUT, ETIMEDOUT},
    {ERROR_NOT_ENOUGH_MEMORY, ENOMEM},
    {ERROR_OUTOFMEMORY, ENOMEM},
    {ERROR_INVALID_HANDLE, EBADF},
    {ERROR_INVALID_PARAMETER, EINVAL},
};

int weft__sock_err_of(unsigned long code)
{
    for (size_t i = 0; i < sizeof(err_map) / sizeof(err_map[0]); i++) {
        if (err_map[i].code == code)
            return -err_map[i].err;
    }
    return -EIO;
}

int weft__sock_err(void)
{
    return weft__sock_err_of((unsigned long)WSAGetLastError());
}

static INIT_ONCE net_once = INIT_ONCE_STATIC_INIT;
static int net_rc;

static BOOL CALLBACK net_start(PINIT_ONCE once, PVOID arg, PVOID *ctx)
{
    (void)once;
    (void)arg;
    (void)ctx;
    WSADATA wd;
    int rc = WSAStartup(MAKEWORD(2, 2), &wd);
    net_rc = rc == 0 ? 0 : weft__sock_err_of((unsigned long)rc);
    return TRUE;
}

int weft__net_init(void)
{
    /* Winsock counts its users; weft stays one for the life of the process. */
    InitOnceExecuteOnce(&net_once, net_start, NULL, NULL);
    return net_rc;
}

bool weft__sock_again(int err)
{
    return err == -EAGAIN || err == -EWOULDBLOCK || err == -EINTR;
}

int weft__sock_open(int family, int type, weft__sock *out)
{
    int rc = weft__net_init();
    if (rc != 0)
        return rc;
    SOCKET s =
        WSASocketW(family, type, 0, NULL, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET)
        return weft__sock_err();
    rc = weft__sock_nonblock(s, NULL);
    if (rc != 0) {
        closesocket(s);
        return rc;
    }
    *out = s;
    return 0;
}

int weft__sock_connect(weft__sock s, const struct sockaddr *sa, socklen_t len)
{
    if (connect(s, sa, len) == 0)
        return 0;
    int rc = weft__sock_err();
    return rc == -EAGAIN || rc == -EINPROGRESS || rc == -EINTR ? -EINPROGRESS : rc;
}

int weft__sock_close(weft__sock s)
{
    return closesocket(s) == 0 ? 0 : weft__sock_err();
}

int weft__sock_nonblock(weft__sock s, bool *was)
{
    u_long on = 1;
    if (ioctlsocket(s, FIONBIO, &on) != 0)
        return weft__sock_err();
    if (was != NULL)
        *was = false;
    return 0;
}

int weft__sock_blocking(weft__sock s)
{
    u_long off = 0;
    return ioctlsocket(s, FIONBIO, &off) == 0 ? 0 : weft__sock_err();
}

int weft__sock_inq(weft__sock s)
{
    u_long n;
    return ioctlsocket(s, FIONREAD, &n) == 0 && n <= INT_MAX ? (int)n : -1;
}

int weft__sock_outq(weft__sock s)
{
    (void)s; /* Winsock has no count of unsent or unacknowledged bytes */
    return -1;
}

int weft__sock_shutdown_wr(weft__sock s)
{
    return shutdown(s, SD_SEND) == 0 ? 0 : weft__sock_err();
}

int weft__sock_keepalive(weft__sock s, int idle_s)
{
    /* SO_KEEPALIVE alone would wait two hours: the idle time is set with the interval
     * between probes (1 s, as Linux's TCP_KEEPINTVL default is not; Windows sends 10). */
    struct tcp_keepalive ka = {1, (u_long)idle_s * 1000u, 1000u};
    DWORD got = 0;
    if (WSAIoctl(s, SIO_KEEPALIVE_VALS, &ka, sizeof(ka), NULL, 0, &got, NULL, NULL) != 0)
        return weft__sock_err();
    return 0;
}

int weft__sock_listen_opts(weft__sock s, bool reuse_port)
{
    if (reuse_port)
        return -ENOSYS;
    BOOL on = TRUE;
    (void)setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&on, sizeof(on));
    return 0;
}

void weft__unix_remove_stale(const char *path)
{
    (void)path; /* no unix:// listener gets this far here */
}

const char *weft__sock_missing_unix(void)
{
    return "unix sockets are not available in weft on Windows (its IOCP backend serves "
           "TCP and UDP): listen on tcp://127.0.0.1:port or udp://127.0.0.1:port instead";
}

const char *weft__sock_missing_reuse_port(void)
{
    return "Windows has no SO_REUSEPORT: leave reuse_port off, and the acceptor hands "
           "connections to the loops";
}

/* ---- datagrams: WSASendTo and recvfrom, one datagram a call ----
 * The sockets are non-blocking, so these calls never wait; they are not overlapped, so no
 * completion of theirs reaches the loop's port. */

#define SENDTO_BUFS 64 /* WSABUFs on the stack; a datagram of more buffers allocates */

int weft__sock_sendmsgs(weft__sock s, const weft__dgram_msg *msgs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        const weft__dgram_msg *m = &msgs[i];
        WSABUF b = {m->len > ULONG_MAX ? ULONG_MAX : (ULONG)m->len, m->data};
        DWORD sent = 0;
        if (WSASendTo(s, &b, 1, &sent, 0, (const struct sockaddr *)m->peer, (int)m->peer_len, NULL,
                      NULL) != 0)
            return i > 0 ? (int)i : weft__sock_err();
    }
    return (int)n;
}

int weft__sock_recvmsgs(weft__sock s, weft__dgram_msg *msgs, unsigned n)
{
    unsigned got = 0;
    /* Each WSAECONNRESET is the report of an ICMP error for an earlier send, not a datagram:
     * it is passed over, a bounded number of times. */
    for (unsigned resets = 0; got < n && resets < 64;) {
        weft__dgram_msg *m = &msgs[got];
        int plen = (int)m->peer_len;
        int len = m->len > INT_MAX ? INT_MAX : (int)m->len;
        int r = recvfrom(s, m->data, len, 0, (struct sockaddr *)m->peer, &plen);
        bool cut = false;
        if (r < 0) {
            int wsa = WSAGetLastError();
            if (wsa == WSAECONNRESET || wsa == WSAENETRESET) {
                resets++;
                continue;
            }
            if (wsa != WSAEMSGSIZE)
                return got > 0 ? (int)got : weft__sock_err_of((unsigned long)wsa);
            r = len; /* truncated: the buffer is full, and the rest is gone */
            cut = true;
        }
        m->len = (size_t)r;
        m->peer_len = (socklen_t)plen;
        m->truncated = cut;
        got++;
    }
    return (int)got;
}

ssize_t weft__sock_sendto(weft__sock s, const struct iovec *iov, int iovcnt,
                          const struct sockaddr *to, socklen_t tolen)
{
    WSABUF stack[SENDTO_BUFS];
    WSABUF *b = stack;
    if (iovcnt > SENDTO_BUFS) {
        b = malloc((size_t)iovcnt * sizeof(*b));
        if (b == NULL)
            return -ENOMEM;
    }
    for (int i = 0; i < iovcnt; i++) {
        b[i].len = iov[i].iov_len > ULONG_MAX ? ULONG_MAX : (ULONG)iov[i].iov_len;
        b[i].buf = iov[i].iov_base;
    }
    DWORD sent = 0;
    int rc = WSASendTo(s, b, (DWORD)iovcnt, &sent, 0, to, (int)tolen, NULL, NULL);
    int err = rc != 0 ? weft__sock_err() : 0;
    if (b != stack)
        free(b);
    return err != 0 ? err : (ssize_t)sent;
}

/* ---- the wakeup: a completion posted to the loop's port ---- */

int weft__waker_init(weft__waker *w)
{
    w->port = NULL;
    w->key = 0;
    w->ready = true;
    return 0;
}

void weft__waker_destroy(weft__waker *w)
{
    w->port = NULL; /* the backend's, closed by it */
    w->ready = false;
}

void weft__waker_wake(weft__waker *w)
{
    if (w->port != NULL)
        (void)PostQueuedCompletionStatus(w->port, 0, (ULONG_PTR)w->key, NULL);
}

void weft__waker_drain(weft__waker *w)
{
    (void)w; /* the completion was the wakeup, and the backend took it */
}

/* ---- processors, threads and the console's stop events ---- */

unsigned weft__cpu_count(void)
{
    DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    return n > 0 ? (unsigned)n : 1u;
}

int weft__thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    /* Windows sends no signals to threads: a console event runs on a thread of its own. */
    return -pthread_create(t, NULL, fn, arg);
}

static HANDLE stop_event;
static _Atomic int stop_sig;

static BOOL WINAPI console_stop(DWORD type)
{
    switch (type) {
    case CTRL_C_EVENT:
        atomic_store(&stop_sig, SIGINT);
        break;
    case CTRL_BREAK_EVENT:
    case CTRL_CLOSE_EVENT:
    case CTRL_SHUTDOWN_EVENT:
        atomic_store(&stop_sig, SIGTERM);
        break;
    default:
        return FALSE;
    }
    SetEvent(stop_event);
    return TRUE;
}

int weft__wait_stop_signal(const _Atomic int *stopped)
{
    if (stop_event == NULL)
        stop_event = CreateEventW(NULL, FALSE, FALSE, NULL);
    atomic_store(&stop_sig, 0);
    bool handler = stop_event != NULL && SetConsoleCtrlHandler(console_stop, TRUE);
    int sig = 0;
    while (!atomic_load(stopped)) {
        if (handler)
            (void)WaitForSingleObject(stop_event, 100);
        else
            Sleep(100);
        sig = atomic_load(&stop_sig);
        if (sig != 0)
            break;
    }
    if (handler)
        SetConsoleCtrlHandler(console_stop, FALSE);
    return sig;
}
