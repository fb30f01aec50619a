/* gemm_int8.c — int8 weights, per-row dynamically quantised uint8 activations, int32 sums
 * (src/tensor/gemm_int8.h): the MV_QUANT_INT8 format of mv_packed_weight.
 *
 * Two micro-kernels compute the integer sums over the same panel layout: vpdpbusd on CPUs with
 * AVX512-VNNI (u8×s8 products summed in fours straight into int32), and vpmaddubsw + vpmaddwd on
 * AVX2-only CPUs. Everything around them (quantisation, the float epilogue) is shared code; on the same
 * quantised weights both give bit-identical outputs, but the AVX2 kernel needs 7-bit weights (below),
 * so an int8 embedding computed on an AVX2-only CPU differs slightly (int8-level) from a VNNI one.
 *
 * Blocking: the rows of x are quantised a block at a time into a buffer on the stack (ROW_BUFFER
 * bytes, so it stays in L2 while every panel passes over it). With many rows each OpenMP thread takes
 * whole blocks; with few, a block's panels are shared among the threads. A tile is MV_INT8_MR rows ×
 * one panel, accumulated over all of k in registers. x86-64 only, like the
 * rest of the kernels' CPU dispatch. */
#include "tensor/gemm_int8.h"
#include "packed_kernel.h"
#include "medvlp/pages.h"
#include "medvlp/tensor.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { NR = MV_INT8_NR, MR = MV_INT8_MR };

/* vpmaddubsw adds two u8×s8 products into a SATURATING int16: with 8-bit weights, 255·127·2 = 64770
 * overflows int16 and the AVX2 sums would silently differ from the true ones. Weights in
 * [-63, 63] keep every pair within 255·63·2 = 32130 < 32767, so the AVX2 kernel is exact (the same
 * choice as ONNX Runtime's reduce_range for u8s8 on CPUs without VNNI). Activations keep all 8 bits:
 * measured on BERT-base, 7-bit activations with 8-bit weights lose more than 8-bit activations with
 * 7-bit weights. vpdpbusd sums into int32 and takes full 8-bit weights, which halves the embedding
 * error (1 − cos to fp32 ≈ 2e-4 instead of 4e-4 on the benchmark's BERT-base). */
static int weight_max(mv_int8_isa isa)
{
    return isa == MV_INT8_AVX512_VNNI ? 127 : 63;
}

/* Quantised activation rows held at once; 128 KiB leaves most of a 1-2 MiB L2 to the panels. */
enum { ROW_BUFFER = 128 * 1024, MAX_BLOCK_ROWS = 512 };

/* Below this many multiply-adds per row block, waking a thread team costs more than it saves. */
#define PARALLEL_MIN_MACS (1 << 20)

mv_int8_isa mv_int8_best_isa(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw"))
        return MV_INT8_AVX512_VNNI;
    if (__builtin_cpu_supports("avx2"))
        return MV_INT8_AVX2;
    return MV_INT8_UNSUPPORTED;
}

mv_int8_weight *mv_int8_weight_new(const float *weight, int n, int k, mv_int8_isa isa)
{
    const int k4 = (k + 3) & ~3, panels = (n + NR - 1) / NR;
    if ((size_t)k4 * MR > ROW_BUFFER) /* a tile's rows must fit the activation buffer */
        return NULL;
    mv_int8_weight *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    *w = (mv_int8_weight){.isa = isa, .n = n, .k = k, .k4 = k4, .act_terms = 1};
    const float q_max = (float)weight_max(isa);
    w->panels = mv_alloc_populated((size_t)panels * NR * k4);
    w->scales = calloc((size_t)panels * NR, sizeof *w->scales);
    w->col_sums = calloc((size_t)panels * NR, sizeof *w->col_sums);
    if (!w->panels || !w->scales || !w->col_sums) {
        mv_int8_weight_free(w);
        return NULL;
    }
    memset(w->panels, 0, (size_t)panels * NR * k4);
#pragma omp parallel for schedule(static) num_threads(mv_get_threads())
    for (int row = 0; row < n; row++) {
        const float *src = weight + (size_t)row * k;
        float amax = 0.0f;
        for (int kk = 0; kk < k; kk++)
            amax = fabsf(src[kk]) > amax ? fabsf(src[kk]) : amax;
        const float inv = amax > 0.0f ? q_max / amax : 0.0f;
        int8_t *panel = w->panels + (size_t)(row / NR) * NR * k4;
        const int j = row % NR;
        int32_t sum = 0;
        for (int kk = 0; kk < k; kk++) {
            float q = rintf(src[kk] * inv);
            q = q > q_max ? q_max : q < -q_max ? -q_max : q;
            panel[(size_t)(kk / 4) * NR * 4 + j * 4 + kk % 4] = (int8_t)q;
            sum += (int32_t)q;
        }
        w->scales[row] = amax / q_max;
        w->col_sums[row] = sum;
    }
    return w;
}

