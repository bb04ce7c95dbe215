/* weft-redis — connection and server commands: enough of them for redis-cli and
 * redis-benchmark to start cleanly and for INFO to tell the truth. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft/version.h> /* WEFT_PRINTF */

#include "cmd.h"
#include "glob.h"
#include "number.h"
#include "system.h"

#define REDIS_COMPAT_VERSION "7.0.0"

void cmd_ping(cmd_ctx *c)
{
    if (c->argc > 2)
        reply_arity(c, "ping");
    else if (c->argc == 2)
        reply_bulk(c->out, c->argv[1], c->lens[1]);
    else
        reply_raw(c->out, "+PONG\r\n", 7);
}

void cmd_echo(cmd_ctx *c)
{
    reply_bulk(c->out, c->argv[1], c->lens[1]);
}

void cmd_quit(cmd_ctx *c)
{
    reply_ok(c->out);
    c->result = REDIS_EXEC_CLOSE;
}

void cmd_select(cmd_ctx *c)
{
    int64_t db;
    if (!arg_ll(c, 1, &db))
        return;
    if (db != 0)
        reply_error(c->out, "ERR DB index is out of range");
    else
        reply_ok(c->out);
}

static char *dup_arg(const cmd_ctx *c, int i)
{
    char *s = malloc(c->lens[i] + 1);
    if (s != NULL) {
        memcpy(s, c->argv[i], c->lens[i]);
        s[c->lens[i]] = '\0';
    }
    return s;
}

/* CLIENT SETNAME's rule: printable ASCII without blanks. */
static bool set_client_name(cmd_ctx *c, int i)
{
    char *name;
    for (size_t j = 0; j < c->lens[i]; j++) {
        if (c->argv[i][j] < '!' || c->argv[i][j] > '~') {
            reply_error(c->out,
                        "ERR Client names cannot contain spaces, newlines or special characters.");
            return false;
        }
    }
    name = c->lens[i] > 0 ? dup_arg(c, i) : NULL;
    free(c->client->name);
    c->client->name = name;
    return true;
}

