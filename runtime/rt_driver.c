/*
 * rt_driver — see rt_driver.h for the protocol, files and thread contract.
 */
#include "runtime/rt_driver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core_alloc.h"
#include "core/core_buf.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_fs.h"
#include "core/core_http.h"
#include "core/core_log.h"
#include "core/core_time.h"
#include "eddy/job.h"
#include "runtime/rt_http.h"
#include "runtime/rt_job.h"
#include "runtime/rt_plan.h"
#include "runtime/rt_proto.h"
#include "runtime/rt_sched.h"
#include "storage/store.h"

#define MOD "driver"
/* Batches whose plan and commit files are kept (Spark: minBatchesToRetain). */
#define RT_HISTORY_KEEP 100
/* Job names: short, file-system and URL safe. */
#define RT_NAME_MAX 64
/* Jobs and workers one driver tracks (abuse guards for the API). */
#define RT_MAX_JOBS 256
#define RT_MAX_WORKERS 4096
/* Largest request body: a job binary or a task result. */
#define RT_MAX_BODY (512u << 20)
/* Largest --config JSON. */
#define RT_CONFIG_MAX (64 * 1024)
/* State keys must fit the store's kv key limit with the rt/<uid>/s/... prefix. */
#define RT_STATE_KEY_MAX 512
/* Store commit retries before the job pauses. */
#define RT_COMMIT_TRIES 5
/* With no new records, the broker is asked again after this long (or the
 * trigger interval, if longer): an idle job costs the broker a few requests/s. */
#define RT_IDLE_POLL_MS 250

typedef enum { TS_PENDING = 0, TS_RUNNING, TS_DONE } task_state_t;

typedef struct task_slot {
    task_state_t st;
    int attempt;  /* current attempt number (1-based once dispatched) */
    int failures; /* attempts that failed (worker loss does not count) */
    int worker;   /* index into d->workers while running */
    int avoid;    /* worker index where it last failed, or -1 */
    rt_result_t res;
    char *last_error;
} task_slot_t;

typedef struct worker {
    char id[32];
    char addr[280];
    int slots, busy;
    int64_t last_seen_ms;
    int dead;
    int64_t tasks_done;
} worker_t;

typedef struct counter {
    char *name;
    int64_t value;
} counter_t;

typedef struct hist {
    int64_t batch, records, duration_ms, committed_ms;
    char outcome[16];
    json_t *ranges; /* non-empty ranges [[t,p,s,e],...] */
} hist_t;

typedef struct job {
    /* definition (persisted in DIR/jobs/NAME/job) */
    char name[RT_NAME_MAX + 1], uid[33], sha[65];
    char **inputs;
    int ninputs;
    int64_t interval_ms, max_records, created_ms;
    char starting[16];
    char *config;
    int max_task_failures;
    int32_t app, channel;
    uint32_t flags;
    int empty_batches;
    char status[16]; /* running | paused | stopped */
    char *error;
    /* runtime, under d->mu */
    pthread_t thread;
    int thread_live, stop_req;
    int64_t cur_batch;
    task_slot_t *tasks;
    int ntasks;
    int batch_failed;
    char *batch_error;
    int64_t batches, records, task_failures, last_duration_ms, last_records, events;
    double last_rate;
    counter_t *counters;
    int ncounters;
    hist_t hist[RT_HISTORY_KEEP];
    int nhist; /* entries in hist, oldest first */
    rd_kafka_t *group_rk; /* commits to eddy-job-NAME; job thread only */
    char dir[4096];
    struct rt_driver *drv;
} job_t;

struct rt_driver {
    rt_driver_conf_t conf;
    char token[128];
    char jobs_dir[4096], bin_dir[4096];
    char exe[4096];
    store_t *store;
    core_http_t *http;
    rt_sched_t *sched; /* scheduled commands (rt_sched.h): own thread and lock */
    rd_kafka_t *meta_rk;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *jobs[RT_MAX_JOBS];
    int njobs;
    worker_t *workers;
    int nworkers;
    uint64_t worker_seq;
    char run_id[9]; /* random per driver run: worker ids never repeat across restarts */
    int stopping;
};

/* ---- helpers ---------------------------------------------------------------- */

static void cv_wait_ms(rt_driver_t *d, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&d->cv, &d->mu, &ts);
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RT_NAME_MAX || s[0] == '.' || s[0] == '_' || s[0] == '-')
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

static void fault(const char *point)
{
    const char *f = getenv("EDDY_FAULT");
    if (f && !strcmp(f, point)) {
        CORE_WARN(MOD, "fault injection: exiting at %s", point);
        _exit(86);
    }
}

static int random_hex(char *out, size_t nbytes)
{
    unsigned char b[64];
    if (nbytes > sizeof b)
        return CORE_ERR_INVAL;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    ssize_t n = read(fd, b, nbytes);
    close(fd);
    if (n != (ssize_t)nbytes)
        return CORE_ERR_IO;
    for (size_t i = 0; i < nbytes; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    return 0;
}

static job_t *job_find(rt_driver_t *d, const char *name)
{
    for (int i = 0; i < d->njobs; i++)
        if (!strcmp(d->jobs[i]->name, name))
            return d->jobs[i];
    return NULL;
}

static void kv_key(char *out, size_t size, const job_t *j, const char *what)
{
    snprintf(out, size, "rt/%s/%s", j->uid, what);
}

/* ---- job definition file ------------------------------------------------------ */

static json_t *job_def_json(const job_t *j)
{
    json_t *in = json_array();
    for (int i = 0; i < j->ninputs; i++)
        json_array_append_new(in, json_string(j->inputs[i]));
    return json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:s,s:s,s:i,s:i,s:i,s:i,s:b,s:s,s:s?,s:I}",
                     "name", j->name, "uid", j->uid, "sha256", j->sha, "inputs", in,
                     "interval_ms", (json_int_t)j->interval_ms, "max_records_per_batch",
                     (json_int_t)j->max_records, "starting_offsets", j->starting, "config",
                     j->config, "max_task_failures", j->max_task_failures, "app", (int)j->app,
                     "channel", (int)j->channel, "flags", (int)j->flags, "empty_batches",
                     j->empty_batches, "status", j->status, "error", j->error, "created_ms",
                     (json_int_t)j->created_ms);
}

static int job_save(const job_t *j, char *errstr, size_t errstr_size)
{
    json_t *o = job_def_json(j);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int err = rt_record_write(j->dir, "job", s, errstr, errstr_size);
    free(s);
    return err;
}

static void job_free(job_t *j)
{
    for (int i = 0; i < j->ninputs; i++)
        free(j->inputs[i]);
    free(j->inputs);
    free(j->config);
    free(j->error);
    free(j->batch_error);
    for (int i = 0; i < j->ncounters; i++)
        free(j->counters[i].name);
    free(j->counters);
    for (int i = 0; i < j->nhist; i++)
        json_decref(j->hist[i].ranges);
    if (j->group_rk)
        rd_kafka_destroy(j->group_rk);
    free(j);
}

static int job_load(rt_driver_t *d, const char *name, job_t **out, char *errstr,
                    size_t errstr_size)
{
    job_t *j = core_xcalloc(1, sizeof *j);
    snprintf(j->dir, sizeof j->dir, "%.4000s/%.64s", d->jobs_dir, name);
    char *s = NULL;
    int err = rt_record_read(j->dir, "job", &s, NULL, errstr, errstr_size);
    if (err) {
        free(j);
        return err;
    }
    json_error_t je;
    json_t *o = json_loads(s, 0, &je);
    free(s);
    const char *nm, *uid, *sha, *starting, *config, *status;
    json_t *inputs, *error = NULL;
    json_int_t interval, maxr, created = 0;
    int mtf, app, channel, flags, empty;
    if (!o || json_unpack(o, "{s:s,s:s,s:s,s:o,s:I,s:I,s:s,s:s,s:i,s:i,s:i,s:i,s:b,s:s,s?o,s?I}",
                          "name", &nm, "uid", &uid, "sha256", &sha, "inputs", &inputs,
                          "interval_ms", &interval, "max_records_per_batch", &maxr,
                          "starting_offsets", &starting, "config", &config,
                          "max_task_failures", &mtf, "app", &app, "channel", &channel, "flags",
                          &flags, "empty_batches", &empty, "status", &status, "error", &error,
                          "created_ms", &created) ||
        !json_is_array(inputs) || !valid_name(nm) || strlen(uid) > 32 || strlen(sha) != 64) {
        json_decref(o);
        free(j);
        return core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s/job: bad job definition",
                         name);
    }
    snprintf(j->name, sizeof j->name, "%s", nm);
    snprintf(j->uid, sizeof j->uid, "%s", uid);
    snprintf(j->sha, sizeof j->sha, "%s", sha);
    snprintf(j->starting, sizeof j->starting, "%s", starting);
    snprintf(j->status, sizeof j->status, "%s", status);
    j->config = core_xstrdup(config);
    j->error = json_is_string(error) ? core_xstrdup(json_string_value(error)) : NULL;
    j->interval_ms = interval;
    j->max_records = maxr;
    j->created_ms = created;
    j->max_task_failures = mtf;
    j->app = app;
    j->channel = channel;
    j->flags = (uint32_t)flags;
    j->empty_batches = empty;
    j->ninputs = (int)json_array_size(inputs);
    j->inputs = core_xcalloc((size_t)j->ninputs + 1, sizeof *j->inputs);
    for (int i = 0; i < j->ninputs; i++)
        j->inputs[i] = core_xstrdup(json_string_value(json_array_get(inputs, (size_t)i))
                                        ? json_string_value(json_array_get(inputs, (size_t)i))
                                        : "");
    json_decref(o);
    *out = j;
    return 0;
}

/* ---- history ------------------------------------------------------------------- */

