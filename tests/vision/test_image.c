/* test_image.c — decoding and preprocessing against PIL + torchvision fixtures
 * (tests/reference/make_image_fixtures.py): per case the 8-bit RGB image right before ToTensor must
 * match PIL's (>= 99.9% within 1, all within 2; the table printed shows exact agreement), the float
 * tensors must match torchvision's, 16-bit gray must match numpy of the documented mapping, bad
 * inputs must fail with the right status and message, and the pixel limit must hold. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "medvlp/file.h"
#include "medvlp/image.h"
#include "test.h"

static char fixtures[1024];

static int load(const char *name, mv_mapped_file *file)
{
    char path[2048];
    mv_error err = {0};
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    int status = mv_file_map(path, file, &err);
    CHECK_MSG(status == MV_OK, "%s", err.message);
    return status == MV_OK;
}

static int decode_fixture(const char *name, uint64_t max_pixels, mv_image *img, mv_error *err)
{
    mv_mapped_file file;
    if (!load(name, &file))
        return MV_ENOTFOUND;
    mv_decode_options opts = {.max_pixels = max_pixels};
    int status = mv_image_decode(file.data, file.size, name, &opts, img, err);
    mv_file_unmap(&file);
    return status;
}

static void parse_filter(const char *name, mv_filter *filter)
{
    *filter = !strcmp(name, "nearest") ? MV_FILTER_NEAREST
              : !strcmp(name, "bilinear") ? MV_FILTER_BILINEAR : MV_FILTER_BICUBIC;
}

/* Runs one cases.txt line; returns the number of output values compared. */
static void run_case(const char *line, size_t *n_values, size_t *n_exact, int *worst)
{
    char input[256], color[16], resize[16], filter[16], expected[512];
    int rw, rh, crop;
    if (sscanf(line, "%255s %15s %15s %d %d %15s %d %511s", input, color, resize, &rw, &rh, filter, &crop,
               expected) != 8) {
        CHECK_MSG(0, "bad cases.txt line: %s", line);
        return;
    }
    mv_transform t;
    if (!strcmp(color, "gray"))
        mv_transform_biovil(&t, rw, crop);
    else
        mv_transform_openclip(&t, rw, mv_openai_mean, mv_openai_std);
    t.resize = !strcmp(resize, "exact") ? MV_RESIZE_EXACT : !strcmp(resize, "none") ? MV_RESIZE_NONE
               : MV_RESIZE_SHORTEST;
    t.resize_width = rw;
    t.resize_height = rh;
    t.crop_width = t.crop_height = crop;
    parse_filter(filter, &t.filter);

    mv_image img;
    mv_error err = {0};
    int status = decode_fixture(input, 0, &img, &err);
    CHECK_MSG(status == MV_OK, "%s", err.message);
    if (status != MV_OK)
        return;
    int ow, oh;
    mv_transform_output_size(&t, img.width, img.height, &ow, &oh);
    size_t n = (size_t)ow * (size_t)oh;
    float *tensor = malloc(3 * n * sizeof *tensor);
    unsigned char *rgb = malloc(3 * n);
    mv_mapped_file ref = {0};
    status = mv_preprocess(&img, &t, tensor, rgb, &err);
    CHECK_MSG(status == MV_OK, "%s: %s", input, err.message);
    if (status == MV_OK && load(expected, &ref)) {
        CHECK_MSG(ref.size == 3 * n, "%s: expected %zu bytes, got %zu", expected, 3 * n, ref.size);
        if (ref.size == 3 * n) {
            size_t exact = 0, within1 = 0;
            int max_diff = 0;
            for (size_t i = 0; i < 3 * n; i++) {
                int d = abs((int)rgb[i] - (int)ref.data[i]);
                exact += d == 0;
                within1 += d <= 1;
                max_diff = d > max_diff ? d : max_diff;
                /* the floats are the 8-bit values through ToTensor/Normalize: check they agree */
                size_t channel = i % 3, pixel = i / 3;
                float v = tensor[channel * n + pixel];
                float want = t.normalize ? ((float)rgb[i] / 255.0f - t.mean[channel]) / t.std[channel]
                                         : (float)rgb[i] / 255.0f;
                if (v != want)
                    CHECK_MSG(0, "%s: float %zu is %g, its 8-bit value gives %g", input, i, v, want);
            }
            printf("  %-34s %-6s %-8s %3dx%-3d %-8s crop %3d -> %5.1f%% exact, max diff %d\n", input, color, resize,
                   rw, rh, filter, crop, 100.0 * exact / (3 * n), max_diff);
            CHECK_MSG(within1 * 1000 >= 999 * 3 * n, "%s: only %zu of %zu within 1", expected, within1, 3 * n);
            CHECK_MSG(max_diff <= 2, "%s: max diff %d", expected, max_diff);
            *n_values += 3 * n;
            *n_exact += exact;
            *worst = max_diff > *worst ? max_diff : *worst;
        }
    }
    mv_file_unmap(&ref);
    free(tensor);
    free(rgb);
    mv_image_free(&img);
}

