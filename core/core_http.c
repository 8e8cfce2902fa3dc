/*
 * core_http — see core_http.h for the design, thread and ownership contract.
 */
#include "core/core_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "core/core_log.h"
#include "core/core_time.h"

#define HTTP_JSON_TYPE "application/json; charset=UTF-8"
#define HTTP_TEXT_TYPE "text/plain; charset=UTF-8"
#define HTTP_MAX_REPLY_HEADERS 8
/* Per-connection memory MHD uses for headers and its read buffer. Headers
 * beyond this are refused by MHD with 431. */
#define HTTP_CONN_MEMORY (64u << 10)
/* Arena chunk size; bigger allocations get a chunk of their own. */
#define HTTP_ARENA_CHUNK 4096

/* Statuses counted individually; anything else lands in "other". */
static const int http_statuses[] = {200, 201, 204, 400, 401, 403, 404, 405,
                                    409, 413, 415, 429, 500, 503};
#define HTTP_NSTATUS (sizeof(http_statuses) / sizeof(http_statuses[0]))
/* Latency histogram bucket upper bounds in microseconds (+Inf implied). */
static const int64_t http_buckets_us[] = {100,    250,    500,     1000,    2500,   5000,
                                          10000,  25000,  50000,   100000,  250000, 500000,
                                          1000000, 2500000, 10000000};
#define HTTP_NBUCKETS (sizeof(http_buckets_us) / sizeof(http_buckets_us[0]))

typedef struct http_metrics {
    atomic_uint_fast64_t by_status[HTTP_NSTATUS + 1]; /* last = other */
    atomic_uint_fast64_t buckets[HTTP_NBUCKETS + 1];  /* non-cumulative; last = +Inf */
    atomic_uint_fast64_t sum_us;
    atomic_uint_fast64_t body_bytes;
} http_metrics_t;

typedef struct http_route {
    char *method; /* "GET", ... or "*" */
    char *pattern;
    core_http_handler_fn *fn;
    void *user;
    size_t max_body; /* 0 = the server's */
    http_metrics_t m;
} http_route_t;

struct core_http {
    core_http_conf_t conf;
    char *name;
    http_route_t routes[CORE_HTTP_MAX_ROUTES];
    int nroutes;
    http_metrics_t unmatched; /* route="(none)": 404/405 and early refusals */
    struct MHD_Daemon *daemon;
    int port;
};

typedef struct http_chunk {
    struct http_chunk *next;
    size_t used, size;
    max_align_t data[];
} http_chunk_t;

struct core_http_req {
    core_http_t *srv;
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    http_route_t *route; /* NULL: no route matched */
    bool method_mismatch; /* a route matched the path with another method */
    int nparams;
    const char *pnames[CORE_HTTP_MAX_PARAMS];
    size_t pnamelen[CORE_HTTP_MAX_PARAMS];
    char *pvals[CORE_HTTP_MAX_PARAMS];
    char *body;
    size_t len, cap;
    size_t discarded; /* bytes of an oversized chunked body dropped so far */
    bool too_large;
    bool replied;
    size_t max_body; /* the route's limit, or the server's */
    int status;
    int nhdr;
    char *hdr_name[HTTP_MAX_REPLY_HEADERS];
    char *hdr_val[HTTP_MAX_REPLY_HEADERS];
    http_chunk_t *arena;
    int64_t t0_us;
    char peer[INET6_ADDRSTRLEN];
};

/* ---------------------------------------------------------------- arena -- */

