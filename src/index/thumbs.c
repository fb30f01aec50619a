/* thumbs.c — owns the thumbnails of an index directory (include/medvlp/thumbs.h): their size rule,
 * their JPEG encoding and their files INDEX_DIR/thumbs/<id>.jpg.
 *
 * Scaling reuses the vision module's PIL-exact preprocessing (bicubic resize, conversion of every
 * mode to RGB) so a thumbnail looks like what the model saw, minus the crop. */
#include "index/index_internal.h"
#include "medvlp/thumbs.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "medvlp/file.h"

#define THUMBS_DIR "thumbs"

int mv_thumb_encode(const mv_image *img, int max_side, unsigned char **jpeg, size_t *n_jpeg, mv_error *err)
{
    *jpeg = NULL;
    *n_jpeg = 0;
    if (max_side < 1)
        return mv_fail(err, MV_EINPUT, "thumbnail: max side %d must be positive", max_side);
    if (!img->pixels || img->width < 1 || img->height < 1)
        return mv_fail(err, MV_EINPUT, "thumbnail: empty image");
    mv_transform t = {.resize = MV_RESIZE_NONE, .filter = MV_FILTER_BICUBIC, .color = MV_COLOR_RGB};
    int longest = img->width > img->height ? img->width : img->height;
    if (longest > max_side) {
        /* Round to nearest, at least one pixel, so a 1000 x 3 strip still has a row. */
        t.resize = MV_RESIZE_EXACT;
        t.resize_width = (int)(((int64_t)img->width * max_side + longest / 2) / longest);
        t.resize_height = (int)(((int64_t)img->height * max_side + longest / 2) / longest);
        t.resize_width += t.resize_width == 0;
        t.resize_height += t.resize_height == 0;
    }
    int width, height;
    mv_transform_output_size(&t, img->width, img->height, &width, &height);
    size_t n_pixels = (size_t)width * (size_t)height;
    float *planes = malloc(sizeof *planes * n_pixels * 3);
    unsigned char *rgb = malloc(n_pixels * 3);
    int status = planes && rgb ? mv_preprocess(img, &t, planes, rgb, err)
                               : mv_fail(err, MV_ENOMEM, "thumbnail: out of memory for %d x %d", width, height);
    if (!status)
        status = mv_jpeg_encode_rgb(rgb, width, height, MV_THUMB_JPEG_QUALITY, jpeg, n_jpeg, err);
    free(planes);
    free(rgb);
    return status;
}

/* "<id>.jpg": the only names this module ever opens under thumbs/. */
static int thumb_name(int64_t id, char *name, size_t cap, mv_error *err)
{
    if (id < 0)
        return mv_fail(err, MV_EINPUT, "thumbnail: bad id %" PRId64, id);
    snprintf(name, cap, "%" PRId64 ".jpg", id);
    return MV_OK;
}

static int thumbs_dir(const char *index_dir, char *dir, mv_error *err)
{
    return mv_path_join(dir, PATH_MAX, index_dir, THUMBS_DIR, err);
}

int mv_thumbs_put(const char *index_dir, int64_t id, const mv_image *img, mv_error *err)
{
    char dir[PATH_MAX], name[32];
    int status = thumb_name(id, name, sizeof name, err);
    if (status || (status = thumbs_dir(index_dir, dir, err)))
        return status;
    if (mkdir(dir, 0755) == 0) {
        /* A new folder is durable only once its parent's entry is. */
        if ((status = mv_fsync_path(index_dir, 1, err)))
            return status;
    } else if (errno != EEXIST) {
        return mv_fail(err, MV_EIO, "%s: mkdir: %s", dir, strerror(errno));
    }
    unsigned char *jpeg;
    size_t n_jpeg;
    if ((status = mv_thumb_encode(img, MV_THUMB_MAX_SIDE, &jpeg, &n_jpeg, err)))
        return status;
    status = mv_write_file_atomic(dir, name, jpeg, n_jpeg, err);
    free(jpeg);
    return status;
}

int mv_thumbs_get(const char *index_dir, int64_t id, unsigned char **jpeg, size_t *n_jpeg, mv_error *err)
{
    char dir[PATH_MAX], name[32], path[PATH_MAX];
    int status = thumb_name(id, name, sizeof name, err);
    if (status || (status = thumbs_dir(index_dir, dir, err)) || (status = mv_path_join(path, sizeof path, dir, name, err)))
        return status;
    char *data;
    /* A thumbnail is a few tens of KiB; anything past 16 MiB is not one of ours. */
    status = mv_file_read_all(path, (size_t)16 << 20, &data, n_jpeg, err);
    if (status == MV_ENOTFOUND) /* said without the server-side path */
        return mv_fail(err, MV_ENOTFOUND, "no thumbnail for id %" PRId64, id);
    *jpeg = status ? NULL : (unsigned char *)data;
    return status;
}

int mv_thumbs_remove(const char *index_dir, int64_t id, mv_error *err)
{
    char dir[PATH_MAX], name[32], path[PATH_MAX];
    int status = thumb_name(id, name, sizeof name, err);
    if (status || (status = thumbs_dir(index_dir, dir, err)) || (status = mv_path_join(path, sizeof path, dir, name, err)))
        return status;
    if (unlink(path) != 0 && errno != ENOENT)
        return mv_fail(err, MV_EIO, "%s: unlink: %s", path, strerror(errno));
    return MV_OK;
}
