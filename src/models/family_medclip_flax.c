/* family_medclip_flax.c — flax-community MedCLIP (hybrid CLIP: OpenAI CLIP ViT-B/32 vision + SciBERT
 * text; hub flax-community/medclip and medclip-roco), manifest layout (family "medclip-flax"):
 * "checkpoint" the hub's flax_model.msgpack, "config" the hub's config.json (text_config: a BertConfig,
 * vision_config: a CLIPVisionConfig), text.vocab (SciBERT's), text.max_length (the training
 * --max_seq_length, 128 for medclip-roco, 256 for medclip; default: the position table). MODELS.md §5.1.
 *
 * The Flax parameter tree is renamed and re-laid-out once at load into torch names, so the shared BERT
 * and CLIP ViT read it (a name/layout map, not a second model): "/" → ".", Dense/Conv "kernel" →
 * "weight" transposed ([in, out] → [out, in]; HWIO → OIHW), LayerNorm "scale" and Embed "embedding" →
 * "weight"; the vision tree's "vision_model/vision_model/" (FlaxCLIPVisionModule wraps its transformer
 * as vision_model) becomes "vision_model."; a "params/" root is dropped. Only kernels are copied; every
 * other tensor stays where the msgpack reader put it.
 * Text: BERT "text_model.", pooler tanh(W·h_CLS + b), text_projection (no bias), L2. Image: CLIP ViT
 * "vision_model." (pre-LN, quick GELU), post_layernorm(h_CLS), visual_projection (no bias), L2.
 * Preprocessing: CLIP's PIL pipeline (shortest side 224 bicubic, center crop, OpenAI mean/std). The
 * authors' training transform resized uint8 torch tensors instead of PIL images (torchvision's tensor
 * bicubic, antialias depending on its version): medvlp follows CLIP's reference pipeline. */
#include "models/family.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct flax_data {
    mv_weights *mapped;   /* the torch-named view of the msgpack's tensors */
} flax_data;

static int matches(const mv_model_dir *dir)
{
    return dir->layout == MV_LAYOUT_MANIFEST && !strcmp(dir->family, "medclip-flax");
}

static void free_data(void *custom)
{
    flax_data *data = custom;
    if (data)
        mv_weights_free(data->mapped);
    free(data);
}

/* The torch name of a Flax parameter path; *transpose: 2 for a Dense kernel, 4 for a Conv kernel. */
static int torch_name(const mv_tensor_entry *e, char *out, size_t size, int *transpose)
{
    const char *name = e->name;
    if (!strncmp(name, "params/", 7))
        name += 7;
    if (!strncmp(name, "vision_model/vision_model/", 26))
        name += 13;
    size_t len = strlen(name);
    if (len + 8 >= size)
        return 0;
    memcpy(out, name, len + 1);
    for (char *c = out; *c; c++)
        if (*c == '/')
            *c = '.';
    char *leaf = strrchr(out, '.');
    leaf = leaf ? leaf + 1 : out;
    *transpose = 0;
    if (!strcmp(leaf, "kernel") && (e->ndim == 2 || e->ndim == 4)) {
        *transpose = e->ndim;
        strcpy(leaf, "weight");
    } else if (!strcmp(leaf, "scale") || !strcmp(leaf, "embedding")) {
        strcpy(leaf, "weight");
    }
    return 1;
}

/* The torch layout of a kernel: [in, out] → [out, in], or HWIO → OIHW. Returns a heap buffer. */
static float *transpose_kernel(const mv_tensor_entry *e, int64_t shape[4])
{
    float *out = malloc(e->n_elements * sizeof *out);
    if (!out)
        return NULL;
    if (e->ndim == 2) {
        int64_t n_in = e->shape[0], n_out = e->shape[1];
        for (int64_t i = 0; i < n_in; i++)
            for (int64_t o = 0; o < n_out; o++)
                out[o * n_in + i] = e->f32[i * n_out + o];
        shape[0] = n_out;
        shape[1] = n_in;
        return out;
    }
    int64_t kh = e->shape[0], kw = e->shape[1], ci = e->shape[2], co = e->shape[3];
    for (int64_t y = 0; y < kh; y++)
        for (int64_t x = 0; x < kw; x++)
            for (int64_t i = 0; i < ci; i++)
                for (int64_t o = 0; o < co; o++)
                    out[((o * ci + i) * kh + y) * kw + x] = e->f32[((y * kw + x) * ci + i) * co + o];
    shape[0] = co;
    shape[1] = ci;
    shape[2] = kh;
    shape[3] = kw;
    return out;
}

