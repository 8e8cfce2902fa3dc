/* als_serve — see als_serve.h. */
#include "ml/als_serve.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core_alloc.h"
#include "core/core_buf.h"
#include "core/core_err.h"
#include "core/core_http.h"
#include "core/core_log.h"
#include "core/core_time.h"
#include "ml/als_query.h"

/* Hazard slots: one is held per query for a few instructions, so this only
 * has to exceed the number of worker threads; if every slot is busy a query
 * yields and retries (never observed with ≤ 64 workers). */
#define ALS_SERVE_HAZARDS 128
#define ALS_SERVE_NBUCKETS 12

static const double g_buckets[ALS_SERVE_NBUCKETS] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
};

typedef struct {
    _Alignas(64) atomic_int busy;
    _Atomic(als_model_t *) ptr;
} hazard_t;

typedef struct {
    atomic_ullong count[3];                   /* 200, 400, other */
    atomic_ullong bucket[ALS_SERVE_NBUCKETS]; /* non-cumulative */
    atomic_ullong n;
    atomic_ullong sum_ns;
} kind_stats_t;

struct als_server {
    core_http_t *http;
    als_server_conf_t conf;
    _Atomic(als_model_t *) model;
    hazard_t hz[ALS_SERVE_HAZARDS];
    kind_stats_t stats[2]; /* user, items */
    atomic_ullong bad_requests; /* 400 before the kind was known */
    atomic_ullong reloads;
    pthread_mutex_t reload_lock; /* serialises reloads (not queries) */
    int64_t started_ms;
};

/* ---- model pinning ---------------------------------------------------------------- */

static als_model_t *model_acquire(als_server_t *s)
{
    /* Start the slot search at a per-thread position to avoid contention. */
    unsigned k = (unsigned)((uintptr_t)pthread_self() >> 6) % ALS_SERVE_HAZARDS;
    for (;;) {
        int zero = 0;
        if (atomic_compare_exchange_weak(&s->hz[k].busy, &zero, 1))
            break;
        k = (k + 1) % ALS_SERVE_HAZARDS;
        if (k == 0)
            sched_yield();
    }
    als_model_t *m;
    for (;;) {
        m = atomic_load(&s->model);
        atomic_store(&s->hz[k].ptr, m);
        /* seq_cst: the swap's exchange and our re-read are totally ordered,
         * so either we see the new pointer or the swap sees our hazard. */
        if (atomic_load(&s->model) == m)
            break;
    }
    if (m)
        als_model_keep(m);
    atomic_store(&s->hz[k].ptr, NULL);
    atomic_store_explicit(&s->hz[k].busy, 0, memory_order_release);
    return m;
}

void als_server_swap(als_server_t *s, als_model_t *model)
{
    als_model_t *old = atomic_exchange(&s->model, model);
    if (!old)
        return;
    for (int k = 0; k < ALS_SERVE_HAZARDS; k++)
        while (atomic_load(&s->hz[k].ptr) == old)
            sched_yield();
    als_model_release(old);
}

int64_t als_server_version(als_server_t *s)
{
    als_model_t *m = model_acquire(s);
    int64_t v = m ? m->version : 0;
    als_model_release(m);
    return v;
}

/* ---- handlers ---------------------------------------------------------------------- */

static void record(als_server_t *s, int kind, int status, int64_t t0_ns)
{
    if (kind < 0) {
        atomic_fetch_add_explicit(&s->bad_requests, 1, memory_order_relaxed);
        return;
    }
    kind_stats_t *st = &s->stats[kind];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - t0_ns;
    atomic_fetch_add_explicit(&st->count[status == 200 ? 0 : status == 400 ? 1 : 2], 1,
                              memory_order_relaxed);
    double sec = (double)ns / 1e9;
    int b = 0;
    while (b < ALS_SERVE_NBUCKETS && sec > g_buckets[b])
        b++;
    if (b < ALS_SERVE_NBUCKETS)
        atomic_fetch_add_explicit(&st->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->n, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->sum_ns, (unsigned long long)ns, memory_order_relaxed);
}

static void h_query(core_http_req_t *req, void *user)
{
    als_server_t *s = user;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t t0 = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    size_t len;
    const char *body = core_http_req_body(req, &len);
    als_query_t q;
    char err[256];
    if (als_query_parse(body, len, &q, err, sizeof(err)) != CORE_OK) {
        core_http_reply_error(req, 400, "%s", err);
        record(s, -1, 400, t0);
        return;
    }
    als_model_t *m = model_acquire(s);
    if (!m) {
        core_http_reply_error(req, 503, "no model deployed yet: run eddy train, then POST /reload");
        record(s, (int)q.kind, 503, t0);
        als_query_fini(&q);
        return;
    }
    core_buf_t out;
    core_buf_init(&out);
    als_query_info_t info;
    int rc = als_query_run(m, &q, s->conf.unknown_popular, &out, &info);
    als_model_release(m);
    if (rc == CORE_OK) {
        core_http_reply_json_text(req, 200, (const char *)out.data, out.len);
        record(s, (int)q.kind, 200, t0);
    } else {
        core_http_reply_error(req, 500, "query failed: %s", core_strerror(rc));
        record(s, (int)q.kind, 500, t0);
    }
    core_buf_fini(&out);
    als_query_fini(&q);
}

