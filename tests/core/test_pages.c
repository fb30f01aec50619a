/* test_pages.c — mv_alloc_populated returns memory whose pages are already mapped: mincore counts them
 * resident before anything is written. Skipped (exit 77) on kernels without MADV_POPULATE_WRITE
 * (before Linux 5.14). */
#include "medvlp/pages.h"
#include "../test.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

enum { BYTES = 8 << 20 };

/* Pages of [data, data + bytes) that are resident, over the whole pages inside it. */
static double resident_share(const void *data, size_t bytes)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const uintptr_t first = ((uintptr_t)data + page - 1) & ~(uintptr_t)(page - 1);
    const uintptr_t end = ((uintptr_t)data + bytes) & ~(uintptr_t)(page - 1);
    const size_t pages = (end - first) / page;
    unsigned char *vec = malloc(pages);
    if (!vec || mincore((void *)first, end - first, vec)) {
        free(vec);
        return -1.0;
    }
    size_t resident = 0;
    for (size_t i = 0; i < pages; i++)
        resident += vec[i] & 1;
    free(vec);
    return (double)resident / (double)pages;
}

static int kernel_can_populate(void)
{
    void *probe = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe == MAP_FAILED)
        return 0;
    int ok = madvise(probe, 1 << 16, MADV_POPULATE_WRITE) == 0 || errno != EINVAL;
    munmap(probe, 1 << 16);
    return ok;
}

int main(void)
{
    if (!kernel_can_populate()) {
        printf("SKIP: this kernel has no MADV_POPULATE_WRITE\n");
        return 77;
    }
    float *buffer = mv_alloc_populated(BYTES);
    CHECK(buffer != NULL);
    CHECK(((uintptr_t)buffer & 63) == 0);
    double share = resident_share(buffer, BYTES);
    CHECK_MSG(share > 0.999, "resident share of a populated buffer: %.3f", share);
    free(buffer);
    return test_report("pages");
}
