/* Bench/test job (topic -> store): parses "user,item,action" records, counts
 * records per item within the task, and at batch_end emits one event per
 * item ($set on the item with {"count": n, "batch": b}). The order of emits
 * follows the first appearance of each item, so a re-run emits the same ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eddy/job.h"

typedef struct item {
    char name[48];
    long count;
} item_t;

typedef struct counts {
    item_t *v;     /* open addressing by name */
    int *order;    /* slots in first-seen order */
    size_t cap, n;
} counts_t;

static unsigned long hash(const char *s, size_t n)
{
    unsigned long h = 5381;
    for (size_t i = 0; i < n; i++)
        h = h * 33 + (unsigned char)s[i];
    return h;
}

static int grow(counts_t *c)
{
    size_t ncap = c->cap ? c->cap * 2 : 1024;
    item_t *nv = calloc(ncap, sizeof *nv);
    int *no = calloc(ncap, sizeof *no);
    if (!nv || !no)
        return -1;
    for (size_t k = 0; k < c->n; k++) {
        item_t *it = &c->v[c->order[k]];
        size_t j = hash(it->name, strlen(it->name)) & (ncap - 1);
        while (nv[j].name[0])
            j = (j + 1) & (ncap - 1);
        nv[j] = *it;
        no[k] = (int)j;
    }
    free(c->v);
    free(c->order);
    c->v = nv;
    c->order = no;
    c->cap = ncap;
    return 0;
}

static int pc_init(eddy_ctx_t *ctx, const char *config)
{
    counts_t *c = calloc(1, sizeof *c);
    if (!c || grow(c))
        return -1;
    ctx->user = c;
    return 0;
}

static int pc_process(eddy_ctx_t *ctx, const eddy_record_t *recs, size_t n)
{
    counts_t *c = ctx->user;
    for (size_t i = 0; i < n; i++) {
        const char *v = recs[i].value;
        size_t len = recs[i].value_len;
        const char *a = v ? memchr(v, ',', len) : NULL;
        if (!a)
            continue; /* not user,item,action: skipped */
        const char *item = a + 1;
        const char *b = memchr(item, ',', len - (size_t)(item - v));
        size_t il = b ? (size_t)(b - item) : len - (size_t)(item - v);
        if (il == 0 || il >= sizeof c->v[0].name)
            continue;
        if ((c->n + 1) * 2 > c->cap && grow(c))
            return -1;
        size_t j = hash(item, il) & (c->cap - 1);
        while (c->v[j].name[0] && (strlen(c->v[j].name) != il || memcmp(c->v[j].name, item, il)))
            j = (j + 1) & (c->cap - 1);
        if (!c->v[j].name[0]) {
            memcpy(c->v[j].name, item, il);
            c->v[j].name[il] = 0;
            c->order[c->n++] = (int)j;
        }
        c->v[j].count++;
    }
    return 0;
}

static int pc_batch_end(eddy_ctx_t *ctx)
{
    counts_t *c = ctx->user;
    for (size_t k = 0; k < c->n; k++) {
        item_t *it = &c->v[c->order[k]];
        char props[96];
        snprintf(props, sizeof props, "{\"count\":%ld,\"batch\":%lld}", it->count,
                 (long long)ctx->batch_id);
        eddy_event_t ev = {.event = "$set", .entity_type = "item", .entity_id = it->name,
                           .properties_json = props, .event_time_ms = 0};
        int rc = eddy_emit_event(ctx, NULL, &ev);
        if (rc)
            return rc;
    }
    return 0;
}

static void pc_destroy(eddy_ctx_t *ctx)
{
    counts_t *c = ctx->user;
    free(c->v);
    free(c->order);
    free(c);
}

EDDY_JOB(.name = "parse-count", .init = pc_init, .process = pc_process,
         .batch_end = pc_batch_end, .destroy = pc_destroy);
