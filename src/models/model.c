/* model.c — owns mv_model (include/medvlp/model.h): opening a directory through the family table,
 * the loaded weight files and towers, load-time checks and bookkeeping (joint-space dims, unused
 * tensors, parameter count, weights checksum) and the embedding entry points for texts and images. */
#include "models/family.h"
#include "models/gloria.h"
#include "medvlp/file.h"
#include "medvlp/tensor.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Asked in order; the first family whose predicate holds loads the model. */
static const mv_model_family *const families[] = {
    &mv_family_biomedclip,
    &mv_family_cxr_bert,
    &mv_family_biovil,
    &mv_family_convirt,
    &mv_family_gloria,
    &mv_family_medclip,
    &mv_family_medclip_flax,
};

int mv_model_add_weights(mv_model *model, const char *path, mv_weights **out, mv_error *err)
{
    if (model->n_weights == MV_MODEL_MAX_WEIGHT_FILES)
        return mv_fail(err, MV_EINTERNAL, "more than %d weight files", MV_MODEL_MAX_WEIGHT_FILES);
    int rc = mv_weights_open(path, out, err);
    if (!rc)
        model->weights[model->n_weights++] = *out;
    return rc;
}

int mv_model_add_checkpoint(mv_model *model, const mv_model_dir *dir, mv_weights **out, mv_error *err)
{
    char path[PATH_MAX];
    int rc = mv_manifest_file(dir, NULL, "checkpoint", NULL, 1, path, err);
    return rc ? rc : mv_model_add_weights(model, path, out, err);
}

int mv_model_load_bert(mv_model *model, const mv_bert_config *config, mv_weights *weights, const char *prefix,
                       int with_pooler, mv_error *err)
{
    mv_bert_config c = *config;
    c.quant = model->quant;
    return mv_bert_load(&model->text.bert, &c, weights, prefix, with_pooler, err);
}

int mv_model_load_vit(mv_model *model, const mv_vit_config *config, mv_weights *weights, const char *prefix,
                      const char *head_name, mv_error *err)
{
    mv_vit_config c = *config;
    c.quant = model->quant;
    return mv_vit_load(&model->image.vit, &c, weights, prefix, head_name, err);
}

int mv_model_load_resnet(mv_model *model, const mv_resnet_config *config, mv_weights *weights,
                         const mv_resnet_names *names, mv_error *err)
{
    mv_resnet_config c = *config;
    c.quant = model->quant;
    return mv_resnet_load(&model->image.resnet, &c, weights, names, err);
}

static int collect_unused(mv_model *model, mv_error *err)
{
    size_t n = 0;
    for (int f = 0; f < model->n_weights; f++)
        n += mv_weights_count(model->weights[f]);
    model->unused = calloc(n ? n : 1, sizeof *model->unused);
    if (!model->unused)
        return mv_fail(err, MV_ENOMEM, "out of memory");
    for (int f = 0; f < model->n_weights; f++) {
        for (size_t i = 0; i < mv_weights_count(model->weights[f]); i++) {
            const mv_tensor_entry *e = mv_weights_at(model->weights[f], i);
            if (e->f32 && !e->used) /* integer buffers (position_ids, ...) are never weights */
                model->unused[model->n_unused++] = e->name;
        }
    }
    return MV_OK;
}

/* What every family must leave behind: a tokenizer that fits the embedding table, a context length
 * inside the position table, and towers that meet in one joint space. */
static int check_loaded(const mv_model *model, const char *path, mv_error *err)
{
    int vocab = mv_tokenizer_vocab_size(model->tokenizer);
    if (vocab > model->text.bert.config.vocab_size)
        return mv_fail(err, MV_EFORMAT, "%s: vocab.txt has %d tokens, more than the model's %d embeddings", path,
                       vocab, model->text.bert.config.vocab_size);
    if (model->context_length < 2 || model->context_length > model->text.bert.config.max_positions)
        return mv_fail(err, MV_EFORMAT, "%s: context length %d is outside 2..%d (the position table)", path,
                       model->context_length, model->text.bert.config.max_positions);
    if (model->image.encoder != MV_ENCODER_NONE && model->image.embed_dim != model->text.embed_dim)
        return mv_fail(err, MV_EFORMAT, "%s: the image embedding has %d dimensions and the text embedding %d: "
                       "they are not one joint space", path, model->image.embed_dim, model->text.embed_dim);
    return MV_OK;
}

