/* weft-worker: blocking work off the loops, answers by async write.
 *
 *   weft-worker --addr tcp://127.0.0.1:9001 --loops 2 --workers 8
 *
 * A line protocol. "PING" is answered at once, on the loop. "SLEEP <ms> <text>" stands for
 * blocking work (a disk read, a database query): a worker sleeps <ms> and then answers
 * "<text>" through weft_async_write, while the loop goes on serving everyone else. A full
 * worker queue answers "BUSY" instead of blocking the loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weft/weft.h>

#include "example.h"

typedef struct job {
    weft_engine *engine;
    weft_conn_ref ref;
    unsigned ms;
    size_t len;
    char text[]; /* the answer, with its "\n" */
} job;

/* On a worker thread: may block. The connection may be gone by now; the async write then
 * says WEFT_ESTALE and nothing else happens. */
static void run_job(void *arg, int status)
{
    job *j = arg;
    if (status == 0) {
        struct timespec ts = {(time_t)(j->ms / 1000), (long)(j->ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        (void)weft_async_write(j->engine, j->ref, j->text, j->len);
    }
    free(j);
}

static void handle_line(weft_conn *c, const uint8_t *line, size_t len)
{
    if (len == 4 && memcmp(line, "PING", 4) == 0) {
        weft_conn_write_frame(c, "PONG", 4);
        return;
    }
    if (len > 6 && memcmp(line, "SLEEP ", 6) == 0) {
        char num[16];
        size_t i = 6, k = 0;
        while (i < len && line[i] >= '0' && line[i] <= '9' && k + 1 < sizeof(num))
            num[k++] = (char)line[i++];
        num[k] = '\0';
        if (k > 0 && i < len && line[i] == ' ') {
            i++;
            size_t tlen = len - i;
            job *j = malloc(sizeof(*j) + tlen + 1);
            if (j == NULL) {
                weft_conn_write_frame(c, "ERR no memory", 13);
                return;
            }
            j->engine = weft_conn_get_engine(c);
            j->ref = weft_conn_get_ref(c);
            j->ms = (unsigned)strtoul(num, NULL, 10);
            memcpy(j->text, line + i, tlen);
            j->text[tlen] = '\n';
            j->len = tlen + 1;
            int rc = weft_pool_submit(weft_engine_get_pool(j->engine), run_job, j);
            if (rc != 0) {
                free(j); /* a failed submit never runs the task */
                weft_conn_write_frame(c, "BUSY", 4);
            }
            return;
        }
    }
    weft_conn_write_frame(c, "ERR unknown request", 19);
}

static weft_action on_traffic(weft_conn *c)
{
    const uint8_t *line;
    size_t len;
    while (weft_conn_next_frame(c, &line, &len) == 1)
        handle_line(c, line, len);
    return WEFT_ACTION_NONE;
}

int main(int argc, char **argv)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.listen[0] = "tcp://127.0.0.1:9001";
    cfg.loops = 2;
    cfg.workers = 8;
    cfg.codec.kind = WEFT_CODEC_LINE;
    cfg.handler.on_traffic = on_traffic;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--addr") == 0 && v != NULL) {
            cfg.listen[0] = v;
            i++;
        } else if (strcmp(argv[i], "--loops") == 0 && v != NULL) {
            cfg.loops = (unsigned)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(argv[i], "--workers") == 0 && v != NULL) {
            cfg.workers = (unsigned)strtoul(v, NULL, 10);
            i++;
        } else {
            fprintf(stderr, "usage: weft-worker [--addr URL] [--loops N] [--workers N]\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (cfg.workers == 0)
        cfg.workers = 1;
    return example_serve(&cfg, "weft-worker", NULL, NULL);
}
