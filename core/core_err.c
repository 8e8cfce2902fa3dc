#include "core/core_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *core_strerror(int err)
{
    switch (err) {
#define CORE_ERR_MSG(name, value, msg)                                                   \
    case value:                                                                          \
        return msg;
        CORE_ERR_MAP(CORE_ERR_MSG)
#undef CORE_ERR_MSG
    default:
        break;
    }
    if (err > 0)
        return strerror(err); /* errno pass-through */
    return "unknown error";
}

const char *core_errname(int err)
{
    switch (err) {
#define CORE_ERR_NAME(name, value, msg)                                                  \
    case value:                                                                          \
        return #name;
        CORE_ERR_MAP(CORE_ERR_NAME)
#undef CORE_ERR_NAME
    default:
        break;
    }
    if (err > 0) {
        const char *n = strerrorname_np(err);
        return n ? n : "ERRNO";
    }
    return "CORE_ERR_UNKNOWN";
}

int core_errf(int err, char *errstr, size_t errstr_size, const char *fmt, ...)
{
    if (errstr && errstr_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}
