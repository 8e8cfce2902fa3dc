/*
 * broker_topic — see broker_topic.h. Topics live in a name-sorted array
 * (binary search for lookups, in-order iteration for Metadata); creation
 * and deletion are rare, so an O(n) insert is fine.
 */
#include "broker/broker_topic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker_log_int.h"
#include "core/core_alloc.h"
#include "core/core_buf.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_fs.h"
#include "core/core_log.h"
#include "core/core_time.h"

#define MOD "topics"

/* Kafka's limit: 249 so that "<name>-<partition>" directories fit in 255. */
#define TOPIC_NAME_MAX 249
/* Partitions per topic: each is a directory and open files; this bounds what
 * one CreateTopics request can make the broker create. */
#define TOPIC_PARTITIONS_MAX 10000
/* topic.properties is a few lines; a bigger file is not ours. */
#define TOPIC_PROPS_MAX (64 * 1024)
#define TOPIC_PROPS_FILE "topic.properties"
#define TOPIC_PATH_MAX 4096
/* The data directory's path must leave room for topic name + partition +
 * segment file names under TOPIC_PATH_MAX. */
#define TOPIC_DATA_DIR_MAX 3000

/* snprintf for paths (lengths bounded by TOPIC_DATA_DIR_MAX and the name limit). */
static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, TOPIC_PATH_MAX, fmt, ap);
    va_end(ap);
}

struct broker_topics {
    char *topics_dir; /* DATA/topics */
    broker_log_conf_t defaults;
    broker_topic_t **v; /* sorted by name */
    int n;
};

bool broker_topic_name_valid(const char *name, size_t len)
{
    if (!name || len == 0 || len > TOPIC_NAME_MAX)
        return false;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---- configs ---------------------------------------------------------------- */

typedef struct topic_cfg_def {
    const char *name;
    size_t offset; /* into broker_log_conf_t; 0 with is_policy */
    int64_t min;
    int64_t max;
    bool is_policy;
} topic_cfg_def_t;

static const topic_cfg_def_t cfg_defs[] = {
    {"retention.ms", offsetof(broker_log_conf_t, retention_ms), -1, INT64_MAX, false},
    {"retention.bytes", offsetof(broker_log_conf_t, retention_bytes), -1, INT64_MAX, false},
    /* 14 is Kafka's minimum; the top keeps index positions in 31 bits */
    {"segment.bytes", offsetof(broker_log_conf_t, segment_bytes), 14, INT32_MAX, false},
    {"segment.ms", offsetof(broker_log_conf_t, segment_ms), 1, INT64_MAX, false},
    {"max.message.bytes", offsetof(broker_log_conf_t, max_message_bytes), 0, INT32_MAX, false},
    {"cleanup.policy", 0, 0, 0, true},
    {NULL, 0, 0, 0, false},
};

/* Checks one key=value and applies it to conf. */
static int cfg_apply(broker_log_conf_t *conf, const char *key, const char *value, char *errstr,
                     size_t errstr_size)
{
    const topic_cfg_def_t *d = cfg_defs;
    while (d->name && strcmp(d->name, key))
        d++;
    if (!d->name)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "unknown topic config '%s' (supported: retention.ms, retention.bytes, "
                         "segment.bytes, segment.ms, max.message.bytes, cleanup.policy)",
                         key);
    if (!value)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "config '%s' needs a value", key);
    if (d->is_policy) {
        if (strcmp(value, "delete"))
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                             "cleanup.policy=%s is not supported (only 'delete')", value);
        return 0;
    }
    int64_t v;
    if (core_parse_int(value, &v))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "config %s: '%s' is not an integer", key, value);
    if (v < d->min || v > d->max)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "config %s=%" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", key,
                         v, d->min, d->max);
    *(int64_t *)((char *)conf + d->offset) = v;
    return 0;
}

/* Validates the set (unknown keys, bad values, duplicates) and builds conf. */
static int cfg_validate(const broker_log_conf_t *defaults, const char *const *keys,
                        const char *const *values, int n, broker_log_conf_t *conf, char *errstr,
                        size_t errstr_size)
{
    *conf = *defaults;
    for (int i = 0; i < n; i++) {
        if (!keys[i])
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "config name missing");
        for (int j = 0; j < i; j++)
            if (!strcmp(keys[i], keys[j]))
                return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                                 "config '%s' given twice", keys[i]);
        int rc = cfg_apply(conf, keys[i], values[i], errstr, errstr_size);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- files -------------------------------------------------------------------- */

