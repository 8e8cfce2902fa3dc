/*
 * client — topic administration, produce and consume on librdkafka.
 * See client.h for the contract; this file only explains the non-obvious.
 */
#include "client/client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "core/core_time.h"

/* How long an admin call keeps trying after librdkafka said every broker is
 * down: long enough for a broker that is still binding its port, short
 * enough that a wrong --broker fails in about two seconds, not at --timeout. */
#define CLIENT_ALL_DOWN_GRACE_MS 2000

/* How long the consumer waits for the topic's metadata before giving up. */
#define CLIENT_METADATA_TIMEOUT_MS 10000

/* Initial size of the producer's line buffer (it grows up to CLIENT_MAX_LINE_BYTES). */
#define CLIENT_LINE_BUF_INIT (1 << 20)

/* Serve delivery reports after this many produce calls, so the report queue
 * never grows to the whole input while stdin is fast. */
#define CLIENT_POLL_EVERY 1024

/* Shared by librdkafka's callbacks (which run inside rd_kafka_poll /
 * rd_kafka_consumer_poll / rd_kafka_flush on the caller's thread, except
 * error_cb, which may run on a librdkafka thread: hence the plain flag and
 * the message written whole before the flag). */
typedef struct client_state {
    volatile int all_down;        /* RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN seen */
    volatile int fatal;           /* a fatal error was raised */
    char last_error[256];         /* last error_cb text (for messages) */
    client_produce_stats_t *pst;  /* producer only */
} client_state_t;

/* ---- small helpers ---------------------------------------------------------- */

static void client_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    client_state_t *cs = opaque;
    snprintf(cs->last_error, sizeof cs->last_error, "%s", reason);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        cs->all_down = 1;
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        cs->fatal = 1;
}

/* librdkafka logs every failed connect at level 3; the commands report
 * unreachable brokers themselves, so those and notices are dropped. Debug
 * lines (only there when asked for with --property debug=...) pass. */
static void client_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level == 5 || level == 6 || !strcmp(fac, "FAIL") || !strcmp(fac, "ERROR"))
        return;
    fprintf(stderr, "librdkafka: %s: %s\n", fac, buf);
}

static int client_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                           char *errstr, size_t errstr_size)
{
    char e[512];
    if (rd_kafka_conf_set(conf, key, value, e, sizeof e) != RD_KAFKA_CONF_OK)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "%s", e);
    return CORE_OK;
}

/* Splits "k=v" at the first '='. Returns 0 and borrowed views into s via a
 * heap copy of the key (caller frees *key), or CORE_ERR_INVAL. */
static int split_kv(const char *s, char **key, const char **value)
{
    const char *eq = strchr(s, '=');
    if (!eq || eq == s)
        return CORE_ERR_INVAL;
    *key = core_xstrndup(s, (size_t)(eq - s));
    *value = eq + 1;
    return CORE_OK;
}

/* Creates the handle; takes ownership of conf in every case. */
static int client_rk_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, const char *brokers,
                         const core_strlist_t *props, client_state_t *cs, rd_kafka_t **rkp,
                         char *errstr, size_t errstr_size)
{
    int rc;
    char e[512];
    rd_kafka_conf_set_opaque(conf, cs);
    rd_kafka_conf_set_error_cb(conf, client_error_cb);
    rd_kafka_conf_set_log_cb(conf, client_log_cb);
    if ((rc = client_conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size)))
        goto err;
    for (int i = 0; props && i < props->n; i++) {
        char *k;
        const char *v;
        if (split_kv(props->v[i], &k, &v)) {
            rc = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                           "--property expects key=value, got '%s'", props->v[i]);
            goto err;
        }
        rc = client_conf_set(conf, k, v, errstr, errstr_size);
        free(k);
        if (rc)
            goto err;
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, e, sizeof e);
    if (!rk) {
        rc = core_errf(CORE_ERR_INVAL, errstr, errstr_size, "%s", e);
        goto err;
    }
    *rkp = rk; /* rd_kafka_new took conf */
    return CORE_OK;
err:
    rd_kafka_conf_destroy(conf);
    return rc;
}

/* Appends the reason a broker could not be reached, if we know one. */
static void unreachable_hint(const client_state_t *cs, const char *brokers, char *buf,
                             size_t bufsz)
{
    if (cs->all_down)
        snprintf(buf, bufsz, " (cannot reach broker %s: %s)", brokers, cs->last_error);
    else
        buf[0] = 0;
}

int client_offset_parse(const char *s, int64_t *offset)
{
    int64_t v;
    if (!strcmp(s, "beginning") || !strcmp(s, "earliest"))
        *offset = RD_KAFKA_OFFSET_BEGINNING;
    else if (!strcmp(s, "end") || !strcmp(s, "latest"))
        *offset = RD_KAFKA_OFFSET_END;
    else if (!strcmp(s, "stored"))
        *offset = RD_KAFKA_OFFSET_STORED;
    else if (!core_parse_int(s, &v))
        *offset = v >= 0 ? v : RD_KAFKA_OFFSET_TAIL(-v);
    else
        return CORE_ERR_INVAL;
    return CORE_OK;
}

/* ---- JSON ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when the bytes there
 * are not one (bad lead, bad continuation, overlong, surrogate, > U+10FFFF,
 * truncated). Ranges per RFC 3629 §4. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        if (c == 0xf4)
            hi = 0x8f; /* > U+10FFFF */
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