static void hist_push(job_t *j, int64_t batch, int64_t records, int64_t duration_ms,
                      int64_t committed_ms, const char *outcome, const rt_plan_t *plan)
{
    if (j->nhist == RT_HISTORY_KEEP) {
        json_decref(j->hist[0].ranges);
        memmove(j->hist, j->hist + 1, (RT_HISTORY_KEEP - 1) * sizeof j->hist[0]);
        j->nhist--;
    }
    hist_t *h = &j->hist[j->nhist++];
    h->batch = batch;
    h->records = records;
    h->duration_ms = duration_ms;
    h->committed_ms = committed_ms;
    snprintf(h->outcome, sizeof h->outcome, "%s", outcome);
    h->ranges = json_array();
    if (plan)
        for (int i = 0; i < plan->nranges; i++)
            if (plan->ranges[i].end > plan->ranges[i].start)
                json_array_append_new(h->ranges,
                                      json_pack("[s,i,I,I]", plan->ranges[i].topic,
                                                (int)plan->ranges[i].partition,
                                                (json_int_t)plan->ranges[i].start,
                                                (json_int_t)plan->ranges[i].end));
}

/* Rebuilds the in-memory history from commits/ and plans/ (startup). */
static void hist_load(job_t *j)
{
    char cdir[4200], pdir[4200];
    snprintf(cdir, sizeof cdir, "%s/commits", j->dir);
    snprintf(pdir, sizeof pdir, "%s/plans", j->dir);
    int64_t last;
    if (rt_dir_last_batch(cdir, &last))
        return;
    for (int64_t b = last - RT_HISTORY_KEEP + 1 < 0 ? 0 : last - RT_HISTORY_KEEP + 1; b <= last;
         b++) {
        char nm[32], *s = NULL, es[256];
        snprintf(nm, sizeof nm, "%" PRId64, b);
        if (rt_record_read(cdir, nm, &s, NULL, es, sizeof es))
            continue;
        json_t *o = json_loads(s, 0, NULL);
        free(s);
        json_int_t rec = 0, dur = 0, cms = 0;
        int recovered = 0;
        json_unpack(o, "{s?I,s?I,s?I,s?b}", "records", &rec, "duration_ms", &dur,
                    "committed_ms", &cms, "recovered", &recovered);
        json_decref(o);
        rt_plan_t p;
        int have = 0;
        if (!rt_record_read(pdir, nm, &s, NULL, es, sizeof es)) {
            have = !rt_plan_from_json(s, strlen(s), &p, es, sizeof es);
            free(s);
        }
        hist_push(j, b, rec, dur, cms, recovered ? "recovered" : "committed", have ? &p : NULL);
        if (have)
            rt_plan_free(&p);
        j->batches++;
        j->records += rec;
    }
}

/* ---- broker access (librdkafka) --------------------------------------------- */

static void rk_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 3)
        CORE_DEBUG(MOD, "librdkafka %s: %s", fac, buf);
}

static rd_kafka_t *rk_new(const char *brokers, const char *group, char *errstr,
                          size_t errstr_size)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "bootstrap.servers", brokers, errstr, errstr_size) ||
        rd_kafka_conf_set(c, "enable.auto.commit", "false", errstr, errstr_size) ||
        rd_kafka_conf_set(c, "allow.auto.create.topics", "false", errstr, errstr_size) ||
        (group && rd_kafka_conf_set(c, "group.id", group, errstr, errstr_size))) {
        rd_kafka_conf_destroy(c);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(c, rk_log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, errstr, errstr_size);
    if (!rk)
        rd_kafka_conf_destroy(c);
    return rk;
}

/* Watermarks of every partition of the job's inputs. A missing topic has no
 * partitions yet (it is planned once it appears). */
