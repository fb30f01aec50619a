/* packed_gemm.c — y = x·Wᵀ (+ bias, + y) with W re-laid out once at load (include/medvlp/tensor.h,
 * mv_packed_weight). Why not cblas_sgemm: through CBLAS, OpenBLAS copies ("packs") the whole weight
 * matrix into its kernel's panel order on every call. With few rows (a text of 32 tokens, one
 * image's 197) that copy costs as much as the multiply (perf: sgemm_incopy 40% of BERT-base at
 * batch 1). Packing once at load removes it.
 *
 * Layout: W [n, k] is cut into panels of NR = 32 output features; a panel stores, for every
 * k, its 32 weights contiguously (zero-padded past n). The micro-kernel keeps an MR × NR = 8 × 32
 * tile of y in 16 AVX-512 registers and, per k, loads two vectors of the panel and broadcasts one x
 * value per row (x is read in place, row-major: no packing of activations). K is walked in blocks of
 * KC so a panel's block (32 KiB) stays in L1 while the row blocks of x pass over it, rows in blocks of
 * MC so those x rows stay in L2 across panels. Panels are
 * shared among OpenMP threads (mv_get_threads()). CPUs without AVX-512, and calls with many rows,
 * use cblas_sgemm on the original weights, which the packed weight keeps a pointer to.
 * The int8 format (MV_QUANT_INT8) has its own panels and kernels in gemm_int8.c; this file chooses. */
#include "medvlp/tensor.h"
#include "tensor/gemm_int8.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512_KERNEL 1
#endif

enum { NR = 32, MR = 8, KC = 256, MC = 256 };

/* Above this many rows OpenBLAS's own packing is spread over enough work to be cheap, and its
 * blocking beats this kernel's (measured at 1024 rows): such calls go to cblas_sgemm. */
enum { PACKED_MAX_ROWS = 512 };