void cmd_hello(cmd_ctx *c)
{
    int j = 1;

    if (c->argc >= 2) {
        int64_t ver;
        if (!num_parse_ll(c->argv[1], c->lens[1], &ver)) {
            reply_error(c->out, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (ver != 2) {
            /* RESP3 is not implemented; Redis answers an unknown version the same way. */
            reply_error(c->out, "NOPROTO unsupported protocol version");
            return;
        }
        j = 2;
    }
    for (; j < c->argc; j++) {
        bool more = c->argc - j - 1;
        if (arg_is(c, j, "auth") && c->argc - j - 1 >= 2) {
            j += 2; /* No users are configured: like Redis's default nopass user. */
        } else if (arg_is(c, j, "setname") && more) {
            if (!set_client_name(c, j + 1))
                return;
            j++;
        } else {
            char q[QUOTE_BUF];
            reply_errorf(c->out, "ERR Syntax error in HELLO option '%s'", arg_quote(c, j, q));
            return;
        }
    }
    reply_array(c->out, 14);
    reply_bulk_cstr(c->out, "server");
    reply_bulk_cstr(c->out, "redis");
    reply_bulk_cstr(c->out, "version");
    reply_bulk_cstr(c->out, REDIS_COMPAT_VERSION);
    reply_bulk_cstr(c->out, "proto");
    reply_int(c->out, 2);
    reply_bulk_cstr(c->out, "id");
    reply_int(c->out, (int64_t)c->client->id);
    reply_bulk_cstr(c->out, "mode");
    reply_bulk_cstr(c->out, "standalone");
    reply_bulk_cstr(c->out, "role");
    reply_bulk_cstr(c->out, "master");
    reply_bulk_cstr(c->out, "modules");
    reply_array(c->out, 0);
}

static void client_info_line(cmd_ctx *c, char *buf, size_t len)
{
    snprintf(buf, len, "id=%llu name=%s db=0 loop=%u lib-name=%s lib-ver=%s\n",
             (unsigned long long)c->client->id, c->client->name ? c->client->name : "",
             c->client->loop, c->client->lib_name ? c->client->lib_name : "",
             c->client->lib_ver ? c->client->lib_ver : "");
}

void cmd_client(cmd_ctx *c)
{
    char line[512];

    if (arg_is(c, 1, "id") && c->argc == 2) {
        reply_int(c->out, (int64_t)c->client->id);
    } else if (arg_is(c, 1, "setname")) {
        if (c->argc != 3)
            reply_arity(c, "client|setname");
        else if (set_client_name(c, 2))
            reply_ok(c->out);
    } else if (arg_is(c, 1, "getname")) {
        if (c->argc != 2)
            reply_arity(c, "client|getname");
        else if (c->client->name == NULL)
            reply_null(c->out);
        else
            reply_bulk_cstr(c->out, c->client->name);
    } else if (arg_is(c, 1, "setinfo")) {
        char **slot;
        if (c->argc != 4) {
            reply_arity(c, "client|setinfo");
            return;
        }
        if (arg_is(c, 2, "lib-name")) {
            slot = &c->client->lib_name;
        } else if (arg_is(c, 2, "lib-ver")) {
            slot = &c->client->lib_ver;
        } else {
            char q[QUOTE_BUF];
            reply_errorf(c->out, "ERR Unrecognized option '%s'", arg_quote(c, 2, q));
            return;
        }
        free(*slot);
        *slot = dup_arg(c, 3);
        reply_ok(c->out);
    } else if ((arg_is(c, 1, "info") || arg_is(c, 1, "list")) && c->argc == 2) {
        client_info_line(c, line, sizeof(line));
        reply_bulk_cstr(c->out, line);
    } else if (arg_is(c, 1, "help") && c->argc == 2) {
        static const char *const help[] = {"CLIENT <subcommand> [<arg> ...]. Subcommands are:",
                                           "ID",
                                           "GETNAME",
                                           "SETNAME <name>",
                                           "SETINFO <LIB-NAME|LIB-VER> <value>",
                                           "INFO",
                                           "LIST",
                                           "HELP"};
        reply_array(c->out, sizeof(help) / sizeof(help[0]));
        for (size_t i = 0; i < sizeof(help) / sizeof(help[0]); i++)
            reply_simple(c->out, help[i]);
    } else {
        char q[QUOTE_BUF];
        reply_errorf(c->out, "ERR unknown subcommand '%s'. Try CLIENT HELP.", arg_quote(c, 1, q));
    }
}

static void reply_command_info(cmd_ctx *c, const redis_cmd *cmd)
{
    const char *f = cmd->flags;
    int64_t nflags = 0;

    reply_array(c->out, 10);
    reply_bulk_cstr(c->out, cmd->name);
    reply_int(c->out, cmd->arity);
    for (const char *p = f; *p != '\0'; p++)
        if (p == f || p[-1] == ' ')
            nflags++;
    reply_array(c->out, nflags);
    while (*f != '\0') {
        const char *sp = strchr(f, ' ');
        size_t n = sp ? (size_t)(sp - f) : strlen(f);
        char word[32];
        snprintf(word, sizeof(word), "%.*s", (int)n, f);
        reply_simple(c->out, word);
        f += n;
        while (*f == ' ')
            f++;
    }
    reply_int(c->out, cmd->first_key);
    reply_int(c->out, cmd->last_key);
    reply_int(c->out, cmd->step);
    reply_array(c->out, 0); /* ACL categories */
    reply_array(c->out, 0); /* tips */
    reply_array(c->out, 0); /* key specs */
    reply_array(c->out, 0); /* subcommands */
}

static const redis_cmd *find_cmd(const cmd_ctx *c, int i)
{
    for (size_t k = 0; k < redis_cmd_table_len; k++)
        if (arg_is(c, i, redis_cmd_table[k].name))
            return &redis_cmd_table[k];
    return NULL;
}

void cmd_command(cmd_ctx *c)
{
    if (c->argc == 1) {
        reply_array(c->out, (int64_t)redis_cmd_table_len);
        for (size_t k = 0; k < redis_cmd_table_len; k++)
            reply_command_info(c, &redis_cmd_table[k]);
    } else if (arg_is(c, 1, "count") && c->argc == 2) {
        reply_int(c->out, (int64_t)redis_cmd_table_len);
    } else if (arg_is(c, 1, "docs")) {
        /* No documentation is kept: an empty map, which redis-cli accepts. */
        reply_array(c->out, 0);
    } else if (arg_is(c, 1, "info")) {
        reply_array(c->out, c->argc - 2);
        for (int i = 2; i < c->argc; i++) {
            const redis_cmd *cmd = find_cmd(c, i);
            if (cmd == NULL)
                reply_null_array(c->out);
            else
                reply_command_info(c, cmd);
        }
    } else if (arg_is(c, 1, "list") && c->argc == 2) {
        reply_array(c->out, (int64_t)redis_cmd_table_len);
        for (size_t k = 0; k < redis_cmd_table_len; k++)
            reply_bulk_cstr(c->out, redis_cmd_table[k].name);
    } else {
        char q[QUOTE_BUF];
        reply_errorf(c->out, "ERR unknown subcommand '%s'. Try COMMAND HELP.", arg_quote(c, 1, q));
    }
}

void cmd_config(cmd_ctx *c)
{
    char port[NUM_LL_BUF + 1], bulk[NUM_LL_BUF + 1], obuf[96];
    const char *params[][2] = {
        {"save", ""},
        {"appendonly", "no"},
        {"port", port},
        {"databases", "1"},
        {"maxmemory", "0"},
        {"proto-max-bulk-len", bulk},
        {"timeout", "0"},
        {"tcp-keepalive", "0"},
        /* Only the normal class: weft-redis has no replicas and no pub/sub clients. */
        {"client-output-buffer-limit", obuf},
    };
    size_t nparams = sizeof(params) / sizeof(params[0]);
    reply_buf tmp;
    int64_t n = 0;

    port[num_format_ll(port, c->srv->cfg.port)] = '\0';
    bulk[num_format_ll(bulk, (int64_t)c->srv->cfg.max_bulk)] = '\0';
    obuf_limit_format(&c->srv->cfg.obuf, obuf, sizeof(obuf));
    if (arg_is(c, 1, "resetstat") && c->argc == 2) {
        reply_ok(c->out);
        return;
    }
    if (!arg_is(c, 1, "get")) {
        char q[QUOTE_BUF];
        reply_errorf(c->out, "ERR unknown subcommand '%s'. Try CONFIG HELP.", arg_quote(c, 1, q));
        return;
    }
    if (c->argc < 3) {
        reply_arity(c, "config|get");
        return;
    }
    reply_init(&tmp);
    for (size_t k = 0; k < nparams; k++) {
        for (int i = 2; i < c->argc; i++) {
            if (glob_match(c->argv[i], c->lens[i], params[k][0], strlen(params[k][0]), true)) {
                reply_bulk_cstr(&tmp, params[k][0]);
                reply_bulk_cstr(&tmp, params[k][1]);
                n += 2;
                break;
            }
        }
    }
    reply_array(c->out, n);
    reply_raw(c->out, tmp.data, tmp.len);
    reply_free(&tmp);
}

static bool want_section(const cmd_ctx *c, const char *name)
{
    if (c->argc == 1)
        return true;
    for (int i = 1; i < c->argc; i++)
        if (arg_is(c, i, name) || arg_is(c, i, "all") || arg_is(c, i, "everything") ||
            arg_is(c, i, "default"))
            return true;
    return false;
}

/* Appends printf output to a growing text. */
static void textf(reply_buf *t, const char *fmt, ...) WEFT_PRINTF(2, 3);

static void textf(reply_buf *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        reply_raw(t, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void cmd_info(cmd_ctx *c)
{
    redis_server *srv = c->srv;
    unsigned nloops = srv->cfg.nloops;
    redis_loop_info *li = calloc(nloops, sizeof(*li));
    uint64_t clients = 0, accepted = 0, in = 0, out = 0, commands = 0, out_peak = 0;
    int64_t uptime = (cmd_now(c) - srv->start_ms) / 1000;
    size_t keys, expires;
    reply_buf t;

    if (li == NULL) {
        reply_oom(c);
        return;
    }
    if (srv->cfg.stats_cb != NULL)
        srv->cfg.stats_cb(srv->cfg.stats_arg, nloops, li);
    for (unsigned i = 0; i < nloops; i++) {
        clients += li[i].clients;
        accepted += li[i].accepted;
        in += li[i].bytes_in;
        out += li[i].bytes_out;
        if (li[i].out_buffer_peak > out_peak)
            out_peak = li[i].out_buffer_peak;
        commands += atomic_load_explicit(&srv->loops[i].commands, memory_order_relaxed);
    }
    reply_init(&t);
    if (want_section(c, "server")) {
        char os[160];
        redis_os_name(os, sizeof(os));
        textf(&t,
              "# Server\r\nredis_version:%s\r\nredis_mode:standalone\r\nos:%s\r\n"
              "arch_bits:%d\r\nmultiplexing_api:weft\r\nprocess_id:%ld\r\ntcp_port:%d\r\n"
              "uptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\nweft_loops:%u\r\n\r\n",
              REDIS_COMPAT_VERSION, os, (int)(sizeof(void *) * 8), (long)getpid(), srv->cfg.port,
              (long long)uptime, (long long)(uptime / 86400), nloops);
    }
    if (want_section(c, "clients")) {
        textf(&t, "# Clients\r\nconnected_clients:%llu\r\nclient_recent_max_output_buffer:%llu\r\n",
              (unsigned long long)clients, (unsigned long long)out_peak);
        for (unsigned i = 0; i < nloops; i++)
            textf(&t, "loop%u:clients=%llu,commands=%llu\r\n", i, (unsigned long long)li[i].clients,
                  (unsigned long long)atomic_load_explicit(&srv->loops[i].commands,
                                                           memory_order_relaxed));
        textf(&t, "\r\n");
    }
    if (want_section(c, "stats")) {
        textf(&t,
              "# Stats\r\ntotal_connections_received:%llu\r\n"
              "total_commands_processed:%llu\r\ntotal_net_input_bytes:%llu\r\n"
              "total_net_output_bytes:%llu\r\nexpired_keys:%llu\r\n\r\n",
              (unsigned long long)accepted, (unsigned long long)commands, (unsigned long long)in,
              (unsigned long long)out,
              (unsigned long long)atomic_load_explicit(&srv->ks->expired, memory_order_relaxed));
    }
    if (want_section(c, "keyspace")) {
        keys = ks_size(srv->ks, &expires);
        textf(&t, "# Keyspace\r\n");
        if (keys > 0)
            textf(&t, "db0:keys=%zu,expires=%zu,avg_ttl=0\r\n", keys, expires);
        textf(&t, "\r\n");
    }
    reply_bulk(c->out, t.data, t.len);
    reply_free(&t);
    free(li);
}
