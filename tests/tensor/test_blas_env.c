/* test_blas_env.c — the thread settings mv_blas_select_kernels gives the process before it re-executes
 * it: idle OpenMP threads wait passively after a short spin (OMP_WAIT_POLICY=passive with
 * GOMP_SPINCOUNT=10000) and idle OpenBLAS threads sleep at once (OPENBLAS_THREAD_TIMEOUT=4), each only
 * where the user has not set it, and a user's own wait policy keeps libgomp's own spin; and where
 * large products go: to cblas_sgemm only when OpenBLAS runs AVX-512 kernels (a host's
 * OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU keeps them on the packed kernel). The program runs
 * itself ("child", "route") under each environment and reads back what the child saw after the exec. */
#include "medvlp/tensor.h"
#include "../test.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *value(const char *name)
{
    const char *v = getenv(name);
    return v ? v : "-";
}

/* Runs this program as `role` with the settings unset, then `assignments` (VAR=value ...) set. */
static void check_env(const char *self, const char *role, const char *assignments, const char *want)
{
    char command[4096], got[256] = "";
    snprintf(command, sizeof command,
             "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u OPENBLAS_THREAD_TIMEOUT -u MEDVLP_RUNTIME_SET "
             "-u OPENBLAS_CORETYPE %s '%s' %s",
             assignments, self, role);
    FILE *child = popen(command, "r");
    CHECK(child != NULL);
    if (!child)
        return;
    if (!fgets(got, sizeof got, child))
        got[0] = '\0';
    got[strcspn(got, "\n")] = '\0';
    CHECK_INT_EQ(pclose(child), 0);
    CHECK_MSG(!strcmp(got, want), "with '%s': got '%s', want '%s'", assignments, got, want);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "child")) {
        mv_blas_select_kernels(argv);
        printf("%s %s %s\n", value("OMP_WAIT_POLICY"), value("GOMP_SPINCOUNT"), value("OPENBLAS_THREAD_TIMEOUT"));
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "route")) {
        mv_blas_select_kernels(argv);
        enum { FEATURES = 1024 };
        float *weight = calloc((size_t)FEATURES * FEATURES, sizeof(float));
        mv_packed_weight pw;
        if (!weight || mv_packed_weight_init(&pw, weight, FEATURES, FEATURES, MV_QUANT_NONE))
            return 1;
        printf("avx512 %d cblas %d\n", mv_blas_has_avx512_kernels(), pw.large_to_cblas);
        mv_packed_weight_free(&pw);
        free(weight);
        return 0;
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(len > 0);
    if (len <= 0)
        return test_report("blas_env");
    self[len] = '\0';
    check_env(self, "child", "", "passive 10000 4");
    check_env(self, "child", "GOMP_SPINCOUNT=5", "passive 5 4");
    check_env(self, "child", "OMP_WAIT_POLICY=active", "active - 4");
    check_env(self, "child", "OPENBLAS_THREAD_TIMEOUT=7", "passive 10000 7");
    check_env(self, "route", "OPENBLAS_CORETYPE=Haswell", "avx512 0 cblas 0");
    /* SkylakeX kernels need AVX-512, as the packed kernel does: without it OpenBLAS falls back. */
    check_env(self, "route", "OPENBLAS_CORETYPE=SkylakeX",
              mv_packed_kernel_available() ? "avx512 1 cblas 1" : "avx512 0 cblas 0");
    return test_report("blas_env");
}
