/*
 * store_event_json — the event JSON <-> store_event_t codec of the
 * PredictionIO Event API (compat-apis.md A.3, A.4, A.5), shared by the HTTP
 * Event API, `eddy import` and `eddy export`. Owned by storage; the HTTP
 * layer calls it and never re-implements field rules.
 *
 * Parsing = decoding + validation (store_event_validate) in one step, with
 * PIO's messages, so that every entry point rejects the same inputs with the
 * same text. The three id fields accept JSON numbers and store their decimal
 * text (A.5 quirk, [OURS]). `creationTime` and `tags` in input are ignored
 * (A.3). properties are re-serialised canonically (sorted keys, compact), so
 * the stored text is the same for equal JSON values.
 *
 * Output follows PIO's field order: eventId, event, entityType, entityId,
 * [targetEntityType, targetEntityId], properties, eventTime, [prId],
 * creationTime; absent optional fields are omitted. Times print as
 * yyyy-MM-ddTHH:mm:ss.SSS plus the original offset ("Z" for 0, else ±HH:MM).
 *
 * Threads: every function is reentrant. Ownership: parsed events own their
 * memory (store_event_fini); the text passed in is borrowed for the call.
 */
#ifndef EDDY_STORE_EVENT_JSON_H
#define EDDY_STORE_EVENT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/core_buf.h"
#include "storage/store.h"

#define STORE_TIME_TEXT_MAX 40 /* buffer size for store_time_format */

/* Parses an A.4 time: yyyy-MM-ddTHH:mm:ss[.f{1,9}] then Z | ±HH:MM | ±HHMM | ±HH.
 * Fractions beyond ms are truncated. Returns 0 or CORE_ERR_INVAL. */
int store_time_parse(const char *s, size_t len, int64_t *ms, int16_t *tz_min);
/* Formats ms with the offset; out has STORE_TIME_TEXT_MAX bytes. */
void store_time_format(int64_t ms, int16_t tz_min, char out[STORE_TIME_TEXT_MAX]);

/* Parses and validates one event object from JSON text. When eventTime is
 * absent, event_time_ms = now_ms (tz 0) and event_time_given = false.
 * Errors: CORE_ERR_MALFORMED (not JSON, or not an object: parser message),
 * CORE_ERR_INVAL (A.5 rule: PIO's message, e.g. "Fail to extract eventTime
 * ..."). On error *out is left zeroed. */
int store_event_from_json(const char *text, size_t len, int64_t now_ms, store_event_t *out,
                          char *errstr, size_t errstr_size);
/* Same from an already parsed jansson value (one item of a batch array).
 * The json_t is borrowed. A non-object is CORE_ERR_INVAL. */
struct json_t;
int store_event_from_jansson(const struct json_t *obj, int64_t now_ms, store_event_t *out,
                             char *errstr, size_t errstr_size);

/* The batch endpoint's fast path: parses a JSON array of at most max event
 * objects without building a tree, when the body is in a strict subset of
 * JSON (ASCII, no escapes, integer numbers in properties, no duplicate keys)
 * and every item would be accepted by store_event_from_jansson as far as
 * its JSON goes (types, eventTime, property names). Then evs[0..*n) are
 * exactly what store_event_from_jansson makes of the items — canonical
 * properties included — but NOT yet validated (call store__event_check on
 * each: field rules give the same messages either way); their strings live
 * in arena (reset here; keep it until the events are used; do not
 * store_event_fini them). Otherwise CORE_ERR_UNSUPPORTED, *n = 0: run the
 * jansson path, which decides and words every refusal. */
int store_event_batch_parse_fast(const char *text, size_t len, int64_t now_ms,
                                 store_event_t *evs, size_t max, size_t *n, core_buf_t *arena);

/* Appends the event as one JSON object (no newline) to out. */
void store_event_to_json(const store_event_t *ev, core_buf_t *out);

#endif
