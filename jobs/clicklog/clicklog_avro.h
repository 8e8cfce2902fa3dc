/*
 * clicklog_avro — one parsed click (a line, or one element of its data_array)
 * as an Avro record in the Confluent wire format (magic 0, schema id, datum).
 *
 * The encoder is written for this one schema (CLICKLOG_AVRO_SCHEMA) rather
 * than through avro-c's generic values: it is a handful of varints and
 * length-prefixed strings, it runs on the job's hot path (the target is over
 * a million lines per second per core), and the tests decode its output with
 * avro-c to prove it is real Avro.
 *
 * Field mapping: date, time (from the timestamp as written), ts (UTC ms),
 * userid (top-level, required), event (element, or top-level when the line
 * has no array; required), subevent and rating (optional ints), item
 * (optional string), attrs (a map of every other pair, top-level and
 * element). A subevent or rating that is not a decimal int32 is an error.
 *
 * Threads: pure. Ownership: the caller owns out.
 */
#ifndef EDDY_CLICKLOG_AVRO_H
#define EDDY_CLICKLOG_AVRO_H

#include <stddef.h>
#include <stdint.h>

#include "clicklog_parse.h"

extern const char CLICKLOG_AVRO_SCHEMA[];

/* Bytes enough for any record of a line of len bytes. */
#define CLICKLOG_AVRO_MAX(len) (2 * (size_t)(len) + 256)

/* Encodes record `elem` of rec (-1 for a line without an array section) with
 * the 5-byte header. Returns the length written, or 0 with a reason (missing
 * userid or event, non-integer subevent or rating, out too small). */
size_t clicklog_avro_encode(const clicklog_rec_t *rec, int elem, int32_t schema_id, uint8_t *out,
                            size_t cap, char *reason, size_t reason_size);

#endif
