/* als_sched — see als_sched.h. */
#include "ml/als_sched.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core_alloc.h"
#include "core/core_err.h"

/* ---- cron ------------------------------------------------------------------------ */

/* Parses one field into a bitmask of [lo, hi]. */
static int cron_field(const char *f, int lo, int hi, uint64_t *mask, bool *any)
{
    *mask = 0;
    *any = strcmp(f, "*") == 0;
    char buf[64];
    size_t fl = strlen(f);
    /* strtok_r would silently skip empty list items ("1,,2", ",5"). */
    if (fl >= sizeof(buf) || !fl || f[0] == ',' || f[fl - 1] == ',' || strstr(f, ",,"))
        return -1;
    snprintf(buf, sizeof(buf), "%s", f);
    for (char *save = NULL, *part = strtok_r(buf, ",", &save); part;
         part = strtok_r(NULL, ",", &save)) {
        int a, b, step = 1;
        char *slash = strchr(part, '/');
        if (slash) {
            char *end;
            long v = strtol(slash + 1, &end, 10);
            if (*end || end == slash + 1 || v < 1 || v > hi)
                return -1;
            step = (int)v;
            *slash = 0;
        }
        if (strcmp(part, "*") == 0) {
            a = lo;
            b = hi;
        } else {
            char *end;
            long v = strtol(part, &end, 10);
            if (end == part)
                return -1;
            a = b = (int)v;
            if (*end == '-') {
                char *e2;
                long w = strtol(end + 1, &e2, 10);
                if (e2 == end + 1 || *e2)
                    return -1;
                b = (int)w;
            } else if (*end) {
                return -1;
            } else if (slash) {
                b = hi; /* "a/n" = a, a+n, ... */
            }
        }
        if (a < lo || b > hi || a > b)
            return -1;
        for (int v = a; v <= b; v += step)
            *mask |= 1ull << v;
    }
    return 0;
}

int als_cron_parse(const char *expr, als_cron_t *c, char *errstr, size_t errstr_size)
{
    memset(c, 0, sizeof(*c));
    if (!strcmp(expr, "@hourly"))
        expr = "0 * * * *";
    else if (!strcmp(expr, "@daily"))
        expr = "0 0 * * *";
    else if (!strcmp(expr, "@weekly"))
        expr = "0 0 * * 0";
    char buf[256];
    if (strlen(expr) >= sizeof(buf))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "cron expression too long");
    snprintf(buf, sizeof(buf), "%s", expr);
    char *fields[6];
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, " \t", &save); tok && n < 6;
         tok = strtok_r(NULL, " \t", &save))
        fields[n++] = tok;
    if (n != 5)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "cron: want 5 fields (minute hour day-of-month month day-of-week)");
    static const char *names[5] = {"minute", "hour", "day-of-month", "month", "day-of-week"};
    static const int lo[5] = {0, 0, 1, 1, 0}, hi[5] = {59, 23, 31, 12, 7};
    uint64_t m[5];
    bool any[5];
    for (int j = 0; j < 5; j++)
        if (cron_field(fields[j], lo[j], hi[j], &m[j], &any[j]))
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "cron: bad %s field '%s'",
                             names[j], fields[j]);
    c->minute = m[0];
    c->hour = (uint32_t)m[1];
    c->dom = (uint32_t)m[2];
    c->month = (uint16_t)m[3];
    c->dow = (uint8_t)((m[4] | (m[4] >> 7)) & 0x7f); /* 7 = Sunday */
    c->dom_any = any[2];
    c->dow_any = any[4];
    return CORE_OK;
}

int64_t als_cron_next(const als_cron_t *c, int64_t after_ms)
{
    time_t t = (time_t)(after_ms / 60000 + 1) * 60; /* next whole minute */
    for (int64_t step = 0; step < 5LL * 366 * 24 * 60; step++, t += 60) {
        struct tm tm;
        gmtime_r(&t, &tm);
        /* Skip whole hours/days quickly when they cannot match. */
        if (!(c->month >> (tm.tm_mon + 1) & 1) || !(c->hour >> tm.tm_hour & 1)) {
            t += (59 - tm.tm_min) * 60;
            step += 59 - tm.tm_min;
            continue;
        }
        bool dom = c->dom >> tm.tm_mday & 1, dow = c->dow >> tm.tm_wday & 1;
        bool day = c->dom_any && c->dow_any ? true
                   : c->dom_any            ? dow
                   : c->dow_any            ? dom
                                           : (dom || dow);
        if (!day) {
            t += (59 - tm.tm_min) * 60;
            step += 59 - tm.tm_min;
            continue;
        }
        if (c->minute >> tm.tm_min & 1)
            return (int64_t)t * 1000;
    }
    return -1;
}

