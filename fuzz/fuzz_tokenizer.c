/* fuzz_tokenizer.c — arbitrary bytes through both family text cleanings and the WordPiece tokenizer
 * (uncased and cased vocabularies, every config switch, short and long contexts). Byte 0 picks the
 * configuration, the rest is the text. Invariants beyond "no crash": a successful encode returns
 * 2..max_len ids, starts with [CLS], ends with [SEP], and every id is inside the vocabulary. */
#include "medvlp/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>

static mv_tokenizer *tokenizers[8];

static mv_tokenizer *tokenizer_for(int config)
{
    if (!tokenizers[config]) {
        mv_tokenizer_config cfg;
        mv_tokenizer_config_default(&cfg);
        cfg.do_lower_case = config & 1;
        cfg.strip_accents = (config & 2) ? 1 : -1;
        cfg.tokenize_chinese_chars = !(config & 4);
        mv_error err = {0};
        const char *vocab = cfg.do_lower_case ? MV_FUZZ_FIXTURES "/text/vocab_uncased.txt"
                                              : MV_FUZZ_FIXTURES "/text/vocab_cased.txt";
        if (mv_tokenizer_load(vocab, &cfg, &tokenizers[config], &err))
            abort(); /* the fixtures are missing: nothing would be fuzzed */
    }
    return tokenizers[config];
}

static void encode(const mv_tokenizer *tok, const char *text, size_t n, int max_len)
{
    int32_t ids[512];
    int n_ids = 0, truncated = 0;
    mv_error err = {0};
    if (mv_tokenizer_encode(tok, text, n, max_len, ids, &n_ids, &truncated, &err))
        return;
    if (n_ids < 2 || n_ids > max_len || ids[0] != mv_tokenizer_cls_id(tok) || ids[n_ids - 1] != mv_tokenizer_sep_id(tok))
        abort();
    for (int i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= mv_tokenizer_vocab_size(tok))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const mv_tokenizer *tok = tokenizer_for(data[0] & 7);
    int max_len = data[0] & 8 ? 512 : 2 + (data[0] >> 4);
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    encode(tok, text, n, max_len);
    char *clean;
    size_t n_clean;
    mv_error err = {0};
    if (!mv_text_clean_open_clip(text, n, &clean, &n_clean, &err)) {
        encode(tok, clean, n_clean, max_len);
        free(clean);
    }
    if (!mv_text_clean_himl(text, n, &clean, &n_clean, &err)) {
        encode(tok, clean, n_clean, max_len);
        free(clean);
    }
    return 0;
}
