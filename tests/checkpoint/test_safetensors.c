/* test_safetensors.c — the safetensors reader against files written by an independent Python writer
 * (tests/reference/make_safetensors_fixtures.py): every value of every dtype bit-exact against
 * numpy/torch, every corrupt variant rejected with the right status and a message naming the file
 * (and tensor), mv_weights_take's errors, and a mutation loop that must never crash (run under ASan). */
#include "medvlp/weights.h"
#include "checkpoint/readers.h"
#include "../test.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fixture_dir[1024];

static const char *fixture(const char *name)
{
    static char path[2048];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, name);
    return path;
}

static int64_t stored_int(const mv_tensor_entry *e, size_t i)
{
    const unsigned char *p = (const unsigned char *)e->raw + i * mv_weights_dtype_size(e->dtype);
    switch (e->dtype) {
    case MV_DTYPE_I64: { int64_t v; memcpy(&v, p, 8); return v; }
    case MV_DTYPE_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case MV_DTYPE_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case MV_DTYPE_I8: return (int8_t)*p;
    default: return *p; /* U8, BOOL */
    }
}

static void check_tensor(const mv_weights *w, const char *file, const char *name, const json_t *want, int aligned)
{
    const mv_tensor_entry *e = mv_weights_find(w, name);
    CHECK_MSG(e != NULL, "%s: %s missing", file, name);
    if (!e)
        return;
    CHECK_MSG(!strcmp(mv_weights_dtype_name(e->dtype), json_string_value(json_object_get(want, "dtype"))),
              "%s: %s dtype %s", file, name, mv_weights_dtype_name(e->dtype));
    const json_t *shape = json_object_get(want, "shape");
    CHECK_INT_EQ(e->ndim, json_array_size(shape));
    size_t n_elements = 1;
    for (size_t d = 0; d < json_array_size(shape) && (int)d < e->ndim; d++) {
        CHECK_INT_EQ(e->shape[d], json_integer_value(json_array_get(shape, d)));
        n_elements *= (size_t)json_integer_value(json_array_get(shape, d));
    }
    CHECK_INT_EQ(e->n_elements, n_elements);
    const json_t *bits = json_object_get(want, "f32_bits"), *ints = json_object_get(want, "ints");
    if (bits) {
        CHECK_MSG(e->f32 != NULL, "%s: %s has no float32 data", file, name);
        CHECK_INT_EQ(json_array_size(bits), e->n_elements);
        size_t mismatches = 0;
        for (size_t i = 0; e->f32 && i < json_array_size(bits) && i < e->n_elements; i++) {
            uint32_t got;
            memcpy(&got, &e->f32[i], 4);
            if (got != (uint32_t)json_integer_value(json_array_get(bits, i))) {
                mismatches++;
                fprintf(stderr, "%s: %s[%zu] = 0x%08x, numpy says 0x%08llx\n", file, name, i, (unsigned)got,
                        (long long)json_integer_value(json_array_get(bits, i)));
            }
        }
        CHECK_INT_EQ(mismatches, 0);
        /* F32 is served straight from the mapping when aligned, copied when not. */
        if (e->dtype == MV_DTYPE_F32 && e->n_elements > 0)
            CHECK_MSG((e->f32 == e->raw) == aligned, "%s: %s zero-copy %d, aligned %d", file, name,
                      e->f32 == e->raw, aligned);
    } else {
        CHECK_MSG(e->f32 == NULL, "%s: integer tensor %s offered as float", file, name);
        CHECK_INT_EQ(json_array_size(ints), e->n_elements);
        for (size_t i = 0; i < json_array_size(ints) && i < e->n_elements; i++)
            CHECK_INT_EQ(stored_int(e, i), json_integer_value(json_array_get(ints, i)));
    }
}

