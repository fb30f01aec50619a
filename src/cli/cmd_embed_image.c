/* cmd_embed_image.c — `medvlp embed-image -m DIR [--raw] FILE...`: one JSON array of floats per
 * image file (JSON Lines, in argument order). All-or-nothing: every file is read, decoded and
 * embedded before the first line is printed, so a bad file leaves no partial output behind. */
#include "cli/cli_model.h"
#include "cli/commands.h"
#include "medvlp/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Files mapped at a time: the model embeds them in batches of this size anyway. */
#define FILES_PER_CALL 16

static void usage(FILE *out)
{
    fprintf(out, "usage: medvlp embed-image -m DIR [--raw] [--max-pixels N] [--quant none|int8|fp16] FILE...\n\n"
                 "Prints one JSON array per FILE (JPEG or PNG), in argument order: the image's embedding in\n"
                 "the model's joint space, L2-normalised unless --raw. Images over N pixels (default 64 Mi)\n"
                 "are refused. If any file cannot be read, decoded or embedded, nothing is printed: the\n"
                 "message names the file and the exit status is 2 (bad input) or 1 (internal failure).\n"
                 "--quant int8 runs the encoder's matrix products in int8 (faster, cos >= 0.995 to fp32);\n"
                 "--quant fp16 stores its weights in half precision (half the memory).\n");
}

/* Embeds files[first, first+n) into out, mapping them only for the call. */
static int embed_files(mv_model *model, char **files, int n, int normalize, float *out)
{
    mv_mapped_file maps[FILES_PER_CALL];
    const void *bytes[FILES_PER_CALL] = {0};
    size_t sizes[FILES_PER_CALL] = {0};
    int n_mapped = 0, status = 0;
    mv_error err;
    for (; n_mapped < n; n_mapped++) {
        int rc = mv_file_map(files[n_mapped], &maps[n_mapped], &err);
        if (rc) {
            fprintf(stderr, "medvlp embed-image: %s\n", err.message);
            status = rc == MV_EIO || rc == MV_ENOTFOUND ? 2 : mv_status_exit_code(rc);
            break;
        }
        bytes[n_mapped] = maps[n_mapped].data;
        sizes[n_mapped] = maps[n_mapped].size;
    }
    if (!status) {
        int rc = mv_model_embed_image_bytes(model, bytes, sizes, (const char *const *)files, n, normalize, out, &err);
        if (rc) {
            fprintf(stderr, "medvlp embed-image: %s\n", err.message);
            status = mv_status_exit_code(rc);
        }
    }
    for (int i = 0; i < n_mapped; i++)
        mv_file_unmap(&maps[i]);
    return status;
}

static int print_all(const float *embeddings, char **files, int n_files, int dim)
{
    for (int f = 0; f < n_files; f++) {
        const float *e = embeddings + (size_t)f * dim;
        putchar('[');
        for (int i = 0; i < dim; i++) {
            if (e[i] != e[i] || e[i] - e[i] != 0.0f) {
                fprintf(stderr, "medvlp embed-image: %s: the embedding is not finite\n", files[f]);
                return 1;
            }
            printf(i ? ",%.9g" : "%.9g", (double)e[i]);  /* %.9g round-trips float32 */
        }
        fputs("]\n", stdout);
    }
    return fflush(stdout) ? 1 : 0;
}

int cmd_embed_image(int argc, char **argv)
{
    const char *dir = NULL;
    int normalize = 1, n_files = 0;
    mv_model_options options = {0};
    char **files = calloc((size_t)argc, sizeof *files);
    if (!files) {
        fprintf(stderr, "medvlp embed-image: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            free(files);
            return 0;
        } else if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--raw")) {
            normalize = 0;
        } else if (!strcmp(argv[i], "--max-pixels") && i + 1 < argc) {
            errno = 0;
            unsigned long long value = strtoull(argv[++i], &end, 10);
            if (errno || !*argv[i] || *end || value == 0) {
                fprintf(stderr, "medvlp embed-image: --max-pixels needs a positive integer, not '%s'\n", argv[i]);
                free(files);
                return 2;
            }
            options.max_pixels = value;
        } else if (!strcmp(argv[i], "--quant") && i + 1 < argc) {
            if (cli_parse_quant("embed-image", argv[++i], &options)) {
                free(files);
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "medvlp embed-image: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            free(files);
            return 2;
        } else {
            files[n_files++] = argv[i];
        }
    }
    if (!n_files) {
        fprintf(stderr, "medvlp embed-image: no image files\n");
        usage(stderr);
        free(files);
        return 2;
    }
    mv_model *model;
    int status = cli_open_model_with("embed-image", dir, &options, &model);
    if (status) {
        free(files);
        return status;
    }
    mv_model_info info;
    mv_model_get_info(model, &info);
    float *embeddings = NULL;
    if (!info.image_preprocessing) {
        fprintf(stderr, "medvlp embed-image: the %s model has no image tower\n", info.family);
        status = 2;
    } else if (!(embeddings = malloc((size_t)n_files * info.embed_dim * sizeof *embeddings))) {
        fprintf(stderr, "medvlp embed-image: out of memory for %d embeddings\n", n_files);
        status = 1;
    }
    for (int first = 0; !status && first < n_files; first += FILES_PER_CALL) {
        int n = n_files - first < FILES_PER_CALL ? n_files - first : FILES_PER_CALL;
        status = embed_files(model, files + first, n, normalize, embeddings + (size_t)first * info.embed_dim);
    }
    if (!status)
        status = print_all(embeddings, files, n_files, info.embed_dim);
    free(embeddings);
    free(files);
    mv_model_free(model);
    return status;
}
