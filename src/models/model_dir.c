/* model_dir.c — owns reading a model directory (SPEC.md "Model directory"): which layout it is,
 * its config files parsed with jansson, which weight file to load, the medvlp.json manifest (file
 * names, preprocessing fields; schema in weights/README.md), the tokenizer files, and the BERT
 * hyper-parameters from a config or from tensor shapes. Nothing here knows about a particular family. */
#include "models/family.h"
#include "medvlp/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONFIG_BYTES (1 << 20)

const char *mv_layout_name(mv_layout layout)
{
    switch (layout) {
    case MV_LAYOUT_OPEN_CLIP: return "open_clip";
    case MV_LAYOUT_HF: return "hf";
    case MV_LAYOUT_MANIFEST: return "manifest";
    }
    return "?";
}

static int load_json(const char *path, json_t **out, mv_error *err)
{
    char *text = NULL;
    size_t size = 0;
    int rc = mv_file_read_all(path, MAX_CONFIG_BYTES, &text, &size, err);
    if (rc)
        return rc;
    json_error_t jerr;
    json_t *root = json_loadb(text, size, 0, &jerr);
    free(text);
    if (!root)
        return mv_fail(err, MV_EFORMAT, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return mv_fail(err, MV_EFORMAT, "%s: expected a JSON object", path);
    }
    *out = root;
    return MV_OK;
}

/* Sets out to dir/name if that file exists; returns whether it does. */
static int pick(const char *dir, const char *name, char *out, size_t out_size)
{
    mv_error ignored;
    return mv_path_join(out, out_size, dir, name, &ignored) == MV_OK && mv_file_exists(out);
}

/* The first of names present in dir (safetensors before torch, as open_clip and HF prefer). */
static int pick_weights(const char *dir, const char *const names[2], char *out, size_t out_size, mv_error *err)
{
    for (int i = 0; i < 2; i++)
        if (pick(dir, names[i], out, out_size))
            return MV_OK;
    return mv_fail(err, MV_ENOTFOUND, "%s: no weight file (%s or %s)", dir, names[0], names[1]);
}

int mv_model_dir_open(const char *path, mv_model_dir *dir, mv_error *err)
{
    memset(dir, 0, sizeof *dir);
    dir->path = path;
    static const char *const open_clip_weights[2] = {"open_clip_model.safetensors", "open_clip_pytorch_model.bin"};
    static const char *const hf_weights[2] = {"model.safetensors", "pytorch_model.bin"};
    int rc;
    if (pick(path, "medvlp.json", dir->config_path, sizeof dir->config_path)) {
        dir->layout = MV_LAYOUT_MANIFEST;
        if ((rc = load_json(dir->config_path, &dir->config, err)))
            goto fail;
        dir->family = mv_json_string(dir->config, "family");
        if (!dir->family) {
            rc = mv_fail(err, MV_EFORMAT, "%s: missing string field \"family\"", dir->config_path);
            goto fail;
        }
        const json_t *text = json_object_get(dir->config, "text");
        if (text && !json_is_object(text)) {
            rc = mv_fail(err, MV_EFORMAT, "%s: field \"text\" must be an object", dir->config_path);
            goto fail;
        }
        if (mv_json_string(text, "config") &&
            ((rc = mv_manifest_file(dir, "text", "config", NULL, 1, dir->text_config_path, err)) ||
             (rc = load_json(dir->text_config_path, &dir->text_config, err))))
            goto fail;
        return MV_OK;
    }
    if (pick(path, "open_clip_config.json", dir->config_path, sizeof dir->config_path)) {
        dir->layout = MV_LAYOUT_OPEN_CLIP;
        if ((rc = load_json(dir->config_path, &dir->config, err)) ||
            (rc = pick_weights(path, open_clip_weights, dir->weights_path, sizeof dir->weights_path, err)))
            goto fail;
        if (pick(path, "config.json", dir->text_config_path, sizeof dir->text_config_path) &&
            (rc = load_json(dir->text_config_path, &dir->text_config, err)))
            goto fail;
        return MV_OK;
    }
    if (pick(path, "config.json", dir->config_path, sizeof dir->config_path)) {
        dir->layout = MV_LAYOUT_HF;
        if ((rc = load_json(dir->config_path, &dir->config, err)) ||
            (rc = pick_weights(path, hf_weights, dir->weights_path, sizeof dir->weights_path, err)))
            goto fail;
        return MV_OK;
    }
    return mv_fail(err, MV_EINPUT, "%s: not a model directory (no medvlp.json, open_clip_config.json or "
                   "config.json)", path);
fail:
    mv_model_dir_close(dir);
    return rc;
}

