/*
 * store_http — the PredictionIO Event API. See store_http.h.
 */
#include "storage/store_http.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "core/core_alloc.h"
#include "core/core_buf.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_log.h"
#include "core/core_time.h"
#include "storage/store_event_json.h"
#include "storage/store_int.h"
#include "storage/store_remote.h"

struct store_http {
    store_t *st;
    core_http_t *http;
    char token[STORE_HTTP_TOKEN_MAX + 1]; /* "" = internal endpoint off */
};

/* ------------------------------------------------------------------ auth -- */

typedef struct http_auth {
    store_accesskey_t key;
    int32_t app;
    int32_t channel;
} http_auth_t;

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decodes standard or URL-safe base64 (padding optional) into out (size
 * outsz, NUL-terminated). Returns the decoded length or -1. */
static long b64_decode(const char *in, char *out, size_t outsz)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        int v = b64val((unsigned char)*in);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= outsz)
                return -1;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = '\0';
    return (long)n;
}

static bool channel_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > STORE_CHANNEL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

/* Resolves the access key and channel; on failure replies (401/500) and
 * returns false. On success the caller releases a->key with
 * store_accesskey_fini. */
static bool http_auth(core_http_req_t *req, store_http_t *sh, http_auth_t *a)
{
    memset(a, 0, sizeof(*a));
    const char *key = core_http_req_query(req, "accessKey");
    const char *chname = NULL;
    char decoded[256];
    if (key) {
        chname = core_http_req_query(req, "channel");
    } else {
        const char *authz = core_http_req_header(req, "Authorization");
        if (!authz) {
            core_http_reply_error(req, 401, "Missing accessKey.");
            return false;
        }
        /* Basic base64("<key>:"): the key is the user name; the channel
         * parameter is ignored in this form (PIO). */
        if (strncasecmp(authz, "Basic ", 6) != 0 ||
            b64_decode(authz + 6, decoded, sizeof(decoded)) < 0) {
            core_http_reply_error(req, 401, "Invalid accessKey.");
            return false;
        }
        char *colon = strchr(decoded, ':');
        if (colon)
            *colon = '\0';
        key = decoded;
    }
    if (!*key || strlen(key) > STORE_ACCESSKEY_MAX) {
        core_http_reply_error(req, 401, "Invalid accessKey.");
        return false;
    }
    int rc = store_accesskey_get(sh->st, key, &a->key);
    if (rc == CORE_ERR_NOT_FOUND) {
        core_http_reply_error(req, 401, "Invalid accessKey.");
        return false;
    }
    if (rc) {
        core_http_reply_error(req, 500, "Cannot read access keys: %s", core_strerror(rc));
        return false;
    }
    a->app = a->key.app;
    a->channel = 0;
    if (chname) {
        int32_t id;
        if (!channel_name_valid(chname) || store_channel_get(sh->st, a->app, chname, &id) != 0) {
            core_http_reply_error(req, 401, "Invalid channel '%s'.", chname);
            store_accesskey_fini(&a->key);
            return false;
        }
        a->channel = id;
    }
    return true;
}

/* PIO's JSON routes accept application/json; any other declared type is 415.
 * No Content-Type at all is taken as JSON (lenient for hand-written curl). */
static bool http_json_body(core_http_req_t *req)
{
    const char *ct = core_http_req_header(req, "Content-Type");
    if (!ct)
        return true;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; ");
    if (n == 16 && !strncasecmp(ct, "application/json", 16))
        return true;
    core_http_reply_error(req, 415,
                          "The request's Content-Type is not supported. Expected: application/json");
    return false;
}

/* ----------------------------------------------------------- responses -- */

static void reply_event_id(core_http_req_t *req, int status, const char *id)
{
    char buf[STORE_EVENT_ID_MAX + 32];
    int n = snprintf(buf, sizeof(buf), "{\"eventId\":\"%s\"}", id);
    core_http_reply_json_text(req, status, buf, (size_t)n);
}

/* ------------------------------------------------------------- handlers -- */

static void h_status(core_http_req_t *req, void *user)
{
    static const char alive[] = "{\"status\":\"alive\"}";
    core_http_reply_json_text(req, 200, alive, sizeof(alive) - 1);
}

static void h_stats(core_http_req_t *req, void *user)
{
    core_http_reply_error(req, 404, "To see stats, launch Event Server with --stats argument.");
}

