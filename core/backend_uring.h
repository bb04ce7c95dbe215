/* weft — what the io_uring backend's three files share. backend_uring.c is the backend
 * (see there for how it works); backend_uring_probe.c asks the kernel, once per process,
 * what it has (struct weft__uring_caps); backend_uring_dgram.c reads datagram sockets with
 * a multishot recvmsg. Private to those files: the rest of the core sees only backend.h.
 */
#ifndef WEFT_BACKEND_URING_H
#define WEFT_BACKEND_URING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "internal.h"

/* Newer than Debian 12's liburing (2.3): raw values, used only where the probe found them. */
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

#define BUF_GROUP       0 /* the stream receives' provided buffers */
#define BUF_GROUP_DGRAM 1 /* the datagram sockets' (backend_uring_dgram.c) */
#define SEND_IOV        64

/* What the kernel's io_uring has, probed once per process on a thread of its own. */
struct weft__uring_caps {
    const char *why;       /* NULL: everything the backend needs is there; else what is not */
    unsigned setup;        /* SINGLE_ISSUER | DEFER_TASKRUN, where the kernel has them */
    bool inc;              /* incremental buffer consumption (IOU_PBUF_RING_INC) */
    bool skip_cqe;         /* IOSQE_CQE_SKIP_SUCCESS */
    bool zc;               /* IORING_OP_SEND_ZC and SENDMSG_ZC (Linux 6.0, 6.1) */
    bool zc_usage;         /* IORING_SEND_ZC_REPORT_USAGE (Linux 6.2) */
    bool close;            /* IORING_OP_CLOSE */
    const char *dgram_why; /* NULL: datagram sockets have a multishot recvmsg */
    bool dgram_multishot;  /* ... and WEFT_URING_DGRAM=multishot asks for it */
};

/* The capabilities, probed on the first call (any thread); never NULL. */
const struct weft__uring_caps *weft__uring_caps(void);

/* Registers the provided-buffer ring at mem (entries buffers) as group bgid, consumed
 * incrementally if inc. 0 or a negated errno. */
int weft__uring_register_group(struct io_uring *ring, void *mem, unsigned entries,
                               unsigned short bgid, bool inc);

/* A listener's state bits. */
enum {
    L_ARMED = 1u << 0,
    L_CANCEL = 1u << 1,
    L_WANT = 1u << 2,
    L_MSG = 1u << 3,   /* a datagram socket armed with a multishot recvmsg (else a poll) */
    L_NOBUFS = 1u << 4 /* ... which ended for want of buffers: re-armed by the next poll */
};

/* At most this many zero-copy sends of a connection wait for their notification; past it a
 * send copies. (What they hold counts towards the output limits: weft__conn_sent_held.) */
#define ZC_HELD_MAX 8u

/* A sendmsg's header and vector, kept until it completes; a zero-copy send's, until its
 * notification, with what it holds of the output queue. */
typedef struct ur_send {
    struct msghdr mh;
    struct iovec iov[SEND_IOV];
    struct ur_send *next; /* the free list, or the connection's zero-copy sends, oldest first */
    weft_conn *c;         /* a zero-copy send's connection */
    weft__outq held;      /* ... the chunks it (or a later send) emptied, kept until let go */
    uint32_t held_bytes;  /* ... the output bytes they carried */
    bool let_go;          /* ... its notification came (or none will) */
} ur_send;

typedef struct ur_conn {
    ur_send *send;         /* the sendmsg in flight, if it needed one */
    weft_conn *rearm_next; /* ON_REARM: the next connection waiting for buffers */
    uint16_t inflight;     /* operations whose last completion is still to come */
    uint16_t bits;
    uint8_t small_run; /* receives under a quarter buffer in a row */
} ur_conn;

/* A connection's zero-copy sends not yet let go. Not in its slot, which zero copy (off by
 * default) would make larger for every connection: in a table of the loop's, by slot, in
 * blocks of WEFT__CHUNK_SIZE made as their connections first send zero-copy, and only when
 * zero copy is on. */
