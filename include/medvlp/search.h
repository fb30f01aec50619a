/* search.h — one search as medvlp answers it, shared by medvlpd (POST /search) and `medvlp search`
 * so that both print the same JSON: the hits of an index with their metadata as the API shows it,
 * and the response object. */
#ifndef MEDVLP_SEARCH_H
#define MEDVLP_SEARCH_H

#include <jansson.h>

#include "medvlp/error.h"
#include "medvlp/http.h"
#include "medvlp/index.h"

/* How responses are serialised: compact, and floats with the 9 significant digits that round-trip. */
#define MV_SEARCH_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))

/* The k nearest vectors of target to query (dim floats, L2-normalised) by cosine similarity, best
 * first, keeping only those whose user metadata has the key/value of filter_json (a JSON object with
 * at most one member; NULL = all). Fills hits[0..*n_hits), each metadata_json malloc'd (the caller
 * frees, also on failure): the user's metadata plus "caption" and "source" when the index holds them
 * and the user's metadata does not use those keys. */
int mv_search_index(mv_index *index, int target, const float *query, int k, const char *filter_json,
                    mv_search_hit *hits, int *n_hits, mv_error *err);

/* The POST /search response: {"target", "k", "results": [{"id", "score", "metadata"}], "took_ms"}.
 * NULL when out of memory. */
json_t *mv_search_response(int target, int k, const mv_search_hit *hits, int n_hits, double took_ms);

#endif
