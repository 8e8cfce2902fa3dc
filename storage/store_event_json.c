/*
 * store_event_json.c — event JSON <-> store_event_t (see store_event_json.h).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "storage/store_event_json.h"
#include "storage/store_int.h"

/* ---- time ---------------------------------------------------------------------- */
/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

int store_time_parse(const char *s, size_t len, int64_t *ms, int16_t *tz_min)
{
    unsigned y, mo, d, h, mi, se, frac = 0, tzh = 0, tzm = 0;
    size_t i = 19;
    if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return CORE_ERR_INVAL;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
        !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
        return CORE_ERR_INVAL;
    if (i < len && s[i] == '.') {
        size_t f0 = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        size_t nf = i - f0;
        if (nf < 1 || nf > 9)
            return CORE_ERR_INVAL;
        unsigned v = 0;
        digits(s + f0, nf < 3 ? nf : 3, &v);
        for (size_t k = nf; k < 3; k++)
            v *= 10;
        frac = v;
    }
    if (i >= len)
        return CORE_ERR_INVAL; /* the offset is mandatory */
    int sign = 0;
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
        sign = 0;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '+' ? 1 : -1;
        const char *z = s + i + 1;
        size_t zl = len - i - 1;
        if (zl == 2 && digits(z, 2, &tzh))
            tzm = 0;
        else if (zl == 4 && digits(z, 2, &tzh) && digits(z + 2, 2, &tzm))
            ;
        else if (zl == 5 && z[2] == ':' && digits(z, 2, &tzh) && digits(z + 3, 2, &tzm))
            ;
        else
            return CORE_ERR_INVAL;
        if (tzh > 18 || tzm > 59 || tzh * 60 + tzm > 18 * 60)
            return CORE_ERR_INVAL;
    } else {
        return CORE_ERR_INVAL;
    }
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || se > 59)
        return CORE_ERR_INVAL;
    int tz = sign * (int)(tzh * 60 + tzm);
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    *ms = (t - (int64_t)tz * 60) * 1000 + frac;
    *tz_min = (int16_t)tz;
    return 0;
}

static char *put_digits(char *w, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        w[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return w + n;
}

void store_time_format(int64_t ms, int16_t tz_min, char out[STORE_TIME_TEXT_MAX])
{
    /* Any int64 comes back from a damaged or foreign record: saturate rather
     * than overflow (found by fuzz_store_record). */
    int64_t local;
    if (__builtin_add_overflow(ms, (int64_t)tz_min * 60000, &local))
        local = tz_min < 0 ? INT64_MIN : INT64_MAX;
    int64_t days = local / 86400000, rem = local % 86400000;
    if (rem < 0) {
        days--;
        rem += 86400000;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) { /* outside what the store accepts: keep the general form */
        int n = snprintf(out, STORE_TIME_TEXT_MAX, "%04" PRId64 "-%02u-%02uT%02d:%02d:%02d.%03d",
                         y, m, d, (int)(rem / 3600000), (int)(rem / 60000 % 60),
                         (int)(rem / 1000 % 60), (int)(rem % 1000));
        if (tz_min == 0)
            snprintf(out + n, (size_t)(STORE_TIME_TEXT_MAX - n), "Z");
        else
            snprintf(out + n, (size_t)(STORE_TIME_TEXT_MAX - n), "%c%02d:%02d",
                     tz_min < 0 ? '-' : '+', abs(tz_min) / 60, abs(tz_min) % 60);
        return;
    }
    /* yyyy-MM-ddTHH:mm:ss.SSS then Z or ±HH:MM, without printf (hot on reads) */
    char *w = out;
    w = put_digits(w, (unsigned)y, 4);
    *w++ = '-';
    w = put_digits(w, m, 2);
    *w++ = '-';
    w = put_digits(w, d, 2);
    *w++ = 'T';
    w = put_digits(w, (unsigned)(rem / 3600000), 2);
    *w++ = ':';
    w = put_digits(w, (unsigned)(rem / 60000 % 60), 2);
    *w++ = ':';
    w = put_digits(w, (unsigned)(rem / 1000 % 60), 2);
    *w++ = '.';
    w = put_digits(w, (unsigned)(rem % 1000), 3);
    if (tz_min == 0) {
        *w++ = 'Z';
    } else {
        *w++ = tz_min < 0 ? '-' : '+';
        w = put_digits(w, (unsigned)abs(tz_min) / 60, 2);
        *w++ = ':';
        w = put_digits(w, (unsigned)abs(tz_min) % 60, 2);
    }
    *w = '\0';
}

/* ---- parse ----------------------------------------------------------------------- */
typedef struct field {
    const char *s;
    size_t n;
    char num[32]; /* numbers as text */
} field_t;

/* Reads an optional string field; ids may also be integers (A.5 [OURS]).
 * Returns 0 (absent: f->s NULL), or CORE_ERR_INVAL. */
static int get_str(const json_t *o, const char *name, bool allow_int, field_t *f, char *errstr,
                   size_t errstr_size)
{
    json_t *v = json_object_get(o, name);
    f->s = NULL;
    f->n = 0;
    if (!v)
        return 0;
    if (json_is_string(v)) {
        f->s = json_string_value(v);
        f->n = json_string_length(v);
        if (strlen(f->s) != f->n)
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                             "%s must not contain NUL characters.", name);
        return 0;
    }
    if (allow_int && json_is_integer(v)) {
        f->n =
            (size_t)snprintf(f->num, sizeof f->num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        f->s = f->num;
        return 0;
    }
    return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "%s must be a string.", name);
}

