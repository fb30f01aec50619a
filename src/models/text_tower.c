/* text_tower.c — owns pooling and projection heads of text towers (src/models/text_tower.h):
 * BERT's last hidden state → one vector per text → the joint embedding space. */
#include "models/text_tower.h"
#include "medvlp/tensor.h"

#include <stdlib.h>
#include <string.h>

int mv_text_tower_load_head(mv_text_tower *t, mv_weights *w, const char *prefix, mv_error *err)
{
    const int64_t width = t->bert.config.hidden_size, dim = t->embed_dim, mid = t->proj_hidden;
    const char *p = prefix;
    int rc = MV_OK;
    switch (t->projection) {
    case MV_PROJ_NONE:
        if (dim != width)
            return mv_fail(err, MV_EFORMAT, "%s: text width %lld differs from embed dim %lld and there is "
                           "no projection", mv_weights_path(w), (long long)width, (long long)dim);
        break;
    case MV_PROJ_LINEAR:
        rc = mv_weights_take(w, &t->proj_in_w, err, MV_SHAPE(dim, width), "%sproj.weight", p);
        break;
    case MV_PROJ_MLP:
        if (!(rc = mv_weights_take(w, &t->proj_in_w, err, MV_SHAPE(mid, width), "%sproj.0.weight", p)))
            rc = mv_weights_take(w, &t->proj_out_w, err, MV_SHAPE(dim, mid), "%sproj.2.weight", p);
        break;
    case MV_PROJ_CXRBERT:
        if ((rc = mv_weights_take(w, &t->proj_in_w, err, MV_SHAPE(mid, width), "%sdense_to_hidden.weight", p)) ||
            (rc = mv_weights_take(w, &t->proj_in_b, err, MV_SHAPE(mid), "%sdense_to_hidden.bias", p)) ||
            (rc = mv_weights_take(w, &t->proj_norm_w, err, MV_SHAPE(mid), "%sLayerNorm.weight", p)) ||
            (rc = mv_weights_take(w, &t->proj_norm_b, err, MV_SHAPE(mid), "%sLayerNorm.bias", p)) ||
            (rc = mv_weights_take(w, &t->proj_out_w, err, MV_SHAPE(dim, mid), "%sdense_to_output.weight", p)))
            break;
        rc = mv_weights_take(w, &t->proj_out_b, err, MV_SHAPE(dim), "%sdense_to_output.bias", p);
        break;
    case MV_PROJ_MLP_RELU:
        if ((rc = mv_weights_take(w, &t->proj_in_w, err, MV_SHAPE(mid, width), "%sl1.weight", p)) ||
            (rc = mv_weights_take(w, &t->proj_in_b, err, MV_SHAPE(mid), "%sl1.bias", p)) ||
            (rc = mv_weights_take(w, &t->proj_out_w, err, MV_SHAPE(dim, mid), "%sl2.weight", p)))
            break;
        rc = mv_weights_take(w, &t->proj_out_b, err, MV_SHAPE(dim), "%sl2.bias", p);
        break;
    }
    return rc;
}

void mv_text_tower_free(mv_text_tower *t)
{
    if (t->free_custom)
        t->free_custom(t->custom);
    t->custom = NULL;
    t->free_custom = NULL;
    mv_bert_free(&t->bert);
    mv_bert_state_free(&t->state);
    free(t->pooled);
    free(t->proj_mid);
    t->pooled = t->proj_mid = NULL;
    t->cap_texts = 0;
}

static int reserve_texts(mv_text_tower *t, int n_texts, mv_error *err)
{
    if (n_texts <= t->cap_texts)
        return MV_OK;
    size_t width = (size_t)t->bert.config.hidden_size;
    size_t mid = t->proj_hidden > t->embed_dim ? (size_t)t->proj_hidden : (size_t)t->embed_dim;
    free(t->pooled);
    free(t->proj_mid);
    t->pooled = malloc((size_t)n_texts * width * sizeof(float));
    t->proj_mid = malloc((size_t)n_texts * (mid > width ? mid : width) * sizeof(float));
    if (!t->pooled || !t->proj_mid) {
        free(t->pooled);
        free(t->proj_mid);
        t->pooled = t->proj_mid = NULL;
        t->cap_texts = 0;
        return mv_fail(err, MV_ENOMEM, "out of memory for a batch of %d texts", n_texts);
    }
    t->cap_texts = n_texts;
    return MV_OK;
}

