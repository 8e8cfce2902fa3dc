#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_crc.h"

static void test_crc32c_matches_the_standard_check_value(void **state)
{
    /* RFC 3720 / iSCSI check value for "123456789" */
    assert_int_equal(core_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(core_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(core_crc32c(0, "", 0), 0);
}

static void test_hardware_and_table_paths_agree_on_every_length(void **state)
{
    uint8_t buf[1031];
    srand(7);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rand();
    for (size_t n = 0; n <= sizeof buf; n += 13)
        assert_int_equal(core_crc32c(0, buf, n), core_crc32c_sw(0, buf, n));
}

static void test_crc_continues_across_calls(void **state)
{
    const char *s = "the quick brown fox jumps over the lazy dog";
    size_t n = strlen(s);
    uint32_t whole = core_crc32c(0, s, n);
    uint32_t part = core_crc32c(core_crc32c(0, s, 10), s + 10, n - 10);
    assert_int_equal(whole, part);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_matches_the_standard_check_value),
        cmocka_unit_test(test_hardware_and_table_paths_agree_on_every_length),
        cmocka_unit_test(test_crc_continues_across_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
