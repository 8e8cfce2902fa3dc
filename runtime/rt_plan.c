#include "runtime/rt_plan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core_alloc.h"
#include "core/core_crc.h"
#include "core/core_err.h"
#include "core/core_fs.h"
#include "core/core_time.h"

static void range_push(rt_range_t **v, int *n, int *cap, const char *topic, int32_t partition,
                       int64_t start, int64_t end)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = core_xrealloc(*v, (size_t)*cap * sizeof **v);
    }
    (*v)[*n] = (rt_range_t){core_xstrdup(topic), partition, start, end};
    (*n)++;
}

const rt_range_t *rt_plan_find(const rt_plan_t *plan, const char *topic, int32_t partition)
{
    if (!plan)
        return NULL;
    for (int i = 0; i < plan->nranges; i++)
        if (plan->ranges[i].partition == partition && !strcmp(plan->ranges[i].topic, topic))
            return &plan->ranges[i];
    return NULL;
}

int64_t rt_plan_records(const rt_plan_t *plan)
{
    int64_t n = 0;
    for (int i = 0; i < plan->ntasks; i++)
        n += plan->tasks[i].end - plan->tasks[i].start;
    return n;
}

void rt_plan_free(rt_plan_t *plan)
{
    for (int i = 0; i < plan->nranges; i++)
        free(plan->ranges[i].topic);
    for (int i = 0; i < plan->ntasks; i++)
        free(plan->tasks[i].topic);
    free(plan->ranges);
    free(plan->tasks);
    memset(plan, 0, sizeof *plan);
}

int rt_plan_make(const rt_plan_params_t *pp, const rt_watermark_t *wm, int nwm, rt_plan_t *out)
{
    memset(out, 0, sizeof *out);
    if (nwm < 0 || nwm > RT_PLAN_MAX_RANGES)
        return CORE_ERR_TOO_LARGE;
    out->batch = pp->batch;
    out->planned_ms = core_wall_ms();
    int cap = 0;
    /* Starts and backlogs, in watermark order. */
    int64_t *backlog = core_xcalloc((size_t)nwm + 1, sizeof *backlog);
    int64_t total = 0;
    for (int i = 0; i < nwm; i++) {
        const rt_range_t *p = rt_plan_find(pp->prev, wm[i].topic, wm[i].partition);
        const rt_range_t *ini = rt_plan_find(pp->initial, wm[i].topic, wm[i].partition);
        int64_t start = p ? p->end : ini ? ini->start : wm[i].low;
        if (start < wm[i].low) {
            out->data_loss += wm[i].low - start;
            start = wm[i].low;
        }
        backlog[i] = wm[i].high > start ? wm[i].high - start : 0;
        total += backlog[i];
        range_push(&out->ranges, &out->nranges, &cap, wm[i].topic, wm[i].partition, start,
                   start);
    }
    /* Partitions the broker did not report keep their place. */
    if (pp->prev)
        for (int i = 0; i < pp->prev->nranges; i++) {
            const rt_range_t *r = &pp->prev->ranges[i];
            if (!rt_plan_find(out, r->topic, r->partition))
                range_push(&out->ranges, &out->nranges, &cap, r->topic, r->partition, r->end,
                           r->end);
        }
    /* Allocation: everything when under the cap, else proportional to backlog. */
    int64_t cap_records = pp->max_records > 0 ? pp->max_records : INT64_MAX;
    if (total <= cap_records) {
        for (int i = 0; i < nwm; i++)
            out->ranges[i].end = out->ranges[i].start + backlog[i];
    } else {
        int64_t given = 0;
        for (int i = 0; i < nwm; i++) {
            int64_t a = (int64_t)((__int128)backlog[i] * cap_records / total);
            out->ranges[i].end = out->ranges[i].start + a;
            given += a;
        }
        /* Hand out the rounding remainder one record at a time, in order. */
        for (int i = 0; given < cap_records && i < nwm; i = (i + 1) % nwm) {
            if (out->ranges[i].end - out->ranges[i].start < backlog[i]) {
                out->ranges[i].end++;
                given++;
            }
        }
    }
    free(backlog);
    /* Tasks. */
    int tcap = 0;
    for (int i = 0; i < out->nranges; i++) {
        const rt_range_t *r = &out->ranges[i];
        int64_t len = r->end - r->start;
        if (len <= 0)
            continue;
        int64_t pieces = 1;
        if (!pp->stateful && pp->task_max > 0 && len > pp->task_max)
            pieces = (len + pp->task_max - 1) / pp->task_max;
        int64_t s = r->start;
        for (int64_t k = 0; k < pieces; k++) {
            int64_t e = r->start + (int64_t)((__int128)len * (k + 1) / pieces);
            range_push(&out->tasks, &out->ntasks, &tcap, r->topic, r->partition, s, e);
            s = e;
        }
    }
    return CORE_OK;
}

/* ---- JSON ------------------------------------------------------------------ */

static json_t *ranges_json(const rt_range_t *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_pack("[s,i,I,I]", v[i].topic, (int)v[i].partition,
                                           (json_int_t)v[i].start, (json_int_t)v[i].end));
    return a;
}

char *rt_plan_to_json(const rt_plan_t *plan)
{
    json_t *o = json_pack("{s:I,s:I,s:I,s:o,s:o}", "batch", (json_int_t)plan->batch,
                          "planned_ms", (json_int_t)plan->planned_ms, "data_loss",
                          (json_int_t)plan->data_loss, "ranges",
                          ranges_json(plan->ranges, plan->nranges), "tasks",
                          ranges_json(plan->tasks, plan->ntasks));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        abort(); /* jansson fails only on OOM */
    return s;
}

