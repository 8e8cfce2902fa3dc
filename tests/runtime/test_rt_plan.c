/* rt_plan: planning, the write-ahead file format, batch directories. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core_err.h"
#include "runtime/rt_plan.h"

static rt_plan_params_t params(int64_t batch, int64_t max, int64_t task_max)
{
    rt_plan_params_t p = {.batch = batch, .max_records = max, .task_max = task_max};
    return p;
}

static void test_first_batch_starts_at_initial_offsets_and_reads_to_high(void **state)
{
    rt_range_t ini_r[] = {{"t", 0, 5, 5}, {"t", 1, 0, 0}};
    rt_plan_t ini = {.ranges = ini_r, .nranges = 2};
    rt_watermark_t wm[] = {{"t", 0, 0, 50}, {"t", 1, 0, 7}};
    rt_plan_params_t p = params(0, 0, 0);
    p.initial = &ini;
    rt_plan_t out;
    assert_int_equal(rt_plan_make(&p, wm, 2, &out), 0);
    assert_int_equal(out.nranges, 2);
    assert_int_equal(out.ranges[0].start, 5);
    assert_int_equal(out.ranges[0].end, 50);
    assert_int_equal(out.ranges[1].start, 0);
    assert_int_equal(out.ranges[1].end, 7);
    assert_int_equal(out.ntasks, 2);
    assert_int_equal(rt_plan_records(&out), 52);
    rt_plan_free(&out);
}

static void test_next_batch_starts_where_previous_ended(void **state)
{
    rt_range_t prev_r[] = {{"t", 0, 0, 40}};
    rt_plan_t prev = {.batch = 3, .ranges = prev_r, .nranges = 1};
    rt_watermark_t wm[] = {{"t", 0, 0, 45}};
    rt_plan_params_t p = params(4, 0, 0);
    p.prev = &prev;
    rt_plan_t out;
    assert_int_equal(rt_plan_make(&p, wm, 1, &out), 0);
    assert_int_equal(out.batch, 4);
    assert_int_equal(out.ranges[0].start, 40);
    assert_int_equal(out.ranges[0].end, 45);
    rt_plan_free(&out);
}

static void test_cap_is_split_in_proportion_to_backlog(void **state)
{
    rt_watermark_t wm[] = {{"t", 0, 0, 300}, {"t", 1, 0, 100}};
    rt_plan_params_t p = params(0, 100, 0);
    rt_plan_t out;
    assert_int_equal(rt_plan_make(&p, wm, 2, &out), 0);
    assert_int_equal(out.ranges[0].end - out.ranges[0].start, 75);
    assert_int_equal(out.ranges[1].end - out.ranges[1].start, 25);
    rt_plan_free(&out);
}

static void test_cap_is_never_exceeded_and_rounding_remainder_is_used(void **state)
{
    rt_watermark_t wm[] = {{"t", 0, 0, 1}, {"t", 1, 0, 1}, {"t", 2, 0, 1}};
    rt_plan_params_t p = params(0, 2, 0);
    rt_plan_t out;
    assert_int_equal(rt_plan_make(&p, wm, 3, &out), 0);
    assert_int_equal(rt_plan_records(&out), 2);
    rt_plan_free(&out);
    /* Odd sizes: the sum is exactly the cap, no partition over its backlog. */
    rt_watermark_t wm2[] = {{"t", 0, 0, 7}, {"t", 1, 0, 13}, {"t", 2, 0, 1000}};
    p = params(0, 101, 0);
    assert_int_equal(rt_plan_make(&p, wm2, 3, &out), 0);
    assert_int_equal(rt_plan_records(&out), 101);
    for (int i = 0; i < 3; i++)
        assert_true(out.ranges[i].end <= wm2[i].high);
    rt_plan_free(&out);
}

static void test_long_range_is_split_into_equal_contiguous_tasks(void **state)
{
    rt_watermark_t wm[] = {{"t", 0, 0, 1000}};
    rt_plan_params_t p = params(0, 0, 300);
    rt_plan_t out;
    assert_int_equal(rt_plan_make(&p, wm, 1, &out), 0);
    assert_int_equal(out.ntasks, 4);
    int64_t at = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(out.tasks[i].start, at);
        assert_int_equal(out.tasks[i].end - out.tasks[i].start, 250);
        at = out.tasks[i].end;
    }
    assert_int_equal(at, 1000);
    rt_plan_free(&out);
}

