/* test_clean.c — family text cleaning against tests/reference/text_clean_ref.py (CPython html.unescape,
 * unicodedata) on tests/fixtures/text/clean_cases.jsonl. */
#include <jansson.h>
#include <stdlib.h>

#include "medvlp/tokenizer.h"
#include "../test.h"

typedef int (*clean_fn)(const char *, size_t, char **, size_t *, mv_error *);

static void check_case(clean_fn clean, const char *name, json_t *text, json_t *expected, int line_no, int *matches)
{
    char *out = NULL;
    size_t out_len = 0;
    mv_error err = {0};
    int status = clean(json_string_value(text), json_string_length(text), &out, &out_len, &err);
    int same = status == MV_OK && out_len == json_string_length(expected) &&
               !memcmp(out, json_string_value(expected), out_len);
    if (same)
        (*matches)++;
    else
        fprintf(stderr, "%s case %d: got \"%.*s\" (status %d %s), want \"%s\"\n", name, line_no, (int)out_len,
                out ? out : "", status, err.message, json_string_value(expected));
    free(out);
}

int main(void)
{
    const char *fixtures = getenv("MEDVLP_FIXTURES");
    char path[4096];
    snprintf(path, sizeof path, "%s/text/clean_cases.jsonl", fixtures ? fixtures : "tests/fixtures");
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    int n_cases = 0, open_clip_matches = 0, himl_matches = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (f && (n = getline(&line, &cap, f)) > 0) {
        json_error_t jerr;
        json_t *c = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, &jerr);
        CHECK_MSG(c != NULL, "case %d: %s", n_cases + 1, jerr.text);
        if (!c)
            continue;
        n_cases++;
        json_t *text = json_object_get(c, "text");
        check_case(mv_text_clean_open_clip, "open_clip", text, json_object_get(c, "open_clip"), n_cases, &open_clip_matches);
        check_case(mv_text_clean_himl, "himl", text, json_object_get(c, "himl"), n_cases, &himl_matches);
        json_decref(c);
    }
    free(line);
    if (f)
        fclose(f);
    fprintf(stderr, "cleaning: open_clip %d/%d, himl %d/%d cases match\n", open_clip_matches, n_cases, himl_matches,
            n_cases);
    CHECK(n_cases >= 100);
    CHECK_INT_EQ(open_clip_matches, n_cases);
    CHECK_INT_EQ(himl_matches, n_cases);

    char *out = NULL;
    size_t out_len = 0;
    mv_error err = {0};
    CHECK_INT_EQ(mv_text_clean_open_clip("a\xff", 2, &out, &out_len, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, "invalid UTF-8");
    CHECK(out == NULL);
    CHECK_INT_EQ(mv_text_clean_himl("\xed\xa0\x80.", 4, &out, &out_len, &err), MV_EINPUT);
    CHECK(out == NULL);
    return test_report("test_clean");
}
