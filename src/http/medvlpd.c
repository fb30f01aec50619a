/* medvlpd.c — the daemon binary: the HTTP server over the real model (include/medvlp/model.h) and
 * index directory (include/medvlp/index.h).
 *
 * Owns the backend: one mv_model shared by the text and image batch workers behind a mutex (the
 * model's work buffers are shared), texts handed over as whole batches; a batch that fails on one
 * bad input is re-run item by item so that only the request holding it gets the error. The index
 * (thread-safe on its own) is opened, or created empty when the directory holds none, checked
 * against the model, and snapshotted at shutdown. Added images get a thumbnail in the index
 * directory (include/medvlp/thumbs.h). */
#include "medvlp/file.h"
#include "medvlp/http.h"
#include "medvlp/index.h"
#include "medvlp/index_build.h"
#include "medvlp/model.h"
#include "medvlp/search.h"
#include "medvlp/tensor.h"
#include "medvlp/thumbs.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct model_backend {
    mv_backend base;
    mv_model *model;
    mv_model_info info;
    pthread_mutex_t lock;
    char name[256];
    mv_index *index; /* NULL without -i */
    char *index_dir;  /* where thumbnails live, NULL without -i */
    uint64_t max_pixels;
} model_backend;

static int embed_texts_locked(model_backend *mb, const mv_http_item *texts, int n, float *out, int *n_tokens,
                              int *truncated, mv_error *err)
{
    const char **ptrs = malloc(sizeof *ptrs * (size_t)n);
    size_t *lens = malloc(sizeof *lens * (size_t)n);
    int status;
    if (!ptrs || !lens) {
        status = mv_fail(err, MV_ENOMEM, "out of memory for %d texts", n);
    } else {
        for (int i = 0; i < n; i++) {
            ptrs[i] = texts[i].data;
            lens[i] = texts[i].size;
        }
        pthread_mutex_lock(&mb->lock);
        status = mv_model_embed_texts(mb->model, ptrs, lens, n, 0, out, n_tokens, truncated, err);
        pthread_mutex_unlock(&mb->lock);
    }
    free(ptrs);
    free(lens);
    return status;
}

static int embed_texts(void *self, const mv_http_item *texts, int n, float *out, int *n_tokens, int *truncated,
                       mv_error *item_err, mv_error *err)
{
    model_backend *mb = self;
    int status = embed_texts_locked(mb, texts, n, out, n_tokens, truncated, err);
    if (status != MV_EINPUT || n == 1)
        return status;
    /* Some text was refused: find which, so the other requests of the batch still succeed. */
    int dim = mb->info.embed_dim;
    for (int i = 0; i < n; i++) {
        status = embed_texts_locked(mb, &texts[i], 1, out + (size_t)i * (size_t)dim, &n_tokens[i], &truncated[i],
                                    &item_err[i]);
        if (status != MV_OK && status != MV_EINPUT)
            return mv_fail(err, status, "%s", item_err[i].message);
    }
    return MV_OK;
}

/* Decodes each image on its own (a bad one fails only its item: 413 pixels, 415 format, 400
 * corrupt), then embeds the decodable ones in one call. */
static int embed_images(void *self, const mv_http_item *images, int n, float *out, mv_error *item_err, mv_error *err)
{
    model_backend *mb = self;
    int dim = mb->info.embed_dim;
    mv_image *decoded = calloc((size_t)n, sizeof *decoded);
    int *row_of = calloc((size_t)n, sizeof *row_of);
    float *rows = malloc(sizeof *rows * (size_t)n * (size_t)dim);
    int status = MV_OK, n_ok = 0;
    if (!decoded || !row_of || !rows) {
        status = mv_fail(err, MV_ENOMEM, "out of memory for %d images", n);
        goto done;
    }
    mv_decode_options decode = {.max_pixels = mb->max_pixels};
    for (int i = 0; i < n; i++) {
        row_of[i] = -1;
        if (mv_image_decode(images[i].data, images[i].size, "image", &decode, &decoded[n_ok], &item_err[i]))
            continue;
        row_of[i] = n_ok++;
    }
    if (n_ok) {
        pthread_mutex_lock(&mb->lock);
        status = mv_model_embed_images(mb->model, decoded, n_ok, 0, rows, err);
        pthread_mutex_unlock(&mb->lock);
    }
    for (int i = 0; !status && i < n; i++)
        if (row_of[i] >= 0)
            memcpy(out + (size_t)i * (size_t)dim, rows + (size_t)row_of[i] * (size_t)dim, sizeof *rows * (size_t)dim);
done:
    for (int i = 0; decoded && i < n_ok; i++)
        mv_image_free(&decoded[i]);
    free(decoded);
    free(row_of);
    free(rows);
    return status;
}