static void h_event_post(core_http_req_t *req, void *user)
{
    store_http_t *sh = user;
    http_auth_t a;
    if (!http_auth(req, sh, &a))
        return;
    if (!http_json_body(req))
        goto out;
    size_t len;
    const char *body = core_http_req_body(req, &len);
    store_event_t ev;
    char err[512];
    int rc = store_event_from_json(body, len, core_wall_ms(), &ev, err, sizeof(err));
    if (rc) {
        core_http_reply_error(req, 400, "%s", err);
        goto out;
    }
    if (!store_accesskey_allows(&a.key, ev.event)) {
        core_http_reply_error(req, 403, "%s events are not allowed", ev.event);
        store_event_fini(&ev);
        goto out;
    }
    char id[STORE_EVENT_ID_MAX + 1];
    /* ev came from store_event_from_json: checked, canonical properties */
    rc = store__event_put_checked(sh->st, a.app, a.channel, &ev, id, NULL, err, sizeof(err));
    store_event_fini(&ev);
    if (rc == 0)
        reply_event_id(req, 201, id);
    else if (rc == CORE_ERR_CONFLICT)
        core_http_reply_error(req, 409, "%s", err);
    else if (rc == CORE_ERR_INVAL)
        core_http_reply_error(req, 400, "%s", err);
    else
        core_http_reply_error(req, 500, "%s", err[0] ? err : core_strerror(rc));
out:
    store_accesskey_fini(&a.key);
}

/* Appends one per-item answer of a batch with a message (400/403/409):
 * {"status":N,"message":"..."}. The message goes through jansson's string
 * encoder (core_http_json_text repairs invalid UTF-8 that truncation may
 * leave); these are the rare items. */
static void batch_item_msg(core_buf_t *out, int status, const char *message)
{
    char head[48];
    int n = snprintf(head, sizeof(head), "{\"status\":%d,\"message\":", status);
    core_wr_raw(out, head, (size_t)n);
    json_t *j = core_http_json_text(message);
    char *text = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(j);
    if (text) {
        core_wr_raw(out, text, strlen(text));
        free(text);
    } else {
        core_wr_raw(out, "\"\"", 2);
    }
    core_wr_raw(out, "}", 1);
}

/* Per-item state of a batch request being answered. */
typedef struct batch_ctx {
    core_http_req_t *req;
    store_batch_t *b;
    const http_auth_t *a;
    int slot[STORE_HTTP_BATCH_MAX], mstatus[STORE_HTTP_BATCH_MAX];
    char *msgs[STORE_HTTP_BATCH_MAX];
} batch_ctx_t;

/* Item i: a parsed, validated event (or rc/err from its parsing) into the
 * batch, or its final answer (400/403) into msgs. */
static void batch_add(batch_ctx_t *c, size_t i, int rc, const store_event_t *ev, const char *err)
{
    char buf[512];
    c->slot[i] = -1;
    c->msgs[i] = NULL;
    if (rc) {
        c->mstatus[i] = 400;
        c->msgs[i] = core_http_req_strdup(c->req, err);
        return;
    }
    if (!store_accesskey_allows(&c->a->key, ev->event)) {
        char msg[STORE_NAME_MAX + 64];
        snprintf(msg, sizeof(msg), "%s events are not allowed", ev->event);
        c->mstatus[i] = 403;
        c->msgs[i] = core_http_req_strdup(c->req, msg);
        return;
    }
    rc = store__batch_put_checked(c->b, c->a->app, c->a->channel, ev, buf, sizeof(buf));
    if (rc) {
        c->mstatus[i] = 400;
        c->msgs[i] = core_http_req_strdup(c->req, buf);
        return;
    }
    c->slot[i] = (int)store_batch_events(c->b) - 1;
}

/* POST /batch/events.json. Bodies in the common subset of JSON are parsed
 * without a tree (store_event_batch_parse_fast); any other body, and every
 * body holding something to refuse, goes through jansson, which words the
 * answers. Either way each item's properties are canonicalised once, and
 * the answer array is written as text. */
