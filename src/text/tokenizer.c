/* tokenizer.c — owns the WordPiece vocabulary (token → id hash map) and the encoder that reproduces
 * Hugging Face's slow BertTokenizer (transformers tokenization_bert.py + tokenization_utils.py):
 *
 *  1. PreTrainedTokenizer.tokenize: the text is cut at every verbatim special token present in the
 *     vocab ([CLS] [SEP] [PAD] [UNK] [MASK], case-sensitive, leftmost first); each becomes its id.
 *     With do_lower_case the rest is lowercased one code point at a time (HF's regex lowercases each
 *     character separately, so Greek final sigma never applies).
 *  2. BasicTokenizer on each remaining piece: drop NUL, U+FFFD and category C* except \t\n\r; map
 *     " ", \t, \n, \r and Zs to " "; space out CJK ideographs; NFC; split on Python whitespace; per
 *     token (unless it spells a special token): NFD + drop Mn when stripping accents; every
 *     punctuation code point (ASCII 33-47, 58-64, 91-96, 123-126 or category P*) its own word.
 *  3. WordpieceTokenizer per word: > 100 code points → [UNK]; greedy longest-match-first with "##"
 *     continuations; if some position matches nothing the whole word is one [UNK].
 *
 * Lowercasing: Python's str.lower() is the full Unicode mapping; on one code point it differs from
 * utf8proc's simple mapping only for U+0130 'İ' → "i̇" (checked over every code point assigned in
 * Unicode 14 against CPython 3.11), handled explicitly below. HF lowercases again after NFC; that
 * second pass is the identity (lowercase text stays lowercase under NFC, also checked exhaustively on
 * canonical decompositions), so it is done once, before NFC.
 *
 * Unicode version: categories and normalisation come from the installed utf8proc (Unicode 15 for
 * utf8proc 2.8); transformers uses the Python's unicodedata (14 for Python 3.11). Code points assigned
 * after the Python's Unicode version can tokenize differently (Python sees them as Cn = dropped).
 *
 * Thread safety: the tokenizer is read-only after load; encode keeps all state on its stack/heap. */
#include "medvlp/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "medvlp/file.h"
#include "text/text_util.h"

#define MAX_INPUT_CHARS_PER_WORD 100
#define MAX_VOCAB_BYTES ((size_t)256 << 20)

/* The names BertTokenizer treats as special (all_special_tokens), in its attribute order. */
enum { SPECIAL_UNK, SPECIAL_SEP, SPECIAL_PAD, SPECIAL_CLS, SPECIAL_MASK, N_SPECIAL };
static const char *const special_names[N_SPECIAL] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};

typedef struct vocab_slot {
    uint32_t offset; /* into tok->blob */
    uint32_t length;
    int32_t id;      /* -1: empty slot */
} vocab_slot;

struct mv_tokenizer {
    char *blob;             /* vocab.txt bytes; tokens are slices of it */
    vocab_slot *slots;      /* open addressing, power-of-two size */
    size_t slot_mask;
    int n_lines;
    int32_t special_ids[N_SPECIAL];
    int do_lower_case;
    int strip_accents;      /* resolved: 0 or 1 */
    int tokenize_chinese_chars;
};

