/* test_index_kill9.c — an acknowledged change survives kill -9.
 *
 * 50 rounds, alternating a Flat and an HNSW index: a child process (this program re-executed, so no
 * OpenMP state crosses the fork) adds items one at a time, deletes every 5th right after, and reports
 * each change on a pipe only AFTER the call returned; a tiny snapshot threshold makes kills land in
 * snapshots too. The parent SIGKILLs it at a random moment (most rounds: after its first
 * acknowledged add), reopens the index and checks: every
 * acknowledged add is present and its vector finds itself top-1; every acknowledged delete is gone;
 * every id has both metadata and vector or neither (nothing half-present). */
#include "medvlp/index.h"
#include "../test.h"
#include "index_test_util.h"

#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

enum { DIM = 16, ROUNDS = 50, MAX_ACKS = 20000 };

static const mv_index_model model = {"convirt", DIM, ""};
static const mv_index_options options = {.snapshot_journal_bytes = 3000};

/* The vector of sequence number seq, the same in child and parent. */
static void vector_of(int64_t seq, float *out) { random_vectors(out, 1, DIM, 1000003u * (uint64_t)seq + 7); }

static int child(const char *dir, long first_seq)
{
    mv_error err = {0};
    mv_index *ix = NULL;
    if (mv_index_open(dir, &model, &options, NULL, &ix, &err) != MV_OK) {
        fprintf(stderr, "child open: %s\n", err.message);
        return 1;
    }
    for (long seq = first_seq;; seq++) {
        float vector[DIM];
        char meta[48], line[96];
        int64_t id;
        vector_of(seq, vector);
        snprintf(meta, sizeof meta, "{\"seq\": %ld}", seq);
        mv_index_item item = {vector, "kill9", NULL, meta};
        if (mv_index_add(ix, MV_INDEX_IMAGES, &item, 1, &id, &err) != MV_OK) {
            fprintf(stderr, "child add: %s\n", err.message);
            return 1;
        }
        int n = snprintf(line, sizeof line, "add %lld %ld\n", (long long)id, seq);
        if (write(1, line, (size_t)n) != n)
            return 1;
        if (seq % 5 == 0) {
            n = snprintf(line, sizeof line, "try %lld\n", (long long)id);
            if (write(1, line, (size_t)n) != n)
                return 1;
            if (mv_index_delete(ix, MV_INDEX_IMAGES, id, &err) != MV_OK) {
                fprintf(stderr, "child delete: %s\n", err.message);
                return 1;
            }
            n = snprintf(line, sizeof line, "del %lld\n", (long long)id);
            if (write(1, line, (size_t)n) != n)
                return 1;
        }
    }
}

typedef struct ack {
    int64_t id;
    long seq;
    int state; /* 0 added, 1 delete attempted, 2 delete acknowledged */
} ack;

static ack acks[2][MAX_ACKS];
static int n_acks[2];

static ack *find_ack(int which, int64_t id)
{
    for (int i = n_acks[which] - 1; i >= 0; i--)
        if (acks[which][i].id == id)
            return &acks[which][i];
    return NULL;
}

/* Runs one child until a random kill; records what it acknowledged. With after_first_ack the random
 * delay starts once the child acknowledged its first add, so a slow start (a loaded machine, the
 * sanitizer build) cannot turn the round into a kill during start-up; otherwise it starts at fork,
 * which also lands kills in the open/replay phase. */
