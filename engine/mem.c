/* mem: see mem.h. */
#include "mem.h"

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_PAGE ((size_t)2 << 20)

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

/* n rounded up to whole huge pages: what mem_huge_alloc maps. */
static size_t
huge_len(size_t n)
{
	return (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
}

void *
mem_huge_alloc(size_t n)
{
	size_t len = huge_len(n), head;
	char *p;

	if (n == 0 || len < n || len + HUGE_PAGE < len)
		return NULL;
	/* One huge page more than needed, trimmed to a 2 MiB boundary. */
	p = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	head = (HUGE_PAGE - (uintptr_t)p % HUGE_PAGE) % HUGE_PAGE;
	if (head > 0)
		munmap(p, head);
	munmap(p + head + len, HUGE_PAGE - head);
	p += head;
#ifdef MADV_HUGEPAGE
	(void)madvise(p, len, MADV_HUGEPAGE);
#endif
	return p;
}

void
mem_huge_free(void *p, size_t n)
{
	if (p != NULL)
		munmap(p, huge_len(n));
}