int mv_model_open(const char *path, const mv_model_options *options, mv_model **out, mv_error *err)
{
    *out = NULL;
    mv_quant quant = options ? options->quant : MV_QUANT_NONE;
    if (!mv_quant_supported(quant))
        return mv_fail(err, MV_EUNSUPPORTED, "--quant %s needs a CPU with %s", mv_quant_name(quant),
                       quant == MV_QUANT_INT8 ? "AVX2" : "AVX-512");
    mv_model_dir dir;
    int rc = mv_model_dir_open(path, &dir, err);
    if (rc)
        return rc;
    const mv_model_family *family = NULL;
    for (size_t i = 0; i < sizeof families / sizeof families[0] && !family; i++)
        if (families[i]->matches(&dir))
            family = families[i];
    if (!family) {
        rc = dir.layout == MV_LAYOUT_MANIFEST
                 ? mv_fail(err, MV_EUNSUPPORTED, "%s: unknown model family \"%s\"", dir.config_path, dir.family)
                 : mv_fail(err, MV_EUNSUPPORTED, "%s: no supported model family matches this %s config",
                           dir.config_path, mv_layout_name(dir.layout));
        mv_model_dir_close(&dir);
        return rc;
    }
    mv_model *model = calloc(1, sizeof *model);
    if (!model) {
        mv_model_dir_close(&dir);
        return mv_fail(err, MV_ENOMEM, "out of memory");
    }
    model->family = family->name;
    model->layout = dir.layout;
    model->quant = quant;
    model->max_pixels = options && options->max_pixels ? options->max_pixels : MV_IMAGE_DEFAULT_MAX_PIXELS;
    char marker[PATH_MAX];
    model->tiny_random = mv_path_join(marker, sizeof marker, path, "TINY-RANDOM-WEIGHTS", err) == MV_OK &&
                         mv_file_exists(marker);
    if (!(rc = family->load(model, &dir, err)) && !(rc = collect_unused(model, err)) &&
        !(rc = mv_model_dir_tokenizer(&dir, &model->tokenizer, err)))
        rc = check_loaded(model, path, err);
    mv_model_dir_close(&dir);
    if (rc) {
        mv_model_free(model);
        return rc;
    }
    if (options && options->n_threads > 0)
        mv_set_threads(options->n_threads);
    /* The Linear/conv weights now live in packed (or int8) copies: their file pages would stay in the
     * resident set for nothing. What inference still reads (embedding rows, norms, heads) faults back
     * in from the page cache. */
    for (int f = 0; f < model->n_weights; f++)
        mv_weights_release_pages(model->weights[f]);
    *out = model;
    return MV_OK;
}

void mv_model_free(mv_model *model)
{
    if (!model)
        return;
    mv_text_tower_free(&model->text);
    mv_image_tower_free(&model->image);
    mv_tokenizer_free(model->tokenizer);
    free(model->token_ids);
    free(model->lengths);
    free(model->unused);
    for (int f = 0; f < model->n_weights; f++)
        mv_weights_free(model->weights[f]);
    free(model);
}

/* The stored dtype shared by every float tensor the towers use, or "mixed". */
static const char *weights_dtype(const mv_model *model)
{
    const char *dtype = NULL;
    for (int f = 0; f < model->n_weights; f++) {
        for (size_t i = 0; i < mv_weights_count(model->weights[f]); i++) {
            const mv_tensor_entry *e = mv_weights_at(model->weights[f], i);
            if (!e->used)
                continue;
            const char *name = mv_weights_dtype_name(e->dtype);
            if (dtype && strcmp(dtype, name))
                return "mixed";
            dtype = name;
        }
    }
    return dtype ? dtype : "none";
}

void mv_model_get_info(const mv_model *model, mv_model_info *info)
{
    memset(info, 0, sizeof *info);
    info->family = model->family;
    info->layout = mv_layout_name(model->layout);
    info->weights_path = mv_weights_path(model->weights[0]);
    info->weights_format = mv_weights_format(model->weights[0]);
    info->n_weight_files = model->n_weights;
    info->weights_dtype = weights_dtype(model);
    info->embed_dim = model->text.embed_dim;
    info->context_length = model->context_length;
    if (model->image.encoder != MV_ENCODER_NONE) {
        info->image_width = model->image.width;
        info->image_height = model->image.height;
        info->image_size = model->image.width == model->image.height ? model->image.width : 0;
        info->image_preprocessing = model->image.description;
    }
    for (int f = 0; f < model->n_weights; f++) {
        for (size_t i = 0; i < mv_weights_count(model->weights[f]); i++) {
            const mv_tensor_entry *e = mv_weights_at(model->weights[f], i);
            if (e->used)
                info->n_params += e->n_elements;
        }
    }
    info->n_unused_tensors = model->n_unused;
    info->tiny_random = model->tiny_random;
    info->quant = mv_quant_name(model->quant);
}

