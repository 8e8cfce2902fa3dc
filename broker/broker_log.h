/*
 * broker_log — one partition's durable commit log.
 *
 * (Interface fixed first so the protocol layer and the log can be built in
 * parallel; the implementer completes this comment with the on-disk format.)
 *
 * Layout: DIR/<topic>-<partition>/ holds segments named by base offset
 * (%020lld.log), each with a sparse offset index (.index) and a time index
 * (.timeindex), plus leader-epoch-checkpoint. The active segment is the last.
 *
 * Records are Kafka RecordBatch v2 blobs stored exactly as the producer sent
 * them; append rewrites only baseOffset and partitionLeaderEpoch (both outside
 * the CRC-32C), so no recompression or CRC recomputation happens.
 *
 * Offsets: log start offset (LSO_start) <= high watermark (HW) <= log end
 * offset (LEO). On a single node HW == LEO after every append; they are kept
 * apart for replication. `flushed` is the offset below which everything is
 * fsynced (acks=all answers only when its batch is below `flushed`).
 *
 * Threads: every function is called on the broker's loop thread, except
 * broker_log_flush (any thread; serialised internally) and the slice
 * keep/release pair (any thread). Segment files stay open while a slice
 * refers to them, even if retention deletes the segment meanwhile.
 */
#ifndef EDDY_BROKER_LOG_H
#define EDDY_BROKER_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct broker_log broker_log_t;
typedef struct broker_segment broker_segment_t;

typedef struct broker_log_conf {
    int64_t segment_bytes;     /* roll when the active segment would exceed this */
    int64_t segment_ms;        /* roll when the active segment is older than this */
    int64_t retention_bytes;   /* -1 = unlimited */
    int64_t retention_ms;      /* -1 = unlimited */
    int64_t max_message_bytes; /* largest batch accepted */
    int64_t index_interval_bytes; /* sparse index: one entry per this many bytes */
} broker_log_conf_t;

void broker_log_conf_default(broker_log_conf_t *conf);

/* Opens (creating if needed) the log in dir and recovers it: validates every
 * batch of the active segment by length and CRC, truncates a torn tail (and
 * logs how many bytes were cut), rebuilds indexes that are missing or point
 * past the log. Returns 0 or an error with a message in errstr. */
int broker_log_open(const char *dir, const broker_log_conf_t *conf, broker_log_t **logp,
                    char *errstr, size_t errstr_size);
/* Flushes and closes; marks a clean shutdown. */
void broker_log_close(broker_log_t *log);
void broker_log_set_conf(broker_log_t *log, const broker_log_conf_t *conf);

/* Validates every RecordBatch in records[0..len) (magic 2, lengths, CRC-32C,
 * size limit) and, only if all are valid, appends them. The buffer is
 * modified in place (baseOffset and partitionLeaderEpoch are rewritten).
 * On success *base_offset is the first offset assigned and *last_offset the
 * last. Errors: CORE_ERR_CRC (-> CORRUPT_MESSAGE), CORE_ERR_MALFORMED
 * (-> CORRUPT_MESSAGE), CORE_ERR_TOO_LARGE (-> MESSAGE_TOO_LARGE),
 * CORE_ERR_UNSUPPORTED (magic < 2), CORE_ERR_IO (sticky: the log refuses
 * further writes -> KAFKA_STORAGE_ERROR). Nothing is appended on error. */
int broker_log_append(broker_log_t *log, uint8_t *records, size_t len, int32_t leader_epoch,
                      int64_t *base_offset, int64_t *last_offset);

/* fsyncs the active segment (and any rolled, unsynced ones); afterwards
 * broker_log_flushed() >= the LEO observed at the call's start. Safe to call
 * from a worker thread while the loop thread appends. */
int broker_log_flush(broker_log_t *log);

int64_t broker_log_start_offset(const broker_log_t *log);
int64_t broker_log_end_offset(const broker_log_t *log);   /* LEO */
int64_t broker_log_high_watermark(const broker_log_t *log);
int64_t broker_log_flushed(const broker_log_t *log);
int64_t broker_log_size_bytes(const broker_log_t *log);

/* A contiguous byte range of one segment file holding whole batches. */
typedef struct broker_log_slice {
    broker_segment_t *seg; /* reference held; release with broker_log_slice_release */
    int fd;                /* the segment's file descriptor (for pread / sendfile) */
    int64_t file_pos;
    int64_t len;           /* 0 when there is nothing to read at this offset yet */
} broker_log_slice_t;

/* Finds whole batches starting with the one that contains `offset`, up to
 * max_bytes (but always at least one whole batch, so consumers progress),
 * never past the high watermark, within one segment. Errors:
 * CORE_ERR_RANGE when offset < start or > HW (-> OFFSET_OUT_OF_RANGE).
 * offset == HW gives len 0. */
int broker_log_read(broker_log_t *log, int64_t offset, int64_t max_bytes,
                    broker_log_slice_t *slice);
void broker_log_slice_release(broker_log_slice_t *slice);

/* ListOffsets by timestamp: the first offset whose batch max timestamp is
 * >= ts; -1 (with *ts_out -1) when none. */
int64_t broker_log_offset_for_time(broker_log_t *log, int64_t ts, int64_t *ts_out);

/* Applies retention (size and time) and time-based rolling. Deletes whole
 * segments only, never the active one; advances the log start offset.
 * Returns the number of segments deleted. */
int broker_log_housekeep(broker_log_t *log, int64_t now_ms);

/* Deletes every file of the log (topic deletion). The log must be closed by this call. */
int broker_log_destroy(broker_log_t *log);

/* Leader epoch bookkeeping for replication: (epoch, start offset) pairs,
 * persisted in leader-epoch-checkpoint. */
int broker_log_set_leader_epoch(broker_log_t *log, int32_t epoch);
int32_t broker_log_leader_epoch(const broker_log_t *log);

#endif
