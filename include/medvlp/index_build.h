/* index_build.h — building an index directory from files (`medvlp index build`): listing the inputs
 * (a folder of images, or a ConVIRT-style CSV of image/report pairs), embedding them in batches with
 * the model, and adding them durably to the index, resuming where an interrupted build stopped.
 *
 * An image folder gives one `images` vector per file (metadata: source path). A pairs CSV gives per
 * row one `images` vector and one `captions` vector, both with the image path as source and the
 * report as caption. Inputs that cannot be read, decoded or embedded are skipped with a warning and
 * counted; they never abort the build. */
#ifndef MEDVLP_INDEX_BUILD_H
#define MEDVLP_INDEX_BUILD_H

#include <stdio.h>

#include "medvlp/error.h"
#include "medvlp/index.h"
#include "medvlp/model.h"

/* Opens index_dir's index for model: its manifest must record the model's family, dim and weights
 * checksum. When index_dir holds no index yet, creates an empty one if create (then *created = 1,
 * when created is not NULL), else MV_EINPUT. A repair warning of the open goes to log (may be NULL)
 * as "<warning_prefix><dir>: <warning>". Shared by index build, search and medvlpd. */
int mv_index_open_for_model(mv_model *model, const char *index_dir, const mv_index_options *options, int create,
                            FILE *log, const char *warning_prefix, int *created, mv_index **out, mv_error *err);

/* One input: an image file and, for pairs, its caption (given, or read from text_path). */
typedef struct mv_build_input {
    char *image_path; /* the file read, also the recorded source */
    char *caption;    /* NULL for image folders and until read from text_path */
    char *text_path;  /* --text-from-files: the file holding the caption, else NULL */
    long line;        /* CSV line of the row (0 for image folders), for warnings */
} mv_build_input;

typedef struct mv_build_inputs {
    mv_build_input *items;
    size_t n_items;
    int pairs; /* 1: each input also gives a caption vector */
} mv_build_inputs;

/* Every JPEG/PNG file (by extension: .jpg .jpeg .png, any case) under dir, recursively, sorted by
 * path so that reruns see the same order. */
int mv_build_list_images(const char *dir, mv_build_inputs *out, mv_error *err);

typedef struct mv_pairs_options {
    const char *img_col;   /* header name, or 0-based column number; NULL: "image" */
    const char *text_col;  /* header name, or 0-based column number; NULL: "text" */
    int text_from_files;   /* the text column holds paths of text files, not the text */
    const char *img_root;  /* prefix of relative image paths; NULL: the CSV's folder */
    const char *text_root; /* prefix of relative text-file paths; NULL: the CSV's folder */
} mv_pairs_options;

/* The rows of a CSV whose first row is a header naming the columns. A row with too few fields is
 * listed with a NULL image_path (skipped and counted by the build). MV_EINPUT for a missing column
 * or malformed CSV. */
int mv_build_list_pairs(const char *csv_path, const mv_pairs_options *options, mv_build_inputs *out, mv_error *err);
void mv_build_inputs_free(mv_build_inputs *inputs);

typedef struct mv_build_options {
    const char *factory;       /* for a new index; NULL: Flat below MV_INDEX_FLAT_LIMIT inputs, else HNSW32 */
    int batch;                 /* inputs embedded per model call (0: 32) */
    long long limit;           /* stop after this many new inputs (0: no limit) */
    long long train_size;      /* vectors to train an IVF/PQ index on (0: 100000) */
    int ef_construction;       /* HNSW efConstruction of a new index (0: mv_index_options' default) */
    FILE *log;                 /* progress and warnings (NULL: silent) */
    int progress_redraw;       /* 1: one progress line redrawn with \r (a terminal); 0: periodic lines */
    double progress_interval_s; /* seconds between progress reports (0: 0.2 redrawn, 10 as lines) */
} mv_build_options;

typedef struct mv_build_summary {
    long long total;          /* inputs listed */
    long long already;        /* found in the index from an earlier run, not redone */
    long long added;          /* inputs added by this run */
    long long vectors[2];     /* vectors added by this run per target (images, captions) */
    long long skipped;        /* bad inputs, each with a warning */
    long long left;           /* not reached because of the limit */
    double seconds;
} mv_build_summary;

/* Adds inputs to the index directory dir (created for the model when it holds none; otherwise opened
 * and checked against the model). Inputs whose (source, caption) the index already holds are not
 * redone, so a rerun after an interruption continues where it stopped. Returns MV_OK even when inputs
 * were skipped; failures are the index's or the model's (not one input's). */
int mv_build_index(mv_model *model, const char *dir, const mv_build_inputs *inputs, const mv_build_options *options,
                   mv_build_summary *summary, mv_error *err);

#endif
