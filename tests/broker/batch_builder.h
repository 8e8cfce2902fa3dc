/*
 * batch_builder — builds Kafka RecordBatch v2 blobs (kafka-protocol.md §4)
 * for broker tests: uncompressed records with varint fields, CRC-32C over
 * [attributes, end), baseOffset 0 and partitionLeaderEpoch -1 as a producer
 * sends them. Several batches can be appended to one buffer to form the
 * records field of a Produce request.
 *
 * Usage:
 *   core_buf_t out; core_buf_init(&out);
 *   batch_builder_t bb;
 *   bb_begin(&bb, 1700000000000);
 *   bb_add(&bb, "k", 1, "v", 1, 1700000000000);
 *   bb_end(&bb, &out);            // out.data[0..out.len) = one batch
 * Not thread-safe; the caller owns out (core_buf_fini).
 */
#ifndef EDDY_TESTS_BATCH_BUILDER_H
#define EDDY_TESTS_BATCH_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "core/core_buf.h"

typedef struct batch_builder {
    core_buf_t recs; /* encoded records */
    int32_t count;
    int64_t base_ts;
    int64_t max_ts;
    int16_t attributes;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
} batch_builder_t;

void bb_begin(batch_builder_t *bb, int64_t base_ts);
/* key/value may be NULL with length -1 (null). One header when hkey != NULL. */
void bb_add_h(batch_builder_t *bb, const void *key, int32_t key_len, const void *value,
              int32_t value_len, int64_t ts, const char *hkey, const void *hval, int32_t hval_len);
void bb_add(batch_builder_t *bb, const void *key, int32_t key_len, const void *value,
            int32_t value_len, int64_t ts);
/* Appends the finished batch to out and frees the builder's memory. Returns
 * the batch's position in out. */
size_t bb_end(batch_builder_t *bb, core_buf_t *out);

/* One batch of n records "value-<i>" padded to value_size bytes (>= 16), all
 * with timestamp ts. Appended to out; returns its position. */
size_t bb_simple(core_buf_t *out, int n, int64_t ts, size_t value_size);

/* Recomputes the CRC of the batch at p (after a test altered it). */
void bb_fix_crc(uint8_t *p);

#endif
