#include "runtime/rt_task.h"

#include <errno.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "core/core_log.h"
#include "core/core_time.h"
#include "runtime/rt_job.h"

/* ---- keyed state cache: open addressing over byte keys ------------------- */

typedef struct st_ent {
    uint8_t *key;
    size_t key_len;
    uint8_t *value; /* NULL = absent/deleted */
    size_t value_len;
    uint64_t hash;
    int dirty;
} st_ent_t;

typedef struct st_map {
    st_ent_t *v;
    size_t cap, n;
} st_map_t;

static uint64_t st_hash(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h | 1; /* 0 marks an empty slot */
}

static st_ent_t *st_find(st_map_t *m, const void *key, size_t key_len, int create)
{
    if (create && (m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 256;
        st_ent_t *nv = core_xcalloc(ncap, sizeof *nv);
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->v[i].hash)
                continue;
            size_t j = m->v[i].hash & (ncap - 1);
            while (nv[j].hash)
                j = (j + 1) & (ncap - 1);
            nv[j] = m->v[i];
        }
        free(m->v);
        m->v = nv;
        m->cap = ncap;
    }
    if (!m->cap)
        return NULL;
    uint64_t h = st_hash(key, key_len);
    size_t j = h & (m->cap - 1);
    while (m->v[j].hash) {
        st_ent_t *e = &m->v[j];
        if (e->hash == h && e->key_len == key_len && !memcmp(e->key, key, key_len))
            return e;
        j = (j + 1) & (m->cap - 1);
    }
    if (!create)
        return NULL;
    st_ent_t *e = &m->v[j];
    e->hash = h;
    e->key = core_xmalloc(key_len + 1);
    memcpy(e->key, key, key_len);
    e->key_len = key_len;
    m->n++;
    return e;
}

static void st_free(st_map_t *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->v[i].key);
        free(m->v[i].value);
    }
    free(m->v);
}

/* ---- the task context ---------------------------------------------------- */

typedef struct rt_ctx {
    eddy_ctx_t pub; /* first: jobs see a pointer to this */
    const rt_task_t *task;
    const rt_task_env_t *env;
    rt_result_t *res;
    rd_kafka_t *producer;
    int64_t delivery_failures;
    char producer_err[256];
    st_map_t state;
    size_t out_bytes;
    int failed; /* a host call failed: sticky, fails the task */
    char err[512];
    /* current process() chunk, for emit indices */
    const eddy_record_t *chunk;
    size_t chunk_n;
    uint32_t *emit_count; /* per record of the chunk */
    int64_t null_source_emits;
} rt_ctx_t;

static int ctx_fail(rt_ctx_t *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int ctx_fail(rt_ctx_t *c, int err, const char *fmt, ...)
{
    if (!c->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, sizeof c->err, fmt, ap);
        va_end(ap);
        c->failed = err;
    }
    return err;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    rt_ctx_t *c = opaque;
    if (m->err) {
        if (!c->delivery_failures)
            snprintf(c->producer_err, sizeof c->producer_err, "%s", rd_kafka_err2str(m->err));
        c->delivery_failures++;
    }
}

