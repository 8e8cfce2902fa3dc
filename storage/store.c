/*
 * store.c — engine dispatch and everything both engines share: validation,
 * canonical properties, ids, the event record codec, batch staging, entity
 * property aggregation, apps/channels/access keys. See store.h / store_int.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core_alloc.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_log.h"
#include "core/core_time.h"
#include "storage/store_int.h"
#include "storage/store_remote.h"

/* Event times are limited to years 0001..9999 (what A.4 can express); this
 * also keeps them exact as Redis sorted-set scores (doubles, 2^53). */
#define STORE_TIME_MIN_MS INT64_C(-62135596800000)
#define STORE_TIME_MAX_MS INT64_C(253402300799999)

/* ---- SipHash-2-4, 128-bit output (Aumasson & Bernstein), fixed key --------- */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void store__hash128(const void *data, size_t len, uint8_t out[16])
{
    /* The key is fixed and public: ids must be the same in every process
     * and every release (they are stored). */
    const uint64_t k0 = UINT64_C(0x6564647973746f72), k1 = UINT64_C(0x6576656e74696473);
    uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ k0, v1 = UINT64_C(0x646f72616e646f6d) ^ k1;
    uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ k0, v3 = UINT64_C(0x7465646279746573) ^ k1;
    const uint8_t *in = data;
    size_t left = len & 7;
    const uint8_t *end = in + len - left;
    uint64_t b = (uint64_t)len << 56, m;
    v1 ^= 0xee;
    for (; in != end; in += 8) {
        m = le64(in);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < left; i++)
        b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xee;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    uint64_t h = v0 ^ v1 ^ v2 ^ v3;
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(h >> (8 * i));
    v1 ^= 0xdd;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    h = v0 ^ v1 ^ v2 ^ v3;
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(h >> (8 * i));
}

static void hex16(const uint8_t h[16], char out[STORE_EVENT_ID_MAX + 1])
{
    static const char x[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = x[h[i] >> 4];
        out[2 * i + 1] = x[h[i] & 15];
    }
    out[32] = '\0';
}

void store_event_id_derive(const void *data, size_t len, char out[STORE_EVENT_ID_MAX + 1])
{
    uint8_t h[16];
    store__hash128(data, len, h);
    hex16(h, out);
}

/* ---- opening ---------------------------------------------------------------- */
void store_opts_default(store_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->sync = STORE_SYNC_ALWAYS;
    opts->sync_interval_ms = 1000;
    opts->redis_pool = 8;
    opts->redis_timeout_ms = 5000;
}

static store_t *store_alloc(const store_opts_t *opts)
{
    store_t *s = core_xcalloc(1, sizeof *s);
    if (opts)
        s->opts = *opts;
    else
        store_opts_default(&s->opts);
    if (s->opts.sync_interval_ms <= 0)
        s->opts.sync_interval_ms = 1000;
    if (s->opts.redis_pool <= 0)
        s->opts.redis_pool = 8;
    if (s->opts.redis_timeout_ms <= 0)
        s->opts.redis_timeout_ms = 5000;
    pthread_mutex_init(&s->meta_lock, NULL);
    return s;
}

static void store_free(store_t *s)
{
    pthread_mutex_destroy(&s->meta_lock);
    free(s);
}

int store_open(const char *url, const store_opts_t *opts, store_t **out, char *errstr,
               size_t errstr_size)
{
    *out = NULL;
    store_t *s = store_alloc(opts);
    int err;
    if (strncmp(url, "rocksdb:", 8) == 0 && url[8]) {
        err = store__rocksdb_open(s, url + 8, errstr, errstr_size);
    } else if (strncmp(url, "redis://", 8) == 0) {
        char host[256];
        const char *hp = url + 8, *slash = strchr(hp, '/');
        size_t hl = slash ? (size_t)(slash - hp) : strlen(hp);
        int port = 6379, db = 0;
        if (hl == 0 || hl >= sizeof host) {
            err = core_errf(CORE_ERR_INVAL, errstr, errstr_size, "bad redis URL '%s'", url);
            goto fail;
        }
        memcpy(host, hp, hl);
        host[hl] = '\0';
        char *colon = strrchr(host, ':');
        if (colon) {
            char *end;
            long p = strtol(colon + 1, &end, 10);
            if (*end || p <= 0 || p > 65535) {
                err = core_errf(CORE_ERR_INVAL, errstr, errstr_size, "bad port in '%s'", url);
                goto fail;
            }
            port = (int)p;
            *colon = '\0';
        }
        if (slash && slash[1]) {
            char *end;
            long d = strtol(slash + 1, &end, 10);
            if (*end || d < 0 || d > 1000) {
                err = core_errf(CORE_ERR_INVAL, errstr, errstr_size, "bad database in '%s'", url);
                goto fail;
            }
            db = (int)d;
        }
        err = store__redis_open(s, host, port, db, errstr, errstr_size);
    } else if (strncmp(url, "eddy://", 7) == 0) {
        /* eddy://HOST:PORT[/?token=T]; without token= the token comes from
         * $EDDY_STORE_TOKEN (store_open_dir passes DIR/internal.token). */
        char hp[300], host[256];
        int port;
        snprintf(hp, sizeof hp, "%s", url + 7);
        char *q = strchr(hp, '?');
        const char *token = getenv("EDDY_STORE_TOKEN");
        if (q) {
            *q++ = '\0';
            if (strncmp(q, "token=", 6) == 0)
                token = q + 6;
        }
        hp[strcspn(hp, "/")] = '\0';
        if (core_parse_hostport(hp, host, sizeof host, &port) != 0 || port == 0) {
            err = core_errf(CORE_ERR_INVAL, errstr, errstr_size, "bad eddy URL '%s'", url);
            goto fail;
        }
        err = store__remote_open(s, host, port, token, errstr, errstr_size);
    } else {
        err = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                        "unknown store URL '%s' (rocksdb:DIR, redis://HOST:PORT/DB)", url);
    }
    if (err)
        goto fail;
    *out = s;
    return 0;
fail:
    store_free(s);
    return err;
}

/* How long store_open_dir waits for a starting event server's address. */
#define STORE_DIR_ADDR_WAIT_MS 3000

