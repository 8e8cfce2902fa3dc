/*
 * eddy up — the whole system on one machine: broker, schema registry, event
 * server, driver, workers and query server, as child processes of one
 * supervisor (cli/supervisor.h). Retraining schedules are the driver's
 * (`eddy schedule train --driver ...`): its store is DIR, so scheduled
 * `eddy train` runs reach the event store through the event server.
 *
 * Settings come, in increasing precedence, from defaults, a properties file
 * (--config FILE: "broker.port = 9092" lines, Kafka-style) and flags; the
 * table below is the single list of them (core_conf), which also prints
 * --help and is documented in the README.
 *
 * Data layout under --data DIR:
 *   DIR/broker/   topics and partition logs, committed offsets
 *   DIR/store/    the embedded event store (owned by the event server; the
 *                 other roles reach it through DIR/eventserver.addr)
 *   DIR/driver/   jobs, plans, commits, retraining schedules and their runs,
 *                 the driver's API token
 *   DIR/logs/     one log per role, rotated by size
 *   DIR/run/      status.json for `eddy status`;  DIR/eddy.lock: one `eddy up` per DIR
 *   DIR/engine.json  the query server's engine (written with defaults if absent)
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/supervisor.h"
#include "core/core_conf.h"
#include "core/core_log.h"

typedef struct up_conf {
    char *data, *config, *bind, *app, *engine, *sync;
    int64_t broker_port, broker_http_port, registry_port, eventserver_port, driver_port, serve_port;
    int64_t workers, worker_slots, partitions;
    int64_t reload_every_ms, log_max_bytes, log_keep, stop_grace_ms, ready_timeout_ms;
    char *broker_args, *registry_args, *eventserver_args, *driver_args, *worker_args, *serve_args;
} up_conf_t;

#define O(f) offsetof(up_conf_t, f)
static const core_opt_t up_opts[] = {
    {"data", CORE_OPT_STR, "./eddy-data", "data directory of every role", O(data)},
    {"config", CORE_OPT_STR, NULL, "properties file (key = value; keys as below with '.' for '-')", O(config)},
    {"bind", CORE_OPT_STR, "127.0.0.1", "address every role listens on", O(bind)},
    {"app", CORE_OPT_STR, "demo", "event-store app the query server serves", O(app)},
    {"engine", CORE_OPT_STR, NULL, "engine.json of the query server (default DIR/engine.json, written if absent)", O(engine)},
    {"broker-port", CORE_OPT_INT, "9092", "broker (Kafka protocol)", O(broker_port)},
    {"broker-http-port", CORE_OPT_INT, "8085", "broker lag and metrics HTTP (Burrow v3, /metrics)", O(broker_http_port)},
    {"registry-port", CORE_OPT_INT, "8081", "schema registry", O(registry_port)},
    {"eventserver-port", CORE_OPT_INT, "7070", "event server (PredictionIO Event API)", O(eventserver_port)},
    {"driver-port", CORE_OPT_INT, "7077", "micro-batch driver API", O(driver_port)},
    {"serve-port", CORE_OPT_INT, "8000", "query server (PredictionIO query API)", O(serve_port)},
    {"workers", CORE_OPT_INT, "0", "worker processes (0 = one per core)", O(workers)},
    {"worker-slots", CORE_OPT_INT, "1", "concurrent tasks per worker", O(worker_slots)},
    {"partitions", CORE_OPT_INT, "2", "partitions of auto-created topics", O(partitions)},
    {"eventserver-sync", CORE_OPT_STR, "always", "event store durability: always | interval", O(sync)},
    {"serve-reload-every", CORE_OPT_DURATION, "5s", "how often the query server looks for a newer model", O(reload_every_ms)},
    {"log-max-bytes", CORE_OPT_SIZE, "10MiB", "rotate a role's log at this size", O(log_max_bytes)},
    {"log-keep", CORE_OPT_INT, "5", "rotated log files kept per role", O(log_keep)},
    {"stop-grace", CORE_OPT_DURATION, "5s", "SIGTERM to SIGKILL, per role, when stopping", O(stop_grace_ms)},
    {"ready-timeout", CORE_OPT_DURATION, "60s", "how long a role may take to listen", O(ready_timeout_ms)},
    {"broker-args", CORE_OPT_STR, NULL, "extra flags for eddy broker (space-separated)", O(broker_args)},
    {"registry-args", CORE_OPT_STR, NULL, "extra flags for eddy registry", O(registry_args)},
    {"eventserver-args", CORE_OPT_STR, NULL, "extra flags for eddy eventserver", O(eventserver_args)},
    {"driver-args", CORE_OPT_STR, NULL, "extra flags for eddy driver", O(driver_args)},
    {"worker-args", CORE_OPT_STR, NULL, "extra flags for eddy worker", O(worker_args)},
    {"serve-args", CORE_OPT_STR, NULL, "extra flags for eddy serve", O(serve_args)},
    CORE_OPT_END,
};
#undef O

typedef struct builder {
    sup_role_spec_t *r;
    int argc;
} builder_t;

static void arg(builder_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(builder_t *b, const char *fmt, ...)
{
    if (b->argc >= SUP_MAX_ARGS - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    b->r->argv[b->argc++] = s;
    b->r->argv[b->argc] = NULL;
}

static void extra(builder_t *b, const char *s)
{
    if (!s)
        return;
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        arg(b, "%s", t);
    free(copy);
}

static builder_t role(sup_role_spec_t *roles, int *n, const char *exe, const char *name, int port,
                      const char *host)
{
    sup_role_spec_t *r = &roles[(*n)++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->host, sizeof r->host, "%s", host);
    r->port = port;
    builder_t b = {r, 0};
    arg(&b, "%s", exe);
    return b;
}

static int write_default_engine(const char *path, const char *app)
{
    FILE *f = fopen(path, "wx"); /* never overwrite a user's engine */
    if (!f)
        return errno == EEXIST ? 0 : -1;
    fprintf(f, "{\n  \"id\": \"default\",\n  \"description\": \"written by eddy up; edit freely\",\n"
               "  \"engineFactory\": \"eddy.als\",\n"
               "  \"datasource\": {\"params\": {\"appName\": \"%s\"}},\n"
               "  \"algorithms\": [{\"name\": \"als\", \"params\": {\"implicitPrefs\": true}}]\n}\n",
            app);
    return fclose(f);
}

