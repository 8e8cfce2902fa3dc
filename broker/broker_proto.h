/*
 * broker_proto — the Kafka wire protocol, server side: framing, request
 * headers, one decode + handler + encode per API, and the ApiVersions table.
 *
 * Design
 *   - Every read goes through core_rd_t (sticky errors, every count checked
 *     against a cap and against the bytes that remain). Decoded strings and
 *     byte fields are views into the request frame, which the request owns.
 *   - A request body is decoded whole, by one function per wire layout,
 *     before the handler acts on any of it: a body malformed halfway closes
 *     the connection before a first topic was created, altered or deleted.
 *   - Handlers are functions of (broker_t *, broker_req_t *): no sockets. The
 *     network layer (broker_net) owns the waiting; a handler only says what
 *     kind of answer it produced (broker_proto_res_t). This keeps the whole
 *     decoder+handler path drivable by the fuzz harness and unit tests.
 *   - Idempotent producers: InitProducerId(22) v0-1 hands out producer ids
 *     (broker_producer_id_next: unique across restarts), epoch 0; Produce
 *     checks sequences in the partition log (broker_log_produce, rules in
 *     broker_producer.h) and answers a retried batch with success and its
 *     first base offset. Transactions are not offered: InitProducerId or
 *     Produce with a transactional_id, and FindCoordinator for a
 *     transaction, answer TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53), which
 *     every client treats as fatal at once (a retriable code would make
 *     them retry until their transaction timeout).
 *   - Versions: only non-flexible versions are advertised, except ApiVersions
 *     v3 (flexible body, response header v0 — docs/kafka-protocol.md §2.2).
 *     Versions are explicit `version >= N` branches in each handler.
 *   - Responses are built in req->out: int32 size (patched at the end),
 *     correlation id, body. A Fetch response also carries file parts: byte
 *     ranges of segment files to be sent at given positions of `out`
 *     (sendfile(2) in broker_net), so record bytes are never copied here.
 *
 * Dispatch table (broker_proto_apis in broker_proto.c): one row per API with
 * its advertised [min,max] and handler. Only rows with a handler are
 * advertised. The group coordinator (issue 4) plugs in by giving rows for
 * FindCoordinator(10) 0-2, JoinGroup(11) 0-5, SyncGroup(14) 0-3,
 * Heartbeat(12) 0-3, LeaveGroup(13) 0-3, OffsetCommit(8) 0-7,
 * OffsetFetch(9) 0-5, ListGroups(16) 0-2, DescribeGroups(15) 0-4 a handler
 * (librdkafka needs all of them advertised for -G; -P/-C work without).
 * Held requests (JoinGroup/SyncGroup) return BROKER_PROTO_PENDING, keep the
 * broker_req_t pointer, set req->cancel, and later fill req->out and call
 * broker_req_complete(); see broker_net.h.
 *
 * Threads: loop thread only. Ownership: see each function.
 */
#ifndef EDDY_BROKER_PROTO_H
#define EDDY_BROKER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "core/core_buf.h"

/* ---- API keys ------------------------------------------------------------ */
/* Macros, not an enum: broker_proto_group.h defines the group keys with the
 * same spelling and value, which C allows for identical macro definitions. */
#define BROKER_API_PRODUCE 0
#define BROKER_API_FETCH 1
#define BROKER_API_LIST_OFFSETS 2
#define BROKER_API_METADATA 3
#define BROKER_API_OFFSET_COMMIT 8
#define BROKER_API_OFFSET_FETCH 9
#define BROKER_API_FIND_COORDINATOR 10
#define BROKER_API_JOIN_GROUP 11
#define BROKER_API_HEARTBEAT 12
#define BROKER_API_LEAVE_GROUP 13
#define BROKER_API_SYNC_GROUP 14
#define BROKER_API_DESCRIBE_GROUPS 15
#define BROKER_API_LIST_GROUPS 16
#define BROKER_API_SASL_HANDSHAKE 17
#define BROKER_API_API_VERSIONS 18
#define BROKER_API_CREATE_TOPICS 19
#define BROKER_API_DELETE_TOPICS 20
#define BROKER_API_DELETE_RECORDS 21
#define BROKER_API_INIT_PRODUCER_ID 22
#define BROKER_API_DESCRIBE_CONFIGS 32
#define BROKER_API_SASL_AUTHENTICATE 36
#define BROKER_API_ALTER_CONFIGS 33
#define BROKER_API_CREATE_PARTITIONS 37
#define BROKER_API_DELETE_GROUPS 42
#define BROKER_API_MAX 68

