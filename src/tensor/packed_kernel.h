/* packed_kernel.h — the fp32 micro-kernel of packed_gemm.c, shared with the other kernels of
 * src/tensor (attention.c), and their tiling arithmetic (gemm_int8.c); not part of the library's
 * interface. */
#ifndef MEDVLP_PACKED_KERNEL_H
#define MEDVLP_PACKED_KERNEL_H

#include <stddef.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_AVX512_KERNEL 1
#endif

/* A panel holds MV_KERNEL_NR output columns: for each k, their NR values contiguously (64-byte
 * aligned, zero past the last column). A tile is MV_KERNEL_MR rows × NR columns. */
enum { MV_KERNEL_MR = 8, MV_KERNEL_NR = 32 };

/* The tiling arithmetic every kernel file of src/tensor shares: a / b rounded up (a >= 0, b > 0). */
static inline int ceil_div(int a, int b)
{
    return (a + b - 1) / b;
}

#ifdef HAVE_AVX512_KERNEL
/* y[rows, cols] = a[rows, kc] (rows lda apart) · panel[kc, NR], rows <= MR, cols <= NR, y rows ldy
 * apart. The accumulators start from `start` (a tile laid out like y: y itself when continuing a
 * sum over K, a residual when starting one) or zero, plus `bias` [cols] when given; `relu` clamps
 * them at zero when storing. prefetch: prefetch_lines (<= 2·kc) cache lines from there to bring into L2
 * meanwhile (NULL and 0 for none). */
void mv_kernel_8x32(const float *a, size_t lda, int rows, const float *panel, int kc, const float *start,
                    const float *bias, int cols, int relu, float *y, size_t ldy, const float *prefetch,
                    int prefetch_lines);

/* The same, row r of a at a[r] (rows anywhere: a convolution's rows read in place overlap). */
void mv_kernel_8x32_rows(const float *const *a, int rows, const float *panel, int kc, const float *start,
                         const float *bias, int cols, int relu, float *y, size_t ldy, const float *prefetch,
                         int prefetch_lines);
#endif

#endif
