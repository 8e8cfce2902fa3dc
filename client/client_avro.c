#include "client/client_avro.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/core_alloc.h"
#include "core/core_buf.h"
#include "core/core_err.h"
#include "core/core_fs.h"
#include "core/core_httpc.h"
#include "registry/sr_avro.h"

#define CA_CT "application/vnd.schemaregistry.v1+json"
#define CA_MAX_SCHEMA_FILE (1 << 20)

typedef struct ca_codec {
    int32_t id;
    sr_avro_t *codec;
} ca_codec_t;

struct client_avro {
    char registry[512];
    int32_t id; /* producer */
    sr_avro_t *codec; /* producer */
    ca_codec_t *cache; /* consumer */
    size_t ncache;
    core_buf_t out;
    char *json; /* consumer output, from sr_avro_decode_json */
};

/* One registry call; returns 0 with the parsed JSON answer (any status) in
 * *answer and the status in *status, or an error (unreachable, not JSON). */
static int registry_call(const client_avro_t *ca, const char *method, const char *path,
                         const char *body, long *status, json_t **answer, char *errstr,
                         size_t es)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", ca->registry, path);
    core_httpc_req_t req = {.method = method, .url = url,
                            .content_type = body ? CA_CT : NULL,
                            .body = body, .body_len = body ? strlen(body) : 0};
    core_httpc_resp_t resp;
    core_httpc_resp_init(&resp);
    int rc = core_httpc_do(&req, &resp, errstr, es);
    if (!rc) {
        *status = resp.status;
        *answer = json_loads(core_httpc_text(&resp), 0, NULL);
        if (!*answer)
            rc = core_errf(CORE_ERR_MALFORMED, errstr, es, "registry %s: answer is not JSON (HTTP %ld)",
                           url, resp.status);
    }
    core_httpc_resp_fini(&resp);
    return rc;
}

static int registry_error(json_t *answer, long status, const char *what, char *errstr, size_t es)
{
    const char *msg = json_string_value(json_object_get(answer, "message"));
    return core_errf(status == 404 ? CORE_ERR_NOT_FOUND : CORE_ERR_IO, errstr, es,
                     "%s: HTTP %ld: %s", what, status, msg ? msg : "no message");
}

static char *read_file(const char *path, char *errstr, size_t es)
{
    char *buf;
    size_t n;
    int rc = core_fs_read_file(path, CA_MAX_SCHEMA_FILE, &buf, &n);
    if (rc == CORE_ERR_TOO_LARGE)
        core_errf(rc, errstr, es, "%s: larger than %d bytes", path, CA_MAX_SCHEMA_FILE);
    else if (rc)
        core_errf(CORE_ERR_IO, errstr, es, "%s: %s", path, strerror(rc));
    return rc ? NULL : buf;
}

int client_avro_producer_new(const char *registry, const char *subject, const char *schema_file,
                             client_avro_t **out, char *errstr, size_t es)
{
    client_avro_t *ca = core_xcalloc(1, sizeof *ca);
    snprintf(ca->registry, sizeof ca->registry, "%s", registry);
    core_buf_init(&ca->out);
    char path[600];
    json_t *answer = NULL;
    char *schema = NULL;
    long status = 0;
    int rc;
    if (schema_file) {
        if (!(schema = read_file(schema_file, errstr, es))) {
            rc = CORE_ERR_IO;
            goto fail;
        }
        json_t *body = json_pack("{s:s}", "schema", schema);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        snprintf(path, sizeof path, "/subjects/%s/versions", subject);
        rc = registry_call(ca, "POST", path, text, &status, &answer, errstr, es);
        free(text);
        if (rc)
            goto fail;
        if (status != 200 || !json_is_integer(json_object_get(answer, "id"))) {
            rc = registry_error(answer, status, "registering the schema", errstr, es);
            goto fail;
        }
    } else {
        snprintf(path, sizeof path, "/subjects/%s/versions/latest", subject);
        if ((rc = registry_call(ca, "GET", path, NULL, &status, &answer, errstr, es)))
            goto fail;
        const char *s = json_string_value(json_object_get(answer, "schema"));
        if (status != 200 || !s || !json_is_integer(json_object_get(answer, "id"))) {
            rc = registry_error(answer, status, "the subject's latest schema", errstr, es);
            goto fail;
        }
        schema = core_xstrdup(s);
    }
    ca->id = (int32_t)json_integer_value(json_object_get(answer, "id"));
    if ((rc = sr_avro_new(schema, &ca->codec, errstr, es)))
        goto fail;
    json_decref(answer);
    free(schema);
    *out = ca;
    return 0;
fail:
    json_decref(answer);
    free(schema);
    client_avro_free(ca);
    return rc;
}