static char *read_manifest(const char *name)
{
    char path[2048], *text = NULL;
    size_t size;
    mv_error err = {0};
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    int status = mv_file_read_all(path, 1 << 20, &text, &size, &err);
    CHECK_MSG(status == MV_OK, "%s", err.message);
    return text;
}

static void test_cases(void)
{
    char *text = read_manifest("cases.txt");
    size_t n_values = 0, n_exact = 0, n_cases = 0;
    int worst = 0;
    for (char *save, *line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        run_case(line, &n_values, &n_exact, &worst);
        n_cases++;
    }
    printf("preprocess parity: %zu cases, %zu values, %.4f%% exact, max diff %d (8-bit units)\n", n_cases,
           n_values, n_values ? 100.0 * n_exact / n_values : 0.0, worst);
    CHECK(n_cases >= 30);
    free(text);
}

/* The full float tensor against torchvision's ToTensor + Normalize. */
static void test_floats(void)
{
    char *text = read_manifest("floats.txt");
    for (char *save, *line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        char expected_rgb[512], f32[512];
        CHECK(sscanf(line, "%511s %511s", expected_rgb, f32) == 2);
        /* find the case line that produced expected_rgb to know its input and transform */
        char *cases = read_manifest("cases.txt");
        char *match = cases ? strstr(cases, expected_rgb) : NULL;
        CHECK_MSG(match != NULL, "%s not in cases.txt", expected_rgb);
        if (match) {
            while (match > cases && match[-1] != '\n')
                match--;
            char input[256], color[16];
            int rw, crop;
            CHECK(sscanf(match, "%255s %15s %*s %d %*d %*s %d", input, color, &rw, &crop) == 4);
            mv_transform t;
            if (!strcmp(color, "gray")) {
                mv_transform_biovil(&t, rw, crop);
            } else {
                mv_transform_openclip(&t, rw, mv_openai_mean, mv_openai_std);
                t.crop_width = t.crop_height = crop;
            }
            mv_image img;
            mv_error err = {0};
            mv_mapped_file ref;
            if (decode_fixture(input, 0, &img, &err) == MV_OK && load(f32, &ref)) {
                int ow, oh;
                mv_transform_output_size(&t, img.width, img.height, &ow, &oh);
                size_t n = 3 * (size_t)ow * (size_t)oh;
                float *tensor = malloc(n * sizeof *tensor);
                CHECK(mv_preprocess(&img, &t, tensor, NULL, &err) == MV_OK);
                CHECK_INT_EQ(ref.size, n * sizeof(float));
                if (ref.size == n * sizeof(float)) {
                    double diff = test_max_abs_diff(tensor, (const float *)ref.data, n);
                    printf("float tensor %s: max |ours - torchvision| = %g\n", f32, diff);
                    CHECK(diff <= 1e-6);
                }
                free(tensor);
                mv_file_unmap(&ref);
                mv_image_free(&img);
            }
        }
        free(cases);
    }
    free(text);
}

static void test_gray16(void)
{
    char *text = read_manifest("gray16.txt");
    for (char *save, *line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        char input[256], expected[256];
        int sbit;
        CHECK(sscanf(line, "%255s %255s %d", input, expected, &sbit) == 3);
        mv_image img;
        mv_error err = {0};
        mv_mapped_file ref;
        if (decode_fixture(input, 0, &img, &err) != MV_OK) {
            CHECK_MSG(0, "%s", err.message);
            continue;
        }
        CHECK_INT_EQ(img.source_bit_depth, 16);
        CHECK_INT_EQ(img.window_sbit, sbit);
        if (load(expected, &ref)) {
            size_t n = (size_t)img.width * (size_t)img.height, mismatches = 0;
            CHECK_INT_EQ(ref.size, n);
            for (size_t i = 0; i < n && ref.size == n; i++)
                mismatches += img.pixels[i * (size_t)img.channels] != ref.data[i];
            printf("16-bit %s (sbit %d): %zu of %zu pixels differ from numpy\n", input, sbit, mismatches, n);
            CHECK_INT_EQ(mismatches, 0);
            mv_file_unmap(&ref);
        }
        mv_image_free(&img);
    }
    free(text);
}

static void test_bad_inputs(void)
{
    char *text = read_manifest("bad.txt");
    int n = 0;
    for (char *save, *line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        char input[256], status_name[64];
        int consumed = 0;
        CHECK(sscanf(line, "%255s %63s %n", input, status_name, &consumed) == 2);
        const char *message = line + consumed;
        mv_image img;
        mv_error err = {0};
        int status = decode_fixture(input, 0, &img, &err);
        CHECK_MSG(!strcmp(mv_status_name(status), status_name), "%s: got %s (%s), want %s", input,
                  mv_status_name(status), err.message, status_name);
        CHECK_STR_CONTAINS(err.message, message);
        CHECK_STR_CONTAINS(err.message, input); /* names the input */
        CHECK(img.pixels == NULL);
        printf("bad input %-22s -> %s: %s\n", input, mv_status_name(status), err.message);
        n++;
    }
    CHECK(n >= 12);
    free(text);
}

