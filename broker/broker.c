#include "broker/broker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_groups.h"
#include "broker/broker_proto.h"
#include "core/core_alloc.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_fs.h"
#include "core/core_log.h"

void broker_conf_default(broker_conf_t *conf)
{
    memset(conf, 0, sizeof *conf);
    broker_log_conf_t lc;
    broker_log_conf_default(&lc);
    conf->auto_create_topics = true;
    conf->num_partitions = 1;
    conf->max_partitions = BROKER_PROTO_MAX_CREATE_PARTITIONS;
    conf->max_request_bytes = 100LL << 20;
    conf->segment_bytes = lc.segment_bytes;
    conf->segment_ms = lc.segment_ms;
    conf->retention_bytes = lc.retention_bytes;
    conf->retention_ms = lc.retention_ms;
    conf->max_message_bytes = lc.max_message_bytes;
    conf->housekeeping_ms = 30000;
    conf->node_id = 0;
    conf->max_connections = 10000;
    conf->offsets_retention_ms = 7LL * 24 * 3600 * 1000;
    conf->group_min_session_timeout_ms = 6000;
    conf->group_max_session_timeout_ms = 1800000;
    conf->group_initial_rebalance_delay_ms = 3000;
    conf->lag_refresh_ms = 10000;
}

double broker_api_lat_bound_us(int i)
{
    static const double bounds[BROKER_API_LAT_BUCKETS] = {100,   250,    500,    1000,   2500,    5000,
                                                          10000, 25000, 100000, 500000, 1000000, 5000000};
    return bounds[i];
}

void broker_api_stats_add(broker_api_stats_t *s, int64_t us)
{
    if (us < 0)
        us = 0;
    s->count++;
    s->sum_us += (uint64_t)us;
    for (int i = 0; i < BROKER_API_LAT_BUCKETS; i++)
        if ((double)us <= broker_api_lat_bound_us(i)) {
            s->buckets[i]++;
            break;
        }
}

/* producer-id-block: "0\n<end of the last reserved block>\n" (format 0).
 * Missing = no id was ever handed out. */
static int pid_block_load(broker_t *b, char *errstr, size_t errstr_size)
{
    int64_t v = 0;
    int rc = core_fs_i64_load(b->conf.data_dir, BROKER_PID_FILE, &v);
    if (rc == ENOENT)
        v = 0;
    else if (rc == CORE_ERR_CORRUPT || (!rc && v >= INT64_MAX - BROKER_PID_BLOCK))
        return core_errf(CORE_ERR_CORRUPT, errstr, errstr_size,
                         "%s/%s: malformed (producer ids could repeat: fix or remove it)",
                         b->conf.data_dir, BROKER_PID_FILE);
    else if (rc)
        return core_errf(CORE_ERR_IO, errstr, errstr_size, "%s/%s: %s", b->conf.data_dir,
                         BROKER_PID_FILE, rc > 0 ? strerror(rc) : core_strerror(rc));
    b->next_pid = b->pid_limit = v;
    return 0;
}

int broker_producer_id_next(broker_t *b, int64_t *pid)
{
    if (b->next_pid >= b->pid_limit) {
        int64_t limit = b->next_pid + BROKER_PID_BLOCK;
        int rc = core_fs_i64_save(b->conf.data_dir, BROKER_PID_FILE, limit);
        if (rc) {
            CORE_ERROR("broker", "%s/%s: cannot reserve producer ids: %s", b->conf.data_dir,
                       BROKER_PID_FILE, rc > 0 ? strerror(rc) : core_strerror(rc));
            return CORE_ERR_IO;
        }
        b->pid_limit = limit;
    }
    *pid = b->next_pid++;
    return 0;
}

int broker_open(const broker_conf_t *conf, broker_t **bp, char *errstr, size_t errstr_size)
{
    broker_t *b = core_xcalloc(1, sizeof *b);
    b->conf = *conf;
    b->node_id = (int32_t)conf->node_id;
    snprintf(b->cluster_id, sizeof b->cluster_id, "eddy-cluster");
    broker_log_conf_default(&b->log_defaults);
    if (conf->segment_bytes > 0)
        b->log_defaults.segment_bytes = conf->segment_bytes;
    if (conf->segment_ms > 0)
        b->log_defaults.segment_ms = conf->segment_ms;
    b->log_defaults.retention_bytes = conf->retention_bytes;
    b->log_defaults.retention_ms = conf->retention_ms;
    if (conf->max_message_bytes > 0)
        b->log_defaults.max_message_bytes = conf->max_message_bytes;
    /* Until the listener is bound, advertise the configured address. */
    char host[256];
    int port = 9092;
    const char *adv = conf->advertised ? conf->advertised : conf->listen;
    if (adv && !core_parse_hostport(adv, host, sizeof host, &port))
        broker_set_advertised(b, host, port);
    else
        broker_set_advertised(b, "127.0.0.1", 9092);
    int rc = broker_topics_open(conf->data_dir, &b->log_defaults, &b->topics, errstr, errstr_size);
    if (rc) {
        free(b);
        return rc;
    }
    if ((rc = pid_block_load(b, errstr, errstr_size))) {
        broker_topics_close(b->topics);
        free(b);
        return rc;
    }
    *bp = b;
    return CORE_OK;
}