static void h_batch_post(core_http_req_t *req, void *user)
{
    store_http_t *sh = user;
    http_auth_t a;
    if (!http_auth(req, sh, &a))
        return;
    json_t *arr = NULL;
    batch_ctx_t c = {.req = req, .a = &a};
    core_buf_t out, arena;
    core_buf_init(&out);
    core_buf_init(&arena);
    store_event_t evs[STORE_HTTP_BATCH_MAX];
    size_t n = 0;
    if (!http_json_body(req))
        goto done;
    size_t len;
    const char *body = core_http_req_body(req, &len);
    int64_t now = core_wall_ms();
    bool fast = store_event_batch_parse_fast(body, len, now, evs, STORE_HTTP_BATCH_MAX, &n,
                                             &arena) == 0;
    if (!fast) {
        json_error_t jerr;
        arr = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
        if (!arr) {
            core_http_reply_error(req, 400, "%s", jerr.text);
            goto done;
        }
        if (!json_is_array(arr)) {
            core_http_reply_error(req, 400, "The request content must be a JSON array of events.");
            goto done;
        }
        n = json_array_size(arr);
        if (n > STORE_HTTP_BATCH_MAX) {
            core_http_reply_error(req, 400,
                                  "Batch request must have less than or equal to %d events",
                                  STORE_HTTP_BATCH_MAX);
            goto done;
        }
    }
    store_put_result_t results[STORE_HTTP_BATCH_MAX];
    int rc = store_batch_begin(sh->st, 0, &c.b);
    if (rc) {
        core_http_reply_error(req, 500, "Cannot start a batch: %s", core_strerror(rc));
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        char err[512];
        if (fast) {
            rc = store__event_check_fields(&evs[i], err, sizeof(err));
            batch_add(&c, i, rc, &evs[i], err);
        } else {
            store_event_t ev;
            rc = store_event_from_jansson(json_array_get(arr, i), now, &ev, err, sizeof(err));
            batch_add(&c, i, rc, &ev, err);
            if (!rc)
                store_event_fini(&ev);
        }
    }
    char err[512] = "";
    rc = store_batch_commit(c.b, results, err, sizeof(err));
    c.b = NULL;
    if (rc) {
        core_http_reply_error(req, 500, "%s", err[0] ? err : core_strerror(rc));
        goto done;
    }
    core_buf_reserve(&out, 64 + n * (STORE_EVENT_ID_MAX + 32));
    core_wr_raw(&out, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            core_wr_raw(&out, ",", 1);
        if (c.slot[i] < 0) {
            batch_item_msg(&out, c.mstatus[i], c.msgs[i] ? c.msgs[i] : "");
            continue;
        }
        const store_put_result_t *r = &results[c.slot[i]];
        if (r->status == STORE_PUT_CONFLICT) {
            char msg[STORE_EVENT_ID_MAX + 96];
            snprintf(msg, sizeof(msg), "eventId %s already exists with different content",
                     r->event_id);
            batch_item_msg(&out, 409, msg);
        } else {
            /* ids are [A-Za-z0-9_-] (store.h): no escaping needed */
            core_wr_raw(&out, "{\"status\":201,\"eventId\":\"", 25);
            core_wr_raw(&out, r->event_id, strlen(r->event_id));
            core_wr_raw(&out, "\"}", 2);
        }
    }
    core_wr_raw(&out, "]", 1);
    core_http_reply_json_text(req, 200, (const char *)out.data, out.len);
done:
    store_batch_abort(c.b);
    json_decref(arr);
    core_buf_fini(&out);
    core_buf_fini(&arena);
    store_accesskey_fini(&a.key);
}

static void h_event_get(core_http_req_t *req, void *user)
{
    store_http_t *sh = user;
    http_auth_t a;
    if (!http_auth(req, sh, &a))
        return;
    store_event_t ev;
    const char *id = core_http_req_param(req, "id");
    int rc = strlen(id) > STORE_EVENT_ID_MAX ? CORE_ERR_NOT_FOUND
                                              : store_event_get(sh->st, a.app, a.channel, id, &ev);
    if (rc == CORE_ERR_NOT_FOUND) {
        core_http_reply_error(req, 404, "Not Found");
    } else if (rc) {
        core_http_reply_error(req, 500, "%s", core_strerror(rc));
    } else {
        core_buf_t b;
        core_buf_init(&b);
        store_event_to_json(&ev, &b);
        core_http_reply_json_text(req, 200, (const char *)b.data, b.len);
        core_buf_fini(&b);
        store_event_fini(&ev);
    }
    store_accesskey_fini(&a.key);
}

static void h_event_delete(core_http_req_t *req, void *user)
{
    store_http_t *sh = user;
    http_auth_t a;
    if (!http_auth(req, sh, &a))
        return;
    const char *id = core_http_req_param(req, "id");
    int rc = strlen(id) > STORE_EVENT_ID_MAX ? CORE_ERR_NOT_FOUND
                                              : store_event_delete(sh->st, a.app, a.channel, id);
    if (rc == 0)
        core_http_reply_error(req, 200, "Found");
    else if (rc == CORE_ERR_NOT_FOUND)
        core_http_reply_error(req, 404, "Not Found");
    else
        core_http_reply_error(req, 500, "%s", core_strerror(rc));
    store_accesskey_fini(&a.key);
}

