/* weft — the completion backend on Windows: one I/O completion port per loop.
 *
 * Every socket of a loop is associated with the loop's port, and the loop collects what
 * finished with GetQueuedCompletionStatusEx, a batch at a time. Listeners keep several
 * AcceptEx calls outstanding, each with its socket made in advance. A connection waits for
 * input with a zero-byte WSARecv, which pins no buffer however long the connection stays
 * idle; when it completes, bytes are there (or the peer's end), and they are read without
 * blocking straight into the buffer weft__conn_recv_buf names, until the socket has no more.
 * Output is one overlapped WSASend at a time of the connection's queue, scatter/gather.
 * The loop's wakeup is a completion posted to the port under a key of its own (platform.h's
 * waker), so the wait ends for the inbox as for I/O.
 *
 * Every operation is an OVERLAPPED inside a struct that says what it is; the connection's
 * two sit in its slot (be[]), a listener's accepts in memory of its own. Each is counted
 * until its completion arrives. A closed connection cancels what it has in flight
 * (CancelIoEx, and closesocket would too) and keeps its slot until the last completion came
 * back (weft__conn_released): the classic use-after-free of IOCP servers, where the kernel
 * writes an OVERLAPPED whose memory a new connection already owns, cannot happen. When the
 * loop quits it waits for every count to reach zero.
 *
 * A dial connects with ConnectEx (the backend's conn_connect), in the receive's OVERLAPPED,
 * which no receive needs before the connection is up. A udp:// socket's overlapped
 * WSARecvFrom are dgram_iocp.c's, under a completion key of their own; the receives of a
 * wait form one batch of datagrams, ended (its replies sent) when the wait's completions
 * were all handled.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dgram_iocp.h"
#include "internal.h"

#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <mswsock.h>

#define ENTRY_BATCH     64  /* completions taken per GetQueuedCompletionStatusEx */
#define ACCEPTS         8   /* AcceptEx calls outstanding per listener */
#define SEND_IOV        64  /* buffers per WSASend; the rest goes once it completed */
#define READS_PER_WAKE  16  /* reads after one receive completion before others get a turn */
#define KEY_SOCKET      0   /* completions of a socket's operations */
#define KEY_WAKE        1   /* the loop's wakeup (no OVERLAPPED) */
#define DRAIN_WAIT_MS   100 /* loop_quit: one wait for what is still in flight */
#define DRAIN_MAX_WAITS 50  /* ... and how many may pass with nothing arriving */
#define ADDR_ROOM       (sizeof(struct sockaddr_storage) + 16) /* AcceptEx's per address */
/* The third key, WEFT__IOCP_KEY_DGRAM, is a datagram socket's receives (dgram_iocp.h). */
_Static_assert(WEFT__IOCP_KEY_DGRAM != KEY_SOCKET && WEFT__IOCP_KEY_DGRAM != KEY_WAKE,
               "a completion key says whose completion it is");

enum { OP_RECV = 1, OP_SEND, OP_ACCEPT, OP_CONNECT };

typedef struct ic_op {
    OVERLAPPED ov;
    uint8_t kind;
    int err; /* a negated errno a failed start posted with the completion; 0: ask the socket */
} ic_op;

/* Connection bits. */
enum {
    WANT_READ = 1u << 0,
    RECV_ARMED = 1u << 1, /* the zero-byte receive is outstanding */
    SEND_BUSY = 1u << 2,
    CLOSED = 1u << 3,
    INPUT_OVER = 1u << 4, /* the peer's end or an error was delivered: no more receives */
};

typedef struct ic_conn {
    ic_op recv; /* also the ConnectEx of a dial, which comes before any receive */
    ic_op send;
    uint16_t bits;
    uint16_t inflight;
} ic_conn;

typedef struct ic_accept {
    ic_op op;
    SOCKET s;  /* the socket it accepts into; INVALID_SOCKET for a failed start */
    bool busy; /* its completion has not arrived */
    char addrs[2 * ADDR_ROOM];
} ic_accept;