int store_open_dir(const char *dir, const store_opts_t *opts, store_t **out, char *errstr,
                   size_t errstr_size)
{
    char path[4096];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return core_errf(errno, errstr, errstr_size, "mkdir %s: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "rocksdb:%s/store", dir);
    int err = store_open(path, opts, out, errstr, errstr_size);
    if (err != CORE_ERR_STATE)
        return err;
    /* Locked by another process: the remote-engine hook (ARCHITECTURE §1). */
    char addrf[4096], addr[256] = "";
    snprintf(addrf, sizeof addrf, "%s/eventserver.addr", dir);
    /* An event server that just took the lock writes its address once it
     * serves (eventserver_cmd.c): give it STORE_DIR_ADDR_WAIT_MS. */
    for (int64_t deadline = core_mono_ms() + STORE_DIR_ADDR_WAIT_MS;;) {
        FILE *f = fopen(addrf, "r");
        if (f) {
            if (fgets(addr, sizeof addr, f))
                addr[strcspn(addr, "\r\n")] = '\0';
            fclose(f);
        }
        if (addr[0] || core_mono_ms() >= deadline)
            break;
        usleep(20000);
    }
    if (!addr[0])
        return err; /* errstr already says the directory is locked */
    char token[128] = "";
    int terr = store_remote_token_read(dir, token, sizeof token);
    if (terr)
        return core_errf(CORE_ERR_STATE, errstr, errstr_size,
                         "%s is in use by the event server at %s, but its %s is unreadable: %s",
                         dir, addr, STORE_REMOTE_TOKEN_FILE, strerror(terr));
    char url[400];
    snprintf(url, sizeof url, "eddy://%s/?token=%s", addr, token);
    return store_open(url, opts, out, errstr, errstr_size);
}

void store_close(store_t *s)
{
    if (!s)
        return;
    s->eng->close(s);
    store_free(s);
}

const char *store_engine(const store_t *s)
{
    return s->eng->name;
}

/* ---- canonical JSON (sorted keys, compact, shortest round-trip reals) ------- */
void store__json_str(core_buf_t *b, const char *s, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    core_wr_raw(b, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes that need no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (i > run)
            core_wr_raw(b, s + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            core_wr_raw(b, e, 2);
            continue;
        }
        char e[6] = {'\\', 'u', '0', '0', hx[c >> 4], hx[c & 15]};
        switch (c) {
        case '\n':
            core_wr_raw(b, "\\n", 2);
            break;
        case '\r':
            core_wr_raw(b, "\\r", 2);
            break;
        case '\t':
            core_wr_raw(b, "\\t", 2);
            break;
        case '\b':
            core_wr_raw(b, "\\b", 2);
            break;
        case '\f':
            core_wr_raw(b, "\\f", 2);
            break;
        default:
            core_wr_raw(b, e, 6);
        }
    }
    if (n > run)
        core_wr_raw(b, s + run, n - run);
    core_wr_raw(b, "\"", 1);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void canon_json(core_buf_t *b, const json_t *j)
{
    char num[40];
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(j), i = 0;
        const char **keys = core_xmalloc((n ? n : 1) * sizeof *keys);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) keys[i++] = k;
        qsort(keys, n, sizeof *keys, cmp_cstr);
        core_wr_raw(b, "{", 1);
        for (i = 0; i < n; i++) {
            if (i)
                core_wr_raw(b, ",", 1);
            store__json_str(b, keys[i], strlen(keys[i]));
            core_wr_raw(b, ":", 1);
            canon_json(b, json_object_get(j, keys[i]));
        }
        core_wr_raw(b, "}", 1);
        free(keys);
        break;
    }
    case JSON_ARRAY:
        core_wr_raw(b, "[", 1);
        for (size_t i = 0; i < json_array_size(j); i++) {
            if (i)
                core_wr_raw(b, ",", 1);
            canon_json(b, json_array_get(j, i));
        }
        core_wr_raw(b, "]", 1);
        break;
    case JSON_STRING:
        store__json_str(b, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        core_wr_raw(
            b, num,
            (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(j)));
        break;
    case JSON_REAL: {
        double d = json_real_value(j);
        int len = 0;
        for (int prec = 15; prec <= 17; prec++) {
            len = snprintf(num, sizeof num, "%.*g", prec, d);
            if (strtod(num, NULL) == d)
                break;
        }
        if (!strpbrk(num, ".eEn")) /* keep it a real when read back */
            len += snprintf(num + len, sizeof num - (size_t)len, ".0");
        core_wr_raw(b, num, (size_t)len);
        break;
    }
    case JSON_TRUE:
        core_wr_raw(b, "true", 4);
        break;
    case JSON_FALSE:
        core_wr_raw(b, "false", 5);
        break;
    case JSON_NULL:
        core_wr_raw(b, "null", 4);
        break;
    }
}

char *store__json_canon(const json_t *j)
{
    core_buf_t b;
    core_buf_init(&b);
    canon_json(&b, j);
    core_wr_raw(&b, "", 1);
    size_t n;
    return (char *)core_buf_detach(&b, &n);
}

/* ---- validation (A.5, A.8) --------------------------------------------------- */
static bool reserved_name(const char *s)
{
    return s[0] == '$' || strncmp(s, "pio_", 4) == 0;
}

static int check_name(const char *field, const char *v, bool required, const char *empty_msg,
                      char *errstr, size_t errstr_size)
{
    if (!v) {
        if (required)
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "The field %s is required.",
                             field);
        return 0;
    }
    if (!v[0])
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "%s", empty_msg);
    if (strlen(v) > STORE_NAME_MAX)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "%s is longer than %d bytes.", field,
                         STORE_NAME_MAX);
    return 0;
}

static bool id_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Checks every field but properties and tags (A.5, A.8). *special says
 * whether the event is $set/$unset/$delete. */
static int validate_fields(const store_event_t *ev, bool *special, char *errstr,
                           size_t errstr_size)
{
    int err;
    *special = false;
    if ((err = check_name("event", ev->event, true, "event must not be empty.", errstr,
                          errstr_size)) ||
        (err = check_name("entityType", ev->entity_type, true,
                          "entityType must not be empty string.", errstr, errstr_size)) ||
        (err = check_name("entityId", ev->entity_id, true, "entityId must not be empty string.",
                          errstr, errstr_size)) ||
        (err = check_name("targetEntityType", ev->target_entity_type, false,
                          "targetEntityType must not be empty string", errstr, errstr_size)) ||
        (err = check_name("targetEntityId", ev->target_entity_id, false,
                          "targetEntityId must not be empty string", errstr, errstr_size)) ||
        (err = check_name("prId", ev->pr_id, false, "prId must not be empty string.", errstr,
                          errstr_size)))
        return err;
    if (!ev->target_entity_type != !ev->target_entity_id)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "targetEntityType and targetEntityId must be specified together.");
    if (reserved_name(ev->event)) {
        *special = !strcmp(ev->event, "$set") || !strcmp(ev->event, "$unset") ||
                   !strcmp(ev->event, "$delete");
        if (!*special)
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                             "%s is not a supported reserved event name.", ev->event);
        if (ev->target_entity_type)
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                             "Reserved event %s cannot have targetEntity", ev->event);
    }
    if (reserved_name(ev->entity_type) && strcmp(ev->entity_type, "pio_pr") != 0)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "The entityType %s is not allowed. 'pio_' is a reserved name prefix.",
                         ev->entity_type);
    if (ev->target_entity_type && reserved_name(ev->target_entity_type) &&
        strcmp(ev->target_entity_type, "pio_pr") != 0)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "The targetEntityType %s is not allowed. 'pio_' is a reserved name "
                         "prefix.",
                         ev->target_entity_type);
    size_t idl = strnlen(ev->event_id, sizeof ev->event_id);
    if (idl == sizeof ev->event_id)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "eventId is too long.");
    for (size_t i = 0; i < idl; i++)
        if (!id_char_ok(ev->event_id[i]))
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                             "eventId must be 1 to %d characters of [A-Za-z0-9_-].",
                             STORE_EVENT_ID_MAX);
    if (ev->event_time_ms < STORE_TIME_MIN_MS || ev->event_time_ms > STORE_TIME_MAX_MS)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "eventTime is outside years 0001..9999.");
    if (ev->event_time_tz_min < -18 * 60 || ev->event_time_tz_min > 18 * 60)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "eventTime offset out of range.");
    return 0;
}

/* Checks a parsed properties value: an object without reserved names,
 * non-empty for $unset; and the tags text. */
static int validate_props(const store_event_t *ev, bool special, const json_t *p, char *errstr,
                          size_t errstr_size)
{
    if (!json_is_object(p))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "properties must be a JSON object.");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)p, k, v)
    {
        if (reserved_name(k))
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                             "The property %s is not allowed. '$' and 'pio_' are reserved name "
                             "prefixes.",
                             k);
    }
    if (special && !strcmp(ev->event, "$unset") && json_object_size(p) == 0)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "properties cannot be empty for $unset event");
    if (ev->tags) {
        json_error_t jerr;
        json_t *t = json_loads(ev->tags, 0, &jerr);
        bool ok = t && json_is_array(t);
        json_decref(t);
        if (!ok)
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "tags must be a JSON array.");
    }
    return 0;
}

