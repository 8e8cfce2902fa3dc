#include "clicklog_parse.h"

#include <stdbool.h>
#include <string.h>

#include <stdio.h>

#define B 0x02
#define C 0x03

static int digits(const char *s, size_t n, int count, int *out)
{
    int v = 0;
    if ((size_t)count > n)
        return -1;
    for (int i = 0; i < count; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil algorithm). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

int clicklog_parse_time(const char *s, size_t n, int64_t *ms, int *tz_offset_min)
{
    int y, mo, d, h, mi, se, frac = 0;
    if (n < 20 || digits(s, n, 4, &y) || s[4] != '-' || digits(s + 5, n - 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, n - 8, 2, &d) || (s[10] != 'T' && s[10] != ' ') ||
        digits(s + 11, n - 11, 2, &h) || s[13] != ':' || digits(s + 14, n - 14, 2, &mi) ||
        s[16] != ':' || digits(s + 17, n - 17, 2, &se))
        return CLICKLOG_EMALFORMED;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60)
        return CLICKLOG_EMALFORMED;
    size_t i = 19;
    if (i < n && s[i] == '.') {
        i++;
        int nd = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (nd < 3)
                frac = frac * 10 + (s[i] - '0');
            nd++;
            i++;
        }
        if (!nd)
            return CLICKLOG_EMALFORMED;
        for (; nd < 3; nd++)
            frac *= 10;
    }
    int off = 0;
    if (i < n && s[i] == 'Z') {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i] == '-' ? -1 : 1, oh, om;
        i++;
        if (digits(s + i, n - i, 2, &oh))
            return CLICKLOG_EMALFORMED;
        i += 2;
        if (i < n && s[i] == ':')
            i++;
        if (digits(s + i, n - i, 2, &om) || oh > 23 || om > 59)
            return CLICKLOG_EMALFORMED;
        i += 2;
        off = sign * (oh * 60 + om);
    } else {
        return CLICKLOG_EMALFORMED; /* the offset is required: local times are ambiguous */
    }
    if (i != n)
        return CLICKLOG_EMALFORMED;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off * 60;
    *ms = secs * 1000 + frac;
    *tz_offset_min = off;
    return CLICKLOG_OK;
}

static bool str_eq(clicklog_str_t a, clicklog_str_t b)
{
    return a.n == b.n && !memcmp(a.p, b.p, a.n);
}

/* Splits "key=value" at the first '='. Returns false when there is no '=' or the key is empty. */
static bool split_pair(const char *p, size_t n, clicklog_pair_t *pair)
{
    const char *eq = memchr(p, '=', n);
    if (!eq || eq == p)
        return false;
    pair->key.p = p;
    pair->key.n = (size_t)(eq - p);
    pair->value.p = eq + 1;
    pair->value.n = n - pair->key.n - 1;
    return true;
}

static int fail(char *reason, size_t rs, int err, const char *msg)
{
    if (reason && rs)
        snprintf(reason, rs, "%s", msg);
    return err;
}

/* Parses the array section that starts right after "arraykey^C". */
static int parse_array(const char *p, const char *end, clicklog_rec_t *rec, char *reason,
                       size_t rs)
{
    while (p < end) {
        if (rec->nelems == CLICKLOG_MAX_ELEMS)
            return fail(reason, rs, CLICKLOG_ETOOLARGE, "too many array elements");
        clicklog_elem_t *el = &rec->elems[rec->nelems];
        el->first = rec->npairs;
        el->npairs = 0;
        for (;;) {
            const char *q = p;
            while (q < end && *q != B && *q != C)
                q++;
            if (q == end)
                return fail(reason, rs, CLICKLOG_EMALFORMED,
                            "array element is missing its closing ^C");
            if (rec->npairs == CLICKLOG_MAX_PAIRS)
                return fail(reason, rs, CLICKLOG_ETOOLARGE, "too many key=value pairs");
            clicklog_pair_t *pair = &rec->pairs[rec->npairs];
            if (q == p)
                return fail(reason, rs, CLICKLOG_EMALFORMED, "empty field in array element");
            if (!split_pair(p, (size_t)(q - p), pair))
                return fail(reason, rs, CLICKLOG_EMALFORMED,
                            memchr(p, '=', (size_t)(q - p)) ? "empty key in array element"
                                                            : "array field without '='");
            rec->npairs++;
            el->npairs++;
            p = q + 1;
            if (*q == C)
                break;
        }
        rec->nelems++;
    }
    if (!rec->nelems)
        return fail(reason, rs, CLICKLOG_EMALFORMED, "array section has no elements");
    return CLICKLOG_OK;
}

