/*
 * broker_groups — consumer groups wired into the broker. See broker_groups.h.
 */
#include "broker/broker_groups.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "broker/broker_lag.h"
#include "broker/broker_net.h"
#include "broker/broker_offsets.h"
#include "broker/broker_producer.h"
#include "broker/broker_proto_group.h"
#include "core/core_alloc.h"
#include "core/core_conf.h"
#include "core/core_http.h"
#include "core/core_log.h"
#include "core/core_time.h"

#define MOD "groups"
#define CLUSTER "local"

/* A JoinGroup/SyncGroup whose answer the coordinator may give later. */
typedef struct held {
    struct held *next;
    broker_groups_t *g;
    broker_req_t *req;        /* NULL once the connection went away */
    int16_t version;
    bool in_call;             /* inside broker_cg_join/sync: answer inline */
    bool answered;
    bool queued;              /* on the completion list */
} held_t;

typedef enum http_kind {
    HJ_METRICS,
    HJ_CLUSTER,
    HJ_CONSUMERS,
    HJ_CONSUMER,
    HJ_STATUS,
    HJ_LAG,
    HJ_TOPICS,
    HJ_TOPIC,
} http_kind_t;

typedef struct http_job {
    struct http_job *next;
    http_kind_t kind;
    char *cluster, *name, *path; /* copies (the loop may outlive the HTTP request) */
    int status;
    char *body;               /* malloc'ed by the loop, freed by the handler */
    size_t body_len;
    bool json;
    bool taken;               /* the loop took it off the queue */
    bool done;                /* the loop finished it */
    bool abandoned;           /* the handler gave up: the loop frees it */
} http_job_t;

struct broker_groups {
    broker_t *b;
    broker_cg_t *cg;
    broker_offsets_t *offsets;
    broker_lag_t *lag;
    regex_t group_re, topic_re;
    bool has_group_re, has_topic_re;
    char last_rejected[256];
    int64_t last_rejected_ms;
    bool load_done, load_failed;
    bool stopping;            /* SIGTERM seen: group requests answer NOT_COORDINATOR */

    uv_timer_t tick, load, complete, heads, retention;
    uv_signal_t sigterm, sigint; /* shutdown begins: stop HTTP before the loop's handles close */
    bool timers_started;
    held_t *done_head, **done_tail;

    /* HTTP hand-over (see the header) */
    core_http_t *http;
    int http_port;
    uv_async_t async;
    bool async_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    http_job_t *jobs;
    bool closing;
    char hostname[256];
};

/* ---- naming standards ------------------------------------------------------------- */
static int compile_anchored(regex_t *re, const char *pat, char *errstr, size_t errstr_size,
                            const char *flag)
{
    size_t n = strlen(pat) + 8;
    char *full = core_xmalloc(n);
    snprintf(full, n, "^(%s)$", pat);
    int rc = regcomp(re, full, REG_EXTENDED | REG_NOSUB);
    free(full);
    if (rc) {
        char e[128];
        regerror(rc, re, e, sizeof e);
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "--%s '%s': %s", flag, pat, e);
    }
    return CORE_OK;
}

static bool name_allowed(broker_groups_t *g, regex_t *re, bool has, const char *what,
                         const char *flag, const char *pattern, const char *name, size_t len,
                         char *msg, size_t msgsz)
{
    if (!has)
        return true;
    char buf[512];
    if (len >= sizeof buf)
        len = sizeof buf - 1;
    memcpy(buf, name, len);
    buf[len] = 0;
    if (strlen(buf) == len && regexec(re, buf, 0, NULL, 0) == 0)
        return true;
    if (msg)
        snprintf(msg, msgsz, "%s name '%s' does not match the naming standard --%s '%s'", what, buf,
                 flag, pattern);
    int64_t now = core_mono_ms();
    if (strcmp(g->last_rejected, buf) || now - g->last_rejected_ms > 60000) {
        CORE_WARN(MOD, "rejected %s '%s': does not match --%s '%s'", what, buf, flag, pattern);
        snprintf(g->last_rejected, sizeof g->last_rejected, "%.*s", (int)sizeof g->last_rejected - 1, buf);
        g->last_rejected_ms = now;
    }
    return false;
}

bool broker_groups_topic_allowed(broker_t *b, const char *name, size_t len, char *msg, size_t msgsz)
{
    broker_groups_t *g = b->groups;
    if (!g)
        return true;
    /* Internal topics are the broker's own, not subject to user naming rules. */
    return name_allowed(g, &g->topic_re, g->has_topic_re, "topic", "topic-name-pattern",
                        b->conf.topic_name_pattern, name, len, msg, msgsz);
}

bool broker_groups_group_allowed(broker_t *b, const char *name, size_t len, char *msg, size_t msgsz)
{
    broker_groups_t *g = b->groups;
    if (!g)
        return true;
    return name_allowed(g, &g->group_re, g->has_group_re, "group", "group-name-pattern",
                        b->conf.group_name_pattern, name, len, msg, msgsz);
}

static bool group_slice_allowed(broker_t *b, core_slice_t s, char *msg, size_t msgsz)
{
    if (s.len <= 0)
        return true; /* empty ids are the coordinator's INVALID_GROUP_ID case */
    return broker_groups_group_allowed(b, (const char *)s.ptr, (size_t)s.len, msg, msgsz);
}

/* ---- lag feed ------------------------------------------------------------------------ */
static int64_t partition_head(broker_t *b, const char *topic, int32_t partition)
{
    broker_topic_t *t = broker_topics_find(b->topics, topic, strlen(topic));
    if (!t || partition < 0 || partition >= t->npartitions)
        return -1;
    return broker_log_high_watermark(t->partitions[partition]);
}

static void on_applied(void *arg, const char *group, const char *topic, int32_t partition,
                       const broker_cg_offset_t *off)
{
    broker_groups_t *g = arg;
    if (!off)
        return;
    broker_lag_commit(g->lag, group, topic, partition, off->offset, off->commit_ts,
                      partition_head(g->b, topic, partition), core_wall_ms());
}

static int64_t head_cb(void *arg, const char *topic, int32_t partition)
{
    return partition_head(arg, topic, partition);
}

static bool owner_cb(void *arg, const char *group, const char *topic, int32_t partition,
                     const char **owner, const char **client_id)
{
    broker_t *b = arg;
    return broker_cg_owner(b->groups->cg, group, topic, partition, client_id, owner);
}

static void groups_apply(broker_groups_t *g)
{
    if (g->offsets)
        broker_offsets_apply(g->offsets);
}

