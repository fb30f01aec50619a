/* family_medclip.c — RyanWangZf/MedCLIP (EMNLP'22, `pip install medclip`), ResNet-50 variant, manifest
 * layout (family "medclip"): the pytorch_model.bin of medclip-pretrained.zip ("checkpoint"), text.vocab
 * (Bio_ClinicalBERT's), text.config (its BertConfig; else sizes from the shapes). MODELS.md §5.2.
 *
 * Text (MedCLIPTextModel): BERT "text_model.model.", hidden states of layers 1, 2 and the last, each
 * averaged over all positions, the three averaged, text_model.projection_head (no bias), L2. The authors
 * average over the padded batch (padding included, no mask); medvlp embeds every text as its own batch,
 * which is their result for a batch of one. No text cleaning; WordPiece lower-cases the cased vocab;
 * context 77 (the tokenizer's model_max_length).
 * Image (MedCLIPVisionModel + MedCLIPFeatureExtractor): the image pasted centred on a black "L" canvas of
 * side max(224, w, h) (colour converts to L in the paste), resized to 224×224 bicubic, v/255,
 * (x − 0.5862785803043838) / 0.27950088968644304, repeated to 3 channels; torchvision ResNet
 * "vision_model.model." whose fc (2048 → 512, no bias) is the projection; L2.
 * The Swin-T variant (medclip-vit-pretrained) is refused with a clear error. */
#include "models/family.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medvlp/tensor.h"

#define PAD_SIDE 224
#define N_POOLED_LAYERS 3

static const float pixel_mean = 0.5862785803043838f, pixel_std = 0.27950088968644304f;

/* The three hidden states the text embedding averages, for the tokens of one batch. */
typedef struct medclip_text {
    float *layers[N_POOLED_LAYERS];
    int slot[N_POOLED_LAYERS];   /* hidden_states indices: 1, 2, n_layers */
    float **hidden_states;       /* n_layers + 1 slots, the three above pointing into layers */
    size_t cap_tokens;
} medclip_text;

static int matches(const mv_model_dir *dir)
{
    return dir->layout == MV_LAYOUT_MANIFEST && !strcmp(dir->family, "medclip");
}

static void free_text(void *custom)
{
    medclip_text *text = custom;
    if (!text)
        return;
    for (int i = 0; i < N_POOLED_LAYERS; i++)
        free(text->layers[i]);
    free(text->hidden_states);
    free(text);
}

static int pool(mv_text_tower *tower, const mv_bert_batch *batch, float *pooled, mv_error *err)
{
    medclip_text *text = tower->custom;
    int hidden = tower->bert.config.hidden_size;
    size_t n_tokens = 0;
    for (int t = 0; t < batch->n_texts; t++)
        n_tokens += (size_t)batch->lengths[t];
    if (n_tokens > text->cap_tokens) {
        for (int i = 0; i < N_POOLED_LAYERS; i++) {
            free(text->layers[i]);
            text->hidden_states[text->slot[i]] = text->layers[i] = malloc(n_tokens * hidden * sizeof(float));
            if (!text->layers[i]) {
                text->cap_tokens = 0;
                return mv_fail(err, MV_ENOMEM, "MedCLIP: out of memory for %zu tokens", n_tokens);
            }
        }
        text->cap_tokens = n_tokens;
    }
    int rc = mv_bert_forward(&tower->bert, &tower->state, batch, text->hidden_states, err);
    if (rc)
        return rc;
    for (int t = 0, row = 0; t < batch->n_texts; row += batch->lengths[t], t++) {
        float *out = pooled + (size_t)t * hidden;
        memset(out, 0, (size_t)hidden * sizeof *out);
        for (int i = 0; i < N_POOLED_LAYERS; i++)
            for (int r = 0; r < batch->lengths[t]; r++)
                mv_add(out, text->layers[i] + ((size_t)row + r) * hidden, (size_t)hidden);
        mv_scale(out, 1.0f / ((float)N_POOLED_LAYERS * (float)batch->lengths[t]), (size_t)hidden);
    }
    return MV_OK;
}

static int load_text(mv_model *model, const mv_model_dir *dir, mv_weights *w, mv_error *err)
{
    mv_text_tower *tower = &model->text;
    mv_bert_config config;
    int rc = dir->text_config ? mv_bert_config_from_hf(dir->text_config, dir->text_config_path, &config, err)
                              : mv_bert_config_infer(w, "text_model.model.", &config, err);
    if (rc || (rc = mv_model_load_bert(model, &config, w, "text_model.model.", 0, err)))
        return rc;
    if (config.n_layers < 3)
        return mv_fail(err, MV_EFORMAT, "%s: MedCLIP pools BERT layers 1, 2 and the last; this one has %d layers",
                       mv_weights_path(w), config.n_layers);
    const mv_tensor_entry *head = mv_weights_find(w, "text_model.projection_head.weight");
    if (!head || head->ndim != 2)
        return mv_fail(err, MV_EFORMAT, "%s: no text_model.projection_head.weight matrix", mv_weights_path(w));
    medclip_text *text = calloc(1, sizeof *text);
    if (!text || !(text->hidden_states = calloc((size_t)config.n_layers + 1, sizeof *text->hidden_states))) {
        free(text);
        return mv_fail(err, MV_ENOMEM, "MedCLIP: out of memory");
    }
    text->slot[0] = 1;
    text->slot[1] = 2;
    text->slot[2] = config.n_layers;
    tower->custom = text;
    tower->free_custom = free_text;
    tower->pool_custom = pool;
    tower->pooling = MV_POOL_MEAN;   /* not used: pool_custom pools */
    tower->projection = MV_PROJ_LINEAR;
    tower->embed_dim = (int)head->shape[0];
    model->context_length = config.max_positions < 77 ? config.max_positions : 77;
    model->text_cleaning = MV_CLEAN_NONE;
    return mv_weights_take(w, &tower->proj_in_w, err, MV_SHAPE(tower->embed_dim, config.hidden_size),
                           "text_model.projection_head.weight");
}