static void test_pixel_limit(void)
{
    mv_image img;
    mv_error err = {0};
    /* rgb_300x200.png has 60000 pixels: the limit is inclusive and read from the header. */
    CHECK_INT_EQ(decode_fixture("rgb_300x200.png", 59999, &img, &err), MV_ETOOBIG);
    CHECK_STR_CONTAINS(err.message, "300 x 200");
    CHECK_INT_EQ(decode_fixture("jpeg_base_300x260.jpg", 300 * 260 - 1, &img, &err), MV_ETOOBIG);
    CHECK_INT_EQ(decode_fixture("rgb_300x200.png", 60000, &img, &err), MV_OK);
    mv_image_free(&img);
    /* A bomb within a raised limit still decodes (10000 x 10000 1-bit); skipped under the default. */
    CHECK_INT_EQ(decode_fixture("bad_bomb.png", 0, &img, &err), MV_ETOOBIG);
}

/* Corrupted variants of valid files (deterministic byte flips and truncations) must decode or fail
 * cleanly: a status with a message and nothing allocated; ASan/UBSan watch the codecs' error paths. */
static void test_mutations(void)
{
    const char *names[] = {"jpeg_prog_150x230.jpg", "jpeg_cmyk_110x90.jpg", "P4_70x110.png",
                           "gray16_minmax_adam7_67x45.png"};
    uint32_t state = 12345;
    int n_failed = 0, n_ok = 0;
    for (size_t f = 0; f < sizeof names / sizeof *names; f++) {
        mv_mapped_file file;
        if (!load(names[f], &file))
            continue;
        unsigned char *copy = malloc(file.size);
        for (int trial = 0; trial < 60; trial++) {
            memcpy(copy, file.data, file.size);
            size_t size = file.size;
            for (int flips = 0; flips < 1 + trial % 4; flips++) {
                state = state * 1664525u + 1013904223u;
                size_t at = 2 + (state >> 8) % (size - 2); /* keep the magic so the codec runs */
                copy[at] ^= (unsigned char)(1u << (state % 8));
            }
            if (trial % 5 == 4)
                size = 3 + (state >> 4) % (size - 3);
            mv_image img;
            mv_error err = {0};
            int status = mv_image_decode(copy, size, names[f], NULL, &img, &err);
            if (status == MV_OK) {
                float tensor[3 * 32 * 32];
                mv_transform t;
                mv_transform_openclip(&t, 32, NULL, NULL);
                CHECK(mv_preprocess(&img, &t, tensor, NULL, &err) == MV_OK);
                mv_image_free(&img);
                n_ok++;
            } else {
                CHECK(img.pixels == NULL && err.message[0] != 0);
                n_failed++;
            }
        }
        free(copy);
        mv_file_unmap(&file);
    }
    printf("mutations: %d decoded, %d refused cleanly\n", n_ok, n_failed);
}

static void test_model_dir(void)
{
    char dir[] = "/tmp/medvlp_vision_XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    mv_transform t;
    mv_error err = {0};
    CHECK_INT_EQ(mv_transform_from_model_dir(dir, &t, &err), MV_ENOTFOUND);
    snprintf(path, sizeof path, "%s/open_clip_config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"model_cfg\": {\"vision_cfg\": {\"image_size\": 96}}, \"preprocess_cfg\": "
          "{\"mean\": [0.5, 0.25, 0.125], \"std\": [0.2, 0.3, 0.4], \"interpolation\": \"bilinear\"}}", f);
    fclose(f);
    CHECK_INT_EQ(mv_transform_from_model_dir(dir, &t, &err), MV_OK);
    CHECK_INT_EQ(t.size, 96);
    CHECK_INT_EQ(t.crop_width, 96);
    CHECK_INT_EQ(t.filter, MV_FILTER_BILINEAR);
    CHECK(t.mean[2] == 0.125f && t.std[1] == 0.3f && t.normalize);
    f = fopen(path, "w");
    fputs("{\"model_cfg\": {\"vision_cfg\": {\"image_size\": \"big\"}}}", f);
    fclose(f);
    CHECK_INT_EQ(mv_transform_from_model_dir(dir, &t, &err), MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, "image_size");
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const char *root = getenv("MEDVLP_FIXTURES");
    snprintf(fixtures, sizeof fixtures, "%s/vision", root ? root : "tests/fixtures");
    test_cases();
    test_floats();
    test_gray16();
    test_bad_inputs();
    test_pixel_limit();
    test_mutations();
    test_model_dir();
    return test_report("test_image");
}
