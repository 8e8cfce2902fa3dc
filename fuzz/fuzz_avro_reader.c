/*
 * fuzz_avro_reader — the consumer side of `eddy consume --avro`: a writer
 * schema as a registry answers it (text anyone with access to `_schemas`
 * chose) through sr_avro_new, then a datum through sr_avro_decode_json.
 * Input: the schema on the first line, the datum after it. Any schema text
 * is accepted or refused with a message (and without leaking: LeakSanitizer
 * watches); an accepted one decodes any datum or refuses it with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/sr_avro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t sl = nl ? (size_t)(nl - data) : size;
    char *schema = malloc(sl + 1);
    memcpy(schema, data, sl);
    schema[sl] = 0;
    sr_avro_t *c;
    char err[512] = "";
    if (sr_avro_new(schema, &c, err, sizeof err) == 0) {
        size_t dn = nl ? size - sl - 1 : 0;
        uint8_t *d = malloc(dn ? dn : 1); /* exact size: ASan sees overreads */
        memcpy(d, nl ? nl + 1 : data, dn);
        char *json;
        err[0] = 0;
        if (sr_avro_decode_json(c, d, dn, &json, err, sizeof err) == 0)
            free(json);
        else if (!err[0])
            abort();
        free(d);
        sr_avro_free(c);
    } else if (!err[0]) {
        abort(); /* a refusal says why */
    }
    free(schema);
    return 0;
}
