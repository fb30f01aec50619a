/* family_cxr_bert.c — CXR-BERT-specialized (hi-ml CXRBertModel) in the Hugging Face layout:
 * config.json with model_type "cxr-bert", a BertForMaskedLM under "bert." (the MLM head "cls.*" is
 * not used) and the "cls_projection_head" onto the projection_size-d joint space shared with BioViL. */
#include "models/family.h"

#include <string.h>

static int matches(const mv_model_dir *dir)
{
    const char *type = mv_json_string(dir->config, "model_type");
    return dir->layout == MV_LAYOUT_HF && type && !strcmp(type, "cxr-bert");
}

int mv_cxr_bert_load_text(mv_model *model, const json_t *config_json, const char *config_path,
                          mv_weights *weights, mv_error *err)
{
    mv_text_tower *tower = &model->text;
    mv_bert_config config;
    int projection_size;
    int rc;
    if ((rc = mv_bert_config_from_hf(config_json, config_path, &config, err)) ||
        (rc = mv_json_int(config_json, "projection_size", 1, &projection_size, config_path, err)) ||
        (rc = mv_model_load_bert(model, &config, weights, "bert.", 0, err)))
        return rc;
    /* hi-ml: CLS of the last layer → BertProjectionHead(hidden → projection_size → projection_size),
     * its LayerNorm built with the config's layer_norm_eps. */
    tower->pooling = MV_POOL_CLS;
    tower->projection = MV_PROJ_CXRBERT;
    tower->proj_hidden = tower->embed_dim = projection_size;
    tower->proj_norm_eps = config.layer_norm_eps;
    /* hi-ml refuses texts over the position table; medvlp cuts them there and reports it. */
    model->context_length = config.max_positions;
    model->text_cleaning = MV_CLEAN_RSTRIP_PUNCT;
    return mv_text_tower_load_head(tower, weights, "cls_projection_head.", err);
}

static int load(mv_model *model, const mv_model_dir *dir, mv_error *err)
{
    mv_weights *weights;
    int rc = mv_model_add_weights(model, dir->weights_path, &weights, err);
    return rc ? rc : mv_cxr_bert_load_text(model, dir->config, dir->config_path, weights, err);
}

const mv_model_family mv_family_cxr_bert = {"cxr-bert", matches, load};
