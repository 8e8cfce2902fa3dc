/*
 * als_store — the recommender's use of the event store (storage/store.h):
 * training input from events, and versioned model blobs in the kv space.
 *
 * Input: events of the app's default channel with entityType "user" and
 * targetEntityType "item" whose name is in the engine's eventWeights; weight
 * = properties.rating (explicit "rate") or the configured constant. Item
 * categories come from the items' aggregated `$set` properties
 * ("categories": array of strings), read in the same run.
 *
 * Models (kv keys; versions are per (app, engine id), starting at 1):
 *   ml/als/<app>/<engine>/latest                 u64 BE: the deployed version
 *   ml/als/<app>/<engine>/v/<20-digit v>/meta    u32 chunks | u64 length | u32 CRC-32C
 *   ml/als/<app>/<engine>/v/<20-digit v>/c/<6-digit n>   ≤ ALS_STORE_CHUNK bytes
 * A save writes the chunks, the meta and the new "latest" in ONE atomic
 * store batch, so a reader (any server, any process) sees either the old
 * model or the whole new one. The same batch deletes the version
 * ALS_STORE_KEEP saves back (older ones were deleted by earlier saves).
 * Version = latest + 1: one trainer per (app, engine) at a time (the runtime's
 * schedule runs them one after the other); two concurrent trainers would
 * both write the same version and the last commit wins — harmless, as each
 * writes a whole, valid model.
 *
 * Threads: store_t is thread-safe, so are these. Nothing here holds the
 * store open: callers open, call, close (so `eddy serve` never keeps a
 * RocksDB directory locked against the event server).
 */
#ifndef EDDY_ALS_STORE_H
#define EDDY_ALS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ml/als_data.h"
#include "ml/als_engine.h"
#include "ml/als_model.h"
#include "ml/als_pipeline.h"
#include "storage/store.h"

#define ALS_STORE_CHUNK (64u << 20) /* < STORE_KV_VALUE_MAX */
#define ALS_STORE_KEEP 3            /* versions kept per (app, engine) */
#define ALS_STORE_MAX_MODEL (8ull << 30) /* a meta claiming more is corrupt */

typedef struct als_load_stats {
    int64_t events;        /* events read */
    int64_t skipped;       /* events without a usable rating/weight */
    int64_t items_with_categories;
} als_load_stats_t;

/* Reads the app's training events (and item categories) into obs/cats
 * (initialised by the caller). CORE_ERR_NOT_FOUND: no such app. */
int als_store_load_events(store_t *s, const char *app, const als_engine_t *e, als_obs_t *obs,
                          als_catlist_t *cats, als_load_stats_t *st, char *errstr,
                          size_t errstr_size);

/* Version of the deployed model (0 = none). */
int als_store_latest_version(store_t *s, const char *app, const char *engine, int64_t *version);
/* Loads the deployed model (new reference). CORE_ERR_NOT_FOUND when none. */
int als_store_model_load(store_t *s, const char *app, const char *engine, als_model_t **out,
                         char *errstr, size_t errstr_size);
/* Assigns m->version = latest + 1, stores m and makes it the deployed one,
 * atomically. */
int als_store_model_save(store_t *s, als_model_t *m, char *errstr, size_t errstr_size);

#endif
