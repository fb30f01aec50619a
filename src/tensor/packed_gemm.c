/* packed_gemm.c — y = epilogue(x·Wᵀ) with W re-laid out once at load (include/medvlp/tensor.h,
 * mv_packed_weight), for Linear layers and, through im2col rows gathered on the fly, convolutions.
 * Why not cblas_sgemm: through CBLAS, OpenBLAS copies ("packs") the whole weight matrix into its
 * kernel's panel order on every call. With few rows (a text of 32 tokens, one image's 197) that copy
 * costs as much as the multiply (perf: sgemm_incopy 40% of BERT-base at batch 1). Packing once at
 * load removes it; doing the bias, residual and activation on each tile as it is stored removes the
 * passes over y that would follow, and gathering a convolution's rows block by block removes im2col.
 *
 * Layout: W [n, k] is cut into panels of NR = 32 output features; a panel stores, for every
 * k, its 32 weights contiguously (zero-padded past n). The micro-kernel keeps an MR × NR = 8 × 32
 * tile of y in 16 AVX-512 registers and, per k, loads two vectors of the panel and broadcasts one x
 * value per row (x is read in place, row-major; so is a convolution's row where its taps lie inside
 * the image, other convolution rows are gathered into a buffer). K is
 * walked in blocks of KC, rows in chunks of at most MC, panels in groups (see packed_rows, run_packed).
 * Work items (row chunk × panel group) go to OpenMP threads (mv_get_threads()). CPUs without
 * AVX-512, and products of many rows with a large weight where OpenBLAS runs AVX-512 kernels too,
 * use cblas_sgemm on the original weights, which the packed weight keeps a pointer to. The fp16
 * format (MV_QUANT_FP16) stores the same panels
 * in half precision and always takes the packed kernel: each block of KC × NR weights is widened into
 * an L1-sized buffer once and then read by every row tile of the work item. The int8 format (MV_QUANT_INT8) has its own panels,
 * kernels and threading (gemm_int8.c); its calls take the unpacked route here, where gemm_int8
 * replaces cblas and gathers convolution rows itself. */
#include "medvlp/pages.h"
#include "medvlp/tensor.h"
#include "packed_kernel.h"
#include "tensor/gemm_int8.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_AVX512_KERNEL
#include <immintrin.h>
#endif

enum { NR = MV_KERNEL_NR, MR = MV_KERNEL_MR, KC = 256, MC = 256 };

/* Floats in a cache line, and lines in one k step of a panel (NR floats). */
enum { LINE_FLOATS = 16, STEP_LINES = NR / LINE_FLOATS };

/* A work item covers at most this many panels, so its y tiles (MC × 512 floats) stay in L2 across
 * the K blocks. */
enum { GROUP_PANELS = 16 };

/* Rows a thread needs, at least, to take its own share of a product's rows (see run_packed). */
enum { HALF_CHUNK_MIN = 32 };

/* Gathered convolution rows are GATHER_LD floats apart: KC plus one cache line, so the rows of a tile
 * do not all map to the same L1 set. */
enum { GATHER_LD = KC + 16 };

/* With more rows than this and a weight of more floats than that (half an L2), OpenBLAS's own
 * packing is spread over enough work to be cheap and its blocking beats this kernel's, which streams
 * the panels from beyond L2 (1-thread CPU time, 1576 × 2304 × 768: 119 vs 149 GFLOP/s; 512 × 768 ×
 * 768: 147 vs 146): such products of a matrix go to cblas_sgemm. Smaller weights stay packed at any
 * row count (ResNet's 1×1 convolutions over a batch, 25088 × 256 × 64: 120 vs 100), and so do
 * convolutions, whose rows cblas would need materialised. That holds against OpenBLAS's AVX-512
 * kernels only: where it runs AVX2 ones on an AVX-512 CPU (OPENBLAS_CORETYPE=Haswell set by the host),
 * every product stays packed (ViT-B/16 batch 8, 2 threads, AMD EPYC Zen 5: 5.0 images/s through
 * Haswell cblas, 8.1-8.8 packed, 8.5-9.0 through SkylakeX cblas). */
enum { PACKED_MAX_ROWS = 512, PACKED_MAX_WEIGHT_FLOATS = 1 << 19 };

/* Without the packed kernel, convolution rows are gathered this many floats (8 MiB) at a time. */
enum { FALLBACK_GATHER_FLOATS = 1 << 21 };

static int use_packed_kernel(void)
{
#ifdef HAVE_AVX512_KERNEL
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

static const char *const quant_names[] = {[MV_QUANT_NONE] = "none", [MV_QUANT_INT8] = "int8", [MV_QUANT_FP16] = "fp16"};

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
    if (quant == MV_QUANT_INT8)
        return mv_int8_best_isa() != MV_INT8_UNSUPPORTED;
    return quant != MV_QUANT_FP16 || use_packed_kernel();
}

