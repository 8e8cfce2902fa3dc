/*
 * broker_lag — Burrow-style evaluator. Rules and data model: broker_lag.h.
 */
#include "broker/broker_lag.h"

#include <stdlib.h>
#include <string.h>

#include "broker/broker_htab.h"
#include "core/core_alloc.h"
#include "core/core_err.h"

/* A fixed-size ring of the last n items; `count` filled, `head` = next slot. */
typedef struct lag_part {
    hnode_t node;
    char *topic;
    int32_t partition;
    int count, next;
    broker_lag_entry_t *ring;   /* conf.intervals slots */
} lag_part_t;

typedef struct lag_group {
    hnode_t node;
    char *name;
    int64_t last_commit;        /* wall ms of the newest commit (expiry) */
    htab_t parts;               /* lag_part_t by (topic, partition) */
} lag_group_t;

typedef struct lag_head {
    hnode_t node;
    char *topic;
    int32_t partition;
    int count, next;
    int64_t *ring;
} lag_head_t;

struct broker_lag {
    broker_lag_conf_t conf;
    htab_t groups;
    htab_t heads;
};

const char *broker_lag_status_name(broker_lag_status_t s)
{
    static const char *const names[] = {"NOTFOUND", "OK", "WARN", "ERR", "STOP", "STALL", "REWIND"};
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "NOTFOUND";
}

void broker_lag_conf_default(broker_lag_conf_t *conf)
{
    conf->intervals = 10;
    conf->allowed_lag = 0;
    conf->minimum_complete = 0;
    conf->min_distance_ms = 0;
    conf->expire_group_ms = 604800000LL;
}

broker_lag_t *broker_lag_new(const broker_lag_conf_t *conf)
{
    broker_lag_t *lag = core_xcalloc(1, sizeof *lag);
    if (conf)
        lag->conf = *conf;
    else
        broker_lag_conf_default(&lag->conf);
    if (lag->conf.intervals < 1)
        lag->conf.intervals = 1;
    if (lag->conf.intervals > BROKER_LAG_MAX_INTERVALS)
        lag->conf.intervals = BROKER_LAG_MAX_INTERVALS;
    return lag;
}

static void part_free(lag_part_t *p)
{
    free(p->topic);
    free(p->ring);
    free(p);
}

static void group_free(lag_group_t *g)
{
    HTAB_FOREACH(&g->parts, x) part_free((lag_part_t *)x);
    htab_fini(&g->parts);
    free(g->name);
    free(g);
}

void broker_lag_free(broker_lag_t *lag)
{
    if (!lag)
        return;
    HTAB_FOREACH(&lag->groups, x) group_free((lag_group_t *)x);
    htab_fini(&lag->groups);
    HTAB_FOREACH(&lag->heads, x) {
        lag_head_t *h = (lag_head_t *)x;
        free(h->topic);
        free(h->ring);
        free(h);
    }
    htab_fini(&lag->heads);
    free(lag);
}

static uint64_t tp_hash(const char *topic, int32_t partition)
{
    return fnv1a(fnv1a(FNV_INIT, topic, strlen(topic)), &partition, sizeof partition);
}

static lag_group_t *group_find(broker_lag_t *lag, const char *name)
{
    if (!lag->groups.nb)
        return NULL;
    uint64_t h = fnv1a(FNV_INIT, name, strlen(name));
    for (hnode_t *x = lag->groups.b[h & (lag->groups.nb - 1)]; x; x = x->next)
        if (x->hash == h && !strcmp(((lag_group_t *)x)->name, name))
            return (lag_group_t *)x;
    return NULL;
}

static lag_part_t *part_find(lag_group_t *g, const char *topic, int32_t partition)
{
    if (!g->parts.nb)
        return NULL;
    uint64_t h = tp_hash(topic, partition);
    for (hnode_t *x = g->parts.b[h & (g->parts.nb - 1)]; x; x = x->next) {
        lag_part_t *p = (lag_part_t *)x;
        if (x->hash == h && p->partition == partition && !strcmp(p->topic, topic))
            return p;
    }
    return NULL;
}

static lag_head_t *head_find(broker_lag_t *lag, const char *topic, int32_t partition)
{
    if (!lag->heads.nb)
        return NULL;
    uint64_t h = tp_hash(topic, partition);
    for (hnode_t *x = lag->heads.b[h & (lag->heads.nb - 1)]; x; x = x->next) {
        lag_head_t *p = (lag_head_t *)x;
        if (x->hash == h && p->partition == partition && !strcmp(p->topic, topic))
            return p;
    }
    return NULL;
}

