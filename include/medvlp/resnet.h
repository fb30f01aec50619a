/* resnet.h — the bottleneck ResNet image tower (torchvision ResNet-50 v1.5 semantics) of BioViL,
 * GLoRIA and ConVIRT.
 *
 * stem: conv 7×7/2 + BN + ReLU, max-pool 3×3/2 pad 1; four stages of bottleneck blocks
 * (1×1 → 3×3 with the stage's stride → 1×1 ×4, shortcut = identity or 1×1 conv + BN on the first
 * block); global average pool. BatchNorm is folded into the preceding convolution at load, so the
 * model owns its (repacked, folded) weights and the checkpoint may be closed afterwards.
 * Maps are NHWC (see conv.h): layer3 / layer4 are [n_images, h, w, channels]. */
#ifndef MEDVLP_RESNET_H
#define MEDVLP_RESNET_H

#include "medvlp/conv.h"
#include "medvlp/error.h"
#include "medvlp/weights.h"

#define MV_RESNET_STAGES 4
#define MV_RESNET_EXPANSION 4   /* bottleneck output channels = 4 × planes */

typedef struct mv_resnet_config {
    int in_channels;                 /* 3 */
    int stem_channels;               /* 64 */
    int planes[MV_RESNET_STAGES];    /* 64, 128, 256, 512 */
    int blocks[MV_RESNET_STAGES];    /* 3, 4, 6, 3 */
    float bn_eps;                    /* 1e-5 (nn.BatchNorm2d default) */
    mv_quant quant;                  /* storage of the folded convolutions (MV_QUANT_NONE: fp32) */
} mv_resnet_config;

mv_resnet_config mv_resnet50_config(void);

/* Where the family's checkpoint keeps each torchvision module: tensor names are
 * prefix + stem_conv + ".weight", prefix + stem_bn + ".running_mean", prefix + stages[s] + ".B.conv2.weight"… */
typedef struct mv_resnet_names {
    const char *prefix;
    const char *stem_conv, *stem_bn;
    const char *stages[MV_RESNET_STAGES];
} mv_resnet_names;

/* torchvision's own names (BioViL "encoder.encoder.", GLoRIA "img_encoder.model."). */
mv_resnet_names mv_resnet_names_torchvision(const char *prefix);
/* nn.Sequential(*resnet.children()[:-1]) (ConVIRT "res_features."): 0 conv1, 1 bn1, 4..7 layer1..4. */
mv_resnet_names mv_resnet_names_sequential(const char *prefix);

typedef struct mv_bottleneck {
    mv_conv2d conv1, conv2, conv3;   /* BN folded in: each has a bias */
    mv_conv2d downsample;            /* out_channels == 0 when the shortcut is the identity */
} mv_bottleneck;

typedef struct mv_resnet {
    mv_resnet_config config;
    mv_conv2d stem;
    mv_bottleneck *blocks;           /* all stages, in order */
    int n_blocks;
    float *folded;                   /* one allocation holding every folded weight and bias */
} mv_resnet;

/* Takes, shape-checks and folds every tensor; errors name the missing/mismatched tensor. */
int mv_resnet_load(mv_resnet **out, const mv_resnet_config *config, mv_weights *weights,
                   const mv_resnet_names *names, mv_error *err);
void mv_resnet_free(mv_resnet *model);

int mv_resnet_out_channels(const mv_resnet *model, int stage);   /* 4 × planes[stage] */

/* The maps of one chain of blocks: block input / output, swapped after each block, and the two
 * inside a block. */
typedef struct mv_resnet_maps {
    float *x, *y;
    float *t1, *t2;
} mv_resnet_maps;

/* Activations and outputs for up to max_images images of height × width, allocated once. */
typedef struct mv_resnet_state {
    int max_images, height, width;
    int layer3_h, layer3_w, layer4_h, layer4_w;
    float *layer3;      /* [n, layer3_h, layer3_w, out_channels(2)]  GLoRIA's local features */
    float *layer4;      /* [n, layer4_h, layer4_w, out_channels(3)]  BioViL's patch map */
    float *pooled;      /* [n, out_channels(3)]                       global average pool */
    /* scratch: the stem and layers 1-3 run image by image, up to n_workers images at once (one per
     * OpenMP thread), layer4 on the whole batch, from layer3 (mv_resnet_forward) */
    int n_workers;
    float *inputs;              /* [n_workers][height, width, in_channels]: a worker's image as NHWC */
    mv_resnet_maps *image_maps; /* [n_workers]: a worker's maps, one image's */
    mv_resnet_maps batch;       /* layer4's maps, the whole batch's */
} mv_resnet_state;

int mv_resnet_state_new(const mv_resnet *model, int max_images, int height, int width,
                        mv_resnet_state **out, mv_error *err);
void mv_resnet_state_free(mv_resnet_state *state);

/* images: n_images CHW images [n_images, in_channels, height, width] of the state's size.
 * Fills state->layer3, layer4 and pooled. */
int mv_resnet_forward(const mv_resnet *model, mv_resnet_state *state, const float *images, int n_images,
                      mv_error *err);

#endif
