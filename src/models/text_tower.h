/* text_tower.h — a BERT encoder plus the pooling and projection head that map a text into a model's
 * joint embedding space. Internal to src/models/: families build towers, mv_model runs them. */
#ifndef MEDVLP_MODELS_TEXT_TOWER_H
#define MEDVLP_MODELS_TEXT_TOWER_H

#include "medvlp/bert.h"

typedef enum mv_text_pooling {
    MV_POOL_CLS,          /* last_hidden_state[CLS] (open_clip cls_last_hidden_state_pooler, hi-ml) */
    MV_POOL_MEAN,         /* mean of the text's tokens (open_clip mean_pooler) */
    MV_POOL_MAX,          /* element-wise max over the text's tokens (open_clip max_pooler) */
    MV_POOL_BERT_POOLER,  /* tanh(W·h[CLS] + b), HF BertPooler (open_clip cls_pooler) */
} mv_text_pooling;

typedef enum mv_text_projection {
    MV_PROJ_NONE,         /* pooled vector is the embedding */
    MV_PROJ_LINEAR,       /* open_clip "linear": W·x, no bias */
    MV_PROJ_MLP,          /* open_clip "mlp": W2·GELU(W1·x), no biases */
    MV_PROJ_CXRBERT,      /* hi-ml BertProjectionHead: W2·LN(GELU(W1·x + b1)) + b2 */
    MV_PROJ_MLP_RELU,     /* ConVIRT: W2·ReLU(W1·x + b1) + b2 */
} mv_text_projection;

typedef struct mv_text_tower {
    mv_bert bert;
    mv_text_pooling pooling;
    mv_text_projection projection;
    int embed_dim;                      /* output dimension */
    int proj_hidden;                    /* inner width of two-layer heads */
    const float *proj_in_w, *proj_in_b; /* first (or only) projection layer */
    const float *proj_norm_w, *proj_norm_b;
    float proj_norm_eps;
    const float *proj_out_w, *proj_out_b;
    /* A family whose pooling reads other BERT layers than the last (GLoRIA's aggregated words,
     * MedCLIP's layers 1, 2, 12) sets pool_custom: it runs the encoder itself on the packed batch and
     * writes pooled[n_texts, hidden]; custom is its data, released by free_custom with the tower. */
    int (*pool_custom)(struct mv_text_tower *tower, const mv_bert_batch *batch, float *pooled, mv_error *err);
    void *custom;
    void (*free_custom)(void *custom);
    /* Work buffers, grown with the batch. */
    mv_bert_state state;
    float *pooled, *proj_mid;
    int cap_texts;
} mv_text_tower;

/* Takes the projection head's tensors for tower->projection (the tower's bert is already loaded and
 * embed_dim/proj_hidden set). prefix is prepended to the head's names: open_clip heads are
 * "<prefix>proj.weight" (linear) or "<prefix>proj.0.weight"/"<prefix>proj.2.weight" (mlp); the
 * CXR-BERT head is "<prefix>dense_to_hidden.*", "<prefix>LayerNorm.*", "<prefix>dense_to_output.*";
 * the ConVIRT head "<prefix>l1.*", "<prefix>l2.*" (prefix "bert_"). */
int mv_text_tower_load_head(mv_text_tower *tower, mv_weights *weights, const char *prefix, mv_error *err);
void mv_text_tower_free(mv_text_tower *tower);

/* Embeds a packed batch: out[n_texts, embed_dim], L2-normalised when normalize. */
int mv_text_tower_embed(mv_text_tower *tower, const mv_bert_batch *batch, int normalize, float *out,
                        mv_error *err);

#endif
