/* clean.c — owns the text cleaning the model families apply before WordPiece.
 *
 * open_clip (BiomedCLIP), HFTokenizer clean='whitespace': ftfy.fix_text, html.unescape twice, strip,
 * then every whitespace run → one space. The ftfy steps reproduced, in ftfy's order:
 *   remove_terminal_escapes (ESC [ digits/; letter), fix_latin_ligatures (ĳ Ĳ ŉ Ǆ-ǌ Ǳ-ǳ ﬀ-ﬆ →
 *   their compatibility decomposition), fix_character_width (U+FF01-FFEF → compatibility form,
 *   U+3000 → space), uncurl_quotes (U+02BC U+2018-201B → ', U+201C-201F → "), fix_line_breaks
 *   (\r\n \r U+2028 U+2029 U+85 → \n), remove_control_chars (U+00-08 0B 0E-1F 7F 206A-206F FEFF
 *   FFF9-FFFC), NFC.
 * NOT reproduced (they repair broken encodings, which captions of a curated data set rarely have):
 *   fix_encoding and its helpers (mojibake detection, restore_byte_a0, replace_lossy_sequences,
 *   decode_inconsistent_utf8), fix_c1_controls (U+80-9F read as Windows-1252), fix_surrogates (no
 *   surrogates in valid UTF-8) and ftfy's own HTML unescape (the two html.unescape passes that follow
 *   cover it except for a third level of nested escaping and ftfy's all-caps names like &EACUTE;).
 * html.unescape is CPython's algorithm with CPython's tables (html_entities.h, generated).
 *
 * hi-ml (CXR-BERT) prompts: rstrip("!?."). */
#include "medvlp/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/html_entities.h"
#include "text/text_util.h"

#define HTML_MAX_NAME_CPS 32 /* the [^\t\n\f <&#;]{1,32} of CPython's charref regex */

static int is_latin_ligature(int32_t cp)
{
    return cp == 0x132 || cp == 0x133 || cp == 0x149 || (cp >= 0x1C4 && cp <= 0x1CC) ||
           (cp >= 0x1F1 && cp <= 0x1F3) || (cp >= 0xFB00 && cp <= 0xFB06);
}

static int is_ftfy_control(int32_t cp)
{
    return (cp <= 0x08) || cp == 0x0B || (cp >= 0x0E && cp <= 0x1F) || cp == 0x7F || (cp >= 0x206A && cp <= 0x206F) ||
           cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFC);
}

/* The ftfy steps after width folding, for one code point: uncurl_quotes, fix_line_breaks,
 * remove_control_chars. */
static int append_after_width(mv_text_buf *out, int32_t cp, mv_error *err)
{
    if (cp == 0x2BC || (cp >= 0x2018 && cp <= 0x201B))
        return mv_text_buf_append(out, "'", 1, err);
    if (cp >= 0x201C && cp <= 0x201F)
        return mv_text_buf_append(out, "\"", 1, err);
    if (cp == '\r' || cp == 0x2028 || cp == 0x2029 || cp == 0x85)
        return mv_text_buf_append(out, "\n", 1, err);
    if (is_ftfy_control(cp))
        return MV_OK;
    return mv_text_buf_append_cp(out, cp, err);
}

/* Ligature and width folding: cp's compatibility decomposition (NFKD of one code point; the final
 * NFC makes it ftfy's per-character NFKC), each part going through the later steps. */
static int append_compat(mv_text_buf *out, int32_t cp, mv_error *err)
{
    utf8proc_int32_t decomposed[32];
    int last_boundclass = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(cp, decomposed, 32, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT,
                                                 &last_boundclass);
    if (n < 0 || n > 32)
        return mv_fail(err, MV_EINTERNAL, "compatibility decomposition of U+%04X failed", (unsigned)cp);
    int status = MV_OK;
    for (utf8proc_ssize_t i = 0; i < n && status == MV_OK; i++)
        status = append_after_width(out, decomposed[i], err);
    return status;
}

