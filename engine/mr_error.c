#include "mr_error.h"

#include <stdio.h>
#include <string.h>

mr_code mr_vfail(mr_err *e, mr_code code, const char *fmt, va_list ap)
{
    if (e) {
        e->code = code;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    }
    return code;
}

mr_code mr_fail(mr_err *e, mr_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mr_vfail(e, code, fmt, ap);
    va_end(ap);
    return code;
}

mr_code mr_wrap(mr_err *e, const char *fmt, ...)
{
    char prefix[512], old[MR_ERR_MSG_MAX];
    va_list ap;
    if (!e) return MR_OK;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s%s", prefix, old);
    return e->code;
}

void mr_err_clear(mr_err *e)
{
    if (!e) return;
    e->code = MR_OK;
    e->msg[0] = '\0';
}

const char *mr_code_name(mr_code code)
{
    static const char *const names[] = {
        "ok", "invalid", "out of memory", "i/o error", "bad input", "corrupt data",
        "not found", "script error", "limit exceeded", "network error", "access denied",
        "timeout",
    };
    if ((unsigned)code < sizeof names / sizeof names[0]) return names[code];
    return "unknown error";
}
