/* error.c — formatting of mv_error messages (see include/medvlp/error.h). */
#include "medvlp/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int mv_fail(mv_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int mv_error_prefix(mv_error *err, const char *fmt, ...)
{
    if (!err)
        return MV_EINTERNAL;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Shift the old message right and put "prefix: " in front, truncating the tail if needed. */
    size_t cap = sizeof err->message, plen = strlen(prefix) + 2;
    size_t old_len = strnlen(err->message, cap - 1);
    if (plen + old_len + 1 > cap)
        old_len = cap - 1 - plen;
    memmove(err->message + plen, err->message, old_len);
    err->message[plen + old_len] = '\0';
    memcpy(err->message, prefix, plen - 2);
    memcpy(err->message + plen - 2, ": ", 2);
    return err->code;
}

void mv_error_clear(mv_error *err)
{
    if (err) {
        err->code = MV_OK;
        err->message[0] = '\0';
    }
}

const char *mv_status_name(int code)
{
    switch (code) {
    case MV_OK: return "ok";
    case MV_EINPUT: return "invalid_input";
    case MV_EFORMAT: return "corrupt_file";
    case MV_EUNSUPPORTED: return "unsupported";
    case MV_ETOOBIG: return "too_large";
    case MV_ENOTFOUND: return "not_found";
    case MV_EIO: return "io_error";
    case MV_ENOMEM: return "out_of_memory";
    default: return "internal_error";
    }
}

int mv_status_exit_code(int code)
{
    switch (code) {
    case MV_OK: return 0;
    case MV_EINPUT: case MV_EUNSUPPORTED: case MV_ETOOBIG: case MV_ENOTFOUND: case MV_EFORMAT: return 2;
    default: return 1;
    }
}
