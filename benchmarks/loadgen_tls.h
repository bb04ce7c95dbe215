/* loadgen's TLS client (--tls): OpenSSL, non-blocking, over a socket loadgen made. It knows
 * nothing of loadgen's connections; each call that fails says why in the caller's buffer
 * (OpenSSL's reason text, or the certificate verification result), and loadgen reports it.
 * Built without OpenSSL, lg_tls_init fails and says so, and nothing else is ever called. */
#ifndef WEFT_BENCH_LOADGEN_TLS_H
#define WEFT_BENCH_LOADGEN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ssl_st;

enum lg_tls_want { LG_TLS_WANT_READ = 1, LG_TLS_WANT_WRITE = 2 };
#define LG_TLS_WHY 256 /* room for a reason */

/* The client context every connection shares: TLS 1.2 or later, the server verified against
 * the CA file ca, no session cache (a churn connection must not resume), read-ahead so one
 * read can take several records. 0, or -1 with the reason printed. */
int lg_tls_init(const char *ca);
void lg_tls_exit(void);

/* A fresh client SSL on fd (a full handshake: no session is set), checking the server's
 * certificate for the IP address or the name (NULL: none), which is also sent as SNI. */
struct ssl_st *lg_tls_new(int fd, const char *name, char why[LG_TLS_WHY]);

/* Sends close_notify when the handshake was done (active) and it fits in the socket now
 * (the server need not read it), and frees *ssl. Nothing when *ssl is NULL. */
void lg_tls_close(struct ssl_st **ssl, bool active);

/* One step of the handshake: 1 done, 0 not yet (*want says for what), -1 failed. */
int lg_tls_step(struct ssl_st *ssl, enum lg_tls_want *want, char why[LG_TLS_WHY]);

/* Up to len bytes (len <= INT_MAX): the count taken or read; 0 when TLS can do nothing now;
 * -1 on an error. lg_tls_recv gives -2 when the server closed (close_notify, or its end of
 * the socket). */
ssize_t lg_tls_send(struct ssl_st *ssl, const void *p, size_t len, char why[LG_TLS_WHY]);
ssize_t lg_tls_recv(struct ssl_st *ssl, void *buf, size_t len, char why[LG_TLS_WHY]);

#endif /* WEFT_BENCH_LOADGEN_TLS_H */
