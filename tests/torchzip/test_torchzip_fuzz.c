/* test_torchzip_fuzz.c — every truncation and many byte flips of valid checkpoints (torch zip, legacy,
 * Lightning, Flax msgpack) go through the readers without a crash, leak or sanitizer report. The
 * bytes sit in an exactly-sized heap buffer so ASan sees any read past the end. */
#include "checkpoint/readers.h"
#include "medvlp/file.h"
#include "../test.h"

#include <stdlib.h>

typedef int (*reader_fn)(mv_weights *, const char *, const unsigned char *, size_t, mv_error *);

static int run_reader(reader_fn reader, const unsigned char *bytes, size_t size)
{
    unsigned char *copy = malloc(size ? size : 1);
    memcpy(copy, bytes, size);
    mv_weights *w = mv_weights_new("fuzz", "fuzz");
    mv_error err = {0};
    int rc = reader(w, "fuzz", copy, size, &err);
    if (!rc)
        rc = mv_weights_finish(w, &err);
    if (rc)
        CHECK_MSG(err.message[0] != '\0', "error without a message");
    mv_weights_free(w);
    free(copy);
    return rc;
}

static void fuzz(const char *name, reader_fn reader)
{
    char path[1024];
    const char *dir = getenv("MEDVLP_FIXTURES");
    snprintf(path, sizeof path, "%s/torchzip/%s", dir ? dir : "tests/fixtures", name);
    char *bytes;
    size_t size;
    mv_error err = {0};
    int rc = mv_file_read_all(path, 1 << 20, &bytes, &size, &err);
    CHECK_MSG(rc == MV_OK, "%s", err.message);
    if (rc)
        return;
    const unsigned char *data = (const unsigned char *)bytes;
    CHECK_MSG(run_reader(reader, data, size) == MV_OK, "%s should load", name);
    size_t refused = 0;
    for (size_t len = 0; len < size; len++)
        refused += run_reader(reader, data, len) != MV_OK;
    unsigned char *mutated = malloc(size);
    static const unsigned char flips[] = {0xff, 0x01, 0x80};
    for (size_t i = 0; i < size; i++)
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(mutated, data, size);
            mutated[i] ^= flips[f];
            run_reader(reader, mutated, size);
        }
    fprintf(stderr, "%s: %zu bytes, %zu of %zu truncations refused\n", name, size, refused, size);
    free(mutated);
    free(bytes);
}

/* Hand-made hostile inputs: each must be refused cleanly, with bounded memory. */
static void hostile(void)
{
    static const struct { const char *what; reader_fn reader; const char *bytes; size_t size; } cases[] = {
        {"huge BINUNICODE8", mv_torch_legacy_read, "\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\x7f", 11},
        {"huge LONG4", mv_torch_legacy_read, "\x80\x02\x8b\xff\xff\xff\x7f", 7},
        {"memo key 2^32-1", mv_torch_legacy_read, "\x80\x02N\x72\xff\xff\xff\xff\x6a\xff\xff\xff\xff.", 14},
        {"get of unset memo", mv_torch_legacy_read, "\x80\x02h\x05.", 5},
        {"dict cycle", mv_torch_legacy_read, "\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s.", 15},
        {"protocol 9", mv_torch_legacy_read, "\x80\x09N.", 4},
        {"msgpack array32 of 2^32-1", mv_flax_msgpack_read, "\x81\xa1x\xdd\xff\xff\xff\xff", 8},
        {"msgpack map32 of 2^32-1", mv_flax_msgpack_read, "\xdf\xff\xff\xff\xff", 5},
        {"msgpack bin32 past end", mv_flax_msgpack_read, "\x81\xa1x\xc6\xff\xff\xff\xff", 8},
        {"zip EOCD with huge directory", mv_torch_zip_read,
         "PK\x03\x04PK\x05\x06\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff\0\0\0\0\0\0", 26},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(run_reader(cases[i].reader, (const unsigned char *)cases[i].bytes, cases[i].size) != MV_OK,
                  "%s should be refused", cases[i].what);
    /* 100000 nested MARKs and a deep list nesting: bounded stack, no recursion. */
    size_t n = 200000;
    unsigned char *deep = malloc(n + 3);
    deep[0] = 0x80;
    deep[1] = 0x02;
    memset(deep + 2, '(', n / 2);
    memset(deep + 2 + n / 2, ']', n / 2);
    deep[n + 2] = '.';
    CHECK(run_reader(mv_torch_legacy_read, deep, n + 3) != MV_OK);
    free(deep);
}

int main(void)
{
    hostile();
    fuzz("basic.pt", mv_torch_zip_read);
    fuzz("lightning.ckpt", mv_torch_zip_read);
    fuzz("legacy.bin", mv_torch_legacy_read);
    fuzz("flax_model.msgpack", mv_flax_msgpack_read);
    return test_report("torchzip_fuzz");
}
