/* cmd_index.c — the index commands: `medvlp index build` (argv to include/medvlp/index_build.h,
 * summary as JSON on stdout) and `medvlp search` (one query against an index directory, printing
 * exactly the JSON of POST /search, built by the same library function as medvlpd's). */
#include "cli/cli_model.h"
#include "cli/commands.h"
#include "medvlp/file.h"
#include "medvlp/index_build.h"
#include "medvlp/search.h"
#include "medvlp/tensor.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUERY_IMAGE_BYTES ((size_t)256 << 20)

/* Parses text as an integer in min..max for flag; prints the error itself. 1 on success. */
static int parse_int(const char *command, const char *flag, const char *text, long long min, long long max,
                     long long *out)
{
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno || !*text || *end || value < min || value > max) {
        fprintf(stderr, "medvlp %s: %s needs an integer in %lld..%lld, not '%s'\n", command, flag, min, max, text);
        return 0;
    }
    *out = value;
    return 1;
}

static int parse_seconds(const char *flag, const char *text, double *out)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || !*text || *end || !(value > 0 && value < 1e6)) {
        fprintf(stderr, "medvlp index build: %s needs a positive number of seconds, not '%s'\n", flag, text);
        return 0;
    }
    *out = value;
    return 1;
}

static void build_usage(FILE *out)
{
    fprintf(out,
            "usage: medvlp index build -m DIR -o INDEX_DIR (--images DIR | --pairs CSV) [options]\n\n"
            "Embeds images (and, for pairs, their reports) with the model and adds them to the index\n"
            "directory INDEX_DIR, created when it holds no index yet. A rerun continues an interrupted\n"
            "build: inputs already in the index are not redone. Unreadable or undecodable inputs are\n"
            "skipped with a warning and counted. A summary is printed as JSON on stdout.\n\n"
            "  --images DIR          every .jpg/.jpeg/.png under DIR, recursively (no captions)\n"
            "  --pairs CSV           ConVIRT-style CSV with a header row; each row gives an image\n"
            "                        vector and a caption vector\n"
            "  --img-col NAME        column of image paths (name or 0-based number; default image)\n"
            "  --text-col NAME       column of report texts (default text)\n"
            "  --text-from-files     the text column holds paths of text files\n"
            "  --img-root DIR        prefix of relative image paths (default: the CSV's folder)\n"
            "  --text-root DIR       prefix of relative text-file paths (default: the CSV's folder)\n"
            "  --factory F           FAISS factory of a new index (default Flat under 50000 inputs,\n"
            "                        else HNSW32; IVF/PQ factories are trained on the first vectors)\n"
            "  --train-size N        vectors to train IVF/PQ on (default 100000)\n"
            "  --ef-construction N   HNSW graph quality of a new index (default 100; higher: better\n"
            "                        recall at a given --ef-search, slower build)\n"
            "  --batch N             inputs per model call (default 32)\n"
            "  --limit N             stop after N new inputs (a later run continues)\n"
            "  --threads N           compute threads\n"
            "  --quant Q             encoder weights: none (default), int8 (faster) or fp16 (half\n"
            "                        the memory); README\n"
            "  --progress-interval S seconds between progress reports\n"
            "  --quiet               no progress and no warnings\n");
}

static void print_summary(const mv_build_summary *s)
{
    printf("{\"inputs\":%lld,\"added\":%lld,\"skipped\":%lld,\"already\":%lld,\"left\":%lld,"
           "\"vectors\":{\"images\":%lld,\"captions\":%lld},\"seconds\":%.3f}\n",
           s->total, s->added, s->skipped, s->already, s->left, s->vectors[0], s->vectors[1], s->seconds);
    fflush(stdout);
}

