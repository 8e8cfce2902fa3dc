/* eddy train | eval | serve — the recommender's commands (ml/ README section
 * "Recommendations"). Each opens the store only for as long as it needs it,
 * so none of them keeps a data directory locked against `eddy eventserver`. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core_alloc.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_log.h"
#include "core/core_time.h"
#include "ml/als_data.h"
#include "ml/als_engine.h"
#include "ml/als_eval.h"
#include "ml/als_pipeline.h"
#include "ml/als_serve.h"
#include "ml/als_query.h"
#include "ml/als_runs.h"
#include "ml/als_store.h"
#include "storage/store.h"

/* Stop signals. The main thread blocks SIGINT/SIGTERM and waits for them
 * with sigtimedwait, but threads that exist before it can block them
 * (OpenBLAS starts its pool when the library loads) would take the default
 * action — kill the process — whenever the main thread is busy elsewhere
 * (polling the store, training). So a handler is installed as well: on any
 * thread it only records the request, and the main loop checks the record.
 * The one process-wide variable here is that record (a signal handler has
 * no other place to write). */
static volatile sig_atomic_t g_ml_stop_signal;

static void ml_on_stop_signal(int sig)
{
    g_ml_stop_signal = sig;
}

static void ml_stop_signals_init(sigset_t *set)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ml_on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* Waits up to timeout_ms (< 0: forever) for a stop signal; returns it, or 0. */
static int ml_wait_stop(const sigset_t *set, int64_t timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : core_mono_ms() + timeout_ms;
    while (!g_ml_stop_signal) {
        int64_t left = deadline - core_mono_ms();
        if (left <= 0)
            return 0;
        int64_t slice = left < 200 ? left : 200;
        struct timespec ts = {slice / 1000, (slice % 1000) * 1000000};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0)
            return sig;
    }
    return g_ml_stop_signal;
}

typedef struct ml_conf {
    char *app, *engine, *data, *store, *ratings, *items, *listen, *tolerance, *split, *holdout;
    char *result_json, *trigger;
    int64_t threads, reload_every_ms, runs;
    bool force, quiet;
    core_strlist_t grid;
} ml_conf_t;

#define OPT_APP                                                                          \
    {"app", CORE_OPT_STR, NULL, "app name (default: engine.json datasource.params.appName)", \
     offsetof(ml_conf_t, app)}
#define OPT_ENGINE                                                                       \
    {"engine", CORE_OPT_STR, "engine.json", "engine.json (PredictionIO shape)",            \
     offsetof(ml_conf_t, engine)}
#define OPT_DATA                                                                         \
    {"data", CORE_OPT_STR, "./eddy-data", "data directory of the event store",             \
     offsetof(ml_conf_t, data)}
#define OPT_STORE                                                                        \
    {"store", CORE_OPT_STR, NULL,                                                         \
     "store URL instead of --data (rocksdb:DIR, redis://HOST:PORT/DB, eddy://HOST:PORT)",   \
     offsetof(ml_conf_t, store)}
#define OPT_THREADS                                                                      \
    {"threads", CORE_OPT_INT, "0", "training threads (0 = all cores)",                     \
     offsetof(ml_conf_t, threads)}

static const core_opt_t train_opts[] = {
    OPT_APP, OPT_ENGINE, OPT_DATA, OPT_STORE, OPT_THREADS,
    {"ratings", CORE_OPT_STR, NULL,
     "train from a MovieLens-style file (user TAB item TAB rating TAB seconds) instead of events",
     offsetof(ml_conf_t, ratings)},
    {"items", CORE_OPT_STR, NULL,
     "with --ratings: MovieLens u.item file whose genres become item categories",
     offsetof(ml_conf_t, items)},
    {"tolerance", CORE_OPT_STR, "0.02",
     "quality gate: promote unless the holdout metric is worse than the deployed model's by "
     "more than this fraction",
     offsetof(ml_conf_t, tolerance)},
    {"force", CORE_OPT_BOOL, "false", "promote even if the quality gate says no",
     offsetof(ml_conf_t, force)},
    {"quiet", CORE_OPT_BOOL, "false", "no per-iteration progress even on a terminal",
     offsetof(ml_conf_t, quiet)},
    {"result-json", CORE_OPT_STR, NULL,
     "also write the run's outcome to this file as one JSON object (events, ratings, metrics, "
     "version, promoted, reason, failed; written on failure too)",
     offsetof(ml_conf_t, result_json)},
    {"trigger", CORE_OPT_STR, "manual",
     "what started the run, kept in the run record: manual | schedule",
     offsetof(ml_conf_t, trigger)},
    CORE_OPT_END,
};

