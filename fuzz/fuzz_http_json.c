/* fuzz_http_json.c — the request bodies of every POST endpoint, through the real server: an
 * in-process mv_http_server on 127.0.0.1 (routing, limits, JSON parsing with jansson, each route's
 * validator, base64 and multipart decoding, batching, the response writer) over a backend that only
 * checks its inputs' shape. Byte 0 picks the route (and for /embed/image the Content-Type), the rest
 * is the body, sent over one keep-alive connection.
 *
 * The oracle is the API contract: every answer is 200 or a client error (400, 404, 413, 415, 422)
 * whose body is {"error":{"status": <the same status>, "code": "...", "message": "..."}}. A 5xx, a
 * malformed error body, a dropped connection or no answer within 10 s aborts. */
#include "medvlp/http.h"
#include "medvlp/image.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define FUZZ_DIM 4

/* ---- a backend that checks shapes only: the server, not the model, is under test ---- */

static int embed_texts(void *self, const mv_http_item *texts, int n, float *out, int *n_tokens, int *truncated,
                       mv_error *item_err, mv_error *err)
{
    (void)self, (void)item_err, (void)err;
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < FUZZ_DIM; d++)
            out[i * FUZZ_DIM + d] = (float)(texts[i].size + (size_t)d);
        n_tokens[i] = 2;
        truncated[i] = 0;
    }
    return MV_OK;
}

static int embed_images(void *self, const mv_http_item *images, int n, float *out, mv_error *item_err,
                        mv_error *err)
{
    (void)self, (void)err;
    for (int i = 0; i < n; i++) {
        const char *format = mv_image_sniff(images[i].data, images[i].size);
        if (!format || (strcmp(format, "png") && strcmp(format, "jpeg")))
            mv_fail(&item_err[i], MV_EUNSUPPORTED, "not a PNG or JPEG");
        for (int d = 0; d < FUZZ_DIM; d++)
            out[i * FUZZ_DIM + d] = (float)(images[i].size + (size_t)d);
    }
    return MV_OK;
}

static long long next_id;

static int search(void *self, int target, const float *query, int k, const char *filter_json, mv_search_hit *hits,
                  int *n_hits, mv_error *err)
{
    (void)self, (void)target, (void)query, (void)filter_json, (void)err;
    *n_hits = 0;
    if (k >= 1 && next_id > 0) {
        hits[0] = (mv_search_hit){0, 1.0f, strdup("{\"k\":1}")};
        *n_hits = hits[0].metadata_json != NULL;
    }
    return MV_OK;
}

static int index_add(void *self, int target, const float *vectors, const char *const *metadata_json,
                     const char *const *captions, int n, long long *ids_out, mv_error *err)
{
    (void)self, (void)target, (void)vectors, (void)captions;
    for (int i = 0; i < n; i++) {
        json_t *metadata = json_loads(metadata_json[i], 0, NULL);
        int is_object = json_is_object(metadata);
        json_decref(metadata);
        if (!is_object)
            return mv_fail(err, MV_EINTERNAL, "the server passed metadata that is not a JSON object");
    }
    for (int i = 0; i < n; i++)
        ids_out[i] = next_id++;
    return MV_OK;
}

static int index_delete(void *self, int target, long long id, mv_error *err)
{
    (void)self, (void)target;
    return mv_fail(err, MV_ENOTFOUND, "id %lld not found", id);
}

static char *index_stats(void *self)
{
    (void)self;
    return strdup("{\"images\":0,\"captions\":0}");
}

static const mv_backend fuzz_backend = {
    .model_name = "fuzz", .dim = FUZZ_DIM, .context_length = 8, .has_text = 1, .has_image = 1,
    .embed_texts = embed_texts, .embed_images = embed_images, .has_index = 1, .search = search,
    .index_add = index_add, .index_delete = index_delete, .index_stats = index_stats,
};

/* ---- the client side ---- */

static mv_http_server *server;
static int connection = -1;

