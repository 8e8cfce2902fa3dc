/*
 * client_avro — Avro values for `eddy produce --avro` and `eddy consume
 * --avro`: the value transforms (client_value_fn) that turn a JSON line into
 * a Confluent-framed Avro record and back, with the schema registry.
 *
 * Produce: the schema is either --avro-schema FILE, registered under the
 * subject (idempotent: the registry returns the existing id), or the latest
 * version of the subject. Every record is framed with that id (magic 0,
 * 4-byte big-endian id, Avro datum; compat-apis D.4), so Confluent's
 * deserializers, kcat -s avro and avro-c read it.
 * Consume: the frame's id is looked up (GET /schemas/ids/N) on first sight
 * and cached for the run (ids are immutable); the datum is printed as
 * avro-c's JSON encoding, one line. A record that is not a valid frame or
 * datum is reported (errstr), never printed as if it were.
 *
 * Built on registry/sr_avro.h (JSON <-> Avro) and core/core_httpc.h.
 * Ownership: a client_avro_t owns its codecs; transform outputs are borrowed
 * until the next call on the same handle. Threads: one thread per handle.
 */
#ifndef EDDY_CLIENT_AVRO_H
#define EDDY_CLIENT_AVRO_H

#include <stddef.h>
#include <stdint.h>

#define CLIENT_AVRO_MAX_SCHEMAS 1024 /* distinct schema ids cached by a consumer */

typedef struct client_avro client_avro_t;

/* A producer-side handle. schema_file NULL: use the latest version of
 * subject. Returns 0 or an error with errstr (registry unreachable, subject
 * unknown, schema refused: the registry's message). */
int client_avro_producer_new(const char *registry, const char *subject, const char *schema_file,
                             client_avro_t **out, char *errstr, size_t errstr_size);
/* A consumer-side handle (fetches schemas lazily). */
int client_avro_consumer_new(const char *registry, client_avro_t **out, char *errstr,
                             size_t errstr_size);
void client_avro_free(client_avro_t *ca);
int32_t client_avro_schema_id(const client_avro_t *ca); /* producer: the id used */

/* client_value_fn transforms (opaque = the handle). */
int client_avro_encode(void *opaque, const void *in, size_t in_len, const void **out,
                       size_t *out_len, char *errstr, size_t errstr_size);
int client_avro_decode(void *opaque, const void *in, size_t in_len, const void **out,
                       size_t *out_len, char *errstr, size_t errstr_size);

#endif
