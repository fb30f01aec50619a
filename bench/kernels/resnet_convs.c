/* resnet_convs.c — times each of ResNet-50's 23 convolution shapes alone through mv_conv2d_forward
 * (BatchNorm folded: bias + ReLU in the store, as the tower runs them) and sums them weighted by how
 * often the network runs each, to split a forward's time by layer. Not a test.
 *
 *   build-bench/bench/resnet_convs [THREADS=2] [IMAGES=1] [WEIGHT_COPIES=1]
 *
 * WEIGHT_COPIES > 1 cycles through that many packed copies of each weight, so that every call reads its
 * weights from memory, as the forward does (16 copies of the largest, 9.4 MB, exceed the L3 of a CCD),
 * where one copy stays in cache between calls. ONLY=substring keeps matching shapes. */
#include "medvlp/conv.h"
#include "medvlp/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_COPIES = 64 };
static const double SECONDS_PER_SHAPE = 0.3;

typedef struct conv_shape {
    const char *name;
    int in_channels, out_channels, kernel, stride, in_size, per_forward;
} conv_shape;

static const conv_shape shapes[] = {
    {"stem 7x7/2 3-64", 3, 64, 7, 2, 224, 1},
    {"l1 1x1 64-64", 64, 64, 1, 1, 56, 1},
    {"l1 3x3 64-64", 64, 64, 3, 1, 56, 3},
    {"l1 1x1 64-256", 64, 256, 1, 1, 56, 4},
    {"l1 1x1 256-64", 256, 64, 1, 1, 56, 2},
    {"l2 1x1 256-128", 256, 128, 1, 1, 56, 1},
    {"l2 3x3/2 128-128", 128, 128, 3, 2, 56, 1},
    {"l2 1x1 128-512", 128, 512, 1, 1, 28, 4},
    {"l2 ds 1x1/2 256-512", 256, 512, 1, 2, 56, 1},
    {"l2 1x1 512-128", 512, 128, 1, 1, 28, 3},
    {"l2 3x3 128-128", 128, 128, 3, 1, 28, 3},
    {"l3 1x1 512-256", 512, 256, 1, 1, 28, 1},
    {"l3 3x3/2 256-256", 256, 256, 3, 2, 28, 1},
    {"l3 1x1 256-1024", 256, 1024, 1, 1, 14, 6},
    {"l3 ds 1x1/2 512-1024", 512, 1024, 1, 2, 28, 1},
    {"l3 1x1 1024-256", 1024, 256, 1, 1, 14, 5},
    {"l3 3x3 256-256", 256, 256, 3, 1, 14, 5},
    {"l4 1x1 1024-512", 1024, 512, 1, 1, 14, 1},
    {"l4 3x3/2 512-512", 512, 512, 3, 2, 14, 1},
    {"l4 1x1 512-2048", 512, 2048, 1, 1, 7, 3},
    {"l4 ds 1x1/2 1024-2048", 1024, 2048, 1, 2, 14, 1},
    {"l4 1x1 2048-512", 2048, 512, 1, 1, 7, 2},
    {"l4 3x3 512-512", 512, 512, 3, 1, 7, 2},
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void fill(float *x, size_t count, unsigned multiplier, float offset)
{
    for (size_t i = 0; i < count; i++)
        x[i] = (float)((i * multiplier) % 1000) / 1000.0f - offset;
}

/* Milliseconds per call of one shape, or a negative value when out of memory or the call failed. */
static double time_shape(const conv_shape *s, int n_images, int copies, double *gflops)
{
    const int pad = (s->kernel - 1) / 2, out_size = mv_conv_out_size(s->in_size, s->kernel, s->stride, pad);
    const size_t columns = (size_t)s->kernel * s->kernel * s->in_channels;
    const size_t in_floats = (size_t)n_images * s->in_size * s->in_size * s->in_channels;
    const size_t out_floats = (size_t)n_images * out_size * out_size * s->out_channels;
    float *weight = malloc(columns * s->out_channels * sizeof(float)), *bias = calloc(s->out_channels, sizeof(float));
    float *x = malloc(in_floats * sizeof(float)), *y = malloc(out_floats * sizeof(float));
    mv_conv2d convs[MAX_COPIES] = {0};
    double ms = -1.0;
    int packed = 0;
    if (!weight || !bias || !x || !y)
        goto done;
    fill(weight, columns * s->out_channels, 7919, 0.5f);
    fill(x, in_floats, 104729, 0.0f);
    for (; packed < copies; packed++) {
        convs[packed] = (mv_conv2d){s->in_channels, s->out_channels, s->kernel, s->stride, pad, weight, bias, {0}};
        if (mv_packed_weight_init(&convs[packed].packed, weight, s->out_channels, (int)columns, MV_QUANT_NONE))
            goto done;
    }
    mv_error err;
    if (mv_conv2d_forward(&convs[0], x, n_images, s->in_size, s->in_size, NULL, 1, y, &err))
        goto done;
    int calls = 0;
    double start = now(), seconds;
    do {
        mv_conv2d_forward(&convs[calls % copies], x, n_images, s->in_size, s->in_size, NULL, 1, y, &err);
        calls++;
    } while ((seconds = now() - start) < SECONDS_PER_SHAPE);
    ms = seconds / calls * 1e3;
    *gflops = 2.0 * (double)out_floats * (double)columns / (seconds / calls) / 1e9;
done:
    for (int i = 0; i < packed; i++)
        mv_packed_weight_free(&convs[i].packed);
    free(weight);
    free(bias);
    free(x);
    free(y);
    return ms;
}

int main(int argc, char **argv)
{
    mv_blas_select_kernels(argv);
    const int threads = argc > 1 ? atoi(argv[1]) : 2, n_images = argc > 2 ? atoi(argv[2]) : 1;
    const int copies = argc > 3 ? atoi(argv[3]) : 1;
    if (threads < 1 || n_images < 1 || copies < 1 || copies > MAX_COPIES) {
        fprintf(stderr, "usage: resnet_convs [THREADS>=1] [IMAGES>=1] [WEIGHT_COPIES 1..%d]\n", MAX_COPIES);
        return 2;
    }
    mv_set_threads(threads);
    const char *only = getenv("ONLY");
    double total_ms = 0.0;
    printf("| shape | ms a call | GFLOP/s | calls a forward | ms a forward |\n|---|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        if (only && !strstr(shapes[i].name, only))
            continue;
        double gflops = 0.0, ms = time_shape(&shapes[i], n_images, copies, &gflops);
        if (ms < 0) {
            fprintf(stderr, "resnet_convs: %s: out of memory or failed\n", shapes[i].name);
            return 1;
        }
        printf("| %s | %.3f | %.0f | %d | %.2f |\n", shapes[i].name, ms, gflops, shapes[i].per_forward,
               ms * shapes[i].per_forward);
        total_ms += ms * shapes[i].per_forward;
    }
    printf("total: %.2f ms (%d threads, %d images, %d weight copies)\n", total_ms, threads, n_images, copies);
    return 0;
}
