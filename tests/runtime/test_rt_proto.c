/* rt_proto: the task and result messages, and derived event ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_err.h"
#include "runtime/rt_proto.h"

static rt_task_t sample_task(void)
{
    rt_task_t t = {.job = "clicks",
                   .job_uid = "0123456789abcdef0123456789abcdef",
                   .sha256 = "ab",
                   .batch = 42,
                   .index = 3,
                   .attempt = 2,
                   .topic = "in",
                   .partition = 7,
                   .start = 100,
                   .end = 200,
                   .flags = 1,
                   .brokers = "127.0.0.1:9092",
                   .config = "{\"a\":1}"};
    return t;
}

static void test_task_round_trips(void **state)
{
    rt_task_t t = sample_task(), u;
    core_buf_t b;
    core_buf_init(&b);
    rt_task_encode(&t, &b);
    assert_int_equal(rt_task_decode(b.data, b.len, &u), 0);
    assert_string_equal(u.job, "clicks");
    assert_string_equal(u.topic, "in");
    assert_int_equal(u.batch, 42);
    assert_int_equal(u.index, 3);
    assert_int_equal(u.attempt, 2);
    assert_int_equal(u.partition, 7);
    assert_int_equal(u.start, 100);
    assert_int_equal(u.end, 200);
    assert_int_equal(u.flags, 1);
    assert_string_equal(u.config, "{\"a\":1}");
    rt_task_fini(&u);
    core_buf_fini(&b);
}

static void test_task_decode_rejects_every_truncation_and_trailing_bytes(void **state)
{
    rt_task_t t = sample_task(), u;
    core_buf_t b;
    core_buf_init(&b);
    rt_task_encode(&t, &b);
    for (size_t n = 0; n < b.len; n++) {
        /* Exactly n bytes on the heap so ASan sees any overread. */
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, b.data, n);
        assert_int_not_equal(rt_task_decode(p, n, &u), 0);
        free(p);
    }
    core_wr_i8(&b, 0);
    assert_int_equal(rt_task_decode(b.data, b.len, &u), CORE_ERR_MALFORMED);
    core_buf_fini(&b);
}

static void test_task_with_inverted_range_is_malformed(void **state)
{
    rt_task_t t = sample_task(), u;
    t.start = 10;
    t.end = 5;
    core_buf_t b;
    core_buf_init(&b);
    rt_task_encode(&t, &b);
    assert_int_equal(rt_task_decode(b.data, b.len, &u), CORE_ERR_MALFORMED);
    core_buf_fini(&b);
}

static void build_result(rt_result_t *r)
{
    memset(r, 0, sizeof *r);
    r->job = strdup("clicks");
    r->batch = 5;
    r->index = 1;
    r->attempt = 3;
    r->records = 10;
    r->emitted = 4;
    r->duration_us = 999;
    rt_event_out_t *e = rt_result_add_event(r);
    e->id = strdup("id1");
    e->event = strdup("view");
    e->entity_type = strdup("user");
    e->entity_id = strdup("u1");
    e->target_type = strdup("item");
    e->target_id = strdup("i1");
    e->properties = strdup("{}");
    e->event_time = -5;
    e = rt_result_add_event(r);
    e->id = strdup("id2");
    e->event = strdup("rate");
    e->entity_type = strdup("user");
    e->entity_id = strdup("u2");
    rt_result_set_state(r, "k1", 2, "v1", 2, 0);
    rt_result_set_state(r, "k2", 2, NULL, 0, 1);
    r->counters = calloc(1, sizeof *r->counters);
    r->counters[0].name = strdup("records");
    r->counters[0].delta = 10;
    r->ncounters = r->counters_cap = 1;
}

static void test_result_round_trips_events_state_deletes_and_counters(void **state)
{
    rt_result_t r, s;
    build_result(&r);
    core_buf_t b;
    core_buf_init(&b);
    rt_result_encode(&r, &b);
    assert_int_equal(rt_result_decode(b.data, b.len, &s), 0);
    assert_string_equal(s.job, "clicks");
    assert_int_equal(s.attempt, 3);
    assert_int_equal(s.nevents, 2);
    assert_string_equal(s.events[0].target_id, "i1");
    assert_int_equal(s.events[0].event_time, -5);
    assert_null(s.events[1].target_type);
    assert_null(s.events[1].properties);
    assert_int_equal(s.nstate, 2);
    assert_memory_equal(s.state[0].value, "v1", 2);
    assert_null(s.state[1].value);
    assert_int_equal(s.ncounters, 1);
    assert_int_equal(s.counters[0].delta, 10);
    assert_null(s.error);
    rt_result_fini(&s);
    /* Every truncation fails cleanly. */
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, b.data, n);
        assert_int_not_equal(rt_result_decode(p, n, &s), 0);
        free(p);
    }
    rt_result_fini(&r);
    core_buf_fini(&b);
}

static void test_result_with_an_absurd_event_count_is_refused_without_allocating(void **state)
{
    core_buf_t b;
    core_buf_init(&b);
    core_wr_u32(&b, 0x45445231u);
    core_wr_bytes(&b, "j", 1);
    core_wr_i64(&b, 0);
    core_wr_i32(&b, 0);
    core_wr_i32(&b, 0);
    core_wr_i32(&b, 0);
    core_wr_bytes(&b, NULL, -1);
    core_wr_i64(&b, 0);
    core_wr_i64(&b, 0);
    core_wr_i64(&b, 0);
    core_wr_i32(&b, 0x7fffffff); /* events */
    rt_result_t s;
    assert_int_not_equal(rt_result_decode(b.data, b.len, &s), 0);
    core_buf_fini(&b);
}

static void test_event_ids_are_deterministic_and_differ_by_every_coordinate(void **state)
{
    char a[33], b[33];
    rt_event_id("uid", "t", 1, 100, 0, a);
    rt_event_id("uid", "t", 1, 100, 0, b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 32);
    const char *uid[] = {"uid2", "uid", "uid", "uid", "uid"};
    const char *top[] = {"t", "u", "t", "t", "t"};
    int32_t part[] = {1, 1, 2, 1, 1};
    int64_t off[] = {100, 100, 100, 101, 100};
    int64_t idx[] = {0, 0, 0, 0, 1};
    for (int i = 0; i < 5; i++) {
        rt_event_id(uid[i], top[i], part[i], off[i], idx[i], b);
        assert_string_not_equal(a, b);
    }
    /* Field boundaries are unambiguous ("t1","1" vs "t","11"). */
    rt_event_id("uid", "t1", 1, 0, 0, a);
    rt_event_id("uid", "t", 11, 0, 0, b);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_round_trips),
        cmocka_unit_test(test_task_decode_rejects_every_truncation_and_trailing_bytes),
        cmocka_unit_test(test_task_with_inverted_range_is_malformed),
        cmocka_unit_test(test_result_round_trips_events_state_deletes_and_counters),
        cmocka_unit_test(test_result_with_an_absurd_event_count_is_refused_without_allocating),
        cmocka_unit_test(test_event_ids_are_deterministic_and_differ_by_every_coordinate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
