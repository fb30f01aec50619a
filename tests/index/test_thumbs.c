/* test_thumbs.c — thumbnails of an index directory (include/medvlp/thumbs.h): bad ids and missing
 * thumbnails are clean errors; a stored thumbnail decodes (with libjpeg directly, not through medvlp)
 * to the promised size and to the pixels of the source, checked against the analytic values of a
 * gradient; small images are not enlarged; every image mode becomes RGB; writes leave no temporary. */
#include "medvlp/thumbs.h"
#include "../test.h"
#include "index_test_util.h"

#include <dirent.h>
#include <jpeglib.h>
#include <limits.h>

/* Decodes a JPEG with libjpeg into a malloc'd RGB buffer. */
static unsigned char *decode_jpeg(const unsigned char *jpeg, size_t n_jpeg, int *width, int *height)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr errors;
    cinfo.err = jpeg_std_error(&errors); /* a corrupt file exits the test with a failure */
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, jpeg, (unsigned long)n_jpeg);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    *width = (int)cinfo.output_width;
    *height = (int)cinfo.output_height;
    unsigned char *rgb = malloc((size_t)*width * (size_t)*height * 3);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = rgb + (size_t)cinfo.output_scanline * (size_t)*width * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return rgb;
}

/* An RGB image whose red rises along x and green along y: after any sane downscale the pixel at
 * thumbnail (u, v) is the gradient at the source point its centre maps to. */
