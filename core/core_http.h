/*
 * core_http — Eddy's one HTTP server layer (DESIGN-NOTES §4, ARCHITECTURE §4).
 *
 * Used by every role that speaks HTTP: the broker's lag/metrics port, the
 * event server, the schema registry, the runtime driver API and the ML query
 * server. It wraps libmicrohttpd (Debian's libmicrohttpd-dev) and adds what
 * all of them need: a router, a request object with the whole body collected
 * under a limit, JSON/text/error replies, and per-route Prometheus metrics.
 *
 * Design
 *   - libmicrohttpd runs its own threads: a pool of N threads, each with its
 *     own epoll set and its own share of the connections (MHD's "internal
 *     epoll thread pool"). N defaults to the number of online CPUs. HTTP/1.1
 *     keep-alive and pipelining are MHD's. Roles whose handlers block (the
 *     event server waits for a synced WAL write) ask for more threads, so
 *     concurrent requests reach the store together and share one fsync
 *     (group commit) instead of queueing behind each other.
 *   - Routes are "METHOD PATTERN". A pattern is a literal path with zero or
 *     more captures written <name>; a capture matches one or more characters
 *     other than '/' and stops at the literal text that follows it in the
 *     pattern, so "/events/<id>.json" matches "/events/abc.json" with
 *     id=abc. The first matching route wins (register specific ones first).
 *     A path that matches a route with another method answers 405 with an
 *     Allow header; no matching path answers 404 {"message":"Not Found"}.
 *     HEAD is served by the GET route (MHD sends the headers only). Paths
 *     and captures arrive percent-decoded; a route may set its own body
 *     limit (core_http_route_ex).
 *   - The body is collected whole before the handler runs. A request whose
 *     Content-Length exceeds the server's body limit is answered 413 at once,
 *     before any body byte is read (MHD then closes that connection rather
 *     than read the excess). A chunked body that grows past the limit is
 *     discarded as it arrives (never buffered) and answered 413 when it ends;
 *     past CORE_HTTP_DISCARD_FACTOR times the limit the connection is dropped.
 *
 * Invariants
 *   - Every request gets exactly one response. A handler that returns
 *     without replying produces 500 {"message":"handler did not reply"}.
 *   - The route table is frozen by core_http_start; it is read without locks.
 *   - Metrics are lock-free atomic counters, counted when the reply is
 *     queued (latency = request headers to reply ready); reading them for
 *     export is racy-but-monotonic (each counter exact, a scrape not a
 *     snapshot). Requests dropped before a reply count as status "other".
 *
 * Threads
 *   - Handlers run on MHD's worker threads, concurrently with each other
 *     (possibly the same route at once). Anything a handler reaches through
 *     its user pointer must be thread-safe. A handler must not call
 *     core_http_stop on its own server.
 *   - core_http_new/route/start/stop/free: one controlling thread.
 *   - core_http_metrics_write: any thread, any time between start and free.
 *
 * Ownership
 *   - core_http_req_t and everything reached through it (path, params,
 *     query values, header values, body) are borrowed: valid until the
 *     handler returns. core_http_req_alloc/strdup memory lives in a
 *     per-request arena freed in one go when the request ends, so a handler
 *     may allocate scratch freely and free nothing.
 *   - Reply functions copy the body (or take the json_t reference) before
 *     returning; the caller keeps ownership of what it passed, except
 *     core_http_reply_json, which steals the reference (pass json_pack(...)
 *     directly).
 */
#ifndef EDDY_CORE_HTTP_H
#define EDDY_CORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/core_buf.h"

/* Default body limit: 4 MiB covers a full PredictionIO batch (50 events) with
 * generous properties while keeping a single request's memory bounded. */
#define CORE_HTTP_DEFAULT_MAX_BODY (4u << 20)
/* Chunked bodies that overflow are read and dropped up to this many times the
 * limit, to be able to answer 413; beyond, the connection is closed. */
#define CORE_HTTP_DISCARD_FACTOR 4
/* Route table size: fixed, because routes are declared by code, not input. */
#define CORE_HTTP_MAX_ROUTES 64
/* Captures per route pattern. */
#define CORE_HTTP_MAX_PARAMS 4

typedef struct core_http core_http_t;
typedef struct core_http_req core_http_req_t;

/* A handler. It must answer with exactly one core_http_reply* call. */
typedef void core_http_handler_fn(core_http_req_t *req, void *user);

typedef struct core_http_conf {
    const char *name;         /* label for logs and metrics ("eventserver") */
    int threads;              /* MHD worker threads; 0 = online CPUs */
    size_t max_body;          /* bytes; 0 = CORE_HTTP_DEFAULT_MAX_BODY */
    unsigned conn_limit;      /* concurrent connections; 0 = 1024 */
    unsigned idle_timeout_s;  /* idle keep-alive connection timeout; 0 = 60 */
    size_t conn_memory;       /* MHD's per-connection buffer pool (request line,
                                 headers, read buffer); 0 = 64 KiB. MHD clears
                                 the pool between requests, so a server of small
                                 requests at high rates wants it small. */
} core_http_conf_t;

