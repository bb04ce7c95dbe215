/* The stop signal weft_engine_wait_signals waits for, sent by a test to its own process:
 * SIGTERM on POSIX systems, and on Windows the console event weft takes for it
 * (CTRL_BREAK_EVENT, which it reports as SIGTERM).
 */
#ifndef WEFT_TEST_STOP_SIGNAL_H
#define WEFT_TEST_STOP_SIGNAL_H

/* Blocks SIGTERM in the calling thread (call it before any other thread starts, so that
 * only weft_engine_wait_signals can take it), and wt_stop_signal_unblock gives the thread
 * its mask back. Windows has no signal masks: both do nothing there. */
void wt_stop_signal_block(void);
void wt_stop_signal_unblock(void);

/* Sends the stop signal to this process: 0, or -1 when it could not be sent. */
int wt_stop_signal_send(void);

#endif /* WEFT_TEST_STOP_SIGNAL_H */
