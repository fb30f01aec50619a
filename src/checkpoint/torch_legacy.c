/* torch_legacy.c — owns the reading of torch.save's pre-1.6 stream format
 * (torch/serialization.py _legacy_save): four pickles — magic number, protocol version, sys_info,
 * the object (storages as persistent ids) — then the pickled list of storage keys, then each
 * storage in that order as an 8-byte little-endian element count followed by its raw bytes.
 * Storages stay in the mapping (zero-copy); the tensor walk is pickle.c's. */
#include "checkpoint/readers.h"
#include "checkpoint/pickle.h"

#include <stdlib.h>
#include <string.h>

/* 0x1950a86a20f9469cfc6c as Python's LONG1 writes it: little-endian two's complement. */
static const unsigned char magic_number[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
enum { PROTOCOL_VERSION = 1001 };

typedef struct storage_ref {
    mv_pk_obj *storage;
    int64_t view_offset;        /* elements into the root storage */
    int64_t view_numel;         /* -1: the whole root storage */
} storage_ref;

typedef struct stream {
    const char *path;
    storage_ref *refs;
    size_t n_refs, cap_refs;
} stream;

/* persistent_load for ('storage', type, root_key, location, numel, view_metadata) and, for whole
 * pickled modules, ('module', class, source_file, source) — the class stays an inert reference. */
static int load_storage(void *ctx, mv_pickle *pickle, const mv_pk_obj *pid, mv_pk_obj **out, mv_error *err)
{
    stream *st = ctx;
    mv_pk_obj *const *f = pid->u.seq.items;
    if (pid->kind == MV_PK_TUPLE && pid->u.seq.n == 4 && f[0]->kind == MV_PK_STR &&
        !strcmp(f[0]->u.str.data, "module")) {
        *out = f[1];
        return MV_OK;
    }
    if (pid->kind != MV_PK_TUPLE || pid->u.seq.n != 6 || f[0]->kind != MV_PK_STR ||
        strcmp(f[0]->u.str.data, "storage") || f[2]->kind != MV_PK_STR || f[4]->kind != MV_PK_INT)
        return mv_fail(err, MV_EFORMAT, "%s: persistent id is not ('storage', type, key, location, numel, view)",
                       st->path);
    storage_ref ref = {.view_numel = -1};
    const mv_pk_obj *view = f[5];
    if (view->kind == MV_PK_TUPLE) {
        mv_pk_obj *const *v = view->u.seq.items;
        if (view->u.seq.n != 3 || v[1]->kind != MV_PK_INT || v[2]->kind != MV_PK_INT || v[1]->u.i < 0 ||
            v[2]->u.i < 0)
            return mv_fail(err, MV_EFORMAT, "%s: malformed storage view metadata", st->path);
        ref.view_offset = v[1]->u.i;
        ref.view_numel = v[2]->u.i;
    } else if (view->kind != MV_PK_NONE) {
        return mv_fail(err, MV_EFORMAT, "%s: malformed storage view metadata", st->path);
    }
    int rc = mv_pickle_new_storage(pickle, f[1], f[2]->u.str.data, f[4]->u.i, &ref.storage, err);
    if (rc)
        return rc;
    if (st->n_refs == st->cap_refs) {
        size_t cap = st->cap_refs ? st->cap_refs * 2 : 256;
        storage_ref *grown = realloc(st->refs, cap * sizeof *grown);
        if (!grown)
            return mv_fail(err, MV_ENOMEM, "%s: out of memory", st->path);
        st->refs = grown;
        st->cap_refs = cap;
    }
    st->refs[st->n_refs++] = ref;
    *out = ref.storage;
    return MV_OK;
}

static int compare_refs(const void *a, const void *b)
{
    return strcmp(((const storage_ref *)a)->storage->u.storage.key, ((const storage_ref *)b)->storage->u.storage.key);
}

/* Points every storage (and view) named key at its bytes; *consumed receives the root's byte length,
 * which its element type (recorded in the persistent ids) fixes. */
static int place_storage(stream *st, const char *key, const unsigned char *data, uint64_t numel, uint64_t room,
                         size_t *consumed, mv_error *err)
{
    mv_pk_storage probe = {.key = key};
    mv_pk_obj probe_obj = {.kind = MV_PK_STORAGE, .u.storage = probe};
    storage_ref probe_ref = {.storage = &probe_obj};
    /* No tensor at all leaves refs NULL, which bsearch may not be given even for 0 elements. */
    storage_ref *hit = st->n_refs ? bsearch(&probe_ref, st->refs, st->n_refs, sizeof *st->refs, compare_refs) : NULL;
    if (!hit)
        return mv_fail(err, MV_EFORMAT, "%s: storage %s is listed but no tensor uses it", st->path, key);
    while (hit > st->refs && !compare_refs(hit - 1, &probe_ref))
        hit--;
    mv_dtype dtype = hit->storage->u.storage.dtype;
    uint64_t n_bytes;
    if (__builtin_mul_overflow(numel, (uint64_t)mv_weights_dtype_size(dtype), &n_bytes) || n_bytes > room)
        return mv_fail(err, MV_EFORMAT, "%s: storage %s (%llu elements) extends past the end of the file",
                       st->path, key, (unsigned long long)numel);
    for (storage_ref *r = hit; r < st->refs + st->n_refs && !compare_refs(r, &probe_ref); r++) {
        mv_pk_storage *s = &r->storage->u.storage;
        if (s->dtype != dtype)
            return mv_fail(err, MV_EFORMAT, "%s: storage %s is used with two element types", st->path, key);
        uint64_t offset = (uint64_t)r->view_offset, count = r->view_numel < 0 ? numel : (uint64_t)r->view_numel;
        if (offset > numel || count > numel - offset)
            return mv_fail(err, MV_EFORMAT, "%s: a view of storage %s lies outside it", st->path, key);
        s->data = data + offset * mv_weights_dtype_size(dtype);
        s->n_bytes = (size_t)(count * mv_weights_dtype_size(dtype));
    }
    *consumed = (size_t)n_bytes;
    return MV_OK;
}

static int check_header(stream *st, mv_pk_obj *const *header, mv_error *err)
{
    const mv_pk_obj *magic = header[0], *version = header[1], *sys_info = header[2];
    if (magic->kind != MV_PK_BIGINT || magic->u.str.len != sizeof magic_number ||
        memcmp(magic->u.str.data, magic_number, sizeof magic_number))
        return mv_fail(err, MV_EFORMAT, "%s: a pickle, but not a torch.save file (no torch magic number)", st->path);
    if (version->kind != MV_PK_INT || version->u.i != PROTOCOL_VERSION)
        return mv_fail(err, MV_EUNSUPPORTED, "%s: torch legacy protocol version %lld (expected %d)", st->path,
                       version->kind == MV_PK_INT ? (long long)version->u.i : -1LL, PROTOCOL_VERSION);
    const mv_pk_obj *little = mv_pickle_dict_get(sys_info, "little_endian");
    if (!little || little->kind != MV_PK_BOOL)
        return mv_fail(err, MV_EFORMAT, "%s: sys_info lacks little_endian", st->path);
    if (!little->u.i)
        return mv_fail(err, MV_EUNSUPPORTED, "%s: saved on a big-endian machine; not supported", st->path);
    return MV_OK;
}

int mv_torch_legacy_read(mv_weights *weights, const char *path, const unsigned char *data, size_t size,
                         mv_error *err)
{
    stream st = {.path = path};
    mv_pickle *pickle = mv_pickle_new(path);
    if (!pickle)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", path);
    mv_pk_obj *parts[5] = {0}; /* magic, version, sys_info, object, storage keys */
    size_t pos = 0;
    int rc = MV_OK;
    for (int i = 0; i < 5 && !rc; i++) {
        size_t consumed = 0;
        rc = mv_pickle_load(pickle, data + pos, size - pos, &consumed, i == 3 ? load_storage : NULL, &st,
                            &parts[i], err);
        pos += consumed;
        if (!rc && i == 2)
            rc = check_header(&st, parts, err);
    }
    const mv_pk_obj *keys = parts[4];
    if (!rc && keys->kind != MV_PK_LIST)
        rc = mv_fail(err, MV_EFORMAT, "%s: the storage key list is not a list", path);
    if (!rc && st.n_refs)
        qsort(st.refs, st.n_refs, sizeof *st.refs, compare_refs);
    for (size_t i = 0; !rc && i < keys->u.seq.n; i++) {
        const mv_pk_obj *key = keys->u.seq.items[i];
        if (key->kind != MV_PK_STR) {
            rc = mv_fail(err, MV_EFORMAT, "%s: storage key %zu is not a string", path, i);
            break;
        }
        if (size - pos < 8) {
            rc = mv_fail(err, MV_EFORMAT, "%s: truncated before storage %s", path, key->u.str.data);
            break;
        }
        uint64_t numel = 0;
        for (int b = 7; b >= 0; b--)
            numel = (numel << 8) | data[pos + (size_t)b];
        pos += 8;
        size_t consumed = 0;
        rc = place_storage(&st, key->u.str.data, data + pos, numel, size - pos, &consumed, err);
        pos += consumed;
    }
    if (!rc)
        rc = mv_pickle_add_tensors(weights, path, parts[3], err);
    free(st.refs);
    mv_pickle_free(pickle);
    return rc;
}