/* i-th stored item, oldest first. */
static int ring_index(int count, int next, int cap, int i)
{
    return (next - count + i + cap) % cap;
}

void broker_lag_commit(broker_lag_t *lag, const char *group, const char *topic, int32_t partition,
                       int64_t offset, int64_t ts, int64_t head, int64_t now)
{
    if (head < 0)
        return; /* Burrow drops commits for partitions whose head is unknown */
    if (now - ts > lag->conf.expire_group_ms)
        return;
    lag_group_t *g = group_find(lag, group);
    if (!g) {
        g = core_xcalloc(1, sizeof *g);
        g->name = core_xstrdup(group);
        htab_add(&lag->groups, &g->node, fnv1a(FNV_INIT, group, strlen(group)));
    }
    lag_part_t *p = part_find(g, topic, partition);
    if (!p) {
        p = core_xcalloc(1, sizeof *p);
        p->topic = core_xstrdup(topic);
        p->partition = partition;
        p->ring = core_xcalloc((size_t)lag->conf.intervals, sizeof *p->ring);
        htab_add(&g->parts, &p->node, tp_hash(topic, partition));
    }
    int cap = lag->conf.intervals;
    broker_lag_entry_t e = {.offset = offset, .timestamp = ts, .observed_at = now,
                            .lag = head > offset ? head - offset : 0};
    if (p->count > 0) {
        broker_lag_entry_t *last = &p->ring[ring_index(p->count, p->next, cap, p->count - 1)];
        if (lag->conf.min_distance_ms > 0 && ts - last->timestamp < lag->conf.min_distance_ms) {
            *last = e; /* too close to the previous one: replace, keep the window long */
            g->last_commit = now;
            return;
        }
    }
    p->ring[p->next] = e;
    p->next = (p->next + 1) % cap;
    if (p->count < cap)
        p->count++;
    g->last_commit = now;
}

void broker_lag_head(broker_lag_t *lag, const char *topic, int32_t partition, int64_t head,
                     int64_t now)
{
    lag_head_t *h = head_find(lag, topic, partition);
    if (!h) {
        h = core_xcalloc(1, sizeof *h);
        h->topic = core_xstrdup(topic);
        h->partition = partition;
        h->ring = core_xcalloc((size_t)lag->conf.intervals, sizeof *h->ring);
        htab_add(&lag->heads, &h->node, tp_hash(topic, partition));
    }
    h->ring[h->next] = head;
    h->next = (h->next + 1) % lag->conf.intervals;
    if (h->count < lag->conf.intervals)
        h->count++;
}

void broker_lag_forget(broker_lag_t *lag, const char *group)
{
    lag_group_t *g = group_find(lag, group);
    if (g) {
        htab_del(&lag->groups, &g->node);
        group_free(g);
    }
}

