/*
 * broker_proto_group — wire codec for the group coordinator APIs:
 * FindCoordinator v0-2, JoinGroup v0-5, SyncGroup v0-3, Heartbeat v0-3,
 * LeaveGroup v0-3, OffsetCommit v0-7, OffsetFetch v0-5, ListGroups v0-2,
 * DescribeGroups v0-4, DeleteGroups v0-1. Only non-flexible versions (kafka-protocol.md §3.4):
 * the first flexible version of each is one above our maximum, so nothing
 * here deals with compact encodings or tagged fields. Advertise exactly
 * BROKER_PROTO_GROUP_APIS, no more.
 *
 * Decoders read a request *body* (after the request header) with a core_rd_t
 * and fill the broker_cg_*_req_t structs of broker_cg.h. Strings and bytes
 * are views into the request buffer (borrowed: valid while that buffer is);
 * arrays are allocated in req->arena (the caller frees it with
 * broker_cg_arena_free, also on failure). Array counts are checked against
 * the named caps below and against the bytes that remain before anything is
 * allocated. The body has been framed already, so "need more bytes" cannot
 * happen here: a decoder returns CORE_OK, or CORE_ERR_TRUNCATED /
 * CORE_ERR_MALFORMED (the caller closes the connection, as Kafka does for an
 * unparsable request), or CORE_ERR_NOMEM. Trailing bytes after a complete
 * body are accepted (a newer client's extra fields never reach us because
 * we do not advertise those versions).
 *
 * Encoders append a response *body* (after the response header) to a
 * core_buf_t for the given version; they cannot fail.
 *
 * Threads: pure functions, any thread.
 */
#ifndef EDDY_BROKER_PROTO_GROUP_H
#define EDDY_BROKER_PROTO_GROUP_H

#include <stdint.h>

#include "broker/broker_cg.h"
#include "broker/broker_proto.h"
#include "core/core_buf.h"

/* X(key, min, max): the versions implemented here (API keys: broker_proto.h);
 * the dispatch table in broker_proto.c advertises the same ranges. */
#define BROKER_PROTO_GROUP_APIS(X)                                                       \
    X(BROKER_API_OFFSET_COMMIT, 0, 7)                                                    \
    X(BROKER_API_OFFSET_FETCH, 0, 5)                                                     \
    X(BROKER_API_FIND_COORDINATOR, 0, 2)                                                 \
    X(BROKER_API_JOIN_GROUP, 0, 5)                                                       \
    X(BROKER_API_HEARTBEAT, 0, 3)                                                        \
    X(BROKER_API_LEAVE_GROUP, 0, 3)                                                      \
    X(BROKER_API_SYNC_GROUP, 0, 3)                                                       \
    X(BROKER_API_DESCRIBE_GROUPS, 0, 4)                                                  \
    X(BROKER_API_LIST_GROUPS, 0, 2)                                                      \
    X(BROKER_API_DELETE_GROUPS, 0, 1)

/* Returns true when (api_key, version) is one of the above. */
bool broker_proto_group_supported(int16_t api_key, int16_t version);

/* Caps on counts read from the wire (each bounds memory and loop length a
 * single request can cause, beyond the bytes-remaining check). */
#define BROKER_PROTO_MAX_GROUP_TOPICS 10000      /* topics in one commit/fetch */
#define BROKER_PROTO_MAX_GROUP_PARTITIONS 100000 /* partitions per topic in one request */
#define BROKER_PROTO_MAX_ASSIGNMENTS 1000        /* = BROKER_CG_MAX_MEMBERS */
#define BROKER_PROTO_MAX_DESCRIBE 1000           /* groups in one DescribeGroups */
#define BROKER_PROTO_MAX_DELETE_GROUPS 1000      /* groups in one DeleteGroups */

