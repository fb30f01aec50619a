/* family_gloria.c — GLoRIA (marshuang80/gloria), manifest layout (family "gloria"): the authors'
 * PyTorch-Lightning .ckpt ("checkpoint"), whose state_dict keys are prefixed up to a last "gloria."
 * (stripped, as load_gloria does) and whose hyper_parameters are a pickled OmegaConf object medvlp
 * does not run — so the configuration comes from medvlp.json:
 *   text.word_num (97), text.last_n_layers (4), text.config (a BertConfig JSON; else sizes from the
 *   tensor shapes), text.vocab; image.imsize (256), image.crop (224), image.upsample (299);
 *   gloria.temp1/temp2/temp3 (4, 5, 10).
 *
 * Text tower: GLoRIA's cleaning, WordPiece cut to word_num, BERT, the words aggregated over the last
 * n layers; the embedding is sent_emb (no projection). Image tower: GLoRIA's preprocessing and the
 * in-model upsample (prepare_custom), torchvision ResNet under img_encoder.model., global average
 * pool, global_embedder (a linear head with bias) = img_emb_g. The local side (local_embedder on
 * layer3, word embeddings) serves mv_gloria_model_local_score. Math: gloria.c. */
#include "models/family.h"
#include "models/gloria.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medvlp/tensor.h"

#define IMAGE_ANCHOR "img_encoder.global_embedder.weight"

typedef struct gloria_data {
    mv_gloria_text text;
    const float *local_w;       /* img_encoder.local_embedder.weight as [embed_dim, layer3 channels] */
    int local_channels;
} gloria_data;

static int matches(const mv_model_dir *dir)
{
    return dir->layout == MV_LAYOUT_MANIFEST && !strcmp(dir->family, "gloria");
}

static void free_data(void *custom)
{
    gloria_data *data = custom;
    if (data)
        mv_gloria_text_free(&data->text);
    free(data);
}

static const gloria_data *model_data(const mv_model *model)
{
    return model->text.custom;
}

static int pool(mv_text_tower *tower, const mv_bert_batch *batch, float *pooled, mv_error *err)
{
    gloria_data *data = tower->custom;
    int hidden = tower->bert.config.hidden_size;
    for (int t = 0, offset = 0; t < batch->n_texts; offset += batch->lengths[t], t++) {
        int rc = mv_gloria_text_forward(&data->text, &tower->bert, &tower->state, batch->token_ids + offset,
                                        batch->lengths[t], NULL, NULL, pooled + (size_t)t * hidden, err);
        if (rc)
            return mv_error_prefix(err, "text %d", t);
    }
    return MV_OK;
}

/* The tower is model->image; its model holds the GLoRIA configuration. */
static int prepare(const mv_image_tower *tower, const mv_image *img, float *chw, mv_error *err)
{
    const mv_model *model = (const mv_model *)((const char *)tower - offsetof(mv_model, image));
    const mv_gloria_config *cfg = &model_data(model)->text.config;
    float *scratch = malloc((size_t)3 * cfg->crop_size * cfg->crop_size * sizeof *scratch);
    if (!scratch)
        return mv_fail(err, MV_ENOMEM, "GLoRIA preprocess: out of memory");
    int rc = mv_gloria_model_input(img, cfg, chw, scratch, err);
    free(scratch);
    return rc;
}

/* The prefix load_gloria strips: whatever precedes img_encoder.global_embedder.weight. */
static int find_prefix(const mv_weights *w, char *prefix, size_t size, mv_error *err)
{
    size_t anchor_len = strlen(IMAGE_ANCHOR);
    for (size_t i = 0; i < mv_weights_count(w); i++) {
        const char *name = mv_weights_at(w, i)->name;
        size_t len = strlen(name);
        if (len >= anchor_len && !strcmp(name + len - anchor_len, IMAGE_ANCHOR) && len - anchor_len < size) {
            memcpy(prefix, name, len - anchor_len);
            prefix[len - anchor_len] = '\0';
            return MV_OK;
        }
    }
    return mv_fail(err, MV_EFORMAT, "%s: no GLoRIA image encoder (no tensor named …%s)", mv_weights_path(w),
                   IMAGE_ANCHOR);
}

