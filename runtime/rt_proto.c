#include "runtime/rt_proto.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_err.h"

#define RT_TASK_MAGIC 0x45445431u   /* "EDT1" */
#define RT_RESULT_MAGIC 0x45445231u /* "EDR1" */

static void wr_s(core_buf_t *b, const char *s)
{
    if (s)
        core_wr_bytes(b, s, (int64_t)strlen(s));
    else
        core_wr_bytes(b, NULL, -1);
}

/* Reads an int32-length string into a heap copy; nullable allows -1 -> NULL. */
static char *rd_s(core_rd_t *rd, int nullable)
{
    core_slice_t s = nullable ? core_rd_nbytes(rd) : core_rd_bytes(rd);
    if (rd->err || s.len < 0)
        return NULL;
    if ((uint64_t)s.len > RT_PROTO_MAX_FIELD) {
        core_rd_fail(rd, CORE_ERR_TOO_LARGE);
        return NULL;
    }
    if (memchr(s.ptr, 0, (size_t)s.len)) {
        core_rd_fail(rd, CORE_ERR_MALFORMED);
        return NULL;
    }
    return core_xstrndup((const char *)s.ptr, (size_t)s.len);
}

void rt_task_encode(const rt_task_t *t, core_buf_t *b)
{
    core_wr_u32(b, RT_TASK_MAGIC);
    wr_s(b, t->job);
    wr_s(b, t->job_uid);
    wr_s(b, t->sha256);
    core_wr_i64(b, t->batch);
    core_wr_i32(b, t->index);
    core_wr_i32(b, t->attempt);
    wr_s(b, t->topic);
    core_wr_i32(b, t->partition);
    core_wr_i64(b, t->start);
    core_wr_i64(b, t->end);
    core_wr_u32(b, t->flags);
    wr_s(b, t->brokers);
    wr_s(b, t->config);
}

int rt_task_decode(const void *p, size_t len, rt_task_t *t)
{
    memset(t, 0, sizeof *t);
    core_rd_t rd;
    core_rd_init(&rd, p, len);
    if (core_rd_u32(&rd) != RT_TASK_MAGIC && !rd.err)
        core_rd_fail(&rd, CORE_ERR_MALFORMED);
    t->job = rd_s(&rd, 0);
    t->job_uid = rd_s(&rd, 0);
    t->sha256 = rd_s(&rd, 0);
    t->batch = core_rd_i64(&rd);
    t->index = core_rd_i32(&rd);
    t->attempt = core_rd_i32(&rd);
    t->topic = rd_s(&rd, 0);
    t->partition = core_rd_i32(&rd);
    t->start = core_rd_i64(&rd);
    t->end = core_rd_i64(&rd);
    t->flags = core_rd_u32(&rd);
    t->brokers = rd_s(&rd, 0);
    t->config = rd_s(&rd, 0);
    int err = rd.err;
    if (!err && core_rd_remain(&rd))
        err = CORE_ERR_MALFORMED;
    if (!err && (t->start < 0 || t->end < t->start || t->partition < 0 || t->batch < 0))
        err = CORE_ERR_MALFORMED;
    if (err)
        rt_task_fini(t);
    return err;
}

void rt_task_fini(rt_task_t *t)
{
    free(t->job);
    free(t->job_uid);
    free(t->sha256);
    free(t->topic);
    free(t->brokers);
    free(t->config);
    memset(t, 0, sizeof *t);
}

rt_event_out_t *rt_result_add_event(rt_result_t *r)
{
    if (r->nevents == r->events_cap) {
        r->events_cap = r->events_cap ? r->events_cap * 2 : 64;
        r->events = core_xrealloc(r->events, (size_t)r->events_cap * sizeof *r->events);
    }
    rt_event_out_t *e = &r->events[r->nevents++];
    memset(e, 0, sizeof *e);
    return e;
}

void rt_result_set_state(rt_result_t *r, const void *key, size_t key_len, const void *value,
                         size_t value_len, int del)
{
    if (r->nstate == r->state_cap) {
        r->state_cap = r->state_cap ? r->state_cap * 2 : 64;
        r->state = core_xrealloc(r->state, (size_t)r->state_cap * sizeof *r->state);
    }
    rt_state_out_t *s = &r->state[r->nstate++];
    s->key = core_xmalloc(key_len + 1);
    memcpy(s->key, key, key_len);
    s->key_len = key_len;
    s->value = NULL;
    s->value_len = 0;
    if (!del) {
        s->value = core_xmalloc(value_len + 1);
        memcpy(s->value, value, value_len);
        s->value_len = value_len;
    }
}

void rt_result_encode(const rt_result_t *r, core_buf_t *b)
{
    core_wr_u32(b, RT_RESULT_MAGIC);
    wr_s(b, r->job);
    core_wr_i64(b, r->batch);
    core_wr_i32(b, r->index);
    core_wr_i32(b, r->attempt);
    core_wr_i32(b, r->status);
    wr_s(b, r->error);
    core_wr_i64(b, r->records);
    core_wr_i64(b, r->emitted);
    core_wr_i64(b, r->duration_us);
    core_wr_i32(b, r->nevents);
    for (int i = 0; i < r->nevents; i++) {
        const rt_event_out_t *e = &r->events[i];
        wr_s(b, e->id);
        wr_s(b, e->event);
        wr_s(b, e->entity_type);
        wr_s(b, e->entity_id);
        wr_s(b, e->target_type);
        wr_s(b, e->target_id);
        wr_s(b, e->properties);
        core_wr_i64(b, e->event_time);
    }
    core_wr_i32(b, r->nstate);
    for (int i = 0; i < r->nstate; i++) {
        core_wr_bytes(b, r->state[i].key, (int64_t)r->state[i].key_len);
        core_wr_bytes(b, r->state[i].value,
                      r->state[i].value ? (int64_t)r->state[i].value_len : -1);
    }
    core_wr_i32(b, r->ncounters);
    for (int i = 0; i < r->ncounters; i++) {
        wr_s(b, r->counters[i].name);
        core_wr_i64(b, r->counters[i].delta);
    }
}

