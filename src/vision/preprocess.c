/* preprocess.c — owns the image -> model-input transform: PIL's mode handling around the resize
 * (NEAREST for "P"/"1", premultiplied alpha for "RGBA"/"LA"), torchvision's Resize size rule and
 * CenterCrop (with zero padding), PIL's colour conversions (Convert.c arithmetic), ToTensor and
 * Normalize in float32 as torch computes them. */
#include <stdlib.h>
#include <string.h>

#include "vision/vision_internal.h"

const float mv_openai_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float mv_openai_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

void mv_transform_openclip(mv_transform *t, int size, const float mean[3], const float std[3])
{
    memset(t, 0, sizeof *t);
    t->resize = MV_RESIZE_SHORTEST;
    t->size = size;
    t->filter = MV_FILTER_BICUBIC;
    t->crop_width = t->crop_height = size;
    t->color = MV_COLOR_RGB;
    t->normalize = 1;
    memcpy(t->mean, mean ? mean : mv_openai_mean, sizeof t->mean);
    memcpy(t->std, std ? std : mv_openai_std, sizeof t->std);
}

void mv_transform_biovil(mv_transform *t, int resize, int crop)
{
    memset(t, 0, sizeof *t);
    t->resize = MV_RESIZE_SHORTEST;
    t->size = resize;
    t->filter = MV_FILTER_BILINEAR; /* torchvision Resize's default */
    t->crop_width = t->crop_height = crop;
    t->color = MV_COLOR_GRAY;
    t->normalize = 0;
}

static void resized_size(const mv_transform *t, int width, int height, int *rw, int *rh)
{
    *rw = width;
    *rh = height;
    if (t->resize == MV_RESIZE_EXACT) {
        *rw = t->resize_width;
        *rh = t->resize_height;
    } else if (t->resize == MV_RESIZE_SHORTEST) {
        /* torchvision: new_long = int(size * long / short), a float division truncated. */
        int shortest = width <= height ? width : height, longest = width <= height ? height : width;
        int new_long = (int)((double)((long long)t->size * longest) / shortest);
        *rw = width <= height ? t->size : new_long;
        *rh = width <= height ? new_long : t->size;
    }
}

void mv_transform_output_size(const mv_transform *t, int width, int height, int *out_width,
                              int *out_height)
{
    resized_size(t, width, height, out_width, out_height);
    if (t->crop_width > 0)
        *out_width = t->crop_width;
    if (t->crop_height > 0)
        *out_height = t->crop_height;
}

/* One axis of torchvision's center_crop: which resized pixels [from, from+count) land where in
 * the output (at), the rest of the output being zero padding. */
struct crop_span {
    int from, count, at;
};

static struct crop_span center_crop_span(int size, int crop)
{
    struct crop_span s;
    if (crop <= 0 || crop == size)
        return (struct crop_span){0, size, 0};
    if (crop > size) /* pad (crop-size)//2 before, the rest after */
        return (struct crop_span){0, size, (crop - size) / 2};
    /* int(round((size - crop) / 2.0)), Python rounding half to even */
    int excess = size - crop, offset = excess / 2;
    if (excess % 2 && offset % 2)
        offset++;
    s.from = offset;
    s.count = crop;
    s.at = 0;
    return s;
}

#define MULDIV255(a, b) ((((a) * (b) + 128) + (((a) * (b) + 128) >> 8)) >> 8)
#define L24(r, g, b) ((19595 * (r) + 38470 * (g) + 7471 * (b) + 0x8000) >> 16)

static unsigned char clip8(int v)
{
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* PIL convert("RGB") of one pixel of mode (palette for "P"). */
static void pixel_to_rgb(mv_image_mode mode, const unsigned char *p, const unsigned char *palette,
                         unsigned char rgb[3])
{
    switch (mode) {
    case MV_MODE_1: case MV_MODE_L: case MV_MODE_LA:
        rgb[0] = rgb[1] = rgb[2] = p[0];
        break;
    case MV_MODE_P:
        memcpy(rgb, palette + 3 * p[0], 3);
        break;
    case MV_MODE_RGB: case MV_MODE_RGBA:
        memcpy(rgb, p, 3);
        break;
    case MV_MODE_CMYK: {
        int nk = 255 - p[3];
        for (int c = 0; c < 3; c++)
            rgb[c] = clip8(nk - MULDIV255(p[c], nk));
        break;
    }
    }
}

/* PIL convert("L"): gray modes keep their gray, colour goes through RGB and the ITU-R 601 luma. */
int mv_image_to_gray(const mv_image *img, unsigned char *out, mv_error *err)
{
    if (!img->pixels || img->width <= 0 || img->height <= 0)
        return mv_fail(err, MV_EINPUT, "gray conversion: empty image");
    size_t n = (size_t)img->width * (size_t)img->height;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = img->pixels + i * (size_t)img->channels;
        unsigned char rgb[3] = {0, 0, 0};   /* every mode sets it; the compiler cannot see the enum is closed */
        pixel_to_rgb(img->mode, p, img->palette, rgb);
        out[i] = img->mode == MV_MODE_1 || img->mode == MV_MODE_L || img->mode == MV_MODE_LA
                     ? p[0] : (unsigned char)L24(rgb[0], rgb[1], rgb[2]);
    }
    return MV_OK;
}

static int image_to_gray(const mv_image *img, unsigned char **gray, mv_error *err)
{
    *gray = malloc((size_t)img->width * (size_t)img->height);
    if (!*gray)
        return mv_fail(err, MV_ENOMEM, "out of memory converting the image to gray");
    return mv_image_to_gray(img, *gray, err);
}

