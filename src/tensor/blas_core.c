/* blas_core.c — makes OpenBLAS use the kernels the CPU supports (see mv_blas_select_kernels). */
#include "medvlp/tensor.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *openblas_get_corename(void);

/* OpenBLAS's cores whose sgemm kernels use AVX-512, then the AVX2 ones. */
static const char *const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
static const char *const avx2_cores[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", NULL};

static int core_in(const char *core, const char *const *cores)
{
    for (; *cores; cores++)
        if (!strcasecmp(core, *cores))
            return 1;
    return 0;
}

int mv_blas_has_avx512_kernels(void)
{
    return core_in(openblas_get_corename(), avx512_cores);
}

/* The core OpenBLAS should use on this CPU, or NULL when its own choice is already as good. */
static const char *better_core(const char *current)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return core_in(current, avx512_cores) ? NULL : "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return core_in(current, avx2_cores) ? NULL : "Haswell";
    return NULL;
}

void mv_blas_select_kernels(char **argv)
{
    if (getenv("MEDVLP_RUNTIME_SET"))
        return; /* already re-executed once */
    int changed = 0;
    const char *core = getenv("OPENBLAS_CORETYPE") ? NULL : better_core(openblas_get_corename());
    if (core) {
        setenv("OPENBLAS_CORETYPE", core, 1);
        changed = 1;
    }
    /* libgomp's idle threads (FAISS, OpenMP loops) spin for ~3 ms by default and steal the cores
     * OpenBLAS's threads need between parallel regions; on 2 cores that made index tests 7x slower.
     * Not spinning at all costs a futex wake-up at every parallel region instead (ResNet-50 runs 53
     * convolutions an image: 40 ms against 37; BERT-base one text 38 ms against 34), so they spin
     * 10^4 times (~0.1 ms), long enough for the next layer's region, then sleep. */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        if (!getenv("GOMP_SPINCOUNT"))
            setenv("GOMP_SPINCOUNT", "10000", 1);
        changed = 1;
    }
    /* OpenBLAS's idle threads spin (sched_yield) for about 2^28 cycles after each call before they
     * sleep; the packed GEMM's and attention's OpenMP threads that run next need those cores (BERT
     * 32 texts × 32 tokens, 2 threads: 14% faster with 2^4). */
    if (!getenv("OPENBLAS_THREAD_TIMEOUT")) {
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
        changed = 1;
    }
    if (!changed)
        return;
    setenv("MEDVLP_RUNTIME_SET", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on with the defaults rather than refuse to run. */
    if (core)
        fprintf(stderr, "medvlp: warning: OpenBLAS uses %s kernels; set OPENBLAS_CORETYPE=%s for speed\n",
                openblas_get_corename(), core);
}