static void test_valid_files(const json_t *expected)
{
    const json_t *tensors = json_object_get(expected, "tensors"), *metadata = json_object_get(expected, "metadata");
    const json_t *aligned_files = json_object_get(expected, "aligned_files"), *file_name;
    size_t index;
    json_array_foreach(json_object_get(expected, "valid_files"), index, file_name) {
        const char *file = json_string_value(file_name);
        int aligned = 0;
        for (size_t i = 0; i < json_array_size(aligned_files); i++)
            aligned |= !strcmp(file, json_string_value(json_array_get(aligned_files, i)));
        mv_weights *w = NULL;
        mv_error err = {0};
        int rc = mv_weights_open(fixture(file), &w, &err);
        CHECK_MSG(rc == MV_OK, "%s: %s", file, err.message);
        if (rc)
            continue;
        CHECK_STR_CONTAINS(mv_weights_format(w), "safetensors");
        CHECK_INT_EQ(mv_weights_count(w), json_object_size(tensors));
        const char *name;
        const json_t *want;
        json_object_foreach((json_t *)tensors, name, want)
            check_tensor(w, file, name, want, aligned);
        for (size_t i = 1; i < mv_weights_count(w); i++) /* mv_weights_at is sorted by name */
            CHECK(strcmp(mv_weights_at(w, i - 1)->name, mv_weights_at(w, i)->name) < 0);
        const char *key;
        const json_t *value;
        json_object_foreach((json_t *)metadata, key, value)
            CHECK_STR_CONTAINS(mv_weights_metadata(w, key), json_string_value(value));
        CHECK(mv_weights_metadata(w, "absent") == NULL);
        CHECK(mv_weights_find(w, "__metadata__") == NULL);
        mv_weights_free(w);
    }
}

static void test_take(void)
{
    const char *path = fixture("valid.safetensors");
    mv_weights *w = NULL;
    mv_error err = {0};
    CHECK_INT_EQ(mv_weights_open(path, &w, &err), MV_OK);
    if (!w)
        return;
    const float *data = NULL;
    CHECK_INT_EQ(mv_weights_take(w, &data, &err, MV_SHAPE(3, 4), "encoder.%s", "weight"), MV_OK);
    CHECK(data != NULL && data == mv_weights_find(w, "encoder.weight")->f32);
    CHECK(mv_weights_find(w, "encoder.weight")->used);
    CHECK(!mv_weights_find(w, "encoder.bias")->used);
    CHECK_INT_EQ(mv_weights_take(w, &data, &err, 0, NULL, "scalar"), MV_OK);
    CHECK(data && data[0] == 2.5f);
    CHECK_INT_EQ(mv_weights_take(w, &data, &err, MV_SHAPE(0, 3), "empty"), MV_OK);
    CHECK(mv_weights_has(w, "encoder.%s", "bias"));
    CHECK(!mv_weights_has(w, "encoder.%s", "gamma"));

    CHECK_INT_EQ(mv_weights_take(w, &data, &err, MV_SHAPE(4), "decoder.layer.%d.bias", 7), MV_ENOTFOUND);
    CHECK(data == NULL);
    CHECK_STR_CONTAINS(err.message, path);
    CHECK_STR_CONTAINS(err.message, "decoder.layer.7.bias");

    CHECK_INT_EQ(mv_weights_take(w, &data, &err, MV_SHAPE(4, 3), "encoder.weight"), MV_EFORMAT);
    CHECK(data == NULL);
    CHECK_STR_CONTAINS(err.message, path);
    CHECK_STR_CONTAINS(err.message, "encoder.weight");
    CHECK_STR_CONTAINS(err.message, "[3, 4]");
    CHECK_STR_CONTAINS(err.message, "[4, 3]");

    CHECK_INT_EQ(mv_weights_take(w, &data, &err, MV_SHAPE(3, 4, 1), "encoder.weight"), MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, "[3, 4, 1]");

    CHECK_INT_EQ(mv_weights_take(w, &data, &err, MV_SHAPE(1, 7), "text.position_ids"), MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, path);
    CHECK_STR_CONTAINS(err.message, "text.position_ids");
    CHECK_STR_CONTAINS(err.message, "I64");
    CHECK_INT_EQ(mv_weights_take(w, &data, &err, MV_SHAPE(4), "mask"), MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, "BOOL");
    mv_weights_free(w);
}

static void test_corrupt_files(const json_t *expected)
{
    size_t index;
    const json_t *item;
    json_array_foreach(json_object_get(expected, "corrupt"), index, item) {
        const char *file = json_string_value(json_object_get(item, "file"));
        const char *status = json_string_value(json_object_get(item, "status"));
        mv_weights *w = (mv_weights *)&index; /* must be reset to NULL on failure */
        mv_error err = {0};
        int rc = mv_weights_open(fixture(file), &w, &err);
        CHECK_MSG(rc != MV_OK && !strcmp(mv_status_name(rc), status), "%s: status %s, expected %s (%s)", file,
                  mv_status_name(rc), status, err.message);
        CHECK_INT_EQ(err.code, rc);
        CHECK(w == NULL);
        CHECK_STR_CONTAINS(err.message, fixture(file));
        const json_t *fragment;
        size_t j;
        json_array_foreach(json_object_get(item, "contains"), j, fragment)
            CHECK_STR_CONTAINS(err.message, json_string_value(fragment));
        if (rc == MV_OK)
            mv_weights_free(w);
    }
    mv_weights *w = NULL;
    mv_error err = {0};
    CHECK_INT_EQ(mv_weights_open(fixture("no_such_file.safetensors"), &w, &err), MV_ENOTFOUND);
    CHECK_STR_CONTAINS(err.message, fixture("no_such_file.safetensors"));
    CHECK_INT_EQ(mv_weights_open(fixture_dir, &w, &err), MV_EINPUT); /* a directory */
    CHECK_STR_CONTAINS(err.message, fixture_dir);
}

