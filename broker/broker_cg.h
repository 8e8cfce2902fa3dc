/*
 * broker_cg — the group coordinator: Kafka's classic consumer-group protocol
 * as a state machine, with no sockets and no clock of its own.
 *
 * Inputs are decoded requests (the broker_cg_*_req_t below, filled by
 * broker_proto_group.c) and the current monotonic time in ms; outputs are
 * response structs handed to a completion callback. JoinGroup and SyncGroup
 * may be *held*: the callback then runs later, from another request or from
 * broker_cg_tick. Everything else answers before the call returns.
 *
 * Group states (docs: kafka-protocol.md §6.1):
 *
 *            first JoinGroup                   every member rejoined, or
 *   Empty ─────────────────▶ PreparingRebalance ─ rebalance timeout ─▶ CompletingRebalance
 *     ▲  (no members left)        ▲      │                                  │ leader's SyncGroup
 *     └───────────────────────────┼──────┘                                  ▼
 *                                 └── join of a new/changed member, leave, expiry ── Stable
 *
 *   Dead is transient: a group with no members and no committed offsets is
 *   freed (DescribeGroups reports an unknown group as "Dead", as Kafka does).
 *
 * Rules kept (each is a client-visible contract, see kafka-protocol.md §9):
 *   1. JoinGroup v4+ with an empty member id gets MEMBER_ID_REQUIRED (79) and a
 *      fresh id held as "pending" for one session timeout; v0-v3 joins are
 *      admitted directly. A pending id blocks join completion until it joins
 *      or expires (KIP-394).
 *   2. Join completes when every member (and pending id) has rejoined, or the
 *      rebalance timeout passes (stragglers are removed). The first rebalance
 *      of an Empty group waits initial_rebalance_delay_ms more, extended by
 *      each new arrival, capped by the rebalance timeout, so consumers started
 *      together land in one generation.
 *   3. On completion: generation + 1, protocol = the candidate (a name every
 *      member offered) with most first-choice votes, leader = previous leader
 *      if still a member else the oldest member. Only the leader's response
 *      carries the member list.
 *   4. Followers' SyncGroup is held until the leader's SyncGroup arrives; a new
 *      rebalance answers held SyncGroups with REBALANCE_IN_PROGRESS (27).
 *   5. Heartbeat checks in Kafka's order: unknown member 25, wrong generation
 *      22, PreparingRebalance 27, else 0. JoinGroup/SyncGroup/Heartbeat/
 *      OffsetCommit from a member push its session deadline out; a member
 *      whose JoinGroup is held never expires.
 *   6. OffsetCommit (pitfall 15): generation < 0 on a group without members is
 *      accepted (manual assign); CompletingRebalance -> 27; non-member -> 25;
 *      wrong generation -> 22; otherwise accepted, including during
 *      PreparingRebalance. Committed offsets survive while the group is
 *      empty, until offsets retention expires them.
 *
 * Offsets live here (in memory, per group) but durability is the caller's:
 * broker_cg_commit_check only validates; the caller persists the accepted
 * partitions (broker_offsets) and calls broker_cg_offset_put once durable, so
 * OffsetFetch never returns a commit that a crash could lose.
 *
 * Loading: while broker_cg_set_loading(cg, true) every group request answers
 * COORDINATOR_LOAD_IN_PROGRESS (14) (FindCoordinator answers
 * COORDINATOR_NOT_AVAILABLE (15)), so no client sees half-replayed offsets.
 *
 * Threads: one thread (the broker's loop thread) calls everything. Callbacks
 * run on that thread and MUST NOT call back into the coordinator.
 * Ownership: request structs and their views are borrowed for the call (the
 * coordinator copies what it keeps). Response structs handed to callbacks,
 * and the strings inside results of the query functions, are borrowed until
 * the next call into the coordinator.
 */
#ifndef EDDY_BROKER_CG_H
#define EDDY_BROKER_CG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core_buf.h"

typedef struct broker_cg broker_cg_t;