#ifdef HAVE_AVX512_KERNEL
/* count floats (a multiple of 16) to IEEE half, rounding to nearest even, and back. */
__attribute__((target("avx512f")))
static void floats_to_half(const float *from, size_t count, uint16_t *to)
{
    for (size_t i = 0; i < count; i += 16)
        _mm256_store_si256((__m256i *)(to + i),
                           _mm512_cvtps_ph(_mm512_load_ps(from + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* ... and prefetch (or NULL): count halves to bring into L2 meanwhile, as mv_kernel_8x32 does. */
__attribute__((target("avx512f")))
static void half_to_floats(const uint16_t *from, size_t count, float *to, const uint16_t *prefetch)
{
    for (size_t i = 0; i < count; i += 16) {
        if (prefetch)
            _mm_prefetch((const char *)(prefetch + i), _MM_HINT_T1);
        _mm512_store_ps(to + i, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(from + i))));
    }
}
#endif

/* Panel p of W [n, k]: for every k, the NR weights of its output features, zero past n. */
static void pack_panel(const float *weight, int n, int k, int p, float *panel)
{
    for (int j = 0; j < NR; j++) {
        int row = p * NR + j;
        for (int kk = 0; kk < k; kk++)
            panel[(size_t)kk * NR + j] = row < n ? weight[(size_t)row * k + kk] : 0.0f;
    }
}

int mv_packed_weight_init(mv_packed_weight *pw, const float *weight, int out_features, int in_features,
                          mv_quant quant)
{
    *pw = (mv_packed_weight){.weight = weight, .n = out_features, .k = in_features};
    if (quant == MV_QUANT_INT8) {
        if (!mv_quant_supported(quant))
            return -1;
        pw->int8 = mv_int8_weight_new(weight, out_features, in_features, mv_int8_best_isa());
        pw->weight = NULL;
        return pw->int8 ? 0 : -1;
    }
    if (quant == MV_QUANT_FP16 && !mv_quant_supported(quant))
        return -1;
    if (!use_packed_kernel())
        return 0;
    pw->large_to_cblas = quant == MV_QUANT_NONE && mv_blas_has_avx512_kernels();
    const int panels = (out_features + NR - 1) / NR;
    const size_t panel_floats = (size_t)NR * in_features, floats = (size_t)panels * panel_floats;
    /* Both threads pack: the first read of each checkpoint page is slow (ViT-B/16's load, one thread:
     * 0.71-0.79 s, most of it here), and two threads take their faults side by side. */
    const int threads = mv_get_threads();
#ifdef HAVE_AVX512_KERNEL
    if (quant == MV_QUANT_FP16) {
        /* One fp32 panel per thread at a time: a whole-matrix fp32 copy, once freed, would stay in the
         * heap. (On one thread, fp16 ViT-B/16 loaded in 0.47-0.64 s, BERT-base 0.44-0.58; on two,
         * 0.36-0.39 and 0.32-0.38 s: five loads each, alternating.) */
        float *panel = mv_alloc_aligned((size_t)threads * panel_floats * sizeof(float));
        pw->half = mv_alloc_populated(floats * sizeof(uint16_t));
        pw->weight = NULL;
        if (!panel || !pw->half) {
            free(panel);
            mv_packed_weight_free(pw);
            return -1;
        }
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int p = 0; p < panels; p++) {
            float *mine = panel + (size_t)omp_get_thread_num() * panel_floats;
            pack_panel(weight, out_features, in_features, p, mine);
            floats_to_half(mine, panel_floats, pw->half + (size_t)p * panel_floats);
        }
        free(panel);
        return 0;
    }
#endif
    pw->packed = mv_alloc_populated(floats * sizeof(float));
    if (!pw->packed)
        return -1;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int p = 0; p < panels; p++)
        pack_panel(weight, out_features, in_features, p, pw->packed + (size_t)p * panel_floats);
    return 0;
}

int mv_packed_kernel_available(void)
{
    return use_packed_kernel();
}

void mv_packed_weight_fine_activations(mv_packed_weight *pw)
{
    if (pw->int8)
        pw->int8->act_terms = 2;
}

void mv_packed_weight_free(mv_packed_weight *pw)
{
    free(pw->packed);
    pw->packed = NULL;
    free(pw->half);
    pw->half = NULL;
    mv_int8_weight_free(pw->int8);
    pw->int8 = NULL;
}

#ifdef HAVE_AVX512_KERNEL
/* The tile of mv_kernel_8x32 for a row count known at compile time: a tile of fewer than MR rows costs
 * its own rows' multiply-adds, not MR rows' (ResNet-50 layer4 has 49 rows an image: 6 tiles and 1 row).
 * The K steps come in `segments` runs of kc: run s reads row r from ar[r] + s·seg_stride and the panel
 * from its step s·kc (one run for a matrix; a convolution's lines of taps for kernel_segments). */
