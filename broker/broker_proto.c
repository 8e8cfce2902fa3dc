#include "broker/broker_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_groups.h"
#include "broker/broker_producer.h"
#include "core/core_alloc.h"
#include "core/core_log.h"

/* The leader epoch this single node writes into every batch (replication
 * will raise it on leader changes). */
#define BROKER_LEADER_EPOCH 0
/* "not requested" for Metadata v8 authorized-operations fields. */
#define BROKER_AUTHZ_OPS_OMITTED INT32_MIN

/* ---- framing and header --------------------------------------------------- */
int broker_proto_frame(const uint8_t *buf, size_t len, int64_t max_bytes, size_t *frame_len)
{
    *frame_len = 0;
    if (len < 4)
        return CORE_ERR_AGAIN;
    int32_t size = (int32_t)core_be32(buf);
    if (size < 0)
        return CORE_ERR_MALFORMED;
    if ((int64_t)size > max_bytes)
        return CORE_ERR_TOO_LARGE;
    if (size < BROKER_PROTO_MIN_FRAME)
        return CORE_ERR_MALFORMED;
    *frame_len = (size_t)size;
    return len - 4 >= (size_t)size ? CORE_OK : CORE_ERR_AGAIN;
}

int16_t broker_proto_first_flexible(int16_t api_key)
{
    switch (api_key) {
    case BROKER_API_PRODUCE: return 9;
    case BROKER_API_FETCH: return 12;
    case BROKER_API_LIST_OFFSETS: return 6;
    case BROKER_API_METADATA: return 9;
    case BROKER_API_OFFSET_COMMIT: return 8;
    case BROKER_API_OFFSET_FETCH: return 6;
    case BROKER_API_FIND_COORDINATOR: return 3;
    case BROKER_API_JOIN_GROUP: return 6;
    case BROKER_API_HEARTBEAT: return 4;
    case BROKER_API_LEAVE_GROUP: return 4;
    case BROKER_API_SYNC_GROUP: return 4;
    case BROKER_API_DESCRIBE_GROUPS: return 5;
    case BROKER_API_LIST_GROUPS: return 3;
    case BROKER_API_API_VERSIONS: return 3;
    case BROKER_API_CREATE_TOPICS: return 5;
    case BROKER_API_DELETE_TOPICS: return 4;
    case BROKER_API_INIT_PRODUCER_ID: return 2;
    case BROKER_API_DESCRIBE_CONFIGS: return 4;
    case BROKER_API_SASL_AUTHENTICATE: return 2;
    case BROKER_API_DELETE_RECORDS: return 2;
    case BROKER_API_ALTER_CONFIGS: return 2;
    case BROKER_API_CREATE_PARTITIONS: return 2;
    case BROKER_API_DELETE_GROUPS: return 2;
    default: return INT16_MAX;
    }
}

static bool is_flexible(int16_t key, int16_t version)
{
    return version >= broker_proto_first_flexible(key);
}

int broker_proto_hdr_decode(core_rd_t *rd, broker_proto_hdr_t *hdr)
{
    hdr->api_key = core_rd_i16(rd);
    hdr->api_version = core_rd_i16(rd);
    hdr->corr_id = core_rd_i32(rd);
    hdr->client_id = core_rd_nstr(rd);
    hdr->hdr_version = 1;
    if (!rd->err && is_flexible(hdr->api_key, hdr->api_version)) {
        hdr->hdr_version = 2;
        core_rd_skip_tags(rd);
    }
    return rd->err;
}

/* ---- requests --------------------------------------------------------------- */
int broker_req_init(broker_req_t *req, uint8_t *frame, size_t frame_len)
{
    memset(req, 0, sizeof *req);
    req->frame = frame;
    req->frame_len = frame_len;
    core_buf_init(&req->out);
    core_rd_t rd;
    core_rd_init(&rd, frame, frame_len);
    int rc = broker_proto_hdr_decode(&rd, &req->hdr);
    req->body_off = rd.pos;
    return rc;
}

void broker_req_reset(broker_req_t *req)
{
    for (int i = 0; i < req->nfiles; i++)
        broker_log_slice_release(&req->files[i].slice);
    req->nfiles = 0;
    req->nwaits = 0;
    req->nwatch = 0;
    req->flush_gen = 0;
    core_buf_reset(&req->out);
}

void broker_req_fini(broker_req_t *req)
{
    broker_req_reset(req);
    free(req->files);
    free(req->waits);
    free(req->watch);
    core_buf_fini(&req->out);
    free(req->frame);
    req->frame = NULL;
    req->files = NULL;
    req->waits = NULL;
}

int64_t broker_req_out_size(const broker_req_t *req)
{
    int64_t n = (int64_t)req->out.len;
    for (int i = 0; i < req->nfiles; i++)
        n += req->files[i].slice.len;
    return n;
}

static void req_add_watch(broker_req_t *req, broker_log_t *log)
{
    if (req->nwatch == req->watch_cap) {
        req->watch_cap = req->watch_cap ? req->watch_cap * 2 : 8;
        req->watch = core_xrealloc(req->watch, (size_t)req->watch_cap * sizeof *req->watch);
    }
    req->watch[req->nwatch++] = log;
}

static void req_add_file(broker_req_t *req, const broker_log_slice_t *slice)
{
    if (req->nfiles == req->files_cap) {
        req->files_cap = req->files_cap ? req->files_cap * 2 : 8;
        req->files = core_xrealloc(req->files, (size_t)req->files_cap * sizeof *req->files);
    }
    req->files[req->nfiles].at = req->out.len;
    req->files[req->nfiles].slice = *slice;
    req->nfiles++;
}

void broker_req_add_wait(broker_req_t *req, broker_log_t *log, int64_t last_offset, size_t err_pos)
{
    if (req->nwaits == req->waits_cap) {
        req->waits_cap = req->waits_cap ? req->waits_cap * 2 : 8;
        req->waits = core_xrealloc(req->waits, (size_t)req->waits_cap * sizeof *req->waits);
    }
    req->waits[req->nwaits++] = (broker_proto_flushwait_t){log, last_offset, err_pos};
}

void broker_proto_begin(broker_req_t *req)
{
    core_buf_reset(&req->out);
    core_wr_i32(&req->out, 0); /* size, patched by broker_proto_finish */
    core_wr_i32(&req->out, req->hdr.corr_id);
    /* Response header v1 (a tag byte) exactly for flexible responses, except
     * ApiVersions whose response header is always v0 (kafka-protocol.md §2.2). */
    if (req->hdr.api_key != BROKER_API_API_VERSIONS &&
        is_flexible(req->hdr.api_key, req->hdr.api_version))
        core_wr_empty_tags(&req->out);
}

void broker_proto_finish(broker_req_t *req)
{
    core_wr_i32_at(&req->out, 0, (int32_t)(broker_req_out_size(req) - 4));
}

int16_t broker_proto_kerr(int err)
{
    switch (err) {
    case CORE_OK: return BROKER_KERR_NONE;
    case CORE_ERR_CRC:
    case CORE_ERR_MALFORMED:
    case CORE_ERR_TRUNCATED: return BROKER_KERR_CORRUPT_MESSAGE;
    case CORE_ERR_TOO_LARGE: return BROKER_KERR_MESSAGE_TOO_LARGE;
    case CORE_ERR_UNSUPPORTED: return BROKER_KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
    case CORE_ERR_RANGE: return BROKER_KERR_OFFSET_OUT_OF_RANGE;
    case CORE_ERR_NOT_FOUND: return BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    case CORE_ERR_EXISTS: return BROKER_KERR_TOPIC_ALREADY_EXISTS;
    case CORE_ERR_INVAL: return BROKER_KERR_INVALID_CONFIG;
    case CORE_ERR_IO:
    case CORE_ERR_CORRUPT:
    case CORE_ERR_STATE: return BROKER_KERR_KAFKA_STORAGE_ERROR;
    default: return err > 0 ? BROKER_KERR_KAFKA_STORAGE_ERROR : BROKER_KERR_UNKNOWN_SERVER_ERROR;
    }
}

/* Logs one line about a request we cannot serve; the caller closes. */
static broker_proto_res_t req_reject(const broker_req_t *req, const char *why)
{
    const broker_proto_hdr_t *h = &req->hdr;
    CORE_WARN("broker", "closing connection: %s: %s (key %d) v%d (corr %d, client '%.*s', %zu bytes)",
              why, broker_proto_api_name(h->api_key), h->api_key, h->api_version, h->corr_id,
              h->client_id.len > 0 ? (int)h->client_id.len : 0,
              h->client_id.len > 0 ? (const char *)h->client_id.ptr : "", req->frame_len);
    return BROKER_PROTO_CLOSE;
}

static broker_proto_res_t req_malformed(const broker_req_t *req, const core_rd_t *rd)
{
    char why[96];
    snprintf(why, sizeof why, "malformed request (%s at byte %zu)", core_strerror(rd->err),
             req->body_off + rd->pos);
    return req_reject(req, why);
}

