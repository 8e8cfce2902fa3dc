/*
 * rt_task — runs one task (one offset range of one partition) in the
 * calling process: the code a worker's per-task child executes.
 *
 * Steps: load the job (rt_job_load), init(config), read exactly
 * [start, end) of topic/partition with librdkafka's simple consumer
 * (rd_kafka_consume_start at `start`, consume_batch until an offset >= end
 * or partition EOF at or beyond end: control records and compacted gaps may
 * leave holes), hand each fetched chunk to process() as eddy_record_t views
 * into the librdkafka messages (no copies: DESIGN-NOTES §3; the messages are
 * destroyed after process returns), then batch_end, flush topic outputs, and
 * destroy. Outputs land in an rt_result_t.
 *
 * Host API semantics live here: event ids (rt_event_id over job uid, topic,
 * partition, source offset, per-source emit index), keyed state (local cache
 * in front of env->fetch, which asks the driver for the value as of the
 * batch start; the final values of touched keys go into the result),
 * counters (summed per task), topic emits (an idempotence-less producer,
 * flushed before success: at-least-once).
 *
 * Crash reporting: before each process() call the chunk's first and last
 * offsets are written to env->progress (shared memory with the worker), so
 * a worker whose child died from a signal can name the records involved.
 *
 * Threads: single-threaded (plus librdkafka's own threads). Not re-entrant.
 */
#ifndef EDDY_RT_TASK_H
#define EDDY_RT_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/rt_proto.h"

/* Largest total size of a task's buffered outputs (events + state). */
#define RT_TASK_MAX_OUTPUT ((size_t)1 << 30)
/* Records handed to one process() call at most. */
#define RT_TASK_CHUNK 4096

/* Fetches a state value as of the batch start. Sets *found; on found, *value
 * is a malloc'd copy the task takes over. Returns 0 or an error. */
typedef int (*rt_state_fetch_fn)(void *opaque, const rt_task_t *t, const void *key,
                                 size_t key_len, uint8_t **value, size_t *value_len,
                                 int *found);

typedef struct rt_task_env {
    const char *job_path;      /* the job .so (already verified by hash) */
    rt_state_fetch_fn fetch;   /* NULL: state starts empty */
    void *fetch_opaque;
    volatile int64_t *progress; /* [0] first, [1] last offset of the chunk in process() */
    int64_t timeout_ms;         /* whole-task deadline (fetch stalls) */
} rt_task_env_t;

/* Runs the task. Always fills *res (identity, counts, outputs); on failure
 * res->status != 0 and res->error says why. Returns res->status. */
int rt_task_run(const rt_task_t *t, const rt_task_env_t *env, rt_result_t *res);

#endif
