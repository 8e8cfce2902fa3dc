/* Fuzzes the ALS model decoder (ml/als_model.h): any bytes must decode or be
 * rejected with a message. Most random inputs die at the CRC, so each input
 * is tried twice: as given, and with its last four bytes replaced by the
 * correct CRC-32C, which lets the fuzzer reach the structural checks. A blob
 * that decodes must re-encode to a blob that decodes to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_buf.h"
#include "core/core_crc.h"
#include "ml/als_model.h"

static void try_one(const uint8_t *data, size_t size)
{
    als_model_t *m = NULL, *m2 = NULL;
    char err[256] = "";
    if (als_model_decode(data, size, &m, err, sizeof err) == 0) {
        /* What we accept, we can write back, and that is stable: encode →
         * decode → encode gives the same bytes. (Not byte equality with the
         * input: e.g. an over-long varint decodes fine but is re-encoded
         * short.) */
        core_buf_t b, b2;
        core_buf_init(&b);
        core_buf_init(&b2);
        als_model_encode(m, &b);
        if (als_model_decode(b.data, b.len, &m2, err, sizeof err) != 0)
            abort();
        als_model_encode(m2, &b2);
        if (b2.len != b.len || memcmp(b.data, b2.data, b.len) != 0)
            abort();
        core_buf_fini(&b);
        core_buf_fini(&b2);
        als_model_release(m);
        als_model_release(m2);
    } else if (!err[0]) {
        abort(); /* every rejection says why */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *cp = malloc(size ? size : 1);
    memcpy(cp, data, size);
    try_one(cp, size);
    if (size >= 8) {
        core_put_be32(cp + size - 4, core_crc32c(0, cp, size - 4));
        try_one(cp, size);
    }
    free(cp);
    return 0;
}
