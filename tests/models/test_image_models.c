/* test_image_models.c — image towers of each family against the PyTorch/PIL reference
 * (tests/reference/make_family_fixtures.py → tests/fixtures/models/expected/images_<name>.{json,f32}).
 *
 *   test_image_models MODEL_DIR EXPECTED_NAME
 * Checks: the model's info (family, dims, parameter count over all weight files, unused tensors);
 * the encoder + head from the reference's own input tensors (cos >= 0.99999); our preprocessing
 * against the reference's tensors; end to end from the image FILES, one batch and one image at a
 * time (cos >= 0.9999); bad image bytes; and for the manifest families their text side. */
#include "models/family.h"
#include "medvlp/file.h"
#include "../test.h"

#include <jansson.h>
#include <stdlib.h>

#define MIN_COS_TENSOR 0.99999
#define MIN_COS_FILE 0.9999

static char fixtures[2048];

static void read_floats(const json_t *array, float *out, int n)
{
    CHECK_INT_EQ(json_array_size(array), n);
    for (int i = 0; i < n && i < (int)json_array_size(array); i++)
        out[i] = (float)json_number_value(json_array_get(array, (size_t)i));
}

static void compare(const char *mode, const float *out, const json_t *expected, int n, int dim, double min_cos)
{
    float *want = malloc((size_t)dim * sizeof *want);
    double worst_cos = 1.0, worst_abs = 0.0;
    for (int i = 0; i < n; i++) {
        read_floats(json_array_get(expected, (size_t)i), want, dim);
        double cos = test_cosine(out + (size_t)i * dim, want, (size_t)dim);
        double diff = test_max_abs_diff(out + (size_t)i * dim, want, (size_t)dim);
        CHECK_MSG(cos >= min_cos, "%s item %d: cos %.9f max|d| %.3g", mode, i, cos, diff);
        worst_cos = cos < worst_cos ? cos : worst_cos;
        worst_abs = diff > worst_abs ? diff : worst_abs;
    }
    printf("%-28s min cos %.9f  max |d| %.3g  (%d)\n", mode, worst_cos, worst_abs, n);
    free(want);
}

static void check_info(const mv_model *model, const json_t *expected, const char *family, int n_images)
{
    mv_model_info info;
    mv_model_get_info(model, &info);
    CHECK(!strcmp(info.family, family));
    const json_t *shape = json_object_get(expected, "shape");
    CHECK_INT_EQ(json_integer_value(json_array_get(shape, 0)), n_images);
    CHECK_INT_EQ(info.image_height, json_integer_value(json_array_get(shape, 2)));
    CHECK_INT_EQ(info.image_width, json_integer_value(json_array_get(shape, 3)));
    CHECK(info.image_preprocessing != NULL);
    CHECK_INT_EQ(info.n_params, json_integer_value(json_object_get(expected, "n_params")));
    const json_t *unused = json_object_get(expected, "unused");
    CHECK_INT_EQ(info.n_unused_tensors, json_array_size(unused));
    for (size_t i = 0; i < info.n_unused_tensors && i < json_array_size(unused); i++)
        CHECK_MSG(!strcmp(mv_model_unused_tensor(model, i), json_string_value(json_array_get(unused, i))),
                  "unused %zu: %s", i, mv_model_unused_tensor(model, i));
    printf("%s: %d x %d, dim %d, %zu params; %s\n", family, info.image_width, info.image_height, info.embed_dim,
           info.n_params, info.image_preprocessing);
}

/* The encoder and head from the reference's preprocessed tensors, bypassing our preprocessing. */
static void check_tensor_input(mv_model *model, const json_t *expected, const float *pixels, int n_images)
{
    mv_image_tower *tower = &model->image;
    const int dim = tower->embed_dim;
    size_t image_floats = (size_t)3 * tower->height * tower->width;
    float *out = malloc((size_t)n_images * dim * sizeof *out);
    mv_error err;
    for (int normalize = 1; normalize >= 0; normalize--) {
        CHECK_INT_EQ(mv_image_tower_reserve(tower, n_images, &err), MV_OK);
        memcpy(tower->pixels, pixels, (size_t)n_images * image_floats * sizeof(float));
        CHECK_INT_EQ(mv_image_tower_forward(tower, n_images, normalize, out, &err), MV_OK);
        compare(normalize ? "tensor input, normalized" : "tensor input, raw", out,
                json_object_get(expected, normalize ? "normalized" : "raw"), n_images, dim, MIN_COS_TENSOR);
    }
    free(out);
}

