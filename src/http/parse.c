/* parse.c — strict decoders for request bodies: base64 images and multipart/form-data.
 *
 * Both work on a body already bounded by --max-body and never read outside it. Anything that is
 * not exactly well formed is refused with MV_EINPUT (HTTP 400) naming the offset, because a lenient
 * decoder turns client bugs into silently wrong embeddings. */
#include "medvlp/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

static int base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int mv_base64_decode(const char *text, size_t n_text, unsigned char **out, size_t *n_out, mv_error *err)
{
    *out = NULL;
    *n_out = 0;
    if (n_text == 0)
        return mv_fail(err, MV_EINPUT, "base64: empty");
    if (n_text % 4 != 0)
        return mv_fail(err, MV_EINPUT, "base64: length %zu is not a multiple of 4", n_text);
    size_t n_pad = text[n_text - 1] == '=' ? (text[n_text - 2] == '=' ? 2 : 1) : 0;
    size_t size = n_text / 4 * 3 - n_pad;
    unsigned char *bytes = malloc(size ? size : 1);
    if (!bytes)
        return mv_fail(err, MV_ENOMEM, "base64: out of memory for %zu bytes", size);
    size_t w = 0;
    for (size_t i = 0; i < n_text; i += 4) {
        int last = i + 4 == n_text;
        int v[4];
        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)text[i + j];
            int is_pad_slot = last && j >= 4 - (int)n_pad;
            if (is_pad_slot) {
                v[j] = 0;
                continue;
            }
            v[j] = base64_value(c);
            if (v[j] < 0) {
                free(bytes);
                return mv_fail(err, MV_EINPUT, "base64: invalid character 0x%02x at offset %zu", c, i + j);
            }
        }
        uint32_t triple = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* Canonical encodings leave the bits under the padding zero; anything else is a corrupt
         * or concatenated string. */
        if ((last && n_pad == 1 && (triple & 0xff)) || (last && n_pad == 2 && (triple & 0xffff))) {
            free(bytes);
            return mv_fail(err, MV_EINPUT, "base64: non-zero bits before padding at offset %zu", i);
        }
        bytes[w++] = (unsigned char)(triple >> 16);
        if (w < size) bytes[w++] = (unsigned char)(triple >> 8);
        if (w < size) bytes[w++] = (unsigned char)triple;
    }
    *out = bytes;
    *n_out = size;
    return MV_OK;
}

/* ---- multipart/form-data (RFC 7578) ---- */

static const char *find_bytes(const char *hay, size_t n_hay, const char *needle, size_t n_needle)
{
    if (n_needle == 0 || n_hay < n_needle)
        return NULL;
    return memmem(hay, n_hay, needle, n_needle);
}

/* Copies the value of parameter `key` (e.g. boundary, name, filename) from a header value such as
 * `form-data; name="file"; filename="a.png"` into out (cap bytes). Returns 1 if found. */
static int header_param(const char *value, size_t n_value, const char *key, char *out, size_t cap)
{
    size_t n_key = strlen(key);
    const char *p = value, *end = value + n_value;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        while (p < stop && (*p == ' ' || *p == '\t')) p++;
        if ((size_t)(stop - p) > n_key && !strncasecmp(p, key, n_key) && p[n_key] == '=') {
            const char *v = p + n_key + 1, *v_end = stop;
            if (v < v_end && *v == '"') {
                v++;
                const char *q = memchr(v, '"', (size_t)(end - v));
                if (!q) return 0;
                v_end = q;
            }
            while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t')) v_end--;
            size_t n = (size_t)(v_end - v);
            if (n >= cap) return 0;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
        p = semi ? semi + 1 : end;
    }
    return 0;
}

void mv_multipart_free(mv_multipart_part *parts, int n_parts)
{
    if (!parts)
        return;
    for (int i = 0; i < n_parts; i++) {
        free((char *)parts[i].name);
        free((char *)parts[i].filename);
        free((char *)parts[i].content_type);
    }
    free(parts);
}

