/* weft — outbound connections: dial a URL, or enroll a socket connected elsewhere. Either
 * way the connection joins a loop and is served exactly like an accepted one: same
 * handler, codec and connection API. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tls.h"

#define DIAL_TIMEOUT_DEFAULT_MS 10000u
#define DIAL_TIMEOUT_MAX_MS     (1u << 30)

/* Any thread may dial, so the loop is chosen here by an atomic round-robin rather than by
 * the balancer, whose state belongs to the acceptor thread. */
static int pick_loop(weft_engine *e, int loop, weft__loop **out)
{
    if (loop >= 0) {
        if ((unsigned)loop >= e->nloops)
            return WEFT_EINVAL;
        *out = &e->loops[loop];
        return 0;
    }
    unsigned k = atomic_fetch_add_explicit(&e->dial_next, 1, memory_order_relaxed);
    *out = &e->loops[k % e->nloops];
    return 0;
}

/* The loop side of a dial (the loop runs it through the task): fd is connecting (or
 * connected); on_open once it is. */
static void dial_adopt(weft__loop *loop, weft__task *t)
{
    void *tls = t->free_ctx; /* a tls:// dial's name to verify */
    struct sockaddr_storage *dest = t->dest;
    t->dest = NULL;
    if (loop->stopping) {
        free(dest);
        weft__tls_dial_token_free(tls, NULL);
        weft__loop_refuse_promised(loop, t);
        return;
    }
    weft_conn *c = weft__conn_setup(loop, t->fd, t->family, t->data, true);
    if (c == NULL) { /* refused for want of memory: the caller was promised on_close */
        free(dest);
        weft__tls_dial_token_free(tls, NULL);
        weft__loop_promise_close(loop, WEFT__SOCK_NONE, t->data, WEFT_ENOMEM);
        return;
    }
    c->flags |= CONN_CONNECTING;
    if (tls != NULL) /* its handshake starts once connected */
        weft__tls_dial_adopt(c, tls);
    c->active_ms = loop->now_ms + (uint32_t)t->len; /* the connect deadline, for the wheel */
    if (dest != NULL) {
        int rc = loop->be->conn_connect(c, (const struct sockaddr *)dest, t->dest_len);
        free(dest);
        if (rc != 0) {
            weft__conn_close_now(c, rc);
            return;
        }
    }
    weft__conn_update_interest(c);
    weft__wheel_schedule(c);
}

static int hand_over(weft__loop *loop, weft__task_kind kind, weft__sock fd, int family, void *ctx,
                     unsigned timeout_ms, void *tls, struct sockaddr_storage *dest,
                     socklen_t dest_len)
{
    atomic_fetch_add_explicit(&loop->stats.live, 1, memory_order_relaxed);
    weft__task t;
    memset(&t, 0, sizeof(t));
    t.kind = kind;
    t.fd = fd;
    t.family = family;
    t.data = ctx;
    t.len = timeout_ms;
    t.dest = dest;
    t.dest_len = dest_len;
    t.run = dial_adopt;
    if (tls != NULL) {
        t.free_cb = weft__tls_dial_token_free;
        t.free_ctx = tls;
    }
    int rc = weft__queue_push(&loop->queue, &t);
    if (rc != 0)
        atomic_fetch_sub_explicit(&loop->stats.live, 1, memory_order_relaxed);
    return rc;
}

