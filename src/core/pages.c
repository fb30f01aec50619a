/* pages.c — allocates large buffers with their pages mapped in one call (include/medvlp/pages.h). */
#include "medvlp/pages.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Shorter buffers fault in a few pages; the call is not worth its own cost. */
enum { POPULATE_MIN_BYTES = 1 << 16 };

void *mv_alloc_populated(size_t bytes)
{
    void *data = aligned_alloc(64, (bytes + 63) / 64 * 64);
#ifdef MADV_POPULATE_WRITE
    if (data && bytes >= POPULATE_MIN_BYTES) { /* the whole pages inside the buffer */
        const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        const uintptr_t first = ((uintptr_t)data + page - 1) & ~(page - 1);
        const uintptr_t end = ((uintptr_t)data + bytes) & ~(page - 1);
        if (end > first)
            (void)madvise((void *)first, end - first, MADV_POPULATE_WRITE); /* EINVAL before 5.14 */
    }
#endif
    return data;
}
