/* Bench/test job: copies every record to the topic named by config
 * {"output":"T"} (at-least-once topic output). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eddy/job.h"

static int pt_init(eddy_ctx_t *ctx, const char *config)
{
    const char *p = strstr(config, "\"output\"");
    char *out = calloc(1, 256);
    if (!out)
        return -1;
    if (p && (p = strchr(p + 8, '"')))
        sscanf(p + 1, "%255[^\"]", out);
    if (!*out) {
        free(out);
        eddy_log(ctx, EDDY_LOG_ERROR, "config needs {\"output\":\"TOPIC\"}");
        return -1;
    }
    ctx->user = out;
    return 0;
}

static int pt_process(eddy_ctx_t *ctx, const eddy_record_t *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = eddy_emit(ctx, ctx->user, recs[i].key, recs[i].key_len, recs[i].value,
                           recs[i].value_len);
        if (rc)
            return rc;
    }
    return 0;
}

static void pt_destroy(eddy_ctx_t *ctx)
{
    free(ctx->user);
}

EDDY_JOB(.name = "passthrough", .init = pt_init, .process = pt_process, .destroy = pt_destroy);
