/* flax_msgpack.c — owns the reading of Flax's msgpack checkpoints (flax.serialization.to_bytes):
 * a map tree whose leaves are ExtType 1 (ndarray) / 3 (numpy scalar) records holding a msgpack
 * (shape, dtype name, C-order bytes) triple, or "__msgpack_chunked_array__" maps for huge arrays.
 * Tensors are named by their map path joined with "/" (Flax's flatten_dict convention) and kept in
 * the file's layout (Dense kernels [in, out]); bytes stay in the mapping unless chunks need joining.
 * Parsing is msgpack-c's; a header pre-scan first bounds what its container allocations may claim. */
#include "checkpoint/readers.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_NAME = 1024, MAX_DEPTH = 32, EXT_NDARRAY = 1, EXT_NPSCALAR = 3 };

typedef struct tree {
    mv_weights *weights;
    const char *path;
    char name[MAX_NAME];
    size_t n_tensors;
} tree;

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Walks the msgpack headers of data without allocating, checking that every element a container
 * declares could still fit in the bytes left (each takes at least one), so the parser's up-front
 * allocation of declared container sizes stays proportional to the input. */
static int prescan(const unsigned char *d, size_t size)
{
    size_t pos = 0;
    uint64_t pending = 1;
    while (pending) {
        if (pos >= size || pending > size - pos)
            return -1;
        unsigned b = d[pos++];
        pending--;
        uint64_t skip = 0, items = 0;
        int len_bytes = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            continue;
        if (b >= 0x80 && b <= 0x8f)
            items = 2 * (b & 0x0f);
        else if (b >= 0x90 && b <= 0x9f)
            items = b & 0x0f;
        else if (b >= 0xa0 && b <= 0xbf)
            skip = b & 0x1f;
        else if (b == 0xc4 || b == 0xd9) len_bytes = 1;
        else if (b == 0xc5 || b == 0xda) len_bytes = 2;
        else if (b == 0xc6 || b == 0xdb) len_bytes = 4;
        else if (b >= 0xc7 && b <= 0xc9) len_bytes = b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4;
        else if (b == 0xca) skip = 4;
        else if (b == 0xcb) skip = 8;
        else if (b >= 0xcc && b <= 0xcf) skip = 1u << (b - 0xcc);
        else if (b >= 0xd0 && b <= 0xd3) skip = 1u << (b - 0xd0);
        else if (b >= 0xd4 && b <= 0xd8) skip = 1 + (1u << (b - 0xd4)); /* fixext: type byte + data */
        else if (b == 0xdc || b == 0xdd || b == 0xde || b == 0xdf) {
            int width = (b == 0xdc || b == 0xde) ? 2 : 4;
            if (size - pos < (size_t)width)
                return -1;
            items = be(d + pos, width) * (b >= 0xde ? 2 : 1);
            pos += (size_t)width;
        } else {
            return -1; /* 0xc1: never used */
        }
        if (len_bytes) {
            if (size - pos < (size_t)len_bytes)
                return -1;
            skip = be(d + pos, len_bytes) + (b >= 0xc7 && b <= 0xc9 ? 1 : 0);
            pos += (size_t)len_bytes;
        }
        if (skip > size - pos)
            return -1;
        pos += skip;
        pending += items;
    }
    return 0;
}

static int unpack(const tree *t, const char *what, const char *data, size_t size, msgpack_unpacked *out,
                  mv_error *err)
{
    size_t offset = 0;
    msgpack_unpacked_init(out);
    if (prescan((const unsigned char *)data, size) != 0 ||
        msgpack_unpack_next(out, data, size, &offset) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(out);
        return mv_fail(err, MV_EFORMAT, "%s: %s is not valid msgpack (truncated or corrupt)", t->path, what);
    }
    return MV_OK;
}

static int is_text(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN;
}

static int text_equals(const msgpack_object *o, const char *s)
{
    return is_text(o) && o->via.str.size == strlen(s) && !memcmp(o->via.str.ptr, s, o->via.str.size);
}

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (text_equals(&map->via.map.ptr[i].key, key))
            return &map->via.map.ptr[i].val;
    return NULL;
}

