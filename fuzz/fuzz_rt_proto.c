/* Fuzzes the runtime's task and result decoders (bodies that arrive over
 * HTTP from the driver or a worker): any bytes decode or fail cleanly, and a
 * decoded message re-encodes to bytes that decode to the same message size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    memcpy(p, data, size);
    rt_task_t t;
    if (rt_task_decode(p, size, &t) == 0) {
        core_buf_t b;
        core_buf_init(&b);
        rt_task_encode(&t, &b);
        if (b.len != size)
            abort(); /* the encoding is canonical: no slack accepted */
        core_buf_fini(&b);
        rt_task_fini(&t);
    }
    rt_result_t r;
    if (rt_result_decode(p, size, &r) == 0) {
        core_buf_t b;
        core_buf_init(&b);
        rt_result_encode(&r, &b);
        if (b.len != size)
            abort();
        core_buf_fini(&b);
        rt_result_fini(&r);
    }
    free(p);
    return 0;
}