/* A NUL-terminated copy of a wire string, in a caller buffer when it fits. */
static const char *slice_cstr(core_slice_t s, char *buf, size_t bufsz, char **heap)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *dst = buf;
    *heap = NULL;
    if (n + 1 > bufsz)
        dst = *heap = core_xmalloc(n + 1);
    if (n)
        memcpy(dst, s.ptr, n);
    dst[n] = 0;
    return dst;
}

/* Skips a flexible struct's trailing tags, with the count capped. */
static void rd_tags(core_rd_t *rd, bool flexible)
{
    if (!flexible)
        return;
    uint32_t n = core_rd_uvarint(rd);
    if (n > BROKER_PROTO_MAX_TAGS) {
        core_rd_fail(rd, CORE_ERR_TOO_LARGE);
        return;
    }
    for (uint32_t i = 0; i < n && !rd->err; i++) {
        (void)core_rd_uvarint(rd);
        core_rd_skip(rd, core_rd_uvarint(rd));
    }
}

/* ---- ApiVersions (18) ------------------------------------------------------ */
static const broker_proto_api_t *api_rows(int *n);

void broker_proto_api_versions_body(core_buf_t *out, int16_t version, int16_t error_code)
{
    int n;
    const broker_proto_api_t *rows = api_rows(&n);
    int nadv = 0;
    for (int i = 0; i < n; i++)
        nadv += rows[i].handler != NULL;
    bool flex = version >= 3;
    core_wr_i16(out, error_code);
    if (flex)
        core_wr_carray_len(out, nadv);
    else
        core_wr_i32(out, nadv);
    for (int i = 0; i < n; i++) {
        if (!rows[i].handler)
            continue;
        core_wr_i16(out, rows[i].key);
        core_wr_i16(out, rows[i].min_version);
        core_wr_i16(out, rows[i].max_version);
        if (flex)
            core_wr_empty_tags(out);
    }
    if (version >= 1)
        core_wr_i32(out, 0); /* throttle_time_ms */
    if (flex)
        core_wr_empty_tags(out);
}

static broker_proto_res_t handle_api_versions(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    int16_t v = req->hdr.api_version;
    int16_t err = BROKER_KERR_NONE;
    if (v >= 3) {
        core_slice_t sw_name = core_rd_cstr(rd);
        core_slice_t sw_version = core_rd_cstr(rd);
        rd_tags(rd, true);
        (void)sw_name;
        (void)sw_version;
        if (rd->err)
            err = BROKER_KERR_INVALID_REQUEST; /* Kafka answers, it does not close */
    }
    broker_proto_begin(req);
    broker_proto_api_versions_body(&req->out, v, err);
    broker_proto_finish(req);
    return BROKER_PROTO_DONE;
}

/* ---- Metadata (3) ----------------------------------------------------------- */
static void md_topic(broker_t *b, core_buf_t *o, int16_t v, int16_t err, core_slice_t name,
                     const broker_topic_t *t)
{
    core_wr_i16(o, err);
    core_wr_str(o, name.ptr, name.len < 0 ? 0 : name.len);
    if (v >= 1)
        core_wr_i8(o, 0); /* is_internal */
    int32_t np = t && !err ? t->npartitions : 0;
    core_wr_i32(o, np);
    for (int32_t p = 0; p < np; p++) {
        core_wr_i16(o, BROKER_KERR_NONE);
        core_wr_i32(o, p);
        core_wr_i32(o, b->node_id); /* leader */
        if (v >= 7)
            core_wr_i32(o, broker_log_leader_epoch(t->partitions[p]));
        core_wr_i32(o, 1); /* replica_nodes */
        core_wr_i32(o, b->node_id);
        core_wr_i32(o, 1); /* isr_nodes */
        core_wr_i32(o, b->node_id);
        if (v >= 5)
            core_wr_i32(o, 0); /* offline_replicas */
    }
    if (v >= 8)
        core_wr_i32(o, BROKER_AUTHZ_OPS_OMITTED);
}

static broker_proto_res_t handle_metadata(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    int16_t v = req->hdr.api_version;
    int32_t ntopics = v >= 1 ? core_rd_narray(rd, BROKER_PROTO_MAX_TOPICS, 2)
                             : core_rd_array(rd, BROKER_PROTO_MAX_TOPICS, 2);
    size_t names_pos = rd->pos;
    for (int32_t i = 0; i < ntopics && !rd->err; i++)
        (void)core_rd_str(rd);
    bool allow_create = true;
    if (v >= 4)
        allow_create = core_rd_i8(rd) != 0;
    if (v >= 8) {
        (void)core_rd_i8(rd);
        (void)core_rd_i8(rd);
    }
    if (rd->err)
        return req_malformed(req, rd);
    bool all = v == 0 ? ntopics == 0 : ntopics < 0;

    broker_proto_begin(req);
    core_buf_t *o = &req->out;
    if (v >= 3)
        core_wr_i32(o, 0); /* throttle_time_ms */
    core_wr_i32(o, 1);     /* brokers */
    core_wr_i32(o, b->node_id);
    core_wr_str(o, b->host, (int64_t)strlen(b->host));
    core_wr_i32(o, b->port);
    if (v >= 1)
        core_wr_str(o, NULL, -1); /* rack */
    if (v >= 2)
        core_wr_str(o, b->cluster_id, (int64_t)strlen(b->cluster_id));
    if (v >= 1)
        core_wr_i32(o, b->node_id); /* controller_id: ourselves (kafka-python admin needs it) */
    if (all) {
        int n = broker_topics_count(b->topics);
        core_wr_i32(o, n);
        for (int i = 0; i < n; i++) {
            broker_topic_t *t = broker_topics_at(b->topics, i);
            core_slice_t name = {(const uint8_t *)t->name, (int64_t)strlen(t->name)};
            md_topic(b, o, v, BROKER_KERR_NONE, name, t);
        }
    } else {
        core_wr_i32(o, ntopics);
        core_rd_t names;
        core_rd_init(&names, rd->base, rd->len);
        names.pos = names_pos;
        for (int32_t i = 0; i < ntopics; i++) {
            core_slice_t name = core_rd_str(&names);
            int16_t kerr = BROKER_KERR_NONE;
            broker_topic_t *t = broker_topic_get(b, (const char *)name.ptr, (size_t)name.len,
                                                 allow_create, &kerr);
            md_topic(b, o, v, t ? BROKER_KERR_NONE : kerr, name, t);
        }
    }
    if (v >= 8)
        core_wr_i32(o, BROKER_AUTHZ_OPS_OMITTED);
    broker_proto_finish(req);
    return BROKER_PROTO_DONE;
}

/* ---- Produce (0) -------------------------------------------------------------- */
int broker_proto_produce_decode(core_rd_t *rd, int16_t version, broker_proto_produce_t *p)
{
    memset(p, 0, sizeof *p);
    if (version >= 3)
        p->transactional_id = core_rd_nstr(rd);
    p->acks = core_rd_i16(rd);
    p->timeout_ms = core_rd_i32(rd);
    /* topic entry >= name(2) + count(4); partition entry >= index(4) + len(4) */
    int32_t nt = core_rd_array(rd, BROKER_PROTO_MAX_TOPICS, 6);
    if (rd->err)
        return rd->err;
    p->topics = core_xcalloc((size_t)nt ? (size_t)nt : 1, sizeof *p->topics);
    p->ntopics = nt;
    for (int32_t i = 0; i < nt && !rd->err; i++) {
        broker_proto_produce_topic_t *t = &p->topics[i];
        t->name = core_rd_str(rd);
        int32_t np = core_rd_array(rd, BROKER_PROTO_MAX_PARTITIONS, 8);
        if (rd->err)
            break;
        t->parts = core_xcalloc((size_t)np ? (size_t)np : 1, sizeof *t->parts);
        t->nparts = np;
        for (int32_t j = 0; j < np && !rd->err; j++) {
            t->parts[j].index = core_rd_i32(rd);
            t->parts[j].records = core_rd_nbytes(rd);
        }
    }
    if (rd->err) {
        broker_proto_produce_free(p);
        return rd->err;
    }
    return CORE_OK;
}

void broker_proto_produce_free(broker_proto_produce_t *p)
{
    for (int32_t i = 0; p->topics && i < p->ntopics; i++)
        free(p->topics[i].parts);
    free(p->topics);
    p->topics = NULL;
    p->ntopics = 0;
}

/* Kafka error for a refusal of the idempotence check (broker_producer.h). */
static int16_t producer_kerr(int verdict)
{
    switch (verdict) {
    case BROKER_PRODUCER_OUT_OF_ORDER: return BROKER_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    case BROKER_PRODUCER_FENCED: return BROKER_KERR_INVALID_PRODUCER_EPOCH;
    case BROKER_PRODUCER_UNKNOWN: return BROKER_KERR_UNKNOWN_PRODUCER_ID;
    default: return BROKER_KERR_INVALID_RECORD;
    }
}

static const char *producer_verdict_name(int verdict)
{
    switch (verdict) {
    case BROKER_PRODUCER_OUT_OF_ORDER: return "out-of-order sequence number";
    case BROKER_PRODUCER_FENCED: return "old producer epoch";
    case BROKER_PRODUCER_UNKNOWN: return "unknown producer id";
    default: return "invalid producer fields or a transactional batch";
    }
}