static int host_emit_headers(eddy_ctx_t *pub, const char *topic, const void *key, size_t key_len,
                             const void *value, size_t value_len, const eddy_header_t *headers,
                             size_t header_count)
{
    rt_ctx_t *c = (rt_ctx_t *)pub;
    if (!topic || !*topic || strlen(topic) > 249)
        return ctx_fail(c, CORE_ERR_INVAL, "eddy_emit: invalid topic name");
    if (!c->producer) {
        char es[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", c->task->brokers, es, sizeof es) ||
            rd_kafka_conf_set(conf, "linger.ms", "5", es, sizeof es) ||
            rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", es,
                              sizeof es) ||
            rd_kafka_conf_set(conf, "batch.num.messages", "10000", es, sizeof es)) {
            rd_kafka_conf_destroy(conf);
            return ctx_fail(c, CORE_ERR_INVAL, "producer config: %s", es);
        }
        rd_kafka_conf_set_opaque(conf, c);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        c->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
        if (!c->producer) {
            rd_kafka_conf_destroy(conf);
            return ctx_fail(c, CORE_ERR_IO, "producer: %s", es);
        }
    }
    if (header_count > 64)
        return ctx_fail(c, CORE_ERR_INVAL, "eddy_emit: more than 64 headers");
    for (;;) {
        /* producev takes ownership of the header list only on success */
        rd_kafka_headers_t *hdrs = NULL;
        if (header_count) {
            hdrs = rd_kafka_headers_new(header_count);
            for (size_t i = 0; i < header_count; i++)
                if (!headers[i].key ||
                    rd_kafka_header_add(hdrs, headers[i].key, -1, headers[i].value,
                                        (ssize_t)headers[i].value_len)) {
                    rd_kafka_headers_destroy(hdrs);
                    return ctx_fail(c, CORE_ERR_INVAL, "eddy_emit: invalid header %zu", i);
                }
        }
        rd_kafka_resp_err_t e = rd_kafka_producev(
            c->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)key, key_len),
            RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (!e)
            break;
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return ctx_fail(c, CORE_ERR_IO, "eddy_emit to %s: %s", topic, rd_kafka_err2str(e));
        rd_kafka_poll(c->producer, 10); /* back pressure: wait for deliveries */
    }
    rd_kafka_poll(c->producer, 0);
    c->res->emitted++;
    return 0;
}

static int host_emit(eddy_ctx_t *pub, const char *topic, const void *key, size_t key_len,
                     const void *value, size_t value_len)
{
    return host_emit_headers(pub, topic, key, key_len, value, value_len, NULL, 0);
}

static char *dup_opt(const char *s)
{
    return s ? core_xstrdup(s) : NULL;
}

/* Checks an event from a job; 0 or a failure already recorded in the task. */
static int event_check(rt_ctx_t *c, const eddy_event_t *ev)
{
    if (!ev || !ev->event || !*ev->event || !ev->entity_type || !*ev->entity_type ||
        !ev->entity_id || !*ev->entity_id)
        return ctx_fail(c, CORE_ERR_INVAL,
                        "eddy_emit_event: event, entity_type and entity_id are required");
    if ((ev->target_entity_type == NULL) != (ev->target_entity_id == NULL))
        return ctx_fail(c, CORE_ERR_INVAL,
                        "eddy_emit_event: target_entity_type and target_entity_id go together");
    if (ev->properties_json) {
        json_error_t je;
        json_t *p = json_loads(ev->properties_json, 0, &je);
        int ok = p && json_is_object(p);
        json_decref(p);
        if (!ok)
            return ctx_fail(c, CORE_ERR_INVAL,
                            "eddy_emit_event: properties_json is not a JSON object");
    }
    return 0;
}

/* Buffers a checked event under an id already derived. */
static int event_add(rt_ctx_t *c, const char id[33], const eddy_event_t *ev)
{
    rt_event_out_t *e = rt_result_add_event(c->res);
    e->id = core_xstrndup(id, 32);
    e->event = core_xstrdup(ev->event);
    e->entity_type = core_xstrdup(ev->entity_type);
    e->entity_id = core_xstrdup(ev->entity_id);
    e->target_type = dup_opt(ev->target_entity_type);
    e->target_id = dup_opt(ev->target_entity_id);
    e->properties = dup_opt(ev->properties_json);
    e->event_time = ev->event_time_ms;
    c->out_bytes += 64 + strlen(e->event) + strlen(e->entity_type) + strlen(e->entity_id) +
                    (e->properties ? strlen(e->properties) : 0);
    if (c->out_bytes > RT_TASK_MAX_OUTPUT)
        return ctx_fail(c, CORE_ERR_TOO_LARGE,
                        "task output exceeds %zu bytes; lower --max-records-per-batch",
                        RT_TASK_MAX_OUTPUT);
    return 0;
}