static void iso_time(int64_t ms, char *buf, size_t n)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t w = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + w, n - w, ".%03dZ", (int)(ms % 1000));
}

json_t *als_model_info_json(const als_model_t *m)
{
    char at[40];
    iso_time(m->trained_at_ms, at, sizeof(at));
    json_t *metrics = json_object();
    for (int j = 0; j < m->nmetrics; j++)
        json_object_set_new(metrics, m->metrics[j].name, json_real(m->metrics[j].value));
    return json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:{s:i, s:i, s:f, s:f, s:b, s:I, "
                     "s:s}, s:o}",
                     "app", m->app, "engine", m->engine, "version", (json_int_t)m->version,
                     "trainedAt", at, "users", (json_int_t)m->users.n, "items",
                     (json_int_t)m->items.n, "ratings", (json_int_t)m->seen.nnz, "events",
                     (json_int_t)m->nevents, "params", "rank", m->params.rank, "numIterations",
                     m->params.iterations, "lambda", m->params.lambda, "alpha", m->params.alpha,
                     "implicitPrefs", m->params.implicit, "seed", (json_int_t)m->params.seed,
                     "solver", m->params.solver == ALS_SOLVER_CG ? "cg" : "cholesky", "metrics",
                     metrics);
}

static void h_status(core_http_req_t *req, void *user)
{
    als_server_t *s = user;
    als_model_t *m = model_acquire(s);
    char started[40];
    iso_time(s->started_ms, started, sizeof(started));
    unsigned long long nq = 0;
    for (int k = 0; k < 2; k++)
        nq += atomic_load(&s->stats[k].n);
    json_t *j = json_pack("{s:s, s:s, s:I, s:I}", "server", "eddy serve", "startedAt", started,
                          "queries", (json_int_t)nq, "reloads",
                          (json_int_t)atomic_load(&s->reloads));
    json_object_set_new(j, "model", m ? als_model_info_json(m) : json_null());
    als_model_release(m);
    core_http_reply_json(req, 200, j);
}

static void h_reload(core_http_req_t *req, void *user)
{
    als_server_t *s = user;
    if (!s->conf.loader) {
        core_http_reply_error(req, 501, "this server has no model source to reload from");
        return;
    }
    pthread_mutex_lock(&s->reload_lock);
    als_model_t *m = NULL;
    char err[256] = "";
    int rc = s->conf.loader(s->conf.loader_opaque, &m, err, sizeof(err));
    if (rc == CORE_ERR_NOT_FOUND) {
        pthread_mutex_unlock(&s->reload_lock);
        core_http_reply_error(req, 404, "no trained model yet: %s", err);
        return;
    }
    if (rc != CORE_OK) {
        pthread_mutex_unlock(&s->reload_lock);
        core_http_reply_error(req, 500, "reload failed: %s", err[0] ? err : core_strerror(rc));
        return;
    }
    int64_t before = als_server_version(s), version = m->version;
    if (version == before) {
        als_model_release(m);
        pthread_mutex_unlock(&s->reload_lock);
        core_http_reply_json(req, 200,
                             json_pack("{s:s, s:I}", "message", "already serving the newest model",
                                       "version", (json_int_t)version));
        return;
    }
    als_server_swap(s, m);
    atomic_fetch_add(&s->reloads, 1);
    pthread_mutex_unlock(&s->reload_lock);
    CORE_INFO("ml", "serving model v%lld (was v%lld)", (long long)version, (long long)before);
    core_http_reply_json(req, 200,
                         json_pack("{s:s, s:I, s:I}", "message", "Reloading...", "version",
                                   (json_int_t)version, "previous", (json_int_t)before));
}

