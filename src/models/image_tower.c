/* image_tower.c — owns image towers (src/models/image_tower.h): preprocessing into the batch buffer
 * (including hi-ml's min–max stretch, which src/vision does not do), the encoder run, the heads
 * that map encoder features into the joint space, and ResNet sizes read off tensor shapes. */
#include "models/image_tower.h"
#include "medvlp/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *filter_name(mv_filter filter)
{
    return filter == MV_FILTER_BICUBIC ? "bicubic" : filter == MV_FILTER_BILINEAR ? "bilinear" : "nearest";
}

void mv_image_tower_set_input_size(mv_image_tower *t, int height, int width)
{
    t->height = height;
    t->width = width;
    int fit = MV_IMAGE_BATCH_PIXELS / (height * width);
    t->max_batch = fit < 1 ? 1 : fit > MV_IMAGE_BATCH ? MV_IMAGE_BATCH : fit;
}

int mv_image_tower_set_transform(mv_image_tower *t, const char *what, mv_error *err)
{
    const mv_transform *tf = &t->transform;
    int fixed_width = tf->crop_width > 0 || tf->resize == MV_RESIZE_EXACT;
    int fixed_height = tf->crop_height > 0 || tf->resize == MV_RESIZE_EXACT;
    if (!fixed_width || !fixed_height)
        return mv_fail(err, MV_EFORMAT, "%s: the image transform must fix the input size (a crop or an exact "
                       "resize)", what);
    int width, height;
    mv_transform_output_size(tf, 1, 1, &width, &height);
    if (width <= 0 || height <= 0 || width > 4096 || height > 4096)
        return mv_fail(err, MV_EFORMAT, "%s: image input size %d x %d is outside 1..4096", what, width, height);
    mv_image_tower_set_input_size(t, height, width);
    char resize[64] = "no resize", crop[48] = "", norm[128] = "v/255";
    if (tf->crop_width > 0)
        snprintf(crop, sizeof crop, ", center crop %dx%d", t->width, t->height);
    if (tf->resize == MV_RESIZE_SHORTEST)
        snprintf(resize, sizeof resize, "shortest side to %d (%s)", tf->size, filter_name(tf->filter));
    else if (tf->resize == MV_RESIZE_EXACT)
        snprintf(resize, sizeof resize, "resize to %dx%d (%s)", tf->resize_width, tf->resize_height,
                 filter_name(tf->filter));
    if (tf->normalize)
        snprintf(norm, sizeof norm, "mean [%.8g, %.8g, %.8g] std [%.8g, %.8g, %.8g]", tf->mean[0], tf->mean[1],
                 tf->mean[2], tf->std[0], tf->std[1], tf->std[2]);
    snprintf(t->description, sizeof t->description, "%s%s%s%s%s, %s, %s",
             t->minmax_stretch ? "min-max stretch to 0..255, " : "", t->rgb_first ? "RGB, " : "",
             tf->color == MV_COLOR_GRAY ? "gray (L), " : "", resize, crop,
             tf->color == MV_COLOR_GRAY ? "L replicated to 3 channels" : "RGB", norm);
    return MV_OK;
}