int weft_engine_dial(weft_engine *e, const char *url, int loop, unsigned timeout_ms, void *ctx)
{
    if (e == NULL || url == NULL)
        return WEFT_EINVAL;
    if (atomic_load_explicit(&e->stop_requested, memory_order_relaxed))
        return WEFT_ESHUTDOWN;
    if (weft__engine_at_max_conns(e))
        return WEFT_EMAXCONN;
    weft__loop *lp;
    int rc = pick_loop(e, loop, &lp);
    if (rc != 0)
        return rc;
    struct sockaddr_storage ss;
    socklen_t sl;
    int type;
    rc = weft__resolve(url, &ss, &sl, &type);
    if (rc != 0)
        return rc;
    if (type != SOCK_STREAM)
        return WEFT_EBADADDR; /* datagram sockets are listened on, not dialled */
    const char *why = ss.ss_family == AF_UNIX ? weft__sock_missing_unix() : NULL;
    if (why != NULL) { /* as a listen of such an address is refused, with the reason */
        weft__log(e, WEFT_LOG_ERROR, "dial %s: %s", url, why);
        return WEFT_EAFNOSUPPORT;
    }
    weft__sock fd;
    rc = weft__sock_open(ss.ss_family, SOCK_STREAM, &fd);
    if (rc != 0)
        return rc;
    /* A backend that connects itself gets the address; otherwise the connect starts here,
     * and anything but in progress fails the call: the caller learns it here and no
     * callback runs. */
    struct sockaddr_storage *dest = NULL;
    if (e->be->conn_connect != NULL) {
        dest = malloc(sizeof(*dest));
        if (dest == NULL) {
            weft__sock_close(fd);
            return WEFT_ENOMEM;
        }
        memcpy(dest, &ss, sizeof(ss));
    } else {
        rc = weft__sock_connect(fd, (struct sockaddr *)&ss, sl);
        if (rc != 0 && rc != -EINPROGRESS) {
            weft__sock_close(fd);
            return rc;
        }
    }
    if (timeout_ms == 0)
        timeout_ms = DIAL_TIMEOUT_DEFAULT_MS;
    if (timeout_ms > DIAL_TIMEOUT_MAX_MS) /* deadlines are compared as 32-bit deltas */
        timeout_ms = DIAL_TIMEOUT_MAX_MS;
    void *tls = NULL;
    if (strncmp(url, "tls://", 6) == 0 || strncmp(url, "tls+unix://", 11) == 0) {
        rc = weft__tls_dial_prepare(e, url, &tls);
        if (rc != 0) {
            free(dest);
            weft__sock_close(fd);
            return rc;
        }
    }
    rc = hand_over(lp, WEFT__TASK_DIAL, fd, ss.ss_family, ctx, timeout_ms, tls, dest, sl);
    if (rc != 0) {
        free(dest);
        weft__tls_dial_token_free(tls, NULL);
        weft__sock_close(fd);
    }
    return rc;
}

int weft_engine_enroll(weft_engine *e, int fd, int loop, void *ctx)
{
    if (e == NULL || fd < 0)
        return WEFT_EINVAL;
    if (atomic_load_explicit(&e->stop_requested, memory_order_relaxed))
        return WEFT_ESHUTDOWN;
    int type;
    socklen_t tl = sizeof(type);
    if (getsockopt((weft__sock)fd, SOL_SOCKET, SO_TYPE, (void *)&type, &tl) != 0)
        return weft__sock_err();
    if (type != SOCK_STREAM)
        return WEFT_EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname((weft__sock)fd, (struct sockaddr *)&ss, &sl) != 0)
        return weft__sock_err();
    /* Every check before the fd changes: on failure it stays the caller's as it was. */
    if (weft__engine_at_max_conns(e))
        return WEFT_EMAXCONN;
    weft__loop *lp;
    int rc = pick_loop(e, loop, &lp);
    if (rc != 0)
        return rc;
    bool was_nonblock;
    rc = weft__sock_nonblock((weft__sock)fd, &was_nonblock);
    if (rc != 0)
        return rc;
    rc = hand_over(lp, WEFT__TASK_ENROLL, (weft__sock)fd, ss.ss_family, ctx, 0, NULL, NULL, 0);
    if (rc != 0 && !was_nonblock)
        (void)weft__sock_blocking((weft__sock)fd);
    return rc;
}

/* ---- the loop side (the dial's loop thread) ---- */

/* The engine's connect_done: the dialled socket is writable. */
void weft__dial_finish(weft_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    int rc = 0;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *)&err, &len) != 0)
        rc = weft__sock_err();
    else if (err != 0)
        rc = weft__sock_err_of((unsigned long)err); /* an errno, or on Windows a WSAE* code */
    if (rc == -EINPROGRESS || rc == -EALREADY)
        return;
    if (rc != 0) {
        weft__conn_close_now(c, rc);
        return;
    }
    c->flags &= (uint16_t)~CONN_CONNECTING;
    c->active_ms = c->loop->now_ms;
    if (weft__tls_of(c) != NULL)
        weft__tls_dial_connected(c); /* opened once the handshake is done */
    else
        weft__conn_opened(c);
}
