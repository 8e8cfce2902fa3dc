#include "counts_window.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* One open window. name = "user\0event\0" (owned). */
typedef struct cw_entry {
    char *name;
    size_t user_len, event_len;
    int kind;
    int64_t start, end, count;
    uint64_t hash;
} cw_entry_t;

struct cw {
    cw_conf_t conf;
    int64_t max_ts; /* CW_NO_TIME before the first record */
    cw_entry_t *e;
    size_t n, cap;
    uint32_t *slots; /* open addressing: entry index + 1, 0 = empty */
    size_t nslots;   /* power of two, > 2 * n */
};

#define CW_BLOB_MAGIC 0x31574343u /* "CCW1" little-endian */

int cw_conf_check(const cw_conf_t *c)
{
    if (c->tumbling_ms < 0 || c->sliding_ms < 0 || c->lateness_ms < 0 ||
        c->tumbling_ms > CW_TIME_MAX || c->sliding_ms > CW_TIME_MAX ||
        c->lateness_ms > CW_TIME_MAX)
        return CW_EINVAL;
    if (!c->tumbling_ms && !c->sliding_ms)
        return CW_EINVAL;
    if (c->sliding_ms && (c->slide_every_ms <= 0 || c->sliding_ms % c->slide_every_ms ||
                          c->sliding_ms / c->slide_every_ms > 1000))
        return CW_EINVAL;
    return CW_OK;
}

/* floor(a / b) for b > 0, also for negative a. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

int cw_assign(const cw_conf_t *c, int64_t ts, cw_window_t *out, int cap)
{
    int n = 0;
    if (c->tumbling_ms && n < cap) {
        int64_t s = floor_div(ts, c->tumbling_ms) * c->tumbling_ms;
        out[n++] = (cw_window_t){CW_TUMBLING, s, s + c->tumbling_ms};
    }
    if (c->sliding_ms) {
        int64_t last = floor_div(ts, c->slide_every_ms) * c->slide_every_ms;
        int64_t first = last - c->sliding_ms + c->slide_every_ms;
        for (int64_t s = first; s <= last && n < cap; s += c->slide_every_ms)
            out[n++] = (cw_window_t){CW_SLIDING, s, s + c->sliding_ms};
    }
    return n;
}

static uint64_t hash_key(const char *user, size_t ul, const char *event, size_t el, int kind,
                         int64_t start)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < ul; i++)
        h = (h ^ (uint8_t)user[i]) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (size_t i = 0; i < el; i++)
        h = (h ^ (uint8_t)event[i]) * 1099511628211ull;
    h ^= (uint64_t)kind * 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t)start * 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static bool entry_is(const cw_entry_t *x, const char *user, size_t ul, const char *event,
                     size_t el, int kind, int64_t start)
{
    return x->kind == kind && x->start == start && x->user_len == ul && x->event_len == el &&
           !memcmp(x->name, user, ul) && !memcmp(x->name + ul + 1, event, el);
}

static int rehash(cw_t *w, size_t nslots)
{
    uint32_t *s = calloc(nslots, sizeof *s);
    if (!s)
        return CW_ENOMEM;
    for (size_t i = 0; i < w->n; i++) {
        size_t k = w->e[i].hash & (nslots - 1);
        while (s[k])
            k = (k + 1) & (nslots - 1);
        s[k] = (uint32_t)(i + 1);
    }
    free(w->slots);
    w->slots = s;
    w->nslots = nslots;
    return CW_OK;
}

/* Finds or creates the window; NULL on limit/OOM (*err set). */
static cw_entry_t *lookup(cw_t *w, const char *user, size_t ul, const char *event, size_t el,
                          const cw_window_t *win, int *err)
{
    uint64_t h = hash_key(user, ul, event, el, win->kind, win->start);
    size_t k = h & (w->nslots - 1);
    for (; w->slots[k]; k = (k + 1) & (w->nslots - 1)) {
        cw_entry_t *x = &w->e[w->slots[k] - 1];
        if (x->hash == h && entry_is(x, user, ul, event, el, win->kind, win->start))
            return x;
    }
    if (w->n >= CW_MAX_OPEN) {
        *err = CW_ELIMIT;
        return NULL;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        cw_entry_t *e = realloc(w->e, cap * sizeof *e);
        if (!e) {
            *err = CW_ENOMEM;
            return NULL;
        }
        w->e = e;
        w->cap = cap;
    }
    char *name = malloc(ul + el + 2);
    if (!name) {
        *err = CW_ENOMEM;
        return NULL;
    }
    memcpy(name, user, ul);
    name[ul] = 0;
    memcpy(name + ul + 1, event, el);
    name[ul + 1 + el] = 0;
    cw_entry_t *x = &w->e[w->n];
    *x = (cw_entry_t){name, ul, el, win->kind, win->start, win->end, 0, h};
    w->slots[k] = (uint32_t)(++w->n);
    if (w->n * 2 >= w->nslots && rehash(w, w->nslots * 2)) {
        /* keep going: the table is still valid, only fuller */
    }
    return x;
}