static int dtype_of(const msgpack_object *name, mv_dtype *dtype)
{
    static const struct { const char *name; mv_dtype dtype; } dtypes[] = {
        {"float32", MV_DTYPE_F32}, {"float16", MV_DTYPE_F16}, {"bfloat16", MV_DTYPE_BF16},
        {"float64", MV_DTYPE_F64}, {"int64", MV_DTYPE_I64}, {"int32", MV_DTYPE_I32}, {"int16", MV_DTYPE_I16},
        {"int8", MV_DTYPE_I8}, {"uint8", MV_DTYPE_U8}, {"bool", MV_DTYPE_BOOL},
    };
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (text_equals(name, dtypes[i].name)) {
            *dtype = dtypes[i].dtype;
            return 1;
        }
    return 0;
}

typedef struct array_view {
    mv_dtype dtype;
    int ndim;
    int64_t shape[MV_MAX_DIMS];
    const void *data;
    size_t n_bytes;
} array_view;

/* Decodes an ndarray ExtType payload: (shape, dtype name, bytes). */
static int decode_array(const tree *t, const msgpack_object *ext, array_view *out, mv_error *err)
{
    if (ext->via.ext.type != EXT_NDARRAY && ext->via.ext.type != EXT_NPSCALAR)
        return mv_fail(err, MV_EUNSUPPORTED, "%s: %s: unsupported msgpack extension type %d (complex numbers?)",
                       t->path, t->name, ext->via.ext.type);
    msgpack_unpacked payload;
    int rc = unpack(t, t->name, ext->via.ext.ptr, ext->via.ext.size, &payload, err);
    if (rc)
        return rc;
    const msgpack_object *triple = &payload.data, *shape = NULL, *dtype = NULL, *bytes = NULL;
    if (triple->type == MSGPACK_OBJECT_ARRAY && triple->via.array.size == 3) {
        shape = &triple->via.array.ptr[0];
        dtype = &triple->via.array.ptr[1];
        bytes = &triple->via.array.ptr[2];
    }
    if (!shape || shape->type != MSGPACK_OBJECT_ARRAY || shape->via.array.size > MV_MAX_DIMS || !is_text(dtype) ||
        !is_text(bytes)) {
        msgpack_unpacked_destroy(&payload);
        return mv_fail(err, MV_EFORMAT, "%s: %s: array record is not (shape, dtype, bytes)", t->path, t->name);
    }
    if (!dtype_of(dtype, &out->dtype)) {
        rc = mv_fail(err, MV_EUNSUPPORTED, "%s: %s has unsupported dtype %.*s", t->path, t->name,
                     (int)(dtype->via.str.size < 32 ? dtype->via.str.size : 32), dtype->via.str.ptr);
        msgpack_unpacked_destroy(&payload);
        return rc;
    }
    out->ndim = (int)shape->via.array.size;
    for (int d = 0; d < out->ndim; d++) {
        const msgpack_object *dim = &shape->via.array.ptr[d];
        if (dim->type != MSGPACK_OBJECT_POSITIVE_INTEGER || dim->via.u64 > INT64_MAX) {
            msgpack_unpacked_destroy(&payload);
            return mv_fail(err, MV_EFORMAT, "%s: %s has a bad shape", t->path, t->name);
        }
        out->shape[d] = (int64_t)dim->via.u64;
    }
    out->data = bytes->via.bin.ptr; /* points into the file: msgpack-c references its input */
    out->n_bytes = bytes->via.bin.size;
    msgpack_unpacked_destroy(&payload);
    return MV_OK;
}

static int add_array(tree *t, const array_view *a, mv_error *err)
{
    int rc = mv_weights_add(t->weights, t->name, a->dtype, a->ndim, a->shape, a->data, a->n_bytes, err);
    if (!rc)
        t->n_tensors++;
    return rc;
}

