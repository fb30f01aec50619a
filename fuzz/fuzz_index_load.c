/* fuzz_index_load.c — what mv_index_open reads back from disk: manifest.json, and the checksummed
 * record framing of the journal and metadata.records (torn tails, damaged lengths, field decoding).
 * Byte 0 picks: 0 the manifest (written to a scratch directory and read with mv_manifest_read),
 * 1 the records as given, 2 the records with every framed CRC recomputed first, so mutations get
 * past the checksum into the field decoder. Beyond "no crash": a decoded record's vector and texts
 * lie inside the input, and the scan position only moves forward. */
#include "index/index_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char scratch_dir[] = "/tmp/medvlp-fuzz-index-XXXXXX";
static char manifest_path[sizeof scratch_dir + 16];

static void remove_scratch(void)
{
    unlink(manifest_path);
    rmdir(scratch_dir);
}

static void fuzz_manifest(const uint8_t *data, size_t size)
{
    if (!manifest_path[0]) {
        if (!mkdtemp(scratch_dir))
            abort();
        snprintf(manifest_path, sizeof manifest_path, "%s/manifest.json", scratch_dir);
        atexit(remove_scratch);
    }
    FILE *f = fopen(manifest_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f))
        abort();
    mv_manifest manifest;
    mv_error err = {0};
    if (!mv_manifest_read(scratch_dir, &manifest, &err) && (manifest.dim < 1 || manifest.dim > 65536))
        abort();
}

static uint32_t get_u32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* Rewrites the CRC of every record whose length fits, following the framing. */
static void fix_checksums(unsigned char *data, size_t size)
{
    size_t at = 0;
    while (size - at >= MV_RECORD_HEADER) {
        uint32_t len = get_u32(data + at);
        if (len > size - at - MV_RECORD_HEADER)
            break;
        uint32_t crc = (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), data + at + MV_RECORD_HEADER, len);
        for (int i = 0; i < 4; i++)
            data[at + 4 + i] = (unsigned char)(crc >> 8 * i);
        at += MV_RECORD_HEADER + len;
    }
}

static void fuzz_records(const unsigned char *data, size_t size)
{
    size_t pos = 0;
    mv_record record;
    mv_error err = {0};
    while (mv_record_next(data, size, &pos, &record, "fuzz journal", &err) == MV_SCAN_RECORD) {
        if (pos > size)
            abort();
        if (record.kind == MV_RECORD_ADD) {
            if (record.vector < data || record.vector + 4 * (size_t)record.dim > data + size)
                abort();
            float *vector = malloc(sizeof *vector * (record.dim ? record.dim : 1));
            if (!vector)
                abort();
            mv_record_vector(&record, vector);
            free(vector);
        }
        for (int i = 0; i < 3; i++)
            if (record.text_len[i] >= 0 &&
                ((const unsigned char *)record.text[i] < data ||
                 (const unsigned char *)record.text[i] + record.text_len[i] > data + size))
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        fuzz_manifest(data, size);
        return 0;
    }
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (mode == 2)
        fix_checksums(copy, size);
    fuzz_records(copy, size);
    free(copy);
    return 0;
}