/* Kafka wire error codes the coordinator produces. */
enum {
    BROKER_CG_ERR_NONE = 0,
    BROKER_CG_ERR_UNKNOWN_TOPIC_OR_PARTITION = 3,
    BROKER_CG_ERR_OFFSET_METADATA_TOO_LARGE = 12,
    BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS = 14,
    BROKER_CG_ERR_COORDINATOR_NOT_AVAILABLE = 15,
    BROKER_CG_ERR_NOT_COORDINATOR = 16,
    BROKER_CG_ERR_INVALID_TOPIC_EXCEPTION = 17,
    BROKER_CG_ERR_ILLEGAL_GENERATION = 22,
    BROKER_CG_ERR_INCONSISTENT_GROUP_PROTOCOL = 23,
    BROKER_CG_ERR_INVALID_GROUP_ID = 24,
    BROKER_CG_ERR_UNKNOWN_MEMBER_ID = 25,
    BROKER_CG_ERR_INVALID_SESSION_TIMEOUT = 26,
    BROKER_CG_ERR_REBALANCE_IN_PROGRESS = 27,
    BROKER_CG_ERR_UNSUPPORTED_VERSION = 35,
    BROKER_CG_ERR_INVALID_REQUEST = 42,
    BROKER_CG_ERR_KAFKA_STORAGE_ERROR = 56,
    BROKER_CG_ERR_NON_EMPTY_GROUP = 68,
    BROKER_CG_ERR_GROUP_ID_NOT_FOUND = 69,
    BROKER_CG_ERR_MEMBER_ID_REQUIRED = 79,
};

typedef enum broker_cg_state {
    BROKER_CG_EMPTY = 0,
    BROKER_CG_PREPARING_REBALANCE,
    BROKER_CG_COMPLETING_REBALANCE,
    BROKER_CG_STABLE,
    BROKER_CG_DEAD,
} broker_cg_state_t;

/* Kafka's names ("Empty", "PreparingRebalance", ...), as in DescribeGroups. */
const char *broker_cg_state_name(broker_cg_state_t s);

/* Limits. Each caps memory a client could otherwise make us hold. */
#define BROKER_CG_MAX_PROTOCOLS 16     /* assignors offered per JoinGroup */
#define BROKER_CG_MAX_MEMBERS 1000     /* members per group (GROUP_MAX_SIZE in Kafka) */
#define BROKER_CG_MAX_ID_LEN 1024      /* group / member / instance / client id bytes */
#define BROKER_CG_MAX_PENDING 1000     /* MEMBER_ID_REQUIRED ids outstanding per group */

/* ---- a tiny per-request arena (nginx pool idea): decoded arrays and built
 * responses are allocated here and freed in one go ----------------------- */
typedef struct broker_cg_arena {
    struct broker_cg_arena_blk *head;
} broker_cg_arena_t;
/* Returns zeroed memory or NULL (n comes from input sizes, so it may fail). */
void *broker_cg_arena_alloc(broker_cg_arena_t *a, size_t n);
void broker_cg_arena_free(broker_cg_arena_t *a);

/* ---- settings -------------------------------------------------------------- */
typedef struct broker_cg_conf {
    int64_t min_session_timeout_ms;    /* Kafka group.min.session.timeout.ms: 6000 */
    int64_t max_session_timeout_ms;    /* group.max.session.timeout.ms: 1800000 */
    int64_t initial_rebalance_delay_ms;/* group.initial.rebalance.delay.ms: 3000 */
    int64_t offsets_retention_ms;      /* offsets of an Empty group expire after this: 7 d */
    int64_t offset_metadata_max_bytes; /* offset.metadata.max.bytes: 4096 */
} broker_cg_conf_t;

void broker_cg_conf_default(broker_cg_conf_t *conf);

int broker_cg_new(const broker_cg_conf_t *conf, broker_cg_t **cgp);
/* Frees every group. Held callbacks are dropped without being called. */
void broker_cg_free(broker_cg_t *cg);
void broker_cg_set_loading(broker_cg_t *cg, bool loading);
bool broker_cg_loading(const broker_cg_t *cg);

/* ---- JoinGroup ------------------------------------------------------------- */
typedef struct broker_cg_protocol {
    core_slice_t name;
    core_slice_t metadata;
} broker_cg_protocol_t;

