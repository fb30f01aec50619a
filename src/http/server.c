/* server.c — medvlpd's HTTP front: libmicrohttpd transport, routing, limits, auth, JSON in/out.
 *
 * Owns the lifetime of a request: from the first header callback (route, auth and Content-Length
 * are decided before any body byte is read) through bounded body accumulation, validation and
 * hand-off to a batch queue (the connection is suspended while the worker computes), to the JSON
 * response, the access log line and the metrics. Handlers never run model math.
 *
 * Every error leaves through fail(): status + {"error":{"status","code","message"}}. */
#include "http/internal.h"
#include "http/portal_assets.h"
#include "medvlp/search.h"
#include "medvlp/tensor.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Floats survive a JSON round trip with 9 significant digits. */
#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))
#define MAX_MULTIPART_PARTS 1024

struct mv_http_server {
    mv_http_config config;
    char *api_key;
    const mv_backend *backend;
    struct MHD_Daemon *daemon;
    mv_batcher *batchers[MV_N_QUEUES];
    mv_metrics metrics;
    atomic_int ready;
    atomic_int in_flight;
    atomic_ulong next_request;
    unsigned long id_seed;
    int port;
    pthread_mutex_t log_lock;
};

struct request;
typedef enum MHD_Result (*handler_fn)(struct request *r);

struct route {
    const char *method;
    const char *path;   /* exact, or when has_id a prefix followed by a numeric id, or "…{id}…" */
    int has_id;
    int public;         /* exempt from the API key */
    handler_fn handle;
    const char *label;  /* route label in /metrics */
};

struct request {
    mv_http_server *server;
    struct MHD_Connection *conn;
    const struct route *route;
    const char *method;
    char path[160];
    char id[72];
    long long resource_id;
    double t_start;
    int status;                 /* the status answered, 0 until then */
    enum MHD_Result result;     /* what the handler returns to MHD after answering */
    /* body, bounded by --max-body */
    char *body;
    size_t n_body, cap_body, n_discarded;
    int body_over;
    /* work handed to a batch queue */
    enum { PARSING, SUSPENDED, COMPUTED } phase;
    int busy;                   /* the queue was full: answer 503 after resuming */
    mv_job job;
    handler_fn finish;
    json_t *json;
    const char *content_type;
    mv_http_item *items;
    int n_items;
    unsigned char **blobs;      /* decoded base64 images */
    mv_multipart_part *parts;
    int n_parts;
    float *out;
    int *n_tokens, *truncated;
    int normalize, truncate, openai;
    /* index stage: runs on the index worker, after the encoder stage when there is one */
    int (*index_op)(mv_job *job);
    int target, k;
    char *filter_json;
    char **metadata_json;       /* one per item added */
    long long *ids;
    mv_search_hit *hits;
    int n_hits;
    char *stats_json;
};

static const char *const target_names[] = {"images", "captions"};

/* ---- responses ---- */

/* Queues resp (NULL: out of memory) with the headers every answer has, plus headers (name, value
 * pairs, NULL-terminated). */
static enum MHD_Result queue_response(struct request *r, int status, struct MHD_Response *resp,
                                      const char *content_type, const char *const *headers)
{
    if (!resp)
        return r->result = MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    for (int i = 0; headers && headers[i]; i += 2)
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    r->status = status;
    r->result = MHD_queue_response(r->conn, (unsigned int)status, resp);
    MHD_destroy_response(resp);
    return r->result;
}

static enum MHD_Result send_body(struct request *r, int status, char *body, size_t n_body, const char *content_type,
                                 const char *const *headers)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(n_body, body, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(body);
    return queue_response(r, status, resp, content_type, headers);
}

/* Sends root (stolen) as the JSON body. */
static enum MHD_Result send_json(struct request *r, int status, json_t *root, const char *const *headers)
{
    char *text = root ? json_dumps(root, JSON_FLAGS) : NULL;
    json_decref(root);
    if (!text) {
        static const char oom[] = "{\"error\":{\"status\":500,\"code\":\"internal_error\","
                                  "\"message\":\"cannot serialise the response\"}}";
        return send_body(r, 500, strdup(oom), sizeof oom - 1, "application/json", NULL);
    }
    size_t n = strlen(text);
    /* MHD frees with free(); jansson allocates with malloc by default. */
    return send_body(r, status, text, n, "application/json", headers);
}

__attribute__((format(printf, 5, 6)))
static enum MHD_Result fail_with(struct request *r, int status, const char *const *headers, const char *code,
                                 const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    json_t *err = json_pack("{s:{s:i,s:s,s:s}}", "error", "status", status, "code", code, "message", message);
    return send_json(r, status, err, headers);
}

#define fail(r, status, code, ...) fail_with(r, status, NULL, code, __VA_ARGS__)

static enum MHD_Result fail_unavailable(struct request *r, const char *code, const char *message)
{
    static const char *const retry[] = {"Retry-After", "1", NULL};
    return fail_with(r, 503, retry, code, "%s", message);
}

/* Maps an mv_error from decoding/embedding onto the HTTP status the spec gives it. */
static enum MHD_Result fail_status(struct request *r, int status, const mv_error *err)
{
    switch (status) {
    case MV_EINPUT: return fail(r, 400, "invalid_input", "%s", err->message);
    case MV_ETOOBIG: return fail(r, 413, "too_large", "%s", err->message);
    case MV_EUNSUPPORTED: return fail(r, 415, "unsupported_media_type", "%s", err->message);
    case MV_ENOTFOUND: return fail(r, 404, "not_found", "%s", err->message);
    default: return fail(r, 500, "internal_error", "%s", err->message);
    }
}

/* ---- request parsing helpers: each returns 1 when fine, 0 after answering an error ---- */

static int content_type_is(const char *content_type, const char *want)
{
    size_t n = strlen(want);
    if (!content_type || strncasecmp(content_type, want, n))
        return 0;
    char next = content_type[n];
    return next == '\0' || next == ';' || next == ' ';
}

