/* resnet.c — owns the bottleneck ResNet tower (include/medvlp/resnet.h): loading with BatchNorm folded
 * into the convolutions, the batch state, and the forward pass.
 *
 * Every convolution is followed by an eval-mode BatchNorm, an affine map per channel, folded into it
 * at load by mv_conv2d_fold_bn (conv.h), which also repacks OIHW → O(HWI) for NHWC im2col columns. */
#include "medvlp/resnet.h"
#include "medvlp/pages.h"
#include "medvlp/tensor.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mv_resnet_config mv_resnet50_config(void)
{
    return (mv_resnet_config){
        .in_channels = 3, .stem_channels = 64, .planes = {64, 128, 256, 512}, .blocks = {3, 4, 6, 3},
        .bn_eps = 1e-5f,
    };
}

mv_resnet_names mv_resnet_names_torchvision(const char *prefix)
{
    return (mv_resnet_names){prefix, "conv1", "bn1", {"layer1", "layer2", "layer3", "layer4"}};
}

mv_resnet_names mv_resnet_names_sequential(const char *prefix)
{
    return (mv_resnet_names){prefix, "0", "1", {"4", "5", "6", "7"}};
}

int mv_resnet_out_channels(const mv_resnet *model, int stage)
{
    return MV_RESNET_EXPANSION * model->config.planes[stage];
}

/* Input channels of block b of stage s: the stem for the very first block, else the previous
 * block's (or stage's) output. */
static int block_in_channels(const mv_resnet_config *cfg, int stage, int block)
{
    if (block > 0)
        return MV_RESNET_EXPANSION * cfg->planes[stage];
    return stage == 0 ? cfg->stem_channels : MV_RESNET_EXPANSION * cfg->planes[stage - 1];
}

static int stage_stride(int stage)
{
    return stage == 0 ? 1 : 2;   /* layer1 follows the max-pool; v1.5 strides on the 3×3 conv */
}

static int has_downsample(const mv_resnet_config *cfg, int stage, int block)
{
    return block == 0 && (stage_stride(stage) != 1 ||
                          block_in_channels(cfg, stage, 0) != MV_RESNET_EXPANSION * cfg->planes[stage]);
}

/* Floats of every folded weight and bias, and of the largest single weight. */
typedef struct folded_sizes {
    size_t weights, biases, largest_weight;
} folded_sizes;

static void count_conv(folded_sizes *sizes, int in_channels, int out_channels, int kernel)
{
    size_t weight = (size_t)out_channels * kernel * kernel * in_channels;
    sizes->weights += weight;
    sizes->biases += (size_t)out_channels;
    sizes->largest_weight = weight > sizes->largest_weight ? weight : sizes->largest_weight;
}

static folded_sizes count_folded(const mv_resnet_config *cfg)
{
    folded_sizes sizes = {0};
    count_conv(&sizes, cfg->in_channels, cfg->stem_channels, 7);
    for (int s = 0; s < MV_RESNET_STAGES; s++) {
        int planes = cfg->planes[s], out = MV_RESNET_EXPANSION * planes;
        for (int b = 0; b < cfg->blocks[s]; b++) {
            int in = block_in_channels(cfg, s, b);
            count_conv(&sizes, in, planes, 1);
            count_conv(&sizes, planes, planes, 3);
            count_conv(&sizes, planes, out, 1);
            if (has_downsample(cfg, s, b))
                count_conv(&sizes, in, out, 1);
        }
    }
    return sizes;
}

typedef struct loader {
    mv_weights *weights;
    const char *prefix;
    float eps;
    float *cursor;            /* next free float of model->folded */
    float *scratch;           /* int8 / fp16: every folded weight in turn, only read by packing; else NULL */
    mv_quant quant;
} loader;

/* Folds conv `conv_name` + BatchNorm `bn_name` into the next free floats of model->folded (the weight
 * into the scratch when the packed format never reads it again). */
static int fold_conv(loader *ld, mv_conv2d *conv, int in, int out, int kernel, int stride,
                     const char *conv_name, const char *bn_name, mv_error *err)
{
    float *weight = ld->scratch ? ld->scratch : ld->cursor;
    if (!ld->scratch)
        ld->cursor += (size_t)out * kernel * kernel * in;
    float *bias = ld->cursor;
    ld->cursor += out;
    int rc = mv_conv2d_fold_bn(ld->weights, ld->prefix, conv_name, bn_name, in, out, kernel, ld->eps, weight,
                               bias, err);
    *conv = (mv_conv2d){in, out, kernel, stride, (kernel - 1) / 2, ld->scratch ? NULL : weight, bias, {0}};
    if (!rc && mv_packed_weight_init(&conv->packed, weight, out, kernel * kernel * in, ld->quant))
        rc = mv_fail(err, MV_ENOMEM, "resnet: out of memory packing %s", conv_name);
    return rc;
}