__attribute__((target("avx512f"), always_inline))
static inline void kernel_rows(const float *const *ar, const int rows, const int segments, size_t seg_stride,
                               const float *panel, int kc, const float *start, const float *bias, int cols, int relu,
                               float *y, size_t ldy, const float *prefetch, int prefetch_lines)
{
    __mmask16 lo = (__mmask16)(cols >= 16 ? 0xFFFF : (1u << cols) - 1);
    __mmask16 hi = (__mmask16)(cols <= 16 ? 0 : cols >= 32 ? 0xFFFF : (1u << (cols - 16)) - 1);
    __m512 bias0 = bias ? _mm512_maskz_loadu_ps(lo, bias) : _mm512_setzero_ps();
    __m512 bias1 = bias ? _mm512_maskz_loadu_ps(hi, bias + 16) : _mm512_setzero_ps();
    __m512 acc[MR][2];
    for (int r = 0; r < rows; r++) {
        acc[r][0] = bias0;
        acc[r][1] = bias1;
        if (start) {
            acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_maskz_loadu_ps(lo, start + (size_t)r * ldy));
            acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_maskz_loadu_ps(hi, start + (size_t)r * ldy + 16));
        }
    }
#define FMA_STEP(kk)                                                                                        \
    do {                                                                                                    \
        __m512 b0 = _mm512_load_ps(run_panel + (size_t)(kk) * NR);                                          \
        __m512 b1 = _mm512_load_ps(run_panel + (size_t)(kk) * NR + 16);                                     \
        for (int r = 0; r < rows; r++) {                                                                    \
            __m512 x = _mm512_set1_ps(ar[r][run_at + (kk)]);                                                \
            acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);                                                  \
            acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);                                                  \
        }                                                                                                   \
    } while (0)
    for (int run = 0; run < segments; run++) {
        const size_t run_at = (size_t)run * seg_stride;
        const float *run_panel = panel + (size_t)run * kc * NR;
        int kk = 0;
        /* The prefetch lines spread evenly over the run's k steps, so that they are in flight a few at
         * a time: two a step while more lines than steps remain (a single tile bringing a whole block),
         * then one every `every` steps. Only single runs prefetch (callers pass none with segments). */
        const int doubled = prefetch_lines > kc ? prefetch_lines - kc : 0;
        for (; kk < doubled && kk < kc; kk++) {
            _mm_prefetch((const char *)(prefetch + (size_t)kk * NR), _MM_HINT_T1);
            _mm_prefetch((const char *)(prefetch + (size_t)kk * NR + LINE_FLOATS), _MM_HINT_T1);
            FMA_STEP(kk);
        }
        const int single = prefetch_lines - STEP_LINES * doubled;
        const int every = single > 0 && kc - kk > single ? (kc - kk) / single : 1;
        for (int line = 0; line < single && kk < kc; line++) {
            _mm_prefetch((const char *)(prefetch + (size_t)(STEP_LINES * doubled + line) * LINE_FLOATS),
                         _MM_HINT_T1);
            for (int end = kk + every < kc ? kk + every : kc; kk < end; kk++)
                FMA_STEP(kk);
        }
        for (; kk < kc; kk++)
            FMA_STEP(kk);
    }
#undef FMA_STEP
    for (int r = 0; r < rows; r++) {
        if (relu) {
            acc[r][0] = _mm512_max_ps(acc[r][0], _mm512_setzero_ps());
            acc[r][1] = _mm512_max_ps(acc[r][1], _mm512_setzero_ps());
        }
        _mm512_mask_storeu_ps(y + (size_t)r * ldy, lo, acc[r][0]);
        _mm512_mask_storeu_ps(y + (size_t)r * ldy + 16, hi, acc[r][1]);
    }
}

/* TILE(ROWS) for rows = 1..MR, each a kernel_rows instance of its own. */
#define FOR_ROWS(rows)                                                                                      \
    switch (rows) {                                                                                         \
    case 1: TILE(1); break;                                                                                 \
    case 2: TILE(2); break;                                                                                 \
    case 3: TILE(3); break;                                                                                 \
    case 4: TILE(4); break;                                                                                 \
    case 5: TILE(5); break;                                                                                 \
    case 6: TILE(6); break;                                                                                 \
    case 7: TILE(7); break;                                                                                 \
    default: TILE(MR); break;                                                                               \
    }

/* See packed_kernel.h. */
__attribute__((target("avx512f")))
void mv_kernel_8x32_rows(const float *const *a, int rows, const float *panel, int kc, const float *start,
                         const float *bias, int cols, int relu, float *y, size_t ldy, const float *prefetch,
                         int prefetch_lines)
{
#define TILE(ROWS) kernel_rows(a, ROWS, 1, 0, panel, kc, start, bias, cols, relu, y, ldy, prefetch, prefetch_lines)
    FOR_ROWS(rows)
#undef TILE
}

/* A convolution's tile whose rows are read in place over `segments` lines of taps, seg_len floats each,
 * seg_stride apart (a row of the padded input): the whole K in one pass, where a K block per line
 * would store and reload the tile between lines (reads_lines). */
