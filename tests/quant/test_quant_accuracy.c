/* test_quant_accuracy.c — the accuracy cost of `--quant int8` and `--quant fp16`, measured against
 * PyTorch's fp32 outputs (the committed references of tests/reference/make_text_model_fixtures.py and
 * make_family_fixtures.py, not medvlp's own fp32 path): every reference text and image of every tiny
 * model fixture, embedded through the public API (cleaning + WordPiece, decoding + preprocessing,
 * encoder, head) with the model opened as int8 must keep cos >= 0.995 (issue 7), as fp16 >= 0.9999
 * (half precision keeps 11 significant bits of each weight). Prints the minimum per fixture and side. */
#include "medvlp/file.h"
#include "medvlp/model.h"
#include "../test.h"

#include <jansson.h>
#include <stdlib.h>

/* The least cos to PyTorch each storage must keep. */
static double min_cos_allowed(mv_quant quant)
{
    return quant == MV_QUANT_INT8 ? 0.995 : 0.9999;
}

static char fixtures[2048];

/* fixtures/name, e.g. "models/expected/cxr-bert.json". */
static json_t *load_json(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    CHECK_MSG(j != NULL, "%s: %s", path, jerr.text);
    return j;
}

/* cos of out[i] against want[i] (JSON rows) for each i; checks and prints the minimum. */
static void compare(mv_quant quant, const char *what, const float *out, const json_t *want, int n, int dim)
{
    float *row = malloc((size_t)dim * sizeof *row);
    double min_cos = 1.0;
    CHECK_INT_EQ(json_array_size(want), n);
    for (int i = 0; i < n && i < (int)json_array_size(want); i++) {
        const json_t *values = json_array_get(want, (size_t)i);
        CHECK_INT_EQ(json_array_size(values), dim);
        for (int d = 0; d < dim; d++)
            row[d] = (float)json_number_value(json_array_get(values, (size_t)d));
        double cos = test_cosine(out + (size_t)i * dim, row, (size_t)dim);
        CHECK_MSG(cos >= min_cos_allowed(quant), "%s %s item %d: cos %.6f", mv_quant_name(quant), what, i, cos);
        min_cos = cos < min_cos ? cos : min_cos;
    }
    printf("%-32s %s vs PyTorch fp32: min cos %.7f over %d\n", what, mv_quant_name(quant), min_cos, n);
    free(row);
}

/* The model in fixtures/dir_name ("models/cxr-bert"), opened with quant. */
static mv_model *open_quant(const char *dir_name, mv_quant quant)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", fixtures, dir_name);
    mv_model_options options = {.quant = quant};
    mv_model *model = NULL;
    mv_error err;
    CHECK_MSG(mv_model_open(dir, &options, &model, &err) == MV_OK, "%s: %s", dir_name, err.message);
    if (model) {
        mv_model_info info;
        mv_model_get_info(model, &info);
        CHECK(!strcmp(info.quant, mv_quant_name(quant)));
    }
    return model;
}

static void check_texts(mv_model *model, mv_quant quant, const char *what, const json_t *texts, const json_t *want)
{
    const int n = (int)json_array_size(texts);
    mv_model_info info;
    mv_model_get_info(model, &info);
    const char **ptrs = malloc((size_t)n * sizeof *ptrs);
    float *out = malloc((size_t)n * info.embed_dim * sizeof *out);
    for (int i = 0; i < n; i++)
        ptrs[i] = json_string_value(json_array_get(texts, (size_t)i));
    mv_error err;
    CHECK_MSG(mv_model_embed_texts(model, ptrs, NULL, n, 1, out, NULL, NULL, &err) == MV_OK, "%s", err.message);
    compare(quant, what, out, want, n, info.embed_dim);
    free(ptrs);
    free(out);
}

/* Embeds n image files dir/names[i] through the public API (decoding, preprocessing, tower, head);
 * returns 0 when every file could be mapped. */