static broker_proto_res_t handle_produce(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    int16_t v = req->hdr.api_version;
    broker_proto_produce_t p;
    if (broker_proto_produce_decode(rd, v, &p))
        return req_malformed(req, rd);
    bool acks_ok = p.acks == 0 || p.acks == 1 || p.acks == -1;
    bool any_err = false, any_wait = false;

    broker_proto_begin(req);
    core_buf_t *o = &req->out;
    core_wr_i32(o, p.ntopics);
    for (int32_t i = 0; i < p.ntopics; i++) {
        broker_proto_produce_topic_t *pt = &p.topics[i];
        core_wr_str(o, pt->name.ptr, pt->name.len);
        int16_t terr = BROKER_KERR_NONE;
        broker_topic_t *t = NULL;
        if (acks_ok)
            t = broker_topic_get(b, (const char *)pt->name.ptr, (size_t)pt->name.len, true, &terr);
        core_wr_i32(o, pt->nparts);
        for (int32_t j = 0; j < pt->nparts; j++) {
            broker_proto_produce_part_t *pp = &pt->parts[j];
            int16_t err = BROKER_KERR_NONE;
            int64_t base = -1, last = -1, start = -1;
            broker_log_t *log = NULL;
            if (!acks_ok)
                err = BROKER_KERR_INVALID_REQUIRED_ACKS;
            else if (p.transactional_id.len >= 0)
                err = BROKER_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED; /* no transactions */
            else if (!t)
                err = terr;
            else if (pp->index < 0 || pp->index >= t->npartitions)
                err = BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            else if (pp->records.len <= 0)
                err = BROKER_KERR_CORRUPT_MESSAGE;
            else {
                log = t->partitions[pp->index];
                /* The frame is ours: append rewrites baseOffset in place. */
                broker_log_append_res_t ar;
                int rc = broker_log_produce(log, (uint8_t *)pp->records.ptr,
                                            (size_t)pp->records.len, BROKER_LEADER_EPOCH, &ar);
                base = ar.base_offset;
                last = ar.last_offset;
                if (rc == CORE_ERR_CONFLICT) {
                    if (ar.producer > 0 && ar.producer < BROKER_PRODUCER_NVERDICTS)
                        b->produce_refused[ar.producer]++;
                    err = producer_kerr(ar.producer);
                    base = -1;
                    CORE_DEBUG("broker", "produce to %s-%d refused: %s", t->name, pp->index,
                               producer_verdict_name(ar.producer));
                } else if (rc) {
                    err = broker_proto_kerr(rc);
                    base = -1;
                    CORE_WARN("broker", "produce to %s-%d rejected: %s (client '%.*s')",
                              t->name, pp->index, core_strerror(rc),
                              req->hdr.client_id.len > 0 ? (int)req->hdr.client_id.len : 0,
                              req->hdr.client_id.len > 0 ? (const char *)req->hdr.client_id.ptr : "");
                } else if (ar.producer == BROKER_PRODUCER_DUPLICATE) {
                    b->produce_duplicates++;
                    CORE_INFO("broker", "produce to %s-%d: a retry of offsets %" PRId64 "..%" PRId64
                                        ", not written again (client '%.*s')",
                              t->name, pp->index, base, last,
                              req->hdr.client_id.len > 0 ? (int)req->hdr.client_id.len : 0,
                              req->hdr.client_id.len > 0 ? (const char *)req->hdr.client_id.ptr : "");
                } else {
                    broker_appended_add(b, log);
                }
                start = broker_log_start_offset(log);
            }
            any_err |= err != BROKER_KERR_NONE;
            core_wr_i32(o, pp->index);
            size_t err_pos = o->len;
            core_wr_i16(o, err);
            core_wr_i64(o, base);
            if (v >= 2)
                core_wr_i64(o, -1); /* log_append_time_ms: CreateTime */
            if (v >= 5)
                core_wr_i64(o, start);
            if (!err && p.acks == -1) {
                broker_dirty_add(b, log);
                broker_req_add_wait(req, log, last, err_pos);
                any_wait = true;
            }
        }
    }
    if (v >= 1)
        core_wr_i32(o, 0); /* throttle_time_ms, at the END for Produce */
    broker_proto_finish(req);
    int16_t acks = p.acks;
    broker_proto_produce_free(&p);
    if (acks == 0) {
        /* acks=0 gets no response, ever; Kafka signals an error by closing. */
        if (any_err)
            return req_reject(req, "produce with acks=0 failed");
        return BROKER_PROTO_NONE;
    }
    if (any_wait) {
        req->flush_gen = b->flush_started + 1;
        b->acks_all_waiting++;
        return BROKER_PROTO_FLUSH;
    }
    return BROKER_PROTO_DONE;
}

/* ---- InitProducerId (22) ----------------------------------------------------------- */
int broker_proto_init_pid_decode(core_rd_t *rd, int16_t version, broker_proto_init_pid_t *r)
{
    (void)version; /* v0 and v1 requests are the same; v2+ (flexible) is not offered */
    memset(r, 0, sizeof *r);
    r->transactional_id = core_rd_nstr(rd);
    r->transaction_timeout_ms = core_rd_i32(rd);
    return rd->err;
}

static broker_proto_res_t handle_init_producer_id(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    broker_proto_init_pid_t r;
    if (broker_proto_init_pid_decode(rd, req->hdr.api_version, &r))
        return req_malformed(req, rd);
    int16_t err = BROKER_KERR_NONE;
    int64_t pid = -1;
    int16_t epoch = -1;
    const broker_proto_hdr_t *h = &req->hdr;
    int clen = h->client_id.len > 0 ? (int)h->client_id.len : 0;
    const char *cid = h->client_id.len > 0 ? (const char *)h->client_id.ptr : "";
    if (r.transactional_id.len >= 0) {
        err = BROKER_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        CORE_WARN("broker", "InitProducerId for transactional id '%.*s' refused: transactions "
                            "are not supported (client '%.*s')",
                  (int)r.transactional_id.len, (const char *)r.transactional_id.ptr, clen, cid);
    } else if (broker_producer_id_next(b, &pid)) {
        err = BROKER_KERR_KAFKA_STORAGE_ERROR; /* logged; the client retries */
        pid = -1;
    } else {
        epoch = 0;
        CORE_DEBUG("broker", "producer id %" PRId64 " for client '%.*s'", pid, clen, cid);
    }
    broker_proto_begin(req);
    core_wr_i32(&req->out, 0); /* throttle_time_ms */
    core_wr_i16(&req->out, err);
    core_wr_i64(&req->out, pid);
    core_wr_i16(&req->out, epoch);
    broker_proto_finish(req);
    return BROKER_PROTO_DONE;
}

/* ---- Fetch (1) ------------------------------------------------------------------- */
int broker_proto_fetch_decode(core_rd_t *rd, int16_t version, broker_proto_fetch_t *f)
{
    memset(f, 0, sizeof *f);
    f->replica_id = core_rd_i32(rd);
    f->max_wait_ms = core_rd_i32(rd);
    f->min_bytes = core_rd_i32(rd);
    f->max_bytes = version >= 3 ? core_rd_i32(rd) : INT32_MAX;
    if (version >= 4)
        f->isolation_level = core_rd_i8(rd);
    f->session_id = 0;
    f->session_epoch = -1;
    if (version >= 7) {
        f->session_id = core_rd_i32(rd);
        f->session_epoch = core_rd_i32(rd);
    }
    size_t pmin = 4 + 8 + 4 + (version >= 9 ? 4 : 0) + (version >= 5 ? 8 : 0);
    int32_t nt = core_rd_array(rd, BROKER_PROTO_MAX_TOPICS, 6);
    if (rd->err)
        return rd->err;
    f->topics = core_xcalloc((size_t)nt ? (size_t)nt : 1, sizeof *f->topics);
    f->ntopics = nt;
    for (int32_t i = 0; i < nt && !rd->err; i++) {
        broker_proto_fetch_topic_t *t = &f->topics[i];
        t->name = core_rd_str(rd);
        int32_t np = core_rd_array(rd, BROKER_PROTO_MAX_PARTITIONS, pmin);
        if (rd->err)
            break;
        t->parts = core_xcalloc((size_t)np ? (size_t)np : 1, sizeof *t->parts);
        t->nparts = np;
        for (int32_t j = 0; j < np && !rd->err; j++) {
            broker_proto_fetch_part_t *p = &t->parts[j];
            p->index = core_rd_i32(rd);
            p->current_leader_epoch = version >= 9 ? core_rd_i32(rd) : -1;
            p->fetch_offset = core_rd_i64(rd);
            p->log_start_offset = version >= 5 ? core_rd_i64(rd) : -1;
            p->max_bytes = core_rd_i32(rd);
        }
    }
    if (version >= 7 && !rd->err) {
        int32_t nf = core_rd_array(rd, BROKER_PROTO_MAX_TOPICS, 6);
        for (int32_t i = 0; i < nf && !rd->err; i++) {
            (void)core_rd_str(rd);
            int32_t np = core_rd_array(rd, BROKER_PROTO_MAX_PARTITIONS, 4);
            core_rd_skip(rd, (size_t)np * 4);
        }
    }
    if (version >= 11)
        f->rack_id = core_rd_str(rd);
    if (rd->err) {
        broker_proto_fetch_free(f);
        return rd->err;
    }
    return CORE_OK;
}

