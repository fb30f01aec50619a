/* bert.c — owns the BERT encoder forward pass and its work buffers (include/medvlp/bert.h).
 * Post-LN transformer exactly as HF BertModel: embeddings → LayerNorm, then per layer
 * h = LN(h + O·Attn(h)), h = LN(h + W2·GELU(W1·h)). Every Linear is one packed GEMM (tensor.h) whose
 * store adds the bias and the residual and applies the GELU. */
#include "medvlp/bert.h"
#include "medvlp/pages.h"
#include "medvlp/tensor.h"
#include "pack_linear.h"

#include <stdlib.h>
#include <string.h>

static int check_config(const mv_bert_config *c, const char *path, mv_error *err)
{
    if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
        c->intermediate_size <= 0 || c->max_positions <= 0 || c->type_vocab_size <= 0 ||
        !(c->layer_norm_eps > 0.0f))
        return mv_fail(err, MV_EFORMAT, "%s: BERT config has a non-positive size or epsilon", path);
    if (c->hidden_size % c->n_heads)
        return mv_fail(err, MV_EFORMAT, "%s: BERT hidden size %d is not divisible by %d heads", path,
                       c->hidden_size, c->n_heads);
    return MV_OK;
}

int mv_bert_load(mv_bert *bert, const mv_bert_config *config, mv_weights *w, const char *prefix,
                 int with_pooler, mv_error *err)
{
    memset(bert, 0, sizeof *bert);
    int rc = check_config(config, mv_weights_path(w), err);
    if (rc)
        return rc;
    bert->config = *config;
    const int64_t H = config->hidden_size, I = config->intermediate_size;
    const char *p = prefix;
    if ((rc = mv_weights_take(w, &bert->word_embeddings, err, MV_SHAPE(config->vocab_size, H),
                              "%sembeddings.word_embeddings.weight", p)) ||
        (rc = mv_weights_take(w, &bert->position_embeddings, err, MV_SHAPE(config->max_positions, H),
                              "%sembeddings.position_embeddings.weight", p)) ||
        (rc = mv_weights_take(w, &bert->token_type_embeddings, err, MV_SHAPE(config->type_vocab_size, H),
                              "%sembeddings.token_type_embeddings.weight", p)) ||
        (rc = mv_weights_take(w, &bert->embed_norm_w, err, MV_SHAPE(H), "%sembeddings.LayerNorm.weight", p)) ||
        (rc = mv_weights_take(w, &bert->embed_norm_b, err, MV_SHAPE(H), "%sembeddings.LayerNorm.bias", p)))
        return rc;
    bert->layers = calloc((size_t)config->n_layers, sizeof *bert->layers);
    if (!bert->layers)
        return mv_fail(err, MV_ENOMEM, "out of memory loading BERT");
    for (int i = 0; i < config->n_layers; i++) {
        mv_bert_layer *l = &bert->layers[i];
#define TAKE(field, shape, name) \
        if ((rc = mv_weights_take(w, &l->field, err, shape, "%sencoder.layer.%d." name, p, i))) \
            goto fail;
        TAKE(query_w, MV_SHAPE(H, H), "attention.self.query.weight")
        TAKE(query_b, MV_SHAPE(H), "attention.self.query.bias")
        TAKE(key_w, MV_SHAPE(H, H), "attention.self.key.weight")
        TAKE(key_b, MV_SHAPE(H), "attention.self.key.bias")
        TAKE(value_w, MV_SHAPE(H, H), "attention.self.value.weight")
        TAKE(value_b, MV_SHAPE(H), "attention.self.value.bias")
        TAKE(attn_out_w, MV_SHAPE(H, H), "attention.output.dense.weight")
        TAKE(attn_out_b, MV_SHAPE(H), "attention.output.dense.bias")
        TAKE(attn_norm_w, MV_SHAPE(H), "attention.output.LayerNorm.weight")
        TAKE(attn_norm_b, MV_SHAPE(H), "attention.output.LayerNorm.bias")
        TAKE(ffn_in_w, MV_SHAPE(I, H), "intermediate.dense.weight")
        TAKE(ffn_in_b, MV_SHAPE(I), "intermediate.dense.bias")
        TAKE(ffn_out_w, MV_SHAPE(H, I), "output.dense.weight")
        TAKE(ffn_out_b, MV_SHAPE(H), "output.dense.bias")
        TAKE(ffn_norm_w, MV_SHAPE(H), "output.LayerNorm.weight")
        TAKE(ffn_norm_b, MV_SHAPE(H), "output.LayerNorm.bias")
        const mv_quant q = config->quant;
        if (pack_linear(w, &l->query, l->query_w, H, H, q) || pack_linear(w, &l->key, l->key_w, H, H, q) ||
            pack_linear(w, &l->value, l->value_w, H, H, q) || pack_linear(w, &l->attn_out, l->attn_out_w, H, H, q) ||
            pack_linear(w, &l->ffn_in, l->ffn_in_w, I, H, q) || pack_linear(w, &l->ffn_out, l->ffn_out_w, H, I, q)) {
            rc = mv_fail(err, MV_ENOMEM, "out of memory packing BERT layer %d", i);
            goto fail;
        }
        /* int8: the products that write into the residual stream and the FFN's input take 16-bit
         * activations. Their 8-bit rounding is noise that differs from text to text, and it, not the
         * weights' rounding, reshuffled retrieval's top 10 (a fake-quantised PyTorch copy of the
         * benchmark's BERT-base: 8-bit weights alone leave 21% of the embeddings' text-dependent error,
         * and these three products' 16-bit activations cut it to 27%; the query, key and value products
         * matter least). They are 3/4 of the layer's multiply-adds. */
        mv_packed_weight_fine_activations(&l->attn_out);
        mv_packed_weight_fine_activations(&l->ffn_in);
        mv_packed_weight_fine_activations(&l->ffn_out);
#undef TAKE
    }
    if (with_pooler &&
        ((rc = mv_weights_take(w, &bert->pooler_w, err, MV_SHAPE(H, H), "%spooler.dense.weight", p)) ||
         (rc = mv_weights_take(w, &bert->pooler_b, err, MV_SHAPE(H), "%spooler.dense.bias", p))))
        goto fail;
    return MV_OK;
fail:
    mv_bert_free(bert);
    return rc;
}

