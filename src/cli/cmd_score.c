/* cmd_score.c — `medvlp score -m DIR --text T --image FILE`: how well one text matches one image.
 * Prints one JSON object: {"global": cosine, "local": GLoRIA's word–region score or null,
 * "combined": (local + global) / 2 for GLoRIA, else the cosine}. Scoring: include/medvlp/score.h. */
#include "cli/cli_model.h"
#include "cli/commands.h"
#include "medvlp/file.h"
#include "medvlp/score.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: medvlp score -m DIR --text TEXT --image FILE\n\n"
                 "Prints {\"global\", \"local\", \"combined\"} for the pair: global is the cosine of the text\n"
                 "and image embeddings; for GLoRIA, local is its word-region attention score and combined\n"
                 "(local + global) / 2 (the paper's zero-shot score before its per-class z-score); other\n"
                 "models have local null and combined = global.\n");
}

static int fail(int rc, const mv_error *err)
{
    fprintf(stderr, "medvlp score: %s\n", err->message);
    return rc == MV_EIO || rc == MV_ENOTFOUND ? 2 : mv_status_exit_code(rc);
}

static int print_score(const mv_pair_score *score)
{
    json_t *out = json_object();
    json_object_set_new(out, "global", json_real(score->global));
    json_object_set_new(out, "local", score->has_local ? json_real(score->local) : json_null());
    json_object_set_new(out, "combined", json_real(score->combined));
    char *text = json_dumps(out, JSON_REAL_PRECISION(9));
    json_decref(out);
    if (!text) {
        fprintf(stderr, "medvlp score: out of memory\n");
        return 1;
    }
    puts(text);
    free(text);
    return fflush(stdout) ? 1 : 0;
}

int cmd_score(int argc, char **argv)
{
    const char *dir = NULL, *text = NULL, *image_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--text") && i + 1 < argc) {
            text = argv[++i];
        } else if (!strcmp(argv[i], "--image") && i + 1 < argc) {
            image_path = argv[++i];
        } else {
            fprintf(stderr, "medvlp score: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!text || !image_path) {
        fprintf(stderr, "medvlp score: needs --text and --image\n");
        usage(stderr);
        return 2;
    }
    mv_error err = {0};
    mv_mapped_file file;
    int rc = mv_file_map(image_path, &file, &err);
    if (rc)
        return fail(rc, &err);
    mv_image image;
    rc = mv_image_decode(file.data, file.size, image_path, NULL, &image, &err);
    mv_file_unmap(&file);
    if (rc)
        return fail(rc, &err);
    mv_model *model;
    int status = cli_open_model("score", dir, &model);
    if (status) {
        mv_image_free(&image);
        return status;
    }
    mv_pair_score score;
    rc = mv_model_score_pair(model, text, strlen(text), &image, &score, &err);
    status = rc ? fail(rc, &err) : print_score(&score);
    mv_image_free(&image);
    mv_model_free(model);
    return status;
}
