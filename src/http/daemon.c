/* daemon.c — the process around the HTTP server: flags and MEDVLP_* environment, API key file,
 * startup (listen, then load, then ready), and the SIGTERM sequence (stop accepting, drain,
 * persist, exit 0). The backend comes from a loader so that medvlpd and test daemons share all of it. */
#include "medvlp/http.h"
#include "medvlp/file.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DRAIN_TIMEOUT_MS 30000

/* The write end of the stop pipe, for the signal handler: the one piece of state a handler can
 * reach. Libraries (OpenBLAS, OpenMP) start threads before main, so signals cannot simply be
 * blocked and sigwait'ed; the handler may run on any thread and only writes the signal number. */
static int stop_pipe_write = -1;

static void on_stop_signal(int signal_number)
{
    unsigned char byte = (unsigned char)signal_number;
    if (write(stop_pipe_write, &byte, 1) < 0) {
        /* nothing more can be done inside a signal handler */
    }
}

typedef struct settings {
    mv_http_config http;
    mv_daemon_options daemon;
    const char *api_key_file;
    const char *log_format;
} settings;

enum kind { STRING, INT, SIZE };

static const struct flag {
    const char *name;   /* long flag without "--"; env is MEDVLP_ + upper-cased name with '-' -> '_' */
    char short_name;
    enum kind kind;
    long long min, max;
    const char *help;
} flags[] = {
    {"model", 'm', STRING, 0, 0, "DIR     model directory (required)"},
    {"index", 'i', STRING, 0, 0, "DIR     index directory (enables /search and /index)"},
    {"ef-search", 0, INT, 1, 100000, "N  HNSW indexes: candidates explored per query (default 128)"},
    {"nprobe", 0, INT, 1, 1000000, "N  IVF indexes: inverted lists scanned per query (default 16)"},
    {"refine-k-factor", 0, INT, 1, 1000, "N  ',RFlat'/',Refine(...)' indexes: k*N candidates re-ranked (default 64)"},
    {"listen", 0, STRING, 0, 0, "HOST:PORT  address to serve (default 127.0.0.1:8080; port 0 = any free)"},
    {"threads", 0, INT, 0, 1024, "N     compute threads for the model (default: all cores)"},
    {"max-batch", 0, INT, 1, 4096, "N   items per batched encoder call (default 32)"},
    {"max-wait-us", 0, INT, 0, 10000000, "US  wait for more requests after the first of a batch (default 2000)"},
    {"max-body", 0, SIZE, 1, (long long)1 << 40, "BYTES  request body limit, K/M/G suffixes (default 32M)"},
    {"max-pixels", 0, SIZE, 1, (long long)1 << 40, "N  decoded image limit (default 64M pixels)"},
    {"max-batch-texts", 0, INT, 1, 100000, "N  texts or images per request (default 256)"},
    {"max-queue", 0, INT, 1, 1000000, "N  requests waiting per encoder before 503 (default 1024)"},
    {"max-connections", 0, INT, 1, 100000, "N  open connections (default 1024)"},
    {"timeout", 0, INT, 1, 3600, "S  idle connection timeout in seconds (default 60)"},
    {"api-key-file", 0, STRING, 0, 0, "FILE  require 'Authorization: Bearer KEY' (KEY = the file's first line)"},
    {"log-format", 0, STRING, 0, 0, "json|text  access log format on stderr (default json)"},
    {"quant", 0, STRING, 0, 0, "none|int8|fp16  encoder weights in int8 (faster, cos >= 0.995 to fp32) or fp16 (half the memory) (default none)"},
};
#define N_FLAGS (sizeof flags / sizeof flags[0])

static void usage(FILE *out, const char *program)
{
    fprintf(out, "usage: %s -m MODEL_DIR [-i INDEX_DIR] [options]\n\n"
                 "Serves embeddings and retrieval over HTTP (see SPEC.md for the API).\n"
                 "Every flag can also be set as an environment variable MEDVLP_<NAME> (e.g.\n"
                 "MEDVLP_MAX_BATCH=64); flags win over the environment.\n\noptions:\n", program);
    for (size_t i = 0; i < N_FLAGS; i++) {
        if (flags[i].short_name)
            fprintf(out, "  -%c, --%s %s\n", flags[i].short_name, flags[i].name, flags[i].help);
        else
            fprintf(out, "  --%s %s\n", flags[i].name, flags[i].help);
    }
    fprintf(out, "  -h, --help   this text\n\n"
                 "With --api-key-file, every route but /healthz, /readyz and the portal page (/, /portal.js,\n"
                 "/portal.css) needs the key, /metrics included.\n"
                 "SIGTERM or SIGINT: stop accepting, answer requests in flight, persist the index, exit 0.\n");
}

