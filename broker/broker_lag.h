/*
 * broker_lag — consumer lag monitoring as Burrow does it (compat-apis.md C),
 * inside the broker: no thresholds to tune.
 *
 * Data (C.1-C.2): per (group, topic, partition) a ring of the last
 * `intervals` (10) commits {offset, timestamp (commit time), observedAt,
 * lag at commit time}; per (topic, partition) a ring of the last `intervals`
 * broker head offsets (log end offset samples, fed on a timer). Lag at commit
 * time = max(0, head − committed offset), where head is the partition's log
 * end offset when the commit is applied: being inside the broker, we know it
 * exactly instead of Burrow's last 10 s sample. Commits for a partition whose
 * head is unknown (< 0) are dropped, as Burrow drops them. A commit arriving
 * less than min_distance_ms after the previous stored one replaces it.
 * Groups with no commit for expire_group_ms are purged (HTTP 404).
 *
 * Evaluation (C.3, current Burrow, API v3), for the commits O oldest→newest:
 *   1. no commits, or complete < minimum_complete       → OK
 *   2. current_lag <= allowed_lag                        → OK
 *   3. now − O.last.ts > O.last.ts − O.first.ts, and no stored head
 *      <= O.last.offset                                  → STOP
 *   4. an offset goes backwards and never recovers      → REWIND
 *   5. every known lag > allowed_lag:
 *        all offsets equal                               → STALL
 *        each known lag >= the previous one              → WARN
 *   6. otherwise                                         → OK
 * Group status (C.4) = worst partition, with STOP/STALL/REWIND shown as ERR;
 * complete = share of partitions with a full window; maxlag = partition with
 * the largest current_lag; totallag = sum of current_lag.
 * current_lag = current head − last committed offset (>= 0), computed at
 * evaluation time from the head the caller reports.
 *
 * Threads: one thread (the broker loop) calls everything; the HTTP side gets
 * results through broker_lag_http's hand-over, never by calling in here.
 * Ownership: strings passed in are copied. Results (broker_lag_group_t) are
 * owned by the caller and freed with broker_lag_group_fini.
 */
#ifndef EDDY_BROKER_LAG_H
#define EDDY_BROKER_LAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct broker_lag broker_lag_t;

/* Burrow's order (C.4): higher is worse. */
typedef enum broker_lag_status {
    BROKER_LAG_NOTFOUND = 0,
    BROKER_LAG_OK = 1,
    BROKER_LAG_WARN = 2,
    BROKER_LAG_ERR = 3,
    BROKER_LAG_STOP = 4,
    BROKER_LAG_STALL = 5,
    BROKER_LAG_REWIND = 6,
} broker_lag_status_t;

const char *broker_lag_status_name(broker_lag_status_t s);

#define BROKER_LAG_MAX_INTERVALS 100 /* window size cap (memory per partition) */

typedef struct broker_lag_conf {
    int intervals;              /* window length in commits: 10 */
    int64_t allowed_lag;        /* 0 */
    double minimum_complete;    /* 0: evaluate partial windows */
    int64_t min_distance_ms;    /* 0 */
    int64_t expire_group_ms;    /* 604800000 (7 days) */
} broker_lag_conf_t;

void broker_lag_conf_default(broker_lag_conf_t *conf);
broker_lag_t *broker_lag_new(const broker_lag_conf_t *conf);
void broker_lag_free(broker_lag_t *lag);

/* Records a commit. head = the partition's log end offset now (-1 unknown:
 * the commit is dropped). ts = commit timestamp (wall ms), now = wall ms. */
void broker_lag_commit(broker_lag_t *lag, const char *group, const char *topic, int32_t partition,
                       int64_t offset, int64_t ts, int64_t head, int64_t now);
/* Records a head-offset sample for a partition (call every refresh interval). */
void broker_lag_head(broker_lag_t *lag, const char *topic, int32_t partition, int64_t head,
                     int64_t now);
/* Forgets a group (DELETE, or when the group's offsets were deleted). */
void broker_lag_forget(broker_lag_t *lag, const char *group);
/* Purges groups idle for expire_group_ms. Returns how many. */
int broker_lag_expire(broker_lag_t *lag, int64_t now);

/* Group names, sorted; *names is malloc'ed, strings borrowed until the next
 * mutating call. Returns the count. */
int broker_lag_groups(broker_lag_t *lag, const char ***names);

typedef struct broker_lag_entry {
    int64_t offset;
    int64_t timestamp;
    int64_t observed_at;
    int64_t lag;                /* -1 = unknown (JSON null) */
} broker_lag_entry_t;

typedef struct broker_lag_partition {
    char *topic;
    int32_t partition;
    broker_lag_status_t status;
    bool has_window;            /* start/end valid */
    broker_lag_entry_t start, end;
    int64_t current_lag;
    double complete;
    char *owner;                /* "" when unknown */
    char *client_id;
} broker_lag_partition_t;

typedef struct broker_lag_group {
    char *group;
    broker_lag_status_t status;
    double complete;
    int npartitions;
    broker_lag_partition_t *partitions; /* sorted by topic, partition */
    int maxlag;                 /* index into partitions, -1 = none */
    int64_t totallag;
} broker_lag_group_t;

/* Reports the current head of a partition (-1 = unknown: the last sample is used). */
typedef int64_t broker_lag_head_fn(void *arg, const char *topic, int32_t partition);
/* Reports the owner of a partition ("host" and client id), or false. */
typedef bool broker_lag_owner_fn(void *arg, const char *group, const char *topic,
                                 int32_t partition, const char **owner, const char **client_id);

/* Evaluates a group at wall time now. Returns 0 and fills *out (free with
 * broker_lag_group_fini), or CORE_ERR_NOT_FOUND (out is then a NOTFOUND
 * status that may still be rendered and must still be finalised). */
int broker_lag_evaluate(broker_lag_t *lag, const char *group, int64_t now,
                        broker_lag_head_fn *head_fn, broker_lag_owner_fn *owner_fn, void *arg,
                        broker_lag_group_t *out);
void broker_lag_group_fini(broker_lag_group_t *g);

/* Evaluates one window directly (the rules above; for tests and tools).
 * heads: the partition's stored head samples. */
broker_lag_status_t broker_lag_rules(const broker_lag_conf_t *conf, const broker_lag_entry_t *o,
                                     int n, const int64_t *heads, int nheads, int64_t current_lag,
                                     int64_t now);

/* Burrow v3 JSON for GET /v3/kafka/C/consumer/G: the "topics" object,
 * {topic: [{"offsets": [entry|null x intervals, oldest first], "owner",
 * "client_id", "current-lag"} per partition index]} (Burrow's hyphenated
 * "current-lag" here, "current_lag" in the status form). NULL if unknown. */
json_t *broker_lag_consumer_json(broker_lag_t *lag, const char *group, broker_lag_head_fn *head_fn,
                                 broker_lag_owner_fn *owner_fn, void *arg);

/* Burrow v3 JSON: the "status" object; all_partitions=false lists only
 * partitions that are not OK (the /status form), true lists all (/lag). */
json_t *broker_lag_status_json(const broker_lag_group_t *g, const char *cluster, bool all_partitions);

#endif
