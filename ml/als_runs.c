/* als_runs — see als_runs.h. */
#include "ml/als_runs.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_err.h"

static void copy_str(char *dst, size_t cap, json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, cap, "%s", s ? s : "");
}

/* ---- runs --------------------------------------------------------------------------- */

json_t *als_run_json(const als_run_t *r)
{
    json_t *metrics = json_object();
    for (int j = 0; j < r->nmetrics; j++)
        json_object_set_new(metrics, r->metrics[j].name, json_real(r->metrics[j].value));
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:I, s:s, s:s, s:b, s:o}", "app", r->app,
                     "engine", r->engine, "startMs", (json_int_t)r->start_ms, "endMs",
                     (json_int_t)r->end_ms, "events", (json_int_t)r->events, "ratings",
                     (json_int_t)r->ratings, "promoted", r->promoted, "version",
                     (json_int_t)r->version, "trigger", r->trigger, "reason", r->reason, "failed",
                     r->failed, "metrics", metrics);
}

int als_run_record(store_t *st, const als_run_t *r)
{
    char k[512];
    int kl =
        snprintf(k, sizeof(k), "ml/runs/%s/%s/%020lld", r->app, r->engine, (long long)r->start_ms);
    json_t *j = als_run_json(r);
    char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
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
    if (max > ALS_RUNS_MAX_LISTED)
        max = ALS_RUNS_MAX_LISTED; /* the ring is memmoved per run: keep it small */
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
