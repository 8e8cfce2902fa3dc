/*
 * broker_log — one partition's durable commit log.
 *
 * Records are Kafka RecordBatch v2 blobs stored exactly as the producer sent
 * them; append rewrites only baseOffset and partitionLeaderEpoch (both outside
 * the CRC-32C), so no recompression or CRC recomputation happens, and Fetch
 * can send the file bytes as they are (sendfile).
 *
 * Offsets: log start offset (LSO_start) <= high watermark (HW) <= log end
 * offset (LEO). On a single node HW == LEO after every append; they are kept
 * apart for replication. `flushed` is the offset below which everything is
 * fsynced (acks=all answers only when its batch is below `flushed`).
 *
 * ---- On-disk format ---------------------------------------------------------
 * DIR/<topic>-<partition>/ (the broker_topic layer passes DIR/topics/T/P):
 *
 *   00000000000000000000.log        segment: batches back to back, nothing else
 *   00000000000000000000.index      sparse offset index of that segment
 *   00000000000000000000.timeindex  sparse time index of that segment
 *   00000000000000001234.log ...    next segment; base offset in the name (%020lld)
 *   leader-epoch-checkpoint         text: "0\n" N "\n" then N lines "EPOCH START_OFFSET\n"
 *   recovery-point                  text: "0\n" OFFSET "\n": every segment whose base is
 *                                   below OFFSET is fully fsynced (data and indexes)
 *   log-start-offset                text: "0\n" OFFSET "\n": only after DeleteRecords; the
 *                                   log starts at max(OFFSET, first segment's base)
 *   clean-shutdown                  empty; present only between close and open
 *   producer-state                  idempotent-producer snapshot (broker_producer.h):
 *                                   like clean-shutdown, present only between a clean
 *                                   close and the next open, and trusted only with it
 *
 * .log: RecordBatch v2 (kafka-protocol.md §4.1), each one 12 + batchLength
 *   bytes, big-endian: baseOffset i64 | batchLength i32 | partitionLeaderEpoch
 *   i32 | magic i8 = 2 | crc u32 = CRC-32C of [21, end) | attributes i16 |
 *   lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 | producerId i64
 *   | producerEpoch i16 | baseSequence i32 | recordsCount i32 | records.
 *   The first batch's baseOffset equals the file's base offset, and each next
 *   batch starts at the previous baseOffset + lastOffsetDelta + 1, so a batch
 *   is valid only where it is expected: stale bytes from an older file, or a
 *   batch copied to the wrong place, fail validation even with a good CRC.
 *   A segment spans < 2^31 bytes and < 2^31 offsets (roll happens first).
 *   Validity of a batch (append and recovery use one function,
 *   broker_log__batch_check): batchLength >= 49 (so a run of zero bytes is
 *   never a batch: its length is 0), magic 2, the whole batch present, CRC-32C
 *   matches, recordsCount == lastOffsetDelta + 1 >= 1.
 * .index: 8-byte entries, u32 BE (batch baseOffset - segment base) | u32 BE
 *   file position of that batch. One entry for a batch that starts after at
 *   least index_interval_bytes since the previous entry (the first batch of a
 *   segment gets none: position 0 is implied). Strictly increasing in both.
 * .timeindex: 12-byte entries, i64 BE T | u32 BE relative offset O: T is the
 *   largest batch maxTimestamp in the segment up to and including batch O,
 *   and batch O is where T was first reached. Written together with an
 *   .index entry when T grew, plus one final entry when the segment stops
 *   being active, so the last entry of a rolled segment is its max timestamp.
 * Indexes are read with pread (binary search; the page cache holds the hot
 * parts), never mmapped or kept in memory, so memory does not grow with the
 * data retained. They are derived data: recovery rebuilds them from the log.
 *
 * ---- Crash-safety invariants ---------------------------------------------------
 * 1. A batch is written with one pwrite, after every batch of the request was
 *    validated; on a write error (data or index) the data file is cut back to
 *    its previous size and the log turns read-only (sticky CORE_ERR_IO, as after a failed fsync,
 *    since the kernel may have dropped the dirty pages: never retried).
 * 2. `flushed` only moves after fdatasync of the segment that held LEO when
 *    the flush began (and of every rolled segment before it, see 3)
 *    returned success; acks=all waits for it.
 * 3. A roll does not fsync (an fsync of a whole segment on the loop thread
 *    would stall every partition): it creates the next segment and leaves the
 *    old one to the next broker_log_flush, which fsyncs the rolled segments,
 *    then the directory, then the active segment, and only then moves
 *    `flushed` and rewrites recovery-point to the active segment's base.
 *    So every segment below the recovery point is durable and intact: damage
 *    there is corruption, and open fails with CORE_ERR_CORRUPT naming the
 *    file and position, repairing nothing. A segment at or past the recovery
 *    point may be torn by a power cut like the active one: recovery
 *    truncates it at its first invalid batch and drops the segments after it
 *    (their data was never acknowledged as durable: `flushed` had not passed
 *    it). Appends start kernel writeback every few MiB (sync_file_range) so
 *    these fsyncs find little left to write.
 * 4. Index entries are written after the data they point at. They are not
 *    synced with it, so after a crash they may be short, or point past the
 *    log; recovery rebuilds the indexes of every segment it scans, and checks
 *    the last entries of those it does not.
 * 5. Recovery at open scans the last segment (all segments when the
 *    clean-shutdown marker is missing) forward, validating every batch, stops
 *    at the first invalid one, truncates there (logging the bytes cut; see 3
 *    for non-last segments), rebuilds the indexes of every segment it
 *    scanned, then fsyncs every segment from the recovery point on and the
 *    directory before the first append, so `flushed` starts at LEO and
 *    nothing after a torn batch is ever served.
 * 6. clean-shutdown is created (and the directory fsynced) only after a
 *    full flush (3) and an fsync of the active segment's indexes; open
 *    deletes it (and fsyncs the directory) before returning, so a later
 *    crash is seen as unclean.
 * 7. leader-epoch-checkpoint and every other small file are replaced by
 *    temp file + fsync + rename + fsync(dir); a torn one is never visible.
 *    Entries starting past the recovered LEO are dropped at open.
 * 8. Retention removes a segment from the in-memory list before unlinking
 *    (.log first, then indexes; an index without its .log is removed at
 *    open). It deletes whole segments only, oldest first, never the active
 *    one, so the remaining segments stay contiguous and the log start offset
 *    (the first segment's base) is persistent without a file of its own.
 *    DeleteRecords may put the start inside a segment: it writes
 *    log-start-offset (replaced as in 7) before anything is answered, then
 *    deletes the segments wholly below it; open clamps it to the LEO.
 *
 * ---- Producer state (idempotence) ---------------------------------------------
 * The log keeps, per producer id, the epoch and the last 5 batches'
 * sequence ranges and offsets (broker_producer.h), checks every batch of an
 * append against them after validation and before anything is written (a
 * retry of a written batch is not written again: the append answers the
 * first copy's offsets), and records the batches once they are written.
 * Decision: the state is rebuilt from the log, not kept in a file of its
 * own that every append would have to update. Each batch header carries
 * producerId, producerEpoch and baseSequence, so the log alone is the
 * truth and cannot disagree with it: after a crash (kill -9, power cut)
 * open replays the header of every batch in the log (recovery already
 * reads every segment after an unclean shutdown, so this adds only header
 * reads), and what recovery truncated is never in the state. After a clean
 * shutdown open loads the producer-state snapshot written by close (the
 * state as of LEO) instead, so a clean restart reads no segment it did not
 * read before. State lost with segments deleted by retention is answered
 * UNKNOWN_PRODUCER_ID, which clients handle by taking a new producer id.
 *
 * ---- Threads and ownership -----------------------------------------------------
 * Every function is called on the broker's loop thread, except
 * broker_log_flush (any thread; serialised internally) and
 * broker_log_slice_release (any thread). Segments are refcounted: the log
 * holds one reference while a segment is listed, each slice and a running
 * flush hold one more, so a segment file stays open (and readable, via the
 * slice's fd) after retention deleted it, until the last slice is released.
 * Appends on the loop thread and a flush on a worker may run at once: the
 * flush takes a (LEO, active segment, unsynced rolled segments) snapshot
 * under an internal mutex (invariant 3). broker_log_close and
 * broker_log_destroy must not race a flush. Append and read may block on
 * page-cache I/O, never on an fsync (housekeep neither: retention unlinks).
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

/* Opens (creating if needed) the log in dir and recovers it (invariant 5):
 * validates every batch of the active segment (every segment after an
 * unclean shutdown) by length, CRC and offsets, truncates a torn tail (and
 * logs how many bytes were cut), rebuilds indexes that are missing or point
 * past the log. Returns 0, CORE_ERR_CORRUPT (damage in synced data; the
 * message names the file and position) or CORE_ERR_IO, with errstr set. */
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
 * CORE_ERR_UNSUPPORTED (magic < 2), CORE_ERR_IO (-> KAFKA_STORAGE_ERROR;
 * sticky after a failed write or fsync: the log refuses further writes until
 * reopened; not sticky when only a new segment could not be created, e.g.
 * EMFILE). Nothing is appended on error. */