static int host_emit_event_keyed(eddy_ctx_t *pub, const void *key, size_t key_len,
                                 const eddy_event_t *ev)
{
    rt_ctx_t *c = (rt_ctx_t *)pub;
    if (!key || !key_len || key_len > 1024)
        return ctx_fail(c, CORE_ERR_INVAL, "eddy_emit_event_keyed: id key must be 1..1024 bytes");
    int rc = event_check(c, ev);
    if (rc)
        return rc;
    char id[33];
    rt_event_key_id(c->task->job_uid, key, key_len, id);
    return event_add(c, id, ev);
}

static int host_emit_event(eddy_ctx_t *pub, const eddy_record_t *src, const eddy_event_t *ev)
{
    rt_ctx_t *c = (rt_ctx_t *)pub;
    int rc = event_check(c, ev);
    if (rc)
        return rc;
    /* Event id: the source record's offset and its emit index. */
    int64_t offset, index;
    const char *topic = c->task->topic;
    int32_t partition = c->task->partition;
    if (src) {
        size_t pos;
        if (c->chunk && src >= c->chunk && src < c->chunk + c->chunk_n) {
            pos = (size_t)(src - c->chunk);
        } else {
            /* A copy of a record of this chunk: find it by offset (sorted). */
            size_t lo = 0, hi = c->chunk_n;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (c->chunk[mid].offset < src->offset)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (!c->chunk || lo >= c->chunk_n || c->chunk[lo].offset != src->offset)
                return ctx_fail(c, CORE_ERR_INVAL,
                                "eddy_emit_event: source is not a record of the current "
                                "process() call");
            pos = lo;
        }
        offset = src->offset;
        index = c->emit_count[pos]++;
    } else {
        offset = -1 - c->task->end;
        index = c->null_source_emits++;
    }
    char id[33];
    rt_event_id(c->task->job_uid, topic, partition, offset, index, id);
    return event_add(c, id, ev);
}

static int host_counter_add(eddy_ctx_t *pub, const char *name, int64_t delta)
{
    rt_ctx_t *c = (rt_ctx_t *)pub;
    rt_result_t *r = c->res;
    if (!name || !*name || strlen(name) > 128)
        return ctx_fail(c, CORE_ERR_INVAL, "eddy_counter_add: invalid counter name");
    for (int i = 0; i < r->ncounters; i++)
        if (!strcmp(r->counters[i].name, name)) {
            r->counters[i].delta += delta;
            return 0;
        }
    if (r->ncounters >= 1024)
        return ctx_fail(c, CORE_ERR_TOO_LARGE, "eddy_counter_add: more than 1024 counters");
    if (r->ncounters == r->counters_cap) {
        r->counters_cap = r->counters_cap ? r->counters_cap * 2 : 8;
        r->counters = core_xrealloc(r->counters, (size_t)r->counters_cap * sizeof *r->counters);
    }
    r->counters[r->ncounters].name = core_xstrdup(name);
    r->counters[r->ncounters].delta = delta;
    r->ncounters++;
    return 0;
}

static void host_vlog(eddy_ctx_t *pub, int level, const char *fmt, va_list ap)
{
    rt_ctx_t *c = (rt_ctx_t *)pub;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    core_log_level_t l = level <= EDDY_LOG_DEBUG  ? CORE_LOG_DEBUG
                         : level == EDDY_LOG_INFO ? CORE_LOG_INFO
                         : level == EDDY_LOG_WARN ? CORE_LOG_WARN
                                                  : CORE_LOG_ERROR;
    if (core_log_enabled(l))
        core_log(l, "job", "%s batch %lld %s/%d: %s", c->task->job, (long long)c->task->batch,
                 c->task->topic, (int)c->task->partition, line);
}