void broker_proto_fetch_free(broker_proto_fetch_t *f)
{
    for (int32_t i = 0; f->topics && i < f->ntopics; i++)
        free(f->topics[i].parts);
    free(f->topics);
    f->topics = NULL;
    f->ntopics = 0;
}

static broker_proto_res_t handle_fetch(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    int16_t v = req->hdr.api_version;
    broker_proto_fetch_t f;
    if (broker_proto_fetch_decode(rd, v, &f))
        return req_malformed(req, rd);
    int64_t budget = f.max_bytes > 0 ? f.max_bytes : 0;
    if (budget > BROKER_PROTO_MAX_FETCH_BYTES)
        budget = BROKER_PROTO_MAX_FETCH_BYTES;
    int64_t total = 0;
    bool any_err = false;
    int64_t nparts = 0;
    for (int32_t i = 0; i < f.ntopics; i++)
        nparts += f.topics[i].nparts;
    broker_log_t **watch = core_xmalloc((size_t)(nparts ? nparts : 1) * sizeof *watch);
    int nwatch = 0;

    broker_proto_begin(req);
    core_buf_t *o = &req->out;
    if (v >= 1)
        core_wr_i32(o, 0); /* throttle_time_ms */
    if (v >= 7) {
        core_wr_i16(o, BROKER_KERR_NONE);
        core_wr_i32(o, 0); /* session_id 0: no fetch session; clients keep full fetches */
    }
    core_wr_i32(o, f.ntopics);
    for (int32_t i = 0; i < f.ntopics; i++) {
        broker_proto_fetch_topic_t *ft = &f.topics[i];
        core_wr_str(o, ft->name.ptr, ft->name.len);
        int16_t terr = BROKER_KERR_NONE;
        broker_topic_t *t =
            broker_topic_get(b, (const char *)ft->name.ptr, (size_t)ft->name.len, false, &terr);
        core_wr_i32(o, ft->nparts);
        for (int32_t j = 0; j < ft->nparts; j++) {
            broker_proto_fetch_part_t *fp = &ft->parts[j];
            int16_t err = BROKER_KERR_NONE;
            int64_t hw = -1, start = -1;
            broker_log_slice_t slice = {0};
            if (!t)
                err = terr;
            else if (fp->index < 0 || fp->index >= t->npartitions)
                err = BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            else {
                broker_log_t *log = t->partitions[fp->index];
                watch[nwatch++] = log;
                hw = broker_log_high_watermark(log);
                start = broker_log_start_offset(log);
                int64_t room = budget - total;
                /* KIP-74: the first batch is sent even when it exceeds the
                 * limits, later partitions only when they fit. */
                int64_t want = fp->max_bytes > 0 ? fp->max_bytes : 0;
                if (want > BROKER_PROTO_MAX_FETCH_BYTES)
                    want = BROKER_PROTO_MAX_FETCH_BYTES;
                if (total > 0 && room < want)
                    want = room;
                if (want > 0 || total == 0) {
                    int rc = broker_log_read(log, fp->fetch_offset, want > 0 ? want : 1, &slice);
                    if (rc) {
                        err = broker_proto_kerr(rc);
                        slice.len = 0;
                    } else if (slice.len > 0 && total > 0 && slice.len > room) {
                        broker_log_slice_release(&slice);
                        slice.len = 0;
                    }
                }
            }
            any_err |= err != BROKER_KERR_NONE;
            core_wr_i32(o, fp->index);
            core_wr_i16(o, err);
            core_wr_i64(o, hw);
            core_wr_i64(o, hw); /* last_stable_offset = HW: no transactions (pitfall 9) */
            if (v >= 5)
                core_wr_i64(o, start);
            core_wr_i32(o, 0); /* aborted_transactions: none */
            if (v >= 11)
                core_wr_i32(o, -1); /* preferred_read_replica */
            if (slice.len > 0) {
                core_wr_i32(o, (int32_t)slice.len);
                req_add_file(req, &slice);
                total += slice.len;
            } else {
                core_wr_i32(o, 0);
                if (slice.seg)
                    broker_log_slice_release(&slice);
            }
        }
    }
    broker_proto_finish(req);
    broker_proto_fetch_free(&f);
    if (!req->final && !any_err && total < f.min_bytes && f.max_wait_ms > 0) {
        if (!req->deadline_ms)
            req->deadline_ms = req->now_ms + f.max_wait_ms;
        if (req->now_ms < req->deadline_ms) {
            broker_req_reset(req);
            for (int i = 0; i < nwatch; i++)
                req_add_watch(req, watch[i]);
            free(watch);
            return BROKER_PROTO_WAIT;
        }
    }
    free(watch);
    return BROKER_PROTO_DONE;
}

/* ---- whole-body decoding for ListOffsets and the admin requests ----------------- */
/* These requests are decoded whole, each wire layout by one rd_* function,
 * before anything is answered or done: a body found malformed halfway closes
 * the connection before its first topic was created, altered or deleted.
 * Strings and broker-id lists are views into the frame (valid while the
 * request is); the arrays come from one body_mem_t, freed by body_free. */
typedef struct body_mem {
    void **blocks;
    int n, cap;
} body_mem_t;

/* An array of n zeroed entries owned by m; n is a count the reader capped
 * (0 after a failed read, -1 for a null array: both get one entry). */
static void *body_array(body_mem_t *m, int32_t n, size_t size)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 8;
        m->blocks = core_xrealloc(m->blocks, sizeof *m->blocks * (size_t)m->cap);
    }
    return m->blocks[m->n++] = core_xcalloc(n > 0 ? (size_t)n : 1, size);
}

static void body_free(body_mem_t *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->blocks[i]);
    free(m->blocks);
    memset(m, 0, sizeof *m);
}

/* A config as CreateTopics and AlterConfigs send it: name, nullable value. */
typedef struct cfg_pair {
    core_slice_t key;
    core_slice_t value; /* len -1: null */
} cfg_pair_t;

static cfg_pair_t *rd_cfg_pairs(core_rd_t *rd, body_mem_t *m, int32_t *n)
{
    *n = core_rd_array(rd, BROKER_PROTO_MAX_CONFIGS, 4);
    cfg_pair_t *c = body_array(m, *n, sizeof *c);
    for (int32_t j = 0; j < *n && !rd->err; j++) {
        c[j].key = core_rd_str(rd);
        c[j].value = core_rd_nstr(rd);
    }
    return c;
}

/* NUL-terminated copies of n configs; a null value stays NULL. The caller
 * frees them with cfg_cstrs_free. */
static void cfg_cstrs(const cfg_pair_t *c, int32_t n, const char ***keys, const char ***vals)
{
    *keys = core_xcalloc((size_t)n + 1, sizeof **keys);
    *vals = core_xcalloc((size_t)n + 1, sizeof **vals);
    for (int32_t j = 0; j < n; j++) {
        (*keys)[j] = core_xstrndup((const char *)c[j].key.ptr, (size_t)c[j].key.len);
        if (c[j].value.len >= 0)
            (*vals)[j] = core_xstrndup((const char *)c[j].value.ptr, (size_t)c[j].value.len);
    }
}

static void cfg_cstrs_free(const char **keys, const char **vals, int32_t n)
{
    for (int32_t j = 0; j < n; j++) {
        free((void *)keys[j]);
        free((void *)vals[j]);
    }
    free(keys);
    free(vals);
}

/* A replica assignment's broker ids ([int32]), kept as a view of the wire. */
static core_slice_t rd_broker_ids(core_rd_t *rd)
{
    int32_t n = core_rd_array(rd, 1000, 4);
    return core_rd_raw(rd, (size_t)n * 4);
}

static int32_t broker_ids_count(core_slice_t ids)
{
    return (int32_t)(ids.len / 4);
}

/* True when every id of the list names this node, the only broker there is. */
static bool broker_ids_all_this_node(core_slice_t ids, int32_t node_id)
{
    core_rd_t rd;
    core_rd_init(&rd, ids.ptr, (size_t)ids.len);
    while (core_rd_remain(&rd) >= 4)
        if (core_rd_i32(&rd) != node_id)
            return false;
    return true;
}

/* ---- ListOffsets (2) ------------------------------------------------------------ */
typedef struct lo_part {
    int32_t index;
    int64_t timestamp; /* -1 latest, -2 earliest, else a time */
    int32_t max_num;   /* v0 only (1 for later versions) */
} lo_part_t;

typedef struct lo_topic {
    core_slice_t name;
    lo_part_t *parts;
    int32_t nparts;
} lo_topic_t;