int store_event_from_jansson(const json_t *o, int64_t now_ms, store_event_t *out, char *errstr,
                             size_t errstr_size)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(o))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "The event must be a JSON object.");
    enum { F_EVENT, F_ETYPE, F_EID, F_TTYPE, F_TID, F_PRID, F_ID, F_N };
    static const char *names[F_N] = {"event",          "entityType", "entityId", "targetEntityType",
                                     "targetEntityId", "prId",       "eventId"};
    static const bool ints[F_N] = {false, false, true, false, true, false, true};
    field_t f[F_N];
    int err;
    for (int i = 0; i < F_N; i++)
        if ((err = get_str(o, names[i], ints[i], &f[i], errstr, errstr_size)))
            return err;
    if (f[F_ID].s && f[F_ID].n > STORE_EVENT_ID_MAX)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "eventId must be 1 to %d characters of [A-Za-z0-9_-].",
                         STORE_EVENT_ID_MAX);
    if (f[F_ID].s && f[F_ID].n == 0)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "eventId must not be empty.");
    /* properties */
    char *props = NULL;
    json_t *p = json_object_get(o, "properties");
    if (p && !json_is_null(p)) {
        if (!json_is_object(p))
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                             "properties must be a JSON object.");
        props = store__json_canon(p);
    }
    /* eventTime */
    int64_t t = now_ms;
    int16_t tz = 0;
    bool given = false;
    json_t *et = json_object_get(o, "eventTime");
    if (et) {
        const char *ts = json_is_string(et) ? json_string_value(et) : NULL;
        if (!ts || store_time_parse(ts, json_string_length(et), &t, &tz) != 0) {
            char *txt = ts ? NULL : json_dumps(et, JSON_ENCODE_ANY | JSON_COMPACT);
            err = core_errf(CORE_ERR_INVAL, errstr, errstr_size, "Fail to extract eventTime %s",
                            ts ? ts : (txt ? txt : "?"));
            free(txt);
            free(props);
            return err;
        }
        given = true;
    }
    /* one allocation for every string */
    size_t total = (props ? strlen(props) + 1 : 0);
    for (int i = 0; i < F_N; i++)
        total += f[i].s ? f[i].n + 1 : 0;
    char *mem = core_xmalloc(total ? total : 1), *w = mem;
    const char *ptr[F_N];
    for (int i = 0; i < F_N; i++) {
        ptr[i] = NULL;
        if (!f[i].s)
            continue;
        memcpy(w, f[i].s, f[i].n);
        w[f[i].n] = '\0';
        ptr[i] = w;
        w += f[i].n + 1;
    }
    if (props) {
        strcpy(w, props);
        out->properties = w;
        free(props);
    }
    out->mem = mem;
    out->event = ptr[F_EVENT];
    out->entity_type = ptr[F_ETYPE];
    out->entity_id = ptr[F_EID];
    out->target_entity_type = ptr[F_TTYPE];
    out->target_entity_id = ptr[F_TID];
    out->pr_id = ptr[F_PRID];
    if (ptr[F_ID])
        memcpy(out->event_id, ptr[F_ID], f[F_ID].n + 1);
    out->event_time_ms = t;
    out->event_time_tz_min = tz;
    out->event_time_given = given;
    out->creation_time_ms = now_ms;
    /* properties were parsed once above: check that value, not a re-parse */
    if ((err = store__event_check(out, p && !json_is_null(p) ? p : NULL, errstr, errstr_size))) {
        store_event_fini(out);
        return err;
    }
    return 0;
}

