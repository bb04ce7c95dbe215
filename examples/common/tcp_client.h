/* A blocking TCP client socket, the same on POSIX systems and Windows, for the examples that
 * talk to a weft server without weft (weft-lfclient): what differs between the systems (the
 * socket type, Winsock's start-up and error codes, its lack of sendmsg) stays in
 * tcp_client.c, so that a client's own code asks no system which it is. Nothing here needs
 * weft. One socket per call site, used from one thread.
 */
#ifndef WEFT_EXAMPLE_TCP_CLIENT_H
#define WEFT_EXAMPLE_TCP_CLIENT_H

#include <stddef.h>

typedef struct example_tcp example_tcp;

/* Connects to host:port (any address family getaddrinfo gives), with TCP_NODELAY and send
 * and receive timeouts of timeout_s seconds. Returns the socket, owned by the caller until
 * example_tcp_close, or NULL with why (owned by the caller, len bytes) saying what failed. */
example_tcp *example_tcp_dial(const char *host, const char *port, int timeout_s, char *why,
                              size_t len);

/* Sends a then b (either may be empty) whole, as one write where the system allows: 0, or -1
 * with the reason in example_tcp_error. */
int example_tcp_send2(example_tcp *t, const void *a, size_t alen, const void *b, size_t blen);

/* Receives exactly n bytes into buf: 0, 1 when the peer closed first, or -1 with the reason
 * in example_tcp_error (a timeout is one). */
int example_tcp_recv_exact(example_tcp *t, void *buf, size_t n);

/* What the last failed call on t said, as text; valid until the next call on t. */
const char *example_tcp_error(const example_tcp *t);

void example_tcp_close(example_tcp *t);

/* Seconds since some fixed point, monotonic, for timing a run. */
double example_now_s(void);

#endif
