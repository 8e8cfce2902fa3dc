/*
 * eddy status — what `eddy up` runs on a data directory, and how it is doing:
 * each role (state, pid, port, uptime, restarts), topics with their end
 * offsets and produce rates, consumer groups with their Burrow status and
 * lag, jobs with their last batch, retraining schedules with their last run,
 * and the deployed model. It reads
 * DIR/run/status.json and DIR/run/endpoints.json (written by `eddy up`) and
 * asks the roles themselves over their public protocols (Kafka, HTTP).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "cli/cli.h"
#include "core/core_conf.h"
#include "core/core_httpc.h"
#include "core/core_time.h"

typedef struct status_conf {
    char *data;
    int64_t sample_ms;
    bool json;
} status_conf_t;

static const core_opt_t status_opts[] = {
    {"data", CORE_OPT_STR, "./eddy-data", "data directory of `eddy up`", offsetof(status_conf_t, data)},
    {"sample", CORE_OPT_DURATION, "1s", "interval over which topic rates are measured (0 = no rates)",
     offsetof(status_conf_t, sample_ms)},
    CORE_OPT_END,
};

static json_t *load_json(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/run/%s", dir, name);
    return json_load_file(path, 0, NULL);
}

static json_t *http_json(const char *hostport, const char *path)
{
    char url[512], err[256];
    snprintf(url, sizeof url, "http://%s%s", hostport, path);
    core_httpc_req_t req = {.method = "GET", .url = url, .timeout_ms = 3000};
    core_httpc_resp_t resp;
    core_httpc_resp_init(&resp);
    json_t *j = NULL;
    if (!core_httpc_do(&req, &resp, err, sizeof err) && resp.status == 200)
        j = json_loads(core_httpc_text(&resp), 0, NULL);
    core_httpc_resp_fini(&resp);
    return j;
}

static void print_roles(json_t *st)
{
    printf("ROLES (supervisor pid %lld)\n", (long long)json_integer_value(json_object_get(st, "supervisor_pid")));
    printf("  %-12s %-10s %8s %6s %10s %8s\n", "ROLE", "STATE", "PID", "PORT", "UPTIME", "RESTARTS");
    size_t i;
    json_t *r;
    int64_t now = core_wall_ms();
    json_array_foreach(json_object_get(st, "roles"), i, r)
    {
        int pid = (int)json_integer_value(json_object_get(r, "pid"));
        const char *state = json_string_value(json_object_get(r, "state"));
        bool alive = pid > 0 && kill(pid, 0) == 0;
        if (!alive)
            state = "down";
        int64_t up = alive ? (now - json_integer_value(json_object_get(r, "started_ms"))) / 1000 : 0;
        char port[16] = "-";
        if (json_integer_value(json_object_get(r, "port")))
            snprintf(port, sizeof port, "%lld", (long long)json_integer_value(json_object_get(r, "port")));
        printf("  %-12s %-10s %8d %6s %7lldm%02llds %8lld\n", json_string_value(json_object_get(r, "name")),
               state, alive ? pid : 0, port, (long long)(up / 60), (long long)(up % 60),
               (long long)json_integer_value(json_object_get(r, "restarts")));
    }
}

/* Sum of end offsets per topic. */
static int topic_offsets(rd_kafka_t *rk, const struct rd_kafka_metadata *md, int64_t *ends)
{
    for (int t = 0; t < md->topic_cnt; t++) {
        ends[t] = 0;
        for (int p = 0; p < md->topics[t].partition_cnt; p++) {
            int64_t lo, hi;
            if (!rd_kafka_query_watermark_offsets(rk, md->topics[t].topic,
                                                  md->topics[t].partitions[p].id, &lo, &hi, 3000))
                ends[t] += hi;
        }
    }
    return 0;
}