void *core_http_req_alloc(core_http_req_t *req, size_t n)
{
    size_t limit = (req->max_body ? req->max_body : req->srv->conf.max_body) + (1u << 20);
    if (n > limit)
        return NULL;
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    http_chunk_t *c = req->arena;
    if (!c || c->size - c->used < n) {
        size_t size = n > HTTP_ARENA_CHUNK ? n : HTTP_ARENA_CHUNK;
        c = core_xmalloc(sizeof(*c) + size);
        c->used = 0;
        c->size = size;
        /* A big one-off allocation goes behind the current chunk so the
         * current chunk's free space stays usable. */
        if (req->arena && n > HTTP_ARENA_CHUNK) {
            c->next = req->arena->next;
            req->arena->next = c;
        } else {
            c->next = req->arena;
            req->arena = c;
        }
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

char *core_http_req_strdup(core_http_req_t *req, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = core_http_req_alloc(req, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static void http_req_free(core_http_req_t *req)
{
    http_chunk_t *c = req->arena;
    while (c) {
        http_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    free(req->body);
    free(req);
}

/* -------------------------------------------------------------- metrics -- */

static void http_metrics_record(http_metrics_t *m, int status, int64_t us, size_t body)
{
    size_t i;
    for (i = 0; i < HTTP_NSTATUS; i++)
        if (http_statuses[i] == status)
            break;
    atomic_fetch_add_explicit(&m->by_status[i], 1, memory_order_relaxed);
    for (i = 0; i < HTTP_NBUCKETS; i++)
        if (us <= http_buckets_us[i])
            break;
    atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_us, (uint_fast64_t)(us < 0 ? 0 : us), memory_order_relaxed);
    atomic_fetch_add_explicit(&m->body_bytes, body, memory_order_relaxed);
}

static void http_wr_fmt(core_buf_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void http_wr_fmt(core_buf_t *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        core_wr_raw(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void http_metrics_route_write(core_buf_t *out, const char *server, const char *method,
                                     const char *route, const http_metrics_t *m, int part)
{
    if (part == 0) {
        for (size_t i = 0; i <= HTTP_NSTATUS; i++) {
            uint64_t v = atomic_load_explicit(&m->by_status[i], memory_order_relaxed);
            if (!v)
                continue;
            char st[16];
            if (i < HTTP_NSTATUS)
                snprintf(st, sizeof(st), "%d", http_statuses[i]);
            else
                snprintf(st, sizeof(st), "other");
            http_wr_fmt(out,
                        "eddy_http_requests_total{server=\"%s\",method=\"%s\",route=\"%s\","
                        "status=\"%s\"} %llu\n",
                        server, method, route, st, (unsigned long long)v);
        }
    } else if (part == 1) {
        uint64_t cum = 0;
        for (size_t i = 0; i <= HTTP_NBUCKETS; i++) {
            cum += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
            char le[32];
            if (i < HTTP_NBUCKETS)
                snprintf(le, sizeof(le), "%g", (double)http_buckets_us[i] / 1e6);
            else
                snprintf(le, sizeof(le), "+Inf");
            http_wr_fmt(out,
                        "eddy_http_request_duration_seconds_bucket{server=\"%s\",method=\"%s\","
                        "route=\"%s\",le=\"%s\"} %llu\n",
                        server, method, route, le, (unsigned long long)cum);
        }
        http_wr_fmt(out,
                    "eddy_http_request_duration_seconds_sum{server=\"%s\",method=\"%s\","
                    "route=\"%s\"} %.6f\n",
                    server, method, route,
                    (double)atomic_load_explicit(&m->sum_us, memory_order_relaxed) / 1e6);
        http_wr_fmt(out,
                    "eddy_http_request_duration_seconds_count{server=\"%s\",method=\"%s\","
                    "route=\"%s\"} %llu\n",
                    server, method, route, (unsigned long long)cum);
    } else {
        http_wr_fmt(out,
                    "eddy_http_body_bytes_total{server=\"%s\",method=\"%s\",route=\"%s\"} %llu\n",
                    server, method, route,
                    (unsigned long long)atomic_load_explicit(&m->body_bytes,
                                                             memory_order_relaxed));
    }
}

void core_http_metrics_write(core_http_t *srv, core_buf_t *out)
{
    static const char *help[3][2] = {
        {"eddy_http_requests_total", "HTTP requests answered, by route and status."},
        {"eddy_http_request_duration_seconds",
         "Time from request headers to response queued (includes reading the body)."},
        {"eddy_http_body_bytes_total", "Request body bytes received."},
    };
    static const char *type[3] = {"counter", "histogram", "counter"};
    for (int part = 0; part < 3; part++) {
        http_wr_fmt(out, "# HELP %s %s\n# TYPE %s %s\n", help[part][0], help[part][1],
                    help[part][0], type[part]);
        for (int i = 0; i < srv->nroutes; i++)
            http_metrics_route_write(out, srv->name, srv->routes[i].method,
                                     srv->routes[i].pattern, &srv->routes[i].m, part);
        http_metrics_route_write(out, srv->name, "*", "(none)", &srv->unmatched, part);
    }
}

void core_http_metrics_handler(core_http_req_t *req, void *srv)
{
    core_buf_t b;
    core_buf_init(&b);
    core_http_metrics_write((core_http_t *)srv, &b);
    core_http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    core_buf_fini(&b);
}

/* -------------------------------------------------------------- routing -- */

/* Checks a pattern: starts with '/', captures are <name> with a non-empty
 * name of [A-Za-z0-9_], at most one capture per segment. */
static bool http_pattern_valid(const char *p, int *ncap)
{
    *ncap = 0;
    if (p[0] != '/')
        return false;
    bool seg_has_cap = false;
    for (; *p; p++) {
        if (*p == '/') {
            seg_has_cap = false;
        } else if (*p == '<') {
            const char *e = strchr(p, '>');
            if (!e || e == p + 1 || seg_has_cap)
                return false;
            for (const char *q = p + 1; q < e; q++)
                if (!(*q == '_' || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                      (*q >= '0' && *q <= '9')))
                    return false;
            if (++*ncap > CORE_HTTP_MAX_PARAMS)
                return false;
            seg_has_cap = true;
            p = e;
        } else if (*p == '>') {
            return false;
        }
    }
    return true;
}

/* Matches path against pattern. On success and when req is non-NULL, stores
 * the captures (copied into the request arena). */
static bool http_match(const char *pat, const char *path, core_http_req_t *req)
{
    int ncap = 0;
    while (*pat) {
        if (*pat != '<') {
            if (*pat != *path)
                return false;
            pat++;
            path++;
            continue;
        }
        const char *name = pat + 1;
        const char *gt = strchr(pat, '>');
        /* Literal text after the capture, up to the end of the segment. */
        const char *suffix = gt + 1;
        size_t suffix_len = strcspn(suffix, "/");
        size_t seg_len = strcspn(path, "/");
        if (seg_len <= suffix_len) /* the capture must be non-empty */
            return false;
        size_t cap_len = seg_len - suffix_len;
        if (memcmp(path + cap_len, suffix, suffix_len) != 0)
            return false;
        if (req) {
            char *v = core_http_req_alloc(req, cap_len + 1);
            memcpy(v, path, cap_len);
            v[cap_len] = '\0';
            req->pnames[ncap] = name;
            req->pnamelen[ncap] = (size_t)(gt - name);
            req->pvals[ncap] = v;
            req->nparams = ncap + 1;
        }
        ncap++;
        pat = suffix + suffix_len;
        path += seg_len;
    }
    return *path == '\0';
}

int core_http_route(core_http_t *srv, const char *method, const char *pattern,
                    core_http_handler_fn *fn, void *user)
{
    return core_http_route_ex(srv, method, pattern, fn, user, 0);
}

int core_http_route_ex(core_http_t *srv, const char *method, const char *pattern,
                       core_http_handler_fn *fn, void *user, size_t max_body)
{
    int ncap;
    if (srv->daemon || !fn || !http_pattern_valid(pattern, &ncap))
        return CORE_ERR_INVAL;
    if (srv->nroutes >= CORE_HTTP_MAX_ROUTES)
        return CORE_ERR_TOO_LARGE;
    http_route_t *r = &srv->routes[srv->nroutes++];
    r->method = core_xstrdup(method);
    r->pattern = core_xstrdup(pattern);
    r->fn = fn;
    r->user = user;
    r->max_body = max_body;
    return CORE_OK;
}

static bool http_method_is(const char *route_method, const char *method)
{
    if (!strcmp(route_method, "*") || !strcmp(route_method, method))
        return true;
    /* HEAD is served by the GET handler; MHD drops the body. */
    return !strcmp(method, "HEAD") && !strcmp(route_method, "GET");
}

static void http_route_find(core_http_req_t *req)
{
    core_http_t *srv = req->srv;
    for (int i = 0; i < srv->nroutes; i++) {
        http_route_t *r = &srv->routes[i];
        if (!http_match(r->pattern, req->path, NULL))
            continue;
        if (!http_method_is(r->method, req->method)) {
            req->method_mismatch = true;
            continue;
        }
        http_match(r->pattern, req->path, req);
        req->route = r;
        return;
    }
}

/* ------------------------------------------------------------- requests -- */

const char *core_http_req_method(const core_http_req_t *req)
{
    return req->method;
}
const char *core_http_req_path(const core_http_req_t *req)
{
    return req->path;
}
const char *core_http_req_param(const core_http_req_t *req, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < req->nparams; i++)
        if (req->pnamelen[i] == n && !memcmp(req->pnames[i], name, n))
            return req->pvals[i];
    return NULL;
}
const char *core_http_req_query(const core_http_req_t *req, const char *name)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    if (v)
        return v;
    /* MHD reports "?flag" (no '=') as a key with a NULL value. */
    bool present = MHD_YES == MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND,
                                                            name, strlen(name), NULL, NULL);
    return present ? "" : NULL;
}

typedef struct http_qall {
    const char *name;
    const char **vals;
    int max, n;
} http_qall_t;

static enum MHD_Result http_qall_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    http_qall_t *q = cls;
    if (strcmp(key, q->name) != 0)
        return MHD_YES;
    if (q->n < q->max)
        q->vals[q->n] = value ? value : "";
    q->n++;
    return MHD_YES;
}

int core_http_req_query_all(const core_http_req_t *req, const char *name, const char **vals,
                            int max)
{
    http_qall_t q = {name, vals, max, 0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, http_qall_cb, &q);
    return q.n;
}
const char *core_http_req_header(const core_http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}
const char *core_http_req_body(const core_http_req_t *req, size_t *len)
{
    if (len)
        *len = req->len;
    return req->body ? req->body : "";
}
/* Formatted on first use: inet_ntop goes through sprintf, and doing that
 * for every request cost ~1% of a query server's CPU for a text few
 * handlers ever read. */
const char *core_http_req_peer(core_http_req_t *req)
{
    if (req->peer[0])
        return req->peer;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET &&
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, req->peer,
                  sizeof(req->peer)))
        return req->peer;
    if (sa && sa->sa_family == AF_INET6 &&
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, req->peer,
                  sizeof(req->peer)))
        return req->peer;
    strcpy(req->peer, "?");
    return req->peer;
}

