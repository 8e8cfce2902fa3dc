/*
 * sr_compat — Avro schema validation, canonical text, and compatibility
 * checking by the Avro specification's schema-resolution rules, for the
 * schema registry (Confluent Schema Registry semantics).
 *
 * Why hand-written: avro-c parses and validates schemas (we use it for that),
 * but its resolver (avro_resolved_writer_new) is a data-path tool, not a
 * compatibility checker: measured against the spec it rejects a reader field
 * that has a default, accepts an enum reader that lacks a writer symbol,
 * accepts a writer union with a branch the reader cannot take, and rejects
 * string<->bytes. So the rules are applied here, over the schema JSON:
 *
 *   primitives     same type, or a promotion: int->long|float|double,
 *                  long->float|double, float->double, string<->bytes
 *   record         same unqualified name (or a reader alias); each reader field
 *                  found in the writer (by name or reader alias) must resolve;
 *                  a reader field missing from the writer needs a default;
 *                  writer fields unknown to the reader are skipped
 *   enum           same unqualified name; every writer symbol must be in the
 *                  reader, unless the reader has an enum "default"
 *   fixed          same unqualified name and size
 *   array / map    items / values resolve
 *   writer union   every branch must resolve against the reader
 *   reader union   (writer not a union) some branch must resolve
 * Recursive named types are handled coinductively: a (writer, reader) pair of
 * names already being compared is assumed compatible.
 *
 * Compatibility levels (Confluent): BACKWARD (new schema reads data of the
 * previous), FORWARD (previous reads new), FULL (both); *_TRANSITIVE against
 * every earlier version; NONE.
 *
 * Ownership: inputs are borrowed; outputs that are heap strings are freed by
 * the caller with free(). Thread-safety: pure, any thread.
 */
#ifndef EDDY_SR_COMPAT_H
#define EDDY_SR_COMPAT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum sr_level {
    SR_NONE,
    SR_BACKWARD,
    SR_BACKWARD_TRANSITIVE,
    SR_FORWARD,
    SR_FORWARD_TRANSITIVE,
    SR_FULL,
    SR_FULL_TRANSITIVE,
} sr_level_t;

/* "BACKWARD" etc. -> level; returns false for an unknown name. */
bool sr_level_parse(const char *name, sr_level_t *level);
const char *sr_level_name(sr_level_t level);

/* Validates an Avro schema (JSON text) with avro-c and returns its canonical
 * text in *canonical (compact JSON, object keys sorted, field and symbol order
 * kept): two schemas that differ only in whitespace or key order get the same
 * canonical text, hence the same registry id. CORE_ERR_MALFORMED with a reason
 * for invalid JSON or an invalid schema. */
int sr_schema_canonical(const char *text, size_t len, char **canonical, char *reason,
                        size_t reason_size);

/* Can data written with `writer` be read with `reader`? 0 if so, else
 * CORE_ERR_CONFLICT with a reason naming the path ("field 'b': ..."). Both
 * must be valid schemas (CORE_ERR_MALFORMED otherwise). */
int sr_compat_reader_writer(const char *reader, const char *writer, char *reason,
                            size_t reason_size);

/* Checks `candidate` against the existing versions (oldest first) under a
 * level: BACKWARD/FORWARD/FULL compare with the latest only, the transitive
 * forms with all of them. 0 if compatible, CORE_ERR_CONFLICT with a reason. */
int sr_compat_check(sr_level_t level, const char *candidate, const char *const *existing,
                    int nexisting, char *reason, size_t reason_size);

#endif