static const core_opt_t eval_opts[] = {
    OPT_APP, OPT_ENGINE, OPT_DATA, OPT_STORE, OPT_THREADS,
    {"ratings", CORE_OPT_STR, NULL, "evaluate on a MovieLens-style file instead of events",
     offsetof(ml_conf_t, ratings)},
    {"grid", CORE_OPT_LIST, NULL,
     "parameter grid NAME=V1,V2 (rank, numIterations, lambda, alpha); repeat or list several "
     "after one --grid",
     offsetof(ml_conf_t, grid)},
    {"split", CORE_OPT_STR, "random", "holdout split: random (seeded) or time (latest events)",
     offsetof(ml_conf_t, split)},
    {"holdout", CORE_OPT_STR, "0.2", "fraction held out for testing", offsetof(ml_conf_t, holdout)},
    CORE_OPT_END,
};

static const core_opt_t serve_opts[] = {
    OPT_APP, OPT_ENGINE, OPT_DATA, OPT_STORE,
    {"threads", CORE_OPT_INT, "0",
     "HTTP worker threads, each with its own epoll set of connections (0 = one per core)",
     offsetof(ml_conf_t, threads)},
    {"listen", CORE_OPT_STR, "127.0.0.1:8000", "HTTP listen address HOST:PORT",
     offsetof(ml_conf_t, listen)},
    {"reload-every", CORE_OPT_DURATION, "0",
     "check the store for a newer model this often and switch to it (0 = only on POST /reload)",
     offsetof(ml_conf_t, reload_every_ms)},
    CORE_OPT_END,
};

static int open_store(const ml_conf_t *c, store_t **s, char *err, size_t errsz)
{
    if (c->store)
        return store_open(c->store, NULL, s, err, errsz);
    return store_open_dir(c->data, NULL, s, err, errsz);
}

/* Common start: flags and --help (core_conf_begin), then engine.json and the
 * app name. Returns -1 to go on, else the exit status. */
static int cmd_begin(const core_cmd_t *cmd, int argc, char **argv, ml_conf_t *c, als_engine_t *e,
                     char **pos, int *npos)
{
    char err[512];
    memset(c, 0, sizeof(*c));
    int rc = core_conf_begin(cmd, c, argc, argv, pos, npos);
    if (rc != CORE_CONF_RUN)
        return rc;
    if (c->threads < 0 || c->threads > 1024) {
        fprintf(stderr, "%s: --threads must be 0..1024\n", cmd->name);
        return 2;
    }
    rc = als_engine_load(c->engine, e, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "%s: %s\n", cmd->name, err);
        return 2;
    }
    if (c->app && strlen(c->app) <= ALS_MODEL_MAX_NAME)
        snprintf(e->app, sizeof(e->app), "%s", c->app);
    if (!e->app[0] && !c->ratings) {
        fprintf(stderr, "%s: no app: give --app NAME or datasource.params.appName\n", cmd->name);
        return 2;
    }
    if (!e->app[0])
        snprintf(e->app, sizeof(e->app), "file");
    return CORE_CONF_RUN;
}

static int load_input(const ml_conf_t *c, const als_engine_t *e, als_obs_t *obs,
                      als_catlist_t *cats, int64_t *nevents, char *err, size_t errsz)
{
    if (c->ratings) {
        int rc = als_load_movielens(obs, c->ratings, err, errsz);
        if (!rc && c->items)
            rc = als_load_movielens_items(cats, c->items, err, errsz);
        *nevents = (int64_t)obs->n;
        return rc;
    }
    store_t *s;
    int rc = open_store(c, &s, err, errsz);
    if (rc)
        return rc;
    als_load_stats_t st;
    rc = als_store_load_events(s, e->app, e, obs, cats, &st, err, errsz);
    *nevents = st.events;
    store_close(s);
    if (!rc)
        CORE_INFO("ml", "app %s: %lld events read (%lld unusable), %d users, %d items, %lld "
                        "items with categories",
                  e->app, (long long)st.events, (long long)st.skipped, obs->users.n, obs->items.n,
                  (long long)st.items_with_categories);
    return rc;
}

