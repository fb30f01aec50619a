/* test_gloria.c — GLoRIA against the plain-torch reference (tests/reference/make_gloria_fixtures.py):
 * text cleaning and ids, word/sentence embeddings of the aggregated last-4 BERT layers, the image input
 * (INTER_AREA resize for 2×, 3×, non-integer and enlarging factors, padding, crop), the image tower from
 * the reference input tensor and from the PNG file, the global/local/combined scores, and bad inputs.
 * The model opens from its medvlp.json and the Lightning .ckpt (pickled OmegaConf hyper_parameters
 * inside, never run). */
#include <math.h>

#include "families_test.h"
#include "medvlp/score.h"
#include "medvlp/tensor.h"
#include "medvlp/tokenizer.h"
#include "models/family.h"
#include "models/gloria.h"

#define HIDDEN 32
#define WORD_NUM 97

/* Per text: cleaning and ids against the reference, word embeddings through GLoRIA's aggregation on
 * the model's own BERT, and the model's text embedding (sent_emb, not normalised). */
static void check_texts(mv_model *model, mv_gloria_text *g, const json_t *texts)
{
    mv_error err = {0};
    for (size_t t = 0; t < json_array_size(texts); t++) {
        const json_t *item = json_array_get(texts, t);
        const char *raw = json_string_value(json_object_get(item, "text"));
        const char *want_clean = json_string_value(json_object_get(item, "cleaned"));
        char *clean;
        size_t clean_len;
        CHECK(mv_gloria_clean_text(raw, strlen(raw), &clean, &clean_len, &err) == MV_OK);
        CHECK_MSG(!strcmp(clean, want_clean), "text %zu cleaned to \"%s\", want \"%s\"", t, clean, want_clean);

        int32_t ids[WORD_NUM];
        int n_ids, n_words;
        CHECK(mv_tokenizer_encode(model->tokenizer, clean, clean_len, WORD_NUM, ids, &n_ids, NULL, &err) == MV_OK);
        free(clean);
        const json_t *want_ids = json_object_get(item, "ids");
        CHECK_INT_EQ(n_ids, json_array_size(want_ids));
        for (int i = 0; i < n_ids && i < (int)json_array_size(want_ids); i++)
            CHECK_INT_EQ(ids[i], json_integer_value(json_array_get(want_ids, i)));

        float words[WORD_NUM * HIDDEN], sent[HIDDEN], want_sent[HIDDEN];
        CHECK(mv_gloria_text_forward(g, &model->text.bert, &model->text.state, ids, n_ids, words, &n_words, NULL,
                                     &err) == MV_OK);
        CHECK_INT_EQ(n_words, json_integer_value(json_object_get(item, "n_words")));
        char name[64], what[64];
        snprintf(name, sizeof name, "gloria_expected/word_emb_%zu.f32", t);
        float *want_words = read_f32(name, WORD_NUM * HIDDEN);
        snprintf(what, sizeof what, "text %zu word_emb", t);
        check_cosine(what, words, want_words, WORD_NUM * HIDDEN, TOWER_MIN_COSINE);
        /* every word on its own, and the zero padding after the last one */
        for (int w = 0; w < WORD_NUM; w++) {
            double diff = test_max_abs_diff(words + w * HIDDEN, want_words + w * HIDDEN, HIDDEN);
            CHECK_MSG(diff < 1e-3, "text %zu word %d: max |delta| %g", t, w, diff);
        }
        free(want_words);

        CHECK(mv_model_embed_texts(model, &raw, NULL, 1, 0, sent, NULL, NULL, &err) == MV_OK);
        json_floats(json_object_get(item, "sent_emb"), want_sent, HIDDEN);
        snprintf(what, sizeof what, "text %zu sent_emb (model)", t);
        check_cosine(what, sent, want_sent, HIDDEN, TOWER_MIN_COSINE);
    }
}

