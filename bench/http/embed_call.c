/* embed_call — the same work as one POST /embed/text, as a direct library call: the baseline that
 * bench/http/run.sh subtracts to get medvlpd's HTTP overhead. Embeds one text per call for SECONDS
 * and prints calls/s and the p50/p99 latency of a call, in the "key value" form run.sh reads.
 *
 *   embed_call MODEL_DIR TEXT SECONDS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "medvlp/error.h"
#include "medvlp/model.h"
#include "medvlp/tensor.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: embed_call MODEL_DIR TEXT SECONDS\n");
        return 2;
    }
    mv_blas_select_kernels(argv);
    mv_error err = {0};
    mv_model *model;
    if (mv_model_open(argv[1], NULL, &model, &err) != 0) {
        fprintf(stderr, "embed_call: %s\n", err.message);
        return 1;
    }
    mv_model_info info;
    mv_model_get_info(model, &info);
    float *embedding = malloc(sizeof(float) * (size_t)info.embed_dim);
    size_t max_calls = 1000000, n_calls = 0;
    double *latencies = malloc(sizeof(double) * max_calls);
    const char *texts[1] = {argv[2]};
    double duration = atof(argv[3]), start = now_seconds();
    int status = 0;
    while (n_calls < max_calls && now_seconds() - start < duration) {
        double t0 = now_seconds();
        status = mv_model_embed_texts(model, texts, NULL, 1, 1, embedding, NULL, NULL, &err);
        if (status != 0) {
            fprintf(stderr, "embed_call: %s\n", err.message);
            break;
        }
        latencies[n_calls++] = now_seconds() - t0;
    }
    double elapsed = now_seconds() - start;
    if (status == 0 && n_calls > 0) {
        qsort(latencies, n_calls, sizeof *latencies, compare_doubles);
        printf("calls_per_s %.1f\np50_ms %.3f\np99_ms %.3f\n", (double)n_calls / elapsed,
               latencies[n_calls / 2] * 1e3, latencies[n_calls * 99 / 100] * 1e3);
    }
    free(latencies);
    free(embedding);
    mv_model_free(model);
    return status == 0 ? 0 : 1;
}