void client_json_write_bytes(FILE *out, const void *data, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;
    if (!p) {
        fputs_unlocked("null", out);
        return;
    }
    putc_unlocked('"', out);
    size_t i = 0;
    while (i < n) {
        /* copy the longest run that needs no escaping in one call */
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            fwrite_unlocked(p + i, 1, run - i, out);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t len = utf8_seq_len(p + i, n - i);
            if (len) {
                fwrite_unlocked(p + i, 1, len, out);
                i += len;
            } else {
                char esc[6] = {'\\', 'u', 'd', 'c', hex[c >> 4], hex[c & 15]};
                fwrite_unlocked(esc, 1, sizeof esc, out);
                i++;
            }
            continue;
        }
        switch (c) {
        case '"': fputs_unlocked("\\\"", out); break;
        case '\\': fputs_unlocked("\\\\", out); break;
        case '\n': fputs_unlocked("\\n", out); break;
        case '\r': fputs_unlocked("\\r", out); break;
        case '\t': fputs_unlocked("\\t", out); break;
        case '\b': fputs_unlocked("\\b", out); break;
        case '\f': fputs_unlocked("\\f", out); break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            fwrite_unlocked(esc, 1, sizeof esc, out);
        }
        }
        i++;
    }
    putc_unlocked('"', out);
}

/* ---- admin ------------------------------------------------------------------- */

typedef struct client_admin {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    client_state_t cs;
    const char *brokers;
    int timeout_ms;
} client_admin_t;

static int client_admin_open(client_admin_t *a, const char *brokers, const core_strlist_t *props,
                             int timeout_ms, char *errstr, size_t errstr_size)
{
    memset(a, 0, sizeof *a);
    a->brokers = brokers;
    a->timeout_ms = timeout_ms;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[512];
    /* a describe must never create the topic it looks at */
    if (rd_kafka_conf_set(conf, "allow.auto.create.topics", "false", e, sizeof e) ||
        rd_kafka_conf_set(conf, "client.id", "eddy-admin", e, sizeof e)) {
        rd_kafka_conf_destroy(conf);
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "%s", e);
    }
    int rc = client_rk_new(RD_KAFKA_PRODUCER, conf, brokers, props, &a->cs, &a->rk, errstr,
                           errstr_size);
    if (rc)
        return rc;
    a->q = rd_kafka_queue_new(a->rk);
    return CORE_OK;
}

static void client_admin_close(client_admin_t *a)
{
    if (a->q)
        rd_kafka_queue_destroy(a->q);
    if (a->rk)
        rd_kafka_destroy(a->rk);
}

static rd_kafka_AdminOptions_t *client_admin_options(client_admin_t *a, rd_kafka_admin_op_t op)
{
    char e[256];
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(a->rk, op);
    rd_kafka_AdminOptions_set_request_timeout(ao, a->timeout_ms, e, sizeof e);
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS || op == RD_KAFKA_ADMIN_OP_DELETETOPICS)
        rd_kafka_AdminOptions_set_operation_timeout(ao, a->timeout_ms, e, sizeof e);
    return ao;
}

/* Waits for the result of one admin call. Returns the event (caller destroys)
 * or NULL with errstr set (timeout, broker unreachable, request error). */
static rd_kafka_event_t *client_admin_wait(client_admin_t *a, const char *what, char *errstr,
                                           size_t errstr_size)
{
    int64_t start = core_mono_ms(), deadline = start + a->timeout_ms + 1000;
    char hint[384];
    for (;;) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(a->q, 100);
        if (ev) {
            if (rd_kafka_event_error(ev)) {
                unreachable_hint(&a->cs, a->brokers, hint, sizeof hint);
                core_errf(CORE_ERR_IO, errstr, errstr_size, "%s failed: %s%s", what,
                          rd_kafka_event_error_string(ev), hint);
                rd_kafka_event_destroy(ev);
                return NULL;
            }
            return ev;
        }
        int64_t now = core_mono_ms();
        if (a->cs.all_down && now - start >= CLIENT_ALL_DOWN_GRACE_MS) {
            core_errf(CORE_ERR_IO, errstr, errstr_size, "%s failed: cannot reach broker %s: %s",
                      what, a->brokers, a->cs.last_error);
            return NULL;
        }
        if (now >= deadline) {
            core_errf(CORE_ERR_TIMEOUT, errstr, errstr_size, "%s timed out after %d ms", what,
                      a->timeout_ms);
            return NULL;
        }
    }
}

/* Maps a per-topic admin error to a core code and one clear line. */
static int topic_error(rd_kafka_resp_err_t err, const char *msg, const char *name,
                       const char *verb, char *errstr, size_t errstr_size)
{
    const char *detail = msg && *msg ? msg : rd_kafka_err2str(err);
    switch (err) {
    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
        return core_errf(CORE_ERR_EXISTS, errstr, errstr_size, "topic '%s' already exists", name);
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        return core_errf(CORE_ERR_NOT_FOUND, errstr, errstr_size, "topic '%s' does not exist",
                         name);
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "cannot %s topic '%s': invalid config: %s",
                         verb, name, detail);
    default:
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "cannot %s topic '%s': %s (%s)", verb,
                         name, detail, rd_kafka_err2name(err));
    }
}

