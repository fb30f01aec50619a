/* test_resnet.c — bottleneck ResNet parity against PyTorch (torchvision Bottleneck blocks, eval-mode
 * BatchNorm with random running statistics) on an odd-sized 63×70 input: layer3 and layer4 maps and
 * the pooled vector, torchvision and ConVIRT (nn.Sequential) key names, a batch (two images side by
 * side, one alone) against single runs,
 * and the load errors a bad checkpoint must give. */
#include "medvlp/resnet.h"
#include "vitres_test.h"

#define N_IMAGES 3
#define HEIGHT 63
#define WIDTH 70

static mv_resnet_config tiny_config(void)
{
    return (mv_resnet_config){.in_channels = 3, .stem_channels = 8, .planes = {4, 8, 16, 32},
                              .blocks = {3, 4, 6, 3}, .bn_eps = 1e-5f};
}

/* Compares an NHWC map of the state with the reference's NCHW map, image by image. */
static void check_map(const char *what, const float *nhwc, const float *nchw_want, int h, int w, int channels)
{
    size_t len = (size_t)h * w * channels;
    float *nchw = malloc(N_IMAGES * len * sizeof(float));
    for (int i = 0; i < N_IMAGES; i++)
        mv_hwc_to_chw(nhwc + i * len, channels, h, w, nchw + i * len);
    check_parity(what, nchw, nchw_want, N_IMAGES, len);
    free(nchw);
}

static void check_names(const char *label, const char *ckpt, const mv_resnet_names *names)
{
    mv_resnet_config cfg = tiny_config();
    mv_weights *w = open_fixture_weights(ckpt);
    mv_error err = {0};
    mv_resnet *model = NULL;
    mv_resnet_state *batch = NULL, *single = NULL;
    CHECK_MSG(mv_resnet_load(&model, &cfg, w, names, &err) == MV_OK, "%s", err.message);
    mv_weights_free(w);   /* the model owns its folded weights */
    if (!model)
        exit(test_report("test_resnet"));
    CHECK_MSG(mv_resnet_state_new(model, N_IMAGES, HEIGHT, WIDTH, &batch, &err) == MV_OK, "%s", err.message);
    CHECK_MSG(mv_resnet_state_new(model, 1, HEIGHT, WIDTH, &single, &err) == MV_OK, "%s", err.message);
    if (!batch || !single)
        exit(test_report("test_resnet"));
    CHECK_INT_EQ(batch->n_workers, mv_packed_kernel_available() ? 2 : 1);
    CHECK_INT_EQ(single->n_workers, 1);
    CHECK_INT_EQ(batch->layer3_h, 4);
    CHECK_INT_EQ(batch->layer3_w, 5);
    CHECK_INT_EQ(batch->layer4_h, 2);
    CHECK_INT_EQ(batch->layer4_w, 3);
    int c3 = mv_resnet_out_channels(model, 2), c4 = mv_resnet_out_channels(model, 3);
    size_t image_len = 3 * HEIGHT * WIDTH, l3_len = (size_t)4 * 5 * c3, l4_len = (size_t)2 * 3 * c4;
    float *images = read_f32("resnet_input.f32", N_IMAGES * image_len);
    float *want_l3 = read_f32("resnet_layer3.f32", N_IMAGES * l3_len);
    float *want_l4 = read_f32("resnet_layer4.f32", N_IMAGES * l4_len);
    float *want_pooled = read_f32("resnet_pooled.f32", N_IMAGES * (size_t)c4);

    CHECK(mv_resnet_forward(model, batch, images, N_IMAGES, &err) == MV_OK);
    char what[128];
    snprintf(what, sizeof what, "%s layer3", label);
    check_map(what, batch->layer3, want_l3, 4, 5, c3);
    snprintf(what, sizeof what, "%s layer4", label);
    check_map(what, batch->layer4, want_l4, 2, 3, c4);
    snprintf(what, sizeof what, "%s pooled", label);
    check_parity(what, batch->pooled, want_pooled, N_IMAGES, (size_t)c4);

    for (int i = 0; i < N_IMAGES; i++) {
        CHECK(mv_resnet_forward(model, single, images + i * image_len, 1, &err) == MV_OK);
        snprintf(what, sizeof what, "%s image %d layer3", label, i);
        check_same(what, batch->layer3 + i * l3_len, single->layer3, l3_len);
        snprintf(what, sizeof what, "%s image %d pooled", label, i);
        check_same(what, batch->pooled + (size_t)i * c4, single->pooled, (size_t)c4);
    }
    CHECK(mv_resnet_forward(model, single, images, 2, &err) == MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "state holds 1..1");

    free(images);
    free(want_l3);
    free(want_l4);
    free(want_pooled);
    mv_resnet_state_free(batch);
    mv_resnet_state_free(single);
    mv_resnet_free(model);
}