typedef struct broker_cg_join_req {
    int16_t version;
    core_slice_t group_id;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;       /* v0: equal to the session timeout */
    core_slice_t member_id;
    core_slice_t group_instance_id;     /* len -1 = null (v5+) */
    core_slice_t protocol_type;
    int32_t nprotocols;
    broker_cg_protocol_t *protocols;
    core_slice_t client_id;             /* from the request header */
    const char *client_host;            /* "/127.0.0.1" style, from the connection */
    broker_cg_arena_t arena;
} broker_cg_join_req_t;

typedef struct broker_cg_join_member {
    const char *member_id;
    const char *group_instance_id;      /* NULL = null */
    const uint8_t *metadata;
    size_t metadata_len;
} broker_cg_join_member_t;

typedef struct broker_cg_join_resp {
    int16_t error_code;
    int32_t generation_id;
    const char *protocol_name;          /* "" when none */
    const char *leader;
    const char *member_id;
    int32_t nmembers;                   /* > 0 only in the leader's response */
    const broker_cg_join_member_t *members;
} broker_cg_join_resp_t;

typedef void broker_cg_join_cb(void *arg, const broker_cg_join_resp_t *resp);

/* Handles a JoinGroup. cb(arg, resp) runs exactly once — possibly before this
 * returns, possibly from a later call — unless broker_cg_cancel(arg) runs
 * first or the coordinator is freed. */
void broker_cg_join(broker_cg_t *cg, const broker_cg_join_req_t *req, int64_t now_ms,
                    broker_cg_join_cb *cb, void *arg);

/* ---- SyncGroup ------------------------------------------------------------- */
typedef struct broker_cg_assignment {
    core_slice_t member_id;
    core_slice_t assignment;
} broker_cg_assignment_t;

typedef struct broker_cg_sync_req {
    int16_t version;
    core_slice_t group_id;
    int32_t generation_id;
    core_slice_t member_id;
    core_slice_t group_instance_id;
    int32_t nassignments;
    broker_cg_assignment_t *assignments;
    broker_cg_arena_t arena;
} broker_cg_sync_req_t;

typedef struct broker_cg_sync_resp {
    int16_t error_code;
    const uint8_t *assignment;
    size_t assignment_len;
} broker_cg_sync_resp_t;

typedef void broker_cg_sync_cb(void *arg, const broker_cg_sync_resp_t *resp);

void broker_cg_sync(broker_cg_t *cg, const broker_cg_sync_req_t *req, int64_t now_ms,
                    broker_cg_sync_cb *cb, void *arg);

/* Answers every held JoinGroup/SyncGroup with err now (shutdown: the broker
 * answers NOT_COORDINATOR so clients look the coordinator up again and
 * rejoin once it is back, instead of waiting out their request timeout).
 * Returns how many were answered. */
int broker_cg_fail_held(broker_cg_t *cg, int16_t err);

/* Forgets a held JoinGroup/SyncGroup whose requester went away (connection
 * closed); its callback will not run. No-op if none is held for arg. */
void broker_cg_cancel(broker_cg_t *cg, void *arg);

/* ---- Heartbeat / LeaveGroup -------------------------------------------------- */
typedef struct broker_cg_heartbeat_req {
    int16_t version;
    core_slice_t group_id;
    int32_t generation_id;
    core_slice_t member_id;
    core_slice_t group_instance_id;
} broker_cg_heartbeat_req_t;

int16_t broker_cg_heartbeat(broker_cg_t *cg, const broker_cg_heartbeat_req_t *req, int64_t now_ms);

typedef struct broker_cg_leave_member {
    core_slice_t member_id;
    core_slice_t group_instance_id;
    int16_t error_code;                 /* out */
} broker_cg_leave_member_t;

typedef struct broker_cg_leave_req {
    int16_t version;
    core_slice_t group_id;
    int32_t nmembers;                   /* v0-v2: exactly 1 */
    broker_cg_leave_member_t *members;
    broker_cg_arena_t arena;
} broker_cg_leave_req_t;

/* Returns the top-level error; per-member errors go into req->members[]. For
 * v0-v2 (one member) the member's error is also the top-level one. */
int16_t broker_cg_leave(broker_cg_t *cg, broker_cg_leave_req_t *req, int64_t now_ms);

