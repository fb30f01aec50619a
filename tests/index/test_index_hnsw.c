/* test_index_hnsw.c — the approximate (HNSW32) index: recall@10 against brute force computed here in
 * plain C, tombstoned deletes never returned, filters over-fetch, snapshot reload is exact. */
#include "medvlp/index.h"
#include "../test.h"
#include "index_test_util.h"

#include <limits.h>

enum { DIM = 32, N_BASE = 20000, N_QUERIES = 100, K = 10, N_BUCKETS = 20 };

static float base[N_BASE * DIM], queries[N_QUERIES * DIM];
static double base_unit[N_BASE * DIM], query_unit[N_QUERIES * DIM];
static unsigned char alive[N_BASE];

static const mv_index_model model = {"cxr-bert", DIM, ""};

/* Mean recall@K of the index against exact search over alive rows with keep[] (NULL: all). */
static double recall(mv_index *ix, const unsigned char *keep, const mv_index_filter *filter, int *bad_ids)
{
    static unsigned char mask[N_BASE];
    for (int i = 0; i < N_BASE; i++)
        mask[i] = alive[i] && (!keep || keep[i]);
    return index_recall(ix, MV_INDEX_IMAGES, queries, query_unit, N_QUERIES, base_unit, N_BASE, DIM, K, mask,
                        filter, bad_ids);
}

