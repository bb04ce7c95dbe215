/* weft — error codes.
 *
 * Every public function returns 0 (or a count) on success and a negative WEFT_E* code on
 * failure. System errors are the negated errno value (WEFT_ECONNRESET == -ECONNRESET);
 * weft's own errors live in a range of their own, below -4000, so they never collide.
 * A decoder answers with a count of frames: WEFT_FRAME (one), WEFT_AGAIN (none yet, need more
 * bytes; nginx's NGX_AGAIN, picohttpparser's -2) or a negative error.
 */
#ifndef WEFT_ERROR_H
#define WEFT_ERROR_H

#include <errno.h>

#include "weft/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A decoder found one frame: a count of one. weft_conn_next_frame returns the same. */
#define WEFT_FRAME 1

/* "Not yet": a decoder needs more bytes. Not an error: a count of zero frames, so `rc < 0`
 * still means failure. It is the same number as success (0) elsewhere in the API. */
#define WEFT_AGAIN 0

/* One table generates the enum, weft_strerror() and weft_err_name(). A code keeps its number
 * for good: -4010 stays reserved (it was WEFT_EWRONGTHREAD, which nothing returned; a thread
 * check on every call would cost on the hot path, so the rule is documented instead:
 * weft_conn_* calls are for the owning loop's thread only, see conn.h). */
#define WEFT_ERRNO_MAP(XX)                                                         \
    XX(EPERM, -EPERM, "operation not permitted")                                   \
    XX(ENOENT, -ENOENT, "no such file or directory")                               \
    XX(EINTR, -EINTR, "interrupted system call")                                   \
    XX(EBADF, -EBADF, "bad file descriptor")                                       \
    XX(ENOTSOCK, -ENOTSOCK, "not a socket")                                        \
    XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                        \
    XX(ENOMEM, -ENOMEM, "not enough memory")                                       \
    XX(EACCES, -EACCES, "permission denied")                                       \
    XX(EBUSY, -EBUSY, "resource busy")                                             \
    XX(EEXIST, -EEXIST, "file exists")                                             \
    XX(EINVAL, -EINVAL, "invalid argument")                                        \
    XX(ENFILE, -ENFILE, "file table overflow")                                     \
    XX(EMFILE, -EMFILE, "too many open files")                                     \
    XX(ENOSPC, -ENOSPC, "no space left on device")                                 \
    XX(EPIPE, -EPIPE, "broken pipe")                                               \
    XX(ERANGE, -ERANGE, "result out of range")                                     \
    XX(ENAMETOOLONG, -ENAMETOOLONG, "name too long")                               \
    XX(ENOSYS, -ENOSYS, "function not implemented")                                \
    XX(EDESTADDRREQ, -EDESTADDRREQ, "destination address required")                \
    XX(EMSGSIZE, -EMSGSIZE, "message too long")                                    \
    XX(EPROTO, -EPROTO, "protocol error")                                          \
    XX(EAFNOSUPPORT, -EAFNOSUPPORT, "address family not supported")                \
    XX(EADDRINUSE, -EADDRINUSE, "address already in use")                          \
    XX(EADDRNOTAVAIL, -EADDRNOTAVAIL, "address not available")                     \
    XX(ENETUNREACH, -ENETUNREACH, "network is unreachable")                        \
    XX(ECONNABORTED, -ECONNABORTED, "connection aborted")                          \
    XX(ECONNRESET, -ECONNRESET, "connection reset by peer")                        \
    XX(ENOBUFS, -ENOBUFS, "no buffer space available")                             \
    XX(ENOTCONN, -ENOTCONN, "socket is not connected")                             \
    XX(ETIMEDOUT, -ETIMEDOUT, "connection timed out")                              \
    XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                          \
    XX(EHOSTUNREACH, -EHOSTUNREACH, "host is unreachable")                         \
    XX(EALREADY, -EALREADY, "operation already in progress")                       \
    XX(ECANCELED, -ECANCELED, "operation canceled")                                \
    XX(ESTALE, -4001, "stale connection reference")                                \
    XX(ETOOLONG, -4002, "frame too long")                                          \
    XX(ECORRUPT, -4003, "corrupt frame")                                           \
    XX(ECLOSED, -4004, "connection is closing or closed")                          \
    XX(EOUTCAP, -4005, "outbound buffer hard cap reached")                         \
    XX(EINCAP, -4006, "inbound buffer cap reached")                                \
    XX(ESHUTDOWN, -4007, "engine is shutting down")                                \
    XX(EBADADDR, -4008, "malformed or unresolvable address")                       \
    XX(ENOCODEC, -4009, "no codec configured on this connection")                  \
    XX(EIDLE, -4011, "idle timeout")                                               \
    XX(EREADTIMEOUT, -4012, "partial frame not completed within the read timeout") \
    XX(EMAXCONN, -4013, "max_connections reached")                                 \
    XX(ETLS, -4014, "TLS failure (weft_conn_tls_error says which)")                \
    XX(ENOBACKEND, -4015, "the I/O backend asked for cannot run here")

typedef enum weft_errno {
#define WEFT__ERR_ENUM(name, value, text) WEFT_##name = (value),
    WEFT_ERRNO_MAP(WEFT__ERR_ENUM)
#undef WEFT__ERR_ENUM
        WEFT__ERR_LAST_PLACEHOLDER = 0
} weft_errno;

/* Returns a static, human-readable description of err (0, a WEFT_E* code or any negated
 * errno; 0 reads "success", whether it was a plain success or WEFT_AGAIN). Never NULL;
 * thread-safe. */
WEFT_API const char *weft_strerror(int err);

/* Returns the static symbolic name of err ("WEFT_ETOOLONG", "WEFT_ECONNRESET", ...; 0 is
 * "WEFT_OK", which WEFT_AGAIN shares), or "WEFT_EUNKNOWN" for a value the table above does
 * not hold. Never NULL; thread-safe. */
WEFT_API const char *weft_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_ERROR_H */
