/* test_index_flat.c — exact (Flat) index against brute-force inner products computed here in plain C:
 * top-k ids and scores, metadata filters, deletes, reload (journal replay and snapshot), manifest
 * mismatch and bad input. */
#include "medvlp/index.h"
#include "../test.h"
#include "index_test_util.h"

#include <limits.h>
#include <pthread.h>

enum { DIM = 32, N_BASE = 3000, N_QUERIES = 40, K = 10 };

static float base[N_BASE * DIM], queries[N_QUERIES * DIM];
static double base_unit[N_BASE * DIM], query_unit[N_QUERIES * DIM];
static unsigned char alive[N_BASE];

static const mv_index_model model = {"biomedclip", DIM, "abc123"};

static const char *modality(int i) { return i % 3 == 0 ? "CT" : "MR"; }

static void add_base(mv_index *ix)
{
    mv_error err = {0};
    for (int start = 0; start < N_BASE; start += 500) {
        mv_index_item items[500];
        char meta[500][64], source[500][32];
        int64_t ids[500];
        for (int i = 0; i < 500; i++) {
            snprintf(meta[i], sizeof meta[i], "{\"modality\": \"%s\", \"n\": %d}", modality(start + i), start + i);
            snprintf(source[i], sizeof source[i], "img/%05d.png", start + i);
            items[i] = (mv_index_item){base + (size_t)(start + i) * DIM, source[i], "a caption", meta[i]};
        }
        CHECK_INT_EQ(mv_index_add(ix, MV_INDEX_IMAGES, items, 500, ids, &err), MV_OK);
        CHECK_INT_EQ(ids[0], start);
        CHECK_INT_EQ(ids[499], start + 499);
    }
}

/* Compares the index's answer for every query with brute force over rows where keep[] (and alive[]). */
static void check_against_brute(mv_index *ix, const unsigned char *keep, const mv_index_filter *filter)
{
    mv_error err = {0};
    mv_index_hit hits[N_QUERIES * K];
    int n_hits[N_QUERIES];
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, queries, N_QUERIES, K, filter, hits, n_hits, &err), MV_OK);
    unsigned char mask[N_BASE];
    for (int i = 0; i < N_BASE; i++)
        mask[i] = alive[i] && (!keep || keep[i]);
    int mismatched = 0;
    for (int q = 0; q < N_QUERIES; q++) {
        int64_t ids[K];
        double scores[K];
        int found = brute_top_k(base_unit, N_BASE, DIM, query_unit + q * DIM, K, mask, ids, scores);
        CHECK_INT_EQ(n_hits[q], found);
        for (int j = 0; j < found && j < n_hits[q]; j++) {
            mismatched += hits[q * K + j].id != ids[j];
            CHECK_NEAR(hits[q * K + j].score, scores[j], 1e-5);
        }
    }
    CHECK_INT_EQ(mismatched, 0);
}

static void search_all(mv_index *ix, mv_index_hit *hits, int *n_hits)
{
    mv_error err = {0};
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, queries, N_QUERIES, K, NULL, hits, n_hits, &err), MV_OK);
}

static void check_bad_input(mv_index *ix)
{
    mv_error err = {0};
    mv_index_hit hits[K];
    int n_hits[1];
    float bad[DIM] = {0};
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, queries, 1, 0, NULL, hits, n_hits, &err), MV_EINPUT);
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, queries, 1, 1001, NULL, hits, n_hits, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "k must be in 1..1000");
    CHECK_INT_EQ(mv_index_search(ix, 7, queries, 1, K, NULL, hits, n_hits, &err), MV_EINPUT);
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, bad, 1, K, NULL, hits, n_hits, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "zero vector");
    bad[3] = NAN;
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, bad, 1, K, NULL, hits, n_hits, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "component 3");
    mv_index_filter filter = {"modality", "CT"}; /* not JSON: should be "\"CT\"" */
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, queries, 1, K, &filter, hits, n_hits, &err), MV_EINPUT);
    int64_t id;
    mv_index_item item = {queries, NULL, NULL, "[1, 2]"};
    CHECK_INT_EQ(mv_index_add(ix, MV_INDEX_IMAGES, &item, 1, &id, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "metadata must be a JSON object");
    item.metadata_json = "{\"a\": ";
    CHECK_INT_EQ(mv_index_add(ix, MV_INDEX_IMAGES, &item, 1, &id, &err), MV_EINPUT);
    CHECK_INT_EQ(mv_index_add(ix, MV_INDEX_IMAGES, &item, 0, &id, &err), MV_EINPUT);
    CHECK_INT_EQ(mv_index_delete(ix, MV_INDEX_CAPTIONS, 5, &err), MV_ENOTFOUND); /* 5 is an image */
    CHECK_INT_EQ(mv_index_delete(ix, MV_INDEX_IMAGES, 1 << 30, &err), MV_ENOTFOUND);
    mv_index_record record;
    CHECK_INT_EQ(mv_index_get(ix, -1, &record, &err), MV_ENOTFOUND);
}

