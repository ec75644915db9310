/*
 * crc: see crc.h.  Tables are built once (pthread_once); the hardware
 * CRC-32C path is compiled with a target attribute and used only when
 * the CPU says it has SSE4.2.
 */
#include "crc.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

static uint32_t tab_ieee[256], tab_c[256];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;
static int have_sse42;

static void
fill(uint32_t *t, uint32_t poly)
{
	uint32_t k;
	int i, j;

	for (i = 0; i < 256; i++) {
		for (k = (uint32_t)i, j = 0; j < 8; j++)
			k = k & 1 ? poly ^ (k >> 1) : k >> 1;
		t[i] = k;
	}
}

static void
init(void)
{
	fill(tab_ieee, 0xedb88320u);
	fill(tab_c, 0x82f63b78u);
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t
by_table(const uint32_t *t, uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	crc = ~crc;
	while (len-- > 0)
		crc = t[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

uint32_t
crc_32(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&tab_once, init);
	return by_table(tab_ieee, crc, buf, len);
}

uint32_t
crc_32c_table(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&tab_once, init);
	return by_table(tab_c, crc, buf, len);
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t
hw_32c(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t c = ~crc, v;

	/* Three streams would hide the instruction's latency; one already
	 * runs at several GB/s, far past what SQLite hands us. */
	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
	}
	crc = (uint32_t)c;
	while (len-- > 0)
		crc = _mm_crc32_u8(crc, *p++);
	return ~crc;
}
#endif

uint32_t
crc_32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&tab_once, init);
#if defined(__x86_64__)
	if (have_sse42)
		return hw_32c(crc, buf, len);
#endif
	return by_table(tab_c, crc, buf, len);
}