typedef struct ic_listener {
    ic_accept acc[ACCEPTS];
    LPFN_ACCEPTEX acceptex;
    LPFN_GETACCEPTEXSOCKADDRS sockaddrs;
    unsigned pending; /* AcceptEx calls outstanding */
    bool want;
} ic_listener;

typedef struct ic_state {
    HANDLE port;
    LPFN_CONNECTEX connectex; /* looked up with the first dial */
    uint64_t inflight;        /* operations whose completion has not arrived */
    bool draining;            /* loop_quit: nothing new starts, completions only finish */
    int delivered;
} ic_state;

_Static_assert(sizeof(ic_conn) <= WEFT__BE_CONN_BYTES, "ic_conn must fit a connection's be[]");
_Static_assert(sizeof(ic_listener *) <= WEFT__BE_LISTENER_BYTES,
               "a listener's be[] holds a pointer");

static ic_conn *conn_state(weft_conn *c)
{
    return (ic_conn *)(void *)c->be;
}

static ic_listener **listener_slot(weft__listener *l)
{
    return (ic_listener **)(void *)l->be;
}

/* ---- the loop ---- */

static int ic_loop_init(weft__loop *loop)
{
    ic_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return WEFT_ENOMEM;
    loop->be_state = s;
    s->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    if (s->port == NULL)
        return weft__sock_err_of(GetLastError());
    /* From here any thread may wake the loop. */
    loop->queue.waker.key = KEY_WAKE;
    loop->queue.waker.port = s->port;
    return 0;
}

static void ic_loop_destroy(weft__loop *loop)
{
    ic_state *s = loop->be_state;
    if (s == NULL)
        return;
    loop->queue.waker.port = NULL;
    for (size_t i = 0; i < loop->nlisteners; i++) {
        if (loop->listeners[i]->type == SOCK_DGRAM) {
            weft__iocp_dgram_free(loop->listeners[i]);
            continue;
        }
        ic_listener **slot = listener_slot(loop->listeners[i]);
        /* Freed only when nothing of it is with the kernel (loop_quit waited for that). */
        if (*slot != NULL && (*slot)->pending == 0) {
            free(*slot);
            *slot = NULL;
        }
    }
    if (s->port != NULL && s->inflight == 0)
        CloseHandle(s->port);
    free(s);
    loop->be_state = NULL;
}

/* How c's operation op ended: 0, or a negated errno (a failure at post, or the one its
 * completion reports). */
static int op_result(weft_conn *c, ic_op *op)
{
    DWORD got, flags;
    if (op->err == 0 && op->ov.Internal != 0 &&
        !WSAGetOverlappedResult(c->fd, &op->ov, &got, FALSE, &flags))
        return weft__sock_err();
    return op->err;
}

static void op_done(ic_state *s, weft_conn *c)
{
    ic_conn *u = conn_state(c);
    s->inflight--;
    u->inflight--;
    if (u->inflight == 0 && (u->bits & CLOSED))
        weft__conn_released(c);
}

/* Starts an operation's completion with err, as if the kernel had finished it so: the
 * upcall then comes from poll, never from inside the call that started it. */
static bool post_failed(ic_state *s, ic_op *op, int err)
{
    op->err = err;
    return PostQueuedCompletionStatus(s->port, 0, KEY_SOCKET, &op->ov) != 0;
}

/* The zero-byte receive: completes when bytes (or the peer's end) are there, holding no
 * buffer until then. */
static void post_recv(weft_conn *c)
{
    ic_state *s = c->loop->be_state;
    ic_conn *u = conn_state(c);
    memset(&u->recv.ov, 0, sizeof(u->recv.ov));
    u->recv.kind = OP_RECV;
    u->recv.err = 0;
    WSABUF b = {0, NULL};
    DWORD flags = 0;
    if (WSARecv(c->fd, &b, 1, NULL, &flags, &u->recv.ov, NULL) != 0) {
        int wsa = WSAGetLastError();
        if (wsa != WSA_IO_PENDING &&
            !post_failed(s, &u->recv, weft__sock_err_of((unsigned long)wsa)))
            return; /* no completion will come: reading stays off */
    }
    u->bits |= RECV_ARMED;
    u->inflight++;
    s->inflight++;
}

