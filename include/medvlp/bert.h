/* bert.h — the BERT encoder (Hugging Face BertModel semantics), fp32, batched.
 *
 * A batch is PACKED: the texts' tokens are concatenated (no padding rows), so every dense layer runs
 * on exactly the real tokens and each text's attention sees only its own keys. This is the same
 * arithmetic as HF's padded batch with a key mask (masked keys get weight exp(-1e4) = 0 in fp32), and
 * a text's result does not depend on what else is in its batch.
 *
 * Weights are borrowed from an mv_weights container (which must outlive the mv_bert); the per-batch
 * work buffers live in an mv_bert_state, grown only when a batch needs more tokens than before. */
#ifndef MEDVLP_BERT_H
#define MEDVLP_BERT_H

#include <stdint.h>
#include "medvlp/error.h"
#include "medvlp/tensor.h"
#include "medvlp/weights.h"

typedef struct mv_bert_config {
    int vocab_size;
    int hidden_size;
    int n_layers;
    int n_heads;
    int intermediate_size;
    int max_positions;     /* rows of the absolute position table: the longest text accepted */
    int type_vocab_size;
    float layer_norm_eps;
    mv_quant quant;        /* storage of the six Linear weights of each layer (MV_QUANT_NONE: fp32) */
} mv_bert_config;

typedef struct mv_bert_layer {
    const float *query_w, *query_b, *key_w, *key_b, *value_w, *value_b;
    const float *attn_out_w, *attn_out_b, *attn_norm_w, *attn_norm_b;
    const float *ffn_in_w, *ffn_in_b, *ffn_out_w, *ffn_out_b, *ffn_norm_w, *ffn_norm_b;
    /* query_w, key_w, value_w, attn_out_w, ffn_in_w, ffn_out_w packed at load for the GEMMs */
    mv_packed_weight query, key, value, attn_out, ffn_in, ffn_out;
} mv_bert_layer;

typedef struct mv_bert {
    mv_bert_config config;
    const float *word_embeddings;       /* [vocab, hidden] */
    const float *position_embeddings;   /* [max_positions, hidden] */
    const float *token_type_embeddings; /* [type_vocab, hidden]; only type 0 is used */
    const float *embed_norm_w, *embed_norm_b;
    mv_bert_layer *layers;              /* [n_layers] */
    const float *pooler_w, *pooler_b;   /* HF BertPooler, NULL unless loaded with_pooler */
} mv_bert;

/* Checks the config (positive sizes, hidden divisible by heads) and takes every tensor named
 * prefix + HF BertModel name ("embeddings.word_embeddings.weight", "encoder.layer.N...."), with
 * shape checks; prefix is e.g. "bert." or "text.transformer.". with_pooler also takes
 * "pooler.dense.{weight,bias}". Errors name the tensor and the file. */
int mv_bert_load(mv_bert *bert, const mv_bert_config *config, mv_weights *weights, const char *prefix,
                 int with_pooler, mv_error *err);
void mv_bert_free(mv_bert *bert);

typedef struct mv_bert_state {
    int cap_tokens, cap_seq;   /* capacity: total packed tokens, longest single text */
    float *hidden;      /* [tokens, hidden]: the residual stream; after forward, the last layer */
    float *query, *key, *value, *context;  /* [tokens, hidden] each */
    float *ffn;         /* [tokens, intermediate] */
    float *attention;   /* mv_attention's scratch for the longest text */
} mv_bert_state;

/* Makes room for batches of up to n_tokens packed tokens, none longer than max_seq. Keeps the
 * buffers when they are already big enough. */
int mv_bert_state_reserve(mv_bert_state *state, const mv_bert_config *config, int n_tokens, int max_seq,
                          mv_error *err);
void mv_bert_state_free(mv_bert_state *state);

/* The packed batch: text t has lengths[t] token ids starting at token_ids + offsets[t], with
 * offsets[t] = lengths[0] + ... + lengths[t-1] (so row r of every output is one token). */
typedef struct mv_bert_batch {
    const int32_t *token_ids;
    const int *lengths;
    int n_texts;
} mv_bert_batch;

/* Runs the encoder; afterwards state->hidden holds the last hidden state [total tokens, hidden].
 * hidden_states (may be NULL) has n_layers + 1 slots indexed like HF's output_hidden_states
 * (0 = embeddings, i = output of layer i); each non-NULL slot receives that [total tokens, hidden]
 * matrix, so callers pick the layers they pool (GLoRIA: last 4, MedCLIP: 1, 2, 12).
 * Token ids out of the vocabulary and texts longer than max_positions are MV_EINPUT. */
int mv_bert_forward(const mv_bert *bert, mv_bert_state *state, const mv_bert_batch *batch,
                    float *const *hidden_states, mv_error *err);

#endif