void mv_int8_weight_free(mv_int8_weight *w)
{
    if (!w)
        return;
    free(w->panels);
    free(w->scales);
    free(w->col_sums);
    free(w);
}

/* The range always includes 0 (so zero is exact: padding, ReLU outputs); a = rint(x·255/range) +
 * zero, clamped to [0, 255]. The vector and scalar paths round alike (nearest even). */
__attribute__((target("avx2")))
static void quantize_row(const float *x, int k, int k4, uint8_t *a, float *x_scale, int32_t *x_zero)
{
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int kk = 0;
    for (; kk + 8 <= k; kk += 8) {
        __m256 v = _mm256_loadu_ps(x + kk);
        lo = _mm256_min_ps(lo, v);
        hi = _mm256_max_ps(hi, v);
    }
    float lanes_lo[8], lanes_hi[8], mn = 0.0f, mx = 0.0f;
    _mm256_storeu_ps(lanes_lo, lo);
    _mm256_storeu_ps(lanes_hi, hi);
    for (int i = 0; i < 8; i++) {
        mn = lanes_lo[i] < mn ? lanes_lo[i] : mn;
        mx = lanes_hi[i] > mx ? lanes_hi[i] : mx;
    }
    for (; kk < k; kk++) {
        mn = x[kk] < mn ? x[kk] : mn;
        mx = x[kk] > mx ? x[kk] : mx;
    }
    const float range = mx - mn;
    if (!(range > 0.0f)) { /* all zeros (or NaN): any scale represents them */
        memset(a, 0, (size_t)k4);
        *x_scale = 1.0f;
        *x_zero = 0;
        return;
    }
    const float inv = 255.0f / range;
    const float zero_f = rintf(-mn * inv);
    const int32_t zero = zero_f > 255.0f ? 255 : (int32_t)zero_f;
    *x_scale = range / 255.0f;
    *x_zero = zero;
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i vzero = _mm256_set1_epi32(zero), vmin = _mm256_setzero_si256(), vmax = _mm256_set1_epi32(255);
    /* Packing 4×8 int32 to 32 bytes interleaves 128-bit lanes; the permute restores the order. */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    kk = 0;
    for (; kk + 32 <= k; kk += 32) {
        __m256i q[4];
        for (int i = 0; i < 4; i++) {
            __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + kk + 8 * i), vinv));
            q[i] = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(v, vzero), vmin), vmax);
        }
        __m256i packed = _mm256_packus_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(a + kk), _mm256_permutevar8x32_epi32(packed, order));
    }
    for (; kk < k; kk++) {
        float q = rintf(x[kk] * inv) + (float)zero;
        a[kk] = (uint8_t)(q < 0.0f ? 0.0f : q > 255.0f ? 255.0f : q);
    }
    for (; kk < k4; kk++)
        a[kk] = 0;
}

/* The second byte of a 16-bit activation: what the first row (hi: scale, zero) leaves of x, in steps
 * of scale/128 around LOW_ZERO. hi's range holds every x, so the remainder is within half a step (64
 * low steps) of it; the byte's [-128, 127] leaves room for float rounding. */