typedef struct lo_body {
    lo_topic_t *topics;
    int32_t ntopics;
    body_mem_t mem;
} lo_body_t;

/* v0-5: replica_id, [isolation_level (v2+)], [name, [partition,
 * [current_leader_epoch (v4+)], timestamp, [max_num_offsets (v0)]]]. */
static int rd_list_offsets(core_rd_t *rd, int16_t v, lo_body_t *r)
{
    memset(r, 0, sizeof *r);
    (void)core_rd_i32(rd); /* replica_id */
    if (v >= 2)
        (void)core_rd_i8(rd); /* isolation_level: LSO == HW without transactions */
    size_t pmin = 4 + 8 + (v >= 4 ? 4 : 0) + (v == 0 ? 4 : 0);
    r->ntopics = core_rd_array(rd, BROKER_PROTO_MAX_TOPICS, 6);
    r->topics = body_array(&r->mem, r->ntopics, sizeof *r->topics);
    for (int32_t i = 0; i < r->ntopics && !rd->err; i++) {
        lo_topic_t *t = &r->topics[i];
        t->name = core_rd_str(rd);
        t->nparts = core_rd_array(rd, BROKER_PROTO_MAX_PARTITIONS, pmin);
        t->parts = body_array(&r->mem, t->nparts, sizeof *t->parts);
        for (int32_t j = 0; j < t->nparts && !rd->err; j++) {
            lo_part_t *p = &t->parts[j];
            p->index = core_rd_i32(rd);
            if (v >= 4)
                (void)core_rd_i32(rd); /* current_leader_epoch */
            p->timestamp = core_rd_i64(rd);
            p->max_num = v == 0 ? core_rd_i32(rd) : 1;
        }
    }
    return rd->err;
}

static broker_proto_res_t handle_list_offsets(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    int16_t v = req->hdr.api_version;
    lo_body_t r;
    if (rd_list_offsets(rd, v, &r)) {
        body_free(&r.mem);
        return req_malformed(req, rd);
    }
    broker_proto_begin(req);
    core_buf_t *o = &req->out;
    if (v >= 2)
        core_wr_i32(o, 0);
    core_wr_i32(o, r.ntopics);
    for (int32_t i = 0; i < r.ntopics; i++) {
        const lo_topic_t *lt = &r.topics[i];
        int16_t terr = BROKER_KERR_NONE;
        broker_topic_t *t =
            broker_topic_get(b, (const char *)lt->name.ptr, (size_t)lt->name.len, false, &terr);
        core_wr_str(o, lt->name.ptr, lt->name.len);
        core_wr_i32(o, lt->nparts);
        for (int32_t j = 0; j < lt->nparts; j++) {
            const lo_part_t *lp = &lt->parts[j];
            int16_t err = BROKER_KERR_NONE;
            int64_t off = -1, ts_out = -1;
            broker_log_t *log = NULL;
            if (!t)
                err = terr;
            else if (lp->index < 0 || lp->index >= t->npartitions)
                err = BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            else {
                log = t->partitions[lp->index];
                if (lp->timestamp == -1)
                    off = broker_log_high_watermark(log); /* = LSO (pitfall 9) */
                else if (lp->timestamp == -2)
                    off = broker_log_start_offset(log);
                else
                    off = broker_log_offset_for_time(log, lp->timestamp, &ts_out);
            }
            core_wr_i32(o, lp->index);
            core_wr_i16(o, err);
            if (v == 0) {
                bool one = !err && off >= 0 && lp->max_num > 0;
                core_wr_i32(o, one ? 1 : 0);
                if (one)
                    core_wr_i64(o, off);
            } else {
                core_wr_i64(o, ts_out);
                core_wr_i64(o, off);
                if (v >= 4)
                    core_wr_i32(o, log ? broker_log_leader_epoch(log) : -1);
            }
        }
    }
    broker_proto_finish(req);
    body_free(&r.mem);
    return BROKER_PROTO_DONE;
}

/* ---- CreateTopics (19) ------------------------------------------------------------ */
typedef struct ct_assign {
    int32_t partition;
    core_slice_t brokers; /* broker ids */
} ct_assign_t;

typedef struct ct_topic {
    core_slice_t name;
    int32_t nparts; /* -1: from the assignments, else the broker default */
    int16_t rf;
    ct_assign_t *assign;
    int32_t nassign;
    cfg_pair_t *configs;
    int32_t nconfigs;
} ct_topic_t;

typedef struct ct_body {
    ct_topic_t *topics;
    int32_t ntopics;
    bool validate_only;
    body_mem_t mem;
} ct_body_t;

/* v0-4: [name, num_partitions, replication_factor, [partition, [broker_id]],
 * [config_name, nullable config_value]], timeout_ms, [validate_only (v1+)]. */
static int rd_create_topics(core_rd_t *rd, int16_t v, ct_body_t *r)
{
    memset(r, 0, sizeof *r);
    r->ntopics = core_rd_array(rd, BROKER_PROTO_MAX_TOPICS, 2 + 4 + 2 + 4 + 4);
    r->topics = body_array(&r->mem, r->ntopics, sizeof *r->topics);
    for (int32_t i = 0; i < r->ntopics && !rd->err; i++) {
        ct_topic_t *t = &r->topics[i];
        t->name = core_rd_str(rd);
        t->nparts = core_rd_i32(rd);
        t->rf = core_rd_i16(rd);
        t->nassign = core_rd_array(rd, BROKER_PROTO_MAX_CREATE_PARTITIONS, 8);
        t->assign = body_array(&r->mem, t->nassign, sizeof *t->assign);
        for (int32_t j = 0; j < t->nassign && !rd->err; j++) {
            t->assign[j].partition = core_rd_i32(rd);
            t->assign[j].brokers = rd_broker_ids(rd);
        }
        t->configs = rd_cfg_pairs(rd, &r->mem, &t->nconfigs);
    }
    (void)core_rd_i32(rd); /* timeout_ms */
    r->validate_only = v >= 1 ? core_rd_i8(rd) != 0 : false;
    return rd->err;
}

/* Creates (or with validate_only checks) one topic. Returns its error code,
 * with msg saying why. */
static int16_t create_topic(broker_t *b, const ct_topic_t *ct, bool validate_only, char *msg,
                            size_t msgsz)
{
    int16_t err = BROKER_KERR_NONE;
    for (int32_t j = 0; j < ct->nassign && !err; j++)
        if (!broker_ids_all_this_node(ct->assign[j].brokers, b->node_id)) {
            err = BROKER_KERR_INVALID_REPLICA_ASSIGNMENT;
            snprintf(msg, msgsz, "replica assignment names an unknown broker");
        }
    const char **keys, **vals;
    cfg_cstrs(ct->configs, ct->nconfigs, &keys, &vals);
    for (int32_t j = 0; j < ct->nconfigs && !err; j++)
        if (!vals[j]) {
            err = BROKER_KERR_INVALID_CONFIG;
            snprintf(msg, msgsz, "config %s has a null value", keys[j]);
        }
    int32_t nparts = ct->nparts;
    if (ct->nassign > 0 && nparts == -1)
        nparts = ct->nassign;
    if (nparts == -1)
        nparts = (int32_t)b->conf.num_partitions;
    core_slice_t name = ct->name;
    char nbuf[256], *heap;
    const char *cname = slice_cstr(name, nbuf, sizeof nbuf, &heap);
    if (err) {
    } else if (!broker_topic_name_valid((const char *)name.ptr, (size_t)name.len)) {
        err = BROKER_KERR_INVALID_TOPIC_EXCEPTION;
        snprintf(msg, msgsz, "illegal topic name (1..249 of [a-zA-Z0-9._-], not . or ..)");
    } else if (!broker_groups_topic_allowed(b, (const char *)name.ptr, (size_t)name.len, msg,
                                            msgsz)) {
        err = BROKER_KERR_INVALID_TOPIC_EXCEPTION; /* --topic-name-pattern; msg says why */
    } else if (nparts <= 0 || nparts > b->conf.max_partitions) {
        err = BROKER_KERR_INVALID_PARTITIONS;
        snprintf(msg, msgsz, "partition count %d is not in 1..%lld", nparts,
                 (long long)b->conf.max_partitions);
    } else if (ct->rf != -1 && ct->rf != 1) {
        err = BROKER_KERR_INVALID_REPLICATION_FACTOR;
        snprintf(msg, msgsz, "replication factor %d > 1 available broker", ct->rf);
    } else {
        int rc = broker_topics_create(b->topics, cname, nparts, keys, vals, ct->nconfigs,
                                      validate_only, msg, msgsz);
        if (rc == CORE_ERR_EXISTS) {
            err = BROKER_KERR_TOPIC_ALREADY_EXISTS;
            snprintf(msg, msgsz, "topic '%s' already exists", cname);
        } else if (rc) {
            err = broker_proto_kerr(rc);
            if (!msg[0])
                snprintf(msg, msgsz, "%s", core_strerror(rc));
        }
    }
    cfg_cstrs_free(keys, vals, ct->nconfigs);
    free(heap);
    return err;
}

