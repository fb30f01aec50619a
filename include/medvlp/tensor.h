/* tensor.h — the numeric kernels every encoder is written in.
 *
 * Row-major float32 throughout; a "matrix [rows, cols]" is rows*cols contiguous floats. Matrix
 * products go to OpenBLAS (cblas_sgemm); the element-wise kernels here are the non-GEMM cost and are
 * written to vectorise. Weights follow PyTorch's Linear layout: weight [out_features, in_features]. */
#ifndef MEDVLP_TENSOR_H
#define MEDVLP_TENSOR_H

#include <stddef.h>
#include <stdint.h>

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

/* Thread count for BLAS and the element-wise loops (<= 0: all cores). mv_get_threads() is 1 inside
 * an OpenMP parallel region: a caller that runs work side by side in threads of its own (ResNet's
 * early stages, an image a thread) gets single-threaded products, never a team per thread. */
void mv_set_threads(int n_threads);
int mv_get_threads(void);

/* OpenBLAS (0.3.21, Debian bookworm) picks its kernels from the CPU model at load time and falls
 * back to SSE3 "Prescott" kernels on CPUs it does not know — about 3x slower sgemm on current Xeons.
 * Call first thing in main(): if OPENBLAS_CORETYPE is unset and the chosen core is weaker than what
 * cpuid reports (AVX-512 → SkylakeX, AVX2+FMA → Haswell), it sets the variable and re-executes the
 * program once (the choice is only read at library load). It also defaults OMP_WAIT_POLICY to
 * passive (read at libgomp load too) so idle OpenMP threads do not spin against BLAS threads, and
 * OPENBLAS_THREAD_TIMEOUT to its minimum so idle BLAS threads do not spin against OpenMP threads.
 * Returns normally when nothing needed changing. An OPENBLAS_CORETYPE already set is left alone:
 * a container may pin one (some hosts set Haswell on AVX-512 CPUs), and mv_packed_weight_init then
 * keeps every product on the packed kernel (see mv_blas_has_avx512_kernels). */
void mv_blas_select_kernels(char **argv);
/* Whether OpenBLAS runs its AVX-512 sgemm kernels (the core it chose or was told to use). */
int mv_blas_has_avx512_kernels(void);

/* --- GELU ------------------------------------------------------------------------------------- */

/* x·Φ(x) like mv_gelu_erf, but branch-free and vectorisable: erf from Abramowitz & Stegun 7.1.26
 * (|error| <= 1.5e-7) with an exp of our own (range reduction + degree-7 Taylor), so the GELU is
 * within 1e-6·max(1, |x|) of the exact one at a fraction of erff's cost. The encoders' choice. */
void mv_gelu_erf_fast(float *x, size_t n);

/* --- Packed weights and their GEMM ------------------------------------------------------------ */

/* How mv_packed_weight stores a Linear weight (chosen at load: `--quant`). */
typedef enum mv_quant {
    MV_QUANT_NONE,  /* fp32, as the checkpoint holds it */
    MV_QUANT_INT8,  /* int8 per output channel, activations quantised per row on each call (needs AVX2) */
    MV_QUANT_FP16,  /* IEEE half, widened to fp32 a cache-sized block at a time (needs AVX-512) */
} mv_quant;

/* "none", "int8", "fp16". */
const char *mv_quant_name(mv_quant quant);
/* Parses a name of mv_quant_name; returns 0, or -1 for anything else. */
int mv_quant_parse(const char *name, mv_quant *out);
/* Whether this CPU has a kernel for quant (int8: AVX2; fp16: AVX-512, the packed fp32 kernel's). */
int mv_quant_supported(mv_quant quant);
/* 1 when this CPU runs the packed fp32 kernel (AVX-512). Then no product run inside a caller's own
 * OpenMP team calls cblas_sgemm (fp32 ones take the packed kernel, int8 and fp16 never use cblas), so
 * such teams may run products side by side. */
int mv_packed_kernel_available(void);

/* A Linear weight [n, k] re-laid out once for the packed kernels (src/tensor/packed_gemm.c,
 * gemm_int8.c), so the per-call packing OpenBLAS does behind cblas_sgemm is gone. weight stays
 * borrowed for MV_QUANT_NONE (the route of large products, and of CPUs without AVX-512, where packed
 * is NULL); the other formats never read it after init (NULL), so its pages may be dropped. */