/* -------------------------------------------------------------- replies -- */

void core_http_req_set_header(core_http_req_t *req, const char *name, const char *value)
{
    if (req->nhdr >= HTTP_MAX_REPLY_HEADERS)
        return;
    req->hdr_name[req->nhdr] = core_http_req_strdup(req, name);
    req->hdr_val[req->nhdr] = core_http_req_strdup(req, value);
    req->nhdr++;
}

void core_http_reply(core_http_req_t *req, int status, const char *content_type,
                     const void *body, size_t len)
{
    if (req->replied) {
        CORE_WARN("http", "%s: second reply to %s %s ignored", req->srv->name, req->method,
                  req->path);
        return;
    }
    req->replied = true;
    req->status = status;
    /* Count now, not at completion: a client that has its answer must see
     * it in the metrics (and latency means "until the answer was ready"). */
    http_metrics_record(req->route ? &req->route->m : &req->srv->unmatched, status,
                        core_mono_us() - req->t0_us, req->len + req->discarded);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        CORE_ERROR("http", "%s: cannot create a response", req->srv->name);
        return; /* MHD closes the connection when no response is queued */
    }
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (int i = 0; i < req->nhdr; i++)
        if (req->hdr_name[i] && req->hdr_val[i])
            MHD_add_response_header(resp, req->hdr_name[i], req->hdr_val[i]);
    if (MHD_queue_response(req->conn, (unsigned)status, resp) != MHD_YES)
        CORE_WARN("http", "%s: could not queue %d for %s %s", req->srv->name, status,
                  req->method, req->path);
    MHD_destroy_response(resp);
}

