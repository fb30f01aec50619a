/* cmd_preprocess.c — `medvlp preprocess`: one image file -> the model-input tensor as raw float32
 * little-endian CHW, for checking preprocessing against PIL/torchvision. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_model.h"
#include "cli/commands.h"
#include "medvlp/file.h"
#include "medvlp/image.h"

/* The tensor is written in host order, which must be the documented little-endian. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "preprocess output assumes a little-endian host");

static void preprocess_usage(FILE *out)
{
    fprintf(out,
            "usage: medvlp preprocess (-m DIR | --transform openclip|biovil) [--size N]\n"
            "                         [--max-pixels N] FILE -o OUT\n\n"
            "Decodes FILE (JPEG or PNG), applies the model's image transform and writes the model input\n"
            "to OUT as float32 little-endian, channels x height x width.\n"
            "  -m DIR               model directory: the model's own preprocessing (any layout)\n"
            "  --transform NAME     openclip (bicubic, crop, OPENAI mean/std) or biovil (gray, bilinear\n"
            "                       resize 512, crop 480, no mean/std), instead of -m\n"
            "  --size N             openclip: image size (default 224); biovil: crop (resize keeps 512/480)\n"
            "  --max-pixels N       refuse larger images (default %llu)\n"
            "  -o OUT               output file\n",
            (unsigned long long)MV_IMAGE_DEFAULT_MAX_PIXELS);
}

static int parse_positive(const char *text, const char *flag, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || v <= 0) {
        fprintf(stderr, "medvlp preprocess: %s needs a positive integer, got '%s'\n", flag, text);
        return 0;
    }
    *out = v;
    return 1;
}

static int write_all(const char *path, const void *data, size_t size, mv_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return mv_fail(err, MV_EIO, "%s: %s", path, strerror(errno));
    size_t written = fwrite(data, 1, size, f);
    int closed = fclose(f);
    if (written != size || closed != 0)
        return mv_fail(err, MV_EIO, "%s: write failed: %s", path, strerror(errno));
    return MV_OK;
}

int cmd_preprocess(int argc, char **argv)
{
    const char *model_dir = NULL, *transform_name = NULL, *input = NULL, *output = NULL;
    long long size = 0, max_pixels = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            preprocess_usage(stdout);
            return 0;
        } else if ((!strcmp(arg, "-m") || !strcmp(arg, "--model")) && has_value) {
            model_dir = argv[++i];
        } else if (!strcmp(arg, "--transform") && has_value) {
            transform_name = argv[++i];
        } else if (!strcmp(arg, "-o") && has_value) {
            output = argv[++i];
        } else if (!strcmp(arg, "--size") && has_value) {
            if (!parse_positive(argv[++i], "--size", &size) || size > 4096)
                return 2;
        } else if (!strcmp(arg, "--max-pixels") && has_value) {
            if (!parse_positive(argv[++i], "--max-pixels", &max_pixels))
                return 2;
        } else if (arg[0] == '-' && arg[1]) {
            fprintf(stderr, "medvlp preprocess: unknown option or missing value: %s\n", arg);
            preprocess_usage(stderr);
            return 2;
        } else if (!input) {
            input = arg;
        } else {
            fprintf(stderr, "medvlp preprocess: one input file only (got '%s' and '%s')\n", input, arg);
            return 2;
        }
    }
    if (!input || !output || !!model_dir == !!transform_name) {
        preprocess_usage(stderr);
        return 2;
    }

    mv_error err = {0};
    mv_model *model = NULL;
    mv_transform transform;
    if (model_dir) {
        /* The model's own image path, so manifest families (BioViL's min-max stretch, ConVIRT's
         * exact resize) are written exactly as their encoders see them. */
        mv_model_options options = {.max_pixels = (uint64_t)max_pixels};
        int rc = cli_open_model_with("preprocess", model_dir, &options, &model);
        if (rc)
            return rc;
    } else if (!strcmp(transform_name, "openclip")) {
        mv_transform_openclip(&transform, size ? (int)size : 224, NULL, NULL);
    } else if (!strcmp(transform_name, "biovil")) {
        mv_transform_biovil(&transform, 512, size ? (int)size : 480);
    } else {
        fprintf(stderr, "medvlp preprocess: --transform must be openclip or biovil, not '%s'\n", transform_name);
        return 2;
    }

    mv_mapped_file file = {0};
    mv_image img = {0};
    float *tensor = NULL;
    int status = mv_file_map(input, &file, &err);
    if (status == MV_OK) {
        mv_decode_options opts = {.max_pixels = (uint64_t)max_pixels};
        status = mv_image_decode(file.data, file.size, input, &opts, &img, &err);
    }
    if (status == MV_OK) {
        int width, height;
        if (model) {
            mv_model_info info;
            mv_model_get_info(model, &info);
            width = info.image_width;
            height = info.image_height;
        } else {
            mv_transform_output_size(&transform, img.width, img.height, &width, &height);
        }
        size_t n = (size_t)3 * (size_t)width * (size_t)height;
        tensor = n ? malloc(n * sizeof *tensor) : NULL;
        if (!tensor)
            status = mv_fail(&err, n ? MV_ENOMEM : MV_EUNSUPPORTED, n ? "out of memory" : "the model has no image tower");
        else if (model)
            status = mv_model_preprocess_image(model, &img, tensor, &err);
        else
            status = mv_preprocess(&img, &transform, tensor, NULL, &err);
        if (status == MV_OK)
            status = write_all(output, tensor, n * sizeof *tensor, &err);
    }
    mv_model_free(model);
    free(tensor);
    mv_image_free(&img);
    mv_file_unmap(&file);
    if (status != MV_OK) {
        fprintf(stderr, "medvlp preprocess: %s\n", err.message);
        return mv_status_exit_code(status);
    }
    return 0;
}