static int parse_json_body(struct request *r)
{
    if (!content_type_is(r->content_type, "application/json")) {
        fail(r, 415, "unsupported_media_type", "%s needs Content-Type: application/json (got '%s')", r->path,
             r->content_type ? r->content_type : "none");
        return 0;
    }
    json_error_t jerr;
    r->json = json_loadb(r->body ? r->body : "", r->n_body, JSON_REJECT_DUPLICATES, &jerr);
    if (!r->json) {
        fail(r, 400, "invalid_json", "malformed JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return 0;
    }
    if (!json_is_object(r->json)) {
        fail(r, 422, "invalid_request", "the request body must be a JSON object");
        return 0;
    }
    return 1;
}

/* Reads an optional boolean member, 422 when it has another type. */
static int get_bool(struct request *r, const char *key, int fallback, int *out)
{
    json_t *v = json_object_get(r->json, key);
    if (!v || json_is_null(v)) {
        *out = fallback;
        return 1;
    }
    if (!json_is_boolean(v)) {
        fail(r, 422, "invalid_request", "'%s' must be a boolean", key);
        return 0;
    }
    *out = json_is_true(v);
    return 1;
}

static int alloc_items(struct request *r, int n)
{
    r->items = calloc((size_t)n, sizeof *r->items);
    if (!r->items) {
        fail(r, 500, "internal_error", "out of memory for %d items", n);
        return 0;
    }
    r->n_items = n;
    return 1;
}

/* Collects texts from `value` (a string or a non-empty array of strings) named `field`. */
static int collect_texts(struct request *r, json_t *value, const char *field)
{
    int max = r->server->config.max_batch_texts;
    if (!value) {
        fail(r, 422, "invalid_request", "missing '%s' (a string or an array of strings)", field);
        return 0;
    }
    if (json_is_string(value)) {
        if (!alloc_items(r, 1))
            return 0;
        r->items[0] = (mv_http_item){json_string_value(value), json_string_length(value)};
        return 1;
    }
    if (!json_is_array(value)) {
        fail(r, 422, "invalid_request", "'%s' must be a string or an array of strings", field);
        return 0;
    }
    size_t n = json_array_size(value);
    if (n == 0) {
        fail(r, 422, "invalid_request", "'%s' is an empty list", field);
        return 0;
    }
    if (n > (size_t)max) {
        fail(r, 422, "too_many_inputs", "'%s' has %zu texts, more than --max-batch-texts %d", field, n, max);
        return 0;
    }
    if (!alloc_items(r, (int)n))
        return 0;
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(value, i);
        if (!json_is_string(t)) {
            fail(r, 422, "invalid_request", "'%s[%zu]' must be a string", field, i);
            return 0;
        }
        r->items[i] = (mv_http_item){json_string_value(t), json_string_length(t)};
    }
    return 1;
}

/* Decodes one base64 image (a bare string or a data: URL) into r->blobs[i] / r->items[i]. */
static int decode_image_b64(struct request *r, json_t *value, const char *field, size_t i)
{
    if (!json_is_string(value)) {
        fail(r, 422, "invalid_request", "'%s[%zu]' must be a base64 string", field, i);
        return 0;
    }
    const char *s = json_string_value(value);
    size_t n = json_string_length(value);
    if (n > 5 && !strncmp(s, "data:", 5)) {
        const char *comma = memchr(s, ',', n);
        if (!comma || comma - s < 12 || strncmp(comma - 7, ";base64", 7)) {
            fail(r, 400, "invalid_base64", "'%s[%zu]': data URL is not ';base64,'", field, i);
            return 0;
        }
        n -= (size_t)(comma + 1 - s);
        s = comma + 1;
    }
    mv_error err = {0};
    size_t n_bytes;
    if (mv_base64_decode(s, n, &r->blobs[i], &n_bytes, &err)) {
        if (err.code == MV_ENOMEM)
            fail(r, 500, "internal_error", "%s", err.message);
        else
            fail(r, 400, "invalid_base64", "'%s[%zu]': %s", field, i, err.message);
        return 0;
    }
    r->items[i] = (mv_http_item){(const char *)r->blobs[i], n_bytes};
    return 1;
}

/* ---- batching hand-off ---- */

static void count_rejected(mv_http_server *s)
{
    pthread_mutex_lock(&s->metrics.lock);
    s->metrics.rejected_queue_full++;
    pthread_mutex_unlock(&s->metrics.lock);
}

/* Called on the worker that finished the job. An encoder stage followed by an index operation
 * (search, add) moves on to the index queue; anything else wakes the connection to answer. */
static void job_done(mv_job *job)
{
    struct request *r = job->owner;
    mv_http_server *s = r->server;
    if (r->index_op && !job->run && job->status == MV_OK) {
        if (r->normalize)
            mv_l2_normalize_rows(r->out, r->n_items, s->backend->dim);
        job->run = r->index_op;
        if (mv_batcher_submit(s->batchers[MV_QUEUE_INDEX], job) == MV_OK)
            return;
        count_rejected(s);
        r->busy = 1;
    }
    r->phase = COMPUTED;
    MHD_resume_connection(r->conn);
}

/* Suspends the connection and queues job for the queue; on a full queue answers 503 after resuming. */
static enum MHD_Result enqueue(struct request *r, int queue, handler_fn finish)
{
    r->finish = finish;
    r->phase = SUSPENDED;
    /* Suspend before queueing: the worker may finish and resume before submit() returns. */
    MHD_suspend_connection(r->conn);
    if (mv_batcher_submit(r->server->batchers[queue], &r->job)) {
        count_rejected(r->server);
        r->busy = 1;
        r->phase = COMPUTED;
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

/* Queues an index operation that needs no encoder (embedding query, delete, stats). */
static enum MHD_Result submit_index(struct request *r, int (*op)(mv_job *job), handler_fn finish)
{
    r->job = (mv_job){.run = op, .done = job_done, .owner = r};
    return enqueue(r, MV_QUEUE_INDEX, finish);
}

/* Suspends the connection and queues r->items for `encoder`; `finish` answers once computed (after
 * r->index_op, when set). */
static enum MHD_Result submit(struct request *r, int encoder, handler_fn finish)
{
    mv_http_server *s = r->server;
    int dim = s->backend->dim;
    r->out = malloc(sizeof *r->out * (size_t)r->n_items * (size_t)dim);
    r->n_tokens = calloc((size_t)r->n_items, sizeof *r->n_tokens);
    r->truncated = calloc((size_t)r->n_items, sizeof *r->truncated);
    if (!r->out || !r->n_tokens || !r->truncated)
        return fail(r, 500, "internal_error", "out of memory for %d embeddings", r->n_items);
    r->job = (mv_job){.items = r->items, .n_items = r->n_items, .out = r->out, .n_tokens = r->n_tokens,
                      .truncated = r->truncated, .done = job_done, .owner = r};
    return enqueue(r, encoder, finish);
}

static int require_ready(struct request *r, int encoder)
{
    if (!atomic_load(&r->server->ready)) {
        fail_unavailable(r, "not_ready", "the model is still loading");
        return 0;
    }
    const mv_backend *be = r->server->backend;
    if (!(encoder == MV_ENC_TEXT ? be->has_text : be->has_image)) {
        fail(r, 501, "not_supported", "%s embedding is not available for the loaded model",
             mv_encoder_names[encoder]);
        return 0;
    }
    return 1;
}

static json_t *embeddings_json(const float *x, int n_rows, int dim)
{
    json_t *rows = json_array();
    for (int i = 0; i < n_rows; i++) {
        json_t *row = json_array();
        for (int d = 0; d < dim; d++)
            json_array_append_new(row, json_real(x[(size_t)i * (size_t)dim + (size_t)d]));
        json_array_append_new(rows, row);
    }
    return rows;
}

/* ---- text embeddings ---- */

static enum MHD_Result finish_texts(struct request *r)
{
    const mv_backend *be = r->server->backend;
    if (r->job.status)
        return fail_status(r, r->job.status, &r->job.err);
    if (!r->truncate)
        for (int i = 0; i < r->n_items; i++)
            if (r->truncated[i])
                return fail(r, 422, "text_too_long",
                            "text %d is longer than the model's context of %d tokens and \"truncate\" is false",
                            i, be->context_length);
    if (r->normalize)
        mv_l2_normalize_rows(r->out, r->n_items, be->dim);
    json_t *root;
    if (r->openai) {
        json_t *data = json_array();
        long long total = 0;
        for (int i = 0; i < r->n_items; i++) {
            json_t *row = json_array();
            for (int d = 0; d < be->dim; d++)
                json_array_append_new(row, json_real(r->out[(size_t)i * (size_t)be->dim + (size_t)d]));
            json_array_append_new(data, json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", i,
                                                  "embedding", row));
            total += r->n_tokens[i];
        }
        root = json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", be->model_name,
                         "usage", "prompt_tokens", (json_int_t)total, "total_tokens", (json_int_t)total);
    } else {
        json_t *tokens = json_array(), *truncated = json_array();
        for (int i = 0; i < r->n_items; i++) {
            json_array_append_new(tokens, json_integer(r->n_tokens[i]));
            json_array_append_new(truncated, json_boolean(r->truncated[i]));
        }
        root = json_pack("{s:s,s:i,s:o,s:o,s:o}", "model", be->model_name, "dim", be->dim, "embeddings",
                         embeddings_json(r->out, r->n_items, be->dim), "tokens", tokens, "truncated", truncated);
    }
    return send_json(r, 200, root, NULL);
}

