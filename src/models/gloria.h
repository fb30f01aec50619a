/* gloria.h — GLoRIA's own pieces (marshuang80/gloria; MODELS.md §3), internal to src/models/:
 * its image input (OpenCV INTER_AREA resize of the longer side, zero padding, center crop, ±1 range,
 * then the model's bilinear upsample to 299), its text cleaning, its token aggregation over the last
 * BERT layers, and its local (word ↔ region attention) similarity. The ResNet, the global embedder
 * (a linear image head) and the BERT run in the shared towers (family_gloria.c).
 *
 * Layouts: local region features are [n_regions, dim] rows (NHWC order of layer3), word embeddings
 * are [word_num, dim] rows (word 0 = [CLS]); GLoRIA's own tensors are the transposes. */
#ifndef MEDVLP_MODELS_GLORIA_H
#define MEDVLP_MODELS_GLORIA_H

#include <stddef.h>
#include <stdint.h>

#include "medvlp/bert.h"
#include "medvlp/error.h"
#include "medvlp/image.h"
#include "medvlp/model.h"

typedef struct mv_gloria_config {
    int word_num;        /* padded text length (data.text.word_num, 97) */
    int last_n_layers;   /* BERT layers summed (model.text.last_n_layers, 4) */
    float temp1, temp2, temp3;   /* model.gloria temperatures (4, 5, 10) */
    int image_size;      /* longer side after resize, then padded square (data.image.imsize, 256) */
    int crop_size;       /* center crop (224) */
    int upsample_size;   /* bilinear, align_corners, inside the model (299) */
} mv_gloria_config;

/* The values of GLoRIA's chexpert_pretrain_config.yaml. */
mv_gloria_config mv_gloria_config_default(void);

/* ---- image ---- */

/* cv2.resize(src, (dst_w, dst_h), interpolation=INTER_AREA) of an 8-bit single-channel image, as
 * OpenCV's resize.cpp computes it (box average for integer factors, area-weighted otherwise,
 * INTER_AREA's bilinear coefficients when enlarging). See gloria.c for what is not modelled. */
int mv_resize_area_u8(const unsigned char *src, int src_w, int src_h, unsigned char *dst, int dst_w, int dst_h,
                      mv_error *err);

/* GLoRIA's test transform of one decoded image: gray (PIL "L" conversion for colour images, where
 * cv2.imread(path, 0) would use OpenCV's), longer side -> image_size with INTER_AREA, zero padding to
 * a square (floor before, ceil after), center crop, v/255 → (x - 0.5) / 0.5. out: [3, crop, crop]. */
int mv_gloria_preprocess(const mv_image *img, const mv_gloria_config *cfg, float *out, mv_error *err);

/* nn.Upsample(size, mode="bilinear", align_corners=True) of one [in_size, in_size] plane, in float
 * like torch's CPU kernel: GLoRIA's first step inside the model (224 → 299). */
void mv_gloria_upsample(const float *in, int in_size, float *out, int out_size);

/* The model input: mv_gloria_preprocess, then mv_gloria_upsample of each channel.
 * out: [3, upsample, upsample]; scratch: [3, crop, crop]. */
int mv_gloria_model_input(const mv_image *img, const mv_gloria_config *cfg, float *out, float *scratch,
                          mv_error *err);

/* ---- text ---- */

/* GLoRIA's process_text cleaning: "\n" → " ", split on /[0-9]+\./ then ".", per piece lowercase and
 * regex \w+ words, pieces of <= 1 word dropped, words reduced to their ASCII characters (empty ones
 * dropped), pieces joined with " ". *out is a heap string. Invalid UTF-8 is MV_EINPUT. */
int mv_gloria_clean_text(const char *text, size_t text_len, char **out, size_t *out_len, mv_error *err);

/* GLoRIA's text side around a BERT it borrows: which ids are "##" pieces, and the buffers of the
 * last n hidden states and their aggregated words. */
typedef struct mv_gloria_text {
    mv_gloria_config config;
    int n_layers, hidden;
    unsigned char *is_piece;     /* per vocab id: the token starts with "##" */
    int vocab_size;
    int32_t sep_id;              /* "[SEP]" in the vocab: aggregation stops after it */
    float **hidden_states;       /* n_layers + 1 slots for mv_bert_forward; the last n are buffers */
    float *words;                /* [last_n_layers, word_num, hidden]: aggregated words per layer */
} mv_gloria_text;

/* Checks last_n_layers and word_num against the BERT and reads the "##" pieces of vocab_path. */
int mv_gloria_text_init(mv_gloria_text *g, const mv_gloria_config *cfg, const mv_bert_config *bert_cfg,
                        const char *vocab_path, mv_error *err);
void mv_gloria_text_free(mv_gloria_text *g);

/* ids: one text's [CLS] … [SEP] (at most word_num ids, unpadded: padding never reaches an output).
 * word_emb [word_num, hidden] (zero rows after the last word), *n_words counts [CLS] and [SEP];
 * sent_emb [hidden] = Σ_layers mean over all word_num positions (GLoRIA's divisor). Any output may
 * be NULL. */
int mv_gloria_text_forward(mv_gloria_text *g, const mv_bert *bert, mv_bert_state *state, const int32_t *ids,
                           int n_ids, float *word_emb, int *n_words, float *sent_emb, mv_error *err);

/* ---- similarity ---- */

/* Floats of scratch mv_gloria_local_similarity needs. */
size_t mv_gloria_local_scratch_size(int n_query, int n_regions, int dim);

/* GLoRIA's local image-text score: words 1..n_query of word_emb (the real words after [CLS]) attend
 * over the regions (softmax over the words per region, × temp1, softmax over the regions per word),
 * each word's cosine with its attended context × temp2, exp, max over the words, log — that is
 * temp2 · max cosine, computed that way. */
double mv_gloria_local_similarity(const float *word_emb, int n_query, const float *regions, int n_regions,
                                  int dim, float temp1, float temp2, float *scratch);

/* ---- the opened model (family_gloria.c) ---- */

/* The local score of text against the image of the model's last mv_model_embed_images call (its
 * first image): GLoRIA cleaning, WordPiece, word embeddings, local_embedder on layer3, then
 * mv_gloria_local_similarity over the real words (n_words − 2: [CLS] and [SEP] excluded).
 * A text with no words left is MV_EINPUT; a model of another family MV_EUNSUPPORTED. */
int mv_gloria_model_local_score(mv_model *model, const char *text, size_t text_len, double *local, mv_error *err);

#endif