void mv_model_dir_close(mv_model_dir *dir)
{
    json_decref(dir->config);
    json_decref(dir->text_config);
    dir->config = dir->text_config = NULL;
}

int mv_manifest_file(const mv_model_dir *dir, const char *section, const char *key, const char *fallback,
                     int required, char out[PATH_MAX], mv_error *err)
{
    out[0] = '\0';
    const json_t *object = section ? json_object_get(dir->config, section) : dir->config;
    const json_t *value = json_object_get(object, key);
    const char *field = section ? section : "", *dot = section ? "." : "";
    if (value && !json_is_string(value))
        return mv_fail(err, MV_EFORMAT, "%s: field \"%s%s%s\" must be a file name", dir->config_path, field, dot,
                       key);
    const char *name = value ? json_string_value(value) : fallback;
    if (!name)
        return required ? mv_fail(err, MV_EFORMAT, "%s: missing field \"%s%s%s\"", dir->config_path, field, dot,
                                  key) : MV_OK;
    int rc = name[0] == '/' ? (strlen(name) < PATH_MAX ? (strcpy(out, name), MV_OK)
                                                        : mv_fail(err, MV_EINPUT, "%s: path too long", name))
                            : mv_path_join(out, PATH_MAX, dir->path, name, err);
    if (rc)
        return rc;
    if (!mv_file_exists(out))
        return mv_fail(err, MV_ENOTFOUND, "%s: %s (named by \"%s%s%s\") does not exist", dir->config_path, out,
                       field, dot, key);
    return MV_OK;
}

/* An int, or a pair [h, w] (h == w accepted as an int too), of the manifest's image section. */
static int size_field(const json_t *image, const char *key, const char *path, int *height, int *width,
                      int *is_pair, mv_error *err)
{
    const json_t *value = json_object_get(image, key);
    *is_pair = json_is_array(value);
    if (json_is_integer(value) && json_integer_value(value) > 0 && json_integer_value(value) <= 4096) {
        *height = *width = (int)json_integer_value(value);
        return MV_OK;
    }
    if (*is_pair && json_array_size(value) == 2) {
        json_int_t h = json_integer_value(json_array_get(value, 0)), w = json_integer_value(json_array_get(value, 1));
        if (h > 0 && h <= 4096 && w > 0 && w <= 4096) {
            *height = (int)h;
            *width = (int)w;
            return MV_OK;
        }
    }
    return mv_fail(err, MV_EFORMAT, "%s: image.%s must be a size in 1..4096 or [height, width]", path, key);
}

static int triple_field(const json_t *image, const char *key, const char *path, float out[3], mv_error *err)
{
    const json_t *value = json_object_get(image, key);
    for (int c = 0; c < 3 && json_is_array(value) && json_array_size(value) == 3; c++) {
        if (!json_is_number(json_array_get(value, (size_t)c)))
            break;
        out[c] = (float)json_number_value(json_array_get(value, (size_t)c));
        if (c == 2)
            return MV_OK;
    }
    return mv_fail(err, MV_EFORMAT, "%s: image.%s must be 3 numbers or null", path, key);
}