/* Bytes are there: reads them without blocking into where the connection layer says, until
 * the socket has no more, the peer ended, or READS_PER_WAKE reads were made (then the next
 * zero-byte receive completes at once, after the other connections' turn). */
static void read_ready(weft_conn *c)
{
    weft__loop *loop = c->loop;
    ic_conn *u = conn_state(c);
    weft__loop_enter(loop);
    for (int i = 0; i < READS_PER_WAKE; i++) {
        if ((u->bits & (WANT_READ | CLOSED | INPUT_OVER)) != WANT_READ)
            break;
        size_t room;
        uint8_t *p = weft__conn_recv_buf(c, &room);
        if (p == NULL)
            break;
        int len = room > INT_MAX ? INT_MAX : (int)room;
        int n = recv(c->fd, (char *)p, len, 0);
        if (n < 0) {
            int err = weft__sock_err();
            if (weft__sock_again(err))
                break;
            u->bits |= INPUT_OVER;
            weft__conn_recv_done(c, NULL, err);
            break;
        }
        if (n == 0)
            u->bits |= INPUT_OVER;
        weft__conn_recv_done(c, p, n);
        if (n < len)
            break; /* the socket is empty, most likely: the next receive says */
    }
    weft__loop_leave(loop);
}

static void on_recv(ic_state *s, weft_conn *c, ic_op *op, DWORD bytes)
{
    (void)bytes; /* zero: the receive asked for none */
    ic_conn *u = conn_state(c);
    u->bits &= (uint16_t)~RECV_ARMED;
    if (!(u->bits & CLOSED)) {
        int err = op_result(c, op);
        if (err != 0 && err != -ECANCELED) {
            u->bits |= INPUT_OVER;
            weft__loop_enter(c->loop);
            weft__conn_recv_done(c, NULL, err);
            weft__loop_leave(c->loop);
        } else if (err == 0 && (u->bits & WANT_READ)) {
            read_ready(c);
        }
        /* Not wanted now: the bytes wait in the socket, and conn_want arms again. */
        if ((u->bits & (WANT_READ | CLOSED | INPUT_OVER | RECV_ARMED)) == WANT_READ && !s->draining)
            post_recv(c);
    }
    op_done(s, c);
}

static void on_send(ic_state *s, weft_conn *c, ic_op *op, DWORD bytes)
{
    ic_conn *u = conn_state(c);
    u->bits &= (uint16_t)~SEND_BUSY;
    if (!(u->bits & CLOSED)) {
        int err = op_result(c, op);
        weft__conn_sent(c, err != 0 ? (ssize_t)err : (ssize_t)bytes);
    }
    op_done(s, c);
}

/* A dial's ConnectEx finished: connected (the connection layer opens it) or not (closed
 * with the error). */
static void on_connect(ic_state *s, weft_conn *c, ic_op *op)
{
    ic_conn *u = conn_state(c);
    u->bits &= (uint16_t)~RECV_ARMED;
    if (!(u->bits & CLOSED)) {
        int err = op_result(c, op);
        /* getpeername, shutdown and SO_ERROR work on it only after this. */
        if (err == 0 && setsockopt(c->fd, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0) != 0)
            err = weft__sock_err();
        weft__loop_enter(c->loop);
        if (err == 0)
            weft__conn_writable(c);
        else
            weft__conn_close_now(c, err);
        weft__loop_leave(c->loop);
    }
    op_done(s, c);
}

/* ---- listeners ---- */

static void post_accepts(weft__loop *loop, weft__listener *l);

