/* error.h — the one error convention of medvlp.
 *
 * Every fallible function returns an int status (MV_OK == 0) and, on failure, fills a caller-owned
 * mv_error with a human-readable message naming the file/tensor/field at fault. The status class
 * tells callers how to report it: MV_EINPUT is the user's fault (CLI exit 2, HTTP 4xx), everything
 * else is ours or the environment's (CLI exit 1, HTTP 5xx), MV_ETOOBIG maps to HTTP 413 and
 * MV_EUNSUPPORTED to 415. */
#ifndef MEDVLP_ERROR_H
#define MEDVLP_ERROR_H

#include <stddef.h>

enum mv_status {
    MV_OK = 0,
    MV_EINPUT,        /* malformed or contract-breaking input (bad text, bad image, bad args) */
    MV_EFORMAT,       /* a file is corrupt or not what it claims to be (checkpoint, index) */
    MV_EUNSUPPORTED,  /* well-formed but unsupported (image format, dtype, model family) */
    MV_ETOOBIG,       /* over a configured limit (pixels, body size, context) */
    MV_ENOTFOUND,     /* a named thing does not exist (file, tensor, id) */
    MV_EIO,           /* the operating system refused (open, read, mmap, fsync) */
    MV_ENOMEM,        /* allocation failed */
    MV_EINTERNAL,     /* a bug or a library failure we cannot attribute to input */
};

typedef struct mv_error {
    int code;
    char message[1024];
} mv_error;

/* Records code and a printf-style message in err (which may be NULL) and returns code, so callers
 * can write `return mv_fail(err, MV_EFORMAT, "%s: bad header", path);`. */
int mv_fail(mv_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an error already recorded (context added on the way up). Returns err->code. */
int mv_error_prefix(mv_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void mv_error_clear(mv_error *err);

/* Short snake_case name of a status, for JSON error codes and logs. */
const char *mv_status_name(int code);

/* CLI exit status for a status: 0 ok, 2 bad usage/input, 1 internal failure. */
int mv_status_exit_code(int code);

#endif