int broker_log_append(broker_log_t *log, uint8_t *records, size_t len, int32_t leader_epoch,
                      int64_t *base_offset, int64_t *last_offset);

/* What an append did, for idempotent producers. */
typedef struct broker_log_append_res {
    int64_t base_offset; /* first / last offset of the batches (of the first copy on a duplicate) */
    int64_t last_offset;
    int producer;        /* broker_producer_verdict_t: OK, DUPLICATE (nothing written, success),
                            or why the append was refused (with CORE_ERR_CONFLICT) */
} broker_log_append_res_t;

/* broker_log_append with the idempotence outcome: returns 0 when the
 * batches were appended or were all a duplicate of batches already in the
 * log (res->producer == BROKER_PRODUCER_DUPLICATE, nothing written, the
 * offsets are the first copy's), CORE_ERR_CONFLICT when the producer
 * state refuses them (res->producer says why: OUT_OF_ORDER, FENCED,
 * UNKNOWN, INVALID), or the errors of broker_log_append. Loop thread. */
int broker_log_produce(broker_log_t *log, uint8_t *records, size_t len, int32_t leader_epoch,
                       broker_log_append_res_t *res);
/* Idempotent producers the log currently remembers. */
size_t broker_log_producers(const broker_log_t *log);

/* fsyncs the rolled, unsynced segments, the directory and the active
 * segment, in that order, then advances `flushed` and the recovery point;
 * afterwards broker_log_flushed() >= the LEO observed at the call's start.
 * Safe to call from a worker thread while the loop thread appends; calls
 * are serialised. Returns 0 or CORE_ERR_IO (sticky). */
