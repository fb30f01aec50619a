/* test_tokenizer.c — the C WordPiece tokenizer against tests/reference/bert_tokenizer_ref.py (HF slow
 * BertTokenizer port): every corpus line, three configurations; plus vocab, config and input errors. */
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "medvlp/tokenizer.h"
#include "../test.h"

#define MAX_LINES 1024
#define MAX_IDS 512

static char fixtures[4096];
static char *corpus[MAX_LINES];
static size_t corpus_len[MAX_LINES];
static int n_corpus;

static void fixture_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/text/%s", fixtures, name);
}

static void load_corpus(void)
{
    char path[4200];
    fixture_path(path, sizeof path, "corpus.jsonl");
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0 && n_corpus < MAX_LINES) {
        json_error_t jerr;
        json_t *s = json_loadb(line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        CHECK_MSG(s && json_is_string(s), "corpus line %d: %s", n_corpus + 1, jerr.text);
        if (!s)
            continue;
        corpus_len[n_corpus] = json_string_length(s);
        corpus[n_corpus] = malloc(corpus_len[n_corpus] + 1);
        memcpy(corpus[n_corpus], json_string_value(s), corpus_len[n_corpus] + 1);
        n_corpus++;
        json_decref(s);
    }
    free(line);
    fclose(f);
}

/* Compares every corpus line with the expected ids; returns the number of matching lines. */
static int check_config(const char *vocab, int lower, int max_len, const char *expected_name)
{
    char vocab_path[4200], expected_path[4200];
    fixture_path(vocab_path, sizeof vocab_path, vocab);
    fixture_path(expected_path, sizeof expected_path, expected_name);
    mv_tokenizer_config cfg;
    mv_tokenizer_config_default(&cfg);
    cfg.do_lower_case = lower;
    mv_tokenizer *tok = NULL;
    mv_error err = {0};
    int status = mv_tokenizer_load(vocab_path, &cfg, &tok, &err);
    CHECK_MSG(status == MV_OK, "%s", err.message);
    FILE *f = fopen(expected_path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", expected_path);
    if (status != MV_OK || !f) {
        if (f)
            fclose(f);
        mv_tokenizer_free(tok);
        return 0;
    }
    int matches = 0, line_no = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0 && line_no < n_corpus) {
        json_t *expected = json_loads(line, 0, NULL);
        int32_t ids[MAX_IDS];
        int n_ids = 0, truncated = 0;
        status = mv_tokenizer_encode(tok, corpus[line_no], corpus_len[line_no], max_len, ids, &n_ids, &truncated, &err);
        int same = status == MV_OK && expected && (int)json_array_size(expected) == n_ids;
        for (int i = 0; same && i < n_ids; i++)
            same = json_integer_value(json_array_get(expected, (size_t)i)) == ids[i];
        if (same)
            matches++;
        else
            fprintf(stderr, "%s line %d differs (status %d, %d ids vs %zu)\n", expected_name, line_no + 1, status,
                    n_ids, json_array_size(expected));
        json_decref(expected);
        line_no++;
    }
    free(line);
    fclose(f);
    CHECK_INT_EQ(line_no, n_corpus);
    fprintf(stderr, "%s: %d/%d corpus lines match\n", expected_name, matches, n_corpus);
    CHECK_INT_EQ(matches, n_corpus);
    mv_tokenizer_free(tok);
    return matches;
}

static mv_tokenizer *load(const char *vocab_name, int lower)
{
    char path[4200];
    fixture_path(path, sizeof path, vocab_name);
    mv_tokenizer_config cfg;
    mv_tokenizer_config_default(&cfg);
    cfg.do_lower_case = lower;
    mv_tokenizer *tok = NULL;
    mv_error err = {0};
    CHECK_MSG(mv_tokenizer_load(path, &cfg, &tok, &err) == MV_OK, "%s", err.message);
    return tok;
}

