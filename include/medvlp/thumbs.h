/* thumbs.h — the thumbnails of an index directory's images: INDEX_DIR/thumbs/<id>.jpg, a JPEG whose
 * longest side is at most MV_THUMB_MAX_SIDE pixels, written when an image is added (by medvlpd's
 * POST /index/images and by `medvlp index build`) and served by GET /index/images/{id}/thumbnail.
 *
 * Files are addressed only by (index directory, id), never by a name from outside, so a request can
 * never reach another file. Writes are atomic and durable (temporary file, fsync, rename, fsync of
 * the directory): a thumbnail is either whole or absent. Reentrant: no globals. */
#ifndef MEDVLP_THUMBS_H
#define MEDVLP_THUMBS_H

#include <stddef.h>
#include <stdint.h>

#include "medvlp/error.h"
#include "medvlp/image.h"

#define MV_THUMB_MAX_SIDE 256
#define MV_THUMB_JPEG_QUALITY 85

/* Encodes img (any mode; shown as RGB) as a JPEG scaled down (bicubic, aspect kept, never enlarged)
 * so its longest side is at most max_side. *jpeg is malloc'd. */
int mv_thumb_encode(const mv_image *img, int max_side, unsigned char **jpeg, size_t *n_jpeg, mv_error *err);

/* Stores the MV_THUMB_MAX_SIDE thumbnail of img for id (>= 0) under index_dir/thumbs/, creating the
 * folder, replacing any earlier one. Durable on return. */
int mv_thumbs_put(const char *index_dir, int64_t id, const mv_image *img, mv_error *err);

/* Reads the stored thumbnail of id into *jpeg (malloc'd). MV_EINPUT for id < 0, MV_ENOTFOUND when
 * none is stored. */
int mv_thumbs_get(const char *index_dir, int64_t id, unsigned char **jpeg, size_t *n_jpeg, mv_error *err);

/* Removes the thumbnail of id; MV_OK when there was none. */
int mv_thumbs_remove(const char *index_dir, int64_t id, mv_error *err);

#endif
