#include "click_reader.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <curl/curl.h>
#include <jansson.h>

/* Same full name as the Click schema: record names must match under
 * resolution. item and rating default to null. avro-c's resolved reader does
 * not fill reader fields from defaults when the writer lacks them, so the
 * reader used for a writer is this schema minus the optional fields the
 * writer does not have (reader_for): the same result as applying the
 * defaults. */
#define CR_SCHEMA_HEAD                                                                         \
    "{\"type\":\"record\",\"name\":\"Click\",\"namespace\":\"eddy.clickstream\",\"fields\":[" \
    "{\"name\":\"ts\",\"type\":\"long\"},"                                                     \
    "{\"name\":\"userid\",\"type\":\"string\"},"                                               \
    "{\"name\":\"event\",\"type\":\"string\"}"
#define CR_SCHEMA_ITEM ",{\"name\":\"item\",\"type\":[\"null\",\"string\"],\"default\":null}"
#define CR_SCHEMA_RATING ",{\"name\":\"rating\",\"type\":[\"null\",\"int\"],\"default\":null}"

const char CLICK_READER_SCHEMA[] = CR_SCHEMA_HEAD CR_SCHEMA_ITEM CR_SCHEMA_RATING "]}";

typedef struct cr_schema {
    int32_t id;
    bool bad; /* unknown or unresolvable: reason says why */
    char reason[160];
    avro_schema_t writer;
    avro_schema_t reader; /* CLICK_READER_SCHEMA minus what the writer lacks */
    avro_value_iface_t *writer_iface;
    avro_value_iface_t *resolver;
    avro_value_t writer_value;
    avro_value_t resolved;
} cr_schema_t;

struct click_reader {
    char registry[512];
    avro_schema_t reader;
    avro_reader_t mem;
    cr_schema_t schemas[CLICK_READER_MAX_SCHEMAS];
    int nschemas;
};

typedef struct body {
    char *p;
    size_t n;
} body_t;

static size_t collect(char *p, size_t size, size_t n, void *opaque)
{
    body_t *b = opaque;
    size_t len = size * n;
    if (b->n + len > CLICK_READER_MAX_SCHEMA_BYTES)
        return 0;
    char *np = realloc(b->p, b->n + len + 1);
    if (!np)
        return 0;
    b->p = np;
    memcpy(b->p + b->n, p, len);
    b->n += len;
    b->p[b->n] = 0;
    return len;
}

/* GET /schemas/ids/<id>: CLICK_OK with *schema_json (free()), CLICK_EBAD when
 * the registry answers that it does not know the id (or answers garbage),
 * CLICK_EUNAVAILABLE when it cannot be reached or fails (5xx). */
static int fetch_schema(click_reader_t *cr, int32_t id, char **schema_json, char *reason,
                        size_t rs)
{
    char url[600];
    snprintf(url, sizeof url, "%s/schemas/ids/%d", cr->registry, (int)id);
    body_t b = {0};
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(reason, rs, "curl_easy_init failed");
        return CLICK_EUNAVAILABLE;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    int rc;
    if (cc != CURLE_OK || status >= 500 || status == 0) {
        snprintf(reason, rs, "schema registry %s: %s (HTTP %ld)", url,
                 cc != CURLE_OK ? curl_easy_strerror(cc) : "server error", status);
        rc = CLICK_EUNAVAILABLE;
        goto done;
    }
    json_t *answer = b.p ? json_loads(b.p, 0, NULL) : NULL;
    const char *s = json_string_value(json_object_get(answer, "schema"));
    if (status == 200 && s && (*schema_json = strdup(s)) != NULL) {
        rc = CLICK_OK;
    } else {
        snprintf(reason, rs, "unknown schema id %d (registry HTTP %ld)", (int)id, status);
        rc = CLICK_EBAD;
    }
    json_decref(answer);
done:
    free(b.p);
    return rc;
}