/* ---- Kafka error codes (int16 on the wire; not core_err_t values) ---------- */
enum {
    BROKER_KERR_UNKNOWN_SERVER_ERROR = -1,
    BROKER_KERR_NONE = 0,
    BROKER_KERR_OFFSET_OUT_OF_RANGE = 1,
    BROKER_KERR_CORRUPT_MESSAGE = 2,
    BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION = 3,
    BROKER_KERR_LEADER_NOT_AVAILABLE = 5,
    BROKER_KERR_NOT_LEADER_OR_FOLLOWER = 6,
    BROKER_KERR_REQUEST_TIMED_OUT = 7,
    BROKER_KERR_MESSAGE_TOO_LARGE = 10,
    BROKER_KERR_OFFSET_METADATA_TOO_LARGE = 12,
    BROKER_KERR_COORDINATOR_LOAD_IN_PROGRESS = 14,
    BROKER_KERR_COORDINATOR_NOT_AVAILABLE = 15,
    BROKER_KERR_NOT_COORDINATOR = 16,
    BROKER_KERR_INVALID_TOPIC_EXCEPTION = 17,
    BROKER_KERR_RECORD_LIST_TOO_LARGE = 18,
    BROKER_KERR_INVALID_REQUIRED_ACKS = 21,
    BROKER_KERR_ILLEGAL_GENERATION = 22,
    BROKER_KERR_INCONSISTENT_GROUP_PROTOCOL = 23,
    BROKER_KERR_INVALID_GROUP_ID = 24,
    BROKER_KERR_UNKNOWN_MEMBER_ID = 25,
    BROKER_KERR_INVALID_SESSION_TIMEOUT = 26,
    BROKER_KERR_REBALANCE_IN_PROGRESS = 27,
    BROKER_KERR_INVALID_COMMIT_OFFSET_SIZE = 28,
    BROKER_KERR_INVALID_TIMESTAMP = 32,
    BROKER_KERR_UNSUPPORTED_VERSION = 35,
    BROKER_KERR_TOPIC_ALREADY_EXISTS = 36,
    BROKER_KERR_INVALID_PARTITIONS = 37,
    BROKER_KERR_INVALID_REPLICATION_FACTOR = 38,
    BROKER_KERR_INVALID_REPLICA_ASSIGNMENT = 39,
    BROKER_KERR_INVALID_CONFIG = 40,
    BROKER_KERR_NOT_CONTROLLER = 41,
    BROKER_KERR_INVALID_REQUEST = 42,
    BROKER_KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT = 43,
    BROKER_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45,
    BROKER_KERR_DUPLICATE_SEQUENCE_NUMBER = 46,
    BROKER_KERR_INVALID_PRODUCER_EPOCH = 47,
    BROKER_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53,
    BROKER_KERR_KAFKA_STORAGE_ERROR = 56,
    BROKER_KERR_UNKNOWN_PRODUCER_ID = 59,
    BROKER_KERR_GROUP_ID_NOT_FOUND = 69,
    BROKER_KERR_OFFSET_NOT_AVAILABLE = 78,
    BROKER_KERR_MEMBER_ID_REQUIRED = 79,
    BROKER_KERR_INVALID_RECORD = 87,
};

/* ---- limits (each stops one kind of abuse) --------------------------------- */
enum {
    /* Smallest legal frame: api_key + api_version + correlation_id. */
    BROKER_PROTO_MIN_FRAME = 8,
    /* Topics / partitions per request: bounds the decode arrays even when
     * elements are tiny (a partition entry is >= 8 bytes, so a 100 MiB frame
     * could otherwise announce 13M of them). */
    BROKER_PROTO_MAX_TOPICS = 100000,
    BROKER_PROTO_MAX_PARTITIONS = 1000000,
    /* Partitions one CreateTopics may ask for (each is a directory and files). */
    BROKER_PROTO_MAX_CREATE_PARTITIONS = 10000,
    /* Topic configs per CreateTopics entry. */
    BROKER_PROTO_MAX_CONFIGS = 1000,
    /* Bytes one Fetch response may carry (Kafka's fetch.max.bytes is 55 MB):
     * client max_bytes and partition_max_bytes are clamped to it, so the
     * int32 response size cannot overflow whatever a client asks for. */
    BROKER_PROTO_MAX_FETCH_BYTES = 64 << 20,
    /* Tagged fields skipped in one section (each is tag+size+bytes). */
    BROKER_PROTO_MAX_TAGS = 1000,
};

