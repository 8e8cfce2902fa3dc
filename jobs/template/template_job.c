/*
 * A template Eddy job: counts words in record values and emits one event per
 * record. Copy this directory to start a job; build it out of tree with
 *   cc -shared -fPIC -O2 $(pkg-config --cflags eddy-job) template_job.c -o myjob.so
 * and run it with
 *   eddy submit myjob.so --name words --input lines --data DIR
 */
#include <stdio.h>
#include <string.h>

#include <eddy/job.h>

static int words_process(eddy_ctx_t *ctx, const eddy_record_t *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* recs[i].value is borrowed: valid only during this call. */
        const char *v = recs[i].value;
        long words = 0;
        int in_word = 0;
        for (size_t k = 0; k < recs[i].value_len; k++) {
            int space = v[k] == ' ' || v[k] == '\t' || v[k] == '\n';
            words += !space && !in_word;
            in_word = !space;
        }
        char id[64], props[64];
        snprintf(id, sizeof id, "%s-%d-%lld", recs[i].topic, (int)recs[i].partition,
                 (long long)recs[i].offset);
        snprintf(props, sizeof props, "{\"words\":%ld}", words);
        eddy_event_t ev = {.event = "line",
                           .entity_type = "record",
                           .entity_id = id,
                           .properties_json = props,
                           .event_time_ms = recs[i].timestamp};
        int rc = eddy_emit_event(ctx, &recs[i], &ev); /* exactly once, id derived */
        if (rc)
            return rc; /* fails the task: retried, then the job pauses */
        eddy_counter_add(ctx, "words", words);
    }
    return 0;
}

EDDY_JOB(.name = "template", .process = words_process);
