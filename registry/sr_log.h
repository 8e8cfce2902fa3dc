/*
 * sr_log — the registry's durable log: the single-partition topic `_schemas`
 * on a Kafka-protocol broker (ours or a real Kafka cluster), as Confluent's
 * registry does. The registry talks to the broker only over the Kafka
 * protocol (librdkafka), never through broker/ internals.
 *
 * Open: creates `_schemas` if missing (1 partition, retention.ms=-1 and
 * retention.bytes=-1 so nothing expires), then reads it from the beginning to
 * the high watermark observed at open, handing each record to a callback:
 * that replay rebuilds the registry's state before it serves anything.
 * Append: produces one record with acks=all and waits for the delivery
 * report, so an answered registration is on the broker (fsynced) first.
 *
 * Threads: sr_log_append may be called from any thread but calls must be
 * serialised by the caller (the registry holds its state mutex), which also
 * keeps the log order equal to the order the state applies records in.
 */
#ifndef EDDY_SR_LOG_H
#define EDDY_SR_LOG_H

#include <stddef.h>

typedef struct sr_log sr_log_t;

typedef int sr_log_record_fn(void *opaque, const char *key, size_t klen, const char *value,
                             size_t vlen /* value NULL = tombstone */);

int sr_log_open(const char *brokers, const char *topic, sr_log_record_fn *fn, void *opaque,
                int timeout_ms, sr_log_t **out, char *errstr, size_t errstr_size);
/* value NULL writes a tombstone. Returns 0 once the broker acknowledged it. */
int sr_log_append(sr_log_t *log, const char *key, const char *value, char *errstr,
                  size_t errstr_size);
void sr_log_close(sr_log_t *log);

#endif
