/* weft-chat: line-based publish/subscribe, one weft_group per topic.
 *
 *   SUB topic        OK, and from then on every message published to topic
 *   UNSUB topic      OK, or ERR not subscribed
 *   PUB topic text   "MSG topic text" to every subscriber, then OK <subscribers reached>
 *   SLOW ms          OK slow from the worker pool after ms (at most 10000), in order: the
 *                    client's later requests wait for it
 *   QUIT             BYE, and the connection closes
 *
 * A line over CHAT_MAX_LINE bytes is answered ERR line too long and skipped; an idle client
 * is told BYE idle. A subscriber that cannot keep up (write_high_water bytes queued for it)
 * is closed rather than sent a stream with a hole in it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"

/* ---- topics: name -> group, for every loop; a topic lives as long as the server ---- */

typedef struct topic {
    struct topic *next;
    weft_group *group;
    size_t len;
    char name[];
} topic;

#define NBUCKETS 256
static pthread_mutex_t topics_mu = PTHREAD_MUTEX_INITIALIZER;
static topic *topics[NBUCKETS];

/* The topic's group, made on first use if create; NULL if there is none. */
static weft_group *topic_group(weft_engine *e, const uint8_t *name, size_t len, bool create)
{
    unsigned h = 5381;
    for (size_t i = 0; i < len; i++)
        h = h * 33 + name[i];
    topic **b = &topics[h % NBUCKETS], *t;
    pthread_mutex_lock(&topics_mu);
    for (t = *b; t != NULL && (t->len != len || memcmp(t->name, name, len) != 0); t = t->next)
        ;
    if (t == NULL && create && (t = malloc(sizeof(*t) + len)) != NULL) {
        weft_group_config gc;
        weft_group_config_init(&gc);
        gc.policy = WEFT_GROUP_CLOSE_SLOW;
        if (weft_group_create(e, &gc, &t->group) == 0) {
            t->len = len;
            memcpy(t->name, name, len);
            t->next = *b;
            *b = t;
        } else {
            free(t);
            t = NULL;
        }
    }
    pthread_mutex_unlock(&topics_mu);
    return t != NULL ? t->group : NULL;
}

static void on_shutdown(weft_engine *e) /* every connection is closed: the groups are empty */
{
    (void)e;
    for (int b = 0; b < NBUCKETS; b++)
        for (topic *t; (t = topics[b]) != NULL; free(t)) {
            topics[b] = t->next;
            weft_group_free(t->group);
        }
}

/* ---- SLOW: blocking work in the pool, answered in order ---- */

typedef struct slow_job {
    weft_engine *engine;
    weft_conn_ref ref;
    unsigned ms;
} slow_job;

static void reply(weft_conn *c, const char *s)
{
    weft_conn_write_frame(c, s, strlen(s));
}

/* Back on the client's loop (c is NULL if it closed meanwhile): answer, then serve the
 * requests that waited. */
static void slow_done(weft_conn *c, void *job)
{
    if (c != NULL) {
        reply(c, "OK slow");
        weft_conn_set_context(c, NULL);
        weft_conn_set_timeouts(c, WEFT_TIMEOUT_DEFAULT, WEFT_TIMEOUT_DEFAULT);
        weft_conn_resume_read(c);
    }
    free(job);
}

static void slow_work(void *arg, int status) /* on a worker thread: blocking is fine */
{
    slow_job *j = arg;
    struct timespec ts = {(time_t)(j->ms / 1000), (long)(j->ms % 1000) * 1000000L};
    if (status == 0)
        nanosleep(&ts, NULL);
    if (status != 0 || weft_async_call(j->engine, j->ref, slow_done, j) != 0)
        free(j); /* cancelled at a stop, or the client is gone: nobody to answer */
}