enum { LOW_STEPS = 128, LOW_ZERO = 128 };

__attribute__((target("avx2")))
static void quantize_remainder(const float *x, int k, int k4, const uint8_t *hi, float scale, int32_t zero,
                               uint8_t *a, float *x_scale, int32_t *x_zero)
{
    const float inv = scale > 0.0f ? (float)LOW_STEPS / scale : 0.0f;
    const __m256 vscale = _mm256_set1_ps(scale), vinv = _mm256_set1_ps(inv);
    const __m256i vzero = _mm256_set1_epi32(zero), vlow = _mm256_set1_epi32(LOW_ZERO);
    const __m256i vmin = _mm256_setzero_si256(), vmax = _mm256_set1_epi32(255);
    int kk = 0;
    for (; kk + 8 <= k; kk += 8) {
        __m256i q_hi = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(hi + kk))), vzero);
        __m256 left = _mm256_sub_ps(_mm256_loadu_ps(x + kk), _mm256_mul_ps(vscale, _mm256_cvtepi32_ps(q_hi)));
        __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(left, vinv)), vlow);
        q = _mm256_min_epi32(_mm256_max_epi32(q, vmin), vmax);
        /* 8 int32 in [0, 255] to 8 bytes: pack to 16 bits, then to 8, within and across the lanes. */
        __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)(a + kk), _mm_packus_epi16(words, words));
    }
    for (; kk < k; kk++) {
        float q = rintf((x[kk] - scale * (float)(hi[kk] - zero)) * inv) + (float)LOW_ZERO;
        a[kk] = (uint8_t)(q < 0.0f ? 0.0f : q > 255.0f ? 255.0f : q);
    }
    memset(a + k, 0, (size_t)(k4 - k));
    *x_scale = scale / (float)LOW_STEPS;
    *x_zero = LOW_ZERO;
}

void mv_int8_quantize_rows(const float *x, int rows, int k, int k4, int terms, uint8_t *a, float *x_scale,
                           int32_t *x_zero)
{
    for (int r = 0; r < rows; r++) {
        const float *row = x + (size_t)r * k;
        const size_t at = (size_t)r * terms;
        quantize_row(row, k, k4, a + at * k4, x_scale + at, x_zero + at);
        if (terms == 2)
            quantize_remainder(row, k, k4, a + at * k4, x_scale[at], x_zero[at], a + (at + 1) * k4, x_scale + at + 1,
                               x_zero + at + 1);
    }
}

static inline int32_t load_group(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Per group of 4 inputs: two 64-byte panel loads (channels 0-15, 16-31), one 4-byte broadcast per row,
 * 2·MR vpdpbusd into 16 independent accumulators (enough to cover its latency). */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void kernel_vnni(const uint8_t *a, size_t ldx, int rows, const int8_t *panel, int k4, int32_t *tile,
                        const int8_t *prefetch)
{
    __m512i acc[MR][2];
    const uint8_t *ar[MR];
    for (int r = 0; r < MR; r++) {
        ar[r] = a + (size_t)(r < rows ? r : rows - 1) * ldx; /* surplus rows recompute the last one */
        acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    }
    for (int g = 0; g < k4; g += 4) {
        if (prefetch) {
            _mm_prefetch((const char *)(prefetch + (size_t)g * NR), _MM_HINT_T1);
            _mm_prefetch((const char *)(prefetch + (size_t)g * NR + 64), _MM_HINT_T1);
        }
        __m512i w0 = _mm512_load_si512(panel + (size_t)g * NR), w1 = _mm512_load_si512(panel + (size_t)g * NR + 64);
        for (int r = 0; r < MR; r++) {
            __m512i b = _mm512_set1_epi32(load_group(ar[r] + g));
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], b, w0);
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], b, w1);
        }
    }
    for (int r = 0; r < MR; r++) {
        _mm512_storeu_si512(tile + r * NR, acc[r][0]);
        _mm512_storeu_si512(tile + r * NR + 16, acc[r][1]);
    }
}

