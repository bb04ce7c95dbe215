/* weft — error names and descriptions, generated from WEFT_ERRNO_MAP. */
#include "platform.h"
#include "weft/error.h"

const char *weft_strerror(int err)
{
    if (err == 0) /* also WEFT_AGAIN */
        return "success";
    switch (err) {
#define WEFT__ERR_TEXT(name, value, text) \
    case (value):                         \
        return text;
        WEFT_ERRNO_MAP(WEFT__ERR_TEXT)
#undef WEFT__ERR_TEXT
    default:
        break;
    }
    /* Any other negated errno: the system's static description, which is thread-safe. */
    if (err < 0 && err > -4000) {
        const char *s = weft__errno_text(-err);
        if (s != NULL)
            return s;
    }
    return "unknown error";
}

const char *weft_err_name(int err)
{
    if (err == 0) /* also WEFT_AGAIN */
        return "WEFT_OK";
    switch (err) {
#define WEFT__ERR_NAME(name, value, text) \
    case (value):                         \
        return "WEFT_" #name;
        WEFT_ERRNO_MAP(WEFT__ERR_NAME)
#undef WEFT__ERR_NAME
    default:
        return "WEFT_EUNKNOWN";
    }
}
