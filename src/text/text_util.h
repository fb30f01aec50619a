/* text_util.h — helpers shared by the text module (src/text): a growable byte buffer, UTF-8
 * validation, and utf8proc normalisation into that buffer. Internal to src/text. */
#ifndef MEDVLP_TEXT_UTIL_H
#define MEDVLP_TEXT_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "medvlp/error.h"

typedef struct mv_text_buf {
    char *data;
    size_t len;
    size_t cap;
} mv_text_buf;

int mv_text_buf_append(mv_text_buf *buf, const char *bytes, size_t n, mv_error *err);
int mv_text_buf_append_cp(mv_text_buf *buf, int32_t cp, mv_error *err);
void mv_text_buf_free(mv_text_buf *buf);

/* fail_code (MV_EINPUT for user text, MV_EFORMAT for files) naming `what` and the byte offset of the first invalid sequence (as Python's strict
 * UTF-8 decoder rejects: overlongs, surrogates, > U+10FFFF, truncated sequences). */
int mv_text_validate_utf8(const char *text, size_t len, int fail_code, const char *what, mv_error *err);

/* Decodes one code point of valid UTF-8 at text[0..len); returns its byte length. */
int mv_text_next_cp(const char *text, size_t len, int32_t *cp);

/* Replaces buf's contents by their NFC (compose=1) or NFD (compose=0) form. Pure ASCII is left as is. */
int mv_text_normalize(mv_text_buf *buf, int compose, mv_error *err);

/* Python's str.isspace() (what str.split() splits on): \t \n \v \f \r, U+1C..1F, space, U+85,
 * category Zs, U+2028, U+2029. */
int mv_text_is_py_space(int32_t cp);

#endif