/* ---- schedules -------------------------------------------------------------------- */

void als_sched_fini(als_sched_t *s)
{
    free(s->engine_json);
    s->engine_json = NULL;
}

int64_t als_sched_next(const als_sched_t *s, int64_t now_ms)
{
    if (s->cron[0]) {
        als_cron_t c;
        if (als_cron_parse(s->cron, &c, NULL, 0) != CORE_OK)
            return -1;
        return als_cron_next(&c, now_ms);
    }
    return now_ms + (s->every_ms < ALS_SCHED_MIN_EVERY_MS ? ALS_SCHED_MIN_EVERY_MS : s->every_ms);
}

static int sched_key(char *k, size_t n, const char *app, const char *engine)
{
    return snprintf(k, n, "ml/sched/%s/%s", app, engine);
}

int als_sched_put(store_t *st, const als_sched_t *s, char *errstr, size_t errstr_size)
{
    char k[512];
    int kl = sched_key(k, sizeof(k), s->app, s->engine);
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:f, s:I, s:I, s:s}", "app", s->app, "engine",
                          s->engine, "everyMs", (json_int_t)s->every_ms, "cron", s->cron,
                          "tolerance", s->tolerance, "nextMs", (json_int_t)s->next_ms,
                          "createdMs", (json_int_t)s->created_ms, "engineJson",
                          s->engine_json ? s->engine_json : "{}");
    char *txt = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!txt)
        return core_errf(CORE_ERR_NOMEM, errstr, errstr_size, "encoding the schedule");
    int err = store_kv_put(st, k, (size_t)kl, txt, strlen(txt));
    free(txt);
    if (err)
        return core_errf(err, errstr, errstr_size, "storing the schedule: %s", core_strerror(err));
    return CORE_OK;
}

int als_sched_delete(store_t *st, const char *app, const char *engine)
{
    char k[512];
    int kl = sched_key(k, sizeof(k), app, engine);
    void *v = NULL;
    size_t vl;
    int err = store_kv_get(st, k, (size_t)kl, &v, &vl);
    free(v);
    if (err)
        return err;
    return store_kv_delete(st, k, (size_t)kl);
}

static void copy_str(char *dst, size_t cap, json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, cap, "%s", s ? s : "");
}

static int sched_decode(const void *val, size_t vlen, als_sched_t *s)
{
    memset(s, 0, sizeof(*s));
    json_t *j = json_loadb(val, vlen, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return CORE_ERR_CORRUPT;
    }
    copy_str(s->app, sizeof(s->app), json_object_get(j, "app"));
    copy_str(s->engine, sizeof(s->engine), json_object_get(j, "engine"));
    copy_str(s->cron, sizeof(s->cron), json_object_get(j, "cron"));
    s->every_ms = json_integer_value(json_object_get(j, "everyMs"));
    s->tolerance = json_number_value(json_object_get(j, "tolerance"));
    s->next_ms = json_integer_value(json_object_get(j, "nextMs"));
    s->created_ms = json_integer_value(json_object_get(j, "createdMs"));
    const char *e = json_string_value(json_object_get(j, "engineJson"));
    s->engine_json = core_xstrdup(e ? e : "{}");
    json_decref(j);
    return CORE_OK;
}

typedef struct {
    als_sched_t *v;
    size_t n, cap;
} sched_vec_t;

static int on_sched(const void *key, size_t klen, const void *val, size_t vlen, void *opaque)
{
    sched_vec_t *sv = opaque;
    if (sv->n == sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 8;
        sv->v = core_xrealloc(sv->v, sv->cap * sizeof(als_sched_t));
    }
    if (sched_decode(val, vlen, &sv->v[sv->n]) == CORE_OK)
        sv->n++;
    return 0;
}

int als_sched_list(store_t *st, als_sched_t **out, size_t *n)
{
    sched_vec_t sv = {0};
    int err = store_kv_scan(st, "ml/sched/", 9, on_sched, &sv);
    if (err) {
        for (size_t j = 0; j < sv.n; j++)
            als_sched_fini(&sv.v[j]);
        free(sv.v);
        return err;
    }
    *out = sv.v;
    *n = sv.n;
    return CORE_OK;
}