const char *mv_model_weights_file(const mv_model *model, int index, const char **format)
{
    if (index < 0 || index >= model->n_weights)
        return NULL;
    if (format)
        *format = mv_weights_format(model->weights[index]);
    return mv_weights_path(model->weights[index]);
}

/* OpenSSL's EVP digest over the file's mapping (read sequentially, so the page cache streams it). */
static int sha256_bytes(const void *data, size_t size, char out[65], const char *what, mv_error *err)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (!EVP_Digest(data ? data : "", size, digest, &digest_len, EVP_sha256(), NULL) || digest_len != 32)
        return mv_fail(err, MV_EINTERNAL, "%s: SHA-256 failed", what);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    return MV_OK;
}

int mv_sha256_file(const char *path, char out[65], mv_error *err)
{
    mv_mapped_file file;
    int rc = mv_file_map(path, &file, err);
    if (rc)
        return rc;
    rc = sha256_bytes(file.data, file.size, out, path, err);
    mv_file_unmap(&file);
    return rc;
}

int mv_model_weights_checksum(mv_model *model, char out[65], mv_error *err)
{
    if (!model->checksum[0]) {
        char lines[MV_MODEL_MAX_WEIGHT_FILES * (64 + 2 + PATH_MAX + 1)];
        size_t used = 0;
        for (int f = 0; f < model->n_weights; f++) {
            const char *path = mv_weights_path(model->weights[f]), *slash = strrchr(path, '/');
            char hex[65];
            int rc = mv_sha256_file(path, hex, err);
            if (rc)
                return rc;
            if (model->n_weights == 1) {
                memcpy(model->checksum, hex, sizeof hex);
                break;
            }
            used += (size_t)snprintf(lines + used, sizeof lines - used, "%s  %s\n", hex, slash ? slash + 1 : path);
        }
        if (model->n_weights > 1) {
            int rc = sha256_bytes(lines, used, model->checksum, "weights", err);
            if (rc)
                return rc;
        }
    }
    memcpy(out, model->checksum, 65);
    return MV_OK;
}

const char *mv_model_unused_tensor(const mv_model *model, size_t index)
{
    return index < model->n_unused ? model->unused[index] : NULL;
}

int mv_model_embed_token_ids(mv_model *model, const int32_t *token_ids, const int *lengths, int n_texts,
                             int normalize, float *out, mv_error *err)
{
    if (n_texts <= 0)
        return mv_fail(err, MV_EINPUT, "no texts to embed");
    for (int t = 0; t < n_texts; t++)
        if (lengths[t] > model->context_length)
            return mv_fail(err, MV_EINPUT, "text %d has %d tokens, over the context length %d", t, lengths[t],
                           model->context_length);
    mv_bert_batch batch = {token_ids, lengths, n_texts};
    return mv_text_tower_embed(&model->text, &batch, normalize, out, err);
}

static int clean_text(const mv_model *model, const char *text, size_t len, char **out, size_t *out_len,
                      mv_error *err)
{
    switch (model->text_cleaning) {
    case MV_CLEAN_OPEN_CLIP: return mv_text_clean_open_clip(text, len, out, out_len, err);
    case MV_CLEAN_RSTRIP_PUNCT: return mv_text_clean_himl(text, len, out, out_len, err);
    case MV_CLEAN_GLORIA: return mv_gloria_clean_text(text, len, out, out_len, err);
    case MV_CLEAN_NONE:
        if (!(*out = malloc(len + 1)))
            return mv_fail(err, MV_ENOMEM, "out of memory");
        memcpy(*out, text, len);
        (*out)[len] = '\0';
        *out_len = len;
        return MV_OK;
    }
    return mv_fail(err, MV_EINTERNAL, "unknown text cleaning");
}

static int reserve_ids(mv_model *model, int n_texts, mv_error *err)
{
    size_t need = (size_t)n_texts * (size_t)model->context_length;
    if (need > model->cap_token_ids) {
        int32_t *grown = realloc(model->token_ids, need * sizeof *grown);
        if (!grown)
            return mv_fail(err, MV_ENOMEM, "out of memory tokenising %d texts", n_texts);
        model->token_ids = grown;
        model->cap_token_ids = need;
    }
    if (n_texts > model->cap_texts) {
        int *grown = realloc(model->lengths, (size_t)n_texts * sizeof *grown);
        if (!grown)
            return mv_fail(err, MV_ENOMEM, "out of memory tokenising %d texts", n_texts);
        model->lengths = grown;
        model->cap_texts = n_texts;
    }
    return MV_OK;
}

