/* test_index_ivfpq.c — the compressed index for large collections: IVF lists of PQ codes whose
 * candidates are re-ranked on stored vectors ("IVF…,PQ…np,RFlat" / "Refine(SQ8)"). Recall@10
 * against brute force computed here in plain C, the search settings (nprobe, refine k-factor) taking
 * effect per opener, tombstoned deletes, and a reload answering exactly as before. */
#include "medvlp/index.h"
#include "../test.h"
#include "index_test_util.h"

#include <limits.h>

enum { DIM = 64, N_BASE = 10000, N_QUERIES = 100, K = 10, N_LISTS = 16 };

static float base[N_BASE * DIM], queries[N_QUERIES * DIM];
static double base_unit[N_BASE * DIM], query_unit[N_QUERIES * DIM];
static unsigned char alive[N_BASE];

static const mv_index_model model = {"biomedclip", DIM, ""};

static double recall(mv_index *ix)
{
    int bad;
    double r = index_recall(ix, MV_INDEX_IMAGES, queries, query_unit, N_QUERIES, base_unit, N_BASE, DIM, K, alive,
                            NULL, &bad);
    CHECK_INT_EQ(bad, 0);
    return r;
}

static mv_index *reopen(mv_index *ix, const char *dir, int nprobe, int refine_k_factor)
{
    mv_error err = {0};
    if (ix)
        mv_index_close(ix);
    mv_index_options options = {.nprobe = nprobe, .refine_k_factor = refine_k_factor, .snapshot_journal_bytes = -1};
    ix = NULL;
    CHECK_INT_EQ(mv_index_open(dir, &model, &options, NULL, &ix, &err), MV_OK);
    if (!ix) {
        fprintf(stderr, "open: %s\n", err.message);
        exit(1);
    }
    mv_index_stats stats;
    mv_index_get_stats(ix, &stats);
    CHECK_INT_EQ(stats.nprobe, nprobe);
    CHECK_INT_EQ(stats.refine_k_factor, refine_k_factor);
    return ix;
}

/* One factory: build, then recall under settings that must each matter. */
static void check_factory(const char *factory)
{
    char dir[PATH_MAX];
    scratch_dir(dir, sizeof dir, "ivfpq");
    remove_tree(dir); /* mv_index_create makes it */
    memset(alive, 1, sizeof alive);
    mv_error err = {0};
    mv_index *ix = NULL;
    mv_index_options options = {.factory = factory, .snapshot_journal_bytes = -1};
    CHECK_INT_EQ(mv_index_create(dir, &model, &options, &ix, &err), MV_OK);
    if (!ix) {
        fprintf(stderr, "create %s: %s\n", factory, err.message);
        exit(1);
    }
    CHECK(!mv_index_is_trained(ix, MV_INDEX_IMAGES));
    static mv_index_item items[N_BASE];
    static int64_t ids[N_BASE];
    for (int i = 0; i < N_BASE; i++)
        items[i] = (mv_index_item){base + (size_t)i * DIM, NULL, NULL, NULL};
    CHECK_INT_EQ(mv_index_add(ix, MV_INDEX_IMAGES, items, 10, ids, &err), MV_EINPUT); /* untrained */
    CHECK_INT_EQ(mv_index_train(ix, MV_INDEX_IMAGES, base, N_BASE, &err), MV_OK);
    CHECK_INT_EQ(mv_index_add(ix, MV_INDEX_IMAGES, items, N_BASE, ids, &err), MV_OK);
    CHECK_INT_EQ(ids[N_BASE - 1] - ids[0], N_BASE - 1);
    CHECK_INT_EQ(mv_index_snapshot(ix, &err), MV_OK);

    /* Stored vectors come back from the re-ranking stage: exact (RFlat) or to 8 bits (SQ8). */
    float stored[DIM];
    CHECK_INT_EQ(mv_index_get_vector(ix, MV_INDEX_IMAGES, ids[123], stored, &err), MV_OK);
    double dot = 0;
    for (int d = 0; d < DIM; d++)
        dot += stored[d] * base_unit[123 * DIM + d];
    fprintf(stderr, "%s: stored vector · original = %.6f\n", factory, dot);
    CHECK(dot > (strstr(factory, "SQ8") ? 0.99 : 0.99999));

    /* Every list scanned: the PQ ordering alone (k-factor 1) misses neighbours that re-ranking
     * 16·k candidates on the stored vectors recovers. */
    ix = reopen(ix, dir, N_LISTS, 1);
    double pq_only = recall(ix);
    ix = reopen(ix, dir, N_LISTS, 16);
    double refined = recall(ix);
    ix = reopen(ix, dir, 1, 16);
    double one_list = recall(ix);
    fprintf(stderr, "%s recall@10 on %d x %d-d: nprobe %d k-factor 1: %.4f, k-factor 16: %.4f; nprobe 1: %.4f\n",
            factory, N_BASE, DIM, N_LISTS, pq_only, refined, one_list);
    CHECK(refined >= 0.95);
    CHECK(pq_only < refined - 0.1);
    CHECK(one_list < refined - 0.1);

    /* Deletes are tombstones here: never returned, k still filled from the rest. */
    ix = reopen(ix, dir, N_LISTS, 16);
    mv_index_hit top[N_QUERIES];
    int n_top[N_QUERIES], deleted = 0;
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, queries, N_QUERIES, 1, NULL, top, n_top, &err), MV_OK);
    for (int q = 0; q < N_QUERIES; q++)
        if (n_top[q] == 1 && alive[top[q].id]) {
            CHECK_INT_EQ(mv_index_delete(ix, MV_INDEX_IMAGES, top[q].id, &err), MV_OK);
            alive[top[q].id] = 0;
            deleted++;
        }
    mv_index_stats stats;
    mv_index_get_stats(ix, &stats);
    CHECK_INT_EQ(stats.tombstones[MV_INDEX_IMAGES], deleted);
    CHECK(recall(ix) >= 0.95);

    /* The journal (deletes since the snapshot) replays onto the reloaded index: same answers. */
    static mv_index_hit before[N_QUERIES * K], after[N_QUERIES * K];
    int n_before[N_QUERIES], n_after[N_QUERIES];
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, queries, N_QUERIES, K, NULL, before, n_before, &err), MV_OK);
    ix = reopen(ix, dir, N_LISTS, 16);
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, queries, N_QUERIES, K, NULL, after, n_after, &err), MV_OK);
    CHECK(same_hits(before, n_before, after, n_after, N_QUERIES, K));
    mv_index_close(ix);
    remove_tree(dir);
}

int main(void)
{
    random_vectors(base, N_BASE, DIM, 21);
    random_vectors(queries, N_QUERIES, DIM, 22);
    unit_rows(base, N_BASE, DIM, base_unit);
    unit_rows(queries, N_QUERIES, DIM, query_unit);
    check_factory("IVF16,PQ16np,RFlat");
    check_factory("IVF16,PQ16np,Refine(SQ8)");
    return test_report("index_ivfpq");
}