/* 16 ymm registers: 4 rows × 16 channels at a time (8 accumulators, 2 panel vectors, the broadcast,
 * the ones and products). vpmaddubsw sums pairs to int16 (exact for weights of weight_max(AVX2)), vpmaddwd with
 * ones sums those pairs to int32. */
__attribute__((target("avx2")))
static void kernel_avx2(const uint8_t *a, size_t ldx, int rows, const int8_t *panel, int k4, int32_t *tile,
                        const int8_t *prefetch)
{
    const __m256i ones = _mm256_set1_epi16(1);
    for (int r0 = 0; r0 < rows; r0 += 4) {
        const uint8_t *ar[4];
        for (int i = 0; i < 4; i++)
            ar[i] = a + (size_t)(r0 + i < rows ? r0 + i : rows - 1) * ldx;
        for (int half = 0; half < 2; half++) {
            __m256i acc[4][2];
            for (int i = 0; i < 4; i++)
                acc[i][0] = acc[i][1] = _mm256_setzero_si256();
            const int8_t *p = panel + half * 64;
            for (int g = 0; g < k4; g += 4) {
                if (prefetch && r0 == 0 && half == 0) {
                    _mm_prefetch((const char *)(prefetch + (size_t)g * NR), _MM_HINT_T1);
                    _mm_prefetch((const char *)(prefetch + (size_t)g * NR + 64), _MM_HINT_T1);
                }
                __m256i w0 = _mm256_load_si256((const __m256i *)(p + (size_t)g * NR));
                __m256i w1 = _mm256_load_si256((const __m256i *)(p + (size_t)g * NR + 32));
                for (int i = 0; i < 4; i++) {
                    __m256i b = _mm256_set1_epi32(load_group(ar[i] + g));
                    acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(b, w0), ones));
                    acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(b, w1), ones));
                }
            }
            for (int i = 0; i < 4 && r0 + i < MR; i++) {
                _mm256_storeu_si256((__m256i *)(tile + (r0 + i) * NR + half * 16), acc[i][0]);
                _mm256_storeu_si256((__m256i *)(tile + (r0 + i) * NR + half * 16 + 8), acc[i][1]);
            }
        }
    }
}

void mv_int8_kernel(mv_int8_isa isa, const uint8_t *a, size_t ldx, int rows, const int8_t *panel, int k4,
                    int32_t *tile, const int8_t *prefetch)
{
    (isa == MV_INT8_AVX512_VNNI ? kernel_vnni : kernel_avx2)(a, ldx, rows, panel, k4, tile, prefetch);
}

/* y = activation(Σ_t x_scale[t]·scale·(tile_t − x_zero[t]·col_sum) + bias + residual) for one tile,
 * each row of y summing `terms` consecutive rows t of the tile (its activation's bytes; residual rows
 * ldy apart, like y's; it may be y). One compiled copy serves both kernels, so their float results on
 * the same weights are identical too; the vector loop and the scalar tail round alike (no FMA). */
__attribute__((target("avx2")))
static void store_tile(const int32_t *tile, int rows, int terms, int cols, const float *x_scale, const int32_t *x_zero,
                       const float *scales, const int32_t *col_sums, const float *bias, const float *residual,
                       mv_activation activation, float *y, size_t ldy)
{
    const __m256 zero = _mm256_setzero_ps();
    for (int r = 0; r < rows; r++) {
        float *out = y + (size_t)r * ldy;
        const float *res = residual ? residual + (size_t)r * ldy : NULL;
        int j = 0;
        for (; j + 8 <= cols; j += 8) {
            __m256 v = _mm256_setzero_ps();
            for (int t = r * terms; t < (r + 1) * terms; t++) {
                __m256i sums = _mm256_sub_epi32(_mm256_load_si256((const __m256i *)(tile + t * NR + j)),
                                                _mm256_mullo_epi32(_mm256_set1_epi32(x_zero[t]),
                                                                   _mm256_loadu_si256((const __m256i *)(col_sums + j))));
                v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_cvtepi32_ps(sums),
                                                   _mm256_mul_ps(_mm256_set1_ps(x_scale[t]), _mm256_loadu_ps(scales + j))));
            }
            if (bias)
                v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
            if (res)
                v = _mm256_add_ps(v, _mm256_loadu_ps(res + j));
            if (activation == MV_ACT_RELU)
                v = _mm256_max_ps(zero, v); /* keeps -0.0 and NaN, like the scalar tail */
            _mm256_storeu_ps(out + j, v);
        }
        for (; j < cols; j++) {
            float v = 0.0f;
            for (int t = r * terms; t < (r + 1) * terms; t++)
                v += (float)(tile[t * NR + j] - x_zero[t] * col_sums[j]) * (x_scale[t] * scales[j]);
            if (bias)
                v += bias[j];
            if (res)
                v += res[j];
            out[j] = activation == MV_ACT_RELU && v < 0.0f ? 0.0f : v;
        }
        if (activation == MV_ACT_GELU)
            mv_gelu_erf_fast(out, (size_t)cols);
    }
}

