/*
 * broker_topic — the broker's topic registry: names, partition counts,
 * per-topic configs, and each partition's broker_log.
 *
 * (Interface fixed first; the implementer completes this comment.)
 *
 * Persistence: DIR/topics/<name>/topic.properties holds the partition count
 * and configs, written via temp file + fsync + rename + fsync(dir). Partition
 * logs live in DIR/topics/<name>/<partition>/ (see broker_log.h). A topic
 * being deleted is renamed to DIR/topics/.deleted-<name>-<ts> first, so a crash
 * mid-delete never leaves a half topic visible.
 *
 * Topic configs (Kafka names): retention.ms, retention.bytes, segment.bytes,
 * segment.ms, max.message.bytes, cleanup.policy (only "delete" for now).
 * Unknown or invalid config -> CORE_ERR_INVAL with a message (-> INVALID_CONFIG).
 * Names: 1..249 chars of [a-zA-Z0-9._-], not "." or ".." (-> INVALID_TOPIC_EXCEPTION).
 *
 * Threads: loop thread only.
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
