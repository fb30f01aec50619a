/* fuzz_multipart.c — multipart/form-data splitting as POST /embed/image does it. The input's first
 * line is the Content-Type header value, the rest the body. Beyond "no crash": every part's data
 * lies inside the body, and the part count respects the limit. */
#include "medvlp/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARTS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *eol = memchr(data, '\n', size);
    if (!eol)
        return 0;
    size_t n_type = (size_t)(eol - data);
    char *content_type = malloc(n_type + 1);
    if (!content_type)
        return 0;
    memcpy(content_type, data, n_type);
    content_type[n_type] = '\0';
    const char *body = (const char *)eol + 1;
    size_t n_body = size - n_type - 1;
    mv_multipart_part *parts;
    int n_parts;
    mv_error err = {0};
    if (!mv_multipart_parse(content_type, body, n_body, MAX_PARTS, &parts, &n_parts, &err)) {
        if (n_parts > MAX_PARTS)
            abort();
        for (int i = 0; i < n_parts; i++)
            if (parts[i].data < body || parts[i].data + parts[i].size > body + n_body || !parts[i].name ||
                !parts[i].filename || !parts[i].content_type)
                abort();
        mv_multipart_free(parts, n_parts);
    }
    free(content_type);
    return 0;
}