static enum MHD_Result handle_embed_text(struct request *r)
{
    if (!parse_json_body(r) || !collect_texts(r, json_object_get(r->json, "texts"), "texts") ||
        !get_bool(r, "normalize", 1, &r->normalize) || !get_bool(r, "truncate", 1, &r->truncate) ||
        !require_ready(r, MV_ENC_TEXT))
        return r->result;
    return submit(r, MV_ENC_TEXT, finish_texts);
}

static enum MHD_Result handle_openai_embeddings(struct request *r)
{
    if (!parse_json_body(r))
        return r->result;
    json_t *format = json_object_get(r->json, "encoding_format");
    if (format && !json_is_null(format) && !(json_is_string(format) && !strcmp(json_string_value(format), "float")))
        return fail(r, 422, "invalid_request", "only \"encoding_format\": \"float\" is supported");
    json_t *input = json_object_get(r->json, "input");
    if (json_is_array(input) && json_array_size(input) && !json_is_string(json_array_get(input, 0)))
        return fail(r, 422, "invalid_request", "'input' must be a string or an array of strings (token arrays are not supported)");
    if (!collect_texts(r, input, "input") || !require_ready(r, MV_ENC_TEXT))
        return r->result;
    r->openai = 1;
    r->normalize = 1;
    r->truncate = 1;
    return submit(r, MV_ENC_TEXT, finish_texts);
}

/* ---- image embeddings ---- */

static enum MHD_Result finish_images(struct request *r)
{
    const mv_backend *be = r->server->backend;
    if (r->job.status)
        return fail_status(r, r->job.status, &r->job.err);
    if (r->normalize)
        mv_l2_normalize_rows(r->out, r->n_items, be->dim);
    json_t *root = json_pack("{s:s,s:i,s:o}", "model", be->model_name, "dim", be->dim, "embeddings",
                             embeddings_json(r->out, r->n_items, be->dim));
    return send_json(r, 200, root, NULL);
}

static int collect_images_json(struct request *r)
{
    json_t *images = json_object_get(r->json, "images");
    if (json_is_string(images)) {
        json_t *one = json_array();
        json_array_append(one, images);
        json_object_set_new(r->json, "images", one);
        images = one;
    }
    if (!json_is_array(images)) {
        fail(r, 422, "invalid_request", "'images' must be an array of base64 strings");
        return 0;
    }
    size_t n = json_array_size(images);
    if (n == 0) {
        fail(r, 422, "invalid_request", "'images' is an empty list");
        return 0;
    }
    if (n > (size_t)r->server->config.max_batch_texts) {
        fail(r, 422, "too_many_inputs", "'images' has %zu images, more than %d", n, r->server->config.max_batch_texts);
        return 0;
    }
    r->blobs = calloc(n, sizeof *r->blobs);
    if (!r->blobs || !alloc_items(r, (int)n)) {
        if (!r->status)
            fail(r, 500, "internal_error", "out of memory for %zu images", n);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!decode_image_b64(r, json_array_get(images, i), "images", i))
            return 0;
    return get_bool(r, "normalize", 1, &r->normalize);
}

/* Form fields (no filename; no type or a text type) ride along with the files and are skipped. */
static int is_file_part(const mv_multipart_part *part)
{
    return part->filename[0] || (part->content_type[0] && strncasecmp(part->content_type, "text/", 5));
}

static int collect_images_multipart(struct request *r)
{
    mv_error err = {0};
    if (mv_multipart_parse(r->content_type, r->body ? r->body : "", r->n_body, MAX_MULTIPART_PARTS, &r->parts,
                           &r->n_parts, &err)) {
        fail(r, 400, "invalid_multipart", "%s", err.message);
        return 0;
    }
    int n_files = 0;
    for (int i = 0; i < r->n_parts; i++)
        n_files += is_file_part(&r->parts[i]);
    if (n_files == 0) {
        fail(r, 422, "invalid_request", "the multipart body has no file part");
        return 0;
    }
    if (!alloc_items(r, n_files))
        return 0;
    int at = 0;
    for (int i = 0; i < r->n_parts; i++)
        if (is_file_part(&r->parts[i]))
            r->items[at++] = (mv_http_item){r->parts[i].data, r->parts[i].size};
    r->normalize = 1;
    return 1;
}