/* The outcome of a create or delete of one topic: its single topic result. */
static int one_topic_result(const rd_kafka_topic_result_t **res, size_t cnt, const char *name,
                            const char *verb, char *errstr, size_t errstr_size)
{
    if (cnt != 1)
        return core_errf(CORE_ERR_IO, errstr, errstr_size,
                         "%s topic: broker returned %zu results for one topic", verb, cnt);
    rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[0]);
    if (!err)
        return 0;
    return topic_error(err, rd_kafka_topic_result_error_string(res[0]), name, verb, errstr,
                       errstr_size);
}

int client_topic_create(const char *brokers, const core_strlist_t *props,
                        const client_topic_spec_t *spec, int timeout_ms, char *errstr,
                        size_t errstr_size)
{
    client_admin_t a;
    rd_kafka_NewTopic_t *nt = NULL;
    rd_kafka_event_t *ev = NULL;
    char e[512];
    int rc = client_admin_open(&a, brokers, props, timeout_ms, errstr, errstr_size);
    if (rc)
        return rc;
    nt = rd_kafka_NewTopic_new(spec->name, spec->partitions, spec->replication_factor, e,
                               sizeof e);
    if (!nt) {
        rc = core_errf(CORE_ERR_INVAL, errstr, errstr_size, "cannot create topic '%s': %s",
                       spec->name, e);
        goto out;
    }
    for (int i = 0; spec->configs && i < spec->configs->n; i++) {
        char *k;
        const char *v;
        if (split_kv(spec->configs->v[i], &k, &v)) {
            rc = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                           "--config expects key=value, got '%s'", spec->configs->v[i]);
            goto out;
        }
        rd_kafka_resp_err_t err = rd_kafka_NewTopic_set_config(nt, k, v);
        free(k);
        if (err) {
            rc = core_errf(CORE_ERR_INVAL, errstr, errstr_size, "bad --config '%s': %s",
                           spec->configs->v[i], rd_kafka_err2str(err));
            goto out;
        }
    }
    rd_kafka_AdminOptions_t *ao = client_admin_options(&a, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_CreateTopics(a.rk, &nt, 1, ao, a.q);
    rd_kafka_AdminOptions_destroy(ao);
    if (!(ev = client_admin_wait(&a, "create topic", errstr, errstr_size))) {
        rc = CORE_ERR_IO;
        goto out;
    }
    size_t cnt = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
    rc = one_topic_result(res, cnt, spec->name, "create", errstr, errstr_size);
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
    client_admin_close(&a);
    return rc;
}

int client_topic_delete(const char *brokers, const core_strlist_t *props, const char *name,
                        int timeout_ms, char *errstr, size_t errstr_size)
{
    client_admin_t a;
    rd_kafka_event_t *ev = NULL;
    int rc = client_admin_open(&a, brokers, props, timeout_ms, errstr, errstr_size);
    if (rc)
        return rc;
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(name);
    rd_kafka_AdminOptions_t *ao = client_admin_options(&a, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_DeleteTopics(a.rk, &dt, 1, ao, a.q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_DeleteTopic_destroy(dt);
    if (!(ev = client_admin_wait(&a, "delete topic", errstr, errstr_size))) {
        rc = CORE_ERR_IO;
        goto out;
    }
    size_t cnt = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &cnt);
    rc = one_topic_result(res, cnt, name, "delete", errstr, errstr_size);
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    client_admin_close(&a);
    return rc;
}

/* Fetches metadata for all topics (never a named topic: a Metadata request
 * naming a topic could auto-create it on a broker that allows that). */
static int client_metadata(rd_kafka_t *rk, client_state_t *cs, const char *brokers,
                           int timeout_ms, const struct rd_kafka_metadata **mdp, char *errstr,
                           size_t errstr_size)
{
    /* Short attempts, so an unreachable broker fails after the grace period
     * rather than after the whole timeout. */
    int64_t start = core_mono_ms(), deadline = start + timeout_ms;
    for (;;) {
        int64_t now = core_mono_ms();
        int slice = (int)(deadline - now < 500 ? deadline - now : 500);
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, mdp, slice > 0 ? slice : 1);
        if (!err)
            return CORE_OK;
        rd_kafka_poll(rk, 0); /* serve error_cb */
        now = core_mono_ms();
        if (cs->all_down && now - start >= CLIENT_ALL_DOWN_GRACE_MS)
            return core_errf(CORE_ERR_IO, errstr, errstr_size, "cannot reach broker %s: %s",
                             brokers, cs->last_error);
        if (now >= deadline || (err != RD_KAFKA_RESP_ERR__TIMED_OUT &&
                                err != RD_KAFKA_RESP_ERR__TRANSPORT))
            return core_errf(CORE_ERR_IO, errstr, errstr_size,
                             "cannot get metadata from %s: %s", brokers, rd_kafka_err2str(err));
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int client_topic_list(const char *brokers, const core_strlist_t *props, FILE *out,
                      int timeout_ms, char *errstr, size_t errstr_size)
{
    client_admin_t a;
    const struct rd_kafka_metadata *md = NULL;
    int rc = client_admin_open(&a, brokers, props, timeout_ms, errstr, errstr_size);
    if (rc)
        return rc;
    if ((rc = client_metadata(a.rk, &a.cs, brokers, timeout_ms, &md, errstr, errstr_size)))
        goto out;
    const char **names = core_xcalloc((size_t)md->topic_cnt + 1, sizeof *names);
    int n = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!md->topics[i].err)
            names[n++] = md->topics[i].topic;
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++)
        fprintf(out, "%s\n", names[i]);
    free(names);
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    client_admin_close(&a);
    return rc;
}