/* An error message, or null when there is no error (admin responses, v1+). */
static void wr_error_message(core_buf_t *o, int16_t err, const char *msg)
{
    if (err)
        core_wr_str(o, msg, (int64_t)strlen(msg));
    else
        core_wr_str(o, NULL, -1);
}

static broker_proto_res_t handle_create_topics(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    int16_t v = req->hdr.api_version;
    ct_body_t r;
    if (rd_create_topics(rd, v, &r)) {
        body_free(&r.mem);
        return req_malformed(req, rd);
    }
    broker_proto_begin(req);
    core_buf_t *o = &req->out;
    if (v >= 2)
        core_wr_i32(o, 0);
    core_wr_i32(o, r.ntopics);
    for (int32_t i = 0; i < r.ntopics; i++) {
        const ct_topic_t *ct = &r.topics[i];
        char msg[512] = "";
        int16_t err = create_topic(b, ct, r.validate_only, msg, sizeof msg);
        core_wr_str(o, ct->name.ptr, ct->name.len);
        core_wr_i16(o, err);
        if (v >= 1)
            wr_error_message(o, err, msg);
    }
    broker_proto_finish(req);
    body_free(&r.mem);
    return BROKER_PROTO_DONE;
}

/* ---- DeleteRecords (21) ----------------------------------------------------------- */
typedef struct dr_part {
    int32_t index;
    int64_t offset; /* -1: the high watermark */
} dr_part_t;

typedef struct dr_topic {
    core_slice_t name;
    dr_part_t *parts;
    int32_t nparts;
} dr_topic_t;

typedef struct dr_body {
    dr_topic_t *topics;
    int32_t ntopics;
    body_mem_t mem;
} dr_body_t;

/* v0-1 (v1 only changed throttling): [name, [partition, offset]], timeout_ms. */
static int rd_delete_records(core_rd_t *rd, dr_body_t *r)
{
    memset(r, 0, sizeof *r);
    r->ntopics = core_rd_array(rd, BROKER_PROTO_MAX_TOPICS, 2 + 4);
    r->topics = body_array(&r->mem, r->ntopics, sizeof *r->topics);
    for (int32_t i = 0; i < r->ntopics && !rd->err; i++) {
        dr_topic_t *t = &r->topics[i];
        t->name = core_rd_str(rd);
        t->nparts = core_rd_array(rd, BROKER_PROTO_MAX_PARTITIONS, 12);
        t->parts = body_array(&r->mem, t->nparts, sizeof *t->parts);
        for (int32_t j = 0; j < t->nparts && !rd->err; j++) {
            t->parts[j].index = core_rd_i32(rd);
            t->parts[j].offset = core_rd_i64(rd);
        }
    }
    (void)core_rd_i32(rd); /* timeout_ms */
    return rd->err;
}

/* -> [name, [partition, low_watermark, error_code]]. The new start is durable
 * before the answer (broker_log.h). */
static broker_proto_res_t handle_delete_records(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    dr_body_t r;
    if (rd_delete_records(rd, &r)) {
        body_free(&r.mem);
        return req_malformed(req, rd);
    }
    broker_proto_begin(req);
    core_buf_t *o = &req->out;
    core_wr_i32(o, 0); /* throttle_time_ms */
    core_wr_i32(o, r.ntopics);
    for (int32_t i = 0; i < r.ntopics; i++) {
        const dr_topic_t *dt = &r.topics[i];
        broker_topic_t *t = broker_topics_find(b->topics, (const char *)dt->name.ptr,
                                               (size_t)(dt->name.len > 0 ? dt->name.len : 0));
        core_wr_str(o, dt->name.ptr, dt->name.len);
        core_wr_i32(o, dt->nparts);
        for (int32_t j = 0; j < dt->nparts; j++) {
            int32_t part = dt->parts[j].index;
            int64_t off = dt->parts[j].offset, low = -1;
            int16_t err = BROKER_KERR_NONE;
            if (!t || part < 0 || part >= t->npartitions) {
                err = BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            } else {
                broker_log_t *log = t->partitions[part];
                int rc = broker_log_delete_records(
                    log, off == -1 ? broker_log_high_watermark(log) : off, &low);
                if (rc == CORE_ERR_RANGE)
                    err = BROKER_KERR_OFFSET_OUT_OF_RANGE;
                else if (rc)
                    err = broker_proto_kerr(rc);
            }
            core_wr_i32(o, part);
            core_wr_i64(o, err ? -1 : low);
            core_wr_i16(o, err);
        }
    }
    broker_proto_finish(req);
    body_free(&r.mem);
    return BROKER_PROTO_DONE;
}

/* DescribeConfigs / AlterConfigs resource types. */
enum { RESOURCE_TOPIC = 2, RESOURCE_BROKER = 4 };

/* ---- AlterConfigs (33) ------------------------------------------------------------ */
typedef struct ac_resource {
    int8_t type;
    core_slice_t name;
    cfg_pair_t *configs;
    int32_t nconfigs;
} ac_resource_t;

typedef struct ac_body {
    ac_resource_t *res;
    int32_t nres;
    bool validate_only;
    body_mem_t mem;
} ac_body_t;

/* v0-1 (v1 only changed throttling): [resource_type, name, [key, value]],
 * validate_only. */
static int rd_alter_configs(core_rd_t *rd, ac_body_t *r)
{
    memset(r, 0, sizeof *r);
    r->nres = core_rd_array(rd, BROKER_PROTO_MAX_TOPICS, 1 + 2 + 4);
    r->res = body_array(&r->mem, r->nres, sizeof *r->res);
    for (int32_t i = 0; i < r->nres && !rd->err; i++) {
        ac_resource_t *res = &r->res[i];
        res->type = core_rd_i8(rd);
        res->name = core_rd_str(rd);
        res->configs = rd_cfg_pairs(rd, &r->mem, &res->nconfigs);
    }
    r->validate_only = core_rd_i8(rd) != 0;
    return rd->err;
}

/* Replaces (or with validate_only checks) one resource's configs. Returns its
 * error code, with msg saying why. */
static int16_t alter_configs(broker_t *b, const ac_resource_t *res, bool validate_only, char *msg,
                             size_t msgsz)
{
    if (res->type == RESOURCE_BROKER) {
        snprintf(msg, msgsz, "broker settings are start-up flags (eddy broker --help)");
        return BROKER_KERR_INVALID_REQUEST;
    }
    if (res->type != RESOURCE_TOPIC) {
        snprintf(msg, msgsz, "only topic resources can be altered");
        return BROKER_KERR_INVALID_REQUEST;
    }
    const char **keys, **vals;
    cfg_cstrs(res->configs, res->nconfigs, &keys, &vals);
    char nbuf[256], *heap;
    const char *cname = slice_cstr(res->name, nbuf, sizeof nbuf, &heap);
    int rc = broker_topics_set_configs(b->topics, cname, keys, vals, res->nconfigs, validate_only,
                                       msg, msgsz);
    free(heap);
    cfg_cstrs_free(keys, vals, res->nconfigs);
    /* NOT_FOUND -> UNKNOWN_TOPIC_OR_PARTITION, INVAL -> INVALID_CONFIG */
    return rc ? broker_proto_kerr(rc) : BROKER_KERR_NONE;
}

/* -> [error_code, error_message, resource_type, name]. Topic resources only:
 * the given set replaces the topic's explicit configs (Kafka's non-incremental
 * semantics). Broker settings are start-up flags. */
static broker_proto_res_t handle_alter_configs(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    ac_body_t r;
    if (rd_alter_configs(rd, &r)) {
        body_free(&r.mem);
        return req_malformed(req, rd);
    }
    broker_proto_begin(req);
    core_buf_t *o = &req->out;
    core_wr_i32(o, 0); /* throttle_time_ms */
    core_wr_i32(o, r.nres);
    for (int32_t i = 0; i < r.nres; i++) {
        const ac_resource_t *res = &r.res[i];
        char msg[512] = "";
        int16_t err = alter_configs(b, res, r.validate_only, msg, sizeof msg);
        core_wr_i16(o, err);
        wr_error_message(o, err, msg);
        core_wr_i8(o, res->type);
        core_wr_str(o, res->name.ptr, res->name.len);
    }
    broker_proto_finish(req);
    body_free(&r.mem);
    return BROKER_PROTO_DONE;
}

/* ---- CreatePartitions (37) -------------------------------------------------------- */
typedef struct cp_topic {
    core_slice_t name;
    int32_t count;        /* the new partition count */
    core_slice_t *assign; /* broker ids of each new partition */
    int32_t nassign;      /* -1: null (no explicit assignment) */
} cp_topic_t;

typedef struct cp_body {
    cp_topic_t *topics;
    int32_t ntopics;
    bool validate_only;
    body_mem_t mem;
} cp_body_t;

/* v0-1 (v1 only changed throttling): [name, count, assignments (nullable
 * [[broker_id]])], timeout_ms, validate_only. */
