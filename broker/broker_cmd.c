/*
 * `eddy broker` — runs a single-node Kafka-protocol broker.
 * Settings come from one core_conf table (flags, properties, --help).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "broker/broker.h"
#include "broker/broker_groups.h"
#include "broker/broker_net.h"
#include "broker/broker_proto.h"
#include "cli/cli.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_log.h"

static const core_opt_t broker_opts[] = {
    {"data", CORE_OPT_STR, "./eddy-data", "data directory (topics, partition logs)",
     offsetof(broker_conf_t, data_dir)},
    {"listen", CORE_OPT_STR, "127.0.0.1:9092", "HOST:PORT to listen on (port 0 = any free port)",
     offsetof(broker_conf_t, listen)},
    {"advertised-listener", CORE_OPT_STR, NULL,
     "HOST:PORT clients are told to connect to (default: the listen address)",
     offsetof(broker_conf_t, advertised)},
    {"auto-create-topics", CORE_OPT_BOOL, "true", "create unknown topics on Metadata/Produce",
     offsetof(broker_conf_t, auto_create_topics)},
    {"num-partitions", CORE_OPT_INT, "1", "partitions of auto-created topics (and CreateTopics -1)",
     offsetof(broker_conf_t, num_partitions)},
    {"max-partitions", CORE_OPT_INT, "10000", "most partitions a topic may be created with",
     offsetof(broker_conf_t, max_partitions)},
    {"max-request-bytes", CORE_OPT_SIZE, "100MiB",
     "largest request frame accepted; larger ones close the connection",
     offsetof(broker_conf_t, max_request_bytes)},
    {"segment-bytes", CORE_OPT_SIZE, "1GiB", "default segment.bytes: roll segments at this size",
     offsetof(broker_conf_t, segment_bytes)},
    {"segment-ms", CORE_OPT_DURATION, "7d", "default segment.ms: roll segments at this age",
     offsetof(broker_conf_t, segment_ms)},
    {"retention-ms", CORE_OPT_INT, "604800000", "default retention.ms (-1 = keep forever)",
     offsetof(broker_conf_t, retention_ms)},
    {"retention-bytes", CORE_OPT_INT, "-1", "default retention.bytes per partition (-1 = unlimited)",
     offsetof(broker_conf_t, retention_bytes)},
    {"max-message-bytes", CORE_OPT_SIZE, "1048588", "default max.message.bytes (largest batch)",
     offsetof(broker_conf_t, max_message_bytes)},
    {"housekeeping-interval", CORE_OPT_DURATION, "30s",
     "how often retention and time-based rolling run", offsetof(broker_conf_t, housekeeping_ms)},
    {"node-id", CORE_OPT_INT, "0", "this broker's node id", offsetof(broker_conf_t, node_id)},
    {"max-connections", CORE_OPT_INT, "10000", "connections beyond this are closed at accept",
     offsetof(broker_conf_t, max_connections)},
    {"http-listen", CORE_OPT_STR, NULL,
     "HOST:PORT of the lag/metrics HTTP port (Burrow v3 JSON, /metrics); default 127.0.0.1:8085 "
     "(if that port is taken the broker runs without it and says so); off = none",
     offsetof(broker_conf_t, http_listen)},
    {"group-name-pattern", CORE_OPT_STR, NULL,
     "POSIX extended regex every consumer group id must match (INVALID_GROUP_ID otherwise)",
     offsetof(broker_conf_t, group_name_pattern)},
    {"topic-name-pattern", CORE_OPT_STR, NULL,
     "POSIX extended regex every new topic name must match (INVALID_TOPIC_EXCEPTION otherwise)",
     offsetof(broker_conf_t, topic_name_pattern)},
    {"offsets-retention", CORE_OPT_DURATION, "7d",
     "committed offsets of a group without members expire after this",
     offsetof(broker_conf_t, offsets_retention_ms)},
    {"group-min-session-timeout", CORE_OPT_DURATION, "6s",
     "smallest session timeout a consumer may ask for", offsetof(broker_conf_t, group_min_session_timeout_ms)},
    {"group-max-session-timeout", CORE_OPT_DURATION, "30m",
     "largest session timeout a consumer may ask for", offsetof(broker_conf_t, group_max_session_timeout_ms)},
    {"group-initial-rebalance-delay", CORE_OPT_DURATION, "3s",
     "wait for more members before the first rebalance of an empty group",
     offsetof(broker_conf_t, group_initial_rebalance_delay_ms)},
    {"lag-refresh-interval", CORE_OPT_DURATION, "10s",
     "how often partition head offsets are sampled for lag evaluation (Burrow offset-refresh)",
     offsetof(broker_conf_t, lag_refresh_ms)},
    CORE_OPT_END,
};

static const core_cmd_t broker_cmd = {
    .name = "eddy broker",
    .usage = "eddy broker [--data DIR] [--listen HOST:PORT] [OPTIONS]",
    .summary =
        "Runs a single-node broker that speaks the Kafka protocol (kcat, librdkafka, kafka-python,\n"
        "kafkajs work unchanged). acks=0/1 are answered once the batch is in the log (page cache);\n"
        "acks=all once it is fsynced (one fsync shared by every batch waiting: group commit).\n"
        "SIGTERM/SIGINT shut it down cleanly.",
    .opts = broker_opts,
};

/* Settings each valid alone that make no broker together. */
static int check_conf(const broker_conf_t *conf, char *err, size_t errsz)
{
    if (conf->max_partitions < 1 || conf->max_partitions > BROKER_PROTO_MAX_CREATE_PARTITIONS)
        return core_errf(CORE_ERR_INVAL, err, errsz, "--max-partitions must be in 1..%d",
                         BROKER_PROTO_MAX_CREATE_PARTITIONS);
    if (conf->num_partitions < 1 || conf->num_partitions > conf->max_partitions)
        return core_errf(CORE_ERR_INVAL, err, errsz,
                         "--num-partitions must be in 1..--max-partitions");
    if (conf->max_request_bytes < 1024)
        return core_errf(CORE_ERR_INVAL, err, errsz, "--max-request-bytes must be >= 1KiB");
    return CORE_OK;
}

