#include "registry/sr_server.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "core/core_http.h"
#include "core/core_log.h"
#include "registry/sr_compat.h"
#include "registry/sr_log.h"
#include "registry/sr_state.h"

#define SR_CONTENT_TYPE "application/vnd.schemaregistry.v1+json"
#define SR_MAX_VERSIONS 10000 /* versions compared in one transitive check */

struct sr_server {
    pthread_mutex_t mu; /* guards state and serialises log appends */
    sr_state_t *state;
    sr_log_t *log;
    core_http_t *http;
};

/* ---- replies -------------------------------------------------------------------- */
static void reply(core_http_req_t *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (!text) {
        core_http_reply_error(req, 500, "out of memory");
        return;
    }
    core_http_reply(req, status, SR_CONTENT_TYPE, text, strlen(text));
    free(text);
}

static void fail(core_http_req_t *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(core_http_req_t *req, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int status = code;
    while (status >= 1000)
        status /= 10;
    reply(req, status, json_pack("{s:i, s:s}", "error_code", code, "message", msg));
}

/* ---- request helpers -------------------------------------------------------------- */

/* Parses a {"schema": "..."} body into canonical text (heap). Answers on error. */
static char *body_schema(core_http_req_t *req)
{
    size_t len;
    const char *body = core_http_req_body(req, &len);
    json_error_t jerr;
    json_t *j = json_loadb(body, len, 0, &jerr);
    if (!j) {
        fail(req, 422, "Unrecognized request body: %s", jerr.text);
        return NULL;
    }
    const char *type = json_string_value(json_object_get(j, "schemaType"));
    json_t *refs = json_object_get(j, "references");
    const char *schema = json_string_value(json_object_get(j, "schema"));
    char *canonical = NULL, why[512];
    if (type && strcmp(type, "AVRO"))
        fail(req, 42201, "Invalid schema: schemaType %s is not supported (only AVRO)", type);
    else if (refs && json_array_size(refs) > 0)
        fail(req, 42201, "Invalid schema: schema references are not supported");
    else if (!schema || !*schema)
        fail(req, 422, "Empty schema");
    else if (sr_schema_canonical(schema, strlen(schema), &canonical, why, sizeof why))
        fail(req, 42201, "Invalid schema: %s", why);
    json_decref(j);
    return canonical;
}

/* "latest", "-1" or a positive integer; 0 = invalid. *latest set for the first two. */
static int parse_version(const char *s, int *latest)
{
    *latest = !strcmp(s, "latest") || !strcmp(s, "-1");
    if (*latest)
        return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return (*end || v < 1 || v > 0x7fffffff) ? 0 : (int)v;
}

/* Finds a version of subject; deleted ones only when include_deleted. Answers on error. */
static const sr_version_t *find_version(sr_server_t *srv, core_http_req_t *req, const char *subject,
                                        const char *vtext, int include_deleted)
{
    int latest;
    int want = parse_version(vtext, &latest);
    if (!want) {
        fail(req, 42202, "The specified version '%s' is not a valid version id. Allowed values are "
                         "between [1, 2^31-1] and the string \"latest\"", vtext);
        return NULL;
    }
    const sr_version_t *vs;
    int n = sr_state_versions(srv->state, subject, &vs);
    if (n < 0) {
        fail(req, 40401, "Subject '%s' not found.", subject);
        return NULL;
    }
    const sr_version_t *found = NULL;
    for (int i = 0; i < n; i++) {
        if (vs[i].deleted && !include_deleted)
            continue;
        if (latest || vs[i].version == want)
            found = &vs[i]; /* ascending order: the last match is the latest */
    }
    if (!found)
        fail(req, 40402, "Version %s not found.", vtext);
    return found;
}

static int append(sr_server_t *srv, core_http_req_t *req, char *key, char *value)
{
    char err[256];
    int rc = sr_log_append(srv->log, key, value, err, sizeof err);
    if (rc)
        fail(req, rc == CORE_ERR_TIMEOUT ? 50002 : 50001, "Error while writing to the store: %s", err);
    else
        sr_state_apply(srv->state, key, strlen(key), value, value ? strlen(value) : 0);
    free(key);
    free(value);
    return rc;
}

static json_t *version_json(sr_server_t *srv, const char *subject, const sr_version_t *v)
{
    return json_pack("{s:s, s:i, s:i, s:s}", "subject", subject, "version", v->version, "id", v->id,
                     "schema", sr_state_schema_by_id(srv->state, v->id));
}

/* ---- handlers ----------------------------------------------------------------------- */
#define SRV ((sr_server_t *)user)

static void h_root(core_http_req_t *req, void *user)
{
    reply(req, 200, json_object());
}

static void h_types(core_http_req_t *req, void *user)
{
    reply(req, 200, json_pack("[s]", "AVRO"));
}

static void h_subjects(core_http_req_t *req, void *user)
{
    const char *d = core_http_req_query(req, "deleted");
    pthread_mutex_lock(&SRV->mu);
    const char **names;
    int n = sr_state_subjects(SRV->state, d && !strcmp(d, "true"), &names);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_string(names[i]));
    pthread_mutex_unlock(&SRV->mu);
    reply(req, 200, arr);
}

