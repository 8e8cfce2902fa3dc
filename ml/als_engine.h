/*
 * als_engine — engine.json, in PredictionIO's shape (compat-apis.md B.3).
 *
 *   {
 *     "id": "default",                      names the variant; models are
 *                                           versioned per (app, id)
 *     "engineFactory": "...",               accepted, ignored (one template)
 *     "datasource": { "params": {
 *         "appName": "MyApp",
 *         "eventWeights": {"rate": null, "buy": 4.0},   [OURS] null = use
 *                                           properties.rating
 *         "evalParams": {"holdout": 0.1, "queryNum": 10} } },
 *     "algorithms": [ { "name": "als", "params": {
 *         "rank": 20, "numIterations": 15, "lambda": 0.12, "alpha": 1.0,
 *         "implicitPrefs": false, "seed": 42,
 *         "solver": "cholesky" | "cg", "cgSteps": 3 } } ],   [OURS] solver
 *     "serving": { "params": { "unknownUser": "popular" | "empty" } }
 *   }
 * Every field is optional. Defaults (als_params_default) were chosen on
 * ml-100k. Without "seed" we use 42, not the clock as PredictionIO does:
 * retraining the same data gives the same model.
 * Default events: explicit {"rate": rating, "buy": 4.0} (the Recommendation
 * template); implicit {"view": 1, "buy": 4} summed per (user, item).
 * Unknown keys inside algorithms[0].params are an error (a typo must not
 * silently train with defaults); other blocks tolerate extra keys.
 */
#ifndef EDDY_ALS_ENGINE_H
#define EDDY_ALS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "ml/als.h"
#include "ml/als_model.h"

#define ALS_ENGINE_MAX_EVENTS 16
#define ALS_ENGINE_MAX_FILE (1 << 20) /* engine.json larger than this is refused */

typedef struct als_event_weight {
    char name[64];
    bool use_rating; /* weight = properties.rating */
    double weight;
} als_event_weight_t;

typedef struct als_engine {
    char id[ALS_MODEL_MAX_NAME + 1];
    char app[ALS_MODEL_MAX_NAME + 1]; /* "" = not given */
    als_params_t params;
    int nevents;
    als_event_weight_t events[ALS_ENGINE_MAX_EVENTS];
    double holdout;       /* fraction held out for the quality gate (0 = none) */
    int query_num;        /* k of the ranking metrics */
    bool unknown_popular; /* unknown user → popular items (else empty) */
} als_engine_t;

void als_engine_default(als_engine_t *e);
/* Parses engine.json text. 0 or CORE_ERR_INVAL with a message naming the field. */
int als_engine_parse(const char *text, size_t len, als_engine_t *e, char *errstr,
                     size_t errstr_size);
/* Reads and parses a file (errno values for open/read errors). */
int als_engine_load(const char *path, als_engine_t *e, char *errstr, size_t errstr_size);

#endif