/* ---- OffsetCommit -------------------------------------------------------------- */
typedef struct broker_cg_commit_part {
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;               /* -1 when absent (v < 6) */
    int64_t commit_timestamp;           /* v1 only; -1 = broker time */
    core_slice_t metadata;              /* len -1 = null */
    int16_t error_code;                 /* out */
} broker_cg_commit_part_t;

typedef struct broker_cg_commit_topic {
    core_slice_t name;
    int32_t npartitions;
    broker_cg_commit_part_t *partitions;
} broker_cg_commit_topic_t;

typedef struct broker_cg_commit_req {
    int16_t version;
    core_slice_t group_id;
    int32_t generation_id;              /* v0: -1 */
    core_slice_t member_id;             /* v0: "" */
    core_slice_t group_instance_id;
    int64_t retention_time_ms;          /* v2-v4; -1 = broker default */
    int32_t ntopics;
    broker_cg_commit_topic_t *topics;
    broker_cg_arena_t arena;
} broker_cg_commit_req_t;

/* Validates a commit against the group (rule 6 above) and metadata size, and
 * sets every partition's error_code. Partitions that must be checked against
 * the topic registry are the caller's (it sets 3 before calling, and this
 * keeps a non-zero code it finds). Creates an Empty group for a simple
 * commit. Returns the number of partitions accepted (error_code 0); the
 * caller persists those and then calls broker_cg_offset_put for each. */
int broker_cg_commit_check(broker_cg_t *cg, broker_cg_commit_req_t *req, int64_t now_ms);

/* A committed offset as stored. */
typedef struct broker_cg_offset {
    int64_t offset;
    int32_t leader_epoch;
    int64_t commit_ts;                  /* wall clock ms */
    int64_t expire_ts;                  /* wall clock ms; -1 = group default retention */
    const char *metadata;               /* borrowed; "" when none */
} broker_cg_offset_t;

/* Stores a durable commit (also used by the offsets loader). Creates the
 * group (Empty) if needed. */
void broker_cg_offset_put(broker_cg_t *cg, const char *group, const char *topic, int32_t partition,
                          const broker_cg_offset_t *off);
/* Removes a committed offset (tombstone replay, reset). Frees the group if it
 * ends up with no members and no offsets. */
void broker_cg_offset_delete(broker_cg_t *cg, const char *group, const char *topic,
                             int32_t partition);
/* Returns 0 and fills *off, or CORE_ERR_NOT_FOUND. */
int broker_cg_offset_get(broker_cg_t *cg, const char *group, const char *topic, int32_t partition,
                         broker_cg_offset_t *off);

/* Calls fn for each committed offset (all groups if group is NULL), in no
 * particular order. fn must not modify the coordinator. */
typedef void broker_cg_offset_fn(void *arg, const char *group, const char *topic,
                                 int32_t partition, const broker_cg_offset_t *off);
void broker_cg_offset_foreach(broker_cg_t *cg, const char *group, broker_cg_offset_fn *fn,
                              void *arg);

/* Offsets retention: for groups without members, collects the committed
 * offsets whose commit is older than the retention (or whose explicit expire
 * timestamp passed) at wall time now_wall_ms, removes them, and reports each
 * through fn (the caller writes tombstones). Returns how many expired. */
int broker_cg_expire_offsets(broker_cg_t *cg, int64_t now_wall_ms, broker_cg_offset_fn *fn,
                             void *arg);

/* ---- OffsetFetch ------------------------------------------------------------------ */
typedef struct broker_cg_fetch_part {
    int32_t partition;
    int64_t offset;                     /* -1 when nothing committed */
    int32_t leader_epoch;
    const char *metadata;               /* "" when none */
    int16_t error_code;
} broker_cg_fetch_part_t;

typedef struct broker_cg_fetch_topic {
    core_slice_t name;
    int32_t npartitions;
    broker_cg_fetch_part_t *partitions; /* decoded: partition set; out: the rest */
} broker_cg_fetch_topic_t;

typedef struct broker_cg_fetch_req {
    int16_t version;
    core_slice_t group_id;
    int32_t ntopics;                    /* -1 = all committed (v2+) */
    broker_cg_fetch_topic_t *topics;
    int16_t error_code;                 /* out: top level (v2+) */
    broker_cg_arena_t arena;
} broker_cg_fetch_req_t;

