/* tokenizer_dir.c — owns how a tokenizer is configured from files: tokenizer_config.json keys and
 * the model directory layout (vocab.txt, tokenizer_config.json, context length from the model config). */
#include "medvlp/tokenizer.h"

#include <jansson.h>
#include <limits.h>

#include "medvlp/file.h"

#define DEFAULT_CONTEXT_LENGTH 512

/* Loads a JSON object; *root is NULL (and MV_OK) when the file does not exist. */
static int load_json_object(const char *path, json_t **root, mv_error *err)
{
    *root = NULL;
    if (!mv_file_exists(path))
        return MV_OK;
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    /* Hugging Face writes an unset model_max_length as int(1e30), beyond jansson's integers (BiomedCLIP's
     * tokenizer_config.json has it): read such a file with its integers as reals. */
    if (!doc && json_error_code(&jerr) == json_error_numeric_overflow)
        doc = json_load_file(path, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!doc)
        return mv_fail(err, MV_EFORMAT, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return mv_fail(err, MV_EFORMAT, "%s: expected a JSON object", path);
    }
    *root = doc;
    return MV_OK;
}

/* A boolean key; absent leaves *value alone; null (-1, "unset") only where allow_null. */
static int read_flag(json_t *root, const char *path, const char *key, int allow_null, int *value, mv_error *err)
{
    json_t *field = json_object_get(root, key);
    if (!field)
        return MV_OK;
    if (json_is_boolean(field) || (allow_null && json_is_null(field))) {
        *value = json_is_null(field) ? -1 : json_is_true(field);
        return MV_OK;
    }
    return mv_fail(err, MV_EFORMAT, "%s: \"%s\" must be true or false%s", path, key, allow_null ? " or null" : "");
}

int mv_tokenizer_config_read(const char *path, mv_tokenizer_config *cfg, mv_error *err)
{
    mv_tokenizer_config_default(cfg);
    json_t *root;
    int status = load_json_object(path, &root, err);
    if (status != MV_OK || !root)
        return status;
    status = read_flag(root, path, "do_lower_case", 0, &cfg->do_lower_case, err);
    if (status == MV_OK)
        status = read_flag(root, path, "strip_accents", 1, &cfg->strip_accents, err);
    if (status == MV_OK)
        status = read_flag(root, path, "tokenize_chinese_chars", 0, &cfg->tokenize_chinese_chars, err);
    json_decref(root);
    return status;
}

/* Positive integer at root.k1.k2...; 0 when a key on the way is absent. */
static int read_length(json_t *root, const char *path, const char *const *keys, int n_keys, int *value,
                       mv_error *err)
{
    *value = 0;
    json_t *node = root;
    for (int i = 0; i < n_keys && node; i++)
        node = json_is_object(node) ? json_object_get(node, keys[i]) : NULL;
    if (!node)
        return MV_OK;
    if (!json_is_integer(node) || json_integer_value(node) < 2 || json_integer_value(node) > INT_MAX / 2)
        return mv_fail(err, MV_EFORMAT, "%s: \"%s\" must be an integer >= 2", path, keys[n_keys - 1]);
    *value = (int)json_integer_value(node);
    return MV_OK;
}

static int read_context_length(const char *dir, int *context_length, mv_error *err)
{
    static const char *const open_clip_keys[] = {"model_cfg", "text_cfg", "context_length"};
    static const char *const hf_keys[] = {"max_position_embeddings"};
    static const struct { const char *file; const char *const *keys; int n_keys; } sources[] = {
        {"open_clip_config.json", open_clip_keys, 3},
        {"config.json", hf_keys, 1},
    };
    *context_length = DEFAULT_CONTEXT_LENGTH;
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        char path[PATH_MAX];
        json_t *root;
        int status = mv_path_join(path, sizeof path, dir, sources[i].file, err);
        if (status == MV_OK)
            status = load_json_object(path, &root, err);
        if (status != MV_OK)
            return status;
        if (!root)
            continue;
        int length;
        status = read_length(root, path, sources[i].keys, sources[i].n_keys, &length, err);
        json_decref(root);
        if (status != MV_OK)
            return status;
        if (length) {
            *context_length = length;
            return MV_OK;
        }
    }
    return MV_OK;
}

int mv_tokenizer_open_dir(const char *dir, mv_tokenizer **out, int *context_length, mv_error *err)
{
    *out = NULL;
    char vocab_path[PATH_MAX], config_path[PATH_MAX];
    mv_tokenizer_config cfg;
    int status = mv_path_join(vocab_path, sizeof vocab_path, dir, "vocab.txt", err);
    if (status == MV_OK)
        status = mv_path_join(config_path, sizeof config_path, dir, "tokenizer_config.json", err);
    if (status == MV_OK)
        status = mv_tokenizer_config_read(config_path, &cfg, err);
    if (status == MV_OK)
        status = read_context_length(dir, context_length, err);
    if (status == MV_OK)
        status = mv_tokenizer_load(vocab_path, &cfg, out, err);
    return status;
}
