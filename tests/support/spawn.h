/* A child process for the tests that run one of our binaries (weft-redis): started with its
 * stdout on a pipe, and read up to the first line it prints, the one that says it is ready.
 */
#ifndef WEFT_TEST_SPAWN_H
#define WEFT_TEST_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/* Runs path with args (argv, args[0] first, NULL-terminated), its stdout a pipe and its stderr
 * err_fd when err_fd >= 0, and reads the first line it prints into line (NUL-terminated, the
 * '\n' kept, at most cap - 1 bytes), waiting up to timeout_ms for each byte. *pid is set as
 * soon as the child exists, so the caller can kill it when the line never comes. Returns 0,
 * or -1 (with *pid <= 0 when no child was started). */
int wt_spawn_ready(const char *path, const char *const *args, int err_fd, pid_t *pid, char *line,
                   size_t cap, int timeout_ms);

/* When *pid is a child's (> 0): kills it with SIGKILL, reaps it and sets *pid to 0. For the
 * teardowns, when a failed assertion skipped a test's orderly stop. */
void wt_spawn_kill(pid_t *pid);

#endif /* WEFT_TEST_SPAWN_H */
