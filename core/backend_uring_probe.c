/* weft — the io_uring backend's probe: what the kernel has, asked once per process.
 *
 * A kernel, or a seccomp filter in a container, may lack io_uring, or one of the operations
 * backend_uring.c uses; each is tried for real on a small ring of the probe's own, and
 * what is found fills one struct weft__uring_caps that every loop reads.
 */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend_uring.h"

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static struct weft__uring_caps caps;

int weft__uring_register_group(struct io_uring *ring, void *mem, unsigned entries,
                               unsigned short bgid, bool inc)
{
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)mem;
    reg.ring_entries = entries;
    reg.bgid = bgid;
    reg.pad = inc ? IOU_PBUF_RING_INC : 0; /* "flags" in newer headers */
    return io_uring_register_buf_ring(ring, &reg, 0);
}

/* What a receive probe stands on: a page with a buffer ring of one buffer, registered as
 * group bgid, and a socket pair whose sv[1] writes what the probed receive on sv[0] gets. */
typedef struct rig {
    struct io_uring *ring;
    void *mem;
    size_t page;
    unsigned short bgid;
    int sv[2];
} rig;

static void rig_close(rig *r);

/* Sets r up with buf[0..len) as the ring's buffer and a socket pair of type. inc (may be
 * NULL: not wanted) asks for incremental consumption first and says whether the kernel took
 * it. Returns NULL (rig_close takes it down), or what failed, no_group if no ring could be
 * registered (then nothing is left to take down). */
static const char *rig_open(rig *r, struct io_uring *ring, unsigned short bgid, bool *inc, int type,
                            void *buf, unsigned len, const char *no_group)
{
    memset(r, 0, sizeof(*r));
    r->ring = ring;
    r->bgid = bgid;
    r->sv[0] = r->sv[1] = -1;
    r->page = (size_t)sysconf(_SC_PAGESIZE);
    r->mem = mmap(NULL, r->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r->mem == MAP_FAILED)
        return "no memory for the probe";
    bool want_inc = inc != NULL && *inc;
    bool got_inc = want_inc && weft__uring_register_group(ring, r->mem, 8, bgid, true) == 0;
    if (inc != NULL)
        *inc = got_inc;
    if (!got_inc && weft__uring_register_group(ring, r->mem, 8, bgid, false) != 0) {
        munmap(r->mem, r->page);
        return no_group;
    }
    struct io_uring_buf_ring *br = r->mem;
    io_uring_buf_ring_init(br);
    io_uring_buf_ring_add(br, buf, len, 0, io_uring_buf_ring_mask(8), 0);
    io_uring_buf_ring_advance(br, 1);
    if (socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, r->sv) != 0) {
        r->sv[0] = r->sv[1] = -1;
        rig_close(r);
        return "no socket pair for the probe";
    }
    return NULL;
}

/* sqe, a receive on r->sv[0] prepared by the caller, takes r's buffers and is operation 1;
 * one byte is written for it to receive. NULL, or what failed. */
static const char *rig_go(rig *r, struct io_uring_sqe *sqe)
{
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = r->bgid;
    sqe->user_data = 1;
    return write(r->sv[1], "x", 1) == 1 ? NULL : "the probe's socket pair failed";
}

static void rig_close(rig *r)
{
    if (r->sv[0] >= 0) {
        close(r->sv[0]);
        close(r->sv[1]);
    }
    (void)io_uring_unregister_buf_ring(r->ring, r->bgid);
    munmap(r->mem, r->page);
}

/* Waits for the completion of the probe's operation 1, then cancels it and collects what
 * is left (the cancel's answer and the operation's last): nothing may stay in flight, or
 * the kernel would finish it later with task work on this thread. Returns whether the
 * operation answered with res >= min_res and more to come. */
static bool probe_multishot(struct io_uring *ring, int min_res)
{
    struct __kernel_timespec ts = {1, 0};
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
    bool ok = rc >= 0 && cqe != NULL && cqe->res >= min_res && (cqe->flags & IORING_CQE_F_MORE);
    if (cqe != NULL)
        io_uring_cqe_seen(ring, cqe);
    if (ok) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        io_uring_prep_cancel64(sqe, 1, 0);
        sqe->user_data = 2;
        for (int left = 2; left > 0;) {
            cqe = NULL;
            if (io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL) < 0 || cqe == NULL)
                break;
            io_uring_cqe_seen(ring, cqe);
            left--;
        }
    }
    return ok;
}

/* A multishot recvmsg on a datagram socket pair, from a buffer group of its own (Linux 6.0,
 * as the multishot receive; a filter may still refuse the one and not the other). */
static const char *probe_dgram(struct io_uring *ring)
{
    uint8_t buf[256];
    rig r;
    const char *why = rig_open(&r, ring, BUF_GROUP_DGRAM, NULL, SOCK_DGRAM, buf, sizeof(buf),
                               "no buffer group for datagrams");
    if (why != NULL)
        return why;
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_namelen = sizeof(struct sockaddr_storage);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_recvmsg_multishot(sqe, r.sv[0], &mh, MSG_TRUNC);
    why = rig_go(&r, sqe);
    if (why == NULL &&
        !probe_multishot(ring, (int)(sizeof(struct io_uring_recvmsg_out) + mh.msg_namelen + 1)))
        why = "the kernel has no multishot recvmsg";
    rig_close(&r);
    return why;
}

