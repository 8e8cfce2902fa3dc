/* als_eval — see als_eval.h. */
#include "ml/als_eval.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "ml/als_score.h"

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void als_split_mark(const als_obs_t *o, als_split_t kind, double test_frac, uint64_t seed,
                    uint8_t *sel)
{
    if (o->n == 0)
        return;
    if (kind == ALS_SPLIT_RANDOM) {
        uint64_t cut = test_frac >= 1 ? UINT64_MAX : (uint64_t)(test_frac * 18446744073709551615.0);
        for (size_t j = 0; j < o->n; j++) {
            uint64_t h = mix64(seed ^ mix64(((uint64_t)(uint32_t)o->u[j] << 32) |
                                            (uint32_t)o->i[j]));
            sel[j] = h < cut;
        }
        return;
    }
    int64_t *ts = core_xmalloc(o->n * sizeof(int64_t));
    memcpy(ts, o->t, o->n * sizeof(int64_t));
    qsort(ts, o->n, sizeof(int64_t), cmp_i64);
    size_t ntest = (size_t)((double)o->n * test_frac + 0.5);
    int64_t cutoff = ntest == 0 ? INT64_MAX : ts[o->n - ntest];
    for (size_t j = 0; j < o->n; j++)
        sel[j] = o->t[j] >= cutoff;
    free(ts);
}

void als_eval_rating(const als_csr_t *train_ui, const als_csr_t *train_iu,
                     const als_csr_t *test_ui, const als_factors_t *U, const als_factors_t *V,
                     als_rating_metrics_t *out)
{
    double se = 0, ae = 0;
    int64_t n = 0, skipped = 0;
    for (int32_t u = 0; u < test_ui->nrows; u++) {
        int cold_user = u >= train_ui->nrows || train_ui->ptr[u + 1] == train_ui->ptr[u];
        for (int64_t e = test_ui->ptr[u]; e < test_ui->ptr[u + 1]; e++) {
            int32_t i = test_ui->idx[e];
            if (cold_user || i >= train_iu->nrows || train_iu->ptr[i + 1] == train_iu->ptr[i]) {
                skipped++;
                continue;
            }
            double pred = als_dot(als_row(U, u), als_row(V, i), U->stride);
            double d = pred - test_ui->val[e];
            se += d * d;
            ae += fabs(d);
            n++;
        }
    }
    out->n = n;
    out->skipped = skipped;
    out->rmse = n ? sqrt(se / (double)n) : NAN;
    out->mae = n ? ae / (double)n : NAN;
}

void als_rank_one(const int32_t *ranked, int n, const int32_t *rel, int nrel, int k,
                  double *prec, double *recall, double *ap, double *ndcg)
{
    int hits = 0;
    double sum_prec = 0, dcg = 0, idcg = 0;
    for (int p = 0; p < n && p < k; p++) {
        /* rel is sorted: binary search. */
        int lo = 0, hi = nrel;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (rel[mid] < ranked[p])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < nrel && rel[lo] == ranked[p]) {
            hits++;
            sum_prec += (double)hits / (p + 1);
            dcg += 1.0 / log2(p + 2.0);
        }
    }
    for (int p = 0; p < nrel && p < k; p++)
        idcg += 1.0 / log2(p + 2.0);
    *prec = (double)hits / k;
    *recall = nrel ? (double)hits / nrel : 0;
    *ap = nrel ? sum_prec / (nrel < k ? nrel : k) : 0;
    *ndcg = idcg > 0 ? dcg / idcg : 0;
}

int als_eval_ranking(const als_csr_t *train_ui, const als_csr_t *train_iu,
                     const als_csr_t *test_ui, const als_factors_t *U, const als_factors_t *V,
                     int k, float rel_min, int threads, als_rank_metrics_t *out)
{
    const int32_t nu = test_ui->nrows, ni = train_iu->nrows;
    memset(out, 0, sizeof(*out));
    out->k = k;
    double *per = core_trymalloc(((size_t)nu + 1) * 4 * sizeof(double));
    uint8_t *used = core_trymalloc((size_t)nu + 1);
    float *pop = core_trymalloc(((size_t)ni + 1) * sizeof(float));
    if (!per || !used || !pop) {
        free(per);
        free(used);
        free(pop);
        return CORE_ERR_NOMEM;
    }
    for (int32_t i = 0; i < ni; i++)
        pop[i] = (float)(train_iu->ptr[i + 1] - train_iu->ptr[i]);
    if (threads <= 0)
        threads = omp_get_max_threads();
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        float *scores = core_trymalloc(((size_t)ni + 1) * sizeof(float));
        als_scored_t *heap = core_trymalloc(((size_t)k + 1) * sizeof(als_scored_t));
        int32_t *ranked = core_trymalloc(((size_t)k + 1) * sizeof(int32_t));
        int32_t *rel = core_trymalloc(((size_t)ni + 1) * sizeof(int32_t));
        if (!scores || !heap || !ranked || !rel) {
            failed = 1;
        } else {
#pragma omp for schedule(dynamic, 16)
            for (int32_t u = 0; u < nu; u++) {
                used[u] = 0;
                if (u >= train_ui->nrows || train_ui->ptr[u + 1] == train_ui->ptr[u])
                    continue;
                int nrel = 0;
                for (int64_t e = test_ui->ptr[u]; e < test_ui->ptr[u + 1]; e++)
                    if (test_ui->val[e] > rel_min && test_ui->idx[e] < ni)
                        rel[nrel++] = test_ui->idx[e];
                if (nrel == 0)
                    continue;
                if (U)
                    als_score_all(als_row(U, u), V, scores);
                else
                    memcpy(scores, pop, (size_t)ni * sizeof(float));
                /* Exclude what the user already has in training (its row is
                 * sorted, so walk it alongside the items). */
                const int64_t b = train_ui->ptr[u], eend = train_ui->ptr[u + 1];
                int64_t e = b;
                als_topk_t t;
                als_topk_init(&t, heap, k);
                for (int32_t i = 0; i < ni; i++) {
                    while (e < eend && train_ui->idx[e] < i)
                        e++;
                    if (e < eend && train_ui->idx[e] == i)
                        continue;
                    als_topk_push(&t, i, scores[i]);
                }
                als_topk_sort(&t);
                for (int32_t j = 0; j < t.n; j++)
                    ranked[j] = t.h[j].item;
                double *m = per + (size_t)u * 4;
                als_rank_one(ranked, t.n, rel, nrel, k, &m[0], &m[1], &m[2], &m[3]);
                used[u] = 1;
            }
        }
        free(scores);
        free(heap);
        free(ranked);
        free(rel);
    }
    if (!failed) {
        for (int32_t u = 0; u < nu; u++) {
            if (!used[u])
                continue;
            const double *m = per + (size_t)u * 4;
            out->precision += m[0];
            out->recall += m[1];
            out->map += m[2];
            out->ndcg += m[3];
            out->users++;
        }
        if (out->users) {
            out->precision /= (double)out->users;
            out->recall /= (double)out->users;
            out->map /= (double)out->users;
            out->ndcg /= (double)out->users;
        }
    }
    free(per);
    free(used);
    free(pop);
    return failed ? CORE_ERR_NOMEM : CORE_OK;
}
