/* weft — names kept for one release after a rename; each says what replaces it.
 *
 * Property getters are named weft_<noun>_get_<property> everywhere since 0.2 (as the
 * setters were already weft_<noun>_set_<property>). The old names still compile, with a
 * deprecation warning, and will be removed in 0.3.
 */
#ifndef WEFT_DEPRECATED_H
#define WEFT_DEPRECATED_H

#include "weft/balancer.h"
#include "weft/conn.h"
#include "weft/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT__DEPRECATED(use) __attribute__((deprecated("use " use)))

WEFT__DEPRECATED("weft_conn_get_context")
static inline void *weft_conn_context(const weft_conn *c)
{
    return weft_conn_get_context(c);
}
WEFT__DEPRECATED("weft_conn_get_engine")
static inline weft_engine *weft_conn_engine(const weft_conn *c)
{
    return weft_conn_get_engine(c);
}
WEFT__DEPRECATED("weft_conn_get_loop")
static inline unsigned weft_conn_loop(const weft_conn *c)
{
    return weft_conn_get_loop(c);
}
WEFT__DEPRECATED("weft_conn_get_fd")
static inline int weft_conn_fd(const weft_conn *c)
{
    return weft_conn_get_fd(c);
}
WEFT__DEPRECATED("weft_conn_get_buffered")
static inline size_t weft_conn_buffered(const weft_conn *c)
{
    return weft_conn_get_buffered(c);
}
WEFT__DEPRECATED("weft_conn_get_pending_out")
static inline size_t weft_conn_pending_out(const weft_conn *c)
{
    return weft_conn_get_pending_out(c);
}
WEFT__DEPRECATED("weft_conn_get_local_addr")
static inline int weft_conn_local_addr(const weft_conn *c, struct sockaddr_storage *a, socklen_t *l)
{
    return weft_conn_get_local_addr(c, a, l);
}
WEFT__DEPRECATED("weft_conn_get_peer_addr")
static inline int weft_conn_peer_addr(const weft_conn *c, struct sockaddr_storage *a, socklen_t *l)
{
    return weft_conn_get_peer_addr(c, a, l);
}
WEFT__DEPRECATED("weft_conn_get_decode_error")
static inline const char *weft_conn_decode_error(const weft_conn *c)
{
    return weft_conn_get_decode_error(c);
}
WEFT__DEPRECATED("weft_engine_get_user_data")
static inline void *weft_engine_user_data(const weft_engine *e)
{
    return weft_engine_get_user_data(e);
}
WEFT__DEPRECATED("weft_engine_get_loop_count")
static inline unsigned weft_engine_loop_count(const weft_engine *e)
{
    return weft_engine_get_loop_count(e);
}
WEFT__DEPRECATED("weft_engine_get_pool")
static inline struct weft_pool *weft_engine_pool(weft_engine *e)
{
    return weft_engine_get_pool(e);
}
WEFT__DEPRECATED("weft_engine_get_listen_addr")
static inline int weft_engine_listen_addr(weft_engine *e, size_t i, char *buf, size_t len)
{
    return weft_engine_get_listen_addr(e, i, buf, len);
}
WEFT__DEPRECATED("weft_engine_get_listen_port")
static inline int weft_engine_listen_port(weft_engine *e, size_t i)
{
    return weft_engine_get_listen_port(e, i);
}
WEFT__DEPRECATED("weft_balancer_get_name")
static inline const char *weft_balancer_name(const weft_balancer *b)
{
    return weft_balancer_get_name(b);
}

#ifdef __cplusplus
}
#endif

#endif /* WEFT_DEPRECATED_H */
