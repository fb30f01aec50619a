/* family_biomedclip.c — open_clip models whose text tower is a Hugging Face BERT (BiomedCLIP):
 * open_clip_config.json with text_cfg.hf_model_name, weights under "text.transformer." and the
 * open_clip projection "text.proj". Accepts both config spellings open_clip has shipped
 * (hf_proj_type|proj, hf_pooler_type|pooler_type). The image tower is open_clip's TimmModel: a timm
 * VisionTransformer under "visual.trunk." with class-token pooling and the bias-free linear
 * "visual.head.proj" (timm_proj "linear"); its sizes are read off the tensor shapes, the transform
 * from the config (mv_transform_from_model_dir). */
#include "models/family.h"

#include <string.h>

/* Hyper-parameters of the hub models open_clip would fetch for hf_model_name (their config.json). */
static const struct known_bert {
    const char *hf_model_name;
    mv_bert_config config;
} known_berts[] = {
    {"microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract", {30522, 768, 12, 12, 3072, 512, 2, 1e-12f, MV_QUANT_NONE}},
    {"microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract", {30522, 768, 12, 12, 3072, 512, 2, 1e-12f, MV_QUANT_NONE}},
    {"bert-base-uncased", {30522, 768, 12, 12, 3072, 512, 2, 1e-12f, MV_QUANT_NONE}},
};

/* The model config is either the hub file's "model_cfg" or the whole file (open_clip's own configs). */
static const json_t *model_cfg(const mv_model_dir *dir)
{
    const json_t *nested = json_object_get(dir->config, "model_cfg");
    return json_is_object(nested) ? nested : dir->config;
}

static const char *either(const json_t *object, const char *key, const char *old_key)
{
    const char *value = mv_json_string(object, key);
    return value ? value : mv_json_string(object, old_key);
}

static int matches(const mv_model_dir *dir)
{
    const json_t *text_cfg = json_object_get(model_cfg(dir), "text_cfg");
    return dir->layout == MV_LAYOUT_OPEN_CLIP && mv_json_string(text_cfg, "hf_model_name") != NULL;
}

static int bert_config(const mv_model_dir *dir, const char *hf_model_name, mv_weights *w, mv_bert_config *out,
                       mv_error *err)
{
    if (dir->text_config)
        return mv_bert_config_from_hf(dir->text_config, dir->text_config_path, out, err);
    for (size_t i = 0; i < sizeof known_berts / sizeof known_berts[0]; i++) {
        if (!strcmp(known_berts[i].hf_model_name, hf_model_name)) {
            *out = known_berts[i].config;
            return MV_OK;
        }
    }
    return mv_bert_config_infer(w, "text.transformer.", out, err);
}

static int parse_pooler(const char *name, mv_text_pooling *out)
{
    static const struct { const char *name; mv_text_pooling pooling; } poolers[] = {
        {"cls_last_hidden_state_pooler", MV_POOL_CLS}, {"mean_pooler", MV_POOL_MEAN},
        {"max_pooler", MV_POOL_MAX}, {"cls_pooler", MV_POOL_BERT_POOLER},
    };
    for (size_t i = 0; i < sizeof poolers / sizeof poolers[0]; i++) {
        if (!strcmp(poolers[i].name, name)) {
            *out = poolers[i].pooling;
            return 1;
        }
    }
    return 0;
}

static const mv_tensor_entry *find(const mv_weights *w, const char *name, int ndim)
{
    const mv_tensor_entry *e = mv_weights_find(w, name);
    return e && e->ndim == ndim && e->f32 ? e : NULL;
}

/* timm VisionTransformer sizes from the trunk's shapes; heads = width / head_width, head_width from
 * vision_cfg (open_clip's CLIPVisionCfg field, default 64 — ViT-B/16: 768 / 64 = 12 heads). */