static int props_size_ok(const char *ptext, char *errstr, size_t errstr_size)
{
    if (strlen(ptext) > STORE_PROPS_MAX)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "properties are larger than %d bytes.", STORE_PROPS_MAX);
    return 0;
}

/* Validates and returns the canonical properties text (caller frees) in *canon. */
static int validate_canon(const store_event_t *ev, char **canon, char *errstr, size_t errstr_size)
{
    bool special;
    int err;
    *canon = NULL;
    if ((err = validate_fields(ev, &special, errstr, errstr_size)))
        return err;
    const char *ptext = ev->properties ? ev->properties : "{}";
    if ((err = props_size_ok(ptext, errstr, errstr_size)))
        return err;
    json_error_t jerr;
    json_t *p = json_loadb(ptext, strlen(ptext), 0, &jerr);
    if (!p)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "properties: %s", jerr.text);
    if ((err = validate_props(ev, special, p, errstr, errstr_size)) == 0)
        *canon = store__json_canon(p);
    json_decref(p);
    return err;
}

int store__event_check_fields(const store_event_t *ev, char *errstr, size_t errstr_size)
{
    bool special;
    int err = validate_fields(ev, &special, errstr, errstr_size);
    return err ? err : props_size_ok(ev->properties ? ev->properties : "{}", errstr, errstr_size);
}

int store__event_check(const store_event_t *ev, const json_t *props, char *errstr,
                       size_t errstr_size)
{
    bool special;
    int err;
    if ((err = validate_fields(ev, &special, errstr, errstr_size)) ||
        (err = props_size_ok(ev->properties ? ev->properties : "{}", errstr, errstr_size)))
        return err;
    if (props)
        return validate_props(ev, special, props, errstr, errstr_size);
    json_t *empty = json_object();
    err = validate_props(ev, special, empty, errstr, errstr_size);
    json_decref(empty);
    return err;
}

int store_event_validate(const store_event_t *ev, char *errstr, size_t errstr_size)
{
    char *canon;
    int err = validate_canon(ev, &canon, errstr, errstr_size);
    free(canon);
    return err;
}

void store_event_fini(store_event_t *ev)
{
    if (!ev)
        return;
    free(ev->mem);
    memset(ev, 0, sizeof *ev);
}

/* ---- record codec ------------------------------------------------------------ */
static uint8_t *put_str32(uint8_t *w, const char *s, size_t n)
{
    core_put_be32(w, (uint32_t)n);
    memcpy(w + 4, s, n);
    return w + 4 + n;
}

/* Encodes the record (store.h EVENT RECORD) in one exact allocation and
 * computes its digest on the way: digest = SipHash-128 of the content flags
 * byte (target, prId, tags) followed by the record's string section, i.e.
 * every content field except eventTime and creationTime. The string section
 * is the record's tail, so the digest is hashed from the record bytes
 * themselves (the byte before the tail stands in for the flags byte for the
 * duration of the hash) instead of from a second serialisation. The digest
 * bytes are what assigned ids derive from: they must never change. */
static uint8_t *rec_encode(const store_event_t *ev, const char *canon, int64_t ctime, size_t *len)
{
    const char *str[8];
    size_t sl[8];
    int n = 0;
    str[n++] = ev->event;
    str[n++] = ev->entity_type;
    str[n++] = ev->entity_id;
    if (ev->target_entity_type) {
        str[n++] = ev->target_entity_type;
        str[n++] = ev->target_entity_id;
    }
    str[n++] = canon;
    if (ev->pr_id)
        str[n++] = ev->pr_id;
    if (ev->tags)
        str[n++] = ev->tags;
    size_t total = STORE_REC_HDR;
    for (int i = 0; i < n; i++) {
        sl[i] = strlen(str[i]);
        total += 4 + sl[i];
    }
    uint8_t *rec = core_xmalloc(total), *w = rec + STORE_REC_HDR;
    uint8_t content_fl = (uint8_t)((ev->target_entity_type ? STORE_REC_F_TARGET : 0) |
                                   (ev->pr_id ? STORE_REC_F_PRID : 0) |
                                   (ev->tags ? STORE_REC_F_TAGS : 0));
    rec[0] = STORE_REC_VERSION;
    rec[STORE_REC_OFF_FLAGS] =
        (uint8_t)(content_fl | (ev->event_time_given ? STORE_REC_F_TIME_GIVEN : 0));
    core_put_be64(rec + STORE_REC_OFF_TIME, (uint64_t)ev->event_time_ms);
    rec[STORE_REC_OFF_TZ] = (uint8_t)((uint16_t)ev->event_time_tz_min >> 8);
    rec[STORE_REC_OFF_TZ + 1] = (uint8_t)ev->event_time_tz_min;
    for (int i = 0; i < n; i++)
        w = put_str32(w, str[i], sl[i]);
    /* digest over [content flags | strings]: borrow the ctime's last byte */
    rec[STORE_REC_HDR - 1] = content_fl;
    store__hash128(rec + STORE_REC_HDR - 1, total - STORE_REC_HDR + 1, rec + STORE_REC_OFF_DIGEST);
    core_put_be64(rec + STORE_REC_OFF_CTIME, (uint64_t)ctime);
    *len = total;
    return rec;
}

static core_slice_t rd_str32(core_rd_t *rd)
{
    uint32_t n = core_rd_u32(rd);
    return core_rd_raw(rd, n);
}

int store__rec_keys(const uint8_t *rec, size_t len, core_slice_t *etype, core_slice_t *eid,
                    core_slice_t *ttype, core_slice_t *tid, uint8_t *op, int64_t *time_ms)
{
    core_rd_t rd;
    core_rd_init(&rd, rec, len);
    int8_t ver = core_rd_i8(&rd);
    uint8_t fl = (uint8_t)core_rd_i8(&rd);
    core_rd_skip(&rd, 16);
    *time_ms = core_rd_i64(&rd);
    core_rd_skip(&rd, 10);
    core_slice_t ev = rd_str32(&rd);
    *etype = rd_str32(&rd);
    *eid = rd_str32(&rd);
    ttype->ptr = tid->ptr = NULL;
    ttype->len = tid->len = -1;
    if (fl & STORE_REC_F_TARGET) {
        *ttype = rd_str32(&rd);
        *tid = rd_str32(&rd);
    }
    if (rd.err || ver != STORE_REC_VERSION)
        return CORE_ERR_CORRUPT;
    *op = STORE_OP_NONE;
    if (ev.len == 4 && !memcmp(ev.ptr, "$set", 4))
        *op = STORE_OP_SET;
    else if (ev.len == 6 && !memcmp(ev.ptr, "$unset", 6))
        *op = STORE_OP_UNSET;
    else if (ev.len == 7 && !memcmp(ev.ptr, "$delete", 7))
        *op = STORE_OP_DELETE;
    return 0;
}

