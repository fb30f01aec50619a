/* peak.c — the machine's fp32 limits that BENCHMARKS.md compares the models with. Not a test.
 *
 *   build-bench/bench/kernel_peak [THREADS=2]
 *
 * 1. fma: each of THREADS threads runs 16 independent chains of AVX-512 FMAs (no memory traffic): the
 *    FMA units' throughput, per thread and for all of them at once.
 * 2. micro-kernel: mv_kernel_8x32 (src/tensor/packed_kernel.h) on one thread over one 256-deep panel,
 *    with 1 row tile (everything in L1) and with 8 and 32 tiles whose rows are 272 floats apart, as
 *    gathered convolution rows are (the rows then come from L2). */
#include "medvlp/tensor.h"
#include "tensor/packed_kernel.h"

#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const double SECONDS = 1.0;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* GFLOP/s of 16 independent FMA chains for SECONDS. */
__attribute__((target("avx512f")))
static double fma_rate(void)
{
    enum { CHAINS = 16, STEPS = 1 << 20 };
    __m512 acc[CHAINS];
    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm512_set1_ps(0.001f * (float)c);
    const __m512 scale = _mm512_set1_ps(0.9999f), shift = _mm512_set1_ps(0.0001f);
    long steps = 0;
    double start = now(), seconds;
    do {
        for (int s = 0; s < STEPS; s++) {
#pragma GCC unroll 16
            for (int c = 0; c < CHAINS; c++)
                acc[c] = _mm512_fmadd_ps(acc[c], scale, shift);
        }
        steps += STEPS;
    } while ((seconds = now() - start) < SECONDS);
    float sum = 0.0f;
    for (int c = 0; c < CHAINS; c++)
        sum += _mm512_reduce_add_ps(acc[c]);
    if (sum < 0.0f) /* never: keeps the chains live */
        printf("%f\n", sum);
    return (double)steps * CHAINS * 16 * 2 / seconds / 1e9;
}

/* GFLOP/s of mv_kernel_8x32 over `tiles` row tiles of 8 rows, `kc` deep, rows `lda` floats apart. */
static double kernel_rate(int tiles, int kc, int lda)
{
    float *a = aligned_alloc(64, sizeof(float) * (size_t)lda * 8 * tiles);
    float *panel = aligned_alloc(64, sizeof(float) * 32 * (size_t)kc), *y = aligned_alloc(64, sizeof(float) * 256 * tiles);
    if (!a || !panel || !y) {
        free(a);
        free(panel);
        free(y);
        return -1.0;
    }
    for (size_t i = 0; i < (size_t)lda * 8 * tiles; i++)
        a[i] = 1e-3f * (float)(i % 7);
    for (int i = 0; i < 32 * kc; i++)
        panel[i] = 1e-3f * (float)(i % 5);
    long calls = 0;
    double start = now(), seconds;
    do {
        for (int tile = 0; tile < tiles; tile++)
            mv_kernel_8x32(a + (size_t)tile * 8 * lda, (size_t)lda, 8, panel, kc, NULL, NULL, 32, 0, y + tile * 256,
                           32, NULL, 0);
        calls += tiles;
    } while ((seconds = now() - start) < SECONDS);
    free(a);
    free(panel);
    free(y);
    return (double)calls * 2 * 8 * 32 * kc / seconds / 1e9;
}

int main(int argc, char **argv)
{
    mv_blas_select_kernels(argv);
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (threads < 1 || !mv_packed_kernel_available()) {
        fprintf(stderr, threads < 1 ? "usage: kernel_peak [THREADS>=1]\n" : "kernel_peak: needs AVX-512\n");
        return 2;
    }
    printf("fma, 1 thread: %.1f GFLOP/s\n", fma_rate());
    double rates[256] = {0}, total = 0.0;
    const int team = threads < 256 ? threads : 256;
#pragma omp parallel num_threads(team)
    rates[omp_get_thread_num()] = fma_rate();
    for (int t = 0; t < team; t++) {
        printf("fma, thread %d of %d at once: %.1f GFLOP/s\n", t, team, rates[t]);
        total += rates[t];
    }
    printf("fma, %d threads together: %.1f GFLOP/s\n", team, total);
    for (int tiles = 1; tiles <= 32; tiles *= tiles == 1 ? 8 : 4)
        printf("mv_kernel_8x32, %d row tile(s), kc 256, rows 272 floats apart: %.1f GFLOP/s\n", tiles,
               kernel_rate(tiles, 256, 272));
    return 0;
}
