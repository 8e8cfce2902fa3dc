/*
 * click_reader — decodes Confluent-framed Avro clicks for the jobs that
 * consume the clicklog job's output (clicks-to-events, counts).
 *
 * Frame: magic 0, 4-byte big-endian schema id, Avro datum (compat-apis D.4).
 * The writer schema is the one the frame names, fetched from the schema
 * registry (GET /schemas/ids/N) on first use and cached for the reader's
 * life (ids are immutable). The datum is decoded with avro-c's resolved
 * reader against CLICK_READER_SCHEMA, the fields these jobs need, so any
 * writer schema that Avro's resolution rules accept works: older ones
 * without item/rating (defaults), newer ones with more fields (skipped).
 * avro-c's resolver does not apply reader defaults for fields the writer
 * lacks, so each writer gets the reader schema minus those optional fields
 * (same result as the defaults, both null).
 *
 * Results are three-way: CLICK_OK, CLICK_EBAD (this record can never decode:
 * bad magic, short frame, unknown id, unresolvable schema, undecodable datum;
 * the reason says which; callers dead-letter it) and CLICK_EUNAVAILABLE (the
 * registry could not be reached: a transient failure, the task should fail
 * and be retried instead of dead-lettering good records).
 *
 * Ownership: strings in click_t are borrowed from the reader and valid until
 * the next click_reader_decode. Threads: one reader per thread (per task).
 * Only public libraries (avro-c, libcurl, jansson): jobs may link it.
 */
#ifndef EDDY_CLICK_READER_H
#define EDDY_CLICK_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLICK_OK 0
#define CLICK_EBAD 1
#define CLICK_EUNAVAILABLE (-1)

#define CLICK_READER_MAX_SCHEMAS 64         /* writer schemas cached (then the oldest is recycled) */
#define CLICK_READER_MAX_SCHEMA_BYTES (1 << 20) /* a larger registry answer is refused */

extern const char CLICK_READER_SCHEMA[];

typedef struct click {
    int64_t ts;         /* event time, UTC ms */
    const char *userid; /* never NULL on CLICK_OK */
    const char *event;  /* never NULL on CLICK_OK */
    const char *item;   /* NULL when absent */
    bool has_rating;
    int32_t rating;
} click_t;

typedef struct click_reader click_reader_t;

/* registry_url e.g. "http://127.0.0.1:8081". NULL on OOM or a broken reader schema. */
click_reader_t *click_reader_new(const char *registry_url);
void click_reader_free(click_reader_t *cr);

/* Decodes one framed message. Returns CLICK_OK, CLICK_EBAD or
 * CLICK_EUNAVAILABLE with a one-line reason. */
int click_reader_decode(click_reader_t *cr, const void *msg, size_t len, click_t *out,
                        char *reason, size_t reason_size);

/* Caches schema_json as the registry's answer for id, as a first fetch would
 * (no HTTP). Exists for tests and fuzzing (fuzz/fuzz_click_reader.c). */
void click_reader__put_schema(click_reader_t *cr, int32_t id, const char *schema_json);

#endif
