/* weft — connection groups: many connections, on any loops, written to as one (netty's
 * ChannelGroup).
 *
 * A group belongs to one engine and holds refs of that engine's connections. Every call is
 * safe from any thread, the loops' included. A member leaves by itself when its connection
 * closes: before on_close runs, so weft_group_count never counts a connection whose refs
 * are dead.
 *
 * weft_group_broadcast sends one buffer, shared and reference-counted, to every member: one
 * copy for the whole group, not one per member. Broadcasts to one group reach every member in
 * one order (they are serialised on the group), and each member gets them in order with the
 * async writes made to it (engine.h).
 *
 * A member that cannot keep up never gets a stream with a hole in it. A member whose queue has
 * reached the group's slow mark when a broadcast comes is not sent that message and leaves
 * the group at once, so no later broadcast reaches it either: what it got is a prefix of what
 * was broadcast. Its queue is what waits on its loop to be taken by its socket
 * (weft_conn_get_pending_out, as the loop last published it): the figure write_high_water is
 * held against, so more than the mark written to it within one loop iteration counts too.
 * Async writes still on their way to its loop are that loop's backlog, the same for every
 * member, and count only toward the hard cap (weft_async_get_pending_out counts both). The
 * group's policy says what happens to its connection (WEFT_GROUP_SKIP_SLOW: nothing, it stays
 * open; WEFT_GROUP_CLOSE_SLOW: it is aborted), and on_slow tells the application either way.
 * The same holds for a member whose write could not be queued for want of memory.
 */
#ifndef WEFT_GROUP_H
#define WEFT_GROUP_H

#include <stddef.h>

#include "weft/conn.h"
#include "weft/engine.h"
#include "weft/error.h"
#include "weft/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_group weft_group;

/* What happens to a slow member once it has left the group. */
typedef enum weft_group_policy {
    WEFT_GROUP_SKIP_SLOW = 0, /* nothing more: its connection stays open, out of the group
                                 (re-adding it is a deliberate rejoin, after a gap) */
    WEFT_GROUP_CLOSE_SLOW     /* its connection is aborted, as weft_async_abort: queued output
                                 is dropped and on_close(conn, WEFT_ECANCELED) follows */
} weft_group_policy;

/* A slow member (ref) left group. On the thread calling weft_group_broadcast, after the
 * group's lock was released and before the broadcast returns: it may call any weft_group_*
 * function but weft_group_free on this group. */
typedef void (*weft_group_slow_cb)(weft_group *group, weft_conn_ref ref, void *arg);

typedef struct weft_group_config {
    weft_group_policy policy;   /* default WEFT_GROUP_SKIP_SLOW */
    size_t slow_bytes;          /* a member with this many bytes in its queue is slow; 0 = the
                                   engine's write_high_water; default 0 */
    weft_group_slow_cb on_slow; /* optional; default NULL */
    void *arg;                  /* passed to on_slow; weft never frees it */
} weft_group_config;

/* Fills every field with its default. */
WEFT_API void weft_group_config_init(weft_group_config *cfg);

/* Makes an empty group of engine's connections and returns it in *out (owned by the caller
 * until weft_group_free). cfg is copied; NULL means the defaults. Returns 0, WEFT_EINVAL
 * (NULL engine or out, an unknown policy) or WEFT_ENOMEM. Any thread. */
WEFT_API int weft_group_create(weft_engine *engine, const weft_group_config *cfg, weft_group **out);

/* Frees group; its members stay open and just stop being members. No other call on group
 * may run or start. Any thread while the engine exists (on_shutdown is a good place: every
 * connection is closed by then, so the group is empty). A NULL group is ignored. */
WEFT_API void weft_group_free(weft_group *group);

/* Adds ref's connection. Returns 0, WEFT_EINVAL (NULL group), WEFT_ESTALE (closed, or not a
 * connection of the group's engine), WEFT_EEXIST (already a member) or WEFT_ENOMEM. A member
 * added while a broadcast runs gets the broadcasts that start after this returns. Any
 * thread. */
WEFT_API int weft_group_add(weft_group *group, weft_conn_ref ref);

/* Removes ref's connection. Returns 0, WEFT_EINVAL (NULL group) or WEFT_ENOENT (not a
 * member: never added, removed, left as slow, or closed). Broadcasts that start after this
 * returns do not reach it; one already queued for it still arrives. Any thread. */
WEFT_API int weft_group_remove(weft_group *group, weft_conn_ref ref);

/* The number of members now (0 for a NULL group). Any thread. */
WEFT_API size_t weft_group_count(weft_group *group);

/* weft_group_broadcast flag: frame the data with the engine's codec encoder, as
 * weft_conn_write_frame does. Every connection of an engine has the same codec, so the frame
 * is encoded once, on the calling thread, for all of them. */
#define WEFT_GROUP_FRAMED 1u

/* Copies data (borrowed until this returns) once, framed if asked, and queues the copy for
 * every member. Returns how many members it was queued for (a member then gets it unless its
 * connection closes first: one closing gracefully is a member, and counted, until it closed),
 * or WEFT_EINVAL (NULL group, data NULL with len > 0, an unknown flag), WEFT_ENOCODEC
 * (WEFT_GROUP_FRAMED without a codec), the encoder's error (e.g. WEFT_EMSGSIZE),
 * WEFT_EMSGSIZE (longer, framed, than write_hard_cap), WEFT_ESHUTDOWN (weft_engine_stop was
 * called) or WEFT_ENOMEM: then no member gets it. Slow members are not counted, leave the
 * group and go the policy's way (see the top of this file). The copy is freed once the last
 * member is done with it. Any thread. */
WEFT_API int weft_group_broadcast(weft_group *group, const void *data, size_t len, unsigned flags);

/* As weft_group_broadcast without the copy: on success ownership of data passes to weft,
 * which calls free_cb(data, free_ctx) exactly once, when the last member is done with the
 * bytes (on that member's loop thread, in weft_engine_wait for a write still queued at a
 * stop, or in this call when no member took it). On failure data stays the caller's and
 * free_cb never runs. WEFT_GROUP_FRAMED is refused (WEFT_EINVAL): framing would need a copy;
 * frame the payload with weft_codec_encode first, or use weft_group_broadcast. Also
 * WEFT_EINVAL for a NULL free_cb. Any thread. */
WEFT_API int weft_group_broadcast_zc(weft_group *group, void *data, size_t len, unsigned flags,
                                     weft_free_cb free_cb, void *free_ctx);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_GROUP_H */
