#include "registry/sr_avro.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "registry/sr_compat.h"

#define SR_AVRO_MAX_DEPTH 64

struct sr_avro {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    json_t *schema_json; /* for field defaults */
};

int sr_avro_new(const char *schema_json, sr_avro_t **out, char *errstr, size_t errsz)
{
    /* The text comes from a registry (any `_schemas` record) or a file: run
     * the registry's own checks first, which refuse what avro-c would accept
     * only after leaking (a name defined twice: fuzz_avro_reader). */
    char *canon, why[512];
    if (sr_schema_canonical(schema_json, strlen(schema_json), &canon, why, sizeof why))
        return core_errf(CORE_ERR_MALFORMED, errstr, errsz, "%s%s",
                         strncmp(why, "invalid Avro schema", 19) ? "invalid Avro schema: " : "",
                         why);
    free(canon);
    avro_schema_t s;
    if (avro_schema_from_json_length(schema_json, strlen(schema_json), &s))
        return core_errf(CORE_ERR_MALFORMED, errstr, errsz, "invalid Avro schema: %s",
                         avro_strerror());
    sr_avro_t *c = core_xcalloc(1, sizeof *c);
    c->schema = s;
    c->iface = avro_generic_class_from_schema(s);
    c->schema_json = json_loads(schema_json, JSON_DECODE_ANY, NULL);
    if (!c->iface) {
        sr_avro_free(c);
        return core_errf(CORE_ERR_MALFORMED, errstr, errsz, "unusable Avro schema: %s",
                         avro_strerror());
    }
    *out = c;
    return CORE_OK;
}

void sr_avro_free(sr_avro_t *c)
{
    if (!c)
        return;
    if (c->iface)
        avro_value_iface_decref(c->iface);
    avro_schema_decref(c->schema);
    json_decref(c->schema_json);
    free(c);
}

/* The default of field `name` in the record named `record` in the schema JSON. */
static json_t *find_default(json_t *node, const char *record, const char *field, int depth)
{
    if (!node || depth > SR_AVRO_MAX_DEPTH)
        return NULL;
    if (json_is_array(node)) {
        size_t i;
        json_t *b;
        json_array_foreach(node, i, b)
        {
            json_t *d = find_default(b, record, field, depth + 1);
            if (d)
                return d;
        }
        return NULL;
    }
    if (!json_is_object(node))
        return NULL;
    const char *name = json_string_value(json_object_get(node, "name"));
    json_t *fields = json_object_get(node, "fields");
    size_t i;
    json_t *f;
    if (name && fields) {
        const char *short_name = strrchr(name, '.') ? strrchr(name, '.') + 1 : name;
        if (!strcmp(short_name, record))
            json_array_foreach(fields, i, f) if (!strcmp(json_string_value(json_object_get(f, "name")) ?: "", field)) return json_object_get(f, "default");
        json_array_foreach(fields, i, f)
        {
            json_t *d = find_default(json_object_get(f, "type"), record, field, depth + 1);
            if (d)
                return d;
        }
    }
    json_t *d = find_default(json_object_get(node, "items"), record, field, depth + 1);
    if (!d)
        d = find_default(json_object_get(node, "values"), record, field, depth + 1);
    if (!d && json_is_object(json_object_get(node, "type")))
        d = find_default(json_object_get(node, "type"), record, field, depth + 1);
    return d;
}

typedef struct enc {
    sr_avro_t *codec;
    char *err;
    size_t errsz;
    char path[512];
} enc_t;

static int bad(enc_t *e, const char *what)
{
    return core_errf(CORE_ERR_MALFORMED, e->err, e->errsz, "%s%s%s", e->path, *e->path ? ": " : "",
                     what);
}

/* Bytes from a JSON string whose code points are 0..255 (Avro JSON encoding). */
static int json_bytes(enc_t *e, json_t *j, uint8_t **out, size_t *n)
{
    const char *s = json_string_value(j);
    size_t len = json_string_length(j);
    uint8_t *b = core_xmalloc(len + 1);
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x80) {
            b[k++] = ch;
            i++;
        } else if ((ch & 0xe0) == 0xc0 && i + 1 < len && ch <= 0xc3) {
            b[k++] = (uint8_t)(((ch & 0x1f) << 6) | (s[i + 1] & 0x3f));
            i += 2;
        } else {
            free(b);
            return bad(e, "bytes must be a string of code points 0-255");
        }
    }
    *out = b;
    *n = k;
    return CORE_OK;
}

static int set_value(enc_t *e, avro_value_t *v, json_t *j, int depth);

