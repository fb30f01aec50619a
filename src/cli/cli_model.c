/* cli_model.c — owns opening a model for the CLI and reporting what the load left unused. */
#include "cli/cli_model.h"

#include <stdio.h>
#include <stdlib.h>

/* Enough names to recognise what was skipped (an MLM head, a logit scale) without flooding. */
#define MAX_LISTED_UNUSED 8

int cli_open_model(const char *command, const char *dir, mv_model **out)
{
    return cli_open_model_with(command, dir, NULL, out);
}

int cli_parse_quant(const char *command, const char *value, mv_model_options *options)
{
    if (!mv_quant_parse(value, &options->quant))
        return 0;
    fprintf(stderr, "medvlp %s: --quant must be none, int8 or fp16, not '%s'\n", command, value);
    return 2;
}

int cli_open_model_with(const char *command, const char *dir, const mv_model_options *options, mv_model **out)
{
    if (!dir)
        dir = getenv("MEDVLP_MODEL");
    if (!dir) {
        fprintf(stderr, "medvlp %s: no model directory (-m DIR or MEDVLP_MODEL)\n", command);
        return 2;
    }
    mv_error err;
    int rc = mv_model_open(dir, options, out, &err);
    if (rc) {
        fprintf(stderr, "medvlp %s: %s\n", command, err.message);
        return mv_status_exit_code(rc);
    }
    mv_model_info info;
    mv_model_get_info(*out, &info);
    if (info.tiny_random)
        fprintf(stderr, "medvlp %s: warning: %s holds TINY RANDOM WEIGHTS: its embeddings are meaningless "
                "(smoke tests only)\n", command, dir);
    if (info.n_unused_tensors) {
        int one = info.n_unused_tensors == 1;
        fprintf(stderr, "medvlp %s: warning: %zu tensor%s in %s%s %s not used:", command, info.n_unused_tensors,
                one ? "" : "s", info.weights_path, info.n_weight_files > 1 ? " and the other weight files" : "",
                one ? "is" : "are");
        for (size_t i = 0; i < info.n_unused_tensors && i < MAX_LISTED_UNUSED; i++)
            fprintf(stderr, "%s %s", i ? "," : "", mv_model_unused_tensor(*out, i));
        fprintf(stderr, "%s\n", info.n_unused_tensors > MAX_LISTED_UNUSED ? ", ..." : "");
    }
    return 0;
}
