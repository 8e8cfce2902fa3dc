/*
 * Runtime commands: eddy driver | worker | submit | jobs | job-check | task-run.
 * Each declares its settings once as a core_opt_t table (core_conf.h).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/core_alloc.h"
#include "core/core_buf.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_fs.h"
#include "core/core_log.h"
#include "runtime/rt_driver.h"
#include "runtime/rt_http.h"
#include "runtime/rt_job.h"
#include "runtime/rt_plan.h"
#include "runtime/rt_worker.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    g_stop = sig; /* nonzero: the signal that asked us to stop, logged on the way out */
}

static void install_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void self_exe(char *out, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    out[n > 0 ? n : 0] = 0;
}

/* --token, else $EDDY_TOKEN, else DIR/token. Returns a heap string or NULL. */
static char *resolve_token(const char *token, const char *data)
{
    if (token && *token)
        return core_xstrdup(token);
    const char *e = getenv("EDDY_TOKEN");
    if (e && *e)
        return core_xstrdup(e);
    if (data && *data) {
        char path[4200], buf[256];
        snprintf(path, sizeof path, "%s/token", data);
        FILE *f = fopen(path, "re");
        if (f) {
            char *ok = fgets(buf, sizeof buf, f);
            fclose(f);
            if (ok) {
                buf[strcspn(buf, "\r\n")] = 0;
                return core_xstrdup(buf);
            }
        }
    }
    return NULL;
}

/* ---- eddy driver ------------------------------------------------------------- */

typedef struct driver_cli {
    char *data, *listen, *broker, *store, *store_dir, *token;
    int64_t worker_timeout, task_max_records, http_threads;
} driver_cli_t;

static const core_opt_t driver_opts[] = {
    {"data", CORE_OPT_STR, NULL, "data directory (jobs, plans, commits, schedules, token)",
     offsetof(driver_cli_t, data)},
    {"listen", CORE_OPT_STR, "127.0.0.1:7077", "API address (loopback by default: the API runs code)",
     offsetof(driver_cli_t, listen)},
    {"broker", CORE_OPT_STR, "127.0.0.1:9092", "Kafka bootstrap servers", offsetof(driver_cli_t, broker)},
    {"store", CORE_OPT_STR, NULL, "event store URL (rocksdb:DIR, redis://HOST:PORT/DB, eddy://HOST:PORT)",
     offsetof(driver_cli_t, store)},
    {"store-dir", CORE_OPT_STR, NULL, "data dir of the event store (default: --data)",
     offsetof(driver_cli_t, store_dir)},
    {"token", CORE_OPT_STR, NULL, "API token (default: DIR/token, generated on first start)",
     offsetof(driver_cli_t, token)},
    {"worker-timeout", CORE_OPT_DURATION, "10s", "a worker silent this long is dead; its tasks move",
     offsetof(driver_cli_t, worker_timeout)},
    {"task-max-records", CORE_OPT_INT, "250000", "split partition ranges longer than this into tasks",
     offsetof(driver_cli_t, task_max_records)},
    {"http-threads", CORE_OPT_INT, "8", "API threads", offsetof(driver_cli_t, http_threads)},
    CORE_OPT_END,
};