/* RGBA -> RGBa / LA -> La (Convert.c rgbA2rgba, lA2la). */
static void premultiply(unsigned char *pixels, size_t n, int channels)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = pixels + i * (size_t)channels;
        int alpha = p[channels - 1];
        for (int c = 0; c < channels - 1; c++)
            p[c] = (unsigned char)MULDIV255(p[c], alpha);
    }
}

/* RGBa -> RGBA / La -> LA (Convert.c rgba2rgbA, la2lA): integer division, alpha 0 and 255 kept. */
static void unpremultiply(unsigned char *pixels, size_t n, int channels)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = pixels + i * (size_t)channels;
        int alpha = p[channels - 1];
        if (alpha == 0 || alpha == 255)
            continue;
        for (int c = 0; c < channels - 1; c++)
            p[c] = clip8(255 * p[c] / alpha);
    }
}

int mv_preprocess(const mv_image *img, const mv_transform *t, float *out, unsigned char *rgb8,
                  mv_error *err)
{
    if (!img->pixels || img->width <= 0 || img->height <= 0)
        return mv_fail(err, MV_EINPUT, "preprocess: empty image");
    if ((t->resize == MV_RESIZE_SHORTEST && t->size <= 0) ||
        (t->resize == MV_RESIZE_EXACT && (t->resize_width <= 0 || t->resize_height <= 0)) ||
        t->crop_width < 0 || t->crop_height < 0)
        return mv_fail(err, MV_EINPUT, "preprocess: bad transform sizes");
    if (t->normalize)
        for (int c = 0; c < 3; c++)
            if (!(t->std[c] != 0.0f))
                return mv_fail(err, MV_EINPUT, "preprocess: std[%d] is zero", c);

    mv_image_mode mode = img->mode;
    int channels = img->channels;
    const unsigned char *src = img->pixels;
    unsigned char *gray = NULL, *premultiplied = NULL, *window = NULL, *canvas = NULL;
    int status = MV_OK;

    if (t->color == MV_COLOR_GRAY && mode != MV_MODE_L) {
        status = image_to_gray(img, &gray, err);
        if (status != MV_OK)
            return status;
        src = gray;
        mode = MV_MODE_L;
        channels = 1;
    }

    int rw, rh, ow, oh;
    resized_size(t, img->width, img->height, &rw, &rh);
    mv_transform_output_size(t, img->width, img->height, &ow, &oh);
    if (rw <= 0 || rh <= 0 || (uint64_t)ow * (uint64_t)oh > ((uint64_t)1 << 28)) {
        status = mv_fail(err, MV_EINPUT, "preprocess: %d x %d image gives a %d x %d output", img->width,
                         img->height, ow, oh);
        goto done;
    }
    struct crop_span sx = center_crop_span(rw, t->crop_width), sy = center_crop_span(rh, t->crop_height);
    size_t n_out = (size_t)ow * (size_t)oh;
    canvas = calloc(n_out, (size_t)channels);
    window = malloc((size_t)sx.count * (size_t)sy.count * (size_t)channels);
    if (!canvas || !window) {
        status = mv_fail(err, MV_ENOMEM, "preprocess: out of memory");
        goto done;
    }

    /* PIL's Image.resize: same size is a copy; "1"/"P" always NEAREST; "LA"/"RGBA" premultiplied. */
    int alpha_premultiplied = 0;
    if (rw == img->width && rh == img->height) {
        for (int y = 0; y < sy.count; y++)
            memcpy(window + (size_t)y * sx.count * channels,
                   src + (((size_t)(sy.from + y) * img->width) + sx.from) * channels, (size_t)sx.count * channels);
    } else {
        mv_filter filter = mode == MV_MODE_P || mode == MV_MODE_1 ? MV_FILTER_NEAREST : t->filter;
        if ((mode == MV_MODE_LA || mode == MV_MODE_RGBA) && filter != MV_FILTER_NEAREST) {
            size_t n_in = (size_t)img->width * (size_t)img->height;
            premultiplied = malloc(n_in * (size_t)channels);
            if (!premultiplied) {
                status = mv_fail(err, MV_ENOMEM, "preprocess: out of memory");
                goto done;
            }
            memcpy(premultiplied, src, n_in * (size_t)channels);
            premultiply(premultiplied, n_in, channels);
            src = premultiplied;
            alpha_premultiplied = 1;
        }
        status = mv_resample(src, img->width, img->height, channels, rw, rh, filter, sx.from, sy.from,
                             sx.count, sy.count, window, err);
        if (status != MV_OK)
            goto done;
    }
    for (int y = 0; y < sy.count; y++)
        memcpy(canvas + (((size_t)(sy.at + y) * ow) + sx.at) * channels,
               window + (size_t)y * sx.count * channels, (size_t)sx.count * channels);
    if (alpha_premultiplied)
        unpremultiply(canvas, n_out, channels);

    /* ToTensor then Normalize, in float32 like torch: (v / 255 - mean) / std, tabulated per value. */
    float table[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            table[c][v] = t->normalize ? ((float)v / 255.0f - t->mean[c]) / t->std[c] : (float)v / 255.0f;
    for (size_t i = 0; i < n_out; i++) {
        unsigned char rgb[3] = {0, 0, 0};   /* every mode sets it; the compiler cannot see the enum is closed */
        pixel_to_rgb(mode, canvas + i * (size_t)channels, img->palette, rgb);
        for (int c = 0; c < 3; c++) {
            out[(size_t)c * n_out + i] = table[c][rgb[c]];
            if (rgb8)
                rgb8[i * 3 + (size_t)c] = rgb[c];
        }
    }

done:
    free(gray);
    free(premultiplied);
    free(window);
    free(canvas);
    return status;
}
