/* batcher.c — dynamic batching: one bounded queue and one worker thread per encoder.
 *
 * HTTP handlers enqueue jobs (a request's texts or images) and return at once. The worker pops the
 * first job, then keeps taking queued jobs until the batch holds --max-batch items or --max-wait-us
 * have passed since that first job was enqueued, makes ONE backend call for all their items and
 * completes each job. One worker per encoder because the model's buffers are shared; the batched
 * call itself is parallel across cores (BLAS/OpenMP threads). A job bigger than --max-batch runs
 * alone rather than being split, so its items are never divided between calls. The index queue
 * runs its jobs' own operations one at a time, which serialises every index access. */
#include "http/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const mv_encoder_names[MV_N_QUEUES] = {"text", "image", "index"};

struct mv_batcher {
    int encoder;
    const mv_backend *backend;
    int max_batch, max_wait_us, capacity;
    mv_metrics *metrics;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    mv_job *head, *tail;
    int depth;
    int stopping;
    pthread_t thread;
};

double mv_http_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static mv_job *pop_locked(mv_batcher *b)
{
    mv_job *job = b->head;
    b->head = job->next;
    if (!b->head)
        b->tail = NULL;
    job->next = NULL;
    b->depth--;
    return job;
}

/* Runs one backend call over the items of the jobs listed from first and completes them. */
static void run_batch(mv_batcher *b, mv_job *first)
{
    if (b->encoder == MV_QUEUE_INDEX) {
        for (mv_job *j = first, *next; j; j = next) {
            next = j->next;
            j->next = NULL;
            j->status = j->run(j);
            j->done(j);
        }
        return;
    }
    int n_items = 0;
    for (mv_job *j = first; j; j = j->next)
        n_items += j->n_items;
    const mv_backend *be = b->backend;
    mv_http_item *items = malloc(sizeof *items * (size_t)n_items);
    float *out = malloc(sizeof *out * (size_t)n_items * (size_t)be->dim);
    int *n_tokens = calloc((size_t)n_items, sizeof *n_tokens);
    int *truncated = calloc((size_t)n_items, sizeof *truncated);
    mv_error *item_err = calloc((size_t)n_items, sizeof *item_err);
    mv_error err = {0};
    int status;
    double t0 = mv_http_now();
    if (!items || !out || !n_tokens || !truncated || !item_err) {
        status = mv_fail(&err, MV_ENOMEM, "out of memory for a batch of %d items", n_items);
    } else {
        int at = 0;
        for (mv_job *j = first; j; j = j->next)
            for (int i = 0; i < j->n_items; i++)
                items[at++] = j->items[i];
        if (b->encoder == MV_ENC_TEXT)
            status = be->embed_texts(be->self, items, n_items, out, n_tokens, truncated, item_err, &err);
        else
            status = be->embed_images(be->self, items, n_items, out, item_err, &err);
        mv_metrics_batch(b->metrics, b->encoder, n_items, mv_http_now() - t0);
    }
    int at = 0;
    for (mv_job *j = first, *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        j->status = status;
        if (status)
            j->err = err;
        for (int i = 0; !status && i < j->n_items; i++) {
            if (item_err[at + i].code != MV_OK && j->status == MV_OK) {
                j->status = item_err[at + i].code;
                j->err = item_err[at + i];
                mv_error_prefix(&j->err, "item %d", i);
            }
        }
        if (!status) {
            memcpy(j->out, out + (size_t)at * (size_t)be->dim, sizeof *out * (size_t)j->n_items * (size_t)be->dim);
            if (j->n_tokens)
                memcpy(j->n_tokens, n_tokens + at, sizeof *n_tokens * (size_t)j->n_items);
            if (j->truncated)
                memcpy(j->truncated, truncated + at, sizeof *truncated * (size_t)j->n_items);
        }
        at += j->n_items;
        j->done(j);
    }
    free(items);
    free(out);
    free(n_tokens);
    free(truncated);
    free(item_err);
}

static void *worker_main(void *arg)
{
    mv_batcher *b = arg;
    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (!b->head && !b->stopping)
            pthread_cond_wait(&b->wake, &b->lock);
        if (b->stopping)
            break;
        mv_job *first = pop_locked(b), *last = first;
        int n_items = first->n_items;
        double deadline = first->t_enqueued + b->max_wait_us * 1e-6;
        while (n_items < b->max_batch && !b->stopping) {
            if (b->head) {
                if (n_items + b->head->n_items > b->max_batch)
                    break;
                mv_job *j = pop_locked(b);
                last->next = j;
                last = j;
                n_items += j->n_items;
                continue;
            }
            double wait = deadline - mv_http_now();
            if (wait <= 0)
                break;
            /* Condition variables time out on CLOCK_REALTIME; only the duration matters here. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long long ns = (long long)ts.tv_nsec + (long long)(wait * 1e9);
            ts.tv_sec += (time_t)(ns / 1000000000LL);
            ts.tv_nsec = (long)(ns % 1000000000LL);
            if (pthread_cond_timedwait(&b->wake, &b->lock, &ts) == ETIMEDOUT && !b->head)
                break;
        }
        pthread_mutex_unlock(&b->lock);
        run_batch(b, first);
        pthread_mutex_lock(&b->lock);
    }
    /* Stopping: whatever is still queued is answered, never dropped. */
    while (b->head) {
        mv_job *j = pop_locked(b);
        j->status = mv_fail(&j->err, MV_EINTERNAL, "server is shutting down");
        j->done(j);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

int mv_batcher_start(int encoder, const mv_backend *backend, int max_batch, int max_wait_us, int capacity,
                     mv_metrics *metrics, mv_batcher **out, mv_error *err)
{
    *out = NULL;
    mv_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return mv_fail(err, MV_ENOMEM, "out of memory for the %s batch queue", mv_encoder_names[encoder]);
    b->encoder = encoder;
    b->backend = backend;
    b->max_batch = max_batch > 0 ? max_batch : 1;
    b->max_wait_us = max_wait_us >= 0 ? max_wait_us : 0;
    b->capacity = capacity > 0 ? capacity : 1;
    b->metrics = metrics;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->wake, NULL);
    if (pthread_create(&b->thread, NULL, worker_main, b)) {
        pthread_mutex_destroy(&b->lock);
        pthread_cond_destroy(&b->wake);
        free(b);
        return mv_fail(err, MV_EINTERNAL, "cannot start the %s batch worker", mv_encoder_names[encoder]);
    }
    *out = b;
    return MV_OK;
}

int mv_batcher_submit(mv_batcher *b, mv_job *job)
{
    pthread_mutex_lock(&b->lock);
    if (b->depth >= b->capacity || b->stopping) {
        pthread_mutex_unlock(&b->lock);
        return MV_ETOOBIG;
    }
    job->next = NULL;
    job->t_enqueued = mv_http_now();
    if (b->tail)
        b->tail->next = job;
    else
        b->head = job;
    b->tail = job;
    b->depth++;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->lock);
    return MV_OK;
}

int mv_batcher_depth(mv_batcher *b)
{
    pthread_mutex_lock(&b->lock);
    int depth = b->depth;
    pthread_mutex_unlock(&b->lock);
    return depth;
}

void mv_batcher_stop(mv_batcher *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = 1;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->wake);
    free(b);
}
