/* weft — connection groups (weft/group.h): joining and leaving from any thread, leaving by
 * itself on close, and a broadcast of one shared buffer.
 *
 * A membership is one node kept in two places: its group's array (under the group's lock),
 * which a broadcast walks, and its connection's list (under members_mu), so that a closing
 * connection finds its groups without asking every group. The lists live in a table per
 * loop, one head per slot, made in chunks by the first add to a connection of that loop:
 * not in weft_conn, so that a program without groups pays nothing per connection for them.
 * A slot's head is NULL whenever its connection is in no group, so the slot's next
 * connection finds it empty. As a connection of a loop that has a table finishes, the loop
 * layer calls the group_leave hook this file set on the engine: that is the only way from
 * the loop into this file.
 *
 * Locks, always in this order: members_mu, a group's mu, then (inside weft_async_*) a
 * loop's queue. members_mu is one for the process: the lists it guards link memberships of
 * many groups. It is taken to join, to leave, when a member closes and when a group is
 * freed, never on a broadcast's path but to finish dropping a slow member. A broadcast holds
 * its group's lock while it queues the message for every member, which is what puts the
 * broadcasts to one group in one order for all of them.
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "weft/group.h"
#include "internal.h"

#define NOT_IN UINT32_MAX /* a node's index once it is out of its group's array */

typedef struct weft__member {
    weft_group *group;
    weft_conn *conn; /* the slot, which outlives the connection as every slot does */
    weft_conn_ref ref;
    _Atomic(struct weft__member *) *list; /* the head of the connection's list */
    struct weft__member *next;            /* the connection's list (members_mu) */
    struct weft__member *drop_next;       /* a broadcast's list of slow members (its own) */
    uint32_t index;                       /* place in group->members, or NOT_IN (group->mu) */
    bool unlinked; /* dropped as slow, then taken off the connection's list by its close:
                      the broadcast that dropped it frees it (members_mu) */
} weft__member;

struct weft_group {
    weft_engine *engine;
    weft_group_config cfg; /* slow_bytes filled in */
    pthread_mutex_t mu;
    weft__member **members;
    uint32_t n, cap;
};

/* The buffer a broadcast shares: one reference per member it was queued for, and one for
 * the broadcast itself while it runs. */
typedef struct shared_buf {
    _Atomic uint32_t refs;
    weft_free_cb free_cb; /* broadcast_zc: the caller's, for its data; NULL: bytes below */
    void *free_ctx;
    uint8_t bytes[];
} shared_buf;

/* A loop's lists, by slot as its slot table is: chunks are made under members_mu and,
 * like the slots', never move or go away while the engine lives. */
typedef _Atomic(weft__member *) list_head;
struct weft__group_slots {
    _Atomic(list_head *) chunks[WEFT__CHUNK_MAX];
};

static pthread_mutex_t members_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- the two places a node is kept ---- */

/* The head of the list of slot's connection on loop; NULL if it was never made (make:
 * make it, under members_mu; NULL then means out of memory). */
static list_head *list_of(weft__loop *loop, uint32_t slot, bool make)
{
    struct weft__group_slots *t = atomic_load_explicit(&loop->groups, memory_order_acquire);
    if (t == NULL) {
        if (!make || (t = malloc(sizeof(*t))) == NULL)
            return NULL;
        for (uint32_t i = 0; i < WEFT__CHUNK_MAX; i++)
            atomic_init(&t->chunks[i], NULL);
        atomic_store_explicit(&loop->groups, t, memory_order_release);
    }
    uint32_t i = slot >> WEFT__CHUNK_SHIFT; /* a slot that exists: below the table's end */
    list_head *chunk = atomic_load_explicit(&t->chunks[i], memory_order_acquire);
    if (chunk == NULL) {
        if (!make || (chunk = malloc(WEFT__CHUNK_SIZE * sizeof(*chunk))) == NULL)
            return NULL;
        for (uint32_t j = 0; j < WEFT__CHUNK_SIZE; j++)
            atomic_init(&chunk[j], NULL);
        atomic_store_explicit(&t->chunks[i], chunk, memory_order_release);
    }
    return &chunk[slot & (WEFT__CHUNK_SIZE - 1u)];
}

void weft__group_slots_free(weft__loop *loop)
{
    struct weft__group_slots *t = atomic_load_explicit(&loop->groups, memory_order_relaxed);
    if (t == NULL)
        return;
    for (uint32_t i = 0; i < WEFT__CHUNK_MAX; i++)
        free(atomic_load_explicit(&t->chunks[i], memory_order_relaxed));
    free(t);
    atomic_store_explicit(&loop->groups, NULL, memory_order_relaxed);
}

