/*
 * sr_server — the schema registry's HTTP API: the Confluent Schema Registry
 * REST subset (compat-apis.md D), served by core_http, with state in sr_state
 * and durability in sr_log (the `_schemas` topic on a Kafka-protocol broker).
 *
 * Every change follows one path under one mutex: validate -> build the log
 * record -> append it to the broker (acks=all, waited for) -> apply it to the
 * state -> answer. A failed append changes nothing and answers 500/50001.
 * Reads take the same mutex (registries are read-mostly but tiny; a schema
 * lookup costs microseconds next to the HTTP round trip).
 *
 * Errors are Confluent's: {"error_code": N, "message": "..."} with HTTP status
 * = the first three digits of N; incompatibility answers error_code 409.
 * Content type: application/vnd.schemaregistry.v1+json.
 */
#ifndef EDDY_SR_SERVER_H
#define EDDY_SR_SERVER_H

#include <stddef.h>

typedef struct sr_server sr_server_t;

typedef struct sr_server_conf {
    const char *brokers;  /* HOST:PORT of the Kafka-protocol broker */
    const char *topic;    /* "_schemas" */
    const char *host;     /* listen address */
    int port;             /* 0 = pick a free port */
    int timeout_ms;       /* broker operations */
} sr_server_conf_t;

/* Replays the log, then starts serving. */
int sr_server_start(const sr_server_conf_t *conf, sr_server_t **out, char *errstr,
                    size_t errstr_size);
int sr_server_port(const sr_server_t *srv);
void sr_server_stop(sr_server_t *srv);

#endif
