/* journal.c — the checksummed record format of the journal and the metadata file, and the fsync'ed
 * file writes the index relies on for durability.
 *
 * OWNS: the byte layout of a record and the rule that tells a torn last write from corruption. A
 * record is [u32 length][u32 CRC-32][payload]; an append that was cut short by a crash leaves an
 * incomplete or checksum-failing record at the very END of the file, which was never acknowledged
 * (the fsync did not return) and is dropped. The same damage followed by more data can only be
 * corruption, and is an error. Payload (all little-endian):
 *   u8 kind, u8 target, u16 zero, i64 id,
 *   ADD only: u32 dim, dim x f32,
 *   ADD/META: 3 x (u32 length or 0xFFFFFFFF for absent, bytes): source, caption, metadata JSON. */
#include "index/index_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "medvlp/file.h"

#define ABSENT_TEXT 0xFFFFFFFFu

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static uint32_t crc_of(const unsigned char *data, size_t size)
{
    return (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), data, size);
}

void mv_bytes_free(mv_bytes *bytes)
{
    free(bytes->data);
    memset(bytes, 0, sizeof *bytes);
}

static int bytes_reserve(mv_bytes *bytes, size_t extra, mv_error *err)
{
    if (bytes->len + extra <= bytes->cap)
        return MV_OK;
    size_t cap = bytes->cap ? bytes->cap : 4096;
    while (cap < bytes->len + extra)
        cap *= 2;
    unsigned char *data = realloc(bytes->data, cap);
    if (!data)
        return mv_fail(err, MV_ENOMEM, "index: out of memory for a %zu-byte record buffer", cap);
    bytes->data = data;
    bytes->cap = cap;
    return MV_OK;
}

int mv_record_encode(mv_bytes *out, int kind, int target, int64_t id, const float *vector, uint32_t dim,
        const char *const texts[3], mv_error *err)
{
    size_t payload = 12 + (vector ? 4 + 4 * (size_t)dim : 0);
    if (kind != MV_RECORD_DELETE)
        for (int i = 0; i < 3; i++)
            payload += 4 + (texts[i] ? strlen(texts[i]) : 0);
    if (payload > MV_RECORD_MAX_PAYLOAD)
        return mv_fail(err, MV_ETOOBIG, "index: a record of %zu bytes is over the %u-byte limit", payload,
                MV_RECORD_MAX_PAYLOAD);
    int status = bytes_reserve(out, MV_RECORD_HEADER + payload, err);
    if (status)
        return status;
    unsigned char *start = out->data + out->len, *p = start + MV_RECORD_HEADER;
    p[0] = (unsigned char)kind;
    p[1] = (unsigned char)target;
    p[2] = p[3] = 0;
    put_u64(p + 4, (uint64_t)id);
    p += 12;
    if (vector) {
        put_u32(p, dim);
        p += 4;
        for (uint32_t i = 0; i < dim; i++, p += 4) {
            uint32_t bits;
            memcpy(&bits, &vector[i], 4);
            put_u32(p, bits);
        }
    }
    if (kind != MV_RECORD_DELETE)
        for (int i = 0; i < 3; i++) {
            size_t len = texts[i] ? strlen(texts[i]) : 0;
            put_u32(p, texts[i] ? (uint32_t)len : ABSENT_TEXT);
            if (len)
                memcpy(p + 4, texts[i], len);
            p += 4 + len;
        }
    put_u32(start, (uint32_t)payload);
    put_u32(start + 4, crc_of(start + MV_RECORD_HEADER, payload));
    out->len += MV_RECORD_HEADER + payload;
    return MV_OK;
}

