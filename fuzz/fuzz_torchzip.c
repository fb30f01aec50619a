/* fuzz_torchzip.c — torch.save checkpoints from arbitrary bytes: the zip container (central
 * directory, zip64, local headers) with its pickle and storages, the legacy (pre-1.6) pickle
 * sequence, and the pickle VM alone on the raw input so mutations reach it without a valid zip. */
#include "checkpoint/pickle.h"
#include "checkpoint/readers.h"
#include "checkpoint_entries.h"

#include <stdint.h>

typedef int (*reader_fn)(mv_weights *weights, const char *path, const unsigned char *data, size_t size,
                         mv_error *err);

static void run_reader(reader_fn read, const char *format, const uint8_t *data, size_t size)
{
    mv_weights *weights = mv_weights_new("fuzz.pt", format);
    if (!weights)
        return;
    mv_error err = {0};
    if (!read(weights, "fuzz.pt", data, size, &err))
        fuzz_touch_entries(weights);
    mv_weights_free(weights);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_reader(mv_torch_zip_read, "torch-zip", data, size);
    run_reader(mv_torch_legacy_read, "torch-legacy", data, size);
    mv_pickle *pickle = mv_pickle_new("fuzz.pkl");
    if (!pickle)
        return 0;
    size_t consumed;
    mv_pk_obj *root;
    mv_error err = {0};
    if (!mv_pickle_load(pickle, data, size, &consumed, NULL, NULL, &root, &err) && consumed > size)
        abort();
    mv_pickle_free(pickle);
    return 0;
}
