/* zip.c — owns the parsing of a zip central directory held in memory (see zip.h). Only what
 * torch.save writes is accepted: one disk, stored entries; zip64 records for big archives. Every
 * offset and length read from the file is checked against the file's size before use. */
#include "checkpoint/zip.h"

#include <stdlib.h>
#include <string.h>

enum {
    EOCD_SIZE = 22,
    EOCD_SIGNATURE = 0x06054b50,
    ZIP64_LOCATOR_SIZE = 20,
    ZIP64_LOCATOR_SIGNATURE = 0x07064b50,
    ZIP64_EOCD_SIZE = 56,
    ZIP64_EOCD_SIGNATURE = 0x06064b50,
    CENTRAL_SIZE = 46,
    CENTRAL_SIGNATURE = 0x02014b50,
    LOCAL_SIZE = 30,
    LOCAL_SIGNATURE = 0x04034b50,
    ZIP64_EXTRA_ID = 0x0001,
    MAX_COMMENT = 0xffff,
};

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int bad(const mv_zip *zip, mv_error *err, const char *what)
{
    return mv_fail(err, MV_EFORMAT, "%s: corrupt zip archive: %s", zip->path, what);
}

static int compare_entries(const void *a, const void *b)
{
    return strcmp(((const mv_zip_entry *)a)->name, ((const mv_zip_entry *)b)->name);
}

/* Replaces the 0xffffffff placeholders of a central directory record from its zip64 extra field,
 * which lists only the fields that overflowed, in this order. */
static int apply_zip64_extra(const mv_zip *zip, mv_zip_entry *e, const unsigned char *extra, size_t extra_len,
                             mv_error *err)
{
    size_t pos = 0;
    while (pos + 4 <= extra_len) {
        uint16_t id = (uint16_t)le(extra + pos, 2), len = (uint16_t)le(extra + pos + 2, 2);
        pos += 4;
        if (len > extra_len - pos)
            return bad(zip, err, "extra field overruns its record");
        if (id == ZIP64_EXTRA_ID) {
            const unsigned char *f = extra + pos;
            size_t left = len;
            uint64_t *fields[] = {&e->size, &e->compressed_size, &e->local_offset};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xffffffffu)
                    continue;
                if (left < 8)
                    return bad(zip, err, "short zip64 extra field");
                *fields[i] = le(f, 8);
                f += 8;
                left -= 8;
            }
        }
        pos += len;
    }
    return MV_OK;
}