cw_t *cw_new(const cw_conf_t *conf)
{
    if (cw_conf_check(conf))
        return NULL;
    cw_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->conf = *conf;
    w->max_ts = CW_NO_TIME;
    if (rehash(w, 128)) {
        free(w);
        return NULL;
    }
    return w;
}

static void clear(cw_t *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->e[i].name);
    w->n = 0;
    w->max_ts = CW_NO_TIME;
    memset(w->slots, 0, w->nslots * sizeof *w->slots);
}

void cw_free(cw_t *w)
{
    if (!w)
        return;
    clear(w);
    free(w->e);
    free(w->slots);
    free(w);
}

int64_t cw_watermark(const cw_t *w)
{
    if (w->max_ts == CW_NO_TIME)
        return CW_NO_TIME;
    return w->max_ts - w->conf.lateness_ms;
}

size_t cw_open_count(const cw_t *w)
{
    return w->n;
}

int cw_add(cw_t *w, const char *user, const char *event, int64_t ts, int *dropped)
{
    size_t ul = strlen(user), el = strlen(event);
    *dropped = 0;
    if (ul > CW_MAX_NAME || el > CW_MAX_NAME || ts < -CW_TIME_MAX || ts > CW_TIME_MAX)
        return CW_EINVAL;
    cw_window_t win[1 + 1000];
    int nwin = cw_assign(&w->conf, ts, win, (int)(sizeof win / sizeof win[0]));
    int64_t wm = cw_watermark(w);
    /* The watermark moves only after the record is placed: a record never
     * closes its own windows. */
    int added = 0;
    for (int i = 0; i < nwin; i++) {
        if (wm != CW_NO_TIME && win[i].end <= wm) {
            (*dropped)++;
            continue;
        }
        int err = CW_OK;
        cw_entry_t *x = lookup(w, user, ul, event, el, &win[i], &err);
        if (!x) {
            /* undo this record's increments so the state stays exact */
            for (int j = 0; j < i; j++) {
                if (wm != CW_NO_TIME && win[j].end <= wm)
                    continue;
                int e2 = CW_OK;
                cw_entry_t *y = lookup(w, user, ul, event, el, &win[j], &e2);
                if (y)
                    y->count--;
            }
            return err;
        }
        x->count++;
        added++;
    }
    if (!added)
        return CW_ELATE;
    if (w->max_ts == CW_NO_TIME || ts > w->max_ts)
        w->max_ts = ts;
    return CW_OK;
}

static int cmp_closed(const void *a, const void *b)
{
    const cw_entry_t *x = *(cw_entry_t *const *)a, *y = *(cw_entry_t *const *)b;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return strcmp(x->name + x->user_len + 1, y->name + y->user_len + 1);
}

int cw_emit_closed(cw_t *w, int (*cb)(void *opaque, const cw_result_t *r), void *opaque)
{
    int64_t wm = cw_watermark(w);
    if (wm == CW_NO_TIME || !w->n)
        return CW_OK;
    size_t nc = 0;
    for (size_t i = 0; i < w->n; i++)
        nc += w->e[i].end <= wm;
    if (!nc)
        return CW_OK;
    cw_entry_t **closed = malloc(nc * sizeof *closed);
    if (!closed)
        return CW_ENOMEM;
    nc = 0;
    for (size_t i = 0; i < w->n; i++)
        if (w->e[i].end <= wm)
            closed[nc++] = &w->e[i];
    qsort(closed, nc, sizeof *closed, cmp_closed);
    int rc = 0;
    for (size_t i = 0; i < nc; i++) {
        cw_entry_t *x = closed[i];
        if (!x->count) { /* left by an undone cw_add: nothing to report */
            free(x->name);
            x->name = NULL;
            continue;
        }
        cw_result_t r = {x->name, x->name + x->user_len + 1, x->kind, x->start, x->end, x->count};
        if ((rc = cb(opaque, &r)) != 0)
            break;
        free(x->name);
        x->name = NULL; /* reported: dropped below */
    }
    free(closed);
    size_t k = 0;
    for (size_t i = 0; i < w->n; i++)
        if (w->e[i].name)
            w->e[k++] = w->e[i];
    w->n = k;
    memset(w->slots, 0, w->nslots * sizeof *w->slots);
    if (rehash(w, w->nslots))
        return CW_ENOMEM;
    return rc;
}