int mv_record_decode(const unsigned char *payload, size_t len, mv_record *record, const char *what,
        uint64_t offset, mv_error *err)
{
    memset(record, 0, sizeof *record);
    const unsigned char *p = payload, *end = payload + len;
    if (len < 12)
        goto bad;
    record->kind = p[0];
    record->target = p[1];
    record->id = (int64_t)get_u64(p + 4);
    p += 12;
    if (record->kind < MV_RECORD_ADD || record->kind > MV_RECORD_DELETE || record->target < 0 ||
            record->target >= MV_INDEX_N_TARGETS || record->id < 0)
        goto bad;
    if (record->kind == MV_RECORD_ADD) {
        if (end - p < 4)
            goto bad;
        record->dim = get_u32(p);
        p += 4;
        if ((size_t)(end - p) / 4 < record->dim)
            goto bad;
        record->vector = p;
        p += 4 * (size_t)record->dim;
    }
    for (int i = 0; i < 3; i++)
        record->text_len[i] = -1;
    if (record->kind != MV_RECORD_DELETE)
        for (int i = 0; i < 3; i++) {
            if (end - p < 4)
                goto bad;
            uint32_t text_len = get_u32(p);
            p += 4;
            if (text_len == ABSENT_TEXT)
                continue;
            if ((size_t)(end - p) < text_len)
                goto bad;
            record->text[i] = (const char *)p;
            record->text_len[i] = text_len;
            p += text_len;
        }
    if (p != end)
        goto bad;
    return MV_OK;
bad:
    return mv_fail(err, MV_EFORMAT, "%s: record at byte %llu has a valid checksum but malformed fields",
            what, (unsigned long long)offset);
}

/* Offset of the first plausible record (sane header fields, matching CRC) at or after from; size if
 * none. Only run on the failure path, to tell a torn tail from a damaged length field. */
static size_t intact_record_after(const unsigned char *data, size_t size, size_t from)
{
    for (size_t at = from; at + MV_RECORD_HEADER + 12 <= size; at++) {
        const unsigned char *payload = data + at + MV_RECORD_HEADER;
        uint32_t len = get_u32(data + at);
        if (len < 12 || len > size - at - MV_RECORD_HEADER || payload[0] < MV_RECORD_ADD ||
                payload[0] > MV_RECORD_DELETE || payload[1] >= MV_INDEX_N_TARGETS || payload[2] || payload[3])
            continue;
        if (get_u32(data + at + 4) == crc_of(payload, len))
            return at;
    }
    return size;
}

int mv_record_next(const unsigned char *data, size_t size, size_t *pos, mv_record *record,
        const char *what, mv_error *err)
{
    size_t at = *pos, left = size - at;
    if (left == 0)
        return MV_SCAN_END;
    if (left < MV_RECORD_HEADER)
        return MV_SCAN_TORN;
    uint32_t len = get_u32(data + at), crc = get_u32(data + at + 4);
    if ((uint64_t)len + MV_RECORD_HEADER > left) {
        /* Runs past the end: torn, unless a damaged length hides intact records behind it. */
        size_t next = intact_record_after(data, size, at + 1);
        if (next == size)
            return MV_SCAN_TORN;
        mv_fail(err, MV_EFORMAT, "%s: corrupt record at byte %zu (length %u runs past the end) followed by an "
                "intact record at byte %zu", what, at, len, next);
        return MV_SCAN_CORRUPT;
    }
    int damaged = len == 0 || len > MV_RECORD_MAX_PAYLOAD ||
            crc != crc_of(data + at + MV_RECORD_HEADER, len);
    if (damaged) {
        /* A crash can leave the tail as zeros (size extended, data not written) or a short/garbled
         * record; either way nothing after it was ever written. */
        if (len == 0) {
            size_t i = at;
            while (i < size && data[i] == 0)
                i++;
            if (i == size)
                return MV_SCAN_TORN;
        } else if ((uint64_t)len + MV_RECORD_HEADER == left) {
            return MV_SCAN_TORN;
        }
        mv_fail(err, MV_EFORMAT, "%s: corrupt record at byte %zu (length %u, checksum %s) followed by %zu "
                "more bytes", what, at, len, len == 0 || len > MV_RECORD_MAX_PAYLOAD ? "not checked" :
                "mismatch", left - MV_RECORD_HEADER - (len <= left - MV_RECORD_HEADER ? len : 0));
        return MV_SCAN_CORRUPT;
    }
    if (mv_record_decode(data + at + MV_RECORD_HEADER, len, record, what, at, err))
        return MV_SCAN_CORRUPT;
    *pos = at + MV_RECORD_HEADER + len;
    return MV_SCAN_RECORD;
}

