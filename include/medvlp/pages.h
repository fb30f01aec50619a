/* pages.h — memory whose pages are mapped before first use, and advice on whole pages. A page fault
 * is a trap into the kernel, and in a virtual machine a costly one: on a Firecracker guest (AMD EPYC,
 * Linux 6.18) perf put 47% of a ViT-B/16 load in page faults, nearly all from writing its 344 MB of
 * freshly allocated packed weights. Mapping each buffer in one madvise(MADV_POPULATE_WRITE) call
 * (Linux 5.14) took that load from 1.16-1.31 s to 0.71-0.79 s (BENCHMARKS.md, item 24). On older
 * kernels the call does nothing and the pages fault in as usual. */
#ifndef MEDVLP_PAGES_H
#define MEDVLP_PAGES_H

#include <stddef.h>

/* 64-byte-aligned memory of `bytes` (free it with free()), or NULL. The size is rounded up to a
 * multiple of 64: aligned_alloc requires it (glibc lets other sizes pass, ASan aborts on them). */
void *mv_alloc_aligned(size_t bytes);

/* mv_alloc_aligned, with its pages mapped. */
void *mv_alloc_populated(size_t bytes);

/* madvise(advice) over the whole pages inside [data, data + bytes): a page the range only shares
 * with its neighbours is left alone. Advice only: failure is ignored. */
void mv_advise_whole_pages(const void *data, size_t bytes, int advice);

#endif