/* One call's operands, and where its left rows come from. */
typedef struct int8_call {
    const mv_int8_source *src;
    const mv_int8_weight *w;
    const mv_gemm_epilogue *ep;
    float *y;
} int8_call;

/* Rows [r0, r0 + n_rows) of the left operand (k floats apart): in place, or gathered into buf. */
static const float *source_rows(const mv_int8_source *src, int k, int r0, int n_rows, float *buf)
{
    if (src->x)
        return src->x + (size_t)r0 * k;
    src->gather(src->ctx, r0, n_rows, buf, (size_t)k);
    return buf;
}

/* Panels [p0, p1) of y's rows [m0, m0 + mb), whose quantised activations are a (w->act_terms rows
 * of it per row of y, k4 apart). */
static void multiply_panels(const int8_call *c, const uint8_t *a, const float *x_scale, const int32_t *x_zero,
                            int m0, int mb, int p0, int p1)
{
    const mv_int8_weight *w = c->w;
    const mv_gemm_epilogue *ep = c->ep;
    const int n = w->n, k4 = w->k4, terms = w->act_terms, a_rows = mb * terms;
    for (int p = p0; p < p1; p++) {
        _Alignas(64) int32_t tile[MR * NR];
        const int8_t *panel = w->panels + (size_t)p * NR * k4;
        const int cols = n - p * NR < NR ? n - p * NR : NR;
        for (int r0 = 0; r0 < a_rows; r0 += MR) { /* MR is a multiple of terms: a tile holds whole rows */
            const int tile_rows = a_rows - r0 < MR ? a_rows - r0 : MR;
            /* The first row tile brings the next panel into L2 (see packed_gemm.c's packed_rows). */
            mv_int8_kernel(w->isa, a + (size_t)r0 * k4, (size_t)k4, tile_rows, panel, k4, tile,
                           r0 == 0 && p + 1 < p1 ? panel + (size_t)NR * k4 : NULL);
            const size_t at = (size_t)(m0 + r0 / terms) * n + (size_t)p * NR;
            store_tile(tile, tile_rows / terms, terms, cols, x_scale + r0, x_zero + r0, w->scales + p * NR,
                       w->col_sums + p * NR, ep->bias ? ep->bias + p * NR : NULL, ep->residual ? ep->residual + at : NULL,
                       ep->activation, c->y + at, (size_t)n);
        }
    }
}

/* Many rows: each thread takes whole blocks of rows, quantises (gathers) them into its own buffer and
 * runs every panel over them, with no barrier between blocks (ResNet's 1×1 convolutions over a batch
 * are ~50 blocks each; a barrier per block, with passive OpenMP waits, cost more than their products). */