int mv_model_embed_texts(mv_model *model, const char *const *texts, const size_t *text_lens, int n_texts,
                         int normalize, float *out, int *n_tokens_out, int *truncated_out, mv_error *err)
{
    if (n_texts <= 0)
        return mv_fail(err, MV_EINPUT, "no texts to embed");
    int rc = reserve_ids(model, n_texts, err);
    if (rc)
        return rc;
    size_t used = 0;
    for (int t = 0; t < n_texts; t++) {
        char *clean;
        size_t clean_len;
        int truncated;
        rc = clean_text(model, texts[t], text_lens ? text_lens[t] : strlen(texts[t]), &clean, &clean_len, err);
        if (!rc) {
            rc = mv_tokenizer_encode(model->tokenizer, clean, clean_len, model->context_length,
                                     model->token_ids + used, &model->lengths[t], &truncated, err);
            free(clean);
        }
        if (rc) {
            mv_error_prefix(err, "text %d", t);
            return rc;
        }
        used += (size_t)model->lengths[t];
        if (n_tokens_out)
            n_tokens_out[t] = model->lengths[t];
        if (truncated_out)
            truncated_out[t] = truncated;
    }
    return mv_model_embed_token_ids(model, model->token_ids, model->lengths, n_texts, normalize, out, err);
}

/* ---- Images: decode → preprocess → encoder → projection → normalise, a tower batch at a time ---- */

static int check_image_tower(const mv_model *model, int n_images, mv_error *err)
{
    if (model->image.encoder == MV_ENCODER_NONE)
        return mv_fail(err, MV_EUNSUPPORTED, "the %s model has no image tower", model->family);
    if (n_images <= 0)
        return mv_fail(err, MV_EINPUT, "no images to embed");
    return MV_OK;
}

int mv_model_embed_images(mv_model *model, const mv_image *images, int n_images, int normalize, float *out,
                          mv_error *err)
{
    int rc = check_image_tower(model, n_images, err);
    mv_image_tower *tower = &model->image;
    for (int first = 0; !rc && first < n_images; first += tower->max_batch) {
        int batch = n_images - first < tower->max_batch ? n_images - first : tower->max_batch;
        rc = mv_image_tower_reserve(tower, batch, err);
        for (int i = 0; i < batch && !rc; i++)
            if ((rc = mv_image_tower_prepare(tower, &images[first + i], i, err)))
                mv_error_prefix(err, "image %d", first + i);
        if (!rc)
            rc = mv_image_tower_forward(tower, batch, normalize, out + (size_t)first * tower->embed_dim, err);
    }
    return rc;
}

int mv_model_preprocess_image(mv_model *model, const mv_image *image, float *chw, mv_error *err)
{
    mv_image_tower *tower = &model->image;
    int rc = check_image_tower(model, 1, err);
    if (!rc && !(rc = mv_image_tower_reserve(tower, 1, err)) && !(rc = mv_image_tower_prepare(tower, image, 0, err)))
        memcpy(chw, tower->pixels, (size_t)3 * tower->height * tower->width * sizeof *chw);
    return rc;
}

int mv_model_embed_image_bytes(mv_model *model, const void *const *bytes, const size_t *n_bytes,
                               const char *const *names, int n_images, int normalize, float *out,
                               mv_error *err)
{
    int rc = check_image_tower(model, n_images, err);
    mv_image_tower *tower = &model->image;
    const mv_decode_options decode = {.max_pixels = model->max_pixels};
    for (int first = 0; !rc && first < n_images; first += tower->max_batch) {
        int batch = n_images - first < tower->max_batch ? n_images - first : tower->max_batch;
        rc = mv_image_tower_reserve(tower, batch, err);
        for (int i = 0; i < batch && !rc; i++) {
            const int index = first + i;
            char what[32];
            snprintf(what, sizeof what, "image %d", index);
            const char *name = names && names[index] ? names[index] : what;
            mv_image image;
            if (!(rc = mv_image_decode(bytes[index], n_bytes[index], name, &decode, &image, err))) {
                if ((rc = mv_image_tower_prepare(tower, &image, i, err)))
                    mv_error_prefix(err, "%s", name);
                mv_image_free(&image);
            }
        }
        if (!rc)
            rc = mv_image_tower_forward(tower, batch, normalize, out + (size_t)first * tower->embed_dim, err);
    }
    return rc;
}