static const char *config_source_name(rd_kafka_ConfigSource_t s)
{
    switch (s) {
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG: return "topic";
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG:
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG:
    case RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG: return "broker";
    case RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG: return "default";
    default: return "unknown";
    }
}

/* Prints the topic's configs; a failure here is a note, not an error of the
 * describe (the partition table is still true). */
static void describe_configs(client_admin_t *a, const char *name, FILE *out)
{
    char err[512];
    rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name);
    rd_kafka_AdminOptions_t *ao = client_admin_options(a, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_DescribeConfigs(a->rk, &cr, 1, ao, a->q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_ConfigResource_destroy(cr);
    rd_kafka_event_t *ev = client_admin_wait(a, "describe configs", err, sizeof err);
    if (!ev) {
        fprintf(out, "Configs: unavailable (%s)\n", err);
        return;
    }
    size_t nres = 0;
    const rd_kafka_ConfigResource_t **res = rd_kafka_DescribeConfigs_result_resources(
        rd_kafka_event_DescribeConfigs_result(ev), &nres);
    if (nres != 1 || rd_kafka_ConfigResource_error(res[0])) {
        fprintf(out, "Configs: unavailable (%s)\n",
                nres == 1 ? rd_kafka_ConfigResource_error_string(res[0]) : "no result");
        rd_kafka_event_destroy(ev);
        return;
    }
    size_t n = 0;
    const rd_kafka_ConfigEntry_t **ce = rd_kafka_ConfigResource_configs(res[0], &n);
    fprintf(out, "Configs:\n");
    for (size_t i = 0; i < n; i++) {
        const char *v = rd_kafka_ConfigEntry_value(ce[i]);
        if (rd_kafka_ConfigEntry_is_sensitive(ce[i]))
            v = "(sensitive)";
        fprintf(out, "  %s=%s  (%s)\n", rd_kafka_ConfigEntry_name(ce[i]), v ? v : "",
                config_source_name(rd_kafka_ConfigEntry_source(ce[i])));
    }
    rd_kafka_event_destroy(ev);
}

int client_topic_describe(const char *brokers, const core_strlist_t *props, const char *name,
                          FILE *out, int timeout_ms, char *errstr, size_t errstr_size)
{
    client_admin_t a;
    const struct rd_kafka_metadata *md = NULL;
    int rc = client_admin_open(&a, brokers, props, timeout_ms, errstr, errstr_size);
    if (rc)
        return rc;
    if ((rc = client_metadata(a.rk, &a.cs, brokers, timeout_ms, &md, errstr, errstr_size)))
        goto out;
    const struct rd_kafka_metadata_topic *t = NULL;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strcmp(md->topics[i].topic, name))
            t = &md->topics[i];
    if (!t || t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        rc = core_errf(CORE_ERR_NOT_FOUND, errstr, errstr_size, "topic '%s' does not exist", name);
        goto out;
    }
    if (t->err) {
        rc = topic_error(t->err, NULL, name, "describe", errstr, errstr_size);
        goto out;
    }
    int rf = t->partition_cnt > 0 ? t->partitions[0].replica_cnt : 0;
    fprintf(out, "Topic: %s\nPartitions: %d\nReplicationFactor: %d\n", name, t->partition_cnt,
            rf);
    fprintf(out, "%9s  %6s  %-10s  %-10s  %12s  %12s\n", "Partition", "Leader", "Replicas", "Isr",
            "Earliest", "Latest");
    /* partitions in id order (metadata order is the broker's) */
    for (int32_t pid = 0; pid < t->partition_cnt; pid++) {
        const struct rd_kafka_metadata_partition *p = NULL;
        for (int j = 0; j < t->partition_cnt; j++)
            if (t->partitions[j].id == pid)
                p = &t->partitions[j];
        if (!p)
            continue;
        char reps[64] = "", isrs[64] = "";
        size_t off = 0;
        for (int r = 0; r < p->replica_cnt && off < sizeof reps; r++)
            off += (size_t)snprintf(reps + off, sizeof reps - off, "%s%" PRId32, r ? "," : "",
                                    p->replicas[r]);
        off = 0;
        for (int r = 0; r < p->isr_cnt && off < sizeof isrs; r++)
            off += (size_t)snprintf(isrs + off, sizeof isrs - off, "%s%" PRId32, r ? "," : "",
                                    p->isrs[r]);
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(a.rk, name, pid, &lo, &hi, timeout_ms);
        if (err) {
            fprintf(out, "%9" PRId32 "  %6" PRId32 "  %-10s  %-10s  %25s\n", pid, p->leader, reps,
                    isrs, rd_kafka_err2name(err));
            continue;
        }
        fprintf(out, "%9" PRId32 "  %6" PRId32 "  %-10s  %-10s  %12" PRId64 "  %12" PRId64 "\n",
                pid, p->leader, reps, isrs, lo, hi);
    }
    describe_configs(&a, name, out);
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    client_admin_close(&a);
    return rc;
}

/* ---- produce ------------------------------------------------------------------ */