static int embed_files(mv_model *model, const char *dir, const char *const *names, int n, float *out)
{
    mv_mapped_file *files = calloc((size_t)n, sizeof *files);
    const void **bytes = calloc((size_t)n, sizeof *bytes);
    size_t *sizes = calloc((size_t)n, sizeof *sizes);
    mv_error err;
    int ok = 1;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/%s", fixtures, dir, names[i]);
        ok &= mv_file_map(path, &files[i], &err) == MV_OK;
        bytes[i] = files[i].data;
        sizes[i] = files[i].size;
    }
    CHECK(ok);
    if (ok)
        CHECK_MSG(mv_model_embed_image_bytes(model, bytes, sizes, NULL, n, 1, out, &err) == MV_OK, "%s", err.message);
    for (int i = 0; i < n; i++)
        mv_file_unmap(&files[i]);
    free(files);
    free(bytes);
    free(sizes);
    return ok ? 0 : -1;
}

static void check_images(mv_model *model, mv_quant quant, const char *what, const json_t *expected)
{
    const json_t *names = json_object_get(expected, "images");
    const int n = (int)json_array_size(names);
    mv_model_info info;
    mv_model_get_info(model, &info);
    const char **files = calloc((size_t)n, sizeof *files);
    float *out = malloc((size_t)n * info.embed_dim * sizeof *out);
    for (int i = 0; i < n; i++)
        files[i] = json_string_value(json_array_get(names, (size_t)i));
    if (!embed_files(model, "models/images", files, n, out))
        compare(quant, what, out, json_object_get(expected, "normalized"), n, info.embed_dim);
    free(files);
    free(out);
}

/* A family fixture's reference items (tests/fixtures/families/NAME_expected/expected.json): texts
 * {text_key, want_key}, images {"file", want_key}, the wanted vectors unnormalised (cos ignores it). */
static void check_family(mv_model *model, mv_quant quant, const char *what, const json_t *texts, const char *text_key,
                         const char *text_want, const json_t *images, const char *image_dir, const char *image_want)
{
    json_t *strings = json_array(), *text_rows = json_array(), *image_rows = json_array();
    for (size_t i = 0; i < json_array_size(texts); i++) {
        json_array_append(strings, json_object_get(json_array_get(texts, i), text_key));
        json_array_append(text_rows, json_object_get(json_array_get(texts, i), text_want));
    }
    char label[160];
    snprintf(label, sizeof label, "%s texts", what);
    check_texts(model, quant, label, strings, text_rows);
    mv_model_info info;
    mv_model_get_info(model, &info);
    const int n = (int)json_array_size(images);
    const char **files = calloc((size_t)n, sizeof *files);
    float *out = malloc((size_t)n * info.embed_dim * sizeof *out);
    for (int i = 0; i < n; i++) {
        files[i] = json_string_value(json_object_get(json_array_get(images, (size_t)i), "file"));
        json_array_append(image_rows, json_object_get(json_array_get(images, (size_t)i), image_want));
    }
    snprintf(label, sizeof label, "%s images", what);
    if (!embed_files(model, image_dir, files, n, out))
        compare(quant, label, out, image_rows, n, info.embed_dim);
    free(files);
    free(out);
    json_decref(strings);
    json_decref(text_rows);
    json_decref(image_rows);
}

