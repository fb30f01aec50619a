/* pickle.h — a safe subset of Python's pickle VM for torch.save payloads, and the walk that turns the
 * unpickled object into named tensors of a weights container.
 *
 * Nothing in a pickle is ever executed. A short whitelist of globals (OrderedDict, torch._utils'
 * rebuild functions for tensors and parameters, the torch storage types, set) builds real values; every other
 * global is an inert reference, and calling or constructing one yields an opaque placeholder that
 * remembers the callable's name. A placeholder found where a tensor must be refuses the checkpoint,
 * naming what it tries to call. All memory is proportional to the pickle's length and lives in one
 * arena freed with mv_pickle_free. */
#ifndef MEDVLP_CHECKPOINT_PICKLE_H
#define MEDVLP_CHECKPOINT_PICKLE_H

#include <stddef.h>
#include <stdint.h>
#include "medvlp/weights.h"

typedef enum mv_pk_kind {
    MV_PK_NONE, MV_PK_BOOL, MV_PK_INT, MV_PK_BIGINT, MV_PK_FLOAT, MV_PK_STR, MV_PK_BYTES,
    MV_PK_TUPLE, MV_PK_LIST, MV_PK_SET, MV_PK_DICT,
    MV_PK_GLOBAL,   /* a reference to module.name, never called */
    MV_PK_OPAQUE,   /* the result of calling/constructing a non-whitelisted global */
    MV_PK_STORAGE,  /* made by the reader's persistent_load */
    MV_PK_TENSOR,   /* made by torch._utils._rebuild_tensor_v2 */
} mv_pk_kind;

typedef struct mv_pk_obj mv_pk_obj;

typedef struct mv_pk_storage {
    mv_dtype dtype;
    const char *key;              /* the storage's name in the file */
    int64_t numel;                /* elements the pickle says it holds */
    const unsigned char *data;    /* set by the reader once the bytes are located; NULL until then */
    size_t n_bytes;
} mv_pk_storage;

typedef struct mv_pk_tensor {
    mv_pk_obj *storage;
    int64_t offset;               /* in elements */
    int ndim;
    int64_t shape[MV_MAX_DIMS];
    int64_t stride[MV_MAX_DIMS];
} mv_pk_tensor;

struct mv_pk_obj {
    mv_pk_kind kind;
    union {
        int64_t i;                                          /* BOOL, INT */
        double f;                                           /* FLOAT */
        struct { const char *data; size_t len; } str;       /* STR, BYTES (NUL-terminated), BIGINT bytes */
        struct { mv_pk_obj **items; size_t n, cap; } seq;   /* TUPLE, LIST, SET; DICT: key,value pairs */
        struct { const char *module, *name; int builtin; } global;
        struct { const char *callable; } opaque;            /* "module.name" of what would be called */
        mv_pk_storage storage;
        mv_pk_tensor tensor;
    } u;
};

typedef struct mv_pickle mv_pickle;

/* persistent_load: turns a persistent id into an object (a storage). Returns MV_OK or fills err. */
typedef int (*mv_pk_persistent_load)(void *ctx, mv_pickle *pickle, const mv_pk_obj *pid,
                                     mv_pk_obj **out, mv_error *err);

mv_pickle *mv_pickle_new(const char *path);
void mv_pickle_free(mv_pickle *pickle);

/* Runs one pickle from data (up to STOP); *consumed receives its length in bytes. Several pickles
 * may be loaded into one mv_pickle (the legacy format is a sequence of them). */
int mv_pickle_load(mv_pickle *pickle, const unsigned char *data, size_t size, size_t *consumed,
                   mv_pk_persistent_load persistent_load, void *ctx, mv_pk_obj **out, mv_error *err);

/* Makes a storage object for a persistent_load callback: storage_type is the pickled type reference
 * (torch.FloatStorage, ...); key is copied. */
int mv_pickle_new_storage(mv_pickle *pickle, const mv_pk_obj *storage_type, const char *key,
                          int64_t numel, mv_pk_obj **out, mv_error *err);

/* Dict lookup by string key; NULL when absent or when dict is not a dict. */
mv_pk_obj *mv_pickle_dict_get(const mv_pk_obj *dict, const char *key);

/* Adds every tensor of a torch.save object to weights. The state dict is root["state_dict"] when
 * that is a dict, else root["model"] when that is a dict, else root itself; nested dicts inside it
 * name their tensors "outer.inner". Storages must have their data set. */
int mv_pickle_add_tensors(mv_weights *weights, const char *path, const mv_pk_obj *root, mv_error *err);

#endif