__attribute__((target("avx512f")))
static void kernel_segments(const float *const *a, int rows, int segments, size_t seg_stride, const float *panel,
                            int seg_len, const float *start, const float *bias, int cols, int relu, float *y,
                            size_t ldy)
{
#define TILE(ROWS) kernel_rows(a, ROWS, segments, seg_stride, panel, seg_len, start, bias, cols, relu, y, ldy, NULL, 0)
    FOR_ROWS(rows)
#undef TILE
}
#undef FOR_ROWS

/* See packed_kernel.h. */
void mv_kernel_8x32(const float *a, size_t lda, int rows, const float *panel, int kc, const float *start,
                    const float *bias, int cols, int relu, float *y, size_t ldy, const float *prefetch,
                    int prefetch_lines)
{
    const float *ar[MR];
    for (int r = 0; r < rows; r++)
        ar[r] = a + (size_t)r * lda;
    mv_kernel_8x32_rows(ar, rows, panel, kc, start, bias, cols, relu, y, ldy, prefetch, prefetch_lines);
}
#endif

/* Short pieces (a 7×7 stem's line of taps over 3 channels is 21 floats, its padding less) are copied
 * inline; longer ones by libc. */
static inline void copy_floats(float *dst, const float *src, int count)
{
    if (count > 64)
        memcpy(dst, src, sizeof(float) * (size_t)count);
    else
        for (int i = 0; i < count; i++)
            dst[i] = src[i];
}

static inline void zero_floats(float *dst, int count)
{
    if (count > 64)
        memset(dst, 0, sizeof(float) * (size_t)count);
    else
        for (int i = 0; i < count; i++)
            dst[i] = 0.0f;
}

/* Rows [r0, r0 + rows) and columns [k0, k0 + kc) of the im2col matrix of `conv` into buf (rows ld
 * apart). A row is one output pixel; its columns are one line of taps (kw = 0..kernel-1) per kh, and
 * in NHWC the taps of a line are kernel·channels contiguous input floats, so each line is one copy
 * (with zeros where it crosses the padding) — for a 7×7 stem over 3 channels, 21 floats, not 7 × 3.
 * The pixel and the line advance by counting, not dividing: with integer divisions per row and line
 * the gather took a third of the stem's time (perf, one thread), as long as its multiply-adds.
 * With `in_place` (columns within one line), a row whose taps all lie inside the image is not copied:
 * in_place[i] points at its columns in x itself, and at its copy in buf for the others. */
static void gather_conv_rows(const mv_conv_rows *conv, int r0, int rows, int k0, int kc, float *buf, size_t ld,
                             const float **in_place)
{
    const int channels = conv->channels, line = conv->kernel * channels, pixels = conv->out_h * conv->out_w;
    const int kh_first = k0 / line, k1 = k0 + kc;
    const size_t image_floats = (size_t)conv->height * conv->width * channels;
    int image = r0 / pixels, oy = r0 % pixels / conv->out_w, ox = r0 % conv->out_w;
    for (int i = 0; i < rows; i++) {
        const int ix0 = ox * conv->stride - conv->pad; /* the input column of tap kw = 0 */
        /* Taps [kw_lo, kw_hi) of a line lie inside the image's width. */
        const int kw_lo = ix0 < 0 ? -ix0 : 0;
        const int kw_hi = conv->width - ix0 < conv->kernel ? conv->width - ix0 : conv->kernel;
        const int iy0 = oy * conv->stride - conv->pad;
        if (in_place && kw_lo == 0 && kw_hi == conv->kernel && iy0 >= 0 && iy0 + conv->kernel <= conv->height) {
            /* Column k0 of this pixel: tap (kh_first, kw, channel) with kw·channels + channel = k0 − kh_first·line. */
            in_place[i] = conv->x + (size_t)image * image_floats +
                          ((size_t)(iy0 + kh_first) * conv->width + (size_t)ix0) * channels + (k0 - kh_first * line);
        } else {
            float *dst = buf + (size_t)i * ld; /* column col goes to dst[col - k0] */
            if (in_place)
                in_place[i] = dst;
            for (int kh = kh_first, line_start = kh_first * line; line_start < k1; kh++, line_start += line) {
                const int col = line_start > k0 ? line_start : k0;
                const int line_end = line_start + line < k1 ? line_start + line : k1;
                const int iy = iy0 + kh;
                /* Columns [valid_lo, valid_hi) of this line lie inside the image. */
                int valid_lo = line_start, valid_hi = line_start;
                if (iy >= 0 && iy < conv->height && kw_hi > kw_lo) {
                    valid_lo += kw_lo * channels;
                    valid_hi += kw_hi * channels;
                }
                const int copy_lo = col > valid_lo ? col : valid_lo, copy_hi = line_end < valid_hi ? line_end : valid_hi;
                if (copy_lo >= copy_hi) {
                    zero_floats(dst + (col - k0), line_end - col);
                } else {
                    /* Input float of column copy_lo: pixel (iy, ix0 + kw) with kw·channels + channel = copy_lo − line_start. */
                    size_t from = (size_t)image * image_floats + ((size_t)iy * conv->width) * channels +
                                  (size_t)((ptrdiff_t)ix0 * channels + (copy_lo - line_start));
                    zero_floats(dst + (col - k0), copy_lo - col);
                    copy_floats(dst + (copy_lo - k0), conv->x + from, copy_hi - copy_lo);
                    zero_floats(dst + (copy_hi - k0), line_end - copy_hi);
                }
            }
        }
        if (++ox == conv->out_w) {
            ox = 0;
            if (++oy == conv->out_h) {
                oy = 0;
                image++;
            }
        }
    }
}