static void client_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    client_state_t *cs = opaque;
    client_produce_stats_t *st = cs->pst;
    if (!m->err) {
        st->delivered++;
        return;
    }
    if (st->failed++ == 0) {
        if (m->partition >= 0)
            snprintf(st->first_error, sizeof st->first_error, "partition %" PRId32 ": %s",
                     m->partition, rd_kafka_err2str(m->err));
        else /* never got as far as a partition (e.g. no broker answered) */
            snprintf(st->first_error, sizeof st->first_error, "%s", rd_kafka_err2str(m->err));
    }
}

typedef struct header_kv {
    char *name;
    const char *value;
} header_kv_t;

/* Produces one record, waiting (serving delivery reports) while librdkafka's
 * queue is full. Returns 0, or the produce error (counted as failed). */
static rd_kafka_resp_err_t produce_one(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                                       const char *key, size_t keylen, const char *val,
                                       size_t vallen, const header_kv_t *hdrs, int nhdrs)
{
    for (;;) {
        rd_kafka_resp_err_t err;
        if (nhdrs) {
            rd_kafka_headers_t *h = rd_kafka_headers_new((size_t)nhdrs);
            for (int i = 0; i < nhdrs; i++)
                rd_kafka_header_add(h, hdrs[i].name, -1, hdrs[i].value, -1);
            err = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)val, vallen),
                                    RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
            if (err)
                rd_kafka_headers_destroy(h); /* ownership passes only on success */
        } else {
            err = rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, (void *)val, vallen, key,
                                   keylen, NULL)
                      ? rd_kafka_last_error()
                      : RD_KAFKA_RESP_ERR_NO_ERROR;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return err;
        rd_kafka_poll(rk, 10);
    }
}

int client_produce_stream(const client_produce_opts_t *o, FILE *in, client_produce_stats_t *st,
                          char *errstr, size_t errstr_size)
{
    client_state_t cs = {.pst = st};
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_t *rkt = NULL;
    header_kv_t *hdrs = NULL;
    int nhdrs = 0, rc = CORE_OK;
    char *buf = NULL;
    char num[32];
    const char *acks = !strcmp(o->acks, "all") ? "-1" : o->acks;

    memset(st, 0, sizeof *st);
    if (strcmp(acks, "0") && strcmp(acks, "1") && strcmp(acks, "-1"))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "--acks must be 0, 1 or all, not '%s'", o->acks);
    if (o->key_separator && !*o->key_separator)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "--key-separator must not be empty");
    for (int i = 0; o->headers && i < o->headers->n; i++) {
        hdrs = core_xrealloc(hdrs, sizeof *hdrs * (size_t)(nhdrs + 1));
        if (split_kv(o->headers->v[i], &hdrs[nhdrs].name, &hdrs[nhdrs].value)) {
            rc = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                           "--header expects key=value, got '%s'", o->headers->v[i]);
            goto out;
        }
        nhdrs++;
    }

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(num, sizeof num, "%" PRId64, o->delivery_timeout_ms);
    /* Defaults for bulk loading: a deep local queue and big batches (linger
     * 5 ms, librdkafka's own default, keeps interactive use snappy). The
     * user's --property settings are applied after these and win. */
    if ((rc = client_conf_set(conf, "client.id", "eddy-produce", errstr, errstr_size)) ||
        (rc = client_conf_set(conf, "acks", acks, errstr, errstr_size)) ||
        (rc = client_conf_set(conf, "message.timeout.ms", num, errstr, errstr_size)) ||
        (rc = client_conf_set(conf, "queue.buffering.max.messages", "1000000", errstr,
                              errstr_size)) ||
        (rc = client_conf_set(conf, "batch.num.messages", "10000", errstr, errstr_size)) ||
        (rc = client_conf_set(conf, "linger.ms", "5", errstr, errstr_size))) {
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, client_dr_cb);
    if ((rc = client_rk_new(RD_KAFKA_PRODUCER, conf, o->brokers, o->props, &cs, &rk, errstr,
                            errstr_size)))
        goto out;
    rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    int32_t partition = o->partition >= 0 ? o->partition : RD_KAFKA_PARTITION_UA;

    int64_t t0 = core_mono_us();
    size_t cap = CLIENT_LINE_BUF_INIT, len = 0, start = 0;
    size_t seplen = o->key_separator ? strlen(o->key_separator) : 0;
    buf = core_xmalloc(cap);
    int fd = fileno(in), eof = 0;
    int64_t since_poll = 0;
    while (!(o->stop && *o->stop)) {
        char *nl = memchr(buf + start, '\n', len - start);
        if (!nl) {
            if (eof) {
                if (start == len)
                    break;
                nl = buf + len; /* last line without '\n' */
            } else {
                /* keep the partial line, refill behind it */
                memmove(buf, buf + start, len - start);
                len -= start;
                start = 0;
                if (len == cap) {
                    if (cap >= CLIENT_MAX_LINE_BYTES) {
                        rc = core_errf(CORE_ERR_TOO_LARGE, errstr, errstr_size,
                                       "input line %" PRId64 " is longer than %d bytes",
                                       st->lines + st->skipped_empty + 1, CLIENT_MAX_LINE_BYTES);
                        break;
                    }
                    cap *= 2;
                    buf = core_xrealloc(buf, cap);
                }
                ssize_t r = read(fd, buf + len, cap - len);
                if (r < 0) {
                    if (errno == EINTR)
                        continue;
                    rc = core_errf(errno, errstr, errstr_size, "reading input: %s",
                                   strerror(errno));
                    break;
                }
                if (r == 0)
                    eof = 1;
                len += (size_t)r;
                continue;
            }
        }
        char *line = buf + start;
        size_t linelen = (size_t)(nl - line);
        start = nl < buf + len ? (size_t)(nl - buf) + 1 : len;
        if (!linelen) {
            st->skipped_empty++;
            continue;
        }
        const char *key = NULL, *val = line;
        size_t keylen = 0, vallen = linelen;
        if (seplen) {
            char *sep = memmem(line, linelen, o->key_separator, seplen);
            if (sep) {
                key = line;
                keylen = (size_t)(sep - line);
                val = sep + seplen;
                vallen = linelen - keylen - seplen;
            } else {
                st->no_key++;
            }
        }
        st->lines++;
        st->bytes += (int64_t)(keylen + vallen);
        if (o->value_fn) {
            const void *tv;
            size_t tlen;
            char terr[200];
            if (o->value_fn(o->value_opaque, val, vallen, &tv, &tlen, terr, sizeof terr)) {
                if (st->failed++ == 0)
                    snprintf(st->first_error, sizeof st->first_error, "line %" PRId64 ": %s",
                             st->lines + st->skipped_empty, terr);
                continue;
            }
            val = tv;
            vallen = tlen;
        }
        rd_kafka_resp_err_t err =
            produce_one(rk, rkt, partition, key, keylen, val, vallen, hdrs, nhdrs);
        if (err) {
            if (st->failed++ == 0)
                snprintf(st->first_error, sizeof st->first_error, "%s", rd_kafka_err2str(err));
            if (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || err == RD_KAFKA_RESP_ERR__FATAL)
                break; /* every further record would fail the same way */
        }
        if (++since_poll >= CLIENT_POLL_EVERY) {
            rd_kafka_poll(rk, 0);
            since_poll = 0;
        }
    }

    /* Wait for every delivery report. A stop request does not cut this
     * short: the records already handed over get their verdict, bounded by
     * the delivery timeout; whatever is left after it is purged and reported
     * as failed by the purge's own delivery reports. */
    int64_t flush_deadline = core_mono_ms() + o->delivery_timeout_ms + 5000;
    while (rd_kafka_outq_len(rk) > 0 && core_mono_ms() < flush_deadline)
        rd_kafka_flush(rk, 100);
    if (rd_kafka_outq_len(rk) > 0) {
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(rk, 1000);
    }
    st->seconds = (double)(core_mono_us() - t0) / 1e6;
    if (st->failed && cs.all_down) {
        size_t l = strlen(st->first_error);
        snprintf(st->first_error + l, sizeof st->first_error - l, " (last broker error: %s)",
                 cs.last_error);
    }