/* Searches from several threads while the main thread adds: readers never see a half-applied add. */
static void *search_loop(void *arg)
{
    mv_index *ix = arg;
    long failures = 0;
    for (int round = 0; round < 100; round++) {
        mv_error err = {0};
        mv_index_hit hits[K];
        int n_hits;
        const float *query = queries + (round % N_QUERIES) * DIM;
        failures += mv_index_search(ix, MV_INDEX_IMAGES, query, 1, K, NULL, hits, &n_hits, &err) != MV_OK || n_hits != K;
        mv_index_record record;
        if (mv_index_get(ix, hits[0].id, &record, &err) == MV_OK)
            mv_index_record_free(&record);
        else
            failures++;
    }
    return (void *)failures;
}

static void check_concurrent(mv_index *ix)
{
    pthread_t threads[3];
    for (int t = 0; t < 3; t++)
        pthread_create(&threads[t], NULL, search_loop, ix);
    mv_error err = {0};
    for (int i = 0; i < 50; i++) {
        int64_t id;
        mv_index_item item = {queries + (i % N_QUERIES) * DIM, NULL, "concurrent", NULL};
        CHECK_INT_EQ(mv_index_add(ix, MV_INDEX_CAPTIONS, &item, 1, &id, &err), MV_OK);
    }
    for (int t = 0; t < 3; t++) {
        void *failures;
        pthread_join(threads[t], &failures);
        CHECK_INT_EQ((long)failures, 0);
    }
}