static void h_metrics(core_http_req_t *req, void *user)
{
    als_server_t *s = user;
    core_buf_t out;
    core_buf_init(&out);
    core_http_metrics_write(s->http, &out);
    char line[256];
    int n;
#define EMIT(...)                                                                        \
    do {                                                                                 \
        n = snprintf(line, sizeof(line), __VA_ARGS__);                                   \
        core_wr_raw(&out, line, (size_t)n);                                              \
    } while (0)
    static const char *kinds[2] = {"user", "items"};
    static const char *statuses[3] = {"200", "400", "5xx"};
    EMIT("# HELP eddy_ml_queries_total Queries answered, by kind and status.\n"
         "# TYPE eddy_ml_queries_total counter\n");
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 3; c++)
            EMIT("eddy_ml_queries_total{kind=\"%s\",status=\"%s\"} %llu\n", kinds[k], statuses[c],
                 (unsigned long long)atomic_load(&s->stats[k].count[c]));
    EMIT("eddy_ml_queries_total{kind=\"invalid\",status=\"400\"} %llu\n",
         (unsigned long long)atomic_load(&s->bad_requests));
    EMIT("# HELP eddy_ml_query_duration_seconds Query latency (parse to answer).\n"
         "# TYPE eddy_ml_query_duration_seconds histogram\n");
    for (int k = 0; k < 2; k++) {
        unsigned long long cum = 0;
        for (int b = 0; b < ALS_SERVE_NBUCKETS; b++) {
            cum += atomic_load(&s->stats[k].bucket[b]);
            EMIT("eddy_ml_query_duration_seconds_bucket{kind=\"%s\",le=\"%g\"} %llu\n", kinds[k],
                 g_buckets[b], cum);
        }
        unsigned long long total = atomic_load(&s->stats[k].n);
        EMIT("eddy_ml_query_duration_seconds_bucket{kind=\"%s\",le=\"+Inf\"} %llu\n", kinds[k],
             total);
        EMIT("eddy_ml_query_duration_seconds_sum{kind=\"%s\"} %.9f\n", kinds[k],
             (double)atomic_load(&s->stats[k].sum_ns) / 1e9);
        EMIT("eddy_ml_query_duration_seconds_count{kind=\"%s\"} %llu\n", kinds[k], total);
    }
    als_model_t *m = model_acquire(s);
    EMIT("# HELP eddy_ml_model_version Version of the deployed model (0 = none).\n"
         "# TYPE eddy_ml_model_version gauge\neddy_ml_model_version %lld\n",
         m ? (long long)m->version : 0LL);
    EMIT("# HELP eddy_ml_model_age_seconds Seconds since the deployed model was trained.\n"
         "# TYPE eddy_ml_model_age_seconds gauge\neddy_ml_model_age_seconds %.3f\n",
         m ? (double)(core_wall_ms() - m->trained_at_ms) / 1000.0 : 0.0);
    als_model_release(m);
    EMIT("# HELP eddy_ml_reloads_total Successful model swaps.\n"
         "# TYPE eddy_ml_reloads_total counter\neddy_ml_reloads_total %llu\n",
         (unsigned long long)atomic_load(&s->reloads));
#undef EMIT
    core_http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    core_buf_fini(&out);
}

int als_server_start(const als_server_conf_t *conf, als_model_t *model, als_server_t **out,
                     char *errstr, size_t errstr_size)
{
    *out = NULL;
    als_server_t *s = core_xcalloc(1, sizeof(*s));
    s->conf = *conf;
    atomic_init(&s->model, model);
    pthread_mutex_init(&s->reload_lock, NULL);
    s->started_ms = core_wall_ms();
    /* Query bodies are small; 1 MiB still fits a 10,000-entry whitelist. */
    /* Queries are small: a 16 KiB connection pool (MHD clears it between
     * requests; 64 KiB cost ~2% of a query's CPU) still reads a 1 MiB
     * whitelist body, in more reads. */
    core_http_conf_t hc = {
        .name = "serve", .threads = conf->threads, .max_body = 1u << 20, .conn_memory = 16u << 10};
    s->http = core_http_new(&hc);
    core_http_route(s->http, "POST", "/queries.json", h_query, s);
    core_http_route(s->http, "GET", "/", h_status, s);
    core_http_route(s->http, "POST", "/reload", h_reload, s);
    core_http_route(s->http, "GET", "/metrics", h_metrics, s);
    int err = core_http_start(s->http, conf->host, conf->port, errstr, errstr_size);
    if (err != CORE_OK) {
        s->conf.loader = NULL;
        core_http_free(s->http);
        als_model_release(model);
        pthread_mutex_destroy(&s->reload_lock);
        free(s);
        return err;
    }
    *out = s;
    return CORE_OK;
}

int als_server_port(const als_server_t *s)
{
    return core_http_port(s->http);
}

void als_server_free(als_server_t *s)
{
    if (!s)
        return;
    core_http_free(s->http); /* joins the workers: no query is running after this */
    als_model_release(atomic_load(&s->model));
    pthread_mutex_destroy(&s->reload_lock);
    free(s);
}
