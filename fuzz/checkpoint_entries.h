/* checkpoint_entries.h — shared by the checkpoint harnesses: after a reader accepted an input, read
 * every byte of every tensor it registered (ASan then catches a tensor that points outside the
 * input), and check the shape agrees with the element count. */
#ifndef MEDVLP_FUZZ_CHECKPOINT_ENTRIES_H
#define MEDVLP_FUZZ_CHECKPOINT_ENTRIES_H

#include "medvlp/weights.h"

#include <stdlib.h>

static void fuzz_touch_entries(mv_weights *weights)
{
    mv_error err = {0};
    if (mv_weights_finish(weights, &err))
        return;
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < mv_weights_count(weights); i++) {
        const mv_tensor_entry *e = mv_weights_at(weights, i);
        size_t n = 1;
        for (int d = 0; d < e->ndim; d++)
            n *= (size_t)e->shape[d];
        if (n != e->n_elements || !e->name)
            abort();
        const unsigned char *raw = e->raw;
        size_t n_raw = e->n_elements * mv_weights_dtype_size(e->dtype);
        for (size_t b = 0; raw && b < n_raw; b++)
            sink ^= raw[b];
        for (size_t k = 0; e->f32 && k < e->n_elements; k++)
            sink ^= (unsigned char)(e->f32[k] != 0);
    }
    (void)sink;
}

#endif
