/*
 * broker_topic: create / find / delete, configs persisted across reopen,
 * validation of names, partitions and configs, crash leftovers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <sys/resource.h>

#include "batch_builder.h"
#include "broker/broker_topic.h"
#include "core/core_err.h"
#include "test_util.h"

typedef struct fixture {
    char *dir;
    broker_log_conf_t defaults;
    broker_topics_t *t;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    broker_log_conf_default(&f->defaults);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    broker_topics_close(f->t);
    tu_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void open_topics(fixture_t *f)
{
    char err[256] = "";
    int rc = broker_topics_open(f->dir, &f->defaults, &f->t, err, sizeof err);
    if (rc)
        fail_msg("open: %s: %s", core_errname(rc), err);
}

static void reopen(fixture_t *f)
{
    broker_topics_close(f->t);
    f->t = NULL;
    open_topics(f);
}

static int create(fixture_t *f, const char *name, int32_t np, const char *kv, char *err,
                  size_t errsz)
{
    /* kv: "k=v,k=v" */
    const char *keys[16], *vals[16];
    char buf[1024];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", kv ? kv : "");
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq)
            *eq = 0;
        keys[n] = tok;
        vals[n++] = eq ? eq + 1 : NULL;
    }
    return broker_topics_create(f->t, name, np, keys, vals, n, false, err, errsz);
}

static void test_create_find_and_iterate_in_name_order(void **state)
{
    fixture_t *f = *state;
    char err[256];
    open_topics(f);
    assert_int_equal(create(f, "zeta", 2, NULL, err, sizeof err), 0);
    assert_int_equal(create(f, "alpha", 1, NULL, err, sizeof err), 0);
    assert_int_equal(create(f, "mid-1", 3, NULL, err, sizeof err), 0);
    assert_int_equal(broker_topics_count(f->t), 3);
    assert_string_equal(broker_topics_at(f->t, 0)->name, "alpha");
    assert_string_equal(broker_topics_at(f->t, 1)->name, "mid-1");
    assert_string_equal(broker_topics_at(f->t, 2)->name, "zeta");
    broker_topic_t *t = broker_topics_find(f->t, "mid-1xyz", 5);
    assert_non_null(t);
    assert_int_equal(t->npartitions, 3);
    assert_non_null(t->partitions[2]);
    assert_null(broker_topics_find(f->t, "mid", 3));
    assert_int_equal(create(f, "zeta", 1, NULL, err, sizeof err), CORE_ERR_EXISTS);
    /* each partition is a usable log, led from epoch 0 */
    assert_int_equal(broker_log_leader_epoch(t->partitions[0]), 0);
    core_buf_t b;
    core_buf_init(&b);
    bb_simple(&b, 2, 1000, 20);
    int64_t base, last;
    assert_int_equal(broker_log_append(t->partitions[1], b.data, b.len, 0, &base, &last), 0);
    core_buf_fini(&b);
    /* topic ids are random v4 UUIDs, different per topic */
    broker_topic_t *a = broker_topics_find(f->t, "alpha", 5);
    assert_int_not_equal(memcmp(a->id, t->id, 16), 0);
    assert_int_equal(a->id[6] >> 4, 4);
}

static void test_topic_configs_persist_across_reopen(void **state)
{
    fixture_t *f = *state;
    char err[256];
    open_topics(f);
    assert_int_equal(create(f, "clicks", 4,
                            "retention.ms=3600000,segment.bytes=1048576,cleanup.policy=delete", err,
                            sizeof err),
                     0);
    broker_topic_t *t = broker_topics_find(f->t, "clicks", 6);
    uint8_t id[16];
    memcpy(id, t->id, 16);
    core_buf_t b;
    core_buf_init(&b);
    bb_simple(&b, 5, 1000, 20);
    int64_t base, last;
    assert_int_equal(broker_log_append(t->partitions[3], b.data, b.len, 0, &base, &last), 0);
    core_buf_fini(&b);
    reopen(f);
    t = broker_topics_find(f->t, "clicks", 6);
    assert_non_null(t);
    assert_int_equal(t->npartitions, 4);
    assert_memory_equal(t->id, id, 16);
    assert_int_equal(t->conf.retention_ms, 3600000);
    assert_int_equal(t->conf.segment_bytes, 1048576);
    assert_int_equal(t->conf.retention_bytes, f->defaults.retention_bytes);
    assert_int_equal(t->nconfigs, 3);
    assert_string_equal(t->config_keys[0], "retention.ms");
    assert_string_equal(t->config_values[0], "3600000");
    assert_int_equal(broker_log_end_offset(t->partitions[3]), 5);
    assert_int_equal(broker_log_end_offset(t->partitions[0]), 0);
}