out:
    free(buf);
    for (int i = 0; i < nhdrs; i++)
        free(hdrs[i].name);
    free(hdrs);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (rk)
        rd_kafka_destroy(rk);
    return rc;
}

/* ---- consume ------------------------------------------------------------------ */

/* Which assigned partitions have reached their end (for --exit-at-end).
 * Partition ids index the array; the group rebalance callback resets it. */
typedef struct client_eof {
    int32_t n;          /* array size (max partition id + 1) */
    uint8_t *assigned;
    uint8_t *at_end;
    int32_t nassigned, nat_end;
} client_eof_t;

static void client_eof_reset(client_eof_t *e, const rd_kafka_topic_partition_list_t *parts)
{
    free(e->assigned);
    free(e->at_end);
    e->n = 0;
    for (int i = 0; parts && i < parts->cnt; i++)
        if (parts->elems[i].partition + 1 > e->n)
            e->n = parts->elems[i].partition + 1;
    e->assigned = core_xcalloc((size_t)e->n + 1, 1);
    e->at_end = core_xcalloc((size_t)e->n + 1, 1);
    e->nassigned = e->nat_end = 0;
    for (int i = 0; parts && i < parts->cnt; i++)
        if (!e->assigned[parts->elems[i].partition]) {
            e->assigned[parts->elems[i].partition] = 1;
            e->nassigned++;
        }
}

typedef struct client_consumer {
    client_state_t cs;
    client_eof_t eof;
    int have_assignment;   /* group mode: an assignment arrived */
} client_consumer_t;

/* Group mode: track the assignment (for --exit-at-end), then apply it the
 * way the negotiated protocol requires (eager: assign/unassign; cooperative:
 * incremental). Runs inside rd_kafka_consumer_poll on the caller's thread. */
static void client_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    client_consumer_t *cc = opaque;
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else
            rd_kafka_assign(rk, parts);
    } else {
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else
            rd_kafka_assign(rk, NULL);
    }
    rd_kafka_topic_partition_list_t *now = NULL;
    if (!rd_kafka_assignment(rk, &now)) {
        client_eof_reset(&cc->eof, now);
        rd_kafka_topic_partition_list_destroy(now);
    }
    cc->have_assignment = cc->eof.nassigned > 0;
}

/* Writes m with value (value, value_len), which is m's payload or its transform.
 * m itself is passed whole: librdkafka's accessors need the original message. */
