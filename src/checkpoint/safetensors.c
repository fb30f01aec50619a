/* safetensors.c — owns reading and validating the safetensors container (Hugging Face's format):
 *   8 bytes   little-endian u64 N, the header length
 *   N bytes   a JSON object {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {…}}
 *   the rest  the data section; offsets are relative to its start.
 * Every field is checked before a byte of tensor data is touched, since the file may come from
 * anywhere: the header must lie inside the file, each tensor's byte range inside the data section and
 * exactly as long as its shape × dtype says, and no two tensors may share a byte. Tensor data is
 * handed to the container in place (the container keeps the mapping and converts F16/BF16/F64). */
#include "checkpoint/readers.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METADATA_KEY "__metadata__"

typedef struct st_tensor {
    const char *name;          /* borrowed from the parsed header */
    mv_dtype dtype;
    int ndim;
    int64_t shape[MV_MAX_DIMS];
    uint64_t begin, end;       /* byte range in the data section */
} st_tensor;

static const struct { const char *name; mv_dtype dtype; } supported_dtypes[] = {
    {"F32", MV_DTYPE_F32}, {"F16", MV_DTYPE_F16}, {"BF16", MV_DTYPE_BF16}, {"F64", MV_DTYPE_F64},
    {"I64", MV_DTYPE_I64}, {"I32", MV_DTYPE_I32}, {"I16", MV_DTYPE_I16}, {"I8", MV_DTYPE_I8},
    {"U8", MV_DTYPE_U8}, {"BOOL", MV_DTYPE_BOOL},
};

/* Dtypes the format defines that no model we serve stores: a well-formed file we cannot use. */
static const char *const unsupported_dtypes[] = {
    "U16", "U32", "U64", "C64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",
};

static int parse_dtype(const char *path, const char *tensor, const char *text, mv_dtype *out, mv_error *err)
{
    for (size_t i = 0; i < sizeof supported_dtypes / sizeof supported_dtypes[0]; i++) {
        if (!strcmp(text, supported_dtypes[i].name)) {
            *out = supported_dtypes[i].dtype;
            return MV_OK;
        }
    }
    for (size_t i = 0; i < sizeof unsupported_dtypes / sizeof unsupported_dtypes[0]; i++)
        if (!strcmp(text, unsupported_dtypes[i]))
            return mv_fail(err, MV_EUNSUPPORTED, "%s: tensor %s has dtype %s, which medvlp does not read "
                           "(supported: F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL)", path, tensor, text);
    return mv_fail(err, MV_EFORMAT, "%s: tensor %s has unknown dtype \"%.32s\"", path, tensor, text);
}

/* A JSON integer in [0, INT64_MAX]; jansson already rejects integers that overflow its type. */
static int json_to_u64(const json_t *value, uint64_t *out)
{
    if (!json_is_integer(value) || json_integer_value(value) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(value);
    return 0;
}

static int parse_shape(const char *path, st_tensor *t, const json_t *shape, uint64_t *n_elements,
                       mv_error *err)
{
    if (!json_is_array(shape))
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s: \"shape\" is not an array", path, t->name);
    size_t ndim = json_array_size(shape);
    if (ndim > MV_MAX_DIMS)
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s has %zu dimensions (at most %d supported)", path,
                       t->name, ndim, MV_MAX_DIMS);
    uint64_t count = 1;
    for (size_t d = 0; d < ndim; d++) {
        uint64_t extent;
        if (json_to_u64(json_array_get(shape, d), &extent) != 0)
            return mv_fail(err, MV_EFORMAT, "%s: tensor %s: shape[%zu] is not a non-negative integer", path,
                           t->name, d);
        if (extent > 0 && count > UINT64_MAX / extent)
            return mv_fail(err, MV_EFORMAT, "%s: tensor %s: shape overflows 64 bits", path, t->name);
        count *= extent;
        t->shape[d] = (int64_t)extent;
    }
    t->ndim = (int)ndim;
    *n_elements = count;
    return MV_OK;
}

static int parse_offsets(const char *path, st_tensor *t, const json_t *offsets, uint64_t data_size,
                         mv_error *err)
{
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
        json_to_u64(json_array_get(offsets, 0), &t->begin) != 0 ||
        json_to_u64(json_array_get(offsets, 1), &t->end) != 0)
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s: \"data_offsets\" is not [begin, end] with "
                       "non-negative integers", path, t->name);
    if (t->end < t->begin)
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s: data_offsets end %llu is before begin %llu", path,
                       t->name, (unsigned long long)t->end, (unsigned long long)t->begin);
    if (t->end > data_size)
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s: data_offsets [%llu, %llu] run past the data "
                       "section (%llu bytes; file truncated?)", path, t->name, (unsigned long long)t->begin,
                       (unsigned long long)t->end, (unsigned long long)data_size);
    return MV_OK;
}