/* ---- train ------------------------------------------------------------------------- */

typedef struct {
    int total; /* iterations per run */
    int seen;  /* callbacks so far */
    bool holdout;
    bool tty;
} progress_t;

static void on_progress(void *opaque, int iter, double loss, double elapsed)
{
    progress_t *p = opaque;
    p->seen++;
    if (!p->tty)
        return;
    const char *phase = p->holdout && p->seen <= p->total ? "holdout" : "final";
    fprintf(stderr, "  %-7s iteration %3d/%-3d  loss %.6e  %7.2fs\n", phase, iter, p->total, loss,
            elapsed);
}

/* --result-json: the run as one JSON object in path, written to a temp file
 * and renamed, so a reader (the driver, after the process exits) sees all of
 * it or nothing. */
static int write_result_json(const char *path, const als_run_t *run)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    json_t *j = als_run_json(run);
    int rc = json_dump_file(j, tmp, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(j);
    if (rc || rename(tmp, path)) {
        fprintf(stderr, "eddy train: cannot write --result-json %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* One training run: read, train, gate, maybe promote, and record the run
 * (ml/runs/...) whatever happened. Returns 0 (promoted), 3 (the gate kept
 * the deployed model) or 1 (error). Messages go to out. */
static int train_once(const ml_conf_t *c, const als_engine_t *e, double tol, bool force,
                      const char *trigger, bool tty, FILE *out)
{
    char err[512] = "";
    int rc = 1;
    als_obs_t obs;
    als_catlist_t cats;
    als_obs_init(&obs);
    als_catlist_init(&cats);
    als_model_t *m = NULL, *old = NULL;
    store_t *s = NULL;
    als_run_t run;
    memset(&run, 0, sizeof(run));
    snprintf(run.app, sizeof(run.app), "%s", e->app);
    snprintf(run.engine, sizeof(run.engine), "%s", e->id);
    snprintf(run.trigger, sizeof(run.trigger), "%s", trigger);
    run.start_ms = core_wall_ms();
    if (load_input(c, e, &obs, &cats, &run.events, err, sizeof(err)))
        goto fail;
    progress_t pr = {e->params.iterations, 0, e->holdout > 0, tty};
    als_train_stats_t st;
    int64_t t0 = core_mono_us();
    if (als_pipeline_train(e, &obs, &cats, (int)c->threads, on_progress, &pr, &m, &st, err,
                           sizeof(err)))
        goto fail;
    m->trained_at_ms = core_wall_ms();
    run.ratings = st.nnz;
    run.nmetrics = m->nmetrics;
    memcpy(run.metrics, m->metrics, sizeof(run.metrics));
    fprintf(out,
            "trained %s/%s: %d users, %d items, %lld ratings, rank %d, %d iterations, "
            "%.2fs (final fit %.2fs)\n",
            e->app, e->id, st.nusers, st.nitems, (long long)st.nnz, e->params.rank,
            e->params.iterations, (double)(core_mono_us() - t0) / 1e6, st.final_seconds);
    for (int j = 0; j < m->nmetrics; j++)
        fprintf(out, "  holdout %-22s %.4f\n", m->metrics[j].name, m->metrics[j].value);
    if (open_store(c, &s, err, sizeof(err)))
        goto fail;
    int lerr = als_store_model_load(s, e->app, e->id, &old, err, sizeof(err));
    if (lerr && lerr != CORE_ERR_NOT_FOUND)
        CORE_WARN("ml", "cannot read the deployed model (%s): gating against nothing", err);
    char why[400];
    bool promote = als_gate_check(m, old, tol, why, sizeof(why));
    if (!promote && !force) {
        fprintf(out, "quality gate: %s\n", why);
        fprintf(out, "not promoted: still serving v%lld\n", (long long)old->version);
        snprintf(run.reason, sizeof(run.reason), "%s", why);
        run.version = old->version;
        rc = 3;
        goto record;
    }
    fprintf(out, "quality gate: %s%s\n", why, promote ? "" : " (overridden by --force)");
    if (als_store_model_save(s, m, err, sizeof(err)))
        goto fail;
    fprintf(out, "promoted: model v%lld is now the deployed model for %s/%s\n",
            (long long)m->version, e->app, e->id);
    snprintf(run.reason, sizeof(run.reason), "%s%s", why, promote ? "" : " (forced)");
    run.promoted = true;
    run.version = m->version;
    rc = 0;
    goto record;
fail:
    fprintf(stderr, "eddy train: %s\n", err);
    run.failed = true;
    snprintf(run.reason, sizeof(run.reason), "%s", err);
record:
    run.end_ms = core_wall_ms();
    /* The run history lives in the store: record it when a store is there
     * (not for --ratings runs that failed before opening one). */
    if (!s && (c->store || !c->ratings))
        open_store(c, &s, err, sizeof(err));
    if (s && als_run_record(s, &run) != CORE_OK)
        CORE_WARN("ml", "could not record the training run");
    store_close(s);
    if (c->result_json && write_result_json(c->result_json, &run) && rc != 1)
        rc = 1;
    als_model_release(m);
    als_model_release(old);
    als_catlist_fini(&cats);
    als_obs_fini(&obs);
    return rc;
}

static int parse_tolerance(const char *txt, double *tol)
{
    char *end;
    *tol = strtod(txt, &end);
    return *end || end == txt || !(*tol >= 0) || *tol > 10 ? -1 : 0;
}

int cmd_train(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy train",
        .usage = "eddy train --app NAME --engine engine.json [--data DIR | --store URL] [--force]",
        .summary =
            "Trains an ALS model on the app's events (rate/buy for explicit engines, view/buy\n"
            "for implicit ones), measures it on a seeded holdout, and promotes it unless it is\n"
            "worse than the deployed model by more than --tolerance (the quality gate; exit\n"
            "status 3 when it keeps the old model). The model is stored in the event store,\n"
            "versioned per (app, engine id); `eddy serve` picks it up on POST /reload or with\n"
            "--reload-every. Every run is recorded in the store (eddy model runs);\n"
            "--result-json also writes it to a file (the driver's scheduled runs use it).",
        .opts = train_opts,
    };
    ml_conf_t c;
    als_engine_t e;
    char *pos[argc + 1];
    int npos = 0;
    int rc = cmd_begin(&cmd, argc, argv, &c, &e, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out_conf;
    double tol;
    if (parse_tolerance(c.tolerance, &tol)) {
        fprintf(stderr, "eddy train: bad --tolerance\n");
        rc = 2;
        goto out_conf;
    }
    if (strcmp(c.trigger, "manual") && strcmp(c.trigger, "schedule")) {
        fprintf(stderr, "eddy train: --trigger must be manual or schedule\n");
        rc = 2;
        goto out_conf;
    }
    rc = train_once(&c, &e, tol, c.force, c.trigger, !c.quiet && isatty(STDERR_FILENO), stdout);
out_conf:
    core_conf_free(train_opts, &c);
    return rc;
}

/* ---- eval -------------------------------------------------------------------------- */

#define GRID_MAX_VALUES 16
#define GRID_MAX_RUNS 256

typedef struct {
    char name[32];
    double v[GRID_MAX_VALUES];
    int n;
} grid_axis_t;

static int parse_axis(const char *spec, grid_axis_t *ax, char *err, size_t errsz)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof(ax->name))
        return core_errf(CORE_ERR_INVAL, err, errsz, "grid entry '%s': want NAME=V1,V2", spec);
    memcpy(ax->name, spec, (size_t)(eq - spec));
    ax->name[eq - spec] = 0;
    if (strcmp(ax->name, "rank") && strcmp(ax->name, "numIterations") &&
        strcmp(ax->name, "lambda") && strcmp(ax->name, "alpha"))
        return core_errf(CORE_ERR_INVAL, err, errsz,
                         "grid: unknown parameter '%s' (rank, numIterations, lambda, alpha)",
                         ax->name);
    ax->n = 0;
    const char *p = eq + 1;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ',') || !isfinite(v) || ax->n == GRID_MAX_VALUES)
            return core_errf(CORE_ERR_INVAL, err, errsz, "grid entry '%s': bad value list", spec);
        ax->v[ax->n++] = v;
        p = *end ? end + 1 : end;
    }
    if (!ax->n)
        return core_errf(CORE_ERR_INVAL, err, errsz, "grid entry '%s': no values", spec);
    return 0;
}