static void test_special_ids(void)
{
    mv_tokenizer *uncased = load("vocab_uncased.txt", 1), *cased = load("vocab_cased.txt", 0);
    if (!uncased || !cased)
        return;
    CHECK_INT_EQ(mv_tokenizer_pad_id(uncased), 0);
    CHECK_INT_EQ(mv_tokenizer_unk_id(uncased), 1);
    CHECK_INT_EQ(mv_tokenizer_cls_id(uncased), 2);
    CHECK_INT_EQ(mv_tokenizer_sep_id(uncased), 3);
    CHECK_INT_EQ(mv_tokenizer_mask_id(uncased), 4);
    CHECK_INT_EQ(mv_tokenizer_pad_id(cased), 0);
    CHECK_INT_EQ(mv_tokenizer_unk_id(cased), 100);
    CHECK_INT_EQ(mv_tokenizer_cls_id(cased), 101);
    CHECK_INT_EQ(mv_tokenizer_sep_id(cased), 102);
    CHECK_INT_EQ(mv_tokenizer_mask_id(cased), 103);
    CHECK_INT_EQ(mv_tokenizer_vocab_size(uncased), 730);
    CHECK_INT_EQ(mv_tokenizer_vocab_size(cased), 1018);

    /* Invalid UTF-8 is the caller's fault and names the offset. */
    static const struct { const char *bytes; size_t len; const char *offset; } bad[] = {
        {"ok \xff", 4, "offset 3"}, {"\xc0\x80", 2, "offset 0"}, {"ab\xed\xa0\x80", 5, "offset 2"},
        {"\xe2\x82", 2, "offset 0"}, {"x\xf4\x90\x80\x80", 5, "offset 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t ids[8];
        int n_ids = -1;
        mv_error err = {0};
        CHECK_INT_EQ(mv_tokenizer_encode(uncased, bad[i].bytes, bad[i].len, 8, ids, &n_ids, NULL, &err), MV_EINPUT);
        CHECK_STR_CONTAINS(err.message, "invalid UTF-8");
        CHECK_STR_CONTAINS(err.message, bad[i].offset);
        CHECK_INT_EQ(n_ids, 0);
    }
    /* max_len must hold [CLS] and [SEP]; exactly 2 gives [CLS][SEP] and a truncation flag. */
    int32_t ids[4];
    int n_ids = 0, truncated = 0;
    mv_error err = {0};
    CHECK_INT_EQ(mv_tokenizer_encode(uncased, "no", 2, 1, ids, &n_ids, &truncated, &err), MV_EINPUT);
    CHECK_INT_EQ(mv_tokenizer_encode(uncased, "no", 2, 2, ids, &n_ids, &truncated, &err), MV_OK);
    CHECK_INT_EQ(n_ids, 2);
    CHECK_INT_EQ(truncated, 1);
    CHECK_INT_EQ(mv_tokenizer_encode(uncased, "", 0, 2, ids, &n_ids, &truncated, &err), MV_OK);
    CHECK_INT_EQ(n_ids, 2);
    CHECK_INT_EQ(truncated, 0);
    CHECK_INT_EQ(ids[0], 2);
    CHECK_INT_EQ(ids[1], 3);
    mv_tokenizer_free(uncased);
    mv_tokenizer_free(cased);
}

static char tmpdir[] = "/tmp/medvlp_text_XXXXXX";

static void write_file(const char *name, const char *bytes, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fwrite(bytes, 1, len, f);
        fclose(f);
    }
}

static int load_tmp(const char *name, mv_tokenizer **tok, mv_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    mv_tokenizer_config cfg;
    mv_tokenizer_config_default(&cfg);
    return mv_tokenizer_load(path, &cfg, tok, err);
}