int mv_image_tower_load_head(mv_image_tower *t, mv_weights *w, const char *in_name, const char *bn_name,
                             const char *out_name, mv_error *err)
{
    const int64_t dim = t->embed_dim, mid = t->head_hidden;
    int64_t features = 0;
    if (t->encoder == MV_ENCODER_RESNET)
        features = mv_resnet_out_channels(t->resnet, MV_RESNET_STAGES - 1);
    else if (t->encoder == MV_ENCODER_VIT)
        features = t->vit->config.proj_dim > 0 ? t->vit->config.proj_dim : t->vit->config.width;
    int rc = MV_OK;
    switch (t->head) {
    case MV_IMAGE_HEAD_NONE:
        if (features != dim)
            return mv_fail(err, MV_EFORMAT, "%s: image features are %lld wide, not the embedding dim %lld",
                           mv_weights_path(w), (long long)features, (long long)dim);
        break;
    case MV_IMAGE_HEAD_PATCH_MLP: {
        /* 1×1 conv (no bias) + eval BatchNorm folded into one affine map per patch. */
        t->owned = malloc((size_t)(mid * features + mid) * sizeof(float));
        if (!t->owned)
            return mv_fail(err, MV_ENOMEM, "out of memory loading %s", in_name);
        if ((rc = mv_conv2d_fold_bn(w, "", in_name, bn_name, (int)features, (int)mid, 1, 1e-5f, t->owned,
                                    t->owned + mid * features, err)) ||
            (rc = mv_weights_take(w, &t->head_out_w, err, MV_SHAPE(dim, mid, 1, 1), "%s.weight", out_name)) ||
            (rc = mv_weights_take(w, &t->head_out_b, err, MV_SHAPE(dim), "%s.bias", out_name)))
            return rc;
        t->head_in_w = t->owned;
        t->head_in_b = t->owned + mid * features;
        break;
    }
    case MV_IMAGE_HEAD_MLP_RELU:
        if ((rc = mv_weights_take(w, &t->head_in_w, err, MV_SHAPE(mid, features), "%s.weight", in_name)) ||
            (rc = mv_weights_take(w, &t->head_in_b, err, MV_SHAPE(mid), "%s.bias", in_name)) ||
            (rc = mv_weights_take(w, &t->head_out_w, err, MV_SHAPE(dim, mid), "%s.weight", out_name)))
            return rc;
        rc = mv_weights_take(w, &t->head_out_b, err, MV_SHAPE(dim), "%s.bias", out_name);
        break;
    case MV_IMAGE_HEAD_LINEAR:
        if ((rc = mv_weights_take(w, &t->head_in_w, err, MV_SHAPE(dim, features), "%s.weight", in_name)))
            return rc;
        if (mv_weights_has(w, "%s.bias", in_name))
            rc = mv_weights_take(w, &t->head_in_b, err, MV_SHAPE(dim), "%s.bias", in_name);
        break;
    }
    return rc;
}

static const mv_tensor_entry *find_conv(const mv_weights *w, const mv_resnet_names *n, const char *module)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s.weight", n->prefix, module);
    const mv_tensor_entry *e = mv_weights_find(w, name);
    return e && e->ndim == 4 && e->f32 ? e : NULL;
}

int mv_resnet_config_infer(const mv_weights *w, const mv_resnet_names *names, mv_resnet_config *out,
                           mv_error *err)
{
    *out = mv_resnet50_config();
    const mv_tensor_entry *stem = find_conv(w, names, names->stem_conv);
    if (!stem || stem->shape[2] != 7 || stem->shape[3] != 7)
        return mv_fail(err, MV_EFORMAT, "%s: no ResNet stem %s%s.weight [C, 3, 7, 7]", mv_weights_path(w),
                       names->prefix, names->stem_conv);
    out->stem_channels = (int)stem->shape[0];
    out->in_channels = (int)stem->shape[1];
    for (int s = 0; s < MV_RESNET_STAGES; s++) {
        char module[128];
        snprintf(module, sizeof module, "%s.0.conv1", names->stages[s]);
        const mv_tensor_entry *first = find_conv(w, names, module);
        if (!first)
            return mv_fail(err, MV_EFORMAT, "%s: no ResNet block %s%s.weight", mv_weights_path(w), names->prefix,
                           module);
        out->planes[s] = (int)first->shape[0];
        out->blocks[s] = 0;
        while (mv_weights_has(w, "%s%s.%d.conv1.weight", names->prefix, names->stages[s], out->blocks[s]))
            out->blocks[s]++;
    }
    return MV_OK;
}

void mv_image_tower_free(mv_image_tower *t)
{
    mv_vit_free(t->vit);
    mv_resnet_free(t->resnet);
    mv_vit_state_free(t->vit_state);
    mv_resnet_state_free(t->resnet_state);
    free(t->owned);
    free(t->pixels);
    free(t->head_mid);
    memset(t, 0, sizeof *t);
}

/* Rows the head reads per image: the layer4 patches for PATCH_MLP, else one pooled vector. */
static int head_rows(const mv_image_tower *t)
{
    if (t->head != MV_IMAGE_HEAD_PATCH_MLP)
        return 1;
    return t->resnet_state->layer4_h * t->resnet_state->layer4_w;
}