static void list_unlink(weft__member *m)
{
    weft__member *p = atomic_load_explicit(m->list, memory_order_relaxed);
    if (p == m) {
        atomic_store_explicit(m->list, m->next, memory_order_relaxed);
        return;
    }
    while (p != NULL && p->next != m)
        p = p->next;
    if (p != NULL)
        p->next = m->next;
}

static int array_add(weft_group *g, weft__member *m)
{
    if (g->n == g->cap) {
        if (g->cap >= INT_MAX / 2) /* a broadcast counts its members in an int */
            return WEFT_ENOMEM;
        uint32_t cap = g->cap ? g->cap * 2 : 8;
        weft__member **p = realloc(g->members, cap * sizeof(*p));
        if (p == NULL)
            return WEFT_ENOMEM;
        g->members = p;
        g->cap = cap;
    }
    m->index = g->n;
    g->members[g->n++] = m;
    return 0;
}

static void array_remove(weft_group *g, weft__member *m)
{
    weft__member *last = g->members[--g->n];
    g->members[m->index] = last;
    last->index = m->index;
    m->index = NOT_IN;
    /* A group that shrank gives its memory back (a failed shrink keeps the old array). */
    if (g->cap > 8 && g->n <= g->cap / 4) {
        weft__member **p = realloc(g->members, (g->cap / 2) * sizeof(*p));
        if (p != NULL) {
            g->members = p;
            g->cap /= 2;
        }
    }
}

/* The engine's group_leave: c, a connection of a loop with a table, finishes, its refs
 * already dead. Most are in no group: a look at the head, after weft__conn_finish's fence,
 * tells without the lock. */
static void conn_leave(weft_conn *c)
{
    list_head *head = list_of(c->loop, c->slot, false);
    if (head == NULL || atomic_load_explicit(head, memory_order_acquire) == NULL)
        return;
    pthread_mutex_lock(&members_mu);
    weft__member *m = atomic_load_explicit(head, memory_order_relaxed);
    atomic_store_explicit(head, NULL, memory_order_relaxed);
    while (m != NULL) {
        weft__member *next = m->next;
        weft_group *g = m->group;
        pthread_mutex_lock(&g->mu);
        bool dropped = m->index == NOT_IN;
        if (!dropped)
            array_remove(g, m);
        pthread_mutex_unlock(&g->mu);
        if (dropped)
            m->unlinked = true;
        else
            free(m);
        m = next;
    }
    pthread_mutex_unlock(&members_mu);
}

/* The slot ref names, or NULL when ref cannot name a connection of e. */
static weft_conn *ref_slot(weft_engine *e, weft_conn_ref ref)
{
    if (ref.loop >= e->nloops || (ref.gen & 1u) == 0)
        return NULL;
    return weft__slot_get(&e->loops[ref.loop], ref.slot);
}

/* ---- the public API ---- */

void weft_group_config_init(weft_group_config *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->policy = WEFT_GROUP_SKIP_SLOW;
}

int weft_group_create(weft_engine *e, const weft_group_config *cfg, weft_group **out)
{
    if (out != NULL)
        *out = NULL;
    weft_group_config defaults;
    weft_group_config_init(&defaults);
    if (cfg == NULL)
        cfg = &defaults;
    if (e == NULL || out == NULL ||
        (cfg->policy != WEFT_GROUP_SKIP_SLOW && cfg->policy != WEFT_GROUP_CLOSE_SLOW))
        return WEFT_EINVAL;
    weft_group *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return WEFT_ENOMEM;
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        free(g);
        return WEFT_ENOMEM;
    }
    g->engine = e;
    g->cfg = *cfg;
    if (g->cfg.slow_bytes == 0)
        g->cfg.slow_bytes = e->cfg.write_high_water;
    pthread_mutex_lock(&members_mu);
    if (e->group_leave == NULL) /* written once, before any membership can exist */
        e->group_leave = conn_leave;
    pthread_mutex_unlock(&members_mu);
    *out = g;
    return 0;
}

void weft_group_free(weft_group *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&members_mu);
    pthread_mutex_lock(&g->mu);
    for (uint32_t i = 0; i < g->n; i++) {
        list_unlink(g->members[i]);
        free(g->members[i]);
    }
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_unlock(&members_mu);
    pthread_mutex_destroy(&g->mu);
    free(g->members);
    free(g);
}