int store__rec_decode(const uint8_t *rec, size_t len, const char *id, size_t id_len,
                      store_event_t *ev, core_buf_t *scratch)
{
    core_rd_t rd;
    core_slice_t sl[8];
    int nsl = 0;
    memset(ev, 0, sizeof *ev);
    core_rd_init(&rd, rec, len);
    int8_t ver = core_rd_i8(&rd);
    uint8_t fl = (uint8_t)core_rd_i8(&rd);
    core_rd_skip(&rd, 16);
    ev->event_time_ms = core_rd_i64(&rd);
    ev->event_time_tz_min = core_rd_i16(&rd);
    ev->creation_time_ms = core_rd_i64(&rd);
    ev->event_time_given = (fl & STORE_REC_F_TIME_GIVEN) != 0;
    int nstr = 4 + ((fl & STORE_REC_F_TARGET) ? 2 : 0) + ((fl & STORE_REC_F_PRID) ? 1 : 0) +
               ((fl & STORE_REC_F_TAGS) ? 1 : 0);
    for (int i = 0; i < nstr; i++)
        sl[nsl++] = rd_str32(&rd);
    if (rd.err || ver != STORE_REC_VERSION || id_len > STORE_EVENT_ID_MAX)
        return CORE_ERR_CORRUPT;
    memcpy(ev->event_id, id, id_len);
    ev->event_id[id_len] = '\0';
    /* Reserve everything first so the pointers below stay valid. */
    core_buf_reset(scratch);
    core_buf_reserve(scratch, len + 8);
    const char *p[8];
    for (int i = 0; i < nsl; i++) {
        p[i] = (const char *)scratch->data + scratch->len;
        core_wr_raw(scratch, sl[i].ptr, (size_t)sl[i].len);
        core_wr_raw(scratch, "", 1);
    }
    int i = 0;
    ev->event = p[i++];
    ev->entity_type = p[i++];
    ev->entity_id = p[i++];
    if (fl & STORE_REC_F_TARGET) {
        ev->target_entity_type = p[i++];
        ev->target_entity_id = p[i++];
    }
    ev->properties = p[i++];
    if (fl & STORE_REC_F_PRID)
        ev->pr_id = p[i++];
    if (fl & STORE_REC_F_TAGS)
        ev->tags = p[i++];
    return 0;
}

bool store__rec_same(const uint8_t *stored, size_t stored_len, const store__staged_t *st)
{
    if (stored_len < STORE_REC_HDR)
        return false;
    if (memcmp(stored + STORE_REC_OFF_DIGEST, st->rec + STORE_REC_OFF_DIGEST, 16) != 0)
        return false;
    if (st->time_given && memcmp(stored + STORE_REC_OFF_TIME, st->rec + STORE_REC_OFF_TIME, 8) != 0)
        return false;
    return true;
}

/* ---- batches ----------------------------------------------------------------- */
int store_batch_begin(store_t *s, unsigned flags, store_batch_t **out)
{
    store_batch_t *b = core_xcalloc(1, sizeof *b);
    b->s = s;
    b->flags = flags;
    *out = b;
    return 0;
}

void store__key_hash128(int32_t app, int32_t ch, const char *id, uint8_t out[16])
{
    uint8_t buf[8 + STORE_EVENT_ID_MAX];
    size_t n = strlen(id);
    core_put_be32(buf, (uint32_t)app);
    core_put_be32(buf + 4, (uint32_t)ch);
    memcpy(buf + 8, id, n);
    store__hash128(buf, 8 + n, out);
}

static uint64_t staged_hash(int32_t app, int32_t ch, const char *id)
{
    uint8_t h[16];
    store__key_hash128(app, ch, id, h);
    return le64(h);
}

/* Finds the last staged event with the same key (or -1) and records idx as
 * the newest one for that key. Open addressing, grown at half load. */
static int staged_map_put(store_batch_t *b, size_t idx)
{
    if ((b->nev + 1) * 2 > b->nslots) {
        size_t ns = b->nslots ? b->nslots * 2 : 64;
        int32_t *slots = core_xmalloc(ns * sizeof *slots);
        for (size_t i = 0; i < ns; i++)
            slots[i] = -1;
        for (size_t i = 0; i < b->nslots; i++) {
            if (b->slots[i] < 0)
                continue;
            store__staged_t *e = &b->ev[b->slots[i]];
            size_t j = staged_hash(e->app, e->ch, e->id) & (ns - 1);
            while (slots[j] >= 0)
                j = (j + 1) & (ns - 1);
            slots[j] = b->slots[i];
        }
        free(b->slots);
        b->slots = slots;
        b->nslots = ns;
    }
    store__staged_t *e = &b->ev[idx];
    size_t j = staged_hash(e->app, e->ch, e->id) & (b->nslots - 1);
    while (b->slots[j] >= 0) {
        store__staged_t *o = &b->ev[b->slots[j]];
        if (o->app == e->app && o->ch == e->ch && !strcmp(o->id, e->id)) {
            int prior = b->slots[j];
            b->slots[j] = (int32_t)idx;
            return prior;
        }
        j = (j + 1) & (b->nslots - 1);
    }
    b->slots[j] = (int32_t)idx;
    return -1;
}

/* Stages one event. checked: the caller ran store__event_check on it and
 * ev->properties is canonical text (store_event_from_json's output), so the
 * properties are not parsed again. */
static int batch_put(store_batch_t *b, int32_t app, int32_t channel, const store_event_t *ev,
                     bool checked, char *errstr, size_t errstr_size)
{
    char *canon;
    if (b->nev >= STORE_BATCH_MAX_EVENTS)
        return core_errf(CORE_ERR_TOO_LARGE, errstr, errstr_size, "a batch holds at most %d events",
                         STORE_BATCH_MAX_EVENTS);
    if (app <= 0 || channel < 0)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "bad app/channel id");
    store_event_t e = *ev;
    int64_t now = core_wall_ms();
    if (!e.event_time_given) {
        e.event_time_ms = now;
        e.event_time_tz_min = 0;
    }
    int err;
    if (checked) {
        bool special;
        if ((err = validate_fields(&e, &special, errstr, errstr_size)))
            return err;
        canon = core_xstrdup(e.properties ? e.properties : "{}");
    } else if ((err = validate_canon(&e, &canon, errstr, errstr_size))) {
        return err;
    }
    if (b->nev == b->capev) {
        b->capev = b->capev ? b->capev * 2 : 16;
        b->ev = core_xrealloc(b->ev, b->capev * sizeof *b->ev);
    }
    store__staged_t *st = &b->ev[b->nev];
    memset(st, 0, sizeof *st);
    st->app = app;
    st->ch = channel;
    st->time_ms = e.event_time_ms;
    st->time_given = e.event_time_given;
    st->rec = rec_encode(&e, canon, now, &st->rec_len);
    if (e.event_id[0]) {
        memcpy(st->id, e.event_id, sizeof st->id);
    } else {
        uint8_t buf[24], h[16];
        memcpy(buf, st->rec + STORE_REC_OFF_DIGEST, 16);
        core_put_be64(buf + 16, store__time_key(e.event_time_ms));
        store__hash128(buf, sizeof buf, h);
        hex16(h, st->id);
    }
    st->op = STORE_OP_NONE;
    if (e.event[0] == '$') {
        if (!strcmp(e.event, "$set"))
            st->op = STORE_OP_SET;
        else if (!strcmp(e.event, "$unset"))
            st->op = STORE_OP_UNSET;
        else if (!strcmp(e.event, "$delete"))
            st->op = STORE_OP_DELETE;
    }
    st->etype = core_xstrdup(e.entity_type);
    st->eid = core_xstrdup(e.entity_id);
    if (e.target_entity_type) {
        st->ttype = core_xstrdup(e.target_entity_type);
        st->tid = core_xstrdup(e.target_entity_id);
    }
    st->props = canon;
    st->prior = staged_map_put(b, b->nev);
    b->nev++;
    return 0;
}

int store_batch_put_event(store_batch_t *b, int32_t app, int32_t channel, const store_event_t *ev,
                          char *errstr, size_t errstr_size)
{
    return batch_put(b, app, channel, ev, false, errstr, errstr_size);
}

int store__batch_put_checked(store_batch_t *b, int32_t app, int32_t channel,
                             const store_event_t *ev, char *errstr, size_t errstr_size)
{
    return batch_put(b, app, channel, ev, true, errstr, errstr_size);
}