static int load_block(loader *ld, const mv_resnet_config *cfg, const char *stage_name, int s, int b,
                      mv_bottleneck *blk, mv_error *err)
{
    int in = block_in_channels(cfg, s, b), planes = cfg->planes[s], out = MV_RESNET_EXPANSION * planes;
    int stride = b == 0 ? stage_stride(s) : 1;
    char conv[128], bn[128];
    int rc = MV_OK;
    for (int k = 1; k <= 3 && !rc; k++) {
        snprintf(conv, sizeof conv, "%s.%d.conv%d", stage_name, b, k);
        snprintf(bn, sizeof bn, "%s.%d.bn%d", stage_name, b, k);
        mv_conv2d *target = k == 1 ? &blk->conv1 : k == 2 ? &blk->conv2 : &blk->conv3;
        rc = fold_conv(ld, target, k == 1 ? in : planes, k == 3 ? out : planes, k == 2 ? 3 : 1,
                       k == 2 ? stride : 1, conv, bn, err);
    }
    memset(&blk->downsample, 0, sizeof blk->downsample);
    if (!rc && has_downsample(cfg, s, b)) {
        snprintf(conv, sizeof conv, "%s.%d.downsample.0", stage_name, b);
        snprintf(bn, sizeof bn, "%s.%d.downsample.1", stage_name, b);
        rc = fold_conv(ld, &blk->downsample, in, out, 1, stride, conv, bn, err);
    }
    return rc;
}

int mv_resnet_load(mv_resnet **out, const mv_resnet_config *config, mv_weights *weights,
                   const mv_resnet_names *names, mv_error *err)
{
    *out = NULL;
    int n_blocks = 0;
    for (int s = 0; s < MV_RESNET_STAGES; s++) {
        if (config->planes[s] <= 0 || config->blocks[s] <= 0)
            return mv_fail(err, MV_EINPUT, "resnet: stage %d needs positive planes and blocks", s + 1);
        n_blocks += config->blocks[s];
    }
    if (config->in_channels <= 0 || config->stem_channels <= 0 || !(config->bn_eps > 0))
        return mv_fail(err, MV_EINPUT, "resnet: invalid channels or BatchNorm eps");
    mv_resnet *model = calloc(1, sizeof *model);
    if (!model)
        return mv_fail(err, MV_ENOMEM, "resnet: out of memory");
    model->config = *config;
    model->n_blocks = n_blocks;
    model->blocks = calloc((size_t)n_blocks, sizeof *model->blocks);
    /* fp32 keeps the folded weights: products of many rows go to cblas_sgemm on them. int8 and fp16
     * never read them after packing (ResNet-50: 95 MiB not kept). */
    const folded_sizes sizes = count_folded(config);
    const int keep_weights = config->quant == MV_QUANT_NONE;
    const size_t kept = sizes.biases + (keep_weights ? sizes.weights : 0);
    model->folded = mv_alloc_populated(kept * sizeof(float));
    float *scratch = keep_weights ? NULL : malloc(sizes.largest_weight * sizeof(float));
    if (!model->blocks || !model->folded || (!keep_weights && !scratch)) {
        mv_resnet_free(model);
        return mv_fail(err, MV_ENOMEM, "resnet: out of memory for %zu weights", kept);
    }
    loader ld = {weights, names->prefix ? names->prefix : "", config->bn_eps, model->folded, scratch, config->quant};
    int rc = fold_conv(&ld, &model->stem, config->in_channels, config->stem_channels, 7, 2,
                       names->stem_conv, names->stem_bn, err);
    mv_bottleneck *blk = model->blocks;
    for (int s = 0; s < MV_RESNET_STAGES && !rc; s++)
        for (int b = 0; b < config->blocks[s] && !rc; b++)
            rc = load_block(&ld, config, names->stages[s], s, b, blk++, err);
    free(scratch);
    if (rc) {
        mv_resnet_free(model);
        return rc;
    }
    *out = model;
    return MV_OK;
}

