/* zip.h — read-only view of a zip archive held in memory (the torch.save container): the central
 * directory (zip64 included) and zero-copy access to stored, uncompressed entries. */
#ifndef MEDVLP_CHECKPOINT_ZIP_H
#define MEDVLP_CHECKPOINT_ZIP_H

#include <stddef.h>
#include <stdint.h>
#include "medvlp/error.h"

typedef struct mv_zip_entry {
    const char *name;           /* NUL-terminated copy */
    uint64_t local_offset;      /* of the local file header */
    uint64_t size;              /* uncompressed size */
    uint64_t compressed_size;
    uint16_t method;            /* 0 = stored */
    uint16_t flags;
} mv_zip_entry;

typedef struct mv_zip {
    const char *path;
    const unsigned char *data;
    size_t size;
    mv_zip_entry *entries;      /* sorted by name */
    size_t n_entries;
    char *names;                /* storage for the entry names */
} mv_zip;

/* Parses the central directory of the archive data[0..size). Errors name path. */
int mv_zip_open(mv_zip *zip, const char *path, const unsigned char *data, size_t size, mv_error *err);
void mv_zip_close(mv_zip *zip);

const mv_zip_entry *mv_zip_find(const mv_zip *zip, const char *name);

/* Points *out at the entry's bytes inside the archive after checking the local header, that the
 * entry is stored (not compressed or encrypted) and that it lies inside the file. */
int mv_zip_entry_data(const mv_zip *zip, const mv_zip_entry *entry, const unsigned char **out, mv_error *err);

#endif