static int batch_kv(store_batch_t *b, const void *key, size_t klen, const void *val, size_t vlen,
                    bool del)
{
    if (klen == 0 || klen > STORE_KV_KEY_MAX || vlen > STORE_KV_VALUE_MAX)
        return CORE_ERR_TOO_LARGE;
    if (b->nkv == b->capkv) {
        b->capkv = b->capkv ? b->capkv * 2 : 8;
        b->kv = core_xrealloc(b->kv, b->capkv * sizeof *b->kv);
    }
    store__kvop_t *op = &b->kv[b->nkv++];
    op->key = core_xmalloc(klen);
    memcpy(op->key, key, klen);
    op->klen = klen;
    op->val = NULL;
    op->vlen = 0;
    if (!del) {
        op->val = core_xmalloc(vlen ? vlen : 1);
        if (vlen)
            memcpy(op->val, val, vlen);
        op->vlen = vlen;
    }
    return 0;
}

int store_batch_put_kv(store_batch_t *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    return batch_kv(b, key, klen, val, vlen, false);
}

int store_batch_delete_kv(store_batch_t *b, const void *key, size_t klen)
{
    return batch_kv(b, key, klen, NULL, 0, true);
}

size_t store_batch_events(const store_batch_t *b)
{
    return b->nev;
}

void store_batch_abort(store_batch_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nev; i++) {
        store__staged_t *st = &b->ev[i];
        free(st->etype);
        free(st->eid);
        free(st->ttype);
        free(st->tid);
        free(st->props);
        free(st->rec);
    }
    for (size_t i = 0; i < b->nkv; i++) {
        free(b->kv[i].key);
        free(b->kv[i].val);
    }
    free(b->ev);
    free(b->kv);
    free(b->slots);
    free(b);
}

int store_batch_commit(store_batch_t *b, store_put_result_t *results, char *errstr,
                       size_t errstr_size)
{
    store_put_result_t *res = results;
    if (!res && b->nev)
        res = core_xmalloc(b->nev * sizeof *res);
    for (size_t i = 0; i < b->nev; i++) {
        memcpy(res[i].event_id, b->ev[i].id, sizeof res[i].event_id);
        res[i].status = STORE_PUT_CREATED;
    }
    int err = 0;
    if (b->nev || b->nkv)
        err = b->s->eng->commit(b->s, b, res, errstr, errstr_size);
    if (res != results)
        free(res);
    store_batch_abort(b);
    return err;
}

/* ---- events -------------------------------------------------------------------- */
static int event_put(store_t *s, int32_t app, int32_t channel, const store_event_t *ev,
                     bool checked, char out_id[STORE_EVENT_ID_MAX + 1], bool *created,
                     char *errstr, size_t errstr_size)
{
    store_batch_t *b;
    store_put_result_t r;
    store_batch_begin(s, STORE_BATCH_ALL_OR_NOTHING, &b);
    int err = batch_put(b, app, channel, ev, checked, errstr, errstr_size);
    if (err) {
        store_batch_abort(b);
        return err;
    }
    err = store_batch_commit(b, &r, errstr, errstr_size);
    if (err == CORE_ERR_CONFLICT && r.status == STORE_PUT_CONFLICT)
        core_errf(err, errstr, errstr_size, "eventId %s already exists with different content",
                  r.event_id);
    if (out_id)
        memcpy(out_id, r.event_id, STORE_EVENT_ID_MAX + 1);
    if (created)
        *created = !err && r.status == STORE_PUT_CREATED;
    return err;
}

int store_event_put(store_t *s, int32_t app, int32_t channel, const store_event_t *ev,
                    char out_id[STORE_EVENT_ID_MAX + 1], bool *created, char *errstr,
                    size_t errstr_size)
{
    return event_put(s, app, channel, ev, false, out_id, created, errstr, errstr_size);
}

int store__event_put_checked(store_t *s, int32_t app, int32_t channel, const store_event_t *ev,
                             char out_id[STORE_EVENT_ID_MAX + 1], bool *created, char *errstr,
                             size_t errstr_size)
{
    return event_put(s, app, channel, ev, true, out_id, created, errstr, errstr_size);
}

int store_event_get(store_t *s, int32_t app, int32_t channel, const char *event_id,
                    store_event_t *out)
{
    uint8_t *rec;
    size_t len;
    memset(out, 0, sizeof *out);
    size_t idl = strlen(event_id);
    if (idl == 0 || idl > STORE_EVENT_ID_MAX)
        return CORE_ERR_NOT_FOUND;
    int err = s->eng->get(s, app, channel, event_id, &rec, &len);
    if (err)
        return err;
    core_buf_t scratch;
    core_buf_init(&scratch);
    err = store__rec_decode(rec, len, event_id, idl, out, &scratch);
    free(rec);
    if (err) {
        core_buf_fini(&scratch);
        memset(out, 0, sizeof *out);
        return err;
    }
    size_t n;
    out->mem = core_buf_detach(&scratch, &n);
    return 0;
}

int store_event_delete(store_t *s, int32_t app, int32_t channel, const char *event_id)
{
    size_t idl = strlen(event_id);
    if (idl == 0 || idl > STORE_EVENT_ID_MAX)
        return CORE_ERR_NOT_FOUND;
    return s->eng->del(s, app, channel, event_id);
}

void store_find_init(store_find_t *f)
{
    memset(f, 0, sizeof *f);
    f->start_ms = INT64_MIN;
    f->until_ms = INT64_MAX;
    f->limit = -1;
}

bool store__find_match(const store_find_t *f, const store_event_t *ev)
{
    if (ev->event_time_ms < f->start_ms || ev->event_time_ms >= f->until_ms)
        return false;
    if (f->entity_type && strcmp(f->entity_type, ev->entity_type))
        return false;
    if (f->entity_id && strcmp(f->entity_id, ev->entity_id))
        return false;
    if (f->target_entity_type &&
        (!ev->target_entity_type || strcmp(f->target_entity_type, ev->target_entity_type)))
        return false;
    if (f->target_entity_id &&
        (!ev->target_entity_id || strcmp(f->target_entity_id, ev->target_entity_id)))
        return false;
    if (f->nevents > 0) {
        int i;
        for (i = 0; i < f->nevents; i++)
            if (!strcmp(f->events[i], ev->event))
                break;
        if (i == f->nevents)
            return false;
    }
    return true;
}

int store_event_find(store_t *s, int32_t app, int32_t channel, const store_find_t *f,
                     store_event_cb cb, void *opaque, int64_t *count)
{
    int64_t dummy;
    if (!count)
        count = &dummy;
    *count = 0;
    if (f->limit == 0 || f->start_ms >= f->until_ms)
        return 0;
    return s->eng->find(s, app, channel, f, cb, opaque, count);
}

/* ---- kv -------------------------------------------------------------------------- */
int store_kv_get(store_t *s, const void *key, size_t klen, void **val, size_t *vlen)
{
    if (klen == 0 || klen > STORE_KV_KEY_MAX)
        return CORE_ERR_NOT_FOUND;
    return s->eng->kv_get(s, key, klen, val, vlen);
}

int store_kv_put(store_t *s, const void *key, size_t klen, const void *val, size_t vlen)
{
    store_batch_t *b;
    store_batch_begin(s, 0, &b);
    int err = store_batch_put_kv(b, key, klen, val, vlen);
    if (err) {
        store_batch_abort(b);
        return err;
    }
    return store_batch_commit(b, NULL, NULL, 0);
}

int store_kv_delete(store_t *s, const void *key, size_t klen)
{
    store_batch_t *b;
    store_batch_begin(s, 0, &b);
    int err = store_batch_delete_kv(b, key, klen);
    if (err) {
        store_batch_abort(b);
        return err;
    }
    return store_batch_commit(b, NULL, NULL, 0);
}

int store_kv_scan(store_t *s, const void *prefix, size_t plen, store_kv_cb cb, void *opaque)
{
    return s->eng->kv_scan(s, prefix, plen, cb, opaque);
}

