/*
 * rt_sched — see rt_sched.h for the allow-list, files, run protocol and
 * recovery.
 */
#include "runtime/rt_sched.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/core_alloc.h"
#include "core/core_cron.h"
#include "core/core_err.h"
#include "core/core_fs.h"
#include "core/core_log.h"
#include "core/core_time.h"
#include "runtime/rt_plan.h"

#define MOD "sched"

/* ---- the allow-list ------------------------------------------------------------ */

typedef struct cmd_spec {
    const char *command;      /* eddy subcommand */
    const char *const *flags; /* allowed: "--x=" takes a value, "--x" is a boolean */
    const char *file;         /* the one input file (files.<file>), passed as --<file>=PATH */
    const char *result_flag;  /* the child writes its outcome (JSON) to --<result_flag>=PATH */
    const char *const *fixed; /* appended by the driver */
    bool reads_store;         /* gets conf.store_arg unless --data=/--store= is given */
    unsigned ok_exit;         /* bit s: exit status s is a successful run */
} cmd_spec_t;

static const char *const train_flags[] = {
    "--app=", "--data=", "--store=", "--threads=", "--tolerance=", "--force", NULL};
static const char *const train_fixed[] = {"--quiet", "--trigger=schedule", NULL};

static const cmd_spec_t cmd_specs[] = {
    /* eddy train: 0 = promoted, 3 = the quality gate kept the deployed model. */
    {"train", train_flags, "engine", "result-json", train_fixed, true, 1u << 0 | 1u << 3},
};

static const cmd_spec_t *spec_find(const char *command)
{
    for (size_t i = 0; i < sizeof cmd_specs / sizeof cmd_specs[0]; i++)
        if (!strcmp(cmd_specs[i].command, command))
            return &cmd_specs[i];
    return NULL;
}

/* 1 if arg is one of spec's allowed flags in an allowed form. */
static int arg_allowed(const cmd_spec_t *spec, const char *arg)
{
    for (const char *const *f = spec->flags; *f; f++) {
        size_t fl = strlen(*f);
        if ((*f)[fl - 1] == '=' ? !strncmp(arg, *f, fl) && arg[fl] : !strcmp(arg, *f))
            return 1;
    }
    return 0;
}

/* ---- state ------------------------------------------------------------------------- */

typedef struct sched {
    char name[RT_SCHED_NAME_MAX + 1];
    const cmd_spec_t *spec;
    char **args; /* NULL-terminated */
    int nargs;
    char *file_text;  /* the input file (owned), NULL if the command takes none */
    int64_t every_ms; /* 0 when cron is used */
    char cron[CORE_CRON_MAX_EXPR + 1];
    core_cron_t cronc;
    int64_t timeout_ms, created_ms, next_ms;
    int64_t last_run; /* number of the newest run record (0 = none yet) */
    /* the run in progress (scheduler thread starts and ends it) */
    pid_t pid;
    int64_t run_no, run_start_ms, run_deadline_mono;
    bool timed_out, run_now;
    char run_trigger[16];
    /* since this driver started (metrics) */
    int64_t runs_by[4]; /* ok, failed, timeout, interrupted */
    int64_t last_ok_end_ms;
    char dir[4096];
} sched_t;

struct rt_sched {
    char dir[4096], exe[4096], store_arg[4200], no_store_why[512];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sched_t *v[RT_SCHED_MAX];
    int n;
    int running;
    bool stopping, thread_live;
    pthread_t thread;
    rt_sched_auth_fn *auth;
    void *auth_arg;
};

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RT_SCHED_NAME_MAX || s[0] == '.' || s[0] == '_' || s[0] == '-')
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

static void sched_free(sched_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nargs; i++)
        free(c->args[i]);
    free(c->args);
    free(c->file_text);
    free(c);
}

static sched_t *sched_find(rt_sched_t *s, const char *name, int *idx)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->v[i]->name, name)) {
            if (idx)
                *idx = i;
            return s->v[i];
        }
    return NULL;
}

/* The next due time strictly after now_ms; -1 when a cron never matches. */
static int64_t sched_next(const sched_t *c, int64_t now_ms)
{
    if (c->cron[0])
        return core_cron_next(&c->cronc, now_ms);
    return now_ms + c->every_ms;
}

/* ---- records --------------------------------------------------------------------- */

static json_t *def_json(const sched_t *c)
{
    json_t *args = json_array();
    for (int i = 0; i < c->nargs; i++)
        json_array_append_new(args, json_string(c->args[i]));
    json_t *o = json_pack("{s:s,s:s,s:o,s:I,s:s,s:I,s:I,s:I,s:I}", "name", c->name, "command",
                          c->spec->command, "args", args, "every_ms", (json_int_t)c->every_ms,
                          "cron", c->cron, "timeout_ms", (json_int_t)c->timeout_ms, "created_ms",
                          (json_int_t)c->created_ms, "next_ms", (json_int_t)c->next_ms, "last_run",
                          (json_int_t)c->last_run);
    if (c->spec->file) {
        json_t *files = json_object();
        json_object_set_new(files, c->spec->file, json_string(c->file_text ? c->file_text : ""));
        json_object_set_new(o, "files", files);
    }
    return o;
}

static int def_save(const sched_t *c, char *es, size_t esz)
{
    json_t *o = def_json(c);
    char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int err = rt_record_write(c->dir, "schedule", txt, es, esz);
    free(txt);
    return err;
}

