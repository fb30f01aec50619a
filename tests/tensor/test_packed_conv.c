/* test_packed_conv.c — mv_packed_conv and mv_packed_gemm's epilogue (bias, residual, ReLU, GELU)
 * against a direct convolution / matrix product summed in double, with the packed kernel and with the
 * cblas fallback that CPUs without AVX-512 take (a weight with no packed copy). Shapes cross the
 * kernel's 8-row, 32-column, 256-deep and 256-row blocks, a tap's channels cut by a K block, strides,
 * padding on every side, and batches whose rows run from one image into the next. */
#include "medvlp/tensor.h"
#include "../test.h"

#include <stdlib.h>

static float uniform(unsigned *seed)
{
    return (float)rand_r(seed) / RAND_MAX - 0.5f;
}

static float *random_floats(size_t n, unsigned *seed)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = uniform(seed);
    return v;
}

/* The epilogue in double: + bias + residual, then the activation (GELU as x·Φ(x) through erf). */
static double finish(double v, int col, const float *bias, const float *residual, size_t at, mv_activation act)
{
    v += (bias ? bias[col] : 0.0) + (residual ? residual[at] : 0.0);
    if (act == MV_ACT_RELU)
        return v > 0.0 ? v : 0.0;
    if (act == MV_ACT_GELU)
        return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    return v;
}

/* Compares y with the reference; |terms| <= 1/4, so float sums of k terms in another order differ by
 * about k·2^-24, and mv_gelu_erf_fast adds up to 1e-6·max(1, |x|). */
static void compare(const float *y, const double *expect, size_t count, int k, const char *what)
{
    double worst = 0.0, bound = 1e-6 * (k + 16);
    for (size_t i = 0; i < count; i++) {
        double d = fabs((double)y[i] - expect[i]) / (fabs(expect[i]) > 1.0 ? fabs(expect[i]) : 1.0);
        worst = d > worst || d != d ? d : worst;
    }
    CHECK_MSG(worst <= bound, "%s: max relative |d| %g > %g", what, worst, bound);
}

/* Inputs, output and reference of one check; residual_mode 0: none, 1: a separate tensor, 2: y
 * itself (accumulate). */
typedef struct operands {
    float *x, *w, *bias, *residual, *y;
    double *expect;
    size_t count;
    int n, k, packed, residual_mode;
    mv_packed_weight pw;
} operands;

static void operands_init(operands *o, size_t x_floats, int n, int k, size_t rows, int packed, int residual_mode,
                          unsigned *seed)
{
    *o = (operands){.count = rows * n, .n = n, .k = k, .packed = packed, .residual_mode = residual_mode};
    o->x = random_floats(x_floats, seed);
    o->w = random_floats((size_t)n * k, seed);
    o->bias = random_floats((size_t)n, seed);
    o->residual = random_floats(o->count, seed);
    o->y = malloc(o->count * sizeof *o->y);
    o->expect = malloc(o->count * sizeof *o->expect);
    for (size_t i = 0; i < o->count; i++)
        o->y[i] = residual_mode == 2 ? o->residual[i] : 7.0f; /* 7: must be overwritten */
    /* Without a packed copy the weight takes the cblas path, as on CPUs without AVX-512. */
    o->pw = (mv_packed_weight){.weight = o->w, .n = n, .k = k};
    if (packed)
        CHECK(mv_packed_weight_init(&o->pw, o->w, n, k, MV_QUANT_NONE) == 0);
}

static mv_gemm_epilogue operands_epilogue(const operands *o, mv_activation act)
{
    return (mv_gemm_epilogue){o->bias, o->residual_mode == 1 ? o->residual : o->residual_mode == 2 ? o->y : NULL,
                              act};
}

/* expect[at] from the exact sum of output column `col`. */
static void operands_expect(operands *o, size_t at, int col, double sum, mv_activation act)
{
    o->expect[at] = finish(sum, col, o->bias, o->residual_mode ? o->residual : NULL, at, act);
}

static void operands_check_and_free(operands *o, const char *what)
{
    compare(o->y, o->expect, o->count, o->k, what);
    if (o->packed)
        mv_packed_weight_free(&o->pw);
    free(o->x);
    free(o->w);
    free(o->bias);
    free(o->residual);
    free(o->y);
    free(o->expect);
}

typedef struct conv_case {
    int n_images, height, width, channels, kernel, stride, pad, out_channels;
} conv_case;

