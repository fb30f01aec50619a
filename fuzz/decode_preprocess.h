/* decode_preprocess.h — the body shared by fuzz_jpeg.c and fuzz_png.c: decode an image the way a
 * request does, then run every preprocessing path the model families use on it (open_clip bicubic
 * RGB, BioViL gray bilinear with a crop larger than some inputs, exact nearest resize, PIL gray
 * conversion). The pixel limit is small so a lying header cannot make one input take seconds. */
#ifndef MEDVLP_FUZZ_DECODE_PREPROCESS_H
#define MEDVLP_FUZZ_DECODE_PREPROCESS_H

#include "medvlp/image.h"

#include <stdint.h>
#include <stdlib.h>

static void fuzz_preprocess(const mv_image *img, const mv_transform *t)
{
    int w, h;
    mv_transform_output_size(t, img->width, img->height, &w, &h);
    float *out = malloc(sizeof *out * 3 * (size_t)w * (size_t)h);
    unsigned char *rgb8 = malloc(3 * (size_t)w * (size_t)h);
    mv_error err = {0};
    if (out && rgb8)
        mv_preprocess(img, t, out, rgb8, &err);
    free(out);
    free(rgb8);
}

static int fuzz_decode_preprocess(const uint8_t *data, size_t size)
{
    mv_decode_options opts = {.max_pixels = 1 << 18};
    mv_image img;
    mv_error err = {0};
    if (mv_image_decode(data, size, "fuzz input", &opts, &img, &err))
        return 0;
    if (img.width < 1 || img.height < 1 || (uint64_t)img.width * (uint64_t)img.height > opts.max_pixels)
        abort();
    mv_transform t;
    mv_transform_openclip(&t, 24, mv_openai_mean, mv_openai_std);
    fuzz_preprocess(&img, &t);
    mv_transform_biovil(&t, 20, 28);
    fuzz_preprocess(&img, &t);
    t = (mv_transform){.resize = MV_RESIZE_EXACT, .resize_width = 7, .resize_height = 5,
                       .filter = MV_FILTER_NEAREST, .color = MV_COLOR_RGB, .std = {1, 1, 1}};
    fuzz_preprocess(&img, &t);
    unsigned char *gray = malloc((size_t)img.width * (size_t)img.height);
    if (gray)
        mv_image_to_gray(&img, gray, &err);
    free(gray);
    mv_image_free(&img);
    return 0;
}

#endif
