/*
 * client_json_write_bytes: arbitrary bytes from a topic become one JSON
 * string; valid UTF-8 passes through, every other byte becomes \udcXX
 * (surrogateescape), control characters and '"' '\' are escaped. One line
 * per case: every UTF-8 length, each boundary of the valid ranges (RFC 3629)
 * and the byte just past it, and truncated sequences at the end and middle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/client.h"

typedef struct json_case {
    const char *in;
    size_t len;
    const char *want;
} json_case_t;

#define C(in, want) {in, sizeof(in) - 1, want}

static const json_case_t cases[] = {
    C("", "\"\""),
    C("plain text", "\"plain text\""),
    C("\"\\", "\"\\\"\\\\\""),
    C("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\""),
    C("\x01\x1f", "\"\\u0001\\u001f\""),
    C("a\0b", "\"a\\u0000b\""),
    C("\x7f", "\"\x7f\""),
    C("\xc2\x80", "\"\xc2\x80\""),                 /* U+0080, first 2-byte */
    C("\xdf\xbf", "\"\xdf\xbf\""),                 /* U+07FF, last 2-byte */
    C("\xe0\xa0\x80", "\"\xe0\xa0\x80\""),         /* U+0800, first 3-byte */
    C("\xe2\x82\xac", "\"\xe2\x82\xac\""),         /* euro sign */
    C("\xed\x9f\xbf", "\"\xed\x9f\xbf\""),         /* U+D7FF, just below surrogates */
    C("\xee\x80\x80", "\"\xee\x80\x80\""),         /* U+E000, just above */
    C("\xef\xbf\xbf", "\"\xef\xbf\xbf\""),         /* U+FFFF */
    C("\xf0\x90\x80\x80", "\"\xf0\x90\x80\x80\""), /* U+10000, first 4-byte */
    C("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""), /* U+10FFFF, the last code point */
    C("\xff", "\"\\udcff\""),
    C("\x80", "\"\\udc80\""),                      /* lone continuation byte */
    C("\xc0\x80", "\"\\udcc0\\udc80\""),           /* overlong NUL */
    C("\xc1\xbf", "\"\\udcc1\\udcbf\""),           /* overlong */
    C("\xe0\x9f\xbf", "\"\\udce0\\udc9f\\udcbf\""), /* overlong 3-byte */
    C("\xed\xa0\x80", "\"\\udced\\udca0\\udc80\""), /* U+D800, a surrogate */
    C("\xf0\x8f\xbf\xbf", "\"\\udcf0\\udc8f\\udcbf\\udcbf\""), /* overlong 4-byte */
    C("\xf4\x90\x80\x80", "\"\\udcf4\\udc90\\udc80\\udc80\""), /* U+110000 */
    C("\xf5\x80\x80\x80", "\"\\udcf5\\udc80\\udc80\\udc80\""), /* lead byte past F4 */
    C("\xe2\x82", "\"\\udce2\\udc82\""),           /* truncated at the end */
    C("\xe2\x82z", "\"\\udce2\\udc82z\""),         /* truncated in the middle */
    C("\xf0\x9f\x98", "\"\\udcf0\\udc9f\\udc98\""),
    C("ok\xc3\xa9\xff\xc3\xa9", "\"ok\xc3\xa9\\udcff\xc3\xa9\""),
};

static char *render(const void *p, size_t n)
{
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);
    client_json_write_bytes(f, p, n);
    fclose(f);
    return buf;
}

static void test_json_escapes_every_case_in_the_table(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = render(cases[i].in, cases[i].len);
        if (strcmp(got, cases[i].want))
            fail_msg("case %zu: got %s, want %s", i, got, cases[i].want);
        free(got);
    }
}

static void test_json_writes_null_for_a_null_pointer(void **state)
{
    char *got = render(NULL, 0);
    assert_string_equal(got, "null");
    free(got);
}

static void test_offset_parse_accepts_names_numbers_and_tails(void **state)
{
    int64_t o;
    assert_int_equal(client_offset_parse("beginning", &o), 0);
    assert_true(o == RD_KAFKA_OFFSET_BEGINNING);
    assert_int_equal(client_offset_parse("earliest", &o), 0);
    assert_true(o == RD_KAFKA_OFFSET_BEGINNING);
    assert_int_equal(client_offset_parse("end", &o), 0);
    assert_true(o == RD_KAFKA_OFFSET_END);
    assert_int_equal(client_offset_parse("42", &o), 0);
    assert_true(o == 42);
    assert_int_equal(client_offset_parse("-5", &o), 0);
    assert_true(o == RD_KAFKA_OFFSET_TAIL(5));
    assert_int_not_equal(client_offset_parse("5x", &o), 0);
    assert_int_not_equal(client_offset_parse("", &o), 0);
    assert_int_not_equal(client_offset_parse("start", &o), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escapes_every_case_in_the_table),
        cmocka_unit_test(test_json_writes_null_for_a_null_pointer),
        cmocka_unit_test(test_offset_parse_accepts_names_numbers_and_tails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