/* One vector per text from the packed last hidden state. */
static void pool(const mv_text_tower *t, const mv_bert_batch *batch, const float *hidden, float *pooled)
{
    const int H = t->bert.config.hidden_size;
    for (int i = 0, row = 0; i < batch->n_texts; row += batch->lengths[i], i++) {
        const float *first = hidden + (size_t)row * H;
        float *out = pooled + (size_t)i * H;
        const int len = batch->lengths[i];
        switch (t->pooling) {
        case MV_POOL_CLS:
        case MV_POOL_BERT_POOLER:
            memcpy(out, first, (size_t)H * sizeof(float));
            break;
        case MV_POOL_MEAN:
            memcpy(out, first, (size_t)H * sizeof(float));
            for (int r = 1; r < len; r++)
                mv_add(out, first + (size_t)r * H, (size_t)H);
            mv_scale(out, 1.0f / (float)len, (size_t)H);
            break;
        case MV_POOL_MAX:
            memcpy(out, first, (size_t)H * sizeof(float));
            for (int r = 1; r < len; r++)
                for (int c = 0; c < H; c++)
                    out[c] = first[(size_t)r * H + c] > out[c] ? first[(size_t)r * H + c] : out[c];
            break;
        }
    }
    if (t->pooling == MV_POOL_BERT_POOLER) {
        /* In place is not possible for a GEMM; the head's scratch holds the dense output. */
        mv_linear(pooled, batch->n_texts, H, t->bert.pooler_w, t->bert.pooler_b, H, t->proj_mid);
        memcpy(pooled, t->proj_mid, (size_t)batch->n_texts * H * sizeof(float));
        mv_tanh(pooled, (size_t)batch->n_texts * H);
    }
}

static void project(const mv_text_tower *t, int n_texts, const float *pooled, float *out)
{
    const int width = t->bert.config.hidden_size, dim = t->embed_dim, mid = t->proj_hidden;
    switch (t->projection) {
    case MV_PROJ_NONE:
        memcpy(out, pooled, (size_t)n_texts * dim * sizeof(float));
        break;
    case MV_PROJ_LINEAR:
        mv_linear(pooled, n_texts, width, t->proj_in_w, NULL, dim, out);
        break;
    case MV_PROJ_MLP:
        mv_linear(pooled, n_texts, width, t->proj_in_w, NULL, mid, t->proj_mid);
        mv_gelu_erf(t->proj_mid, (size_t)n_texts * mid);
        mv_linear(t->proj_mid, n_texts, mid, t->proj_out_w, NULL, dim, out);
        break;
    case MV_PROJ_CXRBERT:
        mv_linear(pooled, n_texts, width, t->proj_in_w, t->proj_in_b, mid, t->proj_mid);
        mv_gelu_erf(t->proj_mid, (size_t)n_texts * mid);
        mv_layernorm(t->proj_mid, t->proj_mid, n_texts, mid, t->proj_norm_w, t->proj_norm_b, t->proj_norm_eps);
        mv_linear(t->proj_mid, n_texts, mid, t->proj_out_w, t->proj_out_b, dim, out);
        break;
    case MV_PROJ_MLP_RELU:
        mv_linear(pooled, n_texts, width, t->proj_in_w, t->proj_in_b, mid, t->proj_mid);
        mv_relu(t->proj_mid, (size_t)n_texts * mid);
        mv_linear(t->proj_mid, n_texts, mid, t->proj_out_w, t->proj_out_b, dim, out);
        break;
    }
}

int mv_text_tower_embed(mv_text_tower *t, const mv_bert_batch *batch, int normalize, float *out, mv_error *err)
{
    int rc = reserve_texts(t, batch->n_texts, err);
    if (rc)
        return rc;
    if (t->pool_custom) {
        if ((rc = t->pool_custom(t, batch, t->pooled, err)))
            return rc;
    } else {
        if ((rc = mv_bert_forward(&t->bert, &t->state, batch, NULL, err)))
            return rc;
        pool(t, batch, t->state.hidden, t->pooled);
    }
    project(t, batch->n_texts, t->pooled, out);
    if (normalize)
        mv_l2_normalize_rows(out, batch->n_texts, t->embed_dim);
    return MV_OK;
}