int cmd_driver(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy driver",
        .usage = "eddy driver --data DIR [--listen HOST:PORT] [--broker HOST:PORT] "
                 "[--store URL | --store-dir DIR] [--token T]",
        .summary = "Runs the micro-batch driver: accepts jobs (eddy submit), plans batches,\n"
                   "schedules tasks on workers and commits outputs exactly once. It also\n"
                   "keeps and runs retraining schedules (eddy schedule train: `eddy train` as\n"
                   "a child process; the runs read --store / --store-dir unless they name one).",
        .opts = driver_opts,
    };
    driver_cli_t c;
    char *pos[argc + 1];
    int npos = 0;
    int rc = core_conf_begin(&cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    if (!c.data) {
        fprintf(stderr, "eddy driver: --data DIR is required\nusage: %s\n", cmd.usage);
        rc = 2;
        goto out;
    }
    install_signals();
    char exe[4096], es[1024];
    self_exe(exe, sizeof exe);
    rt_driver_conf_t dc = {.data = c.data,
                           .listen = c.listen,
                           .broker = c.broker,
                           .store = c.store,
                           .store_dir = c.store_dir,
                           .token = c.token,
                           .worker_timeout_ms = c.worker_timeout,
                           .task_max_records = c.task_max_records,
                           .http_threads = c.http_threads,
                           .exe = exe};
    rt_driver_t *d;
    if (rt_driver_start(&dc, &d, es, sizeof es)) {
        fprintf(stderr, "eddy driver: %s\n", es);
        rc = 1;
        goto out;
    }
    while (!g_stop)
        pause();
    CORE_INFO("driver", "stopping");
    rt_driver_stop(d);
    rc = 0;
out:
    core_conf_free(driver_opts, &c);
    return rc;
}

/* ---- eddy worker ----------------------------------------------------------------- */

typedef struct worker_cli {
    char *driver, *listen, *token, *data, *work_dir;
    int64_t slots, heartbeat, task_timeout;
} worker_cli_t;

static const core_opt_t worker_opts[] = {
    {"driver", CORE_OPT_STR, "127.0.0.1:7077", "driver API address", offsetof(worker_cli_t, driver)},
    {"slots", CORE_OPT_INT, "2", "tasks run concurrently", offsetof(worker_cli_t, slots)},
    {"listen", CORE_OPT_STR, "127.0.0.1:0", "address for tasks from the driver (port 0 = any free)",
     offsetof(worker_cli_t, listen)},
    {"token", CORE_OPT_STR, NULL, "API token (default: $EDDY_TOKEN or DIR/token of --data)",
     offsetof(worker_cli_t, token)},
    {"data", CORE_OPT_STR, NULL, "the driver's data dir, to read its token", offsetof(worker_cli_t, data)},
    {"work-dir", CORE_OPT_STR, NULL, "job binary cache (default: a temp dir)", offsetof(worker_cli_t, work_dir)},
    {"heartbeat", CORE_OPT_DURATION, "500ms", "heartbeat period", offsetof(worker_cli_t, heartbeat)},
    {"task-timeout", CORE_OPT_DURATION, "10m", "kill a task running longer than this",
     offsetof(worker_cli_t, task_timeout)},
    CORE_OPT_END,
};

int cmd_worker(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy worker",
        .usage = "eddy worker [--driver HOST:PORT] [--slots N] [--token T | --data DIR]",
        .summary = "Runs tasks for a driver. Each task runs in its own child process, so a\n"
                   "crashing job takes down only that task.",
        .opts = worker_opts,
    };
    worker_cli_t c;
    char *pos[argc + 1];
    int npos = 0;
    char *token = NULL;
    int rc = core_conf_begin(&cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    token = resolve_token(c.token, c.data);
    /* Started together with its driver (eddy up, scripts): give the driver
     * time to generate DIR/token on its first start. */
    for (int i = 0; !token && c.data && i < 300; i++) {
        usleep(100000);
        token = resolve_token(c.token, c.data);
    }
    if (!token || c.slots < 1 || c.slots > 1024) {
        fprintf(stderr, "eddy worker: %s\nusage: %s\n",
                !token ? "no token: pass --token, set EDDY_TOKEN or --data DIR" : "bad --slots",
                cmd.usage);
        rc = 2;
        goto out;
    }
    setenv("EDDY_TOKEN", token, 1); /* for task children (never on a command line) */
    install_signals();
    char exe[4096], es[1024];
    self_exe(exe, sizeof exe);
    rt_worker_conf_t wc = {.driver = c.driver,
                           .slots = c.slots,
                           .listen = c.listen,
                           .token = token,
                           .work_dir = c.work_dir,
                           .heartbeat_ms = c.heartbeat,
                           .task_timeout_ms = c.task_timeout,
                           .exe = exe};
    rc = rt_worker_run(&wc, &g_stop, es, sizeof es);
    if (rc)
        fprintf(stderr, "eddy worker: %s\n", es);
    else
        CORE_INFO("worker", "stopped (signal %d)", (int)g_stop);
    rc = rc ? 1 : 0;
out:
    free(token);
    core_conf_free(worker_opts, &c);
    return rc;
}