typedef struct mv_packed_weight {
    const float *weight;
    float *packed;                 /* MV_QUANT_NONE: fp32 panels */
    uint16_t *half;                /* MV_QUANT_FP16: the same panels in IEEE half */
    struct mv_int8_weight *int8;   /* MV_QUANT_INT8: panels and scales (src/tensor/gemm_int8.h) */
    int n, k;
    /* Products of many rows with a large weight go to cblas_sgemm on `weight`: set only where that
     * beats the packed kernel, i.e. where OpenBLAS runs AVX-512 kernels too (packed_gemm.c). */
    int large_to_cblas;
} mv_packed_weight;

/* Returns 0, or -1 when out of memory or quant is not supported here (mv_quant_supported). */
int mv_packed_weight_init(mv_packed_weight *pw, const float *weight, int out_features, int in_features,
                          mv_quant quant);
void mv_packed_weight_free(mv_packed_weight *pw);
/* MV_QUANT_INT8 only (a no-op otherwise): this product's activations are quantised to 16 bits, as
 * two rows of bytes, instead of 8: twice its integer work, for about 1/256 of its activation error.
 * The encoders ask it for the products whose 8-bit rounding decides retrieval (bert.c). */
void mv_packed_weight_fine_activations(mv_packed_weight *pw);

/* y = x·Wᵀ + bias (+ y when accumulate) with a packed weight; the results of mv_linear up to
 * float summation order (MV_QUANT_NONE) or up to the quantisation of weights and activations. */
void mv_packed_linear(const float *x, int n_rows, const mv_packed_weight *pw, const float *bias, int accumulate,
                      float *y);

/* --- Fused epilogues and convolution rows ----------------------------------------------------- */

/* What a packed GEMM does to each output tile before storing it (while the tile is in cache, in the
 * GEMM's own threads): y = activation(x·Wᵀ + bias + residual). */
typedef enum mv_activation { MV_ACT_NONE, MV_ACT_RELU, MV_ACT_GELU } mv_activation;

typedef struct mv_gemm_epilogue {
    const float *bias;          /* [n], or NULL */
    const float *residual;      /* [n_rows, n] laid out like y (it may be y itself), or NULL */
    mv_activation activation;   /* MV_ACT_GELU is mv_gelu_erf_fast's */
} mv_gemm_epilogue;

/* y[n_rows, n] = epilogue(x[n_rows, k]·Wᵀ) with a packed weight W [n, k]. */
void mv_packed_gemm(const float *x, int n_rows, const mv_packed_weight *pw, const mv_gemm_epilogue *epilogue,
                    float *y);

/* The rows of a convolution's im2col matrix, for mv_packed_conv: n_images NHWC images [height,
 * width, channels]; row (image, oy, ox) holds the kernel × kernel taps (kh, kw) in turn, each the
 * `channels` floats of input pixel (oy·stride − pad + kh, ox·stride − pad + kw), zero in the padding. */
typedef struct mv_conv_rows {
    const float *x;
    int n_images, height, width, channels;
    int kernel, stride, pad;
    int out_h, out_w;           /* (height + 2·pad − kernel) / stride + 1, likewise for width */
} mv_conv_rows;

/* y[n_images·out_h·out_w, n] = epilogue(im2col(x)·Wᵀ), W [n, kernel·kernel·channels] with columns in
 * (kh, kw, channel) order. The im2col matrix is never built: blocks of its rows are gathered into a
 * cache-sized buffer as the GEMM reaches them. Returns 0, or -1 when out of memory. */
int mv_packed_conv(const mv_conv_rows *conv, const mv_packed_weight *pw, const mv_gemm_epilogue *epilogue,
                   float *y);

/* Scratch floats mv_attention needs for a sequence of n_tokens. */
size_t mv_attention_scratch_floats(int n_tokens, int n_heads, int head_dim);

/* Multi-head self-attention of one sequence: for each head h, the columns [h·head_dim, (h+1)·head_dim)
 * of out [n_tokens, ldo] get softmax(q_h·k_hᵀ/√head_dim)·v_h, where q_h, k_h, v_h are those columns of
 * q, k, v (rows ld apart; they may be slices of one fused qkv matrix). Heads run in parallel, each
 * fused (scores of a few query rows at a time, never the whole [tokens, tokens] matrix). scratch:
 * mv_attention_scratch_floats, 64-byte aligned (aligned_alloc). */
void mv_attention(const float *q, const float *k, const float *v, int ld, int n_tokens, int n_heads, int head_dim,
                  float *out, int ldo, float *scratch);

#endif