static char *info_json(void *self)
{
    model_backend *mb = self;
    const mv_model_info *in = &mb->info;
    json_t *info = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:I,s:s}", "family", in->family, "layout", in->layout,
                             "weights_format", in->weights_format, "weights_dtype", in->weights_dtype,
                             "context_length", in->context_length, "image_size", in->image_size, "n_params",
                             (json_int_t)in->n_params, "quant", in->quant);
    char *text = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    return text;
}

/* ---- index ---- */

static int search(void *self, int target, const float *query, int k, const char *filter_json, mv_search_hit *hits,
                  int *n_hits, mv_error *err)
{
    model_backend *mb = self;
    return mv_search_index(mb->index, target, query, k, filter_json, hits, n_hits, err);
}

static int index_add(void *self, int target, const float *vectors, const char *const *metadata_json,
                     const char *const *captions, int n, long long *ids_out, mv_error *err)
{
    model_backend *mb = self;
    mv_index_item *items = calloc((size_t)n, sizeof *items);
    int64_t *ids = calloc((size_t)n, sizeof *ids);
    int status;
    if (!items || !ids) {
        status = mv_fail(err, MV_ENOMEM, "out of memory for %d index items", n);
    } else {
        for (int i = 0; i < n; i++)
            items[i] = (mv_index_item){.vector = vectors + (size_t)i * (size_t)mb->info.embed_dim,
                                       .caption = captions ? captions[i] : NULL,
                                       .metadata_json = metadata_json[i]};
        status = mv_index_add(mb->index, target, items, (size_t)n, ids, err);
        for (int i = 0; !status && i < n; i++)
            ids_out[i] = ids[i];
    }
    free(items);
    free(ids);
    return status;
}

/* Decodes the image file the index names for id; errors do not show the server-side path. */
static int thumbnail_from_source(model_backend *mb, long long id, const char *source, unsigned char **jpeg,
                                 size_t *n_jpeg, mv_error *err)
{
    mv_mapped_file file;
    mv_image image;
    mv_decode_options decode = {.max_pixels = mb->max_pixels};
    int status = mv_file_map(source, &file, err);
    if (status)
        return mv_fail(err, MV_ENOTFOUND, "the source image of id %lld is gone", id);
    status = mv_image_decode(file.data, file.size, "source image", &decode, &image, err);
    mv_file_unmap(&file);
    if (status)
        return mv_fail(err, MV_ENOTFOUND, "the source image of id %lld is unreadable", id);
    status = mv_thumb_encode(&image, MV_THUMB_MAX_SIDE, jpeg, n_jpeg, err);
    mv_image_free(&image);
    return status;
}

static int index_delete(void *self, int target, long long id, mv_error *err)
{
    model_backend *mb = self;
    int status = mv_index_delete(mb->index, target, id, err);
    /* The thumbnail endpoint already answers 404 for a deleted id (it asks the index first), so a
     * file that cannot be removed costs only disk space and must not fail the durable delete. */
    if (!status && target == MV_INDEX_IMAGES)
        mv_thumbs_remove(mb->index_dir, id, NULL);
    return status;
}

static int thumbnails_put(void *self, const long long *ids, const mv_http_item *images, int n, mv_error *err)
{
    model_backend *mb = self;
    mv_decode_options decode = {.max_pixels = mb->max_pixels};
    int status = MV_OK;
    for (int i = 0; !status && i < n; i++) {
        mv_image image;
        status = mv_image_decode(images[i].data, images[i].size, "image", &decode, &image, err);
        if (!status) {
            status = mv_thumbs_put(mb->index_dir, ids[i], &image, err);
            mv_image_free(&image);
        }
    }
    return status;
}

/* The stored thumbnail, else (indexes built from files by the CLI) one made from the source path the
 * index recorded for the id. */
static int thumbnail(void *self, long long id, unsigned char **jpeg, size_t *n_jpeg, mv_error *err)
{
    model_backend *mb = self;
    mv_index_record record;
    int status = mv_index_get(mb->index, id, &record, err);
    if (status == MV_ENOTFOUND) /* said without the index directory's path */
        return mv_fail(err, MV_ENOTFOUND, "no image with id %lld", id);
    if (status)
        return status;
    if (record.target != MV_INDEX_IMAGES)
        status = mv_fail(err, MV_ENOTFOUND, "id %lld is a caption, not an image", id);
    else if ((status = mv_thumbs_get(mb->index_dir, id, jpeg, n_jpeg, err)) == MV_ENOTFOUND && record.source)
        status = thumbnail_from_source(mb, id, record.source, jpeg, n_jpeg, err);
    mv_index_record_free(&record);
    return status;
}

