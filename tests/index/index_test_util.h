/* index_test_util.h — shared by the index tests: scratch directories, deterministic random vectors,
 * and the independent reference (brute-force inner products in plain C, no FAISS). */
#ifndef MEDVLP_INDEX_TEST_UTIL_H
#define MEDVLP_INDEX_TEST_UTIL_H

#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void remove_tree(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* A fresh scratch directory under $TMPDIR (or /tmp); name must hold PATH_MAX bytes. */
static inline void scratch_dir(char *name, size_t size, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(name, size, "%s/medvlp-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (!mkdtemp(name)) {
        perror("mkdtemp");
        exit(1);
    }
}

/* splitmix64: reproducible vectors from a seed, independent of libc's rand. */
static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline float rng_gauss(uint64_t *state)
{
    double u1 = ((rng_next(state) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (rng_next(state) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static inline void random_vectors(float *out, size_t n, int dim, uint64_t seed)
{
    uint64_t state = seed;
    for (size_t i = 0; i < n * (size_t)dim; i++)
        out[i] = rng_gauss(&state);
}

/* Unit-length copy in double precision: what the index should be searching over. */
static inline void unit_rows(const float *in, size_t n, int dim, double *out)
{
    for (size_t r = 0; r < n; r++) {
        double sum = 0;
        for (int i = 0; i < dim; i++)
            sum += (double)in[r * dim + i] * in[r * dim + i];
        for (int i = 0; i < dim; i++)
            out[r * dim + i] = in[r * dim + i] / sqrt(sum);
    }
}

/* Exact top-k by inner product over rows with keep[i] != 0 (keep may be NULL). Returns hits found. */
static inline int brute_top_k(const double *base, size_t n, int dim, const double *query, int k,
        const unsigned char *keep, int64_t *ids, double *scores)
{
    int found = 0;
    for (size_t r = 0; r < n; r++) {
        if (keep && !keep[r])
            continue;
        double s = 0;
        for (int i = 0; i < dim; i++)
            s += base[r * dim + i] * query[i];
        if (found == k && s <= scores[k - 1])
            continue;
        int at = found < k ? found++ : k - 1;
        while (at > 0 && scores[at - 1] < s) {
            scores[at] = scores[at - 1];
            ids[at] = ids[at - 1];
            at--;
        }
        scores[at] = s;
        ids[at] = (int64_t)r;
    }
    return found;
}

#ifdef MEDVLP_INDEX_H
/* Hit lists equal in ids and bit-identical scores (struct padding is not compared). */
static inline int same_hits(const mv_index_hit *a, const int *n_a, const mv_index_hit *b, const int *n_b, int n_queries, int k)
{
    for (int q = 0; q < n_queries; q++) {
        if (n_a[q] != n_b[q])
            return 0;
        for (int j = 0; j < n_a[q]; j++)
            if (a[q * k + j].id != b[q * k + j].id || a[q * k + j].score != b[q * k + j].score)
                return 0;
    }
    return 1;
}

#ifdef MEDVLP_TEST_H
/* The case every approximate index is held to: this test searches the index for n_queries queries
 * and counts how many of the exact top k (brute force over base rows with mask[i] != 0, mask NULL =
 * all) each returned, as the mean recall@k. Every query must return as many hits as exist;
 * *bad_ids counts hits outside the mask. */
static inline double index_recall(mv_index *ix, int target, const float *queries, const double *query_unit,
        int n_queries, const double *base_unit, size_t n_base, int dim, int k, const unsigned char *mask,
        const mv_index_filter *filter, int *bad_ids)
{
    mv_error err = {0};
    mv_index_hit *hits = malloc(sizeof *hits * (size_t)n_queries * (size_t)k);
    int *n_hits = malloc(sizeof *n_hits * (size_t)n_queries);
    int64_t *ids = malloc(sizeof *ids * (size_t)k);
    double *scores = malloc(sizeof *scores * (size_t)k);
    if (!hits || !n_hits || !ids || !scores) {
        fprintf(stderr, "index_recall: out of memory\n");
        exit(1);
    }
    CHECK_INT_EQ(mv_index_search(ix, target, queries, n_queries, k, filter, hits, n_hits, &err), MV_OK);
    long found_total = 0, expected_total = 0;
    *bad_ids = 0;
    for (int q = 0; q < n_queries; q++) {
        int expected = brute_top_k(base_unit, n_base, dim, query_unit + (size_t)q * dim, k, mask, ids, scores);
        expected_total += expected;
        CHECK_INT_EQ(n_hits[q], expected);
        for (int j = 0; j < n_hits[q]; j++) {
            int64_t id = hits[q * k + j].id;
            *bad_ids += id < 0 || (size_t)id >= n_base || (mask && !mask[id]);
            for (int e = 0; e < expected; e++)
                found_total += ids[e] == id;
        }
    }
    free(hits), free(n_hits), free(ids), free(scores);
    return expected_total ? (double)found_total / (double)expected_total : 1.0;
}
#endif
#endif

#endif
