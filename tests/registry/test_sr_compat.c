#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_err.h"
#include "registry/sr_compat.h"

#define REC(fields) "{\"type\":\"record\",\"name\":\"r\",\"namespace\":\"ns\",\"fields\":[" fields "]}"
#define F(n, t) "{\"name\":\"" n "\",\"type\":" t "}"
#define FD(n, t, d) "{\"name\":\"" n "\",\"type\":" t ",\"default\":" d "}"

/* One line per case from the Avro specification's schema resolution rules:
 * writer, reader, compatible?, and a fragment of the reason when not. */
static const struct {
    const char *writer, *reader;
    int ok;
    const char *why;
} cases[] = {
    {"\"int\"", "\"int\"", 1, NULL},
    {"\"int\"", "\"long\"", 1, NULL},
    {"\"int\"", "\"float\"", 1, NULL},
    {"\"int\"", "\"double\"", 1, NULL},
    {"\"long\"", "\"float\"", 1, NULL},
    {"\"long\"", "\"double\"", 1, NULL},
    {"\"float\"", "\"double\"", 1, NULL},
    {"\"string\"", "\"bytes\"", 1, NULL},
    {"\"bytes\"", "\"string\"", 1, NULL},
    {"\"long\"", "\"int\"", 0, "cannot read long as int"},
    {"\"double\"", "\"float\"", 0, "cannot read double as float"},
    {"\"int\"", "\"string\"", 0, "cannot read int as string"},
    {"\"null\"", "\"boolean\"", 0, "cannot read null as boolean"},
    /* records */
    {REC(F("a", "\"int\"")), REC(F("a", "\"int\"") "," FD("b", "\"string\"", "\"x\"")), 1, NULL},
    {REC(F("a", "\"int\"")), REC(F("a", "\"int\"") "," F("b", "\"string\"")), 0, "field 'b'"},
    {REC(F("a", "\"int\"") "," F("b", "\"string\"")), REC(F("a", "\"int\"")), 1, NULL},
    {REC(F("a", "\"int\"")), REC(F("a", "\"long\"")), 1, NULL},
    {REC(F("a", "\"long\"")), REC(F("a", "\"int\"")), 0, "field 'a'"},
    {REC(F("old", "\"int\"")), REC("{\"name\":\"new\",\"type\":\"int\",\"aliases\":[\"old\"]}"), 1, NULL},
    {REC(F("a", "\"int\"")), "{\"type\":\"record\",\"name\":\"q\",\"fields\":[" F("a", "\"int\"") "]}", 0, "name"},
    {REC(F("a", "\"int\"")), "{\"type\":\"record\",\"name\":\"other.ns.r\",\"fields\":[" F("a", "\"int\"") "]}", 1, NULL},
    /* enums */
    {"{\"type\":\"enum\",\"name\":\"e\",\"symbols\":[\"X\"]}", "{\"type\":\"enum\",\"name\":\"e\",\"symbols\":[\"X\",\"Y\"]}", 1, NULL},
    {"{\"type\":\"enum\",\"name\":\"e\",\"symbols\":[\"X\",\"Y\"]}", "{\"type\":\"enum\",\"name\":\"e\",\"symbols\":[\"X\"]}", 0, "symbol Y"},
    {"{\"type\":\"enum\",\"name\":\"e\",\"symbols\":[\"X\",\"Y\"]}", "{\"type\":\"enum\",\"name\":\"e\",\"symbols\":[\"X\"],\"default\":\"X\"}", 1, NULL},
    /* fixed */
    {"{\"type\":\"fixed\",\"name\":\"f\",\"size\":4}", "{\"type\":\"fixed\",\"name\":\"f\",\"size\":4}", 1, NULL},
    {"{\"type\":\"fixed\",\"name\":\"f\",\"size\":4}", "{\"type\":\"fixed\",\"name\":\"f\",\"size\":5}", 0, "sizes"},
    /* arrays and maps */
    {"{\"type\":\"array\",\"items\":\"int\"}", "{\"type\":\"array\",\"items\":\"long\"}", 1, NULL},
    {"{\"type\":\"array\",\"items\":\"long\"}", "{\"type\":\"array\",\"items\":\"int\"}", 0, "long"},
    {"{\"type\":\"map\",\"values\":\"string\"}", "{\"type\":\"map\",\"values\":\"bytes\"}", 1, NULL},
    {"{\"type\":\"map\",\"values\":\"int\"}", "{\"type\":\"array\",\"items\":\"int\"}", 0, "map"},
    /* unions */
    {"\"string\"", "[\"null\",\"string\"]", 1, NULL},
    {"[\"null\",\"string\"]", "\"string\"", 0, "null"},
    {"[\"null\",\"int\"]", "[\"null\",\"long\"]", 1, NULL},
    {"[\"null\",\"int\",\"string\"]", "[\"null\",\"int\"]", 0, "string"},
    {"\"int\"", "[\"null\",\"string\"]", 0, "no branch"},
    /* recursive types */
    {"{\"type\":\"record\",\"name\":\"node\",\"fields\":[" F("next", "[\"null\",\"node\"]") "]}",
     "{\"type\":\"record\",\"name\":\"node\",\"fields\":[" F("next", "[\"null\",\"node\"]") "," FD("v", "\"int\"", "0") "]}", 1, NULL},
};

