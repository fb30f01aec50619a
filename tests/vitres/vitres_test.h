/* vitres_test.h — shared helpers of the image-encoder parity tests: fixture paths, raw float32 files,
 * checkpoints, and the per-image cosine / max |Δ| comparison against the PyTorch reference outputs
 * made by tests/reference/make_vision_model_fixtures.py. */
#ifndef MEDVLP_VITRES_TEST_H
#define MEDVLP_VITRES_TEST_H

#include "medvlp/error.h"
#include "medvlp/file.h"
#include "medvlp/weights.h"
#include "../test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define PARITY_MIN_COSINE 0.99999

static const char *fixture_path(const char *name)
{
    static char path[4096];
    const char *root = getenv("MEDVLP_FIXTURES");
    snprintf(path, sizeof path, "%s/vitres/%s", root ? root : "tests/fixtures", name);
    return path;
}

/* Reads exactly n_floats little-endian float32 values, or exits: a missing fixture is a broken test. */
static float *read_f32(const char *name, size_t n_floats)
{
    char *data;
    size_t size;
    mv_error err = {0};
    if (mv_file_read_all(fixture_path(name), 64u << 20, &data, &size, &err)) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    if (size != n_floats * sizeof(float)) {
        fprintf(stderr, "%s: %zu bytes, expected %zu floats\n", name, size, n_floats);
        exit(1);
    }
    float *out = malloc(size);
    memcpy(out, data, size);
    free(data);
    return out;
}

static mv_weights *open_fixture_weights(const char *name)
{
    mv_weights *w;
    mv_error err = {0};
    if (mv_weights_open(fixture_path(name), &w, &err)) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    return w;
}

/* Checks each of n_images rows of `dim` floats against the reference; prints min cosine, max |Δ|. */
static void check_parity(const char *what, const float *got, const float *want, int n_images, size_t dim)
{
    double min_cos = 1.0, max_diff = 0.0;
    for (int i = 0; i < n_images; i++) {
        double cos = test_cosine(got + i * dim, want + i * dim, dim);
        double diff = test_max_abs_diff(got + i * dim, want + i * dim, dim);
        min_cos = cos < min_cos ? cos : min_cos;
        max_diff = diff > max_diff ? diff : max_diff;
        CHECK_MSG(cos >= PARITY_MIN_COSINE, "%s image %d: cosine %.9f", what, i, cos);
    }
    fprintf(stderr, "%s: min cosine %.9f, max |delta| %.3g over %d images\n", what, min_cos, max_diff, n_images);
}

/* A batch must equal its images run one at a time (up to GEMM blocking differences). */
static void check_same(const char *what, const float *batch_row, const float *single, size_t dim)
{
    double diff = test_max_abs_diff(batch_row, single, dim);
    CHECK_MSG(diff <= 1e-5, "%s: batch vs single max |delta| %g", what, diff);
}

#endif