void broker_close(broker_t *b)
{
    if (!b)
        return;
    broker_topics_close(b->topics);
    free(b->dirty);
    free(b->appended);
    free(b);
}

void broker_set_advertised(broker_t *b, const char *host, int port)
{
    snprintf(b->host, sizeof b->host, "%s", host);
    b->port = port;
}

broker_topic_t *broker_topic_get(broker_t *b, const char *name, size_t len, bool create,
                                 int16_t *kerr)
{
    broker_topic_t *t = name ? broker_topics_find(b->topics, name, len) : NULL;
    if (t)
        return t;
    if (!name || !broker_topic_name_valid(name, len)) {
        *kerr = BROKER_KERR_INVALID_TOPIC_EXCEPTION;
        return NULL;
    }
    *kerr = BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (!create || !b->conf.auto_create_topics)
        return NULL;
    if (!broker_groups_topic_allowed(b, name, len, NULL, 0)) {
        *kerr = BROKER_KERR_INVALID_TOPIC_EXCEPTION; /* --topic-name-pattern (logged) */
        return NULL;
    }
    char cname[256]; /* legal names are at most 249 bytes */
    memcpy(cname, name, len);
    cname[len] = 0;
    char err[256] = "";
    int rc = broker_topics_create(b->topics, cname, (int32_t)b->conf.num_partitions, NULL, NULL, 0,
                                  false, err, sizeof err);
    if (rc) {
        CORE_WARN("broker", "auto-creating topic %s failed: %s", cname, err[0] ? err : core_strerror(rc));
        *kerr = rc == CORE_ERR_INVAL ? BROKER_KERR_INVALID_TOPIC_EXCEPTION
                                     : BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return NULL;
    }
    CORE_DEBUG("broker", "auto-created topic %s (%lld partitions)", cname,
              (long long)b->conf.num_partitions);
    return broker_topics_find(b->topics, name, len);
}

void broker_appended_add(broker_t *b, broker_log_t *log)
{
    for (int i = 0; i < b->nappended; i++)
        if (b->appended[i] == log)
            return;
    if (b->nappended == b->appended_cap) {
        b->appended_cap = b->appended_cap ? b->appended_cap * 2 : 16;
        b->appended = core_xrealloc(b->appended, (size_t)b->appended_cap * sizeof *b->appended);
    }
    b->appended[b->nappended++] = log;
}

void broker_dirty_add(broker_t *b, broker_log_t *log)
{
    for (int i = 0; i < b->ndirty; i++)
        if (b->dirty[i] == log)
            return;
    if (b->ndirty == b->dirty_cap) {
        b->dirty_cap = b->dirty_cap ? b->dirty_cap * 2 : 16;
        b->dirty = core_xrealloc(b->dirty, (size_t)b->dirty_cap * sizeof *b->dirty);
    }
    b->dirty[b->ndirty++] = log;
}

uint64_t broker_dirty_take(broker_t *b, broker_log_t ***logs, int *nlogs)
{
    *logs = b->dirty;
    *nlogs = b->ndirty;
    b->dirty = NULL;
    b->ndirty = b->dirty_cap = 0;
    b->flushing = *logs;
    b->nflushing = *nlogs;
    return ++b->flush_started;
}

void broker_flush_done(broker_t *b, uint64_t gen)
{
    b->flush_done = gen;
    b->flushing = NULL;
    b->nflushing = 0;
}

static bool log_in(broker_log_t *const *logs, int n, const broker_log_t *log)
{
    for (int i = 0; i < n; i++)
        if (logs[i] == log)
            return true;
    return false;
}

bool broker_topic_flush_busy(const broker_t *b, const broker_topic_t *t)
{
    for (int32_t p = 0; p < t->npartitions; p++)
        if (log_in(b->dirty, b->ndirty, t->partitions[p]) ||
            log_in(b->flushing, b->nflushing, t->partitions[p]))
            return true;
    return false;
}
