#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "jobs/clicklog/clicklog_parse.h"

static int parse(const char *s, clicklog_rec_t *rec, char *reason)
{
    return clicklog_parse(s, strlen(s), rec, reason, 128);
}

static void assert_str(clicklog_str_t s, const char *want)
{
    assert_int_equal(s.n, strlen(want));
    assert_memory_equal(s.p, want, s.n);
}

static void test_the_talks_example_line_parses(void **state)
{
    clicklog_rec_t rec;
    char reason[128];
    assert_int_equal(parse("2016-04-27T19:00:00-05:00\x02userid=AAFF\x02"
                           "data_array\x03" "event=click\x02subevent=3\x03\n",
                           &rec, reason),
                     0);
    assert_str(rec.date, "2016-04-27");
    assert_str(rec.time, "19:00:00-05:00");
    assert_true(rec.ts_ms == 1461801600000LL); /* 2016-04-28T00:00:00Z */
    assert_int_equal(rec.tz_offset_min, -300);
    assert_int_equal(rec.ntop, 1);
    assert_str(*clicklog_top(&rec, "userid"), "AAFF");
    assert_str(rec.array_key, "data_array");
    assert_int_equal(rec.nelems, 1);
    assert_str(*clicklog_elem_get(&rec, 0, "event"), "click");
    assert_str(*clicklog_elem_get(&rec, 0, "subevent"), "3");
    assert_null(clicklog_elem_get(&rec, 0, "userid"));
    assert_null(clicklog_elem_get(&rec, 1, "event"));
}

static void test_several_elements_values_with_equals_and_crlf(void **state)
{
    clicklog_rec_t rec;
    char reason[128];
    assert_int_equal(parse("2016-04-27T19:00:00.250Z\x02q=a=b\x02" "empty=\x02" "arr\x03"
                           "event=view\x02item=I1\x03" "event=buy\x02item=I2\x03\r\n",
                           &rec, reason),
                     0);
    assert_true(rec.ts_ms == 1461783600250LL);
    assert_str(*clicklog_top(&rec, "q"), "a=b");
    assert_str(*clicklog_top(&rec, "empty"), "");
    assert_int_equal(rec.nelems, 2);
    assert_str(*clicklog_elem_get(&rec, 1, "item"), "I2");
}

static void test_line_without_array_section(void **state)
{
    clicklog_rec_t rec;
    char reason[128];
    assert_int_equal(parse("2016-04-27T19:00:00+0130\x02userid=U1\x02" "event=click", &rec, reason), 0);
    assert_int_equal(rec.tz_offset_min, 90);
    assert_int_equal(rec.nelems, 0);
    assert_int_equal(rec.array_key.n, 0);
}

/* One line per malformed case: input, expected reason fragment. */
static const struct {
    const char *line;
    const char *reason;
} bad[] = {
    {"", "missing timestamp"},
    {"\x02userid=A", "missing timestamp"},
    {"yesterday\x02userid=A", "timestamp"},
    {"2016-02-30T19:00:00Z\x02userid=A", "timestamp"},
    {"2016-04-27T19:00:00\x02userid=A", "timestamp"}, /* no offset */
    {"2016-04-27T25:00:00Z\x02userid=A", "timestamp"},
    {"2016-04-27T19:00:00Z\x02userid", "without '='"},
    {"2016-04-27T19:00:00Z\x02=x", "empty key"},
    {"2016-04-27T19:00:00Z\x02\x02u=1", "empty field"},
    {"2016-04-27T19:00:00Z\x02u=1\x02u=2", "duplicate key"},
    {"2016-04-27T19:00:00Z\x02" "arr\x03" "event=click", "closing ^C"},
    {"2016-04-27T19:00:00Z\x02" "arr\x03", "no elements"},
    {"2016-04-27T19:00:00Z\x02" "arr\x03" "event\x03", "without '='"},
    {"2016-04-27T19:00:00Z\x02" "arr\x03" "=v\x03", "empty key"},
    {"2016-04-27T19:00:00Z\x02" "a=b\x03", "bad array key"},
    {"2016-04-27T19:00:00Z\x03", "^C directly"},
};

static void test_every_malformed_case_is_rejected_with_its_reason(void **state)
{
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        clicklog_rec_t rec;
        char reason[128] = "";
        int rc = parse(bad[i].line, &rec, reason);
        if (rc != CLICKLOG_EMALFORMED || !strstr(reason, bad[i].reason))
            fail_msg("case %zu: rc=%d reason='%s', want '%s'", i, rc, reason, bad[i].reason);
    }
}

static void test_nul_byte_and_overlong_line_are_rejected(void **state)
{
    clicklog_rec_t rec;
    char reason[128];
    const char with_nul[] = "2016-04-27T19:00:00Z\x02u=a\0b";
    assert_int_equal(clicklog_parse(with_nul, sizeof with_nul - 1, &rec, reason, sizeof reason),
                     CLICKLOG_EMALFORMED);
    static char big[CLICKLOG_MAX_LINE + 2];
    memset(big, 'a', sizeof big);
    assert_int_equal(clicklog_parse(big, sizeof big, &rec, reason, sizeof reason),
                     CLICKLOG_ETOOLARGE);
}

static void test_too_many_pairs_is_an_error_not_an_overflow(void **state)
{
    char line[8192];
    size_t n = (size_t)snprintf(line, sizeof line, "2016-04-27T19:00:00Z");
    for (int i = 0; i < CLICKLOG_MAX_PAIRS + 1; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, "\x02k%d=v", i);
    clicklog_rec_t rec;
    char reason[128];
    assert_int_equal(clicklog_parse(line, n, &rec, reason, sizeof reason), CLICKLOG_ETOOLARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_talks_example_line_parses),
        cmocka_unit_test(test_several_elements_values_with_equals_and_crlf),
        cmocka_unit_test(test_line_without_array_section),
        cmocka_unit_test(test_every_malformed_case_is_rejected_with_its_reason),
        cmocka_unit_test(test_nul_byte_and_overlong_line_are_rejected),
        cmocka_unit_test(test_too_many_pairs_is_an_error_not_an_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
