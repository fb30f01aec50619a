/* png.c — owns PNG decoding with libpng's full API (for sBIT, palettes kept as indices, Adam7),
 * producing the mode PIL would open: 1-bit gray -> "1", 2/4/8-bit gray -> "L" (bit-replicated),
 * palette -> "P" (tRNS ignored, as convert("RGB") ignores it), gray+alpha -> "LA", RGB(A) ->
 * "RGB"/"RGBA" (16-bit samples keep their most significant byte, like PIL). 16-bit gray is windowed
 * to 8 bits (image.h). libpng reports errors by longjmp; every exit frees what was allocated. */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "vision/vision_internal.h"

struct png_reader {
    const unsigned char *bytes;
    size_t n_bytes, offset;
    char message[256];
    /* Owned allocations, freed on every exit (kept here, not in locals, so longjmp cannot lose them). */
    unsigned char *samples16; /* 16-bit gray rows before windowing */
    png_bytep *rows;
};

static void on_png_error(png_structp png, png_const_charp message)
{
    struct png_reader *reader = png_get_error_ptr(png);
    snprintf(reader->message, sizeof reader->message, "%s", message);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp message)
{
    (void)png; /* benign (unknown chunks, sRGB profile notes); the image stays decodable */
    (void)message;
}

static void read_from_memory(png_structp png, png_bytep data, size_t length)
{
    struct png_reader *reader = png_get_io_ptr(png);
    if (length > reader->n_bytes - reader->offset)
        png_error(png, "file is truncated");
    memcpy(data, reader->bytes + reader->offset, length);
    reader->offset += length;
}

int mv_png_decode(const unsigned char *bytes, size_t n_bytes, const char *what, uint64_t max_pixels,
                  mv_image *img, mv_error *err)
{
    struct png_reader reader = {.bytes = bytes, .n_bytes = n_bytes};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return mv_fail(err, MV_ENOMEM, "%s: cannot create a PNG decoder", what);
    }
    volatile int status = MV_OK;
    if (setjmp(png_jmpbuf(png))) {
        if (status == MV_OK)
            status = mv_fail(err, MV_EINPUT, "%s: corrupt PNG: %s", what, reader.message);
        goto done;
    }
    png_set_read_fn(png, &reader, read_from_memory);
    png_read_info(png, info);

    png_uint_32 width, height;
    int bit_depth, color_type, interlace;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    if (width > INT32_MAX || height > INT32_MAX) {
        status = mv_fail(err, MV_ETOOBIG, "%s: PNG is %u x %u pixels", what, (unsigned)width, (unsigned)height);
        goto done;
    }

    int gray16 = bit_depth == 16 && (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA);
    mv_image_mode mode;
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: mode = bit_depth == 1 ? MV_MODE_1 : MV_MODE_L; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: mode = MV_MODE_LA; break;
    case PNG_COLOR_TYPE_PALETTE: mode = MV_MODE_P; break;
    case PNG_COLOR_TYPE_RGB: mode = MV_MODE_RGB; break;
    default: mode = MV_MODE_RGBA; break;
    }
    status = mv_image_alloc(img, (int)width, (int)height, mode, what, max_pixels, err);
    if (status != MV_OK)
        goto done;
    img->source_bit_depth = bit_depth;

    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
        png_set_expand_gray_1_2_4_to_8(png); /* replicates bits: 1-bit -> 0/255, 2-bit -> 0/85/170/255 */
    if (color_type == PNG_COLOR_TYPE_PALETTE && bit_depth < 8)
        png_set_packing(png);
    if (bit_depth == 16 && !gray16)
        png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    size_t row_bytes = png_get_rowbytes(png, info);
    size_t image_row_bytes = (size_t)img->width * (size_t)img->channels;
    if (row_bytes != (gray16 ? 2 * image_row_bytes : image_row_bytes)) {
        status = mv_fail(err, MV_EINTERNAL, "%s: unexpected PNG row size %zu", what, row_bytes);
        goto done;
    }
    reader.rows = malloc((size_t)img->height * sizeof *reader.rows);
    if (gray16)
        reader.samples16 = malloc(row_bytes * (size_t)img->height);
    if (!reader.rows || (gray16 && !reader.samples16)) {
        status = mv_fail(err, MV_ENOMEM, "%s: out of memory decoding PNG", what);
        goto done;
    }
    unsigned char *base = gray16 ? reader.samples16 : img->pixels;
    for (int y = 0; y < img->height; y++)
        reader.rows[y] = base + (size_t)y * row_bytes;
    png_read_image(png, reader.rows);
    png_read_end(png, NULL);

    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_colorp palette;
        int n_palette = 0;
        if (png_get_PLTE(png, info, &palette, &n_palette) & PNG_INFO_PLTE)
            for (int i = 0; i < n_palette && i < 256; i++) {
                img->palette[3 * i + 0] = palette[i].red;
                img->palette[3 * i + 1] = palette[i].green;
                img->palette[3 * i + 2] = palette[i].blue;
            }
    }
    if (gray16) {
        png_color_8p sig_bit;
        int sbit = 0;
        if (png_get_sBIT(png, info, &sig_bit) & PNG_INFO_sBIT)
            sbit = sig_bit->gray;
        img->window_sbit = sbit >= 1 && sbit <= 16 ? sbit : 0;
        size_t n = (size_t)img->width * (size_t)img->height;
        mv_window_gray16(reader.samples16, n, 2 * (size_t)img->channels, img->window_sbit, img->pixels,
                         (size_t)img->channels, &img->window_min, &img->window_max);
        if (img->channels == 2) /* alpha: most significant byte, as PIL */
            for (size_t i = 0; i < n; i++)
                img->pixels[2 * i + 1] = reader.samples16[4 * i + 2];
    }

done:
    png_destroy_read_struct(&png, &info, NULL);
    free(reader.rows);
    free(reader.samples16);
    if (status != MV_OK) {
        free(img->pixels);
        img->pixels = NULL;
    }
    return status;
}