static enum MHD_Result handle_embed_image(struct request *r)
{
    const char *ct = r->content_type;
    if (content_type_is(ct, "application/json")) {
        if (!parse_json_body(r) || !collect_images_json(r))
            return r->result;
    } else if (content_type_is(ct, "multipart/form-data")) {
        if (!collect_images_multipart(r))
            return r->result;
    } else if (content_type_is(ct, "image/jpeg") || content_type_is(ct, "image/png")) {
        if (!r->n_body)
            return fail(r, 422, "invalid_request", "empty image body");
        if (!alloc_items(r, 1))
            return r->result;
        r->items[0] = (mv_http_item){r->body, r->n_body};
        r->normalize = 1;
    } else {
        return fail(r, 415, "unsupported_media_type",
                    "POST /embed/image takes application/json, multipart/form-data, image/jpeg or image/png "
                    "(got '%s')", ct ? ct : "none");
    }
    if (!require_ready(r, MV_ENC_IMAGE))
        return r->result;
    return submit(r, MV_ENC_IMAGE, finish_images);
}

/* ---- index and search ---- */

#define MAX_K 1000

/* Readiness, then the index, then (for encoder > = 0) that encoder; answers the first that is missing. */
static int require_index(struct request *r, int encoder)
{
    if (!atomic_load(&r->server->ready)) {
        fail_unavailable(r, "not_ready", "the model is still loading");
        return 0;
    }
    if (!r->server->backend->has_index) {
        fail_unavailable(r, "index_not_loaded", "no index is loaded (start medvlpd with -i INDEX_DIR)");
        return 0;
    }
    return encoder < 0 || require_ready(r, encoder);
}

/* k: 1..1000, from a query argument (digits only); 10 when absent. */
static int parse_k_text(struct request *r, const char *text, int *k)
{
    if (!text) {
        *k = 10;
        return 1;
    }
    size_t n = strlen(text);
    if (n == 0 || n > 7 || strspn(text, "0123456789") != n || atoi(text) < 1 || atoi(text) > MAX_K) {
        fail(r, 422, "invalid_request", "k must be an integer in 1..%d (got '%s')", MAX_K, text);
        return 0;
    }
    *k = atoi(text);
    return 1;
}

/* Sets r->target from "images"/"captions", or fallback when name is NULL. */
static int parse_target(struct request *r, const char *name, int fallback)
{
    if (!name) {
        r->target = fallback;
        return 1;
    }
    if (strcmp(name, "images") && strcmp(name, "captions")) {
        fail(r, 422, "invalid_request", "target must be \"images\" or \"captions\" (got '%s')", name);
        return 0;
    }
    r->target = !strcmp(name, "images") ? MV_TARGET_IMAGES : MV_TARGET_CAPTIONS;
    return 1;
}

/* Checks a JSON /search request against the contract (exactly one query, k in range, a target where
 * required, a flat filter object) and fills k, target, filter_json and the query item. */
static int validate_search_json(struct request *r)
{
    json_t *text = json_object_get(r->json, "text"), *image = json_object_get(r->json, "image"),
           *embedding = json_object_get(r->json, "embedding"), *k = json_object_get(r->json, "k"),
           *target = json_object_get(r->json, "target"), *filter = json_object_get(r->json, "filter");
    if (!!text + !!image + !!embedding != 1) {
        fail(r, 422, "invalid_request", "give exactly one query: \"text\", \"image\" or \"embedding\"");
        return 0;
    }
    if (text && !json_is_string(text)) {
        fail(r, 422, "invalid_request", "'text' must be a string");
        return 0;
    }
    if (embedding) {
        if (!json_is_array(embedding) || json_array_size(embedding) == 0) {
            fail(r, 422, "invalid_request", "'embedding' must be a non-empty array of numbers");
            return 0;
        }
        for (size_t i = 0; i < json_array_size(embedding); i++)
            if (!json_is_number(json_array_get(embedding, i))) {
                fail(r, 422, "invalid_request", "'embedding[%zu]' must be a number", i);
                return 0;
            }
        if (atomic_load(&r->server->ready) && json_array_size(embedding) != (size_t)r->server->backend->dim) {
            fail(r, 422, "invalid_request", "'embedding' has %zu values, the model's dimension is %d",
                 json_array_size(embedding), r->server->backend->dim);
            return 0;
        }
        if (!target) {
            fail(r, 422, "invalid_request", "'target' (\"images\" or \"captions\") is required with 'embedding'");
            return 0;
        }
    }
    r->k = 10;
    if (k) {
        if (!json_is_integer(k) || json_integer_value(k) < 1 || json_integer_value(k) > MAX_K) {
            fail(r, 422, "invalid_request", "k must be an integer in 1..%d", MAX_K);
            return 0;
        }
        r->k = (int)json_integer_value(k);
    }
    if (target && !json_is_string(target)) {
        fail(r, 422, "invalid_request", "'target' must be a string");
        return 0;
    }
    /* Defaults cross modalities: a text finds images, an image finds captions. */
    if (!parse_target(r, target ? json_string_value(target) : NULL, image ? MV_TARGET_CAPTIONS : MV_TARGET_IMAGES))
        return 0;
    if (filter) {
        const char *key;
        json_t *value;
        if (!json_is_object(filter) || json_object_size(filter) > 1) {
            fail(r, 422, "invalid_request", "'filter' must be an object with one metadata key and its value");
            return 0;
        }
        json_object_foreach(filter, key, value) {
            if (json_is_object(value) || json_is_array(value)) {
                fail(r, 422, "invalid_request", "'filter.%s' must be a string, number, boolean or null", key);
                return 0;
            }
        }
        if (!(r->filter_json = json_dumps(filter, JSON_COMPACT))) {
            fail(r, 500, "internal_error", "out of memory");
            return 0;
        }
    }
    if (text) {
        if (!alloc_items(r, 1))
            return 0;
        r->items[0] = (mv_http_item){json_string_value(text), json_string_length(text)};
    }
    if (image) {
        r->blobs = calloc(1, sizeof *r->blobs);
        if (!r->blobs || !alloc_items(r, 1)) {
            if (!r->status)
                fail(r, 500, "internal_error", "out of memory");
            return 0;
        }
        json_t *one = json_pack("[O]", image);
        int decoded = one && decode_image_b64(r, json_array_get(one, 0), "image", 0);
        json_decref(one);
        if (!decoded)
            return 0;
    }
    return 1;
}

static int op_search(mv_job *job)
{
    struct request *r = job->owner;
    const mv_backend *be = r->server->backend;
    r->hits = calloc((size_t)r->k, sizeof *r->hits);
    if (!r->hits)
        return mv_fail(&job->err, MV_ENOMEM, "out of memory for %d results", r->k);
    return be->search(be->self, r->target, r->out, r->k, r->filter_json, r->hits, &r->n_hits, &job->err);
}

static enum MHD_Result finish_search(struct request *r)
{
    if (r->job.status)
        return fail_status(r, r->job.status, &r->job.err);
    return send_json(r, 200, mv_search_response(r->target, r->k, r->hits, r->n_hits,
                                                (mv_http_now() - r->t_start) * 1e3), NULL);
}