static int load_image_tower(mv_model *model, const mv_model_dir *dir, const json_t *vision_cfg, mv_weights *w,
                            mv_error *err)
{
    const char *path = dir->config_path;
    const char *pool = mv_json_string(vision_cfg, "timm_pool"), *proj = mv_json_string(vision_cfg, "timm_proj");
    if ((pool && pool[0] && strcmp(pool, "token")) || (proj && strcmp(proj, "linear")))
        return mv_fail(err, MV_EUNSUPPORTED, "%s: vision_cfg timm_pool \"%s\" / timm_proj \"%s\" is not supported "
                       "(only token pooling with a linear projection)", path, pool ? pool : "", proj ? proj : "");
    const mv_tensor_entry *patch = find(w, "visual.trunk.patch_embed.proj.weight", 4);
    const mv_tensor_entry *fc1 = find(w, "visual.trunk.blocks.0.mlp.fc1.weight", 2);
    const mv_tensor_entry *head = find(w, "visual.head.proj.weight", 2);
    if (!patch || !fc1 || !head)
        return mv_fail(err, MV_EFORMAT, "%s: no timm ViT image tower (visual.trunk.patch_embed.proj.weight, "
                       "visual.trunk.blocks.0.*, visual.head.proj.weight)", mv_weights_path(w));
    int depth = 0, head_width = 64, rc;
    while (mv_weights_has(w, "visual.trunk.blocks.%d.attn.qkv.weight", depth))
        depth++;
    if ((rc = mv_json_int(vision_cfg, "head_width", 0, &head_width, path, err)))
        return rc;
    mv_image_tower *tower = &model->image;
    if ((rc = mv_transform_from_model_dir(dir->path, &tower->transform, err)) ||
        (rc = mv_image_tower_set_transform(tower, path, err)))
        return rc;
    const int width = (int)patch->shape[0];
    if (head_width <= 0 || width % head_width)
        return mv_fail(err, MV_EFORMAT, "%s: ViT width %d is not a multiple of head_width %d", path, width,
                       head_width);
    mv_vit_config config = mv_vit_config_timm(tower->width, (int)patch->shape[2], width, depth, width / head_width,
                                              (int)head->shape[0]);
    config.in_channels = (int)patch->shape[1];
    config.mlp_dim = (int)fc1->shape[0];
    tower->encoder = MV_ENCODER_VIT;
    tower->head = MV_IMAGE_HEAD_NONE;
    tower->embed_dim = config.proj_dim;
    if (tower->width != tower->height)
        return mv_fail(err, MV_EUNSUPPORTED, "%s: non-square ViT input %d x %d", path, tower->width, tower->height);
    if ((rc = mv_model_load_vit(model, &config, w, "visual.trunk.", "visual.head.proj.weight", err)))
        return rc;
    return mv_image_tower_load_head(tower, w, NULL, NULL, NULL, err);
}

static int load(mv_model *model, const mv_model_dir *dir, mv_error *err)
{
    const json_t *cfg = model_cfg(dir);
    const json_t *text_cfg = json_object_get(cfg, "text_cfg");
    const char *path = dir->config_path;
    mv_text_tower *tower = &model->text;
    mv_weights *weights;
    int rc;
    if ((rc = mv_model_add_weights(model, dir->weights_path, &weights, err)) ||
        (rc = mv_json_int(cfg, "embed_dim", 1, &tower->embed_dim, path, err)))
        return rc;
    model->context_length = 77; /* open_clip CLIPTextCfg default */
    if ((rc = mv_json_int(text_cfg, "context_length", 0, &model->context_length, path, err)))
        return rc;

    const char *pooler = either(text_cfg, "hf_pooler_type", "pooler_type");
    if (!pooler)
        pooler = "mean_pooler"; /* open_clip CLIPTextCfg default */
    if (!parse_pooler(pooler, &tower->pooling))
        return mv_fail(err, MV_EUNSUPPORTED, "%s: text_cfg pooler type \"%s\" is not supported", path, pooler);

    mv_bert_config config;
    if ((rc = bert_config(dir, mv_json_string(text_cfg, "hf_model_name"), weights, &config, err)) ||
        (rc = mv_model_load_bert(model, &config, weights, "text.transformer.",
                           tower->pooling == MV_POOL_BERT_POOLER, err)))
        return rc;
    if (model->context_length < 2 || model->context_length > config.max_positions)
        return mv_fail(err, MV_EFORMAT, "%s: context_length %d is outside 2..%d (the position table)", path,
                       model->context_length, config.max_positions);

    const char *proj = either(text_cfg, "hf_proj_type", "proj");
    if (!proj)
        proj = "mlp"; /* open_clip CLIPTextCfg default */
    if (!strcmp(proj, "mlp")) {
        tower->projection = MV_PROJ_MLP;
        tower->proj_hidden = (config.hidden_size + tower->embed_dim) / 2;
    } else if (!strcmp(proj, "linear")) {
        tower->projection = MV_PROJ_LINEAR;
    } else if (!strcmp(proj, "none")) {
        tower->projection = MV_PROJ_NONE;
    } else {
        return mv_fail(err, MV_EUNSUPPORTED, "%s: text_cfg projection \"%s\" is not supported", path, proj);
    }
    model->text_cleaning = MV_CLEAN_OPEN_CLIP;
    if ((rc = mv_text_tower_load_head(tower, weights, "text.", err)))
        return rc;
    /* A text-only open_clip checkpoint (no visual.* tensors) stays usable for text. */
    if (!mv_weights_has(weights, "visual.trunk.patch_embed.proj.weight"))
        return MV_OK;
    return load_image_tower(model, dir, json_object_get(cfg, "vision_cfg"), weights, err);
}

const mv_model_family mv_family_biomedclip = {"biomedclip", matches, load};
