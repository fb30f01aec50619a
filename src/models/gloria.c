/* gloria.c — owns GLoRIA's family-specific math (gloria.h): OpenCV's INTER_AREA resize and GLoRIA's
 * image input and in-model upsample, the text cleaning, the token aggregation over the last BERT
 * layers and the local attention similarity. Facts and sources: MODELS.md §3.
 *
 * INTER_AREA follows OpenCV's resize.cpp algorithm for 8-bit single-channel images (a scalar build):
 * integer factors average boxes (2×2 rounds (s + 2) >> 2 like its SIMD kernel, others round s·(1/area)
 * half-to-even), other reductions use per-axis tables of (dst, src, weight) — weights from double
 * arithmetic stored as float, rows accumulated in float, rounded half-to-even — and enlargement uses
 * INTER_AREA's bilinear coefficients in 11-bit fixed point. Not modelled: OpenCV builds that hand
 * INTER_AREA to Intel IPP, and the SIMD rounding of the enlarging path; either can move a pixel by one
 * level. GLoRIA reads images with cv2.imread(path, 0); colour images are made gray here with PIL's
 * "L" weights (ITU-R 601 in 16-bit fixed point), where OpenCV uses its own (14-bit) — ±1 level. */
#include "models/gloria.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "medvlp/file.h"
#include "medvlp/tensor.h"
#include "text/text_util.h"

mv_gloria_config mv_gloria_config_default(void)
{
    return (mv_gloria_config){.word_num = 97, .last_n_layers = 4, .temp1 = 4.0f, .temp2 = 5.0f, .temp3 = 10.0f,
                              .image_size = 256, .crop_size = 224, .upsample_size = 299};
}

/* ---- OpenCV INTER_AREA ------------------------------------------------------------------------- */

typedef struct area_entry {
    int dst, src;
    float weight;
} area_entry;

/* One axis of OpenCV's area table: destination cell [d·s, d·s + s) clipped to the source, each
 * overlapped source pixel weighted by overlap / cell length. Returns the number of entries
 * (at most src_size + 2·dst_size). */
static int area_table(int src_size, int dst_size, area_entry *tab)
{
    double scale = (double)src_size / dst_size;
    int n = 0;
    for (int d = 0; d < dst_size; d++) {
        double fs1 = d * scale, fs2 = fs1 + scale;
        double cell = fmin(scale, src_size - fs1);
        int s1 = (int)ceil(fs1), s2 = (int)floor(fs2);
        if (s2 > src_size - 1)
            s2 = src_size - 1;
        if (s1 > s2)
            s1 = s2;
        if (s1 - fs1 > 1e-3)
            tab[n++] = (area_entry){d, s1 - 1, (float)((s1 - fs1) / cell)};
        for (int s = s1; s < s2; s++)
            tab[n++] = (area_entry){d, s, (float)(1.0 / cell)};
        if (fs2 - s2 > 1e-3)
            tab[n++] = (area_entry){d, s2, (float)(fmin(fmin(fs2 - s2, 1.0), cell) / cell)};
    }
    return n;
}

static unsigned char round_u8(float v)
{
    long r = lrintf(v);   /* cvRound: half to even */
    return (unsigned char)(r < 0 ? 0 : r > 255 ? 255 : r);
}

static int resize_area_general(const unsigned char *src, int src_w, int src_h, unsigned char *dst, int dst_w,
                               int dst_h, mv_error *err)
{
    area_entry *xtab = malloc(((size_t)src_w + 2 * (size_t)dst_w) * sizeof *xtab);
    area_entry *ytab = malloc(((size_t)src_h + 2 * (size_t)dst_h) * sizeof *ytab);
    float *buf = malloc(2 * (size_t)dst_w * sizeof *buf);
    if (!xtab || !ytab || !buf) {
        free(xtab);
        free(ytab);
        free(buf);
        return mv_fail(err, MV_ENOMEM, "INTER_AREA resize: out of memory");
    }
    float *sum = buf + dst_w;
    int nx = area_table(src_w, dst_w, xtab), ny = area_table(src_h, dst_h, ytab);
    int prev_dy = -1;
    for (int k = 0; k < ny; k++) {
        const unsigned char *row = src + (size_t)ytab[k].src * src_w;
        memset(buf, 0, (size_t)dst_w * sizeof *buf);
        for (int j = 0; j < nx; j++)
            buf[xtab[j].dst] += (float)row[xtab[j].src] * xtab[j].weight;
        float beta = ytab[k].weight;
        if (ytab[k].dst != prev_dy) {
            if (prev_dy >= 0)
                for (int x = 0; x < dst_w; x++)
                    dst[(size_t)prev_dy * dst_w + x] = round_u8(sum[x]);
            for (int x = 0; x < dst_w; x++)
                sum[x] = beta * buf[x];
            prev_dy = ytab[k].dst;
        } else {
            for (int x = 0; x < dst_w; x++)
                sum[x] += beta * buf[x];
        }
    }
    for (int x = 0; x < dst_w; x++)
        dst[(size_t)prev_dy * dst_w + x] = round_u8(sum[x]);
    free(xtab);
    free(ytab);
    free(buf);
    return MV_OK;
}