/* ---- check ------------------------------------------------------------------------ */
void store__check_problem(store_check_t *rep, const char *fmt, ...)
{
    rep->problems++;
    if (!rep->out || rep->problems > rep->max_print)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("problem: ", rep->out);
    vfprintf(rep->out, fmt, ap);
    fputc('\n', rep->out);
    va_end(ap);
}

int store_check(store_t *s, store_check_t *rep)
{
    FILE *out = rep->out;
    int64_t maxp = rep->max_print > 0 ? rep->max_print : 20;
    memset(rep, 0, sizeof *rep);
    rep->out = out;
    rep->max_print = maxp;
    if (!s->eng->check)
        return CORE_ERR_UNSUPPORTED;
    return s->eng->check(s, rep);
}

/* ---- entity properties ----------------------------------------------------------- */
typedef struct props_agg {
    int64_t until_ms;
    char cur[STORE_NAME_MAX + 1];
    bool have_cur;
    json_t *state; /* NULL = absent */
    int64_t first, last;
    bool seen;
    store_props_cb cb; /* props_all */
    void *opaque;
    store_props_t *one; /* props_get */
    int stop;
    int err;
} props_agg_t;

static void agg_reset(props_agg_t *a)
{
    json_decref(a->state);
    a->state = NULL;
    a->seen = false;
    a->have_cur = false;
}

/* Emits the finished entity (if it exists) and resets. */
static void agg_emit(props_agg_t *a)
{
    if (a->have_cur && a->seen && a->state) {
        store_props_t p = {store__json_canon(a->state), a->first, a->last};
        if (a->one) {
            *a->one = p;
            p.properties = NULL;
        } else if (a->cb) {
            a->stop = a->cb(a->cur, &p, a->opaque);
        }
        free(p.properties);
    }
    agg_reset(a);
}

static int agg_event(const store__propev_t *pe, void *opaque)
{
    props_agg_t *a = opaque;
    if (a->have_cur && (pe->eid_len != strlen(a->cur) || memcmp(a->cur, pe->eid, pe->eid_len))) {
        agg_emit(a);
        if (a->stop)
            return 1;
    }
    if (!a->have_cur) {
        if (pe->eid_len > STORE_NAME_MAX)
            return 0;
        memcpy(a->cur, pe->eid, pe->eid_len);
        a->cur[pe->eid_len] = '\0';
        a->have_cur = true;
    }
    if (pe->time_ms >= a->until_ms)
        return 0;
    if (!a->seen) {
        a->first = a->last = pe->time_ms;
        a->seen = true;
    } else {
        if (pe->time_ms < a->first)
            a->first = pe->time_ms;
        if (pe->time_ms > a->last)
            a->last = pe->time_ms;
    }
    if (pe->op == STORE_OP_DELETE) {
        json_decref(a->state);
        a->state = NULL;
        return 0;
    }
    json_error_t jerr;
    json_t *p = json_loadb(pe->props, pe->props_len, 0, &jerr);
    if (!p || !json_is_object(p)) {
        json_decref(p);
        a->err = CORE_ERR_CORRUPT;
        return 1;
    }
    if (pe->op == STORE_OP_SET) {
        if (!a->state)
            a->state = json_object();
        json_object_update(a->state, p);
    } else if (pe->op == STORE_OP_UNSET && a->state) {
        const char *k;
        json_t *v;
        json_object_foreach(p, k, v) json_object_del(a->state, k);
    }
    json_decref(p);
    return 0;
}

void store_props_fini(store_props_t *p)
{
    if (!p)
        return;
    free(p->properties);
    memset(p, 0, sizeof *p);
}

int store_props_get(store_t *s, int32_t app, int32_t channel, const char *entity_type,
                    const char *entity_id, int64_t until_ms, store_props_t *out)
{
    props_agg_t a = {.until_ms = until_ms, .one = out};
    memset(out, 0, sizeof *out);
    int err = s->eng->props_scan(s, app, channel, entity_type, entity_id, agg_event, &a);
    if (!err && a.err)
        err = a.err;
    if (!err)
        agg_emit(&a);
    agg_reset(&a);
    if (err) {
        store_props_fini(out);
        return err;
    }
    return out->properties ? 0 : CORE_ERR_NOT_FOUND;
}

int store_props_all(store_t *s, int32_t app, int32_t channel, const char *entity_type,
                    int64_t until_ms, store_props_cb cb, void *opaque)
{
    props_agg_t a = {.until_ms = until_ms, .cb = cb, .opaque = opaque};
    int err = s->eng->props_scan(s, app, channel, entity_type, NULL, agg_event, &a);
    if (!err && a.err)
        err = a.err;
    if (!err && !a.stop)
        agg_emit(&a);
    agg_reset(&a);
    return err;
}

/* ---- apps, channels, access keys ----------------------------------------------------
 * kv layout (all under "store/"):
 *   store/app/n/<name>            -> i32 id | description
 *   store/app/i/<%08x id>         -> name
 *   store/chan/<%08x app>/<name>  -> i32 channel id
 *   store/key/<key>               -> i32 app | events joined by '\n'
 */
static bool app_name_ok(const char *n)
{
    size_t l = strlen(n);
    if (l == 0 || l > STORE_APP_NAME_MAX)
        return false;
    for (size_t i = 0; i < l; i++)
        if (!id_char_ok(n[i]) && n[i] != '.')
            return false;
    return true;
}

static int app_decode(const char *name, const uint8_t *v, size_t vl, store_app_t *out)
{
    if (vl < 4)
        return CORE_ERR_CORRUPT;
    memset(out, 0, sizeof *out);
    out->id = (int32_t)core_be32(v);
    snprintf(out->name, sizeof out->name, "%s", name);
    size_t dl = vl - 4 < sizeof out->description - 1 ? vl - 4 : sizeof out->description - 1;
    memcpy(out->description, v + 4, dl);
    return 0;
}

int store_app_get(store_t *s, const char *name, store_app_t *out)
{
    char k[STORE_APP_NAME_MAX + 32];
    void *v;
    size_t vl;
    if (!app_name_ok(name))
        return CORE_ERR_NOT_FOUND;
    int n = snprintf(k, sizeof k, "store/app/n/%s", name);
    int err = store_kv_get(s, k, (size_t)n, &v, &vl);
    if (err)
        return err;
    err = app_decode(name, v, vl, out);
    free(v);
    return err;
}

int store_app_get_by_id(store_t *s, int32_t id, store_app_t *out)
{
    char k[64];
    void *v;
    size_t vl;
    int n = snprintf(k, sizeof k, "store/app/i/%08x", (uint32_t)id);
    int err = store_kv_get(s, k, (size_t)n, &v, &vl);
    if (err)
        return err;
    char name[STORE_APP_NAME_MAX + 1];
    size_t nl = vl < STORE_APP_NAME_MAX ? vl : STORE_APP_NAME_MAX;
    memcpy(name, v, nl);
    name[nl] = '\0';
    free(v);
    return store_app_get(s, name, out);
}

typedef struct app_list {
    store_t *s;
    store_app_t *v;
    size_t n, cap;
} app_list_t;

static int app_list_cb(const void *key, size_t klen, const void *val, size_t vlen, void *opaque)
{
    app_list_t *l = opaque;
    char name[STORE_APP_NAME_MAX + 1];
    size_t nl = vlen < STORE_APP_NAME_MAX ? vlen : STORE_APP_NAME_MAX;
    memcpy(name, val, nl);
    name[nl] = '\0';
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = core_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    if (store_app_get(l->s, name, &l->v[l->n]) == 0)
        l->n++;
    return 0;
}

int store_app_list(store_t *s, store_app_t **apps, size_t *n)
{
    app_list_t l = {.s = s};
    int err = store_kv_scan(s, "store/app/i/", 12, app_list_cb, &l);
    if (err) {
        free(l.v);
        return err;
    }
    *apps = l.v;
    *n = l.n;
    return 0;
}

