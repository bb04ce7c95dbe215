/* weft — kernel TLS (weft_tls_config.ktls): what is done, and what is not yet.
 *
 * TLS never touches the socket through OpenSSL (DESIGN.md), so OpenSSL's own kTLS
 * (SSL_OP_ENABLE_KTLS), which needs a socket BIO, is out. weft's path would be its own: once
 * the handshake is done, attach the kernel's "tls" upper-layer protocol (TCP_ULP), then hand
 * it the send key (TLS_TX with the key and IV derived from the traffic secret, and the
 * sequence number of the next record) after every record OpenSSL sealed has left the output
 * queue; from then on plaintext would go to the socket and OpenSSL would write no record.
 *
 * Only the first step is here: the kernel is asked for its "tls" ULP, once per engine (a
 * kernel without the module runs modprobe for every such request, which no connection
 * should pay for), and the engine says at INFO why the connection stays in userland TLS.
 * Kernel TLS is for TCP: tls+unix connections stay in userland and are not the probe.
 * Attached without keys, the ULP leaves the socket a plain TCP one, so that connection goes
 * on unchanged. Installing the keys is not implemented: every connection stays in userland
 * TLS and weft_conn_tls_ktls says so.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "tls.h"

#ifndef TCP_ULP
#define TCP_ULP 31 /* linux/tcp.h; glibc's netinet/tcp.h has it since 2.27 */
#endif

bool weft__tls_ktls_start(weft_conn *c, _Atomic bool *probed)
{
    if (atomic_load_explicit(probed, memory_order_relaxed))
        return false; /* asked once already; the answer was logged */
    /* Kernel TLS is TCP's: a tls+unix connection stays in userland without asking, and
     * leaves the question to the engine's first TCP one. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) != 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return false;
    if (atomic_exchange_explicit(probed, true, memory_order_relaxed))
        return false; /* another loop asks */
    char why[160];
    if (setsockopt(c->fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) != 0) {
        int err = errno;
        snprintf(why, sizeof(why), "setsockopt(TCP_ULP, \"tls\"): %s%s", strerror(err),
                 err == ENOENT ? " (the kernel has no tls module)" : "");
    } else {
        snprintf(why, sizeof(why),
                 "the kernel has its tls module, but weft does not install keys in it yet");
    }
    weft__log(c->loop->engine, WEFT_LOG_INFO, "kernel TLS unavailable: %s; using userland TLS",
              why);
    return false;
}
