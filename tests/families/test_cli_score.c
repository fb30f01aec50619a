/* test_cli_score.c — `medvlp score` on the tiny GLoRIA model: the printed JSON against the reference
 * scores of tests/reference/make_gloria_fixtures.py, and the exit status of bad invocations. */
#include <sys/wait.h>

#include "families_test.h"

/* Runs the command, returns its exit status; its stdout goes to out (size bytes, NUL-terminated). */
static int run(const char *command, char *out, size_t size)
{
    FILE *pipe = popen(command, "r");
    if (!pipe)
        return -1;
    size_t n = fread(out, 1, size - 1, pipe);
    out[n] = '\0';
    int status = pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(void)
{
    const char *build = getenv("MEDVLP_BUILD_ROOT");
    json_t *expected = read_json("gloria_expected/expected.json");
    const json_t *image = json_array_get(json_object_get(expected, "images"), 0);
    const char *file = json_string_value(json_object_get(image, "file"));
    char command[8192], out[4096];
    for (size_t t = 0; t < 4; t++) {
        const char *text = json_string_value(json_object_get(json_array_get(json_object_get(expected, "texts"), t), "text"));
        if (strchr(text, '\'') || strchr(text, '\n'))
            continue;   /* keep the shell quoting simple */
        char image_path[4096];
        snprintf(image_path, sizeof image_path, "gloria_expected/%s", file);
        snprintf(command, sizeof command, "'%s/medvlp' score -m '%s' --text '%s' --image '%s' 2>/dev/null", build,
                 family_path("gloria"), text, family_path(image_path));
        CHECK_INT_EQ(run(command, out, sizeof out), 0);
        json_error_t jerr;
        json_t *got = json_loads(out, 0, &jerr);
        CHECK_MSG(got != NULL, "text %zu: output is not JSON: %s", t, out);
        const json_t *want = json_array_get(json_object_get(image, "scores"), t);
        for (int k = 0; got && k < 3; k++) {
            const char *key = (const char *[]){"global", "local", "combined"}[k];
            CHECK_NEAR(json_number_value(json_object_get(got, key)), json_number_value(json_object_get(want, key)),
                       1e-3);
        }
        json_decref(got);
    }
    snprintf(command, sizeof command, "'%s/medvlp' score -m '%s' --text 'no image' 2>/dev/null", build,
             family_path("gloria"));
    CHECK_INT_EQ(run(command, out, sizeof out), 2);
    snprintf(command, sizeof command, "'%s/medvlp' score -m '%s' --text 'a b' --image /nonexistent.png 2>/dev/null",
             build, family_path("gloria"));
    CHECK_INT_EQ(run(command, out, sizeof out), 2);
    snprintf(command, sizeof command, "'%s/medvlp' score -m '%s' --text 'a b' --image '%s' 2>/dev/null", build,
             family_path("gloria"), family_path("gloria/medvlp.json"));
    CHECK_INT_EQ(run(command, out, sizeof out), 2);   /* not an image */
    snprintf(command, sizeof command, "'%s/medvlp' score --help", build);
    CHECK_INT_EQ(run(command, out, sizeof out), 0);
    CHECK_STR_CONTAINS(out, "usage: medvlp score");
    json_decref(expected);
    return test_report("test_cli_score");
}
