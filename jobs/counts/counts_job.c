/*
 * counts — the shipped job that counts clicks per user and event type over
 * tumbling and sliding event-time windows, exactly, across restarts.
 *
 * Input: Avro clicks (the clicklog job's output, keyed by userid so a user's
 * clicks are in one partition and in order), decoded by click_reader.
 * Windowing and the watermark are counts_window.h (pure, unit-tested). The
 * partition's whole window state (watermark + open windows) is one keyed
 * state value ("cw", EDDY_JOB_F_STATEFUL: a partition is never split across
 * tasks). Each task loads it, adds its records in offset order, reports the
 * windows the watermark has passed and saves the rest; the runtime commits
 * the state, the window events and the input offsets in one atomic write, and
 * a re-run batch starts from the state as of its start, so every window is
 * reported exactly once with its exact count, kill -9 or not.
 *
 * Output: per closed window one event in the store:
 *   {"event": "window_count", "entityType": "user", "entityId": U,
 *    "properties": {"event": E, "kind": "tumbling"|"sliding",
 *                   "window_start": ms, "window_end": ms, "count": N},
 *    "eventTime": window_end - 1}
 * emitted from batch_end (event ids derive from the task range and emit
 * index, deterministic because the order is).
 * Counters: clicks, late (records whose windows had all closed: not
 * counted), windows (emitted), bad (undecodable, to the DLQ with eddy.error).
 *
 * Config: {"registry": URL, "dlq": "clicks-counts-dlq", "tumbling_ms": 60000,
 * "sliding_ms": 300000, "slide_ms": 60000, "lateness_ms": 10000}; a size of 0
 * turns that kind off.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "click_reader.h"
#include "counts_window.h"
#include "eddy/job.h"

#define COUNTS_STATE_KEY "cw"

typedef struct counts_job {
    char dlq[250];
    click_reader_t *cr;
    cw_conf_t conf;
    cw_t *w;
    int loaded;
    int64_t clicks, late, windows, bad;
} counts_job_t;

static int64_t conf_ms(json_t *cfg, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(cfg, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static int counts_init(eddy_ctx_t *ctx, const char *config_json)
{
    json_t *cfg = json_loads(config_json ? config_json : "{}", 0, NULL);
    if (!json_is_object(cfg)) {
        eddy_log(ctx, EDDY_LOG_ERROR, "config is not a JSON object");
        json_decref(cfg);
        return -1;
    }
    counts_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(cfg);
        return -1;
    }
    ctx->user = j;
    const char *reg = json_string_value(json_object_get(cfg, "registry"));
    const char *dlq = json_string_value(json_object_get(cfg, "dlq"));
    snprintf(j->dlq, sizeof j->dlq, "%s", dlq ? dlq : "clicks-counts-dlq");
    j->conf.tumbling_ms = conf_ms(cfg, "tumbling_ms", 60000);
    j->conf.sliding_ms = conf_ms(cfg, "sliding_ms", 300000);
    j->conf.slide_every_ms = conf_ms(cfg, "slide_ms", 60000);
    j->conf.lateness_ms = conf_ms(cfg, "lateness_ms", 10000);
    j->cr = click_reader_new(reg ? reg : "http://127.0.0.1:8081");
    json_decref(cfg);
    if (cw_conf_check(&j->conf)) {
        eddy_log(ctx, EDDY_LOG_ERROR,
                 "bad window config: sizes in 0..2^60 ms, one kind at least, slide_ms > 0 "
                 "dividing sliding_ms (at most 1000 windows per record), lateness_ms in "
                 "0..2^60");
        return -1;
    }
    j->w = cw_new(&j->conf);
    return j->cr && j->w ? 0 : -1;
}

/* The partition's state as of this batch's start; loaded once per task. */
static int load_state(eddy_ctx_t *ctx, counts_job_t *j)
{
    if (j->loaded)
        return 0;
    const void *v;
    size_t len;
    int rc = eddy_state_get(ctx, COUNTS_STATE_KEY, strlen(COUNTS_STATE_KEY), &v, &len);
    if (rc < 0)
        return -1;
    if (rc == 1 && cw_load(j->w, v, len)) {
        eddy_log(ctx, EDDY_LOG_ERROR, "window state of %s/%d is corrupt (%zu bytes)", ctx->topic,
                 ctx->partition, len);
        return -1;
    }
    j->loaded = 1;
    return 0;
}