static void apply_axis(als_params_t *p, const grid_axis_t *ax, double v)
{
    if (!strcmp(ax->name, "rank"))
        p->rank = (int)v;
    else if (!strcmp(ax->name, "numIterations"))
        p->iterations = (int)v;
    else if (!strcmp(ax->name, "lambda"))
        p->lambda = v;
    else
        p->alpha = v;
}

int cmd_eval(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy eval",
        .usage = "eddy eval --app NAME --engine engine.json [--grid rank=10,20 lambda=0.05,0.1]",
        .summary =
            "Evaluates the engine on a holdout split of the app's events (random or by time)\n"
            "and prints one table row per parameter combination: RMSE/MAE for explicit\n"
            "engines; precision/recall/MAP/NDCG@k and the most-popular baseline for implicit\n"
            "ones. Stores nothing.",
        .opts = eval_opts,
        .takes_args = true,
    };
    ml_conf_t c;
    als_engine_t e;
    char *pos[argc + 1];
    int npos = 0;
    int rc = cmd_begin(&cmd, argc, argv, &c, &e, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out_conf;
    rc = 2;
    char err[512];
    grid_axis_t axes[8];
    int naxes = 0;
    /* --grid a=1,2 b=3: the values after the first --grid arrive as
     * positional arguments; accept NAME=... ones there too. */
    for (int j = 0; j < c.grid.n + npos; j++) {
        const char *spec = j < c.grid.n ? c.grid.v[j] : pos[j - c.grid.n];
        if (naxes == 8 || parse_axis(spec, &axes[naxes], err, sizeof(err))) {
            fprintf(stderr, "eddy eval: %s\n", naxes == 8 ? "at most 8 grid axes" : err);
            goto out_conf;
        }
        naxes++;
    }
    char *end;
    double holdout = strtod(c.holdout, &end);
    if (*end || !(holdout > 0 && holdout < 1)) {
        fprintf(stderr, "eddy eval: --holdout must be in (0, 1)\n");
        goto out_conf;
    }
    als_split_t split;
    if (!strcmp(c.split, "random"))
        split = ALS_SPLIT_RANDOM;
    else if (!strcmp(c.split, "time"))
        split = ALS_SPLIT_TIME;
    else {
        fprintf(stderr, "eddy eval: --split must be random or time\n");
        goto out_conf;
    }
    rc = 1;
    als_obs_t obs;
    als_catlist_t cats;
    als_obs_init(&obs);
    als_catlist_init(&cats);
    uint8_t *sel = NULL;
    als_csr_t ui = {0}, iu = {0}, te = {0};
    int64_t nevents;
    if (load_input(&c, &e, &obs, &cats, &nevents, err, sizeof(err))) {
        fprintf(stderr, "eddy eval: %s\n", err);
        goto out;
    }
    if (obs.n == 0) {
        fprintf(stderr, "eddy eval: no events to evaluate on\n");
        goto out;
    }
    const bool implicit = e.params.implicit;
    sel = calloc(obs.n, 1);
    als_split_mark(&obs, split, holdout, e.params.seed, sel);
    if (als_obs_build_sel(&obs, implicit ? ALS_REDUCE_SUM : ALS_REDUCE_LATEST, sel, 0, &ui, &iu) ||
        als_obs_build_sel(&obs, ALS_REDUCE_LATEST, sel, 1, &te, NULL)) {
        fprintf(stderr, "eddy eval: out of memory\n");
        goto out;
    }
    printf("%s holdout %.0f%% (%s split, seed %llu): %d users, %d items, %lld train / %lld test "
           "ratings\n",
           implicit ? "implicit" : "explicit", holdout * 100, c.split,
           (unsigned long long)e.params.seed, ui.nrows, ui.ncols, (long long)ui.nnz,
           (long long)te.nnz);
    const int k = e.query_num;
    if (implicit)
        printf("%6s %6s %8s %7s | %8s %8s %8s %8s | %8s\n", "rank", "iters", "lambda", "alpha",
               "P@k", "R@k", "MAP@k", "NDCG@k", "train s");
    else
        printf("%6s %6s %8s %7s | %8s %8s | %8s\n", "rank", "iters", "lambda", "alpha", "RMSE",
               "MAE", "train s");
    int nruns = 1;
    for (int a = 0; a < naxes; a++)
        nruns *= axes[a].n;
    if (nruns > GRID_MAX_RUNS) {
        fprintf(stderr, "eddy eval: grid has %d combinations (max %d)\n", nruns, GRID_MAX_RUNS);
        goto out;
    }
    for (int r = 0; r < nruns; r++) {
        als_params_t p = e.params;
        p.threads = (int)c.threads;
        for (int a = 0, rest = r; a < naxes; a++) {
            apply_axis(&p, &axes[a], axes[a].v[rest % axes[a].n]);
            rest /= axes[a].n;
        }
        if (als_params_check(&p, err, sizeof(err))) {
            fprintf(stderr, "eddy eval: %s\n", err);
            goto out;
        }
        als_factors_t U, V;
        int64_t t0 = core_mono_us();
        if (als_train(&p, &ui, &iu, &U, &V, NULL, NULL, NULL, err, sizeof(err))) {
            fprintf(stderr, "eddy eval: %s\n", err);
            als_factors_fini(&U);
            als_factors_fini(&V);
            goto out;
        }
        double secs = (double)(core_mono_us() - t0) / 1e6;
        if (implicit) {
            als_rank_metrics_t m;
            als_eval_ranking(&ui, &iu, &te, &U, &V, k, 0.0f, p.threads, &m);
            printf("%6d %6d %8g %7g | %8.4f %8.4f %8.4f %8.4f | %8.2f\n", p.rank, p.iterations,
                   p.lambda, p.alpha, m.precision, m.recall, m.map, m.ndcg, secs);
        } else {
            als_rating_metrics_t m;
            als_eval_rating(&ui, &iu, &te, &U, &V, &m);
            printf("%6d %6d %8g %7g | %8.4f %8.4f | %8.2f\n", p.rank, p.iterations, p.lambda,
                   p.alpha, m.rmse, m.mae, secs);
        }
        fflush(stdout);
        als_factors_fini(&U);
        als_factors_fini(&V);
    }
    if (implicit) {
        als_rank_metrics_t m;
        als_eval_ranking(&ui, &iu, &te, NULL, NULL, k, 0.0f, (int)c.threads, &m);
        printf("%-29s | %8.4f %8.4f %8.4f %8.4f |\n", "most-popular baseline", m.precision,
               m.recall, m.map, m.ndcg);
    }
    printf("(k = %d; metrics over %s)\n", k,
           implicit ? "test users with training data" : "test ratings of known users and items");
    rc = 0;
out:
    free(sel);
    als_csr_fini(&ui);
    als_csr_fini(&iu);
    als_csr_fini(&te);
    als_catlist_fini(&cats);
    als_obs_fini(&obs);
out_conf:
    core_conf_free(eval_opts, &c);
    return rc;
}