/* Fills c (name, spec, args, file, timing) from a definition object: a PUT
 * body (from_api: no name/created/next/last_run) or a saved record. Every
 * check that protects exec lives here, so a hand-edited record is held to
 * the same rules as an API request. Returns 0 or CORE_ERR_INVAL + message. */
static int def_parse(json_t *o, bool from_api, sched_t *c, char *es, size_t esz)
{
    if (!json_is_object(o))
        return core_errf(CORE_ERR_INVAL, es, esz, "the body must be a JSON object");
    static const char *api_keys[] = {"command",    "args",  "every_ms", "cron",
                                     "timeout_ms", "files", NULL};
    static const char *rec_keys[] = {"command",    "args",     "every_ms", "cron",
                                     "timeout_ms", "files",    "name",     "created_ms",
                                     "next_ms",    "last_run", NULL};
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        const char **k = from_api ? api_keys : rec_keys;
        while (*k && strcmp(*k, key))
            k++;
        if (!*k)
            return core_errf(CORE_ERR_INVAL, es, esz,
                             "unknown field '%s' (want command, args, every_ms or cron, "
                             "timeout_ms, files)",
                             key);
    }
    const char *command = json_string_value(json_object_get(o, "command"));
    if (!command)
        return core_errf(CORE_ERR_INVAL, es, esz, "'command' (a string) is required");
    c->spec = spec_find(command);
    if (!c->spec)
        return core_errf(CORE_ERR_INVAL, es, esz,
                         "command '%.64s' is not allowed: a schedule may run only: train", command);
    json_t *args = json_object_get(o, "args");
    if (args && !json_is_array(args))
        return core_errf(CORE_ERR_INVAL, es, esz, "'args' must be an array of strings");
    size_t na = json_array_size(args);
    if (na > RT_SCHED_MAX_ARGS)
        return core_errf(CORE_ERR_INVAL, es, esz, "at most %d args", RT_SCHED_MAX_ARGS);
    c->args = core_xcalloc(na + 1, sizeof *c->args);
    for (size_t i = 0; i < na; i++) {
        const char *a = json_string_value(json_array_get(args, i));
        if (!a || strlen(a) > RT_SCHED_MAX_ARG)
            return core_errf(CORE_ERR_INVAL, es, esz,
                             "args[%zu] must be a string of at most %d bytes", i, RT_SCHED_MAX_ARG);
        if (!arg_allowed(c->spec, a)) {
            char allowed[512] = "";
            for (const char *const *f = c->spec->flags; *f; f++)
                snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s%s",
                         *allowed ? " " : "", *f, (*f)[strlen(*f) - 1] == '=' ? "VALUE" : "");
            return core_errf(CORE_ERR_INVAL, es, esz,
                             "argument '%.100s' is not allowed for %s (allowed: %s)", a,
                             c->spec->command, allowed);
        }
        c->args[c->nargs++] = core_xstrdup(a);
    }
    json_t *every = json_object_get(o, "every_ms"), *cron = json_object_get(o, "cron");
    const char *cron_s = json_string_value(cron);
    if (cron && !cron_s)
        return core_errf(CORE_ERR_INVAL, es, esz, "'cron' must be a string");
    if (every && !json_is_integer(every))
        return core_errf(CORE_ERR_INVAL, es, esz, "'every_ms' must be an integer");
    int64_t every_ms = every ? json_integer_value(every) : 0;
    bool has_cron = cron_s && *cron_s, has_every = every_ms != 0;
    if (has_cron == has_every)
        return core_errf(CORE_ERR_INVAL, es, esz, "give exactly one of every_ms and cron");
    if (has_every && (every_ms < RT_SCHED_MIN_EVERY_MS || every_ms > RT_SCHED_MAX_EVERY_MS))
        return core_errf(CORE_ERR_INVAL, es, esz, "every_ms must be %lld..%lld",
                         (long long)RT_SCHED_MIN_EVERY_MS, (long long)RT_SCHED_MAX_EVERY_MS);
    if (has_cron) {
        int err = core_cron_parse(cron_s, &c->cronc, es, esz);
        if (err)
            return err;
        if (core_cron_next(&c->cronc, core_wall_ms()) < 0)
            return core_errf(CORE_ERR_INVAL, es, esz, "cron '%s' never matches within %d years",
                             cron_s, CORE_CRON_HORIZON_YEARS);
        snprintf(c->cron, sizeof c->cron, "%s", cron_s);
    } else {
        c->every_ms = every_ms;
    }
    json_t *to = json_object_get(o, "timeout_ms");
    if (to && !json_is_integer(to))
        return core_errf(CORE_ERR_INVAL, es, esz, "'timeout_ms' must be an integer");
    c->timeout_ms = to ? json_integer_value(to) : RT_SCHED_DEFAULT_TIMEOUT_MS;
    if (c->timeout_ms < RT_SCHED_MIN_TIMEOUT_MS || c->timeout_ms > RT_SCHED_MAX_TIMEOUT_MS)
        return core_errf(CORE_ERR_INVAL, es, esz, "timeout_ms must be %lld..%lld",
                         (long long)RT_SCHED_MIN_TIMEOUT_MS, (long long)RT_SCHED_MAX_TIMEOUT_MS);
    json_t *files = json_object_get(o, "files");
    if (files && !json_is_object(files))
        return core_errf(CORE_ERR_INVAL, es, esz, "'files' must be an object");
    json_object_foreach(files, key, val)
    {
        if (!c->spec->file || strcmp(key, c->spec->file))
            return core_errf(CORE_ERR_INVAL, es, esz, "files.%.64s: %s takes %s%s", key,
                             c->spec->command, c->spec->file ? "only files." : "no files",
                             c->spec->file ? c->spec->file : "");
    }
    if (c->spec->file) {
        const char *text = json_string_value(json_object_get(files, c->spec->file));
        if (!text)
            return core_errf(CORE_ERR_INVAL, es, esz, "files.%s (the file's text) is required",
                             c->spec->file);
        if (strlen(text) > RT_SCHED_MAX_FILE)
            return core_errf(CORE_ERR_INVAL, es, esz, "files.%s is larger than %d bytes",
                             c->spec->file, RT_SCHED_MAX_FILE);
        c->file_text = core_xstrdup(text);
    }
    if (!from_api) {
        const char *nm = json_string_value(json_object_get(o, "name"));
        if (!nm || !valid_name(nm))
            return core_errf(CORE_ERR_INVAL, es, esz, "bad name");
        snprintf(c->name, sizeof c->name, "%s", nm);
        c->created_ms = json_integer_value(json_object_get(o, "created_ms"));
        c->next_ms = json_integer_value(json_object_get(o, "next_ms"));
        c->last_run = json_integer_value(json_object_get(o, "last_run"));
    }
    return 0;
}