static void uuid_hex(const uint8_t id[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* topic.properties: "id=<32 hex>\npartitions=N\n" then one "key=value" line
 * per explicit config. Written atomically into dir (temp, fsync, rename,
 * fsync(dir)). */
static int props_write(const char *dir, const broker_topic_t *t)
{
    core_buf_t b;
    core_buf_init(&b);
    char line[512], hex[33];
    uuid_hex(t->id, hex);
    int n = snprintf(line, sizeof line, "# eddy topic metadata; written by the broker\nid=%s\n"
                                        "partitions=%" PRId32 "\n",
                     hex, t->npartitions);
    core_wr_raw(&b, line, (size_t)n);
    for (int i = 0; i < t->nconfigs; i++) {
        core_wr_raw(&b, t->config_keys[i], strlen(t->config_keys[i]));
        core_wr_raw(&b, "=", 1);
        core_wr_raw(&b, t->config_values[i], strlen(t->config_values[i]));
        core_wr_raw(&b, "\n", 1);
    }
    int rc = core_fs_write_atomic(dir, TOPIC_PROPS_FILE, b.data, b.len, 0644);
    core_buf_fini(&b);
    return rc;
}

static void topic_free(broker_topic_t *t, bool close_logs)
{
    if (!t)
        return;
    for (int32_t p = 0; p < t->npartitions && t->partitions; p++)
        if (t->partitions[p] && close_logs)
            broker_log_close(t->partitions[p]);
    free(t->partitions);
    for (int i = 0; i < t->nconfigs; i++) {
        free(t->config_keys[i]);
        free(t->config_values[i]);
    }
    free(t->config_keys);
    free(t->config_values);
    free(t->name);
    free(t);
}

static void topic_add_config(broker_topic_t *t, const char *k, const char *v)
{
    t->config_keys = core_xrealloc(t->config_keys, sizeof(char *) * ((size_t)t->nconfigs + 1));
    t->config_values = core_xrealloc(t->config_values, sizeof(char *) * ((size_t)t->nconfigs + 1));
    t->config_keys[t->nconfigs] = core_xstrdup(k);
    t->config_values[t->nconfigs] = core_xstrdup(v);
    t->nconfigs++;
}

/* Reads DIR/topics/<name>/topic.properties into a new topic (logs not opened). */
static int props_read(broker_topics_t *ts, const char *name, broker_topic_t **tp, char *errstr,
                      size_t errstr_size)
{
    char path[TOPIC_PATH_MAX];
    pathf(path, "%s/%s/%s", ts->topics_dir, name, TOPIC_PROPS_FILE);
    FILE *f = fopen(path, "re");
    if (!f)
        return core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s: %s", path, strerror(errno));
    broker_topic_t *t = core_xcalloc(1, sizeof *t);
    t->name = core_xstrdup(name);
    t->npartitions = -1;
    bool have_id = false;
    int rc = 0, lineno = 0;
    char line[1024];
    const char **keys = NULL, **vals = NULL;
    long total = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        total += (long)strlen(line);
        if (total > TOPIC_PROPS_MAX || !strchr(line, '\n')) {
            rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s:%d: line too long", path,
                           lineno);
            goto out;
        }
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        char *eq = strchr(line, '=');
        if (!eq) {
            rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s:%d: expected key=value",
                           path, lineno);
            goto out;
        }
        *eq = 0;
        const char *k = line, *v = eq + 1;
        if (!strcmp(k, "id")) {
            if (strlen(v) != 32) {
                rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s:%d: bad id", path,
                               lineno);
                goto out;
            }
            for (int i = 0; i < 16; i++) {
                unsigned x;
                if (sscanf(v + 2 * i, "%2x", &x) != 1) {
                    rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s:%d: bad id", path,
                                   lineno);
                    goto out;
                }
                t->id[i] = (uint8_t)x;
            }
            have_id = true;
        } else if (!strcmp(k, "partitions")) {
            int64_t n;
            if (core_parse_int(v, &n) || n < 1 || n > TOPIC_PARTITIONS_MAX) {
                rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s:%d: bad partitions",
                               path, lineno);
                goto out;
            }
            t->npartitions = (int32_t)n;
        } else {
            topic_add_config(t, k, v);
        }
    }
    if (!have_id || t->npartitions < 1) {
        rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s: missing id or partitions",
                       path);
        goto out;
    }
    keys = core_xcalloc((size_t)t->nconfigs + 1, sizeof *keys);
    vals = core_xcalloc((size_t)t->nconfigs + 1, sizeof *vals);
    for (int i = 0; i < t->nconfigs; i++) {
        keys[i] = t->config_keys[i];
        vals[i] = t->config_values[i];
    }
    char why[256];
    if (cfg_validate(&ts->defaults, keys, vals, t->nconfigs, &t->conf, why, sizeof why)) {
        rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s: %s", path, why);
        goto out;
    }