static char *index_stats(void *self)
{
    model_backend *mb = self;
    mv_index_stats stats;
    mv_index_get_stats(mb->index, &stats);
    json_t *root = json_pack("{s:i,s:s,s:I,s:{s:i,s:i,s:i}}", "dim", stats.dim, "family", stats.family, "next_id",
                             (json_int_t)stats.next_id, "search_params", "ef_search", stats.ef_search, "nprobe",
                             stats.nprobe, "refine_k_factor", stats.refine_k_factor);
    for (int t = 0; root && t < MV_INDEX_N_TARGETS; t++)
        json_object_set_new(root, mv_index_target_name(t),
                            json_pack("{s:I,s:s,s:I}", "count", (json_int_t)stats.live[t], "type", stats.factory[t],
                                      "tombstones", (json_int_t)stats.tombstones[t]));
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

static void index_sizes(void *self, long long *n_images, long long *n_captions)
{
    model_backend *mb = self;
    mv_index_stats stats;
    mv_index_get_stats(mb->index, &stats);
    *n_images = stats.live[MV_INDEX_IMAGES];
    *n_captions = stats.live[MV_INDEX_CAPTIONS];
}

/* Opens dir's index for this model, or creates an empty one when dir holds no manifest yet. */
static int open_index(model_backend *mb, const mv_daemon_options *options, mv_error *err)
{
    const char *dir = options->index_dir;
    mv_index_options index_options = {.ef_search = options->ef_search, .nprobe = options->nprobe,
                                      .refine_k_factor = options->refine_k_factor};
    int created;
    int status = mv_index_open_for_model(mb->model, dir, &index_options, 1, stderr, "medvlpd: warning: ", &created,
                                         &mb->index, err);
    if (!status && created)
        fprintf(stderr, "medvlpd: %s held no index: created an empty one for %s (dim %d)\n", dir,
                mb->info.family, mb->info.embed_dim);
    return status;
}

static int persist(mv_backend *backend, mv_error *err)
{
    model_backend *mb = backend->self;
    return mb->index ? mv_index_snapshot(mb->index, err) : MV_OK;
}

/* ---- loading ---- */

/* The model's name in responses: the model directory's last path component. */
static void model_name(const char *dir, char *out, size_t cap)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    snprintf(out, cap, "%.*s", (int)(n - start), dir + start);
}

static void close_backend(mv_backend *backend);

static int open_backend(const mv_daemon_options *options, mv_backend **out, mv_error *err)
{
    *out = NULL;
    model_backend *mb = calloc(1, sizeof *mb);
    if (!mb)
        return mv_fail(err, MV_ENOMEM, "out of memory");
    mv_model_options model_options = {.n_threads = options->n_threads, .max_pixels = options->max_pixels,
                                      .quant = options->quant};
    int status = mv_model_open(options->model_dir, &model_options, &mb->model, err);
    if (status) {
        free(mb);
        return status;
    }
    mv_model_get_info(mb->model, &mb->info);
    for (size_t i = 0; i < mb->info.n_unused_tensors; i++)
        fprintf(stderr, "medvlpd: warning: %s: tensor %s is not used by the model\n", options->model_dir,
                mv_model_unused_tensor(mb->model, i));
    pthread_mutex_init(&mb->lock, NULL);
    model_name(options->model_dir, mb->name, sizeof mb->name);
    mb->base = (mv_backend){.self = mb, .model_name = mb->name, .dim = mb->info.embed_dim,
                            .context_length = mb->info.context_length, .has_text = 1,
                            .embed_texts = embed_texts, .info_json = info_json,
                            .has_image = mb->info.image_size > 0, .embed_images = embed_images};
    mb->max_pixels = options->max_pixels;
    if (options->index_dir) {
        if (!(mb->index_dir = strdup(options->index_dir))) {
            close_backend(&mb->base);
            return mv_fail(err, MV_ENOMEM, "out of memory");
        }
        status = open_index(mb, options, err);
        if (status) {
            mv_error_prefix(err, "-i %s", options->index_dir);
            close_backend(&mb->base);
            return status;
        }
        mb->base.has_index = 1;
        mb->base.search = search;
        mb->base.index_add = index_add;
        mb->base.index_delete = index_delete;
        mb->base.index_stats = index_stats;
        mb->base.index_sizes = index_sizes;
        mb->base.thumbnails_put = thumbnails_put;
        mb->base.thumbnail = thumbnail;
    }
    *out = &mb->base;
    return MV_OK;
}

static void close_backend(mv_backend *backend)
{
    model_backend *mb = backend->self;
    if (mb->index)
        mv_index_close(mb->index);
    mv_model_free(mb->model);
    pthread_mutex_destroy(&mb->lock);
    free(mb->index_dir);
    free(mb);
}

int main(int argc, char **argv)
{
    static const mv_backend_loader loader = {"medvlpd", open_backend, persist, close_backend};
    mv_blas_select_kernels(argv); /* may re-execute the daemon once, before any thread exists */
    return mv_daemon_main(argc, argv, &loader);
}