/* Runs the reader on an exact-size heap copy so ASan sees any read past the end. Returns the status;
 * on success reads every element once, so a tensor pointing outside the buffer would be caught. */
static int read_buffer(const unsigned char *bytes, size_t size, mv_error *err)
{
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy)
        return MV_ENOMEM;
    memcpy(copy, bytes, size);
    mv_weights *w = mv_weights_new("mutant.safetensors", "safetensors");
    int rc = w ? mv_safetensors_read(w, "mutant.safetensors", copy, size, err) : MV_ENOMEM;
    if (!rc)
        rc = mv_weights_finish(w, err);
    if (!rc) {
        volatile unsigned char sink = 0;
        for (size_t i = 0; i < mv_weights_count(w); i++) {
            const mv_tensor_entry *e = mv_weights_at(w, i);
            const unsigned char *raw = e->raw;
            size_t n_bytes = e->n_elements * mv_weights_dtype_size(e->dtype);
            CHECK(n_bytes == 0 || (raw >= copy && raw + n_bytes <= copy + size));
            for (size_t b = 0; b < n_bytes; b++)
                sink ^= raw[b];
            for (size_t k = 0; e->f32 && k < e->n_elements; k++)
                sink ^= (unsigned char)(e->f32[k] > 0);
        }
        (void)sink;
    } else {
        CHECK_STR_CONTAINS(err->message, "mutant.safetensors");
    }
    mv_weights_free(w);
    free(copy);
    return rc;
}

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *bytes = malloc(1 << 16);
    *size = bytes ? fread(bytes, 1, 1 << 16, f) : 0;
    fclose(f);
    return bytes;
}

static void test_truncations(const unsigned char *bytes, size_t size)
{
    char path[] = "/tmp/medvlp_safetensors_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    size_t opened = 0;
    for (size_t length = 0; length <= size; length++) {
        /* Through mv_weights_open (content detection + mapping) ... */
        CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, bytes, length, 0) == (ssize_t)length);
        mv_weights *w = NULL;
        mv_error err = {0};
        int rc = mv_weights_open(path, &w, &err);
        if (rc == MV_OK)
            opened++;
        else
            CHECK_STR_CONTAINS(err.message, path);
        CHECK_MSG((rc == MV_OK) == (length == size), "length %zu of %zu: %s", length, size, err.message);
        mv_weights_free(w);
        /* ... and straight into the reader with an exact-size buffer. */
        CHECK_INT_EQ(read_buffer(bytes, length, &err) == MV_OK, length == size);
    }
    CHECK_INT_EQ(opened, 1);
    close(fd);
    unlink(path);
}

static void test_mutations(const unsigned char *bytes, size_t size)
{
    unsigned char *mutant = malloc(size);
    if (!mutant)
        return;
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; i--)
        header_size = header_size << 8 | bytes[i];
    size_t header_end = 8 + (size_t)header_size, accepted = 0, tries = 0;
    static const unsigned char replacements[] = {'"', '{', '}', '[', ']', ',', ':', '-', '0', '9', 'e', '\\', 0};
    mv_error err;
    /* Every header byte (and the length prefix) flipped and replaced with JSON punctuation. */
    for (size_t pos = 0; pos < header_end; pos++) {
        for (size_t r = 0; r < sizeof replacements + 3; r++) {
            memcpy(mutant, bytes, size);
            mutant[pos] = r < sizeof replacements ? replacements[r] : (unsigned char)(bytes[pos] ^ (0x01u << (r * 3 % 8)));
            tries++;
            accepted += read_buffer(mutant, size, &err) == MV_OK;
        }
    }
    /* A few thousand random multi-byte mutations anywhere, with random truncation. */
    uint64_t state = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 3000; round++) {
        memcpy(mutant, bytes, size);
        int n_changes = 1 + round % 4;
        for (int c = 0; c < n_changes; c++) {
            state = state * 6364136223846793005u + 1442695040888963407u;
            mutant[(state >> 33) % size] = (unsigned char)(state >> 17);
        }
        state = state * 6364136223846793005u + 1442695040888963407u;
        size_t length = round % 3 ? size : (size_t)((state >> 33) % (size + 1));
        tries++;
        accepted += read_buffer(mutant, length, &err) == MV_OK;
    }
    fprintf(stderr, "mutations: %zu tried, %zu still valid\n", tries, accepted);
    CHECK(accepted < tries);
    free(mutant);
}

