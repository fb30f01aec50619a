/* test_attention.c — mv_attention against softmax(q·kᵀ/√d)·v computed per head in double, on
 * sequence lengths around the kernel's 8-row and 32-column tiles, head sizes that do and do not fill
 * a 32-wide panel, separate q/k/v matrices and slices of one fused qkv matrix (as ViT reads them),
 * and an output wider than the heads (ldo > heads·head_dim). */
#include "medvlp/tensor.h"
#include "../test.h"

#include <stdlib.h>

static float uniform(unsigned *seed)
{
    return (float)rand_r(seed) / RAND_MAX - 0.5f;
}

static void check(int n, int heads, int head_dim, int fused_qkv, unsigned *seed)
{
    const int width = heads * head_dim, ld = fused_qkv ? 3 * width : width, ldo = width + 5;
    size_t in_floats = (size_t)n * ld;
    float *q = malloc(in_floats * sizeof *q), *k = NULL, *v = NULL, *k_own = NULL, *v_own = NULL;
    /* Scores of a few units: 4·uniform products over head_dim terms keep the softmax far from flat. */
    for (size_t i = 0; i < in_floats; i++)
        q[i] = 4.0f * uniform(seed);
    if (fused_qkv) {
        k = q + width;
        v = q + 2 * width;
    } else {
        k = k_own = malloc(in_floats * sizeof *k);
        v = v_own = malloc(in_floats * sizeof *v);
        for (size_t i = 0; i < in_floats; i++) {
            k_own[i] = 4.0f * uniform(seed);
            v_own[i] = uniform(seed);
        }
    }
    size_t out_floats = (size_t)n * ldo;
    float *out = malloc(out_floats * sizeof *out);
    for (size_t i = 0; i < out_floats; i++)
        out[i] = 7.0f; /* columns past the heads must stay 7 */
    size_t scratch_bytes = (mv_attention_scratch_floats(n, heads, head_dim) * sizeof(float) + 63) / 64 * 64;
    float *scratch = aligned_alloc(64, scratch_bytes);
    mv_attention(q, k, v, ld, n, heads, head_dim, out, ldo, scratch);

    double *scores = malloc((size_t)n * sizeof *scores), worst = 0.0;
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < n; i++) {
            double max = -INFINITY, sum = 0.0;
            for (int j = 0; j < n; j++) {
                double dot = 0.0;
                for (int d = 0; d < head_dim; d++)
                    dot += (double)q[(size_t)i * ld + h * head_dim + d] * k[(size_t)j * ld + h * head_dim + d];
                scores[j] = dot / sqrt((double)head_dim);
                max = scores[j] > max ? scores[j] : max;
            }
            for (int j = 0; j < n; j++)
                sum += scores[j] = exp(scores[j] - max);
            for (int d = 0; d < head_dim; d++) {
                double expect = 0.0;
                for (int j = 0; j < n; j++)
                    expect += scores[j] / sum * v[(size_t)j * ld + h * head_dim + d];
                double diff = fabs(out[(size_t)i * ldo + h * head_dim + d] - expect);
                worst = diff > worst || diff != diff ? diff : worst;
            }
        }
    /* Float scores are off by ~head_dim·2^-24 relative; through exp that is well under 1e-5 here. */
    CHECK_MSG(worst <= 2e-5, "n %d heads %d head_dim %d fused %d: max |d| %g", n, heads, head_dim, fused_qkv, worst);
    for (int i = 0; i < n; i++)
        for (int c = width; c < ldo; c++)
            CHECK(out[(size_t)i * ldo + c] == 7.0f);
    free(scores);
    free(scratch);
    free(out);
    free(q);
    free(k_own);
    free(v_own);
}

int main(void)
{
    static const int lengths[] = {1, 7, 8, 9, 31, 33, 197};
    static const int head_dims[][2] = {{1, 64}, {3, 20}, {2, 33}, {12, 64}}; /* {heads, head_dim} */
    unsigned seed = 3;
    for (size_t a = 0; a < sizeof lengths / sizeof *lengths; a++)
        for (size_t b = 0; b < sizeof head_dims / sizeof *head_dims; b++)
            check(lengths[a], head_dims[b][0], head_dims[b][1], (int)((a + b) % 2), &seed);
    check(300, 2, 40, 1, &seed); /* longer than a K block of scores */
    return test_report("attention");
}