static int ranges_from_json(json_t *a, rt_range_t **v, int *n, char *errstr, size_t errstr_size)
{
    if (!json_is_array(a) || json_array_size(a) > RT_PLAN_MAX_RANGES)
        return core_errf(CORE_ERR_MALFORMED, errstr, errstr_size, "plan: ranges not an array");
    int cap = 0;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        const char *t;
        int p;
        json_int_t s, en;
        if (json_unpack(e, "[s,i,I,I]", &t, &p, &s, &en) || strlen(t) > RT_TOPIC_MAX ||
            p < 0 || s < 0 || en < s)
            return core_errf(CORE_ERR_MALFORMED, errstr, errstr_size, "plan: bad range #%zu",
                             i);
        range_push(v, n, &cap, t, p, s, en);
    }
    return CORE_OK;
}

int rt_plan_from_json(const char *js, size_t len, rt_plan_t *out, char *errstr,
                      size_t errstr_size)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *o = json_loadb(js, len, 0, &je);
    if (!o)
        return core_errf(CORE_ERR_MALFORMED, errstr, errstr_size, "plan: %s", je.text);
    json_int_t batch = -1, planned = 0, loss = 0;
    json_t *ranges = NULL, *tasks = NULL;
    int err = CORE_OK;
    if (json_unpack(o, "{s:I,s?I,s?I,s:o,s:o}", "batch", &batch, "planned_ms", &planned,
                    "data_loss", &loss, "ranges", &ranges, "tasks", &tasks) ||
        batch < 0) {
        err = core_errf(CORE_ERR_MALFORMED, errstr, errstr_size, "plan: missing fields");
        goto out;
    }
    out->batch = batch;
    out->planned_ms = planned;
    out->data_loss = loss;
    err = ranges_from_json(ranges, &out->ranges, &out->nranges, errstr, errstr_size);
    if (!err)
        err = ranges_from_json(tasks, &out->tasks, &out->ntasks, errstr, errstr_size);
out:
    json_decref(o);
    if (err)
        rt_plan_free(out);
    return err;
}

/* ---- files ----------------------------------------------------------------- */

int rt_mkdirs(const char *path, int mode)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST)
        return errno;
    return 0;
}

int rt_file_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                         char *errstr, size_t errstr_size)
{
    int e = core_fs_write_atomic(dir, name, data, len, 0644);
    if (e)
        return core_errf(e, errstr, errstr_size, "write %s/%s: %s", dir, name, strerror(e));
    return 0;
}

#define RT_REC_MAGIC "eddy-rt v1 "

int rt_record_write(const char *dir, const char *name, const char *payload, char *errstr,
                    size_t errstr_size)
{
    size_t plen = strlen(payload);
    char hdr[96];
    int h = snprintf(hdr, sizeof hdr, RT_REC_MAGIC "len=%zu crc32c=%08x\n", plen,
                     core_crc32c(0, payload, plen));
    char *buf = core_xmalloc((size_t)h + plen);
    memcpy(buf, hdr, (size_t)h);
    memcpy(buf + h, payload, plen);
    int err = rt_file_write_atomic(dir, name, buf, (size_t)h + plen, errstr, errstr_size);
    free(buf);
    return err;
}

int rt_record_read(const char *dir, const char *name, char **payload, size_t *plen,
                   char *errstr, size_t errstr_size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *payload = NULL;
    FILE *f = fopen(path, "rbe");
    if (!f)
        return core_errf(errno, errstr, errstr_size, "open %s: %s", path, strerror(errno));
    char hdr[96];
    int err = CORE_OK;
    size_t len = 0;
    unsigned crc = 0;
    char *buf = NULL;
    if (!fgets(hdr, sizeof hdr, f) || strncmp(hdr, RT_REC_MAGIC, strlen(RT_REC_MAGIC)) ||
        sscanf(hdr + strlen(RT_REC_MAGIC), "len=%zu crc32c=%x", &len, &crc) != 2 ||
        len > RT_FILE_MAX) {
        err = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s: bad header", path);
        goto out;
    }
    buf = core_trymalloc(len + 1);
    if (!buf) {
        err = CORE_ERR_NOMEM;
        goto out;
    }
    if (fread(buf, 1, len, f) != len || fgetc(f) != EOF) {
        err = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size,
                        "%s: length does not match the header", path);
        goto out;
    }
    buf[len] = 0;
    if (core_crc32c(0, buf, len) != crc) {
        err = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s: checksum mismatch", path);
        goto out;
    }
    *payload = buf;
    if (plen)
        *plen = len;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return err;
}

static int batch_name(const char *s, int64_t *out)
{
    if (!*s || strlen(s) > 18)
        return 0;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 1;
}

int rt_dir_last_batch(const char *dir, int64_t *batch)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno;
    int64_t best = -1, v;
    struct dirent *de;
    while ((de = readdir(d)))
        if (batch_name(de->d_name, &v) && v > best)
            best = v;
    closedir(d);
    if (best < 0)
        return ENOENT;
    *batch = best;
    return 0;
}

void rt_dir_purge_below(const char *dir, int64_t below)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    int64_t v;
    while ((de = readdir(d)))
        if (batch_name(de->d_name, &v) && v < below)
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
}
