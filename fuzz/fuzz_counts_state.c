/* Fuzzes the counts job's state decoder (cw_load: a blob read back from the
 * event store): any bytes load or are rejected; a blob that loads saves to
 * bytes that load again to the same state (same open windows, same blob),
 * and adding and emitting on it keeps working. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/counts/counts_window.h"

static int count_cb(void *opaque, const cw_result_t *r)
{
    (void)r;
    (*(int *)opaque)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const cw_conf_t conf = {.tumbling_ms = 60000, .sliding_ms = 300000,
                                   .slide_every_ms = 60000, .lateness_ms = 10000};
    cw_t *w = cw_new(&conf);
    if (cw_load(w, data, size) == CW_OK) {
        uint8_t *b1, *b2;
        size_t n1, n2;
        if (cw_save(w, &b1, &n1))
            abort();
        cw_t *x = cw_new(&conf);
        if (cw_load(x, b1, n1) != CW_OK || cw_open_count(x) != cw_open_count(w))
            abort();
        if (cw_save(x, &b2, &n2) || n1 != n2 || memcmp(b1, b2, n1))
            abort();
        int dropped, n = 0;
        cw_add(x, "u", "view", 1000, &dropped);
        cw_emit_closed(x, count_cb, &n);
        free(b1);
        free(b2);
        cw_free(x);
    }
    cw_free(w);
    return 0;
}
