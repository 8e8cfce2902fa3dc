/*
 * broker_proto_group — group API codec. Layouts: kafka-protocol.md §5.5-5.13.
 * One decode/encode pair per API; version differences are explicit
 * `v >= N` branches in wire order.
 */
#include "broker/broker_proto_group.h"

#include <string.h>

bool broker_proto_group_supported(int16_t api_key, int16_t version)
{
#define GROUP_API_CASE(key, min, max)                                                    \
    case key:                                                                            \
        return version >= (min) && version <= (max);
    switch (api_key) {
        BROKER_PROTO_GROUP_APIS(GROUP_API_CASE)
    default:
        return false;
    }
#undef GROUP_API_CASE
}

static const core_slice_t NULL_SLICE = {NULL, -1};

/* Allocates n elements in the arena; fails the reader on OOM. */
static void *arena_array(core_rd_t *rd, broker_cg_arena_t *a, int32_t n, size_t size)
{
    if (rd->err || n <= 0)
        return NULL;
    void *p = broker_cg_arena_alloc(a, (size_t)n * size);
    if (!p)
        core_rd_fail(rd, CORE_ERR_NOMEM);
    return p;
}

static int rd_result(const core_rd_t *rd)
{
    return rd->err;
}

static void wr_cstr(core_buf_t *b, const char *s)
{
    core_wr_str(b, s ? s : "", s ? (int64_t)strlen(s) : 0);
}

static void wr_ncstr(core_buf_t *b, const char *s)
{
    core_wr_str(b, s, s ? (int64_t)strlen(s) : -1);
}

static void wr_slice(core_buf_t *b, core_slice_t s)
{
    core_wr_str(b, s.ptr, s.len < 0 ? 0 : s.len);
}

/* ---- FindCoordinator (key 10) ------------------------------------------------ */
int broker_proto_findcoord_decode(core_rd_t *rd, int16_t v, broker_proto_findcoord_req_t *req)
{
    req->key = core_rd_str(rd);
    req->key_type = v >= 1 ? core_rd_i8(rd) : 0;
    return rd_result(rd);
}

void broker_proto_findcoord_encode(core_buf_t *b, int16_t v, const broker_proto_findcoord_resp_t *r)
{
    if (v >= 1)
        core_wr_i32(b, 0); /* throttle_time_ms */
    core_wr_i16(b, r->error_code);
    if (v >= 1)
        wr_ncstr(b, r->error_message);
    core_wr_i32(b, r->node_id);
    wr_cstr(b, r->host);
    core_wr_i32(b, r->port);
}

/* ---- JoinGroup (key 11) --------------------------------------------------------- */
int broker_proto_join_decode(core_rd_t *rd, int16_t v, broker_cg_join_req_t *req)
{
    req->version = v;
    req->group_id = core_rd_str(rd);
    req->session_timeout_ms = core_rd_i32(rd);
    req->rebalance_timeout_ms = v >= 1 ? core_rd_i32(rd) : req->session_timeout_ms;
    req->member_id = core_rd_str(rd);
    req->group_instance_id = v >= 5 ? core_rd_nstr(rd) : NULL_SLICE;
    req->protocol_type = core_rd_str(rd);
    /* each protocol: name (>= 2 bytes) + metadata (>= 4 bytes) */
    req->nprotocols = core_rd_array(rd, BROKER_CG_MAX_PROTOCOLS, 6);
    req->protocols = arena_array(rd, &req->arena, req->nprotocols, sizeof *req->protocols);
    for (int32_t i = 0; i < req->nprotocols && !rd->err; i++) {
        req->protocols[i].name = core_rd_str(rd);
        req->protocols[i].metadata = core_rd_bytes(rd);
    }
    if (rd->err)
        req->nprotocols = 0;
    return rd_result(rd);
}

void broker_proto_join_encode(core_buf_t *b, int16_t v, const broker_cg_join_resp_t *r)
{
    if (v >= 2)
        core_wr_i32(b, 0);
    core_wr_i16(b, r->error_code);
    core_wr_i32(b, r->generation_id);
    wr_cstr(b, r->protocol_name);
    wr_cstr(b, r->leader);
    wr_cstr(b, r->member_id);
    core_wr_i32(b, r->nmembers);
    for (int32_t i = 0; i < r->nmembers; i++) {
        const broker_cg_join_member_t *m = &r->members[i];
        wr_cstr(b, m->member_id);
        if (v >= 5)
            wr_ncstr(b, m->group_instance_id);
        core_wr_bytes(b, m->metadata, (int64_t)m->metadata_len);
    }
}