static int read_config(const mv_model_dir *dir, mv_gloria_config *cfg, mv_error *err)
{
    const json_t *text = json_object_get(dir->config, "text"), *image = json_object_get(dir->config, "image");
    const json_t *temps = json_object_get(dir->config, "gloria");
    const char *path = dir->config_path;
    *cfg = mv_gloria_config_default();
    int rc;
    if ((rc = mv_json_int(text, "word_num", 0, &cfg->word_num, path, err)) ||
        (rc = mv_json_int(text, "last_n_layers", 0, &cfg->last_n_layers, path, err)) ||
        (rc = mv_json_int(image, "imsize", 0, &cfg->image_size, path, err)) ||
        (rc = mv_json_int(image, "crop", 0, &cfg->crop_size, path, err)) ||
        (rc = mv_json_int(image, "upsample", 0, &cfg->upsample_size, path, err)) ||
        (rc = mv_json_float(temps, "temp1", 0, &cfg->temp1, path, err)) ||
        (rc = mv_json_float(temps, "temp2", 0, &cfg->temp2, path, err)) ||
        (rc = mv_json_float(temps, "temp3", 0, &cfg->temp3, path, err)))
        return rc;
    if (cfg->image_size < 1 || cfg->image_size > 4096 || cfg->crop_size < 1 || cfg->crop_size > cfg->image_size ||
        cfg->upsample_size < 32 || cfg->upsample_size > 4096)
        return mv_fail(err, MV_EFORMAT, "%s: image sizes imsize %d, crop %d, upsample %d are not 1 <= crop <= "
                       "imsize <= 4096 and 32 <= upsample <= 4096", path, cfg->image_size, cfg->crop_size,
                       cfg->upsample_size);
    return MV_OK;
}

static int load_text(mv_model *model, const mv_model_dir *dir, mv_weights *w, const char *prefix,
                     const mv_gloria_config *cfg, mv_error *err)
{
    mv_text_tower *tower = &model->text;
    char bert_prefix[256], vocab[PATH_MAX];
    snprintf(bert_prefix, sizeof bert_prefix, "%stext_encoder.model.", prefix);
    mv_bert_config config;
    int rc = dir->text_config ? mv_bert_config_from_hf(dir->text_config, dir->text_config_path, &config, err)
                              : mv_bert_config_infer(w, bert_prefix, &config, err);
    if (rc || (rc = mv_model_load_bert(model, &config, w, bert_prefix, 0, err)) ||
        (rc = mv_manifest_file(dir, "text", "vocab", "vocab.txt", 1, vocab, err)))
        return rc;
    gloria_data *data = calloc(1, sizeof *data);
    if (!data)
        return mv_fail(err, MV_ENOMEM, "GLoRIA: out of memory");
    tower->custom = data;
    tower->free_custom = free_data;
    tower->pool_custom = pool;
    if ((rc = mv_gloria_text_init(&data->text, cfg, &config, vocab, err)))
        return mv_error_prefix(err, "%s", dir->config_path);
    tower->pooling = MV_POOL_CLS;   /* not used: pool_custom pools */
    tower->projection = MV_PROJ_NONE;
    tower->embed_dim = config.hidden_size;
    model->context_length = cfg->word_num;
    model->text_cleaning = MV_CLEAN_GLORIA;
    return mv_text_tower_load_head(tower, w, prefix, err);
}

