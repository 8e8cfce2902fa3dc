/* Test job: every record becomes one event (entity id = the record value),
 * plus a counter. Config {"events_per_record": N} emits N events per record
 * (ids differ by emit index); {"sleep_ms": M} sleeps in each process() call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eddy/job.h"

typedef struct {
    int per_record;
    int sleep_ms; /* per process() call: lets tests catch a batch in flight */
} copy_t;

static int copy_init(eddy_ctx_t *ctx, const char *config)
{
    copy_t *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->per_record = 1;
    const char *p = strstr(config, "\"events_per_record\"");
    if (p && (p = strchr(p, ':')))
        c->per_record = atoi(p + 1);
    if ((p = strstr(config, "\"sleep_ms\"")) && (p = strchr(p, ':')))
        c->sleep_ms = atoi(p + 1);
    ctx->user = c;
    return 0;
}

static int copy_process(eddy_ctx_t *ctx, const eddy_record_t *recs, size_t n)
{
    copy_t *c = ctx->user;
    if (c->sleep_ms)
        usleep((useconds_t)c->sleep_ms * 1000);
    for (size_t i = 0; i < n; i++) {
        char id[256], props[400];
        size_t len = recs[i].value_len < 200 ? recs[i].value_len : 200;
        snprintf(id, sizeof id, "%.*s", (int)len, recs[i].value ? (const char *)recs[i].value : "");
        if (!*id)
            snprintf(id, sizeof id, "%s-%d-%lld", recs[i].topic, (int)recs[i].partition,
                     (long long)recs[i].offset);
        snprintf(props, sizeof props, "{\"partition\":%d,\"offset\":%lld}", (int)recs[i].partition,
                 (long long)recs[i].offset);
        for (int k = 0; k < c->per_record; k++) {
            eddy_event_t ev = {.event = "copy",
                               .entity_type = "record",
                               .entity_id = id,
                               .properties_json = props,
                               .event_time_ms = recs[i].timestamp};
            int rc = eddy_emit_event(ctx, &recs[i], &ev);
            if (rc)
                return rc;
        }
    }
    return eddy_counter_add(ctx, "records", (int64_t)n);
}

static void copy_destroy(eddy_ctx_t *ctx)
{
    free(ctx->user);
}

EDDY_JOB(.name = "copy-to-events", .init = copy_init, .process = copy_process,
         .destroy = copy_destroy);
