/* test_text_models.c — text embeddings of a model directory against the PyTorch reference
 * (tests/reference/make_text_model_fixtures.py → tests/fixtures/models/expected/<name>.json).
 *
 *   test_text_models MODEL_DIR EXPECTED_NAME
 * Checks, for every fixture text: one text per batch (normalised and raw), and all texts in one
 * mixed-length batch in a shuffled order; plus the model's info (family, dims, parameter count,
 * unused tensors). Prints min cosine and max |Δ| per mode. */
#include "medvlp/model.h"
#include "../test.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#define MIN_COS 0.99999
#define MAX_ABS 1e-4

static void read_floats(const json_t *array, float *out, int n)
{
    CHECK_INT_EQ(json_array_size(array), n);
    for (int i = 0; i < n && i < (int)json_array_size(array); i++)
        out[i] = (float)json_number_value(json_array_get(array, i));
}

/* Compares out[n, dim] with expected rows (row i of out vs expected row rows[i]). */
static void compare(const char *mode, const float *out, const json_t *expected, const int *rows, int n, int dim)
{
    float *want = malloc((size_t)dim * sizeof *want);
    double min_cos = 1.0, max_abs = 0.0;
    for (int i = 0; i < n; i++) {
        read_floats(json_array_get(expected, (size_t)rows[i]), want, dim);
        double cos = test_cosine(out + (size_t)i * dim, want, (size_t)dim);
        double diff = test_max_abs_diff(out + (size_t)i * dim, want, (size_t)dim);
        CHECK_MSG(cos >= MIN_COS && diff <= MAX_ABS, "%s text %d: cos %.9f max|d| %.3g", mode, rows[i], cos, diff);
        min_cos = cos < min_cos ? cos : min_cos;
        max_abs = diff > max_abs ? diff : max_abs;
    }
    printf("%-22s min cos %.9f  max |d| %.3g  (%d texts)\n", mode, min_cos, max_abs, n);
    free(want);
}

/* Packs the token id lists rows[0..n) of the fixture. */
static int32_t *pack(const json_t *token_ids, const int *rows, int n, int *lengths)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += json_array_size(json_array_get(token_ids, (size_t)rows[i]));
    int32_t *ids = malloc(total * sizeof *ids), *at = ids;
    for (int i = 0; i < n; i++) {
        const json_t *list = json_array_get(token_ids, (size_t)rows[i]);
        lengths[i] = (int)json_array_size(list);
        for (size_t j = 0; j < json_array_size(list); j++)
            *at++ = (int32_t)json_integer_value(json_array_get(list, j));
    }
    return ids;
}