/* Booleans as PIO parses them: case-insensitive true/false/yes/no/on/off/1/0. */
static int parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcasecmp(s, no[i])) {
            *out = false;
            return 0;
        }
    }
    return CORE_ERR_INVAL;
}

typedef struct find_ctx {
    core_buf_t out;
    int64_t n;
} find_ctx_t;

static int find_cb(const store_event_t *ev, void *opaque)
{
    find_ctx_t *c = opaque;
    core_wr_raw(&c->out, c->n ? "," : "[", 1);
    store_event_to_json(ev, &c->out);
    c->n++;
    return 0;
}

/* Query text to a non-empty filter string, or NULL when absent. */
static const char *qstr(core_http_req_t *req, const char *name)
{
    const char *v = core_http_req_query(req, name);
    return v && *v ? v : NULL;
}

static bool parse_time_param(core_http_req_t *req, const char *name, int64_t *ms)
{
    const char *v = core_http_req_query(req, name);
    if (!v)
        return true;
    int16_t tz;
    size_t n = strlen(v);
    if (store_time_parse(v, n, ms, &tz) == 0)
        return true;
    /* An unencoded '+' in a query string arrives as a space (compat-apis.md
     * A.4 "URL gotcha"): read "...00:00:00 02:00" as "+02:00". */
    char fixed[STORE_TIME_TEXT_MAX + 8];
    const char *sp = strchr(v, ' ');
    if (sp && n < sizeof(fixed) && !strchr(sp + 1, ' ')) {
        memcpy(fixed, v, n + 1);
        fixed[sp - v] = '+';
        if (store_time_parse(fixed, n, ms, &tz) == 0)
            return true;
    }
    core_http_reply_error(req, 400, "Fail to extract %s %s", name, v);
    return false;
}

static void h_events_find(core_http_req_t *req, void *user)
{
    store_http_t *sh = user;
    http_auth_t a;
    if (!http_auth(req, sh, &a))
        return;
    store_find_t f;
    store_find_init(&f);
    f.limit = 20;
    if (!parse_time_param(req, "startTime", &f.start_ms) ||
        !parse_time_param(req, "untilTime", &f.until_ms))
        goto out;
    f.entity_type = qstr(req, "entityType");
    f.entity_id = qstr(req, "entityId");
    f.target_entity_type = qstr(req, "targetEntityType");
    f.target_entity_id = qstr(req, "targetEntityId");
    enum { MAX_EVENT_NAMES = 32 };
    const char *events[MAX_EVENT_NAMES];
    int nev = core_http_req_query_all(req, "event", events, MAX_EVENT_NAMES);
    if (nev > MAX_EVENT_NAMES) {
        core_http_reply_error(req, 400, "At most %d event parameters are allowed",
                              MAX_EVENT_NAMES);
        goto out;
    }
    f.events = events;
    f.nevents = nev;
    const char *v = core_http_req_query(req, "limit");
    if (v && (core_parse_int(v, &f.limit) != 0 || f.limit < -1)) {
        core_http_reply_error(req, 400, "The query parameter 'limit' was malformed: '%s' is not "
                                        "a valid integer (-1 means no limit)",
                              v);
        goto out;
    }
    v = core_http_req_query(req, "reversed");
    if (v && parse_bool(v, &f.reversed) != 0) {
        core_http_reply_error(req, 400,
                              "The query parameter 'reversed' was malformed: '%s' is not a "
                              "valid boolean value",
                              v);
        goto out;
    }
    if (f.reversed && !(f.entity_type && f.entity_id)) {
        core_http_reply_error(req, 400,
                              "requirement failed: the parameter reversed can only be used with "
                              "both entityType and entityId specified.");
        goto out;
    }
    find_ctx_t c = {.n = 0};
    core_buf_init(&c.out);
    int rc = f.limit == 0 ? 0 : store_event_find(sh->st, a.app, a.channel, &f, find_cb, &c, NULL);
    if (rc) {
        core_http_reply_error(req, 500, "%s", core_strerror(rc));
    } else if (c.n == 0) {
        core_http_reply_error(req, 404, "Not Found"); /* PIO quirk, kept on purpose */
    } else {
        core_wr_raw(&c.out, "]", 1);
        core_http_reply_json_text(req, 200, (const char *)c.out.data, c.out.len);
    }
    core_buf_fini(&c.out);
out:
    store_accesskey_fini(&a.key);
}

