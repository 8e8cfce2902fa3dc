/*
 * broker_groups — the broker's consumer-group component: it wires the group
 * coordinator (broker_cg), the committed-offsets log (broker_offsets) and the
 * lag monitor (broker_lag) into the broker: protocol handlers for the
 * dispatch table, timers on the broker's loop, naming standards, and the
 * lag/metrics HTTP port (Burrow v3 JSON + Prometheus).
 *
 * Handlers (broker_groups_handle_*) run on the loop thread like every other
 * handler. JoinGroup/SyncGroup may be held (BROKER_PROTO_PENDING): the
 * coordinator's callback encodes the response into req->out, and the
 * request is handed back to the network layer with broker_req_complete
 * from a zero-delay timer — never from inside the coordinator, because
 * completing a request makes the network layer run that connection's next
 * requests, which may call into the coordinator again.
 * OffsetCommit is answered like acks=all produce (BROKER_PROTO_FLUSH): the
 * commit batch is in the offsets log, and the response leaves after the
 * broker's group-commit flush covered it; a failed flush turns each
 * partition's code into KAFKA_STORAGE_ERROR. Commits become visible to
 * OffsetFetch (and feed the lag monitor) only once flushed: every handler
 * and the tick first apply what the flush has made durable.
 *
 * Naming standards: --group-name-pattern / --topic-name-pattern are POSIX
 * extended regexes that must match the whole name. A group request for a
 * non-conforming group answers INVALID_GROUP_ID (24) (FindCoordinator v1+
 * also carries an error_message), a non-conforming topic INVALID_TOPIC_EXCEPTION
 * (17); each rejection logs one line (at most one per name per minute).
 *
 * HTTP thread hand-over (documented choice): libmicrohttpd handlers run on
 * MHD threads, broker state lives on the loop thread. A handler queues a job
 * (route + group) under a mutex, wakes the loop with uv_async_send and waits
 * on a condition variable (bounded: BROKER_GROUPS_HTTP_WAIT_MS, then 503).
 * The loop computes the JSON/metrics text from live state and signals.
 * Chosen over a periodically refreshed snapshot because answers are then
 * always current (a test or an operator sees a commit the moment it is
 * acknowledged) and no copy of the state is kept; the cost — one loop wakeup
 * per HTTP request — is negligible at monitoring rates.
 *
 * Threads: everything on the loop thread except the HTTP handlers, which
 * touch only the job queue. Ownership: owned by broker_t (b->groups).
 */
#ifndef EDDY_BROKER_GROUPS_H
#define EDDY_BROKER_GROUPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/broker_cg.h"
#include "broker/broker_proto.h"

typedef struct broker_groups broker_groups_t;

#define BROKER_GROUPS_HTTP_DEFAULT "127.0.0.1:8085"
/* How long an HTTP handler waits for the loop before answering 503. */
#define BROKER_GROUPS_HTTP_WAIT_MS 5000
/* Coordinator timer period (session expiry, rebalance/initial delays). */
#define BROKER_GROUPS_TICK_MS 100
/* Bytes of __consumer_offsets replayed per loop turn while loading. */
#define BROKER_GROUPS_LOAD_STEP (4 << 20)

/* Opens the offsets log (coordinator in loading mode until replayed) and
 * compiles the naming patterns. Returns 0 or an error with a message. */
int broker_groups_open(broker_t *b, char *errstr, size_t errstr_size);
/* Starts timers and the HTTP port on b->loop (after broker_net_new). */
int broker_groups_start(broker_t *b, char *errstr, size_t errstr_size);
/* Stops HTTP and timers (after the loop stopped), flushes and closes. */
void broker_groups_close(broker_t *b);

/* The bound HTTP port (0 when disabled). */
int broker_groups_http_port(const broker_t *b);

/* Naming standards. Return true when allowed; otherwise log (rate-limited)
 * and fill msg with a one-line reason. */
bool broker_groups_topic_allowed(broker_t *b, const char *name, size_t len, char *msg, size_t msgsz);
bool broker_groups_group_allowed(broker_t *b, const char *name, size_t len, char *msg, size_t msgsz);

/* A topic was deleted: tombstone every group's committed offsets for it
 * (Kafka drops them too), so a re-created topic starts with no stale commits. */
void broker_groups_topic_deleted(broker_t *b, const char *topic);

/* Dispatch-table handlers. */
broker_proto_res_t broker_groups_handle_find_coordinator(broker_t *b, broker_req_t *req, core_rd_t *rd);
broker_proto_res_t broker_groups_handle_join(broker_t *b, broker_req_t *req, core_rd_t *rd);
broker_proto_res_t broker_groups_handle_sync(broker_t *b, broker_req_t *req, core_rd_t *rd);
broker_proto_res_t broker_groups_handle_heartbeat(broker_t *b, broker_req_t *req, core_rd_t *rd);
broker_proto_res_t broker_groups_handle_leave(broker_t *b, broker_req_t *req, core_rd_t *rd);
broker_proto_res_t broker_groups_handle_offset_commit(broker_t *b, broker_req_t *req, core_rd_t *rd);
broker_proto_res_t broker_groups_handle_offset_fetch(broker_t *b, broker_req_t *req, core_rd_t *rd);
broker_proto_res_t broker_groups_handle_list_groups(broker_t *b, broker_req_t *req, core_rd_t *rd);
broker_proto_res_t broker_groups_handle_describe_groups(broker_t *b, broker_req_t *req, core_rd_t *rd);
/* DeleteGroups: an Empty group's committed offsets are tombstoned and the
 * answer leaves once they are durable; the group is gone when they apply. */
broker_proto_res_t broker_groups_handle_delete_groups(broker_t *b, broker_req_t *req, core_rd_t *rd);

#endif
