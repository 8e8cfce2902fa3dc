/*
 * eddy schedule — retraining schedules, kept and run by the driver.
 *
 * `eddy schedule train` registers "run `eddy train` for this app and engine
 * every N / at these cron times" with the driver's scheduled commands
 * (PUT /v1/schedules/NAME, runtime/rt_sched.h): the engine.json TEXT travels
 * with the schedule, the store is named explicitly (--data/--store) or is the
 * driver's own. `list` shows the driver's schedules and their runs (start,
 * duration, outcome, events used, first metric, promoted or why not),
 * `delete` removes one, `run-now` starts one immediately. The driver records
 * every run; `eddy train` also records it in the store (eddy model runs).
 *
 * This file only speaks HTTP to the driver (core_httpc): nothing here
 * depends on runtime/ internals.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/core_alloc.h"
#include "core/core_conf.h"
#include "core/core_cron.h"
#include "core/core_err.h"
#include "core/core_fs.h"
#include "core/core_httpc.h"
#include "ml/als_engine.h"

/* engine.json text sent with a schedule (the driver enforces its own cap). */
#define SCHED_MAX_ENGINE_JSON (256 * 1024)
/* Schedule names the driver accepts: 1..64 of [A-Za-z0-9._-]. */
#define SCHED_NAME_MAX 64

typedef struct sched_cli {
    char *app, *engine, *data, *store, *cron, *driver, *name, *token, *driver_data, *tolerance;
    int64_t every_ms, timeout_ms, threads, runs;
    bool force;
} sched_cli_t;

#define O(f) offsetof(sched_cli_t, f)
static const core_opt_t sched_opts[] = {
    {"driver", CORE_OPT_STR, "127.0.0.1:7077", "driver API address (HOST:PORT or http://HOST:PORT)",
     O(driver)},
    {"token", CORE_OPT_STR, NULL,
     "driver API token (default: $EDDY_TOKEN, else --driver-data DIR/token)", O(token)},
    {"driver-data", CORE_OPT_STR, NULL, "the driver's data dir, to read its token", O(driver_data)},
    {"app", CORE_OPT_STR, NULL, "train: app (default: engine.json datasource.params.appName)",
     O(app)},
    {"engine", CORE_OPT_STR, "engine.json",
     "train: engine.json; its text is stored with the schedule", O(engine)},
    {"data", CORE_OPT_STR, NULL,
     "train: event-store data dir the runs read (default: the driver's store)", O(data)},
    {"store", CORE_OPT_STR, NULL,
     "train: store URL instead of --data (rocksdb:DIR, redis://..., eddy://...)", O(store)},
    {"every", CORE_OPT_DURATION, "0", "train: run every DURATION (e.g. 1h, 30m; at least 1s)",
     O(every_ms)},
    {"cron", CORE_OPT_STR, NULL, "train: cron expression in UTC, e.g. \"0 3 * * *\" or @daily",
     O(cron)},
    {"name", CORE_OPT_STR, NULL, "train: schedule name (default: train-<app>-<engine id>, printed)",
     O(name)},
    {"timeout", CORE_OPT_DURATION, "1h",
     "train: a run still going after this is killed and recorded as timeout", O(timeout_ms)},
    {"tolerance", CORE_OPT_STR, "0.02", "train: quality-gate tolerance of the scheduled runs",
     O(tolerance)},
    {"threads", CORE_OPT_INT, "0", "train: training threads per run (0 = all cores)", O(threads)},
    {"force", CORE_OPT_BOOL, "false", "train: promote every run even if the quality gate says no",
     O(force)},
    {"runs", CORE_OPT_INT, "5", "list: runs shown per schedule (newest first)", O(runs)},
    CORE_OPT_END,
};
#undef O

/* --token, else $EDDY_TOKEN, else DIR/token. Heap string or NULL. */
static char *resolve_token(const sched_cli_t *c)
{
    if (c->token && *c->token)
        return core_xstrdup(c->token);
    const char *e = getenv("EDDY_TOKEN");
    if (e && *e)
        return core_xstrdup(e);
    if (!c->driver_data)
        return NULL;
    char path[PATH_MAX + 16], buf[256];
    snprintf(path, sizeof path, "%s/token", c->driver_data);
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *ok = fgets(buf, sizeof buf, f);
    fclose(f);
    if (!ok)
        return NULL;
    buf[strcspn(buf, "\r\n")] = 0;
    return core_xstrdup(buf);
}

/* One request to the driver. Returns the HTTP status (0 when none came, with
 * the message printed); *out gets the parsed JSON body (new reference) or NULL. */