static int fetch_watermarks(rt_driver_t *d, job_t *j, rt_watermark_t **out, int *n,
                            char *errstr, size_t errstr_size)
{
    int cap = 0;
    *out = NULL;
    *n = 0;
    for (int t = 0; t < j->ninputs; t++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(d->meta_rk, j->inputs[t], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(d->meta_rk, 0, rkt, &md, 5000);
        rd_kafka_topic_destroy(rkt);
        if (e)
            return core_errf(CORE_ERR_IO, errstr, errstr_size, "metadata for %s: %s",
                             j->inputs[t], rd_kafka_err2str(e));
        if (md->topic_cnt == 1 && !md->topics[0].err) {
            for (int p = 0; p < md->topics[0].partition_cnt; p++) {
                int32_t pid = md->topics[0].partitions[p].id;
                int64_t lo = 0, hi = 0;
                e = rd_kafka_query_watermark_offsets(d->meta_rk, j->inputs[t], pid, &lo, &hi,
                                                     5000);
                if (e) {
                    rd_kafka_metadata_destroy(md);
                    return core_errf(CORE_ERR_IO, errstr, errstr_size,
                                     "offsets of %s/%d: %s", j->inputs[t], (int)pid,
                                     rd_kafka_err2str(e));
                }
                if (*n == cap) {
                    cap = cap ? cap * 2 : 16;
                    *out = core_xrealloc(*out, (size_t)cap * sizeof **out);
                }
                (*out)[(*n)++] = (rt_watermark_t){j->inputs[t], pid, lo, hi};
            }
        }
        rd_kafka_metadata_destroy(md);
    }
    return 0;
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    if (err)
        CORE_WARN(MOD, "job %s: committing offsets to the broker failed (lag monitors will "
                       "not see this batch): %s",
                  (const char *)opaque, rd_kafka_err2str(err));
}

/* Step 6: best effort, asynchronous (never blocks the batch loop). */
static void broker_commit(rt_driver_t *d, job_t *j, const rt_plan_t *plan)
{
    if (!j->group_rk) {
        char group[128], es[256];
        snprintf(group, sizeof group, "eddy-job-%s", j->name);
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        if (rd_kafka_conf_set(c, "bootstrap.servers", d->conf.broker, es, sizeof es) ||
            rd_kafka_conf_set(c, "group.id", group, es, sizeof es) ||
            rd_kafka_conf_set(c, "enable.auto.commit", "false", es, sizeof es)) {
            rd_kafka_conf_destroy(c);
            CORE_WARN(MOD, "job %s: group consumer config: %s", j->name, es);
            return;
        }
        rd_kafka_conf_set_log_cb(c, rk_log_cb);
        rd_kafka_conf_set_offset_commit_cb(c, commit_cb);
        rd_kafka_conf_set_opaque(c, j->name);
        j->group_rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, es, sizeof es);
        if (!j->group_rk) {
            rd_kafka_conf_destroy(c);
            CORE_WARN(MOD, "job %s: group consumer: %s", j->name, es);
            return;
        }
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(plan->nranges);
    for (int i = 0; i < plan->nranges; i++)
        rd_kafka_topic_partition_list_add(l, plan->ranges[i].topic, plan->ranges[i].partition)
            ->offset = plan->ranges[i].end;
    rd_kafka_resp_err_t e = rd_kafka_commit(j->group_rk, l, 1);
    if (e)
        CORE_WARN(MOD, "job %s: offset commit to the broker: %s", j->name,
                  rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_poll(j->group_rk, 0); /* serve earlier commit callbacks */
}

/* ---- workers ------------------------------------------------------------------- */

/* Takes worker w out of service: marks it dead and returns every task it was
 * running (in any job) to pending, without counting a failure. The ONE way a
 * worker leaves: a worker marked dead any other way would keep its tasks
 * TS_RUNNING forever (reap_workers skips dead workers and no result will
 * come), and the batch would never finish. A worker that is in fact alive
 * gets 404 on its next heartbeat and registers again under a new id; its
 * late results carry old attempts and are ignored.
 * @locks d->mu held */
static void worker_lost(rt_driver_t *d, int w)
{
    worker_t *wk = &d->workers[w];
    if (wk->dead)
        return;
    wk->dead = 1;
    int moved = 0;
    for (int k = 0; k < d->njobs; k++) {
        job_t *j = d->jobs[k];
        for (int t = 0; t < j->ntasks; t++)
            if (j->tasks[t].st == TS_RUNNING && j->tasks[t].worker == w) {
                j->tasks[t].st = TS_PENDING;
                moved++;
            }
    }
    wk->busy = 0;
    if (moved)
        CORE_WARN(MOD, "worker %s: %d running task(s) go to other workers", wk->id, moved);
    pthread_cond_broadcast(&d->cv);
}

/* Marks silent workers dead (worker_lost).
 * @locks d->mu held */
static void reap_workers(rt_driver_t *d)
{
    int64_t now = core_mono_ms();
    for (int w = 0; w < d->nworkers; w++) {
        worker_t *wk = &d->workers[w];
        if (wk->dead || now - wk->last_seen_ms <= d->conf.worker_timeout_ms)
            continue;
        CORE_WARN(MOD, "worker %s (%s) silent for %" PRId64 " ms: declared dead, its tasks go to "
                       "other workers",
                  wk->id, wk->addr, now - wk->last_seen_ms);
        worker_lost(d, w);
    }
}

/* The least loaded live worker with a free slot, preferring not `avoid`.
 * @locks d->mu held */
static int pick_worker(rt_driver_t *d, int avoid)
{
    int best = -1;
    double best_load = 2.0;
    for (int pass = 0; pass < 2 && best < 0; pass++)
        for (int w = 0; w < d->nworkers; w++) {
            worker_t *wk = &d->workers[w];
            if (wk->dead || wk->busy >= wk->slots || (pass == 0 && w == avoid))
                continue;
            double load = (double)wk->busy / wk->slots;
            if (load < best_load) {
                best_load = load;
                best = w;
            }
        }
    return best;
}

/* ---- running one batch ------------------------------------------------------- */

typedef struct dispatch {
    int task, attempt, worker;
    char addr[280];
    core_buf_t body;
} dispatch_t;

/* Runs plan's tasks to completion. Returns 0 (all done), CORE_ERR_STATE
 * (a task failed too often: j->batch_error says why) or CORE_ERR_CLOSED
 * (the job or the driver is stopping). */
static int batch_run(rt_driver_t *d, job_t *j, const rt_plan_t *plan)
{
    pthread_mutex_lock(&d->mu);
    j->tasks = core_xcalloc((size_t)plan->ntasks + 1, sizeof *j->tasks);
    for (int t = 0; t < plan->ntasks; t++)
        j->tasks[t].avoid = -1;
    j->ntasks = plan->ntasks;
    j->cur_batch = plan->batch;
    j->batch_failed = 0;
    free(j->batch_error);
    j->batch_error = NULL;
    int rc = 0;
    dispatch_t *ds = core_xcalloc((size_t)plan->ntasks + 1, sizeof *ds);
    int64_t last_wait_log = core_mono_ms();
    for (;;) {
        if (j->stop_req || d->stopping) {
            rc = CORE_ERR_CLOSED;
            break;
        }
        if (j->batch_failed) {
            rc = CORE_ERR_STATE;
            break;
        }
        int done = 0, nd = 0, pending = 0;
        reap_workers(d);
        for (int t = 0; t < j->ntasks; t++) {
            task_slot_t *ts = &j->tasks[t];
            if (ts->st == TS_DONE) {
                done++;
                continue;
            }
            if (ts->st != TS_PENDING)
                continue;
            int w = pick_worker(d, ts->avoid);
            if (w < 0) {
                pending++;
                continue;
            }
            ts->st = TS_RUNNING;
            ts->attempt++;
            ts->worker = w;
            d->workers[w].busy++;
            dispatch_t *x = &ds[nd++];
            x->task = t;
            x->attempt = ts->attempt;
            x->worker = w;
            snprintf(x->addr, sizeof x->addr, "%s", d->workers[w].addr);
            const rt_range_t *r = &plan->tasks[t];
            rt_task_t task = {.job = j->name,
                              .job_uid = j->uid,
                              .sha256 = j->sha,
                              .batch = plan->batch,
                              .index = t,
                              .attempt = ts->attempt,
                              .topic = r->topic,
                              .partition = r->partition,
                              .start = r->start,
                              .end = r->end,
                              .flags = j->flags,
                              .brokers = d->conf.broker,
                              .config = j->config};
            core_buf_init(&x->body);
            rt_task_encode(&task, &x->body);
        }
        if (done == j->ntasks)
            break;
        if (pending && core_mono_ms() - last_wait_log > 5000) {
            CORE_WARN(MOD, "job %s batch %" PRId64 ": %d task(s) wait for a free worker slot",
                      j->name, plan->batch, pending);
            last_wait_log = core_mono_ms();
        }
        if (nd == 0) {
            cv_wait_ms(d, 100);
            continue;
        }
        pthread_mutex_unlock(&d->mu);
        int refused = 0;
        for (int i = 0; i < nd; i++) {
            dispatch_t *x = &ds[i];
            /* An earlier send of this round may have found the worker gone
             * (worker_lost already put this task back to pending). */
            pthread_mutex_lock(&d->mu);
            int gone = d->workers[x->worker].dead || j->tasks[x->task].st != TS_RUNNING ||
                       j->tasks[x->task].attempt != x->attempt;
            pthread_mutex_unlock(&d->mu);
            if (gone) {
                core_buf_fini(&x->body);
                continue;
            }
            rt_http_resp_t resp;
            char es[512];
            int err = rt_http_request_addr(x->addr, "POST", "/v1/tasks", d->token,
                                           "application/octet-stream", x->body.data,
                                           x->body.len, 5000, 65536, &resp, es, sizeof es);
            int st = err ? 0 : resp.status;
            if (!err)
                rt_http_resp_fini(&resp);
            core_buf_fini(&x->body);
            if (st == 202)
                continue;
            refused++;
            pthread_mutex_lock(&d->mu);
            task_slot_t *ts = &j->tasks[x->task];
            if (ts->st == TS_RUNNING && ts->attempt == x->attempt) {
                ts->st = TS_PENDING;
                /* A refusal (503) means never started; after a transport
                 * error the worker may have queued it, so that attempt
                 * number stays used (its late result must not count). */
                if (!err)
                    ts->attempt--;
                if (d->workers[x->worker].busy > 0)
                    d->workers[x->worker].busy--;
            }
            if (err) {
                /* Unreachable: stop using it until it registers again. */
                CORE_WARN(MOD, "worker %s unreachable (%s): dropped", d->workers[x->worker].id,
                          es);
                worker_lost(d, x->worker);
            }
            pthread_mutex_unlock(&d->mu);
        }
        pthread_mutex_lock(&d->mu);
        /* A worker still busy with tasks of a previous driver run answers
         * 503: back off instead of re-offering at once. */
        if (refused)
            cv_wait_ms(d, 50);
    }
    free(ds);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

static void batch_clear(rt_driver_t *d, job_t *j)
{
    pthread_mutex_lock(&d->mu);
    for (int t = 0; t < j->ntasks; t++) {
        task_slot_t *ts = &j->tasks[t];
        if (ts->st == TS_RUNNING && ts->worker >= 0 && d->workers[ts->worker].busy > 0)
            d->workers[ts->worker].busy--; /* its late result will be ignored */
        rt_result_fini(&ts->res);
        free(ts->last_error);
    }
    free(j->tasks);
    j->tasks = NULL;
    j->ntasks = 0;
    j->cur_batch = -1;
    pthread_mutex_unlock(&d->mu);
}

/* ---- the atomic commit (step 4) ---------------------------------------------- */

static void counter_set(job_t *j, const char *name, int64_t v)
{
    for (int i = 0; i < j->ncounters; i++)
        if (!strcmp(j->counters[i].name, name)) {
            j->counters[i].value = v;
            return;
        }
    j->counters = core_xrealloc(j->counters, (size_t)(j->ncounters + 1) * sizeof *j->counters);
    j->counters[j->ncounters].name = core_xstrdup(name);
    j->counters[j->ncounters].value = v;
    j->ncounters++;
}

typedef struct commit_stats {
    int64_t events, duplicates, conflicts;
} commit_stats_t;

static int commit_events_batch(store_batch_t *b, commit_stats_t *cs, char *errstr,
                               size_t errstr_size)
{
    size_t n = store_batch_events(b);
    store_put_result_t *res = n ? core_xcalloc(n, sizeof *res) : NULL;
    int err = store_batch_commit(b, res, errstr, errstr_size);
    if (!err)
        for (size_t i = 0; i < n; i++) {
            if (res[i].status == STORE_PUT_DUPLICATE)
                cs->duplicates++;
            else if (res[i].status == STORE_PUT_CONFLICT)
                cs->conflicts++;
        }
    free(res);
    return err;
}

/* Builds and applies step 4 for a finished batch. The counters in
 * new_counters (json object of totals) are computed by the caller. */
static int store_commit(rt_driver_t *d, job_t *j, const rt_plan_t *plan, json_t *totals,
                        commit_stats_t *cs, char *errstr, size_t errstr_size)
{
    store_batch_t *b = NULL;
    int err = store_batch_begin(d->store, 0, &b);
    if (err)
        return core_errf(err, errstr, errstr_size, "store batch: %s", core_strerror(err));
    memset(cs, 0, sizeof *cs);
    for (int t = 0; t < j->ntasks; t++) {
        rt_result_t *r = &j->tasks[t].res;
        for (int i = 0; i < r->nevents; i++) {
            if (store_batch_events(b) >= STORE_BATCH_MAX_EVENTS) {
                /* Surplus events go first in their own batches (idempotent ids). */
                err = commit_events_batch(b, cs, errstr, errstr_size);
                b = NULL;
                if (!err)
                    err = store_batch_begin(d->store, 0, &b);
                if (err)
                    goto fail;
            }
            const rt_event_out_t *e = &r->events[i];
            store_event_t ev = {0};
            snprintf(ev.event_id, sizeof ev.event_id, "%s", e->id);
            ev.event = e->event;
            ev.entity_type = e->entity_type;
            ev.entity_id = e->entity_id;
            ev.target_entity_type = e->target_type;
            ev.target_entity_id = e->target_id;
            ev.properties = e->properties;
            ev.event_time_ms = e->event_time;
            ev.event_time_given = true;
            err = store_batch_put_event(b, j->app, j->channel, &ev, errstr, errstr_size);
            if (err) {
                char m[512];
                snprintf(m, sizeof m, "%.500s", errstr);
                err = core_errf(err, errstr, errstr_size,
                                "task %d emitted an invalid event (%s/%s): %s", t,
                                e->entity_type, e->entity_id, m);
                goto fail;
            }
            cs->events++;
        }
        /* Keyed state, tagged with the batch that wrote it. */
        for (int i = 0; i < r->nstate; i++) {
            const rt_state_out_t *s = &r->state[i];
            const rt_range_t *tr = &plan->tasks[t];
            char pfx[512];
            int pl = snprintf(pfx, sizeof pfx, "rt/%s/s/%s/%d/", j->uid, tr->topic,
                              (int)tr->partition);
            if (s->key_len > RT_STATE_KEY_MAX) {
                err = core_errf(CORE_ERR_TOO_LARGE, errstr, errstr_size,
                                "state key longer than %d bytes", RT_STATE_KEY_MAX);
                goto fail;
            }
            uint8_t key[1100];
            memcpy(key, pfx, (size_t)pl);
            memcpy(key + pl, s->key, s->key_len);
            if (s->value) {
                uint8_t *v = core_xmalloc(s->value_len + 8);
                core_put_be64(v, (uint64_t)plan->batch);
                memcpy(v + 8, s->value, s->value_len);
                err = store_batch_put_kv(b, key, (size_t)pl + s->key_len, v, s->value_len + 8);
                free(v);
            } else {
                err = store_batch_delete_kv(b, key, (size_t)pl + s->key_len);
            }
            if (err) {
                err = core_errf(err, errstr, errstr_size, "state update: %s",
                                core_strerror(err));
                goto fail;
            }
        }
    }
    char key[256];
    char *txt = json_dumps(totals, JSON_COMPACT | JSON_SORT_KEYS);
    kv_key(key, sizeof key, j, "counters");
    err = store_batch_put_kv(b, key, strlen(key), txt, strlen(txt));
    free(txt);
    if (err)
        goto fail;
    json_t *offs = json_object();
    for (int i = 0; i < plan->nranges; i++) {
        json_t *t = json_object_get(offs, plan->ranges[i].topic);
        if (!t) {
            t = json_object();
            json_object_set_new(offs, plan->ranges[i].topic, t);
        }
        char p[16];
        snprintf(p, sizeof p, "%d", (int)plan->ranges[i].partition);
        json_object_set_new(t, p, json_integer(plan->ranges[i].end));
    }
    json_t *prog = json_pack("{s:I,s:o}", "batch", (json_int_t)plan->batch, "offsets", offs);
    txt = json_dumps(prog, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(prog);
    kv_key(key, sizeof key, j, "progress");
    err = store_batch_put_kv(b, key, strlen(key), txt, strlen(txt));
    free(txt);
    if (err)
        goto fail;
    err = commit_events_batch(b, cs, errstr, errstr_size);
    return err;
fail:
    store_batch_abort(b);
    return err;
}

/* The batch id the store has committed for j (progress key), or -1. */
static int store_progress(rt_driver_t *d, job_t *j, int64_t *batch)
{
    char key[256];
    kv_key(key, sizeof key, j, "progress");
    void *v = NULL;
    size_t vl = 0;
    *batch = -1;
    int err = store_kv_get(d->store, key, strlen(key), &v, &vl);
    if (err == CORE_ERR_NOT_FOUND)
        return 0;
    if (err)
        return err;
    json_t *o = json_loadb(v, vl, 0, NULL);
    free(v);
    json_int_t b = -1;
    if (!o || json_unpack(o, "{s:I}", "batch", &b)) {
        json_decref(o);
        return CORE_ERR_CORRUPT;
    }
    json_decref(o);
    *batch = b;
    return 0;
}

static void load_counters(rt_driver_t *d, job_t *j)
{
    char key[256];
    kv_key(key, sizeof key, j, "counters");
    void *v = NULL;
    size_t vl = 0;
    if (store_kv_get(d->store, key, strlen(key), &v, &vl))
        return;
    json_t *o = json_loadb(v, vl, 0, NULL);
    free(v);
    const char *k;
    json_t *val;
    pthread_mutex_lock(&d->mu);
    json_object_foreach(o, k, val) counter_set(j, k, json_integer_value(val));
    pthread_mutex_unlock(&d->mu);
    json_decref(o);
}

/* ---- the job loop -------------------------------------------------------------- */

static void job_pause(rt_driver_t *d, job_t *j, const char *why)
{
    pthread_mutex_lock(&d->mu);
    snprintf(j->status, sizeof j->status, "paused");
    free(j->error);
    j->error = core_xstrdup(why);
    char es[256];
    if (job_save(j, es, sizeof es))
        CORE_ERROR(MOD, "job %s: saving paused state: %s", j->name, es);
    pthread_mutex_unlock(&d->mu);
    CORE_ERROR(MOD, "job %s paused: %s", j->name, why);
}

static int write_commit_record(job_t *j, const rt_plan_t *plan, int64_t records,
                               int64_t duration_ms, int recovered, char *es, size_t esz)
{
    char cdir[4200], nm[32];
    snprintf(cdir, sizeof cdir, "%s/commits", j->dir);
    snprintf(nm, sizeof nm, "%" PRId64, plan->batch);
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:b}", "batch", (json_int_t)plan->batch, "records",
                          (json_int_t)records, "duration_ms", (json_int_t)duration_ms,
                          "committed_ms", (json_int_t)core_wall_ms(), "recovered", recovered);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int err = rt_record_write(cdir, nm, s, es, esz);
    free(s);
    return err;
}

static int resolve_initial(rt_driver_t *d, job_t *j, rt_plan_t *initial, char *es, size_t esz)
{
    char *s = NULL;
    int err = rt_record_read(j->dir, "start", &s, NULL, es, esz);
    if (!err) {
        err = rt_plan_from_json(s, strlen(s), initial, es, esz);
        free(s);
        return err;
    }
    if (err != ENOENT)
        return err;
    rt_watermark_t *wm = NULL;
    int n = 0;
    err = fetch_watermarks(d, j, &wm, &n, es, esz);
    if (err)
        return err;
    memset(initial, 0, sizeof *initial);
    initial->ranges = core_xcalloc((size_t)n + 1, sizeof *initial->ranges);
    for (int i = 0; i < n; i++) {
        int64_t o = !strcmp(j->starting, "latest") ? wm[i].high : wm[i].low;
        initial->ranges[i] = (rt_range_t){core_xstrdup(wm[i].topic), wm[i].partition, o, o};
    }
    initial->nranges = n;
    free(wm);
    s = rt_plan_to_json(initial);
    err = rt_record_write(j->dir, "start", s, es, esz);
    free(s);
    return err;
}

static int64_t sleep_until(rt_driver_t *d, job_t *j, int64_t when_ms)
{
    pthread_mutex_lock(&d->mu);
    while (!j->stop_req && !d->stopping) {
        int64_t left = when_ms - core_mono_ms();
        if (left <= 0)
            break;
        cv_wait_ms(d, left);
    }
    int stop = j->stop_req || d->stopping;
    pthread_mutex_unlock(&d->mu);
    return stop;
}

/* Runs, commits and records one batch (steps 3-6). Returns 0, or nonzero
 * when the loop must end (paused or stopping). */
static int batch_execute(rt_driver_t *d, job_t *j, const rt_plan_t *plan, int64_t t0)
{
    char es[1024];
    int rc = batch_run(d, j, plan);
    if (rc == CORE_ERR_CLOSED) {
        batch_clear(d, j);
        return rc;
    }
    if (rc) {
        char why[1200];
        pthread_mutex_lock(&d->mu);
        snprintf(why, sizeof why, "%s", j->batch_error ? j->batch_error : "batch failed");
        pthread_mutex_unlock(&d->mu);
        batch_clear(d, j);
        pthread_mutex_lock(&d->mu);
        hist_push(j, plan->batch, rt_plan_records(plan), core_mono_ms() - t0, core_wall_ms(),
                  "failed", plan);
        pthread_mutex_unlock(&d->mu);
        job_pause(d, j, why);
        return rc;
    }
    /* New counter totals = committed totals + this batch's deltas. */
    json_t *totals = json_object();
    int64_t records = 0;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < j->ncounters; i++)
        json_object_set_new(totals, j->counters[i].name, json_integer(j->counters[i].value));
    for (int t = 0; t < j->ntasks; t++) {
        rt_result_t *r = &j->tasks[t].res;
        records += r->records;
        for (int c = 0; c < r->ncounters; c++) {
            json_t *v = json_object_get(totals, r->counters[c].name);
            json_object_set_new(totals, r->counters[c].name,
                                json_integer((v ? json_integer_value(v) : 0) +
                                             r->counters[c].delta));
        }
    }
    pthread_mutex_unlock(&d->mu);
    commit_stats_t cs;
    int err = 0;
    for (int attempt = 1; attempt <= RT_COMMIT_TRIES; attempt++) {
        err = store_commit(d, j, plan, totals, &cs, es, sizeof es);
        if (!err || err == CORE_ERR_INVAL || err == CORE_ERR_TOO_LARGE)
            break;
        CORE_WARN(MOD, "job %s batch %" PRId64 ": store commit failed (try %d/%d): %s", j->name,
                  plan->batch, attempt, RT_COMMIT_TRIES, es);
        if (sleep_until(d, j, core_mono_ms() + 200 * attempt))
            break;
    }
    if (err) {
        json_decref(totals);
        batch_clear(d, j);
        char why[1200];
        snprintf(why, sizeof why, "batch %" PRId64 " could not be committed: %s", plan->batch,
                 es);
        job_pause(d, j, why);
        return err;
    }
    fault("after-store-commit");
    if (cs.conflicts)
        CORE_WARN(MOD, "job %s batch %" PRId64 ": %" PRId64 " events conflicted with stored "
                       "events of the same id (is the job deterministic?)",
                  j->name, plan->batch, cs.conflicts);
    int64_t dur = core_mono_ms() - t0;
    err = write_commit_record(j, plan, records, dur, 0, es, sizeof es);
    if (err) {
        /* The store has the batch; a restart will write the record. */
        json_decref(totals);
        batch_clear(d, j);
        job_pause(d, j, es);
        return err;
    }
    fault("after-commit-record");
    pthread_mutex_lock(&d->mu);
    const char *k;
    json_t *v;
    json_object_foreach(totals, k, v) counter_set(j, k, json_integer_value(v));
    j->batches++;
    j->records += records;
    j->events += cs.events;
    j->last_records = records;
    j->last_duration_ms = dur;
    j->last_rate = dur > 0 ? records * 1000.0 / (double)dur : (double)records * 1000.0;
    hist_push(j, plan->batch, records, dur, core_wall_ms(), "committed", plan);
    pthread_mutex_unlock(&d->mu);
    json_decref(totals);
    batch_clear(d, j);
    CORE_DEBUG(MOD, "job %s batch %" PRId64 ": %" PRId64 " records, %" PRId64 " events (%" PRId64
                    " duplicates) in %" PRId64 " ms",
               j->name, plan->batch, records, cs.events, cs.duplicates, dur);
    broker_commit(d, j, plan);
    if (plan->batch >= RT_HISTORY_KEEP) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/plans", j->dir);
        rt_dir_purge_below(dir, plan->batch - RT_HISTORY_KEEP + 1);
        snprintf(dir, sizeof dir, "%s/commits", j->dir);
        rt_dir_purge_below(dir, plan->batch - RT_HISTORY_KEEP + 1);
    }
    return 0;
}