/* One call: the left operand (a matrix read in place, or the im2col rows of a convolution), the
 * weight, what happens at the store, and y [n_rows, n]. */
typedef struct gemm_call {
    const float *x;            /* [n_rows, k], or NULL when conv gives the rows */
    const mv_conv_rows *conv;
    int n_rows;
    const mv_packed_weight *pw;
    mv_gemm_epilogue ep;
    float *y;
} gemm_call;

/* The epilogue of a cblas product, around it, on rows [0, rows) of y, in the OpenMP threads, a block
 * of rows at a time: before it (`before`), y = bias + residual (a residual that is y stays and gets the
 * bias), so that sgemm adds onto y with beta 1 (beta 0 would zero y in a pass of OpenBLAS's own); after
 * it, the activation. One thread for these passes took 7% of BERT-base over 32 texts. */
static void epilogue_pass(const mv_gemm_epilogue *ep, const float *residual, int rows, int n, float *y, int before)
{
    enum { BLOCK_ROWS = 16 };
    const int blocks = ceil_div(rows, BLOCK_ROWS), threads = mv_get_threads();
#pragma omp parallel for schedule(static) num_threads(blocks < threads ? blocks : threads)
    for (int b = 0; b < blocks; b++) {
        const int r0 = b * BLOCK_ROWS, block_rows = rows - r0 < BLOCK_ROWS ? rows - r0 : BLOCK_ROWS;
        const size_t at = (size_t)r0 * n, count = (size_t)block_rows * n;
        if (before) {
            if (residual && residual != y)
                memcpy(y + at, residual + at, count * sizeof(float));
            if (residual && ep->bias)
                mv_add_bias(y + at, block_rows, n, ep->bias);
            else if (ep->bias)
                for (int r = 0; r < block_rows; r++)
                    memcpy(y + at + (size_t)r * n, ep->bias, (size_t)n * sizeof(float));
        } else if (ep->activation == MV_ACT_RELU) {
            mv_relu(y + at, count);
        } else {
            mv_gelu_erf_fast(y + at, count);
        }
    }
}

/* cblas_sgemm on the original weight (see run_call), rows [m0, m1) of the call. */
static void unpacked_rows(const gemm_call *c, const float *a, int m0, int m1)
{
    const mv_packed_weight *pw = c->pw;
    const float *residual = c->ep.residual ? c->ep.residual + (size_t)m0 * pw->n : NULL;
    float *y = c->y + (size_t)m0 * pw->n;
    const int onto_y = residual || c->ep.bias;
    if (c->ep.bias || (residual && residual != y))
        epilogue_pass(&c->ep, residual, m1 - m0, pw->n, y, 1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m1 - m0, pw->n, pw->k, 1.0f, a, pw->k, pw->weight, pw->k,
                onto_y ? 1.0f : 0.0f, y, pw->n);
    if (c->ep.activation != MV_ACT_NONE)
        epilogue_pass(&c->ep, residual, m1 - m0, pw->n, y, 0);
}

#ifdef HAVE_AVX512_KERNEL
/* Convolutions whose lines of taps (kernel · channels floats) are at least this long read their
 * rows in place where the taps lie inside the image (gather_conv_rows), in K blocks that never cross
 * a line; for shorter lines (the 7×7 stem's 21 floats) see reads_lines. Copying every row had cost 6%
 * of ResNet-50 at batch 1 (perf): with its rows read in place, batch 1 ran 27.3 -> 26.3 ms and batch 8
 * 210 -> 207 ms (medians of 21 and 9 rounds alternating with the old engine). */
enum { IN_PLACE_MIN_LINE = 64 };

static int reads_in_place(const gemm_call *c)
{
    return c->conv && c->conv->kernel * c->conv->channels >= IN_PLACE_MIN_LINE;
}

/* A convolution of shorter lines whose whole K fits one block (the stem: 7 lines of 21 floats, K
 * 147) reads every row in place from a copy of its input with the padding written out (run_packed),
 * all its lines in one kernel pass (kernel_segments). Gathering its rows had taken about as long as
 * their multiply-adds: ResNet-50's stem alone (build-bench/bench/resnet_convs with ONLY=stem, three
 * pairs alternating with the gathering build) 1.30-1.41 -> 0.74-0.77 ms, a forward at batch 1 30.4
 * -> 29.8 ms (21 rounds against ONNX Runtime's 26.2); a K block per line, storing and reloading the
 * tile between lines, had saved only a third of it. Short lines over a longer K are gathered. */