static void schema_fini(cr_schema_t *s)
{
    if (s->bad)
        return;
    avro_value_decref(&s->resolved);
    avro_value_decref(&s->writer_value);
    avro_value_iface_decref(s->resolver);
    avro_value_iface_decref(s->writer_iface);
    avro_schema_decref(s->reader);
    avro_schema_decref(s->writer);
}

/* The reader schema for writer (see CLICK_READER_SCHEMA); NULL if it does
 * not parse (it always does). */
static avro_schema_t reader_for(avro_schema_t writer)
{
    /* _get_index, not _get: avro-c 1.11's avro_schema_record_field_get reads an
     * uninitialised pointer when the field is absent */
    int item = is_avro_record(writer) && avro_schema_record_field_get_index(writer, "item") >= 0;
    int rating = is_avro_record(writer) && avro_schema_record_field_get_index(writer, "rating") >= 0;
    char json[sizeof CLICK_READER_SCHEMA];
    snprintf(json, sizeof json, "%s%s%s]}", CR_SCHEMA_HEAD, item ? CR_SCHEMA_ITEM : "",
             rating ? CR_SCHEMA_RATING : "");
    avro_schema_t r = NULL;
    if (avro_schema_from_json_length(json, strlen(json), &r))
        return NULL;
    return r;
}

/* Caches id's entry from the registry's answer (rc from fetch_schema, CLICK_OK
 * or CLICK_EBAD; text is freed here) and resolves it against the reader. */
static cr_schema_t *schema_add(click_reader_t *cr, int32_t id, int rc, char *text)
{
    if (cr->nschemas == CLICK_READER_MAX_SCHEMAS) { /* recycle the oldest entry */
        schema_fini(&cr->schemas[0]);
        memmove(&cr->schemas[0], &cr->schemas[1],
                sizeof cr->schemas[0] * (CLICK_READER_MAX_SCHEMAS - 1));
        cr->nschemas--;
    }
    cr_schema_t *s = &cr->schemas[cr->nschemas++];
    memset(s, 0, sizeof *s);
    s->id = id;
    s->bad = true;
    if (rc != CLICK_OK) {
        snprintf(s->reason, sizeof s->reason, "unknown schema id %d", (int)id);
        return s;
    }
    if (avro_schema_from_json_length(text, strlen(text), &s->writer)) {
        snprintf(s->reason, sizeof s->reason, "schema id %d does not parse: %.100s", (int)id,
                 avro_strerror());
        goto out;
    }
    s->reader = reader_for(s->writer);
    s->resolver = s->reader ? avro_resolved_reader_new(s->writer, s->reader) : NULL;
    if (!s->resolver) {
        snprintf(s->reason, sizeof s->reason, "schema id %d does not resolve to Click: %.90s",
                 (int)id, avro_strerror());
        if (s->reader)
            avro_schema_decref(s->reader);
        avro_schema_decref(s->writer);
        goto out;
    }
    s->writer_iface = avro_generic_class_from_schema(s->writer);
    if (!s->writer_iface || avro_generic_value_new(s->writer_iface, &s->writer_value)) {
        snprintf(s->reason, sizeof s->reason, "schema id %d: %.120s", (int)id, avro_strerror());
        if (s->writer_iface)
            avro_value_iface_decref(s->writer_iface);
        avro_value_iface_decref(s->resolver);
        avro_schema_decref(s->reader);
        avro_schema_decref(s->writer);
        goto out;
    }
    avro_resolved_reader_new_value(s->resolver, &s->resolved);
    avro_resolved_reader_set_source(&s->resolved, &s->writer_value);
    s->bad = false;
out:
    free(text);
    return s;
}

/* The cached entry for id, fetched and resolved on first use. NULL (reason
 * set) only when the registry is unavailable. */
static cr_schema_t *schema_get(click_reader_t *cr, int32_t id, char *reason, size_t rs)
{
    for (int i = 0; i < cr->nschemas; i++)
        if (cr->schemas[i].id == id)
            return &cr->schemas[i];
    char *text = NULL;
    int rc = fetch_schema(cr, id, &text, reason, rs);
    if (rc == CLICK_EUNAVAILABLE)
        return NULL;
    return schema_add(cr, id, rc, text);
}

