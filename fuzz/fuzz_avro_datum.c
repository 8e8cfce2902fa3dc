/* Fuzzes the consumer side of the Confluent wire format: frame header, then
 * the Avro binary decoder (avro-c) against a schema with every kind of type. */
#include <stdint.h>
#include <stdlib.h>

#include "registry/sr_avro.h"

static const char *SCHEMA =
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
    "{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"
    "{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"b\",\"type\":\"bytes\"},"
    "{\"name\":\"u\",\"type\":[\"null\",\"double\",\"string\"]},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}},"
    "{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":3}},"
    "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"float\"}},"
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"boolean\"}}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sr_avro_t *codec;
    char err[256], *json;
    if (!codec && sr_avro_new(SCHEMA, &codec, err, sizeof err))
        abort();
    int32_t id;
    const uint8_t *p;
    size_t n;
    if (sr_avro_frame(data, size, &id, &p, &n, err, sizeof err))
        return 0;
    if (sr_avro_decode_json(codec, p, n, &json, err, sizeof err) == 0)
        free(json);
    return 0;
}
