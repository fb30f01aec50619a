/* fuzz_base64.c — the strict base64 decoder of JSON image fields on arbitrary bytes. Beyond "no
 * crash": a decoded string is exactly 3/4 of its (padded) length, and re-encoding the bytes with an
 * independent encoder gives back the input, since only canonical encodings may be accepted. */
#include "medvlp/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *bytes;
    size_t n_bytes;
    mv_error err = {0};
    if (mv_base64_decode((const char *)data, size, &bytes, &n_bytes, &err))
        return 0;
    if ((n_bytes + 2) / 3 * 4 != size)
        abort();
    char *text = malloc(size);
    if (!text)
        abort();
    for (size_t i = 0, o = 0; i < n_bytes; i += 3, o += 4) {
        uint32_t v = (uint32_t)bytes[i] << 16 | (i + 1 < n_bytes ? (uint32_t)bytes[i + 1] << 8 : 0) |
                     (i + 2 < n_bytes ? bytes[i + 2] : 0);
        text[o] = alphabet[v >> 18 & 63];
        text[o + 1] = alphabet[v >> 12 & 63];
        text[o + 2] = i + 1 < n_bytes ? alphabet[v >> 6 & 63] : '=';
        text[o + 3] = i + 2 < n_bytes ? alphabet[v & 63] : '=';
    }
    if (memcmp(text, data, size))
        abort();
    free(text);
    free(bytes);
    return 0;
}