int cmd_broker(int argc, char **argv)
{
    broker_conf_t conf;
    broker_conf_default(&conf);
    char err[512] = "";
    char *pos[argc + 1];
    int npos;
    int rc = core_conf_begin(&broker_cmd, &conf, argc, argv, pos, &npos);
    if (rc == CORE_CONF_RUN && check_conf(&conf, err, sizeof err)) {
        fprintf(stderr, "eddy broker: %s\n", err);
        rc = 2;
    }
    if (rc != CORE_CONF_RUN) {
        core_conf_free(broker_opts, &conf);
        return rc;
    }

    broker_t *b = NULL;
    broker_net_t *net = NULL;
    int status = 1;
    /* Every partition keeps segment files open and every client a socket:
     * take the hard file-descriptor limit, as Kafka's packaging and Redis do. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            CORE_INFO("broker", "raised the open-file limit from %llu to %llu",
                      (unsigned long long)was, (unsigned long long)rl.rlim_max);
    }
    CORE_INFO("broker", "starting: data %s, auto-create-topics %s, %lld default partitions",
              conf.data_dir, conf.auto_create_topics ? "on" : "off", (long long)conf.num_partitions);
    rc = broker_open(&conf, &b, err, sizeof err);
    if (rc) {
        CORE_ERROR("broker", "cannot open %s: %s", conf.data_dir, err[0] ? err : core_strerror(rc));
        goto out;
    }
    rc = broker_groups_open(b, err, sizeof err);
    if (rc) {
        CORE_ERROR("broker", "consumer groups: %s", err);
        goto out;
    }
    rc = broker_net_new(b, &net, err, sizeof err);
    if (rc) {
        CORE_ERROR("broker", "%s", err);
        goto out;
    }
    rc = broker_groups_start(b, err, sizeof err);
    if (rc) {
        CORE_ERROR("broker", "%s", err);
        goto out;
    }
    rc = broker_net_run(net);
    status = rc ? 1 : 0;
out:
    broker_net_free(net);
    if (b)
        broker_groups_close(b); /* after the loop closed its handles; flushes the offsets log */
    if (b) {
        broker_close(b); /* fsyncs and closes every log */
        CORE_INFO("broker", "stopped cleanly");
    }
    core_conf_free(broker_opts, &conf);
    return status;
}
