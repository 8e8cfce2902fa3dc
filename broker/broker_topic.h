/*
 * broker_topic — the broker's topic registry: names, partition counts,
 * per-topic configs, and each partition's broker_log.
 *
 * Persistence: DIR/topics/<name>/topic.properties holds the topic id, the
 * partition count and the configs set explicitly:
 *     # eddy topic metadata; written by the broker
 *     id=<32 hex digits: random v4 UUID>
 *     partitions=<N>
 *     <config key>=<value>            (one line per explicit config)
 * Partition logs live in DIR/topics/<name>/<partition>/ (see broker_log.h).
 *
 * Crash safety: a topic is built as DIR/topics/.creating-<name>/ (partition
 * dirs + topic.properties written via temp file + fsync + rename +
 * fsync(dir)), then renamed to its name and DIR/topics fsynced: a crash
 * leaves nothing visible or a whole topic. A topic being deleted is renamed to
 * DIR/topics/.deleted-<name>-<ms> first (and DIR/topics fsynced), then removed.
 * Open removes every hidden leftover, so a crash mid-create or mid-delete
 * never leaves a half topic visible. A damaged topic.properties or partition
 * log makes open fail with a message naming the file (nothing is repaired
 * silently except a torn tail of an active segment, see broker_log.h).
 *
 * Topic configs (Kafka names): retention.ms (>= -1), retention.bytes (>= -1),
 * segment.bytes (14 .. 2^31-1), segment.ms (>= 1), max.message.bytes
 * (0 .. 2^31-1), cleanup.policy (only "delete" for now). Unset configs take
 * the broker defaults given to broker_topics_open. Unknown, duplicate or
 * invalid config -> CORE_ERR_INVAL with a message naming it (-> INVALID_CONFIG).
 * Names: 1..249 chars of [a-zA-Z0-9._-], not "." or ".."; a name equal to an
 * existing one up to '.' vs '_' is refused, as in Kafka
 * (-> INVALID_TOPIC_EXCEPTION). Partitions: 1..10000 (-> INVALID_PARTITIONS).
 *
 * Leader epochs: on a single node this broker leads every partition; a
 * partition without a leader epoch gets epoch 0 when opened or created.
 *
 * Threads: loop thread only. Ownership: the registry owns topics and their
 * logs; broker_topic_t pointers are borrowed until the topic is deleted or
 * the registry closed. Deleting a topic frees its logs without syncing (the
 * files are going away); slices already handed out stay readable.
 */
#ifndef EDDY_BROKER_TOPIC_H
#define EDDY_BROKER_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker_log.h"

typedef struct broker_topics broker_topics_t;

typedef struct broker_topic {
    char *name;
    int32_t npartitions;
    broker_log_t **partitions; /* npartitions logs, owned */
    broker_log_conf_t conf;
    char **config_keys;        /* configs set explicitly (for DescribeConfigs) */
    char **config_values;
    int nconfigs;
    uint8_t id[16];            /* topic UUID (Metadata v10+), random at creation */
} broker_topic_t;

/* Opens every topic under DIR/topics, recovering each partition log. */
int broker_topics_open(const char *data_dir, const broker_log_conf_t *defaults,
                       broker_topics_t **tp, char *errstr, size_t errstr_size);
void broker_topics_close(broker_topics_t *t);

/* Creates a topic. configs are "key=value" pairs already split. Errors:
 * CORE_ERR_EXISTS (-> TOPIC_ALREADY_EXISTS), CORE_ERR_INVAL with message
 * (-> INVALID_CONFIG / INVALID_PARTITIONS / INVALID_TOPIC_EXCEPTION; the
 * message says which). validate_only creates nothing. */
int broker_topics_create(broker_topics_t *t, const char *name, int32_t npartitions,
                         const char *const *keys, const char *const *values, int nconfigs,
                         bool validate_only, char *errstr, size_t errstr_size);
int broker_topics_delete(broker_topics_t *t, const char *name);
/* Replaces the topic's explicit configs with keys/values (AlterConfigs: a
 * config not given reverts to the broker default), validated as at create.
 * topic.properties is rewritten atomically first; then every partition log
 * gets the new settings. Errors: CORE_ERR_NOT_FOUND, CORE_ERR_INVAL with
 * message (-> INVALID_CONFIG), CORE_ERR_IO (nothing changed). */
int broker_topics_set_configs(broker_topics_t *t, const char *name, const char *const *keys,
                              const char *const *values, int nconfigs, bool validate_only,
                              char *errstr, size_t errstr_size);
/* Grows a topic to npartitions (CreatePartitions; Kafka never shrinks). The
 * new partitions' logs are created first, then topic.properties is rewritten
 * atomically (the commit point): a crash in between leaves empty partition
 * directories beyond the count, which nothing reads and the next growth
 * replaces. Errors: CORE_ERR_NOT_FOUND, CORE_ERR_INVAL with message (count
 * not above the current one, or over 10000 -> INVALID_PARTITIONS),
 * CORE_ERR_IO (nothing changed). validate_only changes nothing. */
int broker_topics_add_partitions(broker_topics_t *t, const char *name, int32_t npartitions,
                                 bool validate_only, char *errstr, size_t errstr_size);
/* Borrowed pointer, valid until the topic is deleted. NULL if unknown. */
broker_topic_t *broker_topics_find(broker_topics_t *t, const char *name, size_t name_len);
/* Iteration in name order: i from 0 to count-1. */
int broker_topics_count(const broker_topics_t *t);
broker_topic_t *broker_topics_at(broker_topics_t *t, int i);
/* Returns true if the name is legal for a topic (see above). */
bool broker_topic_name_valid(const char *name, size_t len);
/* Runs broker_log_housekeep on every partition. */
void broker_topics_housekeep(broker_topics_t *t, int64_t now_ms);

#endif
