/* sr_state: records replayed from `_schemas` (any Kafka client can write
 * there) must not corrupt the state. Cases found while fuzzing the decoder
 * (fuzz/fuzz_sr_state.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_err.h"
#include "registry/sr_state.h"

static int apply(sr_state_t *st, const char *key, const char *value)
{
    return sr_state_apply(st, key, strlen(key), value, value ? strlen(value) : 0);
}

#define KEY(v) "{\"keytype\":\"SCHEMA\",\"subject\":\"s\",\"version\":" v ",\"magic\":1}"
#define VAL(v, id) "{\"subject\":\"s\",\"version\":" v ",\"id\":" id ",\"schema\":\"\\\"int\\\"\"}"

/* A version wider than a Java int used to be truncated: 4294967297 became a
 * second version 1, breaking the ascending order "latest" relies on. */
static void test_wide_version_refused(void **state)
{
    (void)state;
    sr_state_t *st = sr_state_new();
    assert_int_equal(apply(st, KEY("1"), VAL("1", "1")), CORE_OK);
    assert_int_equal(apply(st, KEY("4294967297"), VAL("4294967297", "2")), CORE_ERR_MALFORMED);
    assert_int_equal(apply(st, KEY("2147483648"), VAL("2147483648", "2")), CORE_ERR_MALFORMED);
    assert_int_equal(apply(st, KEY("4294967297"), NULL), CORE_ERR_MALFORMED);
    const sr_version_t *vs;
    assert_int_equal(sr_state_versions(st, "s", &vs), 1);
    assert_int_equal(vs[0].version, 1);
    assert_int_equal(sr_state_next_id(st), 2);
    sr_state_free(st);
}

/* An id past INT32_MAX used to become negative; INT32_MAX itself made the
 * next id overflow. */
static void test_id_limits(void **state)
{
    (void)state;
    sr_state_t *st = sr_state_new();
    assert_int_equal(apply(st, KEY("1"), VAL("1", "2147483648")), CORE_ERR_MALFORMED);
    assert_int_equal(apply(st, KEY("1"), VAL("1", "0")), CORE_ERR_MALFORMED);
    assert_int_equal(sr_state_versions(st, "s", &(const sr_version_t *){NULL}), -1);
    assert_int_equal(apply(st, KEY("2147483647"), VAL("2147483647", "2147483647")), CORE_OK);
    assert_int_equal(sr_state_next_id(st), 0); /* none left, not INT32_MIN */
    assert_string_equal(sr_state_schema_by_id(st, INT32_MAX), "\"int\"");
    sr_state_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wide_version_refused),
        cmocka_unit_test(test_id_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