/* ---- eddy task-run (internal) ----------------------------------------------------- */

typedef struct taskrun_cli {
    char *driver, *job_path;
    int64_t progress_fd;
} taskrun_cli_t;

static const core_opt_t taskrun_opts[] = {
    {"driver", CORE_OPT_STR, NULL, "driver API (state reads)", offsetof(taskrun_cli_t, driver)},
    {"job-path", CORE_OPT_STR, NULL, "the job .so", offsetof(taskrun_cli_t, job_path)},
    {"progress-fd", CORE_OPT_INT, "-1", "shared page for crash reports", offsetof(taskrun_cli_t, progress_fd)},
    CORE_OPT_END,
};

int cmd_task_run(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy task-run",
        .usage = "eddy task-run --job-path FILE [--driver HOST:PORT] < task > result",
        .summary = "Internal: runs one task for `eddy worker` (task on stdin, result on stdout).",
        .opts = taskrun_opts,
        .takes_args = true,
    };
    taskrun_cli_t c;
    char *pos[argc + 1];
    int npos = 0;
    int rc = core_conf_begin(&cmd, &c, argc, argv, pos, &npos);
    if (rc == CORE_CONF_RUN) {
        if (!c.job_path) {
            fprintf(stderr, "eddy task-run: --job-path is required\n");
            rc = 2;
        } else {
            rc = rt_task_child_main(c.driver, getenv("EDDY_TOKEN"), c.job_path,
                                    (int)c.progress_fd);
        }
    }
    core_conf_free(taskrun_opts, &c);
    return rc;
}

/* ---- eddy job-check ------------------------------------------------------------ */

int cmd_job_check(int argc, char **argv)
{
    if (argc != 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        printf("usage: eddy job-check FILE.so\n\nLoads a job in this process and checks its "
               "descriptor and ABI version.\nPrints \"ok FLAGS NAME\" or \"error CODE MESSAGE\" "
               "(the driver runs this\nin a child process for every submitted binary).\n");
        return argc == 1 ? 0 : 2;
    }
    rt_job_t job;
    char es[1024];
    int err = rt_job_load(argv[0], &job, es, sizeof es);
    if (err) {
        for (char *p = es; *p; p++)
            if (*p == '\n')
                *p = ' ';
        printf("error %d %s\n", err, es);
        return 1;
    }
    printf("ok %x %s\n", job.desc->flags, job.desc->name ? job.desc->name : "(unnamed)");
    fflush(stdout);
    rt_job_unload(&job);
    return 0;
}

/* ---- eddy submit ----------------------------------------------------------------- */

typedef struct submit_cli {
    char *name, *input, *starting, *config, *driver, *token, *data;
    int64_t interval, max_records, max_task_failures, app;
    bool empty_batches;
} submit_cli_t;

