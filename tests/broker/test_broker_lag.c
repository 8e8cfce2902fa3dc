/*
 * test_broker_lag — Burrow's evaluation rules (compat-apis.md C.3/C.4), one
 * window per rule, plus the group roll-up and the v3 JSON shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker_lag.h"
#include "core/core_err.h"

static broker_lag_conf_t conf;

static int setup(void **state)
{
    broker_lag_conf_default(&conf);
    return 0;
}

/* Builds a window from offsets/lags at 60 s intervals starting at t0. */
static int window(broker_lag_entry_t *o, const int64_t *offs, const int64_t *lags, int n, int64_t t0)
{
    for (int i = 0; i < n; i++) {
        o[i].offset = offs[i];
        o[i].lag = lags[i];
        o[i].timestamp = t0 + i * 60000;
        o[i].observed_at = o[i].timestamp;
    }
    return n;
}

#define T0 1000000000000LL
#define NOW_AFTER(n) (T0 + ((n) - 1) * 60000 + 30000) /* 30 s after the last commit */

static void test_empty_window_is_ok(void **state)
{
    assert_int_equal(broker_lag_rules(&conf, NULL, 0, NULL, 0, 100, T0), BROKER_LAG_OK);
}

static void test_caught_up_consumer_is_ok_even_if_window_looks_bad(void **state)
{
    broker_lag_entry_t o[10];
    int64_t offs[10] = {10, 10, 10, 10, 10, 10, 10, 10, 10, 10};
    int64_t lags[10] = {5, 5, 5, 5, 5, 5, 5, 5, 5, 5};
    int n = window(o, offs, lags, 10, T0);
    assert_int_equal(broker_lag_rules(&conf, o, n, NULL, 0, 0, NOW_AFTER(10)), BROKER_LAG_OK);
}

static void test_stop_when_silent_longer_than_window_and_never_caught_up(void **state)
{
    broker_lag_entry_t o[10];
    int64_t offs[10] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    int64_t lags[10] = {5, 5, 5, 5, 5, 5, 5, 5, 5, 5};
    int n = window(o, offs, lags, 10, T0);
    int64_t heads[3] = {105, 110, 120};
    int64_t now = T0 + 9 * 60000 + 10 * 60000; /* silent 10 min > 9 min window */
    assert_int_equal(broker_lag_rules(&conf, o, n, heads, 3, 20, now), BROKER_LAG_STOP);
    /* the same silence is fine if the consumer had caught up with a head sample */
    int64_t heads2[3] = {100, 110, 120};
    assert_int_not_equal(broker_lag_rules(&conf, o, n, heads2, 3, 20, now), BROKER_LAG_STOP);
    /* and not STOP while the gap is shorter than the window */
    assert_int_not_equal(broker_lag_rules(&conf, o, n, heads, 3, 20, NOW_AFTER(10)), BROKER_LAG_STOP);
}

static void test_rewind_when_offset_goes_back_and_stays_back(void **state)
{
    broker_lag_entry_t o[10];
    int64_t offs[10] = {10, 20, 30, 40, 50, 5, 6, 7, 8, 9};
    int64_t lags[10] = {5, 5, 5, 5, 5, 60, 60, 60, 60, 60};
    int n = window(o, offs, lags, 10, T0);
    assert_int_equal(broker_lag_rules(&conf, o, n, NULL, 0, 60, NOW_AFTER(10)), BROKER_LAG_REWIND);
    /* recovered later: no rewind */
    int64_t offs2[10] = {10, 20, 30, 40, 50, 5, 60, 70, 80, 90};
    int64_t lags2[10] = {5, 5, 5, 5, 5, 60, 0, 5, 5, 5};
    n = window(o, offs2, lags2, 10, T0);
    assert_int_equal(broker_lag_rules(&conf, o, n, NULL, 0, 5, NOW_AFTER(10)), BROKER_LAG_OK);
}

