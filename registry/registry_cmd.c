/* eddy registry — runs the schema registry (Confluent REST API subset). */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/core_conf.h"
#include "core/core_log.h"
#include "registry/sr_server.h"

typedef struct reg_conf {
    char *data, *broker, *listen, *topic;
    int64_t timeout_ms;
} reg_conf_t;

static const core_opt_t reg_opts[] = {
    {"data", CORE_OPT_STR, "./eddy-data", "data directory (the registry keeps no state of its own "
                                          "there; its log is the broker topic)",
     offsetof(reg_conf_t, data)},
    {"broker", CORE_OPT_STR, "127.0.0.1:9092", "Kafka-protocol broker that holds the schemas topic",
     offsetof(reg_conf_t, broker)},
    {"listen", CORE_OPT_STR, "127.0.0.1:8081", "HTTP listen address HOST:PORT",
     offsetof(reg_conf_t, listen)},
    {"topic", CORE_OPT_STR, "_schemas", "topic holding the registry's log", offsetof(reg_conf_t, topic)},
    {"timeout", CORE_OPT_DURATION, "30s", "broker operation timeout", offsetof(reg_conf_t, timeout_ms)},
    CORE_OPT_END,
};

static const core_cmd_t reg_cmd = {
    .name = "eddy registry",
    .usage = "eddy registry [--broker HOST:PORT] [--listen HOST:PORT]",
    .summary = "Runs the schema registry: the Confluent Schema Registry REST API for Avro\n"
               "schemas, with compatibility checking, stored durably in the broker topic\n"
               "_schemas (replayed at start).",
    .opts = reg_opts,
};

int cmd_registry(int argc, char **argv)
{
    reg_conf_t c;
    char err[512];
    char *pos[argc + 1];
    int npos;
    int rc = core_conf_begin(&reg_cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    rc = 2;
    char host[256];
    int port;
    if (core_parse_hostport(c.listen, host, sizeof host, &port)) {
        fprintf(stderr, "eddy registry: bad --listen '%s' (want HOST:PORT)\n", c.listen);
        goto out;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* threads started below inherit the mask */
    sr_server_conf_t sc = {.brokers = c.broker, .topic = c.topic, .host = host, .port = port,
                           .timeout_ms = (int)c.timeout_ms};
    sr_server_t *srv;
    if (sr_server_start(&sc, &srv, err, sizeof err)) {
        CORE_ERROR("registry", "cannot start: %s", err);
        rc = 1;
        goto out;
    }
    CORE_INFO("registry", "listening on %s:%d (log: topic %s on %s)", host, sr_server_port(srv),
              c.topic, c.broker);
    int sig;
    sigwait(&set, &sig);
    CORE_INFO("registry", "signal %d: stopping", sig);
    sr_server_stop(srv);
    rc = 0;
out:
    core_conf_free(reg_opts, &c);
    return rc;
}