static long driver_call(const sched_cli_t *c, const char *method, const char *path,
                        const char *body, json_t **out)
{
    char url[1024], auth[300];
    const char *base = c->driver;
    bool has_scheme = !strncmp(base, "http://", 7);
    size_t bl = strlen(base);
    snprintf(url, sizeof url, "%s%.*s%s", has_scheme ? "" : "http://",
             (int)(bl && base[bl - 1] == '/' ? bl - 1 : bl), base, path);
    char *token = resolve_token(c);
    const char *headers[2] = {NULL, NULL};
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        headers[0] = auth;
    }
    core_httpc_req_t req = {.method = method,
                            .url = url,
                            .content_type = body ? "application/json" : NULL,
                            .body = body,
                            .body_len = body ? strlen(body) : 0,
                            .headers = headers};
    core_httpc_resp_t resp;
    core_httpc_resp_init(&resp);
    char es[512];
    long st = 0;
    *out = NULL;
    if (core_httpc_do(&req, &resp, es, sizeof es)) {
        fprintf(stderr, "eddy schedule: driver at %s: %s\n", c->driver, es);
    } else {
        st = resp.status;
        *out = json_loads(core_httpc_text(&resp), 0, NULL);
    }
    core_httpc_resp_fini(&resp);
    free(token);
    return st;
}