int store_event_from_json(const char *text, size_t len, int64_t now_ms, store_event_t *out,
                          char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    json_t *o = json_loadb(text, len, 0, &jerr);
    if (!o)
        return core_errf(CORE_ERR_MALFORMED, errstr, errstr_size, "%s (line %d, column %d)",
                         jerr.text, jerr.line, jerr.column);
    if (!json_is_object(o)) {
        json_decref(o);
        return core_errf(CORE_ERR_MALFORMED, errstr, errstr_size,
                         "The event must be a JSON object.");
    }
    int err = store_event_from_jansson(o, now_ms, out, errstr, errstr_size);
    json_decref(o);
    return err;
}

/* ---- output ------------------------------------------------------------------------ */
static void key_str(core_buf_t *b, const char *key, const char *v, bool comma)
{
    if (comma)
        core_wr_raw(b, ",", 1);
    core_wr_raw(b, "\"", 1);
    core_wr_raw(b, key, strlen(key));
    core_wr_raw(b, "\":", 2);
    store__json_str(b, v, strlen(v));
}

void store_event_to_json(const store_event_t *ev, core_buf_t *out)
{
    char t[STORE_TIME_TEXT_MAX];
    core_wr_raw(out, "{", 1);
    key_str(out, "eventId", ev->event_id, false);
    key_str(out, "event", ev->event, true);
    key_str(out, "entityType", ev->entity_type, true);
    key_str(out, "entityId", ev->entity_id, true);
    if (ev->target_entity_type) {
        key_str(out, "targetEntityType", ev->target_entity_type, true);
        key_str(out, "targetEntityId", ev->target_entity_id, true);
    }
    core_wr_raw(out, ",\"properties\":", 14);
    const char *p = ev->properties ? ev->properties : "{}";
    core_wr_raw(out, p, strlen(p));
    store_time_format(ev->event_time_ms, ev->event_time_tz_min, t);
    key_str(out, "eventTime", t, true);
    if (ev->pr_id)
        key_str(out, "prId", ev->pr_id, true);
    store_time_format(ev->creation_time_ms, 0, t);
    key_str(out, "creationTime", t, true);
    core_wr_raw(out, "}", 1);
}

/* ---- batch fast path -----------------------------------------------------------
 * A strict subset of JSON parsed without building a tree: the body is ASCII,
 * has no backslash escapes, numbers in property values are integers. Anything
 * else, and anything that would be answered with an error message (wrong
 * types, bad eventTime, reserved property names, duplicate keys, ...), is
 * CORE_ERR_UNSUPPORTED: the caller then runs the jansson path, which gives
 * the answer. So on success the events are exactly what
 * store_event_from_jansson makes of the same items (fuzz_http_event checks
 * this differentially), and on failure nothing is decided here. */

/* Object keys sorted per object; larger objects take the jansson path. */
#define FAST_MAX_KEYS 64
/* Nesting depth inside properties; deeper takes the jansson path. */
#define FAST_MAX_DEPTH 32
/* Integers of at most this many digits cannot overflow int64 (jansson would
 * refuse bigger ones with its own message). */
#define FAST_MAX_INT_DIGITS 18

typedef struct fast {
    const char *p, *end;
    core_buf_t canon; /* canonical properties under construction */
} fast_t;

static void fast_ws(fast_t *f)
{
    while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r'))
        f->p++;
}