/* ---- open / close ---------------------------------------------------------------------- */
int broker_groups_open(broker_t *b, char *errstr, size_t errstr_size)
{
    broker_groups_t *g = core_xcalloc(1, sizeof *g);
    g->b = b;
    g->done_tail = &g->done_head;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    if (gethostname(g->hostname, sizeof g->hostname) != 0)
        snprintf(g->hostname, sizeof g->hostname, "localhost");
    int rc = CORE_OK;
    if (b->conf.group_name_pattern && *b->conf.group_name_pattern) {
        rc = compile_anchored(&g->group_re, b->conf.group_name_pattern, errstr, errstr_size,
                              "group-name-pattern");
        if (rc)
            goto fail;
        g->has_group_re = true;
    }
    if (b->conf.topic_name_pattern && *b->conf.topic_name_pattern) {
        rc = compile_anchored(&g->topic_re, b->conf.topic_name_pattern, errstr, errstr_size,
                              "topic-name-pattern");
        if (rc)
            goto fail;
        g->has_topic_re = true;
    }
    broker_cg_conf_t cc;
    broker_cg_conf_default(&cc);
    cc.min_session_timeout_ms = b->conf.group_min_session_timeout_ms;
    cc.max_session_timeout_ms = b->conf.group_max_session_timeout_ms;
    cc.initial_rebalance_delay_ms = b->conf.group_initial_rebalance_delay_ms;
    cc.offsets_retention_ms = b->conf.offsets_retention_ms;
    broker_cg_new(&cc, &g->cg);
    rc = broker_offsets_open(b->conf.data_dir, g->cg, &g->offsets, errstr, errstr_size);
    if (rc)
        goto fail;
    broker_lag_conf_t lc;
    broker_lag_conf_default(&lc);
    g->lag = broker_lag_new(&lc);
    broker_offsets_set_hook(g->offsets, on_applied, g);
    b->groups = g;
    return CORE_OK;
fail:
    if (g->has_group_re)
        regfree(&g->group_re);
    if (g->has_topic_re)
        regfree(&g->topic_re);
    broker_cg_free(g->cg);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
    return rc;
}

/* ---- held requests ------------------------------------------------------------------------ */
static void complete_drain(uv_timer_t *t)
{
    broker_groups_t *g = t->data;
    held_t *h = g->done_head;
    g->done_head = NULL;
    g->done_tail = &g->done_head;
    while (h) {
        held_t *next = h->next;
        broker_req_t *req = h->req;
        free(h);
        if (req) {
            req->cancel = NULL;
            broker_req_complete(req); /* may run the connection's next requests */
        }
        h = next;
    }
}

static void held_answered(held_t *h)
{
    h->answered = true;
    if (h->in_call)
        return; /* the handler returns DONE itself */
    broker_groups_t *g = h->g;
    h->queued = true;
    h->next = NULL;
    *g->done_tail = h;
    g->done_tail = &h->next;
    if (g->timers_started)
        uv_timer_start(&g->complete, complete_drain, 0, 0);
}

static void held_cancel(broker_req_t *req, void *opaque)
{
    held_t *h = opaque;
    if (h->queued) {
        h->req = NULL; /* the drain frees it without completing */
        return;
    }
    broker_cg_cancel(h->g->cg, h);
    free(h);
}

static broker_proto_res_t held_finish(held_t *h)
{
    if (h->answered) {
        free(h);
        return BROKER_PROTO_DONE;
    }
    h->req->cancel = held_cancel;
    h->req->cancel_opaque = h;
    return BROKER_PROTO_PENDING;
}

static broker_proto_res_t reject(broker_req_t *req, const char *what)
{
    CORE_WARN(MOD, "%s v%d request from client '%.*s' does not parse (%s); closing the connection",
              broker_proto_api_name(req->hdr.api_key), req->hdr.api_version,
              (int)(req->hdr.client_id.len > 0 ? req->hdr.client_id.len : 0),
              req->hdr.client_id.len > 0 ? (const char *)req->hdr.client_id.ptr : "", what);
    return BROKER_PROTO_CLOSE;
}

/* A broker opened without its group component (tools, harnesses) has no
 * coordinator: say so the way clients understand, per API layout. */
static broker_proto_res_t no_coordinator(broker_req_t *req)
{
    int16_t v = req->hdr.api_version;
    int16_t err = BROKER_CG_ERR_COORDINATOR_NOT_AVAILABLE;
    broker_proto_begin(req);
    core_buf_t *o = &req->out;
    switch (req->hdr.api_key) {
    case BROKER_API_FIND_COORDINATOR: {
        broker_proto_findcoord_resp_t r = {.error_code = err, .error_message = "no group coordinator",
                                           .node_id = -1, .host = "", .port = -1};
        broker_proto_findcoord_encode(o, v, &r);
        break;
    }
    case BROKER_API_JOIN_GROUP: {
        broker_cg_join_resp_t r = {.error_code = err, .generation_id = -1, .protocol_name = "",
                                   .leader = "", .member_id = ""};
        broker_proto_join_encode(o, v, &r);
        break;
    }
    case BROKER_API_SYNC_GROUP: {
        broker_cg_sync_resp_t r = {.error_code = err};
        broker_proto_sync_encode(o, v, &r);
        break;
    }
    case BROKER_API_HEARTBEAT:
        broker_proto_heartbeat_encode(o, v, err);
        break;
    case BROKER_API_LEAVE_GROUP: {
        broker_cg_leave_req_t r = {0};
        broker_proto_leave_encode(o, v, err, &r);
        break;
    }
    case BROKER_API_LIST_GROUPS:
        broker_proto_list_groups_encode(o, v, err, NULL, 0);
        break;
    default:
        /* OffsetCommit/OffsetFetch/DescribeGroups carry per-entry errors;
         * without a coordinator an empty answer is the honest one. */
        if (req->hdr.api_key == BROKER_API_OFFSET_COMMIT) {
            broker_cg_commit_req_t r = {0};
            broker_proto_commit_encode(o, v, &r, NULL);
        } else if (req->hdr.api_key == BROKER_API_OFFSET_FETCH) {
            broker_cg_fetch_req_t r = {.error_code = err};
            broker_proto_offset_fetch_encode(o, v, &r);
        } else {
            broker_cg_describe_req_t r = {0};
            broker_proto_describe_encode(o, v, &r);
        }
        break;
    }
    broker_proto_finish(req);
    return BROKER_PROTO_DONE;
}

/* "/127.0.0.1" from the connection's "127.0.0.1:port", as Kafka shows client hosts. */
static void client_host(const broker_req_t *req, char *out, size_t outsz)
{
    const char *peer = req->peer ? req->peer : "";
    const char *colon = strrchr(peer, ':');
    int n = colon ? (int)(colon - peer) : (int)strlen(peer);
    snprintf(out, outsz, "/%.*s", n, peer);
}

/* ---- FindCoordinator ------------------------------------------------------------------------ */
broker_proto_res_t broker_groups_handle_find_coordinator(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    if (!b->groups)
        return no_coordinator(req);
    int16_t v = req->hdr.api_version;
    broker_proto_findcoord_req_t fr;
    if (broker_proto_findcoord_decode(rd, v, &fr))
        return reject(req, "FindCoordinator");
    broker_proto_findcoord_resp_t r = {.error_code = 0, .node_id = b->node_id, .host = b->host,
                                       .port = b->port};
    char msg[600];
    if (fr.key_type != 0) {
        /* Fatal at once in every client (a retriable code such as
         * COORDINATOR_NOT_AVAILABLE makes them retry until their
         * transaction timeout); see broker_proto.h. */
        r.error_code = BROKER_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        r.error_message = "transactions are not supported by this broker";
    } else if (!group_slice_allowed(b, fr.key, msg, sizeof msg)) {
        r.error_code = BROKER_CG_ERR_INVALID_GROUP_ID;
        r.error_message = msg;
    }
    if (r.error_code) {
        r.node_id = -1;
        r.host = "";
        r.port = -1;
    }
    broker_proto_begin(req);
    broker_proto_findcoord_encode(&req->out, v, &r);
    broker_proto_finish(req);
    return BROKER_PROTO_DONE;
}

