/* medvlp_engine.c — medvlp's side of bench/run: one workload per process, driven by bench.py.
 *     medvlp_engine KIND PATH [QUANT]  KIND: text (PATH = model dir), vit_b16 / resnet50 (PATH = safetensors),
 *                                      png / jpeg (PATH = image file), sgemm (PATH ignored);
 *                                      QUANT: the models' weight storage, none (default), int8 or fp16
 * Prints the load time in seconds, then answers each stdin line "BATCH SEQ_LEN ITERS" with the mean
 * seconds per batch of ITERS runs (input setup untimed), and "rss" with the process's peak and current RSS in KiB (VmHWM VmRSS).
 * "embed BATCH SEQ_LEN IN OUT" (bench/quant_accuracy.py) embeds given inputs instead of random ones:
 * IN holds BATCH·SEQ_LEN int32 token ids (text) or BATCH 224² CHW float32 images, OUT receives the
 * BATCH float32 outputs (text: normalised embedding; ViT: projected; ResNet: pooled features).
 * Workloads: text = embed BATCH texts of SEQ_LEN random token ids ([CLS] … [SEP]; tokenisation
 * excluded) with normalisation; vit_b16 / resnet50 = the image tower on BATCH random 224² images;
 * png / jpeg = decode the file and apply BiomedCLIP's transform (224 bicubic, crop, normalise);
 * sgemm = one SEQ_LEN³ cblas_sgemm (the GEMM peak the model rows are compared with). */
#include "medvlp/image.h"
#include "medvlp/model.h"
#include "medvlp/resnet.h"
#include "medvlp/tensor.h"
#include "medvlp/vit.h"

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int die(const char *what, const mv_error *err)
{
    fprintf(stderr, "medvlp_engine: %s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

/* A field of /proc/self/status in KiB: "VmHWM:" (peak RSS) or "VmRSS:" (now). */
static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, strlen(field)))
            kib = atol(line + strlen(field));
    if (f)
        fclose(f);
    return kib;
}

typedef struct engine {
    const char *kind;
    mv_quant quant;
    mv_model *text;
    mv_weights *weights;
    mv_vit *vit;
    mv_resnet *resnet;
    mv_vit_state *vit_state;       /* kept between commands: its pages are faulted in once, */
    mv_resnet_state *resnet_state; /* as a server's would be */
    int state_batch;
    unsigned char *file;
    size_t file_size;
    mv_transform transform;
} engine;

static void load(engine *e, const char *path)
{
    mv_error err = {0};
    if (!strcmp(e->kind, "text")) {
        mv_model_options options = {.quant = e->quant};
        if (mv_model_open(path, &options, &e->text, &err))
            die(path, &err);
    } else if (!strcmp(e->kind, "vit_b16") || !strcmp(e->kind, "resnet50")) {
        if (mv_weights_open(path, &e->weights, &err))
            die(path, &err);
        mv_vit_config vit_cfg = mv_vit_config_timm(224, 16, 768, 12, 12, 512);
        mv_resnet_config resnet_cfg = mv_resnet50_config();
        mv_resnet_names names = mv_resnet_names_torchvision("");
        vit_cfg.quant = resnet_cfg.quant = e->quant;
        if (e->kind[0] == 'v' ? mv_vit_load(&e->vit, &vit_cfg, e->weights, "visual.trunk.", "visual.head.proj.weight",
                                            &err)
                              : mv_resnet_load(&e->resnet, &resnet_cfg, e->weights, &names, &err))
            die(path, &err);
        mv_weights_release_pages(e->weights); /* as mv_model_open does after packing */
    } else if (!strcmp(e->kind, "png") || !strcmp(e->kind, "jpeg")) {
        FILE *f = fopen(path, "rb");
        if (!f || fseek(f, 0, SEEK_END))
            die(path, NULL);
        e->file_size = (size_t)ftell(f);
        rewind(f);
        e->file = malloc(e->file_size);
        if (!e->file || fread(e->file, 1, e->file_size, f) != e->file_size)
            die(path, NULL);
        fclose(f);
        mv_transform_openclip(&e->transform, 224, mv_openai_mean, mv_openai_std);
    } else if (strcmp(e->kind, "sgemm")) {
        die(e->kind, NULL);
    }
}

/* Embeds batch texts of seq_len ids iters times into out[batch, embed_dim]; returns the seconds. */
static double embed_texts(engine *e, const int32_t *ids, int batch, int seq_len, int iters, float *out)
{
    int *lengths = malloc((size_t)batch * sizeof *lengths);
    for (int b = 0; b < batch; b++)
        lengths[b] = seq_len;
    mv_error err = {0};
    double start = now();
    for (int it = 0; it < iters; it++)
        if (mv_model_embed_token_ids(e->text, ids, lengths, batch, 1, out, &err))
            die("text", &err);
    double seconds = now() - start;
    free(lengths);
    return seconds;
}

static int text_dim(const engine *e)
{
    mv_model_info info;
    mv_model_get_info(e->text, &info);
    return info.embed_dim;
}

static double run_text(engine *e, int batch, int seq_len, int iters)
{
    int32_t *ids = malloc((size_t)seq_len * batch * sizeof *ids);
    float *out = malloc((size_t)batch * text_dim(e) * sizeof *out);
    unsigned seed = 1;
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < seq_len; i++)
            ids[(size_t)b * seq_len + i] = i == 0 ? 2 : i == seq_len - 1 ? 3 : 5 + (int)(rand_r(&seed) % 30000);
    double seconds = embed_texts(e, ids, batch, seq_len, iters, out);
    free(ids);
    free(out);
    return seconds;
}

