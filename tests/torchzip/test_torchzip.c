/* test_torchzip.c — every checkpoint in tests/fixtures/torchzip opens through mv_weights_open with the
 * tensors, dtypes, shapes and values torch/numpy recorded in expected.json (make_torch_fixtures.py);
 * tied tensors share memory; every hostile or corrupt file fails with a message naming the file and
 * the fault, and nothing it asks to call is ever run. */
#include "medvlp/weights.h"
#include "../test.h"

#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

static const char *fixtures_dir(void)
{
    const char *dir = getenv("MEDVLP_FIXTURES");
    return dir ? dir : "tests/fixtures";
}

static void check_tensor(const mv_weights *w, const char *file, const char *name, json_t *want)
{
    const mv_tensor_entry *e = mv_weights_find(w, name);
    CHECK_MSG(e != NULL, "%s: tensor %s missing", file, name);
    if (!e)
        return;
    CHECK_MSG(!strcmp(mv_weights_dtype_name(e->dtype), json_string_value(json_object_get(want, "dtype"))),
              "%s: %s dtype %s", file, name, mv_weights_dtype_name(e->dtype));
    json_t *shape = json_object_get(want, "shape"), *values = json_object_get(want, "values");
    CHECK_INT_EQ(e->ndim, json_array_size(shape));
    for (int d = 0; d < e->ndim && d < (int)json_array_size(shape); d++)
        CHECK_INT_EQ(e->shape[d], json_integer_value(json_array_get(shape, (size_t)d)));
    CHECK_INT_EQ(e->n_elements, json_array_size(values));
    if (e->n_elements != json_array_size(values))
        return;
    int is_float = e->dtype == MV_DTYPE_F32 || e->dtype == MV_DTYPE_F16 || e->dtype == MV_DTYPE_BF16 ||
                   e->dtype == MV_DTYPE_F64;
    CHECK_MSG(is_float == (e->f32 != NULL), "%s: %s float view presence", file, name);
    size_t mismatches = 0;
    for (size_t i = 0; i < e->n_elements; i++) {
        json_t *v = json_array_get(values, i);
        if (is_float) {
            mismatches += e->f32[i] != (float)json_number_value(v);
        } else if (e->dtype == MV_DTYPE_I64) {
            int64_t got;
            memcpy(&got, (const unsigned char *)e->raw + 8 * i, 8);
            mismatches += got != json_integer_value(v);
        }
    }
    CHECK_MSG(mismatches == 0, "%s: %s: %zu of %zu values differ from torch's", file, name, mismatches,
              e->n_elements);
}

static void check_file(const char *file, json_t *want)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/torchzip/%s", fixtures_dir(), file);
    mv_weights *w = NULL;
    mv_error err = {0};
    int rc = mv_weights_open(path, &w, &err);
    CHECK_MSG(rc == MV_OK, "%s: %s", file, err.message);
    if (rc)
        return;
    json_t *tensors = json_object_get(want, "tensors");
    CHECK_INT_EQ(mv_weights_count(w), json_object_size(tensors));
    const char *name;
    json_t *tensor;
    json_object_foreach(tensors, name, tensor)
        check_tensor(w, file, name, tensor);
    size_t i;
    json_t *pair;
    json_array_foreach(json_object_get(want, "ties"), i, pair) {
        const mv_tensor_entry *a = mv_weights_find(w, json_string_value(json_array_get(pair, 0)));
        const mv_tensor_entry *b = mv_weights_find(w, json_string_value(json_array_get(pair, 1)));
        CHECK_MSG(a && b && a->raw == b->raw, "%s: tied tensors should share one storage", file);
    }
    mv_weights_free(w);
}

static void check_error(const char *file, json_t *needles)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/torchzip/%s", fixtures_dir(), file);
    mv_weights *w = NULL;
    mv_error err = {0};
    int rc = mv_weights_open(path, &w, &err);
    CHECK_MSG(rc != MV_OK && w == NULL, "%s should be refused", file);
    size_t i;
    json_t *needle;
    json_array_foreach(needles, i, needle)
        CHECK_STR_CONTAINS(err.message, json_string_value(needle));
    if (rc)
        fprintf(stderr, "  %s -> %s\n", file, err.message);
    mv_weights_free(w);
}

int main(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/torchzip/expected.json", fixtures_dir());
    json_error_t jerr;
    json_t *expected = json_load_file(path, 0, &jerr);
    CHECK_MSG(expected != NULL, "%s: %s", path, jerr.text);
    if (!expected)
        return test_report("torchzip");
    unlink("/tmp/medvlp_pwned_by_fixture");
    const char *file;
    json_t *value;
    json_object_foreach(json_object_get(expected, "files"), file, value)
        check_file(file, value);
    json_object_foreach(json_object_get(expected, "errors"), file, value)
        check_error(file, value);
    CHECK_MSG(access("/tmp/medvlp_pwned_by_fixture", F_OK) != 0, "a hostile pickle ran code");

    /* The format is chosen by content, and the int64 buffers never pass as weights. */
    snprintf(path, sizeof path, "%s/torchzip/basic.pt", fixtures_dir());
    mv_weights *w = NULL;
    mv_error err = {0};
    if (mv_weights_open(path, &w, &err) == MV_OK) {
        CHECK(!strcmp(mv_weights_format(w), "torch-zip"));
        const float *p;
        CHECK(mv_weights_take(w, &p, &err, MV_SHAPE(1, 6), "embeddings.position_ids") != MV_OK);
        CHECK_STR_CONTAINS(err.message, "I64");
        CHECK(mv_weights_take(w, &p, &err, MV_SHAPE(3, 4), "linear.weight") == MV_OK);
        mv_weights_free(w);
    }
    snprintf(path, sizeof path, "%s/torchzip/legacy.bin", fixtures_dir());
    if (mv_weights_open(path, &w, &err) == MV_OK) {
        CHECK(!strcmp(mv_weights_format(w), "torch-legacy"));
        mv_weights_free(w);
    }
    json_decref(expected);
    return test_report("torchzip");
}