static int to_dlq(eddy_ctx_t *ctx, counts_job_t *j, const eddy_record_t *r, const char *why)
{
    char source[320];
    int n = snprintf(source, sizeof source, "%s/%d/%lld", r->topic, r->partition,
                     (long long)r->offset);
    eddy_header_t h[2] = {{"eddy.error", why, strlen(why)}, {"eddy.source", source, (size_t)n}};
    j->bad++;
    return eddy_emit_with_headers(ctx, j->dlq, r->key, r->key_len, r->value, r->value_len, h, 2);
}

static int counts_process(eddy_ctx_t *ctx, const eddy_record_t *records, size_t n)
{
    counts_job_t *j = ctx->user;
    if (load_state(ctx, j))
        return -1;
    for (size_t i = 0; i < n; i++) {
        const eddy_record_t *r = &records[i];
        char why[256];
        click_t c;
        int rc = click_reader_decode(j->cr, r->value, r->value_len, &c, why, sizeof why);
        if (rc == CLICK_EUNAVAILABLE) {
            eddy_log(ctx, EDDY_LOG_ERROR, "%s", why);
            return -1;
        }
        if (rc == CLICK_EBAD) {
            if (to_dlq(ctx, j, r, why))
                return -1;
            continue;
        }
        int dropped;
        rc = cw_add(j->w, c.userid, c.event, c.ts, &dropped);
        if (rc == CW_EINVAL) {
            if (to_dlq(ctx, j, r, "user or event name longer than 1024 bytes, or event time "
                                  "beyond 2^60 ms from 1970"))
                return -1;
            continue;
        }
        if (rc < 0) {
            eddy_log(ctx, EDDY_LOG_ERROR, "window state of %s/%d: %s (%zu open windows)",
                     ctx->topic, ctx->partition,
                     rc == CW_ELIMIT ? "too many open windows" : "out of memory",
                     cw_open_count(j->w));
            return -1;
        }
        j->clicks++;
        j->late += rc == CW_ELATE;
    }
    return 0;
}

static int emit_window(void *opaque, const cw_result_t *r)
{
    eddy_ctx_t *ctx = opaque;
    counts_job_t *j = ctx->user;
    json_t *props = json_pack("{s:s, s:s, s:I, s:I, s:I}", "event", r->event, "kind",
                              r->kind == CW_TUMBLING ? "tumbling" : "sliding", "window_start",
                              (json_int_t)r->start, "window_end", (json_int_t)r->end, "count",
                              (json_int_t)r->count);
    char *text = props ? json_dumps(props, JSON_COMPACT) : NULL;
    json_decref(props);
    if (!text)
        return -1;
    eddy_event_t ev = {.event = "window_count",
                       .entity_type = "user",
                       .entity_id = r->user,
                       .properties_json = text,
                       .event_time_ms = r->end - 1};
    int rc = eddy_emit_event(ctx, NULL, &ev);
    free(text);
    j->windows += rc == 0;
    return rc ? -1 : 0;
}

static int counts_batch_end(eddy_ctx_t *ctx)
{
    counts_job_t *j = ctx->user;
    if (load_state(ctx, j))
        return -1;
    if (cw_emit_closed(j->w, emit_window, ctx))
        return -1;
    uint8_t *blob;
    size_t len;
    if (cw_save(j->w, &blob, &len))
        return -1;
    int rc = eddy_state_put(ctx, COUNTS_STATE_KEY, strlen(COUNTS_STATE_KEY), blob, len);
    free(blob);
    if (rc || eddy_counter_add(ctx, "clicks", j->clicks) ||
        eddy_counter_add(ctx, "late", j->late) || eddy_counter_add(ctx, "windows", j->windows) ||
        eddy_counter_add(ctx, "bad", j->bad))
        return -1;
    j->clicks = j->late = j->windows = j->bad = 0;
    return 0;
}

static void counts_destroy(eddy_ctx_t *ctx)
{
    counts_job_t *j = ctx->user;
    if (j) {
        click_reader_free(j->cr);
        cw_free(j->w);
    }
    free(j);
    ctx->user = NULL;
}

EDDY_JOB(.name = "counts", .flags = EDDY_JOB_F_STATEFUL, .init = counts_init,
         .process = counts_process, .batch_end = counts_batch_end, .destroy = counts_destroy);
