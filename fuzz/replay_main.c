/* replay_main.c — a main() for a fuzz harness without libFuzzer: feeds every file named on the command
 * line (directories: every file in them, sorted) to LLVMFuzzerTestOneInput once. Used by the
 * fuzz_replay_* tests so each tree replays the seed corpora and the regression inputs; a crash or a
 * sanitizer report fails the test, and so does an argument with no input in it. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 0;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    /* An exact-size heap copy, so ASan sees a read one past the input. */
    uint8_t *data = malloc(size > 0 ? (size_t)size : 1);
    size_t n = data ? fread(data, 1, (size_t)size, f) : 0;
    fclose(f);
    if (!data || n != (size_t)size) {
        free(data);
        fprintf(stderr, "replay: cannot read %s\n", path);
        return 0;
    }
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    return 1;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

int main(int argc, char **argv)
{
    int status = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        int fed = 0;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            struct dirent **names;
            int n = scandir(argv[i], &names, NULL, by_name);
            for (int j = 0; j < n; j++) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[i], names[j]->d_name);
                if (names[j]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode))
                    fed += replay_file(path);
                free(names[j]);
            }
            free(names);
        } else {
            fed = replay_file(argv[i]);
        }
        printf("replay: %s: %d inputs\n", argv[i], fed);
        if (fed == 0)
            status = 1;
    }
    return status;
}
