/* build.c — `medvlp index build` as a library (include/medvlp/index_build.h): listing image folders
 * and pairs CSVs, batched embedding, durable adds with resume, bad-input accounting and progress.
 *
 * Resume works from the index itself: at start every live record's (target, source, caption) goes
 * into a set, and inputs whose vectors are all in it are passed over. Each batch is acknowledged
 * by the index journal (fsync) before the next starts, so a kill loses at most the batch in flight. */
#include "medvlp/index_build.h"

#include "index/csv.h"
#include "medvlp/file.h"
#include "medvlp/image.h"
#include "medvlp/index.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_IMAGE_FILE_BYTES ((size_t)1 << 30)
#define MAX_TEXT_FILE_BYTES ((size_t)16 << 20)
#define MAX_CSV_BYTES ((size_t)16 << 30)

/* ---- listing ---- */

static int push_input(mv_build_inputs *list, size_t *cap, mv_build_input input, mv_error *err)
{
    if (list->n_items == *cap) {
        size_t cap_new = *cap ? *cap * 2 : 256;
        mv_build_input *grown = realloc(list->items, cap_new * sizeof *grown);
        if (!grown)
            return mv_fail(err, MV_ENOMEM, "out of memory listing %zu inputs", list->n_items);
        list->items = grown;
        *cap = cap_new;
    }
    list->items[list->n_items++] = input;
    return MV_OK;
}

static int has_image_extension(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

/* Adds the image files under dir (real directories only: symbolic links to folders are not followed,
 * which also rules out cycles). */
static int walk_images(const char *dir, mv_build_inputs *list, size_t *cap, mv_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return mv_fail(err, errno == ENOENT || errno == ENOTDIR ? MV_EINPUT : MV_EIO, "%s: %s", dir, strerror(errno));
    int status = MV_OK;
    struct dirent *entry;
    char path[4096];
    while (!status && (entry = readdir(d))) {
        if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, ".."))
            continue;
        status = mv_path_join(path, sizeof path, dir, entry->d_name, err);
        struct stat st;
        if (status || lstat(path, &st))
            continue;
        if (S_ISDIR(st.st_mode)) {
            status = walk_images(path, list, cap, err);
        } else if (has_image_extension(entry->d_name) && !stat(path, &st) && S_ISREG(st.st_mode)) {
            char *copy = strdup(path);
            status = copy ? push_input(list, cap, (mv_build_input){.image_path = copy}, err)
                          : mv_fail(err, MV_ENOMEM, "out of memory");
            if (status)
                free(copy);
        }
    }
    closedir(d);
    return status;
}

static int compare_image_paths(const void *a, const void *b)
{
    return strcmp(((const mv_build_input *)a)->image_path, ((const mv_build_input *)b)->image_path);
}

int mv_build_list_images(const char *dir, mv_build_inputs *out, mv_error *err)
{
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    int status = walk_images(dir, out, &cap, err);
    if (status) {
        mv_build_inputs_free(out);
        return status;
    }
    qsort(out->items, out->n_items, sizeof *out->items, compare_image_paths);
    return MV_OK;
}

/* The column named name in the header, else name as a 0-based column number; -1 if neither. */
static int find_column(const mv_csv_row *header, const char *name)
{
    for (int c = 0; c < header->n_fields; c++)
        if (!strcmp(header->fields[c], name))
            return c;
    char *end;
    errno = 0;
    long number = strtol(name, &end, 10);
    return *name && !*end && !errno && number >= 0 && number < header->n_fields ? (int)number : -1;
}

/* root/value, or value itself when it is absolute or root is empty. */
static char *resolve(const char *root, const char *value)
{
    char *path;
    if (value[0] == '/' || !root[0])
        return strdup(value);
    return asprintf(&path, "%s/%s", root, value) < 0 ? NULL : path;
}

