/*
 * test_broker_offsets — committed offsets in the __consumer_offsets log:
 * durability before visibility, replay after reopen, tombstones, compaction
 * and recovery from an interrupted compaction, Kafka's key/value layout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/broker_offsets.h"

#define S(x) ((core_slice_t){(const uint8_t *)(x), (int64_t)strlen(x)})

static char dir[256];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/eddy-test-offsets-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

typedef struct env {
    broker_cg_t *cg;
    broker_offsets_t *o;
} env_t;

static void env_open(env_t *e)
{
    assert_int_equal(broker_cg_new(NULL, &e->cg), 0);
    char err[256] = "";
    int rc = broker_offsets_open(dir, e->cg, &e->o, err, sizeof err);
    if (rc)
        fail_msg("open: %s", err);
    assert_true(broker_cg_loading(e->cg));
    bool done = false;
    for (int i = 0; i < 1000 && !done; i++)
        if (broker_offsets_load(e->o, 4096, &done, err, sizeof err))
            fail_msg("load: %s", err);
    assert_true(done);
    assert_false(broker_cg_loading(e->cg));
}

static void env_close(env_t *e)
{
    broker_offsets_close(e->o);
    broker_cg_free(e->cg);
}

static int64_t commit(env_t *e, const char *group, const char *topic, int32_t partition,
                      int64_t offset, const char *md)
{
    broker_cg_commit_part_t part = {.partition = partition, .offset = offset, .leader_epoch = 4,
                                    .commit_timestamp = -1, .metadata = S(md)};
    broker_cg_commit_topic_t t = {.name = S(topic), .npartitions = 1, .partitions = &part};
    broker_cg_commit_req_t req = {.version = 7, .group_id = S(group), .generation_id = -1,
                                  .member_id = S(""), .group_instance_id = {NULL, -1},
                                  .ntopics = 1, .topics = &t};
    assert_int_equal(broker_cg_commit_check(e->cg, &req, 0), 1);
    int64_t last;
    assert_int_equal(broker_offsets_append(e->o, &req, 1700000000000LL, &last), 0);
    assert_true(last >= 0);
    return last;
}

static int64_t get(env_t *e, const char *g, const char *t, int32_t p)
{
    broker_cg_offset_t off;
    if (broker_cg_offset_get(e->cg, g, t, p, &off))
        return -1;
    return off.offset;
}

static void test_commit_is_invisible_until_flushed_then_applied(void **state)
{
    env_t e;
    env_open(&e);
    int64_t last = commit(&e, "g", "t", 0, 42, "md");
    assert_int_equal(broker_offsets_apply(e.o), 0);
    assert_int_equal(get(&e, "g", "t", 0), -1);
    assert_int_equal(broker_offsets_pending(e.o), 1);
    assert_int_equal(broker_log_flush(broker_offsets_log(e.o)), 0);
    assert_true(broker_log_flushed(broker_offsets_log(e.o)) > last);
    assert_int_equal(broker_offsets_apply(e.o), 1);
    assert_int_equal(get(&e, "g", "t", 0), 42);
    broker_cg_offset_t off;
    assert_int_equal(broker_cg_offset_get(e.cg, "g", "t", 0, &off), 0);
    assert_string_equal(off.metadata, "md");
    assert_int_equal(off.leader_epoch, 4);
    assert_int_equal(off.commit_ts, 1700000000000LL);
    env_close(&e);
}

static void test_offsets_survive_reopen_latest_wins_and_tombstones_delete(void **state)
{
    env_t e;
    env_open(&e);
    commit(&e, "g", "t", 0, 1, "");
    commit(&e, "g", "t", 0, 2, "");
    commit(&e, "g", "t", 1, 7, "x");
    commit(&e, "h", "u", 3, 9, "");
    int64_t last;
    assert_int_equal(broker_offsets_append_delete(e.o, "h", "u", 3, &last), 0);
    broker_log_flush(broker_offsets_log(e.o));
    broker_offsets_apply(e.o);
    env_close(&e);

    env_open(&e);
    assert_int_equal(get(&e, "g", "t", 0), 2);
    assert_int_equal(get(&e, "g", "t", 1), 7);
    assert_int_equal(get(&e, "h", "u", 3), -1);
    env_close(&e);
}

static void test_unflushed_commits_are_applied_at_close(void **state)
{
    env_t e;
    env_open(&e);
    commit(&e, "g", "t", 0, 5, "");
    env_close(&e); /* close flushes */
    env_open(&e);
    assert_int_equal(get(&e, "g", "t", 0), 5);
    env_close(&e);
}

