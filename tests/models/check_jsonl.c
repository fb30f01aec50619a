/* check_jsonl.c — test helper: compares JSON Lines embeddings (medvlp embed-text output) with the
 * reference rows expected[<section>][<mode>] of a fixture JSON, with the parity tolerances.
 *   check_jsonl EXPECTED.json single|batch|- normalized|raw OUTPUT.jsonl   ("-": rows at the top level) */
#include "../test.h"

#include <jansson.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: check_jsonl EXPECTED.json SECTION MODE OUTPUT.jsonl\n");
        return 2;
    }
    json_error_t jerr;
    json_t *expected = json_load_file(argv[1], 0, &jerr);
    FILE *output = fopen(argv[4], "r");
    if (!expected || !output) {
        fprintf(stderr, "check_jsonl: cannot read %s or %s\n", argv[1], argv[4]);
        return 2;
    }
    const json_t *section = strcmp(argv[2], "-") ? json_object_get(expected, argv[2]) : expected;
    const json_t *rows = json_object_get(section, argv[3]);
    char *line = NULL;
    size_t cap = 0;
    size_t n_lines = 0;
    double min_cos = 1.0, max_abs = 0.0;
    while (getline(&line, &cap, output) >= 0) {
        json_t *got = json_loads(line, 0, &jerr);
        const json_t *want = json_array_get(rows, n_lines);
        CHECK_MSG(json_is_array(got) && want && json_array_size(got) == json_array_size(want),
                  "line %zu: not an array of the expected size", n_lines + 1);
        if (json_is_array(got) && want && json_array_size(got) == json_array_size(want)) {
            size_t dim = json_array_size(want);
            float *a = malloc(dim * sizeof *a), *b = malloc(dim * sizeof *b);
            for (size_t i = 0; i < dim; i++) {
                a[i] = (float)json_number_value(json_array_get(got, i));
                b[i] = (float)json_number_value(json_array_get(want, i));
            }
            double cos = test_cosine(a, b, dim), diff = test_max_abs_diff(a, b, dim);
            CHECK_MSG(cos >= 0.99999 && diff <= 1e-4, "line %zu: cos %.9f max|d| %.3g", n_lines + 1, cos, diff);
            min_cos = cos < min_cos ? cos : min_cos;
            max_abs = diff > max_abs ? diff : max_abs;
            free(a);
            free(b);
        }
        json_decref(got);
        n_lines++;
    }
    CHECK_INT_EQ(n_lines, json_array_size(rows));
    printf("%s %s: %zu lines, min cos %.9f, max |d| %.3g\n", argv[2], argv[3], n_lines, min_cos, max_abs);
    free(line);
    fclose(output);
    json_decref(expected);
    return test_report("check_jsonl");
}