/* ---- SyncGroup (key 14) ------------------------------------------------------------ */
int broker_proto_sync_decode(core_rd_t *rd, int16_t v, broker_cg_sync_req_t *req)
{
    req->version = v;
    req->group_id = core_rd_str(rd);
    req->generation_id = core_rd_i32(rd);
    req->member_id = core_rd_str(rd);
    req->group_instance_id = v >= 3 ? core_rd_nstr(rd) : NULL_SLICE;
    req->nassignments = core_rd_array(rd, BROKER_PROTO_MAX_ASSIGNMENTS, 6);
    req->assignments = arena_array(rd, &req->arena, req->nassignments, sizeof *req->assignments);
    for (int32_t i = 0; i < req->nassignments && !rd->err; i++) {
        req->assignments[i].member_id = core_rd_str(rd);
        req->assignments[i].assignment = core_rd_bytes(rd);
    }
    if (rd->err)
        req->nassignments = 0;
    return rd_result(rd);
}

void broker_proto_sync_encode(core_buf_t *b, int16_t v, const broker_cg_sync_resp_t *r)
{
    if (v >= 1)
        core_wr_i32(b, 0);
    core_wr_i16(b, r->error_code);
    /* assignment is non-nullable bytes: an empty assignment is length 0 */
    core_wr_bytes(b, r->assignment, (int64_t)r->assignment_len);
}

/* ---- Heartbeat (key 12) ------------------------------------------------------------- */
int broker_proto_heartbeat_decode(core_rd_t *rd, int16_t v, broker_cg_heartbeat_req_t *req)
{
    req->version = v;
    req->group_id = core_rd_str(rd);
    req->generation_id = core_rd_i32(rd);
    req->member_id = core_rd_str(rd);
    req->group_instance_id = v >= 3 ? core_rd_nstr(rd) : NULL_SLICE;
    return rd_result(rd);
}

void broker_proto_heartbeat_encode(core_buf_t *b, int16_t v, int16_t error_code)
{
    if (v >= 1)
        core_wr_i32(b, 0);
    core_wr_i16(b, error_code);
}

/* ---- LeaveGroup (key 13) ------------------------------------------------------------- */
int broker_proto_leave_decode(core_rd_t *rd, int16_t v, broker_cg_leave_req_t *req)
{
    req->version = v;
    req->group_id = core_rd_str(rd);
    if (v < 3) {
        req->nmembers = 1;
        req->members = arena_array(rd, &req->arena, 1, sizeof *req->members);
        if (req->members) {
            req->members[0].member_id = core_rd_str(rd);
            req->members[0].group_instance_id = NULL_SLICE;
        }
    } else {
        req->nmembers = core_rd_array(rd, BROKER_CG_MAX_MEMBERS, 4);
        req->members = arena_array(rd, &req->arena, req->nmembers, sizeof *req->members);
        for (int32_t i = 0; i < req->nmembers && !rd->err; i++) {
            req->members[i].member_id = core_rd_str(rd);
            req->members[i].group_instance_id = core_rd_nstr(rd);
        }
    }
    if (rd->err)
        req->nmembers = 0;
    return rd_result(rd);
}

void broker_proto_leave_encode(core_buf_t *b, int16_t v, int16_t error_code,
                               const broker_cg_leave_req_t *req)
{
    if (v >= 1)
        core_wr_i32(b, 0);
    core_wr_i16(b, error_code);
    if (v >= 3) {
        core_wr_i32(b, req->nmembers);
        for (int32_t i = 0; i < req->nmembers; i++) {
            wr_slice(b, req->members[i].member_id);
            core_wr_str(b, req->members[i].group_instance_id.ptr, req->members[i].group_instance_id.len);
            core_wr_i16(b, req->members[i].error_code);
        }
    }
}