/* ---- JoinGroup / SyncGroup -------------------------------------------------------------------- */
static void join_cb(void *arg, const broker_cg_join_resp_t *resp)
{
    held_t *h = arg;
    if (h->req) {
        broker_proto_begin(h->req);
        broker_proto_join_encode(&h->req->out, h->version, resp);
        broker_proto_finish(h->req);
    }
    held_answered(h);
}

broker_proto_res_t broker_groups_handle_join(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    if (!b->groups)
        return no_coordinator(req);
    broker_groups_t *g = b->groups;
    int16_t v = req->hdr.api_version;
    broker_cg_join_req_t jr = {0};
    if (broker_proto_join_decode(rd, v, &jr)) {
        broker_cg_arena_free(&jr.arena);
        return reject(req, "JoinGroup");
    }
    groups_apply(g);
    char host[80];
    client_host(req, host, sizeof host);
    jr.client_id = req->hdr.client_id;
    jr.client_host = host;
    held_t *h = core_xcalloc(1, sizeof *h);
    h->g = g;
    h->req = req;
    h->version = v;
    h->in_call = true;
    if (g->stopping || !group_slice_allowed(b, jr.group_id, NULL, 0)) {
        broker_cg_join_resp_t r = {.error_code = g->stopping ? BROKER_CG_ERR_NOT_COORDINATOR
                                                             : BROKER_CG_ERR_INVALID_GROUP_ID,
                                   .generation_id = -1, .protocol_name = "", .leader = "",
                                   .member_id = ""};
        join_cb(h, &r);
    } else {
        broker_cg_join(g->cg, &jr, req->now_ms, join_cb, h);
    }
    h->in_call = false;
    broker_cg_arena_free(&jr.arena);
    return held_finish(h);
}

static void sync_cb(void *arg, const broker_cg_sync_resp_t *resp)
{
    held_t *h = arg;
    if (h->req) {
        broker_proto_begin(h->req);
        broker_proto_sync_encode(&h->req->out, h->version, resp);
        broker_proto_finish(h->req);
    }
    held_answered(h);
}

broker_proto_res_t broker_groups_handle_sync(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    if (!b->groups)
        return no_coordinator(req);
    broker_groups_t *g = b->groups;
    int16_t v = req->hdr.api_version;
    broker_cg_sync_req_t sr = {0};
    if (broker_proto_sync_decode(rd, v, &sr)) {
        broker_cg_arena_free(&sr.arena);
        return reject(req, "SyncGroup");
    }
    held_t *h = core_xcalloc(1, sizeof *h);
    h->g = g;
    h->req = req;
    h->version = v;
    h->in_call = true;
    if (g->stopping || !group_slice_allowed(b, sr.group_id, NULL, 0)) {
        broker_cg_sync_resp_t r = {.error_code = g->stopping ? BROKER_CG_ERR_NOT_COORDINATOR
                                                             : BROKER_CG_ERR_INVALID_GROUP_ID};
        sync_cb(h, &r);
    } else {
        broker_cg_sync(g->cg, &sr, req->now_ms, sync_cb, h);
    }
    h->in_call = false;
    broker_cg_arena_free(&sr.arena);
    return held_finish(h);
}

/* ---- Heartbeat / LeaveGroup ---------------------------------------------------------------------- */
broker_proto_res_t broker_groups_handle_heartbeat(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    if (!b->groups)
        return no_coordinator(req);
    int16_t v = req->hdr.api_version;
    broker_cg_heartbeat_req_t hr;
    if (broker_proto_heartbeat_decode(rd, v, &hr))
        return reject(req, "Heartbeat");
    int16_t err = group_slice_allowed(b, hr.group_id, NULL, 0)
                      ? broker_cg_heartbeat(b->groups->cg, &hr, req->now_ms)
                      : BROKER_CG_ERR_INVALID_GROUP_ID;
    broker_proto_begin(req);
    broker_proto_heartbeat_encode(&req->out, v, err);
    broker_proto_finish(req);
    return BROKER_PROTO_DONE;
}

broker_proto_res_t broker_groups_handle_leave(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    if (!b->groups)
        return no_coordinator(req);
    int16_t v = req->hdr.api_version;
    broker_cg_leave_req_t lr = {0};
    if (broker_proto_leave_decode(rd, v, &lr)) {
        broker_cg_arena_free(&lr.arena);
        return reject(req, "LeaveGroup");
    }
    int16_t err;
    if (!group_slice_allowed(b, lr.group_id, NULL, 0)) {
        err = BROKER_CG_ERR_INVALID_GROUP_ID;
        for (int i = 0; i < lr.nmembers; i++)
            lr.members[i].error_code = err;
    } else {
        err = broker_cg_leave(b->groups->cg, &lr, req->now_ms);
    }
    broker_proto_begin(req);
    broker_proto_leave_encode(&req->out, v, err, &lr);
    broker_proto_finish(req);
    broker_cg_arena_free(&lr.arena);
    return BROKER_PROTO_DONE;
}

