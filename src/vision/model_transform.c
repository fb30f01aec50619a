/* model_transform.c — owns the mapping from a model directory to its preprocessing transform.
 * open_clip layout: DIR/open_clip_config.json gives model_cfg.vision_cfg.image_size and
 * preprocess_cfg {mean, std, interpolation, resize_mode}; open_clip's defaults (OPENAI mean/std,
 * bicubic, shortest) fill what is absent. Other layouts are added here as their loaders land. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "medvlp/file.h"
#include "vision/vision_internal.h"

static int read_triple(json_t *cfg, const char *key, const char *path, float out[3], mv_error *err)
{
    json_t *array = json_object_get(cfg, key);
    if (!array)
        return MV_OK;
    if (!json_is_array(array) || json_array_size(array) != 3)
        return mv_fail(err, MV_EFORMAT, "%s: preprocess_cfg.%s must be an array of 3 numbers", path, key);
    for (int c = 0; c < 3; c++) {
        json_t *v = json_array_get(array, (size_t)c);
        if (!json_is_number(v))
            return mv_fail(err, MV_EFORMAT, "%s: preprocess_cfg.%s[%d] is not a number", path, key, c);
        out[c] = (float)json_number_value(v);
    }
    return MV_OK;
}

static int openclip_transform(json_t *root, const char *path, mv_transform *t, mv_error *err)
{
    json_t *size_json = json_object_get(json_object_get(json_object_get(root, "model_cfg"), "vision_cfg"),
                                        "image_size");
    if (json_is_array(size_json) && json_array_size(size_json) == 2 &&
        json_integer_value(json_array_get(size_json, 0)) == json_integer_value(json_array_get(size_json, 1)))
        size_json = json_array_get(size_json, 0);
    if (!json_is_integer(size_json) || json_integer_value(size_json) <= 0 || json_integer_value(size_json) > 4096)
        return mv_fail(err, MV_EFORMAT, "%s: model_cfg.vision_cfg.image_size must be a positive integer "
                       "(or a square [h, w])", path);
    mv_transform_openclip(t, (int)json_integer_value(size_json), NULL, NULL);

    json_t *cfg = json_object_get(root, "preprocess_cfg");
    if (!cfg)
        return MV_OK;
    int status = read_triple(cfg, "mean", path, t->mean, err);
    if (status == MV_OK)
        status = read_triple(cfg, "std", path, t->std, err);
    if (status != MV_OK)
        return status;
    const char *interpolation = json_string_value(json_object_get(cfg, "interpolation"));
    if (interpolation) {
        if (!strcmp(interpolation, "bicubic"))
            t->filter = MV_FILTER_BICUBIC;
        else if (!strcmp(interpolation, "bilinear"))
            t->filter = MV_FILTER_BILINEAR;
        else if (!strcmp(interpolation, "nearest"))
            t->filter = MV_FILTER_NEAREST;
        else
            return mv_fail(err, MV_EUNSUPPORTED, "%s: preprocess_cfg.interpolation \"%s\" is not supported",
                           path, interpolation);
    }
    const char *resize_mode = json_string_value(json_object_get(cfg, "resize_mode"));
    if (resize_mode && !strcmp(resize_mode, "squash")) {
        t->resize = MV_RESIZE_EXACT;
        t->resize_width = t->resize_height = t->size;
    } else if (resize_mode && strcmp(resize_mode, "shortest")) {
        return mv_fail(err, MV_EUNSUPPORTED, "%s: preprocess_cfg.resize_mode \"%s\" is not supported", path,
                       resize_mode);
    }
    return MV_OK;
}

int mv_transform_from_model_dir(const char *dir, mv_transform *t, mv_error *err)
{
    char path[4096];
    int status = mv_path_join(path, sizeof path, dir, "open_clip_config.json", err);
    if (status != MV_OK)
        return status;
    if (!mv_file_exists(path))
        return mv_fail(err, MV_ENOTFOUND, "%s: no open_clip_config.json (the only model layout whose "
                       "preprocessing is known so far)", dir);
    char *text;
    size_t size;
    status = mv_file_read_all(path, 1 << 20, &text, &size, err);
    if (status != MV_OK)
        return status;
    json_error_t json_err;
    json_t *root = json_loadb(text, size, 0, &json_err);
    free(text);
    if (!root)
        return mv_fail(err, MV_EFORMAT, "%s:%d: %s", path, json_err.line, json_err.text);
    status = openclip_transform(root, path, t, err);
    json_decref(root);
    return status;
}
