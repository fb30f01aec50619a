/* fuzz_index_load.c — what mv_index_open reads back from disk: manifest.json, and the checksummed
 * record framing of the journal and metadata.records (torn tails, damaged lengths, field decoding).
 * Byte 0 picks: 0 the manifest (written to a scratch directory and read with mv_manifest_read),
 * 1 the records as given, 2 the records with every framed CRC recomputed first, so mutations get
 * past the checksum into the field decoder, 3 those records as the journal of a real (empty, dim 4)
 * index directory opened with mv_index_open, which replays them into FAISS and the metadata map,
 * then searched and read back. Beyond "no crash": a decoded record's vector and texts lie inside
 * the input, the scan position only moves forward, and an index that opens answers consistently. */
#include "index/index_internal.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* scratch/manifest.json for mode 0, scratch/index/ a real index for mode 3. */
static char scratch_dir[] = "/tmp/medvlp-fuzz-index-XXXXXX";
static char manifest_path[sizeof scratch_dir + 16], index_dir[sizeof scratch_dir + 8];
static const mv_index_model fuzz_model = {"fuzz", 4, ""};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_scratch(void)
{
    nftw(scratch_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f))
        abort();
}

static void make_scratch(void)
{
    if (manifest_path[0])
        return;
    mv_index *index;
    mv_error err = {0};
    if (!mkdtemp(scratch_dir))
        abort();
    atexit(remove_scratch);
    snprintf(manifest_path, sizeof manifest_path, "%s/manifest.json", scratch_dir);
    snprintf(index_dir, sizeof index_dir, "%s/index", scratch_dir);
    if (mv_index_create(index_dir, &fuzz_model, NULL, &index, &err)) {
        fprintf(stderr, "fuzz_index_load: %s\n", err.message);
        abort();
    }
    mv_index_close(index);
}

static void fuzz_manifest(const uint8_t *data, size_t size)
{
    make_scratch();
    write_file(manifest_path, data, size);
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

/* Replaces the index's journal with records and opens it; what opens must answer consistently. */
static void fuzz_journal_replay(const unsigned char *records, size_t size)
{
    make_scratch();
    mv_manifest manifest;
    mv_error err = {0};
    if (mv_manifest_read(index_dir, &manifest, &err))
        abort();
    char journal[sizeof index_dir + 32];
    snprintf(journal, sizeof journal, "%s/journal.%lld", index_dir, (long long)manifest.generation);
    write_file(journal, records, size);
    mv_index_options options = {.snapshot_journal_bytes = -1}; /* keep the directory as it is */
    mv_index *index;
    if (mv_index_open(index_dir, &fuzz_model, &options, NULL, &index, &err))
        return;
    mv_index_stats stats;
    mv_index_get_stats(index, &stats);
    const float query[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    mv_index_hit hits[8];
    for (int t = 0; t < MV_INDEX_N_TARGETS; t++) {
        int n_hits = 0;
        if (mv_index_search(index, t, query, 1, 8, NULL, hits, &n_hits, &err))
            abort(); /* a valid query on an index that opened must be answered */
        if (n_hits > 8 || n_hits > stats.live[t])
            abort();
        for (int h = 0; h < n_hits; h++) {
            mv_index_record record;
            if (mv_index_get(index, hits[h].id, &record, &err) || record.target != t)
                abort(); /* a hit is a live id of its target */
            mv_index_record_free(&record);
        }
    }
    mv_index_close(index);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int mode = data[0] % 4;
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
    if (mode >= 2)
        fix_checksums(copy, size);
    if (mode == 3)
        fuzz_journal_replay(copy, size);
    else
        fuzz_records(copy, size);
    free(copy);
    return 0;
}
