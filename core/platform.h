/* weft — what the core asks of the operating system: the page size, reserved-then-committed
 * address space, the clocks, errno's descriptions, sockets and their errors, a loop's
 * wakeup, the processor count, threads that take no signals and the wait for a stop
 * signal. One file fills it in per system,
 * platform_posix.c or platform_win.c, chosen by the build; nothing else in the core asks
 * which system it runs on for these.
 *
 * A reservation is address space only: nothing in it may be touched until it is
 * committed, and committing more of it never moves what is already there (the buffer
 * pool's mapped buffers grow in place this way). Any thread; no state is kept here.
 */
#ifndef WEFT_PLATFORM_PRIVATE_H
#define WEFT_PLATFORM_PRIVATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h> /* ssize_t */

#include "weft/socket.h"

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

/* Anonymous memory of its own mapping, readable and writable, for large arrays that grow
 * and shrink (the memory goes back to the system when unmapped): NULL when out of memory.
 * weft__vm_remap moves it to a mapping of new_len bytes (contents kept up to the shorter
 * length; NULL, and the old mapping kept, when out of memory). */
void *weft__vm_map(size_t len);
void *weft__vm_remap(void *p, size_t old_len, size_t new_len);
void weft__vm_unmap(void *p, size_t len);

/* The system's own description of errno value errnum, a static string (thread-safe, never
 * overwritten), or NULL when it has none. */
const char *weft__errno_text(int errnum);

/* A monotonic clock in nanoseconds, and a cheaper coarse one (a scheduler tick of
 * resolution) for stamping activity. */
uint64_t weft__mono_ns(void);
uint64_t weft__coarse_ns(void);

/* ---- sockets ----
 * A socket is a descriptor (int) on POSIX systems and a SOCKET handle on Windows, where it
 * is closed with closesocket() and its errors come from WSAGetLastError(), not errno. The
 * calls below return 0 or a negated errno value on both, so the core branches on one set
 * of codes (on Windows WSAEWOULDBLOCK is -EWOULDBLOCK and -EAGAIN alike: weft__sock_again
 * says which codes mean "not now"). */
#ifdef _WIN32
/* weft/socket.h brought Winsock: addresses, getaddrinfo, inet_ntop, TCP_NODELAY. */
typedef SOCKET weft__sock;
#define WEFT__SOCK_NONE INVALID_SOCKET
#else
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
typedef int weft__sock;
#define WEFT__SOCK_NONE (-1)
#endif

/* A new socket of that family and type (SOCK_STREAM, SOCK_DGRAM): non-blocking, not
 * inherited by child processes, and on Windows open to overlapped I/O. 0 or a negated
 * errno. */
int weft__sock_open(int family, int type, weft__sock *out);
/* Starts a non-blocking connect: 0 (connected), -EINPROGRESS (going on in the background;
 * also for an interrupted call) or the negated errno that ended it. */
int weft__sock_connect(weft__sock s, const struct sockaddr *sa, socklen_t len);
/* Closes s; 0 or a negated errno. */
int weft__sock_close(weft__sock s);
/* The last socket call's error on this thread as a negated errno (-EAGAIN for "would
 * block"), read once right after the call failed. */
int weft__sock_err(void);
/* A system error code as a negated errno: on Windows a Winsock (WSAE*) or system
 * (ERROR_*) code, such as an overlapped operation's status, mapped by a table (codes it
 * does not know become -EIO); on POSIX systems code is an errno already. */
int weft__sock_err_of(unsigned long code);
/* Readies the system's sockets for this process (WSAStartup, once, on Windows; nothing
 * on POSIX systems). Any thread; 0 or a negated errno. */
int weft__net_init(void);
/* Whether err (a negated errno) means the call would have blocked or was interrupted. */
bool weft__sock_again(int err);
/* Makes s non-blocking; *was (if not NULL) says whether it was already (always false on
 * Windows, which cannot say). 0 or a negated errno. weft__sock_blocking undoes it. */
int weft__sock_nonblock(weft__sock s, bool *was);
int weft__sock_blocking(weft__sock s);
/* Bytes received on s and not yet read, or -1 when the system cannot say. */
int weft__sock_inq(weft__sock s);
/* Bytes s still holds for the peer (unsent or unacknowledged), or -1 when the system
 * cannot say (Windows never can: conn_close.c says what a close does then). */