static int use_packed_kernel(void)
{
#ifdef HAVE_AVX512_KERNEL
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

static const char *const quant_names[] = {[MV_QUANT_NONE] = "none", [MV_QUANT_INT8] = "int8"};

const char *mv_quant_name(mv_quant quant)
{
    return quant_names[quant];
}

int mv_quant_parse(const char *name, mv_quant *out)
{
    for (size_t i = 0; i < sizeof quant_names / sizeof *quant_names; i++)
        if (!strcmp(name, quant_names[i])) {
            *out = (mv_quant)i;
            return 0;
        }
    return -1;
}

int mv_quant_supported(mv_quant quant)
{
    return quant != MV_QUANT_INT8 || mv_int8_best_isa() != MV_INT8_UNSUPPORTED;
}

int mv_packed_weight_init(mv_packed_weight *pw, const float *weight, int out_features, int in_features,
                          mv_quant quant)
{
    *pw = (mv_packed_weight){.weight = weight, .quant = quant, .n = out_features, .k = in_features};
    if (quant == MV_QUANT_INT8) {
        if (!mv_quant_supported(quant))
            return -1;
        pw->int8 = mv_int8_weight_new(weight, out_features, in_features, mv_int8_best_isa());
        return pw->int8 ? 0 : -1;
    }
    if (!use_packed_kernel())
        return 0;
    int panels = (out_features + NR - 1) / NR;
    size_t floats = (size_t)panels * NR * in_features;
    float *data = aligned_alloc(64, floats * sizeof(float));
    if (!data)
        return -1;
    for (int p = 0; p < panels; p++) {
        float *panel = data + (size_t)p * NR * in_features;
        for (int j = 0; j < NR; j++) {
            int row = p * NR + j;
            for (int kk = 0; kk < in_features; kk++)
                panel[(size_t)kk * NR + j] = row < out_features ? weight[(size_t)row * in_features + kk] : 0.0f;
        }
    }
    pw->packed = data;
    return 0;
}

void mv_packed_weight_free(mv_packed_weight *pw)
{
    free(pw->packed);
    pw->packed = NULL;
    mv_int8_weight_free(pw->int8);
    pw->int8 = NULL;
}

#ifdef HAVE_AVX512_KERNEL
/* y[rows, cols] (+)= x[rows, kc] · panel block, rows <= MR, cols <= NR; x rows lda apart. When
 * start is 0 the tile starts from bias (or zero) unless accumulate, else from y. */
__attribute__((target("avx512f")))
static void kernel_8x32(const float *x, size_t lda, int rows, const float *panel, int kc, const float *bias,
                        int cols, int load_y, float *y, size_t ldy)
{
    __mmask16 lo = (__mmask16)(cols >= 16 ? 0xFFFF : (1u << cols) - 1);
    __mmask16 hi = (__mmask16)(cols <= 16 ? 0 : cols >= 32 ? 0xFFFF : (1u << (cols - 16)) - 1);
    __m512 acc[MR][2];
    const float *xr[MR];
    for (int r = 0; r < MR; r++) {
        xr[r] = x + (size_t)(r < rows ? r : rows - 1) * lda; /* surplus rows recompute the last one */
        if (load_y && r < rows) {
            acc[r][0] = _mm512_maskz_loadu_ps(lo, y + (size_t)r * ldy);
            acc[r][1] = _mm512_maskz_loadu_ps(hi, y + (size_t)r * ldy + 16);
        } else if (bias && !load_y) {
            acc[r][0] = _mm512_maskz_loadu_ps(lo, bias);
            acc[r][1] = _mm512_maskz_loadu_ps(hi, bias + 16);
        } else {
            acc[r][0] = acc[r][1] = _mm512_setzero_ps();
        }
    }
    for (int kk = 0; kk < kc; kk++) {
        __m512 b0 = _mm512_load_ps(panel + (size_t)kk * NR), b1 = _mm512_load_ps(panel + (size_t)kk * NR + 16);
        for (int r = 0; r < MR; r++) {
            __m512 a = _mm512_set1_ps(xr[r][kk]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(y + (size_t)r * ldy, lo, acc[r][0]);
        _mm512_mask_storeu_ps(y + (size_t)r * ldy + 16, hi, acc[r][1]);
    }
}

static void packed_linear(const float *x, int n_rows, const mv_packed_weight *pw, const float *bias,
                          int accumulate, float *y)
{
    const int n = pw->n, k = pw->k, panels = (n + NR - 1) / NR;
    /* Rows go in blocks of MC so a block of x stays in L2 while every panel passes over it. */
    for (int m0 = 0; m0 < n_rows; m0 += MC) {
        int m1 = n_rows - m0 < MC ? n_rows : m0 + MC;
#pragma omp parallel for schedule(static) num_threads(mv_get_threads())
        for (int p = 0; p < panels; p++) {
            const float *panel = pw->packed + (size_t)p * NR * k;
            int cols = n - p * NR < NR ? n - p * NR : NR;
            const float *panel_bias = bias ? bias + (size_t)p * NR : NULL;
            for (int k0 = 0; k0 < k; k0 += KC) {
                int kc = k - k0 < KC ? k - k0 : KC;
                for (int r0 = m0; r0 < m1; r0 += MR) {
                    float *tile = y + (size_t)r0 * n + (size_t)p * NR;
                    int rows = m1 - r0 < MR ? m1 - r0 : MR;
                    kernel_8x32(x + (size_t)r0 * k + k0, (size_t)k, rows, panel + (size_t)k0 * NR, kc, panel_bias,
                                cols, k0 > 0 || accumulate, tile, (size_t)n);
                    /* Accumulating adds the bias too (mv_linear_accumulate's contract). */
                    if (k0 == 0 && accumulate && panel_bias)
                        for (int r = 0; r < rows; r++)
                            for (int j = 0; j < cols; j++)
                                tile[(size_t)r * n + j] += panel_bias[j];
                }
            }
        }
    }
}
#endif

void mv_packed_linear(const float *x, int n_rows, const mv_packed_weight *pw, const float *bias, int accumulate,
                      float *y)
{
    if (pw->int8) {
        mv_int8_linear(x, n_rows, pw->int8, bias, accumulate, y);
        return;
    }
#ifdef HAVE_AVX512_KERNEL
    if (pw->packed && n_rows <= PACKED_MAX_ROWS) {
        packed_linear(x, n_rows, pw, bias, accumulate, y);
        return;
    }
#endif
    (accumulate ? mv_linear_accumulate : mv_linear)(x, n_rows, pw->k, pw->weight, bias, pw->n, y);
}