static void h_versions(core_http_req_t *req, void *user)
{
    const char *subject = core_http_req_param(req, "s");
    const char *d = core_http_req_query(req, "deleted");
    pthread_mutex_lock(&SRV->mu);
    const sr_version_t *vs;
    int n = sr_state_versions(SRV->state, subject, &vs);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        if (!vs[i].deleted || (d && !strcmp(d, "true")))
            json_array_append_new(arr, json_integer(vs[i].version));
    pthread_mutex_unlock(&SRV->mu);
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        fail(req, 40401, "Subject '%s' not found.", subject);
        return;
    }
    reply(req, 200, arr);
}

static void get_version(core_http_req_t *req, void *user, int raw)
{
    const char *subject = core_http_req_param(req, "s");
    const char *d = core_http_req_query(req, "deleted");
    pthread_mutex_lock(&SRV->mu);
    const sr_version_t *v = find_version(SRV, req, subject, core_http_req_param(req, "v"),
                                         d && !strcmp(d, "true"));
    if (v && raw) {
        const char *text = sr_state_schema_by_id(SRV->state, v->id);
        core_http_reply(req, 200, SR_CONTENT_TYPE, text, strlen(text));
    } else if (v) {
        reply(req, 200, version_json(SRV, subject, v));
    }
    pthread_mutex_unlock(&SRV->mu);
}

static void h_version(core_http_req_t *req, void *user)
{
    get_version(req, user, 0);
}

static void h_version_schema(core_http_req_t *req, void *user)
{
    get_version(req, user, 1);
}

/* Live schema texts of a subject, oldest first (heap array of borrowed strings). */
static int live_schemas(sr_server_t *srv, const char *subject, const char ***out, int *max_version)
{
    const sr_version_t *vs;
    int n = sr_state_versions(srv->state, subject, &vs), k = 0;
    *max_version = 0;
    *out = core_xmalloc(sizeof(char *) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) {
        if (vs[i].version > *max_version)
            *max_version = vs[i].version;
        if (!vs[i].deleted && k < SR_MAX_VERSIONS)
            (*out)[k++] = sr_state_schema_by_id(srv->state, vs[i].id);
    }
    return k;
}

static void h_register(core_http_req_t *req, void *user)
{
    const char *subject = core_http_req_param(req, "s");
    char *canonical = body_schema(req);
    if (!canonical)
        return;
    pthread_mutex_lock(&SRV->mu);
    sr_version_t existing;
    if (sr_state_find_version(SRV->state, subject, canonical, &existing)) {
        reply(req, 200, json_pack("{s:i}", "id", existing.id)); /* idempotent */
        goto out;
    }
    const char **prev;
    int max_version, n = live_schemas(SRV, subject, &prev, &max_version);
    char why[1024];
    sr_level_t level = sr_state_level(SRV->state, subject, NULL);
    int rc = sr_compat_check(level, canonical, prev, n, why, sizeof why);
    free(prev);
    if (rc) {
        fail(req, 409, "Schema being registered is incompatible with an earlier schema for subject "
                       "\"%s\" (%s): %s", subject, sr_level_name(level), why);
        goto out;
    }
    int id = sr_state_find_id(SRV->state, canonical);
    if (!id)
        id = sr_state_next_id(SRV->state);
    if (!id || max_version == INT32_MAX) {
        fail(req, 50001, "Error while registering: %s", /* the log reached Java's int limit */
             id ? "this subject has no version number left" : "no schema id left");
        goto out;
    }
    int version = max_version + 1;
    if (!append(SRV, req, sr_key_schema(subject, version),
                sr_value_schema(subject, version, id, canonical, false))) {
        CORE_INFO("registry", "registered subject %s version %d id %d", subject, version, id);
        reply(req, 200, json_pack("{s:i}", "id", id));
    }
out:
    pthread_mutex_unlock(&SRV->mu);
    free(canonical);
}

