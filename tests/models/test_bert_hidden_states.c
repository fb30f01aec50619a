/* test_bert_hidden_states.c — mv_bert_forward's per-layer outputs (hidden_states slots) for a packed
 * batch of two texts against the reference's padded batch (expected/biomedclip.json "hidden_states"),
 * using the encoder directly on the tiny BiomedCLIP checkpoint. */
#include "medvlp/bert.h"
#include "medvlp/weights.h"
#include "../test.h"

#include <jansson.h>
#include <stdlib.h>

int main(void)
{
    const char *root = getenv("MEDVLP_FIXTURES");
    char path[4096], expected_path[4096];
    snprintf(path, sizeof path, "%s/models/biomedclip-safetensors/open_clip_model.safetensors", root ? root : "tests/fixtures");
    snprintf(expected_path, sizeof expected_path, "%s/models/expected/biomedclip.json", root ? root : "tests/fixtures");
    json_error_t jerr;
    json_t *expected = json_load_file(expected_path, 0, &jerr);
    mv_error err;
    mv_weights *weights = NULL;
    CHECK(expected != NULL);
    CHECK_MSG(mv_weights_open(path, &weights, &err) == MV_OK, "%s", err.message);
    if (!expected || !weights)
        return test_report("bert_hidden_states");

    /* The fixture's tiny sizes (its config.json). */
    mv_bert_config config = {.vocab_size = 0, .hidden_size = 32, .n_layers = 2, .n_heads = 4,
                             .intermediate_size = 64, .max_positions = 64, .type_vocab_size = 2,
                             .layer_norm_eps = 1e-12f};
    config.vocab_size = (int)mv_weights_find(weights, "text.transformer.embeddings.word_embeddings.weight")->shape[0];
    mv_bert bert;
    CHECK_MSG(mv_bert_load(&bert, &config, weights, "text.transformer.", 0, &err) == MV_OK, "%s", err.message);

    const json_t *token_ids = json_object_get(expected, "token_ids");
    int lengths[2];
    int32_t ids[128];
    int n_tokens = 0;
    for (int t = 0; t < 2; t++) {
        const json_t *list = json_array_get(token_ids, (size_t)t);
        lengths[t] = (int)json_array_size(list);
        for (int i = 0; i < lengths[t]; i++)
            ids[n_tokens++] = (int32_t)json_integer_value(json_array_get(list, (size_t)i));
    }
    enum { N_SLOTS = 3 };
    float *slots[N_SLOTS];
    for (int s = 0; s < N_SLOTS; s++)
        slots[s] = s == 1 ? NULL : calloc((size_t)n_tokens * 32, sizeof(float)); /* skip layer 1 */
    mv_bert_state state = {0};
    mv_bert_batch batch = {ids, lengths, 2};
    CHECK_MSG(mv_bert_forward(&bert, &state, &batch, slots, &err) == MV_OK, "%s", err.message);

    const json_t *want = json_object_get(expected, "hidden_states");
    double max_abs = 0.0;
    for (int s = 0; s < N_SLOTS; s++) {
        if (!slots[s])
            continue;
        for (int t = 0, row = 0; t < 2; row += lengths[t], t++) {
            for (int r = 0; r < lengths[t]; r++) {
                const json_t *ref = json_array_get(json_array_get(json_array_get(want, (size_t)t), (size_t)s), (size_t)r);
                for (int c = 0; c < 32; c++) {
                    double d = fabs(slots[s][(size_t)(row + r) * 32 + c] - json_number_value(json_array_get(ref, (size_t)c)));
                    max_abs = d > max_abs ? d : max_abs;
                }
            }
        }
    }
    printf("hidden states max |d| %.3g\n", max_abs);
    CHECK(max_abs <= 1e-4);
    /* The last slot and the state's final hidden state are the same matrix. */
    CHECK(memcmp(slots[2], state.hidden, (size_t)n_tokens * 32 * sizeof(float)) == 0);

    for (int s = 0; s < N_SLOTS; s++)
        free(slots[s]);
    mv_bert_state_free(&state);
    mv_bert_free(&bert);
    mv_weights_free(weights);
    json_decref(expected);
    return test_report("bert_hidden_states");
}