static void *job_loop(void *arg)
{
    job_t *j = arg;
    rt_driver_t *d = j->drv;
    char es[1024], pdir[4200], cdir[4200];
    snprintf(pdir, sizeof pdir, "%s/plans", j->dir);
    snprintf(cdir, sizeof cdir, "%s/commits", j->dir);
    rt_mkdirs(pdir, 0755);
    rt_mkdirs(cdir, 0755);
    rt_plan_t prev = {0}, initial = {0}, rerun = {0};
    int have_prev = 0, have_rerun = 0, have_initial = 0;
    int64_t next = 0;
    char *s = NULL;
    /* Recovery (rt_driver.h): the last plan, its commit record, the store. */
    int64_t last;
    if (rt_dir_last_batch(pdir, &last) == 0) {
        char nm[32];
        snprintf(nm, sizeof nm, "%" PRId64, last);
        rt_plan_t p;
        int err = rt_record_read(pdir, nm, &s, NULL, es, sizeof es);
        if (!err) {
            err = rt_plan_from_json(s, strlen(s), &p, es, sizeof es);
            free(s);
        }
        if (err) {
            job_pause(d, j, es);
            goto out;
        }
        struct stat st;
        char cpath[4300];
        snprintf(cpath, sizeof cpath, "%s/%s", cdir, nm);
        int64_t sb = -1;
        if (stat(cpath, &st) == 0) {
            prev = p;
            have_prev = 1;
        } else if ((err = store_progress(d, j, &sb)) != 0) {
            rt_plan_free(&p);
            snprintf(es, sizeof es, "reading the job's progress from the store: %s",
                     core_strerror(err));
            job_pause(d, j, es);
            goto out;
        } else if (sb == last) {
            CORE_INFO(MOD, "job %s: batch %" PRId64 " is in the store but has no commit record: "
                           "writing it (no re-run)",
                      j->name, last);
            if ((err = write_commit_record(j, &p, rt_plan_records(&p), 0, 1, es, sizeof es))) {
                rt_plan_free(&p);
                job_pause(d, j, es);
                goto out;
            }
            pthread_mutex_lock(&d->mu);
            hist_push(j, last, rt_plan_records(&p), 0, core_wall_ms(), "recovered", &p);
            j->batches++;
            j->records += rt_plan_records(&p);
            pthread_mutex_unlock(&d->mu);
            prev = p;
            have_prev = 1;
        } else {
            CORE_INFO(MOD, "job %s: batch %" PRId64 " was planned but not committed (store at "
                           "%" PRId64 "): re-running it with the same ranges",
                      j->name, last, sb);
            rerun = p;
            have_rerun = 1;
        }
        next = last + 1;
    }
    int64_t last_start = 0;
    while (1) {
        pthread_mutex_lock(&d->mu);
        int stop = j->stop_req || d->stopping;
        pthread_mutex_unlock(&d->mu);
        if (stop)
            break;
        rt_plan_t plan;
        int64_t t0;
        if (have_rerun) {
            plan = rerun;
            have_rerun = 0;
            t0 = core_mono_ms();
        } else {
            if (last_start && sleep_until(d, j, last_start + j->interval_ms))
                break;
            t0 = core_mono_ms();
            if (!have_prev && !have_initial) {
                int err = resolve_initial(d, j, &initial, es, sizeof es);
                if (err) {
                    CORE_WARN(MOD, "job %s: resolving starting offsets: %s (retrying)", j->name,
                              es);
                    if (sleep_until(d, j, core_mono_ms() + 1000))
                        break;
                    continue;
                }
                have_initial = 1;
            }
            rt_watermark_t *wm = NULL;
            int nwm = 0;
            int err = fetch_watermarks(d, j, &wm, &nwm, es, sizeof es);
            if (err) {
                CORE_WARN(MOD, "job %s: %s (retrying)", j->name, es);
                free(wm);
                last_start = core_mono_ms();
                if (sleep_until(d, j, core_mono_ms() + 1000))
                    break;
                continue;
            }
            rt_plan_params_t pp = {.batch = next,
                                   .max_records = j->max_records,
                                   .task_max = d->conf.task_max_records,
                                   .stateful = (j->flags & EDDY_JOB_F_STATEFUL) != 0,
                                   .prev = have_prev ? &prev : NULL,
                                   .initial = have_initial ? &initial : NULL};
            err = rt_plan_make(&pp, wm, nwm, &plan);
            free(wm);
            if (err) {
                job_pause(d, j, "planning failed: too many partitions");
                break;
            }
            if (plan.ntasks == 0 && !j->empty_batches) {
                /* No new data: no batch (Spark skips no-data batches). */
                rt_plan_free(&plan);
                last_start = t0;
                if (sleep_until(d, j, t0 + (j->interval_ms > RT_IDLE_POLL_MS ? j->interval_ms : RT_IDLE_POLL_MS)))
                    break;
                last_start = 0;
                continue;
            }
            if (plan.data_loss)
                CORE_WARN(MOD, "job %s batch %" PRId64 ": %" PRId64 " records were deleted by "
                               "retention before they were read; skipping to the earliest offset",
                          j->name, next, plan.data_loss);
            /* Step 2: the write-ahead plan. */
            char nm[32];
            snprintf(nm, sizeof nm, "%" PRId64, plan.batch);
            s = rt_plan_to_json(&plan);
            err = rt_record_write(pdir, nm, s, es, sizeof es);
            free(s);
            if (err) {
                rt_plan_free(&plan);
                job_pause(d, j, es);
                break;
            }
            fault("after-plan");
        }
        last_start = t0;
        if (batch_execute(d, j, &plan, t0)) {
            rt_plan_free(&plan);
            break;
        }
        if (have_prev)
            rt_plan_free(&prev);
        prev = plan;
        have_prev = 1;
        next = plan.batch + 1;
    }
out:
    if (have_prev)
        rt_plan_free(&prev);
    if (have_rerun)
        rt_plan_free(&rerun);
    if (have_initial)
        rt_plan_free(&initial);
    return NULL;
}

