/* family.h — what a model family provides, and the model it fills. Internal to src/models/.
 *
 * A family is one small file (family_<name>.c) defining an mv_model_family: a predicate on the
 * opened directory (layout + config) and a loader that opens its weight file(s) with
 * mv_model_add_weights and builds the towers. model.c asks each family in turn; model_dir.c owns
 * everything about reading the directory itself (layouts, medvlp.json, config fields).
 *
 * A loader fills: family-independent text tower fields (model->text, text_cleaning,
 * context_length), and optionally model->image (encoder, head, transform, then
 * mv_image_tower_set_transform). model.c then opens the tokenizer, checks that the text and image
 * towers meet in one joint space and records unused tensors. */
#ifndef MEDVLP_MODELS_FAMILY_H
#define MEDVLP_MODELS_FAMILY_H

#include <jansson.h>
#include <limits.h>

#include "medvlp/model.h"
#include "medvlp/tokenizer.h"
#include "medvlp/weights.h"
#include "models/image_tower.h"
#include "models/text_tower.h"

typedef enum mv_layout { MV_LAYOUT_OPEN_CLIP, MV_LAYOUT_HF, MV_LAYOUT_MANIFEST } mv_layout;

/* An opened model directory: which layout, its parsed config files, the chosen weight file. */
typedef struct mv_model_dir {
    const char *path;
    mv_layout layout;
    json_t *config;          /* open_clip_config.json, config.json (hf) or medvlp.json (manifest) */
    char config_path[PATH_MAX];
    json_t *text_config;     /* open_clip: a config.json beside the weights; manifest: text.config; or NULL */
    char text_config_path[PATH_MAX];
    char weights_path[PATH_MAX]; /* open_clip / hf: the weight file; manifest: "" (see mv_manifest_file) */
    const char *family;      /* manifest: its "family" */
} mv_model_dir;

/* medvlp.json takes precedence over the other layouts: it may sit in a Hugging Face directory to
 * pair that text model with an image checkpoint (CXR-BERT + BioViL). */
int mv_model_dir_open(const char *path, mv_model_dir *dir, mv_error *err);
void mv_model_dir_close(mv_model_dir *dir);
const char *mv_layout_name(mv_layout layout);

/* Manifest layout: the path (joined to the directory) of the file named by section.key, where
 * section is "text", "image" or NULL (top level). A missing key gives fallback (NULL: out = "" and
 * MV_OK when !required, else an error naming the field). */
int mv_manifest_file(const mv_model_dir *dir, const char *section, const char *key, const char *fallback,
                     int required, char out[PATH_MAX], mv_error *err);
/* Manifest layout: the "image" section's preprocessing fields over the family's defaults in t:
 * resize (int: shortest side, [h, w]: exact), crop (int or [h, w]), interpolation
 * ("bicubic"|"bilinear"|"nearest"), mean / std (3 numbers, or null for v/255), color ("RGB"|"L"). */
int mv_manifest_transform(const mv_model_dir *dir, mv_transform *t, mv_error *err);
/* The tokenizer of any layout: vocab.txt + tokenizer_config.json of the directory, or the manifest's
 * text.vocab (default "vocab.txt") + text.tokenizer_config (absent: BertTokenizer defaults). */
int mv_model_dir_tokenizer(const mv_model_dir *dir, mv_tokenizer **out, mv_error *err);

/* Config fields with errors naming the file and the field. A missing optional field keeps *out. */
int mv_json_int(const json_t *object, const char *key, int required, int *out, const char *path, mv_error *err);
int mv_json_float(const json_t *object, const char *key, int required, float *out, const char *path, mv_error *err);
const char *mv_json_string(const json_t *object, const char *key);

/* BERT hyper-parameters from a Hugging Face BertConfig-style JSON object; every size is required. */
int mv_bert_config_from_hf(const json_t *config, const char *path, mv_bert_config *out, mv_error *err);
/* BERT hyper-parameters read off the tensor shapes under prefix (heads = hidden / 64). */
int mv_bert_config_infer(const mv_weights *weights, const char *prefix, mv_bert_config *out, mv_error *err);

