/*
 * rt_plan — micro-batch planning and the driver's write-ahead files.
 *
 * A plan fixes a batch's input: for every known input partition the range
 * [start, end) of offsets, plus the list of tasks (non-empty sub-ranges) the
 * batch is split into. Once written, a plan never changes: a re-run of the
 * batch after a crash uses exactly these ranges and tasks, which is what
 * makes derived event ids reproducible (rt_driver.h, the protocol).
 *
 * Planning (rt_plan_make) is a pure function, unit-tested on its own:
 *   start(p)  = previous plan's end(p); else the job's initial offset for p
 *               (resolved once from --starting-offsets and saved in
 *               DIR/jobs/NAME/start); else the low watermark (partitions that
 *               appear later start at earliest, as in Spark).
 *   If start(p) < low(p) the records were deleted by retention: start moves
 *   to low(p) and the plan counts the skipped records (data_loss).
 *   backlog(p) = high(p) - start(p); when the total exceeds max_records the
 *   cap is split across partitions in proportion to their backlog (Spark's
 *   maxOffsetsPerTrigger), so a batch never takes more than the cap.
 *   A range longer than task_max records becomes ceil(len/task_max) tasks of
 *   equal size, unless the job is stateful (keyed state is per partition, so
 *   one partition's range must run in one task).
 *
 * Files (DIR/jobs/NAME/plans/<batch>, commits/<batch>, start): one framed
 * record each, "eddy-rt v1 len=<n> crc32c=<hex>\n" followed by n bytes of
 * JSON. They are written with rt_file_write_atomic (temp file, fsync,
 * rename, fsync of the directory), so a reader sees the old state or the
 * whole new file; the CRC catches a damaged file, which is reported as
 * CORE_ERR_CORRUPT, never silently skipped.
 *
 * Ownership: rt_plan_t owns its arrays and topic strings; rt_plan_free.
 * Threads: none shared; callers serialise per job.
 */
#ifndef EDDY_RT_PLAN_H
#define EDDY_RT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest topic name Kafka allows. */
#define RT_TOPIC_MAX 249
/* Most partitions one plan may hold (abuse guard for files and brokers). */
#define RT_PLAN_MAX_RANGES 65536
/* Largest plan/commit file accepted when reading. */
#define RT_FILE_MAX (64u << 20)

typedef struct rt_range {
    char *topic; /* owned */
    int32_t partition;
    int64_t start; /* first offset */
    int64_t end;   /* exclusive */
} rt_range_t;

typedef struct rt_plan {
    int64_t batch;
    int64_t planned_ms; /* wall clock, informational */
    int64_t data_loss;  /* records skipped because retention deleted them */
    rt_range_t *ranges; /* one per known partition (start == end when idle) */
    int nranges;
    rt_range_t *tasks; /* non-empty sub-ranges, in plan order */
    int ntasks;
} rt_plan_t;

/* Current offsets of one partition as the broker reports them. */
typedef struct rt_watermark {
    const char *topic; /* borrowed */
    int32_t partition;
    int64_t low;  /* first available offset */
    int64_t high; /* next offset to be written */
} rt_watermark_t;

/* Planning inputs besides the watermarks. */
typedef struct rt_plan_params {
    int64_t batch;
    int64_t max_records; /* per batch, <= 0 = unlimited */
    int64_t task_max;    /* split ranges longer than this, <= 0 = never */
    bool stateful;       /* never split a partition's range */
    const rt_plan_t *prev;     /* the previous batch's plan, or NULL */
    const rt_plan_t *initial;  /* initial offsets (ranges' start), or NULL */
} rt_plan_params_t;

/* Computes the plan for params->batch from the watermarks. Fills *out
 * (caller frees with rt_plan_free). Partitions in prev but missing from wm
 * keep their end offset (a broker that briefly omits a partition never
 * rewinds a job). Returns 0 or CORE_ERR_INVAL/CORE_ERR_TOO_LARGE. */
int rt_plan_make(const rt_plan_params_t *params, const rt_watermark_t *wm, int nwm,
                 rt_plan_t *out);

/* Sum of task lengths (records the batch will read). */
int64_t rt_plan_records(const rt_plan_t *plan);
/* Looks up the range of (topic, partition); NULL when absent. */
const rt_range_t *rt_plan_find(const rt_plan_t *plan, const char *topic, int32_t partition);
void rt_plan_free(rt_plan_t *plan);

/* JSON text of a plan (caller frees with free()) and back. */
char *rt_plan_to_json(const rt_plan_t *plan);
int rt_plan_from_json(const char *json, size_t len, rt_plan_t *out, char *errstr,
                      size_t errstr_size);

/* ---- durable files ---------------------------------------------------- */

/* Writes dir/name atomically: dir/.name.tmp, fsync, rename, fsync(dir).
 * Returns 0 or an errno value with a message. */
int rt_file_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                         char *errstr, size_t errstr_size);

/* Frames payload (header line + payload) and writes it with rt_file_write_atomic. */
int rt_record_write(const char *dir, const char *name, const char *payload, char *errstr,
                    size_t errstr_size);
/* Reads a framed record; *payload is NUL-terminated, caller frees. Returns 0,
 * ENOENT, CORE_ERR_CORRUPT (bad header, length or CRC) or an errno value. */
int rt_record_read(const char *dir, const char *name, char **payload, size_t *len,
                   char *errstr, size_t errstr_size);

/* Largest batch number named in dir (files named by decimal batch ids).
 * Returns 0 and *batch, or ENOENT when there is none. */
int rt_dir_last_batch(const char *dir, int64_t *batch);
/* Removes numbered files in dir below `below` (retention of old batches). */
void rt_dir_purge_below(const char *dir, int64_t below);

/* mkdir -p; returns 0 or errno. */
int rt_mkdirs(const char *path, int mode);

#endif