static void print_topics(const char *broker, int64_t sample_ms)
{
    char err[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "bootstrap.servers", broker, err, sizeof err);
    rd_kafka_conf_set(kc, "log_level", "0", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(kc);
        return;
    }
    const struct rd_kafka_metadata *md;
    printf("\nTOPICS (broker %s)\n", broker);
    if (rd_kafka_metadata(rk, 1, NULL, &md, 3000)) {
        printf("  (broker not reachable)\n");
        rd_kafka_destroy(rk);
        return;
    }
    int64_t *a = calloc((size_t)md->topic_cnt + 1, sizeof *a), *b = calloc((size_t)md->topic_cnt + 1, sizeof *b);
    topic_offsets(rk, md, a);
    if (sample_ms > 0) {
        usleep((useconds_t)sample_ms * 1000);
        topic_offsets(rk, md, b);
    }
    printf("  %-28s %10s %14s %12s\n", "TOPIC", "PARTITIONS", "END OFFSETS", "RECORDS/S");
    for (int t = 0; t < md->topic_cnt; t++) {
        double rate = sample_ms > 0 ? (double)(b[t] - a[t]) * 1000.0 / (double)sample_ms : 0;
        printf("  %-28s %10d %14" PRId64 " %12.0f\n", md->topics[t].topic, md->topics[t].partition_cnt,
               sample_ms > 0 ? b[t] : a[t], rate);
    }
    free(a);
    free(b);
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
}

static void print_groups(const char *http)
{
    printf("\nCONSUMER GROUPS (lag status, Burrow rules; %s)\n", http);
    json_t *list = http_json(http, "/v3/kafka/local/consumer");
    json_t *names = json_object_get(list, "consumers");
    if (!json_array_size(names)) {
        printf("  %s\n", list ? "(none)" : "(lag endpoint not reachable)");
        json_decref(list);
        return;
    }
    printf("  %-28s %-8s %12s\n", "GROUP", "STATUS", "TOTAL LAG");
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n)
    {
        char path[512];
        snprintf(path, sizeof path, "/v3/kafka/local/consumer/%s/status", json_string_value(n));
        json_t *st = http_json(http, path);
        json_t *s = json_object_get(st, "status");
        printf("  %-28s %-8s %12lld\n", json_string_value(n),
               json_string_value(json_object_get(s, "status")) ?: "?",
               (long long)json_integer_value(json_object_get(s, "totallag")));
        json_decref(st);
    }
    json_decref(list);
}

static void print_jobs(const char *driver)
{
    printf("\nJOBS (driver %s)\n", driver);
    json_t *j = http_json(driver, "/v1/jobs");
    json_t *jobs = json_is_array(j) ? j : json_object_get(j, "jobs");
    if (!json_array_size(jobs)) {
        printf("  %s\n", j ? "(none)" : "(driver not reachable)");
        json_decref(j);
        return;
    }
    printf("  %-20s %-8s %8s %10s %12s %10s  %s\n", "JOB", "STATUS", "BATCHES", "RECORDS",
           "LAST BATCH", "RECORDS/S", "COUNTERS");
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job)
    {
        char *counters = json_dumps(json_object_get(job, "counters"), JSON_COMPACT);
        const char *error = json_string_value(json_object_get(job, "error"));
        printf("  %-20s %-8s %8lld %10lld %10lldms %10.0f  %s%s%s\n",
               json_string_value(json_object_get(job, "name")) ?: "?",
               json_string_value(json_object_get(job, "status")) ?: "?",
               (long long)json_integer_value(json_object_get(job, "batches")),
               (long long)json_integer_value(json_object_get(job, "records")),
               (long long)json_integer_value(json_object_get(job, "last_batch_duration_ms")),
               json_number_value(json_object_get(job, "last_batch_records_per_s")),
               counters ? counters : "{}", error ? "  error: " : "", error ? error : "");
        free(counters);
    }
    json_decref(j);
}