int clicklog_parse(const char *line, size_t len, clicklog_rec_t *rec, char *reason,
                   size_t reason_size)
{
    memset(rec, 0, offsetof(clicklog_rec_t, elems));
    rec->nelems = rec->npairs = 0;
    if (len > CLICKLOG_MAX_LINE)
        return fail(reason, reason_size, CLICKLOG_ETOOLARGE, "line longer than 65536 bytes");
    if (len && line[len - 1] == '\n')
        len--;
    if (len && line[len - 1] == '\r')
        len--;
    if (memchr(line, 0, len) || memchr(line, '\n', len))
        return fail(reason, reason_size, CLICKLOG_EMALFORMED, "NUL or newline inside the line");
    const char *p = line, *end = line + len;
    const char *q = p;
    while (q < end && *q != B && *q != C)
        q++;
    if (q == p)
        return fail(reason, reason_size, CLICKLOG_EMALFORMED, "missing timestamp");
    if (q < end && *q == C)
        return fail(reason, reason_size, CLICKLOG_EMALFORMED, "^C directly after the timestamp");
    rec->timestamp.p = p;
    rec->timestamp.n = (size_t)(q - p);
    if (clicklog_parse_time(p, rec->timestamp.n, &rec->ts_ms, &rec->tz_offset_min))
        return fail(reason, reason_size, CLICKLOG_EMALFORMED, "timestamp does not parse");
    rec->date.p = p;
    rec->date.n = 10;
    rec->time.p = p + 11;
    rec->time.n = rec->timestamp.n - 11;
    p = q;
    while (p < end) { /* p points at a ^B */
        p++;
        q = p;
        while (q < end && *q != B && *q != C)
            q++;
        if (q < end && *q == C) { /* "key^C": the array section, which must be last */
            if (q == p || memchr(p, '=', (size_t)(q - p)))
                return fail(reason, reason_size, CLICKLOG_EMALFORMED, "bad array key");
            rec->array_key.p = p;
            rec->array_key.n = (size_t)(q - p);
            return parse_array(q + 1, end, rec, reason, reason_size);
        }
        if (rec->npairs == CLICKLOG_MAX_PAIRS)
            return fail(reason, reason_size, CLICKLOG_ETOOLARGE, "too many key=value pairs");
        clicklog_pair_t *pair = &rec->pairs[rec->npairs];
        if (q == p)
            return fail(reason, reason_size, CLICKLOG_EMALFORMED, "empty field");
        if (!split_pair(p, (size_t)(q - p), pair))
            return fail(reason, reason_size, CLICKLOG_EMALFORMED,
                        memchr(p, '=', (size_t)(q - p)) ? "empty key" : "field without '='");
        for (int i = 0; i < rec->npairs; i++)
            if (str_eq(rec->pairs[i].key, pair->key))
                return fail(reason, reason_size, CLICKLOG_EMALFORMED, "duplicate key");
        rec->npairs++;
        rec->ntop++;
        p = q;
    }
    return CLICKLOG_OK;
}

static const clicklog_str_t *find(const clicklog_rec_t *rec, int first, int n, const char *key)
{
    size_t kl = strlen(key);
    for (int i = first; i < first + n; i++)
        if (rec->pairs[i].key.n == kl && !memcmp(rec->pairs[i].key.p, key, kl))
            return &rec->pairs[i].value;
    return NULL;
}

const clicklog_str_t *clicklog_top(const clicklog_rec_t *rec, const char *key)
{
    return find(rec, 0, rec->ntop, key);
}

const clicklog_str_t *clicklog_elem_get(const clicklog_rec_t *rec, int e, const char *key)
{
    if (e < 0 || e >= rec->nelems)
        return NULL;
    return find(rec, rec->elems[e].first, rec->elems[e].npairs, key);
}