static int build_roles(const up_conf_t *c, const char *exe, const char *engine, sup_role_spec_t *roles)
{
    int n = 0;
    const char *h = c->bind;
    builder_t b = role(roles, &n, exe, "broker", (int)c->broker_port, h);
    arg(&b, "broker");
    arg(&b, "--data=%s/broker", c->data);
    arg(&b, "--listen=%s:%lld", h, (long long)c->broker_port);
    arg(&b, "--http-listen=%s:%lld", h, (long long)c->broker_http_port);
    arg(&b, "--num-partitions=%lld", (long long)c->partitions);
    extra(&b, c->broker_args);

    b = role(roles, &n, exe, "registry", (int)c->registry_port, h);
    arg(&b, "registry");
    arg(&b, "--broker=%s:%lld", h, (long long)c->broker_port);
    arg(&b, "--listen=%s:%lld", h, (long long)c->registry_port);
    extra(&b, c->registry_args);

    b = role(roles, &n, exe, "eventserver", (int)c->eventserver_port, h);
    arg(&b, "eventserver");
    arg(&b, "--data=%s", c->data);
    arg(&b, "--listen=%s:%lld", h, (long long)c->eventserver_port);
    arg(&b, "--sync=%s", c->sync);
    extra(&b, c->eventserver_args);

    b = role(roles, &n, exe, "driver", (int)c->driver_port, h);
    arg(&b, "driver");
    arg(&b, "--data=%s/driver", c->data);
    arg(&b, "--listen=%s:%lld", h, (long long)c->driver_port);
    arg(&b, "--broker=%s:%lld", h, (long long)c->broker_port);
    arg(&b, "--store-dir=%s", c->data);
    extra(&b, c->driver_args);

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t workers = c->workers > 0 ? c->workers : (cores > 0 ? cores : 1);
    for (int64_t i = 1; i <= workers && n < SUP_MAX_ROLES - 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "worker-%lld", (long long)i);
        b = role(roles, &n, exe, name, 0, h);
        arg(&b, "worker");
        arg(&b, "--driver=%s:%lld", h, (long long)c->driver_port);
        arg(&b, "--data=%s/driver", c->data);
        arg(&b, "--slots=%lld", (long long)c->worker_slots);
        extra(&b, c->worker_args);
    }
    b = role(roles, &n, exe, "serve", (int)c->serve_port, h);
    arg(&b, "serve");
    arg(&b, "--app=%s", c->app);
    arg(&b, "--engine=%s", engine);
    arg(&b, "--data=%s", c->data);
    arg(&b, "--listen=%s:%lld", h, (long long)c->serve_port);
    arg(&b, "--reload-every=%lldms", (long long)c->reload_every_ms);
    extra(&b, c->serve_args);
    return n;
}

