/* pack_linear.h — one step of the encoders' loaders per Linear layer: pack the checkpoint's weight
 * for the GEMMs (medvlp/tensor.h), then let the checkpoint's pages of it go (medvlp/weights.h).
 * Internal to src/models/. */
#ifndef MEDVLP_MODELS_PACK_LINEAR_H
#define MEDVLP_MODELS_PACK_LINEAR_H

#include "medvlp/tensor.h"
#include "medvlp/weights.h"

/* mv_packed_weight_init, then mv_weights_release_range over weight [out_features, in_features]: the
 * packed copy is what the products read (fp32 products of many rows read the weight again through
 * cblas_sgemm, and its pages fault back in from the file). Returns 0, or -1 when out of memory. */
static inline int pack_linear(mv_weights *weights, mv_packed_weight *packed, const float *weight, int out_features,
                              int in_features, mv_quant quant)
{
    if (mv_packed_weight_init(packed, weight, out_features, in_features, quant))
        return -1;
    mv_weights_release_range(weights, weight, sizeof(float) * (size_t)out_features * in_features);
    return 0;
}

#endif