/* The reader on its own, for inputs mv_weights_open's content detection never hands it. */
static void test_reader_direct(void)
{
    static const unsigned char not_object[] = {6, 0, 0, 0, 0, 0, 0, 0, '[', '1', ',', '2', ']', ' '};
    static const unsigned char header_only[] = {2, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    mv_error err = {0};
    CHECK_INT_EQ(read_buffer(not_object, sizeof not_object, &err), MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, "not a JSON object");
    CHECK_INT_EQ(read_buffer(not_object, 7, &err), MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, "8-byte");
    CHECK_INT_EQ(read_buffer(header_only, sizeof header_only, &err), MV_OK); /* no tensors is valid */
}

/* Releasing pages is advice only: every tensor of a multi-page checkpoint reads back the same after
 * its own range and then the whole mapping are dropped, and a heap buffer handed in is left alone. */
static void test_release(void)
{
    char path[2048];
    const char *root = getenv("MEDVLP_FIXTURES");
    snprintf(path, sizeof path, "%s/models/biomedclip-safetensors/open_clip_model.safetensors", root ? root : "tests/fixtures");
    mv_weights *w = NULL;
    mv_error err = {0};
    CHECK_INT_EQ(mv_weights_open(path, &w, &err), MV_OK);
    if (!w)
        return;
    size_t total = 0;
    for (size_t i = 0; i < mv_weights_count(w); i++)
        total += mv_weights_at(w, i)->f32 ? mv_weights_at(w, i)->n_elements : 0;
    float *copy = malloc(sizeof(float) * (total + 1)), *heap = malloc(sizeof(float) * 4096);
    size_t at = 0;
    for (size_t i = 0; i < mv_weights_count(w); i++) {
        const mv_tensor_entry *e = mv_weights_at(w, i);
        if (e->f32) {
            memcpy(copy + at, e->f32, sizeof(float) * e->n_elements);
            mv_weights_release_range(w, e->f32, sizeof(float) * e->n_elements);
            at += e->n_elements;
        }
    }
    mv_weights_release_pages(w);
    int same = 1;
    at = 0;
    for (size_t i = 0; i < mv_weights_count(w); i++) {
        const mv_tensor_entry *e = mv_weights_at(w, i);
        if (e->f32) {
            same &= !memcmp(copy + at, e->f32, sizeof(float) * e->n_elements);
            at += e->n_elements;
        }
    }
    CHECK(total > 4096 && same);
    for (int i = 0; i < 4096; i++)
        heap[i] = (float)i;
    mv_weights_release_range(w, heap, sizeof(float) * 4096);
    CHECK(heap[0] == 0.0f && heap[2048] == 2048.0f && heap[4095] == 4095.0f);
    free(copy);
    free(heap);
    mv_weights_free(w);
}

int main(void)
{
    const char *root = getenv("MEDVLP_FIXTURES");
    snprintf(fixture_dir, sizeof fixture_dir, "%s/checkpoint/safetensors", root ? root : "tests/fixtures");
    json_error_t json_err;
    json_t *expected = json_load_file(fixture("expected.json"), 0, &json_err);
    CHECK_MSG(expected != NULL, "%s: %s", fixture("expected.json"), json_err.text);
    if (!expected)
        return test_report("test_safetensors");
    test_valid_files(expected);
    test_take();
    test_release();
    test_corrupt_files(expected);
    test_reader_direct();
    size_t size = 0;
    unsigned char *valid = read_file(fixture("valid.safetensors"), &size);
    CHECK(valid != NULL && size > 8);
    if (valid && size > 8) {
        test_truncations(valid, size);
        test_mutations(valid, size);
    }
    free(valid);
    json_decref(expected);
    return test_report("test_safetensors");
}
