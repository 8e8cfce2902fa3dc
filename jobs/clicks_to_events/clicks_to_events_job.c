/*
 * clicks-to-events — the shipped job that turns Avro clicks into
 * PredictionIO events in the event store, exactly once.
 *
 * Input: Confluent-framed Avro clicks (the clicklog job's output), decoded by
 * click_reader (writer schema fetched by id from the registry and cached;
 * avro-c resolution against our reader schema, so compatible older and newer
 * writer schemas work).
 *
 * Mapping: "view" / "buy" -> the same event, entityType "user", entityId =
 * userid, targetEntityType "item", targetEntityId = item; "rate" adds
 * properties {"rating": N}; eventTime = the click's ts. Exactly once comes
 * from the runtime: events commit with the batch and their ids derive from
 * the source record's offset, so a re-run batch rewrites identical events.
 *
 * Nothing disappears unaccounted (counters, committed with the batch):
 *   clicks       records that decoded;
 *   events       events emitted;
 *   no_item      view/buy/rate clicks without an item (or userid): skipped;
 *   no_rating    rate clicks without a rating: skipped;
 *   other_event  other event names (e.g. "click"): skipped;
 *   bad          undecodable records (bad magic, short frame, unknown schema
 *                id, unresolvable schema, bad datum): sent unchanged to the
 *                dead-letter topic with headers eddy.error and eddy.source.
 * An unreachable registry fails the task (retried by the runtime) instead of
 * dead-lettering good records.
 *
 * Config: {"registry": "http://127.0.0.1:8081", "dlq": "clicks-events-dlq"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "click_reader.h"
#include "eddy/job.h"

typedef struct cte_job {
    char dlq[250];
    click_reader_t *cr;
    int64_t clicks, events, no_item, no_rating, other_event, bad;
} cte_job_t;

static int to_dlq(eddy_ctx_t *ctx, cte_job_t *j, const eddy_record_t *r, const char *why)
{
    char source[320];
    int n = snprintf(source, sizeof source, "%s/%d/%lld", r->topic, r->partition,
                     (long long)r->offset);
    eddy_header_t h[2] = {{"eddy.error", why, strlen(why)}, {"eddy.source", source, (size_t)n}};
    j->bad++;
    return eddy_emit_with_headers(ctx, j->dlq, r->key, r->key_len, r->value, r->value_len, h, 2);
}

static int one_record(eddy_ctx_t *ctx, cte_job_t *j, const eddy_record_t *r)
{
    char why[256];
    click_t c;
    int rc = click_reader_decode(j->cr, r->value, r->value_len, &c, why, sizeof why);
    if (rc == CLICK_EUNAVAILABLE) {
        eddy_log(ctx, EDDY_LOG_ERROR, "%s", why);
        return -1;
    }
    if (rc == CLICK_EBAD)
        return to_dlq(ctx, j, r, why);
    j->clicks++;
    int is_rate = !strcmp(c.event, "rate");
    if (strcmp(c.event, "view") && strcmp(c.event, "buy") && !is_rate) {
        j->other_event++;
        return 0;
    }
    if (!c.item || !*c.item || !*c.userid) {
        j->no_item++;
        return 0;
    }
    if (is_rate && !c.has_rating) {
        j->no_rating++;
        return 0;
    }
    char props[48];
    if (is_rate)
        snprintf(props, sizeof props, "{\"rating\":%d}", (int)c.rating);
    eddy_event_t ev = {.event = c.event,
                       .entity_type = "user",
                       .entity_id = c.userid,
                       .target_entity_type = "item",
                       .target_entity_id = c.item,
                       .properties_json = is_rate ? props : NULL,
                       .event_time_ms = c.ts};
    /* clicklog's output is at-least-once: a re-run of one of its batches can
     * write a click twice at two offsets. Its eddy.source header names the
     * raw line and click, so the event id derives from that, and the second
     * copy lands on the same id in the idempotent store (exactly-once effect
     * across both jobs). Records without it keep position-derived ids. */
    const eddy_header_t *src = NULL;
    for (size_t h = 0; h < r->header_count; h++)
        if (!strcmp(r->headers[h].key, "eddy.source") && r->headers[h].value_len)
            src = &r->headers[h];
    if (src ? eddy_emit_event_keyed(ctx, src->value, src->value_len, &ev)
            : eddy_emit_event(ctx, r, &ev))
        return -1;
    j->events++;
    return 0;
}

static int cte_process(eddy_ctx_t *ctx, const eddy_record_t *records, size_t n)
{
    cte_job_t *j = ctx->user;
    for (size_t i = 0; i < n; i++)
        if (one_record(ctx, j, &records[i]))
            return -1;
    return 0;
}

static int cte_batch_end(eddy_ctx_t *ctx)
{
    cte_job_t *j = ctx->user;
    if (eddy_counter_add(ctx, "clicks", j->clicks) || eddy_counter_add(ctx, "events", j->events) ||
        eddy_counter_add(ctx, "no_item", j->no_item) ||
        eddy_counter_add(ctx, "no_rating", j->no_rating) ||
        eddy_counter_add(ctx, "other_event", j->other_event) || eddy_counter_add(ctx, "bad", j->bad))
        return -1;
    j->clicks = j->events = j->no_item = j->no_rating = j->other_event = j->bad = 0;
    return 0;
}

static void cte_destroy(eddy_ctx_t *ctx)
{
    cte_job_t *j = ctx->user;
    if (j)
        click_reader_free(j->cr);
    free(j);
    ctx->user = NULL;
}

static int cte_init(eddy_ctx_t *ctx, const char *config_json)
{
    json_t *cfg = json_loads(config_json ? config_json : "{}", 0, NULL);
    if (!json_is_object(cfg)) {
        eddy_log(ctx, EDDY_LOG_ERROR, "config is not a JSON object");
        json_decref(cfg);
        return -1;
    }
    cte_job_t *j = calloc(1, sizeof *j);
    const char *reg = json_string_value(json_object_get(cfg, "registry"));
    const char *dlq = json_string_value(json_object_get(cfg, "dlq"));
    if (j) {
        snprintf(j->dlq, sizeof j->dlq, "%s", dlq ? dlq : "clicks-events-dlq");
        j->cr = click_reader_new(reg ? reg : "http://127.0.0.1:8081");
    }
    json_decref(cfg);
    ctx->user = j;
    return j && j->cr ? 0 : -1;
}

EDDY_JOB(.name = "clicks-to-events", .init = cte_init, .process = cte_process,
         .batch_end = cte_batch_end, .destroy = cte_destroy);