int rt_sched__def_check(const char *body, size_t len, char *es, size_t esz)
{
    json_error_t je;
    json_t *o = json_loadb(body, len, 0, &je);
    if (!o)
        return core_errf(CORE_ERR_INVAL, es, esz, "body: invalid JSON: %s", je.text);
    sched_t *c = core_xcalloc(1, sizeof *c);
    int err = def_parse(o, true, c, es, esz);
    json_decref(o);
    sched_free(c);
    return err;
}

/* Reads run N's record; NULL when missing or damaged (logged). New reference. */
static json_t *run_read(const sched_t *c, int64_t n)
{
    char rdir[4200], name[32], es[512];
    snprintf(rdir, sizeof rdir, "%s/runs", c->dir);
    snprintf(name, sizeof name, "%lld", (long long)n);
    char *txt = NULL;
    int err = rt_record_read(rdir, name, &txt, NULL, es, sizeof es);
    if (err) {
        if (err != ENOENT)
            CORE_WARN(MOD, "%s run %lld: %s", c->name, (long long)n, es);
        return NULL;
    }
    json_t *o = json_loads(txt, 0, NULL);
    free(txt);
    return o;
}

static int run_write(const sched_t *c, int64_t n, json_t *rec)
{
    char rdir[4200], name[32], es[512];
    snprintf(rdir, sizeof rdir, "%s/runs", c->dir);
    snprintf(name, sizeof name, "%lld", (long long)n);
    char *txt = json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(9));
    int err = rt_record_write(rdir, name, txt, es, sizeof es);
    free(txt);
    if (err)
        CORE_ERROR(MOD, "%s: recording run %lld: %s", c->name, (long long)n, es);
    return err;
}

static void path_of(char *out, size_t size, const sched_t *c, const char *sub, int64_t n)
{
    snprintf(out, size, "%.4000s/%s/%lld", c->dir, sub, (long long)n);
}