static int map_weights(mv_weights *flax, mv_weights **out, mv_error *err)
{
    mv_weights *mapped = mv_weights_new(mv_weights_path(flax), "flax-msgpack");
    if (!mapped)
        return mv_fail(err, MV_ENOMEM, "out of memory");
    int rc = MV_OK;
    for (size_t i = 0; i < mv_weights_count(flax) && !rc; i++) {
        const mv_tensor_entry *e = mv_weights_at(flax, i);
        char name[512];
        int transpose;
        if (!e->f32)
            continue;   /* integer arrays are never weights */
        if (!torch_name(e, name, sizeof name, &transpose)) {
            rc = mv_fail(err, MV_EFORMAT, "%s: parameter name too long: %s", mv_weights_path(flax), e->name);
            break;
        }
        if (!transpose) {
            rc = mv_weights_add(mapped, name, MV_DTYPE_F32, e->ndim, e->shape, e->f32, e->n_elements * sizeof(float),
                                err);
            continue;
        }
        int64_t shape[4];
        float *data = transpose_kernel(e, shape);
        if (!data) {
            rc = mv_fail(err, MV_ENOMEM, "out of memory transposing %s", e->name);
            break;
        }
        if ((rc = mv_weights_keep_buffer(mapped, data, err)))
            break;
        rc = mv_weights_add(mapped, name, MV_DTYPE_F32, e->ndim, shape, data, e->n_elements * sizeof(float), err);
    }
    if (!rc)
        rc = mv_weights_finish(mapped, err);
    if (rc) {
        mv_weights_free(mapped);
        return mv_error_prefix(err, "%s", mv_weights_path(flax));
    }
    *out = mapped;
    return MV_OK;
}

/* A tensor of the msgpack counts as used when its torch-named view was used (parameter count and
 * unused-tensor warnings are computed on the file the model holds). */
static void mark_used(mv_weights *flax, const mv_weights *mapped)
{
    for (size_t i = 0; i < mv_weights_count(flax); i++) {
        const mv_tensor_entry *e = mv_weights_at(flax, i);
        char name[512];
        int transpose;
        const mv_tensor_entry *view;
        const float *unused;
        mv_error ignored;
        if (e->f32 && torch_name(e, name, sizeof name, &transpose) && (view = mv_weights_find(mapped, name)) &&
            view->used)
            mv_weights_take(flax, &unused, &ignored, e->ndim, e->shape, "%s", e->name);
    }
}

static int read_hub_config(const mv_model_dir *dir, json_t **out, char path[PATH_MAX], mv_error *err)
{
    int rc = mv_manifest_file(dir, NULL, "config", "config.json", 1, path, err);
    if (rc)
        return rc;
    json_error_t jerr;
    *out = json_load_file(path, 0, &jerr);
    if (!*out)
        return mv_fail(err, MV_EFORMAT, "%s: %s (line %d)", path, jerr.text, jerr.line);
    if (!json_is_object(json_object_get(*out, "text_config")) || !json_is_object(json_object_get(*out, "vision_config")))
        return mv_fail(err, MV_EFORMAT, "%s: a hybrid CLIP config needs objects \"text_config\" and "
                       "\"vision_config\"", path);
    return MV_OK;
}

static int load_text(mv_model *model, const mv_model_dir *dir, const json_t *hub, const char *hub_path,
                     mv_weights *w, mv_error *err)
{
    mv_text_tower *tower = &model->text;
    mv_bert_config config;
    int rc;
    if ((rc = mv_bert_config_from_hf(json_object_get(hub, "text_config"), hub_path, &config, err)) ||
        (rc = mv_model_load_bert(model, &config, w, "text_model.", 1, err)))
        return rc;
    const mv_tensor_entry *proj = mv_weights_find(w, "text_projection.weight");
    if (!proj || proj->ndim != 2)
        return mv_fail(err, MV_EFORMAT, "%s: no text_projection/kernel matrix", mv_weights_path(w));
    tower->pooling = MV_POOL_BERT_POOLER;
    tower->projection = MV_PROJ_LINEAR;
    tower->embed_dim = (int)proj->shape[0];
    model->context_length = config.max_positions;
    if ((rc = mv_json_int(json_object_get(dir->config, "text"), "max_length", 0, &model->context_length,
                          dir->config_path, err)))
        return rc;
    model->text_cleaning = MV_CLEAN_NONE;
    return mv_weights_take(w, &tower->proj_in_w, err, MV_SHAPE(tower->embed_dim, config.hidden_size),
                           "text_projection.weight");
}

