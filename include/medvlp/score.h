/* score.h — how well one text matches one image under a model: the cosine of their joint-space
 * embeddings, and for GLoRIA also its word–region ("local") score and the paper's combination.
 *
 * GLoRIA (gloria.py get_similarities, zero-shot): global = cosine(img_emb_g, sent_emb); local =
 * log max_w exp(temp2 · cosine(word_w, attended region context)) over the text's real words;
 * combined = (local + global) / 2. medvlp counts the words between [CLS] and [SEP] where the authors'
 * code counts the characters of the caption (see weights/README.md). */
#ifndef MEDVLP_SCORE_H
#define MEDVLP_SCORE_H

#include <stddef.h>

#include "medvlp/error.h"
#include "medvlp/image.h"
#include "medvlp/model.h"

typedef struct mv_pair_score {
    double global;      /* cosine similarity of the two embeddings */
    int has_local;      /* the family has a local score (GLoRIA) */
    double local;       /* GLoRIA's local score (0 when !has_local) */
    double combined;    /* (local + global) / 2 for GLoRIA, else global */
} mv_pair_score;

/* Scores text (UTF-8, text_len bytes) against a decoded image. A model without an image tower is
 * MV_EUNSUPPORTED; text and image errors are MV_EINPUT. */
int mv_model_score_pair(mv_model *model, const char *text, size_t text_len, const mv_image *image,
                        mv_pair_score *out, mv_error *err);

#endif