static void on_accept(weft__loop *loop, weft__listener *l, ic_accept *a)
{
    ic_state *s = loop->be_state;
    ic_listener *u = *listener_slot(l);
    SOCKET cs = a->s;
    a->s = INVALID_SOCKET;
    a->busy = false;
    u->pending--;
    s->inflight--;
    int err = a->op.err;
    if (err == 0 && a->op.ov.Internal != 0) {
        DWORD got, flags;
        err = -ECANCELED; /* the listener closed under it, which cancels it too */
        if (l->fd != WEFT__SOCK_NONE &&
            !WSAGetOverlappedResult(l->fd, &a->op.ov, &got, FALSE, &flags))
            err = weft__sock_err();
    }
    bool go_on = true;
    if (err == 0 && (!u->want || s->draining || loop->stopping || l->fd == WEFT__SOCK_NONE))
        err = -ECANCELED; /* accepted as the listener stopped: refused */
    if (err == 0) {
        /* The accepted socket takes on the listener's options, and getpeername works. */
        SOCKET ls = l->fd;
        (void)setsockopt(cs, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (const char *)&ls, sizeof(ls));
        /* An AcceptEx socket does not take TCP_NODELAY and the keepalive from its listener
         * as an accept()ed one does on Linux (under Wine a small reply waited for the delayed
         * ACK, 40 ms and more): they are set here. */
        (void)weft__socket_tune(&loop->engine->cfg, cs, l->family);
        struct sockaddr *local = NULL, *peer = NULL;
        int llen = 0, plen = 0;
        u->sockaddrs(a->addrs, 0, ADDR_ROOM, ADDR_ROOM, &local, &llen, &peer, &plen);
        int rc = weft__sock_nonblock(cs, NULL);
        if (rc != 0) {
            closesocket(cs);
            go_on = weft__listener_accepted(l, WEFT__SOCK_NONE, rc, NULL, 0);
        } else {
            go_on = weft__listener_accepted(l, cs, 0, plen > 0 ? peer : NULL, (socklen_t)plen);
        }
    } else {
        if (cs != INVALID_SOCKET)
            closesocket(cs);
        if (err != -ECANCELED)
            go_on = weft__listener_accepted(l, WEFT__SOCK_NONE, err, NULL, 0);
    }
    if (go_on && u->want && !s->draining)
        post_accepts(loop, l);
}

/* Gives every idle accept slot of l an AcceptEx. */
static void post_accepts(weft__loop *loop, weft__listener *l)
{
    ic_state *s = loop->be_state;
    ic_listener *u = *listener_slot(l);
    for (unsigned i = 0; i < ACCEPTS; i++) {
        ic_accept *a = &u->acc[i];
        if (a->busy)
            continue;
        memset(&a->op.ov, 0, sizeof(a->op.ov));
        a->op.kind = OP_ACCEPT;
        a->op.err = 0;
        a->s = INVALID_SOCKET;
        weft__sock cs;
        int rc = weft__sock_open(l->family, SOCK_STREAM, &cs);
        if (rc == 0) {
            DWORD got = 0;
            if (!u->acceptex(l->fd, cs, a->addrs, 0, ADDR_ROOM, ADDR_ROOM, &got, &a->op.ov)) {
                int wsa = WSAGetLastError();
                if (wsa != ERROR_IO_PENDING)
                    rc = weft__sock_err_of((unsigned long)wsa);
            }
            if (rc != 0)
                closesocket(cs);
            else
                a->s = cs;
        }
        /* No socket to accept into (out of handles, or memory): the completion says so,
         * and weft__listener_accepted pauses the listener as an EMFILE does elsewhere. */
        if (rc != 0 && !post_failed(s, &a->op, rc))
            return;
        a->busy = true;
        u->pending++;
        s->inflight++;
        if (rc != 0)
            return;
    }
}

