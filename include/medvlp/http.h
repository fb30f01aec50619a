/* http.h — the HTTP server of medvlpd, independent of what computes the embeddings.
 *
 * The server owns transport (libmicrohttpd), routing, limits, authentication, JSON (jansson),
 * metrics, access logs and dynamic batching. What it serves comes from an mv_backend: a table of
 * functions the batch workers call with whole batches. medvlpd wires the real model and index into
 * it; tests may wire a backend whose every number they recompute independently.
 *
 * Threads: libmicrohttpd's pool runs the request handlers, which only parse, validate and enqueue;
 * one batch worker per encoder (text, image) calls the backend. The text and image functions may
 * run concurrently with each other (a backend sharing buffers between them must lock), never
 * with themselves. */
#ifndef MEDVLP_HTTP_H
#define MEDVLP_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include "medvlp/error.h"
#include "medvlp/tensor.h"

/* One input of a batched backend call: UTF-8 text (not NUL-terminated) or encoded image bytes. */
typedef struct mv_http_item {
    const char *data;
    size_t size;
} mv_http_item;

enum { MV_TARGET_IMAGES, MV_TARGET_CAPTIONS };

typedef struct mv_search_hit {
    long long id;
    float score;           /* cosine similarity */
    char *metadata_json;   /* malloc'd JSON object text */
} mv_search_hit;

typedef struct mv_backend {
    void *self;
    const char *model_name; /* "model" in responses and /v1/models */
    int dim;                /* embedding dimension */
    int context_length;     /* tokens per text including specials; 0 if unknown */
    int has_text, has_image;
    /* Embeds n texts into out[n, dim], projected but NOT normalised (the server normalises per
     * request). n_tokens[i] is the tokens embedded, truncated[i] is 1 when text i was cut to the
     * context. A failure of one item is reported in item_err[i] (code != MV_OK) with the call still
     * returning MV_OK for the others; a non-OK return fails the whole batch with *err. */
    int (*embed_texts)(void *self, const mv_http_item *texts, int n, float *out, int *n_tokens,
                       int *truncated, mv_error *item_err, mv_error *err);
    /* Decodes and embeds n images; same conventions (MV_ETOOBIG over the pixel limit,
     * MV_EUNSUPPORTED for formats other than JPEG/PNG, MV_EINPUT for corrupt data). */
    int (*embed_images)(void *self, const mv_http_item *images, int n, float *out, mv_error *item_err,
                        mv_error *err);
    /* Extra JSON members for GET /v1/models and build info (a jansson object serialised); may be NULL. */
    char *(*info_json)(void *self);

    /* ---- the index (has_index = 0 answers 503 index_not_loaded) ----
     * Called from one index worker, never concurrently with each other, except index_sizes, which
     * /metrics may call at any time. target is MV_TARGET_IMAGES or MV_TARGET_CAPTIONS. Metadata is
     * JSON object text. */
    int has_index;
    /* The k nearest vectors of target to query (dim floats, L2-normalised) by cosine similarity,
     * best first, keeping only those whose metadata has the key/value of filter_json (a JSON object
     * with at most one member; NULL = all).
     * Fills hits[0..*n_hits) (*n_hits <= k), each metadata_json malloc'd (the caller frees). */
    int (*search)(void *self, int target, const float *query, int k, const char *filter_json,
                  mv_search_hit *hits, int *n_hits, mv_error *err);
    /* Adds n normalised vectors with their metadata (and, for captions, their texts; NULL for
     * images); returns only once the addition is durable. */
    int (*index_add)(void *self, int target, const float *vectors, const char *const *metadata_json,
                     const char *const *captions, int n, long long *ids_out, mv_error *err);
    /* MV_ENOTFOUND when id is not in target. */
    int (*index_delete)(void *self, int target, long long id, mv_error *err);
    /* GET /index: a JSON object text (counts, types, dim), malloc'd. */
    char *(*index_stats)(void *self);
    void (*index_sizes)(void *self, long long *n_images, long long *n_captions);
    /* ---- thumbnails of indexed images (both may be NULL: none are kept) ----
     * Called on the index worker right after index_add of images succeeded: keeps a thumbnail of
     * images[i] (the encoded bytes that were embedded) for ids[i], durably. */
    int (*thumbnails_put)(void *self, const long long *ids, const mv_http_item *images, int n, mv_error *err);
    /* The JPEG thumbnail of image id into *jpeg (malloc'd); MV_ENOTFOUND when id is not a live image
     * or has none. Called from any HTTP thread, concurrently with everything else. */
    int (*thumbnail)(void *self, long long id, unsigned char **jpeg, size_t *n_jpeg, mv_error *err);
} mv_backend;