static void test_stateful_job_range_is_never_split(void **state)
{
    rt_watermark_t wm[] = {{"t", 0, 0, 1000}};
    rt_plan_params_t p = params(0, 0, 300);
    p.stateful = true;
    rt_plan_t out;
    assert_int_equal(rt_plan_make(&p, wm, 1, &out), 0);
    assert_int_equal(out.ntasks, 1);
    rt_plan_free(&out);
}

static void test_records_deleted_by_retention_move_start_and_count_as_loss(void **state)
{
    rt_range_t prev_r[] = {{"t", 0, 0, 10}};
    rt_plan_t prev = {.ranges = prev_r, .nranges = 1};
    rt_watermark_t wm[] = {{"t", 0, 25, 30}};
    rt_plan_params_t p = params(1, 0, 0);
    p.prev = &prev;
    rt_plan_t out;
    assert_int_equal(rt_plan_make(&p, wm, 1, &out), 0);
    assert_int_equal(out.data_loss, 15);
    assert_int_equal(out.ranges[0].start, 25);
    assert_int_equal(out.ranges[0].end, 30);
    rt_plan_free(&out);
}

static void test_new_partition_starts_at_earliest_and_missing_one_keeps_its_end(void **state)
{
    rt_range_t prev_r[] = {{"t", 0, 0, 10}, {"u", 0, 0, 4}};
    rt_plan_t prev = {.ranges = prev_r, .nranges = 2};
    rt_watermark_t wm[] = {{"t", 0, 0, 10}, {"t", 1, 3, 9}};
    rt_plan_params_t p = params(1, 0, 0);
    p.prev = &prev;
    rt_plan_t out;
    assert_int_equal(rt_plan_make(&p, wm, 2, &out), 0);
    const rt_range_t *t1 = rt_plan_find(&out, "t", 1);
    assert_non_null(t1);
    assert_int_equal(t1->start, 3);
    assert_int_equal(t1->end, 9);
    const rt_range_t *u0 = rt_plan_find(&out, "u", 0);
    assert_non_null(u0);
    assert_int_equal(u0->start, 4);
    assert_int_equal(u0->end, 4);
    assert_int_equal(out.ntasks, 1);
    rt_plan_free(&out);
}

static void test_plan_survives_a_json_round_trip(void **state)
{
    rt_watermark_t wm[] = {{"t", 0, 0, 1000}, {"x", 3, 10, 20}};
    rt_plan_params_t p = params(9, 0, 400);
    rt_plan_t a, b;
    assert_int_equal(rt_plan_make(&p, wm, 2, &a), 0);
    char *s = rt_plan_to_json(&a);
    char es[256];
    assert_int_equal(rt_plan_from_json(s, strlen(s), &b, es, sizeof es), 0);
    assert_int_equal(b.batch, 9);
    assert_int_equal(b.nranges, a.nranges);
    assert_int_equal(b.ntasks, a.ntasks);
    for (int i = 0; i < a.ntasks; i++) {
        assert_string_equal(a.tasks[i].topic, b.tasks[i].topic);
        assert_int_equal(a.tasks[i].start, b.tasks[i].start);
        assert_int_equal(a.tasks[i].end, b.tasks[i].end);
    }
    free(s);
    rt_plan_free(&a);
    rt_plan_free(&b);
    /* Malformed plans are errors, not crashes. */
    const char *bad[] = {"", "{", "[]", "{\"batch\":1}", "{\"batch\":1,\"ranges\":[[\"t\",0,5,2]],\"tasks\":[]}",
                         "{\"batch\":-1,\"ranges\":[],\"tasks\":[]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rt_plan_from_json(bad[i], strlen(bad[i]), &b, es, sizeof es),
                         CORE_ERR_MALFORMED);
}

static char tmpdir[64];

