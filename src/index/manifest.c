/* manifest.c — manifest.json of an index directory: which model the vectors belong to, which
 * snapshot generation is current (and the size and CRC of its FAISS files), the committed length of
 * the metadata file and the next id.
 *
 * OWNS: the manifest's JSON schema and its atomic replacement. Writing the manifest is the commit
 * point of a snapshot: files a manifest does not name are leftovers of an interrupted snapshot. */
#include "index/index_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "medvlp/file.h"

#define MANIFEST_NAME "manifest.json"
#define MANIFEST_FORMAT "medvlp-index"

static int get_string(json_t *obj, const char *key, char *out, size_t out_size, const char *path, mv_error *err)
{
    json_t *value = json_object_get(obj, key);
    if (!json_is_string(value))
        return mv_fail(err, MV_EFORMAT, "%s: \"%s\" is missing or not a string", path, key);
    if (json_string_length(value) >= out_size)
        return mv_fail(err, MV_EFORMAT, "%s: \"%s\" is longer than %zu bytes", path, key, out_size - 1);
    memcpy(out, json_string_value(value), json_string_length(value) + 1);
    return MV_OK;
}

static int get_int(json_t *obj, const char *key, int64_t min, int64_t *out, const char *path, mv_error *err)
{
    json_t *value = json_object_get(obj, key);
    if (!json_is_integer(value) || json_integer_value(value) < min)
        return mv_fail(err, MV_EFORMAT, "%s: \"%s\" is missing or not an integer >= %lld", path, key,
                (long long)min);
    *out = json_integer_value(value);
    return MV_OK;
}

int mv_manifest_read(const char *dir, mv_manifest *manifest, mv_error *err)
{
    char path[PATH_MAX];
    int status = mv_path_join(path, sizeof path, dir, MANIFEST_NAME, err);
    if (status)
        return status;
    memset(manifest, 0, sizeof *manifest);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (!mv_file_exists(path))
            return mv_fail(err, MV_ENOTFOUND, "%s: no index here (manifest missing)", path);
        return mv_fail(err, MV_EFORMAT, "%s: not valid JSON (line %d: %s)", path, jerr.line, jerr.text);
    }
    char format[32];
    int64_t version = 0, dim = 0, crc = 0, bytes = 0;
    json_t *model = json_object_get(root, "model"), *targets = json_object_get(root, "targets");
    if ((status = get_string(root, "format", format, sizeof format, path, err)))
        goto done;
    if (strcmp(format, MANIFEST_FORMAT) != 0) {
        status = mv_fail(err, MV_EFORMAT, "%s: format is \"%s\", not \"%s\"", path, format, MANIFEST_FORMAT);
        goto done;
    }
    if ((status = get_int(root, "format_version", 1, &version, path, err)))
        goto done;
    if (version != MV_INDEX_FORMAT_VERSION) {
        status = mv_fail(err, MV_EUNSUPPORTED, "%s: format_version %lld, this build reads %d", path,
                (long long)version, MV_INDEX_FORMAT_VERSION);
        goto done;
    }
    if (!json_is_object(model) || !json_is_object(targets)) {
        status = mv_fail(err, MV_EFORMAT, "%s: \"model\" and \"targets\" must be objects", path);
        goto done;
    }
    if ((status = get_string(model, "family", manifest->family, sizeof manifest->family, path, err)) ||
            (status = get_int(model, "dim", 1, &dim, path, err)) ||
            (status = get_string(model, "weights_checksum", manifest->weights_checksum,
                     sizeof manifest->weights_checksum, path, err)) ||
            (status = get_int(root, "generation", 0, &manifest->generation, path, err)) ||
            (status = get_int(root, "next_id", 0, &manifest->next_id, path, err)) ||
            (status = get_int(root, "metadata_bytes", 0, &bytes, path, err)))
        goto done;
    if (dim > 65536) {
        status = mv_fail(err, MV_EFORMAT, "%s: dim %lld is implausible", path, (long long)dim);
        goto done;
    }
    manifest->dim = (int)dim;
    manifest->metadata_bytes = (uint64_t)bytes;
    for (int t = 0; t < MV_INDEX_N_TARGETS; t++) {
        json_t *target = json_object_get(targets, mv_index_target_name(t));
        if (!json_is_object(target)) {
            status = mv_fail(err, MV_EFORMAT, "%s: targets.%s is missing", path, mv_index_target_name(t));
            goto done;
        }
        if ((status = get_string(target, "factory", manifest->target[t].factory,
                     sizeof manifest->target[t].factory, path, err)) ||
                (status = get_int(target, "file_bytes", 0, &bytes, path, err)) ||
                (status = get_int(target, "file_crc32", 0, &crc, path, err)) ||
                (status = get_int(target, "vectors", 0, &manifest->target[t].vectors, path, err)) ||
                (status = get_int(target, "live", 0, &manifest->target[t].live, path, err)))
            goto done;
        manifest->target[t].file_bytes = (uint64_t)bytes;
        manifest->target[t].file_crc = (uint32_t)crc;
    }
done:
    json_decref(root);
    return status;
}

int mv_manifest_write(const char *dir, const mv_manifest *manifest, mv_error *err)
{
    char path[PATH_MAX];
    int status = mv_path_join(path, sizeof path, dir, MANIFEST_NAME, err);
    if (status)
        return status;
    json_t *targets = json_object();
    for (int t = 0; t < MV_INDEX_N_TARGETS; t++)
        json_object_set_new(targets, mv_index_target_name(t), json_pack("{s:s, s:I, s:I, s:I, s:I}",
                "factory", manifest->target[t].factory,
                "file_bytes", (json_int_t)manifest->target[t].file_bytes,
                "file_crc32", (json_int_t)manifest->target[t].file_crc,
                "vectors", (json_int_t)manifest->target[t].vectors,
                "live", (json_int_t)manifest->target[t].live));
    json_t *root = json_pack("{s:s, s:i, s:{s:s, s:i, s:s}, s:I, s:I, s:I, s:o}",
            "format", MANIFEST_FORMAT, "format_version", MV_INDEX_FORMAT_VERSION,
            "model", "family", manifest->family, "dim", manifest->dim,
            "weights_checksum", manifest->weights_checksum,
            "generation", (json_int_t)manifest->generation,
            "next_id", (json_int_t)manifest->next_id,
            "metadata_bytes", (json_int_t)manifest->metadata_bytes,
            "targets", targets);
    if (!root)
        return mv_fail(err, MV_EINTERNAL, "%s: could not build the manifest JSON", path);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (!text)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", path);
    status = mv_write_file_atomic(dir, MANIFEST_NAME, text, strlen(text), err);
    free(text);
    return status;
}