/* ---- serve ------------------------------------------------------------------------- */

typedef struct {
    const ml_conf_t *c;
    const als_engine_t *e;
} serve_src_t;

/* Opens the store just for the load: the event server may own the data dir. */
static int serve_loader(void *opaque, als_model_t **out, char *err, size_t errsz)
{
    serve_src_t *src = opaque;
    store_t *s;
    int rc = open_store(src->c, &s, err, errsz);
    if (rc)
        return rc;
    rc = als_store_model_load(s, src->e->app, src->e->id, out, err, errsz);
    store_close(s);
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy serve",
        .usage = "eddy serve --app NAME --engine engine.json [--data DIR] [--listen HOST:PORT]",
        .summary =
            "Serves the deployed model with PredictionIO's engine-server API:\n"
            "POST /queries.json {\"user\":\"u1\",\"num\":10} or {\"items\":[\"i1\"],\"num\":10},\n"
            "optional categories/categoryBlackList/whiteList/blackList; GET / (model info),\n"
            "POST /reload (switch to the newest model without dropping a query), GET /metrics.",
        .opts = serve_opts,
    };
    ml_conf_t c;
    als_engine_t e;
    char *pos[argc + 1];
    int npos = 0;
    int rc = cmd_begin(&cmd, argc, argv, &c, &e, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out_conf;
    rc = 2;
    char err[512], host[256];
    int port;
    if (core_parse_hostport(c.listen, host, sizeof(host), &port)) {
        fprintf(stderr, "eddy serve: bad --listen '%s' (want HOST:PORT)\n", c.listen);
        goto out_conf;
    }
    rc = 1;
    /* Block the stop signals before ANY thread exists: the store's first
     * open starts RocksDB's (process-wide, long-lived) background threads,
     * and a thread with SIGTERM unblocked would take the default action and
     * kill the process instead of letting sigwait below stop it cleanly. */
    sigset_t set;
    ml_stop_signals_init(&set);
    serve_src_t src = {&c, &e};
    als_model_t *m = NULL;
    int lrc = serve_loader(&src, &m, err, sizeof(err));
    if (lrc == CORE_ERR_NOT_FOUND)
        CORE_WARN("ml", "%s; answering 503 until POST /reload finds one", err);
    else if (lrc) {
        fprintf(stderr, "eddy serve: %s\n", err);
        goto out_conf;
    }
    als_server_conf_t sc = {.host = host,
                            .port = port,
                            .threads = (int)c.threads,
                            .unknown_popular = e.unknown_popular,
                            .loader = serve_loader,
                            .loader_opaque = &src};
    als_server_t *srv;
    if (als_server_start(&sc, m, &srv, err, sizeof(err))) {
        fprintf(stderr, "eddy serve: %s\n", err);
        goto out_conf;
    }
    CORE_INFO("ml", "serving %s/%s model v%lld on %s:%d", e.app, e.id,
              (long long)als_server_version(srv), host, als_server_port(srv));
    int sig;
    for (;;) {
        sig = ml_wait_stop(&set, c.reload_every_ms > 0 ? c.reload_every_ms : -1);
        if (sig > 0)
            break;
        /* Poll: read only the "latest" pointer; load when it moved. */
        store_t *s;
        int64_t latest = 0;
        if (open_store(&c, &s, err, sizeof(err)) == CORE_OK) {
            als_store_latest_version(s, e.app, e.id, &latest);
            store_close(s);
        }
        if (latest > als_server_version(srv)) {
            als_model_t *nm;
            if (serve_loader(&src, &nm, err, sizeof(err)) == CORE_OK) {
                int64_t before = als_server_version(srv);
                als_server_swap(srv, nm);
                CORE_INFO("ml", "serving model v%lld (was v%lld)", (long long)latest,
                          (long long)before);
            } else {
                CORE_WARN("ml", "cannot load model v%lld: %s", (long long)latest, err);
            }
        }
    }
    CORE_INFO("ml", "signal %d: stopping", sig);
    als_server_free(srv);
    rc = 0;
out_conf:
    core_conf_free(serve_opts, &c);
    return rc;
}

