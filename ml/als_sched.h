/*
 * als_sched — retraining schedules and the record of training runs.
 *
 * A schedule says "train (app, engine id) every N or at these cron times".
 * It is kept in the event store's kv space with the engine.json TEXT (not a
 * path), so whichever process runs schedules needs only the store:
 *   ml/sched/<app>/<engine>                 schedule JSON (als_sched_t)
 *   ml/runs/<app>/<engine>/<20-digit start> run JSON (als_run_t), one per
 *                                           `eddy train` or scheduled run
 * `eddy schedule run` is the runner: it wakes every second, trains what is
 * due (one at a time, in the runner's process), records each run and moves
 * the schedule's next time. A run that fails is recorded with its error and
 * the schedule still moves on (no retry storm). Servers pick promoted models
 * up with `eddy serve --reload-every` (or POST /reload).
 *
 * Cron: five fields (minute hour day-of-month month day-of-week), each "*",
 * a number, a range a-b, a list, or a step (*\/n, a-b/n); UTC. When both
 * day fields are restricted, a day matching either runs (Vixie cron). No
 * names (JAN, MON) and no @-macros except @hourly/@daily/@weekly.
 *
 * Threads: plain functions; store_t is thread-safe.
 */
#ifndef EDDY_ALS_SCHED_H
#define EDDY_ALS_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ml/als_model.h"
#include "storage/store.h"

#define ALS_SCHED_MIN_EVERY_MS 1000LL            /* a 0 or tiny period would spin */
#define ALS_SCHED_MAX_ENGINE_JSON (256 * 1024)   /* stored engine.json text */
#define ALS_SCHED_MAX_RUNS_LISTED 1000

typedef struct als_cron {
    uint64_t minute;  /* bit m: minute m (0..59) */
    uint32_t hour;    /* 0..23 */
    uint32_t dom;     /* 1..31 */
    uint16_t month;   /* 1..12 */
    uint8_t dow;      /* 0..6, Sunday = 0 (7 accepted as Sunday) */
    bool dom_any, dow_any;
} als_cron_t;

/* Parses a cron expression; 0 or CORE_ERR_INVAL with the bad field. */
int als_cron_parse(const char *expr, als_cron_t *c, char *errstr, size_t errstr_size);
/* The first matching minute strictly after after_ms (UTC), in ms; -1 when
 * none within 5 years (e.g. "0 0 31 2 *"). */
int64_t als_cron_next(const als_cron_t *c, int64_t after_ms);

typedef struct als_sched {
    char app[ALS_MODEL_MAX_NAME + 1];
    char engine[ALS_MODEL_MAX_NAME + 1];
    int64_t every_ms;  /* 0 when cron is used */
    char cron[128];    /* "" when every_ms is used */
    double tolerance;  /* quality gate */
    int64_t next_ms;   /* next due time */
    int64_t created_ms;
    char *engine_json; /* owned: engine.json text */
} als_sched_t;

void als_sched_fini(als_sched_t *s);
/* Next due time after now for this schedule (every: now + every). */
int64_t als_sched_next(const als_sched_t *s, int64_t now_ms);

int als_sched_put(store_t *st, const als_sched_t *s, char *errstr, size_t errstr_size);
int als_sched_delete(store_t *st, const char *app, const char *engine); /* NOT_FOUND */
/* All schedules, by key; free each with als_sched_fini, the array with free(). */
int als_sched_list(store_t *st, als_sched_t **out, size_t *n);

typedef struct als_run {
    char app[ALS_MODEL_MAX_NAME + 1];
    char engine[ALS_MODEL_MAX_NAME + 1];
    int64_t start_ms, end_ms;
    int64_t events;       /* events read */
    int64_t ratings;      /* distinct user-item pairs trained on */
    bool promoted;
    int64_t version;      /* the promoted version, or the one kept */
    char trigger[16];     /* "manual" | "schedule" */
    char reason[512];     /* gate verdict or error */
    bool failed;
    int nmetrics;
    als_metric_t metrics[ALS_MODEL_MAX_METRICS];
} als_run_t;

int als_run_record(store_t *st, const als_run_t *r);
/* Runs of one (app, engine), newest first, at most max. free() the array. */
int als_run_list(store_t *st, const char *app, const char *engine, size_t max, als_run_t **out,
                 size_t *n);

#endif