int weft__sock_outq(weft__sock s);
/* Sends our FIN (shutdown for writing); 0 or a negated errno. */
int weft__sock_shutdown_wr(weft__sock s);
/* Turns keepalive on with idle_s seconds before the first probe; 0 or a negated errno. */
int weft__sock_keepalive(weft__sock s, int idle_s);
/* Options for a socket about to bind and listen: on POSIX systems SO_REUSEADDR (a restart
 * binds at once despite connections in TIME_WAIT) and, if reuse_port, SO_REUSEPORT; on
 * Windows SO_EXCLUSIVEADDRUSE (there SO_REUSEADDR would let another program take the port
 * over), and reuse_port is -ENOSYS. 0 or a negated errno. */
int weft__sock_listen_opts(weft__sock s, bool reuse_port);
/* Removes a socket file an earlier run left at path (a file of another kind stays). */
void weft__unix_remove_stale(const char *path);
/* Whether the system has what a listen URL's scheme needs (unix sockets, SO_REUSEPORT):
 * NULL if so, else a sentence that says what is missing. */
const char *weft__sock_missing_unix(void);
const char *weft__sock_missing_reuse_port(void);

/* ---- datagrams ----
 * One datagram, to send or received: its bytes and its peer's address. To send: len bytes
 * at data, to the peer_len bytes at peer. To receive: room for len bytes at data and for
 * peer_len at peer; on return len and peer_len say what arrived, and truncated that the
 * datagram did not fit (len is then the room: neither system says how long it was, and the
 * rest is gone). */
typedef struct weft__dgram_msg {
    void *data;
    size_t len;
    struct sockaddr_storage *peer;
    socklen_t peer_len;
    bool truncated;
} weft__dgram_msg;

/* Sends msgs[0..n) on s without blocking, each as one datagram to its peer (sendmmsg, or
 * one WSASendTo each): how many went, in order, up to the first the system refused; or the
 * negated errno of msgs[0] when that one was refused (-EAGAIN: the socket buffer is full). */
int weft__sock_sendmsgs(weft__sock s, const weft__dgram_msg *msgs, unsigned n);
/* Receives up to n datagrams on s without blocking (recvmmsg, or recvfrom on each): how
 * many, or the negated errno that stopped the first (-EAGAIN: none was waiting). */
int weft__sock_recvmsgs(weft__sock s, weft__dgram_msg *msgs, unsigned n);
/* Sends iov[0..iovcnt) as one datagram to `to` without blocking: the bytes sent, or a
 * negated errno. */
ssize_t weft__sock_sendto(weft__sock s, const struct iovec *iov, int iovcnt,
                          const struct sockaddr *to, socklen_t tolen);

/* ---- a loop's wakeup ----
 * Any thread wakes a loop with weft__waker_wake; the loop's backend sees it and the loop
 * drains its inbox. On POSIX systems it is an eventfd the backend watches (wake writes it,
 * drain reads it; wake is async-signal-safe). On Windows it is a completion posted to the
 * loop's I/O completion port, which the IOCP backend makes and names here (port, key)
 * before any thread can wake the loop; drain has nothing to do there. */
typedef struct weft__waker {
#ifdef _WIN32
    void *port;    /* HANDLE of the loop's completion port; NULL until the backend sets it */
    uintptr_t key; /* the completion key the backend knows a wakeup by */
#else
    int fd; /* eventfd, non-blocking */
#endif
    bool ready; /* init succeeded; destroy undoes it */
} weft__waker;

/* 0 or a negated errno. */
int weft__waker_init(weft__waker *w);
void weft__waker_destroy(weft__waker *w);
void weft__waker_wake(weft__waker *w);
void weft__waker_drain(weft__waker *w);

/* ---- processors, threads and signals ---- */

/* Processors online, at least 1. */
unsigned weft__cpu_count(void);
/* pthread_create for a thread of the engine's, which takes no signals (they go to the
 * program's own threads, whose handlers may call weft_engine_stop). 0 or a negated errno. */
int weft__thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
/* Waits for SIGINT or SIGTERM (on Windows: Ctrl+C, Ctrl+Break or the console closing) and
 * returns its number (SIGINT for Ctrl+C, SIGTERM for the others), or 0 once *stopped is set
 * (looked at every 100 ms). The calling thread's signal mask is as before when it returns. */
int weft__wait_stop_signal(const _Atomic int *stopped);

#endif /* WEFT_PLATFORM_PRIVATE_H */
