/* mem: see mem.h. */
#include "mem.h"

#include <stdio.h>
#include <unistd.h>

uint64_t
mem_rss(void)
{
	unsigned long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");
	int ok;

	if (f == NULL)
		return 0;
	ok = fscanf(f, "%lu %lu", &size, &resident) == 2;
	fclose(f);
	return ok ? (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

uint64_t
mem_half_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	if (pages <= 0 || size <= 0)
		return (uint64_t)1 << 32;
	return (uint64_t)pages * (uint64_t)size / 2;
}