static int rd_create_partitions(core_rd_t *rd, cp_body_t *r)
{
    memset(r, 0, sizeof *r);
    r->ntopics = core_rd_array(rd, BROKER_PROTO_MAX_TOPICS, 2 + 4 + 4);
    r->topics = body_array(&r->mem, r->ntopics, sizeof *r->topics);
    for (int32_t i = 0; i < r->ntopics && !rd->err; i++) {
        cp_topic_t *t = &r->topics[i];
        t->name = core_rd_str(rd);
        t->count = core_rd_i32(rd);
        t->nassign = core_rd_narray(rd, BROKER_PROTO_MAX_CREATE_PARTITIONS, 4);
        t->assign = body_array(&r->mem, t->nassign, sizeof *t->assign);
        for (int32_t j = 0; j < t->nassign && !rd->err; j++)
            t->assign[j] = rd_broker_ids(rd);
    }
    (void)core_rd_i32(rd); /* timeout_ms: growth is synchronous here */
    r->validate_only = core_rd_i8(rd) != 0;
    return rd->err;
}

/* Grows (or with validate_only checks) one topic. Single node: an explicit
 * assignment must give one broker list per new partition naming only this
 * broker. Returns the error code, with msg saying why. */
static int16_t create_partitions(broker_t *b, const cp_topic_t *cp, bool validate_only, char *msg,
                                 size_t msgsz)
{
    int32_t count = cp->count;
    bool bad_assignment = false;
    for (int32_t j = 0; j < cp->nassign; j++)
        bad_assignment |= broker_ids_count(cp->assign[j]) < 1 ||
                          !broker_ids_all_this_node(cp->assign[j], b->node_id);
    int16_t err = BROKER_KERR_NONE;
    char nbuf[256], *heap;
    const char *cname = slice_cstr(cp->name, nbuf, sizeof nbuf, &heap);
    broker_topic_t *t = broker_topics_find(b->topics, (const char *)cp->name.ptr,
                                           (size_t)(cp->name.len > 0 ? cp->name.len : 0));
    if (!t) {
        err = BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION;
        snprintf(msg, msgsz, "topic '%s' does not exist", cname);
    } else if (count > b->conf.max_partitions) {
        err = BROKER_KERR_INVALID_PARTITIONS;
        snprintf(msg, msgsz, "partition count %d is over --max-partitions %lld", count,
                 (long long)b->conf.max_partitions);
    } else if (count <= t->npartitions) {
        err = BROKER_KERR_INVALID_PARTITIONS;
        snprintf(msg, msgsz, "topic '%s' has %d partitions; the new count (%d) must be higher",
                 cname, (int)t->npartitions, (int)count);
    } else if (cp->nassign >= 0 && (bad_assignment || cp->nassign != count - t->npartitions)) {
        err = BROKER_KERR_INVALID_REPLICA_ASSIGNMENT;
        snprintf(msg, msgsz,
                 "the assignment must list node %d alone for each of the %d new partitions",
                 (int)b->node_id, (int)(count - t->npartitions));
    } else {
        int rc = broker_topics_add_partitions(b->topics, cname, count, validate_only, msg, msgsz);
        if (rc == CORE_ERR_INVAL)
            err = BROKER_KERR_INVALID_PARTITIONS;
        else if (rc)
            err = broker_proto_kerr(rc);
    }
    free(heap);
    return err;
}

/* -> [name, error_code, error_message]. A name given twice is simply applied
 * twice (the second finds the count reached: INVALID_PARTITIONS). */
static broker_proto_res_t handle_create_partitions(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    cp_body_t r;
    if (rd_create_partitions(rd, &r)) {
        body_free(&r.mem);
        return req_malformed(req, rd);
    }
    broker_proto_begin(req);
    core_buf_t *o = &req->out;
    core_wr_i32(o, 0); /* throttle_time_ms */
    core_wr_i32(o, r.ntopics);
    for (int32_t i = 0; i < r.ntopics; i++) {
        const cp_topic_t *cp = &r.topics[i];
        char msg[512] = "";
        int16_t err = create_partitions(b, cp, r.validate_only, msg, sizeof msg);
        core_wr_str(o, cp->name.ptr, cp->name.len);
        core_wr_i16(o, err);
        wr_error_message(o, err, msg);
    }
    broker_proto_finish(req);
    body_free(&r.mem);
    return BROKER_PROTO_DONE;
}

/* ---- DeleteTopics (20) ------------------------------------------------------------ */
typedef struct dt_body {
    core_slice_t *names;
    int32_t nnames;
    body_mem_t mem;
} dt_body_t;

/* v0-3: [name], timeout_ms. */
static int rd_delete_topics(core_rd_t *rd, dt_body_t *r)
{
    memset(r, 0, sizeof *r);
    r->nnames = core_rd_array(rd, BROKER_PROTO_MAX_TOPICS, 2);
    r->names = body_array(&r->mem, r->nnames, sizeof *r->names);
    for (int32_t i = 0; i < r->nnames && !rd->err; i++)
        r->names[i] = core_rd_str(rd);
    (void)core_rd_i32(rd); /* timeout_ms */
    return rd->err;
}

/* Deletes one topic; returns its error code. */
static int16_t delete_topic(broker_t *b, core_slice_t name)
{
    broker_topic_t *t = broker_topics_find(b->topics, (const char *)name.ptr, (size_t)name.len);
    if (!t)
        return BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    int16_t err = BROKER_KERR_NONE;
    char nbuf[256], *heap;
    const char *cname = slice_cstr(name, nbuf, sizeof nbuf, &heap);
    int rc = broker_topics_delete(b->topics, cname);
    if (rc) {
        err = broker_proto_kerr(rc);
        CORE_WARN("broker", "deleting topic %s failed: %s", cname, core_strerror(rc));
    } else {
        broker_groups_topic_deleted(b, cname); /* its committed offsets go too */
    }
    free(heap);
    return err;
}

static broker_proto_res_t handle_delete_topics(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    int16_t v = req->hdr.api_version;
    dt_body_t r;
    if (rd_delete_topics(rd, &r)) {
        body_free(&r.mem);
        return req_malformed(req, rd);
    }
    /* acks=all waiters and a running flush hold pointers to partition logs. */
    for (int32_t i = 0; i < r.nnames; i++) {
        core_slice_t name = r.names[i];
        broker_topic_t *t = broker_topics_find(b->topics, (const char *)name.ptr, (size_t)name.len);
        if (t && broker_topic_flush_busy(b, t)) {
            body_free(&r.mem);
            return BROKER_PROTO_RETRY;
        }
    }
    broker_proto_begin(req);
    core_buf_t *o = &req->out;
    if (v >= 1)
        core_wr_i32(o, 0);
    core_wr_i32(o, r.nnames);
    for (int32_t i = 0; i < r.nnames; i++) {
        int16_t err = delete_topic(b, r.names[i]);
        core_wr_str(o, r.names[i].ptr, r.names[i].len);
        core_wr_i16(o, err);
    }
    broker_proto_finish(req);
    body_free(&r.mem);
    return BROKER_PROTO_DONE;
}

/* ---- DescribeConfigs (32) ---------------------------------------------------------- */
enum { CFG_SRC_TOPIC = 1, CFG_SRC_STATIC_BROKER = 4, CFG_SRC_DEFAULT = 5 };

typedef struct cfg_entry {
    const char *name;
    char value[32];
} cfg_entry_t;

/* The effective configs of a topic, by Kafka name. */
static int topic_configs(const broker_topic_t *t, cfg_entry_t *e)
{
    int n = 0;
    e[n].name = "cleanup.policy";
    snprintf(e[n++].value, sizeof e->value, "delete");
    e[n].name = "retention.ms";
    snprintf(e[n++].value, sizeof e->value, "%lld", (long long)t->conf.retention_ms);
    e[n].name = "retention.bytes";
    snprintf(e[n++].value, sizeof e->value, "%lld", (long long)t->conf.retention_bytes);
    e[n].name = "segment.bytes";
    snprintf(e[n++].value, sizeof e->value, "%lld", (long long)t->conf.segment_bytes);
    e[n].name = "segment.ms";
    snprintf(e[n++].value, sizeof e->value, "%lld", (long long)t->conf.segment_ms);
    e[n].name = "max.message.bytes";
    snprintf(e[n++].value, sizeof e->value, "%lld", (long long)t->conf.max_message_bytes);
    e[n].name = "message.timestamp.type";
    snprintf(e[n++].value, sizeof e->value, "CreateTime");
    return n;
}

static bool topic_config_is_set(const broker_topic_t *t, const char *name)
{
    for (int i = 0; i < t->nconfigs; i++)
        if (!strcmp(t->config_keys[i], name))
            return true;
    return false;
}

static bool key_wanted(core_slice_t *keys, int32_t nkeys, const char *name)
{
    if (nkeys < 0)
        return true;
    size_t n = strlen(name);
    for (int32_t i = 0; i < nkeys; i++)
        if ((size_t)keys[i].len == n && !memcmp(keys[i].ptr, name, n))
            return true;
    return false;
}

typedef struct dc_resource {
    int8_t type;
    core_slice_t name;
    core_slice_t *keys;
    int32_t nkeys; /* -1: null (every config) */
} dc_resource_t;