static bool fits(avro_schema_t s, json_t *j)
{
    switch (avro_typeof(s)) {
    case AVRO_NULL: return json_is_null(j);
    case AVRO_BOOLEAN: return json_is_boolean(j);
    case AVRO_INT32:
    case AVRO_INT64: return json_is_integer(j);
    case AVRO_FLOAT:
    case AVRO_DOUBLE: return json_is_number(j);
    case AVRO_STRING:
    case AVRO_BYTES:
    case AVRO_ENUM:
    case AVRO_FIXED: return json_is_string(j);
    case AVRO_ARRAY: return json_is_array(j);
    case AVRO_MAP:
    case AVRO_RECORD: return json_is_object(j);
    default: return false;
    }
}

static const char *branch_name(avro_schema_t s)
{
    const char *n = avro_schema_type_name(s);
    return n ? n : "";
}

static int set_union(enc_t *e, avro_value_t *v, json_t *j, int depth)
{
    avro_schema_t us = avro_value_get_schema(v);
    size_t nb = avro_schema_union_size(us);
    avro_value_t branch;
    /* {"type": value}: Avro's own JSON encoding of a union */
    if (json_is_object(j) && json_object_size(j) == 1) {
        const char *key = json_object_iter_key(json_object_iter(j));
        for (size_t i = 0; i < nb; i++) {
            avro_schema_t bs = avro_schema_union_branch(us, (int)i);
            const char *full = avro_schema_name(bs);
            if (!strcmp(branch_name(bs), key) || (full && !strcmp(full, key))) {
                if (avro_value_set_branch(v, (int)i, &branch))
                    return bad(e, avro_strerror());
                return set_value(e, &branch, json_object_iter_value(json_object_iter(j)), depth + 1);
            }
        }
    }
    for (size_t i = 0; i < nb; i++) {
        avro_schema_t bs = avro_schema_union_branch(us, (int)i);
        if (fits(bs, j)) {
            if (avro_value_set_branch(v, (int)i, &branch))
                return bad(e, avro_strerror());
            return set_value(e, &branch, j, depth + 1);
        }
    }
    return bad(e, "value fits no branch of the union");
}

static int set_record(enc_t *e, avro_value_t *v, json_t *j, int depth)
{
    if (!json_is_object(j))
        return bad(e, "expected an object for a record");
    avro_schema_t rs = avro_value_get_schema(v);
    size_t nf = avro_schema_record_size(rs);
    size_t plen = strlen(e->path);
    for (size_t i = 0; i < nf; i++) {
        const char *fname = avro_schema_record_field_name(rs, (int)i);
        avro_value_t field;
        avro_value_get_by_index(v, i, &field, NULL);
        snprintf(e->path + plen, sizeof e->path - plen, "%s%s", plen ? "." : "", fname);
        json_t *fj = json_object_get(j, fname);
        if (!fj)
            fj = find_default(e->codec->schema_json, avro_schema_name(rs), fname, 0);
        if (!fj) {
            avro_schema_t fs = avro_schema_record_field_get_by_index(rs, (int)i);
            if (avro_typeof(fs) == AVRO_UNION)
                fj = json_null();
            else
                return bad(e, "missing field (no default)");
        }
        int rc = set_value(e, &field, fj, depth + 1);
        if (rc)
            return rc;
    }
    e->path[plen] = 0;
    return CORE_OK;
}