static void run_child(const char *self, const char *dir, int which, long first_seq, int after_first_ack,
                      uint64_t *rng)
{
    int fds[2];
    if (pipe(fds) != 0)
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        char seq[32];
        snprintf(seq, sizeof seq, "%ld", first_seq);
        execl(self, self, "child", dir, seq, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    static char buffer[1 << 20];
    size_t len = 0;
    ssize_t got;
    while (after_first_ack && !memchr(buffer, '\n', len) &&
           (got = read(fds[0], buffer + len, sizeof buffer - 1 - len)) > 0)
        len += (size_t)got;
    struct timespec delay = {0, (long)(after_first_ack ? rng_next(rng) % 40 : 5 + rng_next(rng) % 60) * 1000000L};
    nanosleep(&delay, NULL);
    kill(pid, SIGKILL);
    int wstatus;
    waitpid(pid, &wstatus, 0);
    CHECK_MSG(WIFSIGNALED(wstatus), "child exited on its own (status %d)", wstatus);
    while ((got = read(fds[0], buffer + len, sizeof buffer - 1 - len)) > 0)
        len += (size_t)got;
    close(fds[0]);
    buffer[len] = '\0';
    for (char *line = strtok(buffer, "\n"); line; line = strtok(NULL, "\n")) {
        long long id;
        long seq;
        if (sscanf(line, "add %lld %ld", &id, &seq) == 2 && n_acks[which] < MAX_ACKS)
            acks[which][n_acks[which]++] = (ack){id, seq, 0};
        else if (sscanf(line, "try %lld", &id) == 1 && find_ack(which, id))
            find_ack(which, id)->state = 1;
        else if (sscanf(line, "del %lld", &id) == 1 && find_ack(which, id))
            find_ack(which, id)->state = 2;
    }
}

static void verify(const char *dir, int which, int *half_present, int *lost)
{
    mv_error err = {0};
    mv_index *ix = NULL;
    mv_index_open_report report;
    CHECK_INT_EQ(mv_index_open(dir, &model, &options, &report, &ix, &err), MV_OK);
    if (!ix) {
        fprintf(stderr, "reopen: %s\n", err.message);
        (*lost)++;
        return;
    }
    for (int i = 0; i < n_acks[which]; i++) {
        const ack *a = &acks[which][i];
        mv_index_record record;
        int status = mv_index_get(ix, a->id, &record, &err);
        if (a->state == 2) {
            CHECK_INT_EQ(status, MV_ENOTFOUND);
        } else if (a->state == 0) {
            *lost += status != MV_OK;
            if (status == MV_OK) {
                char expected[48];
                snprintf(expected, sizeof expected, "{\"seq\": %ld}", a->seq);
                CHECK(strcmp(record.metadata_json, expected) == 0);
            }
            float vector[DIM];
            mv_index_hit hit;
            int n_hits;
            vector_of(a->seq, vector);
            CHECK_INT_EQ(mv_index_search(ix, MV_INDEX_IMAGES, vector, 1, 1, NULL, &hit, &n_hits, &err), MV_OK);
            CHECK_MSG(n_hits == 1 && hit.id == a->id && hit.score > 0.999f, "id %lld: top-1 %lld score %f",
                    (long long)a->id, (long long)hit.id, hit.score);
        }
        if (status == MV_OK)
            mv_index_record_free(&record);
    }
    /* Every id ever assigned: metadata and vector together or not at all. */
    mv_index_stats stats;
    mv_index_get_stats(ix, &stats);
    for (int64_t id = 0; id < stats.next_id; id++) {
        mv_index_record record;
        float vector[DIM];
        int has_meta = mv_index_get(ix, id, &record, &err) == MV_OK;
        int has_vector = mv_index_get_vector(ix, MV_INDEX_IMAGES, id, vector, &err) == MV_OK;
        *half_present += has_meta != has_vector;
        if (has_meta)
            mv_index_record_free(&record);
    }
    mv_index_close(ix);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "child") == 0)
        return child(argv[2], atol(argv[3]));
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = '\0';

    char dirs[2][256];
    const char *factories[2] = {"Flat", "HNSW32"};
    for (int w = 0; w < 2; w++) {
        scratch_dir(dirs[w], sizeof dirs[w], "kill9");
        mv_error err = {0};
        mv_index *ix = NULL;
        mv_index_options create = options;
        create.factory = factories[w];
        CHECK_INT_EQ(mv_index_create(dirs[w], &model, &create, &ix, &err), MV_OK);
        mv_index_close(ix);
    }
    uint64_t rng = (uint64_t)time(NULL);
    fprintf(stderr, "kill9 seed %llu\n", (unsigned long long)rng);
    int half_present = 0, lost = 0, waited_rounds[2] = {0, 0};
    for (int round = 0; round < ROUNDS; round++) {
        int which = round % 2, after_first_ack = round % 5 != 4;
        waited_rounds[which] += after_first_ack;
        run_child(self, dirs[which], which, 100000L * (round + 1), after_first_ack, &rng);
        verify(dirs[which], which, &half_present, &lost);
    }
    fprintf(stderr, "kill9: %d rounds, %d + %d acknowledged adds, %d lost, %d half-present\n", ROUNDS,
            n_acks[0], n_acks[1], lost, half_present);
    CHECK_INT_EQ(lost, 0);
    CHECK_INT_EQ(half_present, 0);
    /* The test exercised what it claims: every waiting round acknowledged at least one add. */
    CHECK(n_acks[0] >= waited_rounds[0] && n_acks[1] >= waited_rounds[1]);
    for (int w = 0; w < 2; w++)
        remove_tree(dirs[w]);
    return test_report("index_kill9");
}
