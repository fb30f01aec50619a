/* test_gemm_int8.c — the int8 Linear (src/tensor/gemm_int8.c), each kernel variant called explicitly:
 *  - the micro-kernels' int32 sums equal plain integer dot products exactly (random and worst-case
 *    inputs: all activations 255 against the kernel's largest weights, ±63 AVX2 / ±127 VNNI);
 *  - weight quantisation: per-channel scale amax/63 (AVX2) or amax/127 (VNNI), |w − scale·q| <=
 *    scale/2, column sums, layout;
 *  - activation quantisation against a scalar re-implementation of its rule (bytes, scale, zero);
 *  - the whole linear against the same formula evaluated in double from the quantised values
 *    (shapes around the 8-row tile, 32-column panel, 4-deep group and row-block edges; bias,
 *    accumulation), bit-identical between kernels on the same 7-bit weights, mv_packed_linear
 *    dispatching to it, and close to cblas_sgemm on the float values (the quantisation error);
 *  - the epilogue (residual apart from y, ReLU, GELU) and mv_packed_conv with an int8 weight;
 *  - 16-bit activations (two rows of bytes per row of x): the bytes, the formula, and the error
 *    against the product with exact activations (see check_fine). */
#include "medvlp/tensor.h"
#include "tensor/gemm_int8.h"
#include "../test.h"

#include <cblas.h>
#include <float.h>
#include <stdint.h>
#include <stdlib.h>

static float uniform(unsigned *seed)
{
    return (float)rand_r(seed) / RAND_MAX - 0.5f;
}

/* q[n][k] of weight row `row`, read back through the documented panel layout. */
static int8_t panel_q(const mv_int8_weight *w, int row, int kk)
{
    return w->panels[(size_t)(row / MV_INT8_NR) * MV_INT8_NR * w->k4 + (size_t)(kk / 4) * MV_INT8_NR * 4 +
                     (row % MV_INT8_NR) * 4 + kk % 4];
}

static int q_max(mv_int8_isa isa)
{
    return isa == MV_INT8_AVX512_VNNI ? 127 : 63;
}

static void check_kernel(mv_int8_isa isa, int rows, int k4, int worst_case, unsigned *seed)
{
    const int nr = MV_INT8_NR, mr = MV_INT8_MR, top = q_max(isa);
    uint8_t *a = malloc((size_t)rows * k4);
    int8_t *q = malloc((size_t)nr * k4), *panel = aligned_alloc(64, (size_t)nr * k4);
    for (int i = 0; i < rows * k4; i++)
        a[i] = worst_case ? 255 : (uint8_t)(rand_r(seed) % 256);
    for (int i = 0; i < nr * k4; i++)
        q[i] = (int8_t)(worst_case ? (i % 3 ? top : -top) : rand_r(seed) % (2 * top + 1) - top);
    for (int j = 0; j < nr; j++)
        for (int kk = 0; kk < k4; kk++)
            panel[(size_t)(kk / 4) * nr * 4 + j * 4 + kk % 4] = q[(size_t)j * k4 + kk];
    int32_t tile[MV_INT8_MR * MV_INT8_NR];
    mv_int8_kernel(isa, a, (size_t)k4, rows, panel, k4, tile, NULL);
    int bad = 0;
    for (int r = 0; r < rows && r < mr; r++)
        for (int j = 0; j < nr; j++) {
            int64_t want = 0;
            for (int kk = 0; kk < k4; kk++)
                want += (int64_t)a[(size_t)r * k4 + kk] * q[(size_t)j * k4 + kk];
            bad += tile[r * nr + j] != want;
        }
    CHECK_MSG(bad == 0, "isa %d rows %d k4 %d worst %d: %d wrong sums", isa, rows, k4, worst_case, bad);
    free(a);
    free(q);
    free(panel);
}

