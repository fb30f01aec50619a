/* test_model_dir_errors.c — broken model directories fail cleanly, with messages naming the culprit
 * (fixtures from tests/reference/make_text_model_fixtures.py: tests/fixtures/models/bad/). */
#include "medvlp/model.h"
#include "../test.h"

#include <stdlib.h>

static void expect_failure(const char *fixtures, const char *name, int code, const char *needle)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", fixtures, name);
    mv_error err;
    mv_model *model = (mv_model *)&err; /* must be reset to NULL on failure */
    int rc = mv_model_open(dir, NULL, &model, &err);
    CHECK_MSG(rc == code, "%s: status %d, expected %d (%s)", name, rc, code, rc ? err.message : "opened");
    CHECK(model == NULL);
    if (rc)
        CHECK_STR_CONTAINS(err.message, needle);
}

int main(void)
{
    const char *root = getenv("MEDVLP_FIXTURES");
    char fixtures[4096];
    snprintf(fixtures, sizeof fixtures, "%s/models", root ? root : "tests/fixtures");
    expect_failure(fixtures, "bad/missing-tensor", MV_ENOTFOUND,
                   "missing tensor text.transformer.encoder.layer.0.output.dense.bias");
    expect_failure(fixtures, "bad/shape-mismatch", MV_EFORMAT,
                   "text.transformer.encoder.layer.0.attention.self.key.weight has shape [8, 4], expected [8, 8]");
    expect_failure(fixtures, "expected", MV_EINPUT, "not a model directory");
    expect_failure(fixtures, "does-not-exist", MV_EINPUT, "not a model directory");
    /* medvlp.json manifests (tests/reference/make_family_fixtures.py). */
    expect_failure(fixtures, "bad/manifest-no-family", MV_EFORMAT, "missing string field \"family\"");
    expect_failure(fixtures, "bad/manifest-unknown-family", MV_EUNSUPPORTED,
                   "unknown model family \"clip-of-the-future\"");
    expect_failure(fixtures, "bad/manifest-missing-checkpoint", MV_ENOTFOUND, "(named by \"checkpoint\") does not exist");
    expect_failure(fixtures, "bad/manifest-bad-crop", MV_EFORMAT, "image.crop must be a size");
    expect_failure(fixtures, "bad/manifest-mean-without-std", MV_EFORMAT, "image.mean and image.std go together");
    expect_failure(fixtures, "bad/manifest-wrong-checkpoint", MV_EFORMAT, "no ResNet stem encoder.encoder.conv1.weight");
    expect_failure(fixtures, "bad/manifest-no-text-config", MV_EFORMAT, "missing field \"text.config\"");
    return test_report("model_dir_errors");
}
