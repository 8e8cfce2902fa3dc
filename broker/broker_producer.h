/*
 * broker_producer — idempotent-producer state of one partition: for each
 * producer id that wrote to it, the producer epoch and the sequence ranges
 * and offsets of its last BROKER_PRODUCER_MAX_BATCHES batches. The partition
 * log (broker_log) owns one table, checks every batch of an append against
 * it before writing, and records every batch it wrote.
 *
 * The rules (Kafka's, kafka-protocol.md §5.16), for a batch of producer P,
 * epoch E, sequences [first, last] (last = first + lastOffsetDelta, wrapping
 * from INT32_MAX to 0):
 *   - producerId -1: not idempotent, nothing is checked or kept;
 *   - P unknown here: first must be 0 (else UNKNOWN_PRODUCER_ID: the state
 *     was lost, e.g. its batches fell to retention; clients then reset);
 *   - E older than P's epoch: INVALID_PRODUCER_EPOCH (a fenced producer);
 *   - E newer: first must be 0 (else OUT_OF_ORDER_SEQUENCE_NUMBER);
 *   - same E, [first, last] equal to one of the kept batches: a duplicate
 *     (a retry of a batch already written): nothing is written and the
 *     first copy's offsets are answered, with no error;
 *   - same E, first == the last kept batch's last + 1: appended;
 *   - anything else: OUT_OF_ORDER_SEQUENCE_NUMBER.
 * Five batches are kept because clients never have more in flight per
 * partition with idempotence on (max.in.flight <= 5), so every retry a
 * client can send is still recognised.
 *
 * Persistence (the design choice; see broker_log.h "Producer state"): the
 * table is derived data. Every batch in the log carries producerId,
 * producerEpoch and baseSequence, so the table is rebuilt by replaying the
 * batch headers in log order (broker_producers_apply). A snapshot
 * (broker_producers_encode: the table as of a log offset, CRC-32C
 * protected) is written at clean shutdown only, to spare the replay of
 * the whole log then; after a crash the log itself is the truth.
 *
 * Memory is bounded: producers that wrote nothing for
 * BROKER_PRODUCER_EXPIRE_MS are dropped (Kafka's producer.id.expiration.ms
 * default), and past BROKER_PRODUCER_MAX_IDS the least recently used is.
 *
 * Threads: none; the owning log serialises access (loop thread).
 * Ownership: the table owns its entries; batches are passed by value.
 */
#ifndef EDDY_BROKER_PRODUCER_H
#define EDDY_BROKER_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include "core/core_buf.h"

/* Batches remembered per producer and partition (clients keep <= 5 in flight). */
#define BROKER_PRODUCER_MAX_BATCHES 5
/* A producer idle for this long is forgotten (Kafka: producer.id.expiration.ms, 1 day). */
#define BROKER_PRODUCER_EXPIRE_MS (24LL * 3600 * 1000)
/* Producers kept per partition: each InitProducerId makes a new id, so a
 * client restarting in a loop must not grow the table without bound
 * (~250 bytes each); the least recently used one goes first. Also caps
 * what a damaged snapshot can make us allocate. */
#define BROKER_PRODUCER_MAX_IDS 100000

typedef enum broker_producer_verdict {
    BROKER_PRODUCER_OK = 0,       /* write it (in sequence, or not idempotent) */
    BROKER_PRODUCER_DUPLICATE,    /* already written: answer the first copy's offsets */
    BROKER_PRODUCER_OUT_OF_ORDER, /* OUT_OF_ORDER_SEQUENCE_NUMBER (45) */
    BROKER_PRODUCER_FENCED,       /* INVALID_PRODUCER_EPOCH (47) */
    BROKER_PRODUCER_UNKNOWN,      /* UNKNOWN_PRODUCER_ID (59) */
    BROKER_PRODUCER_INVALID,      /* producer fields that cannot be right: INVALID_RECORD (87) */
    BROKER_PRODUCER_NVERDICTS
} broker_producer_verdict_t;

/* The producer view of one batch. */
typedef struct broker_producer_batch {
    int64_t producer_id; /* -1 = not idempotent */
    int16_t epoch;
    int32_t first_seq;
    int32_t last_seq;
    int64_t base_offset; /* offsets the log gave it (0 before the append) */
    int64_t last_offset;
    int64_t ts_ms;       /* wall clock of the append (expiry) */
} broker_producer_batch_t;

/* Reads the producer fields of the RecordBatch v2 header at p (at least 61
 * bytes; the caller validated the batch). Offsets and ts are set to 0. */
void broker_producer_batch_read(const uint8_t *p, broker_producer_batch_t *b);

typedef struct broker_producers broker_producers_t;

broker_producers_t *broker_producers_new(void);
void broker_producers_free(broker_producers_t *ps);
size_t broker_producers_count(const broker_producers_t *ps);

/* Verdict for batch b (see the rules above). prev: an earlier batch of the
 * same append with the same producer id (not yet in the table), or NULL;
 * then b is checked against prev instead of the table. On DUPLICATE *dup is
 * the kept batch b repeats. Pure. */
broker_producer_verdict_t broker_producers_check(const broker_producers_t *ps,
                                                 const broker_producer_batch_t *b,
                                                 const broker_producer_batch_t *prev,
                                                 broker_producer_batch_t *dup);

/* Records a batch that is in the log (after an append, or replaying the log
 * at open): a newer epoch resets the producer's batches; an older epoch is
 * ignored; the oldest of more than BROKER_PRODUCER_MAX_BATCHES is dropped.
 * Batches with producer id -1 are ignored. May evict the least recently
 * used producer (BROKER_PRODUCER_MAX_IDS). */
void broker_producers_apply(broker_producers_t *ps, const broker_producer_batch_t *b);

/* Drops producers whose last batch is older than now_ms - max_age_ms.
 * Returns how many were dropped. */
size_t broker_producers_expire(broker_producers_t *ps, int64_t now_ms, int64_t max_age_ms);

/* Snapshot, all integers big-endian:
 *   u32 magic "EPS1" | i64 offset (the table reflects every batch below it)
 *   | i32 count | count x { i64 producerId | i16 epoch | i64 ts | i8 n (1..5)
 *   | n x { i32 first_seq | i32 last_seq | i64 base_offset | i64 last_offset } }
 *   | u32 CRC-32C of everything before it.
 * Producers are written least recently used first, so decoding keeps the
 * eviction order. */
void broker_producers_encode(const broker_producers_t *ps, int64_t offset, core_buf_t *out);
/* Replaces the content of ps with the snapshot in p[0..len) and sets
 * *offset. Returns CORE_OK, CORE_ERR_CRC, CORE_ERR_MALFORMED (bad magic,
 * out-of-range values, trailing bytes), CORE_ERR_TRUNCATED or
 * CORE_ERR_TOO_LARGE (more than BROKER_PRODUCER_MAX_IDS); on error ps is
 * left empty. */
int broker_producers_decode(broker_producers_t *ps, const uint8_t *p, size_t len, int64_t *offset);

#endif