static void h_lookup(core_http_req_t *req, void *user)
{
    const char *subject = core_http_req_param(req, "s");
    char *canonical = body_schema(req);
    if (!canonical)
        return;
    pthread_mutex_lock(&SRV->mu);
    const sr_version_t *vs;
    sr_version_t v;
    if (sr_state_versions(SRV->state, subject, &vs) < 0)
        fail(req, 40401, "Subject '%s' not found.", subject);
    else if (!sr_state_find_version(SRV->state, subject, canonical, &v))
        fail(req, 40403, "Schema not found");
    else
        reply(req, 200, version_json(SRV, subject, &v));
    pthread_mutex_unlock(&SRV->mu);
    free(canonical);
}

static int permanent(core_http_req_t *req)
{
    const char *p = core_http_req_query(req, "permanent");
    return p && !strcmp(p, "true");
}

static void h_delete_subject(core_http_req_t *req, void *user)
{
    const char *subject = core_http_req_param(req, "s");
    int hard = permanent(req);
    pthread_mutex_lock(&SRV->mu);
    const sr_version_t *vs;
    int n = sr_state_versions(SRV->state, subject, &vs), live = 0;
    for (int i = 0; i < n; i++)
        live += !vs[i].deleted;
    if (n < 0) {
        fail(req, 40401, "Subject '%s' not found.", subject);
    } else if (!hard && !live) {
        fail(req, 40404, "Subject '%s' was soft deleted. Set permanent=true to delete permanently",
             subject);
    } else if (hard && live) {
        fail(req, 40405, "Subject '%s' was not deleted first before being permanently deleted",
             subject);
    } else {
        /* copy: appends change the version array */
        int *versions = core_xmalloc(sizeof(int) * (size_t)n), *ids = core_xmalloc(sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) {
            versions[i] = vs[i].version;
            ids[i] = vs[i].id;
        }
        json_t *arr = json_array();
        int rc = 0;
        for (int i = 0; i < n && !rc; i++) {
            char *key = sr_key_schema(subject, versions[i]);
            char *val = hard ? NULL
                             : sr_value_schema(subject, versions[i], ids[i],
                                               sr_state_schema_by_id(SRV->state, ids[i]), true);
            rc = append(SRV, req, key, val);
            if (!rc)
                json_array_append_new(arr, json_integer(versions[i]));
        }
        bool own;
        sr_state_level(SRV->state, subject, &own);
        if (!rc && own)
            rc = append(SRV, req, sr_key_config(subject), NULL);
        if (!rc) {
            CORE_INFO("registry", "%s deleted subject %s", hard ? "permanently" : "soft", subject);
            reply(req, 200, arr);
        } else {
            json_decref(arr);
        }
        free(versions);
        free(ids);
    }
    pthread_mutex_unlock(&SRV->mu);
}

static void h_delete_version(core_http_req_t *req, void *user)
{
    const char *subject = core_http_req_param(req, "s");
    int hard = permanent(req);
    pthread_mutex_lock(&SRV->mu);
    const sr_version_t *v = find_version(SRV, req, subject, core_http_req_param(req, "v"), 1);
    if (v && !hard && v->deleted) {
        fail(req, 40406, "Subject '%s' Version %d was soft deleted. Set permanent=true to delete "
                         "permanently", subject, v->version);
    } else if (v && hard && !v->deleted) {
        fail(req, 40407, "Subject '%s' Version %d was not deleted first before being permanently "
                         "deleted", subject, v->version);
    } else if (v) {
        int version = v->version, id = v->id;
        char *val = hard ? NULL
                         : sr_value_schema(subject, version, id,
                                           sr_state_schema_by_id(SRV->state, id), true);
        if (!append(SRV, req, sr_key_schema(subject, version), val))
            reply(req, 200, json_integer(version));
    }
    pthread_mutex_unlock(&SRV->mu);
}

