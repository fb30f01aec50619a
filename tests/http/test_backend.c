/* test_backend.c — medvlpd-testbackend: the real daemon (flags, server, batching, signals) over a
 * transport-test backend. Its outputs are simple closed-form functions of the input bytes that
 * test_server.sh recomputes on its own, so a wrong row, order or batch split is caught:
 *   text  -> [bytes, words, sum of bytes, 1]; tokens = words + 2 capped at the context (8)
 *   image -> [bytes, first byte, last byte, 1]; only PNG/JPEG magic is accepted (GIF -> 415),
 *            and "pixels" are counted as bytes against --max-pixels (-> 413).
 *   index -> -i mem: an in-memory exact index per target, cosine by brute force, ids from 0 per
 *            target, filter = equality of every filter key in the metadata.
 * MEDVLP_TEST_DELAY_MS makes every batched call take that long, so concurrent requests pile up;
 * MEDVLP_TEST_LOAD_MS delays loading, to observe the not-ready window.
 * Only `-m test` opens; any other model directory fails like a bad model. */
#include "medvlp/http.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TEST_DIM 4
#define TEST_CONTEXT 8

typedef struct stored {
    long long id;
    float vector[TEST_DIM];
    json_t *metadata;
} stored;

typedef struct test_backend {
    mv_backend base;
    long delay_ms;
    uint64_t max_pixels;
    pthread_mutex_t lock; /* index_sizes runs beside the index worker */
    struct {
        stored *rows;
        int n_rows, cap;
        long long next_id;
    } target[2];
} test_backend;

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int embed_texts(void *self, const mv_http_item *texts, int n, float *out, int *n_tokens, int *truncated,
                       mv_error *item_err, mv_error *err)
{
    (void)item_err;
    (void)err;
    test_backend *tb = self;
    pause_ms(tb->delay_ms);
    for (int i = 0; i < n; i++) {
        int words = 0, in_word = 0;
        double sum = 0;
        for (size_t b = 0; b < texts[i].size; b++) {
            unsigned char c = (unsigned char)texts[i].data[b];
            int space = c == ' ' || c == '\t' || c == '\n';
            words += !space && !in_word;
            in_word = !space;
            sum += c;
        }
        float *row = out + (size_t)i * TEST_DIM;
        row[0] = (float)texts[i].size;
        row[1] = (float)words;
        row[2] = (float)sum;
        row[3] = 1;
        truncated[i] = words + 2 > TEST_CONTEXT;
        n_tokens[i] = truncated[i] ? TEST_CONTEXT : words + 2;
    }
    return MV_OK;
}

static int embed_images(void *self, const mv_http_item *images, int n, float *out, mv_error *item_err, mv_error *err)
{
    (void)err;
    test_backend *tb = self;
    pause_ms(tb->delay_ms);
    for (int i = 0; i < n; i++) {
        const unsigned char *b = (const unsigned char *)images[i].data;
        size_t size = images[i].size;
        if (size >= 4 && !memcmp(b, "GIF8", 4)) {
            mv_fail(&item_err[i], MV_EUNSUPPORTED, "GIF images are not supported (JPEG or PNG)");
            continue;
        }
        if (size < 4 || (memcmp(b, "\x89PNG", 4) && memcmp(b, "\xff\xd8\xff", 3))) {
            mv_fail(&item_err[i], MV_EINPUT, "not a JPEG or PNG image");
            continue;
        }
        if (size > tb->max_pixels) {
            mv_fail(&item_err[i], MV_ETOOBIG, "image of %zu pixels exceeds --max-pixels %llu", size,
                    (unsigned long long)tb->max_pixels);
            continue;
        }
        float *row = out + (size_t)i * TEST_DIM;
        row[0] = (float)size;
        row[1] = b[0];
        row[2] = b[size - 1];
        row[3] = 1;
    }
    return MV_OK;
}

static int matches(const json_t *metadata, const json_t *filter)
{
    const char *key;
    json_t *want;
    json_object_foreach((json_t *)filter, key, want) {
        if (!json_equal(json_object_get(metadata, key), want))
            return 0;
    }
    return 1;
}