/* The child's result file, parsed; NULL when absent or not a JSON object. */
static json_t *result_read(const sched_t *c, int64_t n)
{
    char p[4200];
    path_of(p, sizeof p, c, "results", n);
    struct stat st;
    if (stat(p, &st) || st.st_size > RT_SCHED_MAX_RESULT)
        return NULL;
    json_t *o = json_load_file(p, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The last RT_SCHED_OUTPUT_TAIL bytes of run n's log, as valid-ish text. */
static json_t *output_tail(const sched_t *c, int64_t n)
{
    char p[4200], buf[RT_SCHED_OUTPUT_TAIL + 1];
    path_of(p, sizeof p, c, "logs", n);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return json_string("");
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > RT_SCHED_OUTPUT_TAIL ? end - RT_SCHED_OUTPUT_TAIL : 0;
    ssize_t got = pread(fd, buf, RT_SCHED_OUTPUT_TAIL, from);
    close(fd);
    size_t len = got > 0 ? (size_t)got : 0;
    /* JSON strings must be UTF-8: replace anything outside printable ASCII. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] >= 0x80 || ((unsigned char)buf[i] < 0x20 && buf[i] != '\n'))
            buf[i] = '?';
    buf[len] = 0;
    return json_string(buf);
}

/* ---- loading and recovery ----------------------------------------------------------- */

/* Closes run c->last_run if a previous driver left it "running". */
static void recover_run(sched_t *c)
{
    char rdir[4200];
    snprintf(rdir, sizeof rdir, "%s/runs", c->dir);
    int64_t last;
    if (rt_dir_last_batch(rdir, &last) == 0 && last > c->last_run)
        c->last_run = last; /* crashed between steps 1 and 2 of a start */
    if (c->last_run <= 0)
        return;
    json_t *rec = run_read(c, c->last_run);
    const char *st = rec ? json_string_value(json_object_get(rec, "status")) : NULL;
    if (!st || strcmp(st, "running")) {
        json_decref(rec);
        return;
    }
    json_t *res = result_read(c, c->last_run);
    int64_t now = core_wall_ms();
    if (res) {
        bool failed = json_is_true(json_object_get(res, "failed"));
        json_object_set_new(rec, "status", json_string(failed ? "failed" : "ok"));
        json_object_set_new(rec, "error",
                            json_string("the driver restarted during the run; outcome from the "
                                        "run's result file"));
        json_object_set(rec, "result", res);
        json_t *end = json_object_get(res, "endMs");
        json_object_set_new(rec, "end_ms",
                            json_integer(json_is_integer(end) ? json_integer_value(end) : now));
    } else {
        json_object_set_new(rec, "status", json_string("interrupted"));
        json_object_set_new(rec, "error",
                            json_string("the driver stopped or crashed during the run (the run "
                                        "was killed with it)"));
        json_object_set_new(rec, "end_ms", json_integer(now));
    }
    json_object_set_new(rec, "output", output_tail(c, c->last_run));
    if (run_write(c, c->last_run, rec) == 0) {
        char p[4200];
        path_of(p, sizeof p, c, "results", c->last_run);
        unlink(p);
    }
    CORE_WARN(MOD, "%s: run %lld was in progress when the driver stopped: recorded as %s", c->name,
              (long long)c->last_run, json_string_value(json_object_get(rec, "status")));
    json_decref(res);
    json_decref(rec);
}

static int sched_mkdirs(const sched_t *c, char *es, size_t esz)
{
    static const char *subs[] = {"runs", "logs", "results"};
    for (int i = 0; i < 3; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", c->dir, subs[i]);
        int err = rt_mkdirs(p, 0755);
        if (err)
            return core_errf(err, es, esz, "creating %s: %s", p, strerror(err));
    }
    return 0;
}

static int sched_load(rt_sched_t *s, const char *name, sched_t **out, char *es, size_t esz)
{
    sched_t *c = core_xcalloc(1, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%.4000s/%.64s", s->dir, name);
    char *txt = NULL;
    int err = rt_record_read(c->dir, "schedule", &txt, NULL, es, esz);
    if (err)
        goto fail;
    json_t *o = json_loads(txt, 0, NULL);
    free(txt);
    err = def_parse(o, false, c, es, esz);
    json_decref(o);
    if (err)
        goto fail;
    if (strcmp(c->name, name)) {
        err = core_errf(CORE_ERR_CORRUPT, es, esz, "names %s", c->name);
        goto fail;
    }
    if ((err = sched_mkdirs(c, es, esz)))
        goto fail;
    recover_run(c);
    *out = c;
    return 0;
fail:
    sched_free(c);
    return err;
}

int rt_sched_open(const rt_sched_conf_t *conf, rt_sched_t **out, char *es, size_t esz)
{
    rt_sched_t *s = core_xcalloc(1, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", conf->dir);
    snprintf(s->exe, sizeof s->exe, "%s", conf->exe);
    snprintf(s->store_arg, sizeof s->store_arg, "%s", conf->store_arg ? conf->store_arg : "");
    snprintf(s->no_store_why, sizeof s->no_store_why, "%s",
             conf->no_store_why ? conf->no_store_why : "the driver has no store to offer");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int err = rt_mkdirs(s->dir, 0755);
    if (err) {
        core_errf(err, es, esz, "creating %s: %s", s->dir, strerror(err));
        rt_sched_close(s);
        return err;
    }
    DIR *dir = opendir(s->dir);
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        if (!strncmp(de->d_name, ".deleted-", 9)) { /* a delete that a crash interrupted */
            char p[4400];
            snprintf(p, sizeof p, "%.4000s/%s", s->dir, de->d_name);
            core_fs_rm_rf(p);
            continue;
        }
        if (!valid_name(de->d_name) || s->n == RT_SCHED_MAX)
            continue;
        sched_t *c = NULL;
        char e2[512];
        if (sched_load(s, de->d_name, &c, e2, sizeof e2)) {
            CORE_ERROR(MOD, "skipping schedule %s: %s", de->d_name, e2);
            continue;
        }
        s->v[s->n++] = c;
    }
    if (dir)
        closedir(dir);
    *out = s;
    return 0;
}

/* ---- running ------------------------------------------------------------------------- */

static bool has_store_arg(const sched_t *c)
{
    for (int i = 0; i < c->nargs; i++)
        if (!strncmp(c->args[i], "--data=", 7) || !strncmp(c->args[i], "--store=", 8))
            return true;
    return false;
}

/* Starts run N = last_run + 1 (steps 1-3 of rt_sched.h). @locks s->mu. */
static void run_start(rt_sched_t *s, sched_t *c, const char *trigger)
{
    int64_t now = core_wall_ms(), n = c->last_run + 1;
    char es[512], file_path[4200], result_path[4200], log_path[4200];
    c->run_now = false;
    if (c->spec->file) {
        if (rt_file_write_atomic(c->dir, c->spec->file, c->file_text, strlen(c->file_text), es,
                                 sizeof es)) {
            CORE_ERROR(MOD, "%s: %s (run skipped)", c->name, es);
            c->next_ms = sched_next(c, now);
            return;
        }
        snprintf(file_path, sizeof file_path, "--%s=%.4000s/%s", c->spec->file, c->dir,
                 c->spec->file);
    }
    path_of(result_path, sizeof result_path, c, "results", n);
    path_of(log_path, sizeof log_path, c, "logs", n);
    unlink(result_path);
    /* argv: exe command args... [store] [--file=PATH] [--result=PATH] fixed... */
    char *argv[RT_SCHED_MAX_ARGS + 16];
    int ac = 0;
    char result_arg[4300];
    argv[ac++] = s->exe;
    argv[ac++] = (char *)c->spec->command;
    for (int i = 0; i < c->nargs; i++)
        argv[ac++] = c->args[i];
    if (c->spec->reads_store && s->store_arg[0] && !has_store_arg(c))
        argv[ac++] = s->store_arg;
    if (c->spec->file)
        argv[ac++] = file_path;
    if (c->spec->result_flag) {
        snprintf(result_arg, sizeof result_arg, "--%s=%s", c->spec->result_flag, result_path);
        argv[ac++] = result_arg;
    }
    for (const char *const *f = c->spec->fixed; f && *f; f++)
        argv[ac++] = (char *)*f;
    argv[ac] = NULL;

    /* 1. the run record, 2. the schedule moves on: a crash from here on never repeats it. */
    json_t *rec = json_pack("{s:I,s:s,s:s,s:s,s:I,s:n,s:n}", "run", (json_int_t)n, "schedule",
                            c->name, "trigger", trigger, "status", "running", "start_ms",
                            (json_int_t)now, "end_ms", "result");
    int err = run_write(c, n, rec);
    json_decref(rec);
    if (err) {
        c->next_ms = sched_next(c, now); /* the error is logged; try again next time */
        return;
    }
    c->last_run = n;
    c->next_ms = sched_next(c, now);
    if (def_save(c, es, sizeof es)) {
        /* Not started; the next try is at the next due time (no spinning on a bad disk). */
        CORE_ERROR(MOD, "%s: %s (run %lld not started)", c->name, es, (long long)n);
        json_t *fail = json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:s+,s:n}", "run", (json_int_t)n,
                                 "schedule", c->name, "trigger", trigger, "status", "failed",
                                 "start_ms", (json_int_t)now, "end_ms", (json_int_t)now, "error",
                                 "could not save the schedule: ", es, "result");
        run_write(c, n, fail);
        json_decref(fail);
        return;
    }
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = logfd >= 0 && nullfd >= 0 ? fork() : -1;
    if (pid == 0) {
        /* Only async-signal-safe calls until exec (the driver has threads). */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127); /* the driver died before prctl took effect */
        dup2(nullfd, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        /* Nothing of the driver's (API socket, store files) may outlive it in the child. */
        syscall(SYS_close_range, 3u, ~0u, 0u);
        struct sigaction dfl = {.sa_handler = SIG_DFL}; /* an ignored SIGPIPE survives exec */
        sigaction(SIGPIPE, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], argv);
        _exit(127);
    }
    int fork_err = errno;
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    if (pid < 0) {
        json_t *fail = json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:s++,s:n}", "run", (json_int_t)n,
                                 "schedule", c->name, "trigger", trigger, "status", "failed",
                                 "start_ms", (json_int_t)now, "end_ms", (json_int_t)now, "error",
                                 "could not start: ", strerror(fork_err), "", "result");
        run_write(c, n, fail);
        json_decref(fail);
        CORE_ERROR(MOD, "%s: run %lld could not start: %s", c->name, (long long)n,
                   strerror(fork_err));
        return;
    }
    c->pid = pid;
    c->run_no = n;
    c->run_start_ms = now;
    c->run_deadline_mono = core_mono_ms() + c->timeout_ms;
    c->timed_out = false;
    snprintf(c->run_trigger, sizeof c->run_trigger, "%s", trigger);
    s->running++;
    CORE_INFO(MOD, "%s: run %lld started (pid %d): eddy %s, next due in %llds", c->name,
              (long long)n, (int)pid, c->spec->command, (long long)((c->next_ms - now) / 1000));
}

