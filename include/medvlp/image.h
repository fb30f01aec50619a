/* image.h — decoded images and the preprocessing that turns them into model input.
 *
 * Decoding (JPEG via libjpeg-turbo, PNG via libpng) works on memory buffers and yields an mv_image
 * in one of PIL's modes, because the mode decides how PIL resamples (palette and bilevel images
 * with NEAREST, alpha images premultiplied, CMYK as four channels) and medvlp reproduces PIL.
 * Preprocessing is a described transform (mv_transform): resize, center crop, colour conversion,
 * scaling to [0,1] and normalisation, bit-exact with PIL + torchvision for 8-bit images.
 *
 * One deliberate deviation from PIL: 16-bit grayscale PNGs (X-rays) are windowed to 8 bits by the
 * PNG's sBIT if present, else by the image's own min..max (PIL would saturate every value >= 256):
 *   sBIT = s:  v' = v >> (16 - s);  out = floor(v' * 255 / (2^s - 1) + 1/2)
 *   min..max:  out = floor((v - min) * 255 / (max - min) + 1/2), a constant image gives 0.
 * 16-bit colour PNGs follow PIL (the most significant byte of each sample).
 *
 * Everything here is reentrant: no globals, scratch memory is allocated per call. */
#ifndef MEDVLP_IMAGE_H
#define MEDVLP_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "medvlp/error.h"

/* Images larger than this many pixels are refused (MV_ETOOBIG, HTTP 413) from their header,
 * before any pixel memory is allocated. 64 Mi pixels. */
#define MV_IMAGE_DEFAULT_MAX_PIXELS ((uint64_t)64 << 20)

typedef enum mv_image_mode {
    MV_MODE_1,    /* bilevel, one byte per pixel holding 0 or 255 (PIL "1") */
    MV_MODE_L,    /* 8-bit gray */
    MV_MODE_LA,   /* gray + straight alpha, 2 bytes per pixel */
    MV_MODE_P,    /* palette indices, 1 byte per pixel, colours in mv_image.palette */
    MV_MODE_RGB,
    MV_MODE_RGBA, /* straight (non-premultiplied) alpha */
    MV_MODE_CMYK, /* ink amounts, 0 = no ink (Adobe-inverted JPEG data is un-inverted, like PIL) */
} mv_image_mode;

typedef struct mv_image {
    int width, height;
    mv_image_mode mode;
    int channels;               /* bytes per pixel for mode */
    unsigned char *pixels;      /* height rows of width*channels bytes */
    unsigned char palette[256 * 3]; /* RGB triples, MV_MODE_P only */
    const char *format;         /* "jpeg" or "png" */
    int source_bit_depth;       /* bits per sample in the file (1..16) */
    int window_sbit;            /* 16-bit gray only: the sBIT used, or 0 if min..max windowing was used */
    int window_min, window_max; /* 16-bit gray windowed by min..max: the window */
} mv_image;

typedef struct mv_decode_options {
    uint64_t max_pixels; /* 0 means MV_IMAGE_DEFAULT_MAX_PIXELS */
} mv_decode_options;

/* Decodes a JPEG or PNG held in memory (the format is told by its magic bytes, never by a name).
 * what names the input in error messages (a path, "request body", ...). opts may be NULL.
 * Errors: MV_EUNSUPPORTED for other formats (GIF, BMP, WebP, TIFF, ... named), MV_EINPUT for
 * truncated or corrupt data (with the codec's message), MV_ETOOBIG over the pixel limit. On failure
 * *img holds nothing to free. */
int mv_image_decode(const void *bytes, size_t n_bytes, const char *what, const mv_decode_options *opts,
                    mv_image *img, mv_error *err);
void mv_image_free(mv_image *img);

/* Encodes width x height 8-bit RGB (rows of width*3 bytes) as a baseline JPEG of quality 1..100 with
 * libjpeg-turbo; *jpeg is malloc'd. */
int mv_jpeg_encode_rgb(const unsigned char *rgb, int width, int height, int quality, unsigned char **jpeg,
                       size_t *n_jpeg, mv_error *err);

/* Names the container format of a buffer by its magic bytes ("jpeg", "png", "gif", "bmp", "webp",
 * "tiff", ...), or NULL if unknown. */
const char *mv_image_sniff(const void *bytes, size_t n_bytes);

/* ---- preprocessing ---- */

typedef enum mv_resize_mode {
    MV_RESIZE_NONE,
    MV_RESIZE_SHORTEST, /* shortest side -> size, other side int(size * long / short) (torchvision) */
    MV_RESIZE_EXACT,    /* to width x height */
} mv_resize_mode;

typedef enum mv_filter {
    MV_FILTER_NEAREST,
    MV_FILTER_BILINEAR,
    MV_FILTER_BICUBIC,
} mv_filter;

typedef enum mv_color_mode {
    MV_COLOR_RGB,  /* convert("RGB") after resize and crop (open_clip) */
    MV_COLOR_GRAY, /* convert("L") before resizing, gray replicated to 3 channels (hi-ml BioViL) */
} mv_color_mode;

typedef struct mv_transform {
    mv_resize_mode resize;
    int size;                    /* MV_RESIZE_SHORTEST: the target short side */
    int resize_width, resize_height; /* MV_RESIZE_EXACT */
    mv_filter filter;            /* PIL's; "P" and "1" images always use NEAREST, as PIL does */
    int crop_width, crop_height; /* torchvision CenterCrop (zero padding if larger); 0 = no crop */
    mv_color_mode color;
    int normalize;               /* 0: output v/255; 1: (v/255 - mean) / std */
    float mean[3], std[3];
} mv_transform;

/* open_clip's eval transform: shortest side -> size (bicubic), center crop size, RGB, mean/std. */
void mv_transform_openclip(mv_transform *t, int size, const float mean[3], const float std[3]);
/* OPENAI_DATASET_MEAN / OPENAI_DATASET_STD of open_clip's constants.py. */
extern const float mv_openai_mean[3], mv_openai_std[3];
/* hi-ml BioViL inference transform: gray, shortest side -> resize (bilinear), center crop, v/255.
 * (hi-ml also min-max stretches the decoded image with skimage before this; not done here.) */
void mv_transform_biovil(mv_transform *t, int resize, int crop);

/* The transform a model directory asks for. Reads DIR/open_clip_config.json (image_size from
 * model_cfg.vision_cfg, mean/std from preprocess_cfg, interpolation and resize_mode if present). */
int mv_transform_from_model_dir(const char *dir, mv_transform *t, mv_error *err);

/* Output height and width of t applied to a width x height image. */
void mv_transform_output_size(const mv_transform *t, int width, int height, int *out_width,
                              int *out_height);

/* Runs t on img and writes float32 CHW [3, out_height, out_width] to out (sized by
 * mv_transform_output_size). If rgb8 is not NULL it also receives the 8-bit RGB image (HWC) the
 * floats were computed from. */
int mv_preprocess(const mv_image *img, const mv_transform *t, float *out, unsigned char *rgb8,
                  mv_error *err);

/* --- Grayscale (GLoRIA, MedCLIP) -------------------------------------------------------------- */

/* PIL's img.convert("L") into out (width × height bytes): gray modes keep their gray, colour goes
 * through PIL's RGB conversion and the ITU-R 601 luma L = (19595 R + 38470 G + 7471 B + 2^15) >> 16. */
int mv_image_to_gray(const mv_image *img, unsigned char *out, mv_error *err);

#endif
