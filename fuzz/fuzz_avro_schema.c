/* Fuzzes schema validation, canonicalisation and the compatibility checker:
 * any bytes are either rejected with a reason or yield a canonical schema
 * that is compatible with itself in both directions. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/sr_compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    char *canon = NULL, why[256];
    if (sr_schema_canonical(text, size, &canon, why, sizeof why) == 0) {
        if (sr_compat_reader_writer(canon, canon, why, sizeof why) != 0)
            abort(); /* a schema must always be able to read its own data */
        free(canon);
    }
    free(text);
    return 0;
}