/* @locks d->mu held */
static void job_start_thread(rt_driver_t *d, job_t *j)
{
    if (j->thread_live)
        return;
    j->stop_req = 0;
    j->cur_batch = -1;
    if (pthread_create(&j->thread, NULL, job_loop, j) == 0)
        j->thread_live = 1;
}

/* Stops the job's loop and joins it. @locks d->mu NOT held */
static void job_stop_thread(rt_driver_t *d, job_t *j)
{
    pthread_mutex_lock(&d->mu);
    int live = j->thread_live;
    j->stop_req = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (live)
        pthread_join(j->thread, NULL);
    pthread_mutex_lock(&d->mu);
    j->thread_live = 0;
    pthread_mutex_unlock(&d->mu);
}

/* ---- HTTP API ---------------------------------------------------------------- */

static int authorized(rt_driver_t *d, core_http_req_t *req)
{
    const char *h = core_http_req_header(req, "Authorization");
    size_t tl = strlen(d->token);
    if (!h || strncmp(h, "Bearer ", 7) || strlen(h + 7) != tl)
        goto deny;
    /* Constant time in the token's bytes. */
    unsigned diff = 0;
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned char)h[7 + i] ^ (unsigned char)d->token[i];
    if (!diff)
        return 1;
deny:
    core_http_reply_error(req, 401, "missing or wrong token (Authorization: Bearer ...; the "
                                    "CLI reads DIR/token or --token)");
    return 0;
}

static const char *q_or(core_http_req_t *req, const char *name, const char *def)
{
    const char *v = core_http_req_query(req, name);
    return v && *v ? v : def;
}

