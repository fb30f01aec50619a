/* vision_internal.h — what the vision module's files share and nobody else needs. */
#ifndef MEDVLP_VISION_INTERNAL_H
#define MEDVLP_VISION_INTERNAL_H

#include <stdint.h>
#include "medvlp/image.h"

/* Codec entry points; each checks the pixel limit from the header before allocating pixels. */
int mv_jpeg_decode(const unsigned char *bytes, size_t n_bytes, const char *what, uint64_t max_pixels,
                   mv_image *img, mv_error *err);
int mv_png_decode(const unsigned char *bytes, size_t n_bytes, const char *what, uint64_t max_pixels,
                  mv_image *img, mv_error *err);

/* Refuses width x height over max_pixels (MV_ETOOBIG) or degenerate; then allocates img->pixels
 * for mode and fills the geometry fields. */
int mv_image_alloc(mv_image *img, int width, int height, mv_image_mode mode, const char *what,
                   uint64_t max_pixels, mv_error *err);

/* The documented 16-bit gray -> 8-bit mapping (see image.h). samples: n big-endian 16-bit gray
 * values spaced stride bytes apart; out: n bytes spaced out_stride apart. sbit 0 = min..max. */
void mv_window_gray16(const unsigned char *samples, size_t n, size_t stride, int sbit,
                      unsigned char *out, size_t out_stride, int *window_min, int *window_max);

/* Pillow's resampling of an 8-bit image with channels interleaved bytes per pixel, computing only
 * the window [x0, x0+w) x [y0, y0+h) of the out_width x out_height result. out is w*h*channels. */
int mv_resample(const unsigned char *in, int in_width, int in_height, int channels, int out_width,
                int out_height, mv_filter filter, int x0, int y0, int w, int h, unsigned char *out,
                mv_error *err);

#endif
