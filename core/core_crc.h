/*
 * core_crc — CRC-32C (Castagnoli), used by Kafka RecordBatch v2 and by every
 * on-disk record Eddy writes. Uses the SSE4.2 crc32 instruction when the CPU
 * has it (checked once at run time), else a slicing-by-8 table.
 *
 * Conventions match Kafka: reflected polynomial 0x82F63B78, initial value and
 * final xor 0xFFFFFFFF. core_crc32c(0, p, n) computes the CRC of p[0..n);
 * passing a previous result as crc continues it over more bytes.
 */
#ifndef EDDY_CORE_CRC_H
#define EDDY_CORE_CRC_H

#include <stddef.h>
#include <stdint.h>

uint32_t core_crc32c(uint32_t crc, const void *buf, size_t len);
/* The portable table version, exposed so tests can compare both paths. */
uint32_t core_crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
