/* Linked into every integration test: ctest runs each one once per backend, with
 * WEFT_BACKEND naming it. Where that backend cannot run (an old kernel, io_uring disabled or
 * filtered), the test reports itself skipped (exit 77, ctest's SKIP_RETURN_CODE) rather than
 * passing on the other backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft/weft.h"

__attribute__((constructor)) static void wt_backend_or_skip(void)
{
    const char *want = getenv("WEFT_BACKEND");
    if (want == NULL || strcmp(want, "io_uring") != 0)
        return;
    const char *why = NULL;
    const char *vg = getenv("WEFT_TEST_VALGRIND");
    if (vg != NULL && vg[0] != '\0' && strcmp(vg, "0") != 0) {
        /* A thread blocked in io_uring_enter keeps valgrind's scheduler lock (3.19), so
         * every other thread of the test stops with it. */
        printf("SKIPPED: valgrind cannot run io_uring programs with more than one thread\n");
        fflush(stdout);
        _exit(77);
    }
    if (!weft_backend_is_supported(WEFT_BACKEND_IO_URING, &why)) {
        printf("SKIPPED: the io_uring backend cannot run here: %s\n", why != NULL ? why : "?");
        fflush(stdout);
        _exit(77);
    }
}