static void start_server(void)
{
    mv_http_config config;
    mv_http_config_defaults(&config);
    config.listen = "127.0.0.1:0";
    config.n_http_threads = 1;
    config.max_wait_us = 0;
    config.max_body = 1 << 16;
    config.max_batch_texts = 8;
    config.log_access = 0;
    mv_error err = {0};
    if (mv_http_server_start(&config, &server, &err) || mv_http_server_set_backend(server, &fuzz_backend, &err)) {
        fprintf(stderr, "fuzz_http_json: %s\n", err.message);
        abort();
    }
}

static void stop_server(void)
{
    if (connection >= 0)
        close(connection);
    mv_http_server_drain(server, 1000);
    mv_http_server_free(server);
}

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)mv_http_server_port(server))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval timeout = {10, 0};
    int one = 1; /* no Nagle delay: one request is one write */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) || connect(fd, (struct sockaddr *)&addr, sizeof addr))
        abort();
    return fd;
}

static void send_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server may close early after an error answer; reading tells */
        p += w;
        n -= (size_t)w;
    }
}

/* Reads one response (headers, then Content-Length bytes) into buf; returns its length, 0 on EOF. */
static size_t read_response(int fd, char *buf, size_t cap, size_t *body_at, int *keep_alive)
{
    size_t n = 0;
    char *end = NULL;
    while (!end) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            return 0;
        n += (size_t)r;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    *body_at = (size_t)(end + 4 - buf);
    const char *length = strcasestr(buf, "\r\nContent-Length:");
    const char *close_header = strcasestr(buf, "\r\nConnection: close");
    *keep_alive = !close_header || close_header > end;
    size_t want = *body_at + (length && length < end ? strtoul(length + 17, NULL, 10) : 0);
    if (want >= cap)
        abort();
    while (n < want) {
        ssize_t r = recv(fd, buf + n, want - n, 0);
        if (r <= 0)
            return 0;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

static void check_answer(const char *response, size_t n, size_t body_at)
{
    int status = 0;
    if (sscanf(response, "HTTP/1.%*d %d", &status) != 1)
        abort();
    if (status == 200)
        return;
    if (status != 400 && status != 404 && status != 413 && status != 415 && status != 422) {
        fprintf(stderr, "fuzz_http_json: status %d: %s\n", status, response);
        abort();
    }
    json_t *body = json_loadb(response + body_at, n - body_at, 0, NULL);
    json_t *error = json_object_get(body, "error");
    if (json_integer_value(json_object_get(error, "status")) != status ||
        !json_is_string(json_object_get(error, "code")) || !json_is_string(json_object_get(error, "message"))) {
        fprintf(stderr, "fuzz_http_json: malformed error body: %s\n", response);
        abort();
    }
    json_decref(body);
}

static const char *const paths[] = {"/embed/text", "/v1/embeddings", "/embed/image", "/search", "/index/images",
                                    "/index/captions"};
static const char *const image_types[] = {"application/json", "multipart/form-data; boundary=B", "image/png"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 1 << 16)
        return 0;
    if (!server) {
        start_server();
        atexit(stop_server);
    }
    const char *path = paths[data[0] % 6];
    const char *content_type = data[0] % 6 == 2 ? image_types[data[0] / 6 % 3] : "application/json";
    static char request[(1 << 16) + 256];
    int n_head = snprintf(request, 256,
                          "POST %s HTTP/1.1\r\nHost: fuzz\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                          path, content_type, size - 1);
    memcpy(request + n_head, data + 1, size - 1);
    static char response[1 << 20];
    size_t n = 0, body_at;
    int keep_alive;
    /* A kept-alive connection the server has since closed answers nothing: retry once on a new one. */
    for (int attempt = 0; attempt < 2 && n == 0; attempt++) {
        if (connection < 0)
            connection = connect_server();
        send_all(connection, request, (size_t)n_head + size - 1);
        n = read_response(connection, response, sizeof response, &body_at, &keep_alive);
        if (n == 0) {
            close(connection);
            connection = -1;
        }
    }
    if (n == 0) {
        fprintf(stderr, "fuzz_http_json: no answer to %s\n", path);
        abort();
    }
    check_answer(response, n, body_at);
    if (!keep_alive) {
        close(connection);
        connection = -1;
    }
    return 0;
}