static void h_submit(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    if (!authorized(d, req))
        return;
    const char *name = core_http_req_query(req, "name");
    const char *inputs = core_http_req_query(req, "inputs");
    const char *config = q_or(req, "config", "{}");
    const char *starting = q_or(req, "starting_offsets", "latest");
    int64_t interval = 1000, maxr = 100000, mtf = 4, app = 1, empty = 0;
    if (!name || !valid_name(name))
        return core_http_reply_error(req, 400, "name: 1..%d characters of [A-Za-z0-9._-], not "
                                               "starting with . _ or -",
                                     RT_NAME_MAX);
    if (!inputs || !*inputs)
        return core_http_reply_error(req, 400, "inputs: at least one topic");
    if ((core_http_req_query(req, "interval_ms") &&
         core_parse_int(core_http_req_query(req, "interval_ms"), &interval)) ||
        (core_http_req_query(req, "max_records") &&
         core_parse_int(core_http_req_query(req, "max_records"), &maxr)) ||
        (core_http_req_query(req, "max_task_failures") &&
         core_parse_int(core_http_req_query(req, "max_task_failures"), &mtf)) ||
        (core_http_req_query(req, "app") && core_parse_int(core_http_req_query(req, "app"), &app)) ||
        (core_http_req_query(req, "empty_batches") &&
         core_parse_int(core_http_req_query(req, "empty_batches"), &empty)) ||
        interval < 0 || maxr < 1 || mtf < 1 || mtf > 1000 || app < 1 || app > INT32_MAX)
        return core_http_reply_error(req, 400, "bad numeric option (interval_ms >= 0, "
                                               "max_records >= 1, 1 <= max_task_failures <= "
                                               "1000, app >= 1)");
    if (strcmp(starting, "earliest") && strcmp(starting, "latest"))
        return core_http_reply_error(req, 400, "starting_offsets: earliest or latest");
    if (strlen(config) > RT_CONFIG_MAX)
        return core_http_reply_error(req, 400, "config: at most %d bytes", RT_CONFIG_MAX);
    json_t *cj = json_loads(config, 0, NULL);
    int cfg_ok = cj && json_is_object(cj);
    json_decref(cj);
    if (!cfg_ok)
        return core_http_reply_error(req, 400, "config: must be a JSON object");
    size_t blen;
    const char *body = core_http_req_body(req, &blen);
    if (blen == 0)
        return core_http_reply_error(req, 400, "the body must be the job's .so file");
    /* Content-addressed, durable binary: write, verify, keep. */
    char sha[65], path[4300], tmpname[128], es[1024];
    rt_sha256_hex(body, blen, sha);
    snprintf(path, sizeof path, "%s/%s.so", d->bin_dir, sha);
    struct stat st;
    int fresh = stat(path, &st) != 0;
    if (fresh) {
        snprintf(tmpname, sizeof tmpname, "%s.so", sha);
        int err = rt_file_write_atomic(d->bin_dir, tmpname, body, blen, es, sizeof es);
        if (err)
            return core_http_reply_error(req, 500, "%s", es);
    }
    char jname[256] = "";
    unsigned flags = 0;
    int err = rt_job_check_isolated(d->exe, path, 10000, jname, sizeof jname, &flags, es,
                                    sizeof es);
    if (err) {
        if (fresh)
            unlink(path);
        return core_http_reply_error(req, 400, "job refused: %s", es);
    }
    job_t *j = core_xcalloc(1, sizeof *j);
    j->drv = d;
    snprintf(j->name, sizeof j->name, "%s", name);
    snprintf(j->sha, sizeof j->sha, "%s", sha);
    snprintf(j->starting, sizeof j->starting, "%s", starting);
    snprintf(j->status, sizeof j->status, "running");
    if ((err = random_hex(j->uid, 16))) {
        job_free(j);
        return core_http_reply_error(req, 500, "random: %s", core_strerror(err));
    }
    j->config = core_xstrdup(config);
    j->interval_ms = interval;
    j->max_records = maxr;
    j->max_task_failures = (int)mtf;
    j->app = (int32_t)app;
    j->flags = flags;
    j->empty_batches = empty != 0;
    j->created_ms = core_wall_ms();
    j->cur_batch = -1;
    char *list = core_xstrdup(inputs), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!*t || strlen(t) > RT_TOPIC_MAX || j->ninputs >= 64)
            continue;
        j->inputs = core_xrealloc(j->inputs, (size_t)(j->ninputs + 1) * sizeof *j->inputs);
        j->inputs[j->ninputs++] = core_xstrdup(t);
    }
    free(list);
    if (!j->ninputs) {
        job_free(j);
        return core_http_reply_error(req, 400, "inputs: at least one topic");
    }
    snprintf(j->dir, sizeof j->dir, "%.4000s/%.64s", d->jobs_dir, name);
    pthread_mutex_lock(&d->mu);
    if (job_find(d, name)) {
        pthread_mutex_unlock(&d->mu);
        job_free(j);
        return core_http_reply_error(req, 409, "a job named %s exists (delete it first)", name);
    }
    if (d->njobs == RT_MAX_JOBS) {
        pthread_mutex_unlock(&d->mu);
        job_free(j);
        return core_http_reply_error(req, 507, "too many jobs");
    }
    if ((err = rt_mkdirs(j->dir, 0755)) || (err = job_save(j, es, sizeof es))) {
        pthread_mutex_unlock(&d->mu);
        job_free(j);
        return core_http_reply_error(req, 500, "saving the job: %s", core_strerror(err));
    }
    d->jobs[d->njobs++] = j;
    job_start_thread(d, j);
    pthread_mutex_unlock(&d->mu);
    CORE_INFO(MOD, "job %s submitted (%s, sha256 %.12s, inputs %s)", name, jname, sha, inputs);
    core_http_reply_json(req, 201,
                         json_pack("{s:s,s:s,s:s,s:s,s:b}", "name", name, "sha256", sha, "uid",
                                   j->uid, "status", "running", "stateful",
                                   (flags & EDDY_JOB_F_STATEFUL) != 0));
}

/* @locks d->mu held */
static json_t *job_json(rt_driver_t *d, job_t *j, int detail)
{
    json_t *o = job_def_json(j);
    json_object_set_new(o, "batches", json_integer(j->batches));
    json_object_set_new(o, "records", json_integer(j->records));
    json_object_set_new(o, "events", json_integer(j->events));
    json_object_set_new(o, "task_failures", json_integer(j->task_failures));
    json_object_set_new(o, "last_batch_duration_ms", json_integer(j->last_duration_ms));
    json_object_set_new(o, "last_batch_records_per_s", json_real(j->last_rate));
    json_t *c = json_object();
    for (int i = 0; i < j->ncounters; i++)
        json_object_set_new(c, j->counters[i].name, json_integer(j->counters[i].value));
    json_object_set_new(o, "counters", c);
    if (j->tasks) {
        int done = 0, running = 0, fails = 0;
        for (int t = 0; t < j->ntasks; t++) {
            done += j->tasks[t].st == TS_DONE;
            running += j->tasks[t].st == TS_RUNNING;
            fails += j->tasks[t].failures;
        }
        json_object_set_new(o, "current_batch",
                            json_pack("{s:I,s:i,s:i,s:i,s:i}", "batch", (json_int_t)j->cur_batch,
                                      "tasks", j->ntasks, "done", done, "running", running,
                                      "failures", fails));
    }
    if (detail) {
        json_t *h = json_array();
        for (int i = 0; i < j->nhist; i++)
            json_array_append_new(
                h, json_pack("{s:I,s:O,s:I,s:I,s:I,s:s}", "batch", (json_int_t)j->hist[i].batch,
                             "ranges", j->hist[i].ranges, "records",
                             (json_int_t)j->hist[i].records, "duration_ms",
                             (json_int_t)j->hist[i].duration_ms, "committed_ms",
                             (json_int_t)j->hist[i].committed_ms, "outcome",
                             j->hist[i].outcome));
        json_object_set_new(o, "history", h);
    }
    return o;
}

static void h_jobs_list(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    json_t *a = json_array();
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->njobs; i++)
        json_array_append_new(a, job_json(d, d->jobs[i], 0));
    pthread_mutex_unlock(&d->mu);
    core_http_reply_json(req, 200, json_pack("{s:o}", "jobs", a));
}

static void h_job_get(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    pthread_mutex_lock(&d->mu);
    job_t *j = job_find(d, core_http_req_param(req, "name"));
    json_t *o = j ? job_json(d, j, 1) : NULL;
    pthread_mutex_unlock(&d->mu);
    if (!o)
        return core_http_reply_error(req, 404, "no job named %s", core_http_req_param(req, "name"));
    core_http_reply_json(req, 200, o);
}

/* The job a mutating request names (/v1/jobs/<name>/...), after the token
 * check; NULL when the request was already answered (401 or 404). */
static job_t *job_for_change(rt_driver_t *d, core_http_req_t *req)
{
    if (!authorized(d, req))
        return NULL;
    pthread_mutex_lock(&d->mu);
    job_t *j = job_find(d, core_http_req_param(req, "name"));
    pthread_mutex_unlock(&d->mu);
    if (!j)
        core_http_reply_error(req, 404, "no job named %s", core_http_req_param(req, "name"));
    return j;
}

static void h_job_stop(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    job_t *j = job_for_change(d, req);
    if (!j)
        return;
    job_stop_thread(d, j);
    char es[256];
    pthread_mutex_lock(&d->mu);
    snprintf(j->status, sizeof j->status, "stopped");
    int err = job_save(j, es, sizeof es);
    pthread_mutex_unlock(&d->mu);
    if (err)
        return core_http_reply_error(req, 500, "%s", es);
    CORE_INFO(MOD, "job %s stopped", j->name);
    core_http_reply_json(req, 200, json_pack("{s:s,s:s}", "name", j->name, "status", "stopped"));
}

static void h_job_resume(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    job_t *j = job_for_change(d, req);
    if (!j)
        return;
    job_stop_thread(d, j); /* joins a loop that ended by pausing */
    char es[256];
    pthread_mutex_lock(&d->mu);
    snprintf(j->status, sizeof j->status, "running");
    free(j->error);
    j->error = NULL;
    int err = job_save(j, es, sizeof es);
    if (!err)
        job_start_thread(d, j);
    pthread_mutex_unlock(&d->mu);
    if (err)
        return core_http_reply_error(req, 500, "%s", es);
    CORE_INFO(MOD, "job %s resumed", j->name);
    core_http_reply_json(req, 200, json_pack("{s:s,s:s}", "name", j->name, "status", "running"));
}

typedef struct kv_del {
    char **keys;
    size_t *lens;
    int n, cap;
} kv_del_t;

static int collect_key(const void *key, size_t klen, const void *val, size_t vlen, void *opaque)
{
    kv_del_t *k = opaque;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 64;
        k->keys = core_xrealloc(k->keys, (size_t)k->cap * sizeof *k->keys);
        k->lens = core_xrealloc(k->lens, (size_t)k->cap * sizeof *k->lens);
    }
    k->keys[k->n] = core_xmalloc(klen);
    memcpy(k->keys[k->n], key, klen);
    k->lens[k->n++] = klen;
    return 0;
}

