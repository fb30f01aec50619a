/* test_index_corrupt.c — damaged index directories give clean errors naming the file; a torn last
 * journal record (an unacknowledged write) is dropped with a warning, not an error. */
#include "medvlp/index.h"
#include "../test.h"
#include "index_test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

enum { DIM = 8, N_ITEMS = 12 };

static const mv_index_model model = {"medclip", DIM, "00ff"};
static float vectors[N_ITEMS * DIM];

/* A small index: items 0..N_ITEMS-1 added one per call (one journal record each), id 3 deleted.
 * With snapshot set, everything is folded into the FAISS/metadata files first. */
static void build(const char *dir, int snapshot)
{
    mv_error err = {0};
    mv_index *ix = NULL;
    remove_tree(dir);
    mv_index_options options = {.snapshot_journal_bytes = -1};
    CHECK_INT_EQ(mv_index_create(dir, &model, &options, &ix, &err), MV_OK);
    if (!ix)
        exit(1);
    for (int i = 0; i < N_ITEMS; i++) {
        int64_t id;
        char meta[32];
        snprintf(meta, sizeof meta, "{\"i\": %d}", i);
        mv_index_item item = {vectors + i * DIM, "src", "cap", meta};
        CHECK_INT_EQ(mv_index_add(ix, MV_INDEX_IMAGES, &item, 1, &id, &err), MV_OK);
    }
    CHECK_INT_EQ(mv_index_delete(ix, MV_INDEX_IMAGES, 3, &err), MV_OK);
    if (snapshot)
        CHECK_INT_EQ(mv_index_snapshot(ix, &err), MV_OK);
    mv_index_close(ix);
}

/* Path of the directory entry whose name starts with prefix and ends with suffix. */
static void find_file(const char *dir, const char *prefix, const char *suffix, char *out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    out[0] = '\0';
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name), ns = strlen(suffix);
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && n >= ns && strcmp(e->d_name + n - ns, suffix) == 0)
            snprintf(out, PATH_MAX, "%s/%s", dir, e->d_name);
    }
    if (d)
        closedir(d);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void poke(const char *path, long offset, const void *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, bytes, n, offset) == (ssize_t)n);
    close(fd);
}

static void flip_byte(const char *path, long offset)
{
    int fd = open(path, O_RDWR);
    unsigned char b = 0;
    CHECK(fd >= 0 && pread(fd, &b, 1, offset) == 1);
    b ^= 0x5a;
    CHECK(pwrite(fd, &b, 1, offset) == 1);
    close(fd);
}

static void truncate_to(const char *path, long size) { CHECK(truncate(path, size) == 0); }

/* Opening must fail with code and a message containing needle; no index handed out. */
static void expect_open_error(const char *dir, int code, const char *needle)
{
    mv_error err = {0};
    mv_index *ix = (mv_index *)1;
    CHECK_INT_EQ(mv_index_open(dir, &model, NULL, NULL, &ix, &err), code);
    CHECK(ix == NULL);
    CHECK_STR_CONTAINS(err.message, needle);
}

/* Opening succeeds with a torn-record warning; ids 0..last_id are present (but 3 if deleted_3). */
static void expect_torn(const char *dir, int64_t last_id, int deleted_3)
{
    mv_error err = {0};
    mv_index *ix = NULL;
    mv_index_open_report report;
    CHECK_INT_EQ(mv_index_open(dir, &model, NULL, &report, &ix, &err), MV_OK);
    if (!ix) {
        fprintf(stderr, "open: %s\n", err.message);
        return;
    }
    CHECK(report.torn_bytes > 0);
    CHECK_STR_CONTAINS(report.warning, "torn last record");
    mv_index_record record;
    for (int64_t id = 0; id < N_ITEMS; id++) {
        int expected = (id != 3 || !deleted_3) && id <= last_id ? MV_OK : MV_ENOTFOUND;
        CHECK_INT_EQ(mv_index_get(ix, id, &record, &err), expected);
        if (expected == MV_OK)
            mv_index_record_free(&record);
    }
    /* The cut-off tail is gone: new adds land after it and survive a reopen without warnings. */
    int64_t id;
    mv_index_item item = {vectors, NULL, NULL, NULL};
    CHECK_INT_EQ(mv_index_add(ix, MV_INDEX_CAPTIONS, &item, 1, &id, &err), MV_OK);
    mv_index_close(ix);
    CHECK_INT_EQ(mv_index_open(dir, &model, NULL, &report, &ix, &err), MV_OK);
    CHECK_INT_EQ(report.torn_bytes, 0);
    CHECK_INT_EQ(mv_index_get(ix, id, &record, &err), MV_OK);
    mv_index_record_free(&record);
    mv_index_close(ix);
}