static uint64_t hash_bytes(const char *bytes, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)bytes[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int32_t vocab_lookup(const mv_tokenizer *tok, const char *bytes, size_t n)
{
    for (size_t i = hash_bytes(bytes, n) & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        const vocab_slot *slot = &tok->slots[i];
        if (slot->id < 0)
            return -1;
        if (slot->length == n && !memcmp(tok->blob + slot->offset, bytes, n))
            return slot->id;
    }
}

/* A repeated token keeps its LAST line, as Python's dict assignment in load_vocab does. */
static void vocab_insert(mv_tokenizer *tok, uint32_t offset, uint32_t length, int32_t id)
{
    const char *bytes = tok->blob + offset;
    for (size_t i = hash_bytes(bytes, length) & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        vocab_slot *slot = &tok->slots[i];
        if (slot->id < 0 || (slot->length == length && !memcmp(tok->blob + slot->offset, bytes, length))) {
            *slot = (vocab_slot){offset, length, id};
            return;
        }
    }
}

void mv_tokenizer_config_default(mv_tokenizer_config *cfg)
{
    *cfg = (mv_tokenizer_config){.do_lower_case = 1, .strip_accents = -1, .tokenize_chinese_chars = 1};
}

/* Lines end at "\n", "\r\n" or "\r": transformers opens vocab.txt in Python's text mode, whose
 * universal newlines turn all three into "\n" before rstrip("\n"). */
static int build_vocab(mv_tokenizer *tok, size_t size, const char *path, mv_error *err)
{
    size_t n_lines = 0;
    for (size_t pos = 0; pos < size; n_lines++) {
        while (pos < size && tok->blob[pos] != '\n' && tok->blob[pos] != '\r')
            pos++;
        if (pos < size)
            pos += (tok->blob[pos] == '\r' && pos + 1 < size && tok->blob[pos + 1] == '\n') ? 2 : 1;
    }
    if (n_lines > (size_t)INT32_MAX / 4)
        return mv_fail(err, MV_EFORMAT, "%s: too many lines for a vocabulary", path);
    size_t n_slots = 16;
    while (n_slots < 2 * n_lines)
        n_slots *= 2;
    tok->slots = malloc(n_slots * sizeof *tok->slots);
    if (!tok->slots)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory for %zu vocab slots", path, n_slots);
    for (size_t i = 0; i < n_slots; i++)
        tok->slots[i].id = -1;
    tok->slot_mask = n_slots - 1;
    tok->n_lines = (int)n_lines;

    size_t pos = 0;
    for (int32_t id = 0; id < (int32_t)n_lines; id++) {
        size_t start = pos;
        while (pos < size && tok->blob[pos] != '\n' && tok->blob[pos] != '\r')
            pos++;
        vocab_insert(tok, (uint32_t)start, (uint32_t)(pos - start), id);
        if (pos < size)
            pos += (tok->blob[pos] == '\r' && pos + 1 < size && tok->blob[pos + 1] == '\n') ? 2 : 1;
    }
    return MV_OK;
}

int mv_tokenizer_load(const char *vocab_path, const mv_tokenizer_config *cfg, mv_tokenizer **out,
                      mv_error *err)
{
    *out = NULL;
    mv_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", vocab_path);
    size_t size = 0;
    int status = mv_file_read_all(vocab_path, MAX_VOCAB_BYTES, &tok->blob, &size, err);
    if (status == MV_OK)
        status = mv_text_validate_utf8(tok->blob, size, MV_EFORMAT, vocab_path, err);
    if (status == MV_OK)
        status = build_vocab(tok, size, vocab_path, err);
    for (int s = 0; status == MV_OK && s < N_SPECIAL; s++) {
        tok->special_ids[s] = vocab_lookup(tok, special_names[s], strlen(special_names[s]));
        if (tok->special_ids[s] < 0 && s != SPECIAL_MASK)
            status = mv_fail(err, MV_EFORMAT, "%s: vocabulary has no %s token (not a BERT WordPiece vocab.txt?)",
                             vocab_path, special_names[s]);
    }
    if (status != MV_OK) {
        mv_tokenizer_free(tok);
        return status;
    }
    tok->do_lower_case = cfg->do_lower_case != 0;
    tok->strip_accents = cfg->strip_accents < 0 ? tok->do_lower_case : cfg->strip_accents != 0;
    tok->tokenize_chinese_chars = cfg->tokenize_chinese_chars != 0;
    *out = tok;
    return MV_OK;
}

void mv_tokenizer_free(mv_tokenizer *tok)
{
    if (!tok)
        return;
    free(tok->blob);
    free(tok->slots);
    free(tok);
}

int mv_tokenizer_vocab_size(const mv_tokenizer *tok) { return tok->n_lines; }
int32_t mv_tokenizer_cls_id(const mv_tokenizer *tok) { return tok->special_ids[SPECIAL_CLS]; }
int32_t mv_tokenizer_sep_id(const mv_tokenizer *tok) { return tok->special_ids[SPECIAL_SEP]; }
int32_t mv_tokenizer_pad_id(const mv_tokenizer *tok) { return tok->special_ids[SPECIAL_PAD]; }
int32_t mv_tokenizer_unk_id(const mv_tokenizer *tok) { return tok->special_ids[SPECIAL_UNK]; }
int32_t mv_tokenizer_mask_id(const mv_tokenizer *tok) { return tok->special_ids[SPECIAL_MASK]; }

/* ---- encoding ---- */

enum { EMIT_MORE = 0, EMIT_FULL = 1 }; /* EMIT_FULL: a piece did not fit, stop tokenizing */

typedef struct encoder {
    const mv_tokenizer *tok;
    int32_t *pieces;   /* the caller's ids + 1, room for max_len - 2 pieces */
    int n_pieces;
    int max_pieces;
    int truncated;
    mv_text_buf text;  /* scratch: the cleaned piece, then its NFC form */
    mv_text_buf word;  /* scratch: one whitespace token after accent stripping */
} encoder;

static int emit(encoder *enc, int32_t id)
{
    if (enc->n_pieces == enc->max_pieces) {
        enc->truncated = 1;
        return EMIT_FULL;
    }
    enc->pieces[enc->n_pieces++] = id;
    return EMIT_MORE;
}

static int is_control(int32_t cp)
{
    if (cp == '\t' || cp == '\n' || cp == '\r')
        return 0;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO:
        return 1;
    default:
        return 0;
    }
}

