/*
 * als_eval — holdout splits and quality metrics for trained factors.
 *
 * Splits work on raw observations (als_obs_t) and keep one id space, so the
 * train and test matrices have the same shape:
 *   ALS_SPLIT_RANDOM  each (user, item) PAIR goes to test with probability
 *                     `test_frac`, decided by a hash of (seed, user, item), so
 *                     all duplicates of a pair land on the same side and the
 *                     split is reproducible for a seed;
 *   ALS_SPLIT_TIME    the latest `test_frac` of observations by event time go
 *                     to test (ties at the cut go to test), as a deployed
 *                     model is judged: trained on the past, asked about later.
 *
 * Metrics:
 *   rating   RMSE and MAE over test entries whose user and item both have
 *            training data (cold pairs are counted and skipped, like Spark's
 *            coldStartStrategy "drop").
 *   ranking  per test user with training data and at least one relevant test
 *            item (value > rel_min): top-k of all items minus the user's
 *            training items, then precision@k = hits/k, recall@k =
 *            hits/|rel|, AP@k = Σ_hit precision@pos / min(k, |rel|),
 *            NDCG@k = DCG/IDCG with binary gains and log2(pos+1) discount;
 *            each averaged over users.
 *   baseline most-popular: the same ranking with score = number of training
 *            users of the item (pass U = V = NULL).
 *
 * Threads: als_eval_ranking runs an OpenMP loop over users; sums are taken
 * in user order, so results do not depend on the thread count.
 */
#ifndef EDDY_ALS_EVAL_H
#define EDDY_ALS_EVAL_H

#include <stdint.h>

#include "ml/als.h"
#include "ml/als_data.h"

typedef enum { ALS_SPLIT_RANDOM = 0, ALS_SPLIT_TIME = 1 } als_split_t;

/* Marks each observation of o as test (1) or train (0) into sel[o->n]. */
void als_split_mark(const als_obs_t *o, als_split_t kind, double test_frac, uint64_t seed,
                    uint8_t *sel);

typedef struct als_rating_metrics {
    double rmse;
    double mae;
    int64_t n;       /* test entries scored */
    int64_t skipped; /* cold user or item */
} als_rating_metrics_t;

void als_eval_rating(const als_csr_t *train_ui, const als_csr_t *train_iu,
                     const als_csr_t *test_ui, const als_factors_t *U, const als_factors_t *V,
                     als_rating_metrics_t *out);

typedef struct als_rank_metrics {
    int k;
    double precision;
    double recall;
    double map;
    double ndcg;
    int64_t users; /* users evaluated */
} als_rank_metrics_t;

/* U, V NULL = most-popular baseline. threads 0 = OpenMP default.
 * Returns 0 or CORE_ERR_NOMEM. */
int als_eval_ranking(const als_csr_t *train_ui, const als_csr_t *train_iu,
                     const als_csr_t *test_ui, const als_factors_t *U, const als_factors_t *V,
                     int k, float rel_min, int threads, als_rank_metrics_t *out);

/* Metrics for one ranked list (exposed for hand-computed tests): ranked[0..n)
 * item ids best first, rel[0..nrel) sorted relevant ids, k cut-off. */
void als_rank_one(const int32_t *ranked, int n, const int32_t *rel, int nrel, int k,
                  double *prec, double *recall, double *ap, double *ndcg);

#endif
