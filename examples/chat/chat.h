/* weft-chat: a line-based publish/subscribe server (chat.c says the protocol). */
#ifndef WEFT_CHAT_H
#define WEFT_CHAT_H

#include <weft/weft.h>

#define CHAT_MAX_LINE 1024

/* Fills cfg with the chat server (4 loops, 2 workers, a line codec of CHAT_MAX_LINE); the
 * caller sets cfg->listen[0]. One per process: the topics are the process's. */
void chat_config(weft_config *cfg);

#endif
