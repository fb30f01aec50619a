/* text_util.c — owns the text module's byte buffer and its utf8proc glue (validation, NFC/NFD). */
#include "text/text_util.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

int mv_text_buf_append(mv_text_buf *buf, const char *bytes, size_t n, mv_error *err)
{
    if (buf->len + n + 1 > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 64;
        while (cap < buf->len + n + 1)
            cap *= 2;
        char *grown = realloc(buf->data, cap);
        if (!grown)
            return mv_fail(err, MV_ENOMEM, "text buffer: out of memory (%zu bytes)", cap);
        buf->data = grown;
        buf->cap = cap;
    }
    memcpy(buf->data + buf->len, bytes, n);
    buf->len += n;
    buf->data[buf->len] = '\0';
    return MV_OK;
}

int mv_text_buf_append_cp(mv_text_buf *buf, int32_t cp, mv_error *err)
{
    utf8proc_uint8_t bytes[4];
    utf8proc_ssize_t n = utf8proc_encode_char(cp, bytes);
    return mv_text_buf_append(buf, (const char *)bytes, (size_t)n, err);
}

void mv_text_buf_free(mv_text_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

int mv_text_validate_utf8(const char *text, size_t len, int fail_code, const char *what, mv_error *err)
{
    size_t pos = 0;
    while (pos < len) {
        if ((unsigned char)text[pos] < 0x80) {
            pos++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)text + pos,
                                              (utf8proc_ssize_t)(len - pos), &cp);
        if (n < 0)
            return mv_fail(err, fail_code, "%s: invalid UTF-8 at byte offset %zu", what, pos);
        pos += (size_t)n;
    }
    return MV_OK;
}

int mv_text_next_cp(const char *text, size_t len, int32_t *cp)
{
    if ((unsigned char)text[0] < 0x80) {
        *cp = (unsigned char)text[0];
        return 1;
    }
    utf8proc_int32_t decoded;
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &decoded);
    *cp = decoded;
    return (int)n;
}

int mv_text_normalize(mv_text_buf *buf, int compose, mv_error *err)
{
    size_t i = 0;
    while (i < buf->len && (unsigned char)buf->data[i] < 0x80)
        i++;
    if (i == buf->len)
        return MV_OK; /* ASCII is invariant under NFC and NFD */
    utf8proc_uint8_t *normalized = NULL;
    utf8proc_option_t options = UTF8PROC_STABLE | (compose ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE);
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)buf->data, (utf8proc_ssize_t)buf->len,
                                      &normalized, options);
    if (n < 0)
        return mv_fail(err, n == UTF8PROC_ERROR_NOMEM ? MV_ENOMEM : MV_EINTERNAL,
                       "unicode normalization failed: %s", utf8proc_errmsg(n));
    buf->len = 0;
    int status = mv_text_buf_append(buf, (const char *)normalized, (size_t)n, err);
    free(normalized);
    return status;
}

int mv_text_is_py_space(int32_t cp)
{
    if ((cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0x2028 || cp == 0x2029)
        return 1;
    return cp > 0x7F && utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS;
}
