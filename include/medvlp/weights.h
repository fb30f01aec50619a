/* weights.h — a checkpoint opened as a read-only map from tensor name to data.
 *
 * One container serves every file format (safetensors, torch zip, legacy torch, Flax msgpack): the
 * format readers (src/checkpoint/) fill it, models take tensors out of it by name and shape.
 * Float tensors are always offered as contiguous float32: zero-copy into the file mapping when the
 * file stores aligned little-endian F32, else converted/materialised once at load (F16, BF16, F64,
 * strided views, transposed Flax kernels). Integer tensors (position_ids, num_batches_tracked) are
 * kept as raw bytes and never handed out as weights. */
#ifndef MEDVLP_WEIGHTS_H
#define MEDVLP_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>
#include "medvlp/error.h"

#define MV_MAX_DIMS 8

typedef enum mv_dtype {
    MV_DTYPE_F32, MV_DTYPE_F16, MV_DTYPE_BF16, MV_DTYPE_F64,
    MV_DTYPE_I64, MV_DTYPE_I32, MV_DTYPE_I16, MV_DTYPE_I8, MV_DTYPE_U8, MV_DTYPE_BOOL,
} mv_dtype;

typedef struct mv_tensor_entry {
    const char *name;
    mv_dtype dtype;            /* dtype as stored in the file */
    int ndim;
    int64_t shape[MV_MAX_DIMS];
    size_t n_elements;
    const float *f32;          /* contiguous float32 data; NULL for integer/bool dtypes */
    const void *raw;           /* the stored bytes (contiguous, file dtype); for integer buffers */
    int used;                  /* set by mv_weights_take */
} mv_tensor_entry;

typedef struct mv_weights mv_weights;

/* Opens a checkpoint, choosing the reader by the file's content (not its extension). */
int mv_weights_open(const char *path, mv_weights **out, mv_error *err);
void mv_weights_free(mv_weights *weights);

const char *mv_weights_path(const mv_weights *weights);
const char *mv_weights_format(const mv_weights *weights);   /* "safetensors", "torch-zip", ... */
size_t mv_weights_count(const mv_weights *weights);
const mv_tensor_entry *mv_weights_at(const mv_weights *weights, size_t index);  /* sorted by name */
const mv_tensor_entry *mv_weights_find(const mv_weights *weights, const char *name);
size_t mv_weights_dtype_size(mv_dtype dtype);
/* A free-form string the file stores beside its tensors (safetensors "__metadata__", e.g. "format");
 * NULL when absent. */
const char *mv_weights_metadata(const mv_weights *weights, const char *key);
const char *mv_weights_dtype_name(mv_dtype dtype);

/* Takes the float tensor printf(name_fmt, ...) after checking it exists, is a float dtype and has
 * exactly the expected shape; marks it used. Errors name the tensor and the file. Use MV_SHAPE:
 *   mv_weights_take(w, &ptr, err, MV_SHAPE(768, 3072), "bert.encoder.layer.%d.output.dense.weight", i); */
int mv_weights_take(mv_weights *weights, const float **out, mv_error *err,
                    int ndim, const int64_t *shape, const char *name_fmt, ...)
    __attribute__((format(printf, 6, 7)));
#define MV_SHAPE(...) \
    (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

/* Drops the pages of the checkpoint's file mapping from this process's resident set (madvise
 * MADV_DONTNEED on a read-only mapping: the data stays valid, a later read faults the page back in
 * from the page cache). For after load, once the big weights live on in packed copies. */
void mv_weights_release_pages(const mv_weights *weights);

/* The same for the whole pages of one tensor's bytes, right after it was packed, so the load's peak
 * RSS holds one tensor's file pages at a time, not the whole checkpoint's. Nothing happens when data
 * is not inside the file mapping (a converted copy on the heap). */
void mv_weights_release_range(const mv_weights *weights, const void *data, size_t bytes);

/* Whether printf(name_fmt, ...) exists (for optional tensors such as biases). */
int mv_weights_has(const mv_weights *weights, const char *name_fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* --- For format readers only ------------------------------------------------------------------ */

mv_weights *mv_weights_new(const char *path, const char *format);
/* Adds a tensor whose bytes (file dtype, contiguous, little-endian) live in memory that outlives
 * the container (the file mapping, or a buffer handed over with mv_weights_keep). Converts float
 * dtypes to float32 once when needed. The name is copied. Duplicate names are an error. */
int mv_weights_add(mv_weights *weights, const char *name, mv_dtype dtype, int ndim,
                   const int64_t *shape, const void *data, size_t n_bytes, mv_error *err);
/* Hands a heap buffer (free) or a mapping to the container, released by mv_weights_free. */
int mv_weights_keep_buffer(mv_weights *weights, void *buffer, mv_error *err);
int mv_weights_keep_mapping(mv_weights *weights, const void *data, size_t size, mv_error *err);
/* Records a metadata string (both copied); a repeated key replaces the earlier value. */
int mv_weights_set_metadata(mv_weights *weights, const char *key, const char *value, mv_error *err);
/* Sorts the entries for lookup; call once after the last add. */
int mv_weights_finish(mv_weights *weights, mv_error *err);

#endif
