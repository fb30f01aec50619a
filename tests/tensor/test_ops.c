/* test_ops.c — the element-wise kernels against closed-form values computed here in double, and the
 * thread count products see. */
#include "medvlp/tensor.h"
#include "../test.h"

#include <stdlib.h>

int main(void)
{
    /* GELU(x) = x·Φ(x); reference values from the normal CDF computed in double via erfc. */
    float xs[] = {-4.0f, -1.5f, -0.3f, 0.0f, 0.7f, 2.5f, 6.0f};
    float g[7];
    memcpy(g, xs, sizeof xs);
    mv_gelu_erf(g, 7);
    for (int i = 0; i < 7; i++)
        CHECK_NEAR(g[i], xs[i] * 0.5 * erfc(-xs[i] / sqrt(2.0)), 1e-6);

    /* LayerNorm of a row with biased variance; eps tiny as BERT's. */
    float row[4] = {1, 2, 3, 10}, out[4];
    float gamma[4] = {1, 2, 1, 0.5f}, beta[4] = {0, 1, -1, 0};
    mv_layernorm(row, out, 1, 4, gamma, beta, 1e-12f);
    double mean = 4.0, var = (9 + 4 + 1 + 36) / 4.0;
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(out[i], (row[i] - mean) / sqrt(var) * gamma[i] + beta[i], 1e-5);

    /* Softmax sums to one and keeps order, including huge logits. */
    float logits[3] = {1000.0f, 1001.0f, 999.0f};
    mv_softmax_rows(logits, 1, 3);
    CHECK_NEAR(logits[0] + logits[1] + logits[2], 1.0, 1e-6);
    CHECK_NEAR(logits[1], 1.0 / (1.0 + exp(-1.0) + exp(-2.0)), 1e-6);

    /* Rows as long as the models' (ViT 197 tokens, BERT 768 wide) and odd lengths, so the vector
     * lanes and the scalar tails both run: softmax and LayerNorm against double references. */
    enum { LONG = 771 };
    static float long_row[LONG], long_out[LONG], ones[LONG], zeros[LONG];
    srand(3);
    for (int dim = 1; dim <= LONG; dim += 385) {
        for (int i = 0; i < dim; i++) {
            long_row[i] = 30.0f * ((float)rand() / (float)RAND_MAX - 0.5f);
            ones[i] = 1.0f;
        }
        double max = -INFINITY, sum = 0.0, mean = 0.0, var = 0.0;
        for (int i = 0; i < dim; i++) {
            max = fmax(max, long_row[i]);
            mean += long_row[i] / dim;
        }
        for (int i = 0; i < dim; i++) {
            sum += exp(long_row[i] - max);
            var += (long_row[i] - mean) * (long_row[i] - mean) / dim;
        }
        mv_layernorm(long_row, long_out, 1, dim, ones, zeros, 1e-12f);
        for (int i = 0; i < dim; i++)
            CHECK_NEAR(long_out[i], dim == 1 ? 0.0 : (long_row[i] - mean) / sqrt(var + 1e-12), 2e-5);
        float probs[LONG];
        memcpy(probs, long_row, sizeof(float) * dim);
        mv_softmax_rows(probs, 1, dim);
        for (int i = 0; i < dim; i++)
            CHECK_NEAR(probs[i], exp(long_row[i] - max) / sum, 1e-5 * fmax(1e-3, exp(long_row[i] - max) / sum));
    }

    /* Linear: y = x·Wᵀ + b against a naive triple loop. */
    enum { R = 3, IN = 5, OUT = 4 };
    float x[R * IN], w[OUT * IN], b[OUT], y[R * OUT];
    srand(7);
    for (int i = 0; i < R * IN; i++) x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (int i = 0; i < OUT * IN; i++) w[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (int i = 0; i < OUT; i++) b[i] = (float)i;
    mv_linear(x, R, IN, w, b, OUT, y);
    for (int r = 0; r < R; r++)
        for (int o = 0; o < OUT; o++) {
            double acc = b[o];
            for (int i = 0; i < IN; i++) acc += (double)x[r * IN + i] * w[o * IN + i];
            CHECK_NEAR(y[r * OUT + o], acc, 1e-5);
        }

    float v[3] = {3, 4, 0};
    mv_l2_normalize_rows(v, 1, 3);
    CHECK_NEAR(v[0], 0.6, 1e-7);
    CHECK_NEAR(v[1], 0.8, 1e-7);

    /* Inside an OpenMP team of the caller's own, products get one thread each (ResNet's images side by
     * side), outside it every thread set. */
    mv_set_threads(2);
    int outside = mv_get_threads(), inside = -1;
#pragma omp parallel num_threads(2)
#pragma omp single
    inside = mv_get_threads();
    CHECK_INT_EQ(outside, 2);
    CHECK_INT_EQ(inside, 1);
    return test_report("tensor_ops");
}