void mv_bert_free(mv_bert *bert)
{
    for (int i = 0; bert->layers && i < bert->config.n_layers; i++) {
        mv_bert_layer *l = &bert->layers[i];
        mv_packed_weight *packed[] = {&l->query, &l->key, &l->value, &l->attn_out, &l->ffn_in, &l->ffn_out};
        for (size_t j = 0; j < sizeof packed / sizeof *packed; j++)
            mv_packed_weight_free(packed[j]);
    }
    free(bert->layers);
    bert->layers = NULL;
}

void mv_bert_state_free(mv_bert_state *s)
{
    free(s->hidden);
    free(s->query);
    free(s->key);
    free(s->value);
    free(s->context);
    free(s->ffn);
    free(s->attention);
    memset(s, 0, sizeof *s);
}

int mv_bert_state_reserve(mv_bert_state *s, const mv_bert_config *c, int n_tokens, int max_seq, mv_error *err)
{
    if (n_tokens <= s->cap_tokens && max_seq <= s->cap_seq)
        return MV_OK;
    int cap_tokens = n_tokens > s->cap_tokens ? n_tokens : s->cap_tokens;
    int cap_seq = max_seq > s->cap_seq ? max_seq : s->cap_seq;
    mv_bert_state_free(s);
    size_t rows = (size_t)cap_tokens, H = (size_t)c->hidden_size;
    s->hidden = malloc(rows * H * sizeof(float));
    s->query = malloc(rows * H * sizeof(float));
    s->key = malloc(rows * H * sizeof(float));
    s->value = malloc(rows * H * sizeof(float));
    s->context = malloc(rows * H * sizeof(float));
    s->ffn = malloc(rows * (size_t)c->intermediate_size * sizeof(float));
    size_t attention_bytes = mv_attention_scratch_floats(cap_seq, c->n_heads, c->hidden_size / c->n_heads) * sizeof(float);
    s->attention = mv_alloc_aligned(attention_bytes);
    if (!s->hidden || !s->query || !s->key || !s->value || !s->context || !s->ffn || !s->attention) {
        mv_bert_state_free(s);
        return mv_fail(err, MV_ENOMEM, "out of memory for a BERT batch of %d tokens", n_tokens);
    }
    s->cap_tokens = cap_tokens;
    s->cap_seq = cap_seq;
    return MV_OK;
}

