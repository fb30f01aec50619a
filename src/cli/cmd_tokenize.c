/* cmd_tokenize.c — `medvlp tokenize`: WordPiece ids of each stdin line, one JSON array per line. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "medvlp/tokenizer.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: medvlp tokenize (-m DIR | --vocab FILE [--cased]) [--max-len N]\n\n"
            "Reads UTF-8 lines on stdin and prints one JSON array of token ids per line:\n"
            "[CLS] pieces [SEP], equal to Hugging Face BertTokenizer for the same vocab and casing.\n\n"
            "  -m, --model DIR   model directory: DIR/vocab.txt, DIR/tokenizer_config.json; context length\n"
            "                    from open_clip_config.json, else config.json, else 512\n"
            "  --vocab FILE      a vocab.txt (lowercasing on, like BertTokenizer's default)\n"
            "  --cased           with --vocab: no lowercasing, no accent stripping\n"
            "  --max-len N       at most N ids per line (default: the model's context length, 512 with --vocab)\n"
            "  -h, --help        this help\n");
}

static int parse_max_len(const char *arg, int *max_len)
{
    char *end;
    errno = 0;
    long value = strtol(arg, &end, 10);
    if (errno || *end || end == arg || value < 2 || value > 1 << 20)
        return 0;
    *max_len = (int)value;
    return 1;
}

static int tokenize_stdin(const mv_tokenizer *tok, int max_len)
{
    int32_t *ids = malloc(sizeof *ids * (size_t)max_len);
    if (!ids) {
        fprintf(stderr, "medvlp tokenize: out of memory\n");
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long line_no = 0;
    int exit_code = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        line_no++;
        if (n > 0 && line[n - 1] == '\n')
            n--;
        int n_ids = 0;
        mv_error err = {0};
        int status = mv_tokenizer_encode(tok, line, (size_t)n, max_len, ids, &n_ids, NULL, &err);
        if (status != MV_OK) {
            fprintf(stderr, "medvlp tokenize: stdin line %ld: %s\n", line_no, err.message);
            exit_code = mv_status_exit_code(status);
            break;
        }
        putchar('[');
        for (int i = 0; i < n_ids; i++)
            printf(i ? ",%d" : "%d", (int)ids[i]);
        fputs("]\n", stdout);
    }
    free(line);
    free(ids);
    if (fflush(stdout) != 0 && !exit_code) {
        fprintf(stderr, "medvlp tokenize: writing stdout: %s\n", strerror(errno));
        exit_code = 1;
    }
    return exit_code;
}

int cmd_tokenize(int argc, char **argv)
{
    enum { OPT_VOCAB = 256, OPT_CASED, OPT_MAX_LEN };
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'}, {"vocab", required_argument, NULL, OPT_VOCAB},
        {"cased", no_argument, NULL, OPT_CASED}, {"max-len", required_argument, NULL, OPT_MAX_LEN},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *model_dir = NULL, *vocab_path = NULL;
    int cased = 0, max_len = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:h", options, NULL)) != -1) {
        switch (opt) {
        case 'm': model_dir = optarg; break;
        case OPT_VOCAB: vocab_path = optarg; break;
        case OPT_CASED: cased = 1; break;
        case OPT_MAX_LEN:
            if (!parse_max_len(optarg, &max_len)) {
                fprintf(stderr, "medvlp tokenize: --max-len must be an integer >= 2, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || !model_dir == !vocab_path || (cased && !vocab_path)) {
        fprintf(stderr, "medvlp tokenize: give exactly one of -m DIR or --vocab FILE (--cased only with --vocab)\n");
        usage(stderr);
        return 2;
    }
    mv_tokenizer *tok = NULL;
    mv_error err = {0};
    int context_length = 512, status;
    if (model_dir) {
        status = mv_tokenizer_open_dir(model_dir, &tok, &context_length, &err);
    } else {
        mv_tokenizer_config cfg;
        mv_tokenizer_config_default(&cfg);
        cfg.do_lower_case = !cased;
        status = mv_tokenizer_load(vocab_path, &cfg, &tok, &err);
    }
    if (status != MV_OK) {
        fprintf(stderr, "medvlp tokenize: %s\n", err.message);
        return mv_status_exit_code(status);
    }
    int exit_code = tokenize_stdin(tok, max_len ? max_len : context_length);
    mv_tokenizer_free(tok);
    return exit_code;
}
