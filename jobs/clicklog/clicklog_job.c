/*
 * clicklog — the shipped job that turns raw click log lines into Avro.
 *
 * Input: a topic of plain-text lines (clicklog_parse.h). Output: one Avro
 * record (clicklog_avro.h, Confluent framing) per click — per element of the
 * line's data_array, or one for a line without an array — to the `output`
 * topic, keyed by userid so a user's clicks stay in order. A line that does
 * not parse goes, unchanged, to the `dlq` topic with headers eddy.error (the
 * reason) and eddy.source (topic/partition/offset): none are dropped silently.
 * Counters: lines, clicks, malformed.
 *
 * At init the job registers its schema with the schema registry under
 * `subject` (default "<output>-value", Confluent's TopicNameStrategy) and uses
 * the id it gets; registration is idempotent, so every task gets the same id.
 * Each click carries the header eddy.source = "<topic>/<partition>/<offset>/<n>"
 * of the raw line it came from (see clicks-to-events for why).
 *
 * Config (--config at submit): {"output": "clicks", "dlq": "clicks-dlq",
 * "registry": "http://127.0.0.1:8081", "subject": "clicks-value"}.
 * Links only public libraries (libcurl, jansson) and include/eddy/job.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "clicklog_avro.h"
#include "clicklog_parse.h"
#include "eddy/job.h"

typedef struct clicklog_job {
    char output[250], dlq[250], subject[300], registry[512];
    int32_t schema_id;
    uint8_t *buf;
    size_t cap;
    int64_t lines, clicks, malformed;
} clicklog_job_t;

static size_t collect(char *p, size_t size, size_t n, void *opaque)
{
    json_t **out = opaque;
    size_t len = size * n;
    char tmp[4096];
    if (len >= sizeof tmp)
        return 0;
    memcpy(tmp, p, len);
    tmp[len] = 0;
    *out = json_loads(tmp, 0, NULL);
    return len;
}

/* POST /subjects/<subject>/versions {"schema": ...} -> id. */
static int register_schema(eddy_ctx_t *ctx, clicklog_job_t *j)
{
    char url[1024];
    snprintf(url, sizeof url, "%s/subjects/%s/versions", j->registry, j->subject);
    json_t *body = json_pack("{s:s}", "schema", CLICKLOG_AVRO_SCHEMA);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    json_t *answer = NULL;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/vnd.schemaregistry.v1+json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(text);
    json_int_t id = json_integer_value(json_object_get(answer, "id"));
    if (cc != CURLE_OK || status != 200 || id <= 0) {
        eddy_log(ctx, EDDY_LOG_ERROR, "registering the Click schema at %s failed: %s (HTTP %ld)",
                 url, cc != CURLE_OK ? curl_easy_strerror(cc) : "unexpected answer", status);
        json_decref(answer);
        return -1;
    }
    json_decref(answer);
    j->schema_id = (int32_t)id;
    return 0;
}

static void copy_opt(json_t *cfg, const char *key, char *dst, size_t cap, const char *dflt)
{
    const char *v = json_string_value(json_object_get(cfg, key));
    snprintf(dst, cap, "%s", v ? v : dflt);
}

static int clicklog_init(eddy_ctx_t *ctx, const char *config_json)
{
    json_t *cfg = json_loads(config_json ? config_json : "{}", 0, NULL);
    if (!json_is_object(cfg)) {
        eddy_log(ctx, EDDY_LOG_ERROR, "config is not a JSON object");
        json_decref(cfg);
        return -1;
    }
    clicklog_job_t *j = calloc(1, sizeof *j);
    copy_opt(cfg, "output", j->output, sizeof j->output, "clicks");
    copy_opt(cfg, "dlq", j->dlq, sizeof j->dlq, "clicks-dlq");
    copy_opt(cfg, "registry", j->registry, sizeof j->registry, "http://127.0.0.1:8081");
    char dflt_subject[300];
    snprintf(dflt_subject, sizeof dflt_subject, "%s-value", j->output);
    copy_opt(cfg, "subject", j->subject, sizeof j->subject, dflt_subject);
    json_decref(cfg);
    ctx->user = j;
    return register_schema(ctx, j);
}