/* ---- OffsetCommit / OffsetFetch --------------------------------------------------------------------- */
broker_proto_res_t broker_groups_handle_offset_commit(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    if (!b->groups)
        return no_coordinator(req);
    broker_groups_t *g = b->groups;
    int16_t v = req->hdr.api_version;
    broker_cg_commit_req_t cr = {0};
    if (broker_proto_commit_decode(rd, v, &cr)) {
        broker_cg_arena_free(&cr.arena);
        return reject(req, "OffsetCommit");
    }
    groups_apply(g);
    int nparts = 0;
    bool group_ok = group_slice_allowed(b, cr.group_id, NULL, 0);
    for (int t = 0; t < cr.ntopics; t++) {
        broker_cg_commit_topic_t *ct = &cr.topics[t];
        nparts += ct->npartitions;
        broker_topic_t *topic = ct->name.len > 0
                                    ? broker_topics_find(b->topics, (const char *)ct->name.ptr,
                                                         (size_t)ct->name.len)
                                    : NULL;
        for (int p = 0; p < ct->npartitions; p++) {
            broker_cg_commit_part_t *cp = &ct->partitions[p];
            if (!group_ok)
                cp->error_code = BROKER_CG_ERR_INVALID_GROUP_ID;
            else if (!topic || cp->partition < 0 || cp->partition >= topic->npartitions)
                cp->error_code = BROKER_CG_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        }
    }
    int64_t last = -1;
    if (group_ok && broker_cg_commit_check(g->cg, &cr, req->now_ms) > 0) {
        int rc = broker_offsets_append(g->offsets, &cr, core_wall_ms(), &last);
        if (rc) {
            for (int t = 0; t < cr.ntopics; t++)
                for (int p = 0; p < cr.topics[t].npartitions; p++)
                    if (!cr.topics[t].partitions[p].error_code)
                        cr.topics[t].partitions[p].error_code = BROKER_CG_ERR_KAFKA_STORAGE_ERROR;
            last = -1;
        }
    }
    size_t *pos = nparts ? core_xcalloc((size_t)nparts, sizeof *pos) : NULL;
    broker_proto_begin(req);
    broker_proto_commit_encode(&req->out, v, &cr, pos);
    broker_proto_finish(req);
    broker_proto_res_t res = BROKER_PROTO_DONE;
    if (last >= 0) {
        /* Answer after the group-commit flush made the batch durable; a failed
         * flush turns each accepted partition's code into KAFKA_STORAGE_ERROR. */
        broker_log_t *log = broker_offsets_log(g->offsets);
        broker_dirty_add(b, log);
        int k = 0;
        for (int t = 0; t < cr.ntopics; t++)
            for (int p = 0; p < cr.topics[t].npartitions; p++, k++)
                if (!cr.topics[t].partitions[p].error_code)
                    broker_req_add_wait(req, log, last, pos[k]);
        req->flush_gen = b->flush_started + 1;
        b->acks_all_waiting++;
        res = BROKER_PROTO_FLUSH;
    }
    free(pos);
    broker_cg_arena_free(&cr.arena);
    return res;
}

broker_proto_res_t broker_groups_handle_offset_fetch(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    if (!b->groups)
        return no_coordinator(req);
    broker_groups_t *g = b->groups;
    int16_t v = req->hdr.api_version;
    broker_cg_fetch_req_t fr = {0};
    if (broker_proto_offset_fetch_decode(rd, v, &fr)) {
        broker_cg_arena_free(&fr.arena);
        return reject(req, "OffsetFetch");
    }
    groups_apply(g);
    if (!group_slice_allowed(b, fr.group_id, NULL, 0)) {
        fr.error_code = BROKER_CG_ERR_INVALID_GROUP_ID;
        if (fr.ntopics < 0)
            fr.ntopics = 0;
        for (int t = 0; t < fr.ntopics; t++)
            for (int p = 0; p < fr.topics[t].npartitions; p++) {
                broker_cg_fetch_part_t *fp = &fr.topics[t].partitions[p];
                fp->offset = -1;
                fp->leader_epoch = -1;
                fp->metadata = "";
                fp->error_code = BROKER_CG_ERR_INVALID_GROUP_ID;
            }
    } else {
        broker_cg_offset_fetch(g->cg, &fr);
    }
    broker_proto_begin(req);
    broker_proto_offset_fetch_encode(&req->out, v, &fr);
    broker_proto_finish(req);
    broker_cg_arena_free(&fr.arena);
    return BROKER_PROTO_DONE;
}

/* ---- ListGroups / DescribeGroups ------------------------------------------------------------------------- */
broker_proto_res_t broker_groups_handle_list_groups(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    if (!b->groups)
        return no_coordinator(req);
    int16_t v = req->hdr.api_version;
    if (broker_proto_list_groups_decode(rd, v))
        return reject(req, "ListGroups");
    groups_apply(b->groups);
    broker_cg_arena_t arena = {0};
    broker_cg_listed_t *groups;
    int32_t n;
    int16_t err = broker_cg_list(b->groups->cg, &arena, &groups, &n);
    broker_proto_begin(req);
    broker_proto_list_groups_encode(&req->out, v, err, groups, n);
    broker_proto_finish(req);
    broker_cg_arena_free(&arena);
    return BROKER_PROTO_DONE;
}

broker_proto_res_t broker_groups_handle_describe_groups(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    if (!b->groups)
        return no_coordinator(req);
    int16_t v = req->hdr.api_version;
    broker_cg_describe_req_t dr = {0};
    if (broker_proto_describe_decode(rd, v, &dr)) {
        broker_cg_arena_free(&dr.arena);
        return reject(req, "DescribeGroups");
    }
    groups_apply(b->groups);
    broker_cg_describe(b->groups->cg, &dr);
    for (int i = 0; i < dr.ngroups && dr.out; i++)
        if (!group_slice_allowed(b, dr.groups[i], NULL, 0)) {
            dr.out[i].error_code = BROKER_CG_ERR_INVALID_GROUP_ID;
            dr.out[i].nmembers = 0;
        }
    broker_proto_begin(req);
    broker_proto_describe_encode(&req->out, v, &dr);
    broker_proto_finish(req);
    broker_cg_arena_free(&dr.arena);
    return BROKER_PROTO_DONE;
}

typedef struct tp_ref {
    char *group;
    int32_t partition;
} tp_ref_t;

typedef struct tp_collect {
    const char *topic;
    tp_ref_t *v;
    int n, cap;
} tp_collect_t;

static void collect_topic(void *arg, const char *group, const char *topic, int32_t partition,
                          const broker_cg_offset_t *off)
{
    tp_collect_t *c = arg;
    if (strcmp(topic, c->topic))
        return;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = core_xrealloc(c->v, (size_t)c->cap * sizeof *c->v);
    }
    c->v[c->n].group = core_xstrdup(group);
    c->v[c->n].partition = partition;
    c->n++;
}

void broker_groups_topic_deleted(broker_t *b, const char *topic)
{
    broker_groups_t *g = b->groups;
    if (!g || !g->offsets)
        return;
    groups_apply(g);
    tp_collect_t c = {.topic = topic};
    broker_cg_offset_foreach(g->cg, NULL, collect_topic, &c);
    int64_t last;
    for (int i = 0; i < c.n; i++) {
        if (broker_offsets_append_delete(g->offsets, c.v[i].group, topic, c.v[i].partition, &last))
            CORE_WARN(MOD, "tombstone for %s/%s/%d failed", c.v[i].group, topic, c.v[i].partition);
        free(c.v[i].group);
    }
    if (c.n) {
        broker_dirty_add(b, broker_offsets_log(g->offsets));
        CORE_INFO(MOD, "topic %s deleted: dropping %d committed offset(s)", topic, c.n);
    }
    free(c.v);
}

/* ---- DeleteGroups --------------------------------------------------------------------- */
typedef struct topic_part {
    char *topic;
    int32_t partition;
} topic_part_t;

typedef struct group_collect {
    topic_part_t *v;
    int n, cap;
} group_collect_t;

static void collect_group(void *arg, const char *group, const char *topic, int32_t partition,
                          const broker_cg_offset_t *off)
{
    (void)group;
    (void)off;
    group_collect_t *c = arg;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = core_xrealloc(c->v, (size_t)c->cap * sizeof *c->v);
    }
    c->v[c->n].topic = core_xstrdup(topic);
    c->v[c->n].partition = partition;
    c->n++;
}

/* Tombstones every committed offset of an Empty group (the coordinator frees
 * the group as they are applied). Returns the log offset the flush must pass
 * (-1 when the group had none) or -2 when the offsets log refused a write. */