out:
    fclose(f);
    free(keys);
    free(vals);
    if (rc) {
        topic_free(t, false);
        return rc;
    }
    *tp = t;
    return 0;
}

/* Opens every partition log of t (its directory exists). */
static int topic_open_logs(broker_topics_t *ts, broker_topic_t *t, char *errstr,
                           size_t errstr_size)
{
    t->partitions = core_xcalloc((size_t)t->npartitions, sizeof *t->partitions);
    for (int32_t p = 0; p < t->npartitions; p++) {
        char dir[TOPIC_PATH_MAX], why[512] = "";
        pathf(dir, "%s/%s/%" PRId32, ts->topics_dir, t->name, p);
        int rc = broker_log_open(dir, &t->conf, &t->partitions[p], why, sizeof why);
        if (rc)
            return core_errf(rc, errstr, errstr_size, "topic %s partition %" PRId32 ": %s",
                             t->name, p, why);
        /* Single node: this broker leads every partition from epoch 0. */
        if (broker_log_leader_epoch(t->partitions[p]) < 0 &&
            (rc = broker_log_set_leader_epoch(t->partitions[p], 0)))
            return core_errf(rc, errstr, errstr_size,
                             "topic %s partition %" PRId32 ": writing leader epoch", t->name, p);
    }
    return 0;
}

/* ---- registry ------------------------------------------------------------------ */

static int find_pos(const broker_topics_t *ts, const char *name, size_t len, bool *found)
{
    int lo = 0, hi = ts->n - 1;
    *found = false;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const char *m = ts->v[mid]->name;
        size_t ml = strlen(m);
        int c = memcmp(m, name, ml < len ? ml : len);
        if (c == 0)
            c = ml < len ? -1 : ml > len;
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return lo;
}

static void insert_topic(broker_topics_t *ts, broker_topic_t *t)
{
    bool found;
    int pos = find_pos(ts, t->name, strlen(t->name), &found);
    ts->v = core_xrealloc(ts->v, sizeof *ts->v * ((size_t)ts->n + 1));
    memmove(ts->v + pos + 1, ts->v + pos, sizeof *ts->v * (size_t)(ts->n - pos));
    ts->v[pos] = t;
    ts->n++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int broker_topics_open(const char *data_dir, const broker_log_conf_t *defaults,
                       broker_topics_t **tp, char *errstr, size_t errstr_size)
{
    *tp = NULL;
    char path[TOPIC_PATH_MAX];
    if (strlen(data_dir) > TOPIC_DATA_DIR_MAX)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "data directory path too long");
    if (mkdir(data_dir, 0755) && errno != EEXIST)
        return core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: mkdir: %s", data_dir,
                         strerror(errno));
    pathf(path, "%s/topics", data_dir);
    if (mkdir(path, 0755) && errno != EEXIST)
        return core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: mkdir: %s", path,
                         strerror(errno));
    broker_topics_t *ts = core_xcalloc(1, sizeof *ts);
    ts->topics_dir = core_xstrdup(path);
    ts->defaults = *defaults;
    DIR *d = opendir(path);
    if (!d) {
        int rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: %s", path, strerror(errno));
        broker_topics_close(ts);
        return rc;
    }
    char **names = NULL;
    int nnames = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (de->d_name[0] == '.') {
            /* .deleted-* (a delete that crashed) or .creating-* (a create that did) */
            char p[TOPIC_PATH_MAX];
            pathf(p, "%s/%s", path, de->d_name);
            CORE_INFO(MOD, "%s: removing leftover of an interrupted create/delete", p);
            core_fs_rm_rf(p);
            continue;
        }
        names = core_xrealloc(names, sizeof *names * ((size_t)nnames + 1));
        names[nnames++] = core_xstrdup(de->d_name);
    }
    closedir(d);
    if (nnames > 1)
        qsort(names, (size_t)nnames, sizeof *names, cmp_str);
    for (int i = 0; i < nnames && !rc; i++) {
        if (!broker_topic_name_valid(names[i], strlen(names[i]))) {
            CORE_WARN(MOD, "%s/%s: not a topic name; ignored", path, names[i]);
            continue;
        }
        broker_topic_t *t = NULL;
        rc = props_read(ts, names[i], &t, errstr, errstr_size);
        if (rc)
            break;
        insert_topic(ts, t);
        rc = topic_open_logs(ts, t, errstr, errstr_size);
    }
    for (int i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    if (rc) {
        broker_topics_close(ts);
        return rc;
    }
    if (ts->n)
        CORE_INFO(MOD, "opened %d topics from %s", ts->n, path);
    *tp = ts;
    return 0;
}

