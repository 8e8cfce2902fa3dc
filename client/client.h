/*
 * client — Eddy's Kafka client tools: topic administration, a line-oriented
 * producer and a line/JSON-oriented consumer, all on librdkafka.
 *
 * Design: these are ordinary Kafka clients. They talk to a broker only over
 * the Kafka protocol (bootstrap "HOST:PORT"), never to broker/ internals, so
 * they work the same against `eddy broker`, Apache Kafka or Redpanda. The
 * `eddy topics|produce|consume` commands (client_cmd.c) are thin wrappers
 * that fill the option structs below from their core_conf tables.
 *
 * Invariants:
 *   - The consumer never invents a consumer group. Without an explicit group
 *     id it assigns partitions itself (assign(), no group, no commits); with
 *     one it subscribes under exactly that id (issue 4, "Naming").
 *   - The producer counts every record it hands to librdkafka and every
 *     delivery report it receives; client_produce_stream returns only after
 *     all reports are in (or the delivery timeout expired, which librdkafka
 *     reports as a failed delivery), so ok + failed == records on return.
 *   - JSON output is one object per line and lossless for arbitrary bytes:
 *     valid UTF-8 is emitted as JSON text; every byte that is not part of a
 *     valid UTF-8 sequence is emitted as the lone surrogate \udcXX (XX = the
 *     byte, 80..ff), Python's "surrogateescape" scheme (PEP 383). Valid UTF-8
 *     can never encode a surrogate, so the mapping is unambiguous; in Python
 *     `s.encode("utf-8", "surrogateescape")` restores the original bytes.
 *
 * Threads: every function runs on the caller's thread and creates its own
 * rd_kafka_t (librdkafka starts its internal threads). client_consume_stream
 * and client_produce_stream poll *stop (a flag a signal handler may set) and
 * finish cleanly when it becomes non-zero.
 *
 * Ownership: option structs and their strings are borrowed for the duration
 * of the call. Nothing returned needs freeing unless stated.
 */
#ifndef EDDY_CLIENT_H
#define EDDY_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "core/core_conf.h"

/* Default bootstrap address of every client command. */
#define CLIENT_DEFAULT_BROKER "127.0.0.1:9092"

/* Upper bound on one input line of `eddy produce` (a record). Larger lines
 * are refused instead of growing the line buffer without limit; the broker's
 * max.message.bytes is far below this anyway. */
#define CLIENT_MAX_LINE_BYTES (256 << 20)

/* Parses a start offset: "beginning"|"earliest", "end"|"latest", "stored",
 * N >= 0 (absolute) or -N (N records before the end, as kcat's -o -N).
 * Returns 0 and a librdkafka offset (possibly a logical one), or CORE_ERR_INVAL. */
int client_offset_parse(const char *s, int64_t *offset);

/* Writes p[0..n) as a JSON string (with quotes) using the escaping described
 * above. p == NULL writes null. */
void client_json_write_bytes(FILE *out, const void *p, size_t n);

/* ---- topics (Admin API) --------------------------------------------------- */

typedef struct client_topic_spec {
    const char *name;
    int32_t partitions;
    int32_t replication_factor;
    const core_strlist_t *configs; /* "key=value" each; may be NULL */
} client_topic_spec_t;

/* Each returns 0 on success or a nonzero core_err_t / errno with one line in
 * errstr naming the topic and the broker's reason (e.g. "topic 'x' already
 * exists"). timeout_ms bounds the whole operation. */
int client_topic_create(const char *brokers, const core_strlist_t *props,
                        const client_topic_spec_t *spec, int timeout_ms, char *errstr,
                        size_t errstr_size);
int client_topic_delete(const char *brokers, const core_strlist_t *props, const char *name,
                        int timeout_ms, char *errstr, size_t errstr_size);
/* Prints topic names, one per line, sorted. */
int client_topic_list(const char *brokers, const core_strlist_t *props, FILE *out,
                      int timeout_ms, char *errstr, size_t errstr_size);