int store_app_new(store_t *s, const char *name, int32_t id, const char *description,
                  store_app_t *out, char *errstr, size_t errstr_size)
{
    store_app_t tmp, *apps = NULL;
    size_t napps = 0;
    int err;
    if (!app_name_ok(name))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "app name must be 1..%d characters of [A-Za-z0-9_.-]", STORE_APP_NAME_MAX);
    if (id < 0)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "app id must be positive");
    pthread_mutex_lock(&s->meta_lock);
    if ((err = store_app_get(s, name, &tmp)) != CORE_ERR_NOT_FOUND) {
        if (!err)
            err = core_errf(CORE_ERR_EXISTS, errstr, errstr_size, "app %s already exists", name);
        goto out;
    }
    if ((err = store_app_list(s, &apps, &napps)))
        goto out;
    int32_t maxid = 0;
    for (size_t i = 0; i < napps; i++) {
        if (id && apps[i].id == id) {
            err = core_errf(CORE_ERR_EXISTS, errstr, errstr_size, "app id %d is taken by %s",
                            (int)id, apps[i].name);
            goto out;
        }
        if (apps[i].id > maxid)
            maxid = apps[i].id;
    }
    if (!id)
        id = maxid + 1;
    memset(&tmp, 0, sizeof tmp);
    tmp.id = id;
    snprintf(tmp.name, sizeof tmp.name, "%s", name);
    snprintf(tmp.description, sizeof tmp.description, "%s", description ? description : "");
    uint8_t val[4 + sizeof tmp.description];
    core_put_be32(val, (uint32_t)id);
    size_t dl = strlen(tmp.description);
    memcpy(val + 4, tmp.description, dl);
    char kn[STORE_APP_NAME_MAX + 32], ki[64];
    int kln = snprintf(kn, sizeof kn, "store/app/n/%s", name);
    int kli = snprintf(ki, sizeof ki, "store/app/i/%08x", (uint32_t)id);
    store_batch_t *b;
    store_batch_begin(s, 0, &b);
    store_batch_put_kv(b, kn, (size_t)kln, val, 4 + dl);
    store_batch_put_kv(b, ki, (size_t)kli, name, strlen(name));
    err = store_batch_commit(b, NULL, errstr, errstr_size);
    if (!err && out)
        *out = tmp;
out:
    pthread_mutex_unlock(&s->meta_lock);
    free(apps);
    return err;
}

typedef struct key_collect {
    char **keys;
    size_t n, cap;
} key_collect_t;

static int key_collect_cb(const void *key, size_t klen, const void *val, size_t vlen, void *opaque)
{
    key_collect_t *c = opaque;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->keys = core_xrealloc(c->keys, c->cap * sizeof *c->keys);
    }
    /* keep the value's first 4 bytes (app id for keys) behind the key */
    char *k = core_xmalloc(klen + 1 + 4);
    memcpy(k, key, klen);
    k[klen] = '\0';
    memset(k + klen + 1, 0, 4);
    if (vlen >= 4)
        memcpy(k + klen + 1, val, 4);
    c->keys[c->n++] = k;
    return 0;
}

static void key_collect_free(key_collect_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->keys[i]);
    free(c->keys);
}

int store_app_data_delete(store_t *s, int32_t app, int32_t channel)
{
    return s->eng->data_delete(s, app, channel);
}

int store_app_delete(store_t *s, const char *name)
{
    store_app_t a;
    int err = store_app_get(s, name, &a);
    if (err)
        return err;
    pthread_mutex_lock(&s->meta_lock);
    if ((err = s->eng->data_delete(s, a.id, -1)))
        goto out;
    key_collect_t keys = {0}, chans = {0};
    char p[64];
    int pl = snprintf(p, sizeof p, "store/chan/%08x/", (uint32_t)a.id);
    if ((err = store_kv_scan(s, "store/key/", 10, key_collect_cb, &keys)) ||
        (err = store_kv_scan(s, p, (size_t)pl, key_collect_cb, &chans))) {
        key_collect_free(&keys);
        key_collect_free(&chans);
        goto out;
    }
    store_batch_t *b;
    store_batch_begin(s, 0, &b);
    for (size_t i = 0; i < keys.n; i++) {
        size_t kl = strlen(keys.keys[i]);
        if ((int32_t)core_be32((uint8_t *)keys.keys[i] + kl + 1) == a.id)
            store_batch_delete_kv(b, keys.keys[i], kl);
    }
    for (size_t i = 0; i < chans.n; i++)
        store_batch_delete_kv(b, chans.keys[i], strlen(chans.keys[i]));
    char kn[STORE_APP_NAME_MAX + 32], ki[64];
    int kln = snprintf(kn, sizeof kn, "store/app/n/%s", name);
    int kli = snprintf(ki, sizeof ki, "store/app/i/%08x", (uint32_t)a.id);
    store_batch_delete_kv(b, kn, (size_t)kln);
    store_batch_delete_kv(b, ki, (size_t)kli);
    err = store_batch_commit(b, NULL, NULL, 0);
    key_collect_free(&keys);
    key_collect_free(&chans);
out:
    pthread_mutex_unlock(&s->meta_lock);
    return err;
}

static bool channel_name_ok(const char *n)
{
    size_t l = strlen(n);
    if (l == 0 || l > STORE_CHANNEL_NAME_MAX)
        return false;
    for (size_t i = 0; i < l; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
              (n[i] >= '0' && n[i] <= '9') || n[i] == '-'))
            return false;
    return true;
}

int store_channel_get(store_t *s, int32_t app, const char *name, int32_t *id)
{
    char k[64];
    void *v;
    size_t vl;
    if (!channel_name_ok(name))
        return CORE_ERR_NOT_FOUND;
    int n = snprintf(k, sizeof k, "store/chan/%08x/%s", (uint32_t)app, name);
    int err = store_kv_get(s, k, (size_t)n, &v, &vl);
    if (err)
        return err;
    if (vl < 4) {
        free(v);
        return CORE_ERR_CORRUPT;
    }
    *id = (int32_t)core_be32(v);
    free(v);
    return 0;
}

typedef struct chan_list {
    store_channel_t *v;
    size_t n, cap;
    size_t plen;
} chan_list_t;

static int chan_list_cb(const void *key, size_t klen, const void *val, size_t vlen, void *opaque)
{
    chan_list_t *l = opaque;
    if (vlen < 4 || klen - l->plen > STORE_CHANNEL_NAME_MAX)
        return 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = core_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    store_channel_t *c = &l->v[l->n++];
    c->id = (int32_t)core_be32(val);
    memcpy(c->name, (const char *)key + l->plen, klen - l->plen);
    c->name[klen - l->plen] = '\0';
    return 0;
}

int store_channel_list(store_t *s, int32_t app, store_channel_t **chans, size_t *n)
{
    char p[64];
    chan_list_t l = {0};
    l.plen = (size_t)snprintf(p, sizeof p, "store/chan/%08x/", (uint32_t)app);
    int err = store_kv_scan(s, p, l.plen, chan_list_cb, &l);
    if (err) {
        free(l.v);
        return err;
    }
    *chans = l.v;
    *n = l.n;
    return 0;
}

int store_channel_new(store_t *s, int32_t app, const char *name, int32_t *id, char *errstr,
                      size_t errstr_size)
{
    store_channel_t *chans = NULL;
    size_t n = 0;
    int32_t tmp;
    if (!channel_name_ok(name))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "channel name must match ^[a-zA-Z0-9-]{1,16}$");
    pthread_mutex_lock(&s->meta_lock);
    int err = store_channel_get(s, app, name, &tmp);
    if (err != CORE_ERR_NOT_FOUND) {
        if (!err)
            err =
                core_errf(CORE_ERR_EXISTS, errstr, errstr_size, "channel %s already exists", name);
        goto out;
    }
    if ((err = store_channel_list(s, app, &chans, &n)))
        goto out;
    int32_t maxid = 0;
    for (size_t i = 0; i < n; i++)
        if (chans[i].id > maxid)
            maxid = chans[i].id;
    char k[64];
    uint8_t v[4];
    int kl = snprintf(k, sizeof k, "store/chan/%08x/%s", (uint32_t)app, name);
    core_put_be32(v, (uint32_t)(maxid + 1));
    if ((err = store_kv_put(s, k, (size_t)kl, v, 4)))
        goto out;
    if (id)
        *id = maxid + 1;