/* ---- OffsetCommit (key 8) ---------------------------------------------------------------- */
int broker_proto_commit_decode(core_rd_t *rd, int16_t v, broker_cg_commit_req_t *req)
{
    req->version = v;
    req->group_id = core_rd_str(rd);
    req->generation_id = v >= 1 ? core_rd_i32(rd) : -1;
    req->member_id = v >= 1 ? core_rd_str(rd) : (core_slice_t){(const uint8_t *)"", 0};
    req->group_instance_id = v >= 7 ? core_rd_nstr(rd) : NULL_SLICE;
    req->retention_time_ms = (v >= 2 && v <= 4) ? core_rd_i64(rd) : -1;
    req->ntopics = core_rd_array(rd, BROKER_PROTO_MAX_GROUP_TOPICS, 6);
    req->topics = arena_array(rd, &req->arena, req->ntopics, sizeof *req->topics);
    /* partition: index 4 + offset 8 + metadata >= 2 (+ epoch 4 v6+, + ts 8 v1) */
    size_t min_part = 14 + (v >= 6 ? 4 : 0) + (v == 1 ? 8 : 0);
    for (int32_t t = 0; t < req->ntopics && !rd->err; t++) {
        broker_cg_commit_topic_t *ct = &req->topics[t];
        ct->name = core_rd_str(rd);
        ct->npartitions = core_rd_array(rd, BROKER_PROTO_MAX_GROUP_PARTITIONS, min_part);
        ct->partitions = arena_array(rd, &req->arena, ct->npartitions, sizeof *ct->partitions);
        for (int32_t p = 0; p < ct->npartitions && !rd->err; p++) {
            broker_cg_commit_part_t *cp = &ct->partitions[p];
            cp->partition = core_rd_i32(rd);
            cp->offset = core_rd_i64(rd);
            cp->leader_epoch = v >= 6 ? core_rd_i32(rd) : -1;
            cp->commit_timestamp = v == 1 ? core_rd_i64(rd) : -1;
            cp->metadata = core_rd_nstr(rd);
        }
        if (rd->err)
            ct->npartitions = 0;
    }
    if (rd->err)
        req->ntopics = 0;
    return rd_result(rd);
}

void broker_proto_commit_encode(core_buf_t *b, int16_t v, const broker_cg_commit_req_t *req,
                                size_t *err_pos)
{
    size_t k = 0;
    if (v >= 3)
        core_wr_i32(b, 0);
    core_wr_i32(b, req->ntopics);
    for (int32_t t = 0; t < req->ntopics; t++) {
        const broker_cg_commit_topic_t *ct = &req->topics[t];
        wr_slice(b, ct->name);
        core_wr_i32(b, ct->npartitions);
        for (int32_t p = 0; p < ct->npartitions; p++) {
            core_wr_i32(b, ct->partitions[p].partition);
            if (err_pos)
                err_pos[k++] = b->len;
            core_wr_i16(b, ct->partitions[p].error_code);
        }
    }
}

/* ---- OffsetFetch (key 9) --------------------------------------------------------------------- */
int broker_proto_offset_fetch_decode(core_rd_t *rd, int16_t v, broker_cg_fetch_req_t *req)
{
    req->version = v;
    req->group_id = core_rd_str(rd);
    /* v2+: a null topic array means "every committed partition" */
    req->ntopics = v >= 2 ? core_rd_narray(rd, BROKER_PROTO_MAX_GROUP_TOPICS, 6)
                          : core_rd_array(rd, BROKER_PROTO_MAX_GROUP_TOPICS, 6);
    req->topics = arena_array(rd, &req->arena, req->ntopics, sizeof *req->topics);
    for (int32_t t = 0; t < req->ntopics && !rd->err; t++) {
        broker_cg_fetch_topic_t *ft = &req->topics[t];
        ft->name = core_rd_str(rd);
        ft->npartitions = core_rd_array(rd, BROKER_PROTO_MAX_GROUP_PARTITIONS, 4);
        ft->partitions = arena_array(rd, &req->arena, ft->npartitions, sizeof *ft->partitions);
        for (int32_t p = 0; p < ft->npartitions && !rd->err; p++)
            ft->partitions[p].partition = core_rd_i32(rd);
        if (rd->err)
            ft->npartitions = 0;
    }
    if (rd->err)
        req->ntopics = 0;
    return rd_result(rd);
}

void broker_proto_offset_fetch_encode(core_buf_t *b, int16_t v, const broker_cg_fetch_req_t *req)
{
    if (v >= 3)
        core_wr_i32(b, 0);
    core_wr_i32(b, req->ntopics < 0 ? 0 : req->ntopics);
    for (int32_t t = 0; t < req->ntopics; t++) {
        const broker_cg_fetch_topic_t *ft = &req->topics[t];
        wr_slice(b, ft->name);
        core_wr_i32(b, ft->npartitions);
        for (int32_t p = 0; p < ft->npartitions; p++) {
            const broker_cg_fetch_part_t *fp = &ft->partitions[p];
            core_wr_i32(b, fp->partition);
            core_wr_i64(b, fp->offset);
            if (v >= 5)
                core_wr_i32(b, fp->leader_epoch);
            wr_ncstr(b, fp->metadata ? fp->metadata : "");
            /* v0-1 have no top-level error: repeat it per partition */
            core_wr_i16(b, fp->error_code ? fp->error_code : (v < 2 ? req->error_code : 0));
        }
    }
    if (v >= 2)
        core_wr_i16(b, req->error_code);
}