/* Eddy extension (compat-apis.md A.7 [OURS]): an entity's properties as
 * aggregated from its $set/$unset/$delete events, optionally as of
 * untilTime (exclusive). 404 when the entity does not exist. */
static void h_entity_get(core_http_req_t *req, void *user)
{
    store_http_t *sh = user;
    http_auth_t a;
    if (!http_auth(req, sh, &a))
        return;
    int64_t until = INT64_MAX;
    if (!parse_time_param(req, "untilTime", &until))
        goto out;
    const char *etype = core_http_req_param(req, "etype"), *eid = core_http_req_param(req, "eid");
    store_props_t p;
    int rc = store_props_get(sh->st, a.app, a.channel, etype, eid, until, &p);
    if (rc == CORE_ERR_NOT_FOUND) {
        core_http_reply_error(req, 404, "Not Found");
    } else if (rc) {
        core_http_reply_error(req, 500, "%s", core_strerror(rc));
    } else {
        char first[STORE_TIME_TEXT_MAX], last[STORE_TIME_TEXT_MAX];
        store_time_format(p.first_updated_ms, 0, first);
        store_time_format(p.last_updated_ms, 0, last);
        json_t *props = json_loads(p.properties ? p.properties : "{}", 0, NULL);
        json_t *o = json_object();
        json_object_set_new(o, "entityType", core_http_json_text(etype));
        json_object_set_new(o, "entityId", core_http_json_text(eid));
        json_object_set_new(o, "properties", props ? props : json_object());
        json_object_set_new(o, "firstUpdated", json_string(first));
        json_object_set_new(o, "lastUpdated", json_string(last));
        core_http_reply_json(req, 200, o);
        store_props_fini(&p);
    }
out:
    store_accesskey_fini(&a.key);
}

/* ------------------------------------------------------------ internal -- */

/* Token comparison in time independent of where the first difference is. */
static bool token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

static void h_internal(core_http_req_t *req, void *user)
{
    store_http_t *sh = user;
    const char *tok = core_http_req_header(req, STORE_REMOTE_TOKEN_HEADER);
    if (!tok || !token_equal(tok, sh->token)) {
        core_http_reply_error(req, 401, "Missing or wrong internal token.");
        return;
    }
    size_t len;
    const char *body = core_http_req_body(req, &len);
    core_buf_t out;
    core_buf_init(&out);
    int status = store_remote_serve(sh->st, body, len, &out);
    core_http_reply(req, status, "application/octet-stream", out.data, out.len);
    core_buf_fini(&out);
}

/* ---------------------------------------------------------------- server -- */

int store_http_start(store_t *st, const store_http_conf_t *conf, store_http_t **out,
                     char *errstr, size_t errstr_size)
{
    store_http_t *sh = core_xcalloc(1, sizeof(*sh));
    sh->st = st;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    core_http_conf_t hc = {
        .name = "eventserver",
        .threads = conf->threads > 0 ? conf->threads : (int)(ncpu > 0 ? ncpu : 1) * 8,
        .max_body = conf->max_body,
    };
    sh->http = core_http_new(&hc);
    struct {
        const char *method, *pattern;
        core_http_handler_fn *fn;
        void *user;
    } routes[] = {
        {"GET", "/", h_status, sh},
        {"POST", "/events.json", h_event_post, sh},
        {"GET", "/events.json", h_events_find, sh},
        {"GET", "/events/<id>.json", h_event_get, sh},
        {"DELETE", "/events/<id>.json", h_event_delete, sh},
        {"POST", "/batch/events.json", h_batch_post, sh},
        {"GET", "/stats.json", h_stats, sh},
        {"GET", "/entities/<etype>/<eid>.json", h_entity_get, sh},
        {"GET", "/metrics", core_http_metrics_handler, sh->http},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        core_http_route(sh->http, routes[i].method, routes[i].pattern, routes[i].fn,
                        routes[i].user);
    if (conf->token && *conf->token) {
        snprintf(sh->token, sizeof(sh->token), "%s", conf->token);
        core_http_route_ex(sh->http, "POST", STORE_REMOTE_PATH, h_internal, sh,
                           STORE_REMOTE_MAX_BODY);
    }
    int rc = core_http_start(sh->http, conf->host ? conf->host : "127.0.0.1", conf->port,
                             errstr, errstr_size);
    if (rc) {
        store_http_free(sh);
        return rc;
    }
    *out = sh;
    return CORE_OK;
}

int store_http_port(const store_http_t *sh)
{
    return core_http_port(sh->http);
}

void store_http_free(store_http_t *sh)
{
    if (!sh)
        return;
    core_http_free(sh->http);
    free(sh);
}
