/* weft-redis — the command executor: Redis commands against the shared keyspace.
 *
 * Independent of the engine: redis_exec() takes an argument vector and appends the reply
 * to a reply_buf, so every command is testable without a socket. Thread-safe: nloops
 * threads may call redis_exec on one server, each with its own client and reply_buf. With
 * nloops == 1 the keyspace takes no locks, so exactly one thread at a time may use it.
 */
#ifndef WEFT_REDIS_COMMANDS_H
#define WEFT_REDIS_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyspace.h"
#include "obuf.h"
#include "reply.h"

/* What INFO reports for one loop; filled by the embedding program from the engine. */
typedef struct redis_loop_info {
    uint64_t clients; /* connected now */
    uint64_t accepted;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t out_buffer_peak; /* the largest output buffer of a client, recently (obuf.h) */
} redis_loop_info;

/* Fills per_loop[0..nloops). Called from any loop thread. */
typedef void (*redis_stats_cb)(void *arg, unsigned nloops, redis_loop_info *per_loop);

typedef struct redis_config {
    unsigned nloops;   /* threads that will call redis_exec; at least 1 (1: no locks) */
    int port;          /* reported by INFO and CONFIG GET */
    uint64_t max_bulk; /* proto-max-bulk-len; also bounds SETRANGE/APPEND */
    obuf_limit obuf;   /* client-output-buffer-limit normal, as CONFIG GET reports it; the
                          embedding program enforces it */
    redis_stats_cb stats_cb;
    void *stats_arg;
    int64_t (*clock_ms)(void); /* unix time in ms; NULL = the real clock (tests fake it) */
} redis_config;

void redis_config_init(redis_config *cfg);

typedef struct redis_server redis_server;

/* One connection's state. */
typedef struct redis_client {
    uint64_t id;
    unsigned loop;
    char *name; /* CLIENT SETNAME; owned by the client */
    char *lib_name;
    char *lib_ver;
    bool batch;        /* between redis_batch_begin and redis_batch_end */
    int64_t batch_now; /* the batch's clock reading, 0 until a command needs one */
} redis_client;

/* Returns a server with an empty keyspace, or NULL when out of memory. cfg is copied. */
redis_server *redis_server_create(const redis_config *cfg);
void redis_server_destroy(redis_server *srv);
keyspace *redis_server_keyspace(redis_server *srv);
int64_t redis_server_now(const redis_server *srv);

void redis_client_init(redis_server *srv, redis_client *c, unsigned loop);
void redis_client_free(redis_client *c);

/* Commands run for c between these calls share one clock reading, taken when the first of
 * them needs it, as the commands of one Redis event-loop iteration share its cached time;
 * a pipelined batch then reads the clock once instead of once per command. Outside a batch
 * each command reads the clock. */
void redis_batch_begin(redis_client *c);
void redis_batch_end(redis_client *c);

#define REDIS_EXEC_OK    0
#define REDIS_EXEC_CLOSE 1 /* QUIT: send the reply, then close */

/* Runs one command (argv[i] of lens[i] bytes, borrowed for the call) for client c on its
 * loop and appends the reply to out. argc == 0 does nothing. Returns REDIS_EXEC_OK or
 * REDIS_EXEC_CLOSE. */
int redis_exec(redis_server *srv, redis_client *c, int argc, const uint8_t *const *argv,
               const size_t *lens, reply_buf *out);

/* The active expiry step for one tick of loop: bounded work. Returns keys removed. */
size_t redis_tick(redis_server *srv, unsigned loop);

/* Commands in the dispatch table (COMMAND COUNT). */
size_t redis_command_count(void);

#endif /* WEFT_REDIS_COMMANDS_H */
