/*
 * sha256: the SHA-256 digest (FIPS 180-4), for model fingerprints and
 * snapshot integrity.  Incremental: init, update any number of times,
 * final.
 */
#ifndef SINKD_SHA256_H
#define SINKD_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
	uint32_t h[8];
	uint64_t len;		/* bytes so far */
	uint8_t buf[64];
	size_t n;		/* bytes in buf */
};

void sha256_init(struct sha256 *);
void sha256_update(struct sha256 *, const void *, size_t);
void sha256_final(struct sha256 *, uint8_t out[32]);
/* The digest as 64 lowercase hex digits and a NUL. */
void sha256_hex(const uint8_t d[32], char out[65]);

#endif