static void check_info(const mv_model *model, const json_t *expected, const char *family)
{
    mv_model_info info;
    mv_model_get_info(model, &info);
    CHECK(!strcmp(info.family, family));
    CHECK_INT_EQ(info.context_length, json_integer_value(json_object_get(expected, "context_length")));
    CHECK_INT_EQ(info.n_params, json_integer_value(json_object_get(expected, "n_params")));
    CHECK(!strcmp(info.weights_dtype, "F32"));
    const json_t *unused = json_object_get(expected, "unused");
    CHECK_INT_EQ(info.n_unused_tensors, json_array_size(unused));
    for (size_t i = 0; i < info.n_unused_tensors && i < json_array_size(unused); i++)
        CHECK(!strcmp(mv_model_unused_tensor(model, i), json_string_value(json_array_get(unused, i))));
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_text_models MODEL_DIR EXPECTED_NAME\n");
        return 2;
    }
    const char *fixtures = getenv("MEDVLP_FIXTURES");
    char model_dir[4096], expected_path[4096];
    snprintf(model_dir, sizeof model_dir, "%s/models/%s", fixtures ? fixtures : "tests/fixtures", argv[1]);
    snprintf(expected_path, sizeof expected_path, "%s/models/expected/%s.json",
             fixtures ? fixtures : "tests/fixtures", argv[2]);
    json_error_t jerr;
    json_t *expected = json_load_file(expected_path, 0, &jerr);
    if (!expected) {
        fprintf(stderr, "%s: %s\n", expected_path, jerr.text);
        return 1;
    }
    mv_error err;
    mv_model *model = NULL;
    int rc = mv_model_open(model_dir, NULL, &model, &err);
    CHECK_MSG(rc == MV_OK, "%s", err.message);
    if (rc) {
        json_decref(expected);
        return test_report(argv[1]);
    }
    mv_model_info info;
    mv_model_get_info(model, &info);
    const int dim = info.embed_dim;
    check_info(model, expected, !strcmp(argv[2], "cxr-bert") ? "cxr-bert" : "biomedclip");

    const json_t *token_ids = json_object_get(expected, "token_ids");
    const int n_texts = (int)json_array_size(token_ids);
    int *rows = malloc((size_t)n_texts * sizeof *rows), *lengths = malloc((size_t)n_texts * sizeof *lengths);
    float *out = malloc((size_t)n_texts * dim * sizeof *out);

    /* One text per batch. */
    const char *modes[2] = {"normalized", "raw"};
    for (int m = 0; m < 2; m++) {
        for (int i = 0; i < n_texts; i++) {
            rows[i] = i;
            int32_t *ids = pack(token_ids, &rows[i], 1, &lengths[i]);
            rc = mv_model_embed_token_ids(model, ids, &lengths[i], 1, m == 0, out + (size_t)i * dim, &err);
            CHECK_MSG(rc == MV_OK, "%s", err.message);
            free(ids);
        }
        char label[64];
        snprintf(label, sizeof label, "batch 1, %s", modes[m]);
        compare(label, out, json_object_get(json_object_get(expected, "single"), modes[m]), rows, n_texts, dim);
    }

    /* All texts at once, mixed lengths, in the reference's shuffled order: compared both with the
     * reference's padded batch and with the one-text-per-batch results. */
    const json_t *batch = json_object_get(expected, "batch");
    const json_t *order = json_object_get(batch, "order");
    for (int i = 0; i < n_texts; i++)
        rows[i] = (int)json_integer_value(json_array_get(order, (size_t)i));
    int32_t *ids = pack(token_ids, rows, n_texts, lengths);
    rc = mv_model_embed_token_ids(model, ids, lengths, n_texts, 1, out, &err);
    CHECK_MSG(rc == MV_OK, "%s", err.message);
    free(ids);
    int *identity = calloc((size_t)n_texts, sizeof *identity);
    for (int i = 0; i < n_texts; i++)
        identity[i] = i;
    compare("mixed batch (padded)", out, json_object_get(batch, "normalized"), identity, n_texts, dim);
    compare("mixed batch vs single", out, json_object_get(json_object_get(expected, "single"), "normalized"),
            rows, n_texts, dim);

    /* From raw text: the family's cleaning and the tokenizer, then the same encoder, all in one batch. */
    const json_t *texts = json_object_get(expected, "texts");
    const char **text_ptrs = malloc((size_t)n_texts * sizeof *text_ptrs);
    int *n_tokens = malloc((size_t)n_texts * sizeof *n_tokens), *truncated = malloc((size_t)n_texts * sizeof *truncated);
    for (int i = 0; i < n_texts; i++)
        text_ptrs[i] = json_string_value(json_array_get(texts, (size_t)i));
    rc = mv_model_embed_texts(model, text_ptrs, NULL, n_texts, 1, out, n_tokens, truncated, &err);
    CHECK_MSG(rc == MV_OK, "%s", err.message);
    for (int i = 0; i < n_texts; i++) {
        CHECK_INT_EQ(n_tokens[i], json_array_size(json_array_get(token_ids, (size_t)i)));
        CHECK_INT_EQ(truncated[i], json_is_true(json_array_get(json_object_get(expected, "truncated"), (size_t)i)));
    }
    compare("texts, one batch", out, json_object_get(json_object_get(expected, "single"), "normalized"), identity,
            n_texts, dim);
    const char *invalid_utf8 = "abc\xff";
    CHECK_INT_EQ(mv_model_embed_texts(model, &invalid_utf8, NULL, 1, 1, out, NULL, NULL, &err), MV_EINPUT);
    free(text_ptrs);
    free(n_tokens);
    free(truncated);

    /* Bad token input is a clean error, not a crash. */
    int32_t bad_ids[3] = {2, 1 << 20, 3};
    int bad_len = 3;
    CHECK_INT_EQ(mv_model_embed_token_ids(model, bad_ids, &bad_len, 1, 1, out, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "outside the vocabulary");
    bad_len = info.context_length + 1;
    int32_t *long_ids = calloc((size_t)bad_len, sizeof *long_ids);
    CHECK_INT_EQ(mv_model_embed_token_ids(model, long_ids, &bad_len, 1, 1, out, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "context length");
    free(long_ids);

    free(identity);
    free(rows);
    free(lengths);
    free(out);
    mv_model_free(model);
    json_decref(expected);
    return test_report(argv[1]);
}
