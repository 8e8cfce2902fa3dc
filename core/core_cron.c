/* core_cron — see core_cron.h. */
#include "core/core_cron.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core_err.h"

/* Parses one field into a bitmask of [lo, hi]. */
static int cron_field(const char *f, int lo, int hi, uint64_t *mask, bool *any)
{
    *mask = 0;
    *any = strcmp(f, "*") == 0;
    char buf[64];
    size_t fl = strlen(f);
    /* strtok_r would silently skip empty list items ("1,,2", ",5"). */
    if (fl >= sizeof(buf) || !fl || f[0] == ',' || f[fl - 1] == ',' || strstr(f, ",,"))
        return -1;
    snprintf(buf, sizeof(buf), "%s", f);
    for (char *save = NULL, *part = strtok_r(buf, ",", &save); part;
         part = strtok_r(NULL, ",", &save)) {
        int a, b, step = 1;
        char *slash = strchr(part, '/');
        if (slash) {
            char *end;
            long v = strtol(slash + 1, &end, 10);
            if (*end || end == slash + 1 || v < 1 || v > hi)
                return -1;
            step = (int)v;
            *slash = 0;
        }
        if (strcmp(part, "*") == 0) {
            a = lo;
            b = hi;
        } else {
            char *end;
            long v = strtol(part, &end, 10);
            if (end == part)
                return -1;
            a = b = (int)v;
            if (*end == '-') {
                char *e2;
                long w = strtol(end + 1, &e2, 10);
                if (e2 == end + 1 || *e2)
                    return -1;
                b = (int)w;
            } else if (*end) {
                return -1;
            } else if (slash) {
                b = hi; /* "a/n" = a, a+n, ... */
            }
        }
        if (a < lo || b > hi || a > b)
            return -1;
        for (int v = a; v <= b; v += step)
            *mask |= 1ull << v;
    }
    return 0;
}

int core_cron_parse(const char *expr, core_cron_t *c, char *errstr, size_t errstr_size)
{
    memset(c, 0, sizeof(*c));
    if (!strcmp(expr, "@hourly"))
        expr = "0 * * * *";
    else if (!strcmp(expr, "@daily"))
        expr = "0 0 * * *";
    else if (!strcmp(expr, "@weekly"))
        expr = "0 0 * * 0";
    char buf[CORE_CRON_MAX_EXPR + 1];
    if (strlen(expr) >= sizeof(buf))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "cron expression too long");
    snprintf(buf, sizeof(buf), "%s", expr);
    char *fields[6];
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, " \t", &save); tok && n < 6;
         tok = strtok_r(NULL, " \t", &save))
        fields[n++] = tok;
    if (n != 5)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "cron: want 5 fields (minute hour day-of-month month day-of-week)");
    static const char *names[5] = {"minute", "hour", "day-of-month", "month", "day-of-week"};
    static const int lo[5] = {0, 0, 1, 1, 0}, hi[5] = {59, 23, 31, 12, 7};
    uint64_t m[5];
    bool any[5];
    for (int j = 0; j < 5; j++)
        if (cron_field(fields[j], lo[j], hi[j], &m[j], &any[j]))
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "cron: bad %s field '%s'",
                             names[j], fields[j]);
    c->minute = m[0];
    c->hour = (uint32_t)m[1];
    c->dom = (uint32_t)m[2];
    c->month = (uint16_t)m[3];
    c->dow = (uint8_t)((m[4] | (m[4] >> 7)) & 0x7f); /* 7 = Sunday */
    c->dom_any = any[2];
    c->dow_any = any[4];
    return CORE_OK;
}

int64_t core_cron_next(const core_cron_t *c, int64_t after_ms)
{
    time_t t = (time_t)(after_ms / 60000 + 1) * 60; /* next whole minute */
    for (int64_t step = 0; step < (int64_t)CORE_CRON_HORIZON_YEARS * 366 * 24 * 60;
         step++, t += 60) {
        struct tm tm;
        gmtime_r(&t, &tm);
        /* Skip whole hours/days quickly when they cannot match. */
        if (!(c->month >> (tm.tm_mon + 1) & 1) || !(c->hour >> tm.tm_hour & 1)) {
            t += (59 - tm.tm_min) * 60;
            step += 59 - tm.tm_min;
            continue;
        }
        bool dom = c->dom >> tm.tm_mday & 1, dow = c->dow >> tm.tm_wday & 1;
        bool day = c->dom_any && c->dow_any ? true
                   : c->dom_any             ? dow
                   : c->dow_any             ? dom
                                            : (dom || dow);
        if (!day) {
            t += (59 - tm.tm_min) * 60;
            step += 59 - tm.tm_min;
            continue;
        }
        if (c->minute >> tm.tm_min & 1)
            return (int64_t)t * 1000;
    }
    return -1;
}