static void check_weight(const float *w, int n, int k, const mv_int8_weight *qw)
{
    const int top = q_max(qw->isa);
    CHECK_INT_EQ(qw->k4, (k + 3) / 4 * 4);
    for (int row = 0; row < n; row++) {
        float amax = 0;
        for (int kk = 0; kk < k; kk++)
            amax = fmaxf(amax, fabsf(w[(size_t)row * k + kk]));
        CHECK_NEAR(qw->scales[row], amax / top, 1e-7 * amax);
        int32_t sum = 0;
        for (int kk = 0; kk < qw->k4; kk++) {
            int q = panel_q(qw, row, kk);
            sum += q;
            if (kk >= k) {
                CHECK_INT_EQ(q, 0);
                continue;
            }
            CHECK(q >= -top && q <= top);
            CHECK(fabs(w[(size_t)row * k + kk] - (double)qw->scales[row] * q) <= qw->scales[row] * 0.5001 + 1e-12);
        }
        CHECK_INT_EQ(qw->col_sums[row], sum);
    }
}

/* The activation rule, scalar: range [min(0, min x), max(0, max x)], 255 steps. */
static void check_activations(const float *x, int rows, int k, int k4)
{
    uint8_t *a = malloc((size_t)rows * k4);
    float *scale = malloc(sizeof(float) * rows);
    int32_t *zero = malloc(sizeof(int32_t) * rows);
    mv_int8_quantize_rows(x, rows, k, k4, 1, a, scale, zero);
    for (int r = 0; r < rows; r++) {
        const float *row = x + (size_t)r * k;
        float mn = 0, mx = 0;
        for (int kk = 0; kk < k; kk++) {
            mn = fminf(mn, row[kk]);
            mx = fmaxf(mx, row[kk]);
        }
        float inv = 255.0f / (mx - mn);
        int32_t z = (int32_t)rintf(-mn * inv);
        CHECK_NEAR(scale[r], (mx - mn) / 255.0f, 0);
        CHECK_INT_EQ(zero[r], z);
        for (int kk = 0; kk < k4; kk++) {
            float q = kk < k ? fminf(255.0f, fmaxf(0.0f, rintf(row[kk] * inv) + (float)z)) : 0.0f;
            CHECK_INT_EQ(a[(size_t)r * k4 + kk], (int)q);
            if (kk < k)
                CHECK(fabs(row[kk] - scale[r] * (a[(size_t)r * k4 + kk] - z)) <= scale[r] * 0.5001);
        }
    }
    free(a);
    free(scale);
    free(zero);
}