static enum MHD_Result handle_search(struct request *r)
{
    int encoder;
    if (content_type_is(r->content_type, "image/jpeg") || content_type_is(r->content_type, "image/png")) {
        if (!r->n_body)
            return fail(r, 422, "invalid_request", "empty image body");
        if (!parse_k_text(r, MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "k"), &r->k) ||
            !parse_target(r, MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "target"),
                          MV_TARGET_CAPTIONS) ||
            !alloc_items(r, 1))
            return r->result;
        r->items[0] = (mv_http_item){r->body, r->n_body};
        encoder = MV_ENC_IMAGE;
    } else {
        if (!parse_json_body(r) || !validate_search_json(r))
            return r->result;
        encoder = json_object_get(r->json, "text") ? MV_ENC_TEXT
                  : json_object_get(r->json, "image") ? MV_ENC_IMAGE : -1;
    }
    if (!require_index(r, encoder))
        return r->result;
    r->normalize = 1;
    r->index_op = op_search;
    if (encoder >= 0)
        return submit(r, encoder, finish_search);
    /* An embedding query goes straight to the index, normalised like every stored vector. */
    json_t *embedding = json_object_get(r->json, "embedding");
    int dim = r->server->backend->dim;
    if (!(r->out = malloc(sizeof *r->out * (size_t)dim)))
        return fail(r, 500, "internal_error", "out of memory");
    for (int d = 0; d < dim; d++)
        r->out[d] = (float)json_number_value(json_array_get(embedding, (size_t)d));
    mv_l2_normalize_rows(r->out, 1, dim);
    return submit_index(r, op_search, finish_search);
}

static int op_add(mv_job *job)
{
    struct request *r = job->owner;
    const mv_backend *be = r->server->backend;
    r->ids = calloc((size_t)r->n_items, sizeof *r->ids);
    if (!r->ids)
        return mv_fail(&job->err, MV_ENOMEM, "out of memory for %d ids", r->n_items);
    const char **captions = NULL;
    if (r->target == MV_TARGET_CAPTIONS) {
        /* The texts came from JSON strings, which jansson keeps NUL-terminated. */
        if (!(captions = malloc(sizeof *captions * (size_t)r->n_items)))
            return mv_fail(&job->err, MV_ENOMEM, "out of memory for %d captions", r->n_items);
        for (int i = 0; i < r->n_items; i++)
            captions[i] = r->items[i].data;
    }
    int status = be->index_add(be->self, r->target, r->out, (const char *const *)r->metadata_json, captions,
                               r->n_items, r->ids, &job->err);
    free(captions);
    if (!status && r->target == MV_TARGET_IMAGES && be->thumbnails_put &&
        (status = be->thumbnails_put(be->self, r->ids, r->items, r->n_items, &job->err)))
        mv_error_prefix(&job->err, "the images were added as ids %lld..%lld, but not their thumbnails", r->ids[0],
                        r->ids[r->n_items - 1]);
    return status;
}

static enum MHD_Result finish_add(struct request *r)
{
    if (r->job.status)
        return fail_status(r, r->job.status, &r->job.err);
    json_t *ids = json_array();
    for (int i = 0; i < r->n_items; i++)
        json_array_append_new(ids, json_integer((json_int_t)r->ids[i]));
    return send_json(r, 200, json_pack("{s:s,s:o}", "target", target_names[r->target], "ids", ids), NULL);
}

/* POST /index/{images,captions}: {"items":[{"image"|"text": …, "metadata": {…}}]}. */
static enum MHD_Result handle_index_add(struct request *r, int target)
{
    const char *field = target == MV_TARGET_IMAGES ? "image" : "text";
    const char *other = target == MV_TARGET_IMAGES ? "text" : "image";
    r->target = target;
    if (!parse_json_body(r))
        return r->result;
    json_t *items = json_object_get(r->json, "items");
    if (!json_is_array(items) || json_array_size(items) == 0)
        return fail(r, 422, "invalid_request", "'items' must be a non-empty array of {\"%s\": …, \"metadata\": {…}}",
                    field);
    size_t n = json_array_size(items);
    if (n > (size_t)r->server->config.max_batch_texts)
        return fail(r, 422, "too_many_inputs", "'items' has %zu entries, more than --max-batch-texts %d", n,
                    r->server->config.max_batch_texts);
    if (!alloc_items(r, (int)n))
        return r->result;
    r->metadata_json = calloc(n, sizeof *r->metadata_json);
    r->blobs = target == MV_TARGET_IMAGES ? calloc(n, sizeof *r->blobs) : NULL;
    if (!r->metadata_json || (target == MV_TARGET_IMAGES && !r->blobs))
        return fail(r, 500, "internal_error", "out of memory for %zu items", n);
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(items, i), *value = json_object_get(item, field);
        json_t *metadata = json_object_get(item, "metadata");
        if (!json_is_object(item) || !value)
            return fail(r, 422, "invalid_request", "'items[%zu]' must be an object with \"%s\"", i, field);
        if (json_object_get(item, other))
            return fail(r, 422, "invalid_request", "'items[%zu]' has \"%s\": /index/%s takes \"%s\"", i, other,
                        target_names[target], field);
        if (metadata && !json_is_object(metadata))
            return fail(r, 422, "invalid_request", "'items[%zu].metadata' must be an object", i);
        if (target == MV_TARGET_IMAGES) {
            json_t *one = json_pack("[O]", value);
            int decoded = one && decode_image_b64(r, json_array_get(one, 0), "items.image", i);
            json_decref(one);
            if (!decoded)
                return r->result;
        } else if (!json_is_string(value)) {
            return fail(r, 422, "invalid_request", "'items[%zu].text' must be a string", i);
        } else {
            r->items[i] = (mv_http_item){json_string_value(value), json_string_length(value)};
        }
        r->metadata_json[i] = metadata ? json_dumps(metadata, JSON_COMPACT) : strdup("{}");
        if (!r->metadata_json[i])
            return fail(r, 500, "internal_error", "out of memory");
    }
    int encoder = target == MV_TARGET_IMAGES ? MV_ENC_IMAGE : MV_ENC_TEXT;
    if (!require_index(r, encoder))
        return r->result;
    r->normalize = 1;
    r->index_op = op_add;
    return submit(r, encoder, finish_add);
}

static enum MHD_Result handle_add_images(struct request *r) { return handle_index_add(r, MV_TARGET_IMAGES); }
static enum MHD_Result handle_add_captions(struct request *r) { return handle_index_add(r, MV_TARGET_CAPTIONS); }

static int op_delete(mv_job *job)
{
    struct request *r = job->owner;
    const mv_backend *be = r->server->backend;
    return be->index_delete(be->self, r->target, r->resource_id, &job->err);
}

