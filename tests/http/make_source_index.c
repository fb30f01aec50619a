/* make_source_index.c — test helper: writes an index for MODEL_DIR into INDEX_DIR whose image items
 * record a source path (FILE...) and have no stored thumbnail, as `medvlp index build` makes them,
 * so test_portal_http.sh can check that medvlpd thumbnails them from the path the index holds.
 * The vectors are a fixed unit vector: only the records matter here. Prints one id per line. */
#include "medvlp/index.h"
#include "medvlp/model.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: make_source_index MODEL_DIR INDEX_DIR FILE...\n");
        return 2;
    }
    mv_error err = {0};
    mv_model *model = NULL;
    mv_index *index = NULL;
    mv_model_info info;
    char checksum[65];
    int status = mv_model_open(argv[1], NULL, &model, &err);
    if (!status) {
        mv_model_get_info(model, &info);
        status = mv_model_weights_checksum(model, checksum, &err);
    }
    if (!status) {
        mv_index_model expect = {.family = info.family, .dim = info.embed_dim, .weights_checksum = checksum};
        status = mv_index_create(argv[2], &expect, NULL, &index, &err);
    }
    float *unit = status ? NULL : calloc((size_t)info.embed_dim, sizeof *unit);
    for (int i = 3; !status && i < argc; i++) {
        unit[0] = 1.0f;
        mv_index_item item = {.vector = unit, .source = argv[i], .metadata_json = "{}"};
        int64_t id;
        status = mv_index_add(index, MV_INDEX_IMAGES, &item, 1, &id, &err);
        if (!status)
            printf("%" PRId64 "\n", id);
    }
    if (status)
        fprintf(stderr, "make_source_index: %s\n", err.message);
    free(unit);
    if (index)
        mv_index_close(index);
    mv_model_free(model);
    return status ? 1 : 0;
}