int mv_zip_open(mv_zip *zip, const char *path, const unsigned char *data, size_t size, mv_error *err)
{
    memset(zip, 0, sizeof *zip);
    zip->path = path;
    zip->data = data;
    zip->size = size;
    if (size < EOCD_SIZE)
        return bad(zip, err, "too short for an end-of-central-directory record");
    /* The end record sits before a comment of at most 64 KiB: scan backwards for its signature. */
    size_t eocd = SIZE_MAX;
    size_t lowest = size - EOCD_SIZE > MAX_COMMENT ? size - EOCD_SIZE - MAX_COMMENT : 0;
    for (size_t at = size - EOCD_SIZE + 1; at-- > lowest;)
        if (le(data + at, 4) == EOCD_SIGNATURE && at + EOCD_SIZE + le(data + at + 20, 2) == size) {
            eocd = at;
            break;
        }
    if (eocd == SIZE_MAX)
        return bad(zip, err, "no end-of-central-directory record (truncated file?)");
    uint64_t n_entries = le(data + eocd + 10, 2), cd_size = le(data + eocd + 12, 4),
             cd_offset = le(data + eocd + 16, 4);
    if (le(data + eocd + 4, 2) != 0 || le(data + eocd + 6, 2) != 0)
        return mv_fail(err, MV_EUNSUPPORTED, "%s: multi-disk zip archives are not supported", path);
    if (n_entries == 0xffff || cd_size == 0xffffffffu || cd_offset == 0xffffffffu) {
        if (eocd < ZIP64_LOCATOR_SIZE || le(data + eocd - ZIP64_LOCATOR_SIZE, 4) != ZIP64_LOCATOR_SIGNATURE)
            return bad(zip, err, "zip64 end-of-central-directory locator missing");
        uint64_t z64 = le(data + eocd - ZIP64_LOCATOR_SIZE + 8, 8);
        if (z64 > size || size - z64 < ZIP64_EOCD_SIZE || le(data + z64, 4) != ZIP64_EOCD_SIGNATURE)
            return bad(zip, err, "zip64 end-of-central-directory record missing");
        n_entries = le(data + z64 + 32, 8);
        cd_size = le(data + z64 + 40, 8);
        cd_offset = le(data + z64 + 48, 8);
    }
    if (cd_offset > size || cd_size > size - cd_offset)
        return bad(zip, err, "central directory lies outside the file");
    if (n_entries > cd_size / CENTRAL_SIZE)
        return bad(zip, err, "more entries than the central directory can hold");
    zip->entries = calloc(n_entries ? n_entries : 1, sizeof *zip->entries);
    zip->names = malloc(cd_size + 1);
    if (!zip->entries || !zip->names) {
        mv_zip_close(zip);
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", path);
    }
    const unsigned char *cd = data + cd_offset;
    size_t pos = 0, names_used = 0;
    for (uint64_t i = 0; i < n_entries; i++) {
        if (cd_size - pos < CENTRAL_SIZE || le(cd + pos, 4) != CENTRAL_SIGNATURE) {
            mv_zip_close(zip);
            return bad(zip, err, "bad central directory record");
        }
        const unsigned char *r = cd + pos;
        size_t name_len = le(r + 28, 2), extra_len = le(r + 30, 2), comment_len = le(r + 32, 2);
        if (cd_size - pos - CENTRAL_SIZE < name_len + extra_len + comment_len) {
            mv_zip_close(zip);
            return bad(zip, err, "central directory record overruns the directory");
        }
        mv_zip_entry *e = &zip->entries[i];
        e->flags = (uint16_t)le(r + 8, 2);
        e->method = (uint16_t)le(r + 10, 2);
        e->compressed_size = le(r + 20, 4);
        e->size = le(r + 24, 4);
        e->local_offset = le(r + 42, 4);
        char *name = zip->names + names_used;
        memcpy(name, r + CENTRAL_SIZE, name_len);
        name[name_len] = '\0';
        names_used += name_len + 1; /* fits: every record spends >= 46 bytes of cd_size on 1 NUL */
        e->name = name;
        int rc = apply_zip64_extra(zip, e, r + CENTRAL_SIZE + name_len, extra_len, err);
        if (rc) {
            mv_zip_close(zip);
            return rc;
        }
        zip->n_entries++;
        pos += CENTRAL_SIZE + name_len + extra_len + comment_len;
    }
    qsort(zip->entries, zip->n_entries, sizeof *zip->entries, compare_entries);
    return MV_OK;
}

void mv_zip_close(mv_zip *zip)
{
    free(zip->entries);
    free(zip->names);
    zip->entries = NULL;
    zip->names = NULL;
    zip->n_entries = 0;
}

const mv_zip_entry *mv_zip_find(const mv_zip *zip, const char *name)
{
    mv_zip_entry key = {.name = name};
    return bsearch(&key, zip->entries, zip->n_entries, sizeof *zip->entries, compare_entries);
}

int mv_zip_entry_data(const mv_zip *zip, const mv_zip_entry *e, const unsigned char **out, mv_error *err)
{
    *out = NULL;
    if (e->method != 0)
        return mv_fail(err, MV_EUNSUPPORTED, "%s: zip entry %s is compressed (method %u); torch.save writes "
                       "stored entries only", zip->path, e->name, e->method);
    if (e->flags & 1)
        return mv_fail(err, MV_EUNSUPPORTED, "%s: zip entry %s is encrypted", zip->path, e->name);
    if (e->compressed_size != e->size)
        return mv_fail(err, MV_EFORMAT, "%s: zip entry %s: stored size %llu differs from its size %llu",
                       zip->path, e->name, (unsigned long long)e->compressed_size, (unsigned long long)e->size);
    if (e->local_offset > zip->size || zip->size - e->local_offset < LOCAL_SIZE ||
        le(zip->data + e->local_offset, 4) != LOCAL_SIGNATURE)
        return mv_fail(err, MV_EFORMAT, "%s: zip entry %s: local header missing or outside the file",
                       zip->path, e->name);
    const unsigned char *h = zip->data + e->local_offset;
    uint64_t start = e->local_offset + LOCAL_SIZE + le(h + 26, 2) + le(h + 28, 2);
    if (start > zip->size || e->size > zip->size - start)
        return mv_fail(err, MV_EFORMAT, "%s: zip entry %s extends past the end of the file (truncated?)",
                       zip->path, e->name);
    *out = zip->data + start;
    return MV_OK;
}
