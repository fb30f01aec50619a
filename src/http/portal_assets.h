/* portal_assets.h — the search portal's files (src/http/portal/), compiled into the library as byte
 * arrays by scripts/embed_assets.py at build time, so medvlpd serves GET / with no files beside it. */
#ifndef MEDVLP_HTTP_PORTAL_ASSETS_H
#define MEDVLP_HTTP_PORTAL_ASSETS_H

#include <stddef.h>

typedef struct mv_asset {
    const char *path;         /* URL path: "/" for index.html, else "/" + the file name */
    const char *content_type; /* from the file's extension */
    const unsigned char *data;
    size_t size;
} mv_asset;

extern const mv_asset mv_portal_assets[];
extern const size_t mv_portal_n_assets;

#endif