int mv_image_tower_reserve(mv_image_tower *t, int n_images, mv_error *err)
{
    if (n_images <= 0 || n_images > t->max_batch)
        return mv_fail(err, MV_EINTERNAL, "image batch of %d (1..%d)", n_images, t->max_batch);
    if (n_images <= t->cap_images)
        return MV_OK;
    mv_vit_state_free(t->vit_state);
    mv_resnet_state_free(t->resnet_state);
    free(t->pixels);
    free(t->head_mid);
    t->vit_state = NULL;
    t->resnet_state = NULL;
    t->head_mid = NULL;
    t->cap_images = 0;
    t->pixels = malloc((size_t)n_images * 3 * t->height * t->width * sizeof(float));
    if (!t->pixels)
        return mv_fail(err, MV_ENOMEM, "out of memory for a batch of %d images", n_images);
    int rc = t->encoder == MV_ENCODER_VIT
                 ? mv_vit_state_new(t->vit, n_images, &t->vit_state, err)
                 : mv_resnet_state_new(t->resnet, n_images, t->height, t->width, &t->resnet_state, err);
    if (rc)
        return rc;
    /* Two-layer heads: the hidden rows, then (PATCH_MLP) the projected patches before their mean. */
    size_t rows = (size_t)n_images * head_rows(t);
    size_t mid = (size_t)t->head_hidden + (t->head == MV_IMAGE_HEAD_PATCH_MLP ? (size_t)t->embed_dim : 0);
    if (mid && !(t->head_mid = malloc(rows * mid * sizeof(float))))
        return mv_fail(err, MV_ENOMEM, "out of memory for a batch of %d images", n_images);
    t->cap_images = n_images;
    return MV_OK;
}

/* hi-ml load_image: the decoded samples (every channel, alpha included, as skimage returns them) as
 * float64, minus their minimum, divided by the new maximum, times 255, truncated to uint8. A constant
 * image becomes 0 (NumPy's 0/0 is NaN; its uint8 cast is platform-defined). Palette images are
 * expanded to RGB first, as skimage does. */
static int stretch_minmax(const mv_image *img, mv_image *out, mv_error *err)
{
    *out = *img;
    out->pixels = NULL;
    if (img->mode == MV_MODE_CMYK)
        return mv_fail(err, MV_EUNSUPPORTED, "CMYK images are not supported by this model's preprocessing");
    size_t n_pixels = (size_t)img->width * (size_t)img->height;
    int channels = img->mode == MV_MODE_P ? 3 : img->channels;
    unsigned char *pixels = malloc(n_pixels * (size_t)channels);
    if (!pixels)
        return mv_fail(err, MV_ENOMEM, "out of memory preprocessing a %d x %d image", img->width, img->height);
    if (img->mode == MV_MODE_P) {
        for (size_t i = 0; i < n_pixels; i++)
            memcpy(pixels + 3 * i, img->palette + 3 * img->pixels[i], 3);
        out->mode = MV_MODE_RGB;
        out->channels = 3;
    } else {
        memcpy(pixels, img->pixels, n_pixels * (size_t)channels);
    }
    size_t n = n_pixels * (size_t)channels;
    unsigned char lo = 255, hi = 0;
    for (size_t i = 0; i < n; i++) {
        lo = pixels[i] < lo ? pixels[i] : lo;
        hi = pixels[i] > hi ? pixels[i] : hi;
    }
    for (size_t i = 0; i < n; i++) {
        double v = hi > lo ? (double)(pixels[i] - lo) / (double)(hi - lo) * 255.0 : 0.0;
        pixels[i] = (unsigned char)v;
    }
    if (out->mode == MV_MODE_1)
        out->mode = MV_MODE_L; /* 0/255 stays 0/255; the array is plain uint8 from here on */
    out->pixels = pixels;
    return MV_OK;
}

/* PIL's convert("RGB") of the decoded image at its own size: mv_preprocess with no resize or crop
 * hands back the 8-bit RGB it converted to. */
static int convert_rgb(const mv_image *img, mv_image *out, mv_error *err)
{
    *out = *img;
    size_t n_pixels = (size_t)img->width * (size_t)img->height;
    out->pixels = malloc(n_pixels * 3);
    float *unused = malloc(n_pixels * 3 * sizeof *unused);
    mv_transform identity = {.resize = MV_RESIZE_NONE, .color = MV_COLOR_RGB, .normalize = 0};
    int rc = out->pixels && unused ? mv_preprocess(img, &identity, unused, out->pixels, err)
                                   : mv_fail(err, MV_ENOMEM, "out of memory converting a %d x %d image to RGB",
                                             img->width, img->height);
    free(unused);
    out->mode = MV_MODE_RGB;
    out->channels = 3;
    return rc;
}

