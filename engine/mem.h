/*
 * mem: what this process and this machine have in memory, for limits
 * and reports: the resident size of the process, and the default cap
 * on caches (half the machine's RAM); and big buffers in huge pages.
 */
#ifndef SINKD_MEM_H
#define SINKD_MEM_H

#include <stddef.h>
#include <stdint.h>

/* This process's resident memory in bytes (/proc/self/statm); 0 if unknown. */
uint64_t mem_rss(void);
/* Half of the machine's RAM in bytes; 4 GiB if it cannot be told. */
uint64_t mem_half_ram(void);

/*
 * n bytes of zeroed anonymous memory, 2 MiB-aligned and asked to be
 * backed by transparent huge pages (a hint: where the kernel has none
 * to give, or THP is off, they are ordinary pages); NULL when out of
 * memory.  Free with mem_huge_free(p, n).  Why: the weights are streamed
 * from memory for every token, and with 4 KiB pages every 4 KiB is a
 * TLB miss the prefetches stall on.
 */
void *mem_huge_alloc(size_t n);
void mem_huge_free(void *p, size_t n);

#endif
