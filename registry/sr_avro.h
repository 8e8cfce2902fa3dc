/*
 * sr_avro — Avro datums in Confluent's wire format, to and from JSON.
 *
 * Frame: byte 0 = magic 0x00, bytes 1..4 = schema id (int32 big-endian),
 * then the Avro binary encoding of one datum (no container header). Other
 * tools (Confluent serializers, kcat -s avro) read what this writes.
 *
 * JSON input (eddy produce --avro): one JSON value per datum. Unions accept
 * both Avro's JSON encoding ({"string": "x"}) and a plain value, which takes
 * the first branch whose type fits; a record field missing from the input
 * takes its default from the schema (defaults are read from the schema JSON,
 * since avro-c does not keep them), else null when the field is a union with
 * null, else it is an error naming the field. bytes and fixed take a string
 * whose code points 0..255 are the bytes (Avro's JSON encoding).
 * JSON output (eddy consume --avro): avro-c's JSON encoding of the datum.
 *
 * Encoding and decoding use avro-c generic values; avro-c bounds-checks the
 * binary reader, and the frame header is checked here first.
 * Ownership: a codec owns its parsed schema; outputs are heap buffers the
 * caller frees. Threads: a codec is used by one thread at a time.
 */
#ifndef EDDY_SR_AVRO_H
#define EDDY_SR_AVRO_H

#include <stddef.h>
#include <stdint.h>

#include "core/core_buf.h"

#define SR_AVRO_MAGIC 0
#define SR_AVRO_HEADER 5

typedef struct sr_avro sr_avro_t;

int sr_avro_new(const char *schema_json, sr_avro_t **out, char *errstr, size_t errstr_size);
void sr_avro_free(sr_avro_t *codec);

/* JSON text -> framed Avro (appended to out). CORE_ERR_MALFORMED with a
 * message naming the field for input that does not fit the schema. */
int sr_avro_encode_json(sr_avro_t *codec, int32_t schema_id, const char *json, size_t len,
                        core_buf_t *out, char *errstr, size_t errstr_size);

/* Reads the frame header: CORE_ERR_MALFORMED for a short message or a magic
 * byte other than 0 ("Unknown magic byte"). */
int sr_avro_frame(const uint8_t *msg, size_t len, int32_t *schema_id, const uint8_t **payload,
                  size_t *payload_len, char *errstr, size_t errstr_size);

/* Avro binary (no header) -> JSON text (heap, free()). */
int sr_avro_decode_json(sr_avro_t *codec, const uint8_t *payload, size_t len, char **json,
                        char *errstr, size_t errstr_size);

#endif