static void test_compaction_keeps_latest_per_key(void **state)
{
    env_t e;
    env_open(&e);
    for (int i = 0; i < 300; i++)
        commit(&e, "g", "t", i % 3, i, "");
    broker_log_flush(broker_offsets_log(e.o));
    broker_offsets_apply(e.o);
    int64_t before = broker_log_end_offset(broker_offsets_log(e.o));
    char err[256];
    assert_int_equal(broker_offsets_maybe_compact(e.o, true, err, sizeof err), 0);
    assert_int_equal(broker_log_end_offset(broker_offsets_log(e.o)), 3);
    assert_true(before == 300);
    commit(&e, "g", "t", 0, 1000, ""); /* the log keeps working after the swap */
    env_close(&e);
    env_open(&e);
    assert_int_equal(get(&e, "g", "t", 0), 1000);
    assert_int_equal(get(&e, "g", "t", 1), 298);
    assert_int_equal(get(&e, "g", "t", 2), 299);
    env_close(&e);
}

static void test_interrupted_compaction_is_undone_at_open(void **state)
{
    env_t e;
    env_open(&e);
    commit(&e, "g", "t", 0, 11, "");
    env_close(&e);
    char live[400], old[512], tmp[512];
    snprintf(live, sizeof live, "%s/groups/__consumer_offsets-0", dir);
    snprintf(old, sizeof old, "%s.old", live);
    snprintf(tmp, sizeof tmp, "%s.compact", live);
    /* crash between the two renames: live moved to .old, .compact complete but not in place */
    assert_int_equal(rename(live, old), 0);
    assert_int_equal(mkdir(tmp, 0755), 0);
    env_open(&e);
    assert_int_equal(get(&e, "g", "t", 0), 11);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(access(old, F_OK), -1);
    env_close(&e);
}

static void test_record_layout_is_kafkas_key_v1_value_v3(void **state)
{
    /* key v1: version 1, "g", "t", partition 2; value v3 */
    const uint8_t key[] = {0, 1, 0, 1, 'g', 0, 1, 't', 0, 0, 0, 2};
    const uint8_t val[] = {0, 3, 0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 5, 0, 2, 'm', 'd',
                           0, 0, 1, 0x8b, 0xcf, 0xe5, 0x68, 0x00};
    broker_offsets_record_t r;
    assert_int_equal(broker_offsets_record_decode((core_slice_t){key, sizeof key},
                                                  (core_slice_t){val, sizeof val}, &r), 0);
    assert_true(r.is_commit);
    assert_int_equal(r.partition, 2);
    assert_int_equal(r.offset, 42);
    assert_int_equal(r.leader_epoch, 5);
    assert_int_equal(r.metadata.len, 2);
    assert_int_equal(r.commit_ts, 1700000000000LL);
    assert_int_equal(broker_offsets_record_decode((core_slice_t){key, sizeof key},
                                                  (core_slice_t){NULL, -1}, &r), 0);
    assert_true(r.tombstone);
    /* group metadata keys (v2) are skipped, truncated values rejected */
    const uint8_t gkey[] = {0, 2, 0, 1, 'g'};
    assert_int_equal(broker_offsets_record_decode((core_slice_t){gkey, sizeof gkey},
                                                  (core_slice_t){NULL, -1}, &r), 0);
    assert_false(r.is_commit);
    assert_int_not_equal(broker_offsets_record_decode((core_slice_t){key, sizeof key},
                                                      (core_slice_t){val, sizeof val - 1}, &r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_is_invisible_until_flushed_then_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_survive_reopen_latest_wins_and_tombstones_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unflushed_commits_are_applied_at_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_keeps_latest_per_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_compaction_is_undone_at_open, setup, teardown),
        cmocka_unit_test(test_record_layout_is_kafkas_key_v1_value_v3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