static const core_opt_t submit_opts[] = {
    {"name", CORE_OPT_STR, NULL, "job name ([A-Za-z0-9._-], up to 64)", offsetof(submit_cli_t, name)},
    {"input", CORE_OPT_STR, NULL, "input topics, comma-separated", offsetof(submit_cli_t, input)},
    {"interval", CORE_OPT_DURATION, "1s", "trigger interval (0 = next batch as soon as one ends)",
     offsetof(submit_cli_t, interval)},
    {"max-records-per-batch", CORE_OPT_INT, "100000", "cap per batch, split across partitions by backlog",
     offsetof(submit_cli_t, max_records)},
    {"starting-offsets", CORE_OPT_STR, "latest", "earliest | latest (first start only)",
     offsetof(submit_cli_t, starting)},
    {"config", CORE_OPT_STR, "{}", "JSON object passed to the job's init", offsetof(submit_cli_t, config)},
    {"max-task-failures", CORE_OPT_INT, "4", "attempts per task before the job pauses",
     offsetof(submit_cli_t, max_task_failures)},
    {"app", CORE_OPT_INT, "1", "event store app id for the job's events", offsetof(submit_cli_t, app)},
    {"empty-batches", CORE_OPT_BOOL, "false", "run batches even without new records",
     offsetof(submit_cli_t, empty_batches)},
    {"driver", CORE_OPT_STR, "127.0.0.1:7077", "driver API address", offsetof(submit_cli_t, driver)},
    {"token", CORE_OPT_STR, NULL, "API token (default: $EDDY_TOKEN or DIR/token of --data)",
     offsetof(submit_cli_t, token)},
    {"data", CORE_OPT_STR, NULL, "the driver's data dir, to read its token", offsetof(submit_cli_t, data)},
    CORE_OPT_END,
};

/* Prints the driver's error message of a non-2xx response. */
static void print_http_error(const char *cmd, const rt_http_resp_t *r)
{
    json_t *o = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
    const char *m = o ? json_string_value(json_object_get(o, "message")) : NULL;
    fprintf(stderr, "eddy %s: %s (HTTP %d)\n", cmd, m ? m : (r->body ? r->body : ""), r->status);
    json_decref(o);
}

int cmd_submit(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy submit",
        .usage = "eddy submit JOB.so --name NAME --input T1[,T2] [--interval 1s] "
                 "[--max-records-per-batch N] [--starting-offsets earliest|latest] [--config JSON] "
                 "[--max-task-failures 4]",
        .summary = "Uploads a job binary to the driver and starts it.",
        .opts = submit_opts,
        .takes_args = true,
    };
    submit_cli_t c;
    char *pos[argc + 1];
    int npos = 0;
    char *token = NULL, *bin = NULL, *path = NULL;
    int rc = core_conf_begin(&cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    rc = 2;
    if (npos != 1 || !c.name || !c.input) {
        fprintf(stderr, "eddy submit: JOB.so, --name and --input are required\nusage: %s\n",
                cmd.usage);
        goto out;
    }
    token = resolve_token(c.token, c.data);
    if (!token) {
        fprintf(stderr, "eddy submit: no token: pass --token, set EDDY_TOKEN or --data DIR\n");
        goto out;
    }
    size_t blen;
    int err = core_fs_read_file(pos[0], SIZE_MAX, &bin, &blen);
    if (err) {
        fprintf(stderr, "eddy submit: %s: %s\n", pos[0], strerror(err));
        rc = 1;
        goto out;
    }
    char e1[512], e2[2048], e3[3 * 65536 + 1], e4[64];
    size_t plen = strlen(c.config) * 3 + 4096;
    path = core_xmalloc(plen);
    snprintf(path, plen,
             "/v1/jobs?name=%s&inputs=%s&interval_ms=%" PRId64 "&max_records=%" PRId64
             "&starting_offsets=%s&max_task_failures=%" PRId64 "&app=%" PRId64
             "&empty_batches=%d&config=",
             rt_http_urlencode(c.name, e1, sizeof e1), rt_http_urlencode(c.input, e2, sizeof e2),
             c.interval, c.max_records, rt_http_urlencode(c.starting, e4, sizeof e4),
             c.max_task_failures, c.app, c.empty_batches ? 1 : 0);
    if (strlen(c.config) * 3 + 1 > sizeof e3) {
        fprintf(stderr, "eddy submit: --config is too long\n");
        goto out;
    }
    strcat(path, rt_http_urlencode(c.config, e3, sizeof e3));
    rt_http_resp_t r;
    char es[1024];
    err = rt_http_request_addr(c.driver, "POST", path, token, "application/octet-stream", bin,
                               blen, 60000, 1 << 20, &r, es, sizeof es);
    if (err) {
        fprintf(stderr, "eddy submit: %s\n", es);
        rc = 1;
        goto out;
    }
    if (r.status == 201) {
        json_t *o = json_loadb(r.body, r.len, 0, NULL);
        printf("submitted %s (sha256 %s)\n", c.name,
               o ? json_string_value(json_object_get(o, "sha256")) : "?");
        json_decref(o);
        rc = 0;
    } else {
        print_http_error("submit", &r);
        rc = 1;
    }
    rt_http_resp_fini(&r);
out:
    free(path);
    free(bin);
    free(token);
    core_conf_free(submit_opts, &c);
    return rc;
}

