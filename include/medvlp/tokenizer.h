/* tokenizer.h — BERT WordPiece tokenization, identical to Hugging Face's slow BertTokenizer, and the
 * text cleaning each model family applies before it.
 *
 * Ids are those of `tokenizer(text, max_length=L, truncation=True)["input_ids"]`: [CLS] pieces [SEP],
 * pieces cut to L-2. The exact semantics (clean_text, CJK spacing, NFC, per-code-point full lowercase,
 * NFD accent stripping, punctuation split, special tokens kept whole, greedy WordPiece) are described in
 * src/text/tokenizer.c and MODELS.md §6; tests/reference/bert_tokenizer_ref.py is the Python oracle.
 *
 * A loaded mv_tokenizer is immutable: mv_tokenizer_encode may run concurrently on one tokenizer. */
#ifndef MEDVLP_TOKENIZER_H
#define MEDVLP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "medvlp/error.h"

typedef struct mv_tokenizer mv_tokenizer;

typedef struct mv_tokenizer_config {
    int do_lower_case;          /* 1: lowercase everything but verbatim special tokens */
    int strip_accents;          /* -1 unset (= follow do_lower_case), 0 never, 1 always */
    int tokenize_chinese_chars; /* 1: put spaces around CJK ideographs */
} mv_tokenizer_config;

/* BertTokenizer's defaults: lowercase, accents follow lowercase, CJK spacing on. */
void mv_tokenizer_config_default(mv_tokenizer_config *cfg);

/* Fills cfg from a tokenizer_config.json (keys do_lower_case, strip_accents (null/true/false),
 * tokenize_chinese_chars). A missing file gives the defaults; a malformed one is MV_EFORMAT. */
int mv_tokenizer_config_read(const char *path, mv_tokenizer_config *cfg, mv_error *err);

/* Loads vocab.txt (one token per line, id = 0-based line number). The vocab must hold [CLS], [SEP],
 * [UNK] and [PAD]; [MASK] is optional (without it "[MASK]" in text is ordinary text). */
int mv_tokenizer_load(const char *vocab_path, const mv_tokenizer_config *cfg, mv_tokenizer **out,
                      mv_error *err);
void mv_tokenizer_free(mv_tokenizer *tok);

/* Opens a model directory's tokenizer: DIR/vocab.txt + DIR/tokenizer_config.json (optional). The
 * context length comes from DIR/open_clip_config.json model_cfg.text_cfg.context_length, else
 * DIR/config.json max_position_embeddings, else 512. */
int mv_tokenizer_open_dir(const char *dir, mv_tokenizer **out, int *context_length, mv_error *err);

/* Encodes text (text_len bytes of UTF-8; NUL bytes are allowed and dropped like HF does) into
 * ids[0..*n_ids), at most max_len (>= 2) ids. *truncated is set to 1 when pieces were cut, else 0
 * (truncated may be NULL). Invalid UTF-8 is MV_EINPUT naming the byte offset. */
int mv_tokenizer_encode(const mv_tokenizer *tok, const char *text, size_t text_len, int max_len,
                        int32_t *ids, int *n_ids, int *truncated, mv_error *err);

/* Number of lines of vocab.txt, i.e. one past the largest id. */
int mv_tokenizer_vocab_size(const mv_tokenizer *tok);
int32_t mv_tokenizer_cls_id(const mv_tokenizer *tok);
int32_t mv_tokenizer_sep_id(const mv_tokenizer *tok);
int32_t mv_tokenizer_pad_id(const mv_tokenizer *tok);
int32_t mv_tokenizer_unk_id(const mv_tokenizer *tok);
int32_t mv_tokenizer_mask_id(const mv_tokenizer *tok); /* -1 when the vocab has no [MASK] */

/* ---- Family text cleaning, applied before encoding (each returns a heap string in *out) ---- */

/* open_clip HFTokenizer clean='whitespace' (BiomedCLIP): ftfy.fix_text subset, html.unescape twice,
 * strip, collapse whitespace runs to one space. See src/text/clean.c for the ftfy parts reproduced. */
int mv_text_clean_open_clip(const char *text, size_t text_len, char **out, size_t *out_len, mv_error *err);

/* hi-ml TextInput (CXR-BERT): prompt.rstrip("!?."). */
int mv_text_clean_himl(const char *text, size_t text_len, char **out, size_t *out_len, mv_error *err);

#endif
