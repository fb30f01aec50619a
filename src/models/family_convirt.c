/* family_convirt.c — ConVIRT as trained by edreisMD/ConVIRT-pytorch (models/model.py ModelCLR),
 * manifest layout (family "convirt"): one state dict (checkpoint) holding both towers.
 *
 * Text: Bio_ClinicalBERT under "bert_model." (text.config, else sizes from the shapes), masked mean
 * of the last hidden state → bert_l1 → ReLU → bert_l2. The reference casts the pooled vector to
 * fp16 before the head (apex AMP); medvlp stays in fp32. No text cleaning; the Bio_ClinicalBERT
 * tokenizer lower-cases its cased vocabulary (no tokenizer_config.json ⇒ BertTokenizer defaults);
 * texts are cut at the 512 positions.
 * Image: torchvision ResNet-50 as nn.Sequential(*children()[:-1]) ("res_features.0..7"), global
 * average pool → res_l1 → ReLU → res_l2. Preprocessing: convert("RGB") first (the dataset opens every
 * image that way), Resize((224, 224)) bilinear, ImageNet
 * mean/std (the deterministic part of the training pipeline; the repository has no eval transform). */
#include "models/family.h"

#include <string.h>

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

static int matches(const mv_model_dir *dir)
{
    return dir->layout == MV_LAYOUT_MANIFEST && !strcmp(dir->family, "convirt");
}

/* Inner and output widths of a two-layer head, from its tensors' shapes. */
static int head_sizes(const mv_weights *w, const char *l1, const char *l2, int *hidden, int *out, mv_error *err)
{
    const mv_tensor_entry *first = mv_weights_find(w, l1), *second = mv_weights_find(w, l2);
    if (!first || !second || first->ndim != 2 || second->ndim != 2)
        return mv_fail(err, MV_EFORMAT, "%s: no projection head %s / %s", mv_weights_path(w), l1, l2);
    *hidden = (int)first->shape[0];
    *out = (int)second->shape[0];
    return MV_OK;
}

static int load_text(mv_model *model, const mv_model_dir *dir, mv_weights *w, mv_error *err)
{
    mv_text_tower *tower = &model->text;
    mv_bert_config config;
    int rc = dir->text_config ? mv_bert_config_from_hf(dir->text_config, dir->text_config_path, &config, err)
                              : mv_bert_config_infer(w, "bert_model.", &config, err);
    if (rc || (rc = mv_model_load_bert(model, &config, w, "bert_model.", 0, err)) ||
        (rc = head_sizes(w, "bert_l1.weight", "bert_l2.weight", &tower->proj_hidden, &tower->embed_dim, err)))
        return rc;
    tower->pooling = MV_POOL_MEAN;
    tower->projection = MV_PROJ_MLP_RELU;
    model->context_length = config.max_positions < 512 ? config.max_positions : 512;
    model->text_cleaning = MV_CLEAN_NONE;
    return mv_text_tower_load_head(tower, w, "bert_", err);
}

static int load_image(mv_model *model, const mv_model_dir *dir, mv_weights *w, mv_error *err)
{
    mv_image_tower *tower = &model->image;
    mv_resnet_names names = mv_resnet_names_sequential("res_features.");
    mv_resnet_config config;
    mv_transform *t = &tower->transform;
    mv_transform_openclip(t, 224, imagenet_mean, imagenet_std);
    t->resize = MV_RESIZE_EXACT;
    t->resize_width = t->resize_height = 224;
    t->filter = MV_FILTER_BILINEAR;
    t->crop_width = t->crop_height = 0;
    tower->rgb_first = 1;
    int rc;
    if ((rc = mv_manifest_transform(dir, t, err)) ||
        (rc = mv_image_tower_set_transform(tower, dir->config_path, err)) ||
        (rc = mv_resnet_config_infer(w, &names, &config, err)) ||
        (rc = mv_model_load_resnet(model, &config, w, &names, err)) ||
        (rc = head_sizes(w, "res_l1.weight", "res_l2.weight", &tower->head_hidden, &tower->embed_dim, err)))
        return rc;
    tower->encoder = MV_ENCODER_RESNET;
    tower->head = MV_IMAGE_HEAD_MLP_RELU;
    return mv_image_tower_load_head(tower, w, "res_l1", NULL, "res_l2", err);
}

static int load(mv_model *model, const mv_model_dir *dir, mv_error *err)
{
    mv_weights *weights;
    int rc;
    if ((rc = mv_model_add_checkpoint(model, dir, &weights, err)) || (rc = load_text(model, dir, weights, err)))
        return rc;
    return load_image(model, dir, weights, err);
}

const mv_model_family mv_family_convirt = {"convirt", matches, load};