static int set_value(enc_t *e, avro_value_t *v, json_t *j, int depth)
{
    if (depth > SR_AVRO_MAX_DEPTH)
        return bad(e, "value nests too deeply");
    avro_schema_t s = avro_value_get_schema(v);
    int rc = 0;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        if (!json_is_null(j))
            return bad(e, "expected null");
        rc = avro_value_set_null(v);
        break;
    case AVRO_BOOLEAN:
        if (!json_is_boolean(j))
            return bad(e, "expected a boolean");
        rc = avro_value_set_boolean(v, json_is_true(j));
        break;
    case AVRO_INT32:
        if (!json_is_integer(j) || json_integer_value(j) < INT32_MIN || json_integer_value(j) > INT32_MAX)
            return bad(e, "expected a 32-bit integer");
        rc = avro_value_set_int(v, (int32_t)json_integer_value(j));
        break;
    case AVRO_INT64:
        if (!json_is_integer(j))
            return bad(e, "expected an integer");
        rc = avro_value_set_long(v, json_integer_value(j));
        break;
    case AVRO_FLOAT:
        if (!json_is_number(j))
            return bad(e, "expected a number");
        rc = avro_value_set_float(v, (float)json_number_value(j));
        break;
    case AVRO_DOUBLE:
        if (!json_is_number(j))
            return bad(e, "expected a number");
        rc = avro_value_set_double(v, json_number_value(j));
        break;
    case AVRO_STRING:
        if (!json_is_string(j))
            return bad(e, "expected a string");
        rc = avro_value_set_string_len(v, json_string_value(j), json_string_length(j) + 1);
        break;
    case AVRO_BYTES:
    case AVRO_FIXED: {
        if (!json_is_string(j))
            return bad(e, "expected a string of bytes");
        uint8_t *b;
        size_t n;
        if ((rc = json_bytes(e, j, &b, &n)))
            return rc;
        if (avro_typeof(s) == AVRO_FIXED && (int64_t)n != avro_schema_fixed_size(s)) {
            free(b);
            return bad(e, "fixed value has the wrong size");
        }
        rc = avro_typeof(s) == AVRO_FIXED ? avro_value_set_fixed(v, b, n) : avro_value_set_bytes(v, b, n);
        free(b);
        break;
    }
    case AVRO_ENUM: {
        int idx = json_is_string(j) ? avro_schema_enum_get_by_name(s, json_string_value(j)) : -1;
        if (idx < 0)
            return bad(e, "not a symbol of the enum");
        rc = avro_value_set_enum(v, idx);
        break;
    }
    case AVRO_ARRAY: {
        if (!json_is_array(j))
            return bad(e, "expected an array");
        size_t i;
        json_t *x;
        json_array_foreach(j, i, x)
        {
            avro_value_t item;
            if (avro_value_append(v, &item, NULL))
                return bad(e, avro_strerror());
            if ((rc = set_value(e, &item, x, depth + 1)))
                return rc;
        }
        return CORE_OK;
    }
    case AVRO_MAP: {
        if (!json_is_object(j))
            return bad(e, "expected an object for a map");
        const char *k;
        json_t *x;
        json_object_foreach(j, k, x)
        {
            avro_value_t item;
            if (avro_value_add(v, k, &item, NULL, NULL))
                return bad(e, avro_strerror());
            if ((rc = set_value(e, &item, x, depth + 1)))
                return rc;
        }
        return CORE_OK;
    }
    case AVRO_RECORD:
        return set_record(e, v, j, depth);
    case AVRO_UNION:
        return set_union(e, v, j, depth);
    default:
        return bad(e, "unsupported Avro type");
    }
    return rc ? bad(e, avro_strerror()) : CORE_OK;
}

int sr_avro_encode_json(sr_avro_t *c, int32_t schema_id, const char *json, size_t len,
                        core_buf_t *out, char *errstr, size_t errsz)
{
    json_error_t jerr;
    json_t *j = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
    if (!j)
        return core_errf(CORE_ERR_MALFORMED, errstr, errsz, "invalid JSON: %s", jerr.text);
    avro_value_t v;
    avro_generic_value_new(c->iface, &v);
    enc_t e = {.codec = c, .err = errstr, .errsz = errsz};
    int rc = set_value(&e, &v, j, 0);
    json_decref(j);
    if (!rc) {
        size_t size;
        avro_value_sizeof(&v, &size);
        size_t start = out->len;
        core_buf_reserve(out, SR_AVRO_HEADER + size);
        core_wr_i8(out, SR_AVRO_MAGIC);
        core_wr_i32(out, schema_id);
        avro_writer_t w = avro_writer_memory((char *)out->data + out->len, (int64_t)size);
        if (avro_value_write(w, &v)) {
            out->len = start;
            rc = core_errf(CORE_ERR_MALFORMED, errstr, errsz, "encoding failed: %s", avro_strerror());
        } else {
            out->len += size;
        }
        avro_writer_free(w);
    }
    avro_value_decref(&v);
    return rc;
}

int sr_avro_frame(const uint8_t *msg, size_t len, int32_t *schema_id, const uint8_t **payload,
                  size_t *payload_len, char *errstr, size_t errsz)
{
    if (len < SR_AVRO_HEADER)
        return core_errf(CORE_ERR_MALFORMED, errstr, errsz,
                         "message of %zu bytes is shorter than the 5-byte header", len);
    if (msg[0] != SR_AVRO_MAGIC)
        return core_errf(CORE_ERR_MALFORMED, errstr, errsz, "Unknown magic byte %d", msg[0]);
    *schema_id = (int32_t)core_be32(msg + 1);
    *payload = msg + SR_AVRO_HEADER;
    *payload_len = len - SR_AVRO_HEADER;
    return CORE_OK;
}