static int to_dlq(eddy_ctx_t *ctx, clicklog_job_t *j, const eddy_record_t *r, const char *why)
{
    char source[320];
    int n = snprintf(source, sizeof source, "%s/%d/%lld", r->topic, r->partition, (long long)r->offset);
    eddy_header_t h[2] = {{"eddy.error", why, strlen(why)}, {"eddy.source", source, (size_t)n}};
    j->malformed++;
    return eddy_emit_with_headers(ctx, j->dlq, r->key, r->key_len, r->value, r->value_len, h, 2);
}

static int clicklog_process(eddy_ctx_t *ctx, const eddy_record_t *records, size_t n)
{
    clicklog_job_t *j = ctx->user;
    for (size_t i = 0; i < n; i++) {
        const eddy_record_t *r = &records[i];
        j->lines++;
        clicklog_rec_t rec;
        char why[128];
        const char *line = r->value ? r->value : "";
        if (clicklog_parse(line, r->value_len, &rec, why, sizeof why)) {
            if (to_dlq(ctx, j, r, why))
                return -1;
            continue;
        }
        size_t need = CLICKLOG_AVRO_MAX(r->value_len);
        if (need > j->cap) {
            free(j->buf);
            j->buf = malloc(need);
            j->cap = j->buf ? need : 0;
            if (!j->buf)
                return -1;
        }
        /* encode every click of the line first: a bad element rejects the whole line */
        int nclicks = rec.nelems ? rec.nelems : 1;
        size_t lens[CLICKLOG_MAX_ELEMS], total = 0;
        uint8_t *outs[CLICKLOG_MAX_ELEMS];
        int bad = 0;
        for (int e = 0; e < nclicks && !bad; e++) {
            outs[e] = j->buf + total;
            lens[e] = clicklog_avro_encode(&rec, rec.nelems ? e : -1, j->schema_id, outs[e],
                                           j->cap - total, why, sizeof why);
            bad = lens[e] == 0;
            total += lens[e];
        }
        if (bad) {
            if (to_dlq(ctx, j, r, why))
                return -1;
            continue;
        }
        const clicklog_str_t *user = clicklog_top(&rec, "userid");
        for (int e = 0; e < nclicks; e++) {
            /* Provenance: the raw line's coordinates and the click's index in
             * it. Topic output is at-least-once, so a re-run may write a click
             * again at another offset; downstream jobs key their effects on
             * this header (clicks-to-events does), which keeps the pipeline's
             * effect in the store exactly once. */
            char src[320];
            int sn = snprintf(src, sizeof src, "%s/%d/%lld/%d", r->topic, r->partition,
                              (long long)r->offset, e);
            eddy_header_t h = {"eddy.source", src, (size_t)sn};
            if (eddy_emit_with_headers(ctx, j->output, user->p, user->n, outs[e], lens[e], &h, 1))
                return -1;
        }
        j->clicks += nclicks;
    }
    return 0;
}

static int clicklog_batch_end(eddy_ctx_t *ctx)
{
    clicklog_job_t *j = ctx->user;
    if (eddy_counter_add(ctx, "lines", j->lines) || eddy_counter_add(ctx, "clicks", j->clicks) ||
        eddy_counter_add(ctx, "malformed", j->malformed))
        return -1;
    j->lines = j->clicks = j->malformed = 0;
    return 0;
}

static void clicklog_destroy(eddy_ctx_t *ctx)
{
    clicklog_job_t *j = ctx->user;
    if (j)
        free(j->buf);
    free(j);
    ctx->user = NULL;
}

EDDY_JOB(.name = "clicklog", .init = clicklog_init, .process = clicklog_process,
         .batch_end = clicklog_batch_end, .destroy = clicklog_destroy);
