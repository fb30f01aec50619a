/* test_vit.c — ViT tower parity against PyTorch: the timm variant (torchvision VisionTransformer under
 * timm/open_clip names + a BiomedCLIP-style head) and the HF-CLIP variant (plain torch.nn port), a
 * batch against single runs, and the load errors a bad checkpoint must give. */
#include "medvlp/vit.h"
#include "vitres_test.h"

#define N_IMAGES 3
#define IMAGE 32
#define PATCH 8
#define WIDTH 32
#define DEPTH 2
#define HEADS 2
#define PROJ 16
#define MLP 64

static void check_variant(const char *label, const mv_vit_config *cfg, const char *ckpt, const char *prefix,
                          const char *head, const char *input, const char *pooled, const char *embedding)
{
    mv_weights *w = open_fixture_weights(ckpt);
    mv_error err = {0};
    mv_vit *model = NULL;
    mv_vit_state *batch = NULL, *single = NULL;
    CHECK_MSG(mv_vit_load(&model, cfg, w, prefix, head, &err) == MV_OK, "%s", err.message);
    if (!model)
        exit(test_report("test_vit"));
    CHECK_MSG(mv_vit_state_new(model, N_IMAGES, &batch, &err) == MV_OK, "%s", err.message);
    CHECK_MSG(mv_vit_state_new(model, 1, &single, &err) == MV_OK, "%s", err.message);
    if (!model || !batch || !single)
        exit(test_report("test_vit"));
    size_t image_len = 3 * IMAGE * IMAGE;
    float *images = read_f32(input, N_IMAGES * image_len);
    float *want_pooled = read_f32(pooled, N_IMAGES * WIDTH);
    float *want_embedding = read_f32(embedding, N_IMAGES * PROJ);

    CHECK(mv_vit_forward(model, batch, images, N_IMAGES, &err) == MV_OK);
    char what[128];
    snprintf(what, sizeof what, "%s pooled", label);
    check_parity(what, batch->pooled, want_pooled, N_IMAGES, WIDTH);
    snprintf(what, sizeof what, "%s embedding", label);
    check_parity(what, batch->embedding, want_embedding, N_IMAGES, PROJ);

    for (int i = 0; i < N_IMAGES; i++) {
        CHECK(mv_vit_forward(model, single, images + i * image_len, 1, &err) == MV_OK);
        snprintf(what, sizeof what, "%s image %d", label, i);
        check_same(what, batch->embedding + i * PROJ, single->embedding, PROJ);
    }
    CHECK(mv_vit_forward(model, single, images, 2, &err) == MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "state holds 1..1");

    free(images);
    free(want_pooled);
    free(want_embedding);
    mv_vit_state_free(batch);
    mv_vit_state_free(single);
    mv_vit_free(model);
    mv_weights_free(w);
}

/* Loading `cfg` from the timm fixture must fail with `code` and a message naming `tensor`. */
static void check_load_error(const mv_vit_config *cfg, const char *prefix, int code, const char *tensor)
{
    mv_weights *w = open_fixture_weights("vit_timm.safetensors");
    mv_error err = {0};
    mv_vit *model = (mv_vit *)1;
    CHECK_INT_EQ(mv_vit_load(&model, cfg, w, prefix, "visual.head.proj.weight", &err), code);
    CHECK(model == NULL);
    CHECK_STR_CONTAINS(err.message, tensor);
    mv_weights_free(w);
}

int main(void)
{
    mv_vit_config timm = mv_vit_config_timm(IMAGE, PATCH, WIDTH, DEPTH, HEADS, PROJ);
    mv_vit_config clip = mv_vit_config_clip(IMAGE, PATCH, WIDTH, DEPTH, HEADS, PROJ);
    timm.mlp_dim = clip.mlp_dim = MLP;
    check_variant("vit timm", &timm, "vit_timm.safetensors", "visual.trunk.", "visual.head.proj.weight",
                  "vit_timm_input.f32", "vit_timm_pooled.f32", "vit_timm_embedding.f32");
    check_variant("vit clip", &clip, "vit_clip.safetensors", "vision_model.", "visual_projection.weight",
                  "vit_clip_input.f32", "vit_clip_pooled.f32", "vit_clip_embedding.f32");

    mv_vit_config deeper = timm;
    deeper.depth = 3;
    check_load_error(&deeper, "visual.trunk.", MV_ENOTFOUND, "visual.trunk.blocks.2.norm1.weight");
    mv_vit_config bigger = timm;
    bigger.image_size = 40;   /* 26 positions, the file has 17 */
    check_load_error(&bigger, "visual.trunk.", MV_EFORMAT, "visual.trunk.pos_embed has shape [1, 17, 32]");
    mv_vit_config wider_mlp = timm;
    wider_mlp.mlp_dim = 128;
    check_load_error(&wider_mlp, "visual.trunk.", MV_EFORMAT, "visual.trunk.blocks.0.mlp.fc1.weight");
    mv_vit_config wide_head = timm;
    wide_head.proj_dim = 8;
    check_load_error(&wide_head, "visual.trunk.", MV_EFORMAT, "visual.head.proj.weight");
    check_load_error(&timm, "trunk.", MV_ENOTFOUND, "trunk.patch_embed.proj.weight");
    mv_vit_config odd_heads = timm;
    odd_heads.heads = 3;
    check_load_error(&odd_heads, "visual.trunk.", MV_EINPUT, "heads 3");
    return test_report("test_vit");
}
