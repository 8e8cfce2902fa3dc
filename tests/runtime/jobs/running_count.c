/* Test job (stateful): a running count per record key in keyed state. The
 * count is stored as decimal text; batch_end bumps a counter so tests can see
 * batches ran. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eddy/job.h"

static int count_process(eddy_ctx_t *ctx, const eddy_record_t *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!recs[i].key || !recs[i].key_len)
            continue;
        const void *v;
        size_t vl;
        long long cur = 0;
        int rc = eddy_state_get(ctx, recs[i].key, recs[i].key_len, &v, &vl);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            char buf[32];
            snprintf(buf, sizeof buf, "%.*s", (int)(vl < 31 ? vl : 31), (const char *)v);
            cur = atoll(buf);
        }
        char out[32];
        int ol = snprintf(out, sizeof out, "%lld", cur + 1);
        if ((rc = eddy_state_put(ctx, recs[i].key, recs[i].key_len, out, (size_t)ol)))
            return rc;
    }
    return eddy_counter_add(ctx, "records", (int64_t)n);
}

static int count_batch_end(eddy_ctx_t *ctx)
{
    return eddy_counter_add(ctx, "tasks", 1);
}

EDDY_JOB(.name = "running-count", .flags = EDDY_JOB_F_STATEFUL, .process = count_process,
         .batch_end = count_batch_end);