int mv_build_list_pairs(const char *csv_path, const mv_pairs_options *options, mv_build_inputs *out, mv_error *err)
{
    memset(out, 0, sizeof *out);
    out->pairs = 1;
    char *text;
    size_t n_text;
    int status = mv_file_read_all(csv_path, MAX_CSV_BYTES, &text, &n_text, err);
    if (status)
        return status == MV_ENOTFOUND || status == MV_EIO ? (err->code = MV_EINPUT) : status;
    mv_csv csv;
    status = mv_csv_parse(text, n_text, csv_path, &csv, err);
    free(text);
    if (status)
        return status;
    /* Relative roots default to the CSV's own folder, where such tables usually sit. */
    const char *slash = strrchr(csv_path, '/');
    char *csv_dir = slash ? strndup(csv_path, (size_t)(slash - csv_path + (slash == csv_path))) : strdup("");
    const char *img_col = options->img_col ? options->img_col : "image";
    const char *text_col = options->text_col ? options->text_col : "text";
    const char *img_root = options->img_root ? options->img_root : csv_dir;
    const char *text_root = options->text_root ? options->text_root : csv_dir;
    int c_image = -1, c_text = -1;
    size_t cap = 0;
    if (!csv_dir) {
        status = mv_fail(err, MV_ENOMEM, "out of memory");
    } else if (csv.n_rows == 0) {
        status = mv_fail(err, MV_EINPUT, "%s: empty CSV (a header row naming the columns is required)", csv_path);
    } else if ((c_image = find_column(&csv.rows[0], img_col)) < 0 || (c_text = find_column(&csv.rows[0], text_col)) < 0) {
        status = mv_fail(err, MV_EINPUT, "%s: no column '%s' in the header (use %s)", csv_path,
                         c_image < 0 ? img_col : text_col, c_image < 0 ? "--img-col" : "--text-col");
    }
    for (size_t r = 1; !status && r < csv.n_rows; r++) {
        const mv_csv_row *row = &csv.rows[r];
        mv_build_input input = {.line = row->line};
        if (row->n_fields > c_image && row->n_fields > c_text) {
            const char *text_field = row->fields[c_text];
            input.image_path = resolve(img_root, row->fields[c_image]);
            if (options->text_from_files)
                input.text_path = resolve(text_root, text_field);
            else
                input.caption = strdup(text_field);
            if (!input.image_path || !(input.text_path || input.caption)) {
                status = mv_fail(err, MV_ENOMEM, "out of memory");
            }
        }
        if (!status)
            status = push_input(out, &cap, input, err);
        if (status) {
            free(input.image_path);
            free(input.text_path);
            free(input.caption);
        }
    }
    free(csv_dir);
    mv_csv_free(&csv);
    if (status)
        mv_build_inputs_free(out);
    return status;
}

void mv_build_inputs_free(mv_build_inputs *inputs)
{
    for (size_t i = 0; i < inputs->n_items; i++) {
        free(inputs->items[i].image_path);
        free(inputs->items[i].caption);
        free(inputs->items[i].text_path);
    }
    free(inputs->items);
    memset(inputs, 0, sizeof *inputs);
}

/* ---- building ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Vectors of an index that is not trained yet (IVF, PQ), held until there are enough to train on. */
typedef struct held_vectors {
    float *vectors;
    mv_index_item *items;
    size_t n, cap;
} held_vectors;

typedef struct build_state {
    mv_model *model;
    mv_index *index;
    int dim;
    const mv_build_inputs *inputs;
    const mv_build_options *options;
    mv_build_summary *summary;
    json_t *done[MV_INDEX_N_TARGETS]; /* keys (source + "\n" + caption) already in the index */
    held_vectors held[MV_INDEX_N_TARGETS];
    size_t train_size;
    char **captions;                  /* per input: read from its text file, else NULL */
    double t_start, t_reported;
    /* one batch */
    int *batch_inputs;                /* input numbers of the batch */
    int *need[MV_INDEX_N_TARGETS];    /* 1: the input still needs that target's vector */
    int *ok;                          /* 0 once the input has failed */
    mv_image *images;
    float *vectors[MV_INDEX_N_TARGETS];
} build_state;

__attribute__((format(printf, 2, 3)))
static void warn(build_state *b, const char *fmt, ...)
{
    if (!b->options->log)
        return;
    if (b->options->progress_redraw)
        fputs("\r\033[K", b->options->log); /* clear the progress line first */
    fputs("warning: ", b->options->log);
    va_list args;
    va_start(args, fmt);
    vfprintf(b->options->log, fmt, args);
    va_end(args);
    fputc('\n', b->options->log);
}

static const char *caption_of(const build_state *b, int input)
{
    return b->inputs->items[input].caption ? b->inputs->items[input].caption : b->captions[input];
}