void core_http_reply_json_text(core_http_req_t *req, int status, const char *json, size_t len)
{
    core_http_reply(req, status, HTTP_JSON_TYPE, json, len);
}

void core_http_reply_json(core_http_req_t *req, int status, json_t *json)
{
    if (!json) {
        core_http_reply_error(req, 500, "could not build the response");
        return;
    }
    char *text = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(json);
    if (!text) {
        core_http_reply_error(req, 500, "could not encode the response");
        return;
    }
    core_http_reply(req, status, HTTP_JSON_TYPE, text, strlen(text));
    free(text);
}

void core_http_reply_text(core_http_req_t *req, int status, const char *text)
{
    core_http_reply(req, status, HTTP_TEXT_TYPE, text, strlen(text));
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *p)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, min = 0x10000;
    else
        return 0;
    unsigned cp = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

json_t *core_http_json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t len = strlen(s);
    char *out = core_xmalloc(len * 3 + 1); /* each bad byte may become 3 */
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (n) {
            memcpy(out + o, p, n);
            o += n;
            p += n;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3); /* U+FFFD */
            o += 3;
            p++;
        }
    }
    out[o] = '\0';
    j = json_string(out);
    free(out);
    return j ? j : json_string("");
}

void core_http_reply_error(core_http_req_t *req, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *j = json_object();
    json_object_set_new(j, "message", core_http_json_text(msg));
    core_http_reply_json(req, status, j);
}