/* The ftfy.fix_text subset described at the top, text → out (NFC). */
static int ftfy_subset(const char *text, size_t len, mv_text_buf *out, mv_error *err)
{
    int status = MV_OK;
    for (size_t pos = 0; pos < len && status == MV_OK;) {
        int32_t cp;
        size_t n = (size_t)mv_text_next_cp(text + pos, len - pos, &cp);
        if (cp == 0x1B && pos + 1 < len && text[pos + 1] == '[') { /* terminal escape */
            size_t end = pos + 2;
            while (end < len && ((text[end] >= '0' && text[end] <= '9') || text[end] == ';'))
                end++;
            if (end < len && ((text[end] >= 'a' && text[end] <= 'z') || (text[end] >= 'A' && text[end] <= 'Z'))) {
                pos = end + 1;
                continue;
            }
        }
        pos += n;
        if (cp == '\r' && pos < len && text[pos] == '\n')
            continue; /* \r\n → \n: the \n follows */
        if (is_latin_ligature(cp) || (cp >= 0xFF01 && cp <= 0xFFEF))
            status = append_compat(out, cp, err);
        else if (cp == 0x3000)
            status = mv_text_buf_append(out, " ", 1, err);
        else
            status = append_after_width(out, cp, err);
    }
    if (status == MV_OK)
        status = mv_text_normalize(out, 1, err);
    return status;
}

static int compare_entity(const void *key, const void *entry)
{
    return strcmp(key, ((const html_entity *)entry)->name);
}

static const char *html5_lookup(const char *name)
{
    const html_entity *hit = bsearch(name, html5_entities, sizeof html5_entities / sizeof html5_entities[0],
                                     sizeof html5_entities[0], compare_entity);
    return hit ? hit->utf8 : NULL;
}

/* CPython html._replace_charref for "&#digits" / "&#xhex": the replacement for number. */
static int append_numeric_charref(mv_text_buf *out, uint32_t number, mv_error *err)
{
    for (size_t i = 0; i < sizeof html_invalid_charrefs / sizeof html_invalid_charrefs[0]; i++)
        if (html_invalid_charrefs[i].number == number)
            return mv_text_buf_append(out, html_invalid_charrefs[i].utf8, strlen(html_invalid_charrefs[i].utf8), err);
    if ((number >= 0xD800 && number <= 0xDFFF) || number > 0x10FFFF)
        return mv_text_buf_append_cp(out, 0xFFFD, err);
    for (size_t i = 0; i < sizeof html_invalid_codepoints / sizeof html_invalid_codepoints[0]; i++)
        if (html_invalid_codepoints[i] == number)
            return MV_OK;
    return mv_text_buf_append_cp(out, (int32_t)number, err);
}

/* Tries a character reference at text[0] == '&'; returns the bytes consumed (0: not a reference,
 * the '&' is literal). */
static size_t unescape_charref(const char *text, size_t len, mv_text_buf *out, int *status, mv_error *err)
{
    size_t pos = 1;
    if (pos < len && text[pos] == '#') {
        int hex = pos + 1 < len && (text[pos + 1] == 'x' || text[pos + 1] == 'X');
        size_t digits = pos + 1 + (size_t)hex, end = digits;
        uint32_t number = 0;
        while (end < len) {
            char c = text[end];
            int value = c >= '0' && c <= '9' ? c - '0'
                      : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (value < 0)
                break;
            number = number > 0x10FFFF ? 0x110000 : number * (hex ? 16 : 10) + (uint32_t)value;
            end++;
        }
        if (end == digits)
            return 0;
        *status = append_numeric_charref(out, number > 0x10FFFF ? 0x110000 : number, err);
        return end < len && text[end] == ';' ? end + 1 : end;
    }
    /* Named: up to 32 code points outside "\t\n\f <&#;", then an optional ';'. */
    size_t ends[HTML_MAX_NAME_CPS + 1]; /* byte end of the name after k code points */
    int n_cps = 0;
    ends[0] = pos;
    while (pos < len && n_cps < HTML_MAX_NAME_CPS && (!text[pos] || !strchr("\t\n\f <&#;", text[pos]))) {
        int32_t cp;
        pos += (size_t)mv_text_next_cp(text + pos, len - pos, &cp);
        ends[++n_cps] = pos;
    }
    if (n_cps == 0)
        return 0;
    size_t name_end = pos < len && text[pos] == ';' ? pos + 1 : pos;
    char name[4 * HTML_MAX_NAME_CPS + 2];
    memcpy(name, text + 1, name_end - 1);
    name[name_end - 1] = '\0';
    const char *value = html5_lookup(name);
    size_t rest = name_end;
    /* Else the longest prefix of at least 2 code points that is an entity (legacy "&ampx"). */
    for (int k = n_cps + (name_end > pos) - 1; !value && k >= 2; k--) {
        size_t prefix_end = k <= n_cps ? ends[k] : name_end;
        name[prefix_end - 1] = '\0';
        value = html5_lookup(name);
        rest = prefix_end;
    }
    if (!value)
        return 0;
    *status = mv_text_buf_append(out, value, strlen(value), err);
    if (*status == MV_OK)
        *status = mv_text_buf_append(out, text + rest, name_end - rest, err);
    return name_end;
}

