/* index_internal.h — pieces of the index module shared by its files: the checksummed record framing
 * used by the journal and the metadata file (journal.c), and the manifest (manifest.c). */
#ifndef MEDVLP_INDEX_INTERNAL_H
#define MEDVLP_INDEX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "medvlp/error.h"
#include "medvlp/index.h"

/* ---- records: [u32 payload length][u32 CRC-32 of payload][payload], little-endian ---- */

#define MV_RECORD_HEADER 8u
#define MV_RECORD_MAX_PAYLOAD (64u << 20)

enum mv_record_kind {
    MV_RECORD_ADD = 1,    /* journal: vector + metadata of a new id */
    MV_RECORD_META = 2,   /* metadata file: metadata of an id (its vector lives in the FAISS file) */
    MV_RECORD_DELETE = 3, /* both: the id is deleted */
};

/* A decoded record. Strings point into the payload and are NOT NUL-terminated (len = -1 for absent). */
typedef struct mv_record {
    int kind;
    int target;
    int64_t id;
    uint32_t dim;
    const unsigned char *vector; /* dim little-endian f32 (ADD only) */
    const char *text[3];         /* source, caption, metadata JSON */
    int64_t text_len[3];
} mv_record;

enum { MV_TEXT_SOURCE = 0, MV_TEXT_CAPTION = 1, MV_TEXT_METADATA = 2 };

/* A growable byte buffer into which whole records are encoded before one write. */
typedef struct mv_bytes {
    unsigned char *data;
    size_t len, cap;
} mv_bytes;

void mv_bytes_free(mv_bytes *bytes);
/* Appends one framed record; vector may be NULL (META/DELETE). texts[i] NULL = absent. */
int mv_record_encode(mv_bytes *out, int kind, int target, int64_t id, const float *vector, uint32_t dim,
        const char *const texts[3], mv_error *err);

enum mv_scan_result {
    MV_SCAN_RECORD = 0, /* *record filled, *pos advanced */
    MV_SCAN_END,        /* pos == size */
    MV_SCAN_TORN,       /* the rest of the data is an incomplete or damaged last record */
    MV_SCAN_CORRUPT,    /* a damaged record followed by more data (err filled) */
};

/* Reads the record at *pos of data[0..size). what names the file in messages. */
int mv_record_next(const unsigned char *data, size_t size, size_t *pos, mv_record *record,
        const char *what, mv_error *err);
/* Decodes a payload whose CRC already matched; MV_EFORMAT if its fields do not fit. */
int mv_record_decode(const unsigned char *payload, size_t len, mv_record *record, const char *what,
        uint64_t offset, mv_error *err);
/* Copies an ADD record's vector out as floats (record->dim of them). */
void mv_record_vector(const mv_record *record, float *out);
/* Reads and checks the record starting at byte offset of fd into *buffer (grown as needed). */
int mv_record_pread(int fd, uint64_t offset, mv_bytes *buffer, mv_record *record, const char *what,
        mv_error *err);

/* ---- files ---- */

int mv_write_all_at(int fd, const void *data, size_t size, uint64_t offset, const char *what, mv_error *err);
int mv_fsync_path(const char *path, int directory, mv_error *err);
/* Replaces dir/name with data atomically and durably: dir/name.tmp, fsync, rename, fsync of dir. */
int mv_write_file_atomic(const char *dir, const char *name, const void *data, size_t size, mv_error *err);
/* Size and CRC-32 of a whole file. */
int mv_file_crc(const char *path, uint64_t *size, uint32_t *crc, mv_error *err);

/* ---- manifest.json ---- */

#define MV_INDEX_FORMAT_VERSION 1

typedef struct mv_manifest {
    char family[64];
    int dim;
    char weights_checksum[160];
    int64_t generation;      /* names the FAISS files and the journal of this snapshot */
    int64_t next_id;
    uint64_t metadata_bytes; /* committed length of the metadata file */
    struct {
        char factory[128]; /* without "IDMap2," */
        uint64_t file_bytes;
        uint32_t file_crc;
        int64_t vectors; /* ntotal of the FAISS file */
        int64_t live;
    } target[MV_INDEX_N_TARGETS];
} mv_manifest;

int mv_manifest_read(const char *dir, mv_manifest *manifest, mv_error *err);
/* Atomic: temporary file, fsync, rename over manifest.json, fsync of dir. */
int mv_manifest_write(const char *dir, const mv_manifest *manifest, mv_error *err);

#endif
