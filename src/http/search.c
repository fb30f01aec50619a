/* search.c — a search over an index directory as the API reports it (include/medvlp/search.h):
 * filter parsing, hit metadata, and the response JSON that medvlpd and `medvlp search` both print. */
#include "medvlp/search.h"

#include <stdlib.h>

/* A hit's metadata as the API shows it: the user's metadata, plus "caption" and "source" when the
 * index holds them and the user's metadata does not use those keys. */
static char *hit_metadata(const mv_index_record *record)
{
    json_t *metadata = json_loads(record->metadata_json ? record->metadata_json : "{}", 0, NULL);
    if (!json_is_object(metadata)) {
        json_decref(metadata);
        metadata = json_object();
    }
    if (record->caption && !json_object_get(metadata, "caption"))
        json_object_set_new(metadata, "caption", json_string(record->caption));
    if (record->source && !json_object_get(metadata, "source"))
        json_object_set_new(metadata, "source", json_string(record->source));
    char *text = json_dumps(metadata, JSON_COMPACT);
    json_decref(metadata);
    return text;
}

int mv_search_index(mv_index *index, int target, const float *query, int k, const char *filter_json,
                    mv_search_hit *hits, int *n_hits, mv_error *err)
{
    *n_hits = 0;
    mv_index_filter filter = {0};
    char *value_json = NULL;
    json_t *filter_object = filter_json ? json_loads(filter_json, 0, NULL) : NULL;
    if (filter_object && json_object_size(filter_object) == 1) {
        void *it = json_object_iter(filter_object);
        filter.key = json_object_iter_key(it);
        value_json = json_dumps(json_object_iter_value(it), JSON_COMPACT | JSON_ENCODE_ANY);
        filter.value_json = value_json;
    }
    mv_index_hit *found = malloc(sizeof *found * (size_t)k);
    int status;
    if (!found || (filter.key && !value_json)) {
        status = mv_fail(err, MV_ENOMEM, "out of memory for %d hits", k);
    } else {
        int n_found = 0;
        status = mv_index_search(index, target, query, 1, k, filter.key ? &filter : NULL, found, &n_found, err);
        for (int i = 0; !status && i < n_found; i++) {
            mv_index_record record;
            status = mv_index_get(index, found[i].id, &record, err);
            if (status)
                break;
            hits[i] = (mv_search_hit){found[i].id, found[i].score, hit_metadata(&record)};
            mv_index_record_free(&record);
            *n_hits = i + 1;
        }
    }
    free(found);
    free(value_json);
    json_decref(filter_object);
    return status;
}

/* Metadata text from the index as a JSON value ({} when unreadable: the hit is still reported). */
static json_t *metadata_value(const char *text)
{
    json_t *value = text ? json_loads(text, 0, NULL) : NULL;
    return value ? value : json_object();
}

json_t *mv_search_response(int target, int k, const mv_search_hit *hits, int n_hits, double took_ms)
{
    json_t *results = json_array();
    for (int i = 0; results && i < n_hits; i++)
        json_array_append_new(results, json_pack("{s:I,s:f,s:o}", "id", (json_int_t)hits[i].id, "score",
                                                 (double)hits[i].score, "metadata",
                                                 metadata_value(hits[i].metadata_json)));
    return json_pack("{s:s,s:i,s:o,s:f}", "target", mv_index_target_name(target), "k", k, "results", results,
                     "took_ms", took_ms);
}
