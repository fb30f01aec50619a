/* ops.c — element-wise kernels and the sgemm entry points (see include/medvlp/tensor.h).
 * BLAS owns its threads; the element-wise loops are written for the compiler's vectoriser. */
#include "medvlp/tensor.h"
/* -std=c11 turns GCC's contraction of a*b+c into one fused multiply-add off; the polynomials of GELU's
 * erf and of exp are chains of them (BERT-base over 256 tokens 2-4% faster with it, and each fused
 * step rounds once instead of twice). Clang contracts within an expression by default. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* The element-wise loops run on one thread between GEMMs, so their time adds straight to a forward
 * pass. The release build targets x86-64-v2 (SSE4.2) to stay portable; marked loops are compiled again
 * for x86-64-v4 (AVX-512) and x86-64-v3 (AVX2 + FMA) and the CPU picks one at load time (GCC ifunc).
 * Their reductions keep LANES partial sums, or are OpenMP simd reductions, so the compiler may
 * vectorise them without -ffast-math; 16 fills a 512-bit register. Timed on one ViT-B/16 layer's
 * shapes on an Ice Lake Xeon, the v4 clones against the v3 ones: GELU 1.5× faster, LayerNorm 1.15×.
 * The softmax's partial-sum form stayed scalar in GCC 12's v4 clone (vmaxss, vaddss); with simd
 * reductions a 32-value row (BERT's attention over 32 tokens) takes 28 ns instead of 41, a 256-value
 * one 104 instead of 175 (Emerald Rapids). */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#endif
#ifndef VECTOR_CLONES
#define VECTOR_CLONES
#endif
enum { LANES = 16 };

/* An OpenMP simd reduction (GCC). Clang's -Wpass-failed turns a simd loop it does not vectorise (as
 * in the sanitizer builds) into an error; it gets the plain loop. */
#if defined(__GNUC__) && !defined(__clang__)
#define PRAGMA(text) _Pragma(#text)
#define SIMD_REDUCTION(op, var) PRAGMA(omp simd reduction(op : var))
#else
#define SIMD_REDUCTION(op, var)
#endif

/* e^x for x <= 0 with the sign bit set (-0.0, not +0.0; all GELU and softmax need): x = k·ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^7
 * (relative error < 2e-8 there), 2^k assembled in the exponent bits. Inputs below -87 act as -87
 * (e^-87 is under 1e-37, far below GELU's precision). */
static inline float exp_nonpositive(float x)
{
    /* The clamp compares bit patterns: for negative floats a larger magnitude is a larger int32, and
     * an integer min vectorises where a float comparison (which may trap) does not. */
    int32_t bits, floor_bits;
    const float floor_value = -87.0f;
    memcpy(&bits, &x, sizeof bits);
    memcpy(&floor_bits, &floor_value, sizeof floor_bits);
    bits = bits < floor_bits ? bits : floor_bits;
    memcpy(&x, &bits, sizeof x);
    /* Round to nearest by adding and removing 1.5·2^23, which vectorises where roundf does not. */
    float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693145752f - k * 1.42860677e-06f; /* ln2 split in two for an exact k·ln2_hi */
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
              r * (1.0f / 720 + r * (1.0f / 5040)))))));
    int32_t scale_bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    return p * scale;
}

void mv_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void mv_linear(const float *x, int n_rows, int in_features, const float *weight, const float *bias,
               int out_features, float *y)
{
    if (bias) {
        for (int r = 0; r < n_rows; r++)
            memcpy(y + (size_t)r * out_features, bias, sizeof(float) * (size_t)out_features);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_rows, out_features, in_features, 1.0f, x,
                in_features, weight, in_features, bias ? 1.0f : 0.0f, y, out_features);
}

VECTOR_CLONES
void mv_layernorm(const float *x, float *y, int n_rows, int dim, const float *gamma, const float *beta,
                  float eps)
{
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        /* Two passes in double for the statistics: LayerNorm eps can be 1e-12, so the variance of
         * near-constant rows must not be swamped by float rounding. */
        double sum[LANES] = {0}, mean = 0.0, var = 0.0;
        int i = 0;
        for (; i + LANES <= dim; i += LANES)
            for (int j = 0; j < LANES; j++)
                sum[j] += xr[i + j];
        for (; i < dim; i++)
            mean += xr[i];
        for (int j = 0; j < LANES; j++)
            mean += sum[j];
        mean /= dim;
        double squares[LANES] = {0};
        for (i = 0; i + LANES <= dim; i += LANES)
            for (int j = 0; j < LANES; j++) {
                double d = xr[i + j] - mean;
                squares[j] += d * d;
            }
        for (; i < dim; i++) {
            double d = xr[i] - mean;
            var += d * d;
        }
        for (int j = 0; j < LANES; j++)
            var += squares[j];
        var /= dim;
        float inv = (float)(1.0 / sqrt(var + eps));
        float m = (float)mean;
        for (i = 0; i < dim; i++)
            yr[i] = (xr[i] - m) * inv * gamma[i] + beta[i];
    }
}

void mv_gelu_erf(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

void mv_quick_gelu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

VECTOR_CLONES
void mv_relu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void mv_tanh(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tanhf(x[i]);
}

VECTOR_CLONES
void mv_add(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

void mv_add_bias(float *y, int n_rows, int dim, const float *bias)
{
    for (int r = 0; r < n_rows; r++)
        mv_add(y + (size_t)r * dim, bias, (size_t)dim);
}

VECTOR_CLONES
void mv_scale(float *y, float s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] *= s;
}

VECTOR_CLONES
void mv_softmax_rows(float *x, int n_rows, int dim)
{
    for (int r = 0; r < n_rows; r++) {
        float *xr = x + (size_t)r * dim;
        float max = -INFINITY, sum = 0.0f;
        SIMD_REDUCTION(max, max)
        for (int i = 0; i < dim; i++)
            max = xr[i] > max ? xr[i] : max;
        /* -(max - x), not x - max: exp_nonpositive needs the sign bit set, and max - max is +0. */
        SIMD_REDUCTION(+, sum)
        for (int i = 0; i < dim; i++) {
            xr[i] = exp_nonpositive(-(max - xr[i]));
            sum += xr[i];
        }
        float inv = 1.0f / sum;
        for (int i = 0; i < dim; i++)
            xr[i] *= inv;
    }
}

void mv_l2_normalize_rows(float *x, int n_rows, int dim)
{
    for (int r = 0; r < n_rows; r++) {
        float *xr = x + (size_t)r * dim;
        double ss = 0.0;
        for (int i = 0; i < dim; i++)
            ss += (double)xr[i] * xr[i];
        if (ss > 0.0)
            mv_scale(xr, (float)(1.0 / sqrt(ss)), (size_t)dim);
    }
}

/* openblas_set_num_threads comes from OpenBLAS's cblas.h; it also governs its pthread pool. */
void mv_set_threads(int n_threads)
{
    if (n_threads <= 0)
        n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    openblas_set_num_threads(n_threads);
}

int mv_get_threads(void)
{
    return omp_in_parallel() ? 1 : openblas_get_num_threads();
}

/* --- GELU ------------------------------------------------------------------------------------- */

VECTOR_CLONES
void mv_gelu_erf_fast(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float z = __builtin_fabsf(v) * (float)M_SQRT1_2;
        float t = 1.0f / (1.0f + 0.3275911f * z);
        float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f +
                     t * 1.061405429f))));
        float erf_abs = 1.0f - poly * exp_nonpositive(-z * z);
        x[i] = 0.5f * v * (1.0f + __builtin_copysignf(erf_abs, v));
    }
}