static enum MHD_Result finish_delete(struct request *r)
{
    if (r->job.status)
        return fail_status(r, r->job.status, &r->job.err);
    return send_json(r, 200, json_pack("{s:s,s:I,s:b}", "target", target_names[r->target], "id",
                                       (json_int_t)r->resource_id, "deleted", 1), NULL);
}

static enum MHD_Result handle_index_delete(struct request *r, int target)
{
    r->target = target;
    if (!require_index(r, -1))
        return r->result;
    return submit_index(r, op_delete, finish_delete);
}

static enum MHD_Result handle_delete_image(struct request *r) { return handle_index_delete(r, MV_TARGET_IMAGES); }
static enum MHD_Result handle_delete_caption(struct request *r) { return handle_index_delete(r, MV_TARGET_CAPTIONS); }

static int op_stats(mv_job *job)
{
    struct request *r = job->owner;
    const mv_backend *be = r->server->backend;
    r->stats_json = be->index_stats(be->self);
    return r->stats_json ? MV_OK : mv_fail(&job->err, MV_EINTERNAL, "the index could not describe itself");
}

static enum MHD_Result finish_stats(struct request *r)
{
    if (r->job.status)
        return fail_status(r, r->job.status, &r->job.err);
    json_t *stats = json_loads(r->stats_json, 0, NULL);
    if (!stats)
        return fail(r, 500, "internal_error", "the index described itself in malformed JSON");
    return send_json(r, 200, stats, NULL);
}

static enum MHD_Result handle_index_stats(struct request *r)
{
    if (!require_index(r, -1))
        return r->result;
    return submit_index(r, op_stats, finish_stats);
}

/* ---- operations ---- */

static enum MHD_Result handle_healthz(struct request *r)
{
    return send_json(r, 200, json_pack("{s:s}", "status", "ok"), NULL);
}

static enum MHD_Result handle_readyz(struct request *r)
{
    if (!atomic_load(&r->server->ready))
        return fail_unavailable(r, "not_ready", "the model is still loading");
    return send_json(r, 200, json_pack("{s:s}", "status", "ready"), NULL);
}

static enum MHD_Result handle_metrics(struct request *r)
{
    mv_http_server *s = r->server;
    int depth[MV_N_QUEUES];
    int ready = atomic_load(&s->ready);
    for (int q = 0; q < MV_N_QUEUES; q++)
        depth[q] = ready ? mv_batcher_depth(s->batchers[q]) : 0;
    long long sizes[2];
    int with_index = ready && s->backend->has_index && s->backend->index_sizes;
    if (with_index)
        s->backend->index_sizes(s->backend->self, &sizes[0], &sizes[1]);
    char *text = mv_metrics_render(&s->metrics, depth, atomic_load(&s->in_flight), ready,
                                   ready ? s->backend->model_name : NULL, with_index ? sizes : NULL);
    if (!text)
        return fail(r, 500, "internal_error", "out of memory rendering metrics");
    return send_body(r, 200, text, strlen(text), "text/plain; version=0.0.4", NULL);
}

static enum MHD_Result handle_models(struct request *r)
{
    const mv_backend *be = r->server->backend;
    if (!atomic_load(&r->server->ready))
        return fail_unavailable(r, "not_ready", "the model is still loading");
    json_t *model = json_pack("{s:s,s:s,s:s,s:i,s:i,s:b,s:b}", "id", be->model_name, "object", "model", "owned_by",
                              "medvlp", "dim", be->dim, "context_length", be->context_length, "text", be->has_text,
                              "image", be->has_image);
    if (be->info_json) {
        char *extra = be->info_json(be->self);
        json_t *info = extra ? json_loads(extra, 0, NULL) : NULL;
        free(extra);
        if (info)
            json_object_set_new(model, "info", info);
    }
    return send_json(r, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model), NULL);
}

/* ---- the search portal and thumbnails ---- */

/* The portal's files are compiled in (src/http/portal/, see scripts/embed_assets.py). The page
 * talks only to this origin: the policy forbids any other script, style, image or connection. */
static enum MHD_Result handle_portal(struct request *r)
{
    static const char *const headers[] = {
        "Cache-Control", "no-cache",
        "Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
            "img-src 'self' blob: data:; connect-src 'self'; form-action 'none'; base-uri 'none'; "
            "frame-ancestors 'none'",
        "X-Content-Type-Options", "nosniff",
        "Referrer-Policy", "no-referrer",
        NULL};
    const mv_asset *asset = NULL;
    for (size_t i = 0; i < mv_portal_n_assets && !asset; i++)
        if (!strcmp(mv_portal_assets[i].path, r->route->path))
            asset = &mv_portal_assets[i];
    if (!asset)
        return fail(r, 404, "not_found", "the portal has no file %s", r->route->path);
    struct MHD_Response *resp = MHD_create_response_from_buffer(asset->size, (void *)asset->data,
                                                                MHD_RESPMEM_PERSISTENT);
    return queue_response(r, 200, resp, asset->content_type, headers);
}

/* GET /index/images/{id}/thumbnail: the image is found by id in the index, never by a path. */
static enum MHD_Result handle_thumbnail(struct request *r)
{
    static const char *const headers[] = {"Cache-Control", "private, max-age=3600", "X-Content-Type-Options",
                                          "nosniff", NULL};
    if (!require_index(r, -1))
        return r->result;
    const mv_backend *be = r->server->backend;
    if (!be->thumbnail)
        return fail(r, 404, "not_found", "this index serves no thumbnails");
    unsigned char *jpeg;
    size_t n_jpeg;
    mv_error err = {0};
    int status = be->thumbnail(be->self, r->resource_id, &jpeg, &n_jpeg, &err);
    if (status)
        return fail_status(r, status, &err);
    return send_body(r, 200, (char *)jpeg, n_jpeg, "image/jpeg", headers);
}

/* ---- routing ---- */