static void print_schedules(const char *driver)
{
    printf("\nSCHEDULES (driver %s; details: eddy schedule list)\n", driver);
    json_t *j = http_json(driver, "/v1/schedules");
    json_t *all = json_object_get(j, "schedules");
    if (!json_array_size(all)) {
        printf("  %s\n", j ? "(none)" : "(driver not reachable)");
        json_decref(j);
        return;
    }
    printf("  %-24s %-8s %-22s %6s  %s\n", "SCHEDULE", "COMMAND", "EVERY / CRON", "RUNS",
           "LAST RUN");
    size_t i;
    json_t *s;
    json_array_foreach(all, i, s)
    {
        char when[64];
        const char *cron = json_string_value(json_object_get(s, "cron"));
        if (cron && *cron)
            snprintf(when, sizeof when, "\"%s\"", cron);
        else
            snprintf(when, sizeof when, "%llds",
                     (long long)(json_integer_value(json_object_get(s, "every_ms")) / 1000));
        json_t *last = json_array_get(json_object_get(s, "runs"), 0);
        json_t *res = json_object_get(last, "result");
        const char *st = json_string_value(json_object_get(last, "status"));
        printf("  %-24s %-8s %-22s %6lld  %s%s\n",
               json_string_value(json_object_get(s, "name")) ?: "?",
               json_string_value(json_object_get(s, "command")) ?: "?", when,
               (long long)json_integer_value(json_object_get(s, "last_run")),
               st ? st : "(none yet)",
               json_is_true(json_object_get(res, "promoted")) ? ", promoted" : "");
    }
    json_decref(j);
}

static void print_model(const char *serve)
{
    printf("\nDEPLOYED MODEL (query server %s)\n", serve);
    json_t *m = http_json(serve, "/");
    if (!m) {
        printf("  (none deployed yet, or the query server is not reachable)\n");
        return;
    }
    json_t *model = json_object_get(m, "model");
    if (!json_is_object(model)) {
        printf("  no model deployed yet (eddy train --app APP --engine ENGINE)\n");
    } else {
        char *params = json_dumps(json_object_get(model, "params"), JSON_COMPACT);
        char *metrics = json_dumps(json_object_get(model, "metrics"), JSON_COMPACT | JSON_REAL_PRECISION(4));
        printf("  app %s, engine %s, version %lld, trained at %s\n  %lld users, %lld items, %lld events\n"
               "  params  %s\n  metrics %s\n  queries served %lld\n",
               json_string_value(json_object_get(model, "app")) ?: "?",
               json_string_value(json_object_get(model, "engine")) ?: "?",
               (long long)json_integer_value(json_object_get(model, "version")),
               json_string_value(json_object_get(model, "trainedAt")) ?: "?",
               (long long)json_integer_value(json_object_get(model, "users")),
               (long long)json_integer_value(json_object_get(model, "items")),
               (long long)json_integer_value(json_object_get(model, "events")), params ? params : "{}",
               metrics ? metrics : "{}", (long long)json_integer_value(json_object_get(m, "queries")));
        free(params);
        free(metrics);
    }
    json_decref(m);
}

static const core_cmd_t status_cmd = {
    .name = "eddy status",
    .usage = "eddy status [--data DIR]",
    .summary = "Shows what `eddy up` runs on DIR: roles, topics with rates, consumer\n"
               "groups with lag status, jobs with their last batch, retraining\n"
               "schedules with their last run, the deployed model.",
    .opts = status_opts,
};

int cmd_status(int argc, char **argv)
{
    status_conf_t c;
    char *pos[argc + 1];
    int npos;
    int rc = core_conf_begin(&status_cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN) {
        core_conf_free(status_opts, &c);
        return rc;
    }
    json_t *st = load_json(c.data, "status.json"), *ep = load_json(c.data, "endpoints.json");
    if (!st || !ep) {
        fprintf(stderr, "eddy status: no `eddy up` has run on %s (no %s/run/status.json)\n", c.data, c.data);
        json_decref(st);
        json_decref(ep);
        core_conf_free(status_opts, &c);
        return 1;
    }
    print_roles(st);
    print_topics(json_string_value(json_object_get(ep, "broker")), c.sample_ms);
    print_groups(json_string_value(json_object_get(ep, "broker_http")));
    print_jobs(json_string_value(json_object_get(ep, "driver")));
    print_schedules(json_string_value(json_object_get(ep, "driver")));
    print_model(json_string_value(json_object_get(ep, "serve")));
    json_decref(st);
    json_decref(ep);
    core_conf_free(status_opts, &c);
    return 0;
}
