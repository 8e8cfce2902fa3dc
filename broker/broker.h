/*
 * broker — the state one `eddy broker` process serves: its settings, the topic
 * registry, and the bookkeeping shared by the protocol handlers
 * (broker_proto) and the network layer (broker_net).
 *
 * Design: one handle (broker_t) reaches everything; there are no globals. The
 * protocol handlers are plain functions of (broker_t *, request) so the fuzz
 * harness and the unit tests drive them without sockets; the network layer
 * adds waiting (long-poll Fetch, acks=all group commit, held group requests).
 *
 * Group commit (acks=all): a Produce handler that appended with acks=-1 adds
 * each touched log to `dirty` and records in the request the flush generation
 * it needs (flush_started + 1). The network layer runs one flush job at a time
 * on the libuv threadpool over the logs that were dirty when it started
 * (broker_dirty_take); every request whose generation is <= the finished job's
 * is answered. So one fsync per partition covers every batch appended before
 * the job began, and batches appended during a flush ride on the next one.
 *
 * Invariants:
 *   - flush_done <= flush_started; flush_started - flush_done <= 1 (one job at a time).
 *   - Every log an acks=all waiter points at is in `dirty` (its flush has not
 *     started) or in `flushing` (the running job's logs): waiters are answered
 *     when their job ends, before `flushing` is cleared. So DeleteTopics of a
 *     topic none of whose logs is in either set cannot pull a log from under a
 *     waiter or the flush job; otherwise it is retried (BROKER_PROTO_RETRY)
 *     after the job ends. Other topics' traffic never delays it.
 *
 * Idempotent producers: the broker hands out producer ids
 * (broker_producer_id_next, durable blocks in DATA/producer-id-block); each
 * partition log keeps the per-producer sequence state and dedups retries
 * (broker_producer.h). That state is REBUILT FROM THE LOG's batch headers
 * (producerId/epoch/baseSequence) on open after a crash, and loaded from a
 * snapshot written at clean shutdown otherwise: the log stays the only
 * truth, no append pays for a second write, and a crash can never leave the
 * state ahead of or behind the data (broker_log.h, "Producer state").
 *
 * Threads: loop thread only; the flush job touches only the logs handed to it.
 * Ownership: broker_open copies what it needs from conf; broker_close frees all.
 */
#ifndef EDDY_BROKER_H
#define EDDY_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker_log.h"
#include "broker/broker_producer.h"
#include "broker/broker_topic.h"

/* Settings of `eddy broker` (filled from the core_conf table in broker_cmd.c). */
typedef struct broker_conf {
    char *data_dir;
    char *listen;             /* HOST:PORT to bind; port 0 = pick a free one */
    char *advertised;         /* HOST:PORT put in Metadata; NULL = the bound listen address */
    bool auto_create_topics;
    int64_t num_partitions;   /* default for auto-created topics and CreateTopics(-1) */
    int64_t max_partitions;   /* most partitions one topic may have (each holds files and fds) */
    int64_t max_request_bytes;
    int64_t segment_bytes;
    int64_t segment_ms;
    int64_t retention_bytes;
    int64_t retention_ms;
    int64_t max_message_bytes;
    int64_t housekeeping_ms;  /* period of the retention/roll timer */
    int64_t node_id;
    int64_t max_connections;
    /* consumer groups, offsets, lag (issue 4; broker_groups.h) */
    char *group_name_pattern;       /* POSIX ERE the whole group id must match; NULL = any */
    char *topic_name_pattern;       /* POSIX ERE the whole topic name must match; NULL = any */
    char *http_listen;              /* lag/metrics HTTP HOST:PORT; "off" = none */
    int64_t offsets_retention_ms;   /* committed offsets of empty groups expire after this */
    int64_t group_min_session_timeout_ms;
    int64_t group_max_session_timeout_ms;
    int64_t group_initial_rebalance_delay_ms;
    int64_t lag_refresh_ms;         /* head-offset sampling period for the lag monitor */
} broker_conf_t;

/* Defaults that mirror Kafka's where Kafka has one. */
void broker_conf_default(broker_conf_t *conf);

typedef struct broker_groups broker_groups_t; /* consumer groups, offsets, lag (broker_groups.h) */

/* Per-API request counters for /metrics (loop thread only). Latency is from
 * a request's first handling to its response being ready to write. */
