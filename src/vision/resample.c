/* resample.c — owns Pillow-exact resizing of 8-bit images (Pillow Resample.c and Geometry.c
 * semantics, reimplemented): separable convolution, horizontal pass first into an 8-bit
 * intermediate holding only the rows the vertical pass reads, then the vertical pass; antialiased
 * (filter support widened by the downscale factor); weights computed in double, normalised, then
 * fixed point with 22 fractional bits rounded half away from zero; accumulators start at 1/2 and
 * are clipped to 0..255. A pass is skipped when its dimension is unchanged. NEAREST is Pillow's
 * affine scaling: source = int(position), position stepping by in/out from in/(2 out).
 *
 * Only the requested output window is computed (the caller center-crops): each output pixel
 * depends only on its own coefficients, so the window is bit-identical to cropping the full
 * result. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vision/vision_internal.h"

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic_weight(double x)
{
    const double a = -0.5; /* Pillow's choice (Keys' a = -0.5) */
    x = fabs(x);
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0)
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

static double triangle_weight(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Fixed-point weights of n_out consecutive output positions starting at first_out along one axis. */
struct axis_weights {
    int taps;   /* weights per output position */
    int *start; /* first input index per output position */
    int *count; /* inputs actually used per output position */
    int *fixed; /* taps weights per output position */
};

static void axis_weights_free(struct axis_weights *w)
{
    free(w->start);
    free(w->count);
    free(w->fixed);
}

static int axis_weights_compute(int in_size, int out_size, int first_out, int n_out, mv_filter filter,
                                struct axis_weights *w, mv_error *err)
{
    double (*weight)(double) = filter == MV_FILTER_BICUBIC ? bicubic_weight : triangle_weight;
    double filter_support = filter == MV_FILTER_BICUBIC ? 2.0 : 1.0;
    double scale = (double)in_size / out_size;
    double filter_scale = scale < 1.0 ? 1.0 : scale;
    double support = filter_support * filter_scale;
    double inverse_scale = 1.0 / filter_scale; /* Pillow multiplies by the reciprocal; so must we */
    w->taps = (int)ceil(support) * 2 + 1;
    w->start = malloc((size_t)n_out * sizeof *w->start);
    w->count = malloc((size_t)n_out * sizeof *w->count);
    w->fixed = calloc((size_t)n_out * (size_t)w->taps, sizeof *w->fixed);
    double *real = malloc((size_t)w->taps * sizeof *real);
    if (!w->start || !w->count || !w->fixed || !real) {
        free(real);
        axis_weights_free(w);
        return mv_fail(err, MV_ENOMEM, "out of memory for resampling weights");
    }
    for (int i = 0; i < n_out; i++) {
        double center = (first_out + i + 0.5) * scale;
        int lo = (int)(center - support + 0.5);
        int hi = (int)(center + support + 0.5);
        lo = lo < 0 ? 0 : lo;
        hi = hi > in_size ? in_size : hi;
        double sum = 0.0;
        for (int k = 0; k < hi - lo; k++) {
            real[k] = weight((k + lo - center + 0.5) * inverse_scale);
            sum += real[k];
        }
        int *fixed = w->fixed + (size_t)i * (size_t)w->taps;
        for (int k = 0; k < hi - lo; k++) {
            double normalised = sum != 0.0 ? real[k] / sum : real[k];
            double scaled = normalised * (1 << PRECISION_BITS);
            fixed[k] = (int)(scaled < 0 ? scaled - 0.5 : scaled + 0.5);
        }
        w->start[i] = lo;
        w->count[i] = hi - lo;
    }
    free(real);
    return MV_OK;
}

static unsigned char clip8(int accumulator)
{
    if (accumulator <= 0)
        return 0;
    if (accumulator >= (255 << PRECISION_BITS))
        return 255;
    return (unsigned char)(accumulator >> PRECISION_BITS);
}

/* NEAREST: Pillow's ImagingScaleAffine source index for each of the out_size positions. */
static void nearest_indices(int in_size, int out_size, int *index)
{
    double step = (double)in_size / out_size;
    double position = step * 0.5;
    for (int i = 0; i < out_size; i++) {
        int source = position < 0.0 ? -1 : (int)position;
        index[i] = source < in_size ? source : -1;
        position += step;
    }
}

static int resample_nearest(const unsigned char *in, int in_width, int in_height, int channels,
                            int out_width, int out_height, int x0, int y0, int w, int h,
                            unsigned char *out, mv_error *err)
{
    int *column = malloc((size_t)out_width * sizeof *column);
    int *row = malloc((size_t)out_height * sizeof *row);
    if (!column || !row) {
        free(column);
        free(row);
        return mv_fail(err, MV_ENOMEM, "out of memory for resampling");
    }
    nearest_indices(in_width, out_width, column);
    nearest_indices(in_height, out_height, row);
    for (int y = 0; y < h; y++) {
        unsigned char *dst = out + (size_t)y * (size_t)w * (size_t)channels;
        int sy = row[y0 + y];
        for (int x = 0; x < w; x++) {
            int sx = column[x0 + x];
            for (int c = 0; c < channels; c++)
                dst[(size_t)x * channels + c] = sy < 0 || sx < 0
                    ? 0 : in[((size_t)sy * in_width + sx) * channels + c];
        }
    }
    free(column);
    free(row);
    return MV_OK;
}

int mv_resample(const unsigned char *in, int in_width, int in_height, int channels, int out_width,
                int out_height, mv_filter filter, int x0, int y0, int w, int h, unsigned char *out,
                mv_error *err)
{
    if (filter == MV_FILTER_NEAREST)
        return resample_nearest(in, in_width, in_height, channels, out_width, out_height, x0, y0, w, h,
                                out, err);

    int need_horizontal = out_width != in_width, need_vertical = out_height != in_height;
    struct axis_weights wx = {0}, wy = {0};
    unsigned char *between = NULL; /* horizontal pass output: rows row_first .. row_first+n_rows-1 */
    int status = MV_OK;

    /* Input rows the vertical pass will read (or, without one, the rows of the window itself). */
    int row_first = y0, n_rows = h;
    if (need_vertical) {
        status = axis_weights_compute(in_height, out_height, y0, h, filter, &wy, err);
        if (status != MV_OK)
            return status;
        row_first = wy.start[0];
        n_rows = wy.start[h - 1] + wy.count[h - 1] - row_first;
    }

    const unsigned char *rows = in + (size_t)row_first * (size_t)in_width * (size_t)channels;
    size_t rows_stride = (size_t)in_width * (size_t)channels;
    int rows_x0 = x0; /* column of rows[] that is window column 0 */
    if (need_horizontal) {
        status = axis_weights_compute(in_width, out_width, x0, w, filter, &wx, err);
        if (status != MV_OK)
            goto done;
        between = malloc((size_t)n_rows * (size_t)w * (size_t)channels);
        if (!between) {
            status = mv_fail(err, MV_ENOMEM, "out of memory for resampling");
            goto done;
        }
        for (int y = 0; y < n_rows; y++) {
            const unsigned char *src = rows + (size_t)y * rows_stride;
            unsigned char *dst = between + (size_t)y * (size_t)w * (size_t)channels;
            for (int x = 0; x < w; x++) {
                const int *k = wx.fixed + (size_t)x * (size_t)wx.taps;
                const unsigned char *s = src + (size_t)wx.start[x] * (size_t)channels;
                for (int c = 0; c < channels; c++) {
                    int acc = 1 << (PRECISION_BITS - 1);
                    for (int t = 0; t < wx.count[x]; t++)
                        acc += s[(size_t)t * channels + c] * k[t];
                    dst[(size_t)x * channels + c] = clip8(acc);
                }
            }
        }
        rows = between;
        rows_stride = (size_t)w * (size_t)channels;
        rows_x0 = 0;
    }

    size_t out_row = (size_t)w * (size_t)channels;
    for (int y = 0; y < h; y++) {
        unsigned char *dst = out + (size_t)y * out_row;
        if (!need_vertical) {
            memcpy(dst, rows + (size_t)y * rows_stride + (size_t)rows_x0 * channels, out_row);
            continue;
        }
        const int *k = wy.fixed + (size_t)y * (size_t)wy.taps;
        const unsigned char *src = rows + (size_t)(wy.start[y] - row_first) * rows_stride
                                   + (size_t)rows_x0 * channels;
        for (size_t i = 0; i < out_row; i++) {
            int acc = 1 << (PRECISION_BITS - 1);
            for (int t = 0; t < wy.count[y]; t++)
                acc += src[(size_t)t * rows_stride + i] * k[t];
            dst[i] = clip8(acc);
        }
    }

done:
    free(between);
    axis_weights_free(&wx);
    axis_weights_free(&wy);
    return status;
}
