/* als_data — see als_data.h. */
#include "ml/als_data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_err.h"

static uint32_t fnv1a(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t j = 0; j < len; j++) {
        h ^= (uint8_t)s[j];
        h *= 16777619u;
    }
    return h;
}

void als_idmap_init(als_idmap_t *m)
{
    memset(m, 0, sizeof(*m));
}

void als_idmap_fini(als_idmap_t *m)
{
    for (int32_t j = 0; j < m->n; j++)
        free(m->names[j]);
    free(m->names);
    free(m->lens);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

int32_t als_idmap_find(const als_idmap_t *m, const char *id, size_t len)
{
    if (!m->nslots)
        return -1;
    uint32_t mask = m->nslots - 1;
    for (uint32_t h = fnv1a(id, len) & mask;; h = (h + 1) & mask) {
        int32_t d = m->slots[h];
        if (d < 0)
            return -1;
        if (m->lens[d] == len && memcmp(m->names[d], id, len) == 0)
            return d;
    }
}

static void idmap_rehash(als_idmap_t *m, uint32_t nslots)
{
    free(m->slots);
    m->slots = core_xmalloc((size_t)nslots * sizeof(int32_t));
    memset(m->slots, 0xff, (size_t)nslots * sizeof(int32_t));
    m->nslots = nslots;
    uint32_t mask = nslots - 1;
    for (int32_t d = 0; d < m->n; d++) {
        uint32_t h = fnv1a(m->names[d], m->lens[d]) & mask;
        while (m->slots[h] >= 0)
            h = (h + 1) & mask;
        m->slots[h] = d;
    }
}

int32_t als_idmap_intern(als_idmap_t *m, const char *id, size_t len)
{
    /* Ids are C strings everywhere (events, answers): a NUL inside would
     * make the stored copy shorter than its recorded length. */
    if (len > ALS_MAX_ID_LEN || memchr(id, 0, len))
        return -1;
    int32_t d = als_idmap_find(m, id, len);
    if (d >= 0)
        return d;
    if (m->n >= ALS_MAX_ROWS)
        return -1;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->names = core_xrealloc(m->names, (size_t)m->cap * sizeof(char *));
        m->lens = core_xrealloc(m->lens, (size_t)m->cap * sizeof(uint32_t));
    }
    d = m->n++;
    m->names[d] = core_xstrndup(id, len);
    m->lens[d] = (uint32_t)len;
    /* Load factor ≤ 1/2 keeps probes short. */
    if ((uint64_t)m->n * 2 > m->nslots) {
        idmap_rehash(m, m->nslots ? m->nslots * 2 : 128);
    } else {
        uint32_t mask = m->nslots - 1, h = fnv1a(id, len) & mask;
        while (m->slots[h] >= 0)
            h = (h + 1) & mask;
        m->slots[h] = d;
    }
    return d;
}

void als_obs_init(als_obs_t *o)
{
    memset(o, 0, sizeof(*o));
    als_idmap_init(&o->users);
    als_idmap_init(&o->items);
}

void als_obs_fini(als_obs_t *o)
{
    als_idmap_fini(&o->users);
    als_idmap_fini(&o->items);
    free(o->u);
    free(o->i);
    free(o->v);
    free(o->t);
    memset(o, 0, sizeof(*o));
}

void als_obs_add_ids(als_obs_t *o, int32_t u, int32_t i, float value, int64_t time_ms)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 1024;
        o->u = core_xrealloc(o->u, o->cap * sizeof(int32_t));
        o->i = core_xrealloc(o->i, o->cap * sizeof(int32_t));
        o->v = core_xrealloc(o->v, o->cap * sizeof(float));
        o->t = core_xrealloc(o->t, o->cap * sizeof(int64_t));
    }
    o->u[o->n] = u;
    o->i[o->n] = i;
    o->v[o->n] = value;
    o->t[o->n] = time_ms;
    o->n++;
}

int als_obs_add(als_obs_t *o, const char *user, size_t ulen, const char *item, size_t ilen,
                double value, int64_t time_ms)
{
    if (!(fabs(value) <= ALS_MAX_ABS_VALUE)) /* NaN fails too */
        return CORE_ERR_INVAL;
    int32_t u = als_idmap_intern(&o->users, user, ulen);
    if (u < 0)
        return CORE_ERR_INVAL;
    int32_t i = als_idmap_intern(&o->items, item, ilen);
    if (i < 0)
        return CORE_ERR_INVAL;
    als_obs_add_ids(o, u, i, (float)value, time_ms);
    return CORE_OK;
}

int als_obs_build(const als_obs_t *o, als_reduce_t how, als_csr_t *ui, als_csr_t *iu)
{
    return als_obs_build_sel(o, how, NULL, 0, ui, iu);
}

