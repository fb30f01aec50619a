/* main.c — the `medvlp` command: dispatches to one function per subcommand (src/cli/cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "medvlp/tensor.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"tokenize", cmd_tokenize, "WordPiece token ids of each stdin line (JSON Lines)"},
    {"embed-text", cmd_embed_text, "embed each stdin line into the joint space (JSON Lines)"},
    {"embed-image", cmd_embed_image, "embed JPEG/PNG files into the joint space (JSON Lines)"},
    {"info", cmd_info, "describe a model directory (JSON)"},
    {"preprocess", cmd_preprocess, "write the model-input tensor of an image (float32 CHW)"},
    {"score", cmd_score, "score a text against an image (JSON: global, local, combined)"},
    {"index", cmd_index, "index build: embed images or image/report pairs into an index directory"},
    {"search", cmd_search, "the nearest images or captions of a query in an index (JSON)"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: medvlp COMMAND [options]\n\ncommands:\n");
    for (const struct command *c = commands; c->name; c++)
        fprintf(out, "  %-12s %s\n", c->name, c->summary);
    fprintf(out, "\n'medvlp COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv)
{
    mv_blas_select_kernels(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (const struct command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name))
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "medvlp: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