static st_ent_t *state_load(rt_ctx_t *c, const void *key, size_t key_len)
{
    st_ent_t *e = st_find(&c->state, key, key_len, 0);
    if (e)
        return e;
    uint8_t *v = NULL;
    size_t vl = 0;
    int found = 0;
    if (c->env->fetch) {
        int err = c->env->fetch(c->env->fetch_opaque, c->task, key, key_len, &v, &vl, &found);
        if (err) {
            ctx_fail(c, err, "reading state from the driver: %s", core_strerror(err));
            return NULL;
        }
    }
    e = st_find(&c->state, key, key_len, 1);
    e->value = found ? v : NULL;
    e->value_len = found ? vl : 0;
    if (!found)
        free(v);
    return e;
}

static int host_state_get(eddy_ctx_t *pub, const void *key, size_t key_len, const void **value,
                          size_t *value_len)
{
    rt_ctx_t *c = (rt_ctx_t *)pub;
    if (!key || key_len == 0 || key_len > 4096)
        return ctx_fail(c, CORE_ERR_INVAL, "eddy_state_get: key must be 1..4096 bytes");
    st_ent_t *e = state_load(c, key, key_len);
    if (!e)
        return c->failed;
    if (!e->value)
        return 0;
    *value = e->value;
    *value_len = e->value_len;
    return 1;
}

static int state_set(rt_ctx_t *c, const void *key, size_t key_len, const void *value,
                     size_t value_len, int del)
{
    if (!key || key_len == 0 || key_len > 4096 || value_len > (16u << 20))
        return ctx_fail(c, CORE_ERR_INVAL,
                        "eddy_state_put: key must be 1..4096 bytes, value at most 16 MiB");
    st_ent_t *e = st_find(&c->state, key, key_len, 1);
    free(e->value);
    e->value = NULL;
    e->value_len = 0;
    if (!del) {
        e->value = core_xmalloc(value_len + 1);
        memcpy(e->value, value, value_len);
        e->value_len = value_len;
    }
    if (!e->dirty)
        c->out_bytes += key_len + 16;
    e->dirty = 1;
    return 0;
}

static int host_state_put(eddy_ctx_t *pub, const void *key, size_t key_len, const void *value,
                          size_t value_len)
{
    return state_set((rt_ctx_t *)pub, key, key_len, value, value_len, 0);
}

static int host_state_del(eddy_ctx_t *pub, const void *key, size_t key_len)
{
    return state_set((rt_ctx_t *)pub, key, key_len, NULL, 0, 1);
}

static const eddy_host_api_t host_api = {
    .abi_version = EDDY_JOB_ABI_VERSION,
    .size = sizeof(eddy_host_api_t),
    .emit = host_emit,
    .emit_event = host_emit_event,
    .counter_add = host_counter_add,
    .vlog = host_vlog,
    .state_get = host_state_get,
    .state_put = host_state_put,
    .state_del = host_state_del,
    .emit_headers = host_emit_headers,
    .emit_event_keyed = host_emit_event_keyed,
};

/* ---- reading the range ---------------------------------------------------- */

