/* families_test.h — helpers of the family parity tests: fixture paths under tests/fixtures/families,
 * raw float32 files, expected.json, decoded images, and cosine checks against the PyTorch references
 * made by tests/reference/make_{gloria,medclip}_fixtures.py. */
#ifndef MEDVLP_FAMILIES_TEST_H
#define MEDVLP_FAMILIES_TEST_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medvlp/error.h"
#include "medvlp/file.h"
#include "medvlp/image.h"
#include "../test.h"

#define TOWER_MIN_COSINE 0.99999   /* same input tensor */
#define FILE_MIN_COSINE 0.9999     /* from the image file, through our preprocessing */

static inline const char *family_path(const char *name)
{
    static char path[4][4096];
    static int slot;
    const char *root = getenv("MEDVLP_FIXTURES");
    slot = (slot + 1) % 4;
    snprintf(path[slot], sizeof path[slot], "%s/families/%s", root ? root : "tests/fixtures", name);
    return path[slot];
}

static inline void die(const char *what, const mv_error *err)
{
    fprintf(stderr, "%s: %s\n", what, err->message);
    exit(1);
}

/* Exactly n_floats little-endian float32 values, or exit: a missing fixture is a broken test. */
static inline float *read_f32(const char *name, size_t n_floats)
{
    char *data;
    size_t size;
    mv_error err = {0};
    if (mv_file_read_all(family_path(name), 256u << 20, &data, &size, &err))
        die(name, &err);
    if (size != n_floats * sizeof(float)) {
        fprintf(stderr, "%s: %zu bytes, expected %zu floats\n", name, size, n_floats);
        exit(1);
    }
    float *out = malloc(size);
    memcpy(out, data, size);
    free(data);
    return out;
}

static inline json_t *read_json(const char *name)
{
    json_error_t jerr;
    json_t *root = json_load_file(family_path(name), 0, &jerr);
    if (!root) {
        fprintf(stderr, "%s: %s\n", name, jerr.text);
        exit(1);
    }
    return root;
}

/* A JSON array of numbers as floats (n must match). */
static inline void json_floats(const json_t *array, float *out, size_t n)
{
    if (json_array_size(array) != n) {
        fprintf(stderr, "expected.json: array of %zu numbers, expected %zu\n", json_array_size(array), n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (float)json_number_value(json_array_get(array, i));
}

static inline void decode_fixture_image(const char *name, mv_image *img)
{
    char *data;
    size_t size;
    mv_error err = {0};
    if (mv_file_read_all(family_path(name), 64u << 20, &data, &size, &err) ||
        mv_image_decode(data, size, name, NULL, img, &err))
        die(name, &err);
    free(data);
}

static inline double check_cosine(const char *what, const float *got, const float *want, size_t n, double min_cos)
{
    double cos = test_cosine(got, want, n);
    CHECK_MSG(cos >= min_cos, "%s: cosine %.9f < %.6f", what, cos, min_cos);
    fprintf(stderr, "%s: cosine %.9f, max |delta| %.3g\n", what, cos, test_max_abs_diff(got, want, n));
    return cos;
}

#endif
