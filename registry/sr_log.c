#include "registry/sr_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "core/core_log.h"
#include "core/core_time.h"

struct sr_log {
    rd_kafka_t *producer;
    char *topic;
    int timeout_ms;
};

typedef struct delivery {
    int done;
    rd_kafka_resp_err_t err;
} delivery_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    delivery_t *d = m->_private;
    if (d) {
        d->err = m->err;
        d->done = 1;
    }
}

static rd_kafka_conf_t *base_conf(const char *brokers)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", brokers, err, sizeof err);
    rd_kafka_conf_set(c, "client.id", "eddy-registry", err, sizeof err);
    return c;
}

/* Creates the topic; an existing topic is fine. */
static int ensure_topic(rd_kafka_t *rk, const char *topic, int timeout_ms, char *errstr,
                        size_t errsz)
{
    char err[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 1, 1, err, sizeof err);
    if (!nt)
        return core_errf(CORE_ERR_INVAL, errstr, errsz, "%s", err);
    rd_kafka_NewTopic_set_config(nt, "retention.ms", "-1");
    rd_kafka_NewTopic_set_config(nt, "retention.bytes", "-1");
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(opt, timeout_ms, err, sizeof err);
    rd_kafka_CreateTopics(rk, &nt, 1, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    int rc = CORE_OK;
    if (!ev) {
        rc = core_errf(CORE_ERR_TIMEOUT, errstr, errsz, "creating topic %s timed out", topic);
    } else if (rd_kafka_event_error(ev)) {
        rc = core_errf(CORE_ERR_IO, errstr, errsz, "creating topic %s: %s", topic,
                       rd_kafka_event_error_string(ev));
    } else {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        if (n == 1 && rd_kafka_topic_result_error(res[0]) &&
            rd_kafka_topic_result_error(res[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = core_errf(CORE_ERR_IO, errstr, errsz, "creating topic %s: %s", topic,
                           rd_kafka_topic_result_error_string(res[0]));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* Reads partition 0 from the beginning up to the high watermark seen now. */
static int replay(const char *brokers, const char *topic, sr_log_record_fn *fn, void *opaque,
                  int timeout_ms, char *errstr, size_t errsz)
{
    char err[256];
    rd_kafka_conf_t *c = base_conf(brokers);
    rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_conf_set(c, "enable.partition.eof", "true", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(c);
        return core_errf(CORE_ERR_INVAL, errstr, errsz, "%s", err);
    }
    int64_t lo = 0, hi = 0;
    int rc = CORE_OK;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, timeout_ms);
    if (e) {
        rc = core_errf(CORE_ERR_IO, errstr, errsz, "reading %s offsets: %s", topic,
                       rd_kafka_err2str(e));
        goto out;
    }
    if (hi > lo) {
        /* librdkafka's simple consumer: no group id, no coordinator, no commits */
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        if (rd_kafka_consume_start(rkt, 0, lo) == -1) {
            rc = core_errf(CORE_ERR_IO, errstr, errsz, "reading %s: %s", topic,
                           rd_kafka_err2str(rd_kafka_last_error()));
            rd_kafka_topic_destroy(rkt);
            goto out;
        }
        int64_t next = lo, deadline = core_mono_ms() + timeout_ms;
        while (next < hi && !rc) {
            if (core_mono_ms() > deadline) {
                rc = core_errf(CORE_ERR_TIMEOUT, errstr, errsz, "replaying %s timed out at %lld/%lld",
                               topic, (long long)next, (long long)hi);
                break;
            }
            rd_kafka_message_t *m = rd_kafka_consume(rkt, 0, 200);
            if (!m)
                continue;
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                next = m->offset;
            } else if (m->err) {
                rc = core_errf(CORE_ERR_IO, errstr, errsz, "replaying %s: %s", topic,
                               rd_kafka_message_errstr(m));
            } else {
                next = m->offset + 1;
                if (fn(opaque, m->key, m->key_len, m->payload, m->len))
                    CORE_WARN("registry", "skipped a malformed record at %s offset %lld", topic,
                              (long long)m->offset);
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_consume_stop(rkt, 0);
        rd_kafka_topic_destroy(rkt);
    }
    CORE_INFO("registry", "replayed %lld records of %s", (long long)(hi - lo), topic);
out:
    rd_kafka_destroy(rk);
    return rc;
}

int sr_log_open(const char *brokers, const char *topic, sr_log_record_fn *fn, void *opaque,
                int timeout_ms, sr_log_t **out, char *errstr, size_t errsz)
{
    char err[256];
    rd_kafka_conf_t *c = base_conf(brokers);
    rd_kafka_conf_set(c, "acks", "all", err, sizeof err);
    rd_kafka_conf_set(c, "linger.ms", "0", err, sizeof err);
    rd_kafka_conf_set(c, "max.in.flight", "1", err, sizeof err); /* keep the log in request order */
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(c);
        return core_errf(CORE_ERR_INVAL, errstr, errsz, "%s", err);
    }
    int rc = ensure_topic(rk, topic, timeout_ms, errstr, errsz);
    if (!rc)
        rc = replay(brokers, topic, fn, opaque, timeout_ms, errstr, errsz);
    if (rc) {
        rd_kafka_destroy(rk);
        return rc;
    }
    sr_log_t *log = core_xcalloc(1, sizeof *log);
    log->producer = rk;
    log->topic = core_xstrdup(topic);
    log->timeout_ms = timeout_ms;
    *out = log;
    return CORE_OK;
}

int sr_log_append(sr_log_t *log, const char *key, const char *value, char *errstr, size_t errsz)
{
    delivery_t d = {0, 0};
    rd_kafka_resp_err_t e = rd_kafka_producev(
        log->producer, RD_KAFKA_V_TOPIC(log->topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
    if (e)
        return core_errf(CORE_ERR_IO, errstr, errsz, "writing %s: %s", log->topic,
                         rd_kafka_err2str(e));
    int64_t deadline = core_mono_ms() + log->timeout_ms;
    while (!d.done && core_mono_ms() < deadline)
        rd_kafka_poll(log->producer, 50);
    if (!d.done) {
        /* the record may still land later: purge so a late success cannot write our stack */
        rd_kafka_purge(log->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        while (!d.done)
            rd_kafka_poll(log->producer, 50);
        return core_errf(CORE_ERR_TIMEOUT, errstr, errsz, "writing %s timed out", log->topic);
    }
    if (d.err)
        return core_errf(CORE_ERR_IO, errstr, errsz, "writing %s: %s", log->topic,
                         rd_kafka_err2str(d.err));
    return CORE_OK;
}

void sr_log_close(sr_log_t *log)
{
    if (!log)
        return;
    rd_kafka_flush(log->producer, log->timeout_ms);
    rd_kafka_destroy(log->producer);
    free(log->topic);
    free(log);
}