int main(void)
{
    char dir[PATH_MAX];
    scratch_dir(dir, sizeof dir, "flat");
    random_vectors(base, N_BASE, DIM, 1);
    random_vectors(queries, N_QUERIES, DIM, 2);
    unit_rows(base, N_BASE, DIM, base_unit);
    unit_rows(queries, N_QUERIES, DIM, query_unit);
    memset(alive, 1, sizeof alive);

    mv_error err = {0};
    mv_index *ix = NULL;
    mv_index_options options = {.snapshot_journal_bytes = -1};
    CHECK_INT_EQ(mv_index_create(dir, &model, &options, &ix, &err), MV_OK);
    if (!ix) {
        fprintf(stderr, "create: %s\n", err.message);
        return 1;
    }
    add_base(ix);
    check_against_brute(ix, NULL, NULL);

    /* Metadata equality filter: string and number values. */
    unsigned char is_ct[N_BASE], is_42[N_BASE] = {0};
    for (int i = 0; i < N_BASE; i++)
        is_ct[i] = i % 3 == 0;
    is_42[42] = 1;
    check_against_brute(ix, is_ct, &(mv_index_filter){"modality", "\"CT\""});
    check_against_brute(ix, is_42, &(mv_index_filter){"n", "42"});

    /* Delete every query's current top-3 plus a stripe, then they must never come back. */
    mv_index_hit hits[N_QUERIES * K];
    int n_hits[N_QUERIES];
    search_all(ix, hits, n_hits);
    for (int q = 0; q < N_QUERIES; q++)
        for (int j = 0; j < 3; j++) {
            int64_t id = hits[q * K + j].id;
            if (alive[id]) {
                CHECK_INT_EQ(mv_index_delete(ix, MV_INDEX_IMAGES, id, &err), MV_OK);
                alive[id] = 0;
            }
        }
    for (int i = 0; i < N_BASE; i += 97)
        if (alive[i]) {
            CHECK_INT_EQ(mv_index_delete(ix, MV_INDEX_IMAGES, i, &err), MV_OK);
            alive[i] = 0;
        }
    CHECK_INT_EQ(mv_index_delete(ix, MV_INDEX_IMAGES, hits[0].id, &err), MV_ENOTFOUND);
    check_against_brute(ix, NULL, NULL);
    check_against_brute(ix, is_ct, &(mv_index_filter){"modality", "\"CT\""});
    mv_index_record record;
    CHECK_INT_EQ(mv_index_get(ix, hits[0].id, &record, &err), MV_ENOTFOUND);
    CHECK_INT_EQ(mv_index_get(ix, 1, &record, &err), MV_OK);
    CHECK(record.source && strcmp(record.source, "img/00001.png") == 0);
    CHECK(record.caption && strcmp(record.caption, "a caption") == 0);
    CHECK_STR_CONTAINS(record.metadata_json, "\"n\": 1}");
    CHECK_INT_EQ(record.target, MV_INDEX_IMAGES);
    mv_index_record_free(&record);
    check_bad_input(ix);

    /* Captions share the id counter, live in their own index. */
    int64_t caption_id;
    mv_index_item caption = {queries, NULL, "no acute findings", NULL};
    CHECK_INT_EQ(mv_index_add(ix, MV_INDEX_CAPTIONS, &caption, 1, &caption_id, &err), MV_OK);
    CHECK_INT_EQ(caption_id, N_BASE);
    mv_index_hit caption_hit;
    int n_caption_hits;
    CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_CAPTIONS, queries, 1, 5, NULL, &caption_hit, &n_caption_hits, &err), MV_OK);
    CHECK_INT_EQ(n_caption_hits, 1);
    CHECK_INT_EQ(caption_hit.id, caption_id);
    CHECK_NEAR(caption_hit.score, 1.0, 1e-5);

    check_concurrent(ix);

    /* A second opener (even in this process) is refused while the index is open. */
    mv_index *second = NULL;
    CHECK_INT_EQ(mv_index_open(dir, NULL, NULL, NULL, &second, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "another process");
    CHECK_INT_EQ(mv_index_create(dir, &model, NULL, &second, &err), MV_EINPUT);

    /* Reload from the journal alone, then from a snapshot: identical answers. */
    mv_index_hit before[N_QUERIES * K], after[N_QUERIES * K];
    int n_before[N_QUERIES], n_after[N_QUERIES];
    search_all(ix, before, n_before);
    mv_index_close(ix);
    mv_index_open_report report;
    CHECK_INT_EQ(mv_index_open(dir, &model, NULL, &report, &ix, &err), MV_OK);
    if (!ix) {
        fprintf(stderr, "open: %s\n", err.message);
        return 1;
    }
    CHECK(report.journal_records > N_BASE);
    CHECK_INT_EQ(report.torn_bytes, 0);
    search_all(ix, after, n_after);
    CHECK(same_hits(before, n_before, after, n_after, N_QUERIES, K));
    CHECK_INT_EQ(mv_index_snapshot(ix, &err), MV_OK);
    mv_index_close(ix);
    CHECK_INT_EQ(mv_index_open(dir, &model, NULL, &report, &ix, &err), MV_OK);
    CHECK_INT_EQ(report.journal_records, 0);
    search_all(ix, after, n_after);
    CHECK(same_hits(before, n_before, after, n_after, N_QUERIES, K));
    check_against_brute(ix, is_ct, &(mv_index_filter){"modality", "\"CT\""});
    mv_index_stats stats;
    mv_index_get_stats(ix, &stats);
    int n_alive = 0;
    for (int i = 0; i < N_BASE; i++)
        n_alive += alive[i];
    CHECK_INT_EQ(stats.live[MV_INDEX_IMAGES], n_alive);
    CHECK_INT_EQ(stats.tombstones[MV_INDEX_IMAGES], 0); /* Flat removes for real */
    CHECK_INT_EQ(stats.live[MV_INDEX_CAPTIONS], 51);
    CHECK(strcmp(stats.factory[MV_INDEX_IMAGES], "Flat") == 0);
    mv_index_close(ix);

    /* Another model (family, dim or weights) is refused with both named. */
    mv_index_model other = {"gloria", DIM, "abc123"};
    CHECK_INT_EQ(mv_index_open(dir, &other, NULL, NULL, &ix, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "family=biomedclip dim=32");
    CHECK_STR_CONTAINS(err.message, "family=gloria");
    other = (mv_index_model){"biomedclip", 64, "abc123"};
    CHECK_INT_EQ(mv_index_open(dir, &other, NULL, NULL, &ix, &err), MV_EINPUT);
    other = (mv_index_model){"biomedclip", DIM, "ffff"};
    CHECK_INT_EQ(mv_index_open(dir, &other, NULL, NULL, &ix, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "weights=abc123");
    CHECK(ix == NULL);

    /* Bad factory strings. */
    char dir2[PATH_MAX];
    scratch_dir(dir2, sizeof dir2, "flat-bad");
    options.factory = "NoSuchIndex";
    CHECK_INT_EQ(mv_index_create(dir2, &model, &options, &ix, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "NoSuchIndex");
    options.factory = "IDMap,Flat";
    CHECK_INT_EQ(mv_index_create(dir2, &model, &options, &ix, &err), MV_EINPUT);
    remove_tree(dir2);
    remove_tree(dir);
    return test_report("index_flat");
}