out:
    pthread_mutex_unlock(&s->meta_lock);
    free(chans);
    return err;
}

int store_channel_delete(store_t *s, int32_t app, const char *name)
{
    int32_t id;
    int err = store_channel_get(s, app, name, &id);
    if (err)
        return err;
    if ((err = s->eng->data_delete(s, app, id)))
        return err;
    char k[64];
    int kl = snprintf(k, sizeof k, "store/chan/%08x/%s", (uint32_t)app, name);
    return store_kv_delete(s, k, (size_t)kl);
}

static bool accesskey_ok(const char *k)
{
    size_t l = strlen(k);
    if (l == 0 || l > STORE_ACCESSKEY_MAX)
        return false;
    for (size_t i = 0; i < l; i++)
        if (!id_char_ok(k[i]))
            return false;
    return true;
}

static void accesskey_generate(char out[STORE_ACCESSKEY_MAX + 1])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t r[48];
    do {
        size_t got = 0;
        while (got < sizeof r) {
            ssize_t n = getrandom(r + got, sizeof r - got, 0);
            if (n > 0)
                got += (size_t)n;
        }
        for (int i = 0, o = 0; i < 48; i += 3) {
            uint32_t v = (uint32_t)r[i] << 16 | (uint32_t)r[i + 1] << 8 | r[i + 2];
            out[o++] = b64[v >> 18];
            out[o++] = b64[(v >> 12) & 63];
            out[o++] = b64[(v >> 6) & 63];
            out[o++] = b64[v & 63];
        }
        out[64] = '\0';
    } while (out[0] == '-');
}

int store_accesskey_new(store_t *s, int32_t app, const char *key, const char *const *events,
                        int nevents, char out_key[STORE_ACCESSKEY_MAX + 1], char *errstr,
                        size_t errstr_size)
{
    char k[STORE_ACCESSKEY_MAX + 1];
    store_app_t a;
    int err;
    if (key) {
        if (!accesskey_ok(key) || key[0] == '-')
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                             "access key must be 1..%d characters of [A-Za-z0-9_-], not "
                             "starting with '-'",
                             STORE_ACCESSKEY_MAX);
        snprintf(k, sizeof k, "%s", key);
    } else {
        accesskey_generate(k);
    }
    if ((err = store_app_get_by_id(s, app, &a)))
        return core_errf(err, errstr, errstr_size, "no app with id %d", (int)app);
    core_buf_t v;
    core_buf_init(&v);
    core_wr_i32(&v, app);
    for (int i = 0; i < nevents; i++) {
        if (!events[i][0] || strchr(events[i], '\n') || strlen(events[i]) > STORE_NAME_MAX) {
            core_buf_fini(&v);
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "bad event name in whitelist");
        }
        if (i)
            core_wr_raw(&v, "\n", 1);
        core_wr_raw(&v, events[i], strlen(events[i]));
    }
    char kk[STORE_ACCESSKEY_MAX + 16];
    int kl = snprintf(kk, sizeof kk, "store/key/%s", k);
    void *old;
    size_t ol;
    pthread_mutex_lock(&s->meta_lock);
    err = store_kv_get(s, kk, (size_t)kl, &old, &ol);
    if (err == 0) {
        free(old);
        err = core_errf(CORE_ERR_EXISTS, errstr, errstr_size, "access key already exists");
    } else if (err == CORE_ERR_NOT_FOUND) {
        err = store_kv_put(s, kk, (size_t)kl, v.data, v.len);
    }
    pthread_mutex_unlock(&s->meta_lock);
    core_buf_fini(&v);
    if (!err && out_key)
        memcpy(out_key, k, sizeof k);
    return err;
}

static int accesskey_decode(const char *key, const uint8_t *v, size_t vl, store_accesskey_t *out)
{
    memset(out, 0, sizeof *out);
    if (vl < 4)
        return CORE_ERR_CORRUPT;
    snprintf(out->key, sizeof out->key, "%s", key);
    out->app = (int32_t)core_be32(v);
    const char *p = (const char *)v + 4, *end = (const char *)v + vl;
    if (p == end)
        return 0;
    int n = 1;
    for (const char *q = p; q < end; q++)
        n += *q == '\n';
    out->events = core_xcalloc((size_t)n, sizeof *out->events);
    while (p <= end && out->nevents < n) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        out->events[out->nevents++] = core_xstrndup(p, (size_t)(nl - p));
        p = nl + 1;
    }
    return 0;
}

int store_accesskey_get(store_t *s, const char *key, store_accesskey_t *out)
{
    memset(out, 0, sizeof *out);
    if (!accesskey_ok(key))
        return CORE_ERR_NOT_FOUND;
    char kk[STORE_ACCESSKEY_MAX + 16];
    int kl = snprintf(kk, sizeof kk, "store/key/%s", key);
    void *v;
    size_t vl;
    int err = store_kv_get(s, kk, (size_t)kl, &v, &vl);
    if (err)
        return err;
    err = accesskey_decode(key, v, vl, out);
    free(v);
    return err;
}

void store_accesskey_fini(store_accesskey_t *k)
{
    if (!k)
        return;
    for (int i = 0; i < k->nevents; i++)
        free(k->events[i]);
    free(k->events);
    k->events = NULL;
    k->nevents = 0;
}

typedef struct key_list {
    int32_t app;
    store_accesskey_t *v;
    size_t n, cap;
} key_list_t;

static int key_list_cb(const void *key, size_t klen, const void *val, size_t vlen, void *opaque)
{
    key_list_t *l = opaque;
    char k[STORE_ACCESSKEY_MAX + 1];
    if (klen - 10 > STORE_ACCESSKEY_MAX || vlen < 4)
        return 0;
    if (l->app >= 0 && (int32_t)core_be32(val) != l->app)
        return 0;
    memcpy(k, (const char *)key + 10, klen - 10);
    k[klen - 10] = '\0';
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = core_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    if (accesskey_decode(k, val, vlen, &l->v[l->n]) == 0)
        l->n++;
    return 0;
}

int store_accesskey_list(store_t *s, int32_t app, store_accesskey_t **keys, size_t *n)
{
    key_list_t l = {.app = app};
    int err = store_kv_scan(s, "store/key/", 10, key_list_cb, &l);
    if (err) {
        store_accesskey_list_free(l.v, l.n);
        return err;
    }
    *keys = l.v;
    *n = l.n;
    return 0;
}

void store_accesskey_list_free(store_accesskey_t *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_accesskey_fini(&keys[i]);
    free(keys);
}

int store_accesskey_delete(store_t *s, const char *key)
{
    store_accesskey_t k;
    int err = store_accesskey_get(s, key, &k);
    if (err)
        return err;
    store_accesskey_fini(&k);
    char kk[STORE_ACCESSKEY_MAX + 16];
    int kl = snprintf(kk, sizeof kk, "store/key/%s", key);
    return store_kv_delete(s, kk, (size_t)kl);
}

bool store_accesskey_allows(const store_accesskey_t *k, const char *event)
{
    if (k->nevents == 0)
        return true;
    for (int i = 0; i < k->nevents; i++)
        if (!strcmp(k->events[i], event))
            return true;
    return false;
}
