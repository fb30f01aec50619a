/* model.h — a model directory opened as a ready-to-run embedding model.
 *
 * mv_model_open recognises the directory's layout (open_clip, Hugging Face, medvlp.json manifest),
 * picks the model family that matches its config, loads the weight file(s) natively and builds the
 * text tower and, when the model has one, the image tower; both project into one joint space of
 * embed_dim dimensions (checked at load).
 * Embedding calls share one set of work buffers: an mv_model is not safe for concurrent calls
 * (serialise them, or open one model per worker). */
#ifndef MEDVLP_MODEL_H
#define MEDVLP_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "medvlp/error.h"
#include "medvlp/image.h"
#include "medvlp/tensor.h"

typedef struct mv_model mv_model;

typedef struct mv_model_options {
    int n_threads;          /* BLAS threads; <= 0 leaves the process setting alone */
    uint64_t max_pixels;    /* decode limit of mv_model_embed_image_bytes; 0: MV_IMAGE_DEFAULT_MAX_PIXELS */
    mv_quant quant;         /* storage of the encoders' Linear/conv weights; MV_QUANT_INT8 needs AVX2
                               (MV_EUNSUPPORTED otherwise) and trades accuracy for speed (README) */
} mv_model_options;

typedef struct mv_model_info {
    const char *family;         /* "biomedclip", "cxr-bert", ... */
    const char *layout;         /* "open_clip", "hf" or "manifest" */
    const char *weights_path;   /* the first weight file (see mv_model_weights_file for all) */
    const char *weights_format; /* "safetensors", "torch-zip", ... */
    int n_weight_files;
    const char *weights_dtype;  /* stored dtype of the float tensors ("F32", "F16", or "mixed") */
    int embed_dim;              /* the joint space: text and image embeddings alike */
    int context_length;         /* tokens per text including [CLS] and [SEP]; longer texts are cut */
    int image_size;             /* model input side (square); 0 when the model has no image tower */
    int image_width, image_height;
    const char *image_preprocessing; /* what happens between decoding and the encoder; NULL: no tower */
    size_t n_params;            /* elements of the tensors the towers use */
    size_t n_unused_tensors;    /* float tensors in the files that no tower uses */
    int tiny_random;            /* random weights for smoke tests (TINY-RANDOM-WEIGHTS marker) */
    const char *quant;          /* weight storage the model was opened with: "none", "int8" */
} mv_model_info;

int mv_model_open(const char *dir, const mv_model_options *options, mv_model **out, mv_error *err);
void mv_model_free(mv_model *model);

void mv_model_get_info(const mv_model *model, mv_model_info *info);
/* The index-th weight file (index < n_weight_files): its path, and its format in *format. */
const char *mv_model_weights_file(const mv_model *model, int index, const char **format);
/* SHA-256 (lower-case hex) identifying the weights: of the file itself for one weight file; for
 * several, of the lines "<hex sha256 of file i>  <file name>\n" in load order. Reads every byte of the
 * files on the first call (about 1 s per GB), then remembers it. What an index manifest records. */
int mv_model_weights_checksum(mv_model *model, char out[65], mv_error *err);
/* SHA-256 of one file, lower-case hex. */
int mv_sha256_file(const char *path, char out[65], mv_error *err);
/* Name of the index-th unused float tensor (index < info.n_unused_tensors), for load warnings. */
const char *mv_model_unused_tensor(const mv_model *model, size_t index);

/* Embeds already tokenised texts (each [CLS] … [SEP], at most context_length ids):
 * text t is lengths[t] ids at token_ids + lengths[0] + … + lengths[t-1]; out[n_texts, embed_dim]. */
int mv_model_embed_token_ids(mv_model *model, const int32_t *token_ids, const int *lengths, int n_texts,
                             int normalize, float *out, mv_error *err);

/* Embeds UTF-8 texts (text_lens[t] bytes each, or NUL-terminated when text_lens is NULL): the
 * family's text cleaning, WordPiece, cut to context_length, encoder, head; out[n_texts, embed_dim].
 * n_tokens_out[t] (may be NULL) receives the token count incl. [CLS]/[SEP], truncated_out[t] (may be
 * NULL) whether the text was cut. Invalid UTF-8 is MV_EINPUT naming the text. */
int mv_model_embed_texts(mv_model *model, const char *const *texts, const size_t *text_lens, int n_texts,
                         int normalize, float *out, int *n_tokens_out, int *truncated_out, mv_error *err);

/* Embeds decoded images: the family's preprocessing, the image encoder, its projection, then L2
 * normalisation when normalize; out[n_images, embed_dim]. Batches of up to 16 images run at a time
 * (fewer for inputs larger than 224²).
 * A model without an image tower is MV_EUNSUPPORTED; an image the transform cannot take is
 * MV_EINPUT naming "image i". */
int mv_model_embed_images(mv_model *model, const mv_image *images, int n_images, int normalize, float *out,
                          mv_error *err);

/* The model input of one decoded image, as the image tower sees it: float32 CHW
 * [3, info.image_height, info.image_width] into chw (for `medvlp preprocess` and parity checks). */
int mv_model_preprocess_image(mv_model *model, const mv_image *image, float *chw, mv_error *err);

/* The same from encoded JPEG/PNG bytes (image i is n_bytes[i] bytes at bytes[i]; names[i], which may
 * be NULL, names it in errors). Decoding honours options.max_pixels (MV_ETOOBIG). Each batch is
 * decoded, preprocessed and freed before the next, so memory does not grow with n_images. */
int mv_model_embed_image_bytes(mv_model *model, const void *const *bytes, const size_t *n_bytes,
                               const char *const *names, int n_images, int normalize, float *out,
                               mv_error *err);

#endif