static void slow_start(weft_conn *c, const uint8_t *arg, size_t len)
{
    unsigned ms = 0;
    for (size_t i = 0; i < len && ms <= 10000; i++)
        ms = arg[i] >= '0' && arg[i] <= '9' ? ms * 10 + (arg[i] - '0') : 10001;
    slow_job *j = len > 0 && ms <= 10000 ? malloc(sizeof(*j)) : NULL;
    if (j != NULL) {
        *j = (slow_job){weft_conn_get_engine(c), weft_conn_get_ref(c), ms};
        if (weft_pool_submit(weft_engine_get_pool(j->engine), slow_work, j) == 0) {
            /* Until slow_done, no more requests are read, so no reply overtakes this one;
             * and the client is not idle: it waits on us. */
            weft_conn_set_context(c, j);
            weft_conn_pause_read(c);
            weft_conn_set_timeouts(c, 0, WEFT_TIMEOUT_DEFAULT);
            return;
        }
        free(j);
    }
    reply(c, "ERR busy or bad SLOW");
}

/* ---- requests ---- */

static weft_action request(weft_conn *c, const uint8_t *line, size_t n)
{
    weft_engine *e = weft_conn_get_engine(c);
    const uint8_t *sp = memchr(line, ' ', n);
    size_t cmd = sp != NULL ? (size_t)(sp - line) : n;
    const uint8_t *arg = sp != NULL ? sp + 1 : line + n;
    size_t alen = n - (size_t)(arg - line);
#define IS(word) (cmd == sizeof(word) - 1 && memcmp(line, word, cmd) == 0)
    if (IS("SUB") && alen > 0) {
        int rc = weft_group_add(topic_group(e, arg, alen, true), weft_conn_get_ref(c));
        reply(c, rc == 0 ? "OK" : rc == WEFT_EEXIST ? "ERR already subscribed" : "ERR no memory");
    } else if (IS("UNSUB") && alen > 0) {
        weft_group *g = topic_group(e, arg, alen, false);
        bool ok = g != NULL && weft_group_remove(g, weft_conn_get_ref(c)) == 0;
        reply(c, ok ? "OK" : "ERR not subscribed");
    } else if (IS("PUB") && (sp = memchr(arg, ' ', alen)) != NULL) {
        /* What subscribers get is the request with its first word changed. */
        char msg[CHAT_MAX_LINE], ok[48];
        memcpy(msg, "MSG", 3);
        memcpy(msg + 3, line + 3, n - 3);
        weft_group *g = topic_group(e, arg, (size_t)(sp - arg), false);
        int k = g != NULL ? weft_group_broadcast(g, msg, n, WEFT_GROUP_FRAMED) : 0;
        if (k >= 0)
            snprintf(ok, sizeof(ok), "OK %d", k);
        else
            snprintf(ok, sizeof(ok), "ERR %s", weft_strerror(k));
        reply(c, ok);
    } else if (IS("SLOW")) {
        slow_start(c, arg, alen);
    } else if (IS("QUIT") && alen == 0) {
        reply(c, "BYE");
        return WEFT_ACTION_CLOSE;
    } else {
        reply(c, "ERR unknown command");
    }
    return WEFT_ACTION_NONE;
}

static weft_action on_traffic(weft_conn *c)
{
    const uint8_t *line;
    size_t n;
    weft_action a = WEFT_ACTION_NONE;
    /* A SLOW under way (the context) holds the rest back, buffered, until it is answered. */
    while (a == WEFT_ACTION_NONE && weft_conn_get_context(c) == NULL &&
           weft_conn_next_frame(c, &line, &n) == WEFT_FRAME)
        a = request(c, line, n);
    return a;
}

static weft_action on_decode_error(weft_conn *c, int err, const char *reason)
{
    (void)reason;
    if (err != WEFT_ETOOLONG)
        return WEFT_ACTION_CLOSE;
    reply(c, "ERR line too long");
    return WEFT_ACTION_NONE; /* the line codec skips it and goes on */
}

static weft_action on_idle(weft_conn *c)
{
    reply(c, "BYE idle");
    return WEFT_ACTION_CLOSE;
}

void chat_config(weft_config *cfg)
{
    weft_config_init(cfg);
    cfg->loops = 4;
    cfg->workers = 2;
    cfg->idle_timeout_ms = 60000;
    cfg->stop_on_signals = true;
    cfg->codec.kind = WEFT_CODEC_LINE;
    cfg->codec.line.max_length = CHAT_MAX_LINE;
    cfg->handler.on_traffic = on_traffic;
    cfg->handler.on_decode_error = on_decode_error;
    cfg->handler.on_idle = on_idle;
    cfg->handler.on_shutdown = on_shutdown;
}