void click_reader__put_schema(click_reader_t *cr, int32_t id, const char *schema_json)
{
    char *text = strdup(schema_json);
    if (text)
        schema_add(cr, id, CLICK_OK, text);
}

/* ---- the datum walk before avro-c ----------------------------------------------
 * avro-c allocates a string's declared length before it reads it (a ten-byte
 * record can ask for a terabyte: fuzz_click_reader) and leaks on some error
 * paths, and a record on the clicks topic is any producer's bytes. So each
 * datum is first walked against the writer schema with every length checked
 * against the bytes that remain, and only one that is well-formed and fills
 * the frame exactly reaches avro-c. registry/sr_avro.c walks datums the same
 * way; jobs may not include registry/ (docs/ARCHITECTURE.md, layers), hence
 * this copy. */
#define CR_MAX_DEPTH 64

typedef struct walk {
    const uint8_t *p, *end;
    long budget; /* items visited: bounds the work a hostile datum can cause */
} walk_t;

static bool w_long(walk_t *r, int64_t *out)
{
    uint64_t u = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end)
            return false;
        uint8_t b = *r->p++;
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)((u >> 1) ^ -(u & 1));
            return true;
        }
    }
    return false;
}

static bool w_skip(walk_t *r, int64_t n)
{
    if (n < 0 || n > r->end - r->p)
        return false;
    r->p += n;
    return true;
}

static bool w_datum(walk_t *r, avro_schema_t s, int depth)
{
    int64_t n;
    if (depth > CR_MAX_DEPTH || --r->budget < 0)
        return false;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return true;
    case AVRO_BOOLEAN:
        return r->p < r->end && *r->p++ <= 1;
    case AVRO_INT32:
        return w_long(r, &n) && n >= INT32_MIN && n <= INT32_MAX;
    case AVRO_INT64:
        return w_long(r, &n);
    case AVRO_FLOAT:
        return w_skip(r, 4);
    case AVRO_DOUBLE:
        return w_skip(r, 8);
    case AVRO_STRING:
    case AVRO_BYTES:
        return w_long(r, &n) && w_skip(r, n);
    case AVRO_FIXED:
        return w_skip(r, avro_schema_fixed_size(s));
    case AVRO_ENUM:
        return w_long(r, &n) && n >= 0 && n < (int64_t)avro_schema_enum_number_of_symbols(s);
    case AVRO_UNION:
        return w_long(r, &n) && n >= 0 && n < (int64_t)avro_schema_union_size(s) &&
               w_datum(r, avro_schema_union_branch(s, (int)n), depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if (!w_datum(r, avro_schema_record_field_get_by_index(s, (int)i), depth + 1))
                return false;
        return true;
    case AVRO_ARRAY:
    case AVRO_MAP:
        for (;;) { /* blocks: count (negative: then a byte size), items; 0 ends */
            if (!w_long(r, &n))
                return false;
            if (n == 0)
                return true;
            if (n < 0) {
                int64_t bytes;
                if (n == INT64_MIN || !w_long(r, &bytes) || bytes < 0)
                    return false;
                n = -n;
            }
            for (int64_t i = 0; i < n; i++) {
                if (avro_typeof(s) == AVRO_MAP) {
                    int64_t klen;
                    if (!w_long(r, &klen) || !w_skip(r, klen) ||
                        !w_datum(r, avro_schema_map_values(s), depth + 1))
                        return false;
                } else if (!w_datum(r, avro_schema_array_items(s), depth + 1)) {
                    return false;
                }
            }
        }
    default:
        return false;
    }
}