int client_avro_consumer_new(const char *registry, client_avro_t **out, char *errstr, size_t es)
{
    (void)errstr;
    (void)es;
    client_avro_t *ca = core_xcalloc(1, sizeof *ca);
    snprintf(ca->registry, sizeof ca->registry, "%s", registry);
    core_buf_init(&ca->out);
    *out = ca;
    return 0;
}

void client_avro_free(client_avro_t *ca)
{
    if (!ca)
        return;
    sr_avro_free(ca->codec);
    for (size_t i = 0; i < ca->ncache; i++)
        sr_avro_free(ca->cache[i].codec);
    free(ca->cache);
    free(ca->json);
    core_buf_fini(&ca->out);
    free(ca);
}

int32_t client_avro_schema_id(const client_avro_t *ca)
{
    return ca->id;
}

int client_avro_encode(void *opaque, const void *in, size_t in_len, const void **out,
                       size_t *out_len, char *errstr, size_t es)
{
    client_avro_t *ca = opaque;
    core_buf_reset(&ca->out);
    int rc = sr_avro_encode_json(ca->codec, ca->id, in, in_len, &ca->out, errstr, es);
    if (rc)
        return rc;
    *out = ca->out.data;
    *out_len = ca->out.len;
    return 0;
}

/* The codec for id, fetched on first sight; cached forever (ids are immutable). */
static int codec_for(client_avro_t *ca, int32_t id, sr_avro_t **codec, char *errstr, size_t es)
{
    for (size_t i = 0; i < ca->ncache; i++)
        if (ca->cache[i].id == id) {
            *codec = ca->cache[i].codec;
            return 0;
        }
    if (ca->ncache >= CLIENT_AVRO_MAX_SCHEMAS)
        return core_errf(CORE_ERR_TOO_LARGE, errstr, es, "more than %d schema ids",
                         CLIENT_AVRO_MAX_SCHEMAS);
    char path[64];
    snprintf(path, sizeof path, "/schemas/ids/%d", (int)id);
    long status = 0;
    json_t *answer = NULL;
    int rc = registry_call(ca, "GET", path, NULL, &status, &answer, errstr, es);
    if (rc)
        return rc;
    const char *s = json_string_value(json_object_get(answer, "schema"));
    if (status != 200 || !s) {
        char what[64];
        snprintf(what, sizeof what, "schema id %d", (int)id);
        rc = registry_error(answer, status, what, errstr, es);
        json_decref(answer);
        return rc;
    }
    sr_avro_t *c = NULL;
    rc = sr_avro_new(s, &c, errstr, es);
    json_decref(answer);
    if (rc)
        return rc;
    ca->cache = core_xrealloc(ca->cache, (ca->ncache + 1) * sizeof *ca->cache);
    ca->cache[ca->ncache++] = (ca_codec_t){id, c};
    *codec = c;
    return 0;
}

int client_avro_decode(void *opaque, const void *in, size_t in_len, const void **out,
                       size_t *out_len, char *errstr, size_t es)
{
    client_avro_t *ca = opaque;
    int32_t id;
    const uint8_t *payload;
    size_t plen;
    int rc = sr_avro_frame(in, in_len, &id, &payload, &plen, errstr, es);
    if (rc)
        return rc;
    sr_avro_t *codec = NULL;
    if ((rc = codec_for(ca, id, &codec, errstr, es)))
        return rc;
    free(ca->json);
    ca->json = NULL;
    if ((rc = sr_avro_decode_json(codec, payload, plen, &ca->json, errstr, es)))
        return rc;
    *out = ca->json;
    *out_len = strlen(ca->json);
    return 0;
}