/* ---- deep validation of untrusted binary datums --------------------------------------
 * avro-c leaks memory on some decode error paths (fuzz_avro_datum found a
 * truncated string doing it), so a datum from the wire is first walked here,
 * with every length checked against the bytes that remain, and only a datum
 * that is well-formed and exactly fills the payload reaches avro-c. */
typedef struct vrd {
    const uint8_t *p, *end;
    long budget; /* items visited; bounds the work a hostile datum can cause */
} vrd_t;

static bool v_long(vrd_t *r, int64_t *out)
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

static bool v_skip(vrd_t *r, int64_t n)
{
    if (n < 0 || n > r->end - r->p)
        return false;
    r->p += n;
    return true;
}

static bool v_datum(vrd_t *r, avro_schema_t s, int depth)
{
    int64_t n;
    if (depth > SR_AVRO_MAX_DEPTH || --r->budget < 0)
        return false;
    switch (avro_typeof(s)) {
    case AVRO_NULL: return true;
    case AVRO_BOOLEAN: return r->p < r->end && *r->p++ <= 1;
    case AVRO_INT32: return v_long(r, &n) && n >= INT32_MIN && n <= INT32_MAX;
    case AVRO_INT64: return v_long(r, &n);
    case AVRO_FLOAT: return v_skip(r, 4);
    case AVRO_DOUBLE: return v_skip(r, 8);
    case AVRO_STRING:
    case AVRO_BYTES: return v_long(r, &n) && v_skip(r, n);
    case AVRO_FIXED: return v_skip(r, avro_schema_fixed_size(s));
    case AVRO_ENUM: return v_long(r, &n) && n >= 0 && n < (int64_t)avro_schema_enum_number_of_symbols(s);
    case AVRO_UNION:
        return v_long(r, &n) && n >= 0 && n < (int64_t)avro_schema_union_size(s) &&
               v_datum(r, avro_schema_union_branch(s, (int)n), depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if (!v_datum(r, avro_schema_record_field_get_by_index(s, (int)i), depth + 1))
                return false;
        return true;
    case AVRO_ARRAY:
    case AVRO_MAP:
        for (;;) { /* blocks: count (negative: followed by a byte size), items; 0 ends */
            if (!v_long(r, &n))
                return false;
            if (n == 0)
                return true;
            if (n < 0) {
                int64_t bytes;
                if (n == INT64_MIN || !v_long(r, &bytes) || bytes < 0)
                    return false;
                n = -n;
            }
            if (n > r->end - r->p && avro_typeof(s) == AVRO_MAP)
                return false; /* every map item has at least a key length byte */
            for (int64_t i = 0; i < n; i++) {
                if (avro_typeof(s) == AVRO_MAP) {
                    int64_t klen;
                    if (!v_long(r, &klen) || !v_skip(r, klen))
                        return false;
                    if (!v_datum(r, avro_schema_map_values(s), depth + 1))
                        return false;
                } else if (!v_datum(r, avro_schema_array_items(s), depth + 1)) {
                    return false;
                }
                if (r->budget < 0)
                    return false;
            }
        }
    default: return false;
    }
}

int sr_avro_decode_json(sr_avro_t *c, const uint8_t *payload, size_t len, char **json,
                        char *errstr, size_t errsz)
{
    vrd_t vr = {payload, payload + len, (long)len * 2 + 64};
    if (!v_datum(&vr, c->schema, 0) || vr.p != vr.end)
        return core_errf(CORE_ERR_MALFORMED, errstr, errsz,
                         "Avro datum does not match the schema (truncated, malformed or trailing bytes)");
    avro_value_t v;
    avro_generic_value_new(c->iface, &v);
    avro_reader_t r = avro_reader_memory((const char *)payload, (int64_t)len);
    int rc = CORE_OK;
    if (avro_value_read(r, &v))
        rc = core_errf(CORE_ERR_MALFORMED, errstr, errsz, "Avro datum does not decode: %s",
                       avro_strerror());
    else if (avro_skip(r, 1) == 0) /* a byte was left over: the datum is not the whole payload */
        rc = core_errf(CORE_ERR_MALFORMED, errstr, errsz, "trailing bytes after the Avro datum");
    else if (avro_value_to_json(&v, 1, json))
        rc = core_errf(CORE_ERR_MALFORMED, errstr, errsz, "cannot render as JSON: %s", avro_strerror());
    avro_reader_free(r);
    avro_value_decref(&v);
    return rc;
}
