#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_buf.h"

static void test_varint_round_trips_at_the_edges(void **state)
{
    const int32_t vals[] = {0, 1, -1, 63, -64, 64, 300, INT32_MAX, INT32_MIN};
    core_buf_t b;
    core_buf_init(&b);
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++)
        core_wr_varint(&b, vals[i]);
    core_wr_varlong(&b, INT64_MIN);
    core_wr_varlong(&b, INT64_MAX);
    core_rd_t rd;
    core_rd_init(&rd, b.data, b.len);
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++)
        assert_int_equal(core_rd_varint(&rd), vals[i]);
    assert_true(core_rd_varlong(&rd) == INT64_MIN);
    assert_true(core_rd_varlong(&rd) == INT64_MAX);
    assert_int_equal(rd.err, 0);
    assert_int_equal(core_rd_remain(&rd), 0);
    core_buf_fini(&b);
}

static void test_zigzag_matches_the_kafka_encoding(void **state)
{
    core_buf_t b;
    core_buf_init(&b);
    core_wr_varint(&b, -1); /* zigzag(-1) = 1 */
    core_wr_varint(&b, 1);  /* zigzag(1) = 2 */
    core_wr_varint(&b, 150); /* 300 = 0xac 0x02 */
    const uint8_t want[] = {0x01, 0x02, 0xac, 0x02};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    core_buf_fini(&b);
}

static void test_every_truncation_point_fails_cleanly(void **state)
{
    core_buf_t b;
    core_buf_init(&b);
    core_wr_i16(&b, 7);
    core_wr_str(&b, "hello", 5);
    core_wr_i64(&b, 42);
    core_wr_cstr(&b, "xy", 2);
    for (size_t cut = 0; cut < b.len; cut++) {
        core_rd_t rd;
        core_rd_init(&rd, b.data, cut);
        (void)core_rd_i16(&rd);
        (void)core_rd_str(&rd);
        (void)core_rd_i64(&rd);
        (void)core_rd_cstr(&rd);
        assert_int_equal(rd.err, CORE_ERR_TRUNCATED);
    }
    core_rd_t rd;
    core_rd_init(&rd, b.data, b.len);
    assert_int_equal(core_rd_i16(&rd), 7);
    core_slice_t s = core_rd_str(&rd);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "hello", 5);
    assert_int_equal(core_rd_i64(&rd), 42);
    s = core_rd_cstr(&rd);
    assert_int_equal(s.len, 2);
    assert_int_equal(rd.err, 0);
    core_buf_fini(&b);
}

static void test_null_string_is_only_accepted_where_nullable(void **state)
{
    const uint8_t null16[] = {0xff, 0xff};
    core_rd_t rd;
    core_rd_init(&rd, null16, 2);
    assert_int_equal(core_rd_nstr(&rd).len, -1);
    assert_int_equal(rd.err, 0);
    core_rd_init(&rd, null16, 2);
    (void)core_rd_str(&rd);
    assert_int_equal(rd.err, CORE_ERR_MALFORMED);
}

static void test_array_count_is_checked_against_cap_and_remaining_bytes(void **state)
{
    const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff};
    core_rd_t rd;
    core_rd_init(&rd, huge, 4);
    assert_int_equal(core_rd_array(&rd, 1000, 4), 0);
    assert_int_equal(rd.err, CORE_ERR_TOO_LARGE);
    const uint8_t three[] = {0, 0, 0, 3, 1, 2};
    core_rd_init(&rd, three, sizeof three);
    (void)core_rd_array(&rd, 1000, 4); /* 3 elements of >= 4 bytes cannot fit in 2 */
    assert_int_equal(rd.err, CORE_ERR_TRUNCATED);
}

static void test_overlong_varint_is_malformed(void **state)
{
    const uint8_t bad[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    core_rd_t rd;
    core_rd_init(&rd, bad, sizeof bad);
    (void)core_rd_varint(&rd);
    assert_int_equal(rd.err, CORE_ERR_MALFORMED);
}

static void test_errors_are_sticky(void **state)
{
    const uint8_t one[] = {5};
    core_rd_t rd;
    core_rd_init(&rd, one, 1);
    (void)core_rd_i32(&rd);
    assert_int_equal(core_rd_i8(&rd), 0); /* would succeed on a fresh reader */
    assert_int_equal(rd.err, CORE_ERR_TRUNCATED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_round_trips_at_the_edges),
        cmocka_unit_test(test_zigzag_matches_the_kafka_encoding),
        cmocka_unit_test(test_every_truncation_point_fails_cleanly),
        cmocka_unit_test(test_null_string_is_only_accepted_where_nullable),
        cmocka_unit_test(test_array_count_is_checked_against_cap_and_remaining_bytes),
        cmocka_unit_test(test_overlong_varint_is_malformed),
        cmocka_unit_test(test_errors_are_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