/* ---- ListGroups (key 16) ------------------------------------------------------------------------ */
int broker_proto_list_groups_decode(core_rd_t *rd, int16_t v)
{
    return rd_result(rd); /* empty body in v0-v2 */
}

void broker_proto_list_groups_encode(core_buf_t *b, int16_t v, int16_t error_code,
                                     const broker_cg_listed_t *groups, int32_t ngroups)
{
    if (v >= 1)
        core_wr_i32(b, 0);
    core_wr_i16(b, error_code);
    core_wr_i32(b, ngroups);
    for (int32_t i = 0; i < ngroups; i++) {
        wr_cstr(b, groups[i].group_id);
        wr_cstr(b, groups[i].protocol_type);
    }
}

/* ---- DescribeGroups (key 15) ---------------------------------------------------------------------- */
int broker_proto_describe_decode(core_rd_t *rd, int16_t v, broker_cg_describe_req_t *req)
{
    req->version = v;
    req->ngroups = core_rd_array(rd, BROKER_PROTO_MAX_DESCRIBE, 2);
    req->groups = arena_array(rd, &req->arena, req->ngroups, sizeof *req->groups);
    for (int32_t i = 0; i < req->ngroups && !rd->err; i++)
        req->groups[i] = core_rd_str(rd);
    req->include_authorized_operations = v >= 3 ? core_rd_i8(rd) != 0 : false;
    if (rd->err)
        req->ngroups = 0;
    return rd_result(rd);
}

void broker_proto_describe_encode(core_buf_t *b, int16_t v, const broker_cg_describe_req_t *req)
{
    if (v >= 1)
        core_wr_i32(b, 0);
    core_wr_i32(b, req->out ? req->ngroups : 0);
    for (int32_t i = 0; req->out && i < req->ngroups; i++) {
        const broker_cg_described_t *d = &req->out[i];
        core_wr_i16(b, d->error_code);
        wr_slice(b, d->group_id);
        wr_cstr(b, d->state);
        wr_cstr(b, d->protocol_type);
        wr_cstr(b, d->protocol);
        core_wr_i32(b, d->nmembers);
        for (int32_t j = 0; j < d->nmembers; j++) {
            const broker_cg_described_member_t *m = &d->members[j];
            wr_cstr(b, m->member_id);
            if (v >= 4)
                wr_ncstr(b, m->group_instance_id);
            wr_cstr(b, m->client_id);
            wr_cstr(b, m->client_host);
            core_wr_bytes(b, m->metadata, (int64_t)m->metadata_len);
            core_wr_bytes(b, m->assignment, (int64_t)m->assignment_len);
        }
        if (v >= 3)
            core_wr_i32(b, INT32_MIN); /* authorized_operations: not requested/unsupported */
    }
}

/* ---- DeleteGroups (key 42) ----------------------------------------------------------- */
int broker_proto_delete_groups_decode(core_rd_t *rd, int16_t v,
                                      broker_proto_delete_groups_req_t *req)
{
    (void)v;
    req->ngroups = core_rd_array(rd, BROKER_PROTO_MAX_DELETE_GROUPS, 2);
    req->groups = arena_array(rd, &req->arena, req->ngroups, sizeof *req->groups);
    req->error_codes = arena_array(rd, &req->arena, req->ngroups, sizeof *req->error_codes);
    for (int32_t i = 0; i < req->ngroups && !rd->err; i++)
        req->groups[i] = core_rd_str(rd);
    if (rd->err)
        req->ngroups = 0;
    return rd_result(rd);
}

void broker_proto_delete_groups_encode(core_buf_t *b, int16_t v,
                                       const broker_proto_delete_groups_req_t *req, size_t *err_pos)
{
    (void)v;
    core_wr_i32(b, 0); /* throttle_time_ms */
    int32_t n = req->groups && req->error_codes ? req->ngroups : 0;
    core_wr_i32(b, n);
    for (int32_t i = 0; i < n; i++) {
        wr_slice(b, req->groups[i]);
        if (err_pos)
            err_pos[i] = b->len;
        core_wr_i16(b, req->error_codes[i]);
    }
}
