/* bench_text.c — medvlp's side of bench/text: a loop server driven by bench.py.
 * Reads "SEQ_LEN BATCH ITERS" lines on stdin; for each, embeds ITERS times a batch of BATCH texts of
 * SEQ_LEN random token ids ([CLS] … [SEP]) and prints the mean seconds per batch. Token ids are
 * given directly so all engines time the same work: encoder + head + normalisation. */
#include "medvlp/model.h"
#include "medvlp/tensor.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    mv_blas_select_kernels(argv); /* as the medvlp binaries do: OpenBLAS may misdetect the CPU */
    if (argc != 2) {
        fprintf(stderr, "usage: bench_text MODEL_DIR\n");
        return 2;
    }
    mv_error err;
    mv_model *model;
    if (mv_model_open(argv[1], NULL, &model, &err)) {
        fprintf(stderr, "bench_text: %s\n", err.message);
        return 1;
    }
    mv_model_info info;
    mv_model_get_info(model, &info);
    fprintf(stderr, "bench_text: OpenBLAS %s kernels\n", mv_blas_core_name());
    int seq_len, batch, iters;
    unsigned seed = 1;
    while (scanf("%d %d %d", &seq_len, &batch, &iters) == 3) {
        int32_t *ids = malloc((size_t)seq_len * batch * sizeof *ids);
        int *lengths = malloc((size_t)batch * sizeof *lengths);
        float *out = malloc((size_t)batch * info.embed_dim * sizeof *out);
        for (int b = 0; b < batch; b++) {
            lengths[b] = seq_len;
            for (int i = 0; i < seq_len; i++)
                ids[(size_t)b * seq_len + i] = i == 0 ? 2 : i == seq_len - 1 ? 3 : 5 + (int)(rand_r(&seed) % 30000);
        }
        double start = now();
        for (int it = 0; it < iters; it++) {
            if (mv_model_embed_token_ids(model, ids, lengths, batch, 1, out, &err)) {
                fprintf(stderr, "bench_text: %s\n", err.message);
                return 1;
            }
        }
        printf("%.9f\n", (now() - start) / iters);
        fflush(stdout);
        free(ids);
        free(lengths);
        free(out);
    }
    mv_model_free(model);
    return 0;
}