/* ---- run records (eddy model runs) ---------------------------------------------------- */

static void fmt_time(int64_t ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_runs(store_t *s, const char *app, const char *engine, size_t max)
{
    als_run_t *runs = NULL;
    size_t n = 0;
    if (als_run_list(s, app, engine, max, &runs, &n) != CORE_OK || n == 0) {
        printf("    (no runs recorded)\n");
        free(runs);
        return;
    }
    for (size_t j = 0; j < n; j++) {
        const als_run_t *r = &runs[j];
        char at[32], metric[ALS_MODEL_MAX_NAME + 48] = "";
        fmt_time(r->start_ms, at, sizeof(at));
        if (r->nmetrics)
            snprintf(metric, sizeof(metric), " %s %.4f", r->metrics[0].name, r->metrics[0].value);
        printf("    %s %-8s %6.1fs events %-9lld%s  %s v%lld: %s\n", at, r->trigger,
               (double)(r->end_ms - r->start_ms) / 1000.0, (long long)r->events, metric,
               r->failed ? "FAILED" : r->promoted ? "promoted" : "kept", (long long)r->version,
               r->reason);
    }
    free(runs);
}

/* ---- model (show / dump: the check tool for the model format) ------------------------ */

static const core_opt_t model_opts[] = {
    OPT_APP, OPT_ENGINE, OPT_DATA, OPT_STORE,
    {"runs", CORE_OPT_INT, "20", "runs: how many of the newest training runs to print",
     offsetof(ml_conf_t, runs)},
    CORE_OPT_END,
};

static json_t *floats_json(const float *x, int n)
{
    json_t *a = json_array();
    for (int j = 0; j < n; j++)
        json_array_append_new(a, json_real(x[j]));
    return a;
}

int cmd_model(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy model",
        .usage = "eddy model [show|dump|runs] --app NAME --engine engine.json [--data DIR]",
        .summary = "Reads the deployed model from the store, checks it (CRC and every\n"
                   "structural rule of the decoder) and prints it as JSON: `show` gives\n"
                   "version, params, metrics and counts; `dump` adds ids, categories, seen\n"
                   "items and all factors. `runs` prints the recorded training runs (manual\n"
                   "and scheduled), newest first.",
        .opts = model_opts,
        .takes_args = true,
    };
    ml_conf_t c;
    als_engine_t e;
    char *pos[argc + 1];
    int npos = 0;
    int rc = cmd_begin(&cmd, argc, argv, &c, &e, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out_conf;
    rc = 2;
    bool dump = false;
    if (npos > 1 || (npos == 1 && strcmp(pos[0], "show") && strcmp(pos[0], "dump") &&
                     strcmp(pos[0], "runs"))) {
        fprintf(stderr, "eddy model: want `show`, `dump` or `runs`\n");
        goto out_conf;
    }
    char err[512];
    if (npos == 1 && !strcmp(pos[0], "runs")) {
        store_t *s;
        if (c.runs < 1 || open_store(&c, &s, err, sizeof(err))) {
            fprintf(stderr, "eddy model: %s\n", c.runs < 1 ? "--runs must be >= 1" : err);
            goto out_conf;
        }
        printf("%s/%s\n", e.app, e.id);
        print_runs(s, e.app, e.id, (size_t)c.runs);
        store_close(s);
        rc = 0;
        goto out_conf;
    }
    dump = npos == 1 && !strcmp(pos[0], "dump");
    rc = 1;
    serve_src_t src = {&c, &e};
    als_model_t *m = NULL;
    if (serve_loader(&src, &m, err, sizeof(err))) {
        fprintf(stderr, "eddy model: %s\n", err);
        goto out_conf;
    }
    json_t *j = als_model_info_json(m);
    if (dump) {
        json_t *users = json_array(), *items = json_array(), *U = json_array(), *V = json_array();
        json_t *seen = json_object(), *cats = json_object();
        for (int32_t u = 0; u < m->users.n; u++) {
            json_array_append_new(users, json_string(als_idmap_name(&m->users, u)));
            json_array_append_new(U, floats_json(als_row(&m->U, u), m->U.rank));
            json_t *sv = json_array();
            for (int64_t x = m->seen.ptr[u]; x < m->seen.ptr[u + 1]; x++)
                json_array_append_new(sv, json_string(als_idmap_name(&m->items, m->seen.idx[x])));
            json_object_set_new(seen, als_idmap_name(&m->users, u), sv);
        }
        for (int32_t i = 0; i < m->items.n; i++) {
            json_array_append_new(items, json_string(als_idmap_name(&m->items, i)));
            json_array_append_new(V, floats_json(als_row(&m->V, i), m->V.rank));
            if (m->cat_ptr[i + 1] > m->cat_ptr[i]) {
                json_t *cv = json_array();
                for (int64_t x = m->cat_ptr[i]; x < m->cat_ptr[i + 1]; x++)
                    json_array_append_new(cv, json_string(als_idmap_name(&m->cats, m->cat_idx[x])));
                json_object_set_new(cats, als_idmap_name(&m->items, i), cv);
            }
        }
        json_object_set_new(j, "userIds", users);
        json_object_set_new(j, "itemIds", items);
        json_object_set_new(j, "userFactors", U);
        json_object_set_new(j, "itemFactors", V);
        json_object_set_new(j, "seen", seen);
        json_object_set_new(j, "categories", cats);
    }
    json_dumpf(j, stdout, JSON_INDENT(dump ? 0 : 2) | JSON_REAL_PRECISION(9));
    fputc('\n', stdout);
    json_decref(j);
    als_model_release(m);
    rc = 0;
out_conf:
    core_conf_free(model_opts, &c);
    return rc;
}