static int compare_hits(const void *a, const void *b)
{
    const mv_search_hit *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int search(void *self, int target, const float *query, int k, const char *filter_json, mv_search_hit *hits,
                  int *n_hits, mv_error *err)
{
    test_backend *tb = self;
    json_t *filter = filter_json ? json_loads(filter_json, 0, NULL) : NULL;
    if (filter_json && !filter)
        return mv_fail(err, MV_EINTERNAL, "unreadable filter");
    pthread_mutex_lock(&tb->lock);
    int n = tb->target[target].n_rows, n_all = 0;
    mv_search_hit *all = calloc((size_t)n + 1, sizeof *all);
    for (int i = 0; all && i < n; i++) {
        const stored *row = &tb->target[target].rows[i];
        if (filter && !matches(row->metadata, filter))
            continue;
        float dot = 0;
        for (int d = 0; d < TEST_DIM; d++)
            dot += row->vector[d] * query[d];
        all[n_all++] = (mv_search_hit){row->id, dot, NULL};
    }
    qsort(all, (size_t)n_all, sizeof *all, compare_hits);
    *n_hits = n_all < k ? n_all : k;
    for (int i = 0; all && i < *n_hits; i++) {
        hits[i] = all[i];
        for (int j = 0; j < n; j++)
            if (tb->target[target].rows[j].id == all[i].id)
                hits[i].metadata_json = json_dumps(tb->target[target].rows[j].metadata, JSON_COMPACT);
    }
    pthread_mutex_unlock(&tb->lock);
    json_decref(filter);
    int status = all ? MV_OK : mv_fail(err, MV_ENOMEM, "out of memory");
    free(all);
    return status;
}

static int index_add(void *self, int target, const float *vectors, const char *const *metadata_json,
                     const char *const *captions, int n, long long *ids_out, mv_error *err)
{
    (void)captions;
    test_backend *tb = self;
    pthread_mutex_lock(&tb->lock);
    __typeof__(tb->target[0]) *t = &tb->target[target];
    if (t->n_rows + n > t->cap) {
        int cap = (t->n_rows + n) * 2;
        stored *rows = realloc(t->rows, sizeof *rows * (size_t)cap);
        if (!rows) {
            pthread_mutex_unlock(&tb->lock);
            return mv_fail(err, MV_ENOMEM, "out of memory");
        }
        t->rows = rows;
        t->cap = cap;
    }
    for (int i = 0; i < n; i++) {
        stored *row = &t->rows[t->n_rows++];
        row->id = ids_out[i] = t->next_id++;
        memcpy(row->vector, vectors + (size_t)i * TEST_DIM, sizeof row->vector);
        row->metadata = json_loads(metadata_json[i], 0, NULL);
    }
    pthread_mutex_unlock(&tb->lock);
    return MV_OK;
}

static int index_delete(void *self, int target, long long id, mv_error *err)
{
    test_backend *tb = self;
    pthread_mutex_lock(&tb->lock);
    __typeof__(tb->target[0]) *t = &tb->target[target];
    for (int i = 0; i < t->n_rows; i++) {
        if (t->rows[i].id == id) {
            json_decref(t->rows[i].metadata);
            t->rows[i] = t->rows[--t->n_rows];
            pthread_mutex_unlock(&tb->lock);
            return MV_OK;
        }
    }
    pthread_mutex_unlock(&tb->lock);
    return mv_fail(err, MV_ENOTFOUND, "no id %lld in %s", id, target == MV_TARGET_IMAGES ? "images" : "captions");
}

static void index_sizes(void *self, long long *n_images, long long *n_captions)
{
    test_backend *tb = self;
    pthread_mutex_lock(&tb->lock);
    *n_images = tb->target[MV_TARGET_IMAGES].n_rows;
    *n_captions = tb->target[MV_TARGET_CAPTIONS].n_rows;
    pthread_mutex_unlock(&tb->lock);
}

static char *index_stats(void *self)
{
    long long n_images, n_captions;
    index_sizes(self, &n_images, &n_captions);
    json_t *stats = json_pack("{s:i,s:{s:I,s:s},s:{s:I,s:s}}", "dim", TEST_DIM, "images", "count",
                              (json_int_t)n_images, "type", "test-exact", "captions", "count",
                              (json_int_t)n_captions, "type", "test-exact");
    char *text = stats ? json_dumps(stats, JSON_COMPACT) : NULL;
    json_decref(stats);
    return text;
}

static int open_backend(const mv_daemon_options *options, mv_backend **out, mv_error *err)
{
    *out = NULL;
    if (strcmp(options->model_dir, "test"))
        return mv_fail(err, MV_ENOTFOUND, "%s: no model directory (the test backend opens only 'test')",
                       options->model_dir);
    const char *load = getenv("MEDVLP_TEST_LOAD_MS");
    pause_ms(load ? atol(load) : 0);
    test_backend *tb = calloc(1, sizeof *tb);
    if (!tb)
        return mv_fail(err, MV_ENOMEM, "out of memory");
    const char *delay = getenv("MEDVLP_TEST_DELAY_MS");
    tb->delay_ms = delay ? atol(delay) : 0;
    tb->max_pixels = options->max_pixels ? options->max_pixels : ((uint64_t)64 << 20);
    tb->base = (mv_backend){.self = tb, .model_name = "transport-test", .dim = TEST_DIM,
                            .context_length = TEST_CONTEXT, .has_text = 1, .has_image = 1,
                            .embed_texts = embed_texts, .embed_images = embed_images};
    pthread_mutex_init(&tb->lock, NULL);
    if (options->index_dir) {
        if (strcmp(options->index_dir, "mem")) {
            free(tb);
            return mv_fail(err, MV_ENOTFOUND, "%s: no index directory (the test backend opens only 'mem')",
                           options->index_dir);
        }
        tb->base.has_index = 1;
        tb->base.search = search;
        tb->base.index_add = index_add;
        tb->base.index_delete = index_delete;
        tb->base.index_stats = index_stats;
        tb->base.index_sizes = index_sizes;
    }
    *out = &tb->base;
    return MV_OK;
}

static void close_backend(mv_backend *backend)
{
    test_backend *tb = backend->self;
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < tb->target[t].n_rows; i++)
            json_decref(tb->target[t].rows[i].metadata);
        free(tb->target[t].rows);
    }
    pthread_mutex_destroy(&tb->lock);
    free(tb);
}

int main(int argc, char **argv)
{
    static const mv_backend_loader loader = {"medvlpd-testbackend", open_backend, NULL, close_backend};
    return mv_daemon_main(argc, argv, &loader);
}
