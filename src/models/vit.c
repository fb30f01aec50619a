/* vit.c — owns the Vision Transformer tower (include/medvlp/vit.h): tensor lookup for the timm and
 * HF-CLIP naming schemes, the batch state and the forward pass.
 *
 * All token rows of a batch are one matrix [n_images·n_tokens, width], so every Linear is one GEMM
 * over the batch; only attention (mv_attention, fused per head) runs per image. It reads q, k and v from
 * the fused qkv rows (leading dimension 3·width) and writes each head's output into its column
 * slice of `attn`, so no [batch, heads, tokens, head_dim] tensor is ever materialised. */
#include "medvlp/vit.h"
#include "medvlp/conv.h"
#include "medvlp/pages.h"
#include "medvlp/tensor.h"
#include "pack_linear.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mv_vit_config mv_vit_config_timm(int image_size, int patch_size, int width, int depth, int heads, int proj_dim)
{
    return (mv_vit_config){MV_VIT_TIMM, image_size, patch_size, 3, width, depth, heads, 4 * width, proj_dim,
                           1e-6f, MV_QUANT_NONE};
}

mv_vit_config mv_vit_config_clip(int image_size, int patch_size, int width, int depth, int heads, int proj_dim)
{
    return (mv_vit_config){MV_VIT_CLIP, image_size, patch_size, 3, width, depth, heads, 4 * width, proj_dim,
                           1e-5f, MV_QUANT_NONE};
}

/* Module names inside one block, after the block's own prefix. */
typedef struct block_names {
    const char *block;          /* printf format of the block prefix, takes the layer index */
    const char *norm1, *attn_out, *norm2, *fc1, *fc2;
} block_names;

