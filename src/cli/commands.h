/* commands.h — one entry point per `medvlp` subcommand; argv[0] is the subcommand name. */
#ifndef MEDVLP_CLI_COMMANDS_H
#define MEDVLP_CLI_COMMANDS_H

int cmd_tokenize(int argc, char **argv);
int cmd_embed_text(int argc, char **argv);
int cmd_embed_image(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_search(int argc, char **argv);

#endif