static int parse_tensor(const char *path, const char *name, const json_t *info, uint64_t data_size,
                        st_tensor *t, mv_error *err)
{
    memset(t, 0, sizeof *t);
    t->name = name;
    if (!json_is_object(info))
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s: header entry is not an object", path, name);
    const json_t *dtype = json_object_get(info, "dtype");
    const json_t *shape = json_object_get(info, "shape");
    const json_t *offsets = json_object_get(info, "data_offsets");
    if (!dtype || !shape || !offsets)
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s: header entry lacks \"%s\"", path, name,
                       !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!json_is_string(dtype))
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s: \"dtype\" is not a string", path, name);
    uint64_t n_elements = 0;
    int rc = parse_dtype(path, name, json_string_value(dtype), &t->dtype, err);
    if (!rc)
        rc = parse_shape(path, t, shape, &n_elements, err);
    if (!rc)
        rc = parse_offsets(path, t, offsets, data_size, err);
    if (rc)
        return rc;
    /* Compare by division so a huge shape cannot overflow the byte count. */
    uint64_t n_bytes = t->end - t->begin, element_size = mv_weights_dtype_size(t->dtype);
    if (n_bytes % element_size == 0 && n_bytes / element_size == n_elements)
        return MV_OK;
    char needed[48] = "more than 2^64";
    if (n_elements <= UINT64_MAX / element_size)
        snprintf(needed, sizeof needed, "%llu", (unsigned long long)(n_elements * element_size));
    return mv_fail(err, MV_EFORMAT, "%s: tensor %s: data_offsets span %llu bytes but its shape of %llu %s "
                   "elements needs %s bytes", path, name, (unsigned long long)n_bytes,
                   (unsigned long long)n_elements, mv_weights_dtype_name(t->dtype), needed);
}

static int compare_begin(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Two tensors sharing bytes would alias each other's weights: a malformed (or hostile) file.
 * Empty tensors own no bytes, so they cannot overlap anything. */
static int check_overlaps(const char *path, st_tensor *tensors, size_t n_tensors, mv_error *err)
{
    st_tensor **by_begin = malloc((n_tensors ? n_tensors : 1) * sizeof *by_begin);
    if (!by_begin)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n_tensors; i++)
        by_begin[i] = &tensors[i];
    qsort(by_begin, n_tensors, sizeof *by_begin, compare_begin);
    const st_tensor *furthest = NULL; /* the non-empty tensor seen so far that ends last */
    int rc = MV_OK;
    for (size_t i = 0; i < n_tensors && !rc; i++) {
        const st_tensor *t = by_begin[i];
        if (t->begin == t->end)
            continue;
        if (furthest && t->begin < furthest->end)
            rc = mv_fail(err, MV_EFORMAT, "%s: tensors %s [%llu, %llu] and %s [%llu, %llu] overlap", path,
                         furthest->name, (unsigned long long)furthest->begin, (unsigned long long)furthest->end,
                         t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
        if (!furthest || t->end > furthest->end)
            furthest = t;
    }
    free(by_begin);
    return rc;
}

static int read_metadata(mv_weights *weights, const char *path, const json_t *metadata, mv_error *err)
{
    if (!json_is_object(metadata))
        return mv_fail(err, MV_EFORMAT, "%s: safetensors \"" METADATA_KEY "\" is not an object", path);
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)metadata, key, value) {
        if (!json_is_string(value))
            return mv_fail(err, MV_EFORMAT, "%s: safetensors metadata \"%s\" is not a string", path, key);
        int rc = mv_weights_set_metadata(weights, key, json_string_value(value), err);
        if (rc)
            return rc;
    }
    return MV_OK;
}

/* Validates every tensor entry of the parsed header, then hands them to the container. */
static int read_tensors(mv_weights *weights, const char *path, json_t *header, const unsigned char *data_section,
                        uint64_t data_size, mv_error *err)
{
    size_t n_tensors = json_object_size(header) - (json_object_get(header, METADATA_KEY) != NULL);
    st_tensor *tensors = calloc(n_tensors ? n_tensors : 1, sizeof *tensors);
    if (!tensors)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", path);
    size_t count = 0;
    int rc = MV_OK;
    const char *name;
    json_t *info;
    json_object_foreach(header, name, info) {
        if (!strcmp(name, METADATA_KEY))
            rc = read_metadata(weights, path, info, err);
        else
            rc = parse_tensor(path, name, info, data_size, &tensors[count++], err);
        if (rc)
            break;
    }
    if (!rc)
        rc = check_overlaps(path, tensors, count, err);
    for (size_t i = 0; i < count && !rc; i++) {
        const st_tensor *t = &tensors[i];
        rc = mv_weights_add(weights, t->name, t->dtype, t->ndim, t->shape, data_section + t->begin,
                            (size_t)(t->end - t->begin), err);
    }
    free(tensors);
    return rc;
}

int mv_safetensors_read(mv_weights *weights, const char *path, const unsigned char *data, size_t size,
                        mv_error *err)
{
    if (size < 8)
        return mv_fail(err, MV_EFORMAT, "%s: safetensors file is %zu bytes, shorter than its 8-byte header "
                       "length", path, size);
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; i--)
        header_size = header_size << 8 | data[i];
    if (header_size > size - 8)
        return mv_fail(err, MV_EFORMAT, "%s: safetensors header length %llu exceeds the %zu bytes left in the "
                       "file (truncated or not safetensors)", path, (unsigned long long)header_size, size - 8);
    json_error_t json_err;
    json_t *header = json_loadb((const char *)data + 8, (size_t)header_size, JSON_REJECT_DUPLICATES, &json_err);
    if (!header)
        return mv_fail(err, MV_EFORMAT, "%s: safetensors header is not valid JSON (byte %d: %s)", path,
                       json_err.position, json_err.text);
    int rc;
    if (!json_is_object(header))
        rc = mv_fail(err, MV_EFORMAT, "%s: safetensors header is not a JSON object", path);
    else
        rc = read_tensors(weights, path, header, data + 8 + header_size, size - 8 - header_size, err);
    json_decref(header);
    return rc;
}