typedef struct ur_zc {
    ur_send *head;  /* oldest first */
    ur_send *tail;  /* the newest, which holds what later sends empty */
    uint32_t bytes; /* the output bytes they all hold (conn_held) */
    uint8_t n;      /* entries from head */
} ur_zc;

typedef struct ur_listener {
    uint8_t bits;
    /* L_MSG: the recvmsg's header, which tells the kernel the room for the sender's
     * address; the kernel reads it as the receive starts. */
    struct msghdr mh;
} ur_listener;

typedef struct ur_state {
    struct io_uring ring;
    struct weft__uring_caps caps; /* the probe's, copied where every completion finds them */
    bool ring_ok;
    bool draining;
    bool wake_armed;
    /* The provided-buffer ring: nbufs buffers of bufsz bytes; with incremental consumption
     * a buffer's next bytes land at off[bid]. */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *bufs;
    size_t bufs_bytes;
    uint32_t nbufs, bufsz;
    uint32_t *off;
    bool br_registered;
    /* The datagram sockets' buffer ring (made when the loop's first one is armed): dnbufs
     * buffers, each room for a recvmsg header, an address and read_buffer_size bytes. */
    struct io_uring_buf_ring *dbr;
    size_t dbr_bytes;
    uint8_t *dbufs;
    size_t dbufs_bytes;
    uint32_t dnbufs, dbufsz, dstride;
    bool dgram_failed;                  /* no ring could be made: the sockets are polled instead */
    bool dgram_rearm;                   /* a datagram socket waits for buffers (L_NOBUFS) */
    bool dgram_seen;                    /* datagrams were handed over in this reap */
    weft_conn *rearm_head, *rearm_tail; /* receives stopped for want of buffers, oldest first */
    uint32_t returned;                  /* buffers given back since the last re-arm pass */
    ur_send *free_sends;
    unsigned nfree_sends;
    uint64_t inflight; /* the loop's operations still to complete (drained on quit) */
    size_t zc_min;     /* uring_zc_min, or 0 where the kernel has no zero-copy send */
    ur_zc **zc;        /* zc_min > 0: WEFT__CHUNK_MAX blocks, each made when first needed */
    int delivered;
} ur_state;

_Static_assert(sizeof(ur_conn) <= WEFT__BE_CONN_BYTES, "WEFT__BE_CONN_BYTES is too small");
_Static_assert(sizeof(ur_listener) <= WEFT__BE_LISTENER_BYTES,
               "WEFT__BE_LISTENER_BYTES is too small");

static inline ur_conn *weft__uring_conn(weft_conn *c)
{
    return (ur_conn *)(void *)c->be;
}

static inline ur_listener *weft__uring_listener(weft__listener *l)
{
    return (ur_listener *)(void *)l->be;
}

/* backend_uring.c: arms l (a poll or, where the datagram ring is there, a recvmsg). */
void weft__uring_arm_listener(weft__loop *loop, weft__listener *l);

/* backend_uring_dgram.c. Whether the loop's datagram sockets have a multishot recvmsg: it
 * was asked for, the kernel has it and the buffer ring is there (made now if not). */
bool weft__uring_dgram_bufs_ready(weft__loop *loop);
/* The datagram buffer ring's memory goes (the ring, if any, unregistered it). */
void weft__uring_dgram_free(ur_state *s);
/* A datagram socket's completion: its multishot recvmsg's (L_MSG) or its poll's. */
void weft__uring_on_dgram(weft__loop *loop, weft__listener *l, const struct io_uring_cqe *cqe);
/* Datagram sockets that ran out of buffers are armed again (s->dgram_rearm). */
void weft__uring_dgram_rearm(weft__loop *loop);

#endif /* WEFT_BACKEND_URING_H */