static int set_res_error(rt_result_t *res, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_res_error(rt_result_t *res, int err, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(res->error);
    res->error = core_xstrdup(buf);
    res->status = err ? err : CORE_ERR_STATE;
    return res->status;
}

static int consume_range(rt_ctx_t *c, const eddy_job_desc_t *d)
{
    const rt_task_t *t = c->task;
    rt_result_t *res = c->res;
    char es[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", t->brokers, es, sizeof es) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", es, sizeof es) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", es, sizeof es) ||
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", es, sizeof es) ||
        rd_kafka_conf_set(conf, "fetch.wait.max.ms", "50", es, sizeof es) ||
        rd_kafka_conf_set(conf, "queued.min.messages", "200000", es, sizeof es)) {
        rd_kafka_conf_destroy(conf);
        return set_res_error(res, CORE_ERR_INVAL, "consumer config: %s", es);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof es);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return set_res_error(res, CORE_ERR_IO, "consumer: %s", es);
    }
    rd_kafka_topic_conf_t *tc = rd_kafka_topic_conf_new();
    rd_kafka_topic_conf_set(tc, "auto.commit.enable", "false", es, sizeof es);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, t->topic, tc);
    int err = 0;
    if (rd_kafka_consume_start(rkt, t->partition, t->start) < 0) {
        err = set_res_error(res, CORE_ERR_IO, "consume_start %s/%d@%lld: %s", t->topic,
                            (int)t->partition, (long long)t->start,
                            rd_kafka_err2str(rd_kafka_last_error()));
        goto out;
    }
    rd_kafka_message_t **msgs = core_xmalloc(RT_TASK_CHUNK * sizeof *msgs);
    eddy_record_t *recs = core_xmalloc(RT_TASK_CHUNK * sizeof *recs);
    c->emit_count = core_xmalloc(RT_TASK_CHUNK * sizeof *c->emit_count);
    eddy_header_t *hdrs = NULL;
    size_t hdrs_cap = 0;
    int64_t next = t->start;
    int64_t deadline = core_mono_ms() + (c->env->timeout_ms > 0 ? c->env->timeout_ms : 300000);
    while (next < t->end && !err) {
        if (core_mono_ms() > deadline) {
            err = set_res_error(res, CORE_ERR_TIMEOUT,
                                "reading %s/%d stalled at offset %lld (range ends at %lld)",
                                t->topic, (int)t->partition, (long long)next,
                                (long long)t->end);
            break;
        }
        ssize_t want = t->end - next < RT_TASK_CHUNK ? (ssize_t)(t->end - next) : RT_TASK_CHUNK;
        ssize_t got = rd_kafka_consume_batch(rkt, t->partition, 200, msgs, (size_t)want);
        if (got < 0) {
            err = set_res_error(res, CORE_ERR_IO, "consume %s/%d: %s", t->topic,
                                (int)t->partition, rd_kafka_err2str(rd_kafka_last_error()));
            break;
        }
        size_t n = 0, nh = 0;
        int done = 0;
        /* First pass: count headers so the header array never moves under recs. */
        for (ssize_t i = 0; i < got; i++) {
            rd_kafka_headers_t *h;
            if (!msgs[i]->err && msgs[i]->offset < t->end &&
                !rd_kafka_message_headers(msgs[i], &h))
                nh += rd_kafka_header_cnt(h);
        }
        if (nh > hdrs_cap) {
            hdrs_cap = nh;
            hdrs = core_xrealloc(hdrs, hdrs_cap * sizeof *hdrs);
        }
        nh = 0;
        for (ssize_t i = 0; i < got; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (m->offset >= t->end)
                    done = 1; /* the rest of the range is holes (control records) */
                continue;
            }
            if (m->err) {
                err = set_res_error(res, CORE_ERR_IO, "fetch %s/%d at %lld: %s", t->topic,
                                    (int)t->partition, (long long)next,
                                    rd_kafka_message_errstr(m));
                break;
            }
            if (m->offset < next || m->offset >= t->end) {
                if (m->offset >= t->end)
                    done = 1;
                continue;
            }
            eddy_record_t *r = &recs[n];
            r->topic = t->topic;
            r->partition = t->partition;
            r->offset = m->offset;
            rd_kafka_timestamp_type_t tst;
            r->timestamp = rd_kafka_message_timestamp(m, &tst);
            r->key = m->key;
            r->key_len = m->key_len;
            r->value = m->payload;
            r->value_len = m->len;
            r->headers = NULL;
            r->header_count = 0;
            rd_kafka_headers_t *h;
            if (!rd_kafka_message_headers(m, &h)) {
                size_t cnt = rd_kafka_header_cnt(h);
                r->headers = hdrs + nh;
                for (size_t k = 0; k < cnt; k++) {
                    const char *name;
                    const void *val;
                    size_t vsz;
                    if (rd_kafka_header_get_all(h, k, &name, &val, &vsz))
                        break;
                    hdrs[nh++] = (eddy_header_t){name, val, vsz};
                    r->header_count++;
                }
            }
            next = m->offset + 1;
            n++;
        }
        if (!err && n) {
            memset(c->emit_count, 0, n * sizeof *c->emit_count);
            c->chunk = recs;
            c->chunk_n = n;
            if (c->env->progress) {
                c->env->progress[0] = recs[0].offset;
                c->env->progress[1] = recs[n - 1].offset;
            }
            int rc = d->process(&c->pub, recs, n);
            c->chunk = NULL;
            c->chunk_n = 0;
            res->records += (int64_t)n;
            if (c->failed)
                err = set_res_error(res, c->failed, "%s (offsets %lld..%lld)", c->err,
                                    (long long)recs[0].offset, (long long)recs[n - 1].offset);
            else if (rc)
                err = set_res_error(res, CORE_ERR_STATE,
                                    "job %s: process() returned %d for %s/%d offsets "
                                    "%lld..%lld",
                                    t->job, rc, t->topic, (int)t->partition,
                                    (long long)recs[0].offset, (long long)recs[n - 1].offset);
        }
        for (ssize_t i = 0; i < got; i++)
            rd_kafka_message_destroy(msgs[i]);
        if (done)
            break;
    }
    free(msgs);
    free(recs);
    free(hdrs);
    free(c->emit_count);
    c->emit_count = NULL;
    rd_kafka_consume_stop(rkt, t->partition);