static int id_param(core_http_req_t *req)
{
    char *end;
    long id = strtol(core_http_req_param(req, "id"), &end, 10);
    return *end || id < 1 || id > 0x7fffffff ? 0 : (int)id;
}

static void h_schema_by_id(core_http_req_t *req, void *user)
{
    int id = id_param(req);
    pthread_mutex_lock(&SRV->mu);
    const char *text = id ? sr_state_schema_by_id(SRV->state, id) : NULL;
    if (text)
        reply(req, 200, json_pack("{s:s}", "schema", text));
    else
        fail(req, 40403, "Schema %s not found", core_http_req_param(req, "id"));
    pthread_mutex_unlock(&SRV->mu);
}

static void id_uses(core_http_req_t *req, void *user, int with_versions)
{
    int id = id_param(req);
    pthread_mutex_lock(&SRV->mu);
    if (!id || !sr_state_schema_by_id(SRV->state, id)) {
        fail(req, 40403, "Schema %s not found", core_http_req_param(req, "id"));
    } else {
        const char *subjects[256];
        int versions[256];
        int n = sr_state_id_uses(SRV->state, id, subjects, versions, 256);
        json_t *arr = json_array();
        for (int i = 0; i < n && i < 256; i++)
            json_array_append_new(arr, with_versions ? json_pack("{s:s, s:i}", "subject", subjects[i],
                                                                 "version", versions[i])
                                                     : json_string(subjects[i]));
        reply(req, 200, arr);
    }
    pthread_mutex_unlock(&SRV->mu);
}

static void h_id_versions(core_http_req_t *req, void *user)
{
    id_uses(req, user, 1);
}

static void h_id_subjects(core_http_req_t *req, void *user)
{
    id_uses(req, user, 0);
}

static void h_compat(core_http_req_t *req, void *user)
{
    const char *subject = core_http_req_param(req, "s");
    const char *verbose = core_http_req_query(req, "verbose");
    pthread_mutex_lock(&SRV->mu);
    const sr_version_t *v = find_version(SRV, req, subject, core_http_req_param(req, "v"), 0);
    char *canonical = v ? body_schema(req) : NULL;
    if (canonical) {
        sr_level_t level = sr_state_level(SRV->state, subject, NULL);
        /* one version: use the level's direction, not its transitivity */
        if (level == SR_BACKWARD_TRANSITIVE)
            level = SR_BACKWARD;
        else if (level == SR_FORWARD_TRANSITIVE)
            level = SR_FORWARD;
        else if (level == SR_FULL_TRANSITIVE)
            level = SR_FULL;
        const char *one = sr_state_schema_by_id(SRV->state, v->id);
        char why[1024];
        int rc = sr_compat_check(level, canonical, &one, 1, why, sizeof why);
        json_t *out = json_pack("{s:b}", "is_compatible", rc == 0);
        if (verbose && !strcmp(verbose, "true"))
            json_object_set_new(out, "messages", rc ? json_pack("[s]", why) : json_array());
        reply(req, 200, out);
        free(canonical);
    }
    pthread_mutex_unlock(&SRV->mu);
}

static void h_get_config(core_http_req_t *req, void *user)
{
    const char *subject = core_http_req_param(req, "s");
    const char *fallback = core_http_req_query(req, "defaultToGlobal");
    pthread_mutex_lock(&SRV->mu);
    bool own;
    sr_level_t level = sr_state_level(SRV->state, subject, &own);
    if (subject && !own && !(fallback && !strcmp(fallback, "true")))
        fail(req, 40408, "Subject '%s' does not have subject-level compatibility configured", subject);
    else
        reply(req, 200, json_pack("{s:s}", "compatibilityLevel", sr_level_name(level)));
    pthread_mutex_unlock(&SRV->mu);
}