/* A string (no escapes: checked for the whole body up front). */
static bool fast_str(fast_t *f, const char **s, size_t *n)
{
    if (f->p >= f->end || *f->p != '"')
        return false;
    const char *q = ++f->p;
    while (q < f->end && *q != '"') {
        if ((unsigned char)*q < 0x20)
            return false;
        q++;
    }
    if (q >= f->end)
        return false;
    *s = f->p;
    *n = (size_t)(q - f->p);
    f->p = q + 1;
    return true;
}

/* An integer as jansson prints it back: -?(0|[1-9][0-9]*), not "-0", short
 * enough not to overflow. A fraction or exponent (a real) is refused. */
static bool fast_int(fast_t *f, const char **s, size_t *n)
{
    const char *q = f->p;
    if (q < f->end && *q == '-')
        q++;
    const char *d = q;
    while (q < f->end && *q >= '0' && *q <= '9')
        q++;
    size_t nd = (size_t)(q - d);
    if (nd == 0 || nd > FAST_MAX_INT_DIGITS || (nd > 1 && *d == '0') ||
        (d != f->p && nd == 1 && *d == '0'))
        return false;
    if (q < f->end && (*q == '.' || *q == 'e' || *q == 'E'))
        return false;
    *s = f->p;
    *n = (size_t)(q - f->p);
    f->p = q;
    return true;
}

/* Consumes c when it is the next byte. */
static bool fast_eat(fast_t *f, char c)
{
    if (f->p >= f->end || *f->p != c)
        return false;
    f->p++;
    return true;
}

static bool fast_lit(fast_t *f, const char *lit, size_t n)
{
    if ((size_t)(f->end - f->p) < n || memcmp(f->p, lit, n) != 0)
        return false;
    f->p += n;
    return true;
}

typedef struct fast_pair {
    const char *k;
    size_t kn;
    size_t voff, vlen; /* canonical value in f->canon */
} fast_pair_t;

static int fast_pair_cmp(const void *a, const void *b)
{
    const fast_pair_t *x = a, *y = b;
    int c = memcmp(x->k, y->k, x->kn < y->kn ? x->kn : y->kn);
    return c ? c : (x->kn > y->kn) - (x->kn < y->kn);
}

static bool fast_value(fast_t *f, int depth);

/* An object, appended canonically to f->canon (keys sorted as canon_json
 * sorts them: strcmp order). top: the properties object itself, whose keys
 * must not be reserved names. */
static bool fast_object(fast_t *f, int depth, bool top, size_t *nkeys)
{
    fast_pair_t pairs[FAST_MAX_KEYS];
    size_t np = 0, mark = f->canon.len;
    if (depth > FAST_MAX_DEPTH || !fast_eat(f, '{'))
        return false;
    fast_ws(f);
    if (!fast_eat(f, '}')) {
        do {
            if (np == FAST_MAX_KEYS)
                return false;
            fast_pair_t *pr = &pairs[np++];
            fast_ws(f);
            if (!fast_str(f, &pr->k, &pr->kn))
                return false;
            if (top && (pr->kn == 0 || pr->k[0] == '$' ||
                        (pr->kn >= 4 && !memcmp(pr->k, "pio_", 4))))
                return false;
            if (memchr(pr->k, '\0', pr->kn))
                return false;
            fast_ws(f);
            if (!fast_eat(f, ':'))
                return false;
            fast_ws(f);
            pr->voff = f->canon.len;
            if (!fast_value(f, depth + 1))
                return false;
            pr->vlen = f->canon.len - pr->voff;
            fast_ws(f);
        } while (fast_eat(f, ','));
        if (!fast_eat(f, '}'))
            return false;
    }
    if (np > 1)
        qsort(pairs, np, sizeof pairs[0], fast_pair_cmp);
    for (size_t i = 1; i < np; i++)
        if (fast_pair_cmp(&pairs[i - 1], &pairs[i]) == 0)
            return false; /* duplicate key: jansson keeps the last one */
    /* write the sorted object after the children, then move it down */
    size_t start = f->canon.len;
    core_wr_raw(&f->canon, "{", 1);
    for (size_t i = 0; i < np; i++) {
        if (i)
            core_wr_raw(&f->canon, ",", 1);
        core_buf_reserve(&f->canon, pairs[i].kn + 3 + pairs[i].vlen);
        core_wr_raw(&f->canon, "\"", 1);
        core_wr_raw(&f->canon, pairs[i].k, pairs[i].kn);
        core_wr_raw(&f->canon, "\":", 2);
        core_wr_raw(&f->canon, f->canon.data + pairs[i].voff, pairs[i].vlen);
    }
    core_wr_raw(&f->canon, "}", 1);
    size_t olen = f->canon.len - start;
    memmove(f->canon.data + mark, f->canon.data + start, olen);
    f->canon.len = mark + olen;
    if (nkeys)
        *nkeys = np;
    return true;
}