static void write_record(FILE *out, const rd_kafka_message_t *m, const void *value, size_t value_len,
                         const client_consume_opts_t *o)
{
    if (!o->json) {
        if (o->key_separator) {
            if (m->key)
                fwrite_unlocked(m->key, 1, m->key_len, out);
            fputs_unlocked(o->key_separator, out);
        }
        if (value)
            fwrite_unlocked(value, 1, value_len, out);
        putc_unlocked('\n', out);
        return;
    }
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    fputs_unlocked("{\"topic\":", out);
    const char *topic = rd_kafka_topic_name(m->rkt);
    client_json_write_bytes(out, topic, strlen(topic));
    fprintf(out, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"timestamp\":%" PRId64
                 ",\"timestamp_type\":\"%s\",\"key\":",
            m->partition, m->offset, ts,
            tstype == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "log_append"
            : tstype == RD_KAFKA_TIMESTAMP_CREATE_TIME ? "create"
                                                        : "none");
    client_json_write_bytes(out, m->key, m->key_len);
    fputs_unlocked(",\"value\":", out);
    client_json_write_bytes(out, value, value_len);
    fputs_unlocked(",\"headers\":[", out);
    rd_kafka_headers_t *h = NULL;
    if (!rd_kafka_message_headers(m, &h)) {
        const char *name;
        const void *val;
        size_t vlen;
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &vlen); i++) {
            fputs_unlocked(i ? ",[" : "[", out);
            client_json_write_bytes(out, name, strlen(name));
            putc_unlocked(',', out);
            client_json_write_bytes(out, val, vlen);
            putc_unlocked(']', out);
        }
    }
    fputs_unlocked("]}\n", out);
}

/* No-group mode. librdkafka's high-level consumer (assign()/consumer_poll)
 * insists on a group.id even when it never joins, and inventing one is
 * exactly what we must not do; so this mode uses librdkafka's simple
 * consumer: consume_start_queue() per partition onto one queue, no group,
 * no coordinator, no commits (kcat without -G does the same). */
typedef struct client_simple {
    rd_kafka_topic_t *rkt;
    rd_kafka_queue_t *q;
    int32_t *started;
    int nstarted;
} client_simple_t;

static void client_simple_stop(client_simple_t *s)
{
    for (int i = 0; i < s->nstarted; i++)
        rd_kafka_consume_stop(s->rkt, s->started[i]);
    free(s->started);
    if (s->q)
        rd_kafka_queue_destroy(s->q);
    if (s->rkt)
        rd_kafka_topic_destroy(s->rkt);
    memset(s, 0, sizeof *s);
}

/* Starts every partition of the topic (or the one asked for) at the
 * requested offset. */
static int client_simple_start(rd_kafka_t *rk, client_consumer_t *cc, client_simple_t *s,
                               const client_consume_opts_t *o, char *errstr, size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    int64_t start = o->from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
    if (o->offset && client_offset_parse(o->offset, &start))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "--offset must be beginning, end, N or -N, not '%s'", o->offset);
    if (start == RD_KAFKA_OFFSET_STORED)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "--offset stored needs --group (there is no group to read it from)");
    int rc = client_metadata(rk, &cc->cs, o->brokers, CLIENT_METADATA_TIMEOUT_MS, &md, errstr,
                             errstr_size);
    if (rc)
        return rc;
    const struct rd_kafka_metadata_topic *t = NULL;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strcmp(md->topics[i].topic, o->topic))
            t = &md->topics[i];
    if (!t || t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || (!t->err && !t->partition_cnt)) {
        rc = core_errf(CORE_ERR_NOT_FOUND, errstr, errstr_size, "topic '%s' does not exist",
                       o->topic);
        goto out;
    }
    if (t->err) {
        rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "topic '%s': %s", o->topic,
                       rd_kafka_err2str(t->err));
        goto out;
    }
    if (o->partition >= t->partition_cnt) {
        rc = core_errf(CORE_ERR_RANGE, errstr, errstr_size,
                       "topic '%s' has %d partition(s); there is no partition %" PRId32, o->topic,
                       t->partition_cnt, o->partition);
        goto out;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(t->partition_cnt);
    for (int i = 0; i < t->partition_cnt; i++)
        if (o->partition < 0 || t->partitions[i].id == o->partition)
            rd_kafka_topic_partition_list_add(parts, o->topic, t->partitions[i].id);
    client_eof_reset(&cc->eof, parts);
    s->rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    s->q = rd_kafka_queue_new(rk);
    s->started = core_xcalloc((size_t)parts->cnt, sizeof *s->started);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t pid = parts->elems[i].partition;
        if (rd_kafka_consume_start_queue(s->rkt, pid, start, s->q) == -1) {
            rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "cannot start partition %" PRId32
                           ": %s", pid, rd_kafka_err2str(rd_kafka_last_error()));
            break;
        }
        s->started[s->nstarted++] = pid;
    }
    rd_kafka_topic_partition_list_destroy(parts);
out:
    rd_kafka_metadata_destroy(md);
    return rc;
}

/* Errors that end the run: nothing will get better by waiting. */
static int consume_error_is_final(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_INVALID_GROUP_ID:
    case RD_KAFKA_RESP_ERR__FATAL:
        return 1;
    default:
        return 0;
    }
}

static rd_kafka_message_t *next_message(rd_kafka_t *rk, rd_kafka_queue_t *q, int timeout_ms)
{
    return q ? rd_kafka_consume_queue(q, timeout_ms) : rd_kafka_consumer_poll(rk, timeout_ms);
}

