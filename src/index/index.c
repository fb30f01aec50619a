/* index.c — the index directory: two FAISS indexes (images, captions), the id → metadata map, the
 * journal of online changes and the snapshots that fold the journal into the files.
 *
 * OWNS: the directory layout, the in-memory state and its locking, the durability protocol.
 *
 *   manifest.json         model, current generation G, committed metadata length, next id
 *   images.G.faiss        FAISS snapshot ("IDMap2,<factory>", inner product on unit vectors)
 *   captions.G.faiss
 *   metadata.records      append-only META/DELETE records (journal.c framing), committed length in
 *                         the manifest; bytes past it are an interrupted snapshot's and are cut off
 *   journal.G             ADD/DELETE records since snapshot G; each acknowledged change is fsync'ed
 *   lock                  flock'ed by the one process that has the index open
 *
 * Metadata store. Ids are dense (one counter), so the map id → record is a plain array of 8-byte
 * slots (offset of the id's record in metadata.records or in the journal, its target and a deleted
 * bit): O(1) lookup with one pread, 120 MB of RAM at 15M ids, no second copy of the metadata in
 * memory. The records file is append-only and checksummed per record, so it is as durable as the
 * journal and needs no SQLite: the only queries are by id, and the slot array is rebuilt at open by
 * one sequential scan (about 3 GB for 15M ~200-byte records).
 *
 * Deletes. A "Flat" index removes the vector from FAISS (remove_ids). HNSW cannot remove, and
 * IndexIDMap2's id compaction is only right for flat storage, so every other factory keeps the vector
 * and the deleted slot acts as a tombstone: searches over-fetch and skip it (the same over-fetch
 * serves metadata filters). Tombstones cost search time until the index is rebuilt.
 *
 * Snapshot protocol (writer lock held): write images.G+1.faiss and captions.G+1.faiss and fsync
 * them; append the journal's records (minus vectors) to metadata.records and fsync; create an empty
 * journal.G+1 and fsync it; write manifest.json naming G+1 via temp+fsync+rename+fsync(dir). The
 * rename is the commit: a crash before it leaves G intact (its journal still holds everything), a
 * crash after it leaves only stale G files, removed at the next open. */
#include "medvlp/index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/MetaIndexes_c.h>

#include "index/index_internal.h"
#include "medvlp/file.h"

#define METADATA_NAME "metadata.records"
#define LOCK_NAME "lock"
#define DEFAULT_EF_SEARCH 128
#define DEFAULT_EF_CONSTRUCTION 100
#define DEFAULT_NPROBE 16
/* bench/search, IVF1024,PQ64 codes re-ranked by SQ8, nprobe 64: recall@10 0.97 at 8 for 100k vectors,
 * but 1M vectors need 64 (0.96; 0.90 at 32). Re-ranking 640 candidates costs less than scanning the
 * lists (p50 4.7 vs 3.6 ms at 4), so the default is sized for large indexes. */
#define DEFAULT_REFINE_K_FACTOR 64
#define DEFAULT_SNAPSHOT_BYTES (256ll << 20)
#define MAX_TEXT_BYTES (1u << 20)

/* A slot: bit 63 deleted, bit 62 record is in the journal (else metadata.records), bit 61 target is
 * captions, bits 0..60 record offset + 1. Zero means the id has no record. */
#define SLOT_DELETED (1ull << 63)
#define SLOT_IN_JOURNAL (1ull << 62)
#define SLOT_CAPTIONS (1ull << 61)
#define SLOT_OFFSET_MASK ((1ull << 61) - 1)

struct mv_index {
    char dir[PATH_MAX];
    pthread_rwlock_t lock;
    mv_manifest manifest; /* as last committed */
    FaissIndex *faiss[MV_INDEX_N_TARGETS];
    int tombstoned[MV_INDEX_N_TARGETS]; /* deletes stay in FAISS, filtered at search time */
    uint64_t *slots;
    size_t slots_cap;
    int64_t next_id;
    int64_t live[MV_INDEX_N_TARGETS];
    int lock_fd, metadata_fd, journal_fd;
    uint64_t journal_bytes;
    long long snapshot_journal_bytes;
    int ef_search, nprobe, refine_k_factor;
};

static const char *const target_names[MV_INDEX_N_TARGETS] = {"images", "captions"};

const char *mv_index_target_name(int target)
{
    return target >= 0 && target < MV_INDEX_N_TARGETS ? target_names[target] : "?";
}

int mv_index_target_parse(const char *name)
{
    for (int t = 0; t < MV_INDEX_N_TARGETS; t++)
        if (name && strcmp(name, target_names[t]) == 0)
            return t;
    return -1;
}

/* ---- helpers ---- */

