/*
 * eddy/job.h — the public ABI between Eddy's runtime and a job shared object.
 *
 * This is the ONLY header a job sees. A job is a .so that exports one
 * descriptor, `eddy_job_v1` (EDDY_JOB_SYMBOL), of type eddy_job_desc_t. The
 * runtime dlopen()s the file with RTLD_NOW|RTLD_LOCAL in a worker's task
 * process, checks desc->abi_version == EDDY_JOB_ABI_VERSION, calls init once
 * per task, process for each chunk of input records, batch_end once at the
 * end of the task, then destroy.
 *
 * The job never links against Eddy: every host service is reached through the
 * function table in ctx->api, wrapped by the static inline eddy_* functions
 * below. A job .so therefore has no undefined eddy_* symbols and builds out of
 * tree with only this header (`pkg-config --cflags eddy-job`).
 *
 * Ownership and lifetime:
 *   - eddy_record_t fields (topic, key, value, headers) are BORROWED: they
 *     point into the Kafka client's fetched buffers and are valid only during
 *     the process() call that received them. Copy what you keep.
 *   - Everything a job passes to the host (emit, emit_event, state_put,
 *     counter names) is copied by the host before the call returns.
 *   - A value returned by eddy_state_get is valid until the next
 *     eddy_state_put of the same key or the end of the task.
 *
 * Semantics (see docs/ARCHITECTURE.md, "Runtime"):
 *   - Events (eddy_emit_event), keyed state and counters are buffered and
 *     committed with the batch in one atomic store write: exactly once.
 *     An event's id is derived from (job, source topic, partition, offset,
 *     emit index), so a re-run batch re-creates identical ids.
 *   - Records emitted to topics (eddy_emit) are produced by the task before it
 *     reports success: at-least-once (a retried task produces them again).
 *   - Keyed state is scoped to the input partition being processed (like a
 *     Kafka Streams state store). Jobs that use state must set
 *     EDDY_JOB_F_STATEFUL so the runtime never splits a partition's range
 *     across concurrent tasks.
 *   - Jobs must be deterministic given their input; take no wall-clock or
 *     random values into outputs (use record timestamps).
 *
 * Threads: the runtime calls a job instance from one thread at a time; each
 * task runs in its own process, so globals are per task (but keep state in ctx).
 *
 * ABI rules: fields are only ever appended; a breaking change bumps
 * EDDY_JOB_ABI_VERSION and the symbol name (eddy_job_v2).
 */
#ifndef EDDY_JOB_H
#define EDDY_JOB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDDY_JOB_ABI_VERSION 1
#define EDDY_JOB_SYMBOL "eddy_job_v1"

/* Descriptor flags. */
#define EDDY_JOB_F_STATEFUL 0x1u /* uses eddy_state_*: never split a partition's range */

/* Log levels for eddy_log. */
#define EDDY_LOG_DEBUG 0
#define EDDY_LOG_INFO 1
#define EDDY_LOG_WARN 2
#define EDDY_LOG_ERROR 3

typedef struct eddy_header {
    const char *key; /* borrowed, NUL-terminated */
    const void *value;
    size_t value_len;
} eddy_header_t;

/* One input record. Every pointer is borrowed and valid during process() only. */
typedef struct eddy_record {
    const char *topic; /* NUL-terminated */
    int32_t partition;
    int64_t offset;
    int64_t timestamp; /* ms since the epoch (producer or log-append time) */
    const void *key;   /* NULL for a null key */
    size_t key_len;
    const void *value; /* NULL for a null value (tombstone) */
    size_t value_len;
    const eddy_header_t *headers;
    size_t header_count;
} eddy_record_t;

/* A PredictionIO-style event (see the event store). All strings are copied by
 * the host. properties_json must be a JSON object or NULL (= {}). */
typedef struct eddy_event {
    const char *event;              /* e.g. "rate", "$set" */
    const char *entity_type;        /* e.g. "user" */
    const char *entity_id;
    const char *target_entity_type; /* optional (NULL) */
    const char *target_entity_id;   /* optional (NULL) */
    const char *properties_json;    /* optional (NULL) */
    int64_t event_time_ms;          /* ms since the epoch; use the record timestamp */
} eddy_event_t;

typedef struct eddy_ctx eddy_ctx_t;

/* The host's function table. Returns: 0 on success, a negative value on
 * failure (bad argument, output limit reached); a job should return that
 * failure from process() so the task fails visibly. */
typedef struct eddy_host_api {
    uint32_t abi_version; /* EDDY_JOB_ABI_VERSION of the host */
    uint32_t size;        /* sizeof(eddy_host_api_t) of the host */
    int (*emit)(eddy_ctx_t *ctx, const char *topic, const void *key, size_t key_len,
                const void *value, size_t value_len);
    int (*emit_event)(eddy_ctx_t *ctx, const eddy_record_t *source, const eddy_event_t *ev);
    int (*counter_add)(eddy_ctx_t *ctx, const char *name, int64_t delta);
    void (*vlog)(eddy_ctx_t *ctx, int level, const char *fmt, va_list ap);
    int (*state_get)(eddy_ctx_t *ctx, const void *key, size_t key_len, const void **value,
                     size_t *value_len);
    int (*state_put)(eddy_ctx_t *ctx, const void *key, size_t key_len, const void *value,
                     size_t value_len);
    int (*state_del)(eddy_ctx_t *ctx, const void *key, size_t key_len);
    /* Appended in ABI 1 (check api->size, see eddy_emit_with_headers): emit
     * with record headers (e.g. the reason a dead-letter record was rejected). */
    int (*emit_headers)(eddy_ctx_t *ctx, const char *topic, const void *key, size_t key_len,
                        const void *value, size_t value_len, const eddy_header_t *headers,
                        size_t header_count);
    /* Appended in ABI 1 (see eddy_emit_event_keyed): an event whose id derives
     * from (job, id_key) instead of the source record's position. */
    int (*emit_event_keyed)(eddy_ctx_t *ctx, const void *id_key, size_t id_key_len,
                            const eddy_event_t *ev);
} eddy_host_api_t;

