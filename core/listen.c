/* weft — listen URLs and listening sockets. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h> /* unlink */

#include "internal.h"
#include "tls.h"

/* Splits "host:port" / "[v6]:port" into host and port. Returns 0 or WEFT_EBADADDR. */
static int split_host_port(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':')
            return WEFT_EBADADDR;
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return WEFT_EBADADDR;
        hl = (size_t)(colon - s);
        if (memchr(s, ':', hl) != NULL) /* a bare IPv6 address needs brackets */
            return WEFT_EBADADDR;
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (hl >= hostlen || pl == 0 || pl >= portlen)
        return WEFT_EBADADDR;
    for (size_t i = 0; i < pl; i++) {
        if (p[i] < '0' || p[i] > '9')
            return WEFT_EBADADDR;
    }
    if (strtoul(p, NULL, 10) > 65535)
        return WEFT_EBADADDR;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return 0;
}

/* tcp:// (type SOCK_STREAM, listening) and udp:// (SOCK_DGRAM, bound). */
static int open_inet(weft_engine *e, const char *rest, weft__listener *l, int type, bool reuse_port,
                     int bind_port)
{
    char host[128], port[16];
    int rc = split_host_port(rest, host, sizeof(host), port, sizeof(port));
    if (rc != 0)
        return rc;
    if (bind_port >= 0)
        snprintf(port, sizeof(port), "%d", bind_port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = type;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host[0] && strcmp(host, "*") != 0 ? host : NULL, port, &hints, &res);
    if (gai != 0 || res == NULL) {
        weft__log(e, WEFT_LOG_ERROR, "listen %s: cannot resolve: %s", rest, gai_strerror(gai));
        return WEFT_EBADADDR;
    }
    const char *why = reuse_port ? weft__sock_missing_reuse_port() : NULL;
    if (why != NULL) {
        weft__log(e, WEFT_LOG_ERROR, "listen %s: reuse_port: %s", rest, why);
        freeaddrinfo(res);
        return WEFT_ENOSYS;
    }
    weft__sock fd;
    rc = weft__sock_open(res->ai_family, type, &fd);
    if (rc != 0) {
        freeaddrinfo(res);
        return rc;
    }
    int on = 1;
    rc = weft__sock_listen_opts(fd, reuse_port);
    if (rc != 0)
        goto fail;
    if (res->ai_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, (const void *)&on, sizeof(on));
    if (bind(fd, res->ai_addr, (socklen_t)res->ai_addrlen) != 0 ||
        (type == SOCK_STREAM && listen(fd, e->cfg.backlog > 0 ? e->cfg.backlog : 1024) != 0)) {
        rc = weft__sock_err();
        weft__log(e, WEFT_LOG_ERROR, "listen %s://%s: %s", type == SOCK_STREAM ? "tcp" : "udp",
                  rest, weft_strerror(rc));
        goto fail;
    }
    l->fd = fd;
    l->family = res->ai_family;
    l->type = type;
    /* Accepted TCP sockets inherit TCP_NODELAY and the keepalive settings from their
     * listener: set once here, they cost no syscall per connection. */
    if (type == SOCK_STREAM)
        weft__socket_tune(&e->cfg, fd, res->ai_family);
    freeaddrinfo(res);
    return 0;
fail:
    weft__sock_close(fd);
    freeaddrinfo(res);
    return rc;
}

static int open_unix(weft_engine *e, const char *path, weft__listener *l, int type)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    /* A bad address is one on every system: checked before what this one lacks. */
    if (n == 0 || n >= sizeof(sa.sun_path) || n >= sizeof(l->unix_path))
        return WEFT_EBADADDR;
    const char *why = weft__sock_missing_unix();
    if (why != NULL) {
        weft__log(e, WEFT_LOG_ERROR, "listen %s://%s: %s", type == SOCK_DGRAM ? "unixgram" : "unix",
                  path, why);
        return WEFT_EAFNOSUPPORT;
    }
    memcpy(sa.sun_path, path, n + 1);
    /* A socket file left by an earlier run would make bind fail; remove only sockets. */
    weft__unix_remove_stale(path);
    weft__sock fd;
    int rc = weft__sock_open(AF_UNIX, type, &fd);
    if (rc != 0)
        return rc;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        (type == SOCK_STREAM && listen(fd, e->cfg.backlog > 0 ? e->cfg.backlog : 1024) != 0)) {
        rc = weft__sock_err();
        weft__log(e, WEFT_LOG_ERROR, "listen unix://%s: %s", path, weft_strerror(rc));
        weft__sock_close(fd);
        return rc;
    }
    l->fd = fd;
    l->family = AF_UNIX;
    l->type = type;
    memcpy(l->unix_path, path, n + 1);
    return 0;
}

