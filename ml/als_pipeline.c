/* als_pipeline — see als_pipeline.h. */
#include "ml/als_pipeline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "core/core_time.h"
#include "ml/als_eval.h"

void als_catlist_init(als_catlist_t *c)
{
    memset(c, 0, sizeof(*c));
    als_idmap_init(&c->names);
}

void als_catlist_fini(als_catlist_t *c)
{
    for (size_t j = 0; j < c->n; j++)
        free(c->item_ids[j]);
    free(c->item_ids);
    free(c->cat);
    als_idmap_fini(&c->names);
    memset(c, 0, sizeof(*c));
}

void als_catlist_add(als_catlist_t *c, const char *item_id, const char *category)
{
    int32_t k = als_idmap_intern(&c->names, category, strlen(category));
    if (k < 0 || k >= ALS_MODEL_MAX_CATS)
        return;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->item_ids = core_xrealloc(c->item_ids, c->cap * sizeof(char *));
        c->cat = core_xrealloc(c->cat, c->cap * sizeof(int32_t));
    }
    c->item_ids[c->n] = core_xstrdup(item_id);
    c->cat[c->n++] = k;
}

int als_load_movielens_items(als_catlist_t *c, const char *path, char *errstr,
                             size_t errstr_size)
{
    static const char *const genres[19] = {
        "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
        "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
        "Romance", "Sci-Fi", "Thriller", "War", "Western"};
    FILE *f = fopen(path, "r");
    if (!f)
        return core_errf(errno, errstr, errstr_size, "%s: %s", path, strerror(errno));
    char line[8192];
    long lineno = 0;
    int err = CORE_OK;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0])
            continue;
        char *fields[24];
        int nf = 0;
        for (char *s = line; nf < 24;) {
            fields[nf++] = s;
            char *bar = strchr(s, '|');
            if (!bar)
                break;
            *bar = 0;
            s = bar + 1;
        }
        if (nf != 24 || !fields[0][0] || strlen(fields[0]) > ALS_MAX_ID_LEN) {
            err = core_errf(CORE_ERR_MALFORMED, errstr, errstr_size,
                            "%s:%ld: expected 24 '|'-separated fields", path, lineno);
            break;
        }
        for (int g = 0; g < 19; g++)
            if (fields[5 + g][0] == '1')
                als_catlist_add(c, fields[0], genres[g]);
    }
    fclose(f);
    return err;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* Copies an id map (the model owns its own). */
static void idmap_copy(als_idmap_t *dst, const als_idmap_t *src)
{
    als_idmap_init(dst);
    for (int32_t j = 0; j < src->n; j++)
        als_idmap_intern(dst, src->names[j], src->lens[j]);
}

/* Item categories of the model, indexed like the model's items. Only
 * categories of items that have factors are kept. */
static void attach_categories(als_model_t *m, const als_catlist_t *cats)
{
    const int32_t ni = m->items.n;
    int64_t *cnt = core_xcalloc((size_t)ni + 1, sizeof(int64_t));
    int32_t *item = core_xmalloc((cats && cats->n ? cats->n : 1) * sizeof(int32_t));
    size_t n = cats ? cats->n : 0;
    for (size_t j = 0; j < n; j++) {
        item[j] = als_idmap_find(&m->items, cats->item_ids[j], strlen(cats->item_ids[j]));
        if (item[j] >= 0)
            cnt[item[j] + 1]++;
    }
    for (int32_t i = 0; i < ni; i++)
        cnt[i + 1] += cnt[i];
    m->cat_ptr = core_xmalloc(((size_t)ni + 1) * sizeof(int64_t));
    m->cat_idx = core_xmalloc(((size_t)cnt[ni] + 1) * sizeof(int32_t));
    int64_t *fill = core_xmalloc(((size_t)ni + 1) * sizeof(int64_t));
    memcpy(fill, cnt, ((size_t)ni + 1) * sizeof(int64_t));
    /* Category names used by kept items, renumbered densely. */
    int32_t *remap = core_xmalloc(((cats ? cats->names.n : 0) + 1) * sizeof(int32_t));
    for (int32_t c = 0; cats && c < cats->names.n; c++)
        remap[c] = -1;
    for (size_t j = 0; j < n; j++) {
        if (item[j] < 0)
            continue;
        int32_t c = cats->cat[j];
        if (remap[c] < 0)
            remap[c] = als_idmap_intern(&m->cats, cats->names.names[c], cats->names.lens[c]);
        m->cat_idx[fill[item[j]]++] = remap[c];
    }
    /* Sort and drop duplicate categories per item. */
    int64_t w = 0;
    m->cat_ptr[0] = 0;
    for (int32_t i = 0; i < ni; i++) {
        int64_t b = cnt[i], e = cnt[i + 1];
        qsort(m->cat_idx + b, (size_t)(e - b), sizeof(int32_t), cmp_i32);
        int64_t start = w;
        for (int64_t j = b; j < e && w - start < ALS_MODEL_MAX_ITEM_CATS; j++)
            if (w == start || m->cat_idx[w - 1] != m->cat_idx[j])
                m->cat_idx[w++] = m->cat_idx[j];
        m->cat_ptr[i + 1] = w;
    }
    free(cnt);
    free(item);
    free(fill);
    free(remap);
}

