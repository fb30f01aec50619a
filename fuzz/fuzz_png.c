/* fuzz_png.c — PNG decoding (and preprocessing of what decodes) from arbitrary bytes. Inputs that
 * are not PNG by their magic are skipped, so this harness's time goes to the PNG decoder; the
 * shared body is in decode_preprocess.h. */
#include "decode_preprocess.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *format = mv_image_sniff(data, size);
    if (!format || strcmp(format, "png"))
        return 0;
    return fuzz_decode_preprocess(data, size);
}
