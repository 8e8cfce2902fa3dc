/* Fuzzes the click log line parser: any bytes must parse or be rejected with a
 * reason, and every view in a parsed record must lie inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/clicklog/clicklog_avro.h"
#include "jobs/clicklog/clicklog_parse.h"

static void check_inside(const uint8_t *data, size_t size, clicklog_str_t s)
{
    if (s.n && ((const uint8_t *)s.p < data || (const uint8_t *)s.p + s.n > data + size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* copy so the parser reads exactly size bytes from a heap block ASan watches */
    char *line = malloc(size ? size : 1);
    memcpy(line, data, size);
    clicklog_rec_t rec;
    char reason[128];
    if (clicklog_parse(line, size, &rec, reason, sizeof reason) == 0) {
        check_inside((const uint8_t *)line, size, rec.timestamp);
        for (int i = 0; i < rec.npairs; i++) {
            check_inside((const uint8_t *)line, size, rec.pairs[i].key);
            check_inside((const uint8_t *)line, size, rec.pairs[i].value);
            if (!rec.pairs[i].key.n)
                abort(); /* empty keys are never accepted */
        }
        /* every click of an accepted line encodes within the advertised bound, or says why not */
        size_t cap = CLICKLOG_AVRO_MAX(size);
        uint8_t *out = malloc(cap);
        for (int e = rec.nelems ? 0 : -1; e < rec.nelems; e++) {
            reason[0] = 0;
            size_t n = clicklog_avro_encode(&rec, e, 7, out, cap, reason, sizeof reason);
            if ((n == 0 && !reason[0]) || n > cap)
                abort();
            if (n == 0 && strstr(reason, "too small"))
                abort(); /* the bound must always suffice */
        }
        free(out);
    } else if (!reason[0]) {
        abort(); /* every rejection carries a reason */
    }
    free(line);
    return 0;
}