/* ---- eddy jobs ----------------------------------------------------------------- */

typedef struct jobs_cli {
    char *driver, *token, *data;
    bool json;
} jobs_cli_t;

static const core_opt_t jobs_opts[] = {
    {"driver", CORE_OPT_STR, "127.0.0.1:7077", "driver API address", offsetof(jobs_cli_t, driver)},
    {"token", CORE_OPT_STR, NULL, "API token for stop/resume/delete", offsetof(jobs_cli_t, token)},
    {"data", CORE_OPT_STR, NULL, "the driver's data dir, to read its token", offsetof(jobs_cli_t, data)},
    {"json", CORE_OPT_BOOL, "false", "print the driver's JSON", offsetof(jobs_cli_t, json)},
    CORE_OPT_END,
};

static void print_status(json_t *o)
{
    const char *err = json_string_value(json_object_get(o, "error"));
    printf("job %s: %s\n", json_string_value(json_object_get(o, "name")),
           json_string_value(json_object_get(o, "status")));
    if (err)
        printf("  error: %s\n", err);
    printf("  inputs:");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "inputs"), i, v) printf(" %s", json_string_value(v));
    printf("\n  binary sha256 %s\n", json_string_value(json_object_get(o, "sha256")));
    printf("  batches %" JSON_INTEGER_FORMAT ", records %" JSON_INTEGER_FORMAT
           ", events %" JSON_INTEGER_FORMAT ", task failures %" JSON_INTEGER_FORMAT "\n",
           json_integer_value(json_object_get(o, "batches")),
           json_integer_value(json_object_get(o, "records")),
           json_integer_value(json_object_get(o, "events")),
           json_integer_value(json_object_get(o, "task_failures")));
    json_t *cur = json_object_get(o, "current_batch");
    if (cur)
        printf("  running batch %" JSON_INTEGER_FORMAT ": %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
               " tasks done, %" JSON_INTEGER_FORMAT " failures\n",
               json_integer_value(json_object_get(cur, "batch")),
               json_integer_value(json_object_get(cur, "done")),
               json_integer_value(json_object_get(cur, "tasks")),
               json_integer_value(json_object_get(cur, "failures")));
    const char *k;
    json_object_foreach(json_object_get(o, "counters"), k, v)
        printf("  counter %s = %" JSON_INTEGER_FORMAT "\n", k, json_integer_value(v));
    json_t *h = json_object_get(o, "history");
    if (json_array_size(h)) {
        printf("  %-8s %-10s %10s %9s  %s\n", "BATCH", "OUTCOME", "RECORDS", "MS", "RANGES");
        json_array_foreach(h, i, v)
        {
            printf("  %-8" JSON_INTEGER_FORMAT " %-10s %10" JSON_INTEGER_FORMAT " %9" JSON_INTEGER_FORMAT " ",
                   json_integer_value(json_object_get(v, "batch")),
                   json_string_value(json_object_get(v, "outcome")),
                   json_integer_value(json_object_get(v, "records")),
                   json_integer_value(json_object_get(v, "duration_ms")));
            size_t k2;
            json_t *r;
            int shown = 0;
            json_array_foreach(json_object_get(v, "ranges"), k2, r)
            {
                if (shown++ == 4) {
                    printf(" ...");
                    break;
                }
                printf(" %s/%" JSON_INTEGER_FORMAT "[%" JSON_INTEGER_FORMAT ",%" JSON_INTEGER_FORMAT ")",
                       json_string_value(json_array_get(r, 0)), json_integer_value(json_array_get(r, 1)),
                       json_integer_value(json_array_get(r, 2)), json_integer_value(json_array_get(r, 3)));
            }
            printf("\n");
        }
    }
}

