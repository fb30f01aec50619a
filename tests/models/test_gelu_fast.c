/* test_gelu_fast.c — mv_gelu_erf_fast against x·Φ(x) computed in double with erfc, over the range
 * BERT activations take and beyond (where exp underflows and Φ saturates). */
#include "medvlp/tensor.h"
#include "../test.h"

#include <stdlib.h>

int main(void)
{
    enum { N = 200001 };
    float *x = malloc(N * sizeof *x);
    for (int i = 0; i < N; i++)
        x[i] = -20.0f + 40.0f * (float)i / (N - 1);
    float *y = malloc(N * sizeof *y);
    memcpy(y, x, N * sizeof *y);
    mv_gelu_erf_fast(y, N);
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        double exact = x[i] * 0.5 * erfc(-x[i] / sqrt(2.0));
        double err = fabs(y[i] - exact) / fmax(1.0, fabs(x[i]));
        worst = err > worst ? err : worst;
    }
    printf("max |fast - exact| / max(1,|x|) = %.3g\n", worst);
    CHECK(worst <= 1e-6);
    float special[4] = {0.0f, -0.0f, 1e-30f, -200.0f};
    mv_gelu_erf_fast(special, 4);
    CHECK(special[0] == 0.0f && special[1] == 0.0f && special[3] == 0.0f);
    CHECK_NEAR(special[2], 0.5e-30, 1e-36);
    free(x);
    free(y);
    return test_report("gelu_fast");
}