int weft__resolve(const char *url, struct sockaddr_storage *ss, socklen_t *len, int *type)
{
    memset(ss, 0, sizeof(*ss));
    const char *rest;
    int family = AF_UNSPEC;
    if (strncmp(url, "tls+unix://", 11) == 0)
        url += 4; /* TLS over a Unix socket: the address is the unix:// one */
    if (strncmp(url, "tcp://", 6) == 0 || strncmp(url, "tls://", 6) == 0) {
        *type = SOCK_STREAM;
        rest = url + 6;
    } else if (strncmp(url, "udp://", 6) == 0) {
        *type = SOCK_DGRAM;
        rest = url + 6;
    } else if (strncmp(url, "unix://", 7) == 0 || strncmp(url, "unixgram://", 11) == 0) {
        bool gram = url[4] == 'g';
        const char *path = url + (gram ? 11 : 7);
        struct sockaddr_un *su = (struct sockaddr_un *)ss;
        size_t n = strlen(path);
        if (n == 0 || n >= sizeof(su->sun_path))
            return WEFT_EBADADDR;
        su->sun_family = AF_UNIX;
        memcpy(su->sun_path, path, n + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        *type = gram ? SOCK_DGRAM : SOCK_STREAM;
        return 0;
    } else {
        return WEFT_EBADADDR;
    }
    char host[128], port[16];
    int rc = split_host_port(rest, host, sizeof(host), port, sizeof(port));
    if (rc != 0 || host[0] == '\0')
        return WEFT_EBADADDR;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = *type;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return WEFT_EBADADDR;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int weft__listener_open(weft_engine *e, const char *url, weft__listener *l, bool reuse_port,
                        int bind_port)
{
    memset(l, 0, sizeof(*l));
    l->fd = WEFT__SOCK_NONE;
    l->engine = e;
    int rc;
    bool tls = strncmp(url, "tls://", 6) == 0 || strncmp(url, "tls+unix://", 11) == 0;
    if (strncmp(url, "tcp://", 6) == 0 || strncmp(url, "tls://", 6) == 0)
        rc = open_inet(e, url + 6, l, SOCK_STREAM, reuse_port, bind_port);
    else if (strncmp(url, "tls+unix://", 11) == 0)
        rc = open_unix(e, url + 11, l, SOCK_STREAM);
    else if (strncmp(url, "udp://", 6) == 0)
        rc = open_inet(e, url + 6, l, SOCK_DGRAM, reuse_port, bind_port);
    else if (strncmp(url, "unix://", 7) == 0)
        rc = open_unix(e, url + 7, l, SOCK_STREAM);
    else if (strncmp(url, "unixgram://", 11) == 0)
        rc = open_unix(e, url + 11, l, SOCK_DGRAM);
    else
        rc = WEFT_EBADADDR;
    if (rc == WEFT_EBADADDR)
        weft__log(e, WEFT_LOG_ERROR,
                  "listen: malformed address '%s' (want tcp://host:port, tls://host:port, "
                  "udp://host:port, unix:///path, tls+unix:///path or unixgram:///path)",
                  url);
    if (rc == 0 && tls) {
        rc = weft__tls_listener_init(e, l); /* logs why it cannot */
        if (rc != 0)
            weft__listener_close(l);
    }
    if (rc == 0)
        weft__listener_format(l, l->url, sizeof(l->url));
    return rc;
}

void weft__listener_close(weft__listener *l)
{
    /* l->tls stays: it is the engine's, freed with it, and a hand-off in flight names it. */
    if (l->fd == WEFT__SOCK_NONE)
        return;
    weft__sock_close(l->fd);
    l->fd = WEFT__SOCK_NONE;
    if (l->family == AF_UNIX && l->unix_path[0] != '\0')
        (void)unlink(l->unix_path);
}

int weft__listener_format(const weft__listener *l, char *buf, size_t len)
{
    int n;
    if (l->family == AF_UNIX) {
        n = snprintf(buf, len, "%s://%s",
                     l->type == SOCK_DGRAM ? "unixgram"
                     : l->tls != NULL      ? "tls+unix"
                                           : "unix",
                     l->unix_path);
    } else {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char ip[INET6_ADDRSTRLEN];
        const char *scheme = l->tls != NULL ? "tls" : "tcp";
        if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) != 0)
            return weft__sock_err();
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
            n = snprintf(buf, len, "%s://[%s]:%u", l->type == SOCK_DGRAM ? "udp" : scheme, ip,
                         ntohs(s6->sin6_port));
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
            n = snprintf(buf, len, "%s://%s:%u", l->type == SOCK_DGRAM ? "udp" : scheme, ip,
                         ntohs(s4->sin_port));
        }
    }
    if (n < 0 || (size_t)n >= len)
        return WEFT_ENOSPC;
    return n;
}
