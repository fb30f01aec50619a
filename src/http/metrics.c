/* metrics.c — the counters behind GET /metrics and their Prometheus text rendering.
 *
 * One mutex guards everything: updates are a few increments per request, far cheaper than the
 * request itself, and a consistent snapshot keeps histogram sums and counts in step. */
#include "http/internal.h"
#include "http/version.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double latency_bounds[MV_N_LATENCY_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const int batch_bounds[MV_N_BATCH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

void mv_metrics_init(mv_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
}

void mv_metrics_destroy(mv_metrics *m)
{
    pthread_mutex_destroy(&m->lock);
}

int mv_metrics_route(mv_metrics *m, const char *name)
{
    for (int i = 0; i < m->n_routes; i++)
        if (!strcmp(m->route_names[i], name))
            return i;
    if (m->n_routes == MV_MAX_ROUTES)
        return MV_MAX_ROUTES - 1;
    m->route_names[m->n_routes] = name;
    return m->n_routes++;
}

void mv_metrics_request(mv_metrics *m, int route, int status, double seconds)
{
    pthread_mutex_lock(&m->lock);
    __typeof__(m->route[0]) *r = &m->route[route];
    for (int i = 0; i < MV_MAX_STATUSES; i++) {
        if (r->status[i] == status || r->status[i] == 0) {
            r->status[i] = status;
            r->count[i]++;
            break;
        }
    }
    for (int b = 0; b < MV_N_LATENCY_BUCKETS; b++)
        if (seconds <= latency_bounds[b]) {
            r->latency_buckets[b]++;
            break;
        }
    r->latency_sum += seconds;
    r->latency_count++;
    pthread_mutex_unlock(&m->lock);
}

void mv_metrics_batch(mv_metrics *m, int encoder, int n_items, double seconds)
{
    pthread_mutex_lock(&m->lock);
    for (int b = 0; b < MV_N_BATCH_BUCKETS; b++)
        if (n_items <= batch_bounds[b]) {
            m->encoder[encoder].batch_buckets[b]++;
            break;
        }
    m->encoder[encoder].batches++;
    m->encoder[encoder].items += (unsigned long)n_items;
    m->encoder[encoder].seconds += seconds;
    pthread_mutex_unlock(&m->lock);
}

void mv_metrics_body(mv_metrics *m, size_t n_bytes)
{
    pthread_mutex_lock(&m->lock);
    if (n_bytes > m->body_bytes_peak)
        m->body_bytes_peak = n_bytes;
    pthread_mutex_unlock(&m->lock);
}

/* A growing string; on allocation failure it stays NULL and the render returns NULL. */
typedef struct text {
    char *s;
    size_t len, cap;
} text;