/* CPython's html.unescape(in) → out. */
static int html_unescape(const char *text, size_t len, mv_text_buf *out, mv_error *err)
{
    out->len = 0;
    int status = mv_text_buf_append(out, "", 0, err);
    for (size_t pos = 0; pos < len && status == MV_OK;) {
        size_t literal = pos;
        while (pos < len && text[pos] != '&')
            pos++;
        status = mv_text_buf_append(out, text + literal, pos - literal, err);
        if (pos == len || status != MV_OK)
            break;
        size_t used = unescape_charref(text + pos, len - pos, out, &status, err);
        if (!used) {
            status = mv_text_buf_append(out, "&", 1, err);
            used = 1;
        }
        pos += used;
    }
    return status;
}

/* Strips Python whitespace at both ends and joins the words with single spaces. */
static int collapse_whitespace(const char *text, size_t len, mv_text_buf *out, mv_error *err)
{
    out->len = 0;
    int status = mv_text_buf_append(out, "", 0, err);
    int pending_space = 0;
    for (size_t pos = 0; pos < len && status == MV_OK;) {
        int32_t cp;
        size_t n = (size_t)mv_text_next_cp(text + pos, len - pos, &cp);
        if (mv_text_is_py_space(cp)) {
            pending_space = out->len > 0;
        } else {
            if (pending_space)
                status = mv_text_buf_append(out, " ", 1, err);
            pending_space = 0;
            if (status == MV_OK)
                status = mv_text_buf_append(out, text + pos, n, err);
        }
        pos += n;
    }
    return status;
}

static int hand_over(mv_text_buf *buf, char **out, size_t *out_len)
{
    *out = buf->data;
    *out_len = buf->len;
    buf->data = NULL;
    return MV_OK;
}

int mv_text_clean_open_clip(const char *text, size_t text_len, char **out, size_t *out_len, mv_error *err)
{
    *out = NULL;
    *out_len = 0;
    int status = mv_text_validate_utf8(text, text_len, MV_EINPUT, "text", err);
    if (status != MV_OK)
        return status;
    mv_text_buf a = {0}, b = {0};
    status = ftfy_subset(text, text_len, &a, err);
    if (status == MV_OK)
        status = html_unescape(a.data ? a.data : "", a.len, &b, err);
    if (status == MV_OK)
        status = html_unescape(b.data, b.len, &a, err);
    /* basic_clean's strip() is subsumed: collapsing strips both ends. */
    if (status == MV_OK)
        status = collapse_whitespace(a.data, a.len, &b, err);
    if (status == MV_OK)
        hand_over(&b, out, out_len);
    mv_text_buf_free(&a);
    mv_text_buf_free(&b);
    return status;
}

int mv_text_clean_himl(const char *text, size_t text_len, char **out, size_t *out_len, mv_error *err)
{
    *out = NULL;
    *out_len = 0;
    int status = mv_text_validate_utf8(text, text_len, MV_EINPUT, "text", err);
    if (status != MV_OK)
        return status;
    while (text_len > 0 && strchr("!?.", text[text_len - 1]) && text[text_len - 1] != '\0')
        text_len--;
    mv_text_buf buf = {0};
    status = mv_text_buf_append(&buf, text, text_len, err);
    if (status == MV_OK)
        return hand_over(&buf, out, out_len);
    mv_text_buf_free(&buf);
    return status;
}
