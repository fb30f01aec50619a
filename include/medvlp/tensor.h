/* tensor.h — the numeric kernels every encoder is written in.
 *
 * Row-major float32 throughout; a "matrix [rows, cols]" is rows*cols contiguous floats. Matrix
 * products go to OpenBLAS (cblas_sgemm); the element-wise kernels here are the non-GEMM cost and are
 * written to vectorise. Weights follow PyTorch's Linear layout: weight [out_features, in_features]. */
#ifndef MEDVLP_TENSOR_H
#define MEDVLP_TENSOR_H

#include <stddef.h>

/* y[n_rows, out] = x[n_rows, in] · weightᵀ + bias (bias may be NULL). */
void mv_linear(const float *x, int n_rows, int in_features, const float *weight, const float *bias,
               int out_features, float *y);

/* C[m,n] = alpha · op(A)·op(B) + beta · C, with explicit leading dimensions (row-major). */
void mv_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc);

/* y = LayerNorm(x) over the last dim (biased variance, like torch); x and y may alias. */
void mv_layernorm(const float *x, float *y, int n_rows, int dim, const float *gamma, const float *beta,
                  float eps);

void mv_gelu_erf(float *x, size_t n);    /* x·Φ(x), the exact (erf) GELU of nn.GELU() */
void mv_quick_gelu(float *x, size_t n);  /* x·σ(1.702x), CLIP's QuickGELU */
void mv_relu(float *x, size_t n);
void mv_tanh(float *x, size_t n);

void mv_add(float *y, const float *x, size_t n);            /* y += x */
void mv_add_bias(float *y, int n_rows, int dim, const float *bias); /* y[r,:] += bias */
void mv_scale(float *y, float s, size_t n);

void mv_softmax_rows(float *x, int n_rows, int dim);        /* numerically stable, in place */

/* Divides each row by its L2 norm (rows of norm 0 stay 0). */
void mv_l2_normalize_rows(float *x, int n_rows, int dim);

/* Thread count for BLAS and the element-wise loops (<= 0: all cores). */
void mv_set_threads(int n_threads);
int mv_get_threads(void);

/* OpenBLAS (0.3.21, Debian bookworm) picks its kernels from the CPU model at load time and falls
 * back to SSE3 "Prescott" kernels on CPUs it does not know — about 3x slower sgemm on current Xeons.
 * Call first thing in main(): if OPENBLAS_CORETYPE is unset and the chosen core is weaker than what
 * cpuid reports (AVX-512 → SkylakeX, AVX2+FMA → Haswell), it sets the variable and re-executes the
 * program once (the choice is only read at library load). It also defaults OMP_WAIT_POLICY to
 * passive (read at libgomp load too) so idle OpenMP threads do not spin against BLAS threads.
 * Returns normally when nothing needed changing. */
void mv_blas_select_kernels(char **argv);
const char *mv_blas_core_name(void);

/* --- Added for the image encoders (vitres) ---------------------------------------------------- */

/* y[n_rows, out] += x[n_rows, in] · weightᵀ + bias (bias may be NULL): a residual branch or a
 * convolution added onto a shortcut without a separate pass over y. */
void mv_linear_accumulate(const float *x, int n_rows, int in_features, const float *weight,
                          const float *bias, int out_features, float *y);

/* --- Added by the bert branch ------------------------------------------------------------------ */

/* x·Φ(x) like mv_gelu_erf, but branch-free and vectorisable: erf from Abramowitz & Stegun 7.1.26
 * (|error| <= 1.5e-7) with an exp of our own (range reduction + degree-7 Taylor), so the GELU is
 * within 1e-6·max(1, |x|) of the exact one at a fraction of erff's cost. The encoders' choice. */
void mv_gelu_erf_fast(float *x, size_t n);

/* --- Added by the speed branch ------------------------------------------------------------------ */

/* How mv_packed_weight stores a Linear weight (chosen at load: `--quant`). */
typedef enum mv_quant {
    MV_QUANT_NONE,  /* fp32, as the checkpoint holds it */
    MV_QUANT_INT8,  /* int8 per output channel, activations quantised per row on each call (needs AVX2) */
} mv_quant;

/* "none", "int8". */
const char *mv_quant_name(mv_quant quant);
/* Parses a name of mv_quant_name; returns 0, or -1 for anything else. */
int mv_quant_parse(const char *name, mv_quant *out);
/* Whether this CPU has a kernel for quant (int8: AVX2). */
int mv_quant_supported(mv_quant quant);

/* A Linear weight [n, k] re-laid out once for the packed kernels (src/tensor/packed_gemm.c,
 * gemm_int8.c), so the per-call packing OpenBLAS does behind cblas_sgemm is gone. weight stays
 * borrowed (for MV_QUANT_NONE the fallback on CPUs without AVX-512, where packed is NULL). */
typedef struct mv_packed_weight {
    const float *weight;
    mv_quant quant;
    float *packed;                 /* MV_QUANT_NONE: fp32 panels */
    struct mv_int8_weight *int8;   /* MV_QUANT_INT8: panels and scales (src/tensor/gemm_int8.h) */
    int n, k;
} mv_packed_weight;

/* Returns 0, or -1 when out of memory or quant is not supported here (mv_quant_supported). */
int mv_packed_weight_init(mv_packed_weight *pw, const float *weight, int out_features, int in_features,
                          mv_quant quant);
void mv_packed_weight_free(mv_packed_weight *pw);

/* mv_linear (accumulate 0) or mv_linear_accumulate (1) with a packed weight; same results up to
 * float summation order (MV_QUANT_NONE) or up to the quantisation of weights and activations. */
void mv_packed_linear(const float *x, int n_rows, const mv_packed_weight *pw, const float *bias, int accumulate,
                      float *y);

#endif
