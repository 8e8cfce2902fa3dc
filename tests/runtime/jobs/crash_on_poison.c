/* Test job: copies records to events, but dereferences NULL (SIGSEGV) on a
 * record whose value is exactly "poison". */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "eddy/job.h"

static int poison_process(eddy_ctx_t *ctx, const eddy_record_t *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (recs[i].value_len == 6 && !memcmp(recs[i].value, "poison", 6)) {
            volatile int *p = NULL;
            *p = 42; /* the bug this job exists to have */
            raise(SIGSEGV);
        }
        char id[64];
        snprintf(id, sizeof id, "%.*s", (int)(recs[i].value_len < 60 ? recs[i].value_len : 60),
                 (const char *)recs[i].value);
        eddy_event_t ev = {.event = "copy", .entity_type = "record", .entity_id = id,
                           .event_time_ms = recs[i].timestamp};
        int rc = eddy_emit_event(ctx, &recs[i], &ev);
        if (rc)
            return rc;
    }
    return 0;
}

EDDY_JOB(.name = "crash-on-poison", .process = poison_process);