int als_obs_build_sel(const als_obs_t *o, als_reduce_t how, const uint8_t *sel, uint8_t which,
                      als_csr_t *ui, als_csr_t *iu)
{
    memset(ui, 0, sizeof(*ui));
    if (iu)
        memset(iu, 0, sizeof(*iu));
    const int32_t nu = o->users.n, ni = o->items.n;
    /* Bucket observation indices by user (counting sort, stable), then sort
     * each user's bucket by (item, time, arrival) and reduce runs. */
    int64_t *uptr = core_trymalloc(((size_t)nu + 1) * sizeof(int64_t));
    size_t *order = core_trymalloc((o->n ? o->n : 1) * sizeof(size_t));
    if (!uptr || !order) {
        free(uptr);
        free(order);
        return CORE_ERR_NOMEM;
    }
    memset(uptr, 0, ((size_t)nu + 1) * sizeof(int64_t));
    for (size_t j = 0; j < o->n; j++)
        if (!sel || sel[j] == which)
            uptr[o->u[j] + 1]++;
    for (int32_t u = 0; u < nu; u++)
        uptr[u + 1] += uptr[u];
    {
        int64_t *fill = core_xmalloc(((size_t)nu + 1) * sizeof(int64_t));
        memcpy(fill, uptr, ((size_t)nu + 1) * sizeof(int64_t));
        for (size_t j = 0; j < o->n; j++)
            if (!sel || sel[j] == which)
                order[fill[o->u[j]]++] = j;
        free(fill);
    }
    ui->nrows = nu;
    ui->ncols = ni;
    ui->ptr = core_trymalloc(((size_t)nu + 1) * sizeof(int64_t));
    ui->idx = core_trymalloc((o->n ? o->n : 1) * sizeof(int32_t));
    ui->val = core_trymalloc((o->n ? o->n : 1) * sizeof(float));
    if (!ui->ptr || !ui->idx || !ui->val) {
        free(uptr);
        free(order);
        als_csr_fini(ui);
        return CORE_ERR_NOMEM;
    }
    int64_t w = 0;
    ui->ptr[0] = 0;
    for (int32_t u = 0; u < nu; u++) {
        size_t *b = order + uptr[u];
        int64_t n = uptr[u + 1] - uptr[u];
        /* Insertion sort for short buckets is fine; users with thousands of
         * events are rare but exist, so use a shell-sort gap sequence. */
        for (int64_t gap = n / 2; gap > 0; gap = gap == 2 ? 1 : gap * 5 / 11) {
            for (int64_t x = gap; x < n; x++) {
                size_t key = b[x];
                int64_t y = x;
                while (y >= gap) {
                    size_t prev = b[y - gap];
                    int less = o->i[key] < o->i[prev] ||
                               (o->i[key] == o->i[prev] &&
                                (o->t[key] < o->t[prev] ||
                                 (o->t[key] == o->t[prev] && key < prev)));
                    if (!less)
                        break;
                    b[y] = prev;
                    y -= gap;
                }
                b[y] = key;
            }
        }
        for (int64_t x = 0; x < n;) {
            int32_t item = o->i[b[x]];
            float v = 0;
            int64_t y = x;
            for (; y < n && o->i[b[y]] == item; y++)
                v = how == ALS_REDUCE_SUM ? v + o->v[b[y]] : o->v[b[y]];
            ui->idx[w] = item;
            ui->val[w] = v;
            w++;
            x = y;
        }
        ui->ptr[u + 1] = w;
    }
    ui->nnz = w;
    free(uptr);
    free(order);
    if (iu && als_csr_transpose(ui, iu) != CORE_OK) {
        als_csr_fini(ui);
        return CORE_ERR_NOMEM;
    }
    return CORE_OK;
}

int als_load_movielens(als_obs_t *o, const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return core_errf(errno, errstr, errstr_size, "%s: %s", path, strerror(errno));
    char line[4096];
    long lineno = 0;
    int err = CORE_OK;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *fields[4];
        int nf = 0;
        char *s = line;
        size_t L = strcspn(s, "\r\n");
        s[L] = 0;
        if (L == 0)
            continue;
        while (nf < 4) {
            fields[nf++] = s;
            char *tab = strchr(s, '\t');
            if (!tab)
                break;
            *tab = 0;
            s = tab + 1;
        }
        if (nf < 3) {
            err = core_errf(CORE_ERR_MALFORMED, errstr, errstr_size,
                            "%s:%ld: expected user<TAB>item<TAB>rating[<TAB>time]", path, lineno);
            break;
        }
        char *end;
        double r = strtod(fields[2], &end);
        if (end == fields[2] || *end || !(fabs(r) <= ALS_MAX_ABS_VALUE)) {
            err = core_errf(CORE_ERR_MALFORMED, errstr, errstr_size,
                            "%s:%ld: bad rating '%s' (a number, |rating| <= %g)", path, lineno,
                            fields[2], ALS_MAX_ABS_VALUE);
            break;
        }
        int64_t t = 0;
        if (nf >= 4)
            t = strtoll(fields[3], NULL, 10) * 1000;
        if (als_obs_add(o, fields[0], strlen(fields[0]), fields[1], strlen(fields[1]), r, t) !=
            CORE_OK) {
            err = core_errf(CORE_ERR_MALFORMED, errstr, errstr_size, "%s:%ld: bad id", path,
                            lineno);
            break;
        }
    }
    if (!err && ferror(f))
        err = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: read error", path);
    fclose(f);
    return err;
}