/* Records the outcome of the run whose child exited with status. @locks s->mu. */
static void run_finish(rt_sched_t *s, sched_t *c, int status, const char *forced_error)
{
    int64_t now = core_wall_ms();
    const char *st = "failed";
    char error[256] = "";
    int code = -1, sig = 0;
    if (forced_error) {
        st = "interrupted";
        snprintf(error, sizeof error, "%s", forced_error);
    } else if (WIFEXITED(status)) {
        code = WEXITSTATUS(status);
        if (code < 32 && (c->spec->ok_exit >> code & 1))
            st = "ok";
        else if (code == 127)
            snprintf(error, sizeof error, "exit status 127: could not run %.200s", s->exe);
        else
            snprintf(error, sizeof error, "exit status %d", code);
    } else if (WIFSIGNALED(status)) {
        sig = WTERMSIG(status);
        if (c->timed_out) {
            st = "timeout";
            snprintf(error, sizeof error, "killed after the %llds timeout",
                     (long long)(c->timeout_ms / 1000));
        } else {
            snprintf(error, sizeof error, "killed by signal %d (%s)", sig, strsignal(sig));
        }
    }
    json_t *res = result_read(c, c->run_no);
    /* The command's own account of a failure says more than "exit status 1". */
    const char *why = res && json_is_true(json_object_get(res, "failed"))
                          ? json_string_value(json_object_get(res, "reason"))
                          : NULL;
    if (why && *why && strcmp(st, "ok"))
        snprintf(error + strlen(error), sizeof error - strlen(error), ": %s", why);
    json_t *rec = json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:I}", "run", (json_int_t)c->run_no,
                            "schedule", c->name, "trigger", c->run_trigger, "status", st,
                            "start_ms", (json_int_t)c->run_start_ms, "end_ms", (json_int_t)now,
                            "duration_ms", (json_int_t)(now - c->run_start_ms));
    json_object_set_new(rec, "exit_code", code >= 0 ? json_integer(code) : json_null());
    json_object_set_new(rec, "signal", sig ? json_integer(sig) : json_null());
    json_object_set_new(rec, "error", *error ? json_string(error) : json_null());
    json_object_set_new(rec, "result", res ? res : json_null());
    json_object_set_new(rec, "output", output_tail(c, c->run_no));
    if (run_write(c, c->run_no, rec) == 0) {
        char p[4200];
        path_of(p, sizeof p, c, "results", c->run_no);
        unlink(p);
    }
    json_decref(rec);
    static const char *outcomes[4] = {"ok", "failed", "timeout", "interrupted"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(st, outcomes[i]))
            c->runs_by[i]++;
    if (!strcmp(st, "ok"))
        c->last_ok_end_ms = now;
    if (c->run_no > RT_SCHED_RUNS_KEEP) {
        char p[4200];
        snprintf(p, sizeof p, "%s/runs", c->dir);
        rt_dir_purge_below(p, c->run_no - RT_SCHED_RUNS_KEEP + 1);
        snprintf(p, sizeof p, "%s/logs", c->dir);
        rt_dir_purge_below(p, c->run_no - RT_SCHED_RUNS_KEEP + 1);
    }
    CORE_INFO(MOD, "%s: run %lld %s in %.1fs%s%s", c->name, (long long)c->run_no, st,
              (double)(now - c->run_start_ms) / 1000.0, *error ? ": " : "", error);
    c->pid = 0;
    s->running--;
}