static mv_image gradient(int width, int height)
{
    mv_image img = {.width = width, .height = height, .mode = MV_MODE_RGB, .channels = 3, .format = "png"};
    img.pixels = malloc((size_t)width * (size_t)height * 3);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            unsigned char *p = img.pixels + ((size_t)y * (size_t)width + (size_t)x) * 3;
            p[0] = (unsigned char)(x * 255 / (width - 1));
            p[1] = (unsigned char)(y * 255 / (height - 1));
            p[2] = 128;
        }
    return img;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void test_errors(const char *dir)
{
    mv_error err = {0};
    unsigned char *jpeg = NULL;
    size_t n_jpeg = 0;
    mv_image img = gradient(8, 8);
    CHECK_INT_EQ(mv_thumbs_put(dir, -1, &img, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "bad id -1");
    CHECK_INT_EQ(mv_thumbs_get(dir, -7, &jpeg, &n_jpeg, &err), MV_EINPUT);
    CHECK_INT_EQ(mv_thumbs_remove(dir, -2, &err), MV_EINPUT);
    CHECK_INT_EQ(mv_thumbs_get(dir, 5, &jpeg, &n_jpeg, &err), MV_ENOTFOUND);
    CHECK_STR_CONTAINS(err.message, "no thumbnail for id 5");
    CHECK_MSG(!strstr(err.message, dir), "the message shows the server path: %s", err.message);
    CHECK(jpeg == NULL);
    CHECK_INT_EQ(mv_thumbs_remove(dir, 5, &err), MV_OK); /* nothing to remove is fine */
    mv_image empty = {0};
    CHECK_INT_EQ(mv_thumb_encode(&empty, 256, &jpeg, &n_jpeg, &err), MV_EINPUT);
    CHECK_INT_EQ(mv_thumb_encode(&img, 0, &jpeg, &n_jpeg, &err), MV_EINPUT);
    free(img.pixels);
}

/* put, get, decode: size and pixels of a 600 x 300 gradient scaled to 256 x 128. */
static void test_round_trip(const char *dir)
{
    mv_error err = {0};
    enum { W = 600, H = 300, TW = 256, TH = 128 };
    mv_image img = gradient(W, H);
    CHECK_INT_EQ(mv_thumbs_put(dir, 42, &img, &err), MV_OK);
    unsigned char *jpeg = NULL;
    size_t n_jpeg = 0;
    CHECK_INT_EQ(mv_thumbs_get(dir, 42, &jpeg, &n_jpeg, &err), MV_OK);
    CHECK_MSG(n_jpeg > 100 && jpeg && jpeg[0] == 0xFF && jpeg[1] == 0xD8, "not a JPEG (%zu bytes)", n_jpeg);
    int width = 0, height = 0;
    unsigned char *rgb = jpeg ? decode_jpeg(jpeg, n_jpeg, &width, &height) : NULL;
    CHECK_INT_EQ(width, TW);
    CHECK_INT_EQ(height, TH);
    double sum_error = 0, max_error = 0;
    /* Edge pixels are skipped: the resampling filter clamps there, the analytic value does not. */
    for (int v = 2; rgb && width == TW && v < TH - 2; v++)
        for (int u = 2; u < TW - 2; u++) {
            double sx = (u + 0.5) * W / TW - 0.5, sy = (v + 0.5) * H / TH - 0.5;
            double want[3] = {sx * 255 / (W - 1), sy * 255 / (H - 1), 128};
            for (int c = 0; c < 3; c++) {
                double e = fabs(rgb[((size_t)v * TW + (size_t)u) * 3 + (size_t)c] - want[c]);
                sum_error += e;
                max_error = e > max_error ? e : max_error;
            }
        }
    double mean_error = sum_error / ((TW - 4) * (TH - 4) * 3);
    CHECK_MSG(mean_error < 2.0, "mean |thumbnail - gradient| = %.3f levels", mean_error);
    CHECK_MSG(max_error < 12.0, "max |thumbnail - gradient| = %.3f levels", max_error);
    free(rgb);
    free(jpeg);

    char thumbs[PATH_MAX + 16];
    snprintf(thumbs, sizeof thumbs, "%s/thumbs", dir);
    CHECK_INT_EQ(count_entries(thumbs), 1); /* 42.jpg, no temporary left behind */
    /* put again replaces; remove deletes */
    CHECK_INT_EQ(mv_thumbs_put(dir, 42, &img, &err), MV_OK);
    CHECK_INT_EQ(count_entries(thumbs), 1);
    CHECK_INT_EQ(mv_thumbs_remove(dir, 42, &err), MV_OK);
    CHECK_INT_EQ(mv_thumbs_get(dir, 42, &jpeg, &n_jpeg, &err), MV_ENOTFOUND);
    CHECK_INT_EQ(count_entries(thumbs), 0);
    free(img.pixels);
}

/* Sizes: small images keep theirs, long strips keep at least one pixel, portrait scales by height. */
static void test_sizes(void)
{
    static const int cases[][4] = {{70, 52, 70, 52}, {256, 256, 256, 256}, {257, 100, 256, 100},
                                   {1000, 3, 256, 1}, {300, 900, 85, 256}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mv_error err = {0};
        mv_image img = gradient(cases[i][0], cases[i][1]);
        unsigned char *jpeg = NULL;
        size_t n_jpeg = 0;
        int width = 0, height = 0;
        CHECK_INT_EQ(mv_thumb_encode(&img, MV_THUMB_MAX_SIDE, &jpeg, &n_jpeg, &err), MV_OK);
        free(jpeg ? decode_jpeg(jpeg, n_jpeg, &width, &height) : NULL);
        CHECK_MSG(width == cases[i][2] && height == cases[i][3], "%d x %d -> %d x %d, want %d x %d", cases[i][0],
                  cases[i][1], width, height, cases[i][2], cases[i][3]);
        free(jpeg);
        free(img.pixels);
    }
}

/* Gray, palette and alpha images come out as RGB of the right colour. */
static void test_modes(void)
{
    mv_error err = {0};
    unsigned char gray_pixels[4 * 4], palette_pixels[4 * 4], rgba_pixels[4 * 4 * 4];
    memset(gray_pixels, 200, sizeof gray_pixels);
    memset(palette_pixels, 1, sizeof palette_pixels);
    for (int i = 0; i < 16; i++)
        memcpy(rgba_pixels + i * 4, (unsigned char[]){10, 220, 30, 255}, 4);
    mv_image images[3] = {
        {.width = 4, .height = 4, .mode = MV_MODE_L, .channels = 1, .pixels = gray_pixels},
        {.width = 4, .height = 4, .mode = MV_MODE_P, .channels = 1, .pixels = palette_pixels},
        {.width = 4, .height = 4, .mode = MV_MODE_RGBA, .channels = 4, .pixels = rgba_pixels},
    };
    images[1].palette[3] = 240, images[1].palette[4] = 20, images[1].palette[5] = 60; /* colour 1 */
    static const int want[3][3] = {{200, 200, 200}, {240, 20, 60}, {10, 220, 30}};
    for (int i = 0; i < 3; i++) {
        unsigned char *jpeg = NULL;
        size_t n_jpeg = 0;
        int width = 0, height = 0;
        CHECK_INT_EQ(mv_thumb_encode(&images[i], MV_THUMB_MAX_SIDE, &jpeg, &n_jpeg, &err), MV_OK);
        unsigned char *rgb = jpeg ? decode_jpeg(jpeg, n_jpeg, &width, &height) : NULL;
        for (int c = 0; rgb && c < 3; c++)
            CHECK_NEAR(rgb[5 * 3 + c], want[i][c], 6); /* pixel (1, 1); JPEG's chroma loss */
        free(rgb);
        free(jpeg);
    }
}

int main(void)
{
    char dir[PATH_MAX];
    scratch_dir(dir, sizeof dir, "thumbs");
    test_errors(dir);
    test_round_trip(dir);
    test_sizes();
    test_modes();
    remove_tree(dir);
    return test_report("test_thumbs");
}