#define BROKER_API_LAT_BUCKETS 12
typedef struct broker_api_stats {
    uint64_t count;
    uint64_t sum_us;
    uint64_t buckets[BROKER_API_LAT_BUCKETS]; /* non-cumulative; bound i = 100us * 4^i... */
} broker_api_stats_t;
/* Upper bound of latency bucket i in microseconds: 100, 250, 500, 1000, ... */
double broker_api_lat_bound_us(int i);
void broker_api_stats_add(broker_api_stats_t *s, int64_t us);

typedef struct broker {
    broker_conf_t conf;          /* strings borrowed from the caller's conf (outlive the broker) */
    int32_t node_id;
    char host[256];              /* advertised host and port (Metadata, FindCoordinator) */
    int port;
    char cluster_id[32];
    broker_topics_t *topics;
    broker_log_conf_t log_defaults;

    /* acks=all group commit (see the header comment) */
    broker_log_t **dirty;        /* logs with acks=all appends not yet handed to a flush */
    int ndirty, dirty_cap;
    uint64_t flush_started;      /* flush jobs started so far */
    uint64_t flush_done;         /* flush jobs finished so far */
    broker_log_t **flushing;     /* logs of the running flush job (array owned by the job) */
    int nflushing;
    int64_t acks_all_waiting;    /* produce requests waiting for a flush */

    /* Logs appended to since the network layer last looked (deduplicated);
     * it re-runs only the long polls watching one of them. Pointers are only
     * compared, never dereferenced, by that check. */
    broker_log_t **appended;
    int nappended, appended_cap;
    broker_groups_t *groups;     /* consumer groups, offsets, lag: owned (broker_groups.h) */
    broker_api_stats_t api_stats[69]; /* by API key (0..BROKER_API_MAX) */
    struct uv_loop_s *loop;      /* the network loop while broker_net runs (timers for cg), else NULL */
    /* InitProducerId: ids below pid_limit are ours to hand out; pid_limit
     * is on disk (producer-id-block) before any id below it is answered. */
    int64_t next_pid;
    int64_t pid_limit;
    /* Idempotent produce outcomes for /metrics: retries answered from the
     * producer state (not written again), and batches refused by it, by
     * broker_producer_verdict_t (OUT_OF_ORDER, FENCED, UNKNOWN, INVALID). */
    uint64_t produce_duplicates;
    uint64_t produce_refused[BROKER_PRODUCER_NVERDICTS];
} broker_t;

/* Opens the data directory (recovering every partition log). conf is copied
 * shallowly; its strings must outlive the broker. */
int broker_open(const broker_conf_t *conf, broker_t **bp, char *errstr, size_t errstr_size);
/* Flushes (fsync) and closes every log, frees the broker. */
void broker_close(broker_t *b);
/* Sets the address clients are told to connect to. */
void broker_set_advertised(broker_t *b, const char *host, int port);

/* Looks a topic up; if absent and `create` is true and auto-creation is on,
 * creates it with conf.num_partitions partitions (logs one line). Returns
 * NULL with *kerr set to the Kafka error to report (3 or 17). */
broker_topic_t *broker_topic_get(broker_t *b, const char *name, size_t len, bool create,
                                 int16_t *kerr);

/* Records that `log` grew (wakes the long polls watching it). */
void broker_appended_add(broker_t *b, broker_log_t *log);
/* Records that `log` has acks=all data waiting for a flush (deduplicated). */
void broker_dirty_add(broker_t *b, broker_log_t *log);
/* Moves the dirty set to the caller (free() the array after
 * broker_flush_done) and counts a started flush job; returns the job's
 * generation. The logs stay visible as `flushing` until broker_flush_done. */
uint64_t broker_dirty_take(broker_t *b, broker_log_t ***logs, int *nlogs);
/* Marks flush job `gen` finished (call after answering its waiters). */
void broker_flush_done(broker_t *b, uint64_t gen);
/* A new idempotent producer id, unique across restarts (kill -9 too):
 * ids are reserved BROKER_PID_BLOCK at a time by durably writing the
 * block's end to DATA/producer-id-block (temp + fsync + rename) before the
 * first of them is handed out; a restart continues after the last reserved
 * block, so unused ids of it are skipped, never reused. Returns 0 or
 * CORE_ERR_IO (logged). Loop thread. */
int broker_producer_id_next(broker_t *b, int64_t *pid);
#define BROKER_PID_BLOCK 1000
#define BROKER_PID_FILE "producer-id-block"

/* True while a partition log of t waits for or is in a flush (see invariants). */
bool broker_topic_flush_busy(const broker_t *b, const broker_topic_t *t);

#endif