static int listener_setup(weft__loop *loop, weft__listener *l)
{
    ic_state *s = loop->be_state;
    ic_listener *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return WEFT_ENOMEM;
    for (unsigned i = 0; i < ACCEPTS; i++)
        u->acc[i].s = INVALID_SOCKET; /* and not busy */
    GUID g_accept = WSAID_ACCEPTEX, g_addrs = WSAID_GETACCEPTEXSOCKADDRS;
    DWORD got = 0;
    int rc = 0;
    if (WSAIoctl(l->fd, SIO_GET_EXTENSION_FUNCTION_POINTER, &g_accept, sizeof(g_accept),
                 &u->acceptex, sizeof(u->acceptex), &got, NULL, NULL) != 0 ||
        WSAIoctl(l->fd, SIO_GET_EXTENSION_FUNCTION_POINTER, &g_addrs, sizeof(g_addrs),
                 &u->sockaddrs, sizeof(u->sockaddrs), &got, NULL, NULL) != 0)
        rc = weft__sock_err();
    else if (CreateIoCompletionPort((HANDLE)l->fd, s->port, KEY_SOCKET, 0) == NULL)
        rc = weft__sock_err_of(GetLastError());
    if (rc != 0) {
        weft__log(loop->engine, WEFT_LOG_ERROR, "listen %s: cannot accept with AcceptEx: %s",
                  l->url, weft_strerror(rc));
        free(u);
        return rc;
    }
    *listener_slot(l) = u;
    return 0;
}

static int ic_listener_start(weft__loop *loop, weft__listener *l)
{
    ic_state *s = loop->be_state;
    if (s->draining)
        return WEFT_ESHUTDOWN;
    if (l->type == SOCK_DGRAM) {
        int posted = weft__iocp_dgram_start(loop, l, s->port);
        if (posted < 0)
            return posted;
        s->inflight += (unsigned)posted;
        return 0;
    }
    if (*listener_slot(l) == NULL) {
        int rc = listener_setup(loop, l);
        if (rc != 0)
            return rc;
    }
    (*listener_slot(l))->want = true;
    post_accepts(loop, l);
    return 0;
}

static void ic_listener_stop(weft__loop *loop, weft__listener *l)
{
    (void)loop;
    if (l->type == SOCK_DGRAM) {
        weft__iocp_dgram_stop(l);
        return;
    }
    ic_listener *u = *listener_slot(l);
    if (u == NULL)
        return;
    u->want = false;
    /* What is outstanding completes as cancelled, and its sockets are closed then. */
    if (u->pending > 0 && l->fd != WEFT__SOCK_NONE)
        (void)CancelIoEx((HANDLE)l->fd, NULL);
}

/* ---- completions ---- */

static void complete(weft__loop *loop, const OVERLAPPED_ENTRY *e)
{
    ic_state *s = loop->be_state;
    if (e->lpOverlapped == NULL) {
        if (e->lpCompletionKey == KEY_WAKE && !s->draining)
            weft__loop_woken(loop);
        return;
    }
    if (e->lpCompletionKey == WEFT__IOCP_KEY_DGRAM) {
        s->inflight--;
        s->inflight += weft__iocp_dgram_done(loop, e->lpOverlapped, e->dwNumberOfBytesTransferred);
        return;
    }
    ic_op *op = WEFT__CONTAINER_OF(e->lpOverlapped, ic_op, ov);
    switch (op->kind) {
    case OP_RECV: {
        weft_conn *c = WEFT__CONTAINER_OF(op, weft_conn, be);
        on_recv(s, c, op, e->dwNumberOfBytesTransferred);
        break;
    }
    case OP_CONNECT:
        on_connect(s, WEFT__CONTAINER_OF(op, weft_conn, be), op);
        break;
    case OP_SEND: {
        ic_conn *u = WEFT__CONTAINER_OF(op, ic_conn, send);
        on_send(s, WEFT__CONTAINER_OF((void *)u, weft_conn, be), op, e->dwNumberOfBytesTransferred);
        break;
    }
    case OP_ACCEPT: {
        /* The accept's listener: the one of this loop whose slots hold it. */
        for (size_t i = 0; i < loop->nlisteners; i++) {
            weft__listener *l = loop->listeners[i];
            ic_listener *u = l->type == SOCK_STREAM ? *listener_slot(l) : NULL;
            if (u != NULL && (char *)op >= (char *)u->acc &&
                (char *)op < (char *)(u->acc + ACCEPTS)) {
                on_accept(loop, l, WEFT__CONTAINER_OF(op, ic_accept, op));
                break;
            }
        }
        break;
    }
    default:
        break;
    }
}