/* ---- blob: magic u32, max_ts i64, n u64, then per window: kind u8, start
 * i64, end i64, count i64, user_len u32, event_len u32, user, event. All
 * little-endian. Validated fully on load. */

static void put(uint8_t **p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        *(*p)++ = (uint8_t)(v >> (8 * i));
}

int cw_save(const cw_t *w, uint8_t **blob, size_t *len)
{
    size_t need = 4 + 8 + 8;
    for (size_t i = 0; i < w->n; i++)
        need += 1 + 8 * 3 + 4 * 2 + w->e[i].user_len + w->e[i].event_len;
    uint8_t *b = malloc(need), *p = b;
    if (!b)
        return CW_ENOMEM;
    put(&p, CW_BLOB_MAGIC, 4);
    put(&p, (uint64_t)w->max_ts, 8);
    put(&p, w->n, 8);
    for (size_t i = 0; i < w->n; i++) {
        const cw_entry_t *x = &w->e[i];
        put(&p, (uint64_t)x->kind, 1);
        put(&p, (uint64_t)x->start, 8);
        put(&p, (uint64_t)x->end, 8);
        put(&p, (uint64_t)x->count, 8);
        put(&p, x->user_len, 4);
        put(&p, x->event_len, 4);
        memcpy(p, x->name, x->user_len);
        p += x->user_len;
        memcpy(p, x->name + x->user_len + 1, x->event_len);
        p += x->event_len;
    }
    *blob = b;
    *len = need;
    return CW_OK;
}

typedef struct rd {
    const uint8_t *p, *end;
    bool err;
} rd_t;

static uint64_t get(rd_t *r, int bytes)
{
    if (r->err || r->end - r->p < bytes) {
        r->err = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)*r->p++ << (8 * i);
    return v;
}

int cw_load(cw_t *w, const void *blob, size_t len)
{
    clear(w);
    rd_t r = {blob, (const uint8_t *)blob + len, false};
    if (get(&r, 4) != CW_BLOB_MAGIC)
        return CW_ECORRUPT;
    int64_t max_ts = (int64_t)get(&r, 8);
    uint64_t n = get(&r, 8);
    /* each window takes at least 33 bytes: the count cannot exceed what remains */
    if (r.err || n > CW_MAX_OPEN || n > (uint64_t)(r.end - r.p) / 33 ||
        (max_ts != CW_NO_TIME && (max_ts < -CW_TIME_MAX || max_ts > CW_TIME_MAX)))
        return CW_ECORRUPT;
    char user[CW_MAX_NAME + 1], event[CW_MAX_NAME + 1];
    for (uint64_t i = 0; i < n; i++) {
        cw_window_t win;
        win.kind = (int)get(&r, 1);
        win.start = (int64_t)get(&r, 8);
        win.end = (int64_t)get(&r, 8);
        int64_t count = (int64_t)get(&r, 8);
        uint64_t ul = get(&r, 4), el = get(&r, 4);
        /* windows of in-range times start and end within 2 * CW_TIME_MAX */
        if (r.err || (win.kind != CW_TUMBLING && win.kind != CW_SLIDING) || count < 0 ||
            win.start < -2 * CW_TIME_MAX || win.end > 2 * CW_TIME_MAX || win.end <= win.start ||
            ul > CW_MAX_NAME || el > CW_MAX_NAME || (uint64_t)(r.end - r.p) < ul + el)
            goto corrupt;
        memcpy(user, r.p, ul);
        user[ul] = 0;
        memcpy(event, r.p + ul, el);
        event[el] = 0;
        r.p += ul + el;
        if (memchr(user, 0, ul) || memchr(event, 0, el))
            goto corrupt;
        int err = CW_OK;
        cw_entry_t *x = lookup(w, user, ul, event, el, &win, &err);
        if (!x || x->count) /* OOM, or a duplicate window */
            goto corrupt;
        x->count = count;
    }
    if (r.p != r.end)
        goto corrupt;
    w->max_ts = max_ts;
    return CW_OK;
corrupt:
    clear(w);
    return CW_ECORRUPT;
}