static int setup_dir(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_rt_plan.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_raw(const char *name, const char *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
}

static void test_record_file_round_trips_and_damage_is_reported_as_corrupt(void **state)
{
    char es[256], *p = NULL;
    size_t len;
    assert_int_equal(rt_record_write(tmpdir, "7", "{\"batch\":7}", es, sizeof es), 0);
    assert_int_equal(rt_record_read(tmpdir, "7", &p, &len, es, sizeof es), 0);
    assert_string_equal(p, "{\"batch\":7}");
    free(p);
    /* Read the file back, then damage it in every way we can think of. */
    char path[256], buf[256];
    snprintf(path, sizeof path, "%s/7", tmpdir);
    FILE *f = fopen(path, "rb");
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char dmg[256];
    memcpy(dmg, buf, n);
    dmg[n - 3] ^= 1; /* payload bit flip */
    write_raw("flip", dmg, n);
    assert_int_equal(rt_record_read(tmpdir, "flip", &p, &len, es, sizeof es), CORE_ERR_CORRUPT);
    write_raw("short", buf, n - 1); /* torn tail */
    assert_int_equal(rt_record_read(tmpdir, "short", &p, &len, es, sizeof es), CORE_ERR_CORRUPT);
    memcpy(dmg, buf, n);
    dmg[n] = 'x'; /* trailing garbage */
    write_raw("long", dmg, n + 1);
    assert_int_equal(rt_record_read(tmpdir, "long", &p, &len, es, sizeof es), CORE_ERR_CORRUPT);
    memset(dmg, 0, sizeof dmg); /* a run of zeros must never be valid */
    write_raw("zeros", dmg, 128);
    assert_int_equal(rt_record_read(tmpdir, "zeros", &p, &len, es, sizeof es), CORE_ERR_CORRUPT);
    write_raw("empty", dmg, 0);
    assert_int_equal(rt_record_read(tmpdir, "empty", &p, &len, es, sizeof es), CORE_ERR_CORRUPT);
    assert_int_equal(rt_record_read(tmpdir, "absent", &p, &len, es, sizeof es), ENOENT);
    assert_null(p);
}

static void test_last_batch_ignores_temp_files_and_purge_keeps_recent(void **state)
{
    char es[256];
    int64_t last = -1;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/plans", tmpdir);
    assert_int_equal(rt_mkdirs(sub, 0755), 0);
    assert_int_equal(rt_dir_last_batch(sub, &last), ENOENT);
    for (int b = 0; b < 12; b++) {
        char nm[16];
        snprintf(nm, sizeof nm, "%d", b);
        assert_int_equal(rt_record_write(sub, nm, "{}", es, sizeof es), 0);
    }
    /* A temp file left by a crash mid-write is not a batch. */
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s/.99.tmp", sub);
    fclose(fopen(tmp, "w"));
    assert_int_equal(rt_dir_last_batch(sub, &last), 0);
    assert_int_equal(last, 11);
    rt_dir_purge_below(sub, 10);
    char *p = NULL;
    assert_int_equal(rt_record_read(sub, "9", &p, NULL, es, sizeof es), ENOENT);
    assert_int_equal(rt_record_read(sub, "10", &p, NULL, es, sizeof es), 0);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_batch_starts_at_initial_offsets_and_reads_to_high),
        cmocka_unit_test(test_next_batch_starts_where_previous_ended),
        cmocka_unit_test(test_cap_is_split_in_proportion_to_backlog),
        cmocka_unit_test(test_cap_is_never_exceeded_and_rounding_remainder_is_used),
        cmocka_unit_test(test_long_range_is_split_into_equal_contiguous_tasks),
        cmocka_unit_test(test_stateful_job_range_is_never_split),
        cmocka_unit_test(test_records_deleted_by_retention_move_start_and_count_as_loss),
        cmocka_unit_test(test_new_partition_starts_at_earliest_and_missing_one_keeps_its_end),
        cmocka_unit_test(test_plan_survives_a_json_round_trip),
        cmocka_unit_test_setup_teardown(test_record_file_round_trips_and_damage_is_reported_as_corrupt,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_last_batch_ignores_temp_files_and_purge_keeps_recent,
                                        setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
