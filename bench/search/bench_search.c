/* bench_search.c — FAISS index types medvlp offers (Flat, HNSW32, IVF-PQ) on synthetic 512-d
 * L2-normalised vectors, through the same FAISS C API (and shim) as src/index: build time, memory
 * (RSS delta), single-query latency p50/p99, QPS, and recall@10 against exact search.
 *
 *   bench_search N FACTORY [PARAM=V1,V2,...] [TRAIN] [QUERIES] [BUILD]
 * FACTORY is an index_factory string (inner product, wrapped in IDMap2 as src/index does); PARAM a search parameter swept in order
 * (efSearch, nprobe, k_factor_rf) until recall@10 >= 0.95, the value reported (marked "*"), optionally
 * after fixed settings: "nprobe=64;k_factor_rf=1,2,4"; several such sweeps separated by '|' run one
 * after the other on the same index: "nprobe=64;k_factor_rf=16,32|nprobe=128;k_factor_rf=16,32".
BUILD: settings in effect while vectors are added, "efConstruction=128" (FAISS's default is 40).
 *
 * Data: clustered like embeddings (1000 Gaussian centres, points = centre + 0.7 noise, then
 * normalised); queries drawn from the same distribution, not from the base. Exact neighbours come
 * from an IndexFlatIP over the same vectors (batched). Single queries: one search call each. */
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { DIM = 512, K = 10, N_CENTRES = 1000 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double rss_mib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    if (f)
        fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static void die_faiss(const char *what)
{
    fprintf(stderr, "bench_search: %s: %s\n", what, faiss_get_last_error());
    exit(1);
}

/* xorshift64*: reproducible without a global generator. */
static uint64_t next_u64(uint64_t *state)
{
    *state ^= *state >> 12, *state ^= *state << 25, *state ^= *state >> 27;
    return *state * 2685821657736338717ULL;
}

/* Box-Muller */
static double normal(uint64_t *state)
{
    double u1 = ((double)(next_u64(state) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = ((double)(next_u64(state) >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

static void clustered(float *out, size_t n, const float *centres, uint64_t seed)
{
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++) {
        const float *c = centres + next_u64(&state) % N_CENTRES * DIM;
        float *x = out + i * DIM;
        double norm = 0;
        for (int d = 0; d < DIM; d++) {
            x[d] = c[d] + 0.7f * (float)normal(&state);
            norm += (double)x[d] * x[d];
        }
        for (int d = 0; d < DIM; d++)
            x[d] = (float)(x[d] / sqrt(norm));
    }
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct search_run {
    FaissIndex *index;
    FaissParameterSpace *space;
    const float *queries;
    int n_queries;
    const idx_t *exact;  /* [n_queries, K] true neighbours */
    float *distances;    /* [n_queries, K] scratch */
    idx_t *found;        /* [n_queries, K] scratch */
    double *latency;     /* [n_queries] scratch */
} search_run;

/* "a=1;b=2;" up to `end`: each NAME=VALUE set on the index as it is met. */
static int fix_settings(const FaissParameterSpace *space, FaissIndex *index, const char *settings, const char *end)
{
    for (const char *fixed = settings; fixed < end;) {
        const char *stop = strchr(fixed, ';'), *eq = strchr(fixed, '=');
        if (!stop || stop > end)
            stop = end;
        char fixed_name[64];
        if (!eq || eq > stop) {
            fprintf(stderr, "bench_search: '%.*s' is not NAME=VALUE\n", (int)(stop - fixed), fixed);
            return -1;
        }
        snprintf(fixed_name, sizeof fixed_name, "%.*s", (int)(eq - fixed), fixed);
        if (faiss_ParameterSpace_set_index_parameter(space, index, fixed_name, atof(eq + 1)))
            die_faiss(fixed_name);
        printf("  %s=%g (fixed)\n", fixed_name, atof(eq + 1));
        fixed = stop + 1;
    }
    return 0;
}

/* "a=1;b=2;c=V1,V2": every setting before the last ';' is fixed, the last one is swept in order
 * until recall@10 reaches 0.95 (that row marked "*"). Settings stay in effect for later sweeps. */
static int sweep_settings(const search_run *run, const char *settings)
{
    const char *swept = strrchr(settings, ';');
    if (swept && fix_settings(run->space, run->index, settings, swept))
        return -1;
    const char *sweep = swept ? swept + 1 : settings;
    char name[64] = "";
    const char *values = strchr(sweep, '=');
    if (values)
        snprintf(name, sizeof name, "%.*s", (int)(values - sweep), sweep), values++;
    int reported = 0, n_queries = run->n_queries;
    double *latency = run->latency;
    for (const char *v = values ? values : "0"; v && *v;) {
        double value = atof(v);
        if (name[0] && faiss_ParameterSpace_set_index_parameter(run->space, run->index, name, value))
            die_faiss(name);
        /* one warm-up query, then each query alone */
        faiss_Index_search(run->index, 1, run->queries, K, run->distances, run->found);
        double t_all = now_s();
        for (int q = 0; q < n_queries; q++) {
            double t = now_s();
            if (faiss_Index_search(run->index, 1, run->queries + (size_t)q * DIM, K, run->distances + (size_t)q * K,
                                   run->found + (size_t)q * K))
                die_faiss("search");
            latency[q] = (now_s() - t) * 1e3;
        }
        double seconds = now_s() - t_all;
        long hits = 0;
        for (int q = 0; q < n_queries; q++)
            for (int i = 0; i < K; i++)
                for (int j = 0; j < K; j++)
                    hits += run->found[q * K + i] == run->exact[q * K + j];
        double recall = (double)hits / ((double)n_queries * K);
        qsort(latency, (size_t)n_queries, sizeof *latency, compare_double);
        int first_good = !reported && recall >= 0.95;
        reported |= first_good;
        printf("  %s=%-6g recall@10=%.4f qps=%.1f p50_ms=%.3f p99_ms=%.3f%s\n", name[0] ? name : "-", value, recall,
               n_queries / seconds, latency[n_queries / 2], latency[(n_queries * 99) / 100], first_good ? " *" : "");
        fflush(stdout);
        v = strchr(v, ',');
        v = v && !reported ? v + 1 : NULL; /* past the first value reaching the target, only slower */
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_search N FACTORY [PARAM=V1,V2,...] [TRAIN] [QUERIES] [BUILD]\n");
        return 2;
    }
    size_t n = strtoull(argv[1], NULL, 10), n_train = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
    int n_queries = argc > 5 ? atoi(argv[5]) : 1000;
    const char *factory = argv[2], *sweep = argc > 3 ? argv[3] : "";
    float *centres = malloc(sizeof *centres * N_CENTRES * DIM), *base = malloc(sizeof *base * n * DIM),
          *queries = malloc(sizeof *queries * (size_t)n_queries * DIM);
    float *distances = malloc(sizeof *distances * (size_t)n_queries * K);
    idx_t *exact = malloc(sizeof *exact * (size_t)n_queries * K), *found = malloc(sizeof *found * (size_t)n_queries * K);
    double *latency = malloc(sizeof *latency * (size_t)n_queries);
    if (!centres || !base || !queries || !distances || !exact || !found || !latency) {
        fprintf(stderr, "bench_search: out of memory\n");
        return 1;
    }
    uint64_t state = 42;
    for (int i = 0; i < N_CENTRES * DIM; i++)
        centres[i] = (float)normal(&state);
    clustered(base, n, centres, 1);
    clustered(queries, (size_t)n_queries, centres, 2);

    /* Ground truth: exact inner-product search, batched. */
    idx_t *ids = malloc(sizeof *ids * n);
    for (size_t i = 0; ids && i < n; i++)
        ids[i] = (idx_t)i;
    FaissIndex *flat;
    if (!ids || faiss_index_factory(&flat, DIM, "IDMap2,Flat", METRIC_INNER_PRODUCT) ||
        faiss_Index_add_with_ids(flat, (idx_t)n, base, ids) ||
        faiss_Index_search(flat, n_queries, queries, K, distances, exact))
        die_faiss("exact search");
    faiss_Index_free(flat);

    double rss0 = rss_mib(), t0 = now_s();
    /* As src/index builds them: IDMap2 around the factory's index, so ids are stable. */
    FaissIndex *inner, *index;
    if (faiss_index_factory(&inner, DIM, factory, METRIC_INNER_PRODUCT) ||
        faiss_IndexIDMap2_new((FaissIndexIDMap2 **)&index, inner))
        die_faiss(factory);
    faiss_IndexIDMap2_set_own_fields((FaissIndexIDMap2 *)index, 1);
    if (!faiss_Index_is_trained(index)) {
        size_t n_sample = n_train && n_train < n ? n_train : n;
        if (faiss_Index_train(index, (idx_t)n_sample, base))
            die_faiss("train");
    }
    FaissParameterSpace *space;
    faiss_ParameterSpace_new(&space);
    const char *build = argc > 6 ? argv[6] : "";
    if (fix_settings(space, index, build, build + strlen(build)))
        return 2;
    double t_trained = now_s();
    if (faiss_Index_add_with_ids(index, (idx_t)n, base, ids))
        die_faiss("add");
    double t_built = now_s(), rss1 = rss_mib();
    printf("%s n=%zu build_s=%.1f (train %.1f) rss_delta_mib=%.0f\n", factory, n, t_built - t0, t_trained - t0,
           rss1 - rss0);

    const search_run run = {index, space, queries, n_queries, exact, distances, found, latency};
    for (const char *segment = sweep;;) {
        const char *bar = strchr(segment, '|');
        char settings[512];
        snprintf(settings, sizeof settings, "%.*s", bar ? (int)(bar - segment) : (int)strlen(segment), segment);
        if (sweep_settings(&run, settings))
            return 2;
        if (!bar)
            break;
        segment = bar + 1;
    }
    faiss_ParameterSpace_free(space);
    faiss_Index_free(index);
    free(centres), free(base), free(queries), free(distances), free(exact), free(found), free(latency), free(ids);
    return 0;
}