/* Parses the header block of one part (between the boundary line and the blank line). */
static int parse_part_headers(const char *h, size_t n_h, mv_multipart_part *part, int index, mv_error *err)
{
    char name[256] = "", filename[512] = "", ctype[256] = "";
    const char *end = h + n_h;
    while (h < end) {
        const char *eol = find_bytes(h, (size_t)(end - h), "\r\n", 2);
        const char *line_end = eol ? eol : end;
        const char *colon = memchr(h, ':', (size_t)(line_end - h));
        if (!colon)
            return mv_fail(err, MV_EINPUT, "multipart: part %d: header line without ':'", index);
        size_t n_key = (size_t)(colon - h);
        const char *v = colon + 1;
        while (v < line_end && (*v == ' ' || *v == '\t')) v++;
        size_t n_v = (size_t)(line_end - v);
        if (n_key == 19 && !strncasecmp(h, "Content-Disposition", 19)) {
            header_param(v, n_v, "name", name, sizeof name);
            header_param(v, n_v, "filename", filename, sizeof filename);
        } else if (n_key == 12 && !strncasecmp(h, "Content-Type", 12)) {
            if (n_v >= sizeof ctype)
                return mv_fail(err, MV_EINPUT, "multipart: part %d: Content-Type too long", index);
            memcpy(ctype, v, n_v);
            ctype[n_v] = '\0';
        }
        h = eol ? eol + 2 : end;
    }
    part->name = strdup(name);
    part->filename = strdup(filename);
    part->content_type = strdup(ctype);
    if (!part->name || !part->filename || !part->content_type)
        return mv_fail(err, MV_ENOMEM, "multipart: out of memory");
    return MV_OK;
}

int mv_multipart_parse(const char *content_type, const char *body, size_t n_body, int max_parts,
                       mv_multipart_part **parts_out, int *n_parts_out, mv_error *err)
{
    *parts_out = NULL;
    *n_parts_out = 0;
    char boundary[80];
    if (!header_param(content_type, strlen(content_type), "boundary", boundary, sizeof boundary) ||
        !boundary[0])
        return mv_fail(err, MV_EINPUT, "multipart: Content-Type has no valid boundary (1..70 chars)");
    /* Every delimiter after the first is preceded by CRLF; the first may start the body. */
    char delim[96];
    int n_delim = snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    const char *end = body + n_body;
    const char *p;
    if (n_body >= (size_t)n_delim - 2 && !memcmp(body, delim + 2, (size_t)n_delim - 2))
        p = body + n_delim - 2;
    else {
        p = find_bytes(body, n_body, delim, (size_t)n_delim);
        if (!p)
            return mv_fail(err, MV_EINPUT, "multipart: boundary '%s' not found in body", boundary);
        p += n_delim;
    }
    mv_multipart_part *parts = NULL;
    int n_parts = 0, status = MV_OK;
    for (;;) {
        /* p is just after a delimiter: "--" closes the body, CRLF opens a part. */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            status = mv_fail(err, MV_EINPUT, "multipart: malformed delimiter line at offset %zu",
                             (size_t)(p - body));
            goto fail;
        }
        p += 2;
        const char *headers_end = find_bytes(p, (size_t)(end - p), "\r\n\r\n", 4);
        const char *data;
        size_t n_headers;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') { /* a part with no headers */
            n_headers = 0;
            data = p + 2;
        } else if (headers_end) {
            n_headers = (size_t)(headers_end - p);
            data = headers_end + 4;
        } else {
            status = mv_fail(err, MV_EINPUT, "multipart: part %d has no end of headers", n_parts);
            goto fail;
        }
        const char *next = find_bytes(data, (size_t)(end - data), delim, (size_t)n_delim);
        if (!next) {
            status = mv_fail(err, MV_EINPUT, "multipart: part %d is not closed by the boundary", n_parts);
            goto fail;
        }
        if (n_parts == max_parts) {
            status = mv_fail(err, MV_EINPUT, "multipart: more than %d parts", max_parts);
            goto fail;
        }
        mv_multipart_part *grown = realloc(parts, sizeof *parts * (size_t)(n_parts + 1));
        if (!grown) {
            status = mv_fail(err, MV_ENOMEM, "multipart: out of memory");
            goto fail;
        }
        parts = grown;
        memset(&parts[n_parts], 0, sizeof parts[n_parts]);
        n_parts++;
        status = parse_part_headers(p, n_headers, &parts[n_parts - 1], n_parts - 1, err);
        if (status)
            goto fail;
        parts[n_parts - 1].data = data;
        parts[n_parts - 1].size = (size_t)(next - data);
        p = next + n_delim;
    }
    *parts_out = parts;
    *n_parts_out = n_parts;
    return MV_OK;
fail:
    mv_multipart_free(parts, n_parts);
    return status;
}