static void test_resolution_rules_from_the_avro_specification(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char why[512] = "";
        int rc = sr_compat_reader_writer(cases[i].reader, cases[i].writer, why, sizeof why);
        if (cases[i].ok && rc)
            fail_msg("case %zu: expected compatible, got %d (%s)", i, rc, why);
        if (!cases[i].ok && rc != CORE_ERR_CONFLICT)
            fail_msg("case %zu: expected CONFLICT, got %d (%s)", i, rc, why);
        if (!cases[i].ok && !strstr(why, cases[i].why))
            fail_msg("case %zu: reason '%s' lacks '%s'", i, why, cases[i].why);
    }
}

static void test_levels_compare_with_latest_or_all_versions(void **state)
{
    const char *v1 = REC(F("a", "\"int\""));
    const char *v2 = REC(F("a", "\"int\"") "," FD("b", "\"string\"", "\"x\""));
    const char *v3 = REC(FD("b", "\"string\"", "\"x\"")); /* drops a: v1 readers need a */
    const char *existing[] = {v1, v2};
    char why[512];
    /* v3 reads v2 data (a skipped) and v2 reads v3 data? v2 needs a without default: no */
    assert_int_equal(sr_compat_check(SR_BACKWARD, v3, existing, 2, why, sizeof why), 0);
    assert_int_equal(sr_compat_check(SR_FORWARD, v3, existing, 2, why, sizeof why), CORE_ERR_CONFLICT);
    assert_non_null(strstr(why, "version 2"));
    assert_int_equal(sr_compat_check(SR_FULL, v3, existing, 2, why, sizeof why), CORE_ERR_CONFLICT);
    assert_int_equal(sr_compat_check(SR_NONE, v3, existing, 2, why, sizeof why), 0);
    /* adding a field without default is not BACKWARD against any version */
    const char *v4 = REC(F("a", "\"int\"") "," FD("b", "\"string\"", "\"x\"") "," F("c", "\"int\""));
    assert_int_equal(sr_compat_check(SR_BACKWARD, v4, existing, 2, why, sizeof why), CORE_ERR_CONFLICT);
    /* a change compatible with the latest but not the first: only transitive catches it */
    const char *w1 = REC(F("a", "\"long\""));
    const char *w2 = REC(F("a", "\"long\"") "," FD("z", "\"int\"", "1"));
    const char *w3 = REC(FD("z", "\"int\"", "1")); /* FORWARD vs w2 fails; use BACKWARD set */
    (void)w3;
    const char *chain[] = {w1, w2};
    const char *cand = REC(FD("a", "\"long\"", "0") "," FD("z", "\"int\"", "1"));
    assert_int_equal(sr_compat_check(SR_FULL_TRANSITIVE, cand, chain, 2, why, sizeof why), 0);
    const char *i1 = REC(F("a", "\"int\""));
    const char *i2 = REC(F("a", "\"long\""));
    const char *ichain[] = {i1, i2};
    const char *icand = REC(F("a", "\"double\""));
    /* FORWARD: the old reader must read the new data: long cannot read double */
    assert_int_equal(sr_compat_check(SR_FORWARD, icand, ichain, 2, why, sizeof why), CORE_ERR_CONFLICT);
    const char *bchain[] = {REC(F("a", "\"string\"")), REC(F("a", "\"int\""))};
    const char *bcand = REC(F("a", "\"long\""));
    /* BACKWARD: long reads int (latest) but not string (version 1) */
    assert_int_equal(sr_compat_check(SR_BACKWARD, bcand, bchain, 2, why, sizeof why), 0);
    assert_int_equal(sr_compat_check(SR_BACKWARD_TRANSITIVE, bcand, bchain, 2, why, sizeof why),
                     CORE_ERR_CONFLICT);
    assert_non_null(strstr(why, "version 1"));
}

static void test_canonical_text_ignores_whitespace_and_key_order(void **state)
{
    char *a = NULL, *b = NULL, why[256];
    const char *t1 = "{ \"type\" : \"record\", \"name\":\"r\", \"fields\":[{\"name\":\"x\",\"type\":\"int\"}] }";
    assert_int_equal(sr_schema_canonical(t1, strlen(t1), &a, why, sizeof why), 0);
    const char *t2 = "{\"fields\":[{\"type\":\"int\",\"name\":\"x\"}],\"name\":\"r\",\"type\":\"record\"}";
    assert_int_equal(sr_schema_canonical(t2, strlen(t2), &b, why, sizeof why), 0);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void test_invalid_schemas_are_rejected_with_a_reason(void **state)
{
    char *c = NULL, why[256];
    const char *bad[] = {"{", "\"nosuchtype\"", "{\"type\":\"record\",\"name\":\"r\"}",
                         "{\"type\":\"enum\",\"name\":\"e\",\"symbols\":[1]}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = 0;
        assert_int_equal(sr_schema_canonical(bad[i], strlen(bad[i]), &c, why, sizeof why),
                         CORE_ERR_MALFORMED);
        assert_true(why[0] != 0);
    }
    sr_level_t l;
    assert_true(sr_level_parse("full_transitive", &l) && l == SR_FULL_TRANSITIVE);
    assert_false(sr_level_parse("SIDEWAYS", &l));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolution_rules_from_the_avro_specification),
        cmocka_unit_test(test_levels_compare_with_latest_or_all_versions),
        cmocka_unit_test(test_canonical_text_ignores_whitespace_and_key_order),
        cmocka_unit_test(test_invalid_schemas_are_rejected_with_a_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
