/* cmd_embed_text.c — `medvlp embed-text -m DIR [--raw]`: one text per stdin line in, one JSON array
 * of floats per line out (JSON Lines, input order). Lines are embedded in batches for throughput;
 * the output does not depend on the batching. */
#include "cli/cli_model.h"
#include "cli/commands.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_TEXTS 32

static void usage(FILE *out)
{
    fprintf(out, "usage: medvlp embed-text -m DIR [--raw] [--quant none|int8|fp16]\n\n"
                 "Reads one UTF-8 text per line on stdin and prints one JSON array per line: the text's\n"
                 "embedding in the model's joint space, L2-normalised unless --raw. Texts longer than the\n"
                 "model's context are cut (a warning names the line). --quant int8 runs the encoder's\n"
                 "matrix products in int8 (faster, cos >= 0.995 to fp32); --quant fp16 stores its weights in\n"
                 "half precision (half the memory; README).\n");
}

/* Full float precision: %.9g round-trips every float32. */
static int print_embedding(const float *embedding, int dim)
{
    putchar('[');
    for (int i = 0; i < dim; i++) {
        if (!isfinite(embedding[i]))
            return -1;
        printf(i ? ",%.9g" : "%.9g", (double)embedding[i]);
    }
    putchar(']');
    putchar('\n');
    return 0;
}

struct batch {
    char *texts[BATCH_TEXTS];
    size_t lens[BATCH_TEXTS];
    int n_texts;
    long first_line;
};

static void release(struct batch *b)
{
    for (int t = 0; t < b->n_texts; t++)
        free(b->texts[t]);
    b->first_line += b->n_texts;
    b->n_texts = 0;
}

static int embed_and_print(mv_model *model, const struct batch *b, int normalize, int dim, float *out)
{
    int truncated[BATCH_TEXTS];
    mv_error err;
    int rc = mv_model_embed_texts(model, (const char *const *)b->texts, b->lens, b->n_texts, normalize, out, NULL,
                                  truncated, &err);
    if (rc) {
        fprintf(stderr, "medvlp embed-text: lines %ld-%ld: %s\n", b->first_line, b->first_line + b->n_texts - 1,
                err.message);
        return mv_status_exit_code(rc);
    }
    for (int t = 0; t < b->n_texts; t++) {
        if (truncated[t])
            fprintf(stderr, "medvlp embed-text: warning: line %ld is longer than the context and was cut\n",
                    b->first_line + t);
        if (print_embedding(out + (size_t)t * dim, dim)) {
            fprintf(stderr, "medvlp embed-text: line %ld: the embedding is not finite\n", b->first_line + t);
            return 1;
        }
    }
    return fflush(stdout) ? 1 : 0;
}

/* Embeds and prints the pending lines, then lets them go whatever happened. */
static int flush(mv_model *model, struct batch *b, int normalize, int dim, float *out)
{
    int status = b->n_texts ? embed_and_print(model, b, normalize, dim, out) : 0;
    release(b);
    return status;
}

int cmd_embed_text(int argc, char **argv)
{
    const char *dir = NULL;
    int normalize = 1;
    mv_model_options options = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--raw")) {
            normalize = 0;
        } else if (!strcmp(argv[i], "--quant") && i + 1 < argc) {
            if (cli_parse_quant("embed-text", argv[++i], &options))
                return 2;
        } else {
            fprintf(stderr, "medvlp embed-text: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    mv_model *model;
    int status = cli_open_model_with("embed-text", dir, &options, &model);
    if (status)
        return status;
    mv_model_info info;
    mv_model_get_info(model, &info);
    float *out = malloc((size_t)BATCH_TEXTS * info.embed_dim * sizeof *out);
    struct batch b = {.first_line = 1};
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    if (!out) {
        fprintf(stderr, "medvlp embed-text: out of memory\n");
        status = 1;
    }
    while (!status && (len = getline(&line, &line_cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        b.texts[b.n_texts] = line;
        b.lens[b.n_texts++] = (size_t)len;
        line = NULL;
        line_cap = 0;
        if (b.n_texts == BATCH_TEXTS)
            status = flush(model, &b, normalize, info.embed_dim, out);
    }
    if (!status)
        status = flush(model, &b, normalize, info.embed_dim, out);
    release(&b);
    free(line);
    free(out);
    mv_model_free(model);
    return status;
}
