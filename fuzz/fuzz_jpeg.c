/* fuzz_jpeg.c — JPEG decoding (and preprocessing of what decodes) from arbitrary bytes. Inputs that
 * are not JPEG by their magic are skipped, so this harness's time goes to the JPEG decoder; the
 * shared body is in decode_preprocess.h. */
#include "decode_preprocess.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *format = mv_image_sniff(data, size);
    if (!format || strcmp(format, "jpeg"))
        return 0;
    return fuzz_decode_preprocess(data, size);
}