typedef struct mv_http_config {
    const char *listen;        /* "HOST:PORT"; port 0 picks a free one (see mv_http_server_port) */
    int n_http_threads;        /* libmicrohttpd pool size */
    int max_batch;             /* items per backend call */
    int max_wait_us;           /* how long a worker waits for more after the first request */
    int queue_capacity;        /* requests waiting per encoder before 503 */
    size_t max_body;           /* bytes */
    int max_batch_texts;       /* texts per request */
    int max_connections;
    int connection_timeout_s;
    const char *api_key;       /* NULL: no authentication */
    int protect_metrics;       /* 1: /metrics needs the API key too */
    int log_json;              /* access log format: 1 JSON lines, 0 text */
    int log_access;            /* 0 silences the access log */
} mv_http_config;

void mv_http_config_defaults(mv_http_config *config);

typedef struct mv_http_server mv_http_server;

/* Starts listening; until a backend is set, /healthz answers and everything else is 503 not_ready. */
int mv_http_server_start(const mv_http_config *config, mv_http_server **out, mv_error *err);
int mv_http_server_port(const mv_http_server *server);
/* Starts the batch workers over backend (which must outlive the server) and turns /readyz 200. Once. */
int mv_http_server_set_backend(mv_http_server *server, const mv_backend *backend, mv_error *err);
/* Stops accepting connections, waits up to timeout_ms for in-flight requests to be answered, then
 * stops the workers. Returns the number of requests still in flight when it gave up (0 = drained). */
int mv_http_server_drain(mv_http_server *server, int timeout_ms);
void mv_http_server_free(mv_http_server *server);

/* ---- parsing helpers (exposed for tests) ---- */

/* Strict RFC 4648 base64 (standard alphabet, padding required to a multiple of 4, no whitespace,
 * no bits set in the unused tail). *out is malloc'd; MV_EINPUT names the first bad offset. */
int mv_base64_decode(const char *text, size_t n_text, unsigned char **out, size_t *n_out, mv_error *err);

/* A part of a multipart/form-data body: views into the body, valid while it lives. */
typedef struct mv_multipart_part {
    const char *name, *filename, *content_type; /* NUL-terminated copies, "" when absent */
    const char *data;
    size_t size;
} mv_multipart_part;

/* Splits body by the boundary of content_type ("multipart/form-data; boundary=..."). *parts is
 * malloc'd (free with mv_multipart_free); at most max_parts parts. MV_EINPUT for malformed bodies. */
int mv_multipart_parse(const char *content_type, const char *body, size_t n_body, int max_parts,
                       mv_multipart_part **parts, int *n_parts, mv_error *err);
void mv_multipart_free(mv_multipart_part *parts, int n_parts);

/* ---- the daemon around the server (medvlpd, and test daemons with their own backend) ---- */

typedef struct mv_daemon_options {
    const char *model_dir, *index_dir;
    int n_threads;        /* compute threads for the model; 0 = all cores */
    uint64_t max_pixels;  /* decoded image limit (MV_ETOOBIG -> 413) */
    int ef_search, nprobe, refine_k_factor; /* index search settings; 0 = the index's defaults */
    mv_quant quant;       /* weight storage of the encoders (--quant) */
} mv_daemon_options;

typedef struct mv_backend_loader {
    const char *program;  /* name in messages and --help */
    /* Opens the model/index; failures are reported and the daemon exits (2 for bad input). */
    int (*open)(const mv_daemon_options *options, mv_backend **out, mv_error *err);
    /* Makes acknowledged index writes durable before exit; may be NULL. */
    int (*persist)(mv_backend *backend, mv_error *err);
    void (*close)(mv_backend *backend);
} mv_backend_loader;

/* Parses flags (each also MEDVLP_<NAME> in the environment), serves until SIGTERM/SIGINT, drains,
 * persists and returns the process exit status. */
int mv_daemon_main(int argc, char **argv, const mv_backend_loader *loader);

#endif