static void check_linear(mv_int8_isa isa, int m, int n, int k, int accumulate, int with_bias, unsigned *seed)
{
    float *x = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k), *bias = malloc(sizeof(float) * n);
    float *y0 = malloc(sizeof(float) * m * n), *y_int8 = malloc(sizeof(float) * m * n);
    float *y_other = malloc(sizeof(float) * m * n), *y_packed = malloc(sizeof(float) * m * n);
    float *y_f32 = malloc(sizeof(float) * m * n);
    for (int i = 0; i < m * k; i++)
        x[i] = uniform(seed) + (i % 7 == 0 ? 0.6f : 0.0f); /* skewed rows: zero points differ from 128 */
    for (int i = 0; i < n * k; i++)
        w[i] = uniform(seed) * (1 + i / k % 3);              /* channels of different scales */
    for (int i = 0; i < n; i++)
        bias[i] = uniform(seed);
    for (int i = 0; i < m * n; i++)
        y0[i] = accumulate ? uniform(seed) : 7.0f;           /* 7: must be overwritten */
    mv_int8_weight *qw = mv_int8_weight_new(w, n, k, isa);
    CHECK(qw != NULL);
    if (!qw)
        return;
    check_weight(w, n, k, qw);
    check_activations(x, m < 40 ? m : 40, k, qw->k4);

    /* Reference: the formula in double from our own quantised values. */
    uint8_t *a = malloc((size_t)m * qw->k4);
    float *xs = malloc(sizeof(float) * m);
    int32_t *xz = malloc(sizeof(int32_t) * m);
    mv_int8_quantize_rows(x, m, k, qw->k4, 1, a, xs, xz);
    const float *b = with_bias ? bias : NULL;
    memcpy(y_int8, y0, sizeof(float) * m * n);
    mv_int8_gemm(x, m, qw, &(mv_gemm_epilogue){.bias = b, .residual = accumulate ? y_int8 : NULL}, y_int8);
    double worst = 0;
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) {
            int64_t dot = 0;
            for (int kk = 0; kk < k; kk++)
                dot += (int64_t)a[(size_t)r * qw->k4 + kk] * panel_q(qw, j, kk);
            double s = (double)xs[r] * qw->scales[j];
            double want = s * (double)(dot - (int64_t)xz[r] * qw->col_sums[j]) + (b ? b[j] : 0) +
                          (accumulate ? y0[(size_t)r * n + j] : 0);
            /* float epilogue: a few roundings of terms no larger than s·(|dot| + |z·colsum|) */
            double tol = 1e-6 * (s * (fabs((double)dot) + fabs((double)xz[r] * qw->col_sums[j])) + 2);
            double d = fabs(y_int8[(size_t)r * n + j] - want) / tol;
            worst = d > worst ? d : worst;
        }
    CHECK_MSG(worst <= 1, "isa %d m %d n %d k %d: error %.3g × tolerance", isa, m, n, k, worst);

    /* 7-bit weights are valid for both kernels: on them VNNI and AVX2 agree bit for bit. */
    if (isa == MV_INT8_AVX2 && mv_int8_best_isa() == MV_INT8_AVX512_VNNI) {
        qw->isa = MV_INT8_AVX512_VNNI;
        memcpy(y_other, y0, sizeof(float) * m * n);
        mv_int8_gemm(x, m, qw, &(mv_gemm_epilogue){.bias = b, .residual = accumulate ? y_other : NULL}, y_other);
        CHECK_MSG(!memcmp(y_other, y_int8, sizeof(float) * m * n), "m %d n %d k %d: VNNI != AVX2", m, n, k);
        qw->isa = MV_INT8_AVX2;
    }
    /* The rest of the epilogue on the same sums: a residual apart from y, then ReLU or GELU. */
    for (int act = MV_ACT_RELU; act <= MV_ACT_GELU; act++) {
        memcpy(y_f32, y_int8, sizeof(float) * m * n);
        if (act == MV_ACT_RELU)
            for (int i = 0; i < m * n; i++)
                y_f32[i] = y_f32[i] < 0.0f ? 0.0f : y_f32[i];
        else
            mv_gelu_erf_fast(y_f32, (size_t)m * n);
        mv_int8_gemm(x, m, qw, &(mv_gemm_epilogue){.bias = b, .residual = accumulate ? y0 : NULL, .activation = act},
                     y_other);
        CHECK_MSG(!memcmp(y_other, y_f32, sizeof(float) * m * n), "m %d n %d k %d: activation %d", m, n, k, act);
    }
    /* mv_packed_linear runs the best kernel here. */
    if (isa == mv_int8_best_isa()) {
        mv_packed_weight pw;
        CHECK_INT_EQ(mv_packed_weight_init(&pw, w, n, k, MV_QUANT_INT8), 0);
        memcpy(y_packed, y0, sizeof(float) * m * n);
        mv_packed_linear(x, m, &pw, b, accumulate, y_packed);
        CHECK(!memcmp(y_packed, y_int8, sizeof(float) * m * n));
        mv_packed_weight_free(&pw);
    }

    /* Against the float product: the error is the quantisation's, a few % of the output's spread. */
    memcpy(y_f32, y0, sizeof(float) * m * n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, accumulate ? 1.0f : 0.0f,
                y_f32, n);
    double err2 = 0, ref2 = 0;
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) {
            double want = y_f32[(size_t)r * n + j] + (b ? b[j] : 0);
            err2 += (y_int8[(size_t)r * n + j] - want) * (y_int8[(size_t)r * n + j] - want);
            ref2 += (want - (accumulate ? y0[(size_t)r * n + j] : 0)) * (want - (accumulate ? y0[(size_t)r * n + j] : 0));
        }
    CHECK_MSG(sqrt(err2) <= 0.03 * sqrt(ref2) + 1e-6, "m %d n %d k %d: relative error %.3g vs fp32", m, n, k,
              sqrt(err2 / (ref2 + 1e-30)));
    mv_int8_weight_free(qw);
    free(a);
    free(xs);
    free(xz);
    free(x);
    free(w);
    free(bias);
    free(y0);
    free(y_int8);
    free(y_other);
    free(y_packed);
    free(y_f32);
}

/* 16-bit activations (act_terms 2): each row of x quantised as its 8-bit row and then the remainder
 * in steps of scale/128 around 128 (bytes against a scalar re-implementation of the rule); y against
 * the two-term formula in double from those bytes, and against the exact product of x with the
 * dequantised weights, off by at most half a low step per input, where 8-bit activations are off
 * by ~100 times more; mv_packed_weight_fine_activations routes mv_packed_linear to it. */