/* Prints partitions (leader, replicas, isr, earliest and latest offsets) and
 * the topic's configs (DescribeConfigs; a broker without it gets a note). */
int client_topic_describe(const char *brokers, const core_strlist_t *props, const char *name,
                          FILE *out, int timeout_ms, char *errstr, size_t errstr_size);

/* A value transform applied to each record's value: produce passes the
 * line's value through it before sending, consume before printing (e.g. the
 * Avro codecs of client_avro.h). Returns 0 with *out / *out_len (borrowed
 * from the transform, valid until its next call), or nonzero with errstr:
 * produce counts the record as failed; consume reports it on stderr with
 * its partition and offset and counts it in stats.untransformed. */
typedef int (*client_value_fn)(void *opaque, const void *in, size_t in_len, const void **out,
                               size_t *out_len, char *errstr, size_t errstr_size);

/* ---- produce -------------------------------------------------------------- */

typedef struct client_produce_opts {
    const char *brokers;
    const char *topic;
    const char *acks;             /* "0", "1", "all" (or "-1") */
    const char *key_separator;    /* NULL: no keys; else split each line at its first occurrence */
    int32_t partition;            /* -1: librdkafka's partitioner (consistent_random) */
    const core_strlist_t *headers; /* "k=v" added to every record; may be NULL */
    const core_strlist_t *props;   /* librdkafka overrides; may be NULL */
    int64_t delivery_timeout_ms;   /* per record, librdkafka message.timeout.ms */
    volatile sig_atomic_t *stop;   /* may be NULL */
    client_value_fn value_fn;      /* NULL: values as read */
    void *value_opaque;
} client_produce_opts_t;

typedef struct client_produce_stats {
    int64_t lines;          /* records read from input */
    int64_t bytes;          /* key + value bytes of those records */
    int64_t delivered;      /* acknowledged by the broker (or sent, with acks=0) */
    int64_t failed;         /* delivery reports with an error, plus refused records */
    int64_t skipped_empty;  /* empty lines (not produced) */
    int64_t no_key;         /* lines without the separator (produced with a null key) */
    char first_error[256];  /* first failure, "" if none */
    double seconds;
} client_produce_stats_t;

/* Reads records from in, one per '\n'-terminated line (the last line may lack
 * the '\n'; the '\n' is not part of the record, every other byte is, '\r'
 * included; empty lines are skipped), produces them and waits for every
 * delivery report. Returns 0 when the run could start (see stats->failed for
 * per-record failures), or an error with errstr (bad options, no broker, input
 * read error, line too long). */
int client_produce_stream(const client_produce_opts_t *o, FILE *in, client_produce_stats_t *st,
                          char *errstr, size_t errstr_size);

/* ---- consume -------------------------------------------------------------- */

typedef struct client_consume_opts {
    const char *brokers;
    const char *topic;
    const char *group;          /* NULL: assign() mode, no group, no commits */
    bool from_beginning;        /* start at earliest when no offset/committed offset */
    const char *offset;         /* NULL or client_offset_parse syntax (assign mode only) */
    int32_t partition;          /* -1: all partitions (assign mode only) */
    int64_t max_messages;       /* 0: unlimited */
    bool exit_at_end;           /* stop once every assigned partition reached its end */
    bool json;
    const char *key_separator;  /* text mode: print key SEP value when set */
    const core_strlist_t *props;
    volatile sig_atomic_t *stop;
    client_value_fn value_fn;   /* NULL: values as stored */
    void *value_opaque;
} client_consume_opts_t;

typedef struct client_consume_stats {
    int64_t messages;
    int64_t bytes;
    int64_t untransformed;      /* records value_fn refused (reported, not printed) */
} client_consume_stats_t;

/* Consumes and writes one line per record to out until max_messages, the end
 * (exit_at_end), or *stop. Returns 0, or an error with errstr (unknown topic,
 * partition out of range, bad options, a fatal consumer error). */
int client_consume_stream(const client_consume_opts_t *o, FILE *out, client_consume_stats_t *st,
                          char *errstr, size_t errstr_size);

#endif
