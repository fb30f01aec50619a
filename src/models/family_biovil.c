/* family_biovil.c — CXR-BERT-specialized paired with the BioViL image encoder (hi-ml ImageModel),
 * manifest layout (family "biovil"): text.checkpoint + text.config are the CXR-BERT Hugging Face
 * files, image.checkpoint the BioViL .pt of the same hub repository.
 *
 * Image tower (hi-ml image/model/{model,modules,encoder}.py): torchvision ResNet-50 under
 * "encoder.encoder." (its fc is stored but unused), layer4 patches through the projector
 * "projector.model.{0,1,3}" = 1×1 conv (no bias) → BatchNorm → ReLU → 1×1 conv, the mean of the
 * projected patches, L2. Preprocessing (hi-ml image/data/io.py load_image + transforms): min–max
 * stretch of the decoded samples to 0..255 (truncated), convert("L"), Resize(512) bilinear,
 * CenterCrop(480), ToTensor without mean/std, the gray channel repeated to 3. */
#include "models/family.h"

#include <string.h>

static int matches(const mv_model_dir *dir)
{
    return dir->layout == MV_LAYOUT_MANIFEST && !strcmp(dir->family, "biovil");
}

static int load_image(mv_model *model, const mv_model_dir *dir, mv_weights *w, mv_error *err)
{
    mv_image_tower *tower = &model->image;
    mv_resnet_names names = mv_resnet_names_torchvision("encoder.encoder.");
    mv_resnet_config config;
    int rc;
    mv_transform_biovil(&tower->transform, 512, 480);
    tower->minmax_stretch = 1;
    if ((rc = mv_manifest_transform(dir, &tower->transform, err)) ||
        (rc = mv_image_tower_set_transform(tower, dir->config_path, err)) ||
        (rc = mv_resnet_config_infer(w, &names, &config, err)) ||
        (rc = mv_model_load_resnet(model, &config, w, &names, err)))
        return rc;
    const mv_tensor_entry *hidden = mv_weights_find(w, "projector.model.0.weight");
    const mv_tensor_entry *output = mv_weights_find(w, "projector.model.3.weight");
    if (!hidden || !output || hidden->ndim != 4 || output->ndim != 4)
        return mv_fail(err, MV_EFORMAT, "%s: no BioViL projector (projector.model.0.weight, "
                       "projector.model.3.weight [out, in, 1, 1])", mv_weights_path(w));
    tower->encoder = MV_ENCODER_RESNET;
    tower->head = MV_IMAGE_HEAD_PATCH_MLP;
    tower->head_hidden = (int)hidden->shape[0];
    tower->embed_dim = (int)output->shape[0];
    return mv_image_tower_load_head(tower, w, "projector.model.0", "projector.model.1", "projector.model.3", err);
}

static int load(mv_model *model, const mv_model_dir *dir, mv_error *err)
{
    char text_path[PATH_MAX], image_path[PATH_MAX];
    mv_weights *text, *image;
    int rc;
    if (!dir->text_config)
        return mv_fail(err, MV_EFORMAT, "%s: missing field \"text.config\" (CXR-BERT's config.json)",
                       dir->config_path);
    if ((rc = mv_manifest_file(dir, "text", "checkpoint", NULL, 1, text_path, err)) ||
        (rc = mv_manifest_file(dir, "image", "checkpoint", NULL, 1, image_path, err)) ||
        (rc = mv_model_add_weights(model, text_path, &text, err)) ||
        (rc = mv_cxr_bert_load_text(model, dir->text_config, dir->text_config_path, text, err)) ||
        (rc = mv_model_add_weights(model, image_path, &image, err)))
        return rc;
    return load_image(model, dir, image, err);
}

const mv_model_family mv_family_biovil = {"biovil", matches, load};