static void resize_area_box(const unsigned char *src, int src_w, unsigned char *dst, int dst_w, int dst_h,
                            int box_w, int box_h)
{
    float inv_area = 1.0f / (float)(box_w * box_h);
    for (int y = 0; y < dst_h; y++) {
        for (int x = 0; x < dst_w; x++) {
            int total = 0;
            for (int by = 0; by < box_h; by++)
                for (int bx = 0; bx < box_w; bx++)
                    total += src[(size_t)(y * box_h + by) * src_w + (size_t)x * box_w + bx];
            dst[(size_t)y * dst_w + x] = box_w == 2 && box_h == 2 ? (unsigned char)((total + 2) >> 2)
                                                                  : round_u8((float)total * inv_area);
        }
    }
}

/* INTER_AREA's enlarging coefficients on one axis: first source index and 11-bit weights. */
static void enlarge_axis(int src_size, int dst_size, int *first, int (*weights)[2])
{
    double scale = (double)src_size / dst_size, inv_scale = (double)dst_size / src_size;
    for (int d = 0; d < dst_size; d++) {
        int s = (int)floor(d * scale);
        float f = (float)((d + 1) - (s + 1) * inv_scale);
        f = f <= 0 ? 0.0f : f - floorf(f);
        if (s < 0) {
            s = 0;
            f = 0.0f;
        }
        if (s >= src_size - 1) {
            s = src_size - 1;
            f = 0.0f;
        }
        first[d] = s;
        weights[d][0] = (int)lrintf((1.0f - f) * 2048.0f);
        weights[d][1] = (int)lrintf(f * 2048.0f);
    }
}