typedef struct dc_body {
    dc_resource_t *res;
    int32_t nres;
    body_mem_t mem;
} dc_body_t;

/* v0-2: [resource_type, name, nullable [config_name]], [include_synonyms (v1+)]. */
static int rd_describe_configs(core_rd_t *rd, int16_t v, dc_body_t *r)
{
    memset(r, 0, sizeof *r);
    r->nres = core_rd_array(rd, BROKER_PROTO_MAX_TOPICS, 1 + 2 + 4);
    r->res = body_array(&r->mem, r->nres, sizeof *r->res);
    for (int32_t i = 0; i < r->nres && !rd->err; i++) {
        dc_resource_t *res = &r->res[i];
        res->type = core_rd_i8(rd);
        res->name = core_rd_str(rd);
        res->nkeys = core_rd_narray(rd, BROKER_PROTO_MAX_CONFIGS, 2);
        res->keys = body_array(&r->mem, res->nkeys, sizeof *res->keys);
        for (int32_t j = 0; j < res->nkeys && !rd->err; j++)
            res->keys[j] = core_rd_str(rd);
    }
    if (v >= 1)
        (void)core_rd_i8(rd); /* include_synonyms */
    return rd->err;
}

static broker_proto_res_t handle_describe_configs(broker_t *b, broker_req_t *req, core_rd_t *rd)
{
    int16_t v = req->hdr.api_version;
    dc_body_t r;
    if (rd_describe_configs(rd, v, &r)) {
        body_free(&r.mem);
        return req_malformed(req, rd);
    }
    broker_proto_begin(req);
    core_buf_t *o = &req->out;
    core_wr_i32(o, 0);
    core_wr_i32(o, r.nres);
    for (int32_t i = 0; i < r.nres; i++) {
        int8_t type = r.res[i].type;
        core_slice_t name = r.res[i].name;
        core_slice_t *keys = r.res[i].keys;
        int32_t nk = r.res[i].nkeys;
        cfg_entry_t e[16];
        int ne = 0;
        int16_t err = BROKER_KERR_NONE;
        const char *msg = NULL;
        const broker_topic_t *t = NULL;
        if (type == RESOURCE_TOPIC) {
            t = broker_topics_find(b->topics, (const char *)name.ptr, (size_t)name.len);
            if (!t) {
                err = BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION;
                msg = "unknown topic";
            } else {
                ne = topic_configs(t, e);
            }
        } else if (type == RESOURCE_BROKER) {
            e[ne].name = "num.partitions";
            snprintf(e[ne++].value, sizeof e->value, "%lld", (long long)b->conf.num_partitions);
            e[ne].name = "auto.create.topics.enable";
            snprintf(e[ne++].value, sizeof e->value, "%s", b->conf.auto_create_topics ? "true" : "false");
            e[ne].name = "socket.request.max.bytes";
            snprintf(e[ne++].value, sizeof e->value, "%lld", (long long)b->conf.max_request_bytes);
        } else {
            err = BROKER_KERR_INVALID_REQUEST;
            msg = "only topic and broker resources are supported";
        }
        core_wr_i16(o, err);
        core_wr_str(o, msg, msg ? (int64_t)strlen(msg) : -1);
        core_wr_i8(o, type);
        core_wr_str(o, name.ptr, name.len);
        int nout = 0;
        for (int k = 0; k < ne; k++)
            nout += key_wanted(keys, nk, e[k].name);
        core_wr_i32(o, nout);
        for (int k = 0; k < ne; k++) {
            if (!key_wanted(keys, nk, e[k].name))
                continue;
            bool set = t ? topic_config_is_set(t, e[k].name) : true;
            core_wr_str(o, e[k].name, (int64_t)strlen(e[k].name));
            core_wr_str(o, e[k].value, (int64_t)strlen(e[k].value));
            core_wr_i8(o, type == RESOURCE_BROKER); /* read_only */
            if (v == 0)
                core_wr_i8(o, !set); /* is_default */
            else
                core_wr_i8(o, t ? (set ? CFG_SRC_TOPIC : CFG_SRC_DEFAULT) : CFG_SRC_STATIC_BROKER);
            core_wr_i8(o, 0); /* is_sensitive */
            if (v >= 1)
                core_wr_i32(o, 0); /* synonyms */
        }
    }
    broker_proto_finish(req);
    body_free(&r.mem);
    return BROKER_PROTO_DONE;
}

/* ---- the dispatch table ----------------------------------------------------------- */
/* Advertised exactly as docs/kafka-protocol.md §3.4, limited to what is
 * implemented. Group rows (issue 4): give them a handler to advertise them. */
static const broker_proto_api_t apis[] = {
    {BROKER_API_PRODUCE, 3, 7, "Produce", handle_produce},
    {BROKER_API_FETCH, 4, 11, "Fetch", handle_fetch},
    {BROKER_API_LIST_OFFSETS, 0, 5, "ListOffsets", handle_list_offsets},
    {BROKER_API_METADATA, 0, 8, "Metadata", handle_metadata},
    {BROKER_API_OFFSET_COMMIT, 0, 7, "OffsetCommit", broker_groups_handle_offset_commit},
    {BROKER_API_OFFSET_FETCH, 0, 5, "OffsetFetch", broker_groups_handle_offset_fetch},
    {BROKER_API_FIND_COORDINATOR, 0, 2, "FindCoordinator", broker_groups_handle_find_coordinator},
    {BROKER_API_JOIN_GROUP, 0, 5, "JoinGroup", broker_groups_handle_join},
    {BROKER_API_HEARTBEAT, 0, 3, "Heartbeat", broker_groups_handle_heartbeat},
    {BROKER_API_LEAVE_GROUP, 0, 3, "LeaveGroup", broker_groups_handle_leave},
    {BROKER_API_SYNC_GROUP, 0, 3, "SyncGroup", broker_groups_handle_sync},
    {BROKER_API_DESCRIBE_GROUPS, 0, 4, "DescribeGroups", broker_groups_handle_describe_groups},
    {BROKER_API_LIST_GROUPS, 0, 2, "ListGroups", broker_groups_handle_list_groups},
    {BROKER_API_API_VERSIONS, 0, 3, "ApiVersions", handle_api_versions},
    {BROKER_API_CREATE_TOPICS, 0, 4, "CreateTopics", handle_create_topics},
    {BROKER_API_DELETE_TOPICS, 0, 3, "DeleteTopics", handle_delete_topics},
    {BROKER_API_DELETE_RECORDS, 0, 1, "DeleteRecords", handle_delete_records},
    {BROKER_API_INIT_PRODUCER_ID, 0, 1, "InitProducerId", handle_init_producer_id},
    {BROKER_API_DESCRIBE_CONFIGS, 0, 2, "DescribeConfigs", handle_describe_configs},
    {BROKER_API_ALTER_CONFIGS, 0, 1, "AlterConfigs", handle_alter_configs},
    {BROKER_API_CREATE_PARTITIONS, 0, 1, "CreatePartitions", handle_create_partitions},
    {BROKER_API_DELETE_GROUPS, 0, 1, "DeleteGroups", broker_groups_handle_delete_groups},
};

static const broker_proto_api_t *api_rows(int *n)
{
    *n = (int)(sizeof apis / sizeof *apis);
    return apis;
}

const broker_proto_api_t *broker_proto_api(int16_t key)
{
    for (size_t i = 0; i < sizeof apis / sizeof *apis; i++)
        if (apis[i].key == key)
            return apis[i].handler ? &apis[i] : NULL;
    return NULL;
}

const char *broker_proto_api_name(int16_t key)
{
    for (size_t i = 0; i < sizeof apis / sizeof *apis; i++)
        if (apis[i].key == key)
            return apis[i].name;
    switch (key) {
    case BROKER_API_SASL_HANDSHAKE: return "SaslHandshake";
    case BROKER_API_INIT_PRODUCER_ID: return "InitProducerId";
    case BROKER_API_SASL_AUTHENTICATE: return "SaslAuthenticate";
    default: return "unknown";
    }
}

broker_proto_res_t broker_proto_handle(broker_t *b, broker_req_t *req)
{
    const broker_proto_hdr_t *h = &req->hdr;
    core_rd_t rd;
    core_rd_init(&rd, req->frame + req->body_off, req->frame_len - req->body_off);
    if (h->api_key == BROKER_API_API_VERSIONS && (h->api_version < 0 || h->api_version > 3)) {
        /* Unsupported ApiVersions version: a v0-format body with error 35 and
         * our table, header v0 — clients retry with a version we have (§3.2). */
        broker_proto_begin(req);
        broker_proto_api_versions_body(&req->out, 0, BROKER_KERR_UNSUPPORTED_VERSION);
        broker_proto_finish(req);
        return BROKER_PROTO_DONE;
    }
    const broker_proto_api_t *api = broker_proto_api(h->api_key);
    if (!api)
        return req_reject(req, "unsupported api key");
    if (h->api_version < api->min_version || h->api_version > api->max_version)
        return req_reject(req, "unsupported version");
    broker_proto_res_t res = api->handler(b, req, &rd);
    return res;
}