__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...)
{
    if (!t->s && t->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *s = realloc(t->s, cap);
        if (!s) {
            free(t->s);
            t->s = NULL;
            t->cap = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

char *mv_metrics_render(mv_metrics *m, const int *queue_depth, int in_flight, int ready, const char *model_name,
                        const long long *index_sizes)
{
    text t = {0};
    pthread_mutex_lock(&m->lock);
    put(&t, "# HELP medvlp_build_info Build and model of this server.\n# TYPE medvlp_build_info gauge\n");
    put(&t, "medvlp_build_info{version=\"%s\",model=\"%s\"} 1\n", MEDVLP_VERSION, model_name ? model_name : "");
    put(&t, "# HELP medvlp_ready 1 once the model and index are loaded.\n# TYPE medvlp_ready gauge\n");
    put(&t, "medvlp_ready %d\n", ready);
    put(&t, "# HELP medvlp_http_requests_total Requests answered, by route and status.\n"
            "# TYPE medvlp_http_requests_total counter\n");
    for (int r = 0; r < m->n_routes; r++)
        for (int i = 0; i < MV_MAX_STATUSES && m->route[r].status[i]; i++)
            put(&t, "medvlp_http_requests_total{route=\"%s\",status=\"%d\"} %lu\n", m->route_names[r],
                m->route[r].status[i], m->route[r].count[i]);
    put(&t, "# HELP medvlp_http_request_duration_seconds Time from request to response.\n"
            "# TYPE medvlp_http_request_duration_seconds histogram\n");
    for (int r = 0; r < m->n_routes; r++) {
        if (!m->route[r].latency_count)
            continue;
        unsigned long cumulative = 0;
        for (int b = 0; b < MV_N_LATENCY_BUCKETS; b++) {
            cumulative += m->route[r].latency_buckets[b];
            put(&t, "medvlp_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %lu\n",
                m->route_names[r], latency_bounds[b], cumulative);
        }
        put(&t, "medvlp_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lu\n",
            m->route_names[r], m->route[r].latency_count);
        put(&t, "medvlp_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", m->route_names[r],
            m->route[r].latency_sum);
        put(&t, "medvlp_http_request_duration_seconds_count{route=\"%s\"} %lu\n", m->route_names[r],
            m->route[r].latency_count);
    }
    put(&t, "# HELP medvlp_batch_size Items per batched encoder call.\n# TYPE medvlp_batch_size histogram\n");
    for (int e = 0; e < MV_N_ENCODERS; e++) {
        unsigned long cumulative = 0;
        for (int b = 0; b < MV_N_BATCH_BUCKETS; b++) {
            cumulative += m->encoder[e].batch_buckets[b];
            put(&t, "medvlp_batch_size_bucket{encoder=\"%s\",le=\"%d\"} %lu\n", mv_encoder_names[e],
                batch_bounds[b], cumulative);
        }
        put(&t, "medvlp_batch_size_bucket{encoder=\"%s\",le=\"+Inf\"} %lu\n", mv_encoder_names[e],
            m->encoder[e].batches);
        put(&t, "medvlp_batch_size_sum{encoder=\"%s\"} %lu\n", mv_encoder_names[e], m->encoder[e].items);
        put(&t, "medvlp_batch_size_count{encoder=\"%s\"} %lu\n", mv_encoder_names[e], m->encoder[e].batches);
    }
    put(&t, "# HELP medvlp_encoder_seconds_total Time spent in batched encoder calls.\n"
            "# TYPE medvlp_encoder_seconds_total counter\n");
    for (int e = 0; e < MV_N_ENCODERS; e++)
        put(&t, "medvlp_encoder_seconds_total{encoder=\"%s\"} %.6f\n", mv_encoder_names[e], m->encoder[e].seconds);
    put(&t, "# HELP medvlp_queue_depth Requests waiting for an encoder or the index.\n"
            "# TYPE medvlp_queue_depth gauge\n");
    for (int e = 0; e < MV_N_QUEUES; e++)
        put(&t, "medvlp_queue_depth{encoder=\"%s\"} %d\n", mv_encoder_names[e], queue_depth[e]);
    if (index_sizes) {
        put(&t, "# HELP medvlp_index_vectors Vectors in each index.\n# TYPE medvlp_index_vectors gauge\n");
        put(&t, "medvlp_index_vectors{target=\"images\"} %lld\n", index_sizes[0]);
        put(&t, "medvlp_index_vectors{target=\"captions\"} %lld\n", index_sizes[1]);
    }
    put(&t, "# HELP medvlp_queue_rejected_total Requests refused with 503 because a queue was full.\n"
            "# TYPE medvlp_queue_rejected_total counter\nmedvlp_queue_rejected_total %lu\n",
        m->rejected_queue_full);
    put(&t, "# HELP medvlp_http_in_flight Requests received and not yet answered.\n"
            "# TYPE medvlp_http_in_flight gauge\nmedvlp_http_in_flight %d\n", in_flight);
    put(&t, "# HELP medvlp_request_body_peak_bytes Largest request body buffered (bounded by --max-body).\n"
            "# TYPE medvlp_request_body_peak_bytes gauge\nmedvlp_request_body_peak_bytes %zu\n",
        m->body_bytes_peak);
    pthread_mutex_unlock(&m->lock);
    return t.s;
}
