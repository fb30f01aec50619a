/* vit.h — the Vision Transformer image tower: timm VisionTransformer (BiomedCLIP's open_clip trunk +
 * `visual.head.proj`) and HF CLIPVisionModel (+ visual_projection), one forward with variant switches.
 *
 * x = [class; patches·Wpᵀ (+ bp)] + pos  → (CLIP: pre-LN) → depth × pre-LN blocks:
 *   x += proj(MHA(LN1(x))),  x += fc2(act(fc1(LN2(x))))   (timm: exact GELU; CLIP: quick GELU)
 * → LN(class token) (timm `norm`, CLIP `post_layernorm`) → optional projection without bias.
 * Tensors are borrowed from the checkpoint (zero-copy): keep the mv_weights open while the model
 * lives. CLIP's separate q/k/v projections are concatenated once at load into the fused layout. */
#ifndef MEDVLP_VIT_H
#define MEDVLP_VIT_H

#include "medvlp/error.h"
#include "medvlp/tensor.h"
#include "medvlp/weights.h"

typedef enum mv_vit_variant {
    MV_VIT_TIMM,   /* timm names (prefix e.g. "visual.trunk."), LN eps 1e-6, GELU, patch bias */
    MV_VIT_CLIP,   /* HF CLIP names (prefix "vision_model."), LN eps 1e-5, quick GELU, pre-LN, no patch bias */
} mv_vit_variant;

typedef struct mv_vit_config {
    mv_vit_variant variant;
    int image_size, patch_size, in_channels;
    int width, depth, heads, mlp_dim;
    int proj_dim;        /* output of the projection head; 0 = none */
    float eps;           /* LayerNorm eps */
    mv_quant quant;      /* storage of the blocks' Linear weights (MV_QUANT_NONE: fp32) */
} mv_vit_config;

/* Defaults of each variant: in_channels 3, mlp_dim 4·width, eps 1e-6 (timm) / 1e-5 (CLIP). */
mv_vit_config mv_vit_config_timm(int image_size, int patch_size, int width, int depth, int heads,
                                 int proj_dim);
mv_vit_config mv_vit_config_clip(int image_size, int patch_size, int width, int depth, int heads,
                                 int proj_dim);

typedef struct mv_vit_layer {
    const float *ln1_w, *ln1_b;
    const float *qkv_w, *qkv_b;     /* [3·width, width], rows [q; k; v], heads of width/heads features */
    const float *proj_w, *proj_b;
    const float *ln2_w, *ln2_b;
    const float *fc1_w, *fc1_b, *fc2_w, *fc2_b;
    mv_packed_weight qkv, proj, fc1, fc2;  /* the four weights above, packed at load for the GEMMs */
} mv_vit_layer;

typedef struct mv_vit {
    mv_vit_config config;
    int n_patches, n_tokens;        /* grid², grid² + 1 */
    const float *patch_w, *patch_b; /* [width, in_channels·patch²] (OIHW flattened); bias NULL for CLIP */
    const float *class_token;       /* [width] */
    const float *pos_embed;         /* [n_tokens, width] */
    const float *pre_ln_w, *pre_ln_b;   /* CLIP only */
    const float *norm_w, *norm_b;
    const float *head_w;            /* [proj_dim, width] or NULL */
    mv_vit_layer *layers;
    float *owned;                   /* CLIP's fused qkv weights and biases */
} mv_vit;

/* prefix: the trunk's key prefix ("visual.trunk.", "vision_model."); head_name: the projection's full
 * key ("visual.head.proj.weight", "visual_projection.weight"), used when config->proj_dim > 0. */
int mv_vit_load(mv_vit **out, const mv_vit_config *config, mv_weights *weights, const char *prefix,
                const char *head_name, mv_error *err);
void mv_vit_free(mv_vit *model);

typedef struct mv_vit_state {
    int max_images;
    float *pooled;      /* [n, width]     normed class token */
    float *embedding;   /* [n, proj_dim]  projected (NULL without a head) */
    /* scratch, rows = n·n_tokens */
    float *x, *xn, *qkv, *attn, *mlp;
    float *patches;     /* [n·n_patches, in_channels·patch²] */
    float *attention;   /* mv_attention's scratch for one image */
} mv_vit_state;

int mv_vit_state_new(const mv_vit *model, int max_images, mv_vit_state **out, mv_error *err);
void mv_vit_state_free(mv_vit_state *state);

/* images: [n_images, in_channels, image_size, image_size] CHW. Fills state->pooled (and embedding). */
int mv_vit_forward(const mv_vit *model, mv_vit_state *state, const float *images, int n_images,
                   mv_error *err);

#endif
