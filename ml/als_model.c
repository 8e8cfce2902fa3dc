/* als_model — see als_model.h. */
#include "ml/als_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_crc.h"
#include "core/core_err.h"
#include "ml/als_score.h"

als_model_t *als_model_new(void)
{
    als_model_t *m = core_xcalloc(1, sizeof(*m));
    atomic_init(&m->refs, 1);
    als_params_default(&m->params);
    als_idmap_init(&m->users);
    als_idmap_init(&m->items);
    als_idmap_init(&m->cats);
    return m;
}

als_model_t *als_model_keep(als_model_t *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

static void model_free(als_model_t *m)
{
    als_idmap_fini(&m->users);
    als_idmap_fini(&m->items);
    als_idmap_fini(&m->cats);
    free(m->cat_ptr);
    free(m->cat_idx);
    als_factors_fini(&m->U);
    als_factors_fini(&m->V);
    als_csr_fini(&m->seen);
    free(m->item_norm);
    free(m->popularity);
    free(m->panel);
    als_qpanel_fini(&m->qpanel);
    free(m);
}

void als_model_release(als_model_t *m)
{
    if (!m)
        return;
    /* acq_rel: the freeing thread must see every write made through other
     * references before their release. */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        model_free(m);
}

void als_model_set_metric(als_model_t *m, const char *name, double value)
{
    for (int j = 0; j < m->nmetrics; j++)
        if (strcmp(m->metrics[j].name, name) == 0) {
            m->metrics[j].value = value;
            return;
        }
    if (m->nmetrics == ALS_MODEL_MAX_METRICS)
        return;
    snprintf(m->metrics[m->nmetrics].name, sizeof(m->metrics[0].name), "%s", name);
    m->metrics[m->nmetrics++].value = value;
}

int als_model_get_metric(const als_model_t *m, const char *name, double *value)
{
    for (int j = 0; j < m->nmetrics; j++)
        if (strcmp(m->metrics[j].name, name) == 0) {
            *value = m->metrics[j].value;
            return 1;
        }
    return 0;
}

int als_model_derive(als_model_t *m)
{
    const int32_t ni = m->V.n;
    free(m->item_norm);
    free(m->popularity);
    free(m->panel);
    m->item_norm = core_trymalloc(((size_t)ni + 1) * sizeof(float));
    m->popularity = core_trymalloc(((size_t)ni + 1) * sizeof(float));
    m->panel = als_panel_build(&m->V);
    if (!m->item_norm || !m->popularity || !m->panel)
        return CORE_ERR_NOMEM;
    double vmax = 0, umax = 0;
    for (int32_t i = 0; i < ni; i++) {
        const float *y = als_row(&m->V, i);
        double s = 0;
        for (int32_t a = 0; a < m->V.rank; a++)
            s += (double)y[a] * y[a];
        m->item_norm[i] = (float)sqrt(s);
        m->popularity[i] = 0;
        vmax = fmax(vmax, sqrt(s));
    }
    for (int32_t u = 0; u < m->U.n; u++) {
        double s = 0;
        for (int32_t a = 0; a < m->U.rank; a++)
            s += (double)als_row(&m->U, u)[a] * als_row(&m->U, u)[a];
        umax = fmax(umax, sqrt(s));
    }
    /* The int8 bounds are rigorous while no score can overflow a float: a
     * query vector is a user row, or a sum of at most ALS_QUERY_MAX_LIST
     * unit vectors (items queries), and |x·y| ≤ ‖x‖‖y‖ bounds every partial
     * sum too. Trained factors are far below this; a model that is not
     * keeps the float scan. */
    const bool fits = vmax * fmax(umax, 1e4) <= 1e30;
    als_qpanel_fini(&m->qpanel);
    if (fits && als_qpanel_worthwhile() && !getenv("EDDY_SERVE_FLOAT_SCAN") &&
        als_qpanel_build(&m->V, &m->qpanel) != CORE_OK)
        return CORE_ERR_NOMEM;
    for (int64_t e = 0; e < m->seen.nnz; e++)
        m->popularity[m->seen.idx[e]] += 1;
    return CORE_OK;
}

/* ---- encode ------------------------------------------------------------------ */

static uint64_t dbl_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}
static double bits_dbl(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static void wr_idmap(core_buf_t *b, const als_idmap_t *m)
{
    core_wr_i32(b, m->n);
    for (int32_t j = 0; j < m->n; j++)
        core_wr_str(b, m->names[j], m->lens[j]);
}

static void wr_factors(core_buf_t *b, const als_factors_t *f)
{
    core_buf_reserve(b, (size_t)f->n * f->rank * 4);
    for (int32_t r = 0; r < f->n; r++) {
        const float *x = als_row(f, r);
        for (int32_t a = 0; a < f->rank; a++) {
            uint32_t u;
            memcpy(&u, &x[a], 4);
            core_wr_u32(b, u);
        }
    }
}

void als_model_encode(const als_model_t *m, core_buf_t *out)
{
    size_t start = out->len;
    core_wr_raw(out, ALS_MODEL_MAGIC, 8);
    core_wr_u32(out, ALS_MODEL_FORMAT);
    core_wr_u32(out, m->params.implicit ? 1u : 0u);
    core_wr_str(out, m->app, (int64_t)strlen(m->app));
    core_wr_str(out, m->engine, (int64_t)strlen(m->engine));
    core_wr_i64(out, m->version);
    core_wr_i64(out, m->trained_at_ms);
    core_wr_i64(out, m->nevents);
    core_wr_i32(out, m->params.rank);
    core_wr_i32(out, m->params.iterations);
    core_wr_i64(out, (int64_t)dbl_bits(m->params.lambda));
    core_wr_i64(out, (int64_t)dbl_bits(m->params.alpha));
    core_wr_i8(out, (int8_t)m->params.solver);
    core_wr_i32(out, m->params.cg_steps);
    core_wr_i64(out, (int64_t)m->params.seed);
    core_wr_i32(out, m->nmetrics);
    for (int j = 0; j < m->nmetrics; j++) {
        core_wr_str(out, m->metrics[j].name, (int64_t)strlen(m->metrics[j].name));
        core_wr_i64(out, (int64_t)dbl_bits(m->metrics[j].value));
    }
    wr_idmap(out, &m->users);
    wr_idmap(out, &m->items);
    wr_idmap(out, &m->cats);
    for (int32_t i = 0; i < m->items.n; i++) {
        int64_t b = m->cat_ptr ? m->cat_ptr[i] : 0, e = m->cat_ptr ? m->cat_ptr[i + 1] : 0;
        core_wr_uvarint(out, (uint32_t)(e - b));
        for (int64_t j = b; j < e; j++)
            core_wr_uvarint(out, (uint32_t)m->cat_idx[j]);
    }
    wr_factors(out, &m->U);
    wr_factors(out, &m->V);
    for (int32_t u = 0; u < m->users.n; u++) {
        int64_t b = m->seen.ptr ? m->seen.ptr[u] : 0, e = m->seen.ptr ? m->seen.ptr[u + 1] : 0;
        core_wr_uvarint(out, (uint32_t)(e - b));
        int32_t prev = -1;
        for (int64_t j = b; j < e; j++) {
            core_wr_uvarint(out, (uint32_t)(m->seen.idx[j] - prev - 1));
            prev = m->seen.idx[j];
        }
    }
    core_wr_u32(out, core_crc32c(0, out->data + start, out->len - start));
}

/* ---- decode ------------------------------------------------------------------ */

#define BAD(code, ...)                                                                   \
    do {                                                                                 \
        err = core_errf(code, errstr, errstr_size, __VA_ARGS__);                         \
        goto fail;                                                                       \
    } while (0)

static int rd_name(core_rd_t *rd, char *dst, size_t cap)
{
    core_slice_t s = core_rd_str(rd);
    /* A NUL inside would make the C string shorter than what was stored. */
    if (rd->err || s.len < 0 || (size_t)s.len >= cap || memchr(s.ptr, 0, (size_t)s.len))
        return -1;
    memcpy(dst, s.ptr, (size_t)s.len);
    dst[s.len] = 0;
    return 0;
}

/* n ids, each at least 2 bytes (the length). */
static int rd_idmap(core_rd_t *rd, als_idmap_t *m, int32_t max)
{
    int32_t n = core_rd_array(rd, max, 2);
    if (rd->err || n < 0)
        return -1;
    for (int32_t j = 0; j < n; j++) {
        core_slice_t s = core_rd_str(rd);
        if (rd->err || s.len < 0 || s.len > ALS_MAX_ID_LEN)
            return -1;
        /* A duplicate id would make two rows answer to one name. */
        if (als_idmap_intern(m, (const char *)s.ptr, (size_t)s.len) != j)
            return -1;
    }
    return 0;
}

static int rd_factors(core_rd_t *rd, als_factors_t *f, int32_t n, int32_t rank)
{
    if ((uint64_t)n * (uint64_t)rank * 4 > core_rd_remain(rd))
        return -1;
    if (als_factors_init(f, n, rank) != CORE_OK)
        return -1;
    for (int32_t r = 0; r < n; r++) {
        float *x = f->x + (size_t)r * f->stride;
        for (int32_t a = 0; a < rank; a++) {
            uint32_t u = core_rd_u32(rd);
            memcpy(&x[a], &u, 4);
            if (!isfinite(x[a]))
                return -1;
        }
    }
    return rd->err ? -1 : 0;
}

int als_model_decode(const void *blob, size_t len, als_model_t **out, char *errstr,
                     size_t errstr_size)
{
    int err = CORE_OK;
    als_model_t *m = NULL;
    *out = NULL;
    const uint8_t *p = blob;
    if (len < 8 + 4 + 4 + 4 || memcmp(p, ALS_MODEL_MAGIC, 8) != 0)
        return core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "not an Eddy ALS model");
    if (core_be32(p + 8) == 0)
        return core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "model format 0 does not exist");
    if (core_be32(p + 8) > ALS_MODEL_FORMAT)
        return core_errf(CORE_ERR_UNSUPPORTED, errstr, errstr_size,
                         "model format %u is newer than this build (%d)", core_be32(p + 8),
                         ALS_MODEL_FORMAT);
    if (core_crc32c(0, p, len - 4) != core_be32(p + len - 4))
        return core_errf(CORE_ERR_CRC, errstr, errstr_size, "model checksum mismatch");
    core_rd_t rd;
    core_rd_init(&rd, p + 8, len - 8 - 4);
    m = als_model_new();
    core_rd_u32(&rd); /* format, checked above */
    uint32_t flags = core_rd_u32(&rd);
    if (flags & ~1u)
        BAD(CORE_ERR_CORRUPT, "unknown model flags %#x", flags);
    m->params.implicit = flags & 1u;
    if (rd_name(&rd, m->app, sizeof(m->app)) || rd_name(&rd, m->engine, sizeof(m->engine)))
        BAD(CORE_ERR_CORRUPT, "bad app or engine name");
    m->version = core_rd_i64(&rd);
    m->trained_at_ms = core_rd_i64(&rd);
    m->nevents = core_rd_i64(&rd);
    m->params.rank = core_rd_i32(&rd);
    m->params.iterations = core_rd_i32(&rd);
    m->params.lambda = bits_dbl((uint64_t)core_rd_i64(&rd));
    m->params.alpha = bits_dbl((uint64_t)core_rd_i64(&rd));
    m->params.solver = (als_solver_t)core_rd_i8(&rd);
    m->params.cg_steps = core_rd_i32(&rd);
    m->params.seed = (uint64_t)core_rd_i64(&rd);
    if (rd.err)
        BAD(CORE_ERR_CORRUPT, "model header truncated");
    {
        char why[128];
        als_params_t chk = m->params;
        if (chk.solver == ALS_SOLVER_CHOLESKY)
            chk.cg_steps = 1;
        if (als_params_check(&chk, why, sizeof(why)) != CORE_OK)
            BAD(CORE_ERR_CORRUPT, "bad parameters: %s", why);
    }
    int32_t nm = core_rd_array(&rd, ALS_MODEL_MAX_METRICS, 2 + 8);
    if (rd.err || nm < 0)
        BAD(CORE_ERR_CORRUPT, "bad metric count");
    for (int32_t j = 0; j < nm; j++) {
        if (rd_name(&rd, m->metrics[j].name, sizeof(m->metrics[j].name)))
            BAD(CORE_ERR_CORRUPT, "bad metric name");
        m->metrics[j].value = bits_dbl((uint64_t)core_rd_i64(&rd));
    }
    m->nmetrics = nm;
    if (rd_idmap(&rd, &m->users, ALS_MAX_ROWS))
        BAD(CORE_ERR_CORRUPT, "bad user ids");
    if (rd_idmap(&rd, &m->items, ALS_MAX_ROWS))
        BAD(CORE_ERR_CORRUPT, "bad item ids");
    if (rd_idmap(&rd, &m->cats, ALS_MODEL_MAX_CATS))
        BAD(CORE_ERR_CORRUPT, "bad category names");
    const int32_t nu = m->users.n, ni = m->items.n;
    /* Categories: every item needs at least one byte. */
    if ((size_t)ni > core_rd_remain(&rd))
        BAD(CORE_ERR_CORRUPT, "item categories truncated");
    m->cat_ptr = core_trymalloc(((size_t)ni + 1) * sizeof(int64_t));
    if (!m->cat_ptr)
        BAD(CORE_ERR_NOMEM, "out of memory");
    m->cat_ptr[0] = 0;
    size_t cap = 0;
    for (int32_t i = 0; i < ni; i++) {
        uint32_t n = core_rd_uvarint(&rd);
        if (rd.err || n > ALS_MODEL_MAX_ITEM_CATS || n > core_rd_remain(&rd))
            BAD(CORE_ERR_CORRUPT, "bad categories of item %d", i);
        if ((size_t)m->cat_ptr[i] + n > cap) {
            cap = (cap + n) * 2;
            int32_t *g = core_tryrealloc(m->cat_idx, cap * sizeof(int32_t));
            if (!g)
                BAD(CORE_ERR_NOMEM, "out of memory");
            m->cat_idx = g;
        }
        int64_t w = m->cat_ptr[i];
        int64_t prev = -1;
        for (uint32_t j = 0; j < n; j++) {
            uint32_t c = core_rd_uvarint(&rd);
            if (rd.err || c >= (uint32_t)m->cats.n || (int64_t)c <= prev)
                BAD(CORE_ERR_CORRUPT, "bad category index of item %d", i);
            m->cat_idx[w++] = (int32_t)c;
            prev = c;
        }
        m->cat_ptr[i + 1] = w;
    }
    if (rd_factors(&rd, &m->U, nu, m->params.rank))
        BAD(CORE_ERR_CORRUPT, "bad user factors");
    if (rd_factors(&rd, &m->V, ni, m->params.rank))
        BAD(CORE_ERR_CORRUPT, "bad item factors");
    if ((size_t)nu > core_rd_remain(&rd))
        BAD(CORE_ERR_CORRUPT, "seen items truncated");
    m->seen.nrows = nu;
    m->seen.ncols = ni;
    m->seen.ptr = core_trymalloc(((size_t)nu + 1) * sizeof(int64_t));
    if (!m->seen.ptr)
        BAD(CORE_ERR_NOMEM, "out of memory");
    m->seen.ptr[0] = 0;
    cap = 0;
    for (int32_t u = 0; u < nu; u++) {
        uint32_t n = core_rd_uvarint(&rd);
        if (rd.err || n > (uint32_t)ni || n > core_rd_remain(&rd))
            BAD(CORE_ERR_CORRUPT, "bad seen count of user %d", u);
        if ((size_t)m->seen.ptr[u] + n > cap) {
            cap = (cap + n) * 2;
            int32_t *g = core_tryrealloc(m->seen.idx, cap * sizeof(int32_t));
            if (!g)
                BAD(CORE_ERR_NOMEM, "out of memory");
            m->seen.idx = g;
        }
        int64_t w = m->seen.ptr[u], prev = -1;
        for (uint32_t j = 0; j < n; j++) {
            int64_t item = prev + 1 + (int64_t)core_rd_uvarint(&rd);
            if (rd.err || item >= ni)
                BAD(CORE_ERR_CORRUPT, "bad seen item of user %d", u);
            m->seen.idx[w++] = (int32_t)item;
            prev = item;
        }
        m->seen.ptr[u + 1] = w;
    }
    m->seen.nnz = m->seen.ptr[nu];
    if (core_rd_remain(&rd) != 0)
        BAD(CORE_ERR_CORRUPT, "%zu unexpected bytes before the checksum", core_rd_remain(&rd));
    if ((err = als_model_derive(m)) != CORE_OK)
        BAD(err, "out of memory");
    *out = m;
    return CORE_OK;
fail:
    als_model_release(m);
    return err;
}