int mv_manifest_transform(const mv_model_dir *dir, mv_transform *t, mv_error *err)
{
    const json_t *image = json_object_get(dir->config, "image");
    const char *path = dir->config_path;
    if (!image)
        return MV_OK;
    if (!json_is_object(image))
        return mv_fail(err, MV_EFORMAT, "%s: field \"image\" must be an object", path);
    int rc, h, w, pair;
    if (json_object_get(image, "resize")) {
        if ((rc = size_field(image, "resize", path, &h, &w, &pair, err)))
            return rc;
        t->resize = pair ? MV_RESIZE_EXACT : MV_RESIZE_SHORTEST;
        t->size = h;
        t->resize_height = h;
        t->resize_width = w;
    }
    if (json_object_get(image, "crop")) {
        if ((rc = size_field(image, "crop", path, &h, &w, &pair, err)))
            return rc;
        t->crop_height = h;
        t->crop_width = w;
    }
    const char *interpolation = mv_json_string(image, "interpolation");
    if (interpolation) {
        if (!strcmp(interpolation, "bicubic"))
            t->filter = MV_FILTER_BICUBIC;
        else if (!strcmp(interpolation, "bilinear"))
            t->filter = MV_FILTER_BILINEAR;
        else if (!strcmp(interpolation, "nearest"))
            t->filter = MV_FILTER_NEAREST;
        else
            return mv_fail(err, MV_EUNSUPPORTED, "%s: image.interpolation \"%s\" is not supported", path,
                           interpolation);
    }
    const json_t *mean = json_object_get(image, "mean"), *std = json_object_get(image, "std");
    if (mean || std) {
        if (json_is_null(mean) != json_is_null(std) || !mean || !std)
            return mv_fail(err, MV_EFORMAT, "%s: image.mean and image.std go together (both arrays or both null)",
                           path);
        t->normalize = !json_is_null(mean);
        if (t->normalize && ((rc = triple_field(image, "mean", path, t->mean, err)) ||
                             (rc = triple_field(image, "std", path, t->std, err))))
            return rc;
    }
    const char *color = mv_json_string(image, "color");
    if (color) {
        if (!strcmp(color, "RGB"))
            t->color = MV_COLOR_RGB;
        else if (!strcmp(color, "L"))
            t->color = MV_COLOR_GRAY;
        else
            return mv_fail(err, MV_EUNSUPPORTED, "%s: image.color \"%s\" is not supported (RGB or L)", path, color);
    }
    return MV_OK;
}

int mv_model_dir_tokenizer(const mv_model_dir *dir, mv_tokenizer **out, mv_error *err)
{
    *out = NULL;
    if (dir->layout != MV_LAYOUT_MANIFEST) {
        int context_length;
        return mv_tokenizer_open_dir(dir->path, out, &context_length, err);
    }
    char vocab[PATH_MAX], config_path[PATH_MAX];
    mv_tokenizer_config config;
    mv_tokenizer_config_default(&config);
    int rc;
    if ((rc = mv_manifest_file(dir, "text", "vocab", "vocab.txt", 1, vocab, err)) ||
        (rc = mv_manifest_file(dir, "text", "tokenizer_config", NULL, 0, config_path, err)) ||
        (config_path[0] && (rc = mv_tokenizer_config_read(config_path, &config, err))))
        return rc;
    return mv_tokenizer_load(vocab, &config, out, err);
}

const char *mv_json_string(const json_t *object, const char *key)
{
    return json_string_value(json_object_get(object, key));
}

int mv_json_int(const json_t *object, const char *key, int required, int *out, const char *path, mv_error *err)
{
    const json_t *value = json_object_get(object, key);
    if (!value)
        return required ? mv_fail(err, MV_EFORMAT, "%s: missing field \"%s\"", path, key) : MV_OK;
    if (!json_is_integer(value) || json_integer_value(value) < 0 || json_integer_value(value) > INT_MAX)
        return mv_fail(err, MV_EFORMAT, "%s: field \"%s\" must be a non-negative integer", path, key);
    *out = (int)json_integer_value(value);
    return MV_OK;
}