/* ---- FindCoordinator ---- */
typedef struct broker_proto_findcoord_req {
    core_slice_t key;
    int8_t key_type; /* 0 = group, 1 = transaction (v1+) */
} broker_proto_findcoord_req_t;

typedef struct broker_proto_findcoord_resp {
    int16_t error_code;
    const char *error_message; /* NULL = null (v1+) */
    int32_t node_id;
    const char *host;
    int32_t port;
} broker_proto_findcoord_resp_t;

int broker_proto_findcoord_decode(core_rd_t *rd, int16_t v, broker_proto_findcoord_req_t *req);
void broker_proto_findcoord_encode(core_buf_t *b, int16_t v, const broker_proto_findcoord_resp_t *r);

/* ---- JoinGroup / SyncGroup / Heartbeat / LeaveGroup ---- */
int broker_proto_join_decode(core_rd_t *rd, int16_t v, broker_cg_join_req_t *req);
void broker_proto_join_encode(core_buf_t *b, int16_t v, const broker_cg_join_resp_t *r);

int broker_proto_sync_decode(core_rd_t *rd, int16_t v, broker_cg_sync_req_t *req);
void broker_proto_sync_encode(core_buf_t *b, int16_t v, const broker_cg_sync_resp_t *r);

int broker_proto_heartbeat_decode(core_rd_t *rd, int16_t v, broker_cg_heartbeat_req_t *req);
void broker_proto_heartbeat_encode(core_buf_t *b, int16_t v, int16_t error_code);

int broker_proto_leave_decode(core_rd_t *rd, int16_t v, broker_cg_leave_req_t *req);
/* Per-member results come from req->members[].error_code (v3+). */
void broker_proto_leave_encode(core_buf_t *b, int16_t v, int16_t error_code,
                               const broker_cg_leave_req_t *req);

/* ---- OffsetCommit / OffsetFetch ---- */
int broker_proto_commit_decode(core_rd_t *rd, int16_t v, broker_cg_commit_req_t *req);
/* Encodes from the request, whose partitions carry their error codes. When
 * err_pos is not NULL, it receives the buffer position of each partition's
 * error code, in request order (acks-after-flush patches them). */
void broker_proto_commit_encode(core_buf_t *b, int16_t v, const broker_cg_commit_req_t *req,
                                size_t *err_pos);

int broker_proto_offset_fetch_decode(core_rd_t *rd, int16_t v, broker_cg_fetch_req_t *req);
void broker_proto_offset_fetch_encode(core_buf_t *b, int16_t v, const broker_cg_fetch_req_t *req);

/* ---- ListGroups / DescribeGroups ---- */
int broker_proto_list_groups_decode(core_rd_t *rd, int16_t v);
void broker_proto_list_groups_encode(core_buf_t *b, int16_t v, int16_t error_code,
                                     const broker_cg_listed_t *groups, int32_t ngroups);

int broker_proto_describe_decode(core_rd_t *rd, int16_t v, broker_cg_describe_req_t *req);
/* Encodes req->out (filled by broker_cg_describe). */
void broker_proto_describe_encode(core_buf_t *b, int16_t v, const broker_cg_describe_req_t *req);

/* ---- DeleteGroups (v0-1: same layout; v1 only changed throttling) ---- */
typedef struct broker_proto_delete_groups_req {
    int32_t ngroups;
    core_slice_t *groups; /* views into the request */
    int16_t *error_codes; /* one per group, zeroed; the handler sets them */
    broker_cg_arena_t arena;
} broker_proto_delete_groups_req_t;

int broker_proto_delete_groups_decode(core_rd_t *rd, int16_t v,
                                      broker_proto_delete_groups_req_t *req);
/* When err_pos is not NULL it receives the buffer position of each group's
 * error code, in request order (answer-after-flush patches them). */
void broker_proto_delete_groups_encode(core_buf_t *b, int16_t v,
                                       const broker_proto_delete_groups_req_t *req,
                                       size_t *err_pos);

#endif
