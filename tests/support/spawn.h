/* Child processes for the tests that run one of our binaries (weft-redis) and drive it with
 * the system's client programs (redis-cli, redis-benchmark).
 *
 * wt_child_*: one of our programs, started with its stdout on a pipe and read up to the first
 * line it prints, the one that says it is ready; stopped with the stop signal (SIGTERM; on
 * Windows Ctrl+C, sent on a console of the child's own) and its exit status checked.
 *
 * wt_shell: a shell command line and its output. On Windows (under Wine) the command runs in
 * the Linux /bin/sh: Wine starts a Linux program from CreateProcess but gives back no handle
 * to wait on and loses what it writes to a pipe, so its output goes to a file and its exit
 * status to another, whose appearance the caller polls for.
 */
#ifndef WEFT_TEST_SPAWN_H
#define WEFT_TEST_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct wt_child {
#ifdef _WIN32
    void *process; /* its HANDLE, NULL when there is none */
    void *log;     /* our HANDLE on the file its stderr goes to, or NULL */
#else
    pid_t pid;  /* > 0 while there is one */
    int log_fd; /* the unnamed file its stderr goes to, or -1 */
#endif
} wt_child;

/* A wt_child that names no child, to initialize one with. */
#ifdef _WIN32
#define WT_CHILD_NONE \
    {                 \
        NULL, NULL    \
    }
#else
#define WT_CHILD_NONE \
    {                 \
        0, -1         \
    }
#endif

/* Runs path with args (argv, args[0] first, NULL-terminated), its stdout a pipe and, with
 * capture_log, its stderr an unnamed file that wt_child_log reads back (else the test's own
 * stderr), and reads the first line it prints into line (NUL-terminated, the '\n' kept, at
 * most cap - 1 bytes), waiting up to timeout_ms for each byte. *c is filled in as soon as the
 * child exists, so that wt_child_kill can end it when the line never comes. Returns 0, or
 * -1. */
int wt_child_start(wt_child *c, const char *path, const char *const *args, bool capture_log,
                   char *line, size_t cap, int timeout_ms);

/* What the child wrote to its captured stderr so far (NUL-terminated, malloc'd), or NULL
 * when it was not captured. */
char *wt_child_log(const wt_child *c);

/* Sends the child the stop signal and waits up to timeout_ms for it to end. Returns its exit
 * status (0 to 255), -1 when it ended otherwise (killed by a signal), or -2 when it did not
 * end in time (it is killed then). Either way *c no longer names a child. */
int wt_child_stop(wt_child *c, int timeout_ms);

/* When *c names a child: kills it, waits for it and forgets it. For the teardowns, when a
 * failed assertion skipped a test's orderly stop. */
void wt_child_kill(wt_child *c);

/* The child's resident set now and at its peak, in KiB (-1 if unknown): VmRSS and VmHWM of
 * its /proc status; on Windows its working set and the peak of it. */
long wt_child_rss_kb(const wt_child *c);
long wt_child_peak_kb(const wt_child *c);

/* Forgets the child's peak, so that wt_child_peak_kb measures from now on: true, or false
 * where the system cannot (Windows: the peak stays the one since the child started, a
 * higher mark). */
bool wt_child_reset_peak(const wt_child *c);

/* The page faults the child took so far (Linux: minor faults, fresh memory it touched page
 * by page), or 0 when the system does not count them; and NULL when it does, else why not. */
unsigned long wt_child_faults(const wt_child *c);
const char *wt_missing_child_faults(const wt_child *c);

/* Runs cmd with sh -c and returns what it wrote to stdout (NUL-terminated, malloc'd, at most
 * 1 MiB; its stderr is the test's), its exit status in *rc (-1 when it did not exit, or
 * was not seen to within timeout_ms on Windows). The command bounds its own run (timeout(1));
 * timeout_ms bounds the wait for it where its end is polled for. */
char *wt_shell(int *rc, int timeout_ms, const char *cmd);

/* NULL where wt_shell runs commands, else why not (Windows outside Wine: no Linux shell). */
const char *wt_missing_shell(void);

#endif /* WEFT_TEST_SPAWN_H */