static void check_fine(mv_int8_isa isa, int m, int n, int k, unsigned *seed)
{
    float *x = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k), *bias = malloc(sizeof(float) * n);
    float *y_fine = malloc(sizeof(float) * m * n), *y_coarse = malloc(sizeof(float) * m * n);
    float *y_packed = malloc(sizeof(float) * m * n);
    for (int i = 0; i < m * k; i++)
        x[i] = uniform(seed) + (i % 5 == 0 ? 0.4f : 0.0f);
    for (int i = 0; i < n * k; i++)
        w[i] = uniform(seed) * (1 + i / k % 3);
    for (int i = 0; i < n; i++)
        bias[i] = uniform(seed);
    mv_int8_weight *qw = mv_int8_weight_new(w, n, k, isa);
    CHECK(qw != NULL && qw->act_terms == 1);
    if (!qw)
        return;
    const int k4 = qw->k4;
    uint8_t *a = malloc((size_t)m * 2 * k4), *a8 = malloc((size_t)m * k4);
    float *xs = malloc(sizeof(float) * m * 2), *xs8 = malloc(sizeof(float) * m);
    int32_t *xz = malloc(sizeof(int32_t) * m * 2), *xz8 = malloc(sizeof(int32_t) * m);
    mv_int8_quantize_rows(x, m, k, k4, 2, a, xs, xz);
    mv_int8_quantize_rows(x, m, k, k4, 1, a8, xs8, xz8);
    int bad_bytes = 0, bad_values = 0;
    for (int r = 0; r < m; r++) {
        const uint8_t *hi = a + (size_t)2 * r * k4, *lo = hi + k4;
        bad_bytes += memcmp(hi, a8 + (size_t)r * k4, (size_t)k4) != 0 || xs[2 * r] != xs8[r] || xz[2 * r] != xz8[r];
        CHECK(xs[2 * r + 1] == xs[2 * r] / 128.0f && xz[2 * r + 1] == 128);
        for (int kk = 0; kk < k4; kk++) {
            const float *row = x + (size_t)r * k;
            float q = kk < k ? rintf((row[kk] - xs[2 * r] * (float)(hi[kk] - xz[2 * r])) * (128.0f / xs[2 * r])) + 128.0f
                             : 0.0f;
            bad_bytes += lo[kk] != (int)fminf(255.0f, fmaxf(0.0f, q));
            /* half a low step, plus the float rounding of the remainder (a few ulps of x) */
            if (kk < k)
                bad_values += fabs(row[kk] - ((double)xs[2 * r] * (hi[kk] - xz[2 * r]) +
                                              (double)xs[2 * r + 1] * (lo[kk] - 128))) >
                              xs[2 * r + 1] * 0.5 + 4 * FLT_EPSILON * fabsf(row[kk]);
        }
    }
    CHECK_MSG(bad_bytes == 0 && bad_values == 0, "isa %d m %d k %d: %d wrong bytes, %d values off", isa, m, k,
              bad_bytes, bad_values);

    mv_int8_gemm(x, m, qw, &(mv_gemm_epilogue){.bias = bias}, y_coarse);
    qw->act_terms = 2;
    mv_int8_gemm(x, m, qw, &(mv_gemm_epilogue){.bias = bias}, y_fine);
    double worst_formula = 0, worst_exact = 0, err_fine = 0, err_coarse = 0;
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) {
            double want = bias[j], tol = 2e-6 * fabs(bias[j]) + 1e-6, exact = bias[j], magnitude = 0;
            for (int t = 2 * r; t < 2 * r + 2; t++) {
                int64_t dot = 0;
                for (int kk = 0; kk < k; kk++)
                    dot += (int64_t)a[(size_t)t * k4 + kk] * panel_q(qw, j, kk);
                double s = (double)xs[t] * qw->scales[j];
                want += s * (double)(dot - (int64_t)xz[t] * qw->col_sums[j]);
                tol += 1e-6 * s * (fabs((double)dot) + fabs((double)xz[t] * qw->col_sums[j]));
            }
            for (int kk = 0; kk < k; kk++) {
                double wq = (double)qw->scales[j] * panel_q(qw, j, kk);
                exact += (double)x[(size_t)r * k + kk] * wq;
                magnitude += fabs(wq);
            }
            double got = y_fine[(size_t)r * n + j];
            worst_formula = fmax(worst_formula, fabs(got - want) / tol);
            worst_exact = fmax(worst_exact, fabs(got - exact) / (xs[2 * r + 1] * 0.5001 * magnitude + tol));
            err_fine += (got - exact) * (got - exact);
            err_coarse += (y_coarse[(size_t)r * n + j] - exact) * (y_coarse[(size_t)r * n + j] - exact);
        }
    CHECK_MSG(worst_formula <= 1, "isa %d m %d n %d k %d: error %.3g × tolerance", isa, m, n, k, worst_formula);
    CHECK_MSG(worst_exact <= 1, "isa %d m %d n %d k %d: %.3g × half a low step", isa, m, n, k, worst_exact);
    CHECK_MSG(err_fine * 50 * 50 < err_coarse || err_coarse == 0, "isa %d m %d n %d k %d: 16-bit error %.3g, 8-bit %.3g",
              isa, m, n, k, sqrt(err_fine), sqrt(err_coarse));

    if (isa == mv_int8_best_isa()) {
        mv_packed_weight pw;
        CHECK_INT_EQ(mv_packed_weight_init(&pw, w, n, k, MV_QUANT_INT8), 0);
        mv_packed_weight_fine_activations(&pw);
        mv_packed_linear(x, m, &pw, bias, 0, y_packed);
        CHECK(!memcmp(y_packed, y_fine, sizeof(float) * m * n));
        mv_packed_weight_free(&pw);
    }
    mv_int8_weight_free(qw);
    free(a);
    free(a8);
    free(xs);
    free(xs8);
    free(xz);
    free(xz8);
    free(x);
    free(w);
    free(bias);
    free(y_fine);
    free(y_coarse);
    free(y_packed);
}

