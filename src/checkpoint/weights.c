/* weights.c — owns the tensor-name → data map of an opened checkpoint (include/medvlp/weights.h):
 * the entries, the float32 conversions, the file mapping and any buffers readers hand over.
 * Format detection is by content so a renamed file still opens with the right reader. */
#include "medvlp/pages.h"
#include "medvlp/weights.h"
#include "medvlp/file.h"
#include "checkpoint/readers.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct mv_weights {
    char *path;
    const char *format;
    mv_tensor_entry *entries;
    size_t n_entries, cap_entries;
    void **buffers;            /* heap buffers to free: names, conversions, reader-owned data */
    size_t n_buffers, cap_buffers;
    mv_mapped_file mapping;
    int sorted;
    struct { const char *key, *value; } *metadata;   /* strings kept in buffers */
    size_t n_metadata;
};

static int keep(mv_weights *w, void *buffer)
{
    if (w->n_buffers == w->cap_buffers) {
        size_t cap = w->cap_buffers ? w->cap_buffers * 2 : 64;
        void **grown = realloc(w->buffers, cap * sizeof *grown);
        if (!grown)
            return -1;
        w->buffers = grown;
        w->cap_buffers = cap;
    }
    w->buffers[w->n_buffers++] = buffer;
    return 0;
}

mv_weights *mv_weights_new(const char *path, const char *format)
{
    mv_weights *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->path = strdup(path ? path : "");
    w->format = format;
    if (!w->path) {
        free(w);
        return NULL;
    }
    return w;
}

void mv_weights_free(mv_weights *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_buffers; i++)
        free(w->buffers[i]);
    free(w->buffers);
    free(w->entries);
    free(w->metadata);
    mv_file_unmap(&w->mapping);
    free(w->path);
    free(w);
}

void mv_weights_release_pages(const mv_weights *w)
{
    /* The mapping is PROT_READ, MAP_PRIVATE (mv_file_map): never written, so no private copy of a
     * page can be lost; heap buffers (conversions) are not touched. Advice only: failure is harmless. */
    if (w->mapping.data && w->mapping.size)
        (void)madvise((void *)w->mapping.data, w->mapping.size, MADV_DONTNEED);
}

void mv_weights_release_range(const mv_weights *w, const void *data, size_t bytes)
{
    const uintptr_t map = (uintptr_t)w->mapping.data, begin = (uintptr_t)data, end = begin + bytes;
    if (!map || begin < map || end > map + w->mapping.size) /* heap memory: DONTNEED would zero it */
        return;
    mv_advise_whole_pages(data, bytes, MADV_DONTNEED);
}

int mv_weights_keep_buffer(mv_weights *w, void *buffer, mv_error *err)
{
    if (keep(w, buffer) != 0) {
        free(buffer);
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", w->path);
    }
    return MV_OK;
}

int mv_weights_keep_mapping(mv_weights *w, const void *data, size_t size, mv_error *err)
{
    if (w->mapping.data)
        return mv_fail(err, MV_EINTERNAL, "%s: mapping already set", w->path);
    w->mapping.data = data;
    w->mapping.size = size;
    return MV_OK;
}

static char *keep_string(mv_weights *w, const char *text)
{
    char *copy = strdup(text);
    if (!copy || keep(w, copy) != 0) {
        free(copy);
        return NULL;
    }
    return copy;
}

int mv_weights_set_metadata(mv_weights *w, const char *key, const char *value, mv_error *err)
{
    for (size_t i = 0; i < w->n_metadata; i++) {
        if (!strcmp(w->metadata[i].key, key)) {
            if (!(w->metadata[i].value = keep_string(w, value)))
                return mv_fail(err, MV_ENOMEM, "%s: out of memory", w->path);
            return MV_OK;
        }
    }
    void *grown = realloc(w->metadata, (w->n_metadata + 1) * sizeof *w->metadata);
    if (!grown)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", w->path);
    w->metadata = grown;
    const char *key_copy = keep_string(w, key), *value_copy = key_copy ? keep_string(w, value) : NULL;
    if (!value_copy)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", w->path);
    w->metadata[w->n_metadata].key = key_copy;
    w->metadata[w->n_metadata].value = value_copy;
    w->n_metadata++;
    return MV_OK;
}

const char *mv_weights_metadata(const mv_weights *w, const char *key)
{
    for (size_t i = 0; i < w->n_metadata; i++)
        if (!strcmp(w->metadata[i].key, key))
            return w->metadata[i].value;
    return NULL;
}