int client_consume_stream(const client_consume_opts_t *o, FILE *out, client_consume_stats_t *st,
                          char *errstr, size_t errstr_size)
{
    client_consumer_t cc;
    client_simple_t simple = {0};
    rd_kafka_t *rk = NULL;
    int rc = CORE_OK;
    memset(&cc, 0, sizeof cc);
    memset(st, 0, sizeof *st);

    if (o->group && !*o->group)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "--group must not be empty");
    /* A group is joined only when named with --group: a group.id slipped in
     * through --property would make several processes share a group nobody
     * chose on the command line (the "two consumers, half the data each"
     * pitfall), so it is refused rather than silently used or ignored. */
    for (int i = 0; !o->group && o->props && i < o->props->n; i++) {
        const char *kv = o->props->v[i];
        while (*kv == ' ')
            kv++;
        if (!strncmp(kv, "group.id", 8) && (kv[8] == '=' || kv[8] == ' '))
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                             "a consumer group is joined only with --group NAME (refusing "
                             "--property group.id=...; pass --group explicitly)");
    }
    if (o->group && (o->partition >= 0 || o->offset))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "--partition and --offset choose partitions by hand; they cannot be "
                         "combined with --group (the group assigns partitions)");

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if ((rc = client_conf_set(conf, "client.id", "eddy-consume", errstr, errstr_size)) ||
        (rc = client_conf_set(conf, "enable.partition.eof", o->exit_at_end ? "true" : "false",
                              errstr, errstr_size)))
        goto conf_err;
    /* The end of a partition is reported when a fetch comes back empty, i.e.
     * after the broker's long poll; a short poll makes --exit-at-end prompt. */
    if (o->exit_at_end &&
        (rc = client_conf_set(conf, "fetch.wait.max.ms", "100", errstr, errstr_size)))
        goto conf_err;
    if (o->group) {
        /* the one place a group id is set: the user's, verbatim */
        if ((rc = client_conf_set(conf, "group.id", o->group, errstr, errstr_size)) ||
            (rc = client_conf_set(conf, "auto.offset.reset",
                                  o->from_beginning ? "earliest" : "latest", errstr,
                                  errstr_size)))
            goto conf_err;
        rd_kafka_conf_set_rebalance_cb(conf, client_rebalance_cb);
    } else {
        if ((rc = client_conf_set(conf, "enable.auto.commit", "false", errstr, errstr_size)) ||
            (rc = client_conf_set(conf, "enable.auto.offset.store", "false", errstr,
                                  errstr_size)))
            goto conf_err;
    }
    if ((rc = client_rk_new(RD_KAFKA_CONSUMER, conf, o->brokers, o->props, &cc.cs, &rk, errstr,
                            errstr_size)))
        goto out;
    if (o->group) {
        rd_kafka_poll_set_consumer(rk);
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, o->topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (err) {
            rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "cannot subscribe to '%s': %s",
                           o->topic, rd_kafka_err2str(err));
            goto out;
        }
    } else if ((rc = client_simple_start(rk, &cc, &simple, o, errstr, errstr_size))) {
        goto out;
    }

    while (!(o->stop && *o->stop)) {
        if (o->max_messages > 0 && st->messages >= o->max_messages)
            break;
        /* Drain what is ready without blocking; flush our output only when
         * about to wait, so a fast topic is written in big blocks and a slow
         * one still shows each record at once. */
        rd_kafka_message_t *m = next_message(rk, simple.q, 0);
        if (!m) {
            fflush(out);
            if (simple.q)
                rd_kafka_poll(rk, 0); /* error_cb and logs live on the main queue here */
            m = next_message(rk, simple.q, 100);
            if (!m)
                continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            client_eof_t *e = &cc.eof;
            int32_t p = m->partition;
            if (p >= 0 && p < e->n && e->assigned[p] && !e->at_end[p]) {
                e->at_end[p] = 1;
                e->nat_end++;
            }
            rd_kafka_message_destroy(m);
            if (o->exit_at_end && e->nassigned > 0 && e->nat_end >= e->nassigned)
                break;
            continue;
        }
        if (m->err) {
            rd_kafka_resp_err_t err = m->err;
            char msg[512];
            snprintf(msg, sizeof msg, "%s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (consume_error_is_final(err) || cc.cs.fatal) {
                rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "consume from '%s': %s",
                               o->topic, msg);
                break;
            }
            fprintf(stderr, "eddy consume: %s (retrying)\n", msg);
            continue;
        }
        if (o->value_fn) {
            const void *tv;
            size_t tlen;
            char terr[300];
            if (o->value_fn(o->value_opaque, m->payload, m->payload ? m->len : 0, &tv, &tlen, terr,
                            sizeof terr)) {
                fprintf(stderr, "eddy consume: partition %" PRId32 " offset %" PRId64 ": %s\n",
                        m->partition, m->offset, terr);
                st->untransformed++;
                rd_kafka_message_destroy(m);
                continue;
            }
            write_record(out, m, tv, tlen, o); /* the transformed value in place of the stored one */
        } else {
            write_record(out, m, m->payload, m->len, o);
        }
        st->messages++;
        st->bytes += (int64_t)(m->len + m->key_len);
        rd_kafka_message_destroy(m);
    }
    fflush(out);
    goto out;
conf_err:
    rd_kafka_conf_destroy(conf);
out:
    client_simple_stop(&simple);
    if (rk) {
        if (o->group)
            rd_kafka_consumer_close(rk); /* final commit and LeaveGroup */
        rd_kafka_destroy(rk);
    }
    free(cc.eof.assigned);
    free(cc.eof.at_end);
    return rc;
}