/* Parses "123", "32M", "1G" (binary multiples). */
static int parse_number(const char *text, enum kind kind, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || errno)
        return 0;
    if (kind == SIZE && *end) {
        int shift = 0;
        switch (toupper((unsigned char)*end)) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        default: return 0;
        }
        end++;
        if (*end == 'i' || *end == 'B')
            end += *end == 'i' ? (end[1] == 'B' ? 2 : 1) : 1;
        if (v > (1LL << 40) >> shift)
            return 0;
        v <<= shift;
    }
    if (*end)
        return 0;
    *out = v;
    return 1;
}

static int apply(settings *s, const struct flag *f, const char *value, const char *source, mv_error *err)
{
    if (f->kind == STRING) {
        if (!*value)
            return mv_fail(err, MV_EINPUT, "%s: empty value", source);
        if (!strcmp(f->name, "model")) s->daemon.model_dir = value;
        else if (!strcmp(f->name, "index")) s->daemon.index_dir = value;
        else if (!strcmp(f->name, "listen")) s->http.listen = value;
        else if (!strcmp(f->name, "api-key-file")) s->api_key_file = value;
        else if (!strcmp(f->name, "log-format")) {
            if (strcmp(value, "json") && strcmp(value, "text"))
                return mv_fail(err, MV_EINPUT, "%s: '%s' is not json or text", source, value);
            s->log_format = value;
        } else if (!strcmp(f->name, "quant") && mv_quant_parse(value, &s->daemon.quant)) {
            return mv_fail(err, MV_EINPUT, "%s: '%s' is not none or int8", source, value);
        }
        return MV_OK;
    }
    long long v;
    if (!parse_number(value, f->kind, &v) || v < f->min || v > f->max)
        return mv_fail(err, MV_EINPUT, "%s: '%s' is not a number in %lld..%lld", source, value, f->min, f->max);
    if (!strcmp(f->name, "threads")) s->daemon.n_threads = (int)v;
    else if (!strcmp(f->name, "max-batch")) s->http.max_batch = (int)v;
    else if (!strcmp(f->name, "max-wait-us")) s->http.max_wait_us = (int)v;
    else if (!strcmp(f->name, "max-body")) s->http.max_body = (size_t)v;
    else if (!strcmp(f->name, "max-pixels")) s->daemon.max_pixels = (uint64_t)v;
    else if (!strcmp(f->name, "ef-search")) s->daemon.ef_search = (int)v;
    else if (!strcmp(f->name, "nprobe")) s->daemon.nprobe = (int)v;
    else if (!strcmp(f->name, "refine-k-factor")) s->daemon.refine_k_factor = (int)v;
    else if (!strcmp(f->name, "max-batch-texts")) s->http.max_batch_texts = (int)v;
    else if (!strcmp(f->name, "max-queue")) s->http.queue_capacity = (int)v;
    else if (!strcmp(f->name, "max-connections")) s->http.max_connections = (int)v;
    else if (!strcmp(f->name, "timeout")) s->http.connection_timeout_s = (int)v;
    return MV_OK;
}

/* Environment first, then flags over it. Returns 1 when --help was asked. */
static int parse_settings(settings *s, int argc, char **argv, mv_error *err)
{
    for (size_t i = 0; i < N_FLAGS; i++) {
        char env[64] = "MEDVLP_";
        size_t at = strlen(env);
        for (const char *c = flags[i].name; *c && at + 1 < sizeof env; c++)
            env[at++] = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
        env[at] = '\0';
        const char *value = getenv(env);
        if (value && apply(s, &flags[i], value, env, err))
            return -1;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help"))
            return 1;
        const struct flag *f = NULL;
        const char *value = NULL;
        for (size_t i = 0; i < N_FLAGS && !f; i++) {
            size_t n = strlen(flags[i].name);
            if (arg[0] == '-' && arg[1] == flags[i].short_name && flags[i].short_name && !arg[2])
                f = &flags[i];
            else if (!strncmp(arg, "--", 2) && !strncmp(arg + 2, flags[i].name, n) &&
                     (arg[2 + n] == '\0' || arg[2 + n] == '=')) {
                f = &flags[i];
                if (arg[2 + n] == '=')
                    value = arg + 3 + n;
            }
        }
        if (!f)
            return mv_fail(err, MV_EINPUT, "unknown argument '%s' (see --help)", arg), -1;
        if (!value) {
            if (a + 1 == argc)
                return mv_fail(err, MV_EINPUT, "%s needs a value", arg), -1;
            value = argv[++a];
        }
        if (apply(s, f, value, arg, err))
            return -1;
    }
    return 0;
}