/* `eddy jobs verify --data DIR`: the check tool for the driver's on-disk
 * files (STYLE §9): every job definition, plan and commit record is read,
 * its frame, CRC and JSON validated, and plans checked to chain (batch N
 * starts where N-1 ended). Works offline; exit 1 on any damage. */
static int verify_dir_records(const char *dir, const char *kind, int is_plan, int *bad)
{
    int64_t last;
    if (rt_dir_last_batch(dir, &last))
        return 0;
    int n = 0;
    rt_plan_t prev = {0};
    int have_prev = 0;
    for (int64_t b = 0; b <= last; b++) {
        char nm[32], es[512], *txt = NULL;
        snprintf(nm, sizeof nm, "%" PRId64, b);
        int err = rt_record_read(dir, nm, &txt, NULL, es, sizeof es);
        if (err == ENOENT)
            continue; /* purged (retention) */
        n++;
        if (err) {
            printf("  BAD %s %s: %s\n", kind, nm, es);
            (*bad)++;
            continue;
        }
        if (is_plan) {
            rt_plan_t p;
            if (rt_plan_from_json(txt, strlen(txt), &p, es, sizeof es) || p.batch != b) {
                printf("  BAD %s %s: %s\n", kind, nm, es[0] ? es : "batch id mismatch");
                (*bad)++;
            } else {
                for (int i = 0; have_prev && i < p.nranges; i++) {
                    const rt_range_t *r = rt_plan_find(&prev, p.ranges[i].topic, p.ranges[i].partition);
                    if (r && r->end != p.ranges[i].start && prev.batch == b - 1) {
                        printf("  BAD %s %s: %s/%d starts at %" PRId64 ", batch %" PRId64
                               " ended at %" PRId64 "\n",
                               kind, nm, p.ranges[i].topic, (int)p.ranges[i].partition,
                               p.ranges[i].start, b - 1, r->end);
                        (*bad)++;
                    }
                }
                if (have_prev)
                    rt_plan_free(&prev);
                prev = p;
                have_prev = 1;
            }
        } else {
            json_t *o = json_loads(txt, 0, NULL);
            if (!o || json_integer_value(json_object_get(o, "batch")) != b) {
                printf("  BAD %s %s: not a commit record of batch %s\n", kind, nm, nm);
                (*bad)++;
            }
            json_decref(o);
        }
        free(txt);
    }
    if (have_prev)
        rt_plan_free(&prev);
    return n;
}

static int jobs_verify(const char *data)
{
    char jobs[4200];
    snprintf(jobs, sizeof jobs, "%s/jobs", data);
    DIR *d = opendir(jobs);
    if (!d) {
        fprintf(stderr, "eddy jobs verify: %s: %s\n", jobs, strerror(errno));
        return 1;
    }
    int bad = 0, njobs = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || de->d_name[0] == '_')
            continue;
        char dir[4400], sub[4500], es[512], *txt = NULL;
        snprintf(dir, sizeof dir, "%.4100s/%.255s", jobs, de->d_name);
        int err = rt_record_read(dir, "job", &txt, NULL, es, sizeof es);
        free(txt);
        njobs++;
        if (err) {
            printf("job %s: BAD definition: %s\n", de->d_name, es);
            bad++;
            continue;
        }
        snprintf(sub, sizeof sub, "%s/plans", dir);
        int np = verify_dir_records(sub, "plan", 1, &bad);
        snprintf(sub, sizeof sub, "%s/commits", dir);
        int nc = verify_dir_records(sub, "commit", 0, &bad);
        printf("job %s: %d plans, %d commit records\n", de->d_name, np, nc);
    }
    closedir(d);
    printf("%d jobs, %d damaged files\n", njobs, bad);
    return bad ? 1 : 0;
}