static int is_bert_whitespace(int32_t cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' ||
           (cp > 0x7F && utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS);
}

static int is_punctuation(int32_t cp)
{
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
        return 1;
    int category = utf8proc_category(cp);
    return category >= UTF8PROC_CATEGORY_PC && category <= UTF8PROC_CATEGORY_PO;
}

static int is_cjk(int32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* WordpieceTokenizer on one word (no whitespace, no punctuation except as a lone character). */
static int wordpiece(encoder *enc, const char *word, size_t len)
{
    const mv_tokenizer *tok = enc->tok;
    size_t cp_offsets[MAX_INPUT_CHARS_PER_WORD + 1];
    int n_cps = 0;
    for (size_t pos = 0; pos < len; n_cps++) {
        if (n_cps == MAX_INPUT_CHARS_PER_WORD)
            return emit(enc, tok->special_ids[SPECIAL_UNK]);
        int32_t cp;
        cp_offsets[n_cps] = pos;
        pos += (size_t)mv_text_next_cp(word + pos, len - pos, &cp);
    }
    cp_offsets[n_cps] = len;

    char key[2 + 4 * MAX_INPUT_CHARS_PER_WORD];
    int32_t ids[MAX_INPUT_CHARS_PER_WORD];
    int n_ids = 0;
    for (int start = 0; start < n_cps;) {
        size_t prefix = start > 0 ? 2 : 0;
        memcpy(key, "##", prefix);
        int32_t id = -1;
        int end = n_cps;
        for (; end > start; end--) {
            size_t piece_len = cp_offsets[end] - cp_offsets[start];
            memcpy(key + prefix, word + cp_offsets[start], piece_len);
            if ((id = vocab_lookup(tok, key, prefix + piece_len)) >= 0)
                break;
        }
        if (id < 0)
            return emit(enc, tok->special_ids[SPECIAL_UNK]);
        ids[n_ids++] = id;
        start = end;
    }
    for (int i = 0; i < n_ids; i++)
        if (emit(enc, ids[i]) == EMIT_FULL)
            return EMIT_FULL;
    return EMIT_MORE;
}

static int is_special_name(const char *bytes, size_t len)
{
    for (int s = 0; s < N_SPECIAL; s++)
        if (strlen(special_names[s]) == len && !memcmp(special_names[s], bytes, len))
            return 1;
    return 0;
}

/* NFD, then drop every nonspacing mark (BasicTokenizer._run_strip_accents), in place. */
static int strip_accents(mv_text_buf *word, mv_error *err)
{
    int status = mv_text_normalize(word, 0, err);
    size_t kept = 0;
    for (size_t pos = 0; status == MV_OK && pos < word->len;) {
        int32_t cp;
        size_t n = (size_t)mv_text_next_cp(word->data + pos, word->len - pos, &cp);
        if (cp <= 0x7F || utf8proc_category(cp) != UTF8PROC_CATEGORY_MN) {
            memmove(word->data + kept, word->data + pos, n);
            kept += n;
        }
        pos += n;
    }
    word->len = kept;
    return status;
}

/* One whitespace token of BasicTokenizer: accent stripping, punctuation split, WordPiece. */
static int basic_token(encoder *enc, const char *token, size_t len, int *stop, mv_error *err)
{
    *stop = 0;
    if (is_special_name(token, len)) { /* never_split: kept whole, then looked up by WordPiece */
        *stop = wordpiece(enc, token, len);
        return MV_OK;
    }
    enc->word.len = 0;
    int status = mv_text_buf_append(&enc->word, token, len, err);
    if (status == MV_OK && enc->tok->strip_accents)
        status = strip_accents(&enc->word, err);
    if (status != MV_OK)
        return status;
    const char *word = enc->word.data;
    size_t run_start = 0;
    for (size_t pos = 0; pos < enc->word.len;) {
        int32_t cp;
        size_t n = (size_t)mv_text_next_cp(word + pos, enc->word.len - pos, &cp);
        if (is_punctuation(cp)) {
            if (run_start < pos && (*stop = wordpiece(enc, word + run_start, pos - run_start)))
                return MV_OK;
            if ((*stop = wordpiece(enc, word + pos, n)))
                return MV_OK;
            run_start = pos + n;
        }
        pos += n;
    }
    if (run_start < enc->word.len)
        *stop = wordpiece(enc, word + run_start, enc->word.len - run_start);
    return MV_OK;
}

/* BasicTokenizer.tokenize + WordPiece on a piece of text that holds no special token. */
static int basic_tokenize(encoder *enc, const char *text, size_t len, int *stop, mv_error *err)
{
    const mv_tokenizer *tok = enc->tok;
    enc->text.len = 0;
    int status = MV_OK;
    for (size_t pos = 0; pos < len && status == MV_OK;) {
        int32_t cp;
        pos += (size_t)mv_text_next_cp(text + pos, len - pos, &cp);
        if (cp == 0 || cp == 0xFFFD || is_control(cp))
            continue;
        if (is_bert_whitespace(cp)) {
            status = mv_text_buf_append(&enc->text, " ", 1, err);
        } else if (tok->tokenize_chinese_chars && is_cjk(cp)) {
            status = mv_text_buf_append(&enc->text, " ", 1, err);
            if (status == MV_OK)
                status = mv_text_buf_append_cp(&enc->text, cp, err);
            if (status == MV_OK)
                status = mv_text_buf_append(&enc->text, " ", 1, err);
        } else if (tok->do_lower_case && cp == 0x130) {
            status = mv_text_buf_append(&enc->text, "i\xcc\x87", 3, err); /* Python: 'İ'.lower() == 'i̇' */
        } else {
            status = mv_text_buf_append_cp(&enc->text, tok->do_lower_case ? utf8proc_tolower(cp) : cp, err);
        }
    }
    if (status == MV_OK)
        status = mv_text_normalize(&enc->text, 1, err);
    *stop = 0;
    const char *clean = enc->text.data;
    size_t clean_len = enc->text.len, token_start = 0;
    for (size_t pos = 0; status == MV_OK && !*stop && pos <= clean_len;) {
        int32_t cp = 0;
        size_t n = pos < clean_len ? (size_t)mv_text_next_cp(clean + pos, clean_len - pos, &cp) : 1;
        if (pos == clean_len || mv_text_is_py_space(cp)) {
            if (token_start < pos)
                status = basic_token(enc, clean + token_start, pos - token_start, stop, err);
            token_start = pos + n;
        }
        pos += n;
    }
    return status;
}

/* Length of the special token spelled at text[0..len), 0 if none; sets *id. */
static size_t special_at(const mv_tokenizer *tok, const char *text, size_t len, int32_t *id)
{
    if (text[0] != '[')
        return 0;
    for (int s = 0; s < N_SPECIAL; s++) {
        size_t n = strlen(special_names[s]);
        if (tok->special_ids[s] >= 0 && n <= len && !memcmp(text, special_names[s], n)) {
            *id = tok->special_ids[s];
            return n;
        }
    }
    return 0;
}

int mv_tokenizer_encode(const mv_tokenizer *tok, const char *text, size_t text_len, int max_len,
                        int32_t *ids, int *n_ids, int *truncated, mv_error *err)
{
    *n_ids = 0;
    if (truncated)
        *truncated = 0;
    if (max_len < 2)
        return mv_fail(err, MV_EINPUT, "max length %d leaves no room for [CLS] and [SEP]", max_len);
    int status = mv_text_validate_utf8(text, text_len, MV_EINPUT, "text", err);
    if (status != MV_OK)
        return status;

    encoder enc = {.tok = tok, .pieces = ids + 1, .max_pieces = max_len - 2};
    int stop = 0;
    size_t piece_start = 0;
    for (size_t pos = 0; status == MV_OK && !stop && pos <= text_len;) {
        int32_t special_id = -1;
        size_t special_len = pos < text_len ? special_at(tok, text + pos, text_len - pos, &special_id) : 0;
        if (pos < text_len && !special_len) {
            pos++;
            continue;
        }
        if (piece_start < pos)
            status = basic_tokenize(&enc, text + piece_start, pos - piece_start, &stop, err);
        if (status == MV_OK && !stop && special_len)
            stop = emit(&enc, special_id);
        pos += special_len ? special_len : 1;
        piece_start = pos;
    }
    mv_text_buf_free(&enc.text);
    mv_text_buf_free(&enc.word);
    if (status != MV_OK)
        return status;
    ids[0] = tok->special_ids[SPECIAL_CLS];
    ids[enc.n_pieces + 1] = tok->special_ids[SPECIAL_SEP];
    *n_ids = enc.n_pieces + 2;
    if (truncated)
        *truncated = enc.truncated;
    return MV_OK;
}
