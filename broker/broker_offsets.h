/*
 * broker_offsets — committed offsets made durable in the broker's own log,
 * the way Kafka keeps them: an internal single-partition log
 * `__consumer_offsets` (DATA/groups/__consumer_offsets-0, a broker_log) whose
 * records use Kafka's key/value layout, so Burrow-style readers can decode it.
 *
 * Record layout (compat-apis.md C.1), one RecordBatch v2 per OffsetCommit
 * request (so a multi-partition commit is atomic), one record per partition:
 *   key   = int16 version 1 | string group | string topic | int32 partition
 *   value = int16 version 3 | int64 offset | int32 leader_epoch |
 *           string metadata | int64 commit_timestamp_ms
 *   value = null (tombstone) when an offset is deleted (expiry, topic deletion)
 * Replay also accepts value versions 0/1 (offset, metadata, commit ts[, expire
 * ts]) and skips key version 2 (group metadata), as Kafka's own readers do.
 *
 * Durability and visibility: broker_offsets_append writes the batch and
 * queues its entries as *pending*; the caller makes the commit's response
 * wait for the log's flush (group commit: one fsync covers every commit
 * appended before it started — see broker.h). broker_offsets_apply moves
 * pending entries into the coordinator's memory only once
 * broker_log_flushed() has passed them, so OffsetFetch never returns an
 * offset a crash could take back.
 *
 * Loading: broker_offsets_open puts the coordinator in loading mode (clients
 * get COORDINATOR_LOAD_IN_PROGRESS); broker_offsets_load replays the log in
 * steps bounded by bytes, so the loop keeps serving produce/fetch meanwhile,
 * and leaves loading mode when the end is reached. Replay is idempotent:
 * latest record per key wins, tombstones delete.
 *
 * Compaction (keep the latest record per key, drop tombstoned keys): the
 * live set is written to DATA/groups/__consumer_offsets-0.compact, flushed and
 * closed; then the live log is renamed to .old, .compact renamed into place,
 * the directory fsynced, .old deleted. At open, a leftover .compact is
 * deleted (unfinished), and a leftover .old is restored if the live log is
 * missing (crash between the renames) or deleted otherwise. Compaction runs
 * after loading and from broker_offsets_maybe_compact (timer) when dead
 * records outnumber live ones, and never while entries are pending.
 *
 * Threads: loop thread only (the log's flush may run on a worker, see
 * broker_log.h). Ownership: the coordinator is borrowed and must outlive this.
 */
#ifndef EDDY_BROKER_OFFSETS_H
#define EDDY_BROKER_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker_cg.h"
#include "broker/broker_log.h"

typedef struct broker_offsets broker_offsets_t;

#define BROKER_OFFSETS_TOPIC "__consumer_offsets"
/* Compaction triggers once the log holds this many records beyond twice the live keys. */
#define BROKER_OFFSETS_COMPACT_SLACK 10000
/* Bytes read per pread while replaying. */
#define BROKER_OFFSETS_READ_CHUNK (1 << 20)

/* Called for every entry made visible (applied), and for tombstones with off == NULL. */
typedef void broker_offsets_applied_fn(void *arg, const char *group, const char *topic,
                                       int32_t partition, const broker_cg_offset_t *off);

/* Opens (creating) the offsets log under data_dir/groups and sets cg loading.
 * Returns 0 or an error with a message. */
int broker_offsets_open(const char *data_dir, broker_cg_t *cg, broker_offsets_t **op,
                        char *errstr, size_t errstr_size);
/* Flushes and closes the log (pending entries are applied if flushed). */
void broker_offsets_close(broker_offsets_t *o);

void broker_offsets_set_hook(broker_offsets_t *o, broker_offsets_applied_fn *fn, void *arg);

/* Replays up to about max_bytes of the log into the coordinator. *done is
 * set once the end was reached (loading mode is then off, and compaction
 * ran if worthwhile). Returns 0 or CORE_ERR_CORRUPT / an I/O error (the
 * caller should refuse to serve groups: the coordinator stays loading). */
int broker_offsets_load(broker_offsets_t *o, int64_t max_bytes, bool *done, char *errstr,
                        size_t errstr_size);

/* Appends the accepted partitions (error_code 0) of a checked commit as one
 * batch stamped with commit time now_wall (or the v1 per-partition
 * timestamp). *last_offset = the log offset the commit needs flushed
 * (flushed > *last_offset), or -1 when nothing was accepted. Errors: the
 * log's (CORE_ERR_IO is sticky -> KAFKA_STORAGE_ERROR for every partition). */
int broker_offsets_append(broker_offsets_t *o, const broker_cg_commit_req_t *req,
                          int64_t now_wall, int64_t *last_offset);
/* Appends a tombstone for (group, topic, partition). */
int broker_offsets_append_delete(broker_offsets_t *o, const char *group, const char *topic,
                                 int32_t partition, int64_t *last_offset);

/* Applies pending entries that the flush has made durable. Returns how many. */
int broker_offsets_apply(broker_offsets_t *o);
/* Entries appended but not yet applied. */
int broker_offsets_pending(const broker_offsets_t *o);

/* Offsets retention: expires the committed offsets of empty groups (see
 * broker_cg_expire_offsets) and writes their tombstones. Returns how many. */
int broker_offsets_expire(broker_offsets_t *o, int64_t now_wall);

/* Compacts when worthwhile (or always with force) and nothing is pending. */
int broker_offsets_maybe_compact(broker_offsets_t *o, bool force, char *errstr, size_t errstr_size);

/* The underlying log (for group commit: add it to the broker's dirty set). */
broker_log_t *broker_offsets_log(broker_offsets_t *o);

/* Decodes one __consumer_offsets record (key, value; value.len -1 =
 * tombstone). Returns 0 and sets *is_commit (false for other key versions),
 * or CORE_ERR_MALFORMED. Views point into key/value. For dump tools too. */
typedef struct broker_offsets_record {
    bool is_commit;
    core_slice_t group, topic;
    int32_t partition;
    bool tombstone;
    int64_t offset;
    int32_t leader_epoch;
    core_slice_t metadata;
    int64_t commit_ts;
    int64_t expire_ts;
} broker_offsets_record_t;
int broker_offsets_record_decode(core_slice_t key, core_slice_t value, broker_offsets_record_t *r);

#endif