/* The resume key of an input: what its records hold as source and caption. */
static char *input_key(const char *source, const char *caption)
{
    char *key;
    return asprintf(&key, "%s\n%s", source ? source : "", caption ? caption : "") < 0 ? NULL : key;
}

/* Fills the resume sets from every live record of the index. */
static int load_done(build_state *b, mv_error *err)
{
    mv_index_stats stats;
    mv_index_get_stats(b->index, &stats);
    for (int64_t id = 0; id < stats.next_id; id++) {
        mv_index_record record;
        int status = mv_index_get(b->index, id, &record, err);
        if (status == MV_ENOTFOUND)
            continue; /* deleted */
        if (status)
            return status;
        char *key = input_key(record.source, record.caption);
        status = !key || json_object_set_new_nocheck(b->done[record.target], key, json_true())
                         ? mv_fail(err, MV_ENOMEM, "out of memory for the resume set") : MV_OK;
        free(key);
        mv_index_record_free(&record);
        if (status)
            return status;
    }
    return MV_OK;
}

static void report_progress(build_state *b, int final)
{
    FILE *log = b->options->log;
    double t = now_s(), interval = b->options->progress_interval_s;
    if (!log)
        return;
    if (interval <= 0)
        interval = b->options->progress_redraw ? 0.2 : 10;
    if (!final && t - b->t_reported < interval)
        return;
    b->t_reported = t;
    const mv_build_summary *s = b->summary;
    long long worked = s->added + s->skipped, done = worked + s->already;
    double elapsed = t - b->t_start, rate = elapsed > 0 ? (double)worked / elapsed : 0;
    long long remaining = s->total - done - s->left;
    char eta[32] = "?";
    if (rate > 0) {
        long long eta_s = (long long)((double)remaining / rate + 0.5);
        snprintf(eta, sizeof eta, "%lldh%02lldm%02llds", eta_s / 3600, eta_s / 60 % 60, eta_s % 60);
    }
    fprintf(log, "%s%lld/%lld inputs  %.1f inputs/s  ETA %s  (%lld skipped, %lld already indexed)%s",
            b->options->progress_redraw ? "\r\033[K" : "index build: ", done, s->total, rate, eta, s->skipped,
            s->already, b->options->progress_redraw && !final ? "" : "\n");
    fflush(log);
}

/* Adds n vectors to target, or holds them while the index waits for enough vectors to train. */
static int add_vectors(build_state *b, int target, const float *vectors, const mv_index_item *items, size_t n,
                       int flush, mv_error *err)
{
    held_vectors *h = &b->held[target];
    if (!mv_index_is_trained(b->index, target)) {
        if (h->n + n > h->cap) {
            size_t cap = h->n + n > 2 * h->cap ? h->n + n : 2 * h->cap;
            float *vectors_new = realloc(h->vectors, cap * (size_t)b->dim * sizeof *vectors_new);
            if (vectors_new)
                h->vectors = vectors_new;
            mv_index_item *items_new = realloc(h->items, cap * sizeof *items_new);
            if (items_new)
                h->items = items_new;
            if (!vectors_new || !items_new)
                return mv_fail(err, MV_ENOMEM, "out of memory holding %zu vectors for training", cap);
            h->cap = cap;
        }
        memcpy(h->vectors + h->n * (size_t)b->dim, vectors, n * (size_t)b->dim * sizeof *vectors);
        memcpy(h->items + h->n, items, n * sizeof *items);
        h->n += n;
        if (h->n < b->train_size && !flush)
            return MV_OK;
        if (b->options->log)
            fprintf(b->options->log, "%sindex build: training the %s index on %zu vectors\n",
                    b->options->progress_redraw ? "\r\033[K" : "", mv_index_target_name(target), h->n);
        int status = mv_index_train(b->index, target, h->vectors, h->n, err);
        if (status)
            return status;
        for (size_t i = 0; i < h->n; i++)
            h->items[i].vector = h->vectors + i * (size_t)b->dim;
        vectors = NULL;
        items = h->items;
        n = h->n;
    }
    int64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    int status = ids ? mv_index_add(b->index, target, items, n, ids, err)
                     : mv_fail(err, MV_ENOMEM, "out of memory for %zu ids", n);
    free(ids);
    if (!status)
        b->summary->vectors[target] += (long long)n;
    if (!status && !vectors)
        h->n = 0;
    return status;
}