/* ---- framing ------------------------------------------------------------- */
/* Looks at the bytes received so far on a connection. Returns CORE_OK when a
 * whole frame is present (*frame_len = its size without the 4-byte prefix),
 * CORE_ERR_AGAIN when more bytes are needed (*frame_len = the announced size
 * once the prefix is complete, else 0: callers may reserve exactly that),
 * CORE_ERR_TOO_LARGE when the announced size exceeds max_bytes (checked
 * before anything is allocated), CORE_ERR_MALFORMED when it is negative or
 * shorter than a request header. Pure. */
int broker_proto_frame(const uint8_t *buf, size_t len, int64_t max_bytes, size_t *frame_len);

/* ---- request header ------------------------------------------------------ */
typedef struct broker_proto_hdr {
    int16_t api_key;
    int16_t api_version;
    int32_t corr_id;
    core_slice_t client_id; /* view into the frame; len -1 = null */
    int hdr_version;        /* 1 or 2 (2 = flexible request: tagged fields follow client_id) */
} broker_proto_hdr_t;

/* Decodes the request header from the start of a frame (without the size
 * prefix). The header version follows from (api_key, api_version): v2 when the
 * version is flexible for that API (first flexible versions in
 * docs/kafka-protocol.md §2.3), else v1. Returns CORE_OK or the reader's
 * error; rd is left at the first body byte. */
int broker_proto_hdr_decode(core_rd_t *rd, broker_proto_hdr_t *hdr);
/* The first flexible version of an API, or INT16_MAX when never/unknown. */
int16_t broker_proto_first_flexible(int16_t api_key);

/* ---- requests ------------------------------------------------------------- */
typedef enum broker_proto_res {
    BROKER_PROTO_DONE = 0,  /* req->out holds the response: send it */
    BROKER_PROTO_NONE,      /* no response at all (Produce acks=0) */
    BROKER_PROTO_FLUSH,     /* response ready, but send it only after the flush
                               generation req->flush_gen completed (acks=all) */
    BROKER_PROTO_WAIT,      /* long poll: call again on new data or at req->deadline_ms
                               (then with req->final set, which forces an answer) */
    BROKER_PROTO_RETRY,     /* cannot run now (a flush is in flight): call again later */
    BROKER_PROTO_PENDING,   /* held by a component (group coordinator), which will
                               call broker_req_complete(); req->cancel must be set */
    BROKER_PROTO_CLOSE,     /* unparsable/unsupported: close the connection after the
                               earlier responses (one log line already written) */
} broker_proto_res_t;

/* A byte range of a segment file spliced into the response at out position
 * `at` (all file parts are in increasing `at` order). */
typedef struct broker_proto_file {
    size_t at;
    broker_log_slice_t slice; /* reference held until broker_req_reset/fini */
} broker_proto_file_t;

/* acks=all: after the flush, answer KAFKA_STORAGE_ERROR at out[err_pos] unless
 * broker_log_flushed(log) > last_offset. */
typedef struct broker_proto_flushwait {
    broker_log_t *log;
    int64_t last_offset;
    size_t err_pos;
} broker_proto_flushwait_t;

typedef struct broker_req broker_req_t;
typedef void broker_req_cancel_fn(broker_req_t *req, void *opaque);

struct broker_req {
    /* input: the frame without its size prefix; owned (freed by broker_req_fini) */
    uint8_t *frame;
    size_t frame_len;
    broker_proto_hdr_t hdr;
    size_t body_off;          /* first body byte in frame */
    int64_t now_ms;           /* monotonic time of this handling */
    bool final;               /* WAIT expired: the handler must answer now */
    int64_t deadline_ms;      /* WAIT: monotonic deadline, set on the first call */

    /* output */
    core_buf_t out;           /* size prefix + response header + body */
    broker_proto_file_t *files;
    int nfiles, files_cap;
    uint64_t flush_gen;       /* FLUSH: the flush job generation to wait for */
    broker_proto_flushwait_t *waits;
    int nwaits, waits_cap;
    broker_log_t **watch;     /* WAIT: the logs whose growth should re-run this Fetch */
    int nwatch, watch_cap;

    /* PENDING: called on the loop thread when the connection goes away before
     * broker_req_complete; the holder must then forget req (it is freed). */
    broker_req_cancel_fn *cancel;
    void *cancel_opaque;

    void *net;                /* broker_net's per-request bookkeeping */
    const char *peer;         /* "ip:port" of the client (borrowed from the connection) */
};

/* acks-after-flush: the response at out[err_pos] becomes KAFKA_STORAGE_ERROR
 * unless broker_log_flushed(log) > last_offset once the flush finished (the
 * handler then returns BROKER_PROTO_FLUSH; used by Produce and OffsetCommit). */
void broker_req_add_wait(broker_req_t *req, broker_log_t *log, int64_t last_offset, size_t err_pos);