/* The metrics slot of a route is its position here (registered in this order at start). */
static const struct route routes[] = {
    {"GET", "/healthz", 0, 1, handle_healthz, "/healthz"},
    {"GET", "/readyz", 0, 1, handle_readyz, "/readyz"},
    {"GET", "/metrics", 0, 0, handle_metrics, "/metrics"},
    {"GET", "/v1/models", 0, 0, handle_models, "/v1/models"},
    {"POST", "/embed/text", 0, 0, handle_embed_text, "/embed/text"},
    {"POST", "/v1/embeddings", 0, 0, handle_openai_embeddings, "/v1/embeddings"},
    {"POST", "/embed/image", 0, 0, handle_embed_image, "/embed/image"},
    {"POST", "/search", 0, 0, handle_search, "/search"},
    {"GET", "/index", 0, 0, handle_index_stats, "/index"},
    {"POST", "/index/images", 0, 0, handle_add_images, "/index/images"},
    {"POST", "/index/captions", 0, 0, handle_add_captions, "/index/captions"},
    {"DELETE", "/index/images/", 1, 0, handle_delete_image, "/index/images/{id}"},
    {"DELETE", "/index/captions/", 1, 0, handle_delete_caption, "/index/captions/{id}"},
    {"GET", "/", 0, 1, handle_portal, "/"},
    {"GET", "/portal.js", 0, 1, handle_portal, "/portal.js"},
    {"GET", "/portal.css", 0, 1, handle_portal, "/portal.css"},
    {"GET", "/index/images/{id}/thumbnail", 1, 0, handle_thumbnail, "/index/images/{id}/thumbnail"},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static int path_matches(const struct route *rt, const char *url, long long *id)
{
    if (!rt->has_id)
        return !strcmp(url, rt->path);
    const char *placeholder = strstr(rt->path, "{id}");
    const char *suffix = placeholder ? placeholder + 4 : "";
    size_t n = placeholder ? (size_t)(placeholder - rt->path) : strlen(rt->path);
    if (strncmp(url, rt->path, n))
        return 0;
    const char *digits = url + n;
    size_t n_digits = strspn(digits, "0123456789");
    if (!n_digits || n_digits > 18 || strcmp(digits + n_digits, suffix))
        return 0;
    *id = strtoll(digits, NULL, 10);
    return 1;
}

/* Finds the route for method + url; on a miss answers 404 or 405 (with Allow) and returns NULL. */
static const struct route *route_request(struct request *r, const char *url, const char *method)
{
    char allow[64] = "";
    for (size_t i = 0; i < N_ROUTES; i++) {
        long long id = 0;
        if (!path_matches(&routes[i], url, &id))
            continue;
        if (!strcmp(method, routes[i].method) || (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET"))) {
            r->resource_id = id;
            return &routes[i];
        }
        if (strlen(allow) + strlen(routes[i].method) + 3 < sizeof allow) {
            if (allow[0])
                strcat(allow, ", ");
            strcat(allow, routes[i].method);
        }
    }
    if (allow[0]) {
        const char *const headers[] = {"Allow", allow, NULL};
        fail_with(r, 405, headers, "method_not_allowed", "%s does not accept %s (allowed: %s)", url, method, allow);
    } else {
        fail(r, 404, "not_found", "no route %s %s", method, url);
    }
    return NULL;
}

/* Compares without an early exit so the time taken says nothing about how much of the key matched. */
static int constant_time_equal(const char *a, size_t n_a, const char *b, size_t n_b)
{
    unsigned char diff = (unsigned char)(n_a != n_b);
    for (size_t i = 0; i < n_b; i++)
        diff |= (unsigned char)(b[i] ^ (i < n_a ? a[i] : 0));
    return diff == 0;
}

static int authorized(struct request *r)
{
    const char *key = r->server->api_key;
    if (!key || r->route->public || (r->route->handle == handle_metrics && !r->server->config.protect_metrics))
        return 1;
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7))
        return 0;
    auth += 7;
    return constant_time_equal(auth, strlen(auth), key, strlen(key));
}

/* X-Request-Id is echoed when it is short and printable (it lands in logs), else generated. */
static void assign_request_id(struct request *r)
{
    const char *given = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = given ? strlen(given) : 0;
    if (n && n < sizeof r->id &&
        strspn(given, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") == n) {
        memcpy(r->id, given, n + 1);
        return;
    }
    unsigned long seq = atomic_fetch_add(&r->server->next_request, 1);
    snprintf(r->id, sizeof r->id, "%08lx-%08lx", r->server->id_seed & 0xffffffffUL, seq);
}

static enum MHD_Result on_first_call(struct request *r, const char *url, const char *method)
{
    mv_http_server *s = r->server;
    r->route = route_request(r, url, method);
    if (!r->route)
        return r->result;
    if (!authorized(r)) {
        static const char *const challenge[] = {"WWW-Authenticate", "Bearer", NULL};
        return fail_with(r, 401, challenge, "unauthorized", "missing or wrong API key (Authorization: Bearer KEY)");
    }
    const char *length = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length) {
        unsigned long long n = strtoull(length, NULL, 10);
        if (n > s->config.max_body)
            return fail(r, 413, "body_too_large", "request body of %llu bytes exceeds --max-body %zu", n,
                        s->config.max_body);
        /* One allocation of the announced size: the limit was checked above. */
        if (n) {
            r->body = malloc((size_t)n);
            if (!r->body)
                return fail(r, 500, "internal_error", "out of memory for a %llu-byte body", n);
            r->cap_body = (size_t)n;
        }
    }
    r->content_type = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    return MHD_YES;
}

/* Appends a chunk of the body, never holding more than --max-body bytes: past it the rest is read
 * and dropped (answered 413 at the end), and a sender that keeps going is disconnected. */
static enum MHD_Result on_body_chunk(struct request *r, const char *data, size_t n)
{
    size_t max = r->server->config.max_body;
    if (r->body_over) {
        r->n_discarded += n;
        return r->n_discarded > 4 * max + (1u << 20) ? MHD_NO : MHD_YES;
    }
    if (n > max - r->n_body) {
        r->body_over = 1;
        r->n_discarded = r->n_body + n;
        free(r->body);
        r->body = NULL;
        r->n_body = r->cap_body = 0;
        return MHD_YES;
    }
    if (r->n_body + n > r->cap_body) {
        size_t cap = r->cap_body ? r->cap_body * 2 : 16384;
        while (cap < r->n_body + n)
            cap *= 2;
        if (cap > max)
            cap = max;
        char *grown = realloc(r->body, cap);
        if (!grown)
            return MHD_NO;
        r->body = grown;
        r->cap_body = cap;
    }
    memcpy(r->body + r->n_body, data, n);
    r->n_body += n;
    return MHD_YES;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                      const char *version, const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    (void)version;
    mv_http_server *s = cls;
    struct request *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        atomic_fetch_add(&s->in_flight, 1);
        r->server = s;
        r->conn = conn;
        r->t_start = mv_http_now();
        r->method = method;
        snprintf(r->path, sizeof r->path, "%s", url);
        r->result = MHD_YES;
        assign_request_id(r);
        return on_first_call(r, url, method);
    }
    if (r->status) { /* answered already (an early error); MHD is only draining the body */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return on_body_chunk(r, upload_data, n);
    }
    if (r->phase == COMPUTED) {
        if (r->busy)
            return fail_unavailable(r, "overloaded", "the encoder queue is full; retry shortly");
        return r->finish(r);
    }
    if (r->phase == SUSPENDED)
        return MHD_YES;
    if (r->body_over)
        return fail(r, 413, "body_too_large", "request body exceeds --max-body %zu bytes", s->config.max_body);
    mv_metrics_body(&s->metrics, r->n_body);
    return r->route->handle(r);
}

