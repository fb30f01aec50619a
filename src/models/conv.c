/* conv.c — owns convolution-as-GEMM and the NHWC/CHW layout moves of the image encoders
 * (include/medvlp/conv.h). The GEMM, with the im2col gathering and the bias/residual/ReLU epilogue,
 * is the packed kernel's (src/tensor/packed_gemm.c); this file maps a convolution onto it. */
#include "medvlp/conv.h"
#include "medvlp/tensor.h"

#include <float.h>
#include <math.h>
#include <string.h>

int mv_conv2d_fold_bn(mv_weights *weights, const char *prefix, const char *conv_name, const char *bn_name,
                      int in_channels, int out_channels, int kernel, float eps, float *weight, float *bias,
                      mv_error *err)
{
    const float *w, *gamma, *beta, *mean, *var;
    int rc = mv_weights_take(weights, &w, err, MV_SHAPE(out_channels, in_channels, kernel, kernel), "%s%s.weight",
                             prefix, conv_name);
    if (!rc)
        rc = mv_weights_take(weights, &gamma, err, MV_SHAPE(out_channels), "%s%s.weight", prefix, bn_name);
    if (!rc)
        rc = mv_weights_take(weights, &beta, err, MV_SHAPE(out_channels), "%s%s.bias", prefix, bn_name);
    if (!rc)
        rc = mv_weights_take(weights, &mean, err, MV_SHAPE(out_channels), "%s%s.running_mean", prefix, bn_name);
    if (!rc)
        rc = mv_weights_take(weights, &var, err, MV_SHAPE(out_channels), "%s%s.running_var", prefix, bn_name);
    if (rc)
        return rc;
    size_t taps = (size_t)kernel * kernel;
    for (int o = 0; o < out_channels; o++) {
        double scale = gamma[o] / sqrt((double)var[o] + eps);
        bias[o] = (float)(beta[o] - mean[o] * scale);
        for (int i = 0; i < in_channels; i++)
            for (size_t t = 0; t < taps; t++)
                weight[((size_t)o * taps + t) * in_channels + i] =
                    (float)(w[((size_t)o * in_channels + i) * taps + t] * scale);
    }
    /* Only the folded copy is read from now on. */
    mv_weights_release_range(weights, w, sizeof(float) * (size_t)out_channels * in_channels * taps);
    return MV_OK;
}

int mv_conv_out_size(int in_size, int kernel, int stride, int pad)
{
    return (in_size + 2 * pad - kernel) / stride + 1;
}

int mv_conv2d_forward(const mv_conv2d *conv, const float *x, int n_images, int in_h, int in_w,
                      const float *residual, int relu, float *y, mv_error *err)
{
    mv_gemm_epilogue epilogue = {conv->bias, residual, relu ? MV_ACT_RELU : MV_ACT_NONE};
    if (conv->kernel == 1 && conv->stride == 1 && conv->pad == 0) {
        mv_packed_gemm(x, n_images * in_h * in_w, &conv->packed, &epilogue, y);
        return MV_OK;
    }
    mv_conv_rows rows = {x, n_images, in_h, in_w, conv->in_channels, conv->kernel, conv->stride, conv->pad,
                         mv_conv_out_size(in_h, conv->kernel, conv->stride, conv->pad),
                         mv_conv_out_size(in_w, conv->kernel, conv->stride, conv->pad)};
    if (mv_packed_conv(&rows, &conv->packed, &epilogue, y))
        return mv_fail(err, MV_ENOMEM, "out of memory for a %dx%d convolution's row blocks", conv->kernel,
                       conv->kernel);
    return MV_OK;
}

void mv_patchify_chw(const float *image, int channels, int height, int width, int patch_size,
                     float *patches)
{
    int grid_h = height / patch_size, grid_w = width / patch_size;
    size_t row_len = (size_t)channels * patch_size * patch_size;
    for (int gy = 0; gy < grid_h; gy++) {
        for (int gx = 0; gx < grid_w; gx++) {
            float *row = patches + ((size_t)gy * grid_w + gx) * row_len;
            for (int c = 0; c < channels; c++) {
                for (int ky = 0; ky < patch_size; ky++) {
                    const float *src = image + ((size_t)c * height + (size_t)gy * patch_size + ky) * width
                                       + (size_t)gx * patch_size;
                    memcpy(row + ((size_t)c * patch_size + ky) * patch_size, src,
                           sizeof(float) * (size_t)patch_size);
                }
            }
        }
    }
}

void mv_chw_to_hwc(const float *chw, int channels, int height, int width, float *hwc)
{
    size_t plane = (size_t)height * width;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < channels; c++)
            hwc[p * channels + c] = chw[c * plane + p];
}

void mv_hwc_to_chw(const float *hwc, int channels, int height, int width, float *chw)
{
    size_t plane = (size_t)height * width;
    for (int c = 0; c < channels; c++)
        for (size_t p = 0; p < plane; p++)
            chw[c * plane + p] = hwc[p * channels + c];
}

void mv_maxpool_hwc(const float *x, int n_images, int height, int width, int channels, int kernel,
                    int stride, int pad, float *y)
{
    int out_h = mv_conv_out_size(height, kernel, stride, pad);
    int out_w = mv_conv_out_size(width, kernel, stride, pad);
    for (int i = 0; i < n_images; i++) {
        const float *image = x + (size_t)i * height * width * channels;
        float *out_image = y + (size_t)i * out_h * out_w * channels;
        for (int oy = 0; oy < out_h; oy++) {
            for (int ox = 0; ox < out_w; ox++) {
                float *out = out_image + ((size_t)oy * out_w + ox) * channels;
                for (int c = 0; c < channels; c++)
                    out[c] = -FLT_MAX;
                for (int ky = 0; ky < kernel; ky++) {
                    int iy = oy * stride - pad + ky;
                    if (iy < 0 || iy >= height)
                        continue;
                    for (int kx = 0; kx < kernel; kx++) {
                        int ix = ox * stride - pad + kx;
                        if (ix < 0 || ix >= width)
                            continue;
                        const float *in = image + ((size_t)iy * width + ix) * channels;
                        for (int c = 0; c < channels; c++)
                            out[c] = in[c] > out[c] ? in[c] : out[c];
                    }
                }
            }
        }
    }
}

void mv_global_avgpool_hwc(const float *x, int n_images, int height, int width, int channels, float *y)
{
    size_t plane = (size_t)height * width;
    for (int i = 0; i < n_images; i++) {
        float *out = y + (size_t)i * channels;
        const float *image = x + (size_t)i * plane * channels;
        /* Sum in double: a 60×60 BioViL map averages 3600 values per channel. */
        for (int c = 0; c < channels; c++) {
            double sum = 0.0;
            for (size_t p = 0; p < plane; p++)
                sum += image[p * channels + c];
            out[c] = (float)(sum / (double)plane);
        }
    }
}