/* Every fixture model opened with quant, against PyTorch. */
static void check_models(mv_quant quant, const json_t *biomedclip, const json_t *cxr_bert,
                         const json_t *images_biomedclip, const json_t *images_biovil, const json_t *images_convirt,
                         const json_t *gloria, const json_t *medclip)
{
    /* BiomedCLIP layout (BERT + ViT), both checkpoint formats. */
    const char *biomedclip_dirs[] = {"models/biomedclip", "models/biomedclip-safetensors"};
    for (int i = 0; i < 2; i++) {
        mv_model *model = open_quant(biomedclip_dirs[i], quant);
        if (!model)
            continue;
        char what[128];
        snprintf(what, sizeof what, "%s texts", biomedclip_dirs[i]);
        check_texts(model, quant, what, json_object_get(biomedclip, "texts"),
                    json_object_get(json_object_get(biomedclip, "single"), "normalized"));
        snprintf(what, sizeof what, "%s images (ViT)", biomedclip_dirs[i]);
        check_images(model, quant, what, images_biomedclip);
        mv_model_free(model);
    }
    /* CXR-BERT alone, and with BioViL's ResNet-50 image tower. */
    mv_model *model = open_quant("models/" "cxr-bert", quant);
    if (model) {
        check_texts(model, quant, "cxr-bert texts", json_object_get(cxr_bert, "texts"),
                    json_object_get(json_object_get(cxr_bert, "single"), "normalized"));
        mv_model_free(model);
    }
    if ((model = open_quant("models/" "biovil", quant))) {
        check_texts(model, quant, "biovil texts", json_object_get(cxr_bert, "texts"),
                    json_object_get(json_object_get(cxr_bert, "single"), "normalized"));
        check_images(model, quant, "biovil images (ResNet)", images_biovil);
        mv_model_free(model);
    }
    /* ConVIRT: ClinicalBERT + ResNet-50. */
    if ((model = open_quant("models/" "convirt", quant))) {
        check_texts(model, quant, "convirt texts", json_object_get(images_convirt, "texts"),
                    json_object_get(images_convirt, "text_normalized"));
        check_images(model, quant, "convirt images (ResNet)", images_convirt);
        mv_model_free(model);
    }
    /* GLoRIA (global embeddings) and MedCLIP in both checkpoint formats, end to end from text and file. */
    if ((model = open_quant("families/gloria", quant))) {
        check_family(model, quant, "gloria", json_object_get(gloria, "texts"), "text", "sent_emb",
                     json_object_get(gloria, "images"), "families/gloria_expected", "global_emb");
        mv_model_free(model);
    }
    const char *medclip_dirs[] = {"medclip", "medclip-flax"};
    for (int i = 0; i < 2; i++) {
        char dir[64];
        snprintf(dir, sizeof dir, "families/%s", medclip_dirs[i]);
        if (!(model = open_quant(dir, quant)))
            continue;
        const json_t *ref = json_object_get(medclip, medclip_dirs[i]);
        check_family(model, quant, medclip_dirs[i], json_object_get(ref, "texts"), "text", "embedding",
                     json_object_get(ref, "images"), "families/medclip_expected", "embedding");
        mv_model_free(model);
    }
}

int main(void)
{
    snprintf(fixtures, sizeof fixtures, "%s", getenv("MEDVLP_FIXTURES") ? getenv("MEDVLP_FIXTURES") : "tests/fixtures");
    json_t *biomedclip = load_json("models/expected/biomedclip.json"), *cxr_bert = load_json("models/expected/cxr-bert.json");
    json_t *images_biomedclip = load_json("models/expected/images_biomedclip.json"), *images_biovil = load_json("models/expected/images_biovil.json");
    json_t *images_convirt = load_json("models/expected/images_convirt.json");
    json_t *gloria = load_json("families/gloria_expected/expected.json");
    json_t *medclip = load_json("families/medclip_expected/expected.json");
    if (!biomedclip || !cxr_bert || !images_biomedclip || !images_biovil || !images_convirt || !gloria || !medclip)
        return test_report("quant_accuracy");
    const mv_quant quants[] = {MV_QUANT_INT8, MV_QUANT_FP16};
    for (size_t q = 0; q < sizeof quants / sizeof *quants; q++) {
        if (mv_quant_supported(quants[q]))
            check_models(quants[q], biomedclip, cxr_bert, images_biomedclip, images_biovil, images_convirt, gloria,
                         medclip);
        else /* refused at open with a message naming the CPU feature */
            printf("%s: not supported on this CPU, refused at open\n", mv_quant_name(quants[q]));
    }
    json_decref(biomedclip);
    json_decref(cxr_bert);
    json_decref(images_biomedclip);
    json_decref(images_biovil);
    json_decref(images_convirt);
    json_decref(gloria);
    json_decref(medclip);
    return test_report("quant_accuracy");
}