static void test_stall_when_committing_the_same_offset_with_lag(void **state)
{
    broker_lag_entry_t o[10];
    int64_t offs[10] = {42, 42, 42, 42, 42, 42, 42, 42, 42, 42};
    int64_t lags[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    int n = window(o, offs, lags, 10, T0);
    assert_int_equal(broker_lag_rules(&conf, o, n, NULL, 0, 10, NOW_AFTER(10)), BROKER_LAG_STALL);
}

static void test_warn_when_moving_but_lag_never_decreases(void **state)
{
    broker_lag_entry_t o[10];
    int64_t offs[10] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    int64_t lags[10] = {1, 2, 2, 3, 4, 5, 6, 7, 8, 9};
    int n = window(o, offs, lags, 10, T0);
    assert_int_equal(broker_lag_rules(&conf, o, n, NULL, 0, 9, NOW_AFTER(10)), BROKER_LAG_WARN);
}

static void test_ok_when_lag_decreases_somewhere(void **state)
{
    broker_lag_entry_t o[10];
    int64_t offs[10] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    int64_t lags[10] = {1, 2, 3, 4, 3, 5, 6, 7, 8, 9};
    int n = window(o, offs, lags, 10, T0);
    assert_int_equal(broker_lag_rules(&conf, o, n, NULL, 0, 9, NOW_AFTER(10)), BROKER_LAG_OK);
}

static void test_ok_when_lag_was_zero_in_the_window(void **state)
{
    broker_lag_entry_t o[10];
    int64_t offs[10] = {42, 42, 42, 42, 42, 42, 42, 42, 42, 42};
    int64_t lags[10] = {0, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    int n = window(o, offs, lags, 10, T0);
    assert_int_equal(broker_lag_rules(&conf, o, n, NULL, 0, 10, NOW_AFTER(10)), BROKER_LAG_OK);
}

static void test_minimum_complete_skips_partial_windows(void **state)
{
    broker_lag_conf_t c = conf;
    c.minimum_complete = 0.5;
    broker_lag_entry_t o[3];
    int64_t offs[3] = {42, 42, 42};
    int64_t lags[3] = {1, 2, 3};
    int n = window(o, offs, lags, 3, T0);
    assert_int_equal(broker_lag_rules(&c, o, n, NULL, 0, 3, NOW_AFTER(3)), BROKER_LAG_OK);
    assert_int_equal(broker_lag_rules(&conf, o, n, NULL, 0, 3, NOW_AFTER(3)), BROKER_LAG_STALL);
}

static int64_t fixed_head(void *arg, const char *topic, int32_t partition)
{
    return *(int64_t *)arg + partition;
}

static void test_group_rolls_up_worst_partition_and_window_slides(void **state)
{
    broker_lag_t *lag = broker_lag_new(NULL);
    /* partition 0: stalls at 42 while the head grows; partition 1: keeps up */
    for (int i = 0; i < 15; i++) {
        int64_t t = T0 + i * 1000;
        broker_lag_commit(lag, "g", "t", 0, 42, t, 50 + i, t);
        broker_lag_commit(lag, "g", "t", 1, 100 + i, t, 100 + i, t);
    }
    int64_t head = 70;
    broker_lag_group_t g;
    assert_int_equal(broker_lag_evaluate(lag, "g", T0 + 14500, fixed_head, NULL, &head, &g), 0);
    assert_int_equal(g.npartitions, 2);
    assert_int_equal(g.partitions[0].status, BROKER_LAG_STALL);
    assert_int_equal(g.partitions[1].status, BROKER_LAG_OK);
    assert_int_equal(g.status, BROKER_LAG_ERR); /* STALL shows as ERR at group level */
    assert_true(g.complete == 1.0);
    assert_int_equal(g.partitions[0].current_lag, 70 - 42);
    assert_int_equal(g.partitions[0].start.offset, 42);
    assert_int_equal(g.partitions[0].start.timestamp, T0 + 5000); /* oldest 5 slid out */
    assert_int_equal(g.partitions[0].start.lag, 55 - 42);
    assert_int_equal(g.maxlag, 0);
    assert_int_equal(g.totallag, 28 + 0);
    json_t *j = broker_lag_status_json(&g, "local", false);
    assert_int_equal(json_array_size(json_object_get(j, "partitions")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ERR");
    json_t *p = json_array_get(json_object_get(j, "partitions"), 0);
    assert_non_null(json_object_get(p, "current_lag"));
    assert_non_null(json_object_get(json_object_get(p, "end"), "observedAt"));
    json_decref(j);
    j = broker_lag_status_json(&g, "local", true);
    assert_int_equal(json_array_size(json_object_get(j, "partitions")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "partition_count")), 2);
    json_decref(j);
    broker_lag_group_fini(&g);

    /* catching up turns it OK */
    broker_lag_commit(lag, "g", "t", 0, 70, T0 + 15000, 70, T0 + 15000);
    assert_int_equal(broker_lag_evaluate(lag, "g", T0 + 15500, fixed_head, NULL, &head, &g), 0);
    assert_int_equal(g.partitions[0].status, BROKER_LAG_OK);
    assert_int_equal(g.status, BROKER_LAG_OK);
    broker_lag_group_fini(&g);
    broker_lag_free(lag);
}

static void test_unknown_group_is_notfound_with_burrow_body(void **state)
{
    broker_lag_t *lag = broker_lag_new(NULL);
    broker_lag_group_t g;
    assert_int_equal(broker_lag_evaluate(lag, "nope", T0, NULL, NULL, NULL, &g), CORE_ERR_NOT_FOUND);
    json_t *j = broker_lag_status_json(&g, "local", false);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "NOTFOUND");
    assert_true(json_is_null(json_object_get(j, "maxlag")));
    assert_true(json_real_value(json_object_get(j, "complete")) == 1.0);
    json_decref(j);
    broker_lag_group_fini(&g);
    broker_lag_free(lag);
}

static void test_commit_with_unknown_head_is_dropped(void **state)
{
    broker_lag_t *lag = broker_lag_new(NULL);
    broker_lag_commit(lag, "g", "t", 0, 5, T0, -1, T0);
    broker_lag_group_t g;
    assert_int_equal(broker_lag_evaluate(lag, "g", T0, NULL, NULL, NULL, &g), CORE_ERR_NOT_FOUND);
    broker_lag_group_fini(&g);
    broker_lag_free(lag);
}

static void test_min_distance_replaces_close_commits(void **state)
{
    broker_lag_conf_t c = conf;
    c.min_distance_ms = 5000;
    broker_lag_t *lag = broker_lag_new(&c);
    for (int i = 0; i < 10; i++)
        broker_lag_commit(lag, "g", "t", 0, i, T0 + i * 1000, 20, T0 + i * 1000);
    broker_lag_group_t g;
    assert_int_equal(broker_lag_evaluate(lag, "g", T0 + 10000, NULL, NULL, NULL, &g), 0);
    assert_true(g.partitions[0].complete < 0.25); /* 2 slots, not 10 */
    assert_int_equal(g.partitions[0].end.offset, 9);
    broker_lag_group_fini(&g);
    broker_lag_free(lag);
}

static void test_idle_group_expires(void **state)
{
    broker_lag_t *lag = broker_lag_new(NULL);
    broker_lag_commit(lag, "g", "t", 0, 5, T0, 5, T0);
    assert_int_equal(broker_lag_expire(lag, T0 + 604800000LL), 0);
    assert_int_equal(broker_lag_expire(lag, T0 + 604800001LL), 1);
    const char **names;
    assert_int_equal(broker_lag_groups(lag, &names), 0);
    free(names);
    broker_lag_free(lag);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_window_is_ok),
        cmocka_unit_test(test_caught_up_consumer_is_ok_even_if_window_looks_bad),
        cmocka_unit_test(test_stop_when_silent_longer_than_window_and_never_caught_up),
        cmocka_unit_test(test_rewind_when_offset_goes_back_and_stays_back),
        cmocka_unit_test(test_stall_when_committing_the_same_offset_with_lag),
        cmocka_unit_test(test_warn_when_moving_but_lag_never_decreases),
        cmocka_unit_test(test_ok_when_lag_decreases_somewhere),
        cmocka_unit_test(test_ok_when_lag_was_zero_in_the_window),
        cmocka_unit_test(test_minimum_complete_skips_partial_windows),
        cmocka_unit_test(test_group_rolls_up_worst_partition_and_window_slides),
        cmocka_unit_test(test_unknown_group_is_notfound_with_burrow_body),
        cmocka_unit_test(test_commit_with_unknown_head_is_dropped),
        cmocka_unit_test(test_min_distance_replaces_close_commits),
        cmocka_unit_test(test_idle_group_expires),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