/* Fills every requested partition (and, for ntopics == -1, replaces topics
 * with all of the group's committed partitions, allocated in req->arena).
 * Never fails except for the top-level error (loading). */
void broker_cg_offset_fetch(broker_cg_t *cg, broker_cg_fetch_req_t *req);

/* ---- ListGroups / DescribeGroups --------------------------------------------------- */
typedef struct broker_cg_listed {
    const char *group_id;
    const char *protocol_type;          /* "" for offsets-only groups */
    broker_cg_state_t state;
} broker_cg_listed_t;

/* Fills an arena-allocated array of every group. Returns the top-level error. */
int16_t broker_cg_list(broker_cg_t *cg, broker_cg_arena_t *arena, broker_cg_listed_t **groups,
                       int32_t *ngroups);

typedef struct broker_cg_described_member {
    const char *member_id;
    const char *group_instance_id;      /* NULL = null */
    const char *client_id;
    const char *client_host;
    const uint8_t *metadata;            /* for the selected protocol */
    size_t metadata_len;
    const uint8_t *assignment;
    size_t assignment_len;
} broker_cg_described_member_t;

typedef struct broker_cg_described {
    int16_t error_code;
    core_slice_t group_id;
    const char *state;                  /* Kafka's name */
    const char *protocol_type;
    const char *protocol;
    int32_t nmembers;
    broker_cg_described_member_t *members;
} broker_cg_described_t;

typedef struct broker_cg_describe_req {
    int16_t version;
    int32_t ngroups;
    core_slice_t *groups;
    bool include_authorized_operations;
    broker_cg_described_t *out;         /* filled: ngroups entries */
    broker_cg_arena_t arena;
} broker_cg_describe_req_t;

void broker_cg_describe(broker_cg_t *cg, broker_cg_describe_req_t *req);

/* ---- DeleteGroups ------------------------------------------------------------------ */
/* Checks one DeleteGroups entry in Kafka's order: COORDINATOR_LOAD_IN_PROGRESS
 * while loading, INVALID_GROUP_ID for an empty id, GROUP_ID_NOT_FOUND for a
 * group the coordinator does not know (Dead), NON_EMPTY_GROUP unless it is
 * Empty (no members, no pending member ids), else 0. On 0 a group without
 * committed offsets is freed now; the caller writes a tombstone for each
 * offset the group has (broker_cg_offset_foreach) and the group is freed
 * when the last is applied (broker_cg_offset_delete), so a deletion is only
 * visible once it is durable. */
int16_t broker_cg_delete_group(broker_cg_t *cg, core_slice_t group);

/* ---- time -------------------------------------------------------------------------- */
/* Runs timers: member session expiry, pending member id expiry, the initial
 * rebalance delay and rebalance timeouts. Call every ~100 ms. Returns the
 * number of groups whose state changed. */
int broker_cg_tick(broker_cg_t *cg, int64_t now_ms);

/* ---- introspection (lag monitor, CLI, tests) ---------------------------------------- */
typedef struct broker_cg_info {
    broker_cg_state_t state;
    int32_t generation_id;
    int32_t nmembers;
    const char *protocol;
    const char *leader;
} broker_cg_info_t;

/* Returns 0 or CORE_ERR_NOT_FOUND. */
int broker_cg_group_info(broker_cg_t *cg, const char *group, broker_cg_info_t *info);

/* Who owns (topic, partition) in the group, from the consumer-protocol
 * assignments the leader sent. Returns true and borrowed client_id / host
 * when a member owns it. */
bool broker_cg_owner(broker_cg_t *cg, const char *group, const char *topic, int32_t partition,
                     const char **client_id, const char **client_host);
/* Whether a consumer-protocol Assignment (i16 version, [topic [partition]],
 * user_data: client bytes, never trusted) lists (topic, partition); malformed
 * bytes simply do not match. Used by broker_cg_owner; exposed for tests and
 * fuzzing (fuzz/fuzz_assignment.c). */
bool broker_cg__assignment_has(const uint8_t *p, size_t n, const char *topic,
                               int32_t partition);

/* Counts of groups (for metrics). */
int broker_cg_group_count(const broker_cg_t *cg);

#endif