static void check_cleaning_edge_cases(void)
{
    /* expected values printed by make_gloria_fixtures.gloria_clean */
    static const struct { const char *in, *out; } cases[] = {
        {"", ""},
        {"One.", ""},                                       /* one word: dropped */
        {"a b. c d", "a b c d"},
        {"x12.5 y z", "5 y z"},                             /* "12." is a list marker; "x" alone is dropped */
        {"Caf\xc3\xa9 au lait. \xc3\xa9t\xc3\xa9 \xc3\xa9t\xc3\xa9. ok ok", "caf au lait t t ok ok"},
        {"\xc3\xa9\xc3\xa9 \xc3\xa0\xc3\xa0. ok ok", " ok ok"},   /* a sentence with no ASCII left */
        {"snake_case WORD\tTab", "snake_case word tab"},
        {"\xc4\xb0stanbul city", "i stanbul city"},       /* U+0130 lowercases to i + U+0307 */
        {"a\xef\xbf\xbd\xef\xbf\xbd" "b c", "a b c"},
    };
    mv_error err = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        size_t len;
        CHECK(mv_gloria_clean_text(cases[i].in, strlen(cases[i].in), &out, &len, &err) == MV_OK);
        CHECK_MSG(!strcmp(out, cases[i].out), "clean(\"%s\") = \"%s\", want \"%s\"", cases[i].in, out, cases[i].out);
        CHECK_INT_EQ(len, strlen(out));
        free(out);
    }
    char *out;
    size_t len;
    CHECK(mv_gloria_clean_text("bad \xff utf8", 10, &out, &len, &err) == MV_EINPUT);
}

/* The image tower on the reference's own 224 input (upsampled here, as inside the model): global
 * embedding, and the local map through local_embedder on the ResNet's layer3. */
static void check_tower(mv_model *model, const float *input224, const float *want_global, const float *want_local,
                        const char *file)
{
    mv_error err = {0};
    mv_image_tower *tower = &model->image;
    CHECK(mv_image_tower_reserve(tower, 1, &err) == MV_OK);
    size_t big = 299 * 299;
    for (int c = 0; c < 3; c++)
        mv_gloria_upsample(input224, 224, tower->pixels + c * big, 299);
    float global[HIDDEN], *local = malloc(19 * 19 * HIDDEN * sizeof(float));
    CHECK(mv_image_tower_forward(tower, 1, 0, global, &err) == MV_OK);
    const mv_tensor_entry *local_w = mv_weights_find(model->weights[0], "gloria.img_encoder.local_embedder.weight");
    CHECK(local_w != NULL);
    int c3 = mv_resnet_out_channels(tower->resnet, 2);
    mv_linear(tower->resnet_state->layer3, 19 * 19, c3, local_w->f32, NULL, HIDDEN, local);
    char what[300];
    snprintf(what, sizeof what, "%s tower global", file);
    check_cosine(what, global, want_global, HIDDEN, TOWER_MIN_COSINE);
    snprintf(what, sizeof what, "%s tower local", file);
    check_cosine(what, local, want_local, 19 * 19 * HIDDEN, TOWER_MIN_COSINE);
    free(local);
}