/* How a family's authors clean a text before WordPiece. */
typedef enum mv_text_cleaning {
    MV_CLEAN_OPEN_CLIP,      /* open_clip HFTokenizer: ftfy-like fixes, HTML unescape x2, whitespace */
    MV_CLEAN_RSTRIP_PUNCT,   /* hi-ml: strip trailing "!?." */
    MV_CLEAN_NONE,           /* the tokenizer's own clean_text only (ConVIRT) */
    MV_CLEAN_GLORIA,         /* GLoRIA process_text: list-marker/sentence split, \w+ words, ASCII only */
} mv_text_cleaning;

/* Weight files one model may hold (CXR-BERT's .bin + BioViL's .pt). */
#define MV_MODEL_MAX_WEIGHT_FILES 4

struct mv_model {
    const char *family;
    mv_layout layout;
    mv_weights *weights[MV_MODEL_MAX_WEIGHT_FILES];
    int n_weights;
    mv_text_tower text;
    mv_image_tower image;    /* image.encoder == MV_ENCODER_NONE: text only */
    mv_text_cleaning text_cleaning;
    mv_tokenizer *tokenizer;
    int context_length;
    int32_t *token_ids;      /* packed ids of the batch being embedded, grown as needed */
    int *lengths;
    size_t cap_token_ids;
    int cap_texts;
    const char **unused;     /* names owned by weights */
    size_t n_unused;
    uint64_t max_pixels;     /* decode limit of mv_model_embed_image_bytes */
    char checksum[65];       /* mv_model_weights_checksum, computed on first use */
    int tiny_random;         /* the directory holds a TINY-RANDOM-WEIGHTS marker */
    mv_quant quant;          /* how the towers store their Linear weights */
};

/* Opens a checkpoint and hands it to the model (freed with it). */
int mv_model_add_weights(mv_model *model, const char *path, mv_weights **out, mv_error *err);
/* mv_model_add_weights of the manifest's required "checkpoint" file (single-checkpoint families). */
int mv_model_add_checkpoint(mv_model *model, const mv_model_dir *dir, mv_weights **out, mv_error *err);

typedef struct mv_model_family {
    const char *name;
    int (*matches)(const mv_model_dir *dir);
    /* Opens the weight file(s) with mv_model_add_weights and builds the towers. */
    int (*load)(mv_model *model, const mv_model_dir *dir, mv_error *err);
} mv_model_family;

/* mv_bert_load into model->text.bert, mv_vit_load / mv_resnet_load into model->image, with the
 * weight storage the model was opened with (mv_model_options.quant). */
int mv_model_load_bert(mv_model *model, const mv_bert_config *config, mv_weights *weights, const char *prefix,
                       int with_pooler, mv_error *err);
int mv_model_load_vit(mv_model *model, const mv_vit_config *config, mv_weights *weights, const char *prefix,
                      const char *head_name, mv_error *err);
int mv_model_load_resnet(mv_model *model, const mv_resnet_config *config, mv_weights *weights,
                         const mv_resnet_names *names, mv_error *err);

/* CXR-BERT-specialized's text tower from its config.json and BertForMaskedLM-named weights (shared
 * by the cxr-bert family and the biovil pair). */
int mv_cxr_bert_load_text(mv_model *model, const json_t *config, const char *config_path, mv_weights *weights,
                          mv_error *err);

extern const mv_model_family mv_family_biomedclip;
extern const mv_model_family mv_family_cxr_bert;
extern const mv_model_family mv_family_biovil;
extern const mv_model_family mv_family_convirt;
extern const mv_model_family mv_family_gloria;
extern const mv_model_family mv_family_medclip;
extern const mv_model_family mv_family_medclip_flax;

#endif
