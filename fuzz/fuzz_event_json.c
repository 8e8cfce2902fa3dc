/* Fuzzes the Event API's event JSON codec (storage/store_event_json.h): any
 * bytes must parse+validate or be rejected with a message; an accepted event
 * must print as JSON that parses back to the same event and prints the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_buf.h"
#include "core/core_err.h"
#include "storage/store_event_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1); /* exact-size heap copy: ASan sees overreads */
    memcpy(text, data, size);
    store_event_t ev;
    char err[256] = "";
    int rc = store_event_from_json(text, size, 1700000000000, &ev, err, sizeof err);
    if (rc != 0) {
        if (!err[0] || (rc != CORE_ERR_MALFORMED && rc != CORE_ERR_INVAL) || ev.mem)
            abort();
        free(text);
        return 0;
    }
    if (store_event_validate(&ev, err, sizeof err) != 0)
        abort();
    if (!ev.event_id[0])
        strcpy(ev.event_id, "x"); /* output always carries an id */
    core_buf_t a, b;
    core_buf_init(&a);
    core_buf_init(&b);
    store_event_to_json(&ev, &a);
    store_event_t ev2;
    if (store_event_from_json((const char *)a.data, a.len, 0, &ev2, err, sizeof err) != 0)
        abort(); /* our own output must be accepted */
    ev2.creation_time_ms = ev.creation_time_ms;
    store_event_to_json(&ev2, &b);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
        abort(); /* and print identically */
    if (ev2.event_time_ms != ev.event_time_ms)
        abort();
    store_event_fini(&ev2);
    core_buf_fini(&a);
    core_buf_fini(&b);
    store_event_fini(&ev);
    free(text);
    return 0;
}
