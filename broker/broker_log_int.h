/*
 * broker_log_int — declarations shared by broker_log.c and its dump/check
 * tool (broker_log_cmd.c) and tests; not for other modules. The protocol
 * layer reads batches through its own codec; it only needs broker_log.h.
 *
 * RecordBatch v2 header offsets (kafka-protocol.md §4.1) and the on-disk
 * index layouts are defined here once, so the log, the dump tool and the
 * tests cannot disagree about them.
 */
#ifndef EDDY_BROKER_LOG_INT_H
#define EDDY_BROKER_LOG_INT_H

#include <stddef.h>
#include <stdint.h>

/* RecordBatch v2 header: byte offsets of each field. */
#define BROKER_BATCH_OFF_BASE_OFFSET 0
#define BROKER_BATCH_OFF_LENGTH 8
#define BROKER_BATCH_OFF_LEADER_EPOCH 12
#define BROKER_BATCH_OFF_MAGIC 16
#define BROKER_BATCH_OFF_CRC 17
#define BROKER_BATCH_OFF_ATTRIBUTES 21
#define BROKER_BATCH_OFF_LAST_OFFSET_DELTA 23
#define BROKER_BATCH_OFF_BASE_TIMESTAMP 27
#define BROKER_BATCH_OFF_MAX_TIMESTAMP 35
#define BROKER_BATCH_OFF_PRODUCER_ID 43
#define BROKER_BATCH_OFF_PRODUCER_EPOCH 51
#define BROKER_BATCH_OFF_BASE_SEQUENCE 53
#define BROKER_BATCH_OFF_RECORDS_COUNT 57
#define BROKER_BATCH_HEADER_SIZE 61
/* baseOffset + batchLength: the bytes not counted by batchLength. */
#define BROKER_BATCH_LOG_OVERHEAD 12
/* The CRC covers [BROKER_BATCH_OFF_ATTRIBUTES, end). */
#define BROKER_BATCH_CRC_START BROKER_BATCH_OFF_ATTRIBUTES
/* attributes bits: transactional, control (transactions are not supported:
 * such batches are refused at append). */
#define BROKER_BATCH_ATTR_TRANSACTIONAL 0x10
#define BROKER_BATCH_ATTR_CONTROL 0x20
/* The one magic value the log stores. */
#define BROKER_BATCH_MAGIC 2

/* Offset index (.index) entry: u32 BE offset relative to the segment base
 * (the base offset of one batch), u32 BE file position of that batch. */
#define BROKER_INDEX_ENTRY_SIZE 8
/* Time index (.timeindex) entry: i64 BE timestamp (the largest batch
 * maxTimestamp seen in the segment up to and including the named batch),
 * u32 BE relative base offset of the batch that first reached it. */
#define BROKER_TIMEINDEX_ENTRY_SIZE 12

#define BROKER_LOG_SUFFIX ".log"
#define BROKER_INDEX_SUFFIX ".index"
#define BROKER_TIMEINDEX_SUFFIX ".timeindex"
#define BROKER_LEADER_EPOCH_FILE "leader-epoch-checkpoint"
#define BROKER_CLEAN_SHUTDOWN_FILE "clean-shutdown"
#define BROKER_RECOVERY_POINT_FILE "recovery-point"
#define BROKER_LOG_START_FILE "log-start-offset"
#define BROKER_PRODUCER_STATE_FILE "producer-state"

/* The fields of a batch header the log uses (decoded, host order). */
typedef struct broker_batch_hdr {
    int64_t base_offset;
    int32_t length; /* batchLength: bytes after the length field */
    int32_t leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int32_t records_count;
} broker_batch_hdr_t;

/* Decodes the header fields from p (at least BROKER_BATCH_HEADER_SIZE bytes). */
void broker_log__hdr_decode(const uint8_t *p, broker_batch_hdr_t *h);

/* Validates the one batch that starts at p[0..avail): magic 2, batchLength
 * at least a header and at most avail, total size <= max_bytes, CRC-32C over
 * [21, end), lastOffsetDelta >= 0 and recordsCount == lastOffsetDelta + 1.
 * On success returns 0 and sets *total (bytes of the whole batch).
 * Returns CORE_ERR_AGAIN when avail is too short to hold the header or the
 * announced length (a torn batch, on disk), CORE_ERR_UNSUPPORTED for magic
 * 0/1, CORE_ERR_MALFORMED, CORE_ERR_TOO_LARGE or CORE_ERR_CRC otherwise;
 * *why (static string) says what failed. A run of zero bytes always fails
 * (batchLength 0 < header), whatever avail is. */
int broker_log__batch_check(const uint8_t *p, size_t avail, int64_t max_bytes, size_t *total,
                            const char **why);

struct broker_log;
/* Frees the log and closes its files without syncing or writing the
 * clean-shutdown marker (topic deletion, after its directory was renamed).
 * Slices keep their segments. Loop thread; must not race a flush. */
void broker_log__free(struct broker_log *log);

#endif