/* Takes ownership of frame (heap, free()) and decodes its header. Returns
 * CORE_OK or the reader error (then the caller closes the connection). */
int broker_req_init(broker_req_t *req, uint8_t *frame, size_t frame_len);
/* Drops the output (releases file slices), keeps the input: for re-running. */
void broker_req_reset(broker_req_t *req);
void broker_req_fini(broker_req_t *req);
/* Total response size on the wire including the 4-byte prefix. */
int64_t broker_req_out_size(const broker_req_t *req);

/* Runs the handler for req. Writes the response header and body to
 * req->out and patches the size prefix. Unknown API key or version (other
 * than ApiVersions, which answers UNSUPPORTED_VERSION), or a body that does
 * not parse: logs one line and returns BROKER_PROTO_CLOSE. */
broker_proto_res_t broker_proto_handle(broker_t *b, broker_req_t *req);

/* Writes the response header for req (size placeholder, corr id, and the tag
 * byte when the response is flexible). Handlers for held requests call this
 * before writing their body; broker_proto_finish patches the size. */
void broker_proto_begin(broker_req_t *req);
void broker_proto_finish(broker_req_t *req);

/* ---- the dispatch table ---------------------------------------------------- */
typedef broker_proto_res_t broker_proto_handler_fn(broker_t *b, broker_req_t *req, core_rd_t *rd);

typedef struct broker_proto_api {
    int16_t key;
    int16_t min_version;
    int16_t max_version;
    const char *name;
    broker_proto_handler_fn *handler; /* NULL = not implemented, not advertised */
} broker_proto_api_t;

/* Row for key, or NULL when the key is not implemented. */
const broker_proto_api_t *broker_proto_api(int16_t key);
const char *broker_proto_api_name(int16_t key);

/* ---- decoded forms (exposed for tests; views into the frame) ---------------- */
typedef struct broker_proto_produce_part {
    int32_t index;
    core_slice_t records; /* len -1 = null */
} broker_proto_produce_part_t;
typedef struct broker_proto_produce_topic {
    core_slice_t name;
    int32_t nparts;
    broker_proto_produce_part_t *parts;
} broker_proto_produce_topic_t;
typedef struct broker_proto_produce {
    core_slice_t transactional_id;
    int16_t acks;
    int32_t timeout_ms;
    int32_t ntopics;
    broker_proto_produce_topic_t *topics;
} broker_proto_produce_t;

/* Decodes a Produce request body of the given version. On success the caller
 * frees with broker_proto_produce_free. Returns CORE_OK or a reader error
 * (TRUNCATED, MALFORMED, TOO_LARGE); nothing to free on error. */
int broker_proto_produce_decode(core_rd_t *rd, int16_t version, broker_proto_produce_t *p);
void broker_proto_produce_free(broker_proto_produce_t *p);

typedef struct broker_proto_fetch_part {
    int32_t index;
    int32_t current_leader_epoch;
    int64_t fetch_offset;
    int64_t log_start_offset;
    int32_t max_bytes;
} broker_proto_fetch_part_t;
typedef struct broker_proto_fetch_topic {
    core_slice_t name;
    int32_t nparts;
    broker_proto_fetch_part_t *parts;
} broker_proto_fetch_topic_t;
typedef struct broker_proto_fetch {
    int32_t replica_id;
    int32_t max_wait_ms;
    int32_t min_bytes;
    int32_t max_bytes;
    int8_t isolation_level;
    int32_t session_id;
    int32_t session_epoch;
    int32_t ntopics;
    broker_proto_fetch_topic_t *topics;
    core_slice_t rack_id;
} broker_proto_fetch_t;

/* InitProducerId (22) v0-1 request. */
typedef struct broker_proto_init_pid {
    core_slice_t transactional_id; /* len -1 = null: plain idempotence */
    int32_t transaction_timeout_ms;
} broker_proto_init_pid_t;
/* Decodes an InitProducerId request body (v0 and v1 are the same). Returns
 * CORE_OK or the reader's error; nothing to free. */
int broker_proto_init_pid_decode(core_rd_t *rd, int16_t version, broker_proto_init_pid_t *r);

int broker_proto_fetch_decode(core_rd_t *rd, int16_t version, broker_proto_fetch_t *f);
void broker_proto_fetch_free(broker_proto_fetch_t *f);

/* Writes the ApiVersions body (error_code, the advertised table, and the
 * fields of `version`; v3 flexible). Exposed for the fallback test. */
void broker_proto_api_versions_body(core_buf_t *out, int16_t version, int16_t error_code);

/* Kafka error for a core_err_t from the log/topic layers. */
int16_t broker_proto_kerr(int err);

#endif