/* Prints the driver's error message of a non-2xx answer. */
static int driver_error(long st, json_t *o, const char *what)
{
    if (!st)
        return 1;
    const char *msg = json_string_value(json_object_get(o, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(o, "error"));
    fprintf(stderr, "eddy schedule %s: the driver answered %ld: %s%s\n", what, st,
            msg ? msg : "(no message)",
            st == 401 ? " (give --token, EDDY_TOKEN or --driver-data DIR)" : "");
    return 1;
}

static void fmt_time(int64_t ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void fmt_duration(int64_t ms, char *buf, size_t n)
{
    if (ms % 3600000 == 0)
        snprintf(buf, n, "%lldh", (long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(buf, n, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, n, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, n, "%lldms", (long long)ms);
}

/* ---- train (register) ------------------------------------------------------------ */

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > SCHED_NAME_MAX || s[0] == '.' || s[0] == '_' || s[0] == '-')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static char *read_text(const char *path, char *es, size_t esz)
{
    char *buf;
    size_t n;
    int rc = core_fs_read_file(path, SCHED_MAX_ENGINE_JSON, &buf, &n);
    if (rc == CORE_ERR_TOO_LARGE)
        snprintf(es, esz, "%s: larger than %d bytes", path, SCHED_MAX_ENGINE_JSON);
    else if (rc)
        snprintf(es, esz, "%s: %s", path, strerror(rc));
    return rc ? NULL : buf;
}

static int sched_train(const sched_cli_t *c)
{
    char es[600];
    als_engine_t e;
    if (als_engine_load(c->engine, &e, es, sizeof es)) {
        fprintf(stderr, "eddy schedule train: %s\n", es);
        return 2;
    }
    const char *app = c->app ? c->app : e.app;
    if (!*app) {
        fprintf(stderr,
                "eddy schedule train: no app: give --app NAME or datasource.params.appName\n");
        return 2;
    }
    bool has_cron = c->cron && *c->cron;
    if (has_cron == (c->every_ms != 0)) {
        fprintf(stderr,
                "eddy schedule train: give exactly one of --every DURATION and --cron EXPR\n");
        return 2;
    }
    if (has_cron) {
        core_cron_t cc;
        if (core_cron_parse(c->cron, &cc, es, sizeof es)) {
            fprintf(stderr, "eddy schedule train: --cron: %s\n", es);
            return 2;
        }
    } else if (c->every_ms < 1000) {
        fprintf(stderr, "eddy schedule train: --every must be at least 1s\n");
        return 2;
    }
    if (c->data && c->store) {
        fprintf(stderr, "eddy schedule train: give --data or --store, not both\n");
        return 2;
    }
    char name[2 * ALS_MODEL_MAX_NAME + 16];
    snprintf(name, sizeof name, "%s", c->name && strlen(c->name) <= SCHED_NAME_MAX ? c->name : "");
    if (!c->name)
        snprintf(name, sizeof name, "train-%s-%s", app, e.id);
    if (!name_ok(name)) {
        fprintf(stderr,
                "eddy schedule train: '%s' is not a valid schedule name (1-%d of "
                "[A-Za-z0-9._-]): give --name\n",
                name, SCHED_NAME_MAX);
        return 2;
    }
    char *text = read_text(c->engine, es, sizeof es);
    if (!text) {
        fprintf(stderr, "eddy schedule train: %s\n", es);
        return 2;
    }
    /* The runs happen in the driver's process tree, elsewhere: paths must be absolute. */
    char data_abs[PATH_MAX] = "";
    if (c->data && !realpath(c->data, data_abs)) {
        fprintf(stderr, "eddy schedule train: --data %s: %s\n", c->data, strerror(errno));
        free(text);
        return 2;
    }
    json_t *args = json_array();
    char a[PATH_MAX + 64];
    snprintf(a, sizeof a, "--app=%s", app);
    json_array_append_new(args, json_string(a));
    if (c->data) {
        snprintf(a, sizeof a, "--data=%s", data_abs);
        json_array_append_new(args, json_string(a));
    } else if (c->store) {
        snprintf(a, sizeof a, "--store=%s", c->store);
        json_array_append_new(args, json_string(a));
    }
    snprintf(a, sizeof a, "--tolerance=%s", c->tolerance);
    json_array_append_new(args, json_string(a));
    if (c->threads) {
        snprintf(a, sizeof a, "--threads=%lld", (long long)c->threads);
        json_array_append_new(args, json_string(a));
    }
    if (c->force)
        json_array_append_new(args, json_string("--force"));
    json_t *body = json_pack("{s:s,s:o,s:I,s:{s:s}}", "command", "train", "args", args,
                             "timeout_ms", (json_int_t)c->timeout_ms, "files", "engine", text);
    if (has_cron)
        json_object_set_new(body, "cron", json_string(c->cron));
    else
        json_object_set_new(body, "every_ms", json_integer(c->every_ms));
    char *txt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    free(text);
    char path[sizeof name + 32];
    snprintf(path, sizeof path, "/v1/schedules/%s", name);
    json_t *o = NULL;
    long st = driver_call(c, "PUT", path, txt, &o);
    free(txt);
    int rc = 0;
    if (st != 200 && st != 201) {
        rc = driver_error(st, o, "train");
    } else {
        char when[32], every[32], timeout[32];
        fmt_time(json_integer_value(json_object_get(o, "next_ms")), when, sizeof when);
        fmt_duration(c->every_ms, every, sizeof every);
        fmt_duration(c->timeout_ms, timeout, sizeof timeout);
        printf("schedule %s %s with the driver at %s: eddy train %s/%s %s%s%s (timeout %s), "
               "store %s; next run %s\n",
               name, st == 201 ? "registered" : "replaced", c->driver, app, e.id,
               has_cron ? "cron \"" : "every ", has_cron ? c->cron : every,
               has_cron ? "\" (UTC)" : "", timeout,
               c->data    ? data_abs
               : c->store ? c->store
                          : "(the driver's)",
               when);
    }
    json_decref(o);
    return rc;
}

/* ---- list --------------------------------------------------------------------------- */

/* "shop/v1" from a schedule's args and engine text. */
static void sched_target(json_t *s, char *out, size_t n)
{
    const char *app = "?", *eng = "?";
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(s, "args"), i, v)
    {
        const char *a = json_string_value(v);
        if (a && !strncmp(a, "--app=", 6))
            app = a + 6;
    }
    const char *text = json_string_value(json_object_get(json_object_get(s, "files"), "engine"));
    json_t *ej = text ? json_loads(text, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(ej, "id"));
    if (id)
        eng = id;
    snprintf(out, n, "%s/%s", app, eng);
    json_decref(ej);
}

static void print_run(json_t *r)
{
    char at[32], dur[32] = "-";
    int64_t start = json_integer_value(json_object_get(r, "start_ms"));
    json_t *end = json_object_get(r, "end_ms");
    fmt_time(start, at, sizeof at);
    if (json_is_integer(end))
        snprintf(dur, sizeof dur, "%.1fs", (double)(json_integer_value(end) - start) / 1000.0);
    const char *st = json_string_value(json_object_get(r, "status"));
    json_t *res = json_object_get(r, "result");
    printf("    run %-4lld %s %7s %-11s", (long long)json_integer_value(json_object_get(r, "run")),
           at, dur, st ? st : "?");
    if (json_is_object(res)) {
        printf(" events %-8lld", (long long)json_integer_value(json_object_get(res, "events")));
        const char *mk;
        json_t *mv;
        json_object_foreach(json_object_get(res, "metrics"), mk, mv)
        {
            printf(" %s %.4f", mk, json_number_value(mv));
            break; /* the gate's metric comes first */
        }
        const char *reason = json_string_value(json_object_get(res, "reason"));
        long long ver = (long long)json_integer_value(json_object_get(res, "version"));
        if (json_is_true(json_object_get(res, "promoted")))
            printf("  promoted v%lld", ver);
        else if (!json_is_true(json_object_get(res, "failed")))
            printf("  not promoted (still v%lld): %s", ver, reason ? reason : "");
    }
    const char *err = json_string_value(json_object_get(r, "error"));
    if (err && strcmp(st ? st : "", "ok"))
        printf("  %s", err);
    printf("\n");
}

static int sched_list(const sched_cli_t *c)
{
    json_t *o = NULL;
    long st = driver_call(c, "GET", "/v1/schedules", NULL, &o);
    if (st != 200) {
        int rc = driver_error(st, o, "list");
        json_decref(o);
        return rc;
    }
    json_t *all = json_object_get(o, "schedules");
    if (!json_array_size(all))
        printf("no schedules\n");
    size_t i;
    json_t *s;
    json_array_foreach(all, i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        char path[256];
        snprintf(path, sizeof path, "/v1/schedules/%s?runs=%lld", name, (long long)c->runs);
        json_t *d = NULL;
        if (driver_call(c, "GET", path, NULL, &d) != 200) { /* deleted meanwhile */
            json_decref(d);
            continue;
        }
        char target[300], when[32], every[32];
        sched_target(d, target, sizeof target);
        fmt_time(json_integer_value(json_object_get(d, "next_ms")), when, sizeof when);
        const char *cron = json_string_value(json_object_get(d, "cron"));
        fmt_duration(json_integer_value(json_object_get(d, "every_ms")), every, sizeof every);
        printf("%s  %s %s  %s%s%s  next %s%s\n", name,
               json_string_value(json_object_get(d, "command")), target,
               cron && *cron ? "cron \"" : "every ", cron && *cron ? cron : every,
               cron && *cron ? "\"" : "", when,
               json_is_true(json_object_get(d, "running")) ? "  (running)" : "");
        json_t *runs = json_object_get(d, "runs");
        if (!json_array_size(runs))
            printf("    (no runs yet)\n");
        size_t j;
        json_t *r;
        json_array_foreach(runs, j, r) print_run(r);
        json_decref(d);
    }
    json_decref(o);
    return 0;
}

/* ---- the command ------------------------------------------------------------------ */

static const core_cmd_t sched_cmd = {
    .name = "eddy schedule",
    .usage = "eddy schedule train --app NAME --engine FILE [--data DIR | --store "
             "URL] (--every 1h | --cron EXPR) "
             "[--name N] [--driver HOST:PORT]\n"
             "       eddy schedule list [--driver HOST:PORT] [--runs N]\n"
             "       eddy schedule delete NAME [--driver HOST:PORT]\n"
             "       eddy schedule run-now NAME [--driver HOST:PORT]",
    .summary = "Retraining schedules, kept and run by the driver (eddy driver; `eddy up`\n"
               "runs one). `train` registers one: the driver runs `eddy train` with the\n"
               "stored engine.json text every DURATION or at cron times (UTC), one run at\n"
               "a time, and records each run. `list` shows schedules and their runs\n"
               "(start, duration, status, events used, metric, promoted or why not).\n"
               "`delete NAME` removes one (killing a run in progress), `run-now NAME`\n"
               "starts a run at once. Servers pick promoted models up with\n"
               "`eddy serve --reload-every`.",
    .opts = sched_opts,
    .takes_args = true,
};

int cmd_schedule(int argc, char **argv)
{
    sched_cli_t c;
    char *pos[argc + 1];
    int npos;
    memset(&c, 0, sizeof c);
    int rc = core_conf_begin(&sched_cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    rc = 2;
    const char *sub = npos ? pos[0] : "";
    if (c.runs < 0 || c.runs > 50) {
        fprintf(stderr, "eddy schedule: --runs must be 0..50\n");
        goto out;
    }
    if (!strcmp(sub, "train") && npos == 1) {
        rc = sched_train(&c);
    } else if (!strcmp(sub, "list") && npos == 1) {
        rc = sched_list(&c);
    } else if ((!strcmp(sub, "delete") || !strcmp(sub, "run-now")) && npos == 2) {
        bool del = !strcmp(sub, "delete");
        if (!name_ok(pos[1])) {
            fprintf(stderr, "eddy schedule %s: '%s' is not a schedule name\n", sub, pos[1]);
            goto out;
        }
        char path[256];
        snprintf(path, sizeof path, "/v1/schedules/%s%s", pos[1], del ? "" : "/run");
        json_t *o = NULL;
        long st = driver_call(&c, del ? "DELETE" : "POST", path, NULL, &o);
        if (st != (del ? 200 : 202)) {
            rc = driver_error(st, o, sub);
        } else {
            if (del)
                printf("deleted schedule %s%s\n", pos[1],
                       json_is_true(json_object_get(o, "killed_run"))
                           ? " (its running run was killed)"
                           : "");
            else
                printf("run %lld of %s is starting (see eddy schedule list)\n",
                       (long long)json_integer_value(json_object_get(o, "run")), pos[1]);
            rc = 0;
        }
        json_decref(o);
    } else {
        fprintf(stderr,
                "eddy schedule: want train | list | delete NAME | run-now NAME\nusage: %s\n",
                sched_cmd.usage);
    }
out:
    core_conf_free(sched_opts, &c);
    return rc;
}