int weft_group_add(weft_group *g, weft_conn_ref ref)
{
    if (g == NULL)
        return WEFT_EINVAL;
    weft_conn *c = ref_slot(g->engine, ref);
    if (c == NULL)
        return WEFT_ESTALE;
    weft__member *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return WEFT_ENOMEM;
    m->group = g;
    m->conn = c;
    m->ref = ref;
    int rc = 0;
    pthread_mutex_lock(&members_mu);
    /* The ref's loop and slot, not c's fields: those are the loop thread's to write. */
    m->list = list_of(&g->engine->loops[ref.loop], ref.slot, true);
    if (m->list == NULL) {
        pthread_mutex_unlock(&members_mu);
        free(m);
        return WEFT_ENOMEM;
    }
    /* Linked first (the table too, if this made it), the ref checked after;
     * weft__conn_finish does the opposite (the generation first, then the table and the
     * list), each with a full fence between. So either this sees the ref dead, or the
     * closing connection sees this node and takes it out. */
    m->next = atomic_load_explicit(m->list, memory_order_relaxed);
    atomic_store_explicit(m->list, m, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&c->gen, memory_order_relaxed) != ref.gen)
        rc = WEFT_ESTALE;
    if (rc == 0) {
        pthread_mutex_lock(&g->mu);
        /* A node a broadcast just dropped as slow does not count: adding again rejoins. */
        for (weft__member *p = m->next; p != NULL && rc == 0; p = p->next)
            if (p->group == g && weft_conn_ref_equal(p->ref, ref) && p->index != NOT_IN)
                rc = WEFT_EEXIST;
        if (rc == 0)
            rc = array_add(g, m);
        pthread_mutex_unlock(&g->mu);
    }
    if (rc != 0)
        list_unlink(m);
    pthread_mutex_unlock(&members_mu);
    if (rc != 0)
        free(m);
    return rc;
}

int weft_group_remove(weft_group *g, weft_conn_ref ref)
{
    if (g == NULL)
        return WEFT_EINVAL;
    weft_conn *c = ref_slot(g->engine, ref);
    if (c == NULL)
        return WEFT_ENOENT;
    weft__member *m = NULL;
    pthread_mutex_lock(&members_mu);
    pthread_mutex_lock(&g->mu);
    list_head *head = list_of(&g->engine->loops[ref.loop], ref.slot, false);
    /* Skipping any node a broadcast dropped as slow: it is out already, and that broadcast
     * frees it. */
    for (m = head ? atomic_load_explicit(head, memory_order_relaxed) : NULL; m != NULL; m = m->next)
        if (m->group == g && weft_conn_ref_equal(m->ref, ref) && m->index != NOT_IN)
            break;
    if (m != NULL)
        array_remove(g, m);
    pthread_mutex_unlock(&g->mu);
    if (m != NULL)
        list_unlink(m);
    pthread_mutex_unlock(&members_mu);
    if (m == NULL)
        return WEFT_ENOENT;
    free(m);
    return 0;
}

