#include "clicklog_avro.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char CLICKLOG_AVRO_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"Click\",\"namespace\":\"eddy.clickstream\",\"fields\":["
    "{\"name\":\"date\",\"type\":\"string\"},"
    "{\"name\":\"time\",\"type\":\"string\"},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"userid\",\"type\":\"string\"},"
    "{\"name\":\"event\",\"type\":\"string\"},"
    "{\"name\":\"subevent\",\"type\":[\"null\",\"int\"],\"default\":null},"
    "{\"name\":\"item\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"rating\",\"type\":[\"null\",\"int\"],\"default\":null},"
    "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":\"string\"},\"default\":{}}]}";

typedef struct w {
    uint8_t *p, *end;
    bool overflow;
} w_t;

static void put_long(w_t *w, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (w->p < w->end) {
        if (u < 0x80) {
            *w->p++ = (uint8_t)u;
            return;
        }
        *w->p++ = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    w->overflow = true;
}

static void put_bytes(w_t *w, const char *s, size_t n)
{
    put_long(w, (int64_t)n);
    if ((size_t)(w->end - w->p) < n) {
        w->overflow = true;
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
}

/* A decimal int32 ("-12"), or false. */
static bool parse_int(const clicklog_str_t *s, int32_t *out)
{
    if (!s->n || s->n > 11)
        return false;
    size_t i = s->p[0] == '-';
    if (i == s->n)
        return false;
    int64_t v = 0;
    for (; i < s->n; i++) {
        if (s->p[i] < '0' || s->p[i] > '9')
            return false;
        v = v * 10 + (s->p[i] - '0');
    }
    v = s->p[0] == '-' ? -v : v;
    if (v < INT32_MIN || v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

static bool key_is(const clicklog_str_t *k, const char *name)
{
    size_t n = strlen(name);
    return k->n == n && !memcmp(k->p, name, n);
}

static bool is_known(const clicklog_str_t *k)
{
    return key_is(k, "userid") || key_is(k, "event") || key_is(k, "subevent") ||
           key_is(k, "item") || key_is(k, "rating");
}

static int fail(char *reason, size_t rs, const char *msg)
{
    if (reason && rs)
        snprintf(reason, rs, "%s", msg);
    return 0;
}

/* Looks key up in the element first, then at the top level. */
static const clicklog_str_t *lookup(const clicklog_rec_t *rec, int elem, const char *key)
{
    const clicklog_str_t *v = elem >= 0 ? clicklog_elem_get(rec, elem, key) : NULL;
    return v ? v : clicklog_top(rec, key);
}

static bool put_opt_int(w_t *w, const clicklog_str_t *v)
{
    int32_t x;
    if (!v) {
        put_long(w, 0); /* union branch 0: null */
        return true;
    }
    if (!parse_int(v, &x))
        return false;
    put_long(w, 1);
    put_long(w, x);
    return true;
}

size_t clicklog_avro_encode(const clicklog_rec_t *rec, int elem, int32_t schema_id, uint8_t *out,
                            size_t cap, char *reason, size_t rs)
{
    const clicklog_str_t *userid = clicklog_top(rec, "userid");
    const clicklog_str_t *event = lookup(rec, elem, "event");
    if (!userid || !userid->n)
        return (size_t)fail(reason, rs, "missing userid");
    if (!event || !event->n)
        return (size_t)fail(reason, rs, elem >= 0 ? "array element has no event" : "line has no event");
    if (cap < 5)
        return (size_t)fail(reason, rs, "output buffer too small");
    out[0] = 0;
    out[1] = (uint8_t)((uint32_t)schema_id >> 24);
    out[2] = (uint8_t)((uint32_t)schema_id >> 16);
    out[3] = (uint8_t)((uint32_t)schema_id >> 8);
    out[4] = (uint8_t)schema_id;
    w_t w = {out + 5, out + cap, false};
    put_bytes(&w, rec->date.p, rec->date.n);
    put_bytes(&w, rec->time.p, rec->time.n);
    put_long(&w, rec->ts_ms);
    put_bytes(&w, userid->p, userid->n);
    put_bytes(&w, event->p, event->n);
    if (!put_opt_int(&w, lookup(rec, elem, "subevent")))
        return (size_t)fail(reason, rs, "subevent is not an integer");
    const clicklog_str_t *item = lookup(rec, elem, "item");
    put_long(&w, item ? 1 : 0);
    if (item)
        put_bytes(&w, item->p, item->n);
    if (!put_opt_int(&w, lookup(rec, elem, "rating")))
        return (size_t)fail(reason, rs, "rating is not an integer");
    /* attrs: every other pair; element pairs shadow top-level ones of the same key */
    int n = 0;
    const clicklog_pair_t *el = elem >= 0 ? &rec->pairs[rec->elems[elem].first] : NULL;
    int nel = elem >= 0 ? rec->elems[elem].npairs : 0;
    for (int i = 0; i < rec->ntop; i++)
        n += !is_known(&rec->pairs[i].key);
    for (int i = 0; i < nel; i++)
        n += !is_known(&el[i].key);
    /* count shadowed top-level keys once */
    int shadowed = 0;
    for (int i = 0; i < rec->ntop; i++) {
        if (is_known(&rec->pairs[i].key))
            continue;
        for (int j = 0; j < nel; j++)
            if (el[j].key.n == rec->pairs[i].key.n &&
                !memcmp(el[j].key.p, rec->pairs[i].key.p, el[j].key.n)) {
                shadowed++;
                break;
            }
    }
    n -= shadowed;
    if (n) {
        put_long(&w, n);
        for (int i = 0; i < rec->ntop; i++) {
            const clicklog_pair_t *pr = &rec->pairs[i];
            if (is_known(&pr->key))
                continue;
            bool shadow = false;
            for (int j = 0; j < nel && !shadow; j++)
                shadow = el[j].key.n == pr->key.n && !memcmp(el[j].key.p, pr->key.p, pr->key.n);
            if (shadow)
                continue;
            put_bytes(&w, pr->key.p, pr->key.n);
            put_bytes(&w, pr->value.p, pr->value.n);
        }
        for (int j = 0; j < nel; j++) {
            if (is_known(&el[j].key))
                continue;
            put_bytes(&w, el[j].key.p, el[j].key.n);
            put_bytes(&w, el[j].value.p, el[j].value.n);
        }
    }
    put_long(&w, 0); /* end of map blocks */
    if (w.overflow)
        return (size_t)fail(reason, rs, "output buffer too small");
    return (size_t)(w.p - out);
}