static int reads_lines(const gemm_call *c)
{
    return c->conv && !reads_in_place(c) && c->pw->k <= KC;
}

/* The depth of the K block that starts at k0: KC, or for rows read in place an equal share of the
 * line's ceil(line / KC) blocks (3×3 over 128 channels: two of 192), ending on the line's end. */
static int block_depth(const gemm_call *c, int k0)
{
    const int left = c->pw->k - k0;
    if (!reads_in_place(c))
        return left < KC ? left : KC;
    const int line = c->conv->kernel * c->conv->channels, line_left = line - k0 % line;
    const int depth = ceil_div(line, ceil_div(line, KC));
    return line_left < depth ? line_left : depth;
}

/* Rows [m0, m1) × panels [p0, p1) of the call. K is walked in blocks (block_depth), outermost, so
 * the block of x (or of gathered rows) stays in L2 while every panel passes over it and a panel's
 * block stays in L1 while the row tiles pass over it; the y tiles are revisited once per K block.
 * Row i of a block is at rows[i]: in x, in place, or gathered. */
static void packed_rows(const gemm_call *c, int m0, int m1, int p0, int p1, float *gather, float *widened)
{
    const mv_packed_weight *pw = c->pw;
    const int n = pw->n, k = pw->k;
    const mv_gemm_epilogue *ep = &c->ep;
    const float *rows[MC];
    for (int k0 = 0, kc; k0 < k; k0 += kc) {
        kc = block_depth(c, k0);
        const int last = k0 + kc == k;
        if (c->x)
            for (int i = 0; i < m1 - m0; i++)
                rows[i] = c->x + (size_t)(m0 + i) * k + k0;
        else if (reads_in_place(c) || reads_lines(c)) /* reads_lines: every row inside, none copied */
            gather_conv_rows(c->conv, m0, m1 - m0, k0, kc, gather, GATHER_LD, rows);
        else {
            gather_conv_rows(c->conv, m0, m1 - m0, k0, kc, gather, GATHER_LD, NULL);
            for (int i = 0; i < m1 - m0; i++)
                rows[i] = gather + (size_t)i * GATHER_LD;
        }
        for (int p = p0; p < p1; p++) {
            /* The block the row tiles prefetch: the next panel's, or the group's first of the next K
             * block. With few rows, streaming the weights from memory is the cost (BERT-base, 32 tokens). */
            const int k_next = p + 1 < p1 ? k0 : k0 + kc;
            const size_t next_at = (size_t)(p + 1 < p1 ? p + 1 : p0) * NR * k + (size_t)k_next * NR;
            const int next_kc = k_next >= k ? 0 : p + 1 < p1 ? kc : block_depth(c, k_next);
            const size_t panel_at = (size_t)p * NR * k + (size_t)k0 * NR;
            if (pw->half) /* widened once, then read by every row tile from L1 */
                half_to_floats(pw->half + panel_at, (size_t)kc * NR, widened, next_kc ? pw->half + next_at : NULL);
            const float *panel = pw->half ? widened : pw->packed + panel_at;
            int cols = n - p * NR < NR ? n - p * NR : NR;
            /* Each row tile prefetches its share of the next block's lines, spread over its k steps
             * (mv_kernel_8x32): the whole block from the first tile asked for more lines than can be in
             * flight and stalled it (ResNet-50 layer4 at batch 1, 7 tiles a block, weights from L3). */
            const int next_lines = STEP_LINES * next_kc;
            /* fp16 panels are widened ahead instead; kernel_segments' runs do not prefetch. */
            const int lines_per_tile = pw->half || reads_lines(c) ? 0 : ceil_div(next_lines, ceil_div(m1 - m0, MR));
            for (int r0 = m0; r0 < m1; r0 += MR) {
                int tile_rows = m1 - r0 < MR ? m1 - r0 : MR;
                int first_line = (r0 - m0) / MR * lines_per_tile;
                int lines = first_line >= next_lines ? 0
                            : next_lines - first_line < lines_per_tile ? next_lines - first_line : lines_per_tile;
                size_t at = (size_t)r0 * n + (size_t)p * NR;
                const float *start = k0 ? c->y + at : ep->residual ? ep->residual + at : NULL;
                const float *bias = k0 == 0 && ep->bias ? ep->bias + (size_t)p * NR : NULL;
                const int relu = last && ep->activation == MV_ACT_RELU;
                if (reads_lines(c))
                    kernel_segments(rows + (r0 - m0), tile_rows, c->conv->kernel,
                                    (size_t)c->conv->width * c->conv->channels, panel,
                                    c->conv->kernel * c->conv->channels, start, bias, cols, relu, c->y + at, (size_t)n);
                else
                    mv_kernel_8x32_rows(rows + (r0 - m0), tile_rows, panel, kc, start, bias, cols, relu, c->y + at,
                                        (size_t)n, lines ? pw->packed + next_at + (size_t)first_line * LINE_FLOATS : NULL,
                                        lines);
                if (last && ep->activation == MV_ACT_GELU)
                    for (int r = 0; r < tile_rows; r++)
                        mv_gelu_erf_fast(c->y + at + (size_t)r * n, (size_t)cols);
            }
        }
    }
}
#endif

