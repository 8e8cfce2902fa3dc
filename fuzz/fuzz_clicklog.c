/* Fuzzes the click log line parser: any bytes must parse or be rejected with a
 * reason, and every view in a parsed record must lie inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
    } else if (!reason[0]) {
        abort(); /* every rejection carries a reason */
    }
    free(line);
    return 0;
}