int main(void)
{
    char dir[PATH_MAX];
    scratch_dir(dir, sizeof dir, "hnsw");
    random_vectors(base, N_BASE, DIM, 11);
    random_vectors(queries, N_QUERIES, DIM, 12);
    unit_rows(base, N_BASE, DIM, base_unit);
    unit_rows(queries, N_QUERIES, DIM, query_unit);
    memset(alive, 1, sizeof alive);

    mv_error err = {0};
    mv_index *ix = NULL;
    /* No factory: the expected size picks HNSW32. */
    mv_index_options options = {.expected_vectors = 3 * MV_INDEX_FLAT_LIMIT, .snapshot_journal_bytes = -1};
    CHECK_INT_EQ(mv_index_create(dir, &model, &options, &ix, &err), MV_OK);
    if (!ix) {
        fprintf(stderr, "create: %s\n", err.message);
        return 1;
    }
    static mv_index_item items[N_BASE];
    static char meta[N_BASE][24];
    static int64_t ids[N_BASE];
    for (int i = 0; i < N_BASE; i++) {
        snprintf(meta[i], sizeof meta[i], "{\"bucket\": %d}", i % N_BUCKETS);
        items[i] = (mv_index_item){base + (size_t)i * DIM, NULL, NULL, meta[i]};
    }
    CHECK_INT_EQ(mv_index_add(ix, MV_INDEX_IMAGES, items, N_BASE, ids, &err), MV_OK);
    mv_index_stats stats;
    mv_index_get_stats(ix, &stats);
    CHECK(strcmp(stats.factory[MV_INDEX_IMAGES], "HNSW32") == 0);

    int bad;
    double r = recall(ix, NULL, NULL, &bad);
    fprintf(stderr, "HNSW32 efSearch=128 recall@10 on %d x %d-d: %.4f\n", N_BASE, DIM, r);
    CHECK(r >= 0.95);
    CHECK_INT_EQ(bad, 0);

    /* Tombstones: delete each query's top hit and a stripe; never returned, k still filled. */
    mv_index_hit top[N_QUERIES];
    int n_top[N_QUERIES];
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, queries, N_QUERIES, 1, NULL, top, n_top, &err), MV_OK);
    int deleted = 0;
    for (int q = 0; q < N_QUERIES; q++)
        if (alive[top[q].id]) {
            CHECK_INT_EQ(mv_index_delete(ix, MV_INDEX_IMAGES, top[q].id, &err), MV_OK);
            alive[top[q].id] = 0;
            deleted++;
        }
    for (int i = 1; i < N_BASE; i += 40)
        if (alive[i]) {
            CHECK_INT_EQ(mv_index_delete(ix, MV_INDEX_IMAGES, i, &err), MV_OK);
            alive[i] = 0;
            deleted++;
        }
    mv_index_get_stats(ix, &stats);
    CHECK_INT_EQ(stats.tombstones[MV_INDEX_IMAGES], deleted);
    CHECK_INT_EQ(stats.live[MV_INDEX_IMAGES], N_BASE - deleted);
    r = recall(ix, NULL, NULL, &bad);
    fprintf(stderr, "after %d deletes: recall@10 %.4f\n", deleted, r);
    CHECK(r >= 0.95);
    CHECK_INT_EQ(bad, 0);

    /* A filter matching 5% of the vectors. */
    static unsigned char bucket7[N_BASE];
    for (int i = 0; i < N_BASE; i++)
        bucket7[i] = i % N_BUCKETS == 7;
    r = recall(ix, bucket7, &(mv_index_filter){"bucket", "7"}, &bad);
    fprintf(stderr, "filter bucket=7: recall@10 %.4f\n", r);
    CHECK(r >= 0.95);
    CHECK_INT_EQ(bad, 0);

    /* Snapshot reload restores the same graph: identical answers. */
    static mv_index_hit before[N_QUERIES * K], after[N_QUERIES * K];
    int n_before[N_QUERIES], n_after[N_QUERIES];
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, queries, N_QUERIES, K, NULL, before, n_before, &err), MV_OK);
    CHECK_INT_EQ(mv_index_snapshot(ix, &err), MV_OK);
    mv_index_close(ix);
    CHECK_INT_EQ(mv_index_open(dir, &model, NULL, NULL, &ix, &err), MV_OK);
    if (!ix) {
        fprintf(stderr, "open: %s\n", err.message);
        return 1;
    }
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, queries, N_QUERIES, K, NULL, after, n_after, &err), MV_OK);
    CHECK(same_hits(before, n_before, after, n_after, N_QUERIES, K));
    mv_index_get_stats(ix, &stats);
    CHECK_INT_EQ(stats.tombstones[MV_INDEX_IMAGES], deleted);
    for (int q = 0; q < N_QUERIES; q++) {
        mv_index_record record;
        CHECK_INT_EQ(mv_index_get(ix, top[q].id, &record, &err), MV_ENOTFOUND);
    }
    mv_index_close(ix);
    remove_tree(dir);

    /* efConstruction is a creation setting that must reach FAISS and stay in the index: a graph built
     * with 8 finds fewer true neighbours at a narrow efSearch than the default's (both measured against
     * brute force). The sparse index is closed and reopened before its vectors are added, so they are
     * inserted with the value read back from the index file. */
    memset(alive, 1, sizeof alive);
    double r_default = 0, r_sparse = 0;
    for (int pass = 0; pass < 2; pass++) {
        mv_index_options sparse = {.factory = "HNSW32", .ef_construction = pass ? 8 : 0,
                                   .ef_search = 16, .snapshot_journal_bytes = -1};
        CHECK_INT_EQ(mv_index_create(dir, &model, &sparse, &ix, &err), MV_OK);
        if (pass && ix) {
            mv_index_close(ix);
            CHECK_INT_EQ(mv_index_open(dir, &model, &sparse, NULL, &ix, &err), MV_OK);
        }
        if (!ix)
            return 1;
        CHECK_INT_EQ(mv_index_add(ix, MV_INDEX_IMAGES, items, N_BASE, ids, &err), MV_OK);
        *(pass ? &r_sparse : &r_default) = recall(ix, NULL, NULL, &bad);
        mv_index_close(ix);
        remove_tree(dir);
    }
    fprintf(stderr, "efSearch=16: recall@10 %.4f (efConstruction default), %.4f (8)\n", r_default, r_sparse);
    CHECK(r_default > r_sparse + 0.05);
    return test_report("index_hnsw");
}
