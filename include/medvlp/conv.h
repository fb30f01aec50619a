/* conv.h — 2-D convolution as GEMM for the image encoders, and the layout moves around it.
 *
 * Activations are NHWC: one image is a matrix [height*width, channels], a batch is those matrices
 * stacked. In that layout a 1×1 convolution is exactly mv_linear over the rows (no unfolding, and a
 * whole batch is one GEMM), a K×K convolution is a GEMM over im2col rows whose columns are ordered
 * (kh, kw, channel), and every bias/ReLU/residual is a plain row operation. Convolution weights are
 * therefore held as [out_channels, kernel, kernel, in_channels] (PyTorch OIHW repacked once at load).
 * Images enter as CHW (the preprocessor's output) and are transposed once. */
#ifndef MEDVLP_CONV_H
#define MEDVLP_CONV_H

#include <stddef.h>
#include "medvlp/error.h"
#include "medvlp/tensor.h"
#include "medvlp/weights.h"

typedef struct mv_conv2d {
    int in_channels, out_channels;
    int kernel, stride, pad;
    const float *weight;   /* [out_channels, kernel*kernel*in_channels], columns (kh, kw, channel); NULL
                            * when packed into a format that never reads it again (int8, fp16) */
    const float *bias;     /* [out_channels] or NULL */
    mv_packed_weight packed; /* weight packed (mv_packed_weight_init) by whoever builds the conv */
} mv_conv2d;

/* Folds an eval-mode BatchNorm into the convolution before it (ResNet stages, BioViL's projector):
 * takes `conv_name`.weight [out, in, kernel, kernel] and `bn_name`.{weight, bias, running_mean,
 * running_var} [out] (printf'd with prefix: "%s%s.weight"), writes w' = w·γ/√(var+eps) repacked to
 * [out, kernel·kernel·in] into `weight` and b' = β − mean·γ/√(var+eps) into `bias` (caller-owned). */
int mv_conv2d_fold_bn(mv_weights *weights, const char *prefix, const char *conv_name, const char *bn_name,
                      int in_channels, int out_channels, int kernel, float eps, float *weight, float *bias,
                      mv_error *err);

/* floor((in + 2·pad − kernel) / stride) + 1, as torch sizes convolution and pooling outputs. */
int mv_conv_out_size(int in_size, int kernel, int stride, int pad);

/* y[n_images·out_h·out_w, out_channels] = conv(x) + bias (+ residual, laid out like y; it may be y)
 * (then ReLU when relu), x NHWC. Runs on the packed kernel with the residual and ReLU applied to
 * each tile at the store: a stride-1 1×1 convolution is one GEMM over the batch's rows read in place,
 * any other gathers its im2col rows block by block (mv_packed_conv), never the whole matrix. */
int mv_conv2d_forward(const mv_conv2d *conv, const float *x, int n_images, int in_h, int in_w,
                      const float *residual, int relu, float *y, mv_error *err);

/* Non-overlapping patch_size² patches of one CHW image as rows [n_patches, channels·patch²] in
 * (channel, row, column) order — the order of a flattened OIHW patch-embedding weight, so the
 * patch embedding is x·Wᵀ with the checkpoint's weight as stored. Patches are row-major over the
 * grid; a border that does not fill a patch is dropped, as a stride-patch convolution does. */
void mv_patchify_chw(const float *image, int channels, int height, int width, int patch_size,
                     float *patches);

/* hwc[height·width, channels] from chw[channels, height·width], and back. */
void mv_chw_to_hwc(const float *chw, int channels, int height, int width, float *hwc);
void mv_hwc_to_chw(const float *hwc, int channels, int height, int width, float *chw);

/* Max pooling of n_images NHWC images; padded positions never win (torch pads with −inf). */
void mv_maxpool_hwc(const float *x, int n_images, int height, int width, int channels, int kernel,
                    int stride, int pad, float *y);

/* y[n_images, channels] = mean over the height·width rows of each NHWC image. */
void mv_global_avgpool_hwc(const float *x, int n_images, int height, int width, int channels, float *y);

#endif