/* mv_int8_source's gather for a convolution: every column of rows [r0, r0 + n_rows). */
static void gather_all_columns(const void *conv, int r0, int n_rows, float *buf, size_t ld)
{
    const mv_conv_rows *rows = conv;
    gather_conv_rows(rows, r0, n_rows, 0, rows->kernel * rows->kernel * rows->channels, buf, ld, NULL);
}

/* Without the packed kernel: the int8 product (which gathers convolution rows in its own threads), or
 * one cblas_sgemm over x, or over im2col rows gathered a few MiB at a time (OpenBLAS threads each call
 * itself). Returns -1 when out of memory. */
static int run_unpacked(const gemm_call *c)
{
    if (c->pw->int8) {
        mv_int8_source source = {.x = c->x, .gather = c->x ? NULL : gather_all_columns, .ctx = c->conv};
        return mv_int8_gemm_source(&source, c->n_rows, c->pw->int8, &c->ep, c->y);
    }
    if (c->x) {
        unpacked_rows(c, c->x, 0, c->n_rows);
        return 0;
    }
    const int k = c->pw->k;
    int chunk_rows = (int)(FALLBACK_GATHER_FLOATS / (size_t)k);
    chunk_rows = chunk_rows < MR ? MR : chunk_rows;
    float *gather = malloc((size_t)chunk_rows * k * sizeof(float));
    if (!gather)
        return -1;
    for (int m0 = 0; m0 < c->n_rows; m0 += chunk_rows) {
        int m1 = c->n_rows - m0 < chunk_rows ? c->n_rows : m0 + chunk_rows;
        gather_conv_rows(c->conv, m0, m1 - m0, 0, k, gather, (size_t)k, NULL);
        unpacked_rows(c, gather, m0, m1);
    }
    free(gather);
    return 0;
}

#ifdef HAVE_AVX512_KERNEL
/* Line `line` (image · padded height + y) of conv's input with its padding written out as zeros:
 * (height + 2·pad) × (width + 2·pad) pixels an image, into padded. */
static void pad_line(const mv_conv_rows *conv, int line, float *padded)
{
    const int pad = conv->pad, padded_h = conv->height + 2 * pad, padded_w = conv->width + 2 * pad;
    const int image = line / padded_h, iy = line % padded_h - pad;
    const size_t channels = (size_t)conv->channels;
    float *out = padded + (size_t)line * padded_w * channels;
    if (iy < 0 || iy >= conv->height) {
        memset(out, 0, (size_t)padded_w * channels * sizeof(float));
        return;
    }
    memset(out, 0, (size_t)pad * channels * sizeof(float));
    memcpy(out + pad * channels, conv->x + ((size_t)image * conv->height + (size_t)iy) * conv->width * channels,
           (size_t)conv->width * channels * sizeof(float));
    memset(out + (size_t)(pad + conv->width) * channels, 0, (size_t)pad * channels * sizeof(float));
}

/* The first row of chunk `chunk` of n_rows split into n_chunks as evenly as the rows allow. Chunks
 * are not rounded to whole row tiles: a share's last tile of fewer rows costs about its rows (the
 * kernel has a variant per row count), while rounding made one thread's share a whole tile longer than
 * the other's (ResNet-50's 14x14 maps and ViT-B/16's 197 tokens: 104 rows against 92). */
static int chunk_start(int n_rows, int n_chunks, int chunk)
{
    return (int)((long long)n_rows * chunk / n_chunks);
}

/* The packed kernel over the whole call, split into work items of at most MC rows × GROUP_PANELS
 * panels: as many as keep every thread busy (a multiple of the thread count where there are few).
 * The items are ordered rows first and each thread takes one contiguous share of them, so thread t
 * computes the same rows of every product: a network's next product reads the rows its thread has
 * just written, from that core's own caches. A core reading lines another has just written takes
 * 1.2-3.7x as long, depending on where the host puts the two vCPUs (bench/kernels/handoff, 800 KiB).
 * For the same reason a product of fewer than MC rows splits its rows between the threads where
 * each gets at least HALF_CHUNK_MIN (ResNet-50's 14×14 layer3 maps, 196 rows), and its panels below
 * that. Against items handed out one at a time (which let a thread slowed by another process leave
 * its share to the others), medians of 9-25 rounds alternating with the old engine: ResNet-50 batch 1
 * 29.5 -> 26.9 ms and 36.5 -> 34.3 ms (the static shares alone: 36.5 -> 36.7), BERT-base 32 texts
 * 584 -> 567 ms, one text 21.6 -> 20.4 ms, ViT-B/16 batch 1 121 -> 118 ms. Each thread gathers
 * convolution rows into its own block. Returns -1 when out of memory. */