/* Reads (when it comes from a file) the caption of input i into b->captions. 0: skipped. */
static int read_caption(build_state *b, int i)
{
    const mv_build_input *in = &b->inputs->items[i];
    mv_error err;
    if (in->text_path && !b->captions[i]) {
        char *text;
        size_t n;
        if (mv_file_read_all(in->text_path, MAX_TEXT_FILE_BYTES, &text, &n, &err)) {
            warn(b, "skipped: %s", err.message);
            return 0;
        }
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ' || text[n - 1] == '\t'))
            text[--n] = '\0';
        b->captions[i] = text;
    }
    if (!caption_of(b, i)[0]) {
        warn(b, "%s: skipped: empty caption", in->image_path);
        return 0;
    }
    return 1;
}

/* Reads and decodes the image of input i into *image. 0: skipped. */
static int read_image(build_state *b, int i, mv_image *image)
{
    const char *path = b->inputs->items[i].image_path;
    char *bytes;
    size_t n;
    mv_error err;
    int status = mv_file_read_all(path, MAX_IMAGE_FILE_BYTES, &bytes, &n, &err);
    if (!status) {
        status = mv_image_decode(bytes, n, path, NULL, image, &err);
        free(bytes);
    }
    if (status)
        warn(b, "skipped: %s", err.message);
    return !status;
}

/* Embeds rows (n of them, each one image or one text) into out; when the whole call refuses an
 * input, embeds them one by one and marks those refused in ok_rows[]. Non-input failures fail. */
static int embed_rows(build_state *b, int target, const void *rows, int n, const int *input_of, float *out,
                      mv_error *err)
{
    const mv_image *images = rows;
    const char *const *texts = rows;
    int status = target == MV_INDEX_IMAGES ? mv_model_embed_images(b->model, images, n, 1, out, err)
                                           : mv_model_embed_texts(b->model, texts, NULL, n, 1, out, NULL, NULL, err);
    if (status != MV_EINPUT && status != MV_ETOOBIG && status != MV_EUNSUPPORTED)
        return status;
    for (int r = 0; r < n; r++) {
        float *row = out + (size_t)r * (size_t)b->dim;
        mv_error one;
        status = target == MV_INDEX_IMAGES ? mv_model_embed_images(b->model, &images[r], 1, 1, row, &one)
                                           : mv_model_embed_texts(b->model, &texts[r], NULL, 1, 1, row, NULL, NULL, &one);
        if (status == MV_EINPUT || status == MV_ETOOBIG || status == MV_EUNSUPPORTED) {
            warn(b, "%s: skipped: %s", b->inputs->items[input_of[r]].image_path, one.message);
            b->ok[input_of[r]] = 0;
        } else if (status) {
            *err = one;
            return status;
        }
    }
    return MV_OK;
}