/* Any value, appended canonically to f->canon. */
static bool fast_value(fast_t *f, int depth)
{
    const char *s;
    size_t n;
    if (f->p >= f->end || depth > FAST_MAX_DEPTH)
        return false;
    switch (*f->p) {
    case '{':
        return fast_object(f, depth, false, NULL);
    case '[':
        f->p++;
        core_wr_raw(&f->canon, "[", 1);
        fast_ws(f);
        if (!fast_eat(f, ']')) {
            for (bool first = true;; first = false) {
                if (!first)
                    core_wr_raw(&f->canon, ",", 1);
                fast_ws(f);
                if (!fast_value(f, depth + 1))
                    return false;
                fast_ws(f);
                if (!fast_eat(f, ','))
                    break;
            }
            if (!fast_eat(f, ']'))
                return false;
        }
        core_wr_raw(&f->canon, "]", 1);
        return true;
    case '"':
        if (!fast_str(f, &s, &n) || memchr(s, '\0', n))
            return false;
        core_buf_reserve(&f->canon, n + 2);
        core_wr_raw(&f->canon, "\"", 1);
        core_wr_raw(&f->canon, s, n);
        core_wr_raw(&f->canon, "\"", 1);
        return true;
    case 't':
        if (!fast_lit(f, "true", 4))
            return false;
        core_wr_raw(&f->canon, "true", 4);
        return true;
    case 'f':
        if (!fast_lit(f, "false", 5))
            return false;
        core_wr_raw(&f->canon, "false", 5);
        return true;
    case 'n':
        if (!fast_lit(f, "null", 4))
            return false;
        core_wr_raw(&f->canon, "null", 4);
        return true;
    default:
        if (!fast_int(f, &s, &n))
            return false;
        core_wr_raw(&f->canon, s, n);
        return true;
    }
}

enum { FF_EVENT, FF_ETYPE, FF_EID, FF_TTYPE, FF_TID, FF_PRID, FF_ID, FF_PROPS, FF_TIME, FF_N };
static const char *const fast_names[FF_N] = {
    "event", "entityType", "entityId", "targetEntityType", "targetEntityId",
    "prId",  "eventId",    "properties", "eventTime"};

/* One event object. Strings are NUL-terminated copies written at *w (the
 * arena has room: see store_event_batch_parse_fast). */
