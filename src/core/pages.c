/* pages.c — allocates aligned buffers, large ones with their pages mapped in one call, and advises the kernel on
 * ranges of whole pages (include/medvlp/pages.h). */
#include "medvlp/pages.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Shorter buffers fault in a few pages; the call is not worth its own cost. */
enum { POPULATE_MIN_BYTES = 1 << 16 };

void mv_advise_whole_pages(const void *data, size_t bytes, int advice)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t first = ((uintptr_t)data + page - 1) & ~(page - 1);
    const uintptr_t end = ((uintptr_t)data + bytes) & ~(page - 1);
    if (end > first)
        (void)madvise((void *)first, end - first, advice);
}

void *mv_alloc_aligned(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

void *mv_alloc_populated(size_t bytes)
{
    void *data = mv_alloc_aligned(bytes);
#ifdef MADV_POPULATE_WRITE
    if (data && bytes >= POPULATE_MIN_BYTES) /* EINVAL before Linux 5.14: the pages fault in as usual */
        mv_advise_whole_pages(data, bytes, MADV_POPULATE_WRITE);
#endif
    return data;
}
