/*
 * rt_proto — the driver <-> worker task protocol (HTTP bodies, binary).
 *
 * A task (driver -> worker) names one offset range of one input partition of
 * one batch of one job, plus what is needed to run it (the job binary's
 * SHA-256, its config, the brokers). A result (worker -> driver) carries the
 * task's identity, its outcome and the outputs the driver commits with the
 * batch: events (with ids already derived), keyed-state updates and counter
 * deltas. Topic outputs are not in the result: the task produces them itself
 * before reporting success (at-least-once).
 *
 * Encoding: core_buf writers; every field is length-prefixed, counts are
 * checked against caps and against the bytes left (core_rd_array), and the
 * decoder rejects trailing bytes. Layout:
 *   task   := magic u32 'EDT1' | job str | job_uid str | sha256 str | batch i64 |
 *             index i32 | attempt i32 | topic str | partition i32 | start i64 |
 *             end i64 | flags u32 | brokers str | config bytes
 *   result := magic u32 'EDR1' | job str | batch i64 | index i32 | attempt i32 |
 *             status i32 | error nbytes | records i64 | emitted i64 | duration_us i64 |
 *             [event]* | [state]* | [counter]*      ([x]* = i32 count then items)
 *   event  := id, event, entity_type, entity_id bytes | target_type, target_id,
 *             properties nbytes | event_time i64
 *   state  := key bytes | value nbytes (null = delete)
 *   counter:= name bytes | delta i64
 * (bytes = int32 length; nbytes may be -1 = null.)
 *
 * Ownership: decoded structs own heap copies (the result may outlive the
 * request buffer); free with rt_task_fini / rt_result_fini.
 */
#ifndef EDDY_RT_PROTO_H
#define EDDY_RT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "core/core_buf.h"

/* Caps on decoded counts: a result's outputs are bounded by the task size
 * (a cap on records per batch) but a hostile body must not make us allocate. */
#define RT_PROTO_MAX_ITEMS (64 * 1024 * 1024)
#define RT_PROTO_MAX_FIELD (16u << 20)

typedef struct rt_task {
    char *job, *job_uid, *sha256;
    int64_t batch;
    int32_t index, attempt;
    char *topic;
    int32_t partition;
    int64_t start, end;
    uint32_t flags; /* EDDY_JOB_F_* of the job */
    char *brokers;
    char *config;
} rt_task_t;

typedef struct rt_event_out {
    char *id, *event, *entity_type, *entity_id;
    char *target_type, *target_id, *properties; /* NULL when absent */
    int64_t event_time;
} rt_event_out_t;

typedef struct rt_state_out {
    uint8_t *key;
    size_t key_len;
    uint8_t *value; /* NULL = delete */
    size_t value_len;
} rt_state_out_t;

typedef struct rt_counter_out {
    char *name;
    int64_t delta;
} rt_counter_out_t;

typedef struct rt_result {
    char *job;
    int64_t batch;
    int32_t index, attempt;
    int32_t status; /* 0 = success; otherwise a core_err_t or RT_TASK_CRASHED */
    char *error;    /* NULL on success */
    int64_t records, emitted, duration_us;
    rt_event_out_t *events;
    int nevents, events_cap;
    rt_state_out_t *state;
    int nstate, state_cap;
    rt_counter_out_t *counters;
    int ncounters, counters_cap;
} rt_result_t;

void rt_task_encode(const rt_task_t *t, core_buf_t *b);
int rt_task_decode(const void *p, size_t len, rt_task_t *t);
void rt_task_fini(rt_task_t *t);

void rt_result_encode(const rt_result_t *r, core_buf_t *b);
int rt_result_decode(const void *p, size_t len, rt_result_t *r);
void rt_result_fini(rt_result_t *r);

/* Appenders used by the task runtime (take copies). */
rt_event_out_t *rt_result_add_event(rt_result_t *r);
void rt_result_set_state(rt_result_t *r, const void *key, size_t key_len, const void *value,
                         size_t value_len, int del);

/* The deterministic event id: the first 128 bits of
 * SHA-256("eddy-event\0" job_uid \0 topic \0 partition \0 offset \0 index)
 * in hex (32 chars + NUL). offset < 0 marks an event emitted from batch_end
 * (then partition/offset/index are the task's range end and emit index). */
void rt_event_id(const char *job_uid, const char *topic, int32_t partition, int64_t offset,
                 int64_t index, char out[33]);
/* The id of an event emitted with eddy_emit_event_keyed: 32 hex chars of
 * SHA-256 over ("eddy-event-key", job uid, key). Stable across re-runs. */
void rt_event_key_id(const char *job_uid, const void *key, size_t key_len, char out[33]);

/* SHA-256 of a buffer as 64 hex chars + NUL. */
void rt_sha256_hex(const void *p, size_t len, char out[65]);

#endif