int main(void)
{
    char dir[256], path[PATH_MAX];
    scratch_dir(dir, sizeof dir, "corrupt");
    random_vectors(vectors, N_ITEMS, DIM, 5);
    long delete_record = 8 + 12; /* the last journal record: the delete of id 3 */

    /* Torn last record: cut short, bad checksum, zero-filled tail, trailing garbage. */
    build(dir, 0);
    find_file(dir, "journal.", "", path);
    truncate_to(path, file_size(path) - 5); /* inside the delete of id 3 */
    expect_torn(dir, N_ITEMS - 1, 0);

    build(dir, 0);
    find_file(dir, "journal.", "", path);
    truncate_to(path, file_size(path) - delete_record - 10); /* inside the add of the last id */
    expect_torn(dir, N_ITEMS - 2, 0);

    build(dir, 0);
    find_file(dir, "journal.", "", path);
    flip_byte(path, file_size(path) - 1);
    expect_torn(dir, N_ITEMS - 1, 0);

    build(dir, 0);
    find_file(dir, "journal.", "", path);
    truncate_to(path, file_size(path) - delete_record); /* ends with the add of the last id */
    long end = file_size(path);
    truncate_to(path, end + 4096); /* size extended, data never written */
    expect_torn(dir, N_ITEMS - 1, 0);

    build(dir, 0);
    find_file(dir, "journal.", "", path);
    poke(path, file_size(path), "\x13\x37garbage", 9);
    expect_torn(dir, N_ITEMS - 1, 1);

    /* Damage in the middle of the journal is corruption. */
    build(dir, 0);
    find_file(dir, "journal.", "", path);
    flip_byte(path, 30); /* inside the first record */
    expect_open_error(dir, MV_EFORMAT, "corrupt record at byte 0");

    build(dir, 0);
    find_file(dir, "journal.", "", path);
    poke(path, 0, "\xff\xff\xff\x7f", 4); /* a length far past the end, then more records */
    expect_open_error(dir, MV_EFORMAT, "followed by an intact record at byte");

    build(dir, 0);
    find_file(dir, "journal.", "", path);
    poke(path, 0, "\0\0\0\0", 4); /* zero length followed by data */
    expect_open_error(dir, MV_EFORMAT, "corrupt record at byte 0");

    /* The manifest. */
    build(dir, 1);
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    poke(path, 0, "{garbage", 8);
    expect_open_error(dir, MV_EFORMAT, "manifest.json: not valid JSON");

    build(dir, 1);
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    truncate_to(path, 0);
    poke(path, 0, "{\"format\": \"medvlp-index\", \"format_version\": 1}", 47);
    expect_open_error(dir, MV_EFORMAT, "\"model\" and \"targets\" must be objects");

    build(dir, 1);
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    unlink(path);
    expect_open_error(dir, MV_ENOTFOUND, "no index here");

    /* FAISS files: checked against the manifest's size and CRC before FAISS parses them. */
    build(dir, 1);
    find_file(dir, "images.", ".faiss", path);
    flip_byte(path, file_size(path) / 2);
    expect_open_error(dir, MV_EFORMAT, "corrupt");

    build(dir, 1);
    find_file(dir, "captions.", ".faiss", path);
    truncate_to(path, 10);
    expect_open_error(dir, MV_EFORMAT, "captions.");

    build(dir, 1);
    find_file(dir, "images.", ".faiss", path);
    unlink(path);
    expect_open_error(dir, MV_EFORMAT, "missing");

    /* The metadata records: damage inside the committed part is an error; an uncommitted tail (an
     * interrupted snapshot) is cut off silently. */
    build(dir, 1);
    snprintf(path, sizeof path, "%s/metadata.records", dir);
    flip_byte(path, 40);
    expect_open_error(dir, MV_EFORMAT, "metadata.records");

    build(dir, 1);
    snprintf(path, sizeof path, "%s/metadata.records", dir);
    truncate_to(path, file_size(path) - 3);
    expect_open_error(dir, MV_EFORMAT, "metadata.records");

    build(dir, 1);
    snprintf(path, sizeof path, "%s/metadata.records", dir);
    long committed = file_size(path);
    poke(path, committed, "half a snapshot", 15);
    mv_error err = {0};
    mv_index *ix = NULL;
    CHECK_INT_EQ(mv_index_open(dir, &model, NULL, NULL, &ix, &err), MV_OK);
    CHECK_INT_EQ(file_size(path), committed);
    mv_index_close(ix);

    remove_tree(dir);
    return test_report("index_corrupt");
}
