/* image_tower.h — an image encoder plus the head that maps its features into a model's joint
 * embedding space, and the preprocessing that feeds it. Internal to src/models/: families build
 * towers, mv_model runs them.
 *
 * The data path, top to bottom: decoded image → prepare (the family's transform, written into the
 * tower's batch buffer) → encoder (ViT or ResNet) → head → L2 normalise. A batch is at most
 * MV_IMAGE_BATCH images; buffers are allocated once for the largest batch seen. */
#ifndef MEDVLP_MODELS_IMAGE_TOWER_H
#define MEDVLP_MODELS_IMAGE_TOWER_H

#include "medvlp/image.h"
#include "medvlp/resnet.h"
#include "medvlp/vit.h"

/* Images per forward pass: up to MV_IMAGE_BATCH, fewer for large inputs so that a batch holds at most
 * MV_IMAGE_BATCH_PIXELS input pixels (16 × 224²): a ResNet-50 at 224² needs ~50 MB of activations per
 * image, BioViL's 480² ~4.6× that, so a batch stays near 800 MB whatever the model. */
#define MV_IMAGE_BATCH 16
#define MV_IMAGE_BATCH_PIXELS (16 * 224 * 224)

typedef enum mv_image_encoder {
    MV_ENCODER_NONE,       /* the model has no image tower */
    MV_ENCODER_VIT,        /* mv_vit; its own head (proj_dim) is the projection when head is NONE */
    MV_ENCODER_RESNET,     /* mv_resnet: layer4 map and its global average pool */
} mv_image_encoder;

typedef enum mv_image_head {
    MV_IMAGE_HEAD_NONE,        /* the encoder's output is the embedding (ViT with its projection) */
    MV_IMAGE_HEAD_PATCH_MLP,   /* BioViL: per layer4 patch W2·ReLU(BN(W1·p)) + b2, then mean over patches */
    MV_IMAGE_HEAD_MLP_RELU,    /* ConVIRT: W2·ReLU(W1·pool + b1) + b2 */
    MV_IMAGE_HEAD_LINEAR,      /* W·pool (+ b when bias is present) */
} mv_image_head;

typedef struct mv_image_tower mv_image_tower;

struct mv_image_tower {
    mv_image_encoder encoder;
    mv_vit *vit;
    mv_resnet *resnet;
    mv_image_head head;
    int embed_dim;
    int head_hidden;                    /* inner width of two-layer heads */
    const float *head_in_w, *head_in_b; /* borrowed from the weights, or pointing into owned */
    const float *head_out_w, *head_out_b;
    float *owned;                       /* folded BatchNorm of PATCH_MLP heads */

    /* Preprocessing: the decoded image → float CHW [3, height, width]. */
    mv_transform transform;
    int minmax_stretch;                 /* hi-ml: stretch the decoded samples to 0..255 first */
    int rgb_first;                      /* Image.open(...).convert("RGB") before the transform (ConVIRT):
                                           alpha is dropped before resizing, not resized premultiplied */
    int height, width;                  /* the encoder's input size (fixed by the transform) */
    int max_batch;                      /* images per forward pass (set with the input size) */
    /* A family whose authors preprocess in a way mv_transform cannot describe sets this; it writes
     * [3, height, width] floats to chw. NULL: the standard path (stretch, mv_preprocess). */
    int (*prepare_custom)(const mv_image_tower *tower, const mv_image *img, float *chw, mv_error *err);
    char description[256];              /* human-readable preprocessing, for `medvlp info` */

    /* Work buffers for up to cap_images images. */
    int cap_images;
    float *pixels;                      /* [cap, 3, height, width] */
    float *head_mid;                    /* [cap·rows, head_hidden] */
    mv_vit_state *vit_state;
    mv_resnet_state *resnet_state;
};

/* Sets height/width (and max_batch) from the transform (which must fix the output size: a crop or
 * an exact resize) and the description. Call after the family filled transform and minmax_stretch.
 * A family with prepare_custom sets height, width and description itself and calls
 * mv_image_tower_set_input_size. */
void mv_image_tower_set_input_size(mv_image_tower *tower, int height, int width);
int mv_image_tower_set_transform(mv_image_tower *tower, const char *what, mv_error *err);

/* Takes the head's tensors for tower->head: the encoder is loaded and embed_dim (and head_hidden)
 * set. in_name / out_name are the full tensor-name prefixes of the two layers ("res_l1", "res_l2";
 * "projector.model.0" with BN "projector.model.1" and "projector.model.3"; one layer: in_name only). */
int mv_image_tower_load_head(mv_image_tower *tower, mv_weights *weights, const char *in_name,
                             const char *bn_name, const char *out_name, mv_error *err);

/* The ResNet hyper-parameters read off the tensor shapes (stem width, planes and block counts). */
int mv_resnet_config_infer(const mv_weights *weights, const mv_resnet_names *names, mv_resnet_config *out,
                           mv_error *err);

void mv_image_tower_free(mv_image_tower *tower);

/* Makes room for a batch of n_images (<= max_batch). */
int mv_image_tower_reserve(mv_image_tower *tower, int n_images, mv_error *err);
/* Preprocesses img into batch slot `slot`. */
int mv_image_tower_prepare(mv_image_tower *tower, const mv_image *img, int slot, mv_error *err);
/* Runs the encoder and the head over slots [0, n_images): out[n_images, embed_dim]. */
int mv_image_tower_forward(mv_image_tower *tower, int n_images, int normalize, float *out, mv_error *err);

#endif