/* DIR/run/endpoints.json: where each role listens, for `eddy status`. */
static void write_endpoints(const up_conf_t *c)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/run/endpoints.json", c->data);
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    const char *h = c->bind;
    fprintf(f, "{\"broker\":\"%s:%lld\",\"broker_http\":\"%s:%lld\",\"registry\":\"%s:%lld\","
               "\"eventserver\":\"%s:%lld\",\"driver\":\"%s:%lld\",\"serve\":\"%s:%lld\","
               "\"app\":\"%s\"}\n",
            h, (long long)c->broker_port, h, (long long)c->broker_http_port, h,
            (long long)c->registry_port, h, (long long)c->eventserver_port, h,
            (long long)c->driver_port, h, (long long)c->serve_port, c->app);
    fclose(f);
}

static const core_cmd_t up_cmd = {
    .name = "eddy up",
    .usage = "eddy up [--data DIR] [--config FILE] [--bind ADDR] [OPTIONS]",
    .summary = "Starts the whole system on this machine under one supervisor: broker,\n"
               "schema registry, event server, driver (jobs and retraining schedules),\n"
               "workers and query server. Crashed roles restart with back-off;\n"
               "SIGTERM/^C stops all in dependency order. Logs: DIR/logs. See\n"
               "`eddy status --data DIR`. Retraining: eddy schedule train --driver\n"
               "127.0.0.1:7077 --driver-data DIR/driver ... (the runs use DIR's store).\n"
               "Every option can also be set in the --config file as e.g. broker.port = 9092.",
    .opts = up_opts,
};

/* With --config: starts again from the defaults, reads the file, then the
 * flags once more, so flags win over the file. */
static int load_config_file(up_conf_t *c, int argc, char **argv, char *err, size_t errsz)
{
    if (!c->config)
        return 0;
    char *pos[argc + 1];
    int npos;
    bool help;
    char *file = strdup(c->config);
    core_conf_free(up_opts, c);
    core_conf_defaults(up_opts, c, err, errsz);
    int rc = core_conf_load_file(up_opts, c, file, NULL, err, errsz);
    free(file);
    if (!rc)
        rc = core_conf_parse_args(up_opts, c, argc, argv, pos, &npos, &help, err, errsz);
    return rc;
}

int cmd_up(int argc, char **argv)
{
    up_conf_t c;
    char err[1024];
    char *pos[argc + 1];
    int npos;
    int rc = core_conf_begin(&up_cmd, &c, argc, argv, pos, &npos);
    if (rc == CORE_CONF_RUN && load_config_file(&c, argc, argv, err, sizeof err)) {
        fprintf(stderr, "eddy up: %s\n", err);
        rc = 2;
    }
    if (rc != CORE_CONF_RUN) {
        core_conf_free(up_opts, &c);
        return rc;
    }
    if (mkdir(c.data, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "eddy up: cannot create %s: %s\n", c.data, strerror(errno));
        core_conf_free(up_opts, &c);
        return 1;
    }
    char data_abs[PATH_MAX];
    if (!realpath(c.data, data_abs)) {
        fprintf(stderr, "eddy up: %s: %s\n", c.data, strerror(errno));
        core_conf_free(up_opts, &c);
        return 1;
    }
    free(c.data);
    c.data = strdup(data_abs);
    int lock = sup_lock(c.data, err, sizeof err);
    if (lock < 0) {
        fprintf(stderr, "eddy up: %s\n", err);
        core_conf_free(up_opts, &c);
        return 1;
    }
    char sub[PATH_MAX + 16], engine[PATH_MAX + 32], exe[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/broker", c.data);
    mkdir(sub, 0755);
    snprintf(sub, sizeof sub, "%s/driver", c.data);
    mkdir(sub, 0755);
    if (c.engine)
        snprintf(engine, sizeof engine, "%s", c.engine);
    else {
        snprintf(engine, sizeof engine, "%s/engine.json", c.data);
        if (write_default_engine(engine, c.app))
            fprintf(stderr, "eddy up: cannot write %s: %s\n", engine, strerror(errno));
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "eddy up: cannot find the eddy executable: %s\n", strerror(errno));
        core_conf_free(up_opts, &c);
        return 1;
    }
    exe[n] = 0;
    snprintf(sub, sizeof sub, "%s/run", c.data);
    mkdir(sub, 0755);
    write_endpoints(&c);
    sup_role_spec_t roles[SUP_MAX_ROLES];
    int nroles = build_roles(&c, exe, engine, roles);
    CORE_INFO("up", "data %s: starting %d roles on %s", c.data, nroles, c.bind);
    sup_conf_t sc = {.data_dir = c.data, .log_max_bytes = c.log_max_bytes, .log_keep = (int)c.log_keep,
                     .stop_grace_ms = c.stop_grace_ms, .ready_timeout_ms = c.ready_timeout_ms};
    rc = sup_run(&sc, roles, nroles);
    for (int i = 0; i < nroles; i++)
        for (int j = 0; roles[i].argv[j]; j++)
            free(roles[i].argv[j]);
    close(lock);
    core_conf_free(up_opts, &c);
    return rc;
}
