/*
 * mem: what this process and this machine have in memory, for limits
 * and reports: the resident size of the process, and the default cap
 * on caches (half the machine's RAM).
 */
#ifndef SINKD_MEM_H
#define SINKD_MEM_H

#include <stdint.h>

/* This process's resident memory in bytes (/proc/self/statm); 0 if unknown. */
uint64_t mem_rss(void);
/* Half of the machine's RAM in bytes; 4 GiB if it cannot be told. */
uint64_t mem_half_ram(void);

#endif