/* ---- runs --------------------------------------------------------------------------- */

int als_run_record(store_t *st, const als_run_t *r)
{
    char k[512];
    int kl = snprintf(k, sizeof(k), "ml/runs/%s/%s/%020lld", r->app, r->engine,
                      (long long)r->start_ms);
    json_t *metrics = json_object();
    for (int j = 0; j < r->nmetrics; j++)
        json_object_set_new(metrics, r->metrics[j].name, json_real(r->metrics[j].value));
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:I, s:s, s:s, s:b, s:o}", "app",
                          r->app, "engine", r->engine, "startMs", (json_int_t)r->start_ms, "endMs",
                          (json_int_t)r->end_ms, "events", (json_int_t)r->events, "ratings",
                          (json_int_t)r->ratings, "promoted", r->promoted, "version",
                          (json_int_t)r->version, "trigger", r->trigger, "reason", r->reason,
                          "failed", r->failed, "metrics", metrics);
    char *txt = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(j);
    if (!txt)
        return CORE_ERR_NOMEM;
    int err = store_kv_put(st, k, (size_t)kl, txt, strlen(txt));
    free(txt);
    return err;
}

typedef struct {
    als_run_t *v;
    size_t n, cap, max;
} run_vec_t;

static int on_run(const void *key, size_t klen, const void *val, size_t vlen, void *opaque)
{
    run_vec_t *rv = opaque;
    json_t *j = json_loadb(val, vlen, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return 0;
    }
    /* Keep the newest max: a ring over the byte-ordered (= time-ordered) scan. */
    if (rv->n == rv->cap) {
        rv->cap = rv->cap ? rv->cap * 2 : 16;
        if (rv->cap > rv->max)
            rv->cap = rv->max;
        rv->v = core_xrealloc(rv->v, rv->cap * sizeof(als_run_t));
    }
    als_run_t *r;
    if (rv->n < rv->cap) {
        r = &rv->v[rv->n++];
    } else {
        memmove(rv->v, rv->v + 1, (rv->n - 1) * sizeof(als_run_t));
        r = &rv->v[rv->n - 1];
    }
    memset(r, 0, sizeof(*r));
    copy_str(r->app, sizeof(r->app), json_object_get(j, "app"));
    copy_str(r->engine, sizeof(r->engine), json_object_get(j, "engine"));
    copy_str(r->trigger, sizeof(r->trigger), json_object_get(j, "trigger"));
    copy_str(r->reason, sizeof(r->reason), json_object_get(j, "reason"));
    r->start_ms = json_integer_value(json_object_get(j, "startMs"));
    r->end_ms = json_integer_value(json_object_get(j, "endMs"));
    r->events = json_integer_value(json_object_get(j, "events"));
    r->ratings = json_integer_value(json_object_get(j, "ratings"));
    r->version = json_integer_value(json_object_get(j, "version"));
    r->promoted = json_is_true(json_object_get(j, "promoted"));
    r->failed = json_is_true(json_object_get(j, "failed"));
    const char *mk;
    json_t *mv;
    json_object_foreach(json_object_get(j, "metrics"), mk, mv)
    {
        if (r->nmetrics < ALS_MODEL_MAX_METRICS) {
            snprintf(r->metrics[r->nmetrics].name, sizeof(r->metrics[0].name), "%s", mk);
            r->metrics[r->nmetrics++].value = json_number_value(mv);
        }
    }
    json_decref(j);
    return 0;
}

int als_run_list(store_t *st, const char *app, const char *engine, size_t max, als_run_t **out,
                 size_t *n)
{
    char prefix[512];
    int pl = snprintf(prefix, sizeof(prefix), "ml/runs/%s/%s/", app, engine);
    run_vec_t rv = {NULL, 0, 0, max ? max : 1};
    int err = store_kv_scan(st, prefix, (size_t)pl, on_run, &rv);
    if (err) {
        free(rv.v);
        return err;
    }
    /* newest first */
    for (size_t a = 0, b = rv.n ? rv.n - 1 : 0; a < b; a++, b--) {
        als_run_t t = rv.v[a];
        rv.v[a] = rv.v[b];
        rv.v[b] = t;
    }
    *out = rv.v;
    *n = rv.n;
    return CORE_OK;
}