/* Creates a server (not listening yet). conf may be NULL for defaults; it is
 * copied (name too). Never fails except by aborting on OOM. */
core_http_t *core_http_new(const core_http_conf_t *conf);

/* Adds a route. method is "GET", "POST", ... or "*" for any. pattern as
 * described above; it and method are copied. Only before core_http_start.
 * Returns CORE_ERR_INVAL for a malformed pattern, CORE_ERR_TOO_LARGE when the
 * table is full. */
int core_http_route(core_http_t *srv, const char *method, const char *pattern,
                    core_http_handler_fn *fn, void *user);

/* Same, with a body limit of its own for this route (0 = the server's):
 * e.g. an internal bulk endpoint next to small public ones. */
int core_http_route_ex(core_http_t *srv, const char *method, const char *pattern,
                       core_http_handler_fn *fn, void *user, size_t max_body);

/* Starts listening on host:port (host is an IPv4 or IPv6 literal or
 * "localhost"; port 0 picks a free port, see core_http_port). Returns 0, or
 * an errno/core error with a message (e.g. EADDRINUSE). */
int core_http_start(core_http_t *srv, const char *host, int port, char *errstr,
                    size_t errstr_size);

/* The bound port (valid after a successful start). */
int core_http_port(const core_http_t *srv);

/* Stops accepting, closes connections and joins the threads. Waits for
 * running handlers to return. Idempotent. */
void core_http_stop(core_http_t *srv);

/* Stops if needed and frees the server. NULL is a no-op. */
void core_http_free(core_http_t *srv);

/* Appends every route's metrics to out in Prometheus text format 0.0.4:
 *   eddy_http_requests_total{server,method,route,status} counter
 *   eddy_http_request_duration_seconds{server,method,route} histogram
 *   eddy_http_body_bytes_total{server,method,route} counter
 * Requests that matched no route count under route="(none)". */
void core_http_metrics_write(core_http_t *srv, core_buf_t *out);

/* A ready-made handler serving core_http_metrics_write as text/plain; route it
 * with user = the server itself: core_http_route(s, "GET", "/metrics",
 * core_http_metrics_handler, s). */
void core_http_metrics_handler(core_http_req_t *req, void *srv);

/* ---- request accessors (borrowed results, valid during the handler) ---- */

const char *core_http_req_method(const core_http_req_t *req);
/* Path without the query string, percent-decoded by MHD. */
const char *core_http_req_path(const core_http_req_t *req);
/* A capture from the route pattern by name ("id"), or NULL. */
const char *core_http_req_param(const core_http_req_t *req, const char *name);
/* First value of a query parameter (decoded), NULL if absent; a parameter
 * given without '=' yields "". */
const char *core_http_req_query(const core_http_req_t *req, const char *name);
/* Every value of a repeatable query parameter, in request order: fills up to
 * max pointers and returns how many there are in total (may exceed max). */
int core_http_req_query_all(const core_http_req_t *req, const char *name, const char **vals,
                            int max);
/* A request header (case-insensitive name), or NULL. */
const char *core_http_req_header(const core_http_req_t *req, const char *name);
/* The body, NUL-terminated for convenience (len excludes the NUL); an empty
 * body is "" with len 0. */
const char *core_http_req_body(const core_http_req_t *req, size_t *len);
/* Peer address as text ("127.0.0.1", "?" when unknown), never NULL;
 * formatted on the first call, then kept with the request. */
const char *core_http_req_peer(core_http_req_t *req);

/* Per-request arena: memory freed when the request ends. Aborts on OOM for
 * small sizes; returns NULL when n exceeds the body limit + 1 MiB (sizes
 * derived from input must not take the process down). */
void *core_http_req_alloc(core_http_req_t *req, size_t n);
char *core_http_req_strdup(core_http_req_t *req, const char *s);

/* ---- replies (exactly one per request) ---- */

/* Adds a response header (copied) to the reply that follows. At most 8. */
void core_http_req_set_header(core_http_req_t *req, const char *name, const char *value);

/* Replies with a body (copied). content_type NULL = none. */
void core_http_reply(core_http_req_t *req, int status, const char *content_type,
                     const void *body, size_t len);
/* "application/json; charset=UTF-8" compact JSON; steals json's reference
 * (NULL answers 500). */
void core_http_reply_json(core_http_req_t *req, int status, json_t *json);
/* Same, but with already-encoded JSON text (copied). */
void core_http_reply_json_text(core_http_req_t *req, int status, const char *json, size_t len);
/* "text/plain; charset=UTF-8". */
void core_http_reply_text(core_http_req_t *req, int status, const char *text);
/* A JSON string of s (NUL-terminated) where every byte that is not part of
 * valid UTF-8 becomes U+FFFD: never NULL (aborts on OOM). For messages that
 * quote client input or were cut at a buffer boundary. New reference. */
json_t *core_http_json_text(const char *s);

/* {"message": "<printf text>"} as JSON with the given status (text made
 * valid UTF-8 with core_http_json_text). */
void core_http_reply_error(core_http_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
