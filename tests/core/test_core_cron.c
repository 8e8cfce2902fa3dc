/*
 * core_cron: parsing (every field form, every limit and one past it) and the
 * next matching minute, on fixed UTC dates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/core_cron.h"
#include "core/core_err.h"

static int64_t utc_ms(int y, int mon, int d, int h, int mi)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return (int64_t)timegm(&tm) * 1000;
}

/* 2026-11-25 16:22:30 UTC, a Wednesday. */
#define NOW (utc_ms(2026, 11, 25, 16, 22) + 30000)

static int64_t next_of(const char *expr, int64_t after)
{
    core_cron_t c;
    char err[128];
    if (core_cron_parse(expr, &c, err, sizeof(err)) != 0)
        fail_msg("rejected '%s': %s", expr, err);
    return core_cron_next(&c, after);
}

static void test_cron_gives_the_next_matching_minute(void **state)
{
    (void)state;
    assert_int_equal(next_of("0 3 * * *", NOW), utc_ms(2026, 11, 26, 3, 0));
    assert_int_equal(next_of("*/15 * * * *", NOW), utc_ms(2026, 11, 25, 16, 30));
    assert_int_equal(next_of("* * * * *", NOW), utc_ms(2026, 11, 25, 16, 23));
    /* Weekdays: from Friday 10:00 the next is Monday 09:00. */
    assert_int_equal(next_of("0 9 * * 1-5", utc_ms(2026, 11, 27, 10, 0)),
                     utc_ms(2026, 11, 30, 9, 0));
    assert_int_equal(next_of("0 0 1 1 *", NOW), utc_ms(2027, 1, 1, 0, 0));
    /* Lists, ranges with steps, and "a/n" (= a, a+n, ... up to the top). */
    assert_int_equal(next_of("5,40 * * * *", NOW), utc_ms(2026, 11, 25, 16, 40));
    assert_int_equal(next_of("10-50/20 * * * *", NOW), utc_ms(2026, 11, 25, 16, 30));
    assert_int_equal(next_of("45/5 16 * * *", NOW), utc_ms(2026, 11, 25, 16, 45));
    /* Both day fields restricted: either matches (the 1st, or a Sunday). */
    assert_int_equal(next_of("0 0 1 * 0", NOW), utc_ms(2026, 11, 29, 0, 0));
    assert_int_equal(next_of("0 0 * * 7", NOW), utc_ms(2026, 11, 29, 0, 0)); /* 7 = Sunday */
    assert_int_equal(next_of("@hourly", NOW), utc_ms(2026, 11, 25, 17, 0));
    assert_int_equal(next_of("@daily", NOW), utc_ms(2026, 11, 26, 0, 0));
    assert_int_equal(next_of("@weekly", NOW), utc_ms(2026, 11, 29, 0, 0));
    /* Strictly after: a time exactly on a match gives the following one. */
    assert_int_equal(next_of("30 16 * * *", utc_ms(2026, 11, 25, 16, 30)),
                     utc_ms(2026, 11, 26, 16, 30));
    /* Leap day: the next 29 February is in 2028. */
    assert_int_equal(next_of("0 12 29 2 *", NOW), utc_ms(2028, 2, 29, 12, 0));
    /* Tabs separate fields too. */
    assert_int_equal(next_of("0\t3 * * *", NOW), utc_ms(2026, 11, 26, 3, 0));
}

static void test_cron_that_never_matches_answers_minus_one(void **state)
{
    (void)state;
    assert_int_equal(next_of("0 0 31 2 *", NOW), -1); /* 31 February */
    assert_int_equal(next_of("0 0 30 2 *", NOW), -1);
}

static void test_cron_rejects_bad_fields_and_names_them(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "-1 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 0 *",
        "* * * 13 *",
        "* * * * 8",
        "5-1 * * * *",
        "*/0 * * * *",
        "*/61 * * * *",
        "a * * * *",
        "1,,2 * * * *",
        ",1 * * * *",
        "1, * * * *",
        "1-2-3 * * * *",
        "1- * * * *",
        "MON * * * *",
        "@yearly",
        "@reboot",
        "*/ * * * *",
        "1/x * * * *",
    };
    core_cron_t c;
    char err[128];
    for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
        if (core_cron_parse(bad[j], &c, err, sizeof(err)) != CORE_ERR_INVAL)
            fail_msg("accepted cron '%s'", bad[j]);
    assert_int_equal(core_cron_parse("0 24 * * *", &c, err, sizeof(err)), CORE_ERR_INVAL);
    assert_non_null(strstr(err, "hour"));
    assert_int_equal(core_cron_parse("0 0 * * 9", &c, err, sizeof(err)), CORE_ERR_INVAL);
    assert_non_null(strstr(err, "day-of-week"));
    char longexpr[CORE_CRON_MAX_EXPR + 8];
    memset(longexpr, ' ', sizeof(longexpr) - 1);
    longexpr[sizeof(longexpr) - 1] = 0;
    memcpy(longexpr, "0 0 * * *", 9);
    assert_int_equal(core_cron_parse(longexpr, &c, err, sizeof(err)), CORE_ERR_INVAL);
    /* The limits themselves are fine. */
    assert_int_equal(core_cron_parse("0,59 0,23 1,31 1,12 0,7", &c, err, sizeof(err)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cron_gives_the_next_matching_minute),
        cmocka_unit_test(test_cron_that_never_matches_answers_minus_one),
        cmocka_unit_test(test_cron_rejects_bad_fields_and_names_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
