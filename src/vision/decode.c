/* decode.c — owns format detection, the pixel limit, mv_image allocation and the 16-bit gray
 * windowing; the codecs themselves live in jpeg.c and png.c. */
#include <stdlib.h>
#include <string.h>

#include "vision/vision_internal.h"

static int has_prefix(const unsigned char *b, size_t n, const char *magic, size_t magic_len)
{
    return n >= magic_len && memcmp(b, magic, magic_len) == 0;
}

const char *mv_image_sniff(const void *bytes, size_t n_bytes)
{
    const unsigned char *b = bytes;
    if (has_prefix(b, n_bytes, "\xFF\xD8\xFF", 3))
        return "jpeg";
    if (has_prefix(b, n_bytes, "\x89PNG\r\n\x1a\n", 8))
        return "png";
    if (has_prefix(b, n_bytes, "GIF87a", 6) || has_prefix(b, n_bytes, "GIF89a", 6))
        return "gif";
    if (has_prefix(b, n_bytes, "BM", 2))
        return "bmp";
    if (n_bytes >= 12 && has_prefix(b, n_bytes, "RIFF", 4) && memcmp(b + 8, "WEBP", 4) == 0)
        return "webp";
    if (has_prefix(b, n_bytes, "II*\0", 4) || has_prefix(b, n_bytes, "MM\0*", 4))
        return "tiff";
    if (has_prefix(b, n_bytes, "\0\0\0\x0cjP  \r\n\x87\n", 12) || has_prefix(b, n_bytes, "\xFF\x4F\xFF\x51", 4))
        return "jpeg2000";
    if (n_bytes >= 132 && memcmp(b + 128, "DICM", 4) == 0)
        return "dicom";
    if (n_bytes >= 12 && memcmp(b + 4, "ftyp", 4) == 0)
        return "heif/avif";
    if (has_prefix(b, n_bytes, "\0\0\1\0", 4))
        return "ico";
    return NULL;
}

static int mode_channels(mv_image_mode mode)
{
    switch (mode) {
    case MV_MODE_1: case MV_MODE_L: case MV_MODE_P: return 1;
    case MV_MODE_LA: return 2;
    case MV_MODE_RGB: return 3;
    case MV_MODE_RGBA: case MV_MODE_CMYK: return 4;
    }
    return 0;
}

int mv_image_alloc(mv_image *img, int width, int height, mv_image_mode mode, const char *what,
                   uint64_t max_pixels, mv_error *err)
{
    if (width <= 0 || height <= 0)
        return mv_fail(err, MV_EINPUT, "%s: image has no pixels (%d x %d)", what, width, height);
    uint64_t n_pixels = (uint64_t)width * (uint64_t)height;
    if (n_pixels > max_pixels)
        return mv_fail(err, MV_ETOOBIG, "%s: image is %d x %d = %llu pixels, over the limit of %llu",
                       what, width, height, (unsigned long long)n_pixels, (unsigned long long)max_pixels);
    img->width = width;
    img->height = height;
    img->mode = mode;
    img->channels = mode_channels(mode);
    img->pixels = malloc((size_t)n_pixels * (size_t)img->channels);
    if (!img->pixels)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory for %d x %d pixels", what, width, height);
    return MV_OK;
}

void mv_window_gray16(const unsigned char *samples, size_t n, size_t stride, int sbit,
                      unsigned char *out, size_t out_stride, int *window_min, int *window_max)
{
    /* Both mappings are round-half-up of a ratio of integers, computed exactly in integers:
     * floor(num / den + 1/2) = (2 num + den) / (2 den). */
    int64_t lo, den;
    int shift = 0;
    if (sbit >= 1 && sbit <= 16) {
        shift = 16 - sbit;
        lo = 0;
        den = ((int64_t)1 << sbit) - 1;
    } else {
        int vmin = 65535, vmax = 0;
        for (size_t i = 0; i < n; i++) {
            int v = samples[i * stride] << 8 | samples[i * stride + 1];
            vmin = v < vmin ? v : vmin;
            vmax = v > vmax ? v : vmax;
        }
        *window_min = vmin;
        *window_max = vmax;
        lo = vmin;
        den = vmax - vmin;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t v = (samples[i * stride] << 8 | samples[i * stride + 1]) >> shift;
        out[i * out_stride] = den == 0 ? 0 : (unsigned char)((2 * (v - lo) * 255 + den) / (2 * den));
    }
}

int mv_image_decode(const void *bytes, size_t n_bytes, const char *what, const mv_decode_options *opts,
                    mv_image *img, mv_error *err)
{
    memset(img, 0, sizeof *img);
    uint64_t max_pixels = opts && opts->max_pixels ? opts->max_pixels : MV_IMAGE_DEFAULT_MAX_PIXELS;
    if (!what)
        what = "image";
    if (n_bytes == 0)
        return mv_fail(err, MV_EINPUT, "%s: empty image (0 bytes)", what);
    const char *format = mv_image_sniff(bytes, n_bytes);
    int status;
    if (format && !strcmp(format, "jpeg"))
        status = mv_jpeg_decode(bytes, n_bytes, what, max_pixels, img, err);
    else if (format && !strcmp(format, "png"))
        status = mv_png_decode(bytes, n_bytes, what, max_pixels, img, err);
    else if (format)
        return mv_fail(err, MV_EUNSUPPORTED, "%s: %s images are not supported (JPEG and PNG are)", what,
                       format);
    else
        return mv_fail(err, MV_EUNSUPPORTED,
                       "%s: unknown image format (first bytes %02x %02x %02x %02x; JPEG and PNG are supported)",
                       what, ((const unsigned char *)bytes)[0], n_bytes > 1 ? ((const unsigned char *)bytes)[1] : 0,
                       n_bytes > 2 ? ((const unsigned char *)bytes)[2] : 0,
                       n_bytes > 3 ? ((const unsigned char *)bytes)[3] : 0);
    if (status != MV_OK) {
        mv_image_free(img);
        return status;
    }
    img->format = format;
    return MV_OK;
}

void mv_image_free(mv_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    img->pixels = NULL;
}