/* The context handed to every callback. The host owns it; a job may use
 * `user` for its private data (set it in init, free it in destroy). */
struct eddy_ctx {
    const eddy_host_api_t *api;
    void *user;
    const char *job_name;     /* the name it was submitted under */
    int64_t batch_id;         /* the micro-batch this task belongs to */
    const char *topic;        /* the input partition of this task */
    int32_t partition;
    int64_t start_offset;     /* the task's range [start_offset, end_offset) */
    int64_t end_offset;
};

typedef struct eddy_job_desc {
    uint32_t abi_version; /* must be EDDY_JOB_ABI_VERSION */
    uint32_t flags;       /* EDDY_JOB_F_* */
    const char *name;     /* a short identifier, for logs */
    /* Called once per task before any process(). config_json is the --config
     * given at submit ("{}" when none). Return 0, or nonzero to fail the task. */
    int (*init)(eddy_ctx_t *ctx, const char *config_json);
    /* Called for each chunk of records, in offset order. Return 0, or nonzero
     * to fail the task (it is retried, then the job pauses). */
    int (*process)(eddy_ctx_t *ctx, const eddy_record_t *records, size_t n);
    /* Optional (NULL): once per task after the last process(). */
    int (*batch_end)(eddy_ctx_t *ctx);
    /* Optional (NULL): release what init allocated. */
    void (*destroy)(eddy_ctx_t *ctx);
} eddy_job_desc_t;

/* Declares the exported descriptor: EDDY_JOB(.name = "x", .process = f, ...) */
#define EDDY_JOB(...)                                                                    \
    __attribute__((visibility("default"))) const eddy_job_desc_t eddy_job_v1 = {        \
        .abi_version = EDDY_JOB_ABI_VERSION, __VA_ARGS__}

/* ---- host services (thin wrappers over ctx->api) ------------------------- */

/* Produces a record to a topic (at-least-once). key may be NULL. */
static inline int eddy_emit(eddy_ctx_t *ctx, const char *topic, const void *key, size_t key_len,
                            const void *value, size_t value_len)
{
    return ctx->api->emit(ctx, topic, key, key_len, value, value_len);
}

/* Produces a record with headers (keys NUL-terminated, values any bytes).
 * Returns -1 on a host too old to have it (api->size says which fields exist). */
static inline int eddy_emit_with_headers(eddy_ctx_t *ctx, const char *topic, const void *key,
                                         size_t key_len, const void *value, size_t value_len,
                                         const eddy_header_t *headers, size_t header_count)
{
    if (ctx->api->size < offsetof(eddy_host_api_t, emit_headers) + sizeof ctx->api->emit_headers)
        return -1;
    return ctx->api->emit_headers(ctx, topic, key, key_len, value, value_len, headers,
                                  header_count);
}

/* Buffers an event for the store (exactly once). source is the input record
 * the event derives from (its offset and the emit index form the event id);
 * NULL is allowed from batch_end (the id then derives from the task range). */
static inline int eddy_emit_event(eddy_ctx_t *ctx, const eddy_record_t *source,
                                  const eddy_event_t *ev)
{
    return ctx->api->emit_event(ctx, source, ev);
}

/* Like eddy_emit_event, but the event id derives from (job, id_key) rather
 * than from the source record's topic, partition and offset. Use it when the
 * input may carry the same logical record twice at different offsets (an
 * upstream job's topic output is at-least-once): give the record's identity
 * from its origin (e.g. the raw line's coordinates) as id_key, and the
 * duplicates collapse in the idempotent store, so the pipeline's effect stays
 * exactly once. Returns -1 on a host too old to have it. */
static inline int eddy_emit_event_keyed(eddy_ctx_t *ctx, const void *id_key, size_t id_key_len,
                                        const eddy_event_t *ev)
{
    if (ctx->api->size <
        offsetof(eddy_host_api_t, emit_event_keyed) + sizeof ctx->api->emit_event_keyed)
        return -1;
    return ctx->api->emit_event_keyed(ctx, id_key, id_key_len, ev);
}

/* Adds delta to a per-job counter (exactly once; shown at the driver's /metrics). */
static inline int eddy_counter_add(eddy_ctx_t *ctx, const char *name, int64_t delta)
{
    return ctx->api->counter_add(ctx, name, delta);
}

/* Logs one line to the worker's log, tagged with the job and task. */
static inline __attribute__((format(printf, 3, 4))) void eddy_log(eddy_ctx_t *ctx, int level,
                                                                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx->api->vlog(ctx, level, fmt, ap);
    va_end(ap);
}

/* Keyed state of the current input partition as of this batch's start plus
 * this task's own puts. Returns 1 and sets *value and *value_len when found, 0
 * when absent, negative on error. */
static inline int eddy_state_get(eddy_ctx_t *ctx, const void *key, size_t key_len,
                                 const void **value, size_t *value_len)
{
    return ctx->api->state_get(ctx, key, key_len, value, value_len);
}

/* Sets (or with eddy_state_del removes) a key; committed with the batch. */
static inline int eddy_state_put(eddy_ctx_t *ctx, const void *key, size_t key_len,
                                 const void *value, size_t value_len)
{
    return ctx->api->state_put(ctx, key, key_len, value, value_len);
}
static inline int eddy_state_del(eddy_ctx_t *ctx, const void *key, size_t key_len)
{
    return ctx->api->state_del(ctx, key, key_len);
}

#ifdef __cplusplus
}
#endif

#endif