static void test_vocab_files(void)
{
    mv_tokenizer *tok = NULL;
    mv_error err = {0};
    CHECK(load_tmp("missing.txt", &tok, &err) != MV_OK);
    CHECK_STR_CONTAINS(err.message, "missing.txt");
    CHECK(tok == NULL);

    static const char no_cls[] = "[PAD]\n[UNK]\n[SEP]\n[MASK]\nno\n";
    write_file("no_cls.txt", no_cls, sizeof no_cls - 1);
    CHECK_INT_EQ(load_tmp("no_cls.txt", &tok, &err), MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, "[CLS]");
    write_file("empty.txt", "", 0);
    CHECK_INT_EQ(load_tmp("empty.txt", &tok, &err), MV_EFORMAT);
    static const char bad_utf8[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n\xc3\x28\n";
    write_file("bad_utf8.txt", bad_utf8, sizeof bad_utf8 - 1);
    CHECK_INT_EQ(load_tmp("bad_utf8.txt", &tok, &err), MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, "invalid UTF-8");

    /* Universal newlines (as Python's text mode): \r\n and \r end lines; a repeated token keeps its
     * last line; no [MASK] is allowed and then "[MASK]" is ordinary text; trailing spaces are kept. */
    static const char crlf[] = "[PAD]\r\n[UNK]\r[CLS]\n[SEP]\r\nno\r\nacute \nacute\r\n[\nmask\n]\nno\n##ne";
    write_file("crlf.txt", crlf, sizeof crlf - 1);
    CHECK_INT_EQ(load_tmp("crlf.txt", &tok, &err), MV_OK);
    if (tok) {
        int32_t ids[16];
        int n_ids = 0;
        CHECK_INT_EQ(mv_tokenizer_vocab_size(tok), 12);
        CHECK_INT_EQ(mv_tokenizer_mask_id(tok), -1);
        CHECK_INT_EQ(mv_tokenizer_encode(tok, "No acute [MASK] none", 20, 16, ids, &n_ids, NULL, &err), MV_OK);
        static const int32_t expected[] = {2, 10, 6, 7, 8, 9, 10, 11, 3};
        CHECK_INT_EQ(n_ids, 9);
        for (int i = 0; i < 9 && i < n_ids; i++)
            CHECK_INT_EQ(ids[i], expected[i]);
        mv_tokenizer_free(tok);
    }
}

static void test_config_and_dir(void)
{
    mv_tokenizer_config cfg;
    mv_error err = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/absent.json", tmpdir);
    CHECK_INT_EQ(mv_tokenizer_config_read(path, &cfg, &err), MV_OK);
    CHECK(cfg.do_lower_case == 1 && cfg.strip_accents == -1 && cfg.tokenize_chinese_chars == 1);
    static const char cased[] = "{\"do_lower_case\": false, \"strip_accents\": true, \"tokenize_chinese_chars\": false}";
    write_file("tokenizer_config.json", cased, sizeof cased - 1);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", tmpdir);
    CHECK_INT_EQ(mv_tokenizer_config_read(path, &cfg, &err), MV_OK);
    CHECK(cfg.do_lower_case == 0 && cfg.strip_accents == 1 && cfg.tokenize_chinese_chars == 0);
    static const char nulls[] = "{\"do_lower_case\": true, \"strip_accents\": null}";
    write_file("tokenizer_config.json", nulls, sizeof nulls - 1);
    CHECK_INT_EQ(mv_tokenizer_config_read(path, &cfg, &err), MV_OK);
    CHECK(cfg.do_lower_case == 1 && cfg.strip_accents == -1);
    static const char wrong_type[] = "{\"do_lower_case\": \"yes\"}";
    write_file("tokenizer_config.json", wrong_type, sizeof wrong_type - 1);
    CHECK_INT_EQ(mv_tokenizer_config_read(path, &cfg, &err), MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, "do_lower_case");
    write_file("tokenizer_config.json", "{oops", 5);
    CHECK_INT_EQ(mv_tokenizer_config_read(path, &cfg, &err), MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, "invalid JSON");
    unlink(path);

    /* Directory: vocab + context length from open_clip_config.json, else config.json, else 512. */
    static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nno\n";
    write_file("vocab.txt", vocab, sizeof vocab - 1);
    mv_tokenizer *tok = NULL;
    int context = 0;
    CHECK_INT_EQ(mv_tokenizer_open_dir(tmpdir, &tok, &context, &err), MV_OK);
    CHECK_INT_EQ(context, 512);
    mv_tokenizer_free(tok);
    static const char hf[] = "{\"max_position_embeddings\": 128}";
    write_file("config.json", hf, sizeof hf - 1);
    CHECK_INT_EQ(mv_tokenizer_open_dir(tmpdir, &tok, &context, &err), MV_OK);
    CHECK_INT_EQ(context, 128);
    mv_tokenizer_free(tok);
    static const char oc[] = "{\"model_cfg\": {\"text_cfg\": {\"context_length\": 256}}}";
    write_file("open_clip_config.json", oc, sizeof oc - 1);
    CHECK_INT_EQ(mv_tokenizer_open_dir(tmpdir, &tok, &context, &err), MV_OK);
    CHECK_INT_EQ(context, 256);
    mv_tokenizer_free(tok);
    static const char bad_oc[] = "{\"model_cfg\": {\"text_cfg\": {\"context_length\": \"256\"}}}";
    write_file("open_clip_config.json", bad_oc, sizeof bad_oc - 1);
    CHECK_INT_EQ(mv_tokenizer_open_dir(tmpdir, &tok, &context, &err), MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, "context_length");
    CHECK(tok == NULL);
    static const char *const names[] = {"vocab.txt", "config.json", "open_clip_config.json", "no_cls.txt",
                                        "empty.txt", "bad_utf8.txt", "crlf.txt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    CHECK(mv_tokenizer_open_dir(tmpdir, &tok, &context, &err) != MV_OK);
    CHECK(tok == NULL);
    CHECK_STR_CONTAINS(err.message, "vocab.txt");
}

/* Concurrent encodes on one tokenizer give the single-threaded ids (run under TSan/ASan). */
typedef struct { const mv_tokenizer *tok; int mismatches; } thread_job;

static void *encode_all(void *arg)
{
    thread_job *job = arg;
    for (int i = 0; i < n_corpus; i++) {
        int32_t a[MAX_IDS], b[MAX_IDS];
        int na = 0, nb = 0;
        mv_error err;
        mv_tokenizer_encode(job->tok, corpus[i], corpus_len[i], 64, a, &na, NULL, &err);
        mv_tokenizer_encode(job->tok, corpus[(i * 7) % n_corpus], corpus_len[(i * 7) % n_corpus], 64, b, &nb, NULL, &err);
        int32_t again[MAX_IDS];
        int n_again = 0;
        mv_tokenizer_encode(job->tok, corpus[i], corpus_len[i], 64, again, &n_again, NULL, &err);
        if (na != n_again || memcmp(a, again, sizeof a[0] * (size_t)na))
            job->mismatches++;
    }
    return NULL;
}

static void test_threads(void)
{
    mv_tokenizer *tok = load("vocab_uncased.txt", 1);
    if (!tok)
        return;
    pthread_t threads[4];
    thread_job jobs[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (thread_job){tok, 0};
        pthread_create(&threads[t], NULL, encode_all, &jobs[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        CHECK_INT_EQ(jobs[t].mismatches, 0);
    }
    mv_tokenizer_free(tok);
}

int main(void)
{
    const char *env = getenv("MEDVLP_FIXTURES");
    snprintf(fixtures, sizeof fixtures, "%s", env ? env : "tests/fixtures");
    CHECK(mkdtemp(tmpdir) != NULL);
    load_corpus();
    CHECK_MSG(n_corpus >= 300, "corpus has %d lines", n_corpus);
    check_config("vocab_uncased.txt", 1, 256, "expected_uncased_256.jsonl");
    check_config("vocab_cased.txt", 0, 256, "expected_cased_256.jsonl");
    check_config("vocab_uncased.txt", 1, 16, "expected_uncased_16.jsonl");
    test_special_ids();
    test_vocab_files();
    test_config_and_dir();
    test_threads();
    rmdir(tmpdir);
    for (int i = 0; i < n_corpus; i++)
        free(corpus[i]);
    return test_report("test_tokenizer");
}