/* ------------------------------------------------------------ MHD glue -- */

static void http_405(core_http_req_t *req)
{
    char allow[128] = "";
    size_t n = 0;
    for (int i = 0; i < req->srv->nroutes; i++) {
        http_route_t *r = &req->srv->routes[i];
        if (!http_match(r->pattern, req->path, NULL) || strstr(allow, r->method))
            continue;
        n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s", n ? ", " : "", r->method);
        if (n >= sizeof(allow))
            break;
    }
    core_http_req_set_header(req, "Allow", allow);
    core_http_reply_error(req, 405, "Method Not Allowed");
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version,
                                   const char *upload_data, size_t *upload_data_size,
                                   void **con_cls)
{
    core_http_t *srv = cls;
    core_http_req_t *req = *con_cls;

    if (!req) {
        /* First call: headers are complete, no body byte read yet. */
        req = core_xcalloc(1, sizeof(*req));
        req->t0_us = core_mono_us();
        req->srv = srv;
        req->conn = conn;
        req->method = method;
        req->path = url;
        *con_cls = req;
        http_route_find(req);
        req->max_body = req->route && req->route->max_body ? req->route->max_body
                                                           : srv->conf.max_body;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || end == cl || n > req->max_body) {
                /* Refuse before reading: MHD answers and then closes the
                 * connection instead of reading the excess. */
                req->too_large = true;
                core_http_reply_error(req, 413, "Request body exceeds the limit of %zu bytes",
                                      req->max_body);
                return MHD_YES;
            }
            if (n > 0) {
                req->body = core_trymalloc((size_t)n + 1);
                if (!req->body) {
                    core_http_reply_error(req, 503, "Out of memory");
                    return MHD_YES;
                }
                req->cap = (size_t)n + 1;
            }
        }
        return MHD_YES;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (req->replied)
            return MHD_YES;
        if (req->too_large || req->len + n > req->max_body) {
            if (!req->too_large) {
                req->too_large = true;
                free(req->body);
                req->body = NULL;
                req->discarded = req->len;
                req->len = req->cap = 0;
            }
            req->discarded += n;
            if (req->discarded / CORE_HTTP_DISCARD_FACTOR > req->max_body)
                return MHD_NO; /* stop reading a runaway body: close */
            return MHD_YES;
        }
        if (req->len + n + 1 > req->cap) {
            size_t cap = req->cap ? req->cap : 4096;
            while (cap < req->len + n + 1)
                cap *= 2;
            if (cap > req->max_body + 1)
                cap = req->max_body + 1;
            char *nb = core_tryrealloc(req->body, cap);
            if (!nb) {
                core_http_reply_error(req, 503, "Out of memory");
                return MHD_YES;
            }
            req->body = nb;
            req->cap = cap;
        }
        memcpy(req->body + req->len, upload_data, n);
        req->len += n;
        return MHD_YES;
    }

    /* Final call: the whole request has been received. */
    if (req->replied)
        return MHD_YES;
    if (req->body)
        req->body[req->len] = '\0';
    if (req->too_large) {
        core_http_reply_error(req, 413, "Request body exceeds the limit of %zu bytes",
                              req->max_body);
    } else if (!req->route) {
        if (req->method_mismatch)
            http_405(req);
        else
            core_http_reply_error(req, 404, "Not Found");
    } else {
        req->route->fn(req, req->route->user);
        if (!req->replied)
            core_http_reply_error(req, 500, "handler did not reply");
    }
    return MHD_YES;
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    core_http_req_t *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    core_http_t *srv = cls;
    /* A request dropped before any reply counts as status "other". */
    if (!req->replied)
        http_metrics_record(req->route ? &req->route->m : &srv->unmatched, 0,
                            core_mono_us() - req->t0_us, req->len + req->discarded);
    http_req_free(req);
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    CORE_DEBUG("http", "%s: mhd: %s", (const char *)cls, line);
}