static void h_job_delete(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    job_t *j = job_for_change(d, req);
    if (!j)
        return;
    job_stop_thread(d, j);
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->njobs; i++)
        if (d->jobs[i] == j) {
            d->jobs[i] = d->jobs[--d->njobs];
            break;
        }
    pthread_mutex_unlock(&d->mu);
    /* The job's files, then its progress, counters and state (its events stay). */
    core_fs_rm_rf(j->dir);
    char pfx[64];
    snprintf(pfx, sizeof pfx, "rt/%s/", j->uid);
    kv_del_t k = {0};
    store_kv_scan(d->store, pfx, strlen(pfx), collect_key, &k);
    for (int i = 0; i < k.n; i++) {
        store_kv_delete(d->store, k.keys[i], k.lens[i]);
        free(k.keys[i]);
    }
    free(k.keys);
    free(k.lens);
    CORE_INFO(MOD, "job %s deleted", j->name);
    core_http_reply_json(req, 200, json_pack("{s:s,s:s}", "name", j->name, "status", "deleted"));
    job_free(j);
}

static void h_worker_register(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    if (!authorized(d, req))
        return;
    size_t len;
    const char *body = core_http_req_body(req, &len);
    json_t *o = json_loadb(body, len, 0, NULL);
    const char *addr = NULL;
    int slots = 0;
    if (!o || json_unpack(o, "{s:s,s:i}", "address", &addr, "slots", &slots) || slots < 1 ||
        slots > 1024 || strlen(addr) >= sizeof d->workers[0].addr) {
        json_decref(o);
        return core_http_reply_error(req, 400, "expected {\"address\":\"HOST:PORT\",\"slots\":N}");
    }
    pthread_mutex_lock(&d->mu);
    if (d->nworkers == RT_MAX_WORKERS) {
        pthread_mutex_unlock(&d->mu);
        json_decref(o);
        return core_http_reply_error(req, 507, "too many workers");
    }
    d->workers = core_xrealloc(d->workers, (size_t)(d->nworkers + 1) * sizeof *d->workers);
    worker_t *w = &d->workers[d->nworkers++];
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s-w%" PRIu64, d->run_id, ++d->worker_seq);
    snprintf(w->addr, sizeof w->addr, "%s", addr);
    w->slots = slots;
    w->last_seen_ms = core_mono_ms();
    char id[32];
    snprintf(id, sizeof id, "%s", w->id);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    CORE_INFO(MOD, "worker %s registered: %s, %d slots", id, addr, slots);
    json_decref(o);
    core_http_reply_json(req, 200, json_pack("{s:s}", "id", id));
}

/* @locks d->mu held */
static worker_t *worker_find(rt_driver_t *d, const char *id, int *idx)
{
    for (int i = 0; i < d->nworkers; i++)
        if (!strcmp(d->workers[i].id, id)) {
            if (idx)
                *idx = i;
            return &d->workers[i];
        }
    return NULL;
}

static void h_worker_heartbeat(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    if (!authorized(d, req))
        return;
    pthread_mutex_lock(&d->mu);
    worker_t *w = worker_find(d, core_http_req_param(req, "id"), NULL);
    int ok = w && !w->dead;
    if (ok)
        w->last_seen_ms = core_mono_ms();
    pthread_mutex_unlock(&d->mu);
    if (!ok)
        return core_http_reply_error(req, 404, "unknown or expired worker: register again");
    core_http_reply_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static void h_worker_result(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    if (!authorized(d, req))
        return;
    size_t len;
    const char *body = core_http_req_body(req, &len);
    rt_result_t r;
    if (rt_result_decode(body, len, &r))
        return core_http_reply_error(req, 400, "malformed task result");
    int accepted = 0;
    pthread_mutex_lock(&d->mu);
    job_t *j = job_find(d, r.job);
    int widx = -1;
    worker_t *w = worker_find(d, core_http_req_param(req, "id"), &widx);
    if (w && !w->dead)
        w->last_seen_ms = core_mono_ms();
    if (j && j->tasks && j->cur_batch == r.batch && r.index >= 0 && r.index < j->ntasks) {
        task_slot_t *ts = &j->tasks[r.index];
        if (ts->st == TS_RUNNING && ts->attempt == r.attempt) {
            accepted = 1;
            if (ts->worker >= 0 && d->workers[ts->worker].busy > 0)
                d->workers[ts->worker].busy--;
            if (ts->worker >= 0)
                d->workers[ts->worker].tasks_done++;
            if (r.status == 0) {
                ts->st = TS_DONE;
                ts->res = r;
                memset(&r, 0, sizeof r);
            } else {
                ts->failures++;
                j->task_failures++;
                ts->avoid = ts->worker;
                free(ts->last_error);
                ts->last_error = core_xstrdup(r.error ? r.error : "failed");
                CORE_WARN(MOD, "job %s batch %" PRId64 " task %d attempt %d failed (%d/%d): %s",
                          j->name, r.batch, r.index, r.attempt, ts->failures,
                          j->max_task_failures, ts->last_error);
                if (ts->failures >= j->max_task_failures) {
                    char m[1600];
                    snprintf(m, sizeof m,
                             "batch %" PRId64 " task %d failed %d times (--max-task-failures "
                             "%d); last error: %s",
                             r.batch, r.index, ts->failures, j->max_task_failures,
                             ts->last_error);
                    free(j->batch_error);
                    j->batch_error = core_xstrdup(m);
                    j->batch_failed = 1;
                }
                ts->st = TS_PENDING;
            }
            pthread_cond_broadcast(&d->cv);
        }
    }
    pthread_mutex_unlock(&d->mu);
    rt_result_fini(&r);
    core_http_reply_json(req, 200, json_pack("{s:b}", "accepted", accepted));
}

static void h_workers(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    json_t *a = json_array();
    pthread_mutex_lock(&d->mu);
    int64_t now = core_mono_ms();
    for (int i = 0; i < d->nworkers; i++) {
        worker_t *w = &d->workers[i];
        if (w->dead)
            continue;
        json_array_append_new(a, json_pack("{s:s,s:s,s:i,s:i,s:I,s:I}", "id", w->id, "address",
                                           w->addr, "slots", w->slots, "busy", w->busy,
                                           "tasks_done", (json_int_t)w->tasks_done,
                                           "last_seen_ms_ago",
                                           (json_int_t)(now - w->last_seen_ms)));
    }
    pthread_mutex_unlock(&d->mu);
    core_http_reply_json(req, 200, json_pack("{s:o}", "workers", a));
}

static void h_binary(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    if (!authorized(d, req))
        return;
    const char *sha = core_http_req_param(req, "sha");
    if (strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64)
        return core_http_reply_error(req, 400, "bad sha256");
    char path[4300];
    snprintf(path, sizeof path, "%s/%s.so", d->bin_dir, sha);
    char *bin;
    size_t blen;
    if (core_fs_read_file(path, SIZE_MAX, &bin, &blen))
        return core_http_reply_error(req, 404, "no binary %s", sha);
    core_http_reply(req, 200, "application/octet-stream", bin, blen);
    free(bin);
}

static int unhex(const char *s, uint8_t *out, size_t max, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2 || n / 2 > max)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    *len = n / 2;
    return 0;
}

/* Keyed state as of the last committed batch (= the running batch's start). */
static void h_state(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    if (!authorized(d, req))
        return;
    const char *topic = core_http_req_query(req, "topic");
    const char *part = core_http_req_query(req, "partition");
    const char *khex = core_http_req_query(req, "key");
    uint8_t kb[RT_STATE_KEY_MAX];
    size_t kl;
    if (!topic || !part || !khex || unhex(khex, kb, sizeof kb, &kl) || strlen(topic) > RT_TOPIC_MAX)
        return core_http_reply_error(req, 400, "need topic, partition and key (hex)");
    pthread_mutex_lock(&d->mu);
    job_t *j = job_find(d, core_http_req_param(req, "name"));
    char uid[33] = "";
    if (j)
        snprintf(uid, sizeof uid, "%s", j->uid);
    pthread_mutex_unlock(&d->mu);
    if (!j)
        return core_http_reply_error(req, 404, "no such job");
    uint8_t key[1100];
    int pl = snprintf((char *)key, 600, "rt/%s/s/%s/%d/", uid, topic, atoi(part));
    memcpy(key + pl, kb, kl);
    void *v = NULL;
    size_t vl = 0;
    int err = store_kv_get(d->store, key, (size_t)pl + kl, &v, &vl);
    if (err == CORE_ERR_NOT_FOUND)
        return core_http_reply(req, 204, NULL, "", 0);
    if (err || vl < 8) {
        free(v);
        return core_http_reply_error(req, 500, "state read: %s", core_strerror(err ? err : CORE_ERR_CORRUPT));
    }
    core_http_reply(req, 200, "application/octet-stream", (char *)v + 8, vl - 8);
    free(v);
}

static void prom_label(core_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            core_wr_raw(b, "\\", 1);
        if (*s == '\n') {
            core_wr_raw(b, "\\n", 2);
            continue;
        }
        core_wr_raw(b, s, 1);
    }
}