/* A multishot receive on a socket pair, from a provided buffer: the one thing a kernel
 * before 6.0, or a filter in a container, is most likely to refuse. *inc: whether the
 * kernel consumes buffers incrementally. */
static const char *probe_recv(struct io_uring *ring, bool *inc)
{
    uint8_t buf[64];
    rig r;
    *inc = true;
    const char *why = rig_open(&r, ring, BUF_GROUP, inc, SOCK_STREAM, buf, sizeof(buf),
                               "the kernel has no provided-buffer rings (Linux 5.19)");
    if (why != NULL)
        return why;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_recv_multishot(sqe, r.sv[0], NULL, 0, 0);
    why = rig_go(&r, sqe);
    if (why == NULL && !probe_multishot(ring, 1)) /* the one byte, and more to come */
        why = "the kernel has no multishot receive (Linux 6.0)";
    rig_close(&r);
    return why;
}

/* Whether a zero-copy send takes IORING_SEND_ZC_REPORT_USAGE: a kernel that does not know
 * the flag refuses the request (EINVAL) before it looks at the socket, one that does fails
 * it for the bad descriptor. */
static bool probe_usage(struct io_uring *ring)
{
    static char byte;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL)
        return false;
    io_uring_prep_send_zc(sqe, -1, &byte, 1, 0, IORING_SEND_ZC_REPORT_USAGE);
    sqe->user_data = 3; /* the receive probe's were 1 and 2 */
    bool known = false, first = true, more = true;
    for (int i = 0; i < 4 && more; i++) { /* the result, then the notification if MORE */
        struct __kernel_timespec ts = {1, 0};
        struct io_uring_cqe *cqe = NULL;
        if (io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL) < 0 || cqe == NULL)
            break;
        if (cqe->user_data == 3) {
            if (first)
                known = cqe->res != -EINVAL;
            more = first && (cqe->flags & IORING_CQE_F_MORE) != 0;
            first = false;
        }
        io_uring_cqe_seen(ring, cqe);
    }
    return known;
}

static void probe(void)
{
    struct io_uring ring;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int rc = io_uring_queue_init_params(8, &ring, &p);
    if (rc == -EINVAL) { /* before Linux 6.1 */
        memset(&p, 0, sizeof(p));
        rc = io_uring_queue_init_params(8, &ring, &p);
    }
    if (rc < 0) {
        caps.why = rc == -ENOSYS  ? "the kernel has no io_uring, or a seccomp filter blocks it"
                   : rc == -EPERM ? "io_uring is not permitted (kernel.io_uring_disabled, or a "
                                    "seccomp filter)"
                                  : "io_uring_setup failed";
        return;
    }
    caps.setup = p.flags & (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    caps.skip_cqe = (p.features & IORING_FEAT_CQE_SKIP) != 0;
    if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP) ||
        !(p.features & IORING_FEAT_FAST_POLL)) {
        caps.why = "the kernel's io_uring is too old (Linux 6.0 is needed)";
        goto out;
    }
    struct io_uring_probe *pr = io_uring_get_probe_ring(&ring);
    static const int ops[] = {IORING_OP_RECV,   IORING_OP_SEND,     IORING_OP_SENDMSG,
                              IORING_OP_ACCEPT, IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]) && caps.why == NULL; i++) {
        if (pr == NULL || !io_uring_opcode_supported(pr, ops[i]))
            caps.why = "the kernel's io_uring lacks an operation weft uses (Linux 6.0 is needed)";
    }
    caps.close = pr != NULL && io_uring_opcode_supported(pr, IORING_OP_CLOSE);
    caps.zc = pr != NULL && io_uring_opcode_supported(pr, IORING_OP_SEND_ZC) &&
              io_uring_opcode_supported(pr, IORING_OP_SENDMSG_ZC);
    if (pr != NULL)
        io_uring_free_probe(pr);
    if (caps.why == NULL)
        caps.why = probe_recv(&ring, &caps.inc);
    if (caps.why == NULL && caps.zc)
        caps.zc_usage = probe_usage(&ring);
    if (caps.why == NULL)
        caps.dgram_why = probe_dgram(&ring);
    const char *env = getenv("WEFT_URING_DGRAM");
    caps.dgram_multishot = env != NULL && strcmp(env, "multishot") == 0;
out:
    io_uring_queue_exit(&ring);
}

static void *probe_thread(void *arg)
{
    (void)arg;
    probe();
    return NULL;
}

/* The probe runs on a thread of its own: a ring's teardown can leave task work for the
 * thread that ran it (with DEFER_TASKRUN, moved over as the ring exits), and that interrupts
 * the thread's next blocking call with EINTR. Here that thread is gone by then. */
static void probe_once_fn(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, probe_thread, NULL) != 0) {
        caps.why = "no thread for the io_uring probe";
        return;
    }
    pthread_join(t, NULL);
}

bool weft__uring_supported(const char **why)
{
    pthread_once(&probe_once, probe_once_fn);
    if (why != NULL)
        *why = caps.why;
    return caps.why == NULL;
}

const struct weft__uring_caps *weft__uring_caps(void)
{
    pthread_once(&probe_once, probe_once_fn);
    return &caps;
}