static int64_t delete_group_offsets(broker_groups_t *g, const char *id, const char *client,
                                    int client_len)
{
    group_collect_t c = {0};
    broker_cg_offset_foreach(g->cg, id, collect_group, &c);
    int64_t last = -1;
    int rc = 0;
    for (int k = 0; k < c.n; k++) {
        int64_t l = -1;
        if (!rc)
            rc = broker_offsets_append_delete(g->offsets, id, c.v[k].topic, c.v[k].partition, &l);
        if (!rc && l > last)
            last = l;
        free(c.v[k].topic);
    }
    free(c.v);
    if (rc) {
        CORE_WARN(
            MOD, "group %s: DeleteGroups could not write its tombstones (KAFKA_STORAGE_ERROR)", id);
        return -2;
    }
    CORE_INFO(MOD, "group %s deleted by client '%.*s' (%d committed offset(s) dropped)", id,
              client_len, client, c.n);
    return last;
}

broker_proto_res_t broker_groups_handle_delete_groups(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    int16_t v = req->hdr.api_version;
    broker_proto_delete_groups_req_t dr = {0};
    if (broker_proto_delete_groups_decode(rd, v, &dr)) {
        broker_cg_arena_free(&dr.arena);
        return reject(req, "DeleteGroups");
    }
    broker_groups_t *g = b->groups;
    if (g)
        groups_apply(g);
    int client_len = req->hdr.client_id.len > 0 ? (int)req->hdr.client_id.len : 0;
    const char *client = client_len ? (const char *)req->hdr.client_id.ptr : "";
    int64_t *wait = dr.ngroups ? core_xcalloc((size_t)dr.ngroups, sizeof *wait) : NULL;
    bool waiting = false;
    for (int32_t i = 0; i < dr.ngroups; i++) {
        wait[i] = -1;
        if (!g) {
            dr.error_codes[i] = BROKER_CG_ERR_COORDINATOR_NOT_AVAILABLE;
            continue;
        }
        if (!group_slice_allowed(b, dr.groups[i], NULL, 0)) {
            dr.error_codes[i] = BROKER_CG_ERR_INVALID_GROUP_ID;
            continue;
        }
        dr.error_codes[i] = broker_cg_delete_group(g->cg, dr.groups[i]);
        if (dr.error_codes[i])
            continue;
        char *id = core_xstrndup((const char *)dr.groups[i].ptr, (size_t)dr.groups[i].len);
        wait[i] = delete_group_offsets(g, id, client, client_len);
        free(id);
        if (wait[i] == -2)
            dr.error_codes[i] = BROKER_CG_ERR_KAFKA_STORAGE_ERROR;
        waiting |= wait[i] >= 0;
    }
    size_t *pos = dr.ngroups ? core_xcalloc((size_t)dr.ngroups, sizeof *pos) : NULL;
    broker_proto_begin(req);
    broker_proto_delete_groups_encode(&req->out, v, &dr, pos);
    broker_proto_finish(req);
    broker_proto_res_t res = BROKER_PROTO_DONE;
    if (waiting) {
        /* Answer once the tombstones are durable (as OffsetCommit): a failed
         * flush turns that group's code into KAFKA_STORAGE_ERROR. */
        broker_log_t *log = broker_offsets_log(g->offsets);
        broker_dirty_add(b, log);
        for (int32_t i = 0; i < dr.ngroups; i++)
            if (wait[i] >= 0)
                broker_req_add_wait(req, log, wait[i], pos[i]);
        req->flush_gen = b->flush_started + 1;
        b->acks_all_waiting++;
        res = BROKER_PROTO_FLUSH;
    }
    free(pos);
    free(wait);
    broker_cg_arena_free(&dr.arena);
    return res;
}

/* ---- timers ------------------------------------------------------------------------------------------------- */
static void on_tick(uv_timer_t *t)
{
    broker_groups_t *g = t->data;
    groups_apply(g);
    broker_cg_tick(g->cg, (int64_t)uv_now(t->loop));
}

static void on_load(uv_timer_t *t)
{
    broker_groups_t *g = t->data;
    bool done = false;
    char err[512] = "";
    int rc = broker_offsets_load(g->offsets, BROKER_GROUPS_LOAD_STEP, &done, err, sizeof err);
    if (rc) {
        /* Stay in loading mode: clients keep getting COORDINATOR_LOAD_IN_PROGRESS
         * rather than offsets that silently lost history. */
        CORE_ERROR(MOD, "loading committed offsets failed: %s; group coordinator stays unavailable",
                   err);
        g->load_failed = true;
        uv_timer_stop(t);
        return;
    }
    if (done) {
        g->load_done = true;
        uv_timer_stop(t);
    }
}

static void on_heads(uv_timer_t *t)
{
    broker_groups_t *g = t->data;
    broker_topics_t *topics = g->b->topics;
    int64_t now = core_wall_ms();
    int n = broker_topics_count(topics);
    for (int i = 0; i < n; i++) {
        broker_topic_t *topic = broker_topics_at(topics, i);
        for (int p = 0; p < topic->npartitions; p++)
            broker_lag_head(g->lag, topic->name, p, broker_log_high_watermark(topic->partitions[p]),
                            now);
    }
    broker_lag_expire(g->lag, now);
}

static void on_retention(uv_timer_t *t)
{
    broker_groups_t *g = t->data;
    broker_t *b = g->b;
    groups_apply(g);
    int n = broker_offsets_expire(g->offsets, core_wall_ms());
    if (n) {
        CORE_INFO(MOD, "expired %d committed offset(s) of empty groups (--offsets-retention)", n);
        broker_dirty_add(b, broker_offsets_log(g->offsets));
    }
    /* Compaction swaps the log: only when no flush job can hold it. */
    if (b->flush_started == b->flush_done && b->ndirty == 0) {
        char err[256];
        if (broker_offsets_maybe_compact(g->offsets, false, err, sizeof err))
            CORE_WARN(MOD, "offsets compaction failed: %s", err);
    }
}

/* ---- HTTP ------------------------------------------------------------------------------------------------------ */
static json_t *envelope(broker_groups_t *g, const char *message, const char *path, bool error)
{
    return json_pack("{s:b,s:s,s:{s:s,s:s}}", "error", error, "message", message, "request", "url",
                     path, "host", g->hostname);
}

static void job_json(http_job_t *j, int status, json_t *doc)
{
    j->status = status;
    j->json = true;
    j->body = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6));
    j->body_len = j->body ? strlen(j->body) : 0;
    json_decref(doc);
}

static void prom_escape(core_buf_t *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            core_wr_raw(o, "\\", 1);
        if (*s == '\n') {
            core_wr_raw(o, "\\n", 2);
            continue;
        }
        core_wr_raw(o, s, 1);
    }
}