void mv_resnet_free(mv_resnet *model)
{
    if (!model)
        return;
    mv_packed_weight_free(&model->stem.packed);
    for (int i = 0; model->blocks && i < model->n_blocks; i++) {
        mv_bottleneck *blk = &model->blocks[i];
        mv_packed_weight_free(&blk->conv1.packed);
        mv_packed_weight_free(&blk->conv2.packed);
        mv_packed_weight_free(&blk->conv3.packed);
        mv_packed_weight_free(&blk->downsample.packed);
    }
    free(model->blocks);
    free(model->folded);
    free(model);
}

/* The stages run image by image before this one, on the whole batch from it (see mv_resnet_forward):
 * layer4, whose input is the layer3 map GLoRIA keeps anyway. */
enum { BATCHED_FROM_STAGE = 3 };

/* --- State ------------------------------------------------------------------------------------- */

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* The floats each map of a chain needs (its largest map over the chain's blocks). */
typedef struct map_sizes {
    size_t act, t1, t2;
} map_sizes;

static int maps_alloc(mv_resnet_maps *maps, const map_sizes *sizes)
{
    maps->x = malloc(sizes->act * sizeof(float));
    maps->y = malloc(sizes->act * sizeof(float));
    maps->t1 = malloc(sizes->t1 * sizeof(float));
    maps->t2 = malloc(sizes->t2 * sizeof(float));
    return maps->x && maps->y && maps->t1 && maps->t2 ? 0 : -1;
}

static void maps_free(mv_resnet_maps *maps)
{
    free(maps->x);
    free(maps->y);
    free(maps->t1);
    free(maps->t2);
}

int mv_resnet_state_new(const mv_resnet *model, int max_images, int height, int width,
                        mv_resnet_state **out, mv_error *err)
{
    *out = NULL;
    const mv_resnet_config *cfg = &model->config;
    if (max_images <= 0 || height < 32 || width < 32)
        return mv_fail(err, MV_EINPUT, "resnet: a batch needs >= 1 image of at least 32x32 (got %d of %dx%d)",
                       max_images, height, width);
    size_t n = (size_t)max_images;
    /* Walk the network once to size every buffer for the largest map it holds: one image's in the
     * stem and the early stages, the whole batch's in the batched ones. */
    int h = mv_conv_out_size(height, 7, 2, 3), w = mv_conv_out_size(width, 7, 2, 3);
    map_sizes image = {.act = (size_t)h * w * cfg->stem_channels}, batch = {0}; /* stem output lives in y */
    h = mv_conv_out_size(h, 3, 2, 1);
    w = mv_conv_out_size(w, 3, 2, 1);
    const mv_bottleneck *blk = model->blocks;
    int layer3_h = 0, layer3_w = 0;
    for (int s = 0; s < MV_RESNET_STAGES; s++) {
        size_t images = s < BATCHED_FROM_STAGE ? 1 : n;
        map_sizes *sizes = s < BATCHED_FROM_STAGE ? &image : &batch;
        for (int b = 0; b < cfg->blocks[s]; b++, blk++) {
            int oh = mv_conv_out_size(h, 3, blk->conv2.stride, 1), ow = mv_conv_out_size(w, 3, blk->conv2.stride, 1);
            sizes->act = max_size(sizes->act, images * h * w * blk->conv1.in_channels);
            sizes->t1 = max_size(sizes->t1, images * h * w * blk->conv1.out_channels);
            sizes->t2 = max_size(sizes->t2, images * oh * ow * blk->conv2.out_channels);
            h = oh;
            w = ow;
            sizes->act = max_size(sizes->act, images * h * w * blk->conv3.out_channels);
        }
        if (s == 2) {
            layer3_h = h;
            layer3_w = w;
        }
    }
    mv_resnet_state *st = calloc(1, sizeof *st);
    if (!st)
        return mv_fail(err, MV_ENOMEM, "resnet: out of memory");
    /* Images run side by side only where no convolution inside them calls cblas_sgemm (whose thread
     * pool two callers at once would oversubscribe): with the packed kernel (mv_packed_kernel_available). */
    int workers = mv_packed_kernel_available() ? mv_get_threads() : 1;
    workers = workers < max_images ? workers : max_images;
    *st = (mv_resnet_state){.max_images = max_images, .height = height, .width = width,
                            .layer3_h = layer3_h, .layer3_w = layer3_w, .layer4_h = h, .layer4_w = w,
                            .n_workers = workers};
    const size_t input_floats = (size_t)height * width * cfg->in_channels;
    st->layer3 = malloc(n * layer3_h * layer3_w * mv_resnet_out_channels(model, 2) * sizeof(float));
    st->layer4 = malloc(n * h * w * mv_resnet_out_channels(model, 3) * sizeof(float));
    st->pooled = malloc(n * mv_resnet_out_channels(model, 3) * sizeof(float));
    st->inputs = malloc(workers * input_floats * sizeof(float));
    st->image_maps = calloc((size_t)workers, sizeof *st->image_maps);
    int failed = !st->layer3 || !st->layer4 || !st->pooled || !st->inputs || !st->image_maps ||
                 maps_alloc(&st->batch, &batch);
    for (int i = 0; i < workers && !failed; i++)
        failed = maps_alloc(&st->image_maps[i], &image);
    if (failed) {
        mv_resnet_state_free(st);
        return mv_fail(err, MV_ENOMEM, "resnet: out of memory for a batch of %d images of %dx%d", max_images,
                       height, width);
    }
    *out = st;
    return MV_OK;
}

void mv_resnet_state_free(mv_resnet_state *st)
{
    if (!st)
        return;
    free(st->layer3);
    free(st->layer4);
    free(st->pooled);
    free(st->inputs);
    for (int i = 0; st->image_maps && i < st->n_workers; i++)
        maps_free(&st->image_maps[i]);
    free(st->image_maps);
    maps_free(&st->batch);
    free(st);
}

/* --- Forward ----------------------------------------------------------------------------------- */

/* out = ReLU(conv3(ReLU(conv2(ReLU(conv1(x))))) + shortcut(x)); *h, *w become the output size. Each
 * ReLU and the residual add happen in the convolution's own store (mv_conv2d_forward); the identity
 * shortcut is read from x in place, and out may be x itself (conv3 reads x after conv1 is done). */
static int bottleneck_forward(const mv_bottleneck *blk, const float *x, int n_images, int *h, int *w,
                              const mv_resnet_maps *maps, float *out, mv_error *err)
{
    int in_h = *h, in_w = *w;
    int out_h = mv_conv_out_size(in_h, 3, blk->conv2.stride, 1);
    int out_w = mv_conv_out_size(in_w, 3, blk->conv2.stride, 1);
    const float *shortcut = blk->downsample.out_channels ? out : x;
    int rc = mv_conv2d_forward(&blk->conv1, x, n_images, in_h, in_w, NULL, 1, maps->t1, err);
    if (!rc)
        rc = mv_conv2d_forward(&blk->conv2, maps->t1, n_images, in_h, in_w, NULL, 1, maps->t2, err);
    if (!rc && blk->downsample.out_channels)
        rc = mv_conv2d_forward(&blk->downsample, x, n_images, in_h, in_w, NULL, 0, out, err);
    if (!rc)
        rc = mv_conv2d_forward(&blk->conv3, maps->t2, n_images, out_h, out_w, shortcut, 1, out, err);
    *h = out_h;
    *w = out_w;
    return rc;
}

/* The blocks of stages [first, last) over n_images maps (NHWC, h × w each) read from `input` (maps->x,
 * or the layer3 map); the output ends in maps->x. A block with a downsample writes maps->y, then x and y
 * swap; an identity block reading maps->x writes its output over it, in place: its last convolution
 * then reads and writes the same lines, where writing maps->y made the cache fetch every line of it
 * before overwriting it (ResNet-50 layer3 at batch 8: 6.4 MB a convolution, from L3). */
static int run_stages(const mv_resnet *model, mv_resnet_maps *maps, const float *input, int first, int last,
                      int n_images, int *h, int *w, mv_error *err)
{
    const mv_bottleneck *blk = model->blocks;
    for (int s = 0; s < first; s++)
        blk += model->config.blocks[s];
    const float *in = input;
    for (int s = first; s < last; s++) {
        for (int b = 0; b < model->config.blocks[s]; b++, blk++) {
            const int in_place = !blk->downsample.out_channels && in == maps->x;
            int rc = bottleneck_forward(blk, in, n_images, h, w, maps, in_place ? maps->x : maps->y, err);
            if (rc)
                return rc;
            if (!in_place) {
                float *swap = maps->x;
                maps->x = maps->y;
                maps->y = swap;
            }
            in = maps->x;
        }
    }
    return MV_OK;
}

/* The stem and the stages before BATCHED_FROM_STAGE for one CHW image, in worker `worker`'s buffers;
 * its layer3 map goes to slot `slot` of st->layer3. */
static int image_forward(const mv_resnet *model, mv_resnet_state *st, int worker, const float *image, int slot,
                         mv_error *err)
{
    const mv_resnet_config *cfg = &model->config;
    mv_resnet_maps *maps = &st->image_maps[worker];
    float *input = st->inputs + (size_t)worker * st->height * st->width * cfg->in_channels;
    mv_chw_to_hwc(image, cfg->in_channels, st->height, st->width, input);
    /* stem: conv 7×7/2 (+BN) → ReLU → max-pool 3×3/2 */
    int h = mv_conv_out_size(st->height, 7, 2, 3), w = mv_conv_out_size(st->width, 7, 2, 3);
    int rc = mv_conv2d_forward(&model->stem, input, 1, st->height, st->width, NULL, 1, maps->y, err);
    if (rc)
        return rc;
    mv_maxpool_hwc(maps->y, 1, h, w, cfg->stem_channels, 3, 2, 1, maps->x);
    h = mv_conv_out_size(h, 3, 2, 1);
    w = mv_conv_out_size(w, 3, 2, 1);
    if ((rc = run_stages(model, maps, maps->x, 0, BATCHED_FROM_STAGE, 1, &h, &w, err)))
        return rc;
    size_t floats = (size_t)h * w * mv_resnet_out_channels(model, BATCHED_FROM_STAGE - 1);
    memcpy(st->layer3 + slot * floats, maps->x, floats * sizeof(float));
    return MV_OK;
}

/* Image by image up to layer3, whole rounds of images one per OpenMP thread with each image's
 * convolutions on its own thread: no barrier between convolutions, and each core's L2 holds its own
 * image's maps (one image on 2 threads ran at 1.8× one thread; ResNet-50 at batch 8 took 0.238 s
 * instead of 0.248 with each convolution split between the threads). A batch's maps there would not
 * stay in cache between convolutions (8 × 56 × 56 × 256 floats = 25 MiB per map in layer1), and the
 * 1×1 convolutions have too few multiply-adds per output to hide the memory traffic (1 thread,
 * 56² × 64 → 256: 140 GFLOP/s for one image, 72 for eight). A remainder of fewer images than threads
 * goes image by image, each convolution on every thread. In layer4 the maps are small and the weights
 * large (its 3×3 convolution: 9 MiB for 49 rows an image), so the whole batch goes through each
 * convolution at once and every weight is read once per batch, not per image. */
int mv_resnet_forward(const mv_resnet *model, mv_resnet_state *st, const float *images, int n_images,
                      mv_error *err)
{
    const mv_resnet_config *cfg = &model->config;
    if (n_images < 1 || n_images > st->max_images)
        return mv_fail(err, MV_EINPUT, "resnet: batch of %d images, state holds 1..%d", n_images,
                       st->max_images);
    const size_t image_size = (size_t)cfg->in_channels * st->height * st->width;
    const int threads = mv_get_threads(), workers = st->n_workers < threads ? st->n_workers : threads;
    const int side_by_side = workers > 1 ? n_images / workers * workers : 0;
    int rc = MV_OK;
#pragma omp parallel for schedule(static) num_threads(workers) if (side_by_side > 0)
    for (int i = 0; i < side_by_side; i++) {
        mv_error image_err = {0};
        int image_rc = image_forward(model, st, omp_get_thread_num(), images + i * image_size, i, &image_err);
        if (image_rc) {
#pragma omp critical(mv_resnet_forward_error)
            if (rc == MV_OK) {
                rc = image_rc;
                *err = image_err;
            }
        }
    }
    for (int i = side_by_side; i < n_images && rc == MV_OK; i++)
        rc = image_forward(model, st, 0, images + i * image_size, i, err);
    if (rc)
        return rc;
    int h = st->layer3_h, w = st->layer3_w;
    rc = run_stages(model, &st->batch, st->layer3, BATCHED_FROM_STAGE, MV_RESNET_STAGES, n_images, &h, &w, err);
    if (rc)
        return rc;
    int channels = mv_resnet_out_channels(model, 3);
    memcpy(st->layer4, st->batch.x, (size_t)n_images * h * w * channels * sizeof(float));
    mv_global_avgpool_hwc(st->batch.x, n_images, h, w, channels, st->pooled);
    return MV_OK;
}