/* -------------------------------------------------------------- server -- */

core_http_t *core_http_new(const core_http_conf_t *conf)
{
    core_http_t *srv = core_xcalloc(1, sizeof(*srv));
    if (conf)
        srv->conf = *conf;
    srv->name = core_xstrdup(srv->conf.name ? srv->conf.name : "http");
    srv->conf.name = srv->name;
    if (srv->conf.threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        srv->conf.threads = n > 0 ? (int)n : 1;
    }
    if (!srv->conf.max_body)
        srv->conf.max_body = CORE_HTTP_DEFAULT_MAX_BODY;
    if (!srv->conf.conn_limit)
        srv->conf.conn_limit = 1024;
    if (!srv->conf.idle_timeout_s)
        srv->conf.idle_timeout_s = 60;
    return srv;
}

int core_http_start(core_http_t *srv, const char *host, int port, char *errstr,
                    size_t errstr_size)
{
    if (srv->daemon)
        return core_errf(CORE_ERR_STATE, errstr, errstr_size, "already started");
    if (port < 0 || port > 65535)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "bad port %d", port);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(host && *host ? host : NULL, "0", &hints, &ai);
    if (gai || !ai)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "cannot resolve '%s': %s",
                         host ? host : "", gai_strerror(gai));
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        flags |= MHD_USE_IPv6;
    } else {
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    }

    /* Bind ourselves so a bind error reaches the caller with its errno
     * (MHD would only log it), then hand the socket to MHD. */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return core_errf(errno, errstr, errstr_size, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        close(fd);
        return core_errf(e, errstr, errstr_size, "listen on %s:%d: %s", host ? host : "*",
                         port, strerror(e));
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    getsockname(fd, (struct sockaddr *)&bound, &bl);
    srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);

    struct MHD_OptionItem opts[12];
    int k = 0;
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, fd, NULL};
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)http_completed,
                                        srv};
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, srv->conf.conn_limit, NULL};
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                        srv->conf.idle_timeout_s, NULL};
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                        srv->conf.conn_memory ? srv->conf.conn_memory : HTTP_CONN_MEMORY,
                                        NULL};
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)http_mhd_log,
                                        srv->name};
    if (srv->conf.threads > 1)
        opts[k++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, srv->conf.threads,
                                            NULL};
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, http_access, srv, MHD_OPTION_ARRAY,
                                   opts, MHD_OPTION_END);
    if (!srv->daemon) {
        close(fd);
        return core_errf(CORE_ERR_IO, errstr, errstr_size,
                         "libmicrohttpd could not start on %s:%d", host ? host : "*", port);
    }
    CORE_INFO("http", "%s: serving HTTP on %s:%d (%d threads, body limit %zu bytes)", srv->name,
              host ? host : "*", srv->port, srv->conf.threads, srv->conf.max_body);
    return CORE_OK;
}

int core_http_port(const core_http_t *srv)
{
    return srv->port;
}

void core_http_stop(core_http_t *srv)
{
    if (!srv || !srv->daemon)
        return;
    /* MHD_stop_daemon closes the listen socket it was given. */
    MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
}

void core_http_free(core_http_t *srv)
{
    if (!srv)
        return;
    core_http_stop(srv);
    for (int i = 0; i < srv->nroutes; i++) {
        free(srv->routes[i].method);
        free(srv->routes[i].pattern);
    }
    free(srv->name);
    free(srv);
}
