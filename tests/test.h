/* test.h — the few assertions medvlp's C tests use. Each test program counts failed checks and
 * returns non-zero if any failed; meson counts programs. Checks print file:line and the values. */
#ifndef MEDVLP_TEST_H
#define MEDVLP_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond) do { test_checks++; if (!(cond)) { test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)

#define CHECK_MSG(cond, ...) do { test_checks++; if (!(cond)) { test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

#define CHECK_INT_EQ(a, b) do { long long _a = (long long)(a), _b = (long long)(b); test_checks++; \
    if (_a != _b) { test_failures++; fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
    __FILE__, __LINE__, #a, #b, _a, _b); } } while (0)

#define CHECK_NEAR(a, b, tol) do { double _a = (a), _b = (b); test_checks++; \
    if (!(fabs(_a - _b) <= (tol))) { test_failures++; fprintf(stderr, \
    "%s:%d: |%s - %s| <= %g failed: %.9g vs %.9g\n", __FILE__, __LINE__, #a, #b, (double)(tol), _a, _b); } } while (0)

#define CHECK_STR_CONTAINS(haystack, needle) do { const char *_h = (haystack), *_n = (needle); \
    test_checks++; if (!_h || !strstr(_h, _n)) { test_failures++; fprintf(stderr, \
    "%s:%d: expected \"%s\" in \"%s\"\n", __FILE__, __LINE__, _n, _h ? _h : "(null)"); } } while (0)

static inline int test_report(const char *name)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}

/* Cosine similarity and max |a-b| of two vectors, for parity checks against reference outputs. */
static inline double test_cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / (sqrt(aa) * sqrt(bb) + 1e-30);
}

static inline double test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d)
            m = d != d ? INFINITY : d;
    }
    return m;
}

#endif