/* mv_packed_conv with an int8 weight == mv_int8_gemm over im2col rows built here (NHWC, taps in
 * (kh, kw, channel) order, zeros in the padding), bias + ReLU. */
static void check_conv(int images, int height, int width, int channels, int stride, unsigned *seed)
{
    enum { KERNEL = 3, PAD = 1, N = 40 };
    const int out_h = (height + 2 * PAD - KERNEL) / stride + 1, out_w = (width + 2 * PAD - KERNEL) / stride + 1;
    const int k = KERNEL * KERNEL * channels, rows = images * out_h * out_w;
    float *x = malloc(sizeof(float) * images * height * width * channels), *w = malloc(sizeof(float) * N * k);
    float *cols = calloc((size_t)rows * k, sizeof(float)), *bias = malloc(sizeof(float) * N);
    float *y = malloc(sizeof(float) * rows * N), *want = malloc(sizeof(float) * rows * N);
    for (int i = 0; i < images * height * width * channels; i++)
        x[i] = uniform(seed);
    for (int i = 0; i < N * k; i++)
        w[i] = uniform(seed);
    for (int i = 0; i < N; i++)
        bias[i] = uniform(seed);
    for (int img = 0, r = 0; img < images; img++)
        for (int oy = 0; oy < out_h; oy++)
            for (int ox = 0; ox < out_w; ox++, r++)
                for (int kh = 0; kh < KERNEL; kh++)
                    for (int kw = 0; kw < KERNEL; kw++) {
                        int iy = oy * stride - PAD + kh, ix = ox * stride - PAD + kw;
                        if (iy >= 0 && iy < height && ix >= 0 && ix < width)
                            memcpy(cols + (size_t)r * k + (kh * KERNEL + kw) * channels,
                                   x + (((size_t)img * height + iy) * width + ix) * channels, sizeof(float) * channels);
                    }
    mv_packed_weight pw;
    CHECK_INT_EQ(mv_packed_weight_init(&pw, w, N, k, MV_QUANT_INT8), 0);
    const mv_gemm_epilogue ep = {.bias = bias, .activation = MV_ACT_RELU};
    mv_int8_gemm(cols, rows, pw.int8, &ep, want);
    mv_conv_rows conv = {x, images, height, width, channels, KERNEL, stride, PAD, out_h, out_w};
    CHECK_INT_EQ(mv_packed_conv(&conv, &pw, &ep, y), 0);
    CHECK(!memcmp(y, want, sizeof(float) * rows * N));
    mv_packed_weight_free(&pw);
    free(x);
    free(w);
    free(cols);
    free(bias);
    free(y);
    free(want);
}