size_t weft_group_count(weft_group *g)
{
    if (g == NULL)
        return 0;
    pthread_mutex_lock(&g->mu);
    size_t n = g->n;
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* ---- broadcast ---- */

static void shared_release(void *data, void *ctx)
{
    shared_buf *s = ctx;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (s->free_cb != NULL)
        s->free_cb(data, s->free_ctx);
    free(s);
}

/* The bytes waiting on m's loop to be taken by its socket, as the loop last published them:
 * the figure it holds against write_high_water. Writes still in the loop's inbox are left
 * out: they are the loop's backlog (a burst of broadcasts puts them there for every member
 * alike), not this member's slowness, and they count toward the hard cap anyway. Returns
 * false when the connection is gone. */
static bool member_queued(const weft__member *m, uint64_t *bytes)
{
    weft_conn *c = m->conn;
    *bytes = atomic_load_explicit(&c->out.published, memory_order_relaxed);
    return atomic_load_explicit(&c->gen, memory_order_acquire) == m->ref.gen;
}

/* The slow members a broadcast dropped: off their connections' lists, then told. */
static void finish_drops(weft_group *g, weft__member *dropped)
{
    pthread_mutex_lock(&members_mu);
    for (weft__member *m = dropped; m != NULL; m = m->drop_next)
        if (!m->unlinked)
            list_unlink(m);
    pthread_mutex_unlock(&members_mu);
    while (dropped != NULL) {
        weft__member *m = dropped;
        dropped = m->drop_next;
        if (g->cfg.policy == WEFT_GROUP_CLOSE_SLOW)
            (void)weft_async_abort(g->engine, m->ref);
        if (g->cfg.on_slow != NULL)
            g->cfg.on_slow(g, m->ref, g->cfg.arg);
        free(m);
    }
}

static int broadcast(weft_group *g, shared_buf *s, void *data, size_t len)
{
    weft_engine *e = g->engine;
    weft__member *dropped = NULL;
    int reached = 0;
    pthread_mutex_lock(&g->mu);
    for (uint32_t i = 0; i < g->n;) {
        weft__member *m = g->members[i];
        uint64_t queued;
        int rc = WEFT_ESTALE;
        if (member_queued(m, &queued))
            rc = queued >= g->cfg.slow_bytes ? WEFT_EAGAIN : 0;
        if (rc == 0) {
            /* The reference is the write's: taken before, since the loop may be done with
             * the bytes before this returns; a write that fails never calls its free_cb. */
            atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
            rc = weft_async_write_zc(e, m->ref, data, len, shared_release, s);
            if (rc == 0)
                reached++;
            else
                atomic_fetch_sub_explicit(&s->refs, 1, memory_order_relaxed);
        }
        if (rc == 0 || rc == WEFT_ESTALE || rc == WEFT_EOUTCAP || rc == WEFT_ESHUTDOWN) {
            /* Reached; or closed, closed by the hard cap, or the engine stops: a stream
             * that ends, with no hole in it, and the connection leaves by itself. */
            i++;
            continue;
        }
        /* Slow, or its write could not be queued: out of the group now, so that no later
         * broadcast reaches it. array_remove moves the last member into place i. */
        array_remove(g, m);
        m->drop_next = dropped;
        dropped = m;
    }
    pthread_mutex_unlock(&g->mu);
    if (dropped != NULL)
        finish_drops(g, dropped);
    return reached;
}

int weft_group_broadcast(weft_group *g, const void *data, size_t len, unsigned flags)
{
    if (g == NULL || (data == NULL && len > 0) || (flags & ~WEFT_GROUP_FRAMED) != 0)
        return WEFT_EINVAL;
    weft_engine *e = g->engine;
    weft_encoding enc;
    memset(&enc, 0, sizeof(enc));
    if (flags & WEFT_GROUP_FRAMED) {
        if (!e->has_codec)
            return WEFT_ENOCODEC;
        int rc = weft_codec_encode(&e->codec, data, len, &enc);
        if (rc != 0)
            return rc;
    }
    size_t frame = enc.head_len + enc.tail_len;
    if (len > e->cfg.write_hard_cap || frame > e->cfg.write_hard_cap - len)
        return WEFT_EMSGSIZE; /* queued, it would close every member at the hard cap */
    frame += len;
    if (atomic_load_explicit(&e->stop_requested, memory_order_relaxed))
        return WEFT_ESHUTDOWN;
    shared_buf *s = malloc(sizeof(*s) + (frame ? frame : 1));
    if (s == NULL)
        return WEFT_ENOMEM;
    atomic_init(&s->refs, 1);
    s->free_cb = NULL;
    s->free_ctx = NULL;
    memcpy(s->bytes, enc.head, enc.head_len);
    if (len > 0)
        memcpy(s->bytes + enc.head_len, data, len);
    if (enc.tail_len > 0)
        memcpy(s->bytes + enc.head_len + len, enc.tail, enc.tail_len);
    int n = broadcast(g, s, s->bytes, frame);
    shared_release(s->bytes, s);
    return n;
}

int weft_group_broadcast_zc(weft_group *g, void *data, size_t len, unsigned flags,
                            weft_free_cb free_cb, void *free_ctx)
{
    if (g == NULL || (data == NULL && len > 0) || flags != 0 || free_cb == NULL)
        return WEFT_EINVAL;
    weft_engine *e = g->engine;
    if (len > e->cfg.write_hard_cap)
        return WEFT_EMSGSIZE;
    if (atomic_load_explicit(&e->stop_requested, memory_order_relaxed))
        return WEFT_ESHUTDOWN;
    shared_buf *s = malloc(sizeof(*s));
    if (s == NULL)
        return WEFT_ENOMEM;
    atomic_init(&s->refs, 1);
    s->free_cb = free_cb;
    s->free_ctx = free_ctx;
    int n = broadcast(g, s, data, len);
    shared_release(data, s);
    return n;
}