static void h_put_config(core_http_req_t *req, void *user)
{
    const char *subject = core_http_req_param(req, "s");
    size_t len;
    const char *body = core_http_req_body(req, &len);
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *name = json_string_value(json_object_get(j, "compatibility"));
    sr_level_t level;
    if (!name || !sr_level_parse(name, &level)) {
        fail(req, 42203, "Invalid compatibility level. Valid values are none, backward, forward, "
                         "full, backward_transitive, forward_transitive, and full_transitive");
        json_decref(j);
        return;
    }
    json_decref(j);
    pthread_mutex_lock(&SRV->mu);
    if (!append(SRV, req, sr_key_config(subject), sr_value_config(level)))
        reply(req, 200, json_pack("{s:s}", "compatibility", sr_level_name(level)));
    pthread_mutex_unlock(&SRV->mu);
}

static void h_delete_config(core_http_req_t *req, void *user)
{
    const char *subject = core_http_req_param(req, "s");
    pthread_mutex_lock(&SRV->mu);
    bool own;
    sr_level_t level = sr_state_level(SRV->state, subject, &own);
    const sr_version_t *vs;
    if (!own && sr_state_versions(SRV->state, subject, &vs) < 0)
        fail(req, 40401, "Subject '%s' not found.", subject);
    else if (!own || !append(SRV, req, sr_key_config(subject), NULL))
        reply(req, 200, json_pack("{s:s}", "compatibilityLevel", sr_level_name(level)));
    pthread_mutex_unlock(&SRV->mu);
}

#undef SRV

static int replay_record(void *opaque, const char *key, size_t klen, const char *value, size_t vlen)
{
    return sr_state_apply(opaque, key, klen, value, vlen);
}

int sr_server_start(const sr_server_conf_t *conf, sr_server_t **out, char *errstr, size_t errsz)
{
    sr_server_t *srv = core_xcalloc(1, sizeof *srv);
    pthread_mutex_init(&srv->mu, NULL);
    srv->state = sr_state_new();
    int rc = sr_log_open(conf->brokers, conf->topic, replay_record, srv->state, conf->timeout_ms,
                         &srv->log, errstr, errsz);
    if (rc)
        goto fail;
    core_http_conf_t hc = {.name = "registry", .threads = 2, .max_body = 1 << 20};
    srv->http = core_http_new(&hc);
    static const struct {
        const char *method, *pattern;
        core_http_handler_fn *fn;
    } routes[] = {
        {"GET", "/", h_root},
        {"GET", "/schemas/types", h_types},
        {"GET", "/subjects", h_subjects},
        {"GET", "/subjects/<s>/versions/<v>/schema", h_version_schema},
        {"GET", "/subjects/<s>/versions/<v>", h_version},
        {"DELETE", "/subjects/<s>/versions/<v>", h_delete_version},
        {"GET", "/subjects/<s>/versions", h_versions},
        {"POST", "/subjects/<s>/versions", h_register},
        {"POST", "/subjects/<s>", h_lookup},
        {"DELETE", "/subjects/<s>", h_delete_subject},
        {"GET", "/schemas/ids/<id>/versions", h_id_versions},
        {"GET", "/schemas/ids/<id>/subjects", h_id_subjects},
        {"GET", "/schemas/ids/<id>", h_schema_by_id},
        {"POST", "/compatibility/subjects/<s>/versions/<v>", h_compat},
        {"GET", "/config/<s>", h_get_config},
        {"PUT", "/config/<s>", h_put_config},
        {"DELETE", "/config/<s>", h_delete_config},
        {"GET", "/config", h_get_config},
        {"PUT", "/config", h_put_config},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        core_http_route(srv->http, routes[i].method, routes[i].pattern, routes[i].fn, srv);
    core_http_route(srv->http, "GET", "/metrics", core_http_metrics_handler, srv->http);
    rc = core_http_start(srv->http, conf->host, conf->port, errstr, errsz);
    if (rc)
        goto fail;
    *out = srv;
    return CORE_OK;
fail:
    sr_server_stop(srv);
    return rc;
}

int sr_server_port(const sr_server_t *srv)
{
    return core_http_port(srv->http);
}

void sr_server_stop(sr_server_t *srv)
{
    if (!srv)
        return;
    core_http_free(srv->http);
    sr_log_close(srv->log);
    sr_state_free(srv->state);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}
