/* pages.h — memory whose pages are mapped before first use. A page fault is a trap into the kernel,
 * and in a virtual machine a costly one: on a Firecracker guest (AMD EPYC, Linux 6.18) writing a fresh
 * 9.4 MB buffer page by page took 26-36 ms (~11 µs a page), against 0.4 ms for mapping it in one
 * madvise(MADV_POPULATE_WRITE) call (Linux 5.14) and 1.4 ms for then writing it. ViT-B/16's weights,
 * packed into 344 MB of new buffers, loaded in 1.16-1.31 s page by page and 0.71-0.79 s populated.
 * On older kernels the call does nothing and the pages fault in as usual. */
#ifndef MEDVLP_PAGES_H
#define MEDVLP_PAGES_H

#include <stddef.h>

/* 64-byte-aligned memory of `bytes` (free it with free()) with its pages mapped, or NULL. */
void *mv_alloc_populated(size_t bytes);

/* madvise(advice) over the whole pages inside [data, data + bytes): a page the range only shares
 * with its neighbours is left alone. Advice only: failure is ignored. */
void mv_advise_whole_pages(const void *data, size_t bytes, int advice);

#endif
