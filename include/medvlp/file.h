/* file.h — read-only file mappings and whole-file reads, with errors naming the path. */
#ifndef MEDVLP_FILE_H
#define MEDVLP_FILE_H

#include <stddef.h>
#include "medvlp/error.h"

typedef struct mv_mapped_file {
    const unsigned char *data; /* NULL for an empty file */
    size_t size;
} mv_mapped_file;

/* Maps path read-only (MAP_PRIVATE). An empty file maps to {NULL, 0}. */
int mv_file_map(const char *path, mv_mapped_file *out, mv_error *err);
void mv_file_unmap(mv_mapped_file *file);

/* Reads a whole (small) file into a NUL-terminated heap buffer; *size excludes the NUL. */
int mv_file_read_all(const char *path, size_t max_size, char **out, size_t *size, mv_error *err);

/* Joins dir and name into out (PATH_MAX-safe); returns MV_EINPUT if it would not fit. */
int mv_path_join(char *out, size_t out_size, const char *dir, const char *name, mv_error *err);

int mv_file_exists(const char *path);

#endif