static int load_image(mv_model *model, const mv_model_dir *dir, const json_t *hub, const char *hub_path,
                      mv_weights *w, mv_error *err)
{
    mv_image_tower *tower = &model->image;
    const json_t *vision = json_object_get(hub, "vision_config");
    int image_size = 224, patch = 32, width, depth, heads, mlp_dim;
    float eps = 1e-5f;
    int rc;
    if ((rc = mv_json_int(vision, "image_size", 0, &image_size, hub_path, err)) ||
        (rc = mv_json_int(vision, "patch_size", 0, &patch, hub_path, err)) ||
        (rc = mv_json_int(vision, "hidden_size", 1, &width, hub_path, err)) ||
        (rc = mv_json_int(vision, "num_hidden_layers", 1, &depth, hub_path, err)) ||
        (rc = mv_json_int(vision, "num_attention_heads", 1, &heads, hub_path, err)) ||
        (rc = mv_json_int(vision, "intermediate_size", 1, &mlp_dim, hub_path, err)) ||
        (rc = mv_json_float(vision, "layer_norm_eps", 0, &eps, hub_path, err)))
        return rc;
    const char *act = mv_json_string(vision, "hidden_act");
    if (act && strcmp(act, "quick_gelu"))
        return mv_fail(err, MV_EUNSUPPORTED, "%s: vision_config.hidden_act \"%s\" (CLIP's is quick_gelu)", hub_path,
                       act);
    const mv_tensor_entry *proj = mv_weights_find(w, "visual_projection.weight");
    if (!proj || proj->ndim != 2)
        return mv_fail(err, MV_EFORMAT, "%s: no visual_projection/kernel matrix", mv_weights_path(w));
    mv_vit_config config = mv_vit_config_clip(image_size, patch, width, depth, heads, (int)proj->shape[0]);
    config.mlp_dim = mlp_dim;
    config.eps = eps;
    mv_transform_openclip(&tower->transform, image_size, mv_openai_mean, mv_openai_std);
    if ((rc = mv_manifest_transform(dir, &tower->transform, err)) ||
        (rc = mv_image_tower_set_transform(tower, dir->config_path, err)) ||
        (rc = mv_model_load_vit(model, &config, w, "vision_model.", "visual_projection.weight", err)))
        return rc;
    tower->encoder = MV_ENCODER_VIT;
    tower->head = MV_IMAGE_HEAD_NONE;
    tower->embed_dim = config.proj_dim;
    return mv_image_tower_load_head(tower, w, NULL, NULL, NULL, err);
}

static int load(mv_model *model, const mv_model_dir *dir, mv_error *err)
{
    char path[PATH_MAX], hub_path[PATH_MAX];
    mv_weights *flax;
    json_t *hub = NULL;
    flax_data *data = calloc(1, sizeof *data);
    if (!data)
        return mv_fail(err, MV_ENOMEM, "out of memory");
    model->text.custom = data;   /* freed with the text tower, after the towers that borrow from it */
    model->text.free_custom = free_data;
    int rc;
    if (!(rc = read_hub_config(dir, &hub, hub_path, err)) &&
        !(rc = mv_manifest_file(dir, NULL, "checkpoint", "flax_model.msgpack", 1, path, err)) &&
        !(rc = mv_model_add_weights(model, path, &flax, err)) && !(rc = map_weights(flax, &data->mapped, err)) &&
        !(rc = load_text(model, dir, hub, hub_path, data->mapped, err)) &&
        !(rc = load_image(model, dir, hub, hub_path, data->mapped, err)))
        mark_used(flax, data->mapped);
    json_decref(hub);
    return rc;
}

const mv_model_family mv_family_medclip_flax = {"medclip-flax", matches, load};
