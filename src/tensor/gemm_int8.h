/* gemm_int8.h — the int8 Linear behind mv_packed_weight's MV_QUANT_INT8 format (internal to
 * src/tensor/; tests reach it to run each kernel variant explicitly).
 *
 * Weights: symmetric per output channel, w ≈ scale[n]·q[n,k] with q in [-127, 127] for the VNNI kernel
 * and [-63, 63] for the AVX2 one (see gemm_int8.c for why). Activations: asymmetric per row (one token,
 * one image position), quantised on every call: x ≈ x_scale·(a − x_zero) with a in [0, 255]. Then
 *   y[m,n] = x_scale[m]·scale[n]·(Σ_k a[m,k]·q[n,k] − x_zero[m]·Σ_k q[n,k]) + bias[n],
 * where the integer sum is exact in int32 and only the last line is float. A weight may take 16-bit
 * activations instead (act_terms 2): two such rows of bytes per row of x, their two y terms summed. */
#ifndef MEDVLP_TENSOR_GEMM_INT8_H
#define MEDVLP_TENSOR_GEMM_INT8_H

#include <stddef.h>
#include <stdint.h>
#include "medvlp/tensor.h"

enum { MV_INT8_NR = 32, MV_INT8_MR = 8 };

/* Which micro-kernel computes the integer sums (and so how finely the weights are quantised). */
typedef enum mv_int8_isa {
    MV_INT8_UNSUPPORTED, /* no AVX2: the int8 format is refused at load */
    MV_INT8_AVX2,        /* vpmaddubsw + vpmaddwd (the reference machine) */
    MV_INT8_AVX512_VNNI, /* vpdpbusd */
} mv_int8_isa;

/* The best kernel this CPU runs. */
mv_int8_isa mv_int8_best_isa(void);

/* A weight [n, k] quantised and laid out for the kernels: panels of MV_INT8_NR output channels;
 * inside a panel, for every group of 4 inputs, the 4 bytes of each of the 32 channels in turn
 * (128 bytes), which is one vpdpbusd operand per 16 channels. k is zero-padded to k4 (a multiple of 4),
 * n to whole panels (zero weights and scales). */
typedef struct mv_int8_weight {
    mv_int8_isa isa;     /* the kernel the weights were quantised for */
    int n, k, k4;
    int8_t *panels;      /* [panels][k4 / 4][NR][4] */
    float *scales;       /* [panels·NR] */
    int32_t *col_sums;   /* [panels·NR]: Σ_k q[n,k], for the activations' zero point */
    int act_terms;       /* 1: 8-bit activations; 2: 16-bit, each row quantised as two rows of bytes
                          * (mv_int8_quantize_rows), twice the integer work */
} mv_int8_weight;

/* Quantises weight [n, k] for isa's kernel (MV_INT8_AVX2 or MV_INT8_AVX512_VNNI, which this CPU must
 * run). Returns NULL when out of memory or k > 16384 (the activation buffer's limit). */
mv_int8_weight *mv_int8_weight_new(const float *weight, int n, int k, mv_int8_isa isa);
void mv_int8_weight_free(mv_int8_weight *w);

/* a[rows·terms, k4] (zero-padded past k) with a scale and zero point per row of a, from x[rows, k].
 * terms 1: one row of bytes per row of x. terms 2: then a second row, the remainder of x after the
 * first in steps of its scale/128, so that x ≈ Σ_t x_scale[t]·(a_t − x_zero[t]) to 1/256 of a step. */
void mv_int8_quantize_rows(const float *x, int rows, int k, int k4, int terms, uint8_t *a, float *x_scale,
                           int32_t *x_zero);

/* tile[MV_INT8_MR, MV_INT8_NR] = a[rows, k4] (rows ldx bytes apart) · one panel's q, in int32;
 * rows <= MV_INT8_MR (tile rows past rows are unspecified). prefetch (or NULL): a panel to bring into
 * L2 meanwhile. */
void mv_int8_kernel(mv_int8_isa isa, const uint8_t *a, size_t ldx, int rows, const int8_t *panel, int k4,
                    int32_t *tile, const int8_t *prefetch);

/* y[rows, n] = epilogue(x[rows, k]·Wᵀ) with w's kernel: + bias, + residual (laid out like y; it may
 * be y), then the activation — mv_packed_gemm's contract. */
void mv_int8_gemm(const float *x, int rows, const mv_int8_weight *w, const mv_gemm_epilogue *epilogue, float *y);

/* The left operand of mv_int8_gemm_source: x [rows, k] read in place or, when x is NULL, rows produced
 * on demand: gather(ctx, r0, n_rows, buf, ld) writes rows [r0, r0 + n_rows) into buf, ld floats apart
 * (a convolution's im2col rows, gathered by the thread that quantises them). */
typedef struct mv_int8_source {
    const float *x;
    void (*gather)(const void *ctx, int r0, int n_rows, float *buf, size_t ld);
    const void *ctx;
} mv_int8_source;

/* mv_int8_gemm over src's rows. Returns 0, or -1 when out of memory (gathered rows need a buffer). */
int mv_int8_gemm_source(const mv_int8_source *src, int rows, const mv_int8_weight *w,
                        const mv_gemm_epilogue *epilogue, float *y);

#endif