void broker_topics_close(broker_topics_t *ts)
{
    if (!ts)
        return;
    for (int i = 0; i < ts->n; i++)
        topic_free(ts->v[i], true);
    free(ts->v);
    free(ts->topics_dir);
    free(ts);
}

/* Kafka refuses a name that differs from an existing one only by '.' vs '_'
 * (they collide in metric names). Returns the colliding topic or NULL. */
static const broker_topic_t *find_collision(const broker_topics_t *ts, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < ts->n; i++) {
        const char *m = ts->v[i]->name;
        if (strlen(m) != len || !strcmp(m, name))
            continue;
        size_t k = 0;
        for (; k < len; k++) {
            char a = m[k] == '.' ? '_' : m[k], b = name[k] == '.' ? '_' : name[k];
            if (a != b)
                break;
        }
        if (k == len)
            return ts->v[i];
    }
    return NULL;
}

int broker_topics_create(broker_topics_t *ts, const char *name, int32_t npartitions,
                         const char *const *keys, const char *const *values, int nconfigs,
                         bool validate_only, char *errstr, size_t errstr_size)
{
    if (!name || !broker_topic_name_valid(name, strlen(name)))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "invalid topic name '%s': use 1..%d characters of [a-zA-Z0-9._-], "
                         "not '.' or '..'",
                         name ? name : "", TOPIC_NAME_MAX);
    bool found;
    find_pos(ts, name, strlen(name), &found);
    if (found)
        return core_errf(CORE_ERR_EXISTS, errstr, errstr_size, "topic '%s' already exists", name);
    const broker_topic_t *coll = find_collision(ts, name);
    if (coll)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "invalid topic name '%s': collides with existing topic '%s' ('.' and "
                         "'_' are treated alike)",
                         name, coll->name);
    if (npartitions < 1 || npartitions > TOPIC_PARTITIONS_MAX)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "invalid partitions %" PRId32 ": must be between 1 and %d", npartitions,
                         TOPIC_PARTITIONS_MAX);
    broker_log_conf_t conf;
    int rc = cfg_validate(&ts->defaults, keys, values, nconfigs, &conf, errstr, errstr_size);
    if (rc || validate_only)
        return rc;

    broker_topic_t *t = core_xcalloc(1, sizeof *t);
    t->name = core_xstrdup(name);
    t->npartitions = npartitions;
    t->conf = conf;
    for (int i = 0; i < nconfigs; i++)
        topic_add_config(t, keys[i], values[i]);
    do {
        if (getrandom(t->id, sizeof t->id, 0) != (ssize_t)sizeof t->id) {
            /* no entropy source: still unique enough for a topic id on one broker */
            int64_t x = core_wall_ms() ^ (int64_t)getpid() << 40 ^ core_mono_us();
            memcpy(t->id, &x, sizeof x);
            x = core_mono_us() * 2654435761LL;
            memcpy(t->id + 8, &x, sizeof x);
        }
        t->id[6] = (uint8_t)((t->id[6] & 0x0f) | 0x40); /* UUID version 4 */
        t->id[8] = (uint8_t)((t->id[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    } while (0);

    /* Build the topic under a hidden name, then rename it into place: a
     * crash leaves either nothing visible or a complete topic. */
    char tmp[TOPIC_PATH_MAX], dst[TOPIC_PATH_MAX], pdir[TOPIC_PATH_MAX];
    pathf(tmp, "%s/.creating-%s", ts->topics_dir, name);
    pathf(dst, "%s/%s", ts->topics_dir, name);
    core_fs_rm_rf(tmp);
    if (mkdir(tmp, 0755)) {
        rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: mkdir: %s", tmp, strerror(errno));
        goto fail;
    }
    for (int32_t p = 0; p < npartitions; p++) {
        pathf(pdir, "%s/%" PRId32, tmp, p);
        if (mkdir(pdir, 0755)) {
            rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: mkdir: %s", pdir,
                           strerror(errno));
            goto fail_rm;
        }
    }
    if ((rc = props_write(tmp, t))) {
        rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: %s", tmp, strerror(rc));
        goto fail_rm;
    }
    if (rename(tmp, dst) || core_fs_fsync_dir(ts->topics_dir)) {
        rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: rename: %s", dst, strerror(errno));
        goto fail_rm;
    }
    insert_topic(ts, t);
    if ((rc = topic_open_logs(ts, t, errstr, errstr_size))) {
        /* never leave a topic with missing partitions registered */
        CORE_ERROR(MOD, "%s; removing topic %s again", errstr, name);
        broker_topics_delete(ts, name);
        return rc == CORE_ERR_IO || rc == CORE_ERR_CORRUPT ? rc : CORE_ERR_IO;
    }
    CORE_INFO(MOD, "created topic %s (%" PRId32 " partitions, %d configs)", name, npartitions,
              nconfigs);
    return 0;
fail_rm:
    core_fs_rm_rf(tmp);
fail:
    topic_free(t, false);
    return rc;
}

/* The existing topic called name, or NULL with the "does not exist" message
 * (CORE_ERR_NOT_FOUND's) in errstr. */
static broker_topic_t *topic_existing(broker_topics_t *ts, const char *name, char *errstr,
                                      size_t errstr_size)
{
    broker_topic_t *t = broker_topics_find(ts, name, strlen(name));
    if (!t)
        core_errf(CORE_ERR_NOT_FOUND, errstr, errstr_size, "topic '%s' does not exist", name);
    return t;
}

int broker_topics_add_partitions(broker_topics_t *ts, const char *name, int32_t npartitions,
                                 bool validate_only, char *errstr, size_t errstr_size)
{
    broker_topic_t *t = topic_existing(ts, name, errstr, errstr_size);
    if (!t)
        return CORE_ERR_NOT_FOUND;
    int32_t old = t->npartitions;
    if (npartitions <= old)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "topic '%s' has %" PRId32 " partitions; the new count (%" PRId32
                         ") must be higher",
                         name, old, npartitions);
    if (npartitions > TOPIC_PARTITIONS_MAX)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "invalid partitions %" PRId32 ": must be between 1 and %d", npartitions,
                         TOPIC_PARTITIONS_MAX);
    if (validate_only)
        return 0;
    /* New partition logs first (a directory already there can only be the
     * leftover of a growth that crashed before topic.properties changed),
     * then topic.properties atomically: that rename is the commit point. */
    broker_log_t **logs = core_xcalloc((size_t)npartitions, sizeof *logs);
    memcpy(logs, t->partitions, (size_t)old * sizeof *logs);
    char tdir[TOPIC_PATH_MAX], dir[TOPIC_PATH_MAX], why[512];
    pathf(tdir, "%s/%s", ts->topics_dir, name);
    int rc = 0;
    for (int32_t p = old; p < npartitions && !rc; p++) {
        pathf(dir, "%s/%" PRId32, tdir, p);
        core_fs_rm_rf(dir);
        why[0] = 0;
        rc = broker_log_open(dir, &t->conf, &logs[p], why, sizeof why);
        if (!rc && (rc = broker_log_set_leader_epoch(logs[p], 0)))
            snprintf(why, sizeof why, "writing leader epoch");
        if (rc)
            core_errf(rc, errstr, errstr_size, "topic %s partition %" PRId32 ": %s", name, p,
                      why[0] ? why : core_strerror(rc));
    }
    if (!rc && core_fs_fsync_dir(tdir))
        rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: fsync: %s", tdir, strerror(errno));
    if (!rc) {
        t->npartitions = npartitions;
        int w = props_write(tdir, t);
        if (w) {
            t->npartitions = old;
            rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s/%s: %s", tdir, TOPIC_PROPS_FILE,
                           strerror(w));
        }
    }
    if (rc) {
        for (int32_t p = old; p < npartitions; p++) {
            if (logs[p])
                broker_log_close(logs[p]);
            pathf(dir, "%s/%" PRId32, tdir, p);
            core_fs_rm_rf(dir);
        }
        free(logs);
        CORE_ERROR(MOD, "adding partitions to %s failed: %s", name, errstr);
        return rc == CORE_ERR_INVAL || rc == CORE_ERR_NOT_FOUND ? CORE_ERR_IO : rc;
    }
    free(t->partitions);
    t->partitions = logs;
    CORE_INFO(MOD, "topic %s: partitions %" PRId32 " -> %" PRId32, name, old, npartitions);
    return 0;
}

