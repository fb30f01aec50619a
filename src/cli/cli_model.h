/* cli_model.h — what every model-using subcommand shares: opening -m DIR with load warnings. */
#ifndef MEDVLP_CLI_MODEL_H
#define MEDVLP_CLI_MODEL_H

#include "medvlp/model.h"

/* Opens the model directory (dir, else $MEDVLP_MODEL). Prints warnings to stderr (random tiny
 * weights, unused tensors).
 * On failure prints "medvlp COMMAND: message" and returns the CLI exit status (2 or 1); 0 on success. */
int cli_open_model(const char *command, const char *dir, mv_model **out);
/* The same with model options (pixel limit, threads); options may be NULL. */
int cli_open_model_with(const char *command, const char *dir, const mv_model_options *options, mv_model **out);
/* `--quant VALUE` into options->quant; returns 0, or prints "medvlp COMMAND: ..." and returns 2. */
int cli_parse_quant(const char *command, const char *value, mv_model_options *options);

#endif