static void prom_printf(core_buf_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void prom_printf(core_buf_t *o, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        core_wr_raw(o, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void metrics_text(broker_groups_t *g, core_buf_t *o)
{
    broker_t *b = g->b;
    broker_topics_t *topics = b->topics;
    int nt = broker_topics_count(topics);
    static const struct {
        const char *name, *help;
        int which;
    } pm[] = {
        {"eddy_partition_log_end_offset", "Log end offset (next offset to be written).", 0},
        {"eddy_partition_high_watermark", "High watermark (last offset visible to consumers + 1).", 1},
        {"eddy_partition_log_start_offset", "First offset still retained.", 2},
        {"eddy_partition_size_bytes", "Bytes on disk in the partition's segments.", 3},
    };
    for (size_t k = 0; k < sizeof pm / sizeof *pm; k++) {
        prom_printf(o, "# HELP %s %s\n# TYPE %s gauge\n", pm[k].name, pm[k].help, pm[k].name);
        for (int i = 0; i < nt; i++) {
            broker_topic_t *t = broker_topics_at(topics, i);
            for (int p = 0; p < t->npartitions; p++) {
                broker_log_t *log = t->partitions[p];
                int64_t v = pm[k].which == 0   ? broker_log_end_offset(log)
                            : pm[k].which == 1 ? broker_log_high_watermark(log)
                            : pm[k].which == 2 ? broker_log_start_offset(log)
                                               : broker_log_size_bytes(log);
                prom_printf(o, "%s{topic=\"%s\",partition=\"%d\"} %lld\n", pm[k].name, t->name, p,
                            (long long)v);
            }
        }
    }
    /* Lag per group (Burrow evaluation) and per partition. */
    const char **names;
    int ng = broker_lag_groups(g->lag, &names);
    broker_lag_group_t *evals = ng ? core_xcalloc((size_t)ng, sizeof *evals) : NULL;
    int64_t now = core_wall_ms();
    for (int i = 0; i < ng; i++)
        broker_lag_evaluate(g->lag, names[i], now, head_cb, owner_cb, b, &evals[i]);
    prom_printf(o, "# HELP eddy_group_lag Sum of current lag over the group's partitions.\n"
                   "# TYPE eddy_group_lag gauge\n");
    for (int i = 0; i < ng; i++) {
        core_wr_raw(o, "eddy_group_lag{group=\"", 22);
        prom_escape(o, evals[i].group);
        prom_printf(o, "\"} %lld\n", (long long)evals[i].totallag);
    }
    prom_printf(o, "# HELP eddy_group_status Burrow status: 1 OK, 2 WARN, 3 ERR.\n"
                   "# TYPE eddy_group_status gauge\n");
    for (int i = 0; i < ng; i++) {
        core_wr_raw(o, "eddy_group_status{group=\"", 25);
        prom_escape(o, evals[i].group);
        prom_printf(o, "\"} %d\n", (int)evals[i].status);
    }
    prom_printf(o, "# HELP eddy_group_partition_lag Current lag of a group on a partition.\n"
                   "# TYPE eddy_group_partition_lag gauge\n");
    for (int i = 0; i < ng; i++)
        for (int p = 0; p < evals[i].npartitions; p++) {
            core_wr_raw(o, "eddy_group_partition_lag{group=\"", 32);
            prom_escape(o, evals[i].group);
            prom_printf(o, "\",topic=\"%s\",partition=\"%d\"} %lld\n", evals[i].partitions[p].topic,
                        evals[i].partitions[p].partition, (long long)evals[i].partitions[p].current_lag);
        }
    for (int i = 0; i < ng; i++)
        broker_lag_group_fini(&evals[i]);
    free(evals);
    free(names);
    prom_printf(o, "# HELP eddy_groups Consumer groups known to the coordinator.\n"
                   "# TYPE eddy_groups gauge\neddy_groups %d\n",
                broker_cg_group_count(g->cg));
    /* Idempotent producers: retries recognised, batches refused by reason. */
    prom_printf(o, "# HELP eddy_produce_duplicates_total Retried idempotent batches answered with "
                   "the first copy's offsets, not written again.\n"
                   "# TYPE eddy_produce_duplicates_total counter\neddy_produce_duplicates_total %llu\n",
                (unsigned long long)b->produce_duplicates);
    prom_printf(o, "# HELP eddy_produce_sequence_refused_total Idempotent batches refused by the "
                   "producer state, by Kafka error.\n"
                   "# TYPE eddy_produce_sequence_refused_total counter\n");
    static const struct {
        int verdict;
        const char *error;
    } refused[] = {{BROKER_PRODUCER_OUT_OF_ORDER, "OUT_OF_ORDER_SEQUENCE_NUMBER"},
                   {BROKER_PRODUCER_FENCED, "INVALID_PRODUCER_EPOCH"},
                   {BROKER_PRODUCER_UNKNOWN, "UNKNOWN_PRODUCER_ID"},
                   {BROKER_PRODUCER_INVALID, "INVALID_RECORD"}};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        prom_printf(o, "eddy_produce_sequence_refused_total{error=\"%s\"} %llu\n", refused[i].error,
                    (unsigned long long)b->produce_refused[refused[i].verdict]);
    /* Requests by API: rate = rate(eddy_requests_total), latency histogram. */
    prom_printf(o, "# HELP eddy_requests_total Kafka requests answered, by API.\n"
                   "# TYPE eddy_requests_total counter\n");
    for (int k = 0; k <= BROKER_API_MAX; k++)
        if (b->api_stats[k].count)
            prom_printf(o, "eddy_requests_total{api=\"%s\"} %llu\n", broker_proto_api_name((int16_t)k),
                        (unsigned long long)b->api_stats[k].count);
    prom_printf(o, "# HELP eddy_request_duration_seconds Time from a request's arrival to its "
                   "response being ready, by API.\n# TYPE eddy_request_duration_seconds histogram\n");
    for (int k = 0; k <= BROKER_API_MAX; k++) {
        const broker_api_stats_t *s = &b->api_stats[k];
        if (!s->count)
            continue;
        const char *api = broker_proto_api_name((int16_t)k);
        uint64_t cum = 0;
        for (int i = 0; i < BROKER_API_LAT_BUCKETS; i++) {
            cum += s->buckets[i];
            prom_printf(o, "eddy_request_duration_seconds_bucket{api=\"%s\",le=\"%g\"} %llu\n", api,
                        broker_api_lat_bound_us(i) / 1e6, (unsigned long long)cum);
        }
        prom_printf(o, "eddy_request_duration_seconds_bucket{api=\"%s\",le=\"+Inf\"} %llu\n", api,
                    (unsigned long long)s->count);
        prom_printf(o, "eddy_request_duration_seconds_sum{api=\"%s\"} %.6f\n", api, s->sum_us / 1e6);
        prom_printf(o, "eddy_request_duration_seconds_count{api=\"%s\"} %llu\n", api,
                    (unsigned long long)s->count);
    }
    if (g->http)
        core_http_metrics_write(g->http, o);
}

static bool cluster_ok(const char *c)
{
    return c && !strcmp(c, CLUSTER);
}

static void job_run(broker_groups_t *g, http_job_t *j)
{
    broker_t *b = g->b;
    groups_apply(g);
    int64_t now = core_wall_ms();
    switch (j->kind) {
    case HJ_METRICS: {
        core_buf_t o;
        core_buf_init(&o);
        metrics_text(g, &o);
        j->status = 200;
        j->json = false;
        j->body_len = o.len;
        j->body = (char *)core_buf_detach(&o, &j->body_len);
        return;
    }
    case HJ_CLUSTER:
        if (!cluster_ok(j->cluster)) {
            job_json(j, 404, envelope(g, "cluster module not found", j->path, true));
            return;
        }
        {
            json_t *e = envelope(g, "cluster module detail returned", j->path, false);
            char srv[300];
            snprintf(srv, sizeof srv, "%s:%d", b->host, b->port);
            json_object_set_new(e, "module", json_pack("{s:s,s:[s],s:s}", "class-name", "eddy",
                                                       "servers", srv, "client-profile", ""));
            job_json(j, 200, e);
        }
        return;
    case HJ_CONSUMERS: {
        if (!cluster_ok(j->cluster)) {
            job_json(j, 404, envelope(g, "cluster not found", j->path, true));
            return;
        }
        json_t *e = envelope(g, "consumer list returned", j->path, false);
        json_t *arr = json_array();
        const char **names;
        int n = broker_lag_groups(g->lag, &names);
        for (int i = 0; i < n; i++)
            json_array_append_new(arr, json_string(names[i]));
        free(names);
        json_object_set_new(e, "consumers", arr);
        job_json(j, 200, e);
        return;
    }
    case HJ_CONSUMER: {
        json_t *topics = cluster_ok(j->cluster)
                             ? broker_lag_consumer_json(g->lag, j->name, head_cb, owner_cb, b)
                             : NULL;
        if (!topics) {
            job_json(j, 404, envelope(g, "cluster or consumer not found", j->path, true));
            return;
        }
        json_t *e = envelope(g, "consumer detail returned", j->path, false);
        json_object_set_new(e, "topics", topics);
        job_json(j, 200, e);
        return;
    }
    case HJ_STATUS:
    case HJ_LAG: {
        broker_lag_group_t st;
        int rc = cluster_ok(j->cluster)
                     ? broker_lag_evaluate(g->lag, j->name, now, head_cb, owner_cb, b, &st)
                     : broker_lag_evaluate(g->lag, "", now, NULL, NULL, NULL, &st);
        if (!cluster_ok(j->cluster)) {
            free(st.group);
            st.group = core_xstrdup(j->name);
        }
        /* Burrow: unknown group -> 404, yet "error": false and a NOTFOUND status. */
        json_t *e = envelope(g, "consumer status returned", j->path, false);
        json_object_set_new(e, "status",
                            broker_lag_status_json(&st, j->cluster ? j->cluster : CLUSTER,
                                                   j->kind == HJ_LAG));
        broker_lag_group_fini(&st);
        job_json(j, rc == CORE_OK && cluster_ok(j->cluster) ? 200 : 404, e);
        return;
    }
    case HJ_TOPICS: {
        if (!cluster_ok(j->cluster)) {
            job_json(j, 404, envelope(g, "cluster not found", j->path, true));
            return;
        }
        json_t *e = envelope(g, "topic list returned", j->path, false);
        json_t *arr = json_array();
        int n = broker_topics_count(b->topics);
        for (int i = 0; i < n; i++)
            json_array_append_new(arr, json_string(broker_topics_at(b->topics, i)->name));
        json_object_set_new(e, "topics", arr);
        job_json(j, 200, e);
        return;
    }
    case HJ_TOPIC: {
        broker_topic_t *t = cluster_ok(j->cluster) && j->name
                                ? broker_topics_find(b->topics, j->name, strlen(j->name))
                                : NULL;
        if (!t) {
            job_json(j, 404, envelope(g, "topic not found", j->path, true));
            return;
        }
        json_t *e = envelope(g, "topic offsets returned", j->path, false);
        json_t *arr = json_array();
        for (int p = 0; p < t->npartitions; p++)
            json_array_append_new(arr, json_integer(broker_log_high_watermark(t->partitions[p])));
        json_object_set_new(e, "offsets", arr);
        job_json(j, 200, e);
        return;
    }
    }
}

static void job_free(http_job_t *j)
{
    free(j->cluster);
    free(j->name);
    free(j->path);
    free(j->body);
    free(j);
}

static void on_async(uv_async_t *a)
{
    broker_groups_t *g = a->data;
    pthread_mutex_lock(&g->mu);
    http_job_t *jobs = g->jobs;
    g->jobs = NULL;
    for (http_job_t *j = jobs; j; j = j->next)
        j->taken = true;
    pthread_mutex_unlock(&g->mu);
    for (http_job_t *j = jobs; j; j = j->next)
        job_run(g, j); /* loop thread: live state, no lock needed */
    pthread_mutex_lock(&g->mu);
    http_job_t *j = jobs;
    while (j) {
        http_job_t *next = j->next;
        if (j->abandoned)
            job_free(j); /* its handler timed out and left */
        else
            j->done = true;
        j = next;
    }
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static char *dup_or_null(const char *s)
{
    return s ? core_xstrdup(s) : NULL;
}

/* MHD thread: queue the job, wake the loop, wait (bounded) for the answer.
 * The job is on the heap and owned by whoever is last: the handler frees it
 * when answered; when the handler gives up while the loop runs the job, it
 * marks it abandoned and the loop frees it. */
static void http_handle(core_http_req_t *req, broker_groups_t *g, http_kind_t kind)
{
    http_job_t *job = core_xcalloc(1, sizeof *job);
    job->kind = kind;
    job->cluster = dup_or_null(core_http_req_param(req, "cluster"));
    job->name = dup_or_null(core_http_req_param(req, "name"));
    job->path = dup_or_null(core_http_req_path(req));
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += BROKER_GROUPS_HTTP_WAIT_MS / 1000;
    pthread_mutex_lock(&g->mu);
    if (g->closing) {
        pthread_mutex_unlock(&g->mu);
        job_free(job);
        core_http_reply_error(req, 503, "broker is shutting down");
        return;
    }
    job->next = g->jobs;
    g->jobs = job;
    /* Sent under the lock: `closing` is set under it before the handle closes. */
    uv_async_send(&g->async);
    int rc = 0;
    while (!job->done && !g->closing && rc == 0)
        rc = pthread_cond_timedwait(&g->cv, &g->mu, &deadline);
    bool done = job->done, abandoned = false;
    if (!done) {
        if (job->taken) {
            job->abandoned = abandoned = true;
        } else {
            for (http_job_t **pp = &g->jobs; *pp; pp = &(*pp)->next)
                if (*pp == job) {
                    *pp = job->next;
                    break;
                }
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (!done) {
        if (!abandoned)
            job_free(job);
        core_http_reply_error(req, 503, "broker loop did not answer in time");
        return;
    }
    if (job->json)
        core_http_reply_json_text(req, job->status, job->body ? job->body : "{}", job->body_len);
    else
        core_http_reply(req, job->status, "text/plain; version=0.0.4; charset=utf-8", job->body,
                        job->body_len);
    job_free(job);
}

#define HTTP_ROUTE(fn, kind)                                                                   \
    static void fn(core_http_req_t *req, void *user)                                           \
    {                                                                                          \
        http_handle(req, user, kind);                                                          \
    }
HTTP_ROUTE(h_metrics, HJ_METRICS)
HTTP_ROUTE(h_cluster, HJ_CLUSTER)
HTTP_ROUTE(h_consumers, HJ_CONSUMERS)
HTTP_ROUTE(h_consumer, HJ_CONSUMER)
HTTP_ROUTE(h_status, HJ_STATUS)
HTTP_ROUTE(h_lag, HJ_LAG)
HTTP_ROUTE(h_topics, HJ_TOPICS)
HTTP_ROUTE(h_topic, HJ_TOPIC)

static void h_clusters(core_http_req_t *req, void *user)
{
    broker_groups_t *g = user;
    json_t *e = envelope(g, "cluster list returned", core_http_req_path(req), false);
    json_object_set_new(e, "clusters", json_pack("[s]", CLUSTER));
    core_http_reply_json(req, 200, e);
}

static void h_admin(core_http_req_t *req, void *user)
{
    core_http_reply_text(req, 200, "GOOD");
}

static int http_start(broker_groups_t *g, char *errstr, size_t errstr_size)
{
    const char *listen = g->b->conf.http_listen;
    bool explicit_listen = listen != NULL;
    if (!listen)
        listen = BROKER_GROUPS_HTTP_DEFAULT;
    if (!*listen || !strcmp(listen, "off") || !strcmp(listen, "none"))
        return CORE_OK;
    char host[256];
    int port;
    if (core_parse_hostport(listen, host, sizeof host, &port))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "--http-listen '%s': expected HOST:PORT",
                         listen);
    uv_async_init(g->b->loop, &g->async, on_async);
    g->async.data = g;
    g->async_started = true;
    core_http_conf_t hc = {.name = "broker", .threads = 2};
    g->http = core_http_new(&hc);
    core_http_route(g->http, "GET", "/burrow/admin", h_admin, g);
    core_http_route(g->http, "GET", "/metrics", h_metrics, g);
    core_http_route(g->http, "GET", "/v3/kafka", h_clusters, g);
    core_http_route(g->http, "GET", "/v3/kafka/<cluster>", h_cluster, g);
    core_http_route(g->http, "GET", "/v3/kafka/<cluster>/consumer", h_consumers, g);
    core_http_route(g->http, "GET", "/v3/kafka/<cluster>/consumer/<name>", h_consumer, g);
    core_http_route(g->http, "GET", "/v3/kafka/<cluster>/consumer/<name>/status", h_status, g);
    core_http_route(g->http, "GET", "/v3/kafka/<cluster>/consumer/<name>/lag", h_lag, g);
    core_http_route(g->http, "GET", "/v3/kafka/<cluster>/topic", h_topics, g);
    core_http_route(g->http, "GET", "/v3/kafka/<cluster>/topic/<name>", h_topic, g);
    int rc = core_http_start(g->http, host, port, errstr, errstr_size);
    if (rc && !explicit_listen) {
        /* Only the default was asked for: run without the monitoring port
         * rather than refuse to serve Kafka clients; say so loudly. */
        CORE_WARN(MOD, "lag/metrics HTTP not started on the default %s: %s (set --http-listen)",
                  listen, errstr);
        core_http_free(g->http);
        g->http = NULL;
        return CORE_OK;
    }
    if (rc)
        return rc;
    g->http_port = core_http_port(g->http);
    CORE_INFO(MOD, "lag and metrics HTTP at http://%s:%d (Burrow v3: /v3/kafka/%s/consumer/GROUP/status)",
              host, g->http_port, CLUSTER);
    return CORE_OK;
}

int broker_groups_http_port(const broker_t *b)
{
    return b->groups ? b->groups->http_port : 0;
}

/* SIGTERM/SIGINT (the network layer stops on the same signals): refuse new
 * HTTP work and stop the HTTP threads now, while the loop and the async
 * handle are still alive, so no MHD thread ever signals a closed handle. */
static void http_stop(broker_groups_t *g)
{
    pthread_mutex_lock(&g->mu);
    g->closing = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (g->http)
        core_http_stop(g->http);
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    broker_groups_t *g = s->data;
    http_stop(g);
    /* This coordinator is going away: held JoinGroup/SyncGroup answer
     * NOT_COORDINATOR now (clients re-discover it and rejoin after the
     * restart) instead of holding up the network layer's drain. */
    g->stopping = true;
    int n = broker_cg_fail_held(g->cg, BROKER_CG_ERR_NOT_COORDINATOR);
    if (n)
        CORE_INFO(MOD, "shutdown: answered %d held group request(s) with NOT_COORDINATOR", n);
}

int broker_groups_start(broker_t *b, char *errstr, size_t errstr_size)
{
    broker_groups_t *g = b->groups;
    uv_loop_t *loop = b->loop;
    uv_timer_t *timers[] = {&g->tick, &g->load, &g->complete, &g->heads, &g->retention};
    for (size_t i = 0; i < sizeof timers / sizeof *timers; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = g;
    }
    g->timers_started = true;
    uv_timer_start(&g->tick, on_tick, BROKER_GROUPS_TICK_MS, BROKER_GROUPS_TICK_MS);
    uv_timer_start(&g->load, on_load, 0, 1); /* replays in steps between I/O rounds */
    int64_t refresh = b->conf.lag_refresh_ms < 100 ? 100 : b->conf.lag_refresh_ms;
    uv_timer_start(&g->heads, on_heads, 0, (uint64_t)refresh);
    /* Retention/compaction check: every minute, or more often for short
     * retentions (a tenth of it, at least every second). */
    int64_t every = b->conf.offsets_retention_ms / 10;
    every = every < 1000 ? 1000 : every > 60000 ? 60000 : every;
    uv_timer_start(&g->retention, on_retention, (uint64_t)every, (uint64_t)every);
    uv_signal_init(loop, &g->sigterm);
    uv_signal_init(loop, &g->sigint);
    g->sigterm.data = g->sigint.data = g;
    uv_signal_start(&g->sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&g->sigint, on_stop_signal, SIGINT);
    return http_start(g, errstr, errstr_size);
}

void broker_groups_close(broker_t *b)
{
    broker_groups_t *g = b->groups;
    if (!g)
        return;
    http_stop(g);
    core_http_free(g->http); /* threads joined; waiting handlers saw `closing` */
    /* Timers and the async handle belong to the broker loop, which has closed
     * every handle already (broker_net_run walks and closes them). */
    held_t *h = g->done_head;
    while (h) {
        held_t *next = h->next;
        free(h);
        h = next;
    }
    broker_offsets_close(g->offsets);
    broker_lag_free(g->lag);
    broker_cg_free(g->cg);
    if (g->has_group_re)
        regfree(&g->group_re);
    if (g->has_topic_re)
        regfree(&g->topic_re);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
    b->groups = NULL;
}
