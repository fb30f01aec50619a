/* bench_image.c — times the C image towers (ViT-B/16-224 with the BiomedCLIP head, ResNet-50-224) at
 * batch 1 and 8 on random-weight checkpoints written by torch_bench.py; best of REPEATS runs.
 *     bench_image DIR REPEATS */
#include "medvlp/resnet.h"
#include "medvlp/vit.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int die(const mv_error *err)
{
    fprintf(stderr, "bench_image: %s\n", err->message);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_image DIR REPEATS\n");
        return 2;
    }
    int repeats = atoi(argv[2]);
    char path[4096];
    mv_error err = {0};
    float *images = malloc(sizeof(float) * 8 * 3 * 224 * 224);
    for (size_t i = 0; i < (size_t)8 * 3 * 224 * 224; i++)
        images[i] = (float)rand() / RAND_MAX - 0.5f;

    mv_weights *vit_weights, *resnet_weights;
    snprintf(path, sizeof path, "%s/vit_b16.safetensors", argv[1]);
    if (mv_weights_open(path, &vit_weights, &err))
        return die(&err);
    mv_vit_config vit_cfg = mv_vit_config_timm(224, 16, 768, 12, 12, 512);
    mv_vit *vit;
    if (mv_vit_load(&vit, &vit_cfg, vit_weights, "visual.trunk.", "visual.head.proj.weight", &err))
        return die(&err);
    snprintf(path, sizeof path, "%s/resnet50.safetensors", argv[1]);
    if (mv_weights_open(path, &resnet_weights, &err))
        return die(&err);
    mv_resnet_config resnet_cfg = mv_resnet50_config();
    mv_resnet_names names = mv_resnet_names_torchvision("");
    mv_resnet *resnet;
    if (mv_resnet_load(&resnet, &resnet_cfg, resnet_weights, &names, &err))
        return die(&err);

    for (int batch = 1; batch <= 8; batch += 7) {
        mv_vit_state *vs;
        mv_resnet_state *rs;
        if (mv_vit_state_new(vit, batch, &vs, &err) || mv_resnet_state_new(resnet, batch, 224, 224, &rs, &err))
            return die(&err);
        double best_vit = 1e30, best_resnet = 1e30;
        for (int r = 0; r <= repeats; r++) {   /* run 0 warms up */
            double t0 = now_ms();
            mv_vit_forward(vit, vs, images, batch, &err);
            double t1 = now_ms();
            mv_resnet_forward(resnet, rs, images, batch, &err);
            double t2 = now_ms();
            if (r > 0) {
                best_vit = t1 - t0 < best_vit ? t1 - t0 : best_vit;
                best_resnet = t2 - t1 < best_resnet ? t2 - t1 : best_resnet;
            }
        }
        printf("medvlp vit_b16  batch %d: %8.1f ms\nmedvlp resnet50 batch %d: %8.1f ms\n", batch, best_vit, batch,
               best_resnet);
        mv_vit_state_free(vs);
        mv_resnet_state_free(rs);
    }
    mv_vit_free(vit);
    mv_resnet_free(resnet);
    mv_weights_free(vit_weights);
    mv_weights_free(resnet_weights);
    free(images);
    return 0;
}
