/*
 * rt_worker — see rt_worker.h for the isolation decision and protocol.
 */
#include "runtime/rt_worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core_alloc.h"
#include "core/core_buf.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_http.h"
#include "core/core_log.h"
#include "core/core_time.h"
#include "runtime/rt_http.h"
#include "runtime/rt_plan.h"
#include "runtime/rt_proto.h"
#include "runtime/rt_task.h"

#define MOD "worker"
/* Largest task body accepted and result read back from a child. */
#define RT_TASK_BODY_MAX (1u << 20)
#define RT_RESULT_MAX (1u << 30)

typedef struct qtask {
    uint8_t *body;
    size_t len;
    struct qtask *next;
} qtask_t;

typedef struct worker {
    const rt_worker_conf_t *conf;
    char work_dir[4096];
    int own_work_dir;
    core_http_t *http;
    char addr[300];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qtask_t *head, *tail;
    int queued, running;
    char id[32];
    int stopping;
    pthread_mutex_t fetch_mu; /* one binary download at a time */
} worker_t;

static int authorized(worker_t *w, core_http_req_t *req)
{
    const char *h = core_http_req_header(req, "Authorization");
    const char *t = w->conf->token;
    if (h && !strncmp(h, "Bearer ", 7) && !strcmp(h + 7, t))
        return 1;
    core_http_reply_error(req, 401, "missing or wrong token");
    return 0;
}

static void h_task(core_http_req_t *req, void *user)
{
    worker_t *w = user;
    if (!authorized(w, req))
        return;
    size_t len;
    const char *body = core_http_req_body(req, &len);
    rt_task_t t;
    if (rt_task_decode(body, len, &t))
        return core_http_reply_error(req, 400, "malformed task");
    rt_task_fini(&t);
    pthread_mutex_lock(&w->mu);
    if (w->queued + w->running >= w->conf->slots) {
        pthread_mutex_unlock(&w->mu);
        return core_http_reply_error(req, 503, "all %d slots busy", (int)w->conf->slots);
    }
    qtask_t *q = core_xmalloc(sizeof *q);
    q->body = core_xmalloc(len);
    memcpy(q->body, body, len);
    q->len = len;
    q->next = NULL;
    if (w->tail)
        w->tail->next = q;
    else
        w->head = q;
    w->tail = q;
    w->queued++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    core_http_reply_json(req, 202, json_pack("{s:b}", "accepted", 1));
}

static void h_status(core_http_req_t *req, void *user)
{
    worker_t *w = user;
    pthread_mutex_lock(&w->mu);
    json_t *o = json_pack("{s:s,s:i,s:i,s:i}", "id", w->id, "slots", (int)w->conf->slots,
                          "running", w->running, "queued", w->queued);
    pthread_mutex_unlock(&w->mu);
    core_http_reply_json(req, 200, o);
}

/* Makes sure work_dir/<sha>.so exists and matches its hash. */
static int ensure_binary(worker_t *w, const char *sha, char *path, size_t psz, char *es,
                         size_t esz)
{
    snprintf(path, psz, "%s/%s.so", w->work_dir, sha);
    struct stat st;
    if (stat(path, &st) == 0)
        return 0;
    pthread_mutex_lock(&w->fetch_mu);
    int err = 0;
    if (stat(path, &st) == 0)
        goto out;
    char url[128];
    snprintf(url, sizeof url, "/v1/binaries/%s", sha);
    rt_http_resp_t r;
    err = rt_http_request_addr(w->conf->driver, "GET", url, w->conf->token, NULL, NULL, 0, 30000,
                               512u << 20, &r, es, esz);
    if (err)
        goto out;
    if (r.status != 200) {
        err = core_errf(CORE_ERR_NOT_FOUND, es, esz, "fetching job binary %.12s: HTTP %d %s",
                        sha, r.status, r.body ? r.body : "");
    } else {
        char got[65];
        rt_sha256_hex(r.body, r.len, got);
        if (strcmp(got, sha))
            err = core_errf(CORE_ERR_CORRUPT, es, esz, "job binary %.12s: hash mismatch", sha);
        else {
            char nm[80];
            snprintf(nm, sizeof nm, "%s.so", sha);
            err = rt_file_write_atomic(w->work_dir, nm, r.body, r.len, es, esz);
        }
    }
    rt_http_resp_fini(&r);
out:
    pthread_mutex_unlock(&w->fetch_mu);
    return err;
}

