/*
 * client_cmd — `eddy topics`, `eddy produce`, `eddy consume`: settings
 * tables (core_conf) and exit codes around client.h.
 *
 * Exit codes (all three commands): 0 success; 1 the operation failed (broker
 * error, unreachable broker, a record not delivered, unknown topic); 2 bad
 * usage (unknown flag, missing --topic, bad value).
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/client.h"
#include "client/client_avro.h"
#include "core/core_conf.h"
#include "core/core_err.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

/* Set by SIGINT/SIGTERM; the stream loops poll it and finish cleanly
 * (produce: wait for outstanding delivery reports; consume: close). */
static volatile sig_atomic_t client_stop;

static void on_signal(int sig)
{
    client_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked read(2) returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Rows several commands share; T is the command's argument struct. */
/* clang-format off */
#define CLIENT_OPT_BROKER(T)                                                                       \
    {"broker", CORE_OPT_STR, CLIENT_DEFAULT_BROKER, "bootstrap broker HOST:PORT",                  \
     offsetof(T, broker)}
#define CLIENT_OPT_REGISTRY(T)                                                                     \
    {"registry", CORE_OPT_STR, "http://127.0.0.1:8081", "schema registry URL (with --avro)",       \
     offsetof(T, registry)}
/* clang-format on */

/* ---- eddy topics ------------------------------------------------------------- */

typedef struct topics_args {
    char *broker;
    core_strlist_t property;
    int64_t timeout_ms;
    int64_t partitions;
    int64_t replication_factor;
    core_strlist_t config;
} topics_args_t;

/* clang-format off */
#define TOPICS_COMMON_OPTS                                                                         \
    CLIENT_OPT_BROKER(topics_args_t),                                                              \
    {"timeout", CORE_OPT_DURATION, "30s", "give up after this long",                               \
     offsetof(topics_args_t, timeout_ms)},                                                         \
    {"property", CORE_OPT_LIST, NULL, "librdkafka setting key=value, e.g. security.protocol=ssl",  \
     offsetof(topics_args_t, property)}
/* clang-format on */

static const core_opt_t topics_create_opts[] = {
    {"partitions", CORE_OPT_INT, "1", "number of partitions", offsetof(topics_args_t, partitions)},
    {"replication-factor", CORE_OPT_INT, "1", "replicas per partition (a single eddy broker: 1)",
     offsetof(topics_args_t, replication_factor)},
    {"config", CORE_OPT_LIST, NULL,
     "topic config key=value: retention.ms, retention.bytes, segment.bytes, "
     "segment.ms, max.message.bytes, cleanup.policy",
     offsetof(topics_args_t, config)},
    TOPICS_COMMON_OPTS,
    CORE_OPT_END,
};
static const core_opt_t topics_plain_opts[] = {TOPICS_COMMON_OPTS, CORE_OPT_END};

static void topics_usage(FILE *out)
{
    fprintf(out, "usage: eddy topics SUBCOMMAND [OPTIONS]\n\n"
                 "Administers topics on any Kafka-protocol broker (Admin API).\n\n"
                 "subcommands:\n"
                 "  create NAME [--partitions N] [--replication-factor 1] [--config k=v]...\n"
                 "  list                 topic names, one per line\n"
                 "  describe NAME        partitions, leaders, earliest/latest offsets, configs\n"
                 "  delete NAME\n\n"
                 "Every subcommand takes --broker HOST:PORT (default %s), --timeout and\n"
                 "--property; run `eddy topics SUBCOMMAND --help` for details.\n"
                 "Exit status: 0 ok, 1 the broker refused or could not be reached, 2 usage.\n",
            CLIENT_DEFAULT_BROKER);
}

int cmd_topics(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        topics_usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : 0;
    }
    const char *sub = argv[0];
    int is_create = !strcmp(sub, "create"), is_list = !strcmp(sub, "list");
    int is_describe = !strcmp(sub, "describe"), is_delete = !strcmp(sub, "delete");
    if (!is_create && !is_list && !is_describe && !is_delete) {
        fprintf(stderr, "eddy topics: unknown subcommand '%s'\n\n", sub);
        topics_usage(stderr);
        return EXIT_USAGE;
    }
    char usage[128];
    snprintf(usage, sizeof usage, "eddy topics %s%s [OPTIONS]", sub, is_list ? "" : " NAME");
    const core_opt_t *opts = is_create ? topics_create_opts : topics_plain_opts;
    static const char *const summaries[] = {
        "Creates a topic.", "Lists topic names.",
        "Shows a topic's partitions, leaders, earliest/latest offsets and configs.",
        "Deletes a topic and its data."};
    const char *summary = summaries[is_create ? 0 : is_list ? 1 : is_describe ? 2 : 3];

    topics_args_t a;
    memset(&a, 0, sizeof a);
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos;
    const core_cmd_t cmd = {.name = "eddy topics",
                            .usage = usage,
                            .summary = summary,
                            .opts = opts,
                            .takes_args = true};
    int rc = core_conf_begin(&cmd, &a, argc - 1, argv + 1, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    rc = EXIT_USAGE;
    if (npos != (is_list ? 0 : 1)) {
        fprintf(stderr, "eddy: usage: %s\n", usage);
        goto out;
    }
    if (a.timeout_ms <= 0 || a.timeout_ms > INT32_MAX) {
        fprintf(stderr, "eddy: --timeout must be positive\n");
        goto out;
    }
    if (is_create && (a.partitions < 1 || a.partitions > 100000)) {
        fprintf(stderr, "eddy: --partitions must be between 1 and 100000\n");
        goto out;
    }
    if (is_create && (a.replication_factor < 1 || a.replication_factor > 32767)) {
        fprintf(stderr, "eddy: --replication-factor must be at least 1\n");
        goto out;
    }

    char err[1024];
    int r, timeout = (int)a.timeout_ms;
    if (is_create) {
        client_topic_spec_t spec = {.name = pos[0],
                                    .partitions = (int32_t)a.partitions,
                                    .replication_factor = (int32_t)a.replication_factor,
                                    .configs = &a.config};
        r = client_topic_create(a.broker, &a.property, &spec, timeout, err, sizeof err);
        if (!r)
            fprintf(stderr, "created topic '%s' with %d partition(s)\n", pos[0],
                    (int)a.partitions);
    } else if (is_list) {
        r = client_topic_list(a.broker, &a.property, stdout, timeout, err, sizeof err);
    } else if (is_describe) {
        r = client_topic_describe(a.broker, &a.property, pos[0], stdout, timeout, err,
                                  sizeof err);
    } else {
        r = client_topic_delete(a.broker, &a.property, pos[0], timeout, err, sizeof err);
        if (!r)
            fprintf(stderr, "deleted topic '%s'\n", pos[0]);
    }
    if (r)
        fprintf(stderr, "eddy topics %s: %s\n", sub, err);
    rc = r ? EXIT_FAIL : 0;
out:
    free(pos);
    core_conf_free(opts, &a);
    return rc;
}

/* ---- eddy produce ------------------------------------------------------------ */

typedef struct produce_args {
    char *broker;
    char *topic;
    char *acks;
    char *key_separator;
    int64_t partition;
    core_strlist_t header;
    core_strlist_t property;
    int64_t delivery_timeout_ms;
    bool quiet;
    bool avro;
    char *registry;
    char *subject;
    char *avro_schema;
} produce_args_t;

static const core_opt_t produce_opts[] = {
    CLIENT_OPT_BROKER(produce_args_t),
    {"topic", CORE_OPT_STR, NULL, "topic to write to (required)", offsetof(produce_args_t, topic)},
    {"acks", CORE_OPT_STR, "all",
     "0 (no answer), 1 (leader appended it), all (on disk: fsynced on a single eddy broker)",
     offsetof(produce_args_t, acks)},
    {"key-separator", CORE_OPT_STR, NULL,
     "split each line at the first occurrence of this text: key before, value after "
     "(lines without it get no key)",
     offsetof(produce_args_t, key_separator)},
    {"partition", CORE_OPT_INT, "-1",
     "write every record to this partition (-1: by key, librdkafka's consistent_random: "
     "crc32(key) % partitions, random for records without a key)",
     offsetof(produce_args_t, partition)},
    {"header", CORE_OPT_LIST, NULL, "header key=value added to every record",
     offsetof(produce_args_t, header)},
    {"property", CORE_OPT_LIST, NULL,
     "librdkafka setting key=value, e.g. linger.ms=50 or compression.codec=lz4",
     offsetof(produce_args_t, property)},
    {"delivery-timeout", CORE_OPT_DURATION, "30s",
     "a record not acknowledged within this time counts as failed",
     offsetof(produce_args_t, delivery_timeout_ms)},
    {"quiet", CORE_OPT_BOOL, NULL, "no summary line on stderr (failures are still reported)",
     offsetof(produce_args_t, quiet)},
    {"avro", CORE_OPT_BOOL, NULL,
     "each line is a JSON datum: encode it as Avro in the Confluent wire format (magic 0, "
     "4-byte schema id, datum) with the subject's latest schema or --avro-schema",
     offsetof(produce_args_t, avro)},
    CLIENT_OPT_REGISTRY(produce_args_t),
    {"subject", CORE_OPT_STR, NULL, "registry subject (with --avro; default TOPIC-value)",
     offsetof(produce_args_t, subject)},
    {"avro-schema", CORE_OPT_STR, NULL,
     "Avro schema file: registered under the subject (idempotently) and used (with --avro)",
     offsetof(produce_args_t, avro_schema)},
    CORE_OPT_END,
};

int cmd_produce(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy produce",
        .usage = "eddy produce --topic T [OPTIONS] < records",
        .summary = "Writes stdin to a topic, one record per line ('\\n' ends a record "
                   "and is not part of it;\nempty lines are skipped). Exit status 1 if "
                   "any record was not acknowledged.",
        .opts = produce_opts,
        .takes_args = true,
    };
    produce_args_t a;
    memset(&a, 0, sizeof a);
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    int rc = core_conf_begin(&cmd, &a, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    rc = EXIT_USAGE;
    if (npos) {
        fprintf(stderr, "eddy produce: unexpected argument '%s' (records come from stdin)\n",
                pos[0]);
        goto out;
    }
    if (!a.topic || !*a.topic) {
        fprintf(stderr, "eddy produce: --topic is required\n");
        goto out;
    }
    if (a.partition < -1 || a.partition > INT32_MAX) {
        fprintf(stderr, "eddy produce: --partition must be >= 0\n");
        goto out;
    }
    if (a.delivery_timeout_ms <= 0 || a.delivery_timeout_ms > INT32_MAX) {
        fprintf(stderr, "eddy produce: --delivery-timeout must be positive\n");
        goto out;
    }
    client_avro_t *ca = NULL;
    if (a.avro) {
        char subject[512], aerr[1024];
        snprintf(subject, sizeof subject, "%s", a.subject ? a.subject : "");
        if (!a.subject)
            snprintf(subject, sizeof subject, "%s-value", a.topic);
        if (client_avro_producer_new(a.registry, subject, a.avro_schema, &ca, aerr, sizeof aerr)) {
            fprintf(stderr, "eddy produce: %s\n", aerr);
            rc = EXIT_FAIL;
            goto out;
        }
    } else if (a.subject || a.avro_schema) {
        fprintf(stderr, "eddy produce: --subject and --avro-schema need --avro\n");
        goto out;
    }
    install_signals();
    client_produce_opts_t o = {.brokers = a.broker,
                               .value_fn = ca ? client_avro_encode : NULL,
                               .value_opaque = ca,
                               .topic = a.topic,
                               .acks = a.acks,
                               .key_separator = a.key_separator,
                               .partition = (int32_t)a.partition,
                               .headers = &a.header,
                               .props = &a.property,
                               .delivery_timeout_ms = a.delivery_timeout_ms,
                               .stop = &client_stop};
    client_produce_stats_t st;
    char err[1024];
    int r = client_produce_stream(&o, stdin, &st, err, sizeof err);
    if (r) {
        fprintf(stderr, "eddy produce: %s\n", err);
        rc = r == CORE_ERR_INVAL ? EXIT_USAGE : EXIT_FAIL;
        if (st.lines == 0)
            goto out;
    } else {
        rc = st.failed ? EXIT_FAIL : 0;
    }
    if (!a.quiet || st.failed) {
        double rate = st.seconds > 0 ? (double)st.delivered / st.seconds : 0;
        fprintf(stderr,
                "eddy produce: %lld record(s) delivered to '%s', %lld failed, %.1f MB, %.2f s "
                "(%.0f records/s)",
                (long long)st.delivered, a.topic, (long long)st.failed, (double)st.bytes / 1e6,
                st.seconds, rate);
        if (st.skipped_empty)
            fprintf(stderr, "; %lld empty line(s) skipped", (long long)st.skipped_empty);
        if (st.no_key)
            fprintf(stderr, "; %lld line(s) without the key separator (no key)",
                    (long long)st.no_key);
        fputc('\n', stderr);
    }
    if (st.failed)
        fprintf(stderr, "eddy produce: first failure: %s\n", st.first_error);
    client_avro_free(ca);
out:
    free(pos);
    core_conf_free(produce_opts, &a);
    return rc;
}

/* ---- eddy consume ------------------------------------------------------------ */

typedef struct consume_args {
    char *broker;
    char *topic;
    char *group;
    bool from_beginning;
    int64_t max_messages;
    bool json;
    int64_t partition;
    char *offset;
    bool exit_at_end;
    char *key_separator;
    core_strlist_t property;
    bool quiet;
    bool avro;
    char *registry;
} consume_args_t;

static const core_opt_t consume_opts[] = {
    CLIENT_OPT_BROKER(consume_args_t),
    {"topic", CORE_OPT_STR, NULL, "topic to read (required)", offsetof(consume_args_t, topic)},
    {"group", CORE_OPT_STR, NULL,
     "join this consumer group (subscribe, committed offsets). Without it: no group at all, "
     "every partition is read by this process alone and nothing is committed",
     offsetof(consume_args_t, group)},
    {"from-beginning", CORE_OPT_BOOL, NULL,
     "start at the earliest offset (default: only new records; with --group: when the group "
     "has no committed offset)",
     offsetof(consume_args_t, from_beginning)},
    {"max-messages", CORE_OPT_INT, "0", "exit after this many records (0: no limit)",
     offsetof(consume_args_t, max_messages)},
    {"exit-at-end", CORE_OPT_BOOL, NULL,
     "exit once every partition has been read up to its end (like kcat -e)",
     offsetof(consume_args_t, exit_at_end)},
    {"json", CORE_OPT_BOOL, NULL,
     "one JSON object per line: topic, partition, offset, timestamp, timestamp_type, key, value, "
     "headers ([[name, value], ...]). Bytes that are not UTF-8 appear as \\udcXX (Python's "
     "surrogateescape); null key/value as null",
     offsetof(consume_args_t, json)},
    {"partition", CORE_OPT_INT, "-1", "read only this partition (no --group)",
     offsetof(consume_args_t, partition)},
    {"offset", CORE_OPT_STR, NULL,
     "start offset (no --group): beginning, end, N, or -N for the last N records of each "
     "partition",
     offsetof(consume_args_t, offset)},
    {"key-separator", CORE_OPT_STR, NULL, "text mode: print KEY<separator>VALUE",
     offsetof(consume_args_t, key_separator)},
    {"property", CORE_OPT_LIST, NULL, "librdkafka setting key=value",
     offsetof(consume_args_t, property)},
    {"quiet", CORE_OPT_BOOL, NULL, "no summary line on stderr at exit",
     offsetof(consume_args_t, quiet)},
    {"avro", CORE_OPT_BOOL, NULL,
     "values are Confluent-framed Avro: print each decoded as one JSON line (schemas fetched "
     "from the registry by id, cached); a record that does not decode is reported on stderr",
     offsetof(consume_args_t, avro)},
    CLIENT_OPT_REGISTRY(consume_args_t),
    CORE_OPT_END,
};

int cmd_consume(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy consume",
        .usage = "eddy consume --topic T [OPTIONS]",
        .summary = "Prints a topic's records to stdout, one per line (the value; or "
                   "JSON with --json).\nRuns until --max-messages, --exit-at-end or "
                   "SIGINT/SIGTERM. Never joins a group unless --group is given.",
        .opts = consume_opts,
    };
    consume_args_t a;
    memset(&a, 0, sizeof a);
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    int rc = core_conf_begin(&cmd, &a, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    rc = EXIT_USAGE;
    if (!a.topic || !*a.topic) {
        fprintf(stderr, "eddy consume: --topic is required\n");
        goto out;
    }
    if (a.partition < -1 || a.partition > INT32_MAX || a.max_messages < 0) {
        fprintf(stderr, "eddy consume: --partition and --max-messages must be >= 0\n");
        goto out;
    }
    client_avro_t *ca = NULL;
    if (a.avro) {
        char aerr[256];
        if (client_avro_consumer_new(a.registry, &ca, aerr, sizeof aerr)) {
            fprintf(stderr, "eddy consume: %s\n", aerr);
            rc = EXIT_FAIL;
            goto out;
        }
    }
    install_signals();
    client_consume_opts_t o = {.brokers = a.broker,
                               .value_fn = ca ? client_avro_decode : NULL,
                               .value_opaque = ca,
                               .topic = a.topic,
                               .group = a.group,
                               .from_beginning = a.from_beginning,
                               .offset = a.offset,
                               .partition = (int32_t)a.partition,
                               .max_messages = a.max_messages,
                               .exit_at_end = a.exit_at_end,
                               .json = a.json,
                               .key_separator = a.key_separator,
                               .props = &a.property,
                               .stop = &client_stop};
    client_consume_stats_t st;
    char err[1024];
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    int r = client_consume_stream(&o, stdout, &st, err, sizeof err);
    if (r) {
        fprintf(stderr, "eddy consume: %s\n", err);
        rc = r == CORE_ERR_INVAL ? EXIT_USAGE : EXIT_FAIL;
    } else {
        rc = 0;
    }
    if (!a.quiet && !r)
        fprintf(stderr, "eddy consume: %lld record(s) from '%s'\n", (long long)st.messages,
                a.topic);
    if (st.untransformed) {
        fprintf(stderr, "eddy consume: %lld record(s) did not decode (reported above)\n",
                (long long)st.untransformed);
        if (!r)
            rc = EXIT_FAIL;
    }
    client_avro_free(ca);
out:
    free(pos);
    core_conf_free(consume_opts, &a);
    return rc;
}