static void log_request(mv_http_server *s, struct request *r, double seconds)
{
    if (!s->config.log_access)
        return;
    char *line;
    if (s->config.log_json) {
        char when[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_t *entry = json_pack("{s:s,s:s,s:s,s:s,s:i,s:f}", "time", when, "request_id", r->id, "method",
                                  r->method, "path", r->path, "status", r->status, "ms", seconds * 1e3);
        line = entry ? json_dumps(entry, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
        json_decref(entry);
    } else {
        line = malloc(400);
        if (line)
            snprintf(line, 400, "%s %s %s %d %.3fms", r->id, r->method, r->path, r->status, seconds * 1e3);
    }
    if (line) {
        pthread_mutex_lock(&s->log_lock);
        fprintf(stderr, "%s\n", line);
        pthread_mutex_unlock(&s->log_lock);
        free(line);
    }
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    mv_http_server *s = cls;
    struct request *r = *con_cls;
    if (!r)
        return;
    double seconds = mv_http_now() - r->t_start;
    if (!r->status && r->body_over)
        r->status = 413; /* cut off mid-body: the answer it would have had */
    if (r->route)
        mv_metrics_request(&s->metrics, (int)(r->route - routes), r->status, seconds);
    else
        mv_metrics_request(&s->metrics, (int)N_ROUTES, r->status, seconds);
    log_request(s, r, seconds);
    json_decref(r->json);
    free(r->filter_json);
    if (r->metadata_json)
        for (int i = 0; i < r->n_items; i++)
            free(r->metadata_json[i]);
    free(r->metadata_json);
    free(r->ids);
    for (int i = 0; r->hits && i < r->k; i++) /* calloc'd: entries past n_hits are NULL */
        free(r->hits[i].metadata_json);
    free(r->hits);
    free(r->stats_json);
    if (r->blobs)
        for (int i = 0; i < r->n_items; i++)
            free(r->blobs[i]);
    free(r->blobs);
    mv_multipart_free(r->parts, r->n_parts);
    free(r->items);
    free(r->out);
    free(r->n_tokens);
    free(r->truncated);
    free(r->body);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->in_flight, 1);
}

/* ---- lifecycle ---- */

void mv_http_config_defaults(mv_http_config *c)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    *c = (mv_http_config){
        .listen = "127.0.0.1:8080",
        .n_http_threads = cores < 2 ? 2 : cores > 16 ? 16 : (int)cores,
        .max_batch = 32,
        .max_wait_us = 2000,
        .queue_capacity = 1024,
        .max_body = (size_t)32 << 20,
        .max_batch_texts = 256,
        .max_connections = 1024,
        .connection_timeout_s = 60,
        .protect_metrics = 1,
        .log_json = 1,
        .log_access = 1,
    };
}

/* Parses HOST:PORT ("[::1]:8080" for IPv6) into a socket address. */
static int parse_listen(const char *listen, struct sockaddr_storage *addr, mv_error *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host)
        return mv_fail(err, MV_EINPUT, "--listen '%s': expected HOST:PORT", listen);
    const char *h = listen;
    size_t n_host = (size_t)(colon - listen);
    if (h[0] == '[' && h[n_host - 1] == ']') {
        h++;
        n_host -= 2;
    }
    memcpy(host, h, n_host);
    host[n_host] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535)
        return mv_fail(err, MV_EINPUT, "--listen '%s': bad port", listen);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc)
        return mv_fail(err, MV_EINPUT, "--listen '%s': %s", listen, gai_strerror(rc));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return MV_OK;
}

int mv_http_server_start(const mv_http_config *config, mv_http_server **out, mv_error *err)
{
    *out = NULL;
    struct sockaddr_storage addr;
    int status = parse_listen(config->listen, &addr, err);
    if (status)
        return status;
    mv_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return mv_fail(err, MV_ENOMEM, "out of memory for the server");
    s->config = *config;
    pthread_mutex_init(&s->log_lock, NULL);
    mv_metrics_init(&s->metrics);
    for (size_t i = 0; i < N_ROUTES; i++)
        mv_metrics_route(&s->metrics, routes[i].label);
    mv_metrics_route(&s->metrics, "unmatched"); /* slot N_ROUTES: 404s and 405s */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->id_seed = (unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 16);
    if (config->api_key && !(s->api_key = strdup(config->api_key))) {
        mv_http_server_free(s);
        return mv_fail(err, MV_ENOMEM, "out of memory");
    }
    s->config.api_key = s->api_key;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, access_handler, s,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)config->n_http_threads,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned int)config->max_connections,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)config->connection_timeout_s,
                                 MHD_OPTION_NOTIFY_COMPLETED, request_completed, s,
                                 MHD_OPTION_END);
    if (!s->daemon) {
        mv_http_server_free(s);
        return mv_fail(err, MV_EIO, "cannot listen on %s (address in use or not available)", config->listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_storage bound;
    socklen_t n_bound = sizeof bound;
    if (info && !getsockname(info->listen_fd, (struct sockaddr *)&bound, &n_bound))
        s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return MV_OK;
}

int mv_http_server_port(const mv_http_server *s)
{
    return s->port;
}

int mv_http_server_set_backend(mv_http_server *s, const mv_backend *backend, mv_error *err)
{
    const mv_http_config *c = &s->config;
    for (int q = 0; q < MV_N_QUEUES; q++) {
        int index = q == MV_QUEUE_INDEX; /* index operations run one at a time, at once */
        int status = mv_batcher_start(q, backend, index ? 1 : c->max_batch, index ? 0 : c->max_wait_us,
                                      c->queue_capacity, &s->metrics, &s->batchers[q], err);
        if (status)
            return status;
    }
    s->backend = backend;
    /* Handlers read backend and batchers only after seeing ready (sequentially consistent store). */
    atomic_store(&s->ready, 1);
    return MV_OK;
}

int mv_http_server_drain(mv_http_server *s, int timeout_ms)
{
    if (s->daemon) {
        int fd = MHD_quiesce_daemon(s->daemon);
        if (fd >= 0)
            close(fd);
    }
    double deadline = mv_http_now() + timeout_ms * 1e-3;
    while (atomic_load(&s->in_flight) > 0 && mv_http_now() < deadline)
        usleep(2000);
    int left = atomic_load(&s->in_flight);
    /* Anything still queued is answered (an error) before MHD closes its connections. */
    for (int q = 0; q < MV_N_QUEUES; q++) {
        mv_batcher_stop(s->batchers[q]);
        s->batchers[q] = NULL;
    }
    return left;
}

void mv_http_server_free(mv_http_server *s)
{
    if (!s)
        return;
    for (int q = 0; q < MV_N_QUEUES; q++)
        mv_batcher_stop(s->batchers[q]);
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    mv_metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->log_lock);
    free(s->api_key);
    free(s);
}
