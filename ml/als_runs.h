/*
 * als_runs — the record of training runs, kept in the event store's kv
 * space next to the models they produced:
 *   ml/runs/<app>/<engine>/<20-digit start ms>   run JSON (als_run_t)
 * `eddy train` writes one per run, whatever happened (promoted, kept by the
 * quality gate, failed). Retraining *schedules* are not here: they are the
 * driver's scheduled commands (runtime/rt_sched.h), whose run records carry
 * the same facts from `eddy train --result-json`.
 *
 * Threads: plain functions; store_t is thread-safe.
 */
#ifndef EDDY_ALS_RUNS_H
#define EDDY_ALS_RUNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ml/als_model.h"
#include "storage/store.h"

/* als_run_list returns at most this many (it keeps a ring of the newest). */
#define ALS_RUNS_MAX_LISTED 1000

typedef struct als_run {
    char app[ALS_MODEL_MAX_NAME + 1];
    char engine[ALS_MODEL_MAX_NAME + 1];
    int64_t start_ms, end_ms;
    int64_t events;       /* events read */
    int64_t ratings;      /* distinct user-item pairs trained on */
    bool promoted;
    int64_t version;      /* the promoted version, or the one kept */
    char trigger[16];     /* "manual" | "schedule" (--trigger) */
    char reason[512];     /* gate verdict or error */
    bool failed;
    int nmetrics;
    als_metric_t metrics[ALS_MODEL_MAX_METRICS];
} als_run_t;

/* The run as a JSON object (new reference; the shape `eddy train
 * --result-json` writes and the store keeps): app, engine, startMs, endMs,
 * events, ratings, promoted, version, trigger, reason, failed, metrics{}. */
json_t *als_run_json(const als_run_t *r);
int als_run_record(store_t *st, const als_run_t *r);
/* Runs of one (app, engine), newest first, at most max (capped at
 * ALS_RUNS_MAX_LISTED). free() the array. */
int als_run_list(store_t *st, const char *app, const char *engine, size_t max, als_run_t **out,
                 size_t *n);

#endif