/* Waits at most timeout_ms (-1: for ever) and handles a batch of completions; returns how
 * many, or a negative WEFT_E* code. */
static int wait_batch(weft__loop *loop, int timeout_ms)
{
    ic_state *s = loop->be_state;
    OVERLAPPED_ENTRY entries[ENTRY_BATCH];
    ULONG n = 0;
    DWORD wait = timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms;
    if (!GetQueuedCompletionStatusEx(s->port, entries, ENTRY_BATCH, &n, wait, FALSE)) {
        DWORD err = GetLastError();
        return err == WAIT_TIMEOUT ? 0 : weft__sock_err_of(err);
    }
    for (ULONG i = 0; i < n; i++)
        complete(loop, &entries[i]);
    weft__dgram_recv_end(loop); /* the datagrams of this wait were one batch */
    WEFT__STAT_ADD(loop->stats.completions, n);
    return (int)n;
}

static int ic_poll(weft__loop *loop, int timeout_ms)
{
    int n = wait_batch(loop, timeout_ms);
    /* A full batch: more may wait; take them now rather than after the next iteration. */
    while (n > 0 && n % ENTRY_BATCH == 0) {
        int more = wait_batch(loop, 0);
        if (more <= 0)
            break;
        n += more;
    }
    return n;
}

static void ic_loop_quit(weft__loop *loop)
{
    ic_state *s = loop->be_state;
    if (s == NULL || s->port == NULL)
        return;
    s->draining = true;
    for (size_t i = 0; i < loop->nlisteners; i++)
        ic_listener_stop(loop, loop->listeners[i]);
    /* Every connection closed and cancelled what it had in flight: wait for the system to
     * say so. One that never answers must not hang the engine's stop for ever. */
    int waits = 0;
    while (s->inflight > 0 && waits < DRAIN_MAX_WAITS) {
        uint64_t before = s->inflight;
        if (wait_batch(loop, DRAIN_WAIT_MS) < 0)
            break;
        waits = s->inflight < before ? 0 : waits + 1;
    }
    if (s->inflight > 0)
        weft__log(loop->engine, WEFT_LOG_ERROR,
                  "loop %u: %llu overlapped operations still in flight at exit", loop->index,
                  (unsigned long long)s->inflight);
}

/* ---- connections ---- */

static int ic_conn_open(weft_conn *c)
{
    ic_state *s = c->loop->be_state;
    memset(conn_state(c), 0, sizeof(ic_conn));
    if (CreateIoCompletionPort((HANDLE)c->fd, s->port, KEY_SOCKET, 0) == NULL)
        return weft__sock_err_of(GetLastError());
    return 0;
}

static void ic_conn_want(weft_conn *c, bool read, bool write)
{
    (void)write; /* output is the queue's business; no dial waits for writability here */
    ic_conn *u = conn_state(c);
    ic_state *s = c->loop->be_state;
    if (read)
        u->bits |= WANT_READ;
    else
        u->bits &= (uint16_t)~WANT_READ; /* an armed zero-byte receive holds nothing: it stays */
    /* A dial's receives wait for its connect (which holds the receive's OVERLAPPED). */
    if ((u->bits & (WANT_READ | CLOSED | INPUT_OVER | RECV_ARMED)) == WANT_READ &&
        !(c->flags & CONN_CONNECTING) && !s->draining)
        post_recv(c);
}