/* The key is the file's first line without surrounding whitespace; an empty key is refused. */
static int read_api_key(const char *path, char **key, mv_error *err)
{
    char *text;
    size_t n;
    int status = mv_file_read_all(path, 4096, &text, &n, err);
    if (status)
        return mv_error_prefix(err, "--api-key-file");
    size_t start = 0, end = 0;
    while (start < n && isspace((unsigned char)text[start]))
        start++;
    end = start;
    while (end < n && text[end] != '\n' && text[end] != '\r')
        end++;
    while (end > start && isspace((unsigned char)text[end - 1]))
        end--;
    if (end == start) {
        free(text);
        return mv_fail(err, MV_EINPUT, "--api-key-file %s: the key is empty", path);
    }
    memmove(text, text + start, end - start);
    text[end - start] = '\0';
    *key = text;
    return MV_OK;
}

int mv_daemon_main(int argc, char **argv, const mv_backend_loader *loader)
{
    const char *program = loader->program;
    settings s = {0};
    mv_http_config_defaults(&s.http);
    mv_error err = {0};
    int parsed = parse_settings(&s, argc, argv, &err);
    if (parsed == 1) {
        usage(stdout, program);
        return 0;
    }
    if (parsed < 0) {
        fprintf(stderr, "%s: %s\n", program, err.message);
        return 2;
    }
    if (!s.daemon.model_dir) {
        fprintf(stderr, "%s: -m/--model DIR (or MEDVLP_MODEL) is required (see --help)\n", program);
        return 2;
    }
    s.http.log_json = !s.log_format || !strcmp(s.log_format, "json");
    char *api_key = NULL;
    if (s.api_key_file && read_api_key(s.api_key_file, &api_key, &err)) {
        fprintf(stderr, "%s: %s\n", program, err.message);
        return 2;
    }
    s.http.api_key = api_key;

    int stop_pipe[2];
    if (pipe(stop_pipe)) {
        fprintf(stderr, "%s: cannot create the signal pipe\n", program);
        free(api_key);
        return 1;
    }
    stop_pipe_write = stop_pipe[1];
    struct sigaction action = {.sa_handler = on_stop_signal};
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    mv_http_server *server = NULL;
    mv_backend *backend = NULL;
    int exit_code = 0;
    if (mv_http_server_start(&s.http, &server, &err)) {
        fprintf(stderr, "%s: %s\n", program, err.message);
        free(api_key);
        close(stop_pipe[0]);
        close(stop_pipe[1]);
        return err.code == MV_EINPUT ? 2 : 1;
    }
    fprintf(stderr, "%s: listening on %s (port %d), loading %s\n", program, s.http.listen,
            mv_http_server_port(server), s.daemon.model_dir);
    if (loader->open(&s.daemon, &backend, &err) || mv_http_server_set_backend(server, backend, &err)) {
        fprintf(stderr, "%s: %s\n", program, err.message);
        exit_code = mv_status_exit_code(err.code);
        mv_http_server_drain(server, 0);
        goto done;
    }
    fprintf(stderr, "%s: ready (model %s, dim %d)\n", program, backend->model_name, backend->dim);

    unsigned char signal_number = 0;
    while (read(stop_pipe[0], &signal_number, 1) < 0 && errno == EINTR)
        continue;
    fprintf(stderr, "%s: %s: draining\n", program, strsignal(signal_number));
    int left = mv_http_server_drain(server, DRAIN_TIMEOUT_MS);
    if (left)
        fprintf(stderr, "%s: %d requests still in flight after %d ms\n", program, left, DRAIN_TIMEOUT_MS);
    if (loader->persist && loader->persist(backend, &err)) {
        fprintf(stderr, "%s: persisting the index failed: %s\n", program, err.message);
        exit_code = 1;
    }
done:
    mv_http_server_free(server);
    if (backend)
        loader->close(backend);
    free(api_key);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    if (!exit_code)
        fprintf(stderr, "%s: stopped\n", program);
    return exit_code;
}