size_t mv_weights_dtype_size(mv_dtype dtype)
{
    switch (dtype) {
    case MV_DTYPE_F64: case MV_DTYPE_I64: return 8;
    case MV_DTYPE_F32: case MV_DTYPE_I32: return 4;
    case MV_DTYPE_F16: case MV_DTYPE_BF16: case MV_DTYPE_I16: return 2;
    default: return 1;
    }
}

const char *mv_weights_dtype_name(mv_dtype dtype)
{
    static const char *names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"};
    return (unsigned)dtype < sizeof names / sizeof names[0] ? names[dtype] : "?";
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exponent = 127 - 15 + 1;
            while (!(mantissa & 0x400u)) {
                mantissa <<= 1;
                exponent--;
            }
            bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Returns float32 data for a float tensor: the bytes themselves when already aligned F32,
 * else a converted copy kept by the container. */
static int to_f32(mv_weights *w, mv_tensor_entry *e, const void *data, mv_error *err)
{
    size_t n = e->n_elements;
    if (e->dtype == MV_DTYPE_F32 && ((uintptr_t)data % sizeof(float)) == 0) {
        e->f32 = data;
        return MV_OK;
    }
    float *out = malloc(n ? n * sizeof(float) : 1);
    if (!out)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory converting %s", w->path, e->name);
    const unsigned char *bytes = data;
    for (size_t i = 0; i < n; i++) {
        switch (e->dtype) {
        case MV_DTYPE_F32:
            memcpy(&out[i], bytes + 4 * i, 4);
            break;
        case MV_DTYPE_F16: {
            uint16_t h;
            memcpy(&h, bytes + 2 * i, 2);
            out[i] = half_to_float(h);
            break;
        }
        case MV_DTYPE_BF16: {
            uint16_t h;
            memcpy(&h, bytes + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
            break;
        }
        default: { /* F64 */
            double d;
            memcpy(&d, bytes + 8 * i, 8);
            out[i] = (float)d;
            break;
        }
        }
    }
    e->f32 = out;
    return mv_weights_keep_buffer(w, out, err);
}

int mv_weights_add(mv_weights *w, const char *name, mv_dtype dtype, int ndim, const int64_t *shape,
                   const void *data, size_t n_bytes, mv_error *err)
{
    if (ndim < 0 || ndim > MV_MAX_DIMS)
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s has %d dimensions (at most %d supported)",
                       w->path, name, ndim, MV_MAX_DIMS);
    size_t n_elements = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] > 0 && n_elements > SIZE_MAX / 16 / (size_t)shape[d]))
            return mv_fail(err, MV_EFORMAT, "%s: tensor %s has an invalid shape", w->path, name);
        n_elements *= (size_t)shape[d];
    }
    if (n_elements * mv_weights_dtype_size(dtype) != n_bytes)
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s: %zu bytes for %zu elements of %s", w->path, name,
                       n_bytes, n_elements, mv_weights_dtype_name(dtype));
    if (w->n_entries == w->cap_entries) {
        size_t cap = w->cap_entries ? w->cap_entries * 2 : 256;
        mv_tensor_entry *grown = realloc(w->entries, cap * sizeof *grown);
        if (!grown)
            return mv_fail(err, MV_ENOMEM, "%s: out of memory", w->path);
        w->entries = grown;
        w->cap_entries = cap;
    }
    char *name_copy = keep_string(w, name);
    if (!name_copy)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", w->path);
    mv_tensor_entry *e = &w->entries[w->n_entries];
    memset(e, 0, sizeof *e);
    e->name = name_copy;
    e->dtype = dtype;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        e->shape[d] = shape[d];
    e->n_elements = n_elements;
    e->raw = data;
    if (dtype == MV_DTYPE_F32 || dtype == MV_DTYPE_F16 || dtype == MV_DTYPE_BF16 || dtype == MV_DTYPE_F64) {
        int rc = to_f32(w, e, data, err);
        if (rc)
            return rc;
    }
    w->n_entries++;
    w->sorted = 0;
    return MV_OK;
}

static int compare_entries(const void *a, const void *b)
{
    return strcmp(((const mv_tensor_entry *)a)->name, ((const mv_tensor_entry *)b)->name);
}