static void metric_k(als_model_t *m, const char *base, int k, double v)
{
    char name[64];
    snprintf(name, sizeof(name), "%s@%d", base, k);
    als_model_set_metric(m, name, v);
}

int als_pipeline_train(const als_engine_t *e, const als_obs_t *obs, const als_catlist_t *cats,
                       int threads, als_progress_fn progress, void *opaque, als_model_t **out,
                       als_train_stats_t *stats, char *errstr, size_t errstr_size)
{
    int err;
    *out = NULL;
    memset(stats, 0, sizeof(*stats));
    als_params_t p = e->params;
    p.threads = threads;
    if ((err = als_params_check(&p, errstr, errstr_size)) != CORE_OK)
        return err;
    if (obs->n == 0)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "no training events");
    const als_reduce_t how = p.implicit ? ALS_REDUCE_SUM : ALS_REDUCE_LATEST;
    als_model_t *m = als_model_new();
    m->params = e->params;
    m->params.threads = 0;
    snprintf(m->engine, sizeof(m->engine), "%s", e->id);
    snprintf(m->app, sizeof(m->app), "%s", e->app);
    m->nevents = (int64_t)obs->n;
    als_csr_t ui = {0}, iu = {0}, te = {0};
    als_factors_t U = {0}, V = {0};
    uint8_t *sel = NULL;

    if (e->holdout > 0) {
        sel = core_xcalloc(obs->n, 1);
        als_split_mark(obs, ALS_SPLIT_RANDOM, e->holdout, p.seed, sel);
        if ((err = als_obs_build_sel(obs, how, sel, 0, &ui, &iu)) != CORE_OK ||
            (err = als_obs_build_sel(obs, ALS_REDUCE_LATEST, sel, 1, &te, NULL)) != CORE_OK) {
            core_errf(err, errstr, errstr_size, "out of memory building the holdout split");
            goto fail;
        }
        int64_t t0 = core_mono_us();
        if ((err = als_train(&p, &ui, &iu, &U, &V, NULL, progress, opaque, errstr,
                             errstr_size)) != CORE_OK)
            goto fail;
        stats->holdout_seconds = (double)(core_mono_us() - t0) / 1e6;
        if (!p.implicit) {
            als_rating_metrics_t rm;
            als_eval_rating(&ui, &iu, &te, &U, &V, &rm);
            if (rm.n > 0) {
                als_model_set_metric(m, "rmse", rm.rmse);
                als_model_set_metric(m, "mae", rm.mae);
            }
        } else {
            als_rank_metrics_t rk, pop;
            if ((err = als_eval_ranking(&ui, &iu, &te, &U, &V, e->query_num, 0.0f, threads, &rk)) ||
                (err = als_eval_ranking(&ui, &iu, &te, NULL, NULL, e->query_num, 0.0f, threads,
                                        &pop))) {
                core_errf(err, errstr, errstr_size, "out of memory evaluating");
                goto fail;
            }
            if (rk.users > 0) {
                metric_k(m, "precision", e->query_num, rk.precision);
                metric_k(m, "recall", e->query_num, rk.recall);
                metric_k(m, "map", e->query_num, rk.map);
                metric_k(m, "ndcg", e->query_num, rk.ndcg);
                metric_k(m, "popular_precision", e->query_num, pop.precision);
            }
        }
        als_factors_fini(&U);
        als_factors_fini(&V);
        als_csr_fini(&ui);
        als_csr_fini(&iu);
        als_csr_fini(&te);
    }
    if ((err = als_obs_build(obs, how, &ui, &iu)) != CORE_OK) {
        core_errf(err, errstr, errstr_size, "out of memory building the rating matrix");
        goto fail;
    }
    int64_t t0 = core_mono_us();
    if ((err = als_train(&p, &ui, &iu, &m->U, &m->V, NULL, progress, opaque, errstr,
                         errstr_size)) != CORE_OK)
        goto fail;
    stats->final_seconds = (double)(core_mono_us() - t0) / 1e6;
    stats->nnz = ui.nnz;
    stats->nusers = ui.nrows;
    stats->nitems = ui.ncols;
    idmap_copy(&m->users, &obs->users);
    idmap_copy(&m->items, &obs->items);
    /* seen = the training matrix's structure (values are not needed). */
    m->seen = ui;
    free(m->seen.val);
    m->seen.val = NULL;
    memset(&ui, 0, sizeof(ui));
    attach_categories(m, cats);
    if ((err = als_model_derive(m)) != CORE_OK) {
        core_errf(err, errstr, errstr_size, "out of memory");
        goto fail;
    }
    als_csr_fini(&iu);
    free(sel);
    *out = m;
    return CORE_OK;
