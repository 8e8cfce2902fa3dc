/*
 * als_serve — the query server (`eddy serve`): PredictionIO's engine-server
 * API on core_http.
 *
 * Routes
 *   POST /queries.json   als_query.h; 200 answer, 400 {"message"} for bad
 *                        input, 503 when no model is deployed yet
 *   GET  /               deployed model as JSON: app, engine, version,
 *                        trainedAt, params, metrics, counts, server uptime
 *                        (PredictionIO shows an HTML page here; clients only
 *                        read /queries.json, so we answer JSON)
 *   POST /reload         loads the newest model through the loader callback
 *                        and swaps it in; 200 {"message","version"}
 *   GET  /metrics        Prometheus text: core_http's per-route counters and
 *                        latency histograms, plus eddy_ml_queries_total{kind,
 *                        status}, eddy_ml_query_duration_seconds{kind}
 *                        histogram, eddy_ml_model_version,
 *                        eddy_ml_model_age_seconds, eddy_ml_reloads_total
 *
 * Model swap without blocking queries
 *   The current model is an atomic pointer; each model is refcounted
 *   (als_model.h). A query pins the model with a hazard pointer only for the
 *   instant it takes to add a reference (load pointer, publish it in a free
 *   hazard slot, re-check the pointer, keep, clear the slot), then runs
 *   without any shared state and releases its reference at the end. A swap
 *   exchanges the pointer, waits until no hazard slot still shows the old
 *   model (a few instructions' window), and drops the server's reference:
 *   the old model is freed by whoever releases it last — the swap, or the
 *   last query still running on it. Queries never take a lock and never
 *   wait for a load; a query sees one whole model, never a mix.
 *
 * Threads: handlers run on core_http's worker threads. als_server_swap may
 * be called from any thread (reload runs it on a worker). start/stop/free on
 * one controlling thread.
 */
#ifndef EDDY_ALS_SERVE_H
#define EDDY_ALS_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ml/als_model.h"

/* Loads the newest model for the server (e.g. from the store). Returns 0 and
 * a new reference in *out, CORE_ERR_NOT_FOUND when there is none, or another
 * error with errstr. Called on a worker thread during POST /reload. */
typedef int (*als_model_loader_fn)(void *opaque, als_model_t **out, char *errstr,
                                   size_t errstr_size);

typedef struct als_server_conf {
    const char *host;
    int port;                 /* 0 = any free port (als_server_port) */
    int threads;              /* HTTP worker threads; 0 = online CPUs */
    bool unknown_popular;     /* engine serving.params.unknownUser */
    als_model_loader_fn loader;
    void *loader_opaque;
} als_server_conf_t;

typedef struct als_server als_server_t;

/* Creates and starts the server. model may be NULL (queries answer 503 until
 * a reload finds one); the server takes the caller's reference. */
int als_server_start(const als_server_conf_t *conf, als_model_t *model, als_server_t **out,
                     char *errstr, size_t errstr_size);
int als_server_port(const als_server_t *s);
/* Installs a new model (takes the reference) and releases the old one once
 * no query can still be acquiring it. */
void als_server_swap(als_server_t *s, als_model_t *model);
/* Version of the deployed model (0 = none). */
int64_t als_server_version(als_server_t *s);
/* The model description GET / shows (new JSON object). */
json_t *als_model_info_json(const als_model_t *m);
/* Stops the HTTP server, releases the model, frees. NULL is a no-op. */
void als_server_free(als_server_t *s);

#endif
