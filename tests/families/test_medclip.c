/* test_medclip.c — one MedCLIP model directory against the plain-torch reference
 * (tests/reference/make_medclip_fixtures.py). Args: FAMILY ("medclip": RyanWangZf ResNet variant,
 * pytorch_model.bin; "medclip-flax": the flax-community hybrid CLIP, flax_model.msgpack).
 * Checks token ids, normalised text embeddings, the image tower from the reference's own input tensor,
 * our preprocessing against the reference's (MedCLIP's square padding + PIL bicubic), end to end from
 * PNG files (gray, RGB, RGBA), and manifests that point at the wrong things. */
#include <unistd.h>

#include "families_test.h"
#include "models/family.h"

static void check_texts(mv_model *model, const json_t *texts, int dim)
{
    mv_error err = {0};
    for (size_t t = 0; t < json_array_size(texts); t++) {
        const json_t *item = json_array_get(texts, t);
        const char *text = json_string_value(json_object_get(item, "text"));
        const json_t *want_ids = json_object_get(item, "ids");
        int32_t ids[512];
        int n_ids;
        CHECK(mv_tokenizer_encode(model->tokenizer, text, strlen(text), model->context_length, ids, &n_ids, NULL,
                                  &err) == MV_OK);
        CHECK_INT_EQ(n_ids, json_array_size(want_ids));
        for (int i = 0; i < n_ids && i < (int)json_array_size(want_ids); i++)
            CHECK_INT_EQ(ids[i], json_integer_value(json_array_get(want_ids, i)));
        float got[64], want[64];
        int n_tokens, truncated;
        CHECK(mv_model_embed_texts(model, &text, NULL, 1, 1, got, &n_tokens, &truncated, &err) == MV_OK);
        CHECK_INT_EQ(n_tokens, n_ids);
        json_floats(json_object_get(item, "embedding"), want, (size_t)dim);
        char what[64];
        snprintf(what, sizeof what, "text %zu embedding", t);
        check_cosine(what, got, want, (size_t)dim, TOWER_MIN_COSINE);
    }
    /* a batch gives each text its own result (the authors' padded mean would not, see family_medclip.c) */
    const char *pair[2] = {json_string_value(json_object_get(json_array_get(texts, 0), "text")),
                           json_string_value(json_object_get(json_array_get(texts, 1), "text"))};
    float batch[128], single[64];
    CHECK(mv_model_embed_texts(model, pair, NULL, 2, 1, batch, NULL, NULL, &err) == MV_OK);
    CHECK(mv_model_embed_texts(model, &pair[1], NULL, 1, 1, single, NULL, NULL, &err) == MV_OK);
    CHECK(test_max_abs_diff(batch + dim, single, (size_t)dim) < 1e-5);
}

/* The tower on the reference's own input tensor (gray: one plane repeated, as the vision model does). */
static void check_tower(mv_model *model, const char *input_name, int gray, const float *want, int dim)
{
    mv_error err = {0};
    mv_image_tower *tower = &model->image;
    size_t plane = (size_t)tower->width * tower->height;
    float *input = read_f32(input_name, gray ? plane : 3 * plane);
    CHECK(mv_image_tower_reserve(tower, 1, &err) == MV_OK);
    for (int c = 0; c < 3; c++)
        memcpy(tower->pixels + c * plane, gray ? input : input + c * plane, plane * sizeof(float));
    float got[64];
    CHECK(mv_image_tower_forward(tower, 1, 1, got, &err) == MV_OK);
    char what[300];
    snprintf(what, sizeof what, "%s tower", input_name);
    check_cosine(what, got, want, (size_t)dim, TOWER_MIN_COSINE);
    free(input);
}

/* Our MedCLIP preprocessing (square padding on a black L canvas, PIL bicubic) against the reference's. */
static void check_rw_preprocess(mv_model *model, const mv_image *img, const char *input_name)
{
    mv_error err = {0};
    mv_image_tower *tower = &model->image;
    size_t plane = (size_t)tower->width * tower->height;
    float *want = read_f32(input_name, plane);
    CHECK(mv_image_tower_reserve(tower, 1, &err) == MV_OK);
    CHECK(mv_image_tower_prepare(tower, img, 0, &err) == MV_OK);
    double diff = test_max_abs_diff(tower->pixels, want, plane);
    fprintf(stderr, "%s preprocess: max |delta| %.3g\n", input_name, diff);
    CHECK_MSG(diff < 1e-5, "%s: preprocessing differs by %g", input_name, diff);
    CHECK(!memcmp(tower->pixels, tower->pixels + 2 * plane, plane * sizeof(float)));
    free(want);
}

