/*
 * store_http — the PredictionIO-compatible Event API over core_http
 * (compat-apis.md section A), plus Eddy's internal store endpoint.
 *
 * Public endpoints (all answers JSON, errors {"message": ...}):
 *   GET    /                          {"status":"alive"}, no auth
 *   POST   /events.json               one event   -> 201 {"eventId":...}
 *   GET    /events.json               filtered read (A.6) -> 200 [...] | 404
 *   GET    /events/<id>.json          one event | 404
 *   DELETE /events/<id>.json          200 {"message":"Found"} | 404
 *   POST   /batch/events.json         <= 50 events -> 200 [per-item status]
 *   GET    /stats.json                404 with PIO's "--stats" message
 *   GET    /metrics                   Prometheus text (Eddy extension)
 *   GET    /entities/<type>/<id>.json an entity's aggregated properties
 *                                     ($set/$unset/$delete, A.7) | 404
 *                                     (Eddy extension; untilTime optional)
 * Every /events* and /batch* request needs accessKey=KEY (query) or, when
 * absent, "Authorization: Basic base64(KEY:)"; channel=NAME picks a named
 * channel (query form only, as in PIO). Auth failures are 401 with PIO's
 * exact messages; a key limited to some events answers 403
 * "<event> events are not allowed" (per item in a batch).
 *
 * Decisions (where PIO is odd, compat-apis.md §0 and A.6):
 *   - GET /events.json with no match answers 404 {"message":"Not Found"}
 *     as PIO does (clients test for it).
 *   - Bad query parameters (unparseable time, non-integer limit, bad boolean,
 *     reversed without both entity fields) answer 400, not PIO's 500.
 *   - `event` may be repeated (any of the names); PIO takes one.
 *   - startTime/untilTime with an unencoded '+' (decoded as a space before
 *     the offset) are read as '+' rather than refused.
 *   - A body with a Content-Type other than application/json gets 415 as in
 *     PIO; a body with no Content-Type is accepted as JSON.
 *   - A batch whose storage write fails answers HTTP 500 (PIO: 200 with a
 *     single status object).
 *   - Idempotency is the store's rule (store.h): a replay answers 201 with the
 *     same id; the same id with other content answers 409.
 *
 * Internal endpoint (not part of the PIO API; see store_remote.h):
 *   POST /internal/store  one remote store operation; needs the header
 *   "X-Eddy-Token: <DIR/internal.token>", else 401. Only started when a
 *   token is configured.
 *
 * Threads: handlers run on core_http's worker threads; store_t is
 * thread-safe, so requests proceed concurrently and concurrent synced writes
 * share fsyncs (RocksDB group commit). More HTTP threads = more requests in
 * one group; the event server uses 8 per core by default: a thread blocked
 * in a synced write also holds up the other connections of its epoll set,
 * and 16 connections on 2 cores measured 20-30% more events/s with 16
 * threads than with 8 (--sync always).
 * Ownership: the store is borrowed; it must outlive store_http_free.
 */
#ifndef EDDY_STORE_HTTP_H
#define EDDY_STORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core_http.h"
#include "storage/store.h"

/* PIO refuses batches of more than 50 events (compat-apis.md A.6). */
#define STORE_HTTP_BATCH_MAX 50
/* Internal token: random, URL-safe text. */
#define STORE_HTTP_TOKEN_MAX 64

typedef struct store_http store_http_t;

typedef struct store_http_conf {
    const char *host;     /* default "127.0.0.1" */
    int port;             /* 0 = any free port */
    int threads;          /* 0 = 8 x online CPUs */
    size_t max_body;      /* 0 = CORE_HTTP_DEFAULT_MAX_BODY */
    const char *token;    /* internal endpoint token; NULL = endpoint off */
} store_http_conf_t;

/* Starts serving st. Returns 0 or an error with a message (bind failure). */
int store_http_start(store_t *st, const store_http_conf_t *conf, store_http_t **out,
                     char *errstr, size_t errstr_size);
int store_http_port(const store_http_t *sh);
/* Stops serving (waits for running requests) and frees. NULL is a no-op. */
void store_http_free(store_http_t *sh);

#endif
