/* A full descriptor table on purpose, for the tests of what the acceptor does without one:
 * the soft RLIMIT_NOFILE lowered to just above what is open, and descriptors taken until
 * none is left. Windows has no such limit for sockets, so there the calls fail and
 * wt_missing_fd_limit says why; the tests report themselves skipped with it.
 */
#ifndef WEFT_TEST_FD_LIMIT_H
#define WEFT_TEST_FD_LIMIT_H

/* NULL where a full descriptor table can be made, else a sentence that says why not. */
const char *wt_missing_fd_limit(void);

/* Lowers the soft limit to the lowest free descriptor plus spare, saving the old one: 0,
 * or -1 with errno set. wt_fd_limit_restore puts the saved one back (0 or -1). */
int wt_fd_limit_lower(int spare);
int wt_fd_limit_restore(void);

/* Takes one descriptor (a duplicate of stdin): it, or -errno (-EMFILE once the table is
 * full). wt_fd_put gives it back. */
int wt_fd_take(void);
void wt_fd_put(int fd);

#endif /* WEFT_TEST_FD_LIMIT_H */