/* An optional (["null", T]) field: false when null or absent. */
static bool opt_field(avro_value_t *rec, const char *name, avro_value_t *out)
{
    avro_value_t u;
    int disc;
    if (avro_value_get_by_name(rec, name, &u, NULL) || avro_value_get_discriminant(&u, &disc) ||
        disc == 0)
        return false;
    return avro_value_get_current_branch(&u, out) == 0;
}

int click_reader_decode(click_reader_t *cr, const void *msg, size_t len, click_t *out,
                        char *reason, size_t rs)
{
    const uint8_t *v = msg;
    if (!v || len < 5) {
        snprintf(reason, rs, "short frame (%zu bytes, the header alone is 5)", v ? len : 0);
        return CLICK_EBAD;
    }
    if (v[0] != 0) {
        snprintf(reason, rs, "Unknown magic byte %u", v[0]);
        return CLICK_EBAD;
    }
    int32_t id = (int32_t)((uint32_t)v[1] << 24 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 8 | v[4]);
    cr_schema_t *s = schema_get(cr, id, reason, rs);
    if (!s)
        return CLICK_EUNAVAILABLE;
    if (s->bad) {
        snprintf(reason, rs, "%s", s->reason);
        return CLICK_EBAD;
    }
    walk_t wk = {v + 5, v + len, (long)(len - 5) * 2 + 64};
    if (!w_datum(&wk, s->writer, 0) || wk.p != wk.end) {
        snprintf(reason, rs, "datum does not decode with schema id %d: truncated, malformed "
                             "or trailing bytes", (int)id);
        return CLICK_EBAD;
    }
    avro_reader_memory_set_source(cr->mem, (const char *)v + 5, (int64_t)(len - 5));
    avro_value_reset(&s->writer_value);
    if (avro_value_read(cr->mem, &s->writer_value)) {
        snprintf(reason, rs, "datum does not decode with schema id %d: %.120s", (int)id,
                 avro_strerror());
        return CLICK_EBAD;
    }
    char extra;
    if (avro_read(cr->mem, &extra, 1) == 0) { /* avro-c stops at the datum's end: more is an error */
        snprintf(reason, rs, "datum of schema id %d has trailing bytes", (int)id);
        return CLICK_EBAD;
    }
    avro_value_t f;
    size_t n;
    memset(out, 0, sizeof *out);
    if (avro_value_get_by_name(&s->resolved, "ts", &f, NULL) || avro_value_get_long(&f, &out->ts) ||
        avro_value_get_by_name(&s->resolved, "userid", &f, NULL) ||
        avro_value_get_string(&f, &out->userid, &n) ||
        avro_value_get_by_name(&s->resolved, "event", &f, NULL) ||
        avro_value_get_string(&f, &out->event, &n)) {
        snprintf(reason, rs, "schema id %d: click without ts/userid/event: %.100s", (int)id,
                 avro_strerror());
        return CLICK_EBAD;
    }
    if (opt_field(&s->resolved, "item", &f) && avro_value_get_string(&f, &out->item, &n))
        out->item = NULL;
    out->has_rating = opt_field(&s->resolved, "rating", &f) && !avro_value_get_int(&f, &out->rating);
    return CLICK_OK;
}

click_reader_t *click_reader_new(const char *registry_url)
{
    click_reader_t *cr = calloc(1, sizeof *cr);
    if (!cr)
        return NULL;
    snprintf(cr->registry, sizeof cr->registry, "%s", registry_url);
    if (avro_schema_from_json_length(CLICK_READER_SCHEMA, strlen(CLICK_READER_SCHEMA),
                                     &cr->reader))
        goto fail;
    cr->mem = avro_reader_memory("", 0);
    if (!cr->mem)
        goto fail;
    return cr;
fail:
    click_reader_free(cr);
    return NULL;
}

void click_reader_free(click_reader_t *cr)
{
    if (!cr)
        return;
    for (int i = 0; i < cr->nschemas; i++)
        schema_fini(&cr->schemas[i]);
    if (cr->mem)
        avro_reader_free(cr->mem);
    if (cr->reader)
        avro_schema_decref(cr->reader);
    free(cr);
}
