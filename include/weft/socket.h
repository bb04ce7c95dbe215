/* weft — the system's socket types that weft's headers use: struct sockaddr and its
 * sockaddr_storage, sockaddr_in, sockaddr_in6 and sockaddr_un, socklen_t, and struct iovec
 * for scatter/gather writes.
 *
 * On POSIX systems they come from the usual headers. Windows has the addresses in Winsock
 * (and sockaddr_un in afunix.h) but no struct iovec, so weft declares one there, with the
 * POSIX field names; a program that declares its own first defines WEFT_HAVE_IOVEC.
 */
#ifndef WEFT_SOCKET_H
#define WEFT_SOCKET_H

#include <stddef.h>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h>
#ifndef WEFT_HAVE_IOVEC
#define WEFT_HAVE_IOVEC
struct iovec {
    void *iov_base;
    size_t iov_len;
};
#endif
#else
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#endif

#endif /* WEFT_SOCKET_H */
