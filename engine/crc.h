/*
 * crc: the project's two checksums, one implementation each.
 * crc_32: CRC-32 (IEEE 802.3, reflected 0xedb88320), as PNG and zlib
 * define it.  crc_32c: CRC-32C (Castagnoli, reflected 0x82f63b78), the
 * store's chunk checksum, chosen because x86 computes it in hardware
 * (SSE4.2): a full cache of several tens of MB is checked in
 * milliseconds on every load.  Both continue from a previous value:
 * crc(crc(0, a), b) == crc(0, a b).
 */
#ifndef SINKD_CRC_H
#define SINKD_CRC_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc_32(uint32_t crc, const void *buf, size_t len);
uint32_t crc_32c(uint32_t crc, const void *buf, size_t len);
/* The portable CRC-32C, for tests to compare the hardware path with. */
uint32_t crc_32c_table(uint32_t crc, const void *buf, size_t len);

#endif
