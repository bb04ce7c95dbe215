/* Client sockets as the loopback tests use them, the same on POSIX systems and Windows.
 *
 * A test's socket is an int: a descriptor, or on Windows a Winsock SOCKET, whose value fits
 * in 32 bits (64-bit Windows keeps handle values so, for 32-bit processes). It is closed with
 * wt_close, its last error read with wt_sock_errno (an errno value: EAGAIN for "would
 * block" on both), waited on with wt_poll (WSAPoll on Windows), and read or written without
 * blocking with wt_recv_now and wt_send_now (Windows has no MSG_DONTWAIT), or as the socket
 * is with wt_recv and wt_send. MSG_NOSIGNAL is 0 on Windows, where a send to a closed peer
 * raises no signal anyway.
 */
#ifndef WEFT_TEST_SOCK_H
#define WEFT_TEST_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif
typedef unsigned long wt_nfds;
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
typedef nfds_t wt_nfds;
#endif

int wt_close(int fd);
int wt_sock_errno(void);
int wt_poll(struct pollfd *p, wt_nfds n, int timeout_ms);
ssize_t wt_recv_now(int fd, void *buf, size_t n);
ssize_t wt_send_now(int fd, const void *buf, size_t n);
/* As wt_recv_now, but leaves the bytes queued (MSG_PEEK). */
ssize_t wt_peek_now(int fd, void *buf, size_t n);

/* recv and send as the socket is: blocking, within the timeouts wt_connect_tcp and
 * wt_accept give their sockets (or the socket's own receive timeout), unless
 * wt_set_nonblocking made it non-blocking (then EAGAIN when nothing can move). The bytes
 * moved, 0 for the peer's end (wt_recv), or -1 with the error in wt_sock_errno. wt_send
 * raises no SIGPIPE. */
ssize_t wt_recv(int fd, void *buf, size_t n);
ssize_t wt_send(int fd, const void *buf, size_t n);

/* Puts fd in non-blocking mode for good, and back (the tests' sockets are blocking with
 * timeouts): 0 or -1, the error in wt_sock_errno. (wt_recv_now and wt_send_now make a
 * blocking socket blocking again on Windows, so a non-blocking one is read with wt_recv.) */
int wt_set_nonblocking(int fd);
int wt_set_blocking(int fd);

/* SO_SNDTIMEO in milliseconds (a struct timeval on POSIX systems, a DWORD on Windows): 0 or
 * -1, the error in wt_sock_errno. */
int wt_send_timeout_ms(int fd, int ms);

/* Sends our FIN (shutdown for writing): 0 or -1, the error in wt_sock_errno. */
int wt_shutdown_wr(int fd);

/* setsockopt with an int value (Winsock takes it as a char pointer): 0 or -1, the error in
 * wt_sock_errno. */
int wt_setsockopt_int(int fd, int level, int name, int value);

/* SO_LINGER on with a zero timeout, so that wt_close resets the connection (RST) instead of
 * closing it in order (FIN): 0 or -1, the error in wt_sock_errno. */
int wt_linger_reset(int fd);

/* Whether this process may hold need descriptors (raising its soft limit if it must); true
 * on Windows, which has no such limit for sockets. */
bool wt_fd_limit_at_least(unsigned long need);

/* Raises this process's soft descriptor limit toward want (never past the hard limit) and
 * returns what it is then; want itself on Windows. */
unsigned long wt_fd_limit_raise(unsigned long want);

#endif /* WEFT_TEST_SOCK_H */
