/* internal.h — pieces of the HTTP server shared between its files: batch queues and metrics. */
#ifndef MEDVLP_HTTP_INTERNAL_H
#define MEDVLP_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include "medvlp/http.h"

double mv_http_now(void); /* monotonic seconds */

/* ---- metrics (Prometheus text exposition) ---- */

/* Queues: one per encoder (batched), and one for index operations (one job at a time, in order). */
enum { MV_ENC_TEXT, MV_ENC_IMAGE, MV_N_ENCODERS, MV_QUEUE_INDEX = MV_N_ENCODERS, MV_N_QUEUES };
extern const char *const mv_encoder_names[MV_N_QUEUES];

#define MV_N_LATENCY_BUCKETS 14
#define MV_N_BATCH_BUCKETS 10
#define MV_MAX_ROUTES 24
#define MV_MAX_STATUSES 16

typedef struct mv_metrics {
    pthread_mutex_t lock;
    int n_routes;
    const char *route_names[MV_MAX_ROUTES];
    struct {
        int status[MV_MAX_STATUSES];
        unsigned long count[MV_MAX_STATUSES];
        unsigned long latency_buckets[MV_N_LATENCY_BUCKETS]; /* cumulative only when printed */
        double latency_sum;
        unsigned long latency_count;
    } route[MV_MAX_ROUTES];
    struct {
        unsigned long batch_buckets[MV_N_BATCH_BUCKETS];
        unsigned long batches, items;
        double seconds;
    } encoder[MV_N_ENCODERS];
    size_t body_bytes_peak;   /* largest request body ever buffered: proves --max-body holds */
    unsigned long rejected_queue_full;
} mv_metrics;

void mv_metrics_init(mv_metrics *m);
void mv_metrics_destroy(mv_metrics *m);
int mv_metrics_route(mv_metrics *m, const char *name); /* registers a route label, returns its slot */
void mv_metrics_request(mv_metrics *m, int route, int status, double seconds);
void mv_metrics_batch(mv_metrics *m, int encoder, int n_items, double seconds);
void mv_metrics_body(mv_metrics *m, size_t n_bytes);
/* Appends the exposition to a malloc'd string; gauges are passed in by the server
 * (queue_depth[MV_N_QUEUES]; index_sizes NULL without an index). */
char *mv_metrics_render(mv_metrics *m, const int *queue_depth, int in_flight, int ready,
                        const char *model_name, const long long *index_sizes);

/* ---- dynamic batching ---- */

/* One request's share of a batch. The submitter owns everything here until `done` is called from
 * the worker thread; after that the worker never touches the job again. */
typedef struct mv_job {
    const mv_http_item *items;
    int n_items;
    float *out;           /* [n_items, dim] */
    int *n_tokens;        /* texts only */
    int *truncated;       /* texts only */
    int status;           /* first failure among this job's items, or of the whole batch */
    mv_error err;
    int (*run)(struct mv_job *job); /* index queue: the operation, filling err on failure */
    void (*done)(struct mv_job *job);
    void *owner;
    double t_enqueued;
    struct mv_job *next;
} mv_job;

typedef struct mv_batcher mv_batcher;

int mv_batcher_start(int encoder, const mv_backend *backend, int max_batch, int max_wait_us, int capacity,
                     mv_metrics *metrics, mv_batcher **out, mv_error *err);
/* Enqueues job; MV_ETOOBIG when the queue is full (the caller answers 503). */
int mv_batcher_submit(mv_batcher *b, mv_job *job);
int mv_batcher_depth(mv_batcher *b);
/* Stops the worker after the batch in progress; jobs still queued complete with an error. */
void mv_batcher_stop(mv_batcher *b);

#endif