fail:
    free(sel);
    als_factors_fini(&U);
    als_factors_fini(&V);
    als_csr_fini(&ui);
    als_csr_fini(&iu);
    als_csr_fini(&te);
    als_model_release(m);
    return err;
}

int als_gate_metric(const als_model_t *m, const char **name, double *value, bool *higher_better)
{
    if (als_model_get_metric(m, "rmse", value)) {
        *name = "rmse";
        *higher_better = false;
        return 1;
    }
    for (int j = 0; j < m->nmetrics; j++) {
        if (strncmp(m->metrics[j].name, "precision@", 10) == 0) {
            *name = m->metrics[j].name;
            *value = m->metrics[j].value;
            *higher_better = true;
            return 1;
        }
    }
    return 0;
}

bool als_gate_check(const als_model_t *cand, const als_model_t *deployed, double tol, char *why,
                    size_t why_size)
{
    const char *cn, *dn;
    double cv, dv;
    bool chb, dhb;
    if (!deployed) {
        snprintf(why, why_size, "no deployed model");
        return true;
    }
    if (!als_gate_metric(deployed, &dn, &dv, &dhb)) {
        snprintf(why, why_size, "deployed model v%lld has no quality metric",
                 (long long)deployed->version);
        return true;
    }
    if (!als_gate_metric(cand, &cn, &cv, &chb)) {
        snprintf(why, why_size,
                 "candidate has no quality metric (holdout disabled or too little data); "
                 "deployed v%lld has %s %.4f",
                 (long long)deployed->version, dn, dv);
        return false;
    }
    if (strcmp(cn, dn) != 0) {
        snprintf(why, why_size, "metric changed (%s → %s): nothing to compare", dn, cn);
        return true;
    }
    bool ok = chb ? cv >= dv * (1 - tol) : cv <= dv * (1 + tol);
    snprintf(why, why_size, "%s %.4f vs deployed v%lld %.4f (tolerance %.1f%%, %s is better): %s",
             cn, cv, (long long)deployed->version, dv, tol * 100, chb ? "higher" : "lower",
             ok ? "promote" : "worse, keeping the deployed model");
    return ok;
}