/* Embeddings: word + position (0..len-1 within each text) + token type 0, then LayerNorm. */
static void embed(const mv_bert *bert, const mv_bert_batch *batch, float *out)
{
    const int H = bert->config.hidden_size;
    const int32_t *ids = batch->token_ids;
    for (int t = 0; t < batch->n_texts; t++) {
        for (int pos = 0; pos < batch->lengths[t]; pos++, ids++, out += H) {
            const float *word = bert->word_embeddings + (size_t)*ids * H;
            const float *position = bert->position_embeddings + (size_t)pos * H;
            for (int i = 0; i < H; i++)
                out[i] = word[i] + position[i] + bert->token_type_embeddings[i];
        }
    }
}

static void save_hidden(float *const *hidden_states, int slot, const float *h, size_t n)
{
    if (hidden_states && hidden_states[slot])
        memcpy(hidden_states[slot], h, n * sizeof(float));
}

int mv_bert_forward(const mv_bert *bert, mv_bert_state *s, const mv_bert_batch *batch,
                    float *const *hidden_states, mv_error *err)
{
    const mv_bert_config *c = &bert->config;
    const int H = c->hidden_size;
    int n_tokens = 0, max_seq = 0;
    for (int t = 0; t < batch->n_texts; t++) {
        int len = batch->lengths[t];
        if (len <= 0 || len > c->max_positions)
            return mv_fail(err, MV_EINPUT, "text %d has %d tokens (the model takes 1 to %d)", t, len,
                           c->max_positions);
        max_seq = len > max_seq ? len : max_seq;
        n_tokens += len;
    }
    for (int r = 0; r < n_tokens; r++)
        if (batch->token_ids[r] < 0 || batch->token_ids[r] >= c->vocab_size)
            return mv_fail(err, MV_EINPUT, "token id %d is outside the vocabulary (size %d)",
                           (int)batch->token_ids[r], c->vocab_size);
    int rc = mv_bert_state_reserve(s, c, n_tokens, max_seq, err);
    if (rc)
        return rc;
    const size_t n_values = (size_t)n_tokens * H;

    float *h = s->hidden;
    embed(bert, batch, h);
    mv_layernorm(h, h, n_tokens, H, bert->embed_norm_w, bert->embed_norm_b, c->layer_norm_eps);
    save_hidden(hidden_states, 0, h, n_values);

    for (int i = 0; i < c->n_layers; i++) {
        const mv_bert_layer *l = &bert->layers[i];

        /* Self-attention block. */
        mv_packed_linear(h, n_tokens, &l->query, l->query_b, 0, s->query);
        mv_packed_linear(h, n_tokens, &l->key, l->key_b, 0, s->key);
        mv_packed_linear(h, n_tokens, &l->value, l->value_b, 0, s->value);
        for (int t = 0, row = 0; t < batch->n_texts; row += batch->lengths[t], t++) {
            size_t at = (size_t)row * H;
            mv_attention(s->query + at, s->key + at, s->value + at, H, batch->lengths[t], c->n_heads,
                         H / c->n_heads, s->context + at, H, s->attention);
        }
        /* h = LayerNorm(h + O·context): the GEMM adds onto h in place (a separate output would make the
         * cache fetch every line of it only to overwrite it, and a cblas product copy h there first). */
        mv_packed_gemm(s->context, n_tokens, &l->attn_out, &(mv_gemm_epilogue){l->attn_out_b, h, MV_ACT_NONE}, h);
        mv_layernorm(h, h, n_tokens, H, l->attn_norm_w, l->attn_norm_b, c->layer_norm_eps);

        /* Feed-forward block: h = LayerNorm(h + W2·GELU(W1·h)), GELU in the store, the residual in place. */
        mv_packed_gemm(h, n_tokens, &l->ffn_in, &(mv_gemm_epilogue){l->ffn_in_b, NULL, MV_ACT_GELU}, s->ffn);
        mv_packed_gemm(s->ffn, n_tokens, &l->ffn_out, &(mv_gemm_epilogue){l->ffn_out_b, h, MV_ACT_NONE}, h);
        mv_layernorm(h, h, n_tokens, H, l->ffn_norm_w, l->ffn_norm_b, c->layer_norm_eps);

        save_hidden(hidden_states, i + 1, h, n_values);
    }
    return MV_OK;
}
