/* handoff.c — what it costs a core to read lines another core has just written, against reading
 * its own: the reason run_packed (src/tensor/packed_gemm.c) gives each thread the same rows of every
 * product. Not a test.
 *
 *   build-bench/bench/handoff [KIB...]   (default 64 256 800 3200)
 *
 * Two OpenMP threads; thread 0 writes a buffer of KIB KiB, then after a barrier thread 0 itself
 * ("own") or thread 1 ("other") reads one float per cache line of it, alternately, 200 times each. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { REPETITIONS = 200, WARMUP = 10, LINE_FLOATS = 16 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Mean seconds for `reader` to read the buffer after thread 0 wrote it. */
static double read_after_write(float *buffer, size_t floats, int reader)
{
    double total = 0.0;
    volatile float sink = 0.0f;
    for (int rep = 0; rep < REPETITIONS + WARMUP; rep++) {
        double seconds = 0.0;
#pragma omp parallel num_threads(2)
        {
            if (omp_get_thread_num() == 0)
                for (size_t i = 0; i < floats; i += LINE_FLOATS)
                    buffer[i] = (float)(rep + i);
#pragma omp barrier
            if (omp_get_thread_num() == reader) {
                double start = now();
                float sum = 0.0f;
                for (size_t i = 0; i < floats; i += LINE_FLOATS)
                    sum += buffer[i];
                sink += sum;
                seconds = now() - start;
            }
        }
        if (rep >= WARMUP)
            total += seconds;
    }
    return total / REPETITIONS;
}

int main(int argc, char **argv)
{
    static const char *const defaults[] = {"64", "256", "800", "3200"};
    const int n_sizes = argc > 1 ? argc - 1 : 4;
    for (int i = 0; i < n_sizes; i++) {
        const size_t kib = strtoul(argc > 1 ? argv[i + 1] : defaults[i], NULL, 10);
        const size_t floats = kib * 1024 / sizeof(float);
        float *buffer = aligned_alloc(64, floats * sizeof(float) + 64);
        if (!kib || !buffer) {
            fprintf(stderr, "handoff: bad size or out of memory\n");
            return 1;
        }
        memset(buffer, 0, floats * sizeof(float));
        double own = read_after_write(buffer, floats, 0), other = read_after_write(buffer, floats, 1);
        printf("%zu KiB: own %.1f us, other core %.1f us (%.1fx)\n", kib, own * 1e6, other * 1e6, other / own);
        free(buffer);
    }
    return 0;
}
