/* The server and client side shared by the worker-pool tests (test_net_workers*.c): an
 * engine with a worker pool whose clients introduce themselves with a 4-byte id, a thread
 * that drains many client sockets at once, a record per write call for zero-copy
 * bookkeeping, and self-checking messages.
 *
 * After its id, each byte a client sends is a command: 'P' ping (answered "p" on the loop),
 * 'Q' close from the server side, 'S' a blocking job on the pool (answered "s" by a worker
 * after sleeping wk_job_sleep_ms). The state below is per process: one server at a time. */
#ifndef WEFT_TEST_WORKERS_SUPPORT_H
#define WEFT_TEST_WORKERS_SUPPORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

#define WK_WORKERS   8
#define WK_LOOPS     2
#define WK_MAX_CONNS 128

/* ---- the server ---- */

extern _Atomic long wk_registered;    /* clients whose id the server has read */
extern _Atomic long wk_closed_count;  /* connections whose on_close has run */
extern _Atomic int wk_last_close_err; /* the err of the latest on_close */
extern _Atomic int wk_job_sleep_ms;   /* how long an 'S' job blocks its worker */
extern _Atomic long wk_jobs_refused;  /* 'S' jobs the pool would not take */

/* Resets the state above and fills cfg: WK_LOOPS loops, WK_WORKERS workers, the commands. */
void wk_base_config(weft_config *cfg);

/* Starts cfg's engine, asserting it starts with a pool. */
void wk_start_server(wt_server *s, weft_config *cfg);

/* Connects n clients with ids 0..n-1 into fds and waits until the server knows every ref. */
void wk_connect_clients(const wt_server *s, int *fds, unsigned n);

/* The server-side ref of client id. */
weft_conn_ref wk_ref_of(unsigned id);

/* ---- a client thread that reads many sockets at once ---- */

enum { WK_PEER_KEEP = 0, WK_PEER_CLOSE, WK_PEER_RESET, WK_PEER_ASK_CLOSE };

typedef struct wk_drainer {
    unsigned n;
    int *fds;
    bool keep;       /* keep what arrives in data[i] */
    size_t *want;    /* stop reading fds[i] after want[i] bytes (NULL: read to EOF) */
    int *peer_plan;  /* what to do to fds[i] once act is set (NULL: nothing) */
    _Atomic int act; /* set by the test: carry out peer_plan */
    uint8_t **data;
    size_t *len;
    bool *done;
    bool *closed_here; /* the drainer closed fds[i] itself */
    bool timed_out;
    pthread_t th;
} wk_drainer;

/* Starts a thread reading fds[0..n) until EOF, want[i] bytes or WT_TIMEOUT_MS. fds, want and
 * peer_plan are borrowed until wk_drainer_finish returns. */
wk_drainer *wk_drainer_start(int *fds, unsigned n, bool keep, size_t *want, int *peer_plan);

/* Joins the drainer and closes every socket it did not close itself. */
void wk_drainer_finish(wk_drainer *d);

/* Frees the drainer and what it kept. */
void wk_drainer_free(wk_drainer *d);

/* ---- zero-copy bookkeeping: one record per call ---- */

typedef struct wk_call_rec {
    _Atomic int frees;
    int rc;
    bool zc;
    bool after_close; /* made after every connection was known to be closed */
} wk_call_rec;

/* A weft_free_cb for zero-copy writes: ctx is the call's wk_call_rec, data is free()d. */
void wk_rec_free(void *data, void *ctx);

/* weft_async_write_zc of a malloc'd copy of m[0..n) to ref, marking r as a zero-copy call
 * whose buffer wk_rec_free hands back. Returns the call's result; when it is not 0 the copy
 * is still ours, so it is freed here and free_cb never runs for it. */
int wk_write_zc_copy(weft_engine *e, weft_conn_ref ref, const uint8_t *m, size_t n, wk_call_rec *r);

/* ---- messages: a 16-byte header and a pattern, so a torn message shows ---- */

#define WK_MSG_MAGIC 0x57460000u
#define WK_MSG_HDR   16u

/* The length of worker w's seq-th message to conn, and its byte at offset j. */
size_t wk_msg_len(unsigned w, unsigned conn, unsigned seq);
uint8_t wk_msg_byte(unsigned w, unsigned conn, unsigned seq, size_t j);

/* Writes that message into p (WK_MSG_HDR + 48 bytes of room) and returns its length. */
size_t wk_msg_build(uint8_t *p, unsigned w, unsigned conn, unsigned seq);

/* Worker w's i-th write goes to this connection: every worker reaches every connection, and
 * every connection hears from every worker, interleaved. */
unsigned wk_target_conn(unsigned w, unsigned i, unsigned nconns);

#endif /* WEFT_TEST_WORKERS_SUPPORT_H */