int mv_image_tower_prepare(mv_image_tower *t, const mv_image *img, int slot, mv_error *err)
{
    float *chw = t->pixels + (size_t)slot * 3 * t->height * t->width;
    if (t->prepare_custom)
        return t->prepare_custom(t, img, chw, err);
    int out_w, out_h;
    mv_transform_output_size(&t->transform, img->width, img->height, &out_w, &out_h);
    if (out_w != t->width || out_h != t->height)
        return mv_fail(err, MV_EINTERNAL, "transform gives %d x %d, the encoder takes %d x %d", out_w, out_h,
                       t->width, t->height);
    if (!t->minmax_stretch && !t->rgb_first)
        return mv_preprocess(img, &t->transform, chw, NULL, err);
    mv_image converted;
    int rc = t->minmax_stretch ? stretch_minmax(img, &converted, err) : convert_rgb(img, &converted, err);
    if (!rc)
        rc = mv_preprocess(&converted, &t->transform, chw, NULL, err);
    free(converted.pixels);
    return rc;
}

/* BioViL: every layer4 patch through 1×1 conv+BN → ReLU → 1×1 conv, then the mean over patches. */
static void patch_mlp(const mv_image_tower *t, int n_images, const float *patches, int features, float *out)
{
    const int n_patches = head_rows(t), mid = t->head_hidden, dim = t->embed_dim;
    const int rows = n_images * n_patches;
    float *hidden = t->head_mid, *projected = t->head_mid + (size_t)rows * mid;
    mv_linear(patches, rows, features, t->head_in_w, t->head_in_b, mid, hidden);
    mv_relu(hidden, (size_t)rows * mid);
    mv_linear(hidden, rows, mid, t->head_out_w, t->head_out_b, dim, projected);
    for (int i = 0; i < n_images; i++) {
        float *mean = out + (size_t)i * dim;
        memset(mean, 0, (size_t)dim * sizeof *mean);
        for (int p = 0; p < n_patches; p++)
            mv_add(mean, projected + ((size_t)i * n_patches + p) * dim, (size_t)dim);
        mv_scale(mean, 1.0f / (float)n_patches, (size_t)dim);
    }
}

int mv_image_tower_forward(mv_image_tower *t, int n_images, int normalize, float *out, mv_error *err)
{
    if (n_images <= 0 || n_images > t->cap_images)
        return mv_fail(err, MV_EINTERNAL, "image batch of %d, room for %d", n_images, t->cap_images);
    /* Encoder. */
    const float *features;
    int width;
    int rc;
    if (t->encoder == MV_ENCODER_VIT) {
        if ((rc = mv_vit_forward(t->vit, t->vit_state, t->pixels, n_images, err)))
            return rc;
        features = t->vit->head_w ? t->vit_state->embedding : t->vit_state->pooled;
        width = t->vit->head_w ? t->vit->config.proj_dim : t->vit->config.width;
    } else {
        if ((rc = mv_resnet_forward(t->resnet, t->resnet_state, t->pixels, n_images, err)))
            return rc;
        width = mv_resnet_out_channels(t->resnet, MV_RESNET_STAGES - 1);
        features = t->head == MV_IMAGE_HEAD_PATCH_MLP ? t->resnet_state->layer4 : t->resnet_state->pooled;
    }
    /* Head into the joint space. */
    const int dim = t->embed_dim;
    switch (t->head) {
    case MV_IMAGE_HEAD_NONE:
        memcpy(out, features, (size_t)n_images * dim * sizeof(float));
        break;
    case MV_IMAGE_HEAD_PATCH_MLP:
        patch_mlp(t, n_images, features, width, out);
        break;
    case MV_IMAGE_HEAD_MLP_RELU:
        mv_linear(features, n_images, width, t->head_in_w, t->head_in_b, t->head_hidden, t->head_mid);
        mv_relu(t->head_mid, (size_t)n_images * t->head_hidden);
        mv_linear(t->head_mid, n_images, t->head_hidden, t->head_out_w, t->head_out_b, dim, out);
        break;
    case MV_IMAGE_HEAD_LINEAR:
        mv_linear(features, n_images, width, t->head_in_w, t->head_in_b, dim, out);
        break;
    }
    if (normalize)
        mv_l2_normalize_rows(out, n_images, dim);
    return MV_OK;
}
