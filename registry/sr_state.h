/*
 * sr_state — the schema registry's state: schemas by global id, subjects with
 * their versions, and compatibility configs (global and per subject).
 *
 * The state is a pure function of the ordered log of records applied to it
 * (sr_state_apply), exactly as Confluent's registry rebuilds itself from the
 * `_schemas` topic. Record keys and values are JSON in Confluent's shapes:
 *   key   {"keytype":"SCHEMA","subject":S,"version":V,"magic":1}
 *   value {"subject":S,"version":V,"id":ID,"schema":TEXT,"deleted":bool}   (null = hard delete)
 *   key   {"keytype":"CONFIG","subject":S|null,"magic":0}
 *   value {"compatibilityLevel":LEVEL}                                     (null = remove)
 * The server builds the record a request needs (sr_key_* / sr_value_*), makes
 * it durable in the log (sr_log) and only then applies it, so the state never
 * holds something the log does not.
 *
 * Invariants: ids are global, never reused (next id = 1 + the highest ever
 * seen, hard deletes included); the same canonical schema text has one id
 * everywhere; versions per subject start at 1 and only grow.
 *
 * Threads: none inside; the registry server serialises access with a mutex.
 * Ownership: strings returned are borrowed from the state, valid until the
 * next apply; plans are heap strings the caller frees.
 */
#ifndef EDDY_SR_STATE_H
#define EDDY_SR_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/sr_compat.h"

typedef struct sr_state sr_state_t;

typedef struct sr_version {
    int version;
    int id;
    bool deleted;
} sr_version_t;

sr_state_t *sr_state_new(void);
void sr_state_free(sr_state_t *st);

/* Applies one log record (value NULL = tombstone). Malformed records are
 * skipped with CORE_ERR_MALFORMED: the log is ours, but `_schemas` is a topic
 * any Kafka client can write, so every field is checked (versions and ids
 * must be in 1..INT32_MAX, as Confluent's Java ints are). Fuzzed by
 * fuzz/fuzz_sr_state.c. */
int sr_state_apply(sr_state_t *st, const char *key, size_t klen, const char *value, size_t vlen);

/* Lookups (borrowed results). */
const char *sr_state_schema_by_id(const sr_state_t *st, int id);
int sr_state_subjects(const sr_state_t *st, bool include_deleted, const char ***names);
/* Versions of a subject (deleted included, flagged); -1 if the subject is unknown. */
int sr_state_versions(const sr_state_t *st, const char *subject, const sr_version_t **versions);
/* Finds a live version of subject whose schema equals canonical; 0 if none. */
int sr_state_find_version(const sr_state_t *st, const char *subject, const char *canonical,
                          sr_version_t *out);
/* Id of a canonical schema known under any subject; 0 if none. */
int sr_state_find_id(const sr_state_t *st, const char *canonical);
/* One past the highest id ever seen; 0 once INT32_MAX was used (no id left). */
int sr_state_next_id(const sr_state_t *st);
/* Effective level of a subject (subject config, else global, else BACKWARD);
 * *own tells whether the subject has its own config. */
sr_level_t sr_state_level(const sr_state_t *st, const char *subject, bool *own);
/* (subject, version) pairs that use an id. Returns the count; fills up to max. */
int sr_state_id_uses(const sr_state_t *st, int id, const char **subjects, int *versions, int max);

/* Record encoders (heap JSON strings; free with free()). */
char *sr_key_schema(const char *subject, int version);
char *sr_value_schema(const char *subject, int version, int id, const char *schema, bool deleted);
char *sr_key_config(const char *subject /* NULL = global */);
char *sr_value_config(sr_level_t level);

#endif