int cmd_jobs(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy jobs",
        .usage = "eddy jobs list | status NAME | stop NAME | resume NAME | delete NAME "
                 "[--driver HOST:PORT] [--token T | --data DIR] [--json] | "
                 "verify --data DIR",
        .summary = "Lists jobs, shows a job's status and batch history, stops, resumes or\n"
                   "deletes a job (stop/resume/delete need the token). `verify` checks the\n"
                   "driver's files offline (job definitions, plans, commit records: frame,\n"
                   "CRC, JSON, plans chaining); exit 1 on damage.",
        .opts = jobs_opts,
        .takes_args = true,
    };
    jobs_cli_t c;
    char *pos[argc + 1];
    int npos = 0;
    char *token = NULL;
    int rc = core_conf_begin(&cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    rc = 2;
    const char *verb = npos ? pos[0] : "list";
    if (!strcmp(verb, "verify")) {
        rc = c.data && npos == 1 ? jobs_verify(c.data) : 2;
        if (rc == 2)
            fprintf(stderr, "usage: eddy jobs verify --data DIR\n");
        goto out;
    }
    int need_name = strcmp(verb, "list") != 0;
    if ((need_name && npos != 2) || (!need_name && npos > 1) ||
        (strcmp(verb, "list") && strcmp(verb, "status") && strcmp(verb, "stop") &&
         strcmp(verb, "resume") && strcmp(verb, "delete"))) {
        fprintf(stderr, "usage: %s\n", cmd.usage);
        goto out;
    }
    token = resolve_token(c.token, c.data);
    char path[512], enc[256], es[1024];
    const char *method = "GET";
    if (!need_name)
        snprintf(path, sizeof path, "/v1/jobs");
    else if (!strcmp(verb, "status"))
        snprintf(path, sizeof path, "/v1/jobs/%s", rt_http_urlencode(pos[1], enc, sizeof enc));
    else if (!strcmp(verb, "delete")) {
        method = "DELETE";
        snprintf(path, sizeof path, "/v1/jobs/%s", rt_http_urlencode(pos[1], enc, sizeof enc));
    } else {
        method = "POST";
        snprintf(path, sizeof path, "/v1/jobs/%s/%s", rt_http_urlencode(pos[1], enc, sizeof enc),
                 verb);
    }
    rt_http_resp_t r;
    if (rt_http_request_addr(c.driver, method, path, token, NULL, NULL, 0, 60000, 64u << 20, &r,
                             es, sizeof es)) {
        fprintf(stderr, "eddy jobs: %s\n", es);
        rc = 1;
        goto out;
    }
    if (r.status != 200) {
        print_http_error("jobs", &r);
        rc = 1;
    } else if (c.json) {
        printf("%s\n", r.body);
        rc = 0;
    } else {
        json_t *o = json_loadb(r.body, r.len, 0, NULL);
        if (!strcmp(verb, "list")) {
            printf("%-24s %-8s %8s %12s  %s\n", "NAME", "STATUS", "BATCHES", "RECORDS", "INPUTS");
            size_t i;
            json_t *j;
            json_array_foreach(json_object_get(o, "jobs"), i, j)
            {
                printf("%-24s %-8s %8" JSON_INTEGER_FORMAT " %12" JSON_INTEGER_FORMAT "  ",
                       json_string_value(json_object_get(j, "name")),
                       json_string_value(json_object_get(j, "status")),
                       json_integer_value(json_object_get(j, "batches")),
                       json_integer_value(json_object_get(j, "records")));
                size_t k;
                json_t *t;
                json_array_foreach(json_object_get(j, "inputs"), k, t)
                    printf("%s%s", k ? "," : "", json_string_value(t));
                printf("\n");
            }
        } else if (!strcmp(verb, "status")) {
            print_status(o);
        } else {
            printf("%s: %s\n", pos[1], json_string_value(json_object_get(o, "status")));
        }
        json_decref(o);
        rc = 0;
    }
    rt_http_resp_fini(&r);
out:
    free(token);
    core_conf_free(jobs_opts, &c);
    return rc;
}