int broker_topics_set_configs(broker_topics_t *ts, const char *name, const char *const *keys,
                              const char *const *values, int nconfigs, bool validate_only,
                              char *errstr, size_t errstr_size)
{
    broker_topic_t *t = topic_existing(ts, name, errstr, errstr_size);
    if (!t)
        return CORE_ERR_NOT_FOUND;
    broker_log_conf_t conf;
    int rc = cfg_validate(&ts->defaults, keys, values, nconfigs, &conf, errstr, errstr_size);
    if (rc || validate_only)
        return rc;
    /* Write the new set first (atomic), then switch memory and the logs. */
    broker_topic_t next = *t;
    next.nconfigs = 0;
    next.config_keys = next.config_values = NULL;
    for (int i = 0; i < nconfigs; i++)
        topic_add_config(&next, keys[i], values[i]);
    char tdir[TOPIC_PATH_MAX];
    pathf(tdir, "%s/%s", ts->topics_dir, name);
    int w = props_write(tdir, &next);
    broker_topic_t *drop = w ? &next : t;
    for (int i = 0; i < drop->nconfigs; i++) {
        free(drop->config_keys[i]);
        free(drop->config_values[i]);
    }
    free(drop->config_keys);
    free(drop->config_values);
    if (w)
        return core_errf(CORE_ERR_IO, errstr, errstr_size, "%s/%s: %s", tdir, TOPIC_PROPS_FILE,
                         strerror(w));
    t->config_keys = next.config_keys;
    t->config_values = next.config_values;
    t->nconfigs = next.nconfigs;
    t->conf = conf;
    for (int32_t p = 0; p < t->npartitions; p++)
        broker_log_set_conf(t->partitions[p], &conf);
    CORE_INFO(MOD, "topic %s: configs replaced (%d explicit)", name, nconfigs);
    return 0;
}