/* Runs the image tower on batch CHW images iters times (its outputs stay in the state). */
static double forward_images(engine *e, const float *images, int batch, int iters)
{
    mv_error err = {0};
    if (batch > e->state_batch) {
        mv_vit_state_free(e->vit_state);
        mv_resnet_state_free(e->resnet_state);
        e->vit_state = NULL;
        e->resnet_state = NULL;
        if (e->vit ? mv_vit_state_new(e->vit, batch, &e->vit_state, &err)
                   : mv_resnet_state_new(e->resnet, batch, 224, 224, &e->resnet_state, &err))
            die(e->kind, &err);
        e->state_batch = batch;
    }
    double start = now();
    for (int it = 0; it < iters; it++)
        if (e->vit ? mv_vit_forward(e->vit, e->vit_state, images, batch, &err)
                   : mv_resnet_forward(e->resnet, e->resnet_state, images, batch, &err))
            die(e->kind, &err);
    return now() - start;
}

static double run_image_tower(engine *e, int batch, int iters)
{
    size_t n = (size_t)batch * 3 * 224 * 224;
    float *images = malloc(n * sizeof *images);
    unsigned seed = 1;
    for (size_t i = 0; i < n; i++)
        images[i] = (float)rand_r(&seed) / RAND_MAX - 0.5f;
    double seconds = forward_images(e, images, batch, iters);
    free(images);
    return seconds;
}

/* "embed": inputs from a file, outputs to a file. */
static void embed_file(engine *e, int batch, int seq_len, const char *in_path, const char *out_path)
{
    size_t in_size = e->text ? sizeof(int32_t) * batch * seq_len : sizeof(float) * batch * 3 * 224 * 224;
    void *in = malloc(in_size);
    FILE *f = fopen(in_path, "rb");
    if (!f || fread(in, 1, in_size, f) != in_size)
        die(in_path, NULL);
    fclose(f);
    int dim;
    const float *out;
    float *text_out = NULL;
    if (e->text) {
        dim = text_dim(e);
        text_out = malloc(sizeof(float) * batch * dim);
        embed_texts(e, in, batch, seq_len, 1, text_out);
        out = text_out;
    } else {
        forward_images(e, in, batch, 1);
        dim = e->vit ? e->vit->config.proj_dim : mv_resnet_out_channels(e->resnet, MV_RESNET_STAGES - 1);
        out = e->vit ? e->vit_state->embedding : e->resnet_state->pooled;
    }
    f = fopen(out_path, "wb");
    if (!f || fwrite(out, sizeof(float), (size_t)batch * dim, f) != (size_t)batch * dim || fclose(f))
        die(out_path, NULL);
    free(text_out);
    free(in);
}

static double run_decode(engine *e, int iters)
{
    float *chw = malloc(sizeof(float) * 3 * 224 * 224);
    mv_error err = {0};
    double start = now();
    for (int it = 0; it < iters; it++) {
        mv_image img;
        if (mv_image_decode(e->file, e->file_size, e->kind, NULL, &img, &err) ||
            mv_preprocess(&img, &e->transform, chw, NULL, &err))
            die(e->kind, &err);
        mv_image_free(&img);
    }
    double seconds = now() - start;
    free(chw);
    return seconds;
}

static double run_sgemm(int n, int iters)
{
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)(i % 17) * 0.01f;
        b[i] = (float)(i % 13) * 0.01f;
    }
    double start = now();
    for (int it = 0; it < iters; it++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double seconds = now() - start;
    free(a);
    free(b);
    free(c);
    return seconds;
}

int main(int argc, char **argv)
{
    mv_blas_select_kernels(argv); /* as the medvlp binaries do: OpenBLAS may misdetect the CPU */
    engine e = {.kind = argv[1]};
    if ((argc != 3 && argc != 4) || (argc == 4 && mv_quant_parse(argv[3], &e.quant))) {
        fprintf(stderr, "usage: medvlp_engine text|vit_b16|resnet50|png|jpeg|sgemm PATH [none|int8|fp16]\n");
        return 2;
    }
    double start = now();
    load(&e, argv[2]);
    printf("%.9f\n", now() - start);
    fflush(stdout);
    char line[8192], in_path[4096], out_path[4096];
    while (fgets(line, sizeof line, stdin)) {
        int batch, seq_len, iters;
        if (sscanf(line, "embed %d %d %4095s %4095s", &batch, &seq_len, in_path, out_path) == 4) {
            embed_file(&e, batch, seq_len, in_path, out_path);
            printf("ok\n");
        } else if (!strncmp(line, "rss", 3)) {
            printf("%ld %ld\n", status_kib("VmHWM:"), status_kib("VmRSS:"));
        } else if (sscanf(line, "%d %d %d", &batch, &seq_len, &iters) == 3) {
            double seconds = e.text      ? run_text(&e, batch, seq_len, iters)
                             : e.weights ? run_image_tower(&e, batch, iters)
                             : e.file    ? run_decode(&e, iters)
                                         : run_sgemm(seq_len, iters);
            printf("%.9f\n", seconds / iters);
        } else {
            die("bad command", NULL);
        }
        fflush(stdout);
    }
    mv_model_free(e.text);
    mv_vit_state_free(e.vit_state);
    mv_resnet_state_free(e.resnet_state);
    mv_vit_free(e.vit);
    mv_resnet_free(e.resnet);
    mv_weights_free(e.weights);
    free(e.file);
    return 0;
}