/* The text side of a paired model: texts[i] through cleaning, WordPiece and the text tower. */
static void check_texts(mv_model *model, const json_t *texts, const json_t *token_ids, const json_t *want)
{
    const int n = (int)json_array_size(texts), dim = model->text.embed_dim;
    const char **ptrs = malloc((size_t)n * sizeof *ptrs);
    int *n_tokens = malloc((size_t)n * sizeof *n_tokens);
    float *out = malloc((size_t)n * dim * sizeof *out);
    for (int i = 0; i < n; i++)
        ptrs[i] = json_string_value(json_array_get(texts, (size_t)i));
    mv_error err;
    CHECK_INT_EQ(mv_model_embed_texts(model, ptrs, NULL, n, 1, out, n_tokens, NULL, &err), MV_OK);
    for (int i = 0; i < n; i++)
        CHECK_INT_EQ(n_tokens[i], json_array_size(json_array_get(token_ids, (size_t)i)));
    compare("texts, normalized", out, want, n, dim, MIN_COS_TENSOR);
    free(ptrs);
    free(n_tokens);
    free(out);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_image_models MODEL_DIR EXPECTED_NAME\n");
        return 2;
    }
    snprintf(fixtures, sizeof fixtures, "%s/models", getenv("MEDVLP_FIXTURES") ? getenv("MEDVLP_FIXTURES")
                                                                                : "tests/fixtures");
    char model_dir[8192], path[8192];
    snprintf(model_dir, sizeof model_dir, "%s/%s", fixtures, argv[1]);
    snprintf(path, sizeof path, "%s/expected/images_%s.json", fixtures, argv[2]);
    json_error_t jerr;
    json_t *expected = json_load_file(path, 0, &jerr);
    if (!expected) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return 1;
    }
    mv_error err;
    mv_model *model = NULL;
    int rc = mv_model_open(model_dir, NULL, &model, &err);
    CHECK_MSG(rc == MV_OK, "%s", err.message);
    if (rc) {
        json_decref(expected);
        return test_report(argv[1]);
    }
    const json_t *names = json_object_get(expected, "images");
    const int n_images = (int)json_array_size(names);
    check_info(model, expected, argv[2], n_images);
    const int dim = model->image.embed_dim;

    /* The reference's input tensors. */
    snprintf(path, sizeof path, "%s/expected/images_%s.f32", fixtures, argv[2]);
    char *raw_pixels;
    size_t pixel_bytes;
    CHECK_INT_EQ(mv_file_read_all(path, 1 << 26, &raw_pixels, &pixel_bytes, &err), MV_OK);
    const size_t image_floats = (size_t)3 * model->image.height * model->image.width;
    CHECK_INT_EQ(pixel_bytes, (size_t)n_images * image_floats * sizeof(float));
    float *pixels = malloc(pixel_bytes);
    memcpy(pixels, raw_pixels, pixel_bytes);
    free(raw_pixels);
    check_tensor_input(model, expected, pixels, n_images);

    /* Our preprocessing of each file against the reference's tensor. */
    mv_mapped_file *files = calloc((size_t)n_images, sizeof *files);
    const void **bytes = calloc((size_t)n_images, sizeof *bytes);
    size_t *sizes = calloc((size_t)n_images, sizeof *sizes);
    const char **paths = calloc((size_t)n_images, sizeof *paths);
    mv_image *images = calloc((size_t)n_images, sizeof *images);
    double worst_pixel = 0;
    CHECK_INT_EQ(mv_image_tower_reserve(&model->image, 1, &err), MV_OK);
    for (int i = 0; i < n_images; i++) {
        char *p = malloc(8192);
        snprintf(p, 8192, "%s/images/%s", fixtures, json_string_value(json_array_get(names, (size_t)i)));
        paths[i] = p;
        CHECK_INT_EQ(mv_file_map(p, &files[i], &err), MV_OK);
        bytes[i] = files[i].data;
        sizes[i] = files[i].size;
        CHECK_INT_EQ(mv_image_decode(bytes[i], sizes[i], p, NULL, &images[i], &err), MV_OK);
        float *chw = malloc(image_floats * sizeof *chw);
        CHECK_INT_EQ(mv_model_preprocess_image(model, &images[i], chw, &err), MV_OK);
        double d = test_max_abs_diff(chw, pixels + i * image_floats, image_floats);
        free(chw);
        worst_pixel = d > worst_pixel ? d : worst_pixel;
    }
    printf("%-28s max |d| %.3g\n", "preprocessing vs PIL", worst_pixel);
    CHECK(worst_pixel < 1e-5);

    /* End to end from the files: all in one call, decoded images, and one at a time. */
    float *out = malloc((size_t)n_images * dim * sizeof *out);
    CHECK_INT_EQ(mv_model_embed_image_bytes(model, bytes, sizes, paths, n_images, 1, out, &err), MV_OK);
    compare("files, normalized", out, json_object_get(expected, "normalized"), n_images, dim, MIN_COS_FILE);
    CHECK_INT_EQ(mv_model_embed_image_bytes(model, bytes, sizes, paths, n_images, 0, out, &err), MV_OK);
    compare("files, raw", out, json_object_get(expected, "raw"), n_images, dim, MIN_COS_FILE);
    CHECK_INT_EQ(mv_model_embed_images(model, images, n_images, 1, out, &err), MV_OK);
    compare("decoded images, normalized", out, json_object_get(expected, "normalized"), n_images, dim,
            MIN_COS_FILE);
    for (int i = 0; i < n_images; i++)
        CHECK_INT_EQ(mv_model_embed_images(model, &images[i], 1, 1, out + (size_t)i * dim, &err), MV_OK);
    compare("one image per batch", out, json_object_get(expected, "normalized"), n_images, dim, MIN_COS_FILE);

    /* More images than one batch: the files repeated, in order. */
    enum { REPEATS = 5 };
    const int n_many = REPEATS * n_images;
    const void **many_bytes = malloc((size_t)n_many * sizeof *many_bytes);
    size_t *many_sizes = malloc((size_t)n_many * sizeof *many_sizes);
    float *many_out = malloc((size_t)n_many * dim * sizeof *many_out);
    for (int i = 0; i < n_many; i++) {
        many_bytes[i] = bytes[i % n_images];
        many_sizes[i] = sizes[i % n_images];
    }
    CHECK(n_many > model->image.max_batch);
    CHECK_INT_EQ(mv_model_embed_image_bytes(model, many_bytes, many_sizes, NULL, n_many, 1, many_out, &err), MV_OK);
    for (int r = 0; r < REPEATS; r++)
        compare("files, several batches", many_out + (size_t)r * n_images * dim,
                json_object_get(expected, "normalized"), n_images, dim, MIN_COS_FILE);
    free(many_bytes);
    free(many_sizes);
    free(many_out);

    /* Bad bytes name the input; a too-small pixel limit is MV_ETOOBIG. */
    const char garbage[] = "this is not an image";
    const void *bad_bytes[2] = {bytes[0], garbage};
    size_t bad_sizes[2] = {sizes[0], sizeof garbage};
    const char *bad_names[2] = {"first.png", "second.bin"};
    CHECK(mv_model_embed_image_bytes(model, bad_bytes, bad_sizes, bad_names, 2, 1, out, &err) != MV_OK);
    CHECK_STR_CONTAINS(err.message, "second.bin");
    model->max_pixels = 100;
    CHECK_INT_EQ(mv_model_embed_image_bytes(model, bytes, sizes, paths, 1, 1, out, &err), MV_ETOOBIG);
    CHECK_INT_EQ(mv_model_embed_images(model, images, 0, 1, out, &err), MV_EINPUT);

    /* The text side: ConVIRT's own expectations; BioViL's text tower is CXR-BERT's. */
    if (json_object_get(expected, "texts")) {
        check_texts(model, json_object_get(expected, "texts"), json_object_get(expected, "token_ids"),
                    json_object_get(expected, "text_normalized"));
    } else if (!strcmp(argv[2], "biovil")) {
        snprintf(path, sizeof path, "%s/expected/cxr-bert.json", fixtures);
        json_t *text = json_load_file(path, 0, &jerr);
        CHECK(text != NULL);
        if (text)
            check_texts(model, json_object_get(text, "texts"), json_object_get(text, "token_ids"),
                        json_object_get(json_object_get(text, "single"), "normalized"));
        json_decref(text);
    }

    /* The weights checksum is stable and hex. */
    char sum1[65], sum2[65];
    CHECK_INT_EQ(mv_model_weights_checksum(model, sum1, &err), MV_OK);
    CHECK_INT_EQ(mv_model_weights_checksum(model, sum2, &err), MV_OK);
    CHECK(strlen(sum1) == 64 && !strcmp(sum1, sum2) && strspn(sum1, "0123456789abcdef") == 64);

    for (int i = 0; i < n_images; i++) {
        mv_image_free(&images[i]);
        mv_file_unmap(&files[i]);
        free((void *)paths[i]);
    }
    free(images);
    free(files);
    free(bytes);
    free(sizes);
    free(paths);
    free(out);
    free(pixels);
    mv_model_free(model);
    json_decref(expected);
    return test_report(argv[1]);
}