static int resize_area_enlarge(const unsigned char *src, int src_w, int src_h, unsigned char *dst, int dst_w,
                               int dst_h, mv_error *err)
{
    int *xs = malloc(((size_t)dst_w + dst_h) * sizeof *xs);
    int (*xw)[2] = malloc(((size_t)dst_w + dst_h) * sizeof *xw);
    int64_t *rows = malloc((size_t)src_h * dst_w * sizeof *rows);
    if (!xs || !xw || !rows) {
        free(xs);
        free(xw);
        free(rows);
        return mv_fail(err, MV_ENOMEM, "INTER_AREA resize: out of memory");
    }
    int *ys = xs + dst_w;
    int (*yw)[2] = xw + dst_w;
    enlarge_axis(src_w, dst_w, xs, xw);
    enlarge_axis(src_h, dst_h, ys, yw);
    for (int y = 0; y < src_h; y++) {
        const unsigned char *row = src + (size_t)y * src_w;
        for (int x = 0; x < dst_w; x++) {
            int s = xs[x];
            int64_t v = (int64_t)row[s] * xw[x][0];
            if (s + 1 < src_w)
                v += (int64_t)row[s + 1] * xw[x][1];
            rows[(size_t)y * dst_w + x] = v;
        }
    }
    for (int y = 0; y < dst_h; y++) {
        const int64_t *r0 = rows + (size_t)ys[y] * dst_w;
        const int64_t *r1 = rows + (size_t)(ys[y] + 1 < src_h ? ys[y] + 1 : ys[y]) * dst_w;
        for (int x = 0; x < dst_w; x++) {
            int64_t v = (r0[x] * yw[y][0] + r1[x] * yw[y][1] + ((int64_t)1 << 21)) >> 22;
            dst[(size_t)y * dst_w + x] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    free(xs);
    free(xw);
    free(rows);
    return MV_OK;
}

int mv_resize_area_u8(const unsigned char *src, int src_w, int src_h, unsigned char *dst, int dst_w, int dst_h,
                      mv_error *err)
{
    if (src_w <= 0 || src_h <= 0 || dst_w <= 0 || dst_h <= 0)
        return mv_fail(err, MV_EINPUT, "INTER_AREA resize: %dx%d -> %dx%d", src_w, src_h, dst_w, dst_h);
    if (src_w == dst_w && src_h == dst_h) {
        memcpy(dst, src, (size_t)src_w * src_h);
        return MV_OK;
    }
    if (src_w >= dst_w && src_h >= dst_h) {
        if (src_w % dst_w == 0 && src_h % dst_h == 0) {
            resize_area_box(src, src_w, dst, dst_w, dst_h, src_w / dst_w, src_h / dst_h);
            return MV_OK;
        }
        return resize_area_general(src, src_w, src_h, dst, dst_w, dst_h, err);
    }
    return resize_area_enlarge(src, src_w, src_h, dst, dst_w, dst_h, err);
}

/* ---- image input ------------------------------------------------------------------------------- */

int mv_gloria_preprocess(const mv_image *img, const mv_gloria_config *cfg, float *out, mv_error *err)
{
    int size = cfg->image_size, crop = cfg->crop_size;
    if (crop <= 0 || crop > size)
        return mv_fail(err, MV_EINPUT, "GLoRIA preprocess: crop %d must be within 1..image size %d", crop, size);
    int w = img->width, h = img->height, new_w, new_h;
    if (h >= w) { /* the height is the longer side (or a tie): GLoRIA's max_ind == 0 branch */
        new_h = size;
        new_w = (int)((double)w * ((double)size / h));
    } else {
        new_w = size;
        new_h = (int)((double)h * ((double)size / w));
    }
    if (new_w < 1 || new_h < 1)
        return mv_fail(err, MV_EINPUT, "GLoRIA preprocess: a %dx%d image is too thin to resize to %d", w, h, size);

    unsigned char *gray = malloc((size_t)w * h), *resized = malloc((size_t)new_w * new_h);
    int rc = MV_OK;
    if (!gray || !resized) {
        rc = mv_fail(err, MV_ENOMEM, "GLoRIA preprocess: out of memory");
        goto done;
    }
    if ((rc = mv_image_to_gray(img, gray, err)) || (rc = mv_resize_area_u8(gray, w, h, resized, new_w, new_h, err)))
        goto done;

    /* Zero padding to size×size (floor before), then torchvision's CenterCrop offset
     * int(round((size - crop) / 2)) with Python's half-to-even rounding. */
    int pad_top = (size - new_h) / 2, pad_left = (size - new_w) / 2;
    int excess = size - crop, offset = excess / 2;
    if (excess % 2 && offset % 2)
        offset++;
    float table[256];
    for (int v = 0; v < 256; v++)
        table[v] = ((float)v / 255.0f - 0.5f) / 0.5f;
    size_t plane = (size_t)crop * crop;
    for (int y = 0; y < crop; y++) {
        int ry = y + offset - pad_top;
        for (int x = 0; x < crop; x++) {
            int rx = x + offset - pad_left;
            int inside = ry >= 0 && ry < new_h && rx >= 0 && rx < new_w;
            out[(size_t)y * crop + x] = table[inside ? resized[(size_t)ry * new_w + rx] : 0];
        }
    }
    memcpy(out + plane, out, plane * sizeof *out);
    memcpy(out + 2 * plane, out, plane * sizeof *out);
done:
    free(gray);
    free(resized);
    return rc;
}

/* ---- the model's upsample ----------------------------------------------------------------------- */

void mv_gloria_upsample(const float *in, int in_size, float *out, int out_size)
{
    float scale = out_size > 1 ? (float)(in_size - 1) / (float)(out_size - 1) : 0.0f;
    for (int oy = 0; oy < out_size; oy++) {
        float sy = scale * (float)oy;
        int y0 = (int)sy, y1 = y0 + (y0 < in_size - 1);
        float ly1 = sy - (float)y0, ly0 = 1.0f - ly1;
        for (int ox = 0; ox < out_size; ox++) {
            float sx = scale * (float)ox;
            int x0 = (int)sx, x1 = x0 + (x0 < in_size - 1);
            float lx1 = sx - (float)x0, lx0 = 1.0f - lx1;
            out[(size_t)oy * out_size + ox] =
                ly0 * (lx0 * in[(size_t)y0 * in_size + x0] + lx1 * in[(size_t)y0 * in_size + x1]) +
                ly1 * (lx0 * in[(size_t)y1 * in_size + x0] + lx1 * in[(size_t)y1 * in_size + x1]);
        }
    }
}

int mv_gloria_model_input(const mv_image *img, const mv_gloria_config *cfg, float *out, float *scratch,
                          mv_error *err)
{
    int rc = mv_gloria_preprocess(img, cfg, scratch, err);
    if (rc)
        return rc;
    size_t in_plane = (size_t)cfg->crop_size * cfg->crop_size;
    size_t out_plane = (size_t)cfg->upsample_size * cfg->upsample_size;
    for (int c = 0; c < 3; c++)
        mv_gloria_upsample(scratch + c * in_plane, cfg->crop_size, out + c * out_plane, cfg->upsample_size);
    return MV_OK;
}

/* ---- text cleaning ----------------------------------------------------------------------------- */

/* Python's re \w on str: str.isalnum() (letters and numbers of every script) or "_". */
static int is_word_cp(int32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') || cp == '_';
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return 1;
    default:
        return 0;
    }
}

/* Appends one piece's sentence (its words' ASCII parts joined by " ") to out, unless the piece has
 * at most one \w+ word. "\ufffd\ufffd" → " " needs no step of its own: U+FFFD is not a word character,
 * so it already separates words. Lowercasing is per code point; the one unconditional multi-character
 * lowercase, U+0130 → "i" + U+0307 (not a word character), ends the word after the "i". */
static int clean_piece(const char *piece, size_t len, mv_text_buf *out, int *n_sentences, mv_error *err)
{
    size_t start_len = out->len;
    if (*n_sentences > 0 && mv_text_buf_append(out, " ", 1, err))
        return err->code;
    size_t sentence_start = out->len;
    int n_words = 0, in_word = 0, word_has_ascii = 0;
    for (size_t pos = 0; pos < len;) {
        int32_t cp;
        pos += (size_t)mv_text_next_cp(piece + pos, len - pos, &cp);
        int breaks_after = cp == 0x130;
        cp = cp == 0x130 ? 'i' : utf8proc_tolower(cp);
        if (!is_word_cp(cp)) {
            in_word = 0;
            continue;
        }
        if (!in_word) {
            n_words++;
            in_word = 1;
            word_has_ascii = 0;
        }
        if (cp < 0x80) {
            /* a word's first ASCII character opens it in the output, after a separator */
            if (!word_has_ascii && out->len > sentence_start && mv_text_buf_append(out, " ", 1, err))
                return err->code;
            char c = (char)cp;
            if (mv_text_buf_append(out, &c, 1, err))
                return err->code;
            word_has_ascii = 1;
        }
        if (breaks_after)
            in_word = 0;
    }
    if (n_words <= 1) {
        out->len = start_len;
        if (out->data)
            out->data[out->len] = '\0';
    } else
        (*n_sentences)++;
    return MV_OK;
}

int mv_gloria_clean_text(const char *text, size_t text_len, char **out, size_t *out_len, mv_error *err)
{
    int rc = mv_text_validate_utf8(text, text_len, MV_EINPUT, "text", err);
    if (rc)
        return rc;
    mv_text_buf buf = {0};
    int n_sentences = 0;
    /* Splitting on /[0-9]+\./ and then on "." cuts at every "." and drops the run of ASCII digits just
     * before it; both separators are ASCII, so the cut works on bytes. */
    size_t piece_start = 0;
    for (size_t pos = 0; pos <= text_len; pos++) {
        if (pos < text_len && text[pos] != '.')
            continue;
        size_t end = pos;
        if (pos < text_len)
            while (end > piece_start && text[end - 1] >= '0' && text[end - 1] <= '9')
                end--;
        if ((rc = clean_piece(text + piece_start, end - piece_start, &buf, &n_sentences, err))) {
            mv_text_buf_free(&buf);
            return rc;
        }
        piece_start = pos + 1;
    }
    if ((rc = mv_text_buf_append(&buf, "", 0, err))) {   /* an empty result is still a string */
        mv_text_buf_free(&buf);
        return rc;
    }
    *out_len = buf.len;
    *out = buf.data;
    return MV_OK;
}

/* ---- text aggregation ------------------------------------------------------------------------- */

/* Which vocab ids are "##" continuation pieces, and the id of "[SEP]" (id = 0-based line number). */
static int read_vocab_pieces(mv_gloria_text *g, const char *vocab_path, mv_error *err)
{
    char *data;
    size_t size;
    int rc = mv_file_read_all(vocab_path, (size_t)256 << 20, &data, &size, err);
    if (rc)
        return rc;
    int n_lines = 0;
    for (size_t i = 0; i < size; i++)
        n_lines += data[i] == '\n';
    if (size > 0 && data[size - 1] != '\n')
        n_lines++;
    g->is_piece = calloc((size_t)n_lines + 1, 1);
    if (!g->is_piece) {
        free(data);
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", vocab_path);
    }
    g->sep_id = -1;
    size_t line = 0;
    for (int id = 0; id < n_lines; id++) {
        size_t end = line;
        while (end < size && data[end] != '\n')
            end++;
        size_t len = end - line;
        if (len > 0 && data[end - 1] == '\r')   /* text-mode reading folds "\r\n" */
            len--;
        g->is_piece[id] = len >= 2 && data[line] == '#' && data[line + 1] == '#';
        if (g->sep_id < 0 && len == 5 && !memcmp(data + line, "[SEP]", 5))
            g->sep_id = id;
        line = end + 1;
    }
    free(data);
    g->vocab_size = n_lines;
    if (g->sep_id < 0)
        return mv_fail(err, MV_EFORMAT, "%s: the vocabulary has no [SEP]", vocab_path);
    return MV_OK;
}

int mv_gloria_text_init(mv_gloria_text *g, const mv_gloria_config *cfg, const mv_bert_config *bert_cfg,
                        const char *vocab_path, mv_error *err)
{
    memset(g, 0, sizeof *g);
    g->config = *cfg;
    g->n_layers = bert_cfg->n_layers;
    g->hidden = bert_cfg->hidden_size;
    if (cfg->last_n_layers < 1 || cfg->last_n_layers > g->n_layers)
        return mv_fail(err, MV_EFORMAT, "GLoRIA: last_n_layers %d is outside 1..%d (the BERT's layers)",
                       cfg->last_n_layers, g->n_layers);
    if (cfg->word_num < 2 || cfg->word_num > bert_cfg->max_positions)
        return mv_fail(err, MV_EFORMAT, "GLoRIA: word_num %d is outside 2..%d (the position table)", cfg->word_num,
                       bert_cfg->max_positions);
    int rc = read_vocab_pieces(g, vocab_path, err);
    if (rc)
        goto fail;
    size_t layer_floats = (size_t)cfg->word_num * g->hidden;
    g->hidden_states = calloc((size_t)g->n_layers + 1, sizeof *g->hidden_states);
    g->words = malloc((size_t)cfg->last_n_layers * layer_floats * sizeof(float));
    if (!g->hidden_states || !g->words) {
        rc = mv_fail(err, MV_ENOMEM, "GLoRIA text: out of memory");
        goto fail;
    }
    for (int l = g->n_layers + 1 - cfg->last_n_layers; l <= g->n_layers; l++) {
        if (!(g->hidden_states[l] = malloc(layer_floats * sizeof(float)))) {
            rc = mv_fail(err, MV_ENOMEM, "GLoRIA text: out of memory");
            goto fail;
        }
    }
    return MV_OK;
fail:
    mv_gloria_text_free(g);
    return rc;
}

void mv_gloria_text_free(mv_gloria_text *g)
{
    if (g->hidden_states)
        for (int l = 0; l <= g->n_layers; l++)
            free(g->hidden_states[l]);
    free(g->hidden_states);
    free(g->words);
    free(g->is_piece);
    memset(g, 0, sizeof *g);
}

/* GLoRIA's aggregate_tokens on one layer: a word is a token plus the "##" pieces after it, summed;
 * [CLS] is a word, [SEP] closes the last word, becomes a word itself and ends the walk. Rows after
 * the last word are zero. Returns the number of words. */
static int aggregate_words(const mv_gloria_text *g, const int32_t *ids, int n_ids, const float *h, float *words)
{
    int n_words = 0, open = 0;
    memset(words, 0, (size_t)g->config.word_num * g->hidden * sizeof *words);
    for (int p = 0; p < n_ids; p++) {
        int continues = ids[p] != g->sep_id && g->is_piece[ids[p]];
        if (open && !continues)
            n_words++;   /* the word being built is complete */
        mv_add(words + (size_t)n_words * g->hidden, h + (size_t)p * g->hidden, (size_t)g->hidden);
        open = 1;
        if (ids[p] == g->sep_id)
            return n_words + 1;
    }
    return n_words + open;
}

int mv_gloria_text_forward(mv_gloria_text *g, const mv_bert *bert, mv_bert_state *state, const int32_t *ids,
                           int n_ids, float *word_emb, int *n_words, float *sent_emb, mv_error *err)
{
    const mv_gloria_config *cfg = &g->config;
    int hidden = g->hidden;
    if (n_ids < 2 || n_ids > cfg->word_num)
        return mv_fail(err, MV_EINPUT, "GLoRIA: a text of %d tokens (expected 2..%d)", n_ids, cfg->word_num);
    for (int p = 0; p < n_ids; p++)
        if (ids[p] < 0 || ids[p] >= g->vocab_size)
            return mv_fail(err, MV_EINPUT, "GLoRIA: token id %d is outside the vocabulary (%d)", ids[p],
                           g->vocab_size);
    mv_bert_batch batch = {ids, &n_ids, 1};
    int rc = mv_bert_state_reserve(state, &bert->config, n_ids, n_ids, err);
    if (!rc)
        rc = mv_bert_forward(bert, state, &batch, g->hidden_states, err);
    if (rc)
        return rc;
    size_t layer_floats = (size_t)cfg->word_num * hidden;
    int count = 0;
    for (int l = 0; l < cfg->last_n_layers; l++)
        count = aggregate_words(g, ids, n_ids, g->hidden_states[g->n_layers + 1 - cfg->last_n_layers + l],
                                g->words + l * layer_floats);
    if (n_words)
        *n_words = count;
    if (word_emb) {
        memcpy(word_emb, g->words, layer_floats * sizeof *word_emb);
        for (int l = 1; l < cfg->last_n_layers; l++)
            mv_add(word_emb, g->words + l * layer_floats, layer_floats);
    }
    if (sent_emb) {
        memset(sent_emb, 0, (size_t)hidden * sizeof *sent_emb);
        for (int l = 0; l < cfg->last_n_layers; l++)
            for (int w = 0; w < count; w++)
                mv_add(sent_emb, g->words + l * layer_floats + (size_t)w * hidden, (size_t)hidden);
        mv_scale(sent_emb, 1.0f / (float)cfg->word_num, (size_t)hidden);   /* GLoRIA's mean over padding too */
    }
    return MV_OK;
}

/* ---- local similarity -------------------------------------------------------------------------- */

size_t mv_gloria_local_scratch_size(int n_query, int n_regions, int dim)
{
    return 2 * (size_t)n_query * n_regions + (size_t)n_query * dim;
}

double mv_gloria_local_similarity(const float *word_emb, int n_query, const float *regions, int n_regions,
                                  int dim, float temp1, float temp2, float *scratch)
{
    const float *query = word_emb + dim;   /* skip [CLS] */
    float *region_word = scratch;                                   /* [regions, words] */
    float *word_region = scratch + (size_t)n_query * n_regions;     /* [words, regions] */
    float *attended = word_region + (size_t)n_query * n_regions;    /* [words, dim] */
    mv_gemm(0, 1, n_regions, n_query, dim, 1.0f, regions, dim, query, dim, 0.0f, region_word, n_query);
    mv_softmax_rows(region_word, n_regions, n_query);   /* each region's attention over the words */
    for (int r = 0; r < n_regions; r++)
        for (int w = 0; w < n_query; w++)
            word_region[(size_t)w * n_regions + r] = region_word[(size_t)r * n_query + w] * temp1;
    mv_softmax_rows(word_region, n_query, n_regions);   /* each word's attention over the regions */
    mv_gemm(0, 0, n_query, dim, n_regions, 1.0f, word_region, n_regions, regions, dim, 0.0f, attended, dim);
    double best = -INFINITY;
    for (int w = 0; w < n_query; w++) {
        const float *q = query + (size_t)w * dim, *c = attended + (size_t)w * dim;
        double dot = 0, qq = 0, cc = 0;
        for (int i = 0; i < dim; i++) {
            dot += (double)q[i] * c[i];
            qq += (double)q[i] * q[i];
            cc += (double)c[i] * c[i];
        }
        double cosine = dot / fmax(sqrt(qq) * sqrt(cc), 1e-8);
        double score = exp(cosine * temp2);
        best = score > best ? score : best;
    }
    return log(best);
}