static const block_names timm_block = {"blocks.%d.", "norm1", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"};
static const block_names clip_block = {"encoder.layers.%d.", "layer_norm1", "self_attn.out_proj", "layer_norm2",
                                       "mlp.fc1", "mlp.fc2"};

typedef struct loader {
    mv_weights *weights;
    const char *prefix;
    char block[128];            /* the current block's prefix, e.g. "blocks.3." */
} loader;

/* weight [out, in] and bias [out] (bias skipped when `bias` is NULL) of module prefix+block+name. */
static int take_linear(loader *ld, const char *name, int out, int in, const float **weight, const float **bias,
                       mv_error *err)
{
    int rc = mv_weights_take(ld->weights, weight, err, MV_SHAPE(out, in), "%s%s%s.weight", ld->prefix,
                             ld->block, name);
    if (!rc && bias)
        rc = mv_weights_take(ld->weights, bias, err, MV_SHAPE(out), "%s%s%s.bias", ld->prefix, ld->block, name);
    return rc;
}

static int take_norm(loader *ld, const char *name, int dim, const float **gamma, const float **beta, mv_error *err)
{
    int rc = mv_weights_take(ld->weights, gamma, err, MV_SHAPE(dim), "%s%s%s.weight", ld->prefix, ld->block, name);
    if (!rc)
        rc = mv_weights_take(ld->weights, beta, err, MV_SHAPE(dim), "%s%s%s.bias", ld->prefix, ld->block, name);
    return rc;
}

/* CLIP keeps q, k and v as three Linears; stack them into the fused [q; k; v] layout of timm. */
static int take_clip_qkv(loader *ld, int width, float *qkv_w, float *qkv_b, mv_error *err)
{
    static const char *const parts[3] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
    size_t square = (size_t)width * width;
    for (int p = 0; p < 3; p++) {
        const float *w, *b;
        int rc = take_linear(ld, parts[p], width, width, &w, &b, err);
        if (rc)
            return rc;
        memcpy(qkv_w + p * square, w, square * sizeof(float));
        memcpy(qkv_b + (size_t)p * width, b, (size_t)width * sizeof(float));
    }
    return MV_OK;
}

static int load_embeddings(loader *ld, mv_vit *m, mv_error *err)
{
    const mv_vit_config *c = &m->config;
    int64_t d = c->width, t = m->n_tokens, p = c->patch_size;
    mv_weights *w = ld->weights;
    const char *pre = ld->prefix;
    if (c->variant == MV_VIT_TIMM) {
        int rc = mv_weights_take(w, &m->patch_w, err, MV_SHAPE(d, c->in_channels, p, p), "%spatch_embed.proj.weight", pre);
        if (!rc)
            rc = mv_weights_take(w, &m->patch_b, err, MV_SHAPE(d), "%spatch_embed.proj.bias", pre);
        if (!rc)
            rc = mv_weights_take(w, &m->class_token, err, MV_SHAPE(1, 1, d), "%scls_token", pre);
        if (!rc)
            rc = mv_weights_take(w, &m->pos_embed, err, MV_SHAPE(1, t, d), "%spos_embed", pre);
        return rc;
    }
    int rc = mv_weights_take(w, &m->patch_w, err, MV_SHAPE(d, c->in_channels, p, p),
                             "%sembeddings.patch_embedding.weight", pre);
    if (!rc)
        rc = mv_weights_take(w, &m->class_token, err, MV_SHAPE(d), "%sembeddings.class_embedding", pre);
    if (!rc)
        rc = mv_weights_take(w, &m->pos_embed, err, MV_SHAPE(t, d), "%sembeddings.position_embedding.weight", pre);
    if (!rc)
        rc = take_norm(ld, "pre_layrnorm", c->width, &m->pre_ln_w, &m->pre_ln_b, err);
    return rc;
}

static int load_layer(loader *ld, mv_vit *m, int index, mv_error *err)
{
    const mv_vit_config *c = &m->config;
    int clip = c->variant == MV_VIT_CLIP;
    const block_names *names = clip ? &clip_block : &timm_block;
    mv_vit_layer *l = &m->layers[index];
    snprintf(ld->block, sizeof ld->block, names->block, index);
    int rc = take_norm(ld, names->norm1, c->width, &l->ln1_w, &l->ln1_b, err);
    if (!rc && clip) {
        float *qkv_w = m->owned + (size_t)index * 3 * c->width * (c->width + 1);
        float *qkv_b = qkv_w + (size_t)3 * c->width * c->width;
        rc = take_clip_qkv(ld, c->width, qkv_w, qkv_b, err);
        l->qkv_w = qkv_w;
        l->qkv_b = qkv_b;
    } else if (!rc) {
        rc = take_linear(ld, "attn.qkv", 3 * c->width, c->width, &l->qkv_w, &l->qkv_b, err);
    }
    if (!rc)
        rc = take_linear(ld, names->attn_out, c->width, c->width, &l->proj_w, &l->proj_b, err);
    if (!rc)
        rc = take_norm(ld, names->norm2, c->width, &l->ln2_w, &l->ln2_b, err);
    if (!rc)
        rc = take_linear(ld, names->fc1, c->mlp_dim, c->width, &l->fc1_w, &l->fc1_b, err);
    if (!rc)
        rc = take_linear(ld, names->fc2, c->width, c->mlp_dim, &l->fc2_w, &l->fc2_b, err);
    mv_weights *w = ld->weights;
    if (!rc && (pack_linear(w, &l->qkv, l->qkv_w, 3 * c->width, c->width, c->quant) ||
                pack_linear(w, &l->proj, l->proj_w, c->width, c->width, c->quant) ||
                pack_linear(w, &l->fc1, l->fc1_w, c->mlp_dim, c->width, c->quant) ||
                pack_linear(w, &l->fc2, l->fc2_w, c->width, c->mlp_dim, c->quant)))
        rc = mv_fail(err, MV_ENOMEM, "vit: out of memory packing block %d", index);
    /* int8: as BERT's (bert.c), the products that write into the residual stream and the MLP's input
     * take 16-bit activations. */
    if (!rc) {
        mv_packed_weight_fine_activations(&l->proj);
        mv_packed_weight_fine_activations(&l->fc1);
        mv_packed_weight_fine_activations(&l->fc2);
    }
    return rc;
}

int mv_vit_load(mv_vit **out, const mv_vit_config *config, mv_weights *weights, const char *prefix,
                const char *head_name, mv_error *err)
{
    *out = NULL;
    const mv_vit_config *c = config;
    if (c->patch_size <= 0 || c->image_size < c->patch_size || c->in_channels <= 0 || c->width <= 0 ||
        c->depth <= 0 || c->heads <= 0 || c->width % c->heads || c->mlp_dim <= 0 || c->proj_dim < 0 ||
        !(c->eps > 0))
        return mv_fail(err, MV_EINPUT, "vit: invalid config (image %d, patch %d, width %d, depth %d, heads %d)",
                       c->image_size, c->patch_size, c->width, c->depth, c->heads);
    if (c->proj_dim > 0 && !head_name)
        return mv_fail(err, MV_EINPUT, "vit: proj_dim %d needs the projection's tensor name", c->proj_dim);
    mv_vit *m = calloc(1, sizeof *m);
    if (!m)
        return mv_fail(err, MV_ENOMEM, "vit: out of memory");
    m->config = *config;
    int grid = c->image_size / c->patch_size;
    m->n_patches = grid * grid;
    m->n_tokens = m->n_patches + 1;
    m->layers = calloc((size_t)c->depth, sizeof *m->layers);
    if (c->variant == MV_VIT_CLIP)
        m->owned = mv_alloc_populated((size_t)c->depth * 3 * c->width * (c->width + 1) * sizeof(float));
    if (!m->layers || (c->variant == MV_VIT_CLIP && !m->owned)) {
        mv_vit_free(m);
        return mv_fail(err, MV_ENOMEM, "vit: out of memory");
    }
    loader ld = {.weights = weights, .prefix = prefix ? prefix : ""};
    int rc = load_embeddings(&ld, m, err);
    for (int i = 0; i < c->depth && !rc; i++)
        rc = load_layer(&ld, m, i, err);
    ld.block[0] = '\0';
    if (!rc)
        rc = take_norm(&ld, c->variant == MV_VIT_CLIP ? "post_layernorm" : "norm", c->width, &m->norm_w,
                       &m->norm_b, err);
    if (!rc && c->proj_dim > 0)
        rc = mv_weights_take(weights, &m->head_w, err, MV_SHAPE(c->proj_dim, c->width), "%s", head_name);
    if (rc) {
        mv_vit_free(m);
        return rc;
    }
    *out = m;
    return MV_OK;
}

void mv_vit_free(mv_vit *model)
{
    if (!model)
        return;
    for (int i = 0; model->layers && i < model->config.depth; i++) {
        mv_packed_weight_free(&model->layers[i].qkv);
        mv_packed_weight_free(&model->layers[i].proj);
        mv_packed_weight_free(&model->layers[i].fc1);
        mv_packed_weight_free(&model->layers[i].fc2);
    }
    free(model->layers);
    free(model->owned);
    free(model);
}

/* --- State ------------------------------------------------------------------------------------- */

int mv_vit_state_new(const mv_vit *m, int max_images, mv_vit_state **out, mv_error *err)
{
    *out = NULL;
    const mv_vit_config *c = &m->config;
    if (max_images <= 0)
        return mv_fail(err, MV_EINPUT, "vit: a batch needs at least one image (got %d)", max_images);
    size_t rows = (size_t)max_images * m->n_tokens;
    size_t patch_len = (size_t)c->in_channels * c->patch_size * c->patch_size;
    mv_vit_state *st = calloc(1, sizeof *st);
    if (!st)
        return mv_fail(err, MV_ENOMEM, "vit: out of memory");
    st->max_images = max_images;
    st->pooled = malloc((size_t)max_images * c->width * sizeof(float));
    if (c->proj_dim > 0)
        st->embedding = malloc((size_t)max_images * c->proj_dim * sizeof(float));
    st->x = malloc(rows * c->width * sizeof(float));
    st->xn = malloc(rows * c->width * sizeof(float));
    st->qkv = malloc(rows * 3 * c->width * sizeof(float));
    st->attn = malloc(rows * c->width * sizeof(float));
    st->mlp = malloc(rows * c->mlp_dim * sizeof(float));
    st->patches = malloc((size_t)max_images * m->n_patches * patch_len * sizeof(float));
    size_t attention_bytes = mv_attention_scratch_floats(m->n_tokens, c->heads, c->width / c->heads) * sizeof(float);
    st->attention = mv_alloc_aligned(attention_bytes);
    if (!st->pooled || (c->proj_dim > 0 && !st->embedding) || !st->x || !st->xn || !st->qkv || !st->attn ||
        !st->mlp || !st->patches || !st->attention) {
        mv_vit_state_free(st);
        return mv_fail(err, MV_ENOMEM, "vit: out of memory for a batch of %d images", max_images);
    }
    *out = st;
    return MV_OK;
}

void mv_vit_state_free(mv_vit_state *st)
{
    if (!st)
        return;
    free(st->pooled);
    free(st->embedding);
    free(st->x);
    free(st->xn);
    free(st->qkv);
    free(st->attn);
    free(st->mlp);
    free(st->patches);
    free(st->attention);
    free(st);
}

/* --- Forward ----------------------------------------------------------------------------------- */

/* x[n_tokens, width] = [class; patches·Wpᵀ + bp] + pos for one image. */
static void patch_embed(const mv_vit *m, const float *image, float *patches, float *x)
{
    const mv_vit_config *c = &m->config;
    int patch_len = c->in_channels * c->patch_size * c->patch_size;
    mv_patchify_chw(image, c->in_channels, c->image_size, c->image_size, c->patch_size, patches);
    memcpy(x, m->class_token, (size_t)c->width * sizeof(float));
    mv_linear(patches, m->n_patches, patch_len, m->patch_w, m->patch_b, c->width, x + c->width);
    mv_add(x, m->pos_embed, (size_t)m->n_tokens * c->width);
}

/* x += proj(MHA(LN1(x))); x += fc2(act(fc1(LN2(x)))) over all rows of the batch. */
static void block_forward(const mv_vit *m, const mv_vit_layer *l, mv_vit_state *st, int n_images)
{
    const mv_vit_config *c = &m->config;
    int rows = n_images * m->n_tokens, d = c->width;
    size_t image_rows = (size_t)m->n_tokens;

    mv_layernorm(st->x, st->xn, rows, d, l->ln1_w, l->ln1_b, c->eps);
    mv_packed_linear(st->xn, rows, &l->qkv, l->qkv_b, 0, st->qkv);
    for (int i = 0; i < n_images; i++) {
        const float *q = st->qkv + i * image_rows * 3 * d;
        mv_attention(q, q + d, q + 2 * d, 3 * d, m->n_tokens, c->heads, d / c->heads, st->attn + i * image_rows * d, d,
                     st->attention);
    }
    mv_packed_linear(st->attn, rows, &l->proj, l->proj_b, 1, st->x);

    mv_layernorm(st->x, st->xn, rows, d, l->ln2_w, l->ln2_b, c->eps);
    /* timm's exact GELU runs in the GEMM's store; CLIP's QuickGELU is a pass of its own. */
    int clip = c->variant == MV_VIT_CLIP;
    mv_packed_gemm(st->xn, rows, &l->fc1, &(mv_gemm_epilogue){l->fc1_b, NULL, clip ? MV_ACT_NONE : MV_ACT_GELU},
                   st->mlp);
    if (clip)
        mv_quick_gelu(st->mlp, (size_t)rows * c->mlp_dim);
    mv_packed_linear(st->mlp, rows, &l->fc2, l->fc2_b, 1, st->x);
}

int mv_vit_forward(const mv_vit *m, mv_vit_state *st, const float *images, int n_images, mv_error *err)
{
    const mv_vit_config *c = &m->config;
    if (n_images < 1 || n_images > st->max_images)
        return mv_fail(err, MV_EINPUT, "vit: batch of %d images, state holds 1..%d", n_images, st->max_images);
    size_t image_len = (size_t)c->in_channels * c->image_size * c->image_size;
    size_t patch_len = (size_t)c->in_channels * c->patch_size * c->patch_size;
    int rows = n_images * m->n_tokens;
    for (int i = 0; i < n_images; i++)
        patch_embed(m, images + i * image_len, st->patches + (size_t)i * m->n_patches * patch_len,
                    st->x + (size_t)i * m->n_tokens * c->width);
    if (m->pre_ln_w)
        mv_layernorm(st->x, st->x, rows, c->width, m->pre_ln_w, m->pre_ln_b, c->eps);

    for (int l = 0; l < c->depth; l++)
        block_forward(m, &m->layers[l], st, n_images);

    /* Only the class token is pooled, so the final norm (timm `norm`, CLIP `post_layernorm`) runs on
     * that row alone: LayerNorm is per row, the other rows' values are never read. */
    for (int i = 0; i < n_images; i++)
        mv_layernorm(st->x + (size_t)i * m->n_tokens * c->width, st->pooled + (size_t)i * c->width, 1, c->width,
                     m->norm_w, m->norm_b, c->eps);
    if (m->head_w)
        mv_linear(st->pooled, n_images, c->width, m->head_w, NULL, c->proj_dim, st->embedding);
    return MV_OK;
}