static int rows_in_parallel(const int8_call *c, int rows, int threads, int block)
{
    const mv_int8_weight *w = c->w;
    const int k = w->k, k4 = w->k4, panels = ceil_div(w->n, NR);
    float *gather = c->src->x ? NULL : malloc(sizeof(float) * (size_t)threads * block * k);
    if (!c->src->x && !gather)
        return -1;
    const int blocks = ceil_div(rows, block);
#pragma omp parallel num_threads(threads)
    {
        _Alignas(64) uint8_t a[ROW_BUFFER];
        float x_scale[MAX_BLOCK_ROWS];
        int32_t x_zero[MAX_BLOCK_ROWS];
        float *buf = gather ? gather + (size_t)omp_get_thread_num() * block * k : NULL;
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < blocks; b++) {
            const int m0 = b * block, mb = rows - m0 < block ? rows - m0 : block;
            mv_int8_quantize_rows(source_rows(c->src, k, m0, mb, buf), mb, k, k4, w->act_terms, a, x_scale, x_zero);
            multiply_panels(c, a, x_scale, x_zero, m0, mb, 0, panels);
        }
    }
    free(gather);
    return 0;
}

/* Few rows (a text, one image's last stage): one block at a time, its rows quantised by all threads,
 * then the panels shared among them. */
static int panels_in_parallel(const int8_call *c, int rows, int threads, int block)
{
    const mv_int8_weight *w = c->w;
    const int k = w->k, k4 = w->k4, panels = ceil_div(w->n, NR);
    float *gather = c->src->x ? NULL : malloc(sizeof(float) * (size_t)block * k);
    if (!c->src->x && !gather)
        return -1;
    _Alignas(64) uint8_t a[ROW_BUFFER];
    float x_scale[MAX_BLOCK_ROWS];
    int32_t x_zero[MAX_BLOCK_ROWS];
    for (int m0 = 0; m0 < rows; m0 += block) {
        const int mb = rows - m0 < block ? rows - m0 : block;
        const int parallel = (size_t)mb * panels * NR * k4 >= PARALLEL_MIN_MACS;
#pragma omp parallel num_threads(threads) if (parallel)
        {
#pragma omp for schedule(static)
            for (int r = 0; r < mb; r++)
                mv_int8_quantize_rows(source_rows(c->src, k, m0 + r, 1, gather ? gather + (size_t)r * k : NULL), 1, k,
                                      k4, w->act_terms, a + (size_t)r * w->act_terms * k4, x_scale + r * w->act_terms,
                                      x_zero + r * w->act_terms);
            /* Contiguous shares of the panels, so each panel's first tile can prefetch the next. */
            const int share = ceil_div(panels, omp_get_num_threads()), first = omp_get_thread_num() * share;
            multiply_panels(c, a, x_scale, x_zero, m0, mb, first < panels ? first : panels,
                            first + share < panels ? first + share : panels);
        }
    }
    free(gather);
    return 0;
}

int mv_int8_gemm_source(const mv_int8_source *src, int rows, const mv_int8_weight *w, const mv_gemm_epilogue *epilogue,
                        float *y)
{
    const int8_call call = {src, w, epilogue, y};
    const int threads = mv_get_threads();
    /* A block's rows in y: whole row tiles of quantised rows (act_terms of them a row) that fit the
     * buffer and the scale arrays. */
    const int unit = MR / w->act_terms;
    int a_rows = ROW_BUFFER / w->k4 / MR * MR;
    a_rows = a_rows > MAX_BLOCK_ROWS ? MAX_BLOCK_ROWS : a_rows;
    const int block = a_rows / w->act_terms;
    int blocks = ceil_div(rows, block);
    if (threads < 2 || blocks < threads || (size_t)rows * w->n * w->k4 * w->act_terms < PARALLEL_MIN_MACS)
        return panels_in_parallel(&call, rows, threads, block);
    /* As many blocks as make every thread's share equal, each as large as that allows. */
    blocks = ceil_div(blocks, threads) * threads;
    return rows_in_parallel(&call, rows, threads, ceil_div(ceil_div(rows, blocks), unit) * unit);
}

void mv_int8_gemm(const float *x, int rows, const mv_int8_weight *w, const mv_gemm_epilogue *epilogue, float *y)
{
    mv_int8_gemm_source(&(mv_int8_source){.x = x}, rows, w, epilogue, y); /* rows in place: nothing to allocate */
}
