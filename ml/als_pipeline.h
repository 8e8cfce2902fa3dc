/*
 * als_pipeline — observations → evaluated, servable model; and the quality
 * gate that decides whether a new model replaces the deployed one.
 *
 * Training (als_pipeline_train):
 *   1. reduce duplicates: explicit = latest rating wins, implicit = sum of
 *      weights (als_data.h);
 *   2. if the engine's holdout > 0: hold out a seeded random fraction of
 *      (user, item) pairs, train on the rest and measure it
 *        explicit: rmse, mae (gate metric: rmse, lower is better)
 *        implicit: precision@k, recall@k, map@k, ndcg@k and the most-popular
 *                  baseline's precision@k (gate metric: precision@k, higher
 *                  is better);
 *   3. train again on everything: that is the model served (the holdout
 *      only measures; the deployed model should not be blind to 10% of the
 *      data).
 * The metrics of step 2 are stored in the model, so a later run compares
 * like with like: both numbers come from the same procedure on their own
 * data at their time.
 *
 * Gate: promote when there is no deployed model, when the deployed one used
 * a different gate metric (e.g. the engine switched explicit ↔ implicit),
 * or when the candidate is not worse than the deployed by more than `tol`
 * relative (rmse ≤ old·(1+tol); precision ≥ old·(1−tol)).
 *
 * Threads: OpenMP inside (threads 0 = default). Ownership: the model
 * returned has one reference for the caller.
 */
#ifndef EDDY_ALS_PIPELINE_H
#define EDDY_ALS_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "ml/als_data.h"
#include "ml/als_engine.h"
#include "ml/als_model.h"

/* (item, category) pairs gathered from item `$set` properties. */
typedef struct als_catlist {
    als_idmap_t names;
    char **item_ids; /* owned */
    int32_t *cat;
    size_t n, cap;
} als_catlist_t;

void als_catlist_init(als_catlist_t *c);
void als_catlist_fini(als_catlist_t *c);
void als_catlist_add(als_catlist_t *c, const char *item_id, const char *category);

/* Reads a MovieLens u.item file (id|title|date|video|url|19 genre flags) and
 * adds each item's genres as categories. Returns 0, an errno value, or
 * CORE_ERR_MALFORMED with the line in errstr. */
int als_load_movielens_items(als_catlist_t *c, const char *path, char *errstr,
                             size_t errstr_size);

typedef struct als_train_stats {
    double holdout_seconds; /* training on the split */
    double final_seconds;   /* training on everything */
    int64_t nnz;
    int32_t nusers;
    int32_t nitems;
} als_train_stats_t;

/* Trains per the engine. progress (may be NULL) sees every iteration of both
 * runs (the final run's iterations are reported after the holdout's).
 * Returns 0, CORE_ERR_INVAL (no data, bad params) or CORE_ERR_NOMEM. */
int als_pipeline_train(const als_engine_t *e, const als_obs_t *obs, const als_catlist_t *cats,
                       int threads, als_progress_fn progress, void *opaque, als_model_t **out,
                       als_train_stats_t *stats, char *errstr, size_t errstr_size);

/* The gate metric of a model: its name and whether higher is better.
 * Returns 0 when the model has none (trained without holdout). */
int als_gate_metric(const als_model_t *m, const char **name, double *value, bool *higher_better);

/* Returns true to promote; why gets one line either way. */
bool als_gate_check(const als_model_t *cand, const als_model_t *deployed, double tol, char *why,
                    size_t why_size);

#endif