static int load_image(mv_model *model, const mv_model_dir *dir, mv_weights *w, const char *prefix,
                      const mv_gloria_config *cfg, mv_error *err)
{
    mv_image_tower *tower = &model->image;
    char resnet_prefix[256], head[256], head_weight[300];
    snprintf(resnet_prefix, sizeof resnet_prefix, "%simg_encoder.model.", prefix);
    snprintf(head, sizeof head, "%simg_encoder.global_embedder", prefix);
    snprintf(head_weight, sizeof head_weight, "%s.weight", head);
    mv_resnet_names names = mv_resnet_names_torchvision(resnet_prefix);
    mv_resnet_config config;
    /* The transform only fixes the encoder's input size; prepare does GLoRIA's own steps. */
    memset(&tower->transform, 0, sizeof tower->transform);
    tower->transform.resize = MV_RESIZE_EXACT;
    tower->transform.resize_width = tower->transform.resize_height = cfg->upsample_size;
    int rc;
    if ((rc = mv_image_tower_set_transform(tower, dir->config_path, err)) ||
        (rc = mv_resnet_config_infer(w, &names, &config, err)) ||
        (rc = mv_model_load_resnet(model, &config, w, &names, err)))
        return rc;
    tower->prepare_custom = prepare;
    snprintf(tower->description, sizeof tower->description,
             "gray (L), longer side to %d (OpenCV INTER_AREA), zero pad to %dx%d, center crop %dx%d, "
             "(v/255 - 0.5) / 0.5, bilinear upsample to %dx%d (align_corners)", cfg->image_size, cfg->image_size,
             cfg->image_size, cfg->crop_size, cfg->crop_size, cfg->upsample_size, cfg->upsample_size);
    const mv_tensor_entry *global = mv_weights_find(w, head_weight);
    if (!global || global->ndim != 2)
        return mv_fail(err, MV_EFORMAT, "%s: %s is not a matrix", mv_weights_path(w), head_weight);
    tower->encoder = MV_ENCODER_RESNET;
    tower->head = MV_IMAGE_HEAD_LINEAR;
    tower->embed_dim = (int)global->shape[0];
    if ((rc = mv_image_tower_load_head(tower, w, head, NULL, NULL, err)))
        return rc;
    gloria_data *data = model->text.custom;
    data->local_channels = mv_resnet_out_channels(tower->resnet, 2);
    return mv_weights_take(w, &data->local_w, err, MV_SHAPE(tower->embed_dim, data->local_channels, 1, 1),
                           "%simg_encoder.local_embedder.weight", prefix);
}

static int load(mv_model *model, const mv_model_dir *dir, mv_error *err)
{
    char prefix[128];   /* names below add at most 40 bytes to it */
    mv_gloria_config cfg;
    mv_weights *weights;
    int rc;
    if ((rc = read_config(dir, &cfg, err)) || (rc = mv_model_add_checkpoint(model, dir, &weights, err)) ||
        (rc = find_prefix(weights, prefix, sizeof prefix, err)) ||
        (rc = load_text(model, dir, weights, prefix, &cfg, err)))
        return rc;
    return load_image(model, dir, weights, prefix, &cfg, err);
}

const mv_model_family mv_family_gloria = {"gloria", matches, load};

int mv_gloria_model_local_score(mv_model *model, const char *text, size_t text_len, double *local, mv_error *err)
{
    if (!model->family || strcmp(model->family, "gloria"))
        return mv_fail(err, MV_EUNSUPPORTED, "local scores are GLoRIA's; this model is %s", model->family);
    gloria_data *data = model->text.custom;
    const mv_resnet_state *st = model->image.resnet_state;
    if (!st)
        return mv_fail(err, MV_EINTERNAL, "GLoRIA local score: no image has been embedded");
    const mv_gloria_config *cfg = &data->text.config;
    int dim = model->image.embed_dim, regions = st->layer3_h * st->layer3_w, n_ids, n_words;
    char *clean;
    size_t clean_len;
    int rc = mv_gloria_clean_text(text, text_len, &clean, &clean_len, err);
    if (rc)
        return rc;
    int32_t *ids = malloc((size_t)cfg->word_num * sizeof *ids);
    float *words = malloc((size_t)cfg->word_num * dim * sizeof *words);
    float *region_emb = malloc((size_t)regions * dim * sizeof *region_emb);
    float *scratch = malloc(mv_gloria_local_scratch_size(cfg->word_num, regions, dim) * sizeof *scratch);
    if (!ids || !words || !region_emb || !scratch) {
        rc = mv_fail(err, MV_ENOMEM, "GLoRIA local score: out of memory");
        goto done;
    }
    if ((rc = mv_tokenizer_encode(model->tokenizer, clean, clean_len, cfg->word_num, ids, &n_ids, NULL, err)) ||
        (rc = mv_gloria_text_forward(&data->text, &model->text.bert, &model->text.state, ids, n_ids, words,
                                     &n_words, NULL, err)))
        goto done;
    if (n_words <= 2) {
        rc = mv_fail(err, MV_EINPUT, "the text has no words left after GLoRIA's cleaning (pieces of one word "
                     "and non-ASCII characters are dropped)");
        goto done;
    }
    /* the local embedder (a 1×1 convolution) over the first image's layer3 rows */
    mv_linear(st->layer3, regions, data->local_channels, data->local_w, NULL, dim, region_emb);
    *local = mv_gloria_local_similarity(words, n_words - 2, region_emb, regions, dim, cfg->temp1, cfg->temp2,
                                        scratch);
done:
    free(clean);
    free(ids);
    free(words);
    free(region_emb);
    free(scratch);
    return rc;
}