/* {"__msgpack_chunked_array__": true, "shape": {"0": d0, ...}, "chunks": {"0": ndarray, ...}} */
static int add_chunked(tree *t, const msgpack_object *map, mv_error *err)
{
    const msgpack_object *shape = map_get(map, "shape"), *chunks = map_get(map, "chunks");
    if (!shape || !chunks || shape->type != MSGPACK_OBJECT_MAP || chunks->type != MSGPACK_OBJECT_MAP ||
        shape->via.map.size > MV_MAX_DIMS)
        return mv_fail(err, MV_EFORMAT, "%s: %s: malformed chunked array", t->path, t->name);
    array_view whole = {.ndim = (int)shape->via.map.size};
    uint64_t n_elements = 1;
    for (int d = 0; d < whole.ndim; d++) {
        char key[16];
        snprintf(key, sizeof key, "%d", d);
        const msgpack_object *dim = map_get(shape, key);
        if (!dim || dim->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            __builtin_mul_overflow(n_elements, dim->via.u64, &n_elements) || n_elements > INT64_MAX)
            return mv_fail(err, MV_EFORMAT, "%s: %s: bad chunked array shape", t->path, t->name);
        whole.shape[d] = (int64_t)dim->via.u64;
    }
    /* Chunks total at most the file's size, so the joined buffer is bounded by it. */
    array_view part;
    size_t total = 0;
    unsigned char *buffer = NULL;
    for (int pass = 0; pass < 2; pass++) {
        size_t used = 0;
        for (uint32_t i = 0; i < chunks->via.map.size; i++) {
            char key[16];
            snprintf(key, sizeof key, "%u", i);
            const msgpack_object *chunk = map_get(chunks, key);
            int rc = chunk && chunk->type == MSGPACK_OBJECT_EXT ? decode_array(t, chunk, &part, err)
                     : mv_fail(err, MV_EFORMAT, "%s: %s: chunk %u missing", t->path, t->name, i);
            if (!rc && i > 0 && part.dtype != whole.dtype)
                rc = mv_fail(err, MV_EFORMAT, "%s: %s: chunks of different dtypes", t->path, t->name);
            if (rc) {
                free(buffer);
                return rc;
            }
            whole.dtype = part.dtype;
            if (pass == 0)
                total += part.n_bytes;
            else
                memcpy(buffer + used, part.data, part.n_bytes);
            used += part.n_bytes;
        }
        if (pass == 0 && !(buffer = malloc(total ? total : 1)))
            return mv_fail(err, MV_ENOMEM, "%s: out of memory joining %s", t->path, t->name);
    }
    int rc = mv_weights_keep_buffer(t->weights, buffer, err);
    if (rc)
        return rc;
    whole.data = buffer;
    whole.n_bytes = total;
    return add_array(t, &whole, err);
}

static int walk(tree *t, const msgpack_object *map, size_t name_len, int depth, mv_error *err)
{
    if (depth > MAX_DEPTH)
        return mv_fail(err, MV_EFORMAT, "%s: maps nested deeper than %d", t->path, MAX_DEPTH);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *key = &map->via.map.ptr[i].key, *value = &map->via.map.ptr[i].val;
        char key_text[32];
        const char *key_str = key_text;
        size_t key_len;
        if (is_text(key)) {
            key_str = key->via.str.ptr;
            key_len = key->via.str.size;
        } else if (key->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            key_len = (size_t)snprintf(key_text, sizeof key_text, "%llu", (unsigned long long)key->via.u64);
        } else {
            continue; /* not a parameter name */
        }
        size_t len = name_len + (name_len ? 1 : 0) + key_len;
        if (len >= sizeof t->name || memchr(key_str, '\0', key_len))
            return mv_fail(err, MV_EFORMAT, "%s: bad or overlong parameter name under %s", t->path, t->name);
        if (name_len)
            t->name[name_len] = '/';
        memcpy(t->name + len - key_len, key_str, key_len);
        t->name[len] = '\0';
        int rc = MV_OK;
        if (value->type == MSGPACK_OBJECT_EXT) {
            array_view a;
            rc = decode_array(t, value, &a, err);
            if (!rc)
                rc = add_array(t, &a, err);
        } else if (value->type == MSGPACK_OBJECT_MAP && map_get(value, "__msgpack_chunked_array__")) {
            rc = add_chunked(t, value, err);
        } else if (value->type == MSGPACK_OBJECT_MAP) {
            rc = walk(t, value, len, depth + 1, err);
        }
        t->name[name_len] = '\0';
        if (rc)
            return rc;
    }
    return MV_OK;
}

int mv_flax_msgpack_read(mv_weights *weights, const char *path, const unsigned char *data, size_t size,
                         mv_error *err)
{
    tree t = {.weights = weights, .path = path};
    msgpack_unpacked root;
    int rc = unpack(&t, "the file", (const char *)data, size, &root, err);
    if (rc)
        return rc;
    if (root.data.type != MSGPACK_OBJECT_MAP)
        rc = mv_fail(err, MV_EFORMAT, "%s: the msgpack root is not a map of parameters", path);
    if (!rc)
        rc = walk(&t, &root.data, 0, 0, err);
    if (!rc && !t.n_tensors)
        rc = mv_fail(err, MV_EFORMAT, "%s: no arrays found in the msgpack tree", path);
    msgpack_unpacked_destroy(&root);
    return rc;
}