static int run_packed(const gemm_call *c)
{
    const int threads = mv_get_threads(), panels = ceil_div(c->pw->n, NR);
    int m_chunks = ceil_div(c->n_rows, MC);
    if (m_chunks > 1 || c->n_rows >= threads * HALF_CHUNK_MIN)
        m_chunks = ceil_div(m_chunks, threads) * threads;
    const int chunk_rows = ceil_div(c->n_rows, m_chunks);
    int p_groups = ceil_div(panels, GROUP_PANELS);
    if (m_chunks == 1)
        p_groups = ceil_div(p_groups, threads) * threads;
    const int group = ceil_div(panels, p_groups < panels ? p_groups : panels);
    p_groups = ceil_div(panels, group);
    const int items = m_chunks * p_groups, team = items < threads ? items : threads;
    /* Per thread: a block of gathered convolution rows, then a widened fp16 panel block. */
    const size_t gather_floats = c->x || reads_lines(c) ? 0 : (size_t)chunk_rows * GATHER_LD;
    const size_t scratch_floats = gather_floats + (c->pw->half ? (size_t)KC * NR : 0);
    float *scratch = scratch_floats ? mv_alloc_aligned((size_t)team * scratch_floats * sizeof(float)) : NULL;
    /* reads_lines: the input with its padding written out, and the call made over it with pad 0. */
    mv_conv_rows padded_conv;
    gemm_call padded_call = *c;
    float *padded = NULL;
    if (reads_lines(c) && c->conv->pad > 0) {
        padded_conv = *c->conv;
        padded_conv.height += 2 * c->conv->pad;
        padded_conv.width += 2 * c->conv->pad;
        padded_conv.pad = 0;
        padded = mv_alloc_aligned((size_t)padded_conv.n_images * padded_conv.height * padded_conv.width *
                                  padded_conv.channels * sizeof(float));
        padded_conv.x = padded;
        padded_call.conv = &padded_conv;
    }
    if ((scratch_floats && !scratch) || (padded_call.conv != c->conv && !padded)) {
        free(scratch);
        free(padded);
        return -1;
    }
#pragma omp parallel num_threads(team)
    {
        if (padded) {
#pragma omp for schedule(static)
            for (int line = 0; line < padded_conv.n_images * padded_conv.height; line++)
                pad_line(c->conv, line, padded);
        }
#pragma omp for schedule(static)
        for (int item = 0; item < items; item++) {
            int chunk = item / p_groups;
            int m0 = chunk_start(c->n_rows, m_chunks, chunk), m1 = chunk_start(c->n_rows, m_chunks, chunk + 1);
            int p0 = item % p_groups * group, p1 = p0 + group < panels ? p0 + group : panels;
            float *mine = scratch ? scratch + (size_t)omp_get_thread_num() * scratch_floats : NULL;
            packed_rows(&padded_call, m0, m1, p0, p1, gather_floats ? mine : NULL,
                        c->pw->half ? mine + gather_floats : NULL);
        }
    }
    free(scratch);
    free(padded);
    return 0;
}
#endif

static int run_call(const gemm_call *c)
{
#ifdef HAVE_AVX512_KERNEL
    /* fp16 has no fp32 weight for cblas: it always takes the packed kernel. So does a product run
     * inside a caller's own OpenMP team (ResNet's images side by side): cblas_sgemm called from
     * several threads at once would oversubscribe OpenBLAS's one thread pool. */
    if (c->pw->half || (c->pw->packed && (!c->pw->large_to_cblas || c->conv || c->n_rows <= PACKED_MAX_ROWS ||
                                          omp_in_parallel() ||
                                          (size_t)c->pw->n * c->pw->k <= PACKED_MAX_WEIGHT_FLOATS)))
        return run_packed(c);
#endif
    return run_unpacked(c);
}

void mv_packed_gemm(const float *x, int n_rows, const mv_packed_weight *pw, const mv_gemm_epilogue *epilogue,
                    float *y)
{
    gemm_call call = {.x = x, .n_rows = n_rows, .pw = pw, .ep = *epilogue, .y = y};
    run_call(&call); /* cannot fail: rows read in place need no buffer */
}

int mv_packed_conv(const mv_conv_rows *conv, const mv_packed_weight *pw, const mv_gemm_epilogue *epilogue,
                   float *y)
{
    gemm_call call = {.conv = conv, .n_rows = conv->n_images * conv->out_h * conv->out_w, .pw = pw,
                      .ep = *epilogue, .y = y};
    return run_call(&call);
}

void mv_packed_linear(const float *x, int n_rows, const mv_packed_weight *pw, const float *bias, int accumulate,
                      float *y)
{
    mv_packed_gemm(x, n_rows, pw, &(mv_gemm_epilogue){.bias = bias, .residual = accumulate ? y : NULL}, y);
}