int mv_weights_finish(mv_weights *w, mv_error *err)
{
    if (w->n_entries > 0) /* qsort/bsearch take no NULL array, even empty */
        qsort(w->entries, w->n_entries, sizeof *w->entries, compare_entries);
    for (size_t i = 1; i < w->n_entries; i++)
        if (!strcmp(w->entries[i - 1].name, w->entries[i].name))
            return mv_fail(err, MV_EFORMAT, "%s: tensor %s appears twice", w->path, w->entries[i].name);
    w->sorted = 1;
    return MV_OK;
}

const char *mv_weights_path(const mv_weights *w) { return w->path; }
const char *mv_weights_format(const mv_weights *w) { return w->format; }
size_t mv_weights_count(const mv_weights *w) { return w->n_entries; }

const mv_tensor_entry *mv_weights_at(const mv_weights *w, size_t index)
{
    return index < w->n_entries ? &w->entries[index] : NULL;
}

const mv_tensor_entry *mv_weights_find(const mv_weights *w, const char *name)
{
    if (!w->sorted || w->n_entries == 0)
        return NULL;
    mv_tensor_entry key = {.name = name};
    return bsearch(&key, w->entries, w->n_entries, sizeof *w->entries, compare_entries);
}

int mv_weights_has(const mv_weights *w, const char *name_fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, name_fmt);
    vsnprintf(name, sizeof name, name_fmt, ap);
    va_end(ap);
    return mv_weights_find(w, name) != NULL;
}

static void format_shape(char *out, size_t size, int ndim, const int64_t *shape)
{
    size_t used = 0;
    used += (size_t)snprintf(out, size, "[");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(out + used, size - used, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (used < size)
        snprintf(out + used, size - used, "]");
}

int mv_weights_take(mv_weights *w, const float **out, mv_error *err, int ndim, const int64_t *shape,
                    const char *name_fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, name_fmt);
    vsnprintf(name, sizeof name, name_fmt, ap);
    va_end(ap);
    *out = NULL;
    mv_tensor_entry *e = (mv_tensor_entry *)mv_weights_find(w, name);
    if (!e)
        return mv_fail(err, MV_ENOTFOUND, "%s: missing tensor %s", w->path, name);
    if (!e->f32)
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s is %s, expected a float tensor", w->path, name,
                       mv_weights_dtype_name(e->dtype));
    int same = e->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = e->shape[d] == shape[d];
    if (!same) {
        char want[128], got[128];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(got, sizeof got, e->ndim, e->shape);
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s has shape %s, expected %s", w->path, name, got, want);
    }
    e->used = 1;
    *out = e->f32;
    return MV_OK;
}

int mv_weights_open(const char *path, mv_weights **out, mv_error *err)
{
    *out = NULL;
    mv_mapped_file file;
    int rc = mv_file_map(path, &file, err);
    if (rc)
        return rc;
    const unsigned char *d = file.data;
    size_t n = file.size;
    const char *format;
    int (*reader)(mv_weights *, const char *, const unsigned char *, size_t, mv_error *);
    if (n >= 4 && d[0] == 'P' && d[1] == 'K' && d[2] == 3 && d[3] == 4) {
        format = "torch-zip";
        reader = mv_torch_zip_read;
    } else if (n >= 9 && d[8] == '{') {
        /* u64 header length, then a JSON object. Tested before the pickle check because a header
         * length such as 0x380 starts with the bytes 0x80 0x03 of a pickle PROTO opcode; a pickle
         * never has '{' at byte 8 (legacy torch files open with the LONG1 magic number there). */
        format = "safetensors";
        reader = mv_safetensors_read;
    } else if (n >= 2 && d[0] == 0x80 && d[1] >= 2 && d[1] <= 5) {
        format = "torch-legacy"; /* a bare pickle stream: torch.save before 1.6 */
        reader = mv_torch_legacy_read;
    } else if (n >= 1 && ((d[0] & 0xf0) == 0x80 || d[0] == 0xde || d[0] == 0xdf)) {
        format = "flax-msgpack"; /* a msgpack map at the root */
        reader = mv_flax_msgpack_read;
    } else {
        mv_file_unmap(&file);
        return mv_fail(err, MV_EFORMAT, "%s: not a checkpoint (expected safetensors, a torch.save file "
                       "or Flax msgpack)", path);
    }
    mv_weights *w = mv_weights_new(path, format);
    if (!w) {
        mv_file_unmap(&file);
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", path);
    }
    w->mapping = file;
    rc = reader(w, path, d, n, err);
    if (!rc)
        rc = mv_weights_finish(w, err);
    if (rc) {
        mv_weights_free(w);
        return rc;
    }
    *out = w;
    return MV_OK;
}