/* Embeds and adds the n inputs of b->batch_inputs that still need vectors. */
static int run_batch(build_state *b, int n, mv_error *err)
{
    int *input_of = malloc((size_t)n * sizeof *input_of);
    const char **texts = malloc((size_t)n * sizeof *texts);
    mv_index_item *items = malloc((size_t)n * sizeof *items);
    int status = MV_OK, n_images = 0;
    if (!input_of || !texts || !items) {
        status = mv_fail(err, MV_ENOMEM, "out of memory for a batch of %d", n);
        goto done;
    }
    for (int j = 0; j < n; j++) {
        int i = b->batch_inputs[j];
        b->ok[i] = !b->need[MV_INDEX_IMAGES][j] || read_image(b, i, &b->images[n_images]);
        if (b->ok[i] && b->need[MV_INDEX_IMAGES][j])
            input_of[n_images++] = i;
    }
    if (n_images)
        status = embed_rows(b, MV_INDEX_IMAGES, b->images, n_images, input_of, b->vectors[MV_INDEX_IMAGES], err);
    int *image_input_of = NULL;
    if (!status && (image_input_of = malloc((size_t)(n_images ? n_images : 1) * sizeof *image_input_of)))
        memcpy(image_input_of, input_of, (size_t)n_images * sizeof *input_of);
    else if (!status)
        status = mv_fail(err, MV_ENOMEM, "out of memory");
    int n_texts = 0;
    for (int j = 0; !status && j < n; j++) {
        int i = b->batch_inputs[j];
        if (b->ok[i] && b->need[MV_INDEX_CAPTIONS][j]) {
            texts[n_texts] = caption_of(b, i);
            input_of[n_texts++] = i;
        }
    }
    if (!status && n_texts)
        status = embed_rows(b, MV_INDEX_CAPTIONS, texts, n_texts, input_of, b->vectors[MV_INDEX_CAPTIONS], err);
    /* Add the vectors of inputs that came through whole, images first, then captions. */
    for (int t = 0; !status && t < MV_INDEX_N_TARGETS; t++) {
        const int *rows_input = t == MV_INDEX_IMAGES ? image_input_of : input_of;
        int n_rows = t == MV_INDEX_IMAGES ? n_images : n_texts, n_items = 0;
        float *vectors = b->vectors[t];
        for (int r = 0; r < n_rows; r++) {
            int i = rows_input[r];
            if (!b->ok[i])
                continue;
            /* Compact the rows of inputs that survived to the front (r >= n_items always). */
            memmove(vectors + (size_t)n_items * (size_t)b->dim, vectors + (size_t)r * (size_t)b->dim,
                    (size_t)b->dim * sizeof *vectors);
            items[n_items++] = (mv_index_item){.source = b->inputs->items[i].image_path, .caption = caption_of(b, i)};
        }
        for (int r = 0; r < n_items; r++)
            items[r].vector = vectors + (size_t)r * (size_t)b->dim;
        if (n_items)
            status = add_vectors(b, t, vectors, items, (size_t)n_items, 0, err);
    }
    for (int j = 0; !status && j < n; j++) {
        int i = b->batch_inputs[j];
        if (!b->ok[i]) {
            b->summary->skipped++;
            continue;
        }
        b->summary->added++;
        char *key = input_key(b->inputs->items[i].image_path, caption_of(b, i));
        for (int t = 0; t < MV_INDEX_N_TARGETS && key; t++)
            if (b->need[t][j] && json_object_set_new_nocheck(b->done[t], key, json_true()))
                status = mv_fail(err, MV_ENOMEM, "out of memory for the resume set");
        if (!key)
            status = mv_fail(err, MV_ENOMEM, "out of memory for the resume set");
        free(key);
    }
    free(image_input_of);
done:
    for (int r = 0; r < n_images; r++)
        mv_image_free(&b->images[r]);
    free(input_of);
    free(texts);
    free(items);
    return status;
}

/* Whether input i still needs the vector of target; keys are (source, caption) as the index holds. */
static int needs(build_state *b, int target, int i)
{
    const mv_build_input *in = &b->inputs->items[i];
    if (target == MV_INDEX_CAPTIONS && !b->inputs->pairs)
        return 0;
    char *key = input_key(in->image_path, caption_of(b, i));
    int need = !key || !json_object_get(b->done[target], key);
    free(key);
    return need;
}

int mv_index_open_for_model(mv_model *model, const char *index_dir, const mv_index_options *options, int create,
                            FILE *log, const char *warning_prefix, int *created, mv_index **out, mv_error *err)
{
    mv_model_info info;
    mv_model_get_info(model, &info);
    char checksum[65], manifest[4096];
    int status = mv_model_weights_checksum(model, checksum, err);
    if (!status)
        status = mv_path_join(manifest, sizeof manifest, index_dir, "manifest.json", err);
    if (status)
        return status;
    mv_index_model expect = {.family = info.family, .dim = info.embed_dim, .weights_checksum = checksum};
    int exists = mv_file_exists(manifest);
    if (created)
        *created = !exists && create;
    if (!exists)
        return create ? mv_index_create(index_dir, &expect, options, out, err)
                      : mv_fail(err, MV_EINPUT, "%s holds no index (no manifest.json)", index_dir);
    mv_index_open_report report;
    status = mv_index_open(index_dir, &expect, options, &report, out, err);
    if (!status && report.warning[0] && log)
        fprintf(log, "%s%s: %s\n", warning_prefix, index_dir, report.warning);
    return status;
}

static int open_or_create(mv_model *model, const char *dir, const mv_build_options *options, size_t n_inputs,
                          mv_index **out, mv_error *err)
{
    /* Progress is durable batch by batch in the journal: no automatic snapshot mid-build. */
    mv_index_options index_options = {.factory = options->factory, .expected_vectors = (long long)n_inputs,
                                      .ef_construction = options->ef_construction, .snapshot_journal_bytes = -1};
    return mv_index_open_for_model(model, dir, &index_options, 1, options->log, "warning: ", NULL, out, err);
}