/* A manifest in a temporary directory whose checkpoint is `target` (a symlink): loading must fail with
 * a message containing `needle`. */
static void check_bad_manifest(const char *family, const char *target, const char *needle)
{
    char dir[] = "/tmp/medvlp_medclip_XXXXXX", path[512];
    if (!mkdtemp(dir))
        return;
    snprintf(path, sizeof path, "%s/medvlp.json", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "{\"family\": \"%s\", \"checkpoint\": \"weights\", \"config\": \"config.json\", "
                   "\"text\": {\"vocab\": \"vocab.txt\"}}\n", family);
        fclose(f);
    }
    char link[512];
    snprintf(link, sizeof link, "%s/weights", dir);
    CHECK(symlink(target, link) == 0);
    char vocab[512], config[512];
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", dir);
    CHECK(symlink(family_path("medclip/vocab.txt"), vocab) == 0);
    snprintf(config, sizeof config, "%s/config.json", dir);
    CHECK(symlink(family_path("medclip-flax/config.json"), config) == 0);
    mv_model *model = NULL;
    mv_error err = {0};
    CHECK(mv_model_open(dir, NULL, &model, &err) != MV_OK);
    CHECK_STR_CONTAINS(err.message, needle);
    mv_model_free(model);
    unlink(link);
    unlink(vocab);
    unlink(config);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_medclip FAMILY\n");
        return 2;
    }
    const char *family = argv[1];
    int rw = !strcmp(family, "medclip");
    mv_error err = {0};
    mv_model *model;
    if (mv_model_open(family_path(family), NULL, &model, &err))
        die(family, &err);
    mv_model_info info;
    mv_model_get_info(model, &info);
    CHECK(!strcmp(info.family, family));
    CHECK_INT_EQ(info.context_length, rw ? 77 : 128);
    CHECK_INT_EQ(info.image_size, 224);
    CHECK_INT_EQ(info.n_unused_tensors, rw ? 3 : 1);   /* logit_scale (+ the unused BERT pooler) */

    json_t *expected = read_json("medclip_expected/expected.json");
    int dim = (int)json_integer_value(json_object_get(expected, "embed_dim"));
    CHECK_INT_EQ(info.embed_dim, dim);
    const json_t *ref = json_object_get(expected, family);
    check_texts(model, json_object_get(ref, "texts"), dim);

    const json_t *images = json_object_get(ref, "images");
    for (size_t i = 0; i < json_array_size(images); i++) {
        const json_t *item = json_array_get(images, i);
        const char *file = json_string_value(json_object_get(item, "file"));
        char name[256], what[300];
        float want[64], got[64];
        json_floats(json_object_get(item, "embedding"), want, (size_t)dim);
        mv_image img;
        snprintf(name, sizeof name, "medclip_expected/%s", file);
        decode_fixture_image(name, &img);
        if (rw) {
            snprintf(name, sizeof name, "medclip_expected/%s.rw.f32", file);
            check_tower(model, name, 1, want, dim);
            check_rw_preprocess(model, &img, name);
        } else if (i == 0) {
            snprintf(name, sizeof name, "medclip_expected/%s.clip.f32", file);
            check_tower(model, name, 0, want, dim);
        }
        CHECK(mv_model_embed_images(model, &img, 1, 1, got, &err) == MV_OK);
        snprintf(what, sizeof what, "%s file", file);
        check_cosine(what, got, want, (size_t)dim, FILE_MIN_COSINE);
        mv_image_free(&img);
    }
    json_decref(expected);
    mv_model_free(model);

    /* the other family's checkpoint, and a file that is no checkpoint */
    if (rw) {
        check_bad_manifest("medclip", family_path("gloria/gloria.ckpt"), "text_model.model.");
    } else {
        check_bad_manifest("medclip-flax", family_path("medclip/pytorch_model.bin"), "text_model.");
    }
    check_bad_manifest(family, family_path("medclip/vocab.txt"), "weights");
    return test_report(rw ? "test_medclip" : "test_medclip_flax");
}
