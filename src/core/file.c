/* file.c — owns file mappings (mmap/munmap) and small whole-file reads. */
#include "medvlp/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int mv_file_map(const char *path, mv_mapped_file *out, mv_error *err)
{
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mv_fail(err, errno == ENOENT ? MV_ENOTFOUND : MV_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return mv_fail(err, MV_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return mv_fail(err, MV_EINPUT, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return MV_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return mv_fail(err, MV_EIO, "%s: mmap: %s", path, strerror(e));
    out->data = p;
    out->size = (size_t)st.st_size;
    return MV_OK;
}

void mv_file_unmap(mv_mapped_file *file)
{
    if (file->data)
        munmap((void *)file->data, file->size);
    file->data = NULL;
    file->size = 0;
}

int mv_file_read_all(const char *path, size_t max_size, char **out, size_t *size, mv_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mv_fail(err, errno == ENOENT ? MV_ENOTFOUND : MV_EIO, "%s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len == cap) {
            if (cap >= max_size) {
                free(buf);
                fclose(f);
                return mv_fail(err, MV_ETOOBIG, "%s: larger than %zu bytes", path, max_size);
            }
            cap = cap * 2 > max_size ? max_size : cap * 2;
            char *grown = realloc(buf, cap + 1);
            if (!grown) {
                free(buf);
                fclose(f);
                return mv_fail(err, MV_ENOMEM, "%s: out of memory", path);
            }
            buf = grown;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return mv_fail(err, MV_EIO, "%s: read error", path);
    }
    buf[len] = '\0';
    *out = buf;
    if (size)
        *size = len;
    return MV_OK;
}

int mv_path_join(char *out, size_t out_size, const char *dir, const char *name, mv_error *err)
{
    int n = snprintf(out, out_size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= out_size)
        return mv_fail(err, MV_EINPUT, "path too long: %s/%s", dir, name);
    return MV_OK;
}

int mv_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