int mv_json_float(const json_t *object, const char *key, int required, float *out, const char *path, mv_error *err)
{
    const json_t *value = json_object_get(object, key);
    if (!value)
        return required ? mv_fail(err, MV_EFORMAT, "%s: missing field \"%s\"", path, key) : MV_OK;
    if (!json_is_number(value))
        return mv_fail(err, MV_EFORMAT, "%s: field \"%s\" must be a number", path, key);
    *out = (float)json_number_value(value);
    return MV_OK;
}

int mv_bert_config_from_hf(const json_t *config, const char *path, mv_bert_config *out, mv_error *err)
{
    const char *act = mv_json_string(config, "hidden_act");
    if (act && strcmp(act, "gelu"))
        return mv_fail(err, MV_EUNSUPPORTED, "%s: hidden_act \"%s\" is not supported (only \"gelu\")", path, act);
    const char *pos = mv_json_string(config, "position_embedding_type");
    if (pos && strcmp(pos, "absolute"))
        return mv_fail(err, MV_EUNSUPPORTED, "%s: position_embedding_type \"%s\" is not supported", path, pos);
    out->type_vocab_size = 2;
    out->layer_norm_eps = 1e-12f;
    int rc;
    if ((rc = mv_json_int(config, "vocab_size", 1, &out->vocab_size, path, err)) ||
        (rc = mv_json_int(config, "hidden_size", 1, &out->hidden_size, path, err)) ||
        (rc = mv_json_int(config, "num_hidden_layers", 1, &out->n_layers, path, err)) ||
        (rc = mv_json_int(config, "num_attention_heads", 1, &out->n_heads, path, err)) ||
        (rc = mv_json_int(config, "intermediate_size", 1, &out->intermediate_size, path, err)) ||
        (rc = mv_json_int(config, "max_position_embeddings", 1, &out->max_positions, path, err)) ||
        (rc = mv_json_int(config, "type_vocab_size", 0, &out->type_vocab_size, path, err)) ||
        (rc = mv_json_float(config, "layer_norm_eps", 0, &out->layer_norm_eps, path, err)))
        return rc;
    return MV_OK;
}

static const mv_tensor_entry *find_2d(const mv_weights *w, const char *prefix, const char *name)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const mv_tensor_entry *e = mv_weights_find(w, full);
    return e && e->ndim == 2 && e->f32 ? e : NULL;
}

int mv_bert_config_infer(const mv_weights *w, const char *prefix, mv_bert_config *out, mv_error *err)
{
    const mv_tensor_entry *word = find_2d(w, prefix, "embeddings.word_embeddings.weight");
    const mv_tensor_entry *position = find_2d(w, prefix, "embeddings.position_embeddings.weight");
    const mv_tensor_entry *type = find_2d(w, prefix, "embeddings.token_type_embeddings.weight");
    const mv_tensor_entry *ffn = find_2d(w, prefix, "encoder.layer.0.intermediate.dense.weight");
    if (!word || !position || !type || !ffn)
        return mv_fail(err, MV_EFORMAT, "%s: cannot infer the BERT configuration: no %sembeddings.* or "
                       "%sencoder.layer.0.* tensors", mv_weights_path(w), prefix, prefix);
    int n_layers = 0;
    while (mv_weights_has(w, "%sencoder.layer.%d.attention.self.query.weight", prefix, n_layers))
        n_layers++;
    int hidden = (int)word->shape[1];
    if (hidden % 64)
        return mv_fail(err, MV_EFORMAT, "%s: cannot infer the number of attention heads of a %d-wide BERT "
                       "(not a multiple of 64); put a config.json beside the weights", mv_weights_path(w), hidden);
    *out = (mv_bert_config){
        .vocab_size = (int)word->shape[0], .hidden_size = hidden, .n_layers = n_layers,
        .n_heads = hidden / 64, .intermediate_size = (int)ffn->shape[0],
        .max_positions = (int)position->shape[0], .type_vocab_size = (int)type->shape[0],
        .layer_norm_eps = 1e-12f,
    };
    return MV_OK;
}