static int faiss_fail(mv_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int faiss_fail(mv_error *err, int code, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *detail = faiss_get_last_error();
    return mv_fail(err, code, "%s: %s", what, detail && *detail ? detail : "FAISS error");
}

static int generation_path(const mv_index *ix, char *out, const char *kind, int64_t generation, mv_error *err)
{
    char name[96];
    if (strcmp(kind, "journal") == 0)
        snprintf(name, sizeof name, "journal.%lld", (long long)generation);
    else
        snprintf(name, sizeof name, "%s.%lld.faiss", kind, (long long)generation);
    return mv_path_join(out, PATH_MAX, ix->dir, name, err);
}

static uint64_t slot_make(int target, int in_journal, uint64_t offset)
{
    return (offset + 1) | (in_journal ? SLOT_IN_JOURNAL : 0) | (target == MV_INDEX_CAPTIONS ? SLOT_CAPTIONS : 0);
}

static int slot_target(uint64_t slot) { return slot & SLOT_CAPTIONS ? MV_INDEX_CAPTIONS : MV_INDEX_IMAGES; }

static int slot_live(const mv_index *ix, int64_t id, int target)
{
    if (id < 0 || id >= ix->next_id)
        return 0;
    uint64_t slot = ix->slots[id];
    return slot != 0 && !(slot & SLOT_DELETED) && slot_target(slot) == target;
}

static int slots_reserve(mv_index *ix, int64_t n_ids, mv_error *err)
{
    if ((size_t)n_ids <= ix->slots_cap)
        return MV_OK;
    size_t cap = ix->slots_cap ? ix->slots_cap : 1024;
    while (cap < (size_t)n_ids)
        cap *= 2;
    uint64_t *slots = realloc(ix->slots, cap * sizeof *slots);
    if (!slots)
        return mv_fail(err, MV_ENOMEM, "index: out of memory for %zu ids", cap);
    memset(slots + ix->slots_cap, 0, (cap - ix->slots_cap) * sizeof *slots);
    ix->slots = slots;
    ix->slots_cap = cap;
    return MV_OK;
}

/* Copies n_rows vectors into out scaled to unit length; what names them in messages. */
static int normalise_rows(const float *in, size_t n_rows, int dim, float *out, const char *what, mv_error *err)
{
    for (size_t r = 0; r < n_rows; r++) {
        const float *row = in + r * (size_t)dim;
        double sum = 0;
        for (int i = 0; i < dim; i++) {
            if (!isfinite(row[i]))
                return mv_fail(err, MV_EINPUT, "%s %zu: component %d is not a finite number", what, r, i);
            sum += (double)row[i] * row[i];
        }
        if (sum == 0)
            return mv_fail(err, MV_EINPUT, "%s %zu: zero vector has no direction", what, r);
        float scale = (float)(1.0 / sqrt(sum));
        for (int i = 0; i < dim; i++)
            out[r * (size_t)dim + i] = row[i] * scale;
    }
    return MV_OK;
}

static void set_parameter(mv_index *ix, int target, const char *name, double value)
{
    FaissParameterSpace *space = NULL;
    if (faiss_ParameterSpace_new(&space) != 0)
        return;
    faiss_ParameterSpace_set_index_parameter(space, ix->faiss[target], name, value);
    faiss_ParameterSpace_free(space);
}

static void set_ef_search(mv_index *ix, int target, int ef_search)
{
    set_parameter(ix, target, "efSearch", ef_search);
}

static void set_search_parameters(mv_index *ix)
{
    for (int t = 0; t < MV_INDEX_N_TARGETS; t++) {
        /* Only parameters the factory has; ParameterSpace throws for the others. */
        if (strstr(ix->manifest.target[t].factory, "HNSW"))
            set_ef_search(ix, t, ix->ef_search);
        if (strstr(ix->manifest.target[t].factory, "IVF"))
            set_parameter(ix, t, "nprobe", ix->nprobe);
        if (strstr(ix->manifest.target[t].factory, "RFlat") || strstr(ix->manifest.target[t].factory, "Refine("))
            set_parameter(ix, t, "k_factor_rf", ix->refine_k_factor);
    }
}

static int file_open(const char *path, int flags, int *fd, mv_error *err)
{
    *fd = open(path, flags | O_CLOEXEC, 0644);
    if (*fd < 0)
        return mv_fail(err, errno == ENOENT ? MV_EFORMAT : MV_EIO, "%s: %s", path, strerror(errno));
    return MV_OK;
}

static int file_truncate(int fd, uint64_t size, const char *what, mv_error *err)
{
    if (ftruncate(fd, (off_t)size) != 0 || fsync(fd) != 0)
        return mv_fail(err, MV_EIO, "%s: truncate to %llu bytes: %s", what, (unsigned long long)size,
                strerror(errno));
    return MV_OK;
}

/* ---- applying changes to the in-memory state (live path and journal replay share these) ---- */

static int apply_add(mv_index *ix, int target, int64_t id, const float *unit_vectors, size_t n,
        const uint64_t *record_offsets, mv_error *err)
{
    int status = slots_reserve(ix, id + (int64_t)n, err);
    if (status)
        return status;
    idx_t *ids = malloc(n * sizeof *ids);
    if (!ids)
        return mv_fail(err, MV_ENOMEM, "index: out of memory");
    for (size_t i = 0; i < n; i++)
        ids[i] = id + (int64_t)i;
    int rc = faiss_Index_add_with_ids(ix->faiss[target], (idx_t)n, unit_vectors, ids);
    free(ids);
    if (rc != 0)
        return faiss_fail(err, MV_EINTERNAL, "%s: adding %zu vectors to %s", ix->dir, n, target_names[target]);
    for (size_t i = 0; i < n; i++)
        ix->slots[id + (int64_t)i] = slot_make(target, 1, record_offsets[i]);
    ix->live[target] += (int64_t)n;
    ix->next_id = id + (int64_t)n;
    return MV_OK;
}

static int apply_delete(mv_index *ix, int target, int64_t id, mv_error *err)
{
    if (!ix->tombstoned[target]) {
        FaissIDSelectorBatch *selector = NULL;
        idx_t one = id;
        size_t n_removed = 0;
        if (faiss_IDSelectorBatch_new(&selector, 1, &one) != 0)
            return faiss_fail(err, MV_EINTERNAL, "%s: delete %lld", ix->dir, (long long)id);
        int rc = faiss_Index_remove_ids(ix->faiss[target], (const FaissIDSelector *)selector, &n_removed);
        faiss_IDSelector_free((FaissIDSelector *)selector);
        if (rc != 0 || n_removed != 1)
            return rc != 0 ? faiss_fail(err, MV_EINTERNAL, "%s: delete %lld", ix->dir, (long long)id)
                           : mv_fail(err, MV_EINTERNAL, "%s: id %lld was not in the %s FAISS index", ix->dir,
                                     (long long)id, target_names[target]);
    }
    ix->slots[id] |= SLOT_DELETED;
    ix->live[target]--;
    return MV_OK;
}

/* Appends encoded records to the journal and makes them durable; on failure cuts them off again. */
static int journal_append(mv_index *ix, const mv_bytes *records, mv_error *err)
{
    char path[PATH_MAX];
    int status = generation_path(ix, path, "journal", ix->manifest.generation, err);
    if (status)
        return status;
    status = mv_write_all_at(ix->journal_fd, records->data, records->len, ix->journal_bytes, path, err);
    if (!status && fdatasync(ix->journal_fd) != 0)
        status = mv_fail(err, MV_EIO, "%s: fsync: %s", path, strerror(errno));
    if (status) {
        mv_error ignored;
        file_truncate(ix->journal_fd, ix->journal_bytes, path, &ignored);
        return status;
    }
    ix->journal_bytes += records->len;
    return MV_OK;
}

/* Undoes a journal append whose in-memory application failed, so the change stays unacknowledged. */
static void journal_cut(mv_index *ix, uint64_t size)
{
    mv_error ignored;
    if (file_truncate(ix->journal_fd, size, "journal", &ignored) == MV_OK)
        ix->journal_bytes = size;
}

/* ---- snapshot ---- */

static int write_faiss_file(mv_index *ix, int target, int64_t generation, mv_manifest *next, mv_error *err)
{
    char path[PATH_MAX];
    int status = generation_path(ix, path, target_names[target], generation, err);
    if (status)
        return status;
    if (faiss_write_index_fname(ix->faiss[target], path) != 0)
        return faiss_fail(err, MV_EIO, "%s: writing the FAISS index", path);
    if ((status = mv_fsync_path(path, 0, err)) ||
            (status = mv_file_crc(path, &next->target[target].file_bytes, &next->target[target].file_crc, err)))
        return status;
    next->target[target].vectors = faiss_Index_ntotal(ix->faiss[target]);
    next->target[target].live = ix->live[target];
    return MV_OK;
}

typedef struct moved_record {
    int64_t id;
    uint64_t offset; /* in metadata.records */
} moved_record;

/* Re-encodes the journal's records without vectors for metadata.records, starting at base. */
static int journal_to_metadata(mv_index *ix, uint64_t base, mv_bytes *out, moved_record **moved,
        size_t *n_moved, mv_error *err)
{
    *moved = NULL;
    *n_moved = 0;
    if (ix->journal_bytes == 0)
        return MV_OK;
    char path[PATH_MAX];
    int status = generation_path(ix, path, "journal", ix->manifest.generation, err);
    if (status)
        return status;
    mv_mapped_file journal;
    if ((status = mv_file_map(path, &journal, err)))
        return status;
    size_t pos = 0, cap = 0;
    mv_record record;
    char *texts[3] = {NULL, NULL, NULL};
    while (pos < ix->journal_bytes) {
        int scan = mv_record_next(journal.data, ix->journal_bytes, &pos, &record, path, err);
        if (scan != MV_SCAN_RECORD) {
            status = scan == MV_SCAN_CORRUPT ? MV_EFORMAT : mv_fail(err, MV_EFORMAT, "%s: changed on disk", path);
            break;
        }
        for (int i = 0; i < 3; i++)
            texts[i] = record.text_len[i] < 0 ? NULL : strndup(record.text[i], (size_t)record.text_len[i]);
        uint64_t offset = base + out->len;
        status = mv_record_encode(out, record.kind == MV_RECORD_ADD ? MV_RECORD_META : MV_RECORD_DELETE,
                record.target, record.id, NULL, 0, (const char *const *)texts, err);
        for (int i = 0; i < 3; i++) {
            free(texts[i]);
            texts[i] = NULL;
        }
        if (status)
            break;
        if (record.kind == MV_RECORD_ADD) {
            if (*n_moved == cap) {
                cap = cap ? 2 * cap : 256;
                moved_record *grown = realloc(*moved, cap * sizeof *grown);
                if (!grown) {
                    status = mv_fail(err, MV_ENOMEM, "index: out of memory");
                    break;
                }
                *moved = grown;
            }
            (*moved)[(*n_moved)++] = (moved_record){record.id, offset};
        }
    }
    mv_file_unmap(&journal);
    return status;
}

static void remove_generation_files(mv_index *ix, int64_t generation)
{
    static const char *const kinds[] = {"images", "captions", "journal"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (generation_path(ix, path, kinds[i], generation, NULL) == MV_OK)
            unlink(path);
}

static int snapshot_locked(mv_index *ix, mv_error *err)
{
    mv_manifest next = ix->manifest;
    next.generation = ix->manifest.generation + 1;
    next.next_id = ix->next_id;
    int status = MV_OK, new_journal = -1;
    mv_bytes records = {0};
    moved_record *moved = NULL;
    size_t n_moved = 0;
    char path[PATH_MAX];
    for (int t = 0; t < MV_INDEX_N_TARGETS && !status; t++)
        status = write_faiss_file(ix, t, next.generation, &next, err);
    if (!status)
        status = journal_to_metadata(ix, ix->manifest.metadata_bytes, &records, &moved, &n_moved, err);
    if (!status)
        status = file_truncate(ix->metadata_fd, ix->manifest.metadata_bytes, METADATA_NAME, err);
    if (!status && records.len) {
        status = mv_write_all_at(ix->metadata_fd, records.data, records.len, ix->manifest.metadata_bytes,
                METADATA_NAME, err);
        if (!status && fsync(ix->metadata_fd) != 0)
            status = mv_fail(err, MV_EIO, "%s/%s: fsync: %s", ix->dir, METADATA_NAME, strerror(errno));
    }
    next.metadata_bytes = ix->manifest.metadata_bytes + records.len;
    if (!status && !(status = generation_path(ix, path, "journal", next.generation, err)) &&
            !(status = file_open(path, O_RDWR | O_CREAT | O_TRUNC, &new_journal, err)) && fsync(new_journal) != 0)
        status = mv_fail(err, MV_EIO, "%s: fsync: %s", path, strerror(errno));
    if (!status)
        status = mv_manifest_write(ix->dir, &next, err); /* the commit point */
    if (status) {
        if (new_journal >= 0)
            close(new_journal);
        remove_generation_files(ix, next.generation);
        mv_error_prefix(err, "%s: snapshot", ix->dir);
    } else {
        for (size_t i = 0; i < n_moved; i++) {
            uint64_t *slot = &ix->slots[moved[i].id];
            *slot = (*slot & (SLOT_DELETED | SLOT_CAPTIONS)) | (moved[i].offset + 1);
        }
        if (ix->journal_fd >= 0)
            close(ix->journal_fd);
        ix->journal_fd = new_journal;
        ix->journal_bytes = 0;
        int64_t old = ix->manifest.generation;
        ix->manifest = next;
        remove_generation_files(ix, old);
    }
    mv_bytes_free(&records);
    free(moved);
    return status;
}

static int maybe_snapshot(mv_index *ix, mv_error *err)
{
    if (ix->snapshot_journal_bytes > 0 && ix->journal_bytes >= (uint64_t)ix->snapshot_journal_bytes)
        return snapshot_locked(ix, err);
    return MV_OK;
}

int mv_index_snapshot(mv_index *ix, mv_error *err)
{
    pthread_rwlock_wrlock(&ix->lock);
    int status = snapshot_locked(ix, err);
    pthread_rwlock_unlock(&ix->lock);
    return status;
}

/* ---- open / create / close ---- */

static int index_alloc(const char *dir, const mv_index_options *options, mv_index **out, mv_error *err)
{
    mv_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", dir);
    if (strlen(dir) >= sizeof ix->dir) {
        free(ix);
        return mv_fail(err, MV_EINPUT, "index path too long: %s", dir);
    }
    strcpy(ix->dir, dir);
    pthread_rwlock_init(&ix->lock, NULL);
    ix->lock_fd = ix->metadata_fd = ix->journal_fd = -1;
    ix->ef_search = options && options->ef_search > 0 ? options->ef_search : DEFAULT_EF_SEARCH;
    ix->nprobe = options && options->nprobe > 0 ? options->nprobe : DEFAULT_NPROBE;
    ix->refine_k_factor = options && options->refine_k_factor > 0 ? options->refine_k_factor
                                                                   : DEFAULT_REFINE_K_FACTOR;
    ix->snapshot_journal_bytes = options && options->snapshot_journal_bytes ? options->snapshot_journal_bytes
                                                                           : DEFAULT_SNAPSHOT_BYTES;
    *out = ix;
    return MV_OK;
}

/* One process at a time writes an index directory; a second opener is refused, not corrupted. */
static int take_directory_lock(mv_index *ix, mv_error *err)
{
    char path[PATH_MAX];
    int status = mv_path_join(path, sizeof path, ix->dir, LOCK_NAME, err);
    if (status || (status = file_open(path, O_RDWR | O_CREAT, &ix->lock_fd, err)))
        return status;
    if (flock(ix->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return mv_fail(err, errno == EWOULDBLOCK ? MV_EINPUT : MV_EIO, "%s: %s", ix->dir,
                errno == EWOULDBLOCK ? "index is open in another process" : strerror(errno));
    return MV_OK;
}

void mv_index_close(mv_index *ix)
{
    if (!ix)
        return;
    for (int t = 0; t < MV_INDEX_N_TARGETS; t++)
        if (ix->faiss[t])
            faiss_Index_free(ix->faiss[t]);
    if (ix->journal_fd >= 0)
        close(ix->journal_fd);
    if (ix->metadata_fd >= 0)
        close(ix->metadata_fd);
    if (ix->lock_fd >= 0)
        close(ix->lock_fd);
    pthread_rwlock_destroy(&ix->lock);
    free(ix->slots);
    free(ix);
}

static int factory_valid(const char *factory, mv_error *err)
{
    if (!factory || !*factory || strlen(factory) >= sizeof ((mv_manifest *)0)->target[0].factory - 8)
        return mv_fail(err, MV_EINPUT, "index factory string is empty or too long");
    if (strstr(factory, "IDMap"))
        return mv_fail(err, MV_EINPUT, "index factory \"%s\": leave out IDMap (IDMap2 is always added)", factory);
    return MV_OK;
}

/* IDMap2 around the factory's index. Wrapped here rather than by prefixing "IDMap2," to the
 * factory string: index_factory puts a refinement stage (",RFlat", ",Refine(...)") outside the
 * IDMap2, and IndexRefine has no add_with_ids. */
static int new_faiss_index(int dim, const char *factory, FaissIndex **out, mv_error *err)
{
    FaissIndex *inner = NULL;
    FaissIndexIDMap2 *wrapped = NULL;
    if (faiss_index_factory(&inner, dim, factory, METRIC_INNER_PRODUCT) != 0)
        return faiss_fail(err, MV_EINPUT, "index factory \"%s\" is not valid for dim %d", factory, dim);
    if (faiss_IndexIDMap2_new(&wrapped, inner) != 0) {
        faiss_Index_free(inner);
        return faiss_fail(err, MV_ENOMEM, "index factory \"%s\": wrapping in IDMap2", factory);
    }
    faiss_IndexIDMap2_set_own_fields(wrapped, 1);
    *out = (FaissIndex *)wrapped;
    return MV_OK;
}

int mv_index_create(const char *dir, const mv_index_model *model, const mv_index_options *options,
        mv_index **out, mv_error *err)
{
    *out = NULL;
    if (!model || !model->family || model->dim <= 0 || model->dim > 65536)
        return mv_fail(err, MV_EINPUT, "%s: index model needs a family and a dim in 1..65536", dir);
    const char *factory = options && options->factory ? options->factory
            : options && options->expected_vectors >= MV_INDEX_FLAT_LIMIT ? "HNSW32" : "Flat";
    const char *checksum = model->weights_checksum ? model->weights_checksum : "";
    int status = factory_valid(factory, err);
    if (status)
        return status;
    if (strlen(model->family) >= sizeof ((mv_manifest *)0)->family ||
            strlen(checksum) >= sizeof ((mv_manifest *)0)->weights_checksum)
        return mv_fail(err, MV_EINPUT, "%s: model family or checksum too long", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return mv_fail(err, MV_EIO, "%s: mkdir: %s", dir, strerror(errno));
    mv_index *ix;
    if ((status = index_alloc(dir, options, &ix, err)))
        return status;
    char path[PATH_MAX];
    mv_manifest existing;
    if ((status = take_directory_lock(ix, err)))
        goto fail;
    if (mv_manifest_read(dir, &existing, NULL) != MV_ENOTFOUND) {
        status = mv_fail(err, MV_EINPUT, "%s: already holds an index (manifest.json exists)", dir);
        goto fail;
    }
    mv_manifest *m = &ix->manifest;
    strcpy(m->family, model->family);
    strcpy(m->weights_checksum, checksum);
    m->dim = model->dim;
    m->generation = -1; /* the first snapshot below makes generation 0 */
    for (int t = 0; t < MV_INDEX_N_TARGETS; t++) {
        strcpy(m->target[t].factory, factory);
        if ((status = new_faiss_index(model->dim, factory, &ix->faiss[t], err)))
            goto fail;
        ix->tombstoned[t] = strcmp(factory, "Flat") != 0;
        if (strstr(factory, "HNSW"))
            set_parameter(ix, t, "efConstruction", options && options->ef_construction > 0
                                                          ? options->ef_construction : DEFAULT_EF_CONSTRUCTION);
    }
    set_search_parameters(ix);
    if ((status = mv_path_join(path, sizeof path, dir, METADATA_NAME, err)) ||
            (status = file_open(path, O_RDWR | O_CREAT | O_TRUNC, &ix->metadata_fd, err)) ||
            (status = snapshot_locked(ix, err)))
        goto fail;
    *out = ix;
    return MV_OK;
fail:
    mv_index_close(ix);
    return status;
}

static int check_model(const mv_index *ix, const mv_index_model *expect, mv_error *err)
{
    const mv_manifest *m = &ix->manifest;
    const char *checksum = expect->weights_checksum ? expect->weights_checksum : "";
    int same_checksum = !*checksum || !*m->weights_checksum || strcmp(checksum, m->weights_checksum) == 0;
    if (expect->family && strcmp(expect->family, m->family) == 0 && expect->dim == m->dim && same_checksum)
        return MV_OK;
    return mv_fail(err, MV_EINPUT, "%s: index was built with model family=%s dim=%d weights=%s, but the loaded "
            "model is family=%s dim=%d weights=%s; use the matching model or rebuild the index", ix->dir,
            m->family, m->dim, *m->weights_checksum ? m->weights_checksum : "(unknown)",
            expect->family ? expect->family : "(none)", expect->dim, *checksum ? checksum : "(unknown)");
}

static int load_faiss_file(mv_index *ix, int target, mv_error *err)
{
    char path[PATH_MAX];
    int status = generation_path(ix, path, target_names[target], ix->manifest.generation, err);
    if (status)
        return status;
    uint64_t size;
    uint32_t crc;
    /* Checked before FAISS parses it: a damaged file must be an error, not a wild allocation. */
    if ((status = mv_file_crc(path, &size, &crc, err)))
        return status == MV_ENOTFOUND ? mv_fail(err, MV_EFORMAT, "%s: missing (named by the manifest)", path)
                                      : status;
    if (size != ix->manifest.target[target].file_bytes || crc != ix->manifest.target[target].file_crc)
        return mv_fail(err, MV_EFORMAT, "%s: corrupt (%llu bytes, CRC-32 %08x; the manifest says %llu bytes, %08x)",
                path, (unsigned long long)size, crc, (unsigned long long)ix->manifest.target[target].file_bytes,
                ix->manifest.target[target].file_crc);
    if (faiss_read_index_fname(path, 0, &ix->faiss[target]) != 0)
        return faiss_fail(err, MV_EFORMAT, "%s: not a readable FAISS index", path);
    if (faiss_Index_d(ix->faiss[target]) != ix->manifest.dim ||
            faiss_Index_ntotal(ix->faiss[target]) != ix->manifest.target[target].vectors)
        return mv_fail(err, MV_EFORMAT, "%s: holds %lld vectors of dim %d, the manifest says %lld of dim %d", path,
                (long long)faiss_Index_ntotal(ix->faiss[target]), faiss_Index_d(ix->faiss[target]),
                (long long)ix->manifest.target[target].vectors, ix->manifest.dim);
    ix->tombstoned[target] = strcmp(ix->manifest.target[target].factory, "Flat") != 0;
    return MV_OK;
}

/* Rebuilds the slots from the committed part of metadata.records (cutting off any uncommitted tail). */
static int load_metadata(mv_index *ix, mv_error *err)
{
    char path[PATH_MAX];
    int status = mv_path_join(path, sizeof path, ix->dir, METADATA_NAME, err);
    if (status || (status = file_open(path, O_RDWR, &ix->metadata_fd, err)))
        return status;
    struct stat st;
    if (fstat(ix->metadata_fd, &st) != 0)
        return mv_fail(err, MV_EIO, "%s: %s", path, strerror(errno));
    uint64_t committed = ix->manifest.metadata_bytes;
    if ((uint64_t)st.st_size < committed)
        return mv_fail(err, MV_EFORMAT, "%s: %llu bytes, shorter than the %llu the manifest committed", path,
                (unsigned long long)st.st_size, (unsigned long long)committed);
    if ((uint64_t)st.st_size > committed && (status = file_truncate(ix->metadata_fd, committed, path, err)))
        return status;
    if ((status = slots_reserve(ix, ix->manifest.next_id, err)))
        return status;
    ix->next_id = ix->manifest.next_id;
    mv_mapped_file file;
    if ((status = mv_file_map(path, &file, err)))
        return status;
    size_t pos = 0;
    mv_record record;
    for (;;) {
        size_t at = pos;
        int scan = mv_record_next(file.data, file.size, &pos, &record, path, err);
        if (scan == MV_SCAN_END)
            break;
        if (scan == MV_SCAN_TORN) { /* committed bytes were fsync'ed before the manifest named them */
            status = mv_fail(err, MV_EFORMAT, "%s: truncated record at byte %zu", path, at);
            break;
        }
        if (scan == MV_SCAN_CORRUPT) {
            status = MV_EFORMAT;
            break;
        }
        uint64_t *slot = record.id < ix->next_id ? &ix->slots[record.id] : NULL;
        if (record.kind == MV_RECORD_META && slot && *slot == 0) {
            *slot = slot_make(record.target, 0, at);
            ix->live[record.target]++;
        } else if (record.kind == MV_RECORD_DELETE && slot && slot_live(ix, record.id, record.target)) {
            *slot |= SLOT_DELETED;
            ix->live[record.target]--;
        } else {
            status = mv_fail(err, MV_EFORMAT, "%s: record at byte %zu (kind %d, id %lld) contradicts the ones before",
                    path, at, record.kind, (long long)record.id);
            break;
        }
    }
    mv_file_unmap(&file);
    for (int t = 0; t < MV_INDEX_N_TARGETS && !status; t++)
        if (ix->live[t] != ix->manifest.target[t].live)
            status = mv_fail(err, MV_EFORMAT, "%s: %lld live %s, the manifest says %lld", path,
                    (long long)ix->live[t], target_names[t], (long long)ix->manifest.target[t].live);
    return status;
}

static int replay_record(mv_index *ix, const mv_record *record, uint64_t at, float *vector, const char *path,
        mv_error *err)
{
    if (record->kind == MV_RECORD_ADD) {
        if (record->id != ix->next_id || record->dim != (uint32_t)ix->manifest.dim)
            return mv_fail(err, MV_EFORMAT, "%s: add record at byte %llu has id %lld dim %u, expected id %lld dim %d",
                    path, (unsigned long long)at, (long long)record->id, record->dim, (long long)ix->next_id,
                    ix->manifest.dim);
        mv_record_vector(record, vector);
        return apply_add(ix, record->target, record->id, vector, 1, &at, err);
    }
    if (record->kind == MV_RECORD_DELETE && slot_live(ix, record->id, record->target))
        return apply_delete(ix, record->target, record->id, err);
    return mv_fail(err, MV_EFORMAT, "%s: record at byte %llu (kind %d, id %lld) does not apply", path,
            (unsigned long long)at, record->kind, (long long)record->id);
}

static int replay_journal(mv_index *ix, mv_index_open_report *report, mv_error *err)
{
    char path[PATH_MAX];
    int status = generation_path(ix, path, "journal", ix->manifest.generation, err);
    if (status || (status = file_open(path, O_RDWR, &ix->journal_fd, err)))
        return status;
    mv_mapped_file file;
    if ((status = mv_file_map(path, &file, err)))
        return status;
    float *vector = malloc((size_t)ix->manifest.dim * sizeof *vector);
    if (!vector) {
        mv_file_unmap(&file);
        return mv_fail(err, MV_ENOMEM, "index: out of memory");
    }
    size_t pos = 0;
    mv_record record;
    for (;;) {
        size_t at = pos;
        int scan = mv_record_next(file.data, file.size, &pos, &record, path, err);
        if (scan == MV_SCAN_END)
            break;
        if (scan == MV_SCAN_CORRUPT) {
            status = MV_EFORMAT;
            break;
        }
        if (scan == MV_SCAN_TORN) {
            report->torn_bytes = (long long)(file.size - at);
            snprintf(report->warning, sizeof report->warning, "%.300s: dropped a torn last record (%lld bytes "
                    "at byte %zu): a write that was never acknowledged", path, report->torn_bytes, at);
            status = file_truncate(ix->journal_fd, at, path, err);
            break;
        }
        if ((status = replay_record(ix, &record, at, vector, path, err)))
            break;
        report->journal_records++;
        ix->journal_bytes = pos;
    }
    free(vector);
    mv_file_unmap(&file);
    return status;
}

/* Removes what interrupted snapshots left: files of other generations and a temporary manifest. */
static void remove_stale_files(mv_index *ix)
{
    DIR *dir = opendir(ix->dir);
    if (!dir)
        return;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        long long generation = -1;
        int end = 0;
        char kind[16];
        const char *name = entry->d_name;
        int stale = strcmp(name, "manifest.json.tmp") == 0;
        if ((sscanf(name, "journal.%lld%n", &generation, &end) == 1 && name[end] == '\0') ||
                (sscanf(name, "%15[a-z].%lld.faiss%n", kind, &generation, &end) == 2 && name[end] == '\0' &&
                        mv_index_target_parse(kind) >= 0))
            stale = generation != ix->manifest.generation;
        if (stale)
            unlinkat(dirfd(dir), name, 0);
    }
    closedir(dir);
}

int mv_index_open(const char *dir, const mv_index_model *expect, const mv_index_options *options,
        mv_index_open_report *report, mv_index **out, mv_error *err)
{
    *out = NULL;
    mv_index_open_report ignored;
    if (!report)
        report = &ignored;
    memset(report, 0, sizeof *report);
    mv_index *ix;
    int status = index_alloc(dir, options, &ix, err);
    if (status)
        return status;
    if ((status = take_directory_lock(ix, err)) || (status = mv_manifest_read(dir, &ix->manifest, err)) ||
            (expect && (status = check_model(ix, expect, err))))
        goto fail;
    for (int t = 0; t < MV_INDEX_N_TARGETS && !status; t++)
        status = load_faiss_file(ix, t, err);
    if (status || (status = load_metadata(ix, err)) || (status = replay_journal(ix, report, err)))
        goto fail;
    set_search_parameters(ix);
    remove_stale_files(ix);
    *out = ix;
    return MV_OK;
fail:
    mv_index_close(ix);
    return status;
}

/* ---- training ---- */

int mv_index_is_trained(mv_index *ix, int target)
{
    if (target < 0 || target >= MV_INDEX_N_TARGETS)
        return 0;
    pthread_rwlock_rdlock(&ix->lock);
    int trained = faiss_Index_is_trained(ix->faiss[target]);
    pthread_rwlock_unlock(&ix->lock);
    return trained;
}

int mv_index_train(mv_index *ix, int target, const float *vectors, size_t n_vectors, mv_error *err)
{
    if (target < 0 || target >= MV_INDEX_N_TARGETS || !vectors || n_vectors == 0)
        return mv_fail(err, MV_EINPUT, "index train: needs a target and at least one vector");
    float *unit = malloc(n_vectors * (size_t)ix->manifest.dim * sizeof *unit);
    if (!unit)
        return mv_fail(err, MV_ENOMEM, "index train: out of memory for %zu vectors", n_vectors);
    int status = normalise_rows(vectors, n_vectors, ix->manifest.dim, unit, "training vector", err);
    pthread_rwlock_wrlock(&ix->lock);
    if (!status && !faiss_Index_is_trained(ix->faiss[target])) {
        if (faiss_Index_train(ix->faiss[target], (idx_t)n_vectors, unit) != 0)
            status = faiss_fail(err, MV_EINPUT, "%s: training %s (%s) on %zu vectors", ix->dir,
                    target_names[target], ix->manifest.target[target].factory, n_vectors);
        else
            status = snapshot_locked(ix, err); /* training is not journaled */
    }
    pthread_rwlock_unlock(&ix->lock);
    free(unit);
    return status;
}

/* ---- add / delete ---- */

static int check_item(const mv_index_item *item, size_t i, mv_error *err)
{
    const char *texts[3] = {item->source, item->caption, item->metadata_json};
    static const char *const names[3] = {"source", "caption", "metadata"};
    for (int t = 0; t < 3; t++)
        if (texts[t] && strlen(texts[t]) > MAX_TEXT_BYTES)
            return mv_fail(err, MV_ETOOBIG, "item %zu: %s is over %u bytes", i, names[t], MAX_TEXT_BYTES);
    if (!item->metadata_json)
        return MV_OK;
    json_error_t jerr;
    json_t *value = json_loads(item->metadata_json, JSON_REJECT_DUPLICATES, &jerr);
    int ok = json_is_object(value);
    json_decref(value);
    return ok ? MV_OK : mv_fail(err, MV_EINPUT, "item %zu: metadata must be a JSON object%s%s", i,
                                value ? "" : ": ", value ? "" : jerr.text);
}

int mv_index_add(mv_index *ix, int target, const mv_index_item *items, size_t n_items, int64_t *ids_out,
        mv_error *err)
{
    if (target < 0 || target >= MV_INDEX_N_TARGETS)
        return mv_fail(err, MV_EINPUT, "index add: unknown target %d", target);
    if (!items || n_items == 0 || !ids_out)
        return mv_fail(err, MV_EINPUT, "index add: no items");
    int dim = ix->manifest.dim, status = MV_OK;
    float *unit = malloc(n_items * (size_t)dim * sizeof *unit);
    uint64_t *offsets = malloc(n_items * sizeof *offsets);
    mv_bytes records = {0};
    if (!unit || !offsets) {
        status = mv_fail(err, MV_ENOMEM, "index add: out of memory for %zu items", n_items);
        goto done;
    }
    for (size_t i = 0; i < n_items && !status; i++) {
        status = items[i].vector ? check_item(&items[i], i, err)
                                 : mv_fail(err, MV_EINPUT, "item %zu: no vector", i);
        if (!status)
            status = normalise_rows(items[i].vector, 1, dim, unit + i * (size_t)dim, "item", err);
    }
    if (status)
        goto done;
    pthread_rwlock_wrlock(&ix->lock);
    if (!faiss_Index_is_trained(ix->faiss[target]))
        status = mv_fail(err, MV_EINPUT, "%s: the %s index (%s) must be trained before adding vectors", ix->dir,
                target_names[target], ix->manifest.target[target].factory);
    if (!status)
        status = maybe_snapshot(ix, err);
    int64_t first_id = ix->next_id;
    uint64_t journal_start = ix->journal_bytes;
    for (size_t i = 0; i < n_items && !status; i++) {
        const char *texts[3] = {items[i].source, items[i].caption, items[i].metadata_json};
        offsets[i] = journal_start + records.len;
        status = mv_record_encode(&records, MV_RECORD_ADD, target, first_id + (int64_t)i, unit + i * (size_t)dim,
                (uint32_t)dim, texts, err);
    }
    if (!status && !(status = journal_append(ix, &records, err))) {
        if ((status = apply_add(ix, target, first_id, unit, n_items, offsets, err)))
            journal_cut(ix, journal_start);
        else
            for (size_t i = 0; i < n_items; i++)
                ids_out[i] = first_id + (int64_t)i;
    }
    pthread_rwlock_unlock(&ix->lock);
done:
    mv_bytes_free(&records);
    free(unit);
    free(offsets);
    return status;
}

int mv_index_delete(mv_index *ix, int target, int64_t id, mv_error *err)
{
    if (target < 0 || target >= MV_INDEX_N_TARGETS)
        return mv_fail(err, MV_EINPUT, "index delete: unknown target %d", target);
    mv_bytes record = {0};
    pthread_rwlock_wrlock(&ix->lock);
    int status = slot_live(ix, id, target) ? maybe_snapshot(ix, err)
            : mv_fail(err, MV_ENOTFOUND, "%s: no %s with id %lld", ix->dir, target_names[target], (long long)id);
    const char *no_texts[3] = {NULL, NULL, NULL};
    uint64_t journal_start = ix->journal_bytes;
    if (!status && !(status = mv_record_encode(&record, MV_RECORD_DELETE, target, id, NULL, 0, no_texts, err)) &&
            !(status = journal_append(ix, &record, err)) && (status = apply_delete(ix, target, id, err)))
        journal_cut(ix, journal_start);
    pthread_rwlock_unlock(&ix->lock);
    mv_bytes_free(&record);
    return status;
}

/* ---- lookups ---- */

/* Reads the record of a live id (reader lock held). */
static int read_record(mv_index *ix, int64_t id, mv_bytes *buffer, mv_record *record, mv_error *err)
{
    if (id < 0 || id >= ix->next_id || ix->slots[id] == 0 || (ix->slots[id] & SLOT_DELETED))
        return mv_fail(err, MV_ENOTFOUND, "%s: no item with id %lld", ix->dir, (long long)id);
    uint64_t slot = ix->slots[id];
    int in_journal = (slot & SLOT_IN_JOURNAL) != 0;
    int status = mv_record_pread(in_journal ? ix->journal_fd : ix->metadata_fd, (slot & SLOT_OFFSET_MASK) - 1,
            buffer, record, in_journal ? "journal" : METADATA_NAME, err);
    if (!status && record->id != id)
        status = mv_fail(err, MV_EFORMAT, "%s: record for id %lld names id %lld", ix->dir, (long long)id,
                (long long)record->id);
    return status ? mv_error_prefix(err, "%s", ix->dir) : MV_OK;
}

void mv_index_record_free(mv_index_record *record)
{
    free(record->source);
    free(record->caption);
    free(record->metadata_json);
    memset(record, 0, sizeof *record);
}

int mv_index_get(mv_index *ix, int64_t id, mv_index_record *out, mv_error *err)
{
    memset(out, 0, sizeof *out);
    mv_bytes buffer = {0};
    mv_record record;
    pthread_rwlock_rdlock(&ix->lock);
    int status = read_record(ix, id, &buffer, &record, err);
    pthread_rwlock_unlock(&ix->lock);
    if (!status) {
        char **fields[3] = {&out->source, &out->caption, &out->metadata_json};
        for (int i = 0; i < 3; i++)
            if (record.text_len[i] >= 0 && !(*fields[i] = strndup(record.text[i], (size_t)record.text_len[i])))
                status = mv_fail(err, MV_ENOMEM, "index: out of memory");
        if (!out->metadata_json && !status && !(out->metadata_json = strdup("{}")))
            status = mv_fail(err, MV_ENOMEM, "index: out of memory");
        out->id = id;
        out->target = record.target;
        if (status)
            mv_index_record_free(out);
    }
    mv_bytes_free(&buffer);
    return status;
}

int mv_index_get_vector(mv_index *ix, int target, int64_t id, float *vector, mv_error *err)
{
    pthread_rwlock_rdlock(&ix->lock);
    int status = !slot_live(ix, id, target)
            ? mv_fail(err, MV_ENOTFOUND, "%s: no %s with id %lld", ix->dir, mv_index_target_name(target), (long long)id)
            : faiss_Index_reconstruct(ix->faiss[target], id, vector) != 0
            ? faiss_fail(err, MV_EINTERNAL, "%s: reconstruct id %lld", ix->dir, (long long)id)
            : MV_OK;
    pthread_rwlock_unlock(&ix->lock);
    return status;
}

void mv_index_get_stats(mv_index *ix, mv_index_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    pthread_rwlock_rdlock(&ix->lock);
    stats->dim = ix->manifest.dim;
    snprintf(stats->family, sizeof stats->family, "%s", ix->manifest.family);
    for (int t = 0; t < MV_INDEX_N_TARGETS; t++) {
        snprintf(stats->factory[t], sizeof stats->factory[t], "%s", ix->manifest.target[t].factory);
        stats->live[t] = ix->live[t];
        stats->tombstones[t] = faiss_Index_ntotal(ix->faiss[t]) - ix->live[t];
    }
    stats->next_id = ix->next_id;
    stats->ef_search = ix->ef_search;
    stats->nprobe = ix->nprobe;
    stats->refine_k_factor = ix->refine_k_factor;
    pthread_rwlock_unlock(&ix->lock);
}

/* ---- search ---- */

typedef struct search_filter {
    const char *key;
    json_t *value;
    mv_bytes buffer;
} search_filter;

/* Whether a candidate FAISS returned is live, of this target, and passes the filter. */
static int candidate_passes(mv_index *ix, int target, int64_t id, search_filter *filter, mv_error *err, int *status)
{
    if (!slot_live(ix, id, target))
        return 0;
    if (!filter->value)
        return 1;
    mv_record record;
    if ((*status = read_record(ix, id, &filter->buffer, &record, err)))
        return 0;
    if (record.text_len[MV_TEXT_METADATA] < 0)
        return 0;
    json_t *metadata = json_loadb(record.text[MV_TEXT_METADATA], (size_t)record.text_len[MV_TEXT_METADATA], 0, NULL);
    int match = json_equal(json_object_get(metadata, filter->key), filter->value);
    json_decref(metadata);
    return match;
}

/* Keeps the first k passing candidates of one query's FAISS results; returns how many. */
static int collect_hits(mv_index *ix, int target, const idx_t *labels, const float *scores, idx_t fetched, int k,
        search_filter *filter, mv_index_hit *hits, mv_error *err, int *status)
{
    int n = 0;
    for (idx_t i = 0; i < fetched && n < k && !*status; i++)
        if (labels[i] >= 0 && candidate_passes(ix, target, labels[i], filter, err, status))
            hits[n++] = (mv_index_hit){labels[i], scores[i]};
    return n;
}

/* One query, fetch candidates. FAISS 1.7.3's HNSW returns good neighbours only up to efSearch, and
 * efSearch is a field of the shared index, so a fetch wider than efSearch raises it under the writer
 * lock (these rare wide searches serialise; ordinary ones stay concurrent). */
static int search_wide(mv_index *ix, int target, const float *unit, idx_t fetch, int k, search_filter *filter,
        float **scores, idx_t **labels, mv_index_hit *hits, int *n_hits, idx_t *total, mv_error *err)
{
    float *more_scores = realloc(*scores, (size_t)fetch * sizeof **scores);
    if (more_scores)
        *scores = more_scores;
    idx_t *more_labels = realloc(*labels, (size_t)fetch * sizeof **labels);
    if (more_labels)
        *labels = more_labels;
    if (!more_scores || !more_labels)
        return mv_fail(err, MV_ENOMEM, "search: out of memory");
    int widen = strstr(ix->manifest.target[target].factory, "HNSW") && fetch > ix->ef_search, status = MV_OK;
    if (widen) {
        pthread_rwlock_wrlock(&ix->lock);
        set_ef_search(ix, target, (int)fetch);
    } else {
        pthread_rwlock_rdlock(&ix->lock);
    }
    if (faiss_Index_search(ix->faiss[target], 1, unit, fetch, *scores, *labels) != 0)
        status = faiss_fail(err, MV_EINTERNAL, "%s: search", ix->dir);
    else
        *n_hits = collect_hits(ix, target, *labels, *scores, fetch, k, filter, hits, err, &status);
    *total = faiss_Index_ntotal(ix->faiss[target]);
    if (widen)
        set_ef_search(ix, target, ix->ef_search);
    pthread_rwlock_unlock(&ix->lock);
    return status;
}

int mv_index_search(mv_index *ix, int target, const float *queries, size_t n_queries, int k,
        const mv_index_filter *filter_spec, mv_index_hit *hits, int *n_hits, mv_error *err)
{
    if (target < 0 || target >= MV_INDEX_N_TARGETS)
        return mv_fail(err, MV_EINPUT, "search: unknown target %d", target);
    if (k < 1 || k > MV_INDEX_MAX_K)
        return mv_fail(err, MV_EINPUT, "search: k must be in 1..%d, got %d", MV_INDEX_MAX_K, k);
    if (!queries || n_queries == 0)
        return mv_fail(err, MV_EINPUT, "search: no query vector");
    search_filter filter = {0};
    if (filter_spec) {
        json_error_t jerr;
        filter.key = filter_spec->key;
        filter.value = filter_spec->value_json ? json_loads(filter_spec->value_json, JSON_DECODE_ANY, &jerr) : NULL;
        if (!filter.key || !filter.value)
            return mv_fail(err, MV_EINPUT, "search: filter needs a key and a JSON value%s%s",
                    filter_spec->value_json ? ": " : "", filter_spec->value_json ? jerr.text : "");
    }
    int dim = ix->manifest.dim, status = MV_OK;
    float *unit = malloc(n_queries * (size_t)dim * sizeof *unit);
    float *scores = NULL;
    idx_t *labels = NULL;
    if (!unit) {
        status = mv_fail(err, MV_ENOMEM, "search: out of memory");
        goto done;
    }
    if ((status = normalise_rows(queries, n_queries, dim, unit, "query", err)))
        goto done;
    pthread_rwlock_rdlock(&ix->lock);
    FaissIndex *index = ix->faiss[target];
    idx_t total = faiss_Index_ntotal(index), tombstones = total - ix->live[target];
    /* First round for all queries at once; enough when there are few tombstones and no filter. */
    idx_t fetch = k + (tombstones <= 4 * (idx_t)k ? tombstones : k);
    if (filter.value)
        fetch = 4 * (idx_t)k;
    fetch = fetch < total ? fetch : total;
    if (fetch == 0) {
        memset(n_hits, 0, n_queries * sizeof *n_hits);
        goto unlock;
    }
    /* HNSW only returns good neighbours up to efSearch: wider fetches go through search_wide. */
    int batched = !(strstr(ix->manifest.target[target].factory, "HNSW") && fetch > ix->ef_search);
    scores = malloc(n_queries * (size_t)fetch * sizeof *scores);
    labels = malloc(n_queries * (size_t)fetch * sizeof *labels);
    if (!scores || !labels) {
        status = mv_fail(err, MV_ENOMEM, "search: out of memory");
        goto unlock;
    }
    memset(n_hits, 0, n_queries * sizeof *n_hits);
    if (batched && faiss_Index_search(index, (idx_t)n_queries, unit, fetch, scores, labels) != 0) {
        status = faiss_fail(err, MV_EINTERNAL, "%s: search", ix->dir);
        goto unlock;
    }
    for (size_t q = 0; q < n_queries && batched && !status; q++)
        n_hits[q] = collect_hits(ix, target, labels + q * fetch, scores + q * fetch, fetch, k, &filter,
                hits + q * k, err, &status);
    pthread_rwlock_unlock(&ix->lock);
    /* Queries still short of k: search again alone, fetching 4x more each round, up to everything. */
    for (size_t q = 0; q < n_queries && !status; q++) {
        if (batched && (n_hits[q] >= k || fetch >= total))
            continue;
        for (idx_t more = batched ? fetch * 4 : fetch; !status; more *= 4) {
            more = more < total ? more : total;
            status = search_wide(ix, target, unit + q * (size_t)dim, more, k, &filter, &scores, &labels,
                    hits + q * k, &n_hits[q], &total, err);
            if (n_hits[q] >= k || more >= total)
                break;
        }
    }
    goto done;
unlock:
    pthread_rwlock_unlock(&ix->lock);
done:
    free(unit);
    free(scores);
    free(labels);
    json_decref(filter.value);
    mv_bytes_free(&filter.buffer);
    return status;
}
