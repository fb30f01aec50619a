/* fuzz_safetensors.c — the safetensors reader (JSON header, dtypes, offsets) on arbitrary bytes
 * standing for a whole checkpoint file. */
#include "checkpoint/readers.h"
#include "checkpoint_entries.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mv_weights *weights = mv_weights_new("fuzz.safetensors", "safetensors");
    if (!weights)
        return 0;
    mv_error err = {0};
    if (!mv_safetensors_read(weights, "fuzz.safetensors", data, size, &err))
        fuzz_touch_entries(weights);
    mv_weights_free(weights);
    return 0;
}