int broker_lag_expire(broker_lag_t *lag, int64_t now)
{
    int n = 0;
    HTAB_FOREACH(&lag->groups, x) {
        lag_group_t *g = (lag_group_t *)x;
        if (now - g->last_commit > lag->conf.expire_group_ms) {
            htab_del(&lag->groups, &g->node);
            group_free(g);
            n++;
        }
    }
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int broker_lag_groups(broker_lag_t *lag, const char ***names)
{
    const char **v = core_xcalloc(lag->groups.n + 1, sizeof *v);
    int n = 0;
    HTAB_FOREACH(&lag->groups, x) v[n++] = ((lag_group_t *)x)->name;
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    *names = v;
    return n;
}

/* ---- the rules ------------------------------------------------------------------- */
broker_lag_status_t broker_lag_rules(const broker_lag_conf_t *conf, const broker_lag_entry_t *o,
                                     int n, const int64_t *heads, int nheads, int64_t current_lag,
                                     int64_t now)
{
    /* 1. nothing to judge, or too little of a window */
    if (n == 0 || (double)n / conf->intervals < conf->minimum_complete)
        return BROKER_LAG_OK;
    /* 2. caught up now: never in error */
    if (current_lag <= conf->allowed_lag)
        return BROKER_LAG_OK;
    /* 3. STOP: silent for longer than the window spans, and not caught up at
     * any point of the recent head history */
    const broker_lag_entry_t *first = &o[0], *last = &o[n - 1];
    if (now - last->timestamp > last->timestamp - first->timestamp) {
        bool caught_up = false;
        for (int i = 0; i < nheads; i++)
            if (heads[i] <= last->offset)
                caught_up = true;
        if (!caught_up)
            return BROKER_LAG_STOP;
    }
    /* 4. REWIND: the first backwards step that never recovers */
    for (int i = 1; i < n; i++)
        if (o[i].offset < o[i - 1].offset) {
            bool recovered = false;
            for (int j = i; j < n; j++)
                if (o[j].offset >= o[i - 1].offset)
                    recovered = true;
            if (!recovered)
                return BROKER_LAG_REWIND;
            break;
        }
    /* 5. the lag was never zero in the window */
    bool never_zero = true;
    for (int i = 0; i < n; i++)
        if (o[i].lag >= 0 && o[i].lag <= conf->allowed_lag)
            never_zero = false;
    if (never_zero) {
        bool stalled = true;
        for (int i = 1; i < n; i++)
            if (o[i].offset != o[0].offset)
                stalled = false;
        if (stalled)
            return BROKER_LAG_STALL;
        bool not_decreasing = true;
        int64_t prev = -1;
        for (int i = 0; i < n; i++) {
            if (o[i].lag < 0)
                continue;
            if (prev >= 0 && o[i].lag < prev)
                not_decreasing = false;
            prev = o[i].lag;
        }
        if (not_decreasing)
            return BROKER_LAG_WARN;
    }
    return BROKER_LAG_OK;
}

static int cmp_part(const void *a, const void *b)
{
    const broker_lag_partition_t *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

int broker_lag_evaluate(broker_lag_t *lag, const char *group, int64_t now,
                        broker_lag_head_fn *head_fn, broker_lag_owner_fn *owner_fn, void *arg,
                        broker_lag_group_t *out)
{
    memset(out, 0, sizeof *out);
    out->group = core_xstrdup(group);
    out->maxlag = -1;
    out->complete = 1.0; /* Burrow's NOTFOUND body says complete 1 */
    lag_group_t *g = group_find(lag, group);
    if (!g) {
        out->status = BROKER_LAG_NOTFOUND;
        return CORE_ERR_NOT_FOUND;
    }
    int cap = lag->conf.intervals;
    out->partitions = core_xcalloc(g->parts.n ? g->parts.n : 1, sizeof *out->partitions);
    broker_lag_entry_t win[BROKER_LAG_MAX_INTERVALS];
    int64_t heads[BROKER_LAG_MAX_INTERVALS];
    out->status = BROKER_LAG_OK;
    int full = 0;
    HTAB_FOREACH(&g->parts, x) {
        lag_part_t *p = (lag_part_t *)x;
        broker_lag_partition_t *op = &out->partitions[out->npartitions++];
        for (int i = 0; i < p->count; i++)
            win[i] = p->ring[ring_index(p->count, p->next, cap, i)];
        lag_head_t *h = head_find(lag, p->topic, p->partition);
        int nheads = 0;
        for (int i = 0; h && i < h->count; i++)
            heads[nheads++] = h->ring[ring_index(h->count, h->next, cap, i)];
        int64_t head = head_fn ? head_fn(arg, p->topic, p->partition) : -1;
        if (head < 0 && nheads)
            head = heads[nheads - 1];
        op->topic = core_xstrdup(p->topic);
        op->partition = p->partition;
        op->has_window = p->count > 0;
        if (p->count) {
            op->start = win[0];
            op->end = win[p->count - 1];
            op->current_lag = head > op->end.offset ? head - op->end.offset : 0;
        }
        op->complete = (double)p->count / cap;
        if (p->count == cap)
            full++;
        op->status = broker_lag_rules(&lag->conf, win, p->count, heads, nheads, op->current_lag, now);
        const char *owner = NULL, *cid = NULL;
        if (owner_fn && owner_fn(arg, group, p->topic, p->partition, &owner, &cid)) {
            op->owner = core_xstrdup(owner ? owner : "");
            op->client_id = core_xstrdup(cid ? cid : "");
        } else {
            op->owner = core_xstrdup("");
            op->client_id = core_xstrdup("");
        }
        broker_lag_status_t gs = op->status >= BROKER_LAG_STOP ? BROKER_LAG_ERR : op->status;
        if (gs > out->status)
            out->status = gs;
        out->totallag += op->current_lag;
    }
    qsort(out->partitions, (size_t)out->npartitions, sizeof *out->partitions, cmp_part);
    for (int i = 0; i < out->npartitions; i++)
        if (out->maxlag < 0 || out->partitions[i].current_lag > out->partitions[out->maxlag].current_lag)
            out->maxlag = i;
    out->complete = out->npartitions ? (double)full / out->npartitions : 0;
    return CORE_OK;
}

void broker_lag_group_fini(broker_lag_group_t *g)
{
    for (int i = 0; i < g->npartitions; i++) {
        free(g->partitions[i].topic);
        free(g->partitions[i].owner);
        free(g->partitions[i].client_id);
    }
    free(g->partitions);
    free(g->group);
    memset(g, 0, sizeof *g);
}

/* ---- JSON ------------------------------------------------------------------------------ */
static json_t *entry_json(const broker_lag_entry_t *e)
{
    return json_pack("{s:I,s:I,s:I,s:o}", "offset", (json_int_t)e->offset, "timestamp",
                     (json_int_t)e->timestamp, "observedAt", (json_int_t)e->observed_at, "lag",
                     e->lag >= 0 ? json_integer(e->lag) : json_null());
}

static json_t *partition_json(const broker_lag_partition_t *p)
{
    return json_pack("{s:s,s:i,s:s,s:s,s:s,s:o,s:o,s:I,s:f}", "topic", p->topic, "partition",
                     (int)p->partition, "owner", p->owner, "client_id", p->client_id, "status",
                     broker_lag_status_name(p->status), "start",
                     p->has_window ? entry_json(&p->start) : json_null(), "end",
                     p->has_window ? entry_json(&p->end) : json_null(), "current_lag",
                     (json_int_t)p->current_lag, "complete", p->complete);
}

json_t *broker_lag_status_json(const broker_lag_group_t *g, const char *cluster, bool all_partitions)
{
    json_t *parts = json_array();
    for (int i = 0; i < g->npartitions; i++)
        if (all_partitions || g->partitions[i].status != BROKER_LAG_OK)
            json_array_append_new(parts, partition_json(&g->partitions[i]));
    return json_pack("{s:s,s:s,s:s,s:f,s:o,s:i,s:o,s:I}", "cluster", cluster, "group", g->group,
                     "status", broker_lag_status_name(g->status), "complete", g->complete,
                     "partitions", parts, "partition_count", g->npartitions, "maxlag",
                     g->maxlag >= 0 ? partition_json(&g->partitions[g->maxlag]) : json_null(),
                     "totallag", (json_int_t)g->totallag);
}

json_t *broker_lag_consumer_json(broker_lag_t *lag, const char *group, broker_lag_head_fn *head_fn,
                                 broker_lag_owner_fn *owner_fn, void *arg)
{
    lag_group_t *g = group_find(lag, group);
    if (!g)
        return NULL;
    int cap = lag->conf.intervals;
    json_t *topics = json_object();
    HTAB_FOREACH(&g->parts, x) {
        lag_part_t *p = (lag_part_t *)x;
        json_t *arr = json_object_get(topics, p->topic);
        if (!arr) {
            arr = json_array();
            json_object_set_new(topics, p->topic, arr);
        }
        /* Partition-indexed array: pad with empty entries up to this index. */
        while ((int32_t)json_array_size(arr) <= p->partition)
            json_array_append_new(arr, json_pack("{s:[],s:s,s:s,s:i}", "offsets", "owner", "",
                                                 "client_id", "", "current-lag", 0));
        json_t *offs = json_array();
        for (int i = 0; i < cap - p->count; i++)
            json_array_append_new(offs, json_null());
        for (int i = 0; i < p->count; i++)
            json_array_append_new(offs, entry_json(&p->ring[ring_index(p->count, p->next, cap, i)]));
        int64_t head = head_fn ? head_fn(arg, p->topic, p->partition) : -1;
        int64_t last = p->count ? p->ring[ring_index(p->count, p->next, cap, p->count - 1)].offset : 0;
        const char *owner = "", *cid = "";
        if (owner_fn)
            owner_fn(arg, group, p->topic, p->partition, &owner, &cid);
        json_array_set_new(arr, (size_t)p->partition,
                           json_pack("{s:o,s:s,s:s,s:I}", "offsets", offs, "owner", owner ? owner : "",
                                     "client_id", cid ? cid : "", "current-lag",
                                     (json_int_t)(head > last ? head - last : 0)));
    }
    return topics;
}
