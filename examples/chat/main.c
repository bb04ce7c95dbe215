/* weft-chat: the publish/subscribe server of chat.c, on 4 loops, until SIGINT or SIGTERM.
 * Try it with two `nc 127.0.0.1 9002`: SUB news in one, PUB news hello in the other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

int main(int argc, char **argv)
{
    weft_config cfg;
    chat_config(&cfg);
    cfg.listen[0] = "tcp://127.0.0.1:9002";
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 < argc && strcmp(argv[i], "--addr") == 0) {
            cfg.listen[0] = argv[i + 1];
        } else if (i + 1 < argc && strcmp(argv[i], "--idle") == 0) {
            cfg.idle_timeout_ms = (unsigned)strtoul(argv[i + 1], NULL, 10);
        } else {
            fprintf(stderr, "usage: weft-chat [--addr URL] [--idle MS]\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    int rc = weft_run(&cfg); /* cfg.stop_on_signals: until SIGINT or SIGTERM */
    if (rc != 0)
        fprintf(stderr, "weft-chat: %s\n", weft_strerror(rc));
    return rc != 0;
}