static void check_load_error(const char *ckpt, const mv_resnet_config *cfg, const mv_resnet_names *names, int code,
                             const char *message)
{
    mv_weights *w = open_fixture_weights(ckpt);
    mv_error err = {0};
    mv_resnet *model = (mv_resnet *)1;
    CHECK_INT_EQ(mv_resnet_load(&model, cfg, w, names, &err), code);
    CHECK(model == NULL);
    CHECK_STR_CONTAINS(err.message, message);
    mv_weights_free(w);
}

int main(void)
{
    /* Two threads whatever the machine: a batch of 3 runs two images side by side (an image a thread)
     * and the third with each convolution on both threads, and must match single-image runs. */
    mv_set_threads(2);
    mv_resnet_names torchvision = mv_resnet_names_torchvision("");
    mv_resnet_names convirt = mv_resnet_names_sequential("res_features.");
    check_names("resnet torchvision names", "resnet_tiny.safetensors", &torchvision);
    check_names("resnet convirt names", "resnet_tiny_convirt.safetensors", &convirt);

    mv_resnet_config cfg = tiny_config();
    mv_resnet_config more_blocks = cfg;
    more_blocks.blocks[3] = 4;
    check_load_error("resnet_tiny.safetensors", &more_blocks, &torchvision, MV_ENOTFOUND,
                     "missing tensor layer4.3.conv1.weight");
    mv_resnet_config wide_stem = cfg;
    wide_stem.stem_channels = 16;
    check_load_error("resnet_tiny.safetensors", &wide_stem, &torchvision, MV_EFORMAT,
                     "conv1.weight has shape [8, 3, 7, 7], expected [16, 3, 7, 7]");
    mv_resnet_config wide_layer3 = cfg;
    wide_layer3.planes[2] = 24;
    check_load_error("resnet_tiny.safetensors", &wide_layer3, &torchvision, MV_EFORMAT, "layer3.0.conv1.weight");
    check_load_error("resnet_tiny_convirt.safetensors", &cfg, &torchvision, MV_ENOTFOUND, "conv1.weight");
    mv_resnet_names biovil = mv_resnet_names_torchvision("encoder.encoder.");
    check_load_error("resnet_tiny.safetensors", &cfg, &biovil, MV_ENOTFOUND, "encoder.encoder.conv1.weight");
    mv_resnet_config no_blocks = cfg;
    no_blocks.blocks[1] = 0;
    check_load_error("resnet_tiny.safetensors", &no_blocks, &torchvision, MV_EINPUT, "stage 2");

    /* A state for an image too small for five stride-2 stages is refused. */
    mv_weights *w = open_fixture_weights("resnet_tiny.safetensors");
    mv_error err = {0};
    mv_resnet *model = NULL;
    mv_resnet_state *state = (mv_resnet_state *)1;
    CHECK(mv_resnet_load(&model, &cfg, w, &torchvision, &err) == MV_OK);
    CHECK_INT_EQ(mv_resnet_state_new(model, 2, 16, 64, &state, &err), MV_EINPUT);
    CHECK(state == NULL);
    mv_resnet_free(model);
    mv_weights_free(w);
    return test_report("test_resnet");
}