static void test_invalid_topic_names_and_configs_are_rejected(void **state)
{
    fixture_t *f = *state;
    char err[256];
    open_topics(f);
    static const char *bad_names[] = {"", ".", "..", "a/b", "a b", "ü", "a\n", "x:y", NULL};
    for (int i = 0; bad_names[i]; i++) {
        err[0] = 0;
        assert_int_equal(create(f, bad_names[i], 1, NULL, err, sizeof err), CORE_ERR_INVAL);
        assert_non_null(strstr(err, "invalid topic name"));
        assert_false(broker_topic_name_valid(bad_names[i], strlen(bad_names[i])));
    }
    char longname[251];
    memset(longname, 'a', 250);
    longname[250] = 0;
    assert_false(broker_topic_name_valid(longname, 250));
    assert_true(broker_topic_name_valid(longname, 249));
    assert_true(broker_topic_name_valid("...", 3));
    assert_true(broker_topic_name_valid("A-z_0.9", 7));

    struct {
        const char *kv;
        int32_t np;
        const char *msg;
    } cases[] = {
        {"retention.ms=abc", 1, "not an integer"},
        {"retention.ms=-2", 1, "out of range"},
        {"segment.bytes=13", 1, "out of range"},
        {"segment.bytes=4294967296", 1, "out of range"},
        {"segment.ms=0", 1, "out of range"},
        {"max.message.bytes=-1", 1, "out of range"},
        {"cleanup.policy=compact", 1, "not supported"},
        {"compression.type=gzip", 1, "unknown topic config 'compression.type'"},
        {"retention.ms", 1, "needs a value"},
        {"retention.ms=1,retention.ms=2", 1, "given twice"},
        {NULL, 0, "partitions"},
        {NULL, -1, "partitions"},
        {NULL, 10001, "partitions"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = 0;
        assert_int_equal(create(f, "ok", cases[i].np, cases[i].kv, err, sizeof err),
                         CORE_ERR_INVAL);
        if (!strstr(err, cases[i].msg))
            fail_msg("case %zu: message '%s' lacks '%s'", i, err, cases[i].msg);
    }
    assert_int_equal(broker_topics_count(f->t), 0);
    /* validate_only accepts a good request and creates nothing */
    const char *k[] = {"retention.bytes"}, *v[] = {"-1"};
    assert_int_equal(broker_topics_create(f->t, "ok", 2, k, v, 1, true, err, sizeof err), 0);
    assert_int_equal(broker_topics_count(f->t), 0);
    /* '.' and '_' collide, as in Kafka */
    assert_int_equal(create(f, "a.b", 1, NULL, err, sizeof err), 0);
    assert_int_equal(create(f, "a_b", 1, NULL, err, sizeof err), CORE_ERR_INVAL);
    assert_non_null(strstr(err, "collides"));
}

static void test_delete_removes_topic_and_survives_reopen(void **state)
{
    fixture_t *f = *state;
    char err[256];
    open_topics(f);
    assert_int_equal(create(f, "gone", 2, NULL, err, sizeof err), 0);
    assert_int_equal(create(f, "kept", 1, NULL, err, sizeof err), 0);
    assert_int_equal(broker_topics_delete(f->t, "gone"), 0);
    assert_null(broker_topics_find(f->t, "gone", 4));
    assert_int_equal(broker_topics_delete(f->t, "gone"), CORE_ERR_NOT_FOUND);
    char p[4096];
    snprintf(p, sizeof p, "%s/topics/gone", f->dir);
    assert_false(tu_file_exists(p));
    reopen(f);
    assert_int_equal(broker_topics_count(f->t), 1);
    /* and the name can be used again */
    assert_int_equal(create(f, "gone", 1, NULL, err, sizeof err), 0);
}

static void test_leftovers_of_interrupted_create_and_delete_are_removed(void **state)
{
    fixture_t *f = *state;
    open_topics(f);
    broker_topics_close(f->t);
    f->t = NULL;
    char p[4096];
    snprintf(p, sizeof p, "%s/topics/.creating-x", f->dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/topics/.deleted-y-123", f->dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/topics/.deleted-y-123/0", f->dir);
    assert_int_equal(mkdir(p, 0755), 0);
    open_topics(f);
    assert_int_equal(broker_topics_count(f->t), 0);
    snprintf(p, sizeof p, "%s/topics/.deleted-y-123", f->dir);
    assert_false(tu_file_exists(p));
    snprintf(p, sizeof p, "%s/topics/.creating-x", f->dir);
    assert_false(tu_file_exists(p));
}

static void test_add_partitions_grows_persists_and_replaces_leftovers(void **state)
{
    fixture_t *f = *state;
    char err[256];
    open_topics(f);
    assert_int_equal(create(f, "grow", 2, "retention.ms=1000", err, sizeof err), 0);
    broker_topic_t *t = broker_topics_find(f->t, "grow", 4);
    core_buf_t b;
    core_buf_init(&b);
    bb_simple(&b, 3, 1000, 20);
    int64_t base, last;
    assert_int_equal(broker_log_append(t->partitions[1], b.data, b.len, 0, &base, &last), 0);
    /* never shrink or stay, never over the limit, unknown topic */
    assert_int_equal(broker_topics_add_partitions(f->t, "grow", 2, false, err, sizeof err),
                     CORE_ERR_INVAL);
    assert_non_null(strstr(err, "has 2 partitions"));
    assert_int_equal(broker_topics_add_partitions(f->t, "grow", 10001, false, err, sizeof err),
                     CORE_ERR_INVAL);
    assert_int_equal(broker_topics_add_partitions(f->t, "nope", 3, false, err, sizeof err),
                     CORE_ERR_NOT_FOUND);
    assert_int_equal(broker_topics_add_partitions(f->t, "grow", 4, true, err, sizeof err), 0);
    assert_int_equal(t->npartitions, 2); /* validate_only */
    /* a leftover directory of a crashed growth is replaced, not reused */
    char p[4096];
    snprintf(p, sizeof p, "%s/topics/grow/3", f->dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/topics/grow/3/junk", f->dir);
    FILE *junk = fopen(p, "w");
    assert_non_null(junk);
    fclose(junk);
    assert_int_equal(broker_topics_add_partitions(f->t, "grow", 4, false, err, sizeof err), 0);
    assert_false(tu_file_exists(p));
    t = broker_topics_find(f->t, "grow", 4);
    assert_int_equal(t->npartitions, 4);
    assert_int_equal(broker_log_leader_epoch(t->partitions[3]), 0);
    assert_int_equal(broker_log_append(t->partitions[3], b.data, b.len, 0, &base, &last), 0);
    core_buf_fini(&b);
    /* the count, old data, new data and configs survive a reopen */
    reopen(f);
    t = broker_topics_find(f->t, "grow", 4);
    assert_int_equal(t->npartitions, 4);
    assert_int_equal(broker_log_high_watermark(t->partitions[1]), 3);
    assert_int_equal(broker_log_high_watermark(t->partitions[2]), 0);
    assert_int_equal(broker_log_high_watermark(t->partitions[3]), 3);
    assert_int_equal(t->conf.retention_ms, 1000);
}

static void test_set_configs_replaces_the_set_applies_live_and_persists(void **state)
{
    fixture_t *f = *state;
    char err[256];
    open_topics(f);
    assert_int_equal(create(f, "cfg", 2, "retention.ms=1000,segment.ms=5000", err, sizeof err), 0);
    const char *k1[] = {"max.message.bytes", "retention.bytes"};
    const char *v1[] = {"100", "7"};
    /* invalid sets change nothing */
    const char *kb[] = {"retention.ms"}, *vb[] = {"x"}, *vn[] = {NULL};
    assert_int_equal(broker_topics_set_configs(f->t, "cfg", kb, vb, 1, false, err, sizeof err),
                     CORE_ERR_INVAL);
    assert_int_equal(broker_topics_set_configs(f->t, "cfg", kb, vn, 1, false, err, sizeof err),
                     CORE_ERR_INVAL);
    assert_int_equal(broker_topics_set_configs(f->t, "nope", k1, v1, 2, false, err, sizeof err),
                     CORE_ERR_NOT_FOUND);
    assert_int_equal(broker_topics_set_configs(f->t, "cfg", k1, v1, 2, true, err, sizeof err), 0);
    broker_topic_t *t = broker_topics_find(f->t, "cfg", 3);
    assert_int_equal(t->conf.retention_ms, 1000); /* validate_only */
    assert_int_equal(broker_topics_set_configs(f->t, "cfg", k1, v1, 2, false, err, sizeof err), 0);
    /* configs not given revert to the defaults; the new ones apply to the logs now */
    assert_int_equal(t->nconfigs, 2);
    assert_int_equal(t->conf.retention_ms, f->defaults.retention_ms);
    assert_int_equal(t->conf.segment_ms, f->defaults.segment_ms);
    assert_int_equal(t->conf.max_message_bytes, 100);
    core_buf_t b;
    core_buf_init(&b);
    bb_simple(&b, 5, 1000, 50); /* > 100 bytes */
    int64_t base, last;
    assert_int_equal(broker_log_append(t->partitions[1], b.data, b.len, 0, &base, &last),
                     CORE_ERR_TOO_LARGE);
    core_buf_fini(&b);
    reopen(f);
    t = broker_topics_find(f->t, "cfg", 3);
    assert_int_equal(t->nconfigs, 2);
    assert_int_equal(t->conf.max_message_bytes, 100);
    assert_int_equal(t->conf.retention_bytes, 7);
    assert_int_equal(t->conf.retention_ms, f->defaults.retention_ms);
}

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

static void test_create_failing_midway_leaves_no_half_topic(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    open_topics(f);
    /* room for a few partitions' files, not for ten */
    struct rlimit old, lim;
    getrlimit(RLIMIT_NOFILE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)count_open_fds() + 10;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
    int rc = create(f, "big", 10, NULL, err, sizeof err);
    setrlimit(RLIMIT_NOFILE, &old);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err, "big"));
    assert_null(broker_topics_find(f->t, "big", 3));
    assert_int_equal(broker_topics_count(f->t), 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/topics/big", f->dir);
    assert_false(tu_file_exists(p));
    assert_int_equal(create(f, "big", 10, NULL, err, sizeof err), 0);
    reopen(f);
    assert_int_equal(broker_topics_find(f->t, "big", 3)->npartitions, 10);
}

static void test_damaged_topic_properties_stop_the_open(void **state)
{
    fixture_t *f = *state;
    char err[256];
    open_topics(f);
    assert_int_equal(create(f, "t", 1, NULL, err, sizeof err), 0);
    broker_topics_close(f->t);
    f->t = NULL;
    char p[4096];
    snprintf(p, sizeof p, "%s/topics/t/topic.properties", f->dir);
    FILE *fp = fopen(p, "w");
    fputs("id=zz\npartitions=1\n", fp);
    fclose(fp);
    assert_int_equal(broker_topics_open(f->dir, &f->defaults, &f->t, err, sizeof err),
                     CORE_ERR_CORRUPT);
    assert_null(f->t);
    assert_non_null(strstr(err, "topic.properties"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_create_find_and_iterate_in_name_order),
        T(test_topic_configs_persist_across_reopen),
        T(test_invalid_topic_names_and_configs_are_rejected),
        T(test_delete_removes_topic_and_survives_reopen),
        T(test_leftovers_of_interrupted_create_and_delete_are_removed),
        T(test_create_failing_midway_leaves_no_half_topic),
        T(test_damaged_topic_properties_stop_the_open),
        T(test_add_partitions_grows_persists_and_replaces_leftovers),
        T(test_set_configs_replaces_the_set_applies_live_and_persists),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
