/* score.c — owns text–image pair scoring (include/medvlp/score.h): both embeddings through the
 * model's towers, their cosine, and the family's extra scores (GLoRIA's local score). */
#include "medvlp/score.h"

#include <stdlib.h>
#include <string.h>

#include "models/family.h"
#include "models/gloria.h"

int mv_model_score_pair(mv_model *model, const char *text, size_t text_len, const mv_image *image,
                        mv_pair_score *out, mv_error *err)
{
    memset(out, 0, sizeof *out);
    mv_model_info info;
    mv_model_get_info(model, &info);
    float *embeddings = malloc(2 * (size_t)info.embed_dim * sizeof *embeddings);
    if (!embeddings)
        return mv_fail(err, MV_ENOMEM, "score: out of memory");
    const char *texts[1] = {text};
    int rc = mv_model_embed_texts(model, texts, &text_len, 1, 1, embeddings, NULL, NULL, err);
    /* the image last: GLoRIA's local score reads this image's layer3 */
    if (!rc)
        rc = mv_model_embed_images(model, image, 1, 1, embeddings + info.embed_dim, err);
    if (!rc) {
        double dot = 0;
        for (int i = 0; i < info.embed_dim; i++)
            dot += (double)embeddings[i] * embeddings[info.embed_dim + i];
        out->global = dot;
        out->combined = dot;
        if (!strcmp(info.family, "gloria")) {
            rc = mv_gloria_model_local_score(model, text, text_len, &out->local, err);
            out->has_local = 1;
            out->combined = (out->local + out->global) / 2;
        }
    }
    free(embeddings);
    return rc;
}
