/*
 * core_cron — cron expressions (UTC): parse once, then ask for the next
 * matching minute. Shared by the driver's scheduled commands (runtime/
 * rt_sched.h) and anything else that needs "at these times".
 *
 * Syntax: five fields (minute hour day-of-month month day-of-week), each "*",
 * a number, a range a-b, a list a,b,c, or a step (*\/n, a-b/n, a/n). When both
 * day fields are restricted, a day matching either runs (Vixie cron). Day of
 * week 0..7 with 0 and 7 both Sunday. No names (JAN, MON); the only @-macros
 * are @hourly, @daily and @weekly. Times are UTC: no time zones, no DST.
 *
 * Threads: plain functions on caller-owned values; reentrant.
 */
#ifndef EDDY_CORE_CRON_H
#define EDDY_CORE_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest accepted expression (bounds the parse buffer). */
#define CORE_CRON_MAX_EXPR 255
/* core_cron_next looks this far ahead before answering "never". */
#define CORE_CRON_HORIZON_YEARS 5

typedef struct core_cron {
    uint64_t minute; /* bit m: minute m (0..59) */
    uint32_t hour;   /* 0..23 */
    uint32_t dom;    /* 1..31 */
    uint16_t month;  /* 1..12 */
    uint8_t dow;     /* 0..6, Sunday = 0 (7 folded into 0) */
    bool dom_any, dow_any;
} core_cron_t;

/* Parses expr into *c. Returns 0, or CORE_ERR_INVAL with a message naming
 * the bad field ("cron: bad hour field '24'"). */
int core_cron_parse(const char *expr, core_cron_t *c, char *errstr, size_t errstr_size);

/* The first matching minute strictly after after_ms (UTC), in ms since the
 * epoch; -1 when none within CORE_CRON_HORIZON_YEARS (e.g. "0 0 31 2 *"). */
int64_t core_cron_next(const core_cron_t *c, int64_t after_ms);

#endif