static int ic_conn_connect(weft_conn *c, const struct sockaddr *to, socklen_t len)
{
    ic_state *s = c->loop->be_state;
    ic_conn *u = conn_state(c);
    if (s->connectex == NULL) {
        GUID g = WSAID_CONNECTEX;
        DWORD got = 0;
        if (WSAIoctl(c->fd, SIO_GET_EXTENSION_FUNCTION_POINTER, &g, sizeof(g), &s->connectex,
                     sizeof(s->connectex), &got, NULL, NULL) != 0) {
            s->connectex = NULL;
            return weft__sock_err();
        }
    }
    /* ConnectEx wants a bound socket: any address of the family, any port. */
    struct sockaddr_storage any;
    memset(&any, 0, sizeof(any));
    any.ss_family = to->sa_family;
    socklen_t alen = to->sa_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                                               : (socklen_t)sizeof(struct sockaddr_in);
    if (bind(c->fd, (struct sockaddr *)&any, alen) != 0)
        return weft__sock_err();
    memset(&u->recv.ov, 0, sizeof(u->recv.ov));
    u->recv.kind = OP_CONNECT;
    u->recv.err = 0;
    if (!s->connectex(c->fd, to, len, NULL, 0, NULL, &u->recv.ov)) {
        int wsa = WSAGetLastError();
        if (wsa != ERROR_IO_PENDING &&
            !post_failed(s, &u->recv, weft__sock_err_of((unsigned long)wsa)))
            return weft__sock_err_of((unsigned long)wsa);
    }
    u->bits |= RECV_ARMED; /* its OVERLAPPED is taken until the connect completes */
    u->inflight++;
    s->inflight++;
    return 0;
}

static ssize_t ic_conn_send(weft_conn *c, const struct iovec *iov, int iovcnt)
{
    ic_state *s = c->loop->be_state;
    ic_conn *u = conn_state(c);
    if (iovcnt > SEND_IOV)
        iovcnt = SEND_IOV;
    /* WSASend takes its copy of the WSABUFs before it returns; the bytes they name stay put
     * in the output queue until the completion. */
    WSABUF bufs[SEND_IOV];
    for (int i = 0; i < iovcnt; i++) {
        size_t len = iov[i].iov_len;
        bufs[i].len = len > (1u << 30) ? (1u << 30) : (ULONG)len;
        bufs[i].buf = iov[i].iov_base;
        if (len > (1u << 30)) {
            iovcnt = i + 1;
            break;
        }
    }
    memset(&u->send.ov, 0, sizeof(u->send.ov));
    u->send.kind = OP_SEND;
    u->send.err = 0;
    if (WSASend(c->fd, bufs, (DWORD)iovcnt, NULL, 0, &u->send.ov, NULL) != 0) {
        int wsa = WSAGetLastError();
        if (wsa != WSA_IO_PENDING &&
            !post_failed(s, &u->send, weft__sock_err_of((unsigned long)wsa)))
            return weft__sock_err_of((unsigned long)wsa);
    }
    u->bits |= SEND_BUSY;
    u->inflight++;
    s->inflight++;
    return 0;
}

static bool ic_conn_close(weft_conn *c)
{
    ic_conn *u = conn_state(c);
    u->bits |= CLOSED;
    u->bits &= (uint16_t)~WANT_READ;
    /* The caller closes the socket next, which cancels the rest too; the completions still
     * come, and the slot waits for them. */
    if (u->inflight > 0)
        (void)CancelIoEx((HANDLE)c->fd, NULL);
    return u->inflight > 0;
}

const weft__backend weft__backend_iocp = {
    .name = "iocp",
    .conn_bytes = sizeof(ic_conn),
    .completion = true,
    .loop_init = ic_loop_init,
    .loop_destroy = ic_loop_destroy,
    .poll = ic_poll,
    .conn_open = ic_conn_open,
    .conn_want = ic_conn_want,
    .conn_send = ic_conn_send,
    .conn_close = ic_conn_close,
    .conn_connect = ic_conn_connect,
    .listener_start = ic_listener_start,
    .listener_stop = ic_listener_stop,
    .loop_quit = ic_loop_quit,
};