static int cmd_index_build(int argc, char **argv)
{
    const char *model_dir = NULL, *index_dir = NULL, *images_dir = NULL, *pairs_csv = NULL;
    mv_pairs_options pairs = {0};
    mv_build_options options = {.log = stderr, .progress_redraw = isatty(STDERR_FILENO)};
    mv_model_options model_options = {0};
    long long value;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        int takes_value = 1;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            build_usage(stdout);
            return 0;
        } else if (!strcmp(arg, "--text-from-files")) {
            pairs.text_from_files = 1;
            takes_value = 0;
        } else if (!strcmp(arg, "--quiet")) {
            options.log = NULL;
            takes_value = 0;
        } else if (!next) {
            fprintf(stderr, "medvlp index build: %s '%s'\n", arg[0] == '-' ? "missing value after" : "unexpected argument", arg);
            build_usage(stderr);
            return 2;
        } else if (!strcmp(arg, "-m") || !strcmp(arg, "--model")) {
            model_dir = next;
        } else if (!strcmp(arg, "-o") || !strcmp(arg, "--output")) {
            index_dir = next;
        } else if (!strcmp(arg, "--images")) {
            images_dir = next;
        } else if (!strcmp(arg, "--pairs")) {
            pairs_csv = next;
        } else if (!strcmp(arg, "--img-col")) {
            pairs.img_col = next;
        } else if (!strcmp(arg, "--text-col")) {
            pairs.text_col = next;
        } else if (!strcmp(arg, "--img-root")) {
            pairs.img_root = next;
        } else if (!strcmp(arg, "--text-root")) {
            pairs.text_root = next;
        } else if (!strcmp(arg, "--factory")) {
            options.factory = next;
        } else if (!strcmp(arg, "--batch")) {
            if (!parse_int("index build", arg, next, 1, 4096, &value))
                return 2;
            options.batch = (int)value;
        } else if (!strcmp(arg, "--limit")) {
            if (!parse_int("index build", arg, next, 1, (long long)1 << 50, &options.limit))
                return 2;
        } else if (!strcmp(arg, "--ef-construction")) {
            if (!parse_int("index build", arg, next, 1, 100000, &value))
                return 2;
            options.ef_construction = (int)value;
        } else if (!strcmp(arg, "--train-size")) {
            if (!parse_int("index build", arg, next, 1, (long long)1 << 40, &options.train_size))
                return 2;
        } else if (!strcmp(arg, "--threads")) {
            if (!parse_int("index build", arg, next, 1, 1024, &value))
                return 2;
            model_options.n_threads = (int)value;
        } else if (!strcmp(arg, "--quant")) {
            if (cli_parse_quant("index build", next, &model_options))
                return 2;
        } else if (!strcmp(arg, "--progress-interval")) {
            if (!parse_seconds(arg, next, &options.progress_interval_s))
                return 2;
        } else {
            fprintf(stderr, "medvlp index build: unexpected argument '%s'\n", arg);
            build_usage(stderr);
            return 2;
        }
        i += takes_value;
    }
    const char *problem = !index_dir ? "no index directory (-o INDEX_DIR)"
                        : !images_dir == !pairs_csv ? "give exactly one of --images DIR and --pairs CSV"
                        : images_dir && (pairs.img_col || pairs.text_col || pairs.img_root || pairs.text_root ||
                                         pairs.text_from_files) ? "--img-col, --text-col, --text-from-files, "
                                                                  "--img-root and --text-root go with --pairs"
                        : pairs.text_root && !pairs.text_from_files ? "--text-root goes with --text-from-files"
                        : NULL;
    if (problem) {
        fprintf(stderr, "medvlp index build: %s\n", problem);
        build_usage(stderr);
        return 2;
    }
    mv_error err;
    mv_build_inputs inputs;
    int rc = images_dir ? mv_build_list_images(images_dir, &inputs, &err)
                        : mv_build_list_pairs(pairs_csv, &pairs, &inputs, &err);
    if (rc) {
        fprintf(stderr, "medvlp index build: %s\n", err.message);
        return mv_status_exit_code(rc);
    }
    mv_model *model;
    int status = cli_open_model_with("index build", model_dir, &model_options, &model);
    if (!status) {
        mv_build_summary summary;
        rc = mv_build_index(model, index_dir, &inputs, &options, &summary, &err);
        if (rc) {
            fprintf(stderr, "medvlp index build: %s\n", err.message);
            status = mv_status_exit_code(rc);
        } else {
            print_summary(&summary);
        }
        mv_model_free(model);
    }
    mv_build_inputs_free(&inputs);
    return status;
}