static bool fast_event(fast_t *f, int64_t now_ms, store_event_t *ev, char **w)
{
    const char *val[FF_N] = {0};
    size_t vlen[FF_N] = {0};
    bool props_null = false;
    size_t props_off = 0, props_len = 0, nkeys = 0;
    unsigned seen = 0;
    memset(ev, 0, sizeof *ev);
    if (!fast_eat(f, '{'))
        return false;
    fast_ws(f);
    if (!fast_eat(f, '}')) {
        do {
            const char *k;
            size_t kn;
            fast_ws(f);
            if (!fast_str(f, &k, &kn))
                return false;
            fast_ws(f);
            if (!fast_eat(f, ':'))
                return false;
            fast_ws(f);
            int fi = -1;
            for (int i = 0; i < FF_N; i++)
                if (strlen(fast_names[i]) == kn && !memcmp(fast_names[i], k, kn)) {
                    fi = i;
                    break;
                }
            if (fi >= 0 && (seen & (1u << fi)))
                return false; /* duplicate field: jansson keeps the last one */
            if (fi >= 0)
                seen |= 1u << fi;
            if (fi == FF_PROPS) {
                if (f->p < f->end && *f->p == 'n') {
                    if (!fast_lit(f, "null", 4))
                        return false;
                    props_null = true;
                } else {
                    props_off = f->canon.len;
                    if (!fast_object(f, 0, true, &nkeys))
                        return false;
                    props_len = f->canon.len - props_off;
                }
            } else if (fi == FF_EID || fi == FF_TID || fi == FF_ID) {
                /* ids may be JSON integers: their decimal text (A.5) */
                if (f->p < f->end && *f->p == '"') {
                    if (!fast_str(f, &val[fi], &vlen[fi]))
                        return false;
                } else if (!fast_int(f, &val[fi], &vlen[fi])) {
                    return false;
                }
            } else if (fi >= 0) {
                if (!fast_str(f, &val[fi], &vlen[fi]))
                    return false;
            } else {
                size_t mark = f->canon.len; /* unknown field: check, then drop */
                if (!fast_value(f, 1))
                    return false;
                f->canon.len = mark;
            }
            fast_ws(f);
        } while (fast_eat(f, ','));
        if (!fast_eat(f, '}'))
            return false;
    }
    (void)props_null;
    if (val[FF_ID] && (vlen[FF_ID] == 0 || vlen[FF_ID] > STORE_EVENT_ID_MAX))
        return false;
    int64_t t = now_ms;
    int16_t tz = 0;
    if (val[FF_TIME] && store_time_parse(val[FF_TIME], vlen[FF_TIME], &t, &tz) != 0)
        return false;
    /* $unset needs properties: the jansson path words the refusal */
    if (val[FF_EVENT] && vlen[FF_EVENT] == 6 && !memcmp(val[FF_EVENT], "$unset", 6) &&
        nkeys == 0)
        return false;
    const char **dst[FF_PROPS] = {&ev->event,           &ev->entity_type,
                                  &ev->entity_id,       &ev->target_entity_type,
                                  &ev->target_entity_id, &ev->pr_id, NULL};
    for (int i = 0; i < FF_PROPS; i++) {
        if (!val[i])
            continue;
        if (memchr(val[i], '\0', vlen[i]))
            return false;
        if (i == FF_ID) {
            memcpy(ev->event_id, val[i], vlen[i]);
            ev->event_id[vlen[i]] = '\0';
            continue;
        }
        memcpy(*w, val[i], vlen[i]);
        (*w)[vlen[i]] = '\0';
        *dst[i] = *w;
        *w += vlen[i] + 1;
    }
    if (props_len) {
        memcpy(*w, f->canon.data + props_off, props_len);
        (*w)[props_len] = '\0';
        ev->properties = *w;
        *w += props_len + 1;
    }
    f->canon.len = 0;
    ev->event_time_ms = t;
    ev->event_time_tz_min = tz;
    ev->event_time_given = val[FF_TIME] != NULL;
    ev->creation_time_ms = now_ms;
    return true;
}

int store_event_batch_parse_fast(const char *text, size_t len, int64_t now_ms,
                                 store_event_t *evs, size_t max, size_t *n, core_buf_t *arena)
{
    *n = 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] >= 0x80 || text[i] == '\\')
            return CORE_ERR_UNSUPPORTED;
    /* Every string copied out is a substring of the body or canonical
     * properties (never longer than their text), plus one NUL each: the
     * arena is sized once and never moves under the events' pointers. */
    core_buf_reset(arena);
    core_buf_reserve(arena, len + 16 * (max + 1));
    char *w = (char *)arena->data;
    fast_t f = {.p = text, .end = text + len};
    core_buf_init(&f.canon);
    int err = CORE_ERR_UNSUPPORTED;
    fast_ws(&f);
    if (f.p >= f.end || *f.p != '[')
        goto out;
    f.p++;
    fast_ws(&f);
    if (f.p < f.end && *f.p == ']') {
        f.p++;
    } else {
        for (;;) {
            fast_ws(&f);
            if (*n == max || !fast_event(&f, now_ms, &evs[*n], &w))
                goto out;
            (*n)++;
            fast_ws(&f);
            if (f.p < f.end && *f.p == ',') {
                f.p++;
                continue;
            }
            if (f.p < f.end && *f.p == ']') {
                f.p++;
                break;
            }
            goto out;
        }
    }
    fast_ws(&f);
    if (f.p == f.end)
        err = 0;
out:
    arena->len = (size_t)(w - (char *)arena->data);
    core_buf_fini(&f.canon);
    if (err)
        *n = 0;
    return err;
}
