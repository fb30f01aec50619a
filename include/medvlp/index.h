/* index.h — the index directory: an `images` and a `captions` FAISS index of L2-normalised
 * embeddings (scores are cosine similarities), the metadata of every vector, and a manifest naming
 * the model the vectors came from.
 *
 * Durability: mv_index_add/mv_index_delete return only once their journal record is fsync'ed, so an
 * acknowledged change survives kill -9; mv_index_open replays the journal. Snapshots (FAISS files,
 * metadata, manifest) are written to new files and committed by an atomic rename of the manifest.
 *
 * Threads: one mv_index may be shared by threads. Searches and lookups run concurrently (reader
 * lock); adds, deletes, training and snapshots are serialised (writer lock).
 *
 * Ids: int64, assigned by the index from one counter shared by both targets, never reused. */
#ifndef MEDVLP_INDEX_H
#define MEDVLP_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "medvlp/error.h"

typedef struct mv_index mv_index;

enum mv_index_target { MV_INDEX_IMAGES = 0, MV_INDEX_CAPTIONS = 1, MV_INDEX_N_TARGETS = 2 };

#define MV_INDEX_MAX_K 1000
/* Auto factory choice: exact search below this many expected vectors, HNSW above. */
#define MV_INDEX_FLAT_LIMIT 50000

/* The model an index belongs to; an index opened with another model is refused. */
typedef struct mv_index_model {
    const char *family;           /* e.g. "biomedclip" */
    int dim;                      /* embedding dimension */
    const char *weights_checksum; /* hex digest of the weight file(s); "" if unknown */
} mv_index_model;

typedef struct mv_index_options {
    /* FAISS index_factory string for new indexes (without the "IDMap2," prefix, which is always
     * added so ids are stable and vectors reconstructible), e.g. "Flat", "HNSW32", "IVF4096,PQ64".
     * NULL: "Flat" if expected_vectors < MV_INDEX_FLAT_LIMIT, else "HNSW32". Only read by create. */
    const char *factory;
    long long expected_vectors;
    /* HNSW efConstruction of a new index (0: 100; FAISS's own default of 40 leaves a graph whose recall
     * stops rising below 0.95 at 1M vectors, BENCHMARKS.md). FAISS stores it in the index file, so later
     * additions use it too. Only read by create. */
    int ef_construction;
    /* Search-time settings (not stored in the index; each opener chooses): */
    int ef_search;       /* HNSW efSearch (0: 128); ignored by non-HNSW indexes */
    int nprobe;          /* IVF nprobe (0: 16); ignored by non-IVF indexes */
    int refine_k_factor; /* ",RFlat"/",Refine(...)" factories re-rank k·this candidates (0: 64) */
    /* A snapshot is taken inside an add/delete once the journal exceeds this many bytes
     * (0: 256 MiB; negative: never, call mv_index_snapshot). */
    long long snapshot_journal_bytes;
} mv_index_options;

/* What opening found, for the caller to log. */
typedef struct mv_index_open_report {
    long long journal_records; /* records replayed from the journal */
    long long torn_bytes;      /* bytes of an unacknowledged (torn) last journal record, dropped */
    char warning[512];         /* non-empty when something was dropped */
} mv_index_open_report;

/* Creates dir (which must not hold an index yet) with empty indexes. */
int mv_index_create(const char *dir, const mv_index_model *model, const mv_index_options *options,
        mv_index **out, mv_error *err);

/* Opens an index directory. expect (may be NULL) must match the manifest's family, dim and checksum,
 * else MV_EINPUT naming both. report may be NULL. */
int mv_index_open(const char *dir, const mv_index_model *expect, const mv_index_options *options,
        mv_index_open_report *report, mv_index **out, mv_error *err);

/* Closes without snapshotting (the journal already holds every acknowledged change). */
void mv_index_close(mv_index *index);

/* Writes FAISS files, metadata and manifest for the current state and empties the journal. */
int mv_index_snapshot(mv_index *index, mv_error *err);

/* Trains an index whose factory needs it (IVF, PQ) on n_vectors sample vectors, then snapshots.
 * A no-op returning MV_OK for indexes that need no training. */
int mv_index_train(mv_index *index, int target, const float *vectors, size_t n_vectors, mv_error *err);
int mv_index_is_trained(mv_index *index, int target);

typedef struct mv_index_item {
    const float *vector;       /* dim floats; normalised by the index */
    const char *source;        /* source path, or NULL */
    const char *caption;       /* caption text, or NULL */
    const char *metadata_json; /* user metadata: a JSON object, or NULL for {} */
} mv_index_item;

/* Adds n_items to target and writes their ids to ids_out once durable. All-or-nothing for bad
 * input (checked before anything is written). */
int mv_index_add(mv_index *index, int target, const mv_index_item *items, size_t n_items,
        int64_t *ids_out, mv_error *err);

/* Deletes id from target; MV_ENOTFOUND if it is not a live id of that target. Durable on return. */
int mv_index_delete(mv_index *index, int target, int64_t id, mv_error *err);

/* Restricts results to vectors whose user metadata has key equal (JSON equality) to value_json. */
typedef struct mv_index_filter {
    const char *key;
    const char *value_json; /* e.g. "\"CT\"", "42", "true" */
} mv_index_filter;

typedef struct mv_index_hit {
    int64_t id;
    float score; /* cosine similarity */
} mv_index_hit;

/* For each of n_queries vectors (dim floats each, normalised by the index) writes up to k hits,
 * best first, to hits[q * k ...] and their number to n_hits[q]. k in 1..MV_INDEX_MAX_K; filter may
 * be NULL. Deleted ids and filtered-out ids are skipped by over-fetching. */
int mv_index_search(mv_index *index, int target, const float *queries, size_t n_queries, int k,
        const mv_index_filter *filter, mv_index_hit *hits, int *n_hits, mv_error *err);

/* The metadata of one id. Strings are heap-allocated (free with mv_index_record_free). */
typedef struct mv_index_record {
    int64_t id;
    int target;
    char *source;        /* NULL if none */
    char *caption;       /* NULL if none */
    char *metadata_json; /* JSON object text, "{}" if none */
} mv_index_record;

/* MV_ENOTFOUND for an id never assigned, deleted, or not yet durable. */
int mv_index_get(mv_index *index, int64_t id, mv_index_record *record, mv_error *err);
void mv_index_record_free(mv_index_record *record);

/* The stored (normalised; approximate for lossy factories) vector of a live id, dim floats. */
int mv_index_get_vector(mv_index *index, int target, int64_t id, float *vector, mv_error *err);

typedef struct mv_index_stats {
    int dim;
    char family[64];
    char factory[MV_INDEX_N_TARGETS][128]; /* without the IDMap2 prefix */
    long long live[MV_INDEX_N_TARGETS];    /* searchable vectors */
    long long tombstones[MV_INDEX_N_TARGETS]; /* deleted but still inside the FAISS index */
    int64_t next_id;
    int ef_search, nprobe, refine_k_factor; /* the search settings in effect */
} mv_index_stats;

void mv_index_get_stats(mv_index *index, mv_index_stats *stats);

const char *mv_index_target_name(int target);
/* "images" / "captions" → target; -1 otherwise. */
int mv_index_target_parse(const char *name);

#endif
