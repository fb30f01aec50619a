/* test_packed_gemm.c — mv_packed_linear against cblas_sgemm (+ bias, + accumulation) on random
 * shapes, including the edges of the kernel's 8-row, 32-column, 256-deep and 256-row blocks; the fp16
 * format on weights half precision holds exactly (multiples of 2^-11), then its rounding bound on
 * arbitrary ones. */
#include "medvlp/tensor.h"
#include "../test.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static float uniform(unsigned *seed)
{
    return (float)rand_r(seed) / RAND_MAX - 0.5f;
}

/* A multiple of 2^-11 in [-0.5, 0.5]: exact in IEEE half. */
static float half_exact(unsigned *seed)
{
    return (float)(rand_r(seed) % 2049 - 1024) / 2048.0f;
}

static void check_shape(int m, int n, int k, int accumulate, mv_quant quant, unsigned *seed)
{
    float *x = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k), *bias = malloc(sizeof(float) * n);
    float *y = malloc(sizeof(float) * m * n), *expect = malloc(sizeof(float) * m * n);
    for (int i = 0; i < m * k; i++)
        x[i] = uniform(seed);
    for (int i = 0; i < n * k; i++)
        w[i] = quant == MV_QUANT_FP16 ? half_exact(seed) : uniform(seed);
    for (int i = 0; i < n; i++)
        bias[i] = uniform(seed);
    for (int i = 0; i < m * n; i++)
        y[i] = expect[i] = accumulate ? uniform(seed) : 7.0f; /* 7: must be overwritten */
    /* The reference: y = x·wᵀ (+ y) by cblas, then + bias. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, accumulate ? 1.0f : 0.0f,
                expect, n);
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++)
            expect[(size_t)r * n + j] += bias[j];
    mv_packed_weight pw;
    CHECK(mv_packed_weight_init(&pw, w, n, k, quant) == 0);
    CHECK(quant == MV_QUANT_NONE || pw.weight == NULL); /* fp16 never reads the fp32 weight again */
    mv_packed_linear(x, m, &pw, bias, accumulate, y);
    double worst = 0.0;
    for (int i = 0; i < m * n; i++) {
        double d = fabs((double)y[i] - expect[i]);
        worst = d > worst ? d : worst;
    }
    /* |terms| <= 1/4 each; float sums of k of them in different orders differ by ~k·2^-24. */
    if (!(worst <= 1e-6 * (k + 16)))
        fprintf(stderr, "%s m %d n %d k %d accumulate %d: max |d| %g\n", mv_quant_name(quant), m, n, k, accumulate,
                worst);
    CHECK(worst <= 1e-6 * (k + 16));
    /* Without a bias the tile starts from zero. */
    mv_packed_linear(x, m, &pw, NULL, 0, y);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, expect, n);
    for (int i = 0; i < m * n; i++)
        CHECK_NEAR(y[i], expect[i], 1e-6 * (k + 16));
    mv_packed_weight_free(&pw);
    free(x);
    free(w);
    free(bias);
    free(y);
    free(expect);
}

/* Arbitrary weights in fp16: each product's weight is off by at most 2^-11 of itself (round to
 * nearest), so |y − x·wᵀ| <= 2^-11 · Σ|x||w| plus float summation error. */
static void check_half_rounding(int m, int n, int k, unsigned *seed)
{
    float *x = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k), *y = malloc(sizeof(float) * m * n);
    for (int i = 0; i < m * k; i++)
        x[i] = uniform(seed);
    for (int i = 0; i < n * k; i++)
        w[i] = uniform(seed) * (float)(1 + i % 5);
    mv_packed_weight pw;
    CHECK(mv_packed_weight_init(&pw, w, n, k, MV_QUANT_FP16) == 0);
    mv_packed_linear(x, m, &pw, NULL, 0, y);
    double worst = 0.0, rounded = 0.0;
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) {
            double exact = 0.0, magnitude = 0.0;
            for (int kk = 0; kk < k; kk++) {
                exact += (double)x[(size_t)r * k + kk] * w[(size_t)j * k + kk];
                magnitude += fabs((double)x[(size_t)r * k + kk] * w[(size_t)j * k + kk]);
            }
            double d = fabs(y[(size_t)r * n + j] - exact) / (magnitude / 2048.0 + 1e-6 * (k + 16));
            worst = d > worst ? d : worst;
            rounded += fabs(y[(size_t)r * n + j] - exact) > 1e-5; /* the rounding is visible at all */
        }
    CHECK_MSG(worst <= 1.0, "fp16 m %d n %d k %d: error %.3g × bound", m, n, k, worst);
    CHECK(rounded > 0);
    mv_packed_weight_free(&pw);
    free(x);
    free(w);
    free(y);
}

int main(void)
{
    static const int ms[] = {1, 7, 8, 9, 33, 197, 300, 520}; /* 300, 520: several row chunks */
    static const int ns[] = {1, 16, 17, 31, 32, 33, 100};
    static const int ks[] = {1, 255, 256, 257, 600};
    unsigned seed = 11;
    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof ks / sizeof *ks; c++)
                check_shape(ms[a], ns[b], ks[c], (int)((a + b + c) % 2), MV_QUANT_NONE, &seed);
    /* A few random shapes as well. */
    for (int i = 0; i < 20; i++)
        check_shape(1 + rand_r(&seed) % 70, 1 + rand_r(&seed) % 90, 1 + rand_r(&seed) % 700, i % 2, MV_QUANT_NONE,
                    &seed);
    if (!mv_quant_supported(MV_QUANT_FP16)) {
        mv_packed_weight pw;
        float w[4] = {0};
        CHECK(mv_packed_weight_init(&pw, w, 2, 2, MV_QUANT_FP16) == -1);
        printf("no AVX-512 here: fp16 weights are refused, as they should be\n");
        return test_report("packed_gemm");
    }
    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
        for (size_t c = 0; c < sizeof ks / sizeof *ks; c++)
            check_shape(ms[a], ns[(a + c) % 7], ks[c], (int)((a + c) % 2), MV_QUANT_FP16, &seed);
    /* A product fp32 would hand to cblas (520 rows, a weight past half an L2): fp16 stays packed. */
    check_shape(520, 1100, 600, 1, MV_QUANT_FP16, &seed);
    check_half_rounding(40, 70, 300, &seed);
    return test_report("packed_gemm");
}