/* MedCLIPFeatureExtractor's pad_img: the gray image centred on a black square canvas, then the
 * tower's transform (224×224 bicubic, scalar mean/std, gray replicated to 3 channels). */
static int prepare(const mv_image_tower *tower, const mv_image *img, float *chw, mv_error *err)
{
    int side = img->width > img->height ? img->width : img->height;
    side = side > PAD_SIDE ? side : PAD_SIDE;
    unsigned char *gray = malloc((size_t)img->width * img->height), *canvas = calloc((size_t)side * side, 1);
    int rc = MV_OK;
    if (!gray || !canvas) {
        rc = mv_fail(err, MV_ENOMEM, "MedCLIP preprocess: out of memory");
        goto done;
    }
    if ((rc = mv_image_to_gray(img, gray, err)))
        goto done;
    int left = (side - img->width) / 2, top = (side - img->height) / 2;
    for (int y = 0; y < img->height; y++)
        memcpy(canvas + (size_t)(top + y) * side + left, gray + (size_t)y * img->width, (size_t)img->width);
    mv_image square = {.width = side, .height = side, .mode = MV_MODE_L, .channels = 1, .pixels = canvas,
                       .format = img->format, .source_bit_depth = 8};
    rc = mv_preprocess(&square, &tower->transform, chw, NULL, err);
done:
    free(gray);
    free(canvas);
    return rc;
}

static int load_image(mv_model *model, const mv_model_dir *dir, mv_weights *w, mv_error *err)
{
    mv_image_tower *tower = &model->image;
    if (mv_weights_has(w, "vision_model.model.embeddings.patch_embeddings.projection.weight"))
        return mv_fail(err, MV_EUNSUPPORTED, "%s: the Swin-T (ViT) variant of MedCLIP is not supported; use the "
                       "ResNet-50 one (medclip-pretrained.zip)", mv_weights_path(w));
    mv_resnet_names names = mv_resnet_names_torchvision("vision_model.model.");
    mv_resnet_config config;
    mv_transform *t = &tower->transform;
    memset(t, 0, sizeof *t);
    t->resize = MV_RESIZE_EXACT;
    t->resize_width = t->resize_height = PAD_SIDE;
    t->filter = MV_FILTER_BICUBIC;
    t->crop_width = t->crop_height = PAD_SIDE;
    t->color = MV_COLOR_GRAY;
    t->normalize = 1;
    for (int c = 0; c < 3; c++) {
        t->mean[c] = pixel_mean;
        t->std[c] = pixel_std;
    }
    int rc;
    if ((rc = mv_image_tower_set_transform(tower, dir->config_path, err)) ||
        (rc = mv_resnet_config_infer(w, &names, &config, err)) ||
        (rc = mv_model_load_resnet(model, &config, w, &names, err)))
        return rc;
    tower->prepare_custom = prepare;
    snprintf(tower->description, sizeof tower->description,
             "gray (L), centred on a black square of side max(%d, w, h), resize to %dx%d (bicubic), "
             "(v/255 - %.8g) / %.8g, L replicated to 3 channels", PAD_SIDE, PAD_SIDE, PAD_SIDE, pixel_mean, pixel_std);
    const mv_tensor_entry *fc = mv_weights_find(w, "vision_model.model.fc.weight");
    if (!fc || fc->ndim != 2)
        return mv_fail(err, MV_EFORMAT, "%s: no vision_model.model.fc.weight matrix (the image projection)",
                       mv_weights_path(w));
    tower->encoder = MV_ENCODER_RESNET;
    tower->head = MV_IMAGE_HEAD_LINEAR;
    tower->embed_dim = (int)fc->shape[0];
    return mv_image_tower_load_head(tower, w, "vision_model.model.fc", NULL, NULL, err);
}

static int load(mv_model *model, const mv_model_dir *dir, mv_error *err)
{
    mv_weights *weights;
    int rc;
    if ((rc = mv_model_add_checkpoint(model, dir, &weights, err)) || (rc = load_text(model, dir, weights, err)))
        return rc;
    return load_image(model, dir, weights, err);
}

const mv_model_family mv_family_medclip = {"medclip", matches, load};