static void h_metrics(core_http_req_t *req, void *user)
{
    rt_driver_t *d = user;
    core_buf_t b;
    core_buf_init(&b);
    core_http_metrics_write(d->http, &b);
    char line[512];
#define EMIT(...)                                                                         \
    do {                                                                                  \
        int n_ = snprintf(line, sizeof line, __VA_ARGS__);                               \
        core_wr_raw(&b, line, (size_t)n_);                                                \
    } while (0)
    EMIT("# HELP eddy_job_batches_total Committed micro-batches per job.\n"
         "# TYPE eddy_job_batches_total counter\n");
    pthread_mutex_lock(&d->mu);
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"eddy_job_records_total", "counter", "Input records processed in committed batches."},
        {"eddy_job_events_total", "counter", "Events committed to the store."},
        {"eddy_job_task_failures_total", "counter", "Failed task attempts."},
        {"eddy_job_last_batch_duration_seconds", "gauge", "Plan-to-commit time of the last batch."},
        {"eddy_job_last_batch_records_per_second", "gauge", "Throughput of the last batch."},
        {"eddy_job_running", "gauge", "1 when the job is running, 0 when paused or stopped."},
        {"eddy_job_counter", "counter", "Job-defined counters (eddy_counter_add), exactly once."},
    };
    for (int f = -1; f < (int)(sizeof fams / sizeof fams[0]); f++) {
        if (f >= 0)
            EMIT("# HELP %s %s\n# TYPE %s %s\n", fams[f].name, fams[f].help, fams[f].name,
                 fams[f].type);
        for (int i = 0; i < d->njobs; i++) {
            job_t *j = d->jobs[i];
            const char *fam = f < 0 ? "eddy_job_batches_total" : fams[f].name;
            if (f == 6) {
                for (int c = 0; c < j->ncounters; c++) {
                    EMIT("%s{job=\"", fam);
                    prom_label(&b, j->name);
                    EMIT("\",name=\"");
                    prom_label(&b, j->counters[c].name);
                    EMIT("\"} %" PRId64 "\n", j->counters[c].value);
                }
                continue;
            }
            EMIT("%s{job=\"", fam);
            prom_label(&b, j->name);
            switch (f) {
            case -1: EMIT("\"} %" PRId64 "\n", j->batches); break;
            case 0: EMIT("\"} %" PRId64 "\n", j->records); break;
            case 1: EMIT("\"} %" PRId64 "\n", j->events); break;
            case 2: EMIT("\"} %" PRId64 "\n", j->task_failures); break;
            case 3: EMIT("\"} %.3f\n", j->last_duration_ms / 1000.0); break;
            case 4: EMIT("\"} %.1f\n", j->last_rate); break;
            case 5: EMIT("\"} %d\n", !strcmp(j->status, "running")); break;
            }
        }
    }
    int live = 0;
    for (int i = 0; i < d->nworkers; i++)
        live += !d->workers[i].dead;
    pthread_mutex_unlock(&d->mu);
    EMIT("# HELP eddy_driver_workers Live workers.\n# TYPE eddy_driver_workers gauge\n"
         "eddy_driver_workers %d\n", live);
    rt_sched_metrics_write(d->sched, &b);
#undef EMIT
    core_http_reply(req, 200, "text/plain; version=0.0.4", b.data, b.len);
    core_buf_fini(&b);
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int sched_auth(core_http_req_t *req, void *arg)
{
    return authorized(arg, req);
}

/* The scheduled commands' view of the store: what this driver opened, in
 * the flag syntax of the eddy commands that read it. */
static void sched_store_arg(const rt_driver_conf_t *conf, char *out, size_t size)
{
    if (conf->store) {
        snprintf(out, size, "--store=%s", conf->store);
        return;
    }
    const char *dir = conf->store_dir ? conf->store_dir : conf->data;
    char abs[4096];
    snprintf(out, size, "--data=%s", realpath(dir, abs) ? abs : dir);
}

static int load_token(rt_driver_t *d, char *es, size_t esz)
{
    if (d->conf.token && *d->conf.token) {
        snprintf(d->token, sizeof d->token, "%s", d->conf.token);
        return 0;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/token", d->conf.data);
    FILE *f = fopen(path, "re");
    if (f) {
        int ok = fgets(d->token, sizeof d->token, f) != NULL;
        fclose(f);
        d->token[strcspn(d->token, "\r\n")] = 0;
        if (ok && strlen(d->token) >= 16)
            return 0;
    }
    int err = random_hex(d->token, 24);
    if (err)
        return core_errf(err, es, esz, "generating a token: %s", core_strerror(err));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, d->token, strlen(d->token)) < 0 || fsync(fd) < 0) {
        err = errno;
        if (fd >= 0)
            close(fd);
        return core_errf(err, es, esz, "writing %s: %s", path, strerror(err));
    }
    close(fd);
    CORE_INFO(MOD, "generated an API token in %s", path);
    return 0;
}

int rt_driver_start(const rt_driver_conf_t *conf, rt_driver_t **out, char *es, size_t esz)
{
    rt_driver_t *d = core_xcalloc(1, sizeof *d);
    d->conf = *conf;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    snprintf(d->exe, sizeof d->exe, "%s", conf->exe);
    snprintf(d->jobs_dir, sizeof d->jobs_dir, "%s/jobs", conf->data);
    snprintf(d->bin_dir, sizeof d->bin_dir, "%s/jobs/_bin", conf->data);
    int err = rt_mkdirs(d->bin_dir, 0755);
    if (err) {
        core_errf(err, es, esz, "creating %s: %s", d->bin_dir, strerror(err));
        goto fail;
    }
    if ((err = load_token(d, es, esz)))
        goto fail;
    if (random_hex(d->run_id, 4))
        snprintf(d->run_id, sizeof d->run_id, "%08x", (unsigned)getpid());
    err = conf->store ? store_open(conf->store, NULL, &d->store, es, esz)
                      : store_open_dir(conf->store_dir ? conf->store_dir : conf->data, NULL,
                                       &d->store, es, esz);
    if (err)
        goto fail;
    d->meta_rk = rk_new(conf->broker, NULL, es, esz);
    if (!d->meta_rk) {
        err = CORE_ERR_INVAL;
        goto fail;
    }
    /* Jobs on disk. */
    DIR *dir = opendir(d->jobs_dir);
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        if (!valid_name(de->d_name) || d->njobs == RT_MAX_JOBS)
            continue;
        job_t *j = NULL;
        char e2[512];
        if (job_load(d, de->d_name, &j, e2, sizeof e2)) {
            CORE_ERROR(MOD, "skipping job %s: %s", de->d_name, e2);
            continue;
        }
        j->drv = d;
        j->cur_batch = -1;
        hist_load(j);
        load_counters(d, j);
        d->jobs[d->njobs++] = j;
    }
    if (dir)
        closedir(dir);
    core_http_conf_t hc = {.name = "driver",
                           .threads = conf->http_threads > 0 ? (int)conf->http_threads : 8,
                           .max_body = RT_MAX_BODY};
    d->http = core_http_new(&hc);
    core_http_route(d->http, "POST", "/v1/jobs", h_submit, d);
    core_http_route(d->http, "GET", "/v1/jobs", h_jobs_list, d);
    core_http_route(d->http, "POST", "/v1/jobs/<name>/stop", h_job_stop, d);
    core_http_route(d->http, "POST", "/v1/jobs/<name>/resume", h_job_resume, d);
    core_http_route(d->http, "GET", "/v1/jobs/<name>", h_job_get, d);
    core_http_route(d->http, "DELETE", "/v1/jobs/<name>", h_job_delete, d);
    core_http_route(d->http, "GET", "/v1/state/<name>", h_state, d);
    core_http_route(d->http, "POST", "/v1/workers", h_worker_register, d);
    core_http_route(d->http, "GET", "/v1/workers", h_workers, d);
    core_http_route(d->http, "POST", "/v1/workers/<id>/heartbeat", h_worker_heartbeat, d);
    core_http_route(d->http, "POST", "/v1/workers/<id>/results", h_worker_result, d);
    core_http_route(d->http, "GET", "/v1/binaries/<sha>", h_binary, d);
    core_http_route(d->http, "GET", "/metrics", h_metrics, d);
    char sched_dir[4200], store_arg[4200];
    snprintf(sched_dir, sizeof sched_dir, "%s/schedules", conf->data);
    sched_store_arg(conf, store_arg, sizeof store_arg);
    /* An embedded RocksDB is locked by this process: a child cannot open it
     * (with an event server owning the dir, store_open_dir goes remote). */
    bool embedded = !strcmp(store_engine(d->store), "rocksdb");
    rt_sched_conf_t sc = {.dir = sched_dir,
                          .exe = d->exe,
                          .store_arg = embedded ? NULL : store_arg,
                          .no_store_why = "this driver embeds its RocksDB store and holds its lock; "
                                          "run an event server on that data dir and give the "
                                          "driver --store-dir, as eddy up does"};
    if ((err = rt_sched_open(&sc, &d->sched, es, esz)))
        goto fail;
    rt_sched_routes(d->sched, d->http, sched_auth, d);
    char host[256];
    int port;
    if (core_parse_hostport(conf->listen, host, sizeof host, &port)) {
        err = core_errf(CORE_ERR_INVAL, es, esz, "--listen: HOST:PORT expected");
        goto fail;
    }
    if ((err = core_http_start(d->http, host, port, es, esz)))
        goto fail;
    if ((err = rt_sched_start(d->sched, es, esz)))
        goto fail;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->njobs; i++)
        if (!strcmp(d->jobs[i]->status, "running"))
            job_start_thread(d, d->jobs[i]);
    pthread_mutex_unlock(&d->mu);
    CORE_INFO(MOD, "driver listening on %s:%d (%d jobs, store %s, broker %s)", host,
              core_http_port(d->http), d->njobs, store_engine(d->store), conf->broker);
    *out = d;
    return 0;
fail:
    rt_driver_stop(d);
    return err;
}

int rt_driver_port(const rt_driver_t *d)
{
    return core_http_port(d->http);
}

void rt_driver_stop(rt_driver_t *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < d->njobs; i++)
        job_stop_thread(d, d->jobs[i]);
    if (d->http)
        core_http_free(d->http);
    rt_sched_close(d->sched); /* after the API: no handler can reach it any more */
    for (int i = 0; i < d->njobs; i++)
        job_free(d->jobs[i]);
    if (d->meta_rk)
        rd_kafka_destroy(d->meta_rk);
    store_close(d->store);
    free(d->workers);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}