static void check_conv(const conv_case *t, int packed, int residual_mode, mv_activation act, unsigned *seed)
{
    int out_h = (t->height + 2 * t->pad - t->kernel) / t->stride + 1;
    int out_w = (t->width + 2 * t->pad - t->kernel) / t->stride + 1;
    int k = t->kernel * t->kernel * t->channels, n = t->out_channels;
    size_t rows = (size_t)t->n_images * out_h * out_w;
    operands o;
    operands_init(&o, (size_t)t->n_images * t->height * t->width * t->channels, n, k, rows, packed, residual_mode,
                  seed);
    for (size_t r = 0; r < rows; r++) {
        int image = (int)(r / ((size_t)out_h * out_w)), oy = (int)(r / out_w % out_h), ox = (int)(r % out_w);
        for (int c = 0; c < n; c++) {
            double sum = 0.0;
            for (int kh = 0; kh < t->kernel; kh++)
                for (int kw = 0; kw < t->kernel; kw++) {
                    int iy = oy * t->stride - t->pad + kh, ix = ox * t->stride - t->pad + kw;
                    if (iy < 0 || iy >= t->height || ix < 0 || ix >= t->width)
                        continue;
                    const float *in = o.x + (((size_t)image * t->height + iy) * t->width + ix) * t->channels;
                    const float *wt = o.w + (size_t)c * k + ((size_t)kh * t->kernel + kw) * t->channels;
                    for (int i = 0; i < t->channels; i++)
                        sum += (double)in[i] * wt[i];
                }
            operands_expect(&o, r * n + c, c, sum, act);
        }
    }
    mv_conv_rows conv = {o.x, t->n_images, t->height, t->width, t->channels, t->kernel, t->stride, t->pad, out_h, out_w};
    mv_gemm_epilogue ep = operands_epilogue(&o, act);
    CHECK(mv_packed_conv(&conv, &o.pw, &ep, o.y) == 0);
    char what[160];
    snprintf(what, sizeof what, "conv %d×%dx%dx%d k%d s%d p%d → %d, packed %d, residual %d, act %d", t->n_images,
             t->height, t->width, t->channels, t->kernel, t->stride, t->pad, n, packed, residual_mode, (int)act);
    operands_check_and_free(&o, what);
}

/* mv_packed_gemm with each epilogue (mv_packed_linear's bias/accumulate cases are test_packed_gemm's). */
static void check_gemm(int m, int n, int k, int packed, int residual_mode, mv_activation act, unsigned *seed)
{
    operands o;
    operands_init(&o, (size_t)m * k, n, k, (size_t)m, packed, residual_mode, seed);
    for (int r = 0; r < m; r++)
        for (int c = 0; c < n; c++) {
            double sum = 0.0;
            for (int i = 0; i < k; i++)
                sum += (double)o.x[(size_t)r * k + i] * o.w[(size_t)c * k + i];
            operands_expect(&o, (size_t)r * n + c, c, sum, act);
        }
    mv_gemm_epilogue ep = operands_epilogue(&o, act);
    mv_packed_gemm(o.x, m, &o.pw, &ep, o.y);
    char what[128];
    snprintf(what, sizeof what, "gemm %dx%dx%d, packed %d, residual %d, act %d", m, n, k, packed, residual_mode,
             (int)act);
    operands_check_and_free(&o, what);
}

int main(void)
{
    static const conv_case cases[] = {
        {1, 9, 9, 3, 7, 2, 3, 5},          /* a stem: 7×7/2 over 3 channels, padding on all sides, read
                                              in place from a padded copy, 7 lines of 21 floats a row */
        {2, 20, 18, 3, 7, 2, 3, 33},       /* rows run across images; 33 outputs: two panels, one partial */
        {3, 8, 8, 64, 3, 1, 1, 40},        /* 3×3 taps of 64 channels: a K block a line, inner pixels read in place */
        {2, 7, 9, 100, 3, 2, 1, 17},       /* lines of 300 in two blocks of 150, cutting a tap mid-channel */
        {1, 6, 6, 300, 3, 1, 1, 8},        /* one tap wider than a K block */
        {4, 10, 10, 16, 1, 2, 0, 64},      /* a strided 1×1 (ResNet's downsample), one short line a row */
        {2, 9, 9, 96, 1, 2, 0, 40},        /* ... read in place (96 channels) */
        {2, 23, 23, 8, 3, 1, 1, 9},        /* 1058 rows: several row chunks shared among threads */
        {2, 30, 26, 64, 3, 1, 1, 33},      /* 1560 rows in chunks; tiles mixing inner and border pixels */
        {1, 5, 4, 5, 5, 1, 2, 31},         /* kernel larger than the image on one side */
        {1, 8, 8, 12, 5, 1, 2, 20},        /* short lines (60 floats) over a K of 300: gathered */
    };
    unsigned seed = 5;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int packed = 0; packed <= 1; packed++)
            for (int mode = 0; mode < 3; mode++)
                check_conv(&cases[i], packed, mode, (mv_activation)((i + (size_t)mode) % 3), &seed);
    static const int shapes[][3] = {{1, 5, 7}, {9, 33, 257}, {197, 100, 300}, {530, 64, 96}, {1100, 40, 20}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int packed = 0; packed <= 1; packed++)
            for (int mode = 0; mode < 3; mode++)
                for (int act = 0; act < 3; act++)
                    check_gemm(shapes[i][0], shapes[i][1], shapes[i][2], packed, mode, (mv_activation)act, &seed);
    return test_report("packed_conv");
}