/* Kills a running child and waits for it (SIGKILL: immediate). @locks s->mu. */
static int run_kill(sched_t *c)
{
    kill(-c->pid, SIGKILL);
    kill(c->pid, SIGKILL);
    int status = 0;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

static void *sched_thread(void *arg)
{
    rt_sched_t *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        int64_t now = core_wall_ms(), mono = core_mono_ms();
        int64_t wait_ms = 1000;
        for (int i = 0; i < s->n; i++) {
            sched_t *c = s->v[i];
            if (c->pid <= 0)
                continue;
            int status = 0;
            pid_t r = waitpid(c->pid, &status, WNOHANG);
            if (r == c->pid) {
                run_finish(s, c, status, NULL);
            } else if (r < 0 && errno == ECHILD) {
                run_finish(s, c, 0, "the child disappeared (reaped elsewhere)");
            } else if (!c->timed_out && mono >= c->run_deadline_mono) {
                CORE_WARN(MOD, "%s: run %lld exceeded its %llds timeout: killing it", c->name,
                          (long long)c->run_no, (long long)(c->timeout_ms / 1000));
                c->timed_out = true;
                kill(-c->pid, SIGKILL);
                kill(c->pid, SIGKILL);
            }
        }
        /* Start the most overdue first (run-now before all), so a busy slot
         * never starves a schedule that sits late in the table. */
        now = core_wall_ms();
        while (s->running < RT_SCHED_MAX_RUNNING) {
            sched_t *best = NULL;
            for (int i = 0; i < s->n; i++) {
                sched_t *c = s->v[i];
                bool due = c->run_now || (c->next_ms >= 0 && now >= c->next_ms);
                if (c->pid <= 0 && due &&
                    (!best || (c->run_now ? 0 : c->next_ms) < (best->run_now ? 0 : best->next_ms)))
                    best = c;
            }
            if (!best)
                break;
            run_start(s, best, best->run_now ? "run-now" : "schedule");
            if (best->pid <= 0 && best->run_now)
                best->run_now = false; /* could not start: recorded, do not spin */
        }
        for (int i = 0; i < s->n; i++) {
            sched_t *c = s->v[i];
            if (c->pid <= 0 && c->next_ms >= 0 && c->next_ms - now < wait_ms)
                wait_ms = c->next_ms - now;
        }
        if (s->running)
            wait_ms = wait_ms < RT_SCHED_TICK_MS ? wait_ms : RT_SCHED_TICK_MS;
        if (wait_ms < 10)
            wait_ms = 10;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int rt_sched_start(rt_sched_t *s, char *es, size_t esz)
{
    int err = pthread_create(&s->thread, NULL, sched_thread, s);
    if (err)
        return core_errf(err, es, esz, "starting the scheduler thread: %s", strerror(err));
    s->thread_live = true;
    CORE_INFO(MOD, "%d schedules loaded from %s", s->n, s->dir);
    return 0;
}

void rt_sched_close(rt_sched_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->thread_live)
        pthread_join(s->thread, NULL);
    for (int i = 0; i < s->n; i++) {
        sched_t *c = s->v[i];
        if (c->pid > 0) {
            run_kill(c);
            run_finish(s, c, 0, "the driver stopped during the run (the run was killed)");
        }
        sched_free(c);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* ---- HTTP ----------------------------------------------------------------------------- */

/* A schedule as the API shows it, with its newest nruns runs. @locks s->mu. */
static json_t *sched_json(const sched_t *c, int nruns, bool with_files)
{
    json_t *o = def_json(c);
    if (!with_files)
        json_object_del(o, "files");
    json_object_set_new(o, "running", json_boolean(c->pid > 0));
    json_t *runs = json_array();
    for (int64_t n = c->last_run; n > 0 && n > c->last_run - nruns; n--) {
        json_t *r = run_read(c, n);
        if (!r)
            break; /* purged */
        json_array_append_new(runs, r);
    }
    json_object_set_new(o, "runs", runs);
    return o;
}

static void h_put(core_http_req_t *req, void *user)
{
    rt_sched_t *s = user;
    if (!s->auth(req, s->auth_arg))
        return;
    const char *name = core_http_req_param(req, "name");
    if (!valid_name(name))
        return core_http_reply_error(req, 400,
                                     "bad schedule name (1-%d of [A-Za-z0-9._-], not starting "
                                     "with . _ -)",
                                     RT_SCHED_NAME_MAX);
    size_t len = 0;
    const char *body = core_http_req_body(req, &len);
    json_error_t je;
    json_t *o = json_loadb(body ? body : "", len, 0, &je);
    if (!o)
        return core_http_reply_error(req, 400, "body: invalid JSON: %s", je.text);
    char es[600];
    sched_t *nc = core_xcalloc(1, sizeof *nc);
    int err = def_parse(o, true, nc, es, sizeof es);
    json_decref(o);
    if (err) {
        sched_free(nc);
        return core_http_reply_error(req, 400, "%s", es);
    }
    if (nc->spec->reads_store && !s->store_arg[0] && !has_store_arg(nc)) {
        sched_free(nc);
        return core_http_reply_error(req, 400, "%s %s: give --data=DIR or --store=URL in args (%s)",
                                     name, "names no store", s->no_store_why);
    }
    snprintf(nc->name, sizeof nc->name, "%s", name);
    snprintf(nc->dir, sizeof nc->dir, "%.4000s/%s", s->dir, name);
    int64_t now = core_wall_ms();
    nc->created_ms = now;
    nc->next_ms = sched_next(nc, now);
    pthread_mutex_lock(&s->mu);
    int idx = -1;
    sched_t *old = sched_find(s, name, &idx);
    if (!old && s->n == RT_SCHED_MAX) {
        pthread_mutex_unlock(&s->mu);
        sched_free(nc);
        return core_http_reply_error(req, 409, "too many schedules (%d)", RT_SCHED_MAX);
    }
    if (old) {
        /* Same schedule, new definition: its runs and a run in progress stay. */
        memcpy(nc->runs_by, old->runs_by, sizeof nc->runs_by);
        nc->last_ok_end_ms = old->last_ok_end_ms;
        nc->created_ms = old->created_ms;
        nc->last_run = old->last_run;
        nc->pid = old->pid;
        nc->run_no = old->run_no;
        nc->run_start_ms = old->run_start_ms;
        nc->run_deadline_mono = old->run_deadline_mono;
        nc->timed_out = old->timed_out;
        memcpy(nc->run_trigger, old->run_trigger, sizeof nc->run_trigger);
    }
    if ((err = sched_mkdirs(nc, es, sizeof es)) || (err = def_save(nc, es, sizeof es))) {
        pthread_mutex_unlock(&s->mu);
        sched_free(nc);
        return core_http_reply_error(req, 500, "%s", es);
    }
    if (old) {
        s->v[idx] = nc;
        sched_free(old);
    } else {
        s->v[s->n++] = nc;
    }
    json_t *reply = sched_json(nc, 0, false);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (nc->cron[0])
        CORE_INFO(MOD, "schedule %s %s: eddy %s, cron \"%s\"", name, old ? "replaced" : "created",
                  nc->spec->command, nc->cron);
    else
        CORE_INFO(MOD, "schedule %s %s: eddy %s, every %lldms", name, old ? "replaced" : "created",
                  nc->spec->command, (long long)nc->every_ms);
    core_http_reply_json(req, old ? 200 : 201, reply);
}

static void h_list(core_http_req_t *req, void *user)
{
    rt_sched_t *s = user;
    json_t *a = json_array();
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++)
        json_array_append_new(a, sched_json(s->v[i], 1, false));
    pthread_mutex_unlock(&s->mu);
    core_http_reply_json(
        req, 200, json_pack("{s:o,s:I}", "schedules", a, "now_ms", (json_int_t)core_wall_ms()));
}

static void h_get(core_http_req_t *req, void *user)
{
    rt_sched_t *s = user;
    const char *q = core_http_req_query(req, "runs");
    char *end = NULL;
    long nruns = q ? strtol(q, &end, 10) : 10;
    if (q && (end == q || *end || nruns < 0 || nruns > RT_SCHED_RUNS_KEEP))
        return core_http_reply_error(req, 400, "runs: 0..%d", RT_SCHED_RUNS_KEEP);
    pthread_mutex_lock(&s->mu);
    sched_t *c = sched_find(s, core_http_req_param(req, "name"), NULL);
    json_t *o = c ? sched_json(c, (int)nruns, true) : NULL;
    pthread_mutex_unlock(&s->mu);
    if (!o)
        return core_http_reply_error(req, 404, "no schedule named %s",
                                     core_http_req_param(req, "name"));
    json_object_set_new(o, "now_ms", json_integer(core_wall_ms()));
    core_http_reply_json(req, 200, o);
}

static void h_delete(core_http_req_t *req, void *user)
{
    rt_sched_t *s = user;
    if (!s->auth(req, s->auth_arg))
        return;
    const char *name = core_http_req_param(req, "name");
    pthread_mutex_lock(&s->mu);
    int idx;
    sched_t *c = sched_find(s, name, &idx);
    if (!c) {
        pthread_mutex_unlock(&s->mu);
        return core_http_reply_error(req, 404, "no schedule named %s", name);
    }
    bool killed = c->pid > 0;
    if (killed) {
        run_kill(c);
        c->pid = 0;
        s->running--;
    }
    /* Rename first: a crash mid-way leaves a .deleted-* dir that the next
     * start removes, never a half-deleted schedule. */
    char gone[4300];
    snprintf(gone, sizeof gone, "%.4000s/.deleted-%s-%lld", s->dir, c->name,
             (long long)core_wall_ms());
    int err = rename(c->dir, gone) ? errno : 0;
    if (err) {
        pthread_mutex_unlock(&s->mu);
        return core_http_reply_error(req, 500, "removing %s: %s", c->dir, strerror(err));
    }
    s->v[idx] = s->v[--s->n];
    pthread_mutex_unlock(&s->mu);
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    core_fs_rm_rf(gone);
    CORE_INFO(MOD, "schedule %s deleted%s", name, killed ? " (its running run was killed)" : "");
    core_http_reply_json(
        req, 200,
        json_pack("{s:s,s:s,s:b}", "name", name, "status", "deleted", "killed_run", killed));
    sched_free(c);
}

static void h_run_now(core_http_req_t *req, void *user)
{
    rt_sched_t *s = user;
    if (!s->auth(req, s->auth_arg))
        return;
    const char *name = core_http_req_param(req, "name");
    pthread_mutex_lock(&s->mu);
    sched_t *c = sched_find(s, name, NULL);
    int status = !c ? 404 : c->pid > 0 ? 409 : 202;
    int64_t run = c ? (c->pid > 0 ? c->run_no : c->last_run + 1) : 0;
    if (status == 202) {
        c->run_now = true;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (status == 404)
        return core_http_reply_error(req, 404, "no schedule named %s", name);
    if (status == 409)
        return core_http_reply_error(req, 409, "run %lld of %s is in progress", (long long)run,
                                     name);
    core_http_reply_json(
        req, 202,
        json_pack("{s:s,s:I,s:s}", "name", name, "run", (json_int_t)run, "status", "starting"));
}

void rt_sched_metrics_write(rt_sched_t *s, core_buf_t *b)
{
    static const char *outcomes[4] = {"ok", "failed", "timeout", "interrupted"};
    char line[512];
    pthread_mutex_lock(&s->mu);
    static const char runs_help[] = "# HELP eddy_schedule_runs_total Scheduled runs ended since "
                                    "the driver started, by outcome.\n"
                                    "# TYPE eddy_schedule_runs_total counter\n";
    core_wr_raw(b, runs_help, sizeof runs_help - 1);
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < 4; k++) {
            int n = snprintf(line, sizeof line,
                             "eddy_schedule_runs_total{schedule=\"%s\",status=\"%s\"} %lld\n",
                             s->v[i]->name, outcomes[k], (long long)s->v[i]->runs_by[k]);
            core_wr_raw(b, line, (size_t)n);
        }
    static const struct {
        const char *name, *help;
    } gauges[] = {
        {"eddy_schedule_running", "1 while a run of the schedule is going."},
        {"eddy_schedule_next_run_timestamp_seconds", "When the schedule is next due (-1: never)."},
        {"eddy_schedule_last_success_timestamp_seconds",
         "End of the last ok run since the driver started (0: none yet)."},
    };
    for (int g = 0; g < 3; g++) {
        int n = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].name,
                         gauges[g].help, gauges[g].name);
        core_wr_raw(b, line, (size_t)n);
        for (int i = 0; i < s->n; i++) {
            const sched_t *c = s->v[i];
            double v = g == 0   ? (c->pid > 0)
                       : g == 1 ? (c->next_ms < 0 ? -1.0 : (double)c->next_ms / 1000.0)
                                : (double)c->last_ok_end_ms / 1000.0;
            n = snprintf(line, sizeof line, "%s{schedule=\"%s\"} %.3f\n", gauges[g].name, c->name,
                         v);
            core_wr_raw(b, line, (size_t)n);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void rt_sched_routes(rt_sched_t *s, core_http_t *http, rt_sched_auth_fn *auth, void *auth_arg)
{
    s->auth = auth;
    s->auth_arg = auth_arg;
    core_http_route_ex(http, "PUT", "/v1/schedules/<name>", h_put, s, RT_SCHED_MAX_BODY);
    core_http_route(http, "GET", "/v1/schedules", h_list, s);
    core_http_route(http, "GET", "/v1/schedules/<name>", h_get, s);
    core_http_route(http, "DELETE", "/v1/schedules/<name>", h_delete, s);
    core_http_route(http, "POST", "/v1/schedules/<name>/run", h_run_now, s);
}
