/* torch_zip.c — owns the reading of torch.save's zip format (torch >= 1.6): finds <prefix>/data.pkl,
 * resolves each pickled storage to its <prefix>/data/<key> entry in the mapped file (zero-copy) and
 * hands the unpickled object to the tensor walk in pickle.c. */
#include "checkpoint/readers.h"
#include "checkpoint/pickle.h"
#include "checkpoint/zip.h"

#include <stdio.h>
#include <string.h>

enum { MAX_PREFIX = 512 };

typedef struct archive {
    mv_zip zip;
    char prefix[MAX_PREFIX];    /* the directory holding data.pkl, e.g. "archive" */
} archive;

/* Finds the one top-level "<prefix>/data.pkl". */
static int find_pickle(archive *a, const mv_zip_entry **out, mv_error *err)
{
    *out = NULL;
    for (size_t i = 0; i < a->zip.n_entries; i++) {
        const char *name = a->zip.entries[i].name, *slash = strchr(name, '/');
        if (!slash || strcmp(slash, "/data.pkl"))
            continue;
        if (*out)
            return mv_fail(err, MV_EFORMAT, "%s: two pickles in one archive (%s and %s)", a->zip.path,
                           (*out)->name, name);
        size_t prefix_len = (size_t)(slash - name);
        if (prefix_len >= sizeof a->prefix)
            return mv_fail(err, MV_EFORMAT, "%s: archive folder name too long", a->zip.path);
        memcpy(a->prefix, name, prefix_len);
        a->prefix[prefix_len] = '\0';
        *out = &a->zip.entries[i];
    }
    if (!*out)
        return mv_fail(err, MV_EFORMAT, "%s: a zip archive without */data.pkl is not a torch.save file",
                       a->zip.path);
    return MV_OK;
}

static int entry_bytes(archive *a, const char *suffix, const mv_zip_entry **entry, const unsigned char **data,
                       mv_error *err)
{
    char name[MAX_PREFIX + 600];
    if ((size_t)snprintf(name, sizeof name, "%s/%s", a->prefix, suffix) >= sizeof name)
        return mv_fail(err, MV_EFORMAT, "%s: entry name %s/%s too long", a->zip.path, a->prefix, suffix);
    *entry = mv_zip_find(&a->zip, name);
    *data = NULL;
    if (!*entry)
        return MV_ENOTFOUND;
    return mv_zip_entry_data(&a->zip, *entry, data, err);
}

/* persistent_load for ('storage', storage_type, key, location, numel). */
static int load_storage(void *ctx, mv_pickle *pickle, const mv_pk_obj *pid, mv_pk_obj **out, mv_error *err)
{
    archive *a = ctx;
    mv_pk_obj *const *f = pid->u.seq.items;
    if (pid->kind != MV_PK_TUPLE || pid->u.seq.n < 5 || f[0]->kind != MV_PK_STR ||
        strcmp(f[0]->u.str.data, "storage") || f[2]->kind != MV_PK_STR || f[4]->kind != MV_PK_INT)
        return mv_fail(err, MV_EFORMAT, "%s: persistent id is not ('storage', type, key, location, numel)",
                       a->zip.path);
    const char *key = f[2]->u.str.data;
    if (strlen(key) > 256 || strchr(key, '/'))
        return mv_fail(err, MV_EFORMAT, "%s: bad storage key", a->zip.path);
    int rc = mv_pickle_new_storage(pickle, f[1], key, f[4]->u.i, out, err);
    if (rc)
        return rc;
    mv_pk_storage *s = &(*out)->u.storage;
    char suffix[300];
    snprintf(suffix, sizeof suffix, "data/%s", key);
    const mv_zip_entry *entry = NULL;
    rc = entry_bytes(a, suffix, &entry, &s->data, err);
    if (rc == MV_ENOTFOUND)
        return mv_fail(err, MV_EFORMAT, "%s: storage %s/%s is missing from the archive", a->zip.path,
                       a->prefix, suffix);
    if (rc)
        return rc;
    uint64_t n_bytes;
    if (__builtin_mul_overflow((uint64_t)s->numel, (uint64_t)mv_weights_dtype_size(s->dtype), &n_bytes) ||
        n_bytes > entry->size)
        return mv_fail(err, MV_EFORMAT, "%s: storage %s holds %llu bytes, fewer than its %lld elements need",
                       a->zip.path, key, (unsigned long long)entry->size, (long long)s->numel);
    s->n_bytes = (size_t)n_bytes;
    return MV_OK;
}

int mv_torch_zip_read(mv_weights *weights, const char *path, const unsigned char *data, size_t size, mv_error *err)
{
    archive a;
    int rc = mv_zip_open(&a.zip, path, data, size, err);
    if (rc)
        return rc;
    mv_pickle *pickle = NULL;
    const mv_zip_entry *pkl = NULL, *order = NULL;
    const unsigned char *pkl_data = NULL, *order_data = NULL;
    rc = find_pickle(&a, &pkl, err);
    if (!rc)
        rc = mv_zip_entry_data(&a.zip, pkl, &pkl_data, err);
    if (!rc) {
        rc = entry_bytes(&a, "byteorder", &order, &order_data, err);
        if (rc == MV_ENOTFOUND)
            rc = MV_OK; /* written since torch 1.13; older files are little-endian */
        else if (!rc && !(order->size == 6 && !memcmp(order_data, "little", 6)))
            rc = mv_fail(err, MV_EUNSUPPORTED, "%s: storages are not little-endian (byteorder \"%.*s\")", path,
                         (int)(order->size < 16 ? order->size : 16), (const char *)order_data);
    }
    if (!rc && !(pickle = mv_pickle_new(path)))
        rc = mv_fail(err, MV_ENOMEM, "%s: out of memory", path);
    mv_pk_obj *root = NULL;
    size_t consumed;
    if (!rc)
        rc = mv_pickle_load(pickle, pkl_data, (size_t)pkl->size, &consumed, load_storage, &a, &root, err);
    if (!rc)
        rc = mv_pickle_add_tensors(weights, path, root, err);
    mv_pickle_free(pickle);
    mv_zip_close(&a.zip);
    return rc;
}