int broker_log_flush(broker_log_t *log);
/* True when a flush has work: appended data not yet synced, or a rolled
 * segment whose fsync is still owed (a roll never fsyncs on the loop
 * thread). The server's housekeeping should then queue broker_log_flush on
 * a worker even when no acks=all request waits, so the recovery point keeps
 * up with rolls. Loop thread. */
bool broker_log_needs_flush(const broker_log_t *log);

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

/* ListOffsets by timestamp, as Kafka: the first record whose timestamp is
 * >= ts, with that timestamp in *ts_out; -1 (with *ts_out -1) when none.
 * Inside a compressed batch (not decompressed here) the answer is the
 * batch's first offset and max timestamp. */
int64_t broker_log_offset_for_time(broker_log_t *log, int64_t ts, int64_t *ts_out);

/* Applies retention (size and time) and time-based rolling, and forgets
 * idempotent producers idle for BROKER_PRODUCER_EXPIRE_MS. Deletes whole
 * segments only, never the active one; advances the log start offset.
 * Returns the number of segments deleted. */
int broker_log_housekeep(broker_log_t *log, int64_t now_ms);

/* DeleteRecords: moves the log start offset up to offset (<= HW; a lower or
 * equal offset changes nothing), durably (log-start-offset, fsynced, on the
 * calling thread: an admin operation), then deletes the segments wholly
 * below it. *low = the log start offset afterwards. Errors: CORE_ERR_RANGE
 * (offset < 0 or > HW; -> OFFSET_OUT_OF_RANGE), CORE_ERR_IO. */
int broker_log_delete_records(broker_log_t *log, int64_t offset, int64_t *low);

/* Deletes every file of the log (topic deletion). The log must be closed by this call. */
int broker_log_destroy(broker_log_t *log);

/* Leader epoch bookkeeping for replication: (epoch, start offset) pairs,
 * persisted in leader-epoch-checkpoint. */
int broker_log_set_leader_epoch(broker_log_t *log, int32_t epoch);
int32_t broker_log_leader_epoch(const broker_log_t *log);

#endif
