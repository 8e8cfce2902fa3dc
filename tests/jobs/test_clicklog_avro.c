/* The click Avro encoder, checked by decoding its output with avro-c (an
 * independent implementation) against the published schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <cmocka.h>

#include "jobs/clicklog/clicklog_avro.h"
#include "jobs/clicklog/clicklog_parse.h"

static avro_schema_t schema;
static avro_value_iface_t *iface;

static int setup(void **state)
{
    if (avro_schema_from_json_length(CLICKLOG_AVRO_SCHEMA, strlen(CLICKLOG_AVRO_SCHEMA), &schema))
        return -1;
    iface = avro_generic_class_from_schema(schema);
    return iface ? 0 : -1;
}

static int teardown(void **state)
{
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
    return 0;
}

/* Decodes out[5..len) with avro-c; fails the test on any leftover byte. */
static void decode(const uint8_t *out, size_t len, avro_value_t *v)
{
    assert_true(len > 5);
    assert_int_equal(out[0], 0);
    avro_generic_value_new(iface, v);
    avro_reader_t r = avro_reader_memory((const char *)out + 5, (int64_t)(len - 5));
    assert_int_equal(avro_value_read(r, v), 0);
    assert_int_not_equal(avro_skip(r, 1), 0); /* nothing left over */
    avro_reader_free(r);
}

static void assert_field_str(avro_value_t *v, const char *name, const char *want)
{
    avro_value_t f;
    const char *s;
    size_t n;
    assert_int_equal(avro_value_get_by_name(v, name, &f, NULL), 0);
    assert_int_equal(avro_value_get_string(&f, &s, &n), 0);
    assert_string_equal(s, want);
}

static void test_each_element_of_the_talks_line_becomes_a_record_avro_c_reads(void **state)
{
    const char *line = "2016-04-27T19:00:00-05:00\x02userid=AAFF\x02session=S1\x02"
                       "data_array\x03" "event=click\x02subevent=3\x03" "event=view\x02item=I9\x02k=v\x03";
    clicklog_rec_t rec;
    char why[128];
    assert_int_equal(clicklog_parse(line, strlen(line), &rec, why, sizeof why), 0);
    uint8_t out[1024];
    size_t len = clicklog_avro_encode(&rec, 0, 0x01020304, out, sizeof out, why, sizeof why);
    assert_true(len > 0);
    assert_memory_equal(out, "\x00\x01\x02\x03\x04", 5);
    avro_value_t v;
    decode(out, len, &v);
    assert_field_str(&v, "date", "2016-04-27");
    assert_field_str(&v, "time", "19:00:00-05:00");
    assert_field_str(&v, "userid", "AAFF");
    assert_field_str(&v, "event", "click");
    avro_value_t f, branch;
    int64_t ts = 0;
    assert_int_equal(avro_value_get_by_name(&v, "ts", &f, NULL), 0);
    assert_int_equal(avro_value_get_long(&f, &ts), 0);
    assert_true(ts == 1461801600000LL);
    int32_t sub = 0;
    assert_int_equal(avro_value_get_by_name(&v, "subevent", &f, NULL), 0);
    avro_value_get_current_branch(&f, &branch);
    assert_int_equal(avro_value_get_int(&branch, &sub), 0);
    assert_int_equal(sub, 3);
    size_t nattrs = 0;
    assert_int_equal(avro_value_get_by_name(&v, "attrs", &f, NULL), 0);
    assert_int_equal(avro_value_get_size(&f, &nattrs), 0);
    assert_int_equal(nattrs, 1); /* session */
    avro_value_decref(&v);

    len = clicklog_avro_encode(&rec, 1, 1, out, sizeof out, why, sizeof why);
    decode(out, len, &v);
    assert_field_str(&v, "event", "view");
    avro_value_get_by_name(&v, "item", &f, NULL);
    avro_value_get_current_branch(&f, &branch);
    const char *item;
    size_t n;
    assert_int_equal(avro_value_get_string(&branch, &item, &n), 0);
    assert_string_equal(item, "I9");
    avro_value_get_by_name(&v, "attrs", &f, NULL);
    avro_value_get_size(&f, &nattrs);
    assert_int_equal(nattrs, 2); /* session + k */
    avro_value_decref(&v);
}

static void test_missing_or_untyped_fields_are_reasons_not_records(void **state)
{
    const struct {
        const char *line, *why;
    } bad[] = {
        {"2016-04-27T19:00:00Z\x02" "event=click", "missing userid"},
        {"2016-04-27T19:00:00Z\x02userid=U", "line has no event"},
        {"2016-04-27T19:00:00Z\x02userid=U\x02" "a\x03" "item=1\x03", "no event"},
        {"2016-04-27T19:00:00Z\x02userid=U\x02" "a\x03" "event=x\x02subevent=three\x03", "subevent"},
        {"2016-04-27T19:00:00Z\x02userid=U\x02" "a\x03" "event=rate\x02rating=99999999999\x03", "rating"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        clicklog_rec_t rec;
        char why[128] = "";
        assert_int_equal(clicklog_parse(bad[i].line, strlen(bad[i].line), &rec, why, sizeof why), 0);
        uint8_t out[512];
        size_t len = clicklog_avro_encode(&rec, rec.nelems ? 0 : -1, 1, out, sizeof out, why, sizeof why);
        if (len != 0 || !strstr(why, bad[i].why))
            fail_msg("case %zu: len %zu why '%s'", i, len, why);
    }
}

static void test_a_too_small_buffer_is_an_error_not_an_overflow(void **state)
{
    const char *line = "2016-04-27T19:00:00Z\x02userid=U\x02" "event=view\x02" "long=xxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    clicklog_rec_t rec;
    char why[128];
    clicklog_parse(line, strlen(line), &rec, why, sizeof why);
    uint8_t out[256];
    size_t need = clicklog_avro_encode(&rec, -1, 1, out, sizeof out, why, sizeof why);
    assert_true(need > 40);
    for (size_t cap = 0; cap < need; cap++) /* every shorter buffer is refused */
        assert_int_equal(clicklog_avro_encode(&rec, -1, 1, out, cap, why, sizeof why), 0);
    assert_int_equal(clicklog_avro_encode(&rec, -1, 1, out, need, why, sizeof why), need);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_element_of_the_talks_line_becomes_a_record_avro_c_reads),
        cmocka_unit_test(test_missing_or_untyped_fields_are_reasons_not_records),
        cmocka_unit_test(test_a_too_small_buffer_is_an_error_not_an_overflow),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