int main(void)
{
    unsigned seed = 5, fine_seed = 7;
    mv_int8_isa best = mv_int8_best_isa();
    printf("best int8 kernel here: %s\n", best == MV_INT8_AVX512_VNNI ? "AVX512-VNNI" : best == MV_INT8_AVX2 ? "AVX2"
                                                                                                          : "none");
    if (best == MV_INT8_UNSUPPORTED) {
        CHECK(!mv_quant_supported(MV_QUANT_INT8));
        return test_report("gemm_int8");
    }
    mv_int8_isa isas[2] = {MV_INT8_AVX2, MV_INT8_AVX512_VNNI};
    for (int i = 0; i < (best == MV_INT8_AVX512_VNNI ? 2 : 1); i++) {
        static const int rows[] = {1, 3, 4, 5, 8};
        static const int k4s[] = {4, 8, 64, 764, 3072};
        for (size_t r = 0; r < sizeof rows / sizeof *rows; r++)
            for (size_t kk = 0; kk < sizeof k4s / sizeof *k4s; kk++)
                check_kernel(isas[i], rows[r], k4s[kk], 0, &seed);
        check_kernel(isas[i], 8, 4608, 1, &seed); /* AVX2: every vpmaddubsw pair at its largest, 255·63·2 */

        static const int ms[] = {1, 7, 8, 9, 33, 197};
        static const int ns[] = {1, 31, 32, 33, 100};
        static const int ks[] = {1, 3, 4, 5, 257};
        int c = 0;
        for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
            for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
                for (size_t d = 0; d < sizeof ks / sizeof *ks; d++, c++)
                    check_linear(isas[i], ms[a], ns[b], ks[d], c % 2, c % 3 != 0, &seed);
        /* Several row blocks (128 KiB of quantised rows: 42 rows of k 3072, 218 of k 600). */
        check_linear(isas[i], 600, 70, 600, 1, 1, &seed);
        check_linear(isas[i], 90, 40, 3072, 0, 1, &seed);
        /* 16-bit activations: a tile holds 4 rows; few rows (panels shared) and several row blocks. */
        static const int fine_ms[] = {1, 3, 4, 5, 9, 197, 600};
        for (size_t a = 0; a < sizeof fine_ms / sizeof *fine_ms; a++)
            check_fine(isas[i], fine_ms[a], 33 + (int)a, a % 2 ? 257 : 768, &fine_seed);
        check_fine(isas[i], 90, 40, 3072, &fine_seed);
    }
    if (best != MV_INT8_AVX512_VNNI)
        printf("no AVX512-VNNI here: its kernel was not run\n");

    check_conv(2, 9, 7, 5, 2, &seed);
    /* 1152 rows: several blocks, gathered by the threads that quantise them (with 2+ threads). */
    check_conv(2, 24, 24, 16, 1, &seed);

    /* Rows of zeros quantise to zero exactly, whatever the weights. */
    float zeros[2 * 5] = {0}, w[3 * 5] = {1, -2, 3, -4, 5, 0.5f, 0.25f, 0, 0, 1, 9, 9, 9, 9, 9}, y[6];
    mv_packed_weight pw;
    CHECK_INT_EQ(mv_packed_weight_init(&pw, w, 3, 5, MV_QUANT_INT8), 0);
    mv_packed_linear(zeros, 2, &pw, NULL, 0, y);
    for (int i = 0; i < 6; i++)
        CHECK(y[i] == 0.0f);
    mv_packed_weight_free(&pw);

    mv_quant q = MV_QUANT_NONE;
    CHECK_INT_EQ(mv_quant_parse("int8", &q), 0);
    CHECK_INT_EQ(q, MV_QUANT_INT8);
    CHECK_INT_EQ(mv_quant_parse("none", &q), 0);
    CHECK_INT_EQ(q, MV_QUANT_NONE);
    CHECK_INT_EQ(mv_quant_parse("INT8", &q), -1);
    CHECK_INT_EQ(mv_quant_parse("", &q), -1);
    CHECK(!strcmp(mv_quant_name(MV_QUANT_INT8), "int8"));
    return test_report("gemm_int8");
}