static void free_state(build_state *b)
{
    for (int t = 0; t < MV_INDEX_N_TARGETS; t++) {
        json_decref(b->done[t]);
        free(b->held[t].vectors);
        free(b->held[t].items);
        free(b->need[t]);
        free(b->vectors[t]);
    }
    for (size_t i = 0; b->captions && i < b->inputs->n_items; i++)
        free(b->captions[i]);
    free(b->captions);
    free(b->batch_inputs);
    free(b->ok);
    free(b->images);
    if (b->index)
        mv_index_close(b->index);
}

int mv_build_index(mv_model *model, const char *dir, const mv_build_inputs *inputs, const mv_build_options *options,
                   mv_build_summary *summary, mv_error *err)
{
    memset(summary, 0, sizeof *summary);
    summary->total = (long long)inputs->n_items;
    mv_model_info info;
    mv_model_get_info(model, &info);
    if (!info.image_preprocessing)
        return mv_fail(err, MV_EINPUT, "the %s model has no image tower: it cannot index images", info.family);
    int batch = options->batch > 0 ? options->batch : 32;
    build_state b = {.model = model, .dim = info.embed_dim, .inputs = inputs, .options = options,
                     .summary = summary, .t_start = now_s()};
    b.train_size = options->train_size > 0 ? (size_t)options->train_size : 100000;
    b.t_reported = b.t_start;
    int status = MV_OK;
    b.captions = calloc(inputs->n_items ? inputs->n_items : 1, sizeof *b.captions);
    b.ok = calloc(inputs->n_items ? inputs->n_items : 1, sizeof *b.ok);
    b.batch_inputs = malloc((size_t)batch * sizeof *b.batch_inputs);
    b.images = calloc((size_t)batch, sizeof *b.images);
    for (int t = 0; t < MV_INDEX_N_TARGETS; t++) {
        b.done[t] = json_object();
        b.need[t] = malloc((size_t)batch * sizeof *b.need[t]);
        b.vectors[t] = malloc((size_t)batch * (size_t)b.dim * sizeof *b.vectors[t]);
        if (!b.done[t] || !b.need[t] || !b.vectors[t])
            status = mv_fail(err, MV_ENOMEM, "out of memory for batches of %d", batch);
    }
    if (!b.captions || !b.ok || !b.batch_inputs || !b.images)
        status = mv_fail(err, MV_ENOMEM, "out of memory for %zu inputs", inputs->n_items);
    if (!status)
        status = open_or_create(model, dir, options, inputs->n_items, &b.index, err);
    if (!status)
        status = load_done(&b, err);
    size_t next = 0;
    while (!status && next < inputs->n_items) {
        int n = 0;
        for (; n < batch && next < inputs->n_items; next++) {
            int i = (int)next;
            if (!inputs->items[i].image_path) {
                warn(&b, "line %ld: skipped: the row has too few fields", inputs->items[i].line);
                summary->skipped++;
                continue;
            }
            if (inputs->pairs && !read_caption(&b, i)) {
                summary->skipped++;
                continue;
            }
            int need_image = needs(&b, MV_INDEX_IMAGES, i), need_caption = needs(&b, MV_INDEX_CAPTIONS, i);
            if (!need_image && !need_caption) {
                summary->already++;
                continue;
            }
            if (options->limit > 0 && summary->added + summary->skipped + n >= options->limit)
                break;
            b.batch_inputs[n] = i;
            b.need[MV_INDEX_IMAGES][n] = need_image;
            b.need[MV_INDEX_CAPTIONS][n] = need_caption;
            n++;
        }
        if (n)
            status = run_batch(&b, n, err);
        report_progress(&b, 0);
        if (options->limit > 0 && summary->added + summary->skipped >= options->limit)
            break;
    }
    /* Vectors still held for training: train on what there is and add them. */
    for (int t = 0; !status && t < MV_INDEX_N_TARGETS; t++)
        if (b.held[t].n)
            status = add_vectors(&b, t, b.held[t].vectors, b.held[t].items, 0, 1, err);
    if (!status)
        status = mv_index_snapshot(b.index, err);
    summary->left = (long long)inputs->n_items - summary->added - summary->skipped - summary->already;
    summary->seconds = now_s() - b.t_start;
    if (!status)
        report_progress(&b, 1);
    free_state(&b);
    return status;
}
