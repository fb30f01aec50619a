/* attention.c — multi-head self-attention of one sequence, softmax(q·kᵀ/√d)·v per head
 * (include/medvlp/tensor.h, mv_attention), fused so that no [heads, tokens, tokens] tensor exists.
 *
 * Per head, the head's keys and values are copied into the packed kernel's panel layout
 * (packed_kernel.h); then, MR query rows at a time, their scores against every key (MR × tokens,
 * in L1), the softmax of those rows, and their product with the values go straight into the head's
 * columns of out. Heads are shared among the OpenMP threads (mv_get_threads()), so the softmax runs
 * in parallel too, and no cblas call (with OpenBLAS's own threads) sits between the GEMMs. CPUs
 * without AVX-512 run each head as two cblas_sgemm calls around a softmax over its whole score matrix. */
#include "medvlp/tensor.h"
#include "packed_kernel.h"

#include <math.h>
#include <string.h>

#ifdef HAVE_AVX512_KERNEL
#include <immintrin.h>
#endif

enum { MR = MV_KERNEL_MR, NR = MV_KERNEL_NR };

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* Floats of one head's scratch on the fused path: key panels, value panels and MR rows of
 * probabilities; a multiple of 16 so every head's block stays 64-byte aligned. */
static size_t head_scratch_floats(int n_tokens, int head_dim)
{
    size_t tokens = round_up((size_t)n_tokens, NR), dims = round_up((size_t)head_dim, NR);
    return round_up(tokens * head_dim + dims * n_tokens + (size_t)MR * tokens, 16);
}

size_t mv_attention_scratch_floats(int n_tokens, int n_heads, int head_dim)
{
    size_t fused = (size_t)n_heads * head_scratch_floats(n_tokens, head_dim);
    size_t scores = (size_t)n_tokens * n_tokens; /* the cblas path's one score matrix */
    return fused > scores ? fused : scores;
}

#ifdef HAVE_AVX512_KERNEL
/* One head: q, k, v [n, head_dim] rows ld apart → out [n, head_dim] rows ldo apart. */
__attribute__((target("avx512f")))
static void fused_head(const float *q, const float *k, const float *v, int ld, int n, int head_dim, float scale,
                       float *out, int ldo, float *scratch)
{
    const int tokens = (int)round_up((size_t)n, NR), dims = (int)round_up((size_t)head_dim, NR);
    float *key_panels = scratch;                              /* [tokens / NR][head_dim][NR], scaled */
    float *value_panels = key_panels + (size_t)tokens * head_dim; /* [dims / NR][n][NR] */
    float *probs = value_panels + (size_t)dims * n;           /* [MR][tokens] */
    /* Key j, times 1/√d (so that the queries are read in place), is column j % NR of panel j / NR,
     * zero past the last key; 16 keys' values of one dimension are one gather down their rows (a
     * strided store per value took a quarter of a 32-token head). Value rows split into panels of NR
     * dimensions. */
    const __m512i key_rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                _mm512_set1_epi32(ld));
    const __m512 scales = _mm512_set1_ps(scale);
    for (int j0 = 0; j0 < tokens; j0 += 16) {
        const int count = n - j0 >= 16 ? 16 : n - j0 > 0 ? n - j0 : 0;
        const __mmask16 present = (__mmask16)((1u << count) - 1);
        const float *first_key = k + (size_t)(count ? j0 : 0) * ld;
        float *column = key_panels + (size_t)(j0 / NR) * head_dim * NR + j0 % NR;
        for (int d = 0; d < head_dim; d++) {
            __m512 keys = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), present, key_rows, first_key + d, 4);
            _mm512_store_ps(column + (size_t)d * NR, _mm512_mul_ps(keys, scales));
        }
    }
    for (int d0 = 0; d0 < dims; d0 += NR) {
        int width = head_dim - d0 < NR ? head_dim - d0 : NR;
        float *panel = value_panels + (size_t)d0 * n;
        for (int t = 0; t < n; t++) {
            memcpy(panel + (size_t)t * NR, v + (size_t)t * ld + d0, sizeof(float) * (size_t)width);
            memset(panel + (size_t)t * NR + width, 0, sizeof(float) * (size_t)(NR - width));
        }
    }
    for (int r0 = 0; r0 < n; r0 += MR) {
        int rows = n - r0 < MR ? n - r0 : MR;
        for (int j0 = 0; j0 < n; j0 += NR)
            mv_kernel_8x32(q + (size_t)r0 * ld, (size_t)ld, rows, key_panels + (size_t)j0 * head_dim, head_dim, NULL, NULL,
                           n - j0 < NR ? n - j0 : NR, 0, probs + j0, (size_t)tokens, NULL, 0);
        for (int r = 0; r < rows; r++)
            mv_softmax_rows(probs + (size_t)r * tokens, 1, n);
        for (int d0 = 0; d0 < head_dim; d0 += NR)
            mv_kernel_8x32(probs, (size_t)tokens, rows, value_panels + (size_t)d0 * n, n, NULL, NULL,
                           head_dim - d0 < NR ? head_dim - d0 : NR, 0, out + (size_t)r0 * ldo + d0, (size_t)ldo, NULL, 0);
    }
}
#endif

void mv_attention(const float *q, const float *k, const float *v, int ld, int n_tokens, int n_heads, int head_dim,
                  float *out, int ldo, float *scratch)
{
    const float scale = 1.0f / sqrtf((float)head_dim);
#ifdef HAVE_AVX512_KERNEL
    if (mv_packed_kernel_available()) {
        const size_t per_head = head_scratch_floats(n_tokens, head_dim);
#pragma omp parallel for schedule(dynamic, 1) num_threads(mv_get_threads())
        for (int h = 0; h < n_heads; h++) {
            size_t col = (size_t)h * head_dim;
            fused_head(q + col, k + col, v + col, ld, n_tokens, head_dim, scale, out + col, ldo,
                       scratch + (size_t)h * per_head);
        }
        return;
    }
#endif
    for (int h = 0; h < n_heads; h++) {
        size_t col = (size_t)h * head_dim;
        mv_gemm(0, 1, n_tokens, n_tokens, head_dim, scale, q + col, ld, k + col, ld, 0.0f, scratch, n_tokens);
        mv_softmax_rows(scratch, n_tokens, n_tokens);
        mv_gemm(0, 0, n_tokens, head_dim, n_tokens, 1.0f, scratch, n_tokens, v + col, ld, 0.0f, out + col, ldo);
    }
}
