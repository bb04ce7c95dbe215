/* What the example servers share: running an engine until SIGINT/SIGTERM, parsing --lb,
 * and the few things that differ between POSIX systems and Windows (the processor count, a
 * peer's printable address), so that an example's own code asks no system which it is. */
#ifndef WEFT_EXAMPLE_H
#define WEFT_EXAMPLE_H

#include <weft/weft.h>

/* Called on the main thread for each SIGUSR1; prints whatever the example counts. */
typedef void (*example_stats_cb)(weft_engine *e, void *arg);

/* Starts an engine with cfg and serves until SIGINT or SIGTERM, then stops it and waits for
 * its loops. Signals are taken synchronously with sigwait() on the calling thread, so no
 * handler races with anything; they are blocked before the engine starts so its threads
 * inherit the mask. With stats == NULL, SIGUSR1 keeps its default action. cfg is borrowed
 * until the call returns. Returns the process exit status: 0, or 1 if the engine did not
 * start (the error is printed after name). On Windows Ctrl+C, Ctrl+Break or the console
 * closing stop it, and stats is never called (there is no SIGUSR1). */
int example_serve(const weft_config *cfg, const char *name, example_stats_cb stats, void *arg);

/* The usage text's last line: how example_serve is stopped (and asked for statistics). */
#ifdef _WIN32
#define EXAMPLE_STOP_HELP "Ctrl+C, Ctrl+Break or closing the console stop it.\n"
#else
#define EXAMPLE_STOP_HELP "SIGINT/SIGTERM stop; SIGUSR1 prints statistics.\n"
#endif

/* --lb NAME: rr, lc, ch or random into *out. 0, or -1 for an unknown name. */
int example_parse_lb(const char *s, weft_lb_kind *out);

/* Processors online, at least 1. */
unsigned example_cpu_count(void);

/* conn's peer as "host:port" ("[host]:port" for IPv6, "unix" for a Unix socket, "?" when
 * unknown) into buf (owned by the caller, len bytes, always NUL-terminated). Only on conn's
 * loop thread. */
void example_peer_name(weft_conn *conn, char *buf, size_t len);

#endif
