/* readers.h — the checkpoint format readers behind mv_weights_open (src/checkpoint/weights.c).
 * Each fills an empty container from a mapped file; the container keeps the mapping alive.
 * data/size is the whole file; path is for messages only. */
#ifndef MEDVLP_CHECKPOINT_READERS_H
#define MEDVLP_CHECKPOINT_READERS_H

#include <stddef.h>
#include "medvlp/weights.h"

int mv_safetensors_read(mv_weights *weights, const char *path, const unsigned char *data, size_t size,
                        mv_error *err);
int mv_torch_zip_read(mv_weights *weights, const char *path, const unsigned char *data, size_t size,
                      mv_error *err);
int mv_torch_legacy_read(mv_weights *weights, const char *path, const unsigned char *data, size_t size,
                         mv_error *err);
int mv_flax_msgpack_read(mv_weights *weights, const char *path, const unsigned char *data, size_t size,
                         mv_error *err);

#endif