int rt_result_decode(const void *p, size_t len, rt_result_t *r)
{
    memset(r, 0, sizeof *r);
    core_rd_t rd;
    core_rd_init(&rd, p, len);
    if (core_rd_u32(&rd) != RT_RESULT_MAGIC && !rd.err)
        core_rd_fail(&rd, CORE_ERR_MALFORMED);
    r->job = rd_s(&rd, 0);
    r->batch = core_rd_i64(&rd);
    r->index = core_rd_i32(&rd);
    r->attempt = core_rd_i32(&rd);
    r->status = core_rd_i32(&rd);
    r->error = rd_s(&rd, 1);
    r->records = core_rd_i64(&rd);
    r->emitted = core_rd_i64(&rd);
    r->duration_us = core_rd_i64(&rd);
    /* Minimum encoded sizes: event 7*4+8, state 4+4, counter 4+8. */
    int32_t n = core_rd_array(&rd, RT_PROTO_MAX_ITEMS, 36);
    if (n > 0) {
        r->events = core_xcalloc((size_t)n, sizeof *r->events);
        r->events_cap = n;
    }
    for (int32_t i = 0; i < n && !rd.err; i++) {
        rt_event_out_t *e = &r->events[r->nevents++];
        e->id = rd_s(&rd, 0);
        e->event = rd_s(&rd, 0);
        e->entity_type = rd_s(&rd, 0);
        e->entity_id = rd_s(&rd, 0);
        e->target_type = rd_s(&rd, 1);
        e->target_id = rd_s(&rd, 1);
        e->properties = rd_s(&rd, 1);
        e->event_time = core_rd_i64(&rd);
    }
    n = core_rd_array(&rd, RT_PROTO_MAX_ITEMS, 8);
    if (n > 0) {
        r->state = core_xcalloc((size_t)n, sizeof *r->state);
        r->state_cap = n;
    }
    for (int32_t i = 0; i < n && !rd.err; i++) {
        core_slice_t k = core_rd_bytes(&rd);
        core_slice_t v = core_rd_nbytes(&rd);
        if (rd.err)
            break;
        rt_result_set_state(r, k.ptr, (size_t)k.len, v.ptr, v.len < 0 ? 0 : (size_t)v.len,
                            v.len < 0);
    }
    n = core_rd_array(&rd, RT_PROTO_MAX_ITEMS, 12);
    if (n > 0)
        r->counters = core_xcalloc((size_t)n, sizeof *r->counters);
    for (int32_t i = 0; i < n && !rd.err; i++) {
        r->counters[r->ncounters].name = rd_s(&rd, 0);
        r->counters[r->ncounters].delta = core_rd_i64(&rd);
        r->ncounters++;
    }
    r->counters_cap = r->ncounters;
    int err = rd.err;
    if (!err && core_rd_remain(&rd))
        err = CORE_ERR_MALFORMED;
    if (err)
        rt_result_fini(r);
    return err;
}

void rt_result_fini(rt_result_t *r)
{
    free(r->job);
    free(r->error);
    for (int i = 0; i < r->nevents; i++) {
        rt_event_out_t *e = &r->events[i];
        free(e->id);
        free(e->event);
        free(e->entity_type);
        free(e->entity_id);
        free(e->target_type);
        free(e->target_id);
        free(e->properties);
    }
    free(r->events);
    for (int i = 0; i < r->nstate; i++) {
        free(r->state[i].key);
        free(r->state[i].value);
    }
    free(r->state);
    for (int i = 0; i < r->ncounters; i++)
        free(r->counters[i].name);
    free(r->counters);
    memset(r, 0, sizeof *r);
}

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char x[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = x[d[i] >> 4];
        out[2 * i + 1] = x[d[i] & 15];
    }
    out[2 * n] = 0;
}

void rt_event_id(const char *job_uid, const char *topic, int32_t partition, int64_t offset,
                 int64_t index, char out[33])
{
    /* One-shot SHA256() over a stack buffer: no allocation per event. */
    unsigned char buf[512 + 80];
    size_t ul = strnlen(job_uid, 255), tl = strnlen(topic, 255), n = 0;
    memcpy(buf, "eddy-event", 11);
    n = 11;
    memcpy(buf + n, job_uid, ul);
    n += ul;
    buf[n++] = 0;
    memcpy(buf + n, topic, tl);
    n += tl;
    buf[n++] = 0;
    n += (size_t)snprintf((char *)buf + n, 80, "%d%c%lld%c%lld", (int)partition, 0,
                          (long long)offset, 0, (long long)index);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(buf, n, d);
    hex(d, 16, out);
}

void rt_event_key_id(const char *job_uid, const void *key, size_t key_len, char out[33])
{
    /* "eddy-event-key" NUL uid NUL key; keys are capped at 1024 bytes by the host */
    unsigned char buf[15 + 256 + 1 + 1024];
    size_t ul = strnlen(job_uid, 255), n = 0;
    if (key_len > 1024)
        key_len = 1024;
    memcpy(buf, "eddy-event-key", 15);
    n = 15;
    memcpy(buf + n, job_uid, ul);
    n += ul;
    buf[n++] = 0;
    memcpy(buf + n, key, key_len);
    n += key_len;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(buf, n, d);
    hex(d, 16, out);
}

void rt_sha256_hex(const void *p, size_t len, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(p, len, d);
    hex(d, sizeof d, out);
}