void mv_record_vector(const mv_record *record, float *out)
{
    for (uint32_t i = 0; i < record->dim; i++) {
        uint32_t bits = get_u32(record->vector + 4 * (size_t)i);
        memcpy(&out[i], &bits, 4);
    }
}

static int read_all_at(int fd, void *data, size_t size, uint64_t offset, const char *what, mv_error *err)
{
    unsigned char *p = data;
    while (size) {
        ssize_t got = pread(fd, p, size, (off_t)offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return mv_fail(err, MV_EIO, "%s: read at byte %llu: %s", what, (unsigned long long)offset,
                    strerror(errno));
        if (got == 0)
            return mv_fail(err, MV_EFORMAT, "%s: truncated at byte %llu", what, (unsigned long long)offset);
        p += got;
        size -= (size_t)got;
        offset += (uint64_t)got;
    }
    return MV_OK;
}

int mv_record_pread(int fd, uint64_t offset, mv_bytes *buffer, mv_record *record, const char *what,
        mv_error *err)
{
    unsigned char header[MV_RECORD_HEADER];
    int status = read_all_at(fd, header, sizeof header, offset, what, err);
    if (status)
        return status;
    uint32_t len = get_u32(header), crc = get_u32(header + 4);
    if (len == 0 || len > MV_RECORD_MAX_PAYLOAD)
        return mv_fail(err, MV_EFORMAT, "%s: bad record length %u at byte %llu", what, len,
                (unsigned long long)offset);
    buffer->len = 0;
    if ((status = bytes_reserve(buffer, len, err)) ||
            (status = read_all_at(fd, buffer->data, len, offset + MV_RECORD_HEADER, what, err)))
        return status;
    if (crc != crc_of(buffer->data, len))
        return mv_fail(err, MV_EFORMAT, "%s: checksum mismatch in record at byte %llu", what,
                (unsigned long long)offset);
    return mv_record_decode(buffer->data, len, record, what, offset, err);
}

int mv_write_all_at(int fd, const void *data, size_t size, uint64_t offset, const char *what, mv_error *err)
{
    const unsigned char *p = data;
    while (size) {
        ssize_t put = pwrite(fd, p, size, (off_t)offset);
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0)
            return mv_fail(err, MV_EIO, "%s: write at byte %llu: %s", what, (unsigned long long)offset,
                    strerror(errno));
        p += put;
        size -= (size_t)put;
        offset += (uint64_t)put;
    }
    return MV_OK;
}

int mv_fsync_path(const char *path, int directory, mv_error *err)
{
    int fd = open(path, (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mv_fail(err, MV_EIO, "%s: open for fsync: %s", path, strerror(errno));
    int failed = fsync(fd) != 0;
    int saved = errno;
    close(fd);
    return failed ? mv_fail(err, MV_EIO, "%s: fsync: %s", path, strerror(saved)) : MV_OK;
}

int mv_file_crc(const char *path, uint64_t *size, uint32_t *crc, mv_error *err)
{
    mv_mapped_file file;
    int status = mv_file_map(path, &file, err);
    if (status)
        return status;
    *size = file.size;
    *crc = file.size ? crc_of(file.data, file.size) : crc_of((const unsigned char *)"", 0);
    mv_file_unmap(&file);
    return MV_OK;
}

int mv_write_file_atomic(const char *dir, const char *name, const void *data, size_t size, mv_error *err)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    int status = mv_path_join(path, sizeof path, dir, name, err);
    if (status || (status = mv_path_join(tmp, sizeof tmp - 4, dir, name, err)))
        return status;
    strcat(tmp, ".tmp");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return mv_fail(err, MV_EIO, "%s: %s", tmp, strerror(errno));
    status = mv_write_all_at(fd, data, size, 0, tmp, err);
    if (!status && fsync(fd) != 0)
        status = mv_fail(err, MV_EIO, "%s: fsync: %s", tmp, strerror(errno));
    close(fd);
    if (!status && rename(tmp, path) != 0)
        status = mv_fail(err, MV_EIO, "rename %s -> %s: %s", tmp, path, strerror(errno));
    if (status)
        unlink(tmp);
    else
        status = mv_fsync_path(dir, 1, err);
    return status;
}
