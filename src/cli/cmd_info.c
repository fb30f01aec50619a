/* cmd_info.c — `medvlp info -m DIR`: what the model directory holds, as one JSON object. */
#include "cli/cli_model.h"
#include "cli/commands.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: medvlp info -m DIR [--no-checksum] [--quant none|int8|fp16]\n\n"
                 "Prints JSON: family, layout, embedding dim (text and image share it), context length,\n"
                 "image size and preprocessing (null without an image tower), parameter count, dtype,\n"
                 "each weight file with its format and SHA-256, the weights checksum an index records,\n"
                 "the names of unused tensors, whether the weights are tiny random test weights, and the\n"
                 "weight storage the model is opened with (--quant).\n"
                 "Hashing reads every weight byte (about 1 s per GB); --no-checksum skips it.\n");
}

static json_t *weight_files(const mv_model *model, int n_files, int with_checksum, mv_error *err, int *rc)
{
    json_t *files = json_array();
    for (int i = 0; i < n_files && !*rc; i++) {
        const char *format, *path = mv_model_weights_file(model, i, &format);
        char sha[65];
        if (with_checksum && (*rc = mv_sha256_file(path, sha, err)))
            break;
        json_array_append_new(files, json_pack("{s:s, s:s, s:o}", "path", path, "format", format, "sha256",
                                               with_checksum ? json_string(sha) : json_null()));
    }
    return files;
}

int cmd_info(int argc, char **argv)
{
    const char *dir = NULL;
    int with_checksum = 1;
    mv_model_options options = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--no-checksum")) {
            with_checksum = 0;
        } else if (!strcmp(argv[i], "--quant") && i + 1 < argc) {
            if (cli_parse_quant("info", argv[++i], &options))
                return 2;
        } else {
            fprintf(stderr, "medvlp info: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    mv_model *model;
    int status = cli_open_model_with("info", dir, &options, &model);
    if (status)
        return status;
    mv_model_info info;
    mv_model_get_info(model, &info);
    mv_error err;
    int rc = 0;
    char checksum[65];
    json_t *files = weight_files(model, info.n_weight_files, with_checksum, &err, &rc);
    if (!rc && with_checksum)
        rc = mv_model_weights_checksum(model, checksum, &err);
    if (rc) {
        fprintf(stderr, "medvlp info: %s\n", err.message);
        json_decref(files);
        mv_model_free(model);
        return mv_status_exit_code(rc);
    }
    json_t *unused = json_array();
    for (size_t i = 0; i < info.n_unused_tensors; i++)
        json_array_append_new(unused, json_string(mv_model_unused_tensor(model, i)));
    json_t *image = json_null();
    if (info.image_preprocessing)
        image = json_pack("{s:i, s:i, s:s}", "width", info.image_width, "height", info.image_height, "preprocessing",
                          info.image_preprocessing);
    json_t *root = json_pack("{s:s, s:s, s:i, s:i, s:o, s:o, s:I, s:s, s:o, s:o, s:o, s:b, s:s}", "family", info.family,
                             "layout", info.layout, "embedding_dim", info.embed_dim, "context_length",
                             info.context_length, "image_size",
                             info.image_size ? json_integer(info.image_size) : json_null(), "image", image,
                             "parameters", (json_int_t)info.n_params, "dtype", info.weights_dtype, "weights", files,
                             "weights_checksum", with_checksum ? json_string(checksum) : json_null(),
                             "unused_tensors", unused, "tiny_random_weights", info.tiny_random, "quant", info.quant);
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    mv_model_free(model);
    if (!text) {
        fprintf(stderr, "medvlp info: out of memory\n");
        return 1;
    }
    printf("%s\n", text);
    if (info.tiny_random)
        fprintf(stderr, "medvlp info: random weights, smoke tests only\n");
    free(text);
    return 0;
}