int broker_topics_delete(broker_topics_t *ts, const char *name)
{
    bool found;
    int pos = find_pos(ts, name, strlen(name), &found);
    if (!found)
        return CORE_ERR_NOT_FOUND;
    broker_topic_t *t = ts->v[pos];
    char src[TOPIC_PATH_MAX], dst[TOPIC_PATH_MAX];
    pathf(src, "%s/%s", ts->topics_dir, name);
    pathf(dst, "%s/.deleted-%s-%" PRId64, ts->topics_dir, name, core_wall_ms());
    /* Rename first: from here a crash or a failure below only leaves a hidden
     * directory that open removes. */
    if (rename(src, dst)) {
        CORE_ERROR(MOD, "delete %s: rename: %s", name, strerror(errno));
        return CORE_ERR_IO;
    }
    core_fs_fsync_dir(ts->topics_dir);
    memmove(ts->v + pos, ts->v + pos + 1, sizeof *ts->v * (size_t)(ts->n - pos - 1));
    ts->n--;
    /* The logs' directories moved: free them without writing a clean marker.
     * Outstanding slices keep their segments' fds. */
    for (int32_t p = 0; p < t->npartitions; p++)
        if (t->partitions && t->partitions[p])
            broker_log__free(t->partitions[p]);
    topic_free(t, false);
    core_fs_rm_rf(dst);
    CORE_INFO(MOD, "deleted topic %s", name);
    return 0;
}

broker_topic_t *broker_topics_find(broker_topics_t *ts, const char *name, size_t name_len)
{
    bool found;
    int pos = find_pos(ts, name, name_len, &found);
    return found ? ts->v[pos] : NULL;
}

int broker_topics_count(const broker_topics_t *ts)
{
    return ts->n;
}

broker_topic_t *broker_topics_at(broker_topics_t *ts, int i)
{
    return i >= 0 && i < ts->n ? ts->v[i] : NULL;
}

void broker_topics_housekeep(broker_topics_t *ts, int64_t now_ms)
{
    for (int i = 0; i < ts->n; i++) {
        broker_topic_t *t = ts->v[i];
        for (int32_t p = 0; p < t->npartitions && t->partitions; p++)
            if (t->partitions[p])
                broker_log_housekeep(t->partitions[p], now_ms);
    }
}
