/* jpeg.c — owns JPEG coding with libjpeg-turbo: decoding configured as PIL configures it (default DCT and
 * upsampling, CMYK/YCCK delivered as Adobe-inverted CMYK and un-inverted) so pixels match PIL's.
 *
 * libjpeg reports fatal errors through error_exit, which must not return: we longjmp back to
 * mv_jpeg_decode, which destroys the decompressor and frees the pixels. A premature end of data is
 * only a warning to libjpeg (it pads with gray); PIL refuses truncated files, and so do we.
 * Encoding (8-bit RGB, for thumbnails) uses the same longjmp error path. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>
#include <jerror.h>

#include "vision/vision_internal.h"

struct jpeg_failure {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static void on_error_exit(j_common_ptr cinfo)
{
    struct jpeg_failure *failure = (struct jpeg_failure *)cinfo->err;
    cinfo->err->format_message(cinfo, failure->message);
    longjmp(failure->jump, 1);
}

static void on_emit_message(j_common_ptr cinfo, int msg_level)
{
    if (msg_level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        on_error_exit(cinfo); /* truncated file */
    if (msg_level < 0)
        cinfo->err->num_warnings++;
}

int mv_jpeg_decode(const unsigned char *bytes, size_t n_bytes, const char *what, uint64_t max_pixels,
                   mv_image *img, mv_error *err)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_failure failure;
    /* Status of a failure found by our own checks while libjpeg is live; volatile across longjmp. */
    volatile int status = MV_OK;

    cinfo.err = jpeg_std_error(&failure.mgr);
    failure.mgr.error_exit = on_error_exit;
    failure.mgr.emit_message = on_emit_message;
    if (setjmp(failure.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(img->pixels);
        img->pixels = NULL;
        return mv_fail(err, MV_EINPUT, "%s: corrupt JPEG: %s", what, failure.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, bytes, (unsigned long)n_bytes);
    jpeg_read_header(&cinfo, TRUE);

    mv_image_mode mode;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        mode = MV_MODE_L;
        cinfo.out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        mode = MV_MODE_CMYK;
        cinfo.out_color_space = JCS_CMYK;
        break;
    default:
        mode = MV_MODE_RGB;
        cinfo.out_color_space = JCS_RGB;
        break;
    }
    status = mv_image_alloc(img, (int)cinfo.image_width, (int)cinfo.image_height, mode, what, max_pixels, err);
    if (status != MV_OK) {
        jpeg_destroy_decompress(&cinfo);
        return status;
    }
    jpeg_start_decompress(&cinfo);
    if ((int)cinfo.output_width != img->width || (int)cinfo.output_height != img->height ||
        cinfo.output_components != img->channels) {
        jpeg_destroy_decompress(&cinfo);
        free(img->pixels);
        img->pixels = NULL;
        return mv_fail(err, MV_EINTERNAL, "%s: libjpeg output geometry differs from the header", what);
    }
    size_t row_bytes = (size_t)img->width * (size_t)img->channels;
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = img->pixels + (size_t)cinfo.output_scanline * row_bytes;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);

    /* CMYK JPEGs are written Adobe-inverted (PIL's rawmode "CMYK;I" for every CMYK JPEG). */
    if (mode == MV_MODE_CMYK) {
        size_t n = row_bytes * (size_t)img->height;
        for (size_t i = 0; i < n; i++)
            img->pixels[i] = (unsigned char)(255 - img->pixels[i]);
    }
    img->source_bit_depth = 8;
    return MV_OK;
}

int mv_jpeg_encode_rgb(const unsigned char *rgb, int width, int height, int quality, unsigned char **jpeg,
                       size_t *n_jpeg, mv_error *err)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_failure failure;
    /* libjpeg grows the buffer and records where it now lives through &out (address-taken, so it
     * stays in memory and is valid after a longjmp). */
    unsigned char *out = NULL;
    unsigned long n_out = 0;
    *jpeg = NULL;
    *n_jpeg = 0;
    if (width < 1 || height < 1 || quality < 1 || quality > 100)
        return mv_fail(err, MV_EINPUT, "JPEG encoder: %d x %d at quality %d", width, height, quality);
    cinfo.err = jpeg_std_error(&failure.mgr);
    failure.mgr.error_exit = on_error_exit;
    if (setjmp(failure.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(out);
        return mv_fail(err, MV_EINTERNAL, "JPEG encoder: %s", failure.message);
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &out, &n_out);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)cinfo.next_scanline * (size_t)width * 3);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *jpeg = out;
    *n_jpeg = n_out;
    return MV_OK;
}