static void fail_result(rt_result_t *res, const rt_task_t *t, int status, const char *msg)
{
    memset(res, 0, sizeof *res);
    res->job = core_xstrdup(t->job);
    res->batch = t->batch;
    res->index = t->index;
    res->attempt = t->attempt;
    res->status = status;
    res->error = core_xstrdup(msg);
}

/* Runs one task in a child process; fills *res. */
static void run_child(worker_t *w, const rt_task_t *t, const uint8_t *body, size_t len,
                      rt_result_t *res)
{
    char path[4300], es[1024];
    int err = ensure_binary(w, t->sha256, path, sizeof path, es, sizeof es);
    if (err) {
        fail_result(res, t, err, es);
        return;
    }
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    int pfd = memfd_create("eddy-progress", MFD_CLOEXEC);
    volatile int64_t *prog = MAP_FAILED;
    if (pfd >= 0 && ftruncate(pfd, 4096) == 0)
        prog = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
    if (prog == MAP_FAILED || pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
        snprintf(es, sizeof es, "worker: cannot create pipes: %s", strerror(errno));
        fail_result(res, t, CORE_ERR_IO, es);
        goto cleanup;
    }
    prog[0] = prog[1] = -1;
    char pfd_s[16];
    snprintf(pfd_s, sizeof pfd_s, "%d", 3);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(es, sizeof es, "worker: fork: %s", strerror(errno));
        fail_result(res, t, CORE_ERR_IO, es);
        goto cleanup;
    }
    if (pid == 0) {
        /* Async-signal-safe only, until exec. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(pfd, 3);
        char *argv[] = {(char *)"eddy", (char *)"task-run", (char *)"--driver",
                        w->conf->driver, (char *)"--job-path", path, (char *)"--progress-fd",
                        pfd_s, NULL};
        execv(w->conf->exe, argv);
        _exit(127);
    }
    close(in[0]);
    in[0] = -1;
    close(out[1]);
    out[1] = -1;
    /* The task is small: write it whole, then read the result until EOF. */
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(in[1], body + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(in[1]);
    in[1] = -1;
    core_buf_t rb;
    core_buf_init(&rb);
    int64_t deadline = core_mono_ms() + w->conf->task_timeout_ms;
    int timed_out = 0;
    for (;;) {
        int64_t left = deadline - core_mono_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        int r = poll(&p, 1, left > 1000 ? 1000 : (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        core_buf_reserve(&rb, 65536);
        ssize_t n = read(out[0], rb.data + rb.len, rb.cap - rb.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        rb.len += (size_t)n;
        if (rb.len > RT_RESULT_MAX)
            break;
    }
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out) {
        snprintf(es, sizeof es, "task timed out after %" PRId64 " ms (--task-timeout)",
                 w->conf->task_timeout_ms);
        fail_result(res, t, CORE_ERR_TIMEOUT, es);
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (prog[0] >= 0)
            snprintf(es, sizeof es,
                     "job %s crashed with signal %d (%s) in process() on %s/%d offsets "
                     "%" PRId64 "..%" PRId64 " (task range [%" PRId64 ",%" PRId64 "))",
                     t->job, sig, strsignal(sig), t->topic, (int)t->partition, prog[0], prog[1],
                     t->start, t->end);
        else
            snprintf(es, sizeof es,
                     "job %s crashed with signal %d (%s) outside process() on %s/%d (task "
                     "range [%" PRId64 ",%" PRId64 "))",
                     t->job, sig, strsignal(sig), t->topic, (int)t->partition, t->start, t->end);
        fail_result(res, t, CORE_ERR_STATE, es);
    } else if (rt_result_decode(rb.data, rb.len, res)) {
        /* exit() from job code, or a sanitizer halting the process. */
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (prog[0] >= 0)
            snprintf(es, sizeof es,
                     "job %s exited with status %d in process() on %s/%d offsets %" PRId64
                     "..%" PRId64 " (task range [%" PRId64 ",%" PRId64 ")) without a result",
                     t->job, code, t->topic, (int)t->partition, prog[0], prog[1], t->start,
                     t->end);
        else
            snprintf(es, sizeof es, "task process of job %s exited with status %d without a result",
                     t->job, code);
        fail_result(res, t, CORE_ERR_STATE, es);
    }
    core_buf_fini(&rb);
cleanup:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
    }
    if (prog != MAP_FAILED)
        munmap((void *)prog, 4096);
    if (pfd >= 0)
        close(pfd);
}

static void post_result(worker_t *w, const rt_result_t *res)
{
    core_buf_t b;
    core_buf_init(&b);
    rt_result_encode(res, &b);
    for (int attempt = 0; attempt < 60; attempt++) {
        char path[96], es[512];
        pthread_mutex_lock(&w->mu);
        snprintf(path, sizeof path, "/v1/workers/%s/results", w->id);
        int stopping = w->stopping;
        pthread_mutex_unlock(&w->mu);
        if (stopping)
            break;
        rt_http_resp_t r;
        int err = rt_http_request_addr(w->conf->driver, "POST", path, w->conf->token,
                                       "application/octet-stream", b.data, b.len, 60000, 65536,
                                       &r, es, sizeof es);
        if (!err) {
            int st = r.status;
            rt_http_resp_fini(&r);
            if (st == 200)
                break;
            CORE_WARN(MOD, "driver answered %d to a result of %s batch %" PRId64 " task %d", st,
                      res->job, res->batch, res->index);
            if (st >= 400 && st < 500)
                break;
        } else {
            CORE_WARN(MOD, "posting a result: %s (retrying)", es);
        }
        usleep(500000);
    }
    core_buf_fini(&b);
}

static void *slot_main(void *arg)
{
    worker_t *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stopping) {
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        qtask_t *q = w->head;
        w->head = q->next;
        if (!w->head)
            w->tail = NULL;
        w->queued--;
        w->running++;
        pthread_mutex_unlock(&w->mu);
        rt_task_t t;
        if (rt_task_decode(q->body, q->len, &t) == 0) {
            rt_result_t res;
            run_child(w, &t, q->body, q->len, &res);
            if (res.status)
                CORE_WARN(MOD, "%s batch %" PRId64 " task %d attempt %d failed: %s", t.job,
                          t.batch, t.index, t.attempt, res.error ? res.error : "?");
            post_result(w, &res);
            rt_result_fini(&res);
            rt_task_fini(&t);
        }
        free(q->body);
        free(q);
        pthread_mutex_lock(&w->mu);
        w->running--;
        pthread_mutex_unlock(&w->mu);
    }
}

static int do_register(worker_t *w, char *es, size_t esz)
{
    char body[512];
    snprintf(body, sizeof body, "{\"address\":\"%s\",\"slots\":%d}", w->addr,
             (int)w->conf->slots);
    rt_http_resp_t r;
    int err = rt_http_request_addr(w->conf->driver, "POST", "/v1/workers", w->conf->token,
                                   "application/json", body, strlen(body), 5000, 65536, &r, es,
                                   esz);
    if (err)
        return err;
    json_t *o = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    const char *id = NULL;
    if (!o || json_unpack(o, "{s:s}", "id", &id)) {
        err = core_errf(r.status == 401 ? CORE_ERR_AUTH : CORE_ERR_STATE, es, esz,
                        "registering with the driver: HTTP %d %s", r.status,
                        r.body ? r.body : "");
    } else {
        pthread_mutex_lock(&w->mu);
        snprintf(w->id, sizeof w->id, "%s", id);
        pthread_mutex_unlock(&w->mu);
        CORE_INFO(MOD, "registered with driver %s as %s (%s, %d slots)", w->conf->driver, id,
                  w->addr, (int)w->conf->slots);
    }
    json_decref(o);
    rt_http_resp_fini(&r);
    return err;
}

int rt_worker_run(const rt_worker_conf_t *conf, volatile sig_atomic_t *stop, char *es,
                  size_t esz)
{
    worker_t *w = core_xcalloc(1, sizeof *w);
    w->conf = conf;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->fetch_mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_t *slots = core_xcalloc((size_t)conf->slots, sizeof *slots);
    int nslots = 0, err = 0;
    if (conf->work_dir && *conf->work_dir) {
        snprintf(w->work_dir, sizeof w->work_dir, "%s", conf->work_dir);
        if ((err = rt_mkdirs(w->work_dir, 0700))) {
            core_errf(err, es, esz, "work dir %s: %s", w->work_dir, strerror(err));
            goto out;
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(w->work_dir, sizeof w->work_dir, "%s/eddy-worker-XXXXXX", tmp ? tmp : "/tmp");
        if (!mkdtemp(w->work_dir)) {
            err = core_errf(errno, es, esz, "mkdtemp: %s", strerror(errno));
            goto out;
        }
        w->own_work_dir = 1;
    }
    core_http_conf_t hc = {.name = "worker", .threads = 2, .max_body = RT_TASK_BODY_MAX};
    w->http = core_http_new(&hc);
    core_http_route(w->http, "POST", "/v1/tasks", h_task, w);
    core_http_route(w->http, "GET", "/v1/status", h_status, w);
    char host[256];
    int port;
    if (core_parse_hostport(conf->listen, host, sizeof host, &port)) {
        err = core_errf(CORE_ERR_INVAL, es, esz, "--listen: HOST:PORT expected");
        goto out;
    }
    if ((err = core_http_start(w->http, host, port, es, esz)))
        goto out;
    snprintf(w->addr, sizeof w->addr, "%s:%d", host, core_http_port(w->http));
    for (; nslots < conf->slots; nslots++)
        if (pthread_create(&slots[nslots], NULL, slot_main, w)) {
            err = core_errf(errno, es, esz, "pthread_create failed");
            goto out;
        }
    int registered = 0;
    int64_t next_log = 0;
    while (!*stop) {
        char e2[512];
        if (!registered) {
            int r = do_register(w, e2, sizeof e2);
            if (r == CORE_ERR_AUTH) {
                err = core_errf(r, es, esz, "%s", e2);
                goto out;
            }
            registered = r == 0;
            if (!registered && core_mono_ms() > next_log) {
                CORE_WARN(MOD, "%s (retrying)", e2);
                next_log = core_mono_ms() + 10000;
            }
        } else {
            char path[96];
            pthread_mutex_lock(&w->mu);
            snprintf(path, sizeof path, "/v1/workers/%s/heartbeat", w->id);
            pthread_mutex_unlock(&w->mu);
            rt_http_resp_t r;
            int e = rt_http_request_addr(conf->driver, "POST", path, conf->token, NULL, NULL, 0,
                                         5000, 65536, &r, e2, sizeof e2);
            if (!e) {
                if (r.status == 404) {
                    CORE_WARN(MOD, "the driver no longer knows worker %s: registering again",
                              w->id);
                    registered = 0;
                }
                rt_http_resp_fini(&r);
            } else if (core_mono_ms() > next_log) {
                CORE_WARN(MOD, "heartbeat: %s", e2);
                next_log = core_mono_ms() + 10000;
            }
        }
        for (int64_t slept = 0; slept < conf->heartbeat_ms && !*stop; slept += 50)
            usleep(50000);
    }
out:
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->http)
        core_http_free(w->http);
    for (int i = 0; i < nslots; i++)
        pthread_join(slots[i], NULL);
    free(slots);
    while (w->head) {
        qtask_t *q = w->head;
        w->head = q->next;
        free(q->body);
        free(q);
    }
    if (w->own_work_dir) {
        DIR *dir = opendir(w->work_dir);
        struct dirent *de;
        while (dir && (de = readdir(dir)))
            if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
                unlinkat(dirfd(dir), de->d_name, 0);
        if (dir)
            closedir(dir);
        rmdir(w->work_dir);
    }
    free(w);
    return err;
}

/* ---- the per-task child (`eddy task-run`) ------------------------------------- */

typedef struct child_env {
    const char *driver, *token;
} child_env_t;

static int child_fetch_state(void *opaque, const rt_task_t *t, const void *key, size_t key_len,
                             uint8_t **value, size_t *value_len, int *found)
{
    child_env_t *ce = opaque;
    static const char x[] = "0123456789abcdef";
    char *khex = core_xmalloc(key_len * 2 + 1);
    for (size_t i = 0; i < key_len; i++) {
        khex[2 * i] = x[((const uint8_t *)key)[i] >> 4];
        khex[2 * i + 1] = x[((const uint8_t *)key)[i] & 15];
    }
    khex[2 * key_len] = 0;
    char tenc[800], jenc[200];
    size_t plen = key_len * 2 + 1200;
    char *path = core_xmalloc(plen);
    snprintf(path, plen, "/v1/state/%s?topic=%s&partition=%d&key=%s",
             rt_http_urlencode(t->job, jenc, sizeof jenc),
             rt_http_urlencode(t->topic, tenc, sizeof tenc), (int)t->partition, khex);
    free(khex);
    rt_http_resp_t r;
    char es[512];
    int err = rt_http_request_addr(ce->driver, "GET", path, ce->token, NULL, NULL, 0, 30000,
                                   64u << 20, &r, es, sizeof es);
    free(path);
    if (err) {
        CORE_ERROR(MOD, "state read: %s", es);
        return err;
    }
    *found = 0;
    if (r.status == 200) {
        *found = 1;
        *value = (uint8_t *)r.body;
        *value_len = r.len;
        r.body = NULL;
    } else if (r.status != 204) {
        CORE_ERROR(MOD, "state read: HTTP %d %s", r.status, r.body ? r.body : "");
        err = CORE_ERR_IO;
    }
    rt_http_resp_fini(&r);
    return err;
}

int rt_task_child_main(const char *driver, const char *token, const char *job_path,
                       int progress_fd)
{
    core_buf_t in;
    core_buf_init(&in);
    for (;;) {
        core_buf_reserve(&in, 4096);
        ssize_t n = read(0, in.data + in.len, in.cap - in.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        in.len += (size_t)n;
        if (in.len > RT_TASK_BODY_MAX)
            break;
    }
    rt_task_t t;
    if (rt_task_decode(in.data, in.len, &t)) {
        core_buf_fini(&in);
        CORE_ERROR(MOD, "task-run: malformed task on stdin");
        return 2;
    }
    core_buf_fini(&in);
    volatile int64_t *prog = NULL;
    if (progress_fd >= 0) {
        void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, progress_fd, 0);
        if (m != MAP_FAILED)
            prog = m;
    }
    child_env_t ce = {driver, token};
    rt_task_env_t env = {.job_path = job_path,
                         .fetch = driver ? child_fetch_state : NULL,
                         .fetch_opaque = &ce,
                         .progress = prog,
                         .timeout_ms = 0};
    rt_result_t res;
    rt_task_run(&t, &env, &res);
    if (prog) {
        prog[0] = prog[1] = -1; /* outside process() from here on */
    }
    core_buf_t out;
    core_buf_init(&out);
    rt_result_encode(&res, &out);
    rt_result_fini(&res);
    rt_task_fini(&t);
    size_t off = 0;
    int rc = 0;
    while (off < out.len) {
        ssize_t n = write(1, out.data + off, out.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = 1;
            break;
        }
        off += (size_t)n;
    }
    core_buf_fini(&out);
    return rc;
}
