#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_err.h"
#include "registry/sr_avro.h"

static const char *SCHEMA =
    "{\"type\":\"record\",\"name\":\"Click\",\"namespace\":\"eddy\",\"fields\":["
    "{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"s\",\"type\":\"string\"},"
    "{\"name\":\"opt\",\"type\":[\"null\",\"long\"],\"default\":null},"
    "{\"name\":\"d\",\"type\":\"string\",\"default\":\"dflt\"}]}";

static void test_encoding_is_byte_exact_with_the_5_byte_header(void **state)
{
    sr_avro_t *c;
    char err[256];
    assert_int_equal(sr_avro_new(SCHEMA, &c, err, sizeof err), 0);
    core_buf_t out;
    core_buf_init(&out);
    const char *j = "{\"a\":1,\"s\":\"hi\",\"opt\":300,\"d\":\"x\"}";
    assert_int_equal(sr_avro_encode_json(c, 7, j, strlen(j), &out, err, sizeof err), 0);
    /* magic 0, id 7 big-endian, a=zigzag(1)=2, s=len 2 ("hi"), opt=branch 1 + zigzag(300), d="x" */
    const uint8_t want[] = {0, 0, 0, 0, 7, 0x02, 0x04, 'h', 'i', 0x02, 0xd8, 0x04, 0x02, 'x'};
    assert_int_equal(out.len, sizeof want);
    assert_memory_equal(out.data, want, sizeof want);
    int32_t id;
    const uint8_t *p;
    size_t n;
    assert_int_equal(sr_avro_frame(out.data, out.len, &id, &p, &n, err, sizeof err), 0);
    assert_int_equal(id, 7);
    char *back;
    assert_int_equal(sr_avro_decode_json(c, p, n, &back, err, sizeof err), 0);
    assert_non_null(strstr(back, "\"s\": \"hi\""));
    assert_non_null(strstr(back, "\"long\": 300"));
    free(back);
    core_buf_fini(&out);
    sr_avro_free(c);
}

static void test_missing_fields_take_defaults_and_union_accepts_both_forms(void **state)
{
    sr_avro_t *c;
    char err[256];
    sr_avro_new(SCHEMA, &c, err, sizeof err);
    core_buf_t a, b;
    core_buf_init(&a);
    core_buf_init(&b);
    const char *j1 = "{\"a\":1,\"s\":\"\"}";                             /* opt -> null, d -> "dflt" */
    const char *j2 = "{\"a\":1,\"s\":\"\",\"opt\":null,\"d\":\"dflt\"}"; /* the same, spelled out */
    assert_int_equal(sr_avro_encode_json(c, 1, j1, strlen(j1), &a, err, sizeof err), 0);
    assert_int_equal(sr_avro_encode_json(c, 1, j2, strlen(j2), &b, err, sizeof err), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    core_buf_reset(&a);
    core_buf_reset(&b);
    const char *t1 = "{\"a\":1,\"s\":\"\",\"opt\":{\"long\":5}}", *t2 = "{\"a\":1,\"s\":\"\",\"opt\":5}";
    assert_int_equal(sr_avro_encode_json(c, 1, t1, strlen(t1), &a, err, sizeof err), 0);
    assert_int_equal(sr_avro_encode_json(c, 1, t2, strlen(t2), &b, err, sizeof err), 0);
    assert_memory_equal(a.data, b.data, a.len);
    core_buf_fini(&a);
    core_buf_fini(&b);
    sr_avro_free(c);
}

static void test_bad_input_names_the_field_and_writes_nothing(void **state)
{
    sr_avro_t *c;
    char err[256];
    sr_avro_new(SCHEMA, &c, err, sizeof err);
    core_buf_t out;
    core_buf_init(&out);
    const struct {
        const char *json, *why;
    } bad[] = {
        {"{\"s\":\"x\"}", "a: missing field"},
        {"{\"a\":\"one\",\"s\":\"x\"}", "a: expected a 32-bit integer"},
        {"{\"a\":4294967296,\"s\":\"x\"}", "a: expected a 32-bit integer"},
        {"{\"a\":1,\"s\":2}", "s: expected a string"},
        {"{\"a\":1,\"s\":\"x\",\"opt\":\"str\"}", "opt: value fits no branch"},
        {"[1,2]", "expected an object"},
        {"{\"a\":1,", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        int rc = sr_avro_encode_json(c, 1, bad[i].json, strlen(bad[i].json), &out, err, sizeof err);
        if (rc != CORE_ERR_MALFORMED || !strstr(err, bad[i].why))
            fail_msg("case %zu: rc %d err '%s' want '%s'", i, rc, err, bad[i].why);
        assert_int_equal(out.len, 0);
    }
    core_buf_fini(&out);
    sr_avro_free(c);
}

static void test_frames_with_unknown_magic_short_header_or_trailing_bytes_are_refused(void **state)
{
    sr_avro_t *c;
    char err[256], *json;
    sr_avro_new(SCHEMA, &c, err, sizeof err);
    int32_t id;
    const uint8_t *p;
    size_t n;
    const uint8_t magic1[] = {1, 0, 0, 0, 7, 2};
    assert_int_equal(sr_avro_frame(magic1, sizeof magic1, &id, &p, &n, err, sizeof err), CORE_ERR_MALFORMED);
    assert_non_null(strstr(err, "Unknown magic byte"));
    assert_int_equal(sr_avro_frame(magic1, 4, &id, &p, &n, err, sizeof err), CORE_ERR_MALFORMED);
    const uint8_t trailing[] = {0x02, 0x00, 0x00, 0x00, 0xff};
    assert_int_equal(sr_avro_decode_json(c, trailing, sizeof trailing, &json, err, sizeof err), CORE_ERR_MALFORMED);
    const uint8_t truncated[] = {0x02, 0x10, 'a'}; /* string of 8 bytes, 1 present */
    assert_int_equal(sr_avro_decode_json(c, truncated, sizeof truncated, &json, err, sizeof err), CORE_ERR_MALFORMED);
    sr_avro_free(c);
}

/* A schema text from a registry answer gets the registry's own checks before
 * avro-c: avro-c refused a name defined twice only after leaking
 * (fuzz_avro_reader). */
static void test_reader_schema_is_checked_before_avro_c(void **state)
{
    (void)state;
    sr_avro_t *c = NULL;
    char err[256];
    const char *twice = "{\"type\":\"record\",\"name\":\"Click\",\"fields\":[{\"name\":\"e\","
                        "\"type\":{\"type\":\"enum\",\"name\":\"Click\",\"symbols\":[\"A\"]}}]}";
    assert_int_equal(sr_avro_new(twice, &c, err, sizeof err), CORE_ERR_MALFORMED);
    assert_null(c);
    assert_non_null(strstr(err, "invalid Avro schema: name 'Click' is defined twice"));
    assert_int_equal(sr_avro_new("{\"type\":", &c, err, sizeof err), CORE_ERR_MALFORMED);
    assert_non_null(strstr(err, "invalid Avro schema: invalid JSON"));
    assert_int_equal(sr_avro_new("\"string\"", &c, err, sizeof err), CORE_OK);
    sr_avro_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoding_is_byte_exact_with_the_5_byte_header),
        cmocka_unit_test(test_missing_fields_take_defaults_and_union_accepts_both_forms),
        cmocka_unit_test(test_bad_input_names_the_field_and_writes_nothing),
        cmocka_unit_test(test_frames_with_unknown_magic_short_header_or_trailing_bytes_are_refused),
        cmocka_unit_test(test_reader_schema_is_checked_before_avro_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