out:
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return err;
}

int rt_task_run(const rt_task_t *t, const rt_task_env_t *env, rt_result_t *res)
{
    int64_t t0 = core_mono_us();
    memset(res, 0, sizeof *res);
    res->job = core_xstrdup(t->job);
    res->batch = t->batch;
    res->index = t->index;
    res->attempt = t->attempt;
    rt_ctx_t c;
    memset(&c, 0, sizeof c);
    c.pub.api = &host_api;
    c.pub.job_name = t->job;
    c.pub.batch_id = t->batch;
    c.pub.topic = t->topic;
    c.pub.partition = t->partition;
    c.pub.start_offset = t->start;
    c.pub.end_offset = t->end;
    c.task = t;
    c.env = env;
    c.res = res;
    rt_job_t job;
    char es[1024];
    int err = rt_job_load(env->job_path, &job, es, sizeof es);
    if (err) {
        set_res_error(res, err, "%s", es);
        goto out;
    }
    const eddy_job_desc_t *d = job.desc;
    if (d->init) {
        int rc = d->init(&c.pub, t->config && *t->config ? t->config : "{}");
        if (rc || c.failed) {
            set_res_error(res, c.failed ? c.failed : CORE_ERR_STATE,
                          "job %s: init() failed (%d)%s%s", t->job, rc, c.failed ? ": " : "",
                          c.err);
            goto unload;
        }
    }
    err = consume_range(&c, d);
    if (!err && d->batch_end) {
        int rc = d->batch_end(&c.pub);
        if (c.failed)
            err = set_res_error(res, c.failed, "%s (in batch_end)", c.err);
        else if (rc)
            err = set_res_error(res, CORE_ERR_STATE, "job %s: batch_end() returned %d", t->job,
                                rc);
    }
    if (d->destroy)
        d->destroy(&c.pub);
    /* Topic outputs must be delivered before the task may report success. */
    if (!err && c.producer) {
        rd_kafka_resp_err_t fe = rd_kafka_flush(c.producer, 60000);
        if (fe)
            err = set_res_error(res, CORE_ERR_TIMEOUT, "flushing emitted records: %s",
                                rd_kafka_err2str(fe));
        else if (c.delivery_failures)
            err = set_res_error(res, CORE_ERR_IO, "%lld emitted records failed delivery: %s",
                                (long long)c.delivery_failures, c.producer_err);
    }
    if (!err)
        for (size_t i = 0; i < c.state.cap; i++) {
            st_ent_t *e = &c.state.v[i];
            if (e->hash && e->dirty)
                rt_result_set_state(res, e->key, e->key_len, e->value, e->value_len,
                                    e->value == NULL);
        }
unload:
    rt_job_unload(&job);
out:
    if (c.producer)
        rd_kafka_destroy(c.producer);
    st_free(&c.state);
    res->duration_us = core_mono_us() - t0;
    return res->status;
}