int main(void)
{
    mv_error err = {0};
    check_cleaning_edge_cases();

    mv_model *model;
    if (mv_model_open(family_path("gloria"), NULL, &model, &err))
        die("gloria model", &err);
    mv_model_info info;
    mv_model_get_info(model, &info);
    CHECK(!strcmp(info.family, "gloria"));
    CHECK_INT_EQ(info.embed_dim, HIDDEN);
    CHECK_INT_EQ(info.context_length, WORD_NUM);
    CHECK_INT_EQ(info.image_size, 299);
    CHECK_INT_EQ(info.n_unused_tensors, 2);   /* the BERT pooler, unused by GLoRIA */

    mv_gloria_config cfg = mv_gloria_config_default();
    mv_gloria_text g;
    if (mv_gloria_text_init(&g, &cfg, &model->text.bert.config, family_path("gloria/vocab.txt"), &err))
        die("gloria text", &err);
    json_t *expected = read_json("gloria_expected/expected.json");
    const json_t *texts = json_object_get(expected, "texts"), *images = json_object_get(expected, "images");
    check_texts(model, &g, texts);

    size_t plane = 224 * 224;
    float *ours = malloc(3 * plane * sizeof(float));
    for (size_t i = 0; i < json_array_size(images); i++) {
        const json_t *item = json_array_get(images, i);
        const char *file = json_string_value(json_object_get(item, "file"));
        char name[256], what[300];
        snprintf(name, sizeof name, "gloria_expected/%s.input.f32", file);
        float *gray = read_f32(name, plane);
        float want_global[HIDDEN], global[HIDDEN];
        json_floats(json_object_get(item, "global_emb"), want_global, HIDDEN);
        snprintf(name, sizeof name, "gloria_expected/%s.local.f32", file);
        float *want_local = read_f32(name, 19 * 19 * HIDDEN);
        check_tower(model, gray, want_global, want_local, file);

        /* our preprocessing of the PNG: the same INTER_AREA pixels */
        mv_image img;
        snprintf(name, sizeof name, "gloria_expected/%s", file);
        decode_fixture_image(name, &img);
        CHECK(mv_gloria_preprocess(&img, &cfg, ours, &err) == MV_OK);
        size_t off = 0;
        double max_diff = test_max_abs_diff(ours, gray, plane);
        for (size_t p = 0; p < plane; p++)
            off += fabsf(ours[p] - gray[p]) > 1e-6f;
        fprintf(stderr, "%s preprocess: %zu of %zu pixels differ, max |delta| %.3g\n", file, off, plane, max_diff);
        CHECK_MSG(off * 1000 <= plane && max_diff <= 2.0 / 255 + 1e-6, "%s: %zu pixels differ (max %g)", file, off,
                  max_diff);
        CHECK(!memcmp(ours, ours + plane, plane * sizeof(float)) && !memcmp(ours, ours + 2 * plane, plane * sizeof(float)));

        /* end to end from the file, and the scores against every text */
        CHECK(mv_model_embed_images(model, &img, 1, 0, global, &err) == MV_OK);
        snprintf(what, sizeof what, "%s file global (model)", file);
        check_cosine(what, global, want_global, HIDDEN, FILE_MIN_COSINE);
        const json_t *scores = json_object_get(item, "scores");
        for (size_t t = 0; t < json_array_size(texts); t++) {
            const json_t *want = json_array_get(scores, t);
            const char *text = json_string_value(json_object_get(json_array_get(texts, t), "text"));
            mv_pair_score score;
            CHECK(mv_model_score_pair(model, text, strlen(text), &img, &score, &err) == MV_OK);
            CHECK(score.has_local);
            CHECK_NEAR(score.global, json_number_value(json_object_get(want, "global")), 1e-4);
            CHECK_NEAR(score.local, json_number_value(json_object_get(want, "local")), 1e-3);
            CHECK_NEAR(score.combined, json_number_value(json_object_get(want, "combined")), 1e-3);
        }
        if (i == 0) {   /* a text with no words left after the cleaning has no local score */
            mv_pair_score score;
            CHECK(mv_model_score_pair(model, "Clear.", 6, &img, &score, &err) == MV_EINPUT);
            CHECK_STR_CONTAINS(err.message, "no words");
        }
        mv_image_free(&img);
        free(gray);
        free(want_local);
    }

    /* bad inputs */
    int32_t long_ids[WORD_NUM + 1] = {0};
    CHECK(mv_gloria_text_forward(&g, &model->text.bert, &model->text.state, long_ids, WORD_NUM + 1, NULL, NULL,
                                 NULL, &err) == MV_EINPUT);
    int32_t bad_ids[3] = {101, 5000, 102};
    CHECK(mv_gloria_text_forward(&g, &model->text.bert, &model->text.state, bad_ids, 3, NULL, NULL, NULL, &err) ==
          MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "5000");
    mv_gloria_text wrong;
    mv_gloria_config too_deep = cfg;
    too_deep.last_n_layers = 6;
    CHECK(mv_gloria_text_init(&wrong, &too_deep, &model->text.bert.config, family_path("gloria/vocab.txt"), &err) ==
          MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, "last_n_layers");
    CHECK(mv_gloria_text_init(&wrong, &cfg, &model->text.bert.config, family_path("gloria/medvlp.json"), &err) ==
          MV_EFORMAT);
    CHECK_STR_CONTAINS(err.message, "[SEP]");
    unsigned char thin[300] = {0};
    mv_image thin_img = {.width = 300, .height = 1, .mode = MV_MODE_L, .channels = 1, .pixels = thin};
    CHECK(mv_gloria_preprocess(&thin_img, &cfg, ours, &err) == MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "too thin");

    free(ours);
    json_decref(expected);
    mv_gloria_text_free(&g);
    mv_model_free(model);
    return test_report("test_gloria");
}