int cmd_index(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "build"))
        return cmd_index_build(argc - 1, argv + 1);
    FILE *out = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout : stderr;
    if (out == stderr)
        fprintf(stderr, "medvlp index: %s\n", argc < 2 ? "missing subcommand" : "unknown subcommand");
    build_usage(out);
    return out == stdout ? 0 : 2;
}

/* ---- search ---- */

static void search_usage(FILE *out)
{
    fprintf(out, "usage: medvlp search -m DIR -i INDEX_DIR (--text T | --image FILE | --embedding JSON)\n"
                 "                     [-k K] [--target images|captions] [--quant none|int8|fp16]\n"
                 "                     [--ef-search N] [--nprobe N] [--refine-k-factor N]\n\n"
                 "Prints the k (default 10, 1..1000) nearest items of the index by cosine similarity as the\n"
                 "JSON of POST /search. --target defaults to images for a text and captions for an image;\n"
                 "it is required with --embedding (a JSON array of the model's dimension).\n"
                 "Approximate indexes trade recall for speed with the same settings as medvlpd: --ef-search\n"
                 "(HNSW, default 128), --nprobe (IVF, default 16), --refine-k-factor (',RFlat' and\n"
                 "',Refine(...)' factories, default 64).\n");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* The query vector from --embedding JSON: exactly dim numbers. */
static int parse_embedding(const char *text, int dim, float *query, mv_error *err)
{
    json_error_t error;
    json_t *array = json_loads(text, JSON_DECODE_ANY, &error);
    int status = MV_OK;
    if (!array)
        status = mv_fail(err, MV_EINPUT, "--embedding: not JSON: %s", error.text);
    else if (!json_is_array(array) || json_array_size(array) != (size_t)dim)
        status = mv_fail(err, MV_EINPUT, "--embedding must be an array of %d numbers (the model's dimension)", dim);
    for (int d = 0; !status && d < dim; d++) {
        json_t *number = json_array_get(array, (size_t)d);
        if (!json_is_number(number))
            status = mv_fail(err, MV_EINPUT, "--embedding[%d] is not a number", d);
        else
            query[d] = (float)json_number_value(number);
    }
    json_decref(array);
    return status;
}

/* The query vector, L2-normalised the way medvlpd does it (raw embedding, then the same
 * normalisation) so that both print the same scores. */
static int embed_query(mv_model *model, const char *text, const char *image_path, const char *embedding, int dim,
                       float *query, mv_error *err)
{
    int status;
    if (embedding) {
        status = parse_embedding(embedding, dim, query, err);
    } else if (text) {
        status = mv_model_embed_texts(model, &text, NULL, 1, 0, query, NULL, NULL, err);
    } else {
        char *bytes;
        size_t n;
        status = mv_file_read_all(image_path, MAX_QUERY_IMAGE_BYTES, &bytes, &n, err);
        if (status)
            return status == MV_EIO ? (err->code = MV_EINPUT) : status;
        const void *one = bytes;
        status = mv_model_embed_image_bytes(model, &one, &n, &image_path, 1, 0, query, err);
        free(bytes);
    }
    if (!status)
        mv_l2_normalize_rows(query, 1, dim);
    return status;
}

static int run_search(mv_model *model, const char *index_dir, const mv_index_options *index_options,
                      const char *text, const char *image_path, const char *embedding, int k, int target,
                      mv_error *err)
{
    mv_model_info info;
    mv_model_get_info(model, &info);
    double t_start = now_ms();
    mv_index *index = NULL;
    float *query = malloc(sizeof *query * (size_t)info.embed_dim);
    mv_search_hit *hits = calloc((size_t)k, sizeof *hits);
    int n_hits = 0, status = query && hits ? MV_OK : mv_fail(err, MV_ENOMEM, "out of memory");
    if (!status)
        status = embed_query(model, text, image_path, embedding, info.embed_dim, query, err);
    if (!status)
        status = mv_index_open_for_model(model, index_dir, index_options, 0, stderr, "medvlp search: warning: ",
                                         NULL, &index, err);
    if (!status)
        status = mv_search_index(index, target, query, k, NULL, hits, &n_hits, err);
    if (!status) {
        json_t *response = mv_search_response(target, k, hits, n_hits, now_ms() - t_start);
        char *json = response ? json_dumps(response, MV_SEARCH_JSON_FLAGS) : NULL;
        json_decref(response);
        if (!json || printf("%s\n", json) < 0 || fflush(stdout))
            status = mv_fail(err, json ? MV_EIO : MV_ENOMEM, "cannot write the results");
        free(json);
    }
    for (int i = 0; i < k && hits; i++)
        free(hits[i].metadata_json);
    free(hits);
    free(query);
    if (index)
        mv_index_close(index);
    return status;
}

int cmd_search(int argc, char **argv)
{
    const char *model_dir = NULL, *index_dir = NULL, *text = NULL, *image_path = NULL, *embedding = NULL,
               *target_name = NULL;
    long long k = 10, ef_search = 0, nprobe = 0, refine_k_factor = 0;
    mv_model_options model_options = {0};
    /* Every option but --help takes a value: they come in pairs. */
    for (int i = 1; i < argc; i += 2) {
        const char *arg = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            search_usage(stdout);
            return 0;
        } else if (!next) {
            fprintf(stderr, "medvlp search: %s '%s'\n", arg[0] == '-' ? "missing value after" : "unexpected argument", arg);
            search_usage(stderr);
            return 2;
        } else if (!strcmp(arg, "-m") || !strcmp(arg, "--model")) {
            model_dir = next;
        } else if (!strcmp(arg, "-i") || !strcmp(arg, "--index")) {
            index_dir = next;
        } else if (!strcmp(arg, "--text")) {
            text = next;
        } else if (!strcmp(arg, "--image")) {
            image_path = next;
        } else if (!strcmp(arg, "--embedding")) {
            embedding = next;
        } else if (!strcmp(arg, "-k")) {
            if (!parse_int("search", arg, next, 1, MV_INDEX_MAX_K, &k))
                return 2;
        } else if (!strcmp(arg, "--target")) {
            target_name = next;
        } else if (!strcmp(arg, "--ef-search")) {
            if (!parse_int("search", arg, next, 1, 100000, &ef_search))
                return 2;
        } else if (!strcmp(arg, "--nprobe")) {
            if (!parse_int("search", arg, next, 1, 1000000, &nprobe))
                return 2;
        } else if (!strcmp(arg, "--refine-k-factor")) {
            if (!parse_int("search", arg, next, 1, 1000, &refine_k_factor))
                return 2;
        } else if (!strcmp(arg, "--quant")) {
            if (cli_parse_quant("search", next, &model_options))
                return 2;
        } else {
            fprintf(stderr, "medvlp search: unexpected argument '%s'\n", arg);
            search_usage(stderr);
            return 2;
        }
    }
    /* Defaults cross modalities, as in POST /search: a text finds images, an image finds captions. */
    int target = target_name ? mv_index_target_parse(target_name) : image_path ? MV_INDEX_CAPTIONS : MV_INDEX_IMAGES;
    const char *problem = !index_dir ? "no index directory (-i INDEX_DIR)"
                        : !!text + !!image_path + !!embedding != 1 ? "give exactly one query: --text, --image or --embedding"
                        : target < 0 ? "--target must be images or captions"
                        : embedding && !target_name ? "--target (images or captions) is required with --embedding"
                        : NULL;
    if (problem) {
        fprintf(stderr, "medvlp search: %s\n", problem);
        search_usage(stderr);
        return 2;
    }
    mv_model *model;
    int status = cli_open_model_with("search", model_dir, &model_options, &model);
    if (status)
        return status;
    mv_error err;
    mv_index_options index_options = {.ef_search = (int)ef_search, .nprobe = (int)nprobe,
                                      .refine_k_factor = (int)refine_k_factor};
    int rc = run_search(model, index_dir, &index_options, text, image_path, embedding, (int)k, target, &err);
    if (rc) {
        fprintf(stderr, "medvlp search: %s\n", err.message);
        status = mv_status_exit_code(rc);
    }
    mv_model_free(model);
    return status;
}
