/*
 * ml ⇄ store: model versions (atomic save, load latest, retention, damage
 * detection) and training-run records (cron arithmetic: tests/core/test_core_cron.c).
 * Uses an embedded RocksDB store in a temp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core_err.h"
#include "ml/als_engine.h"
#include "ml/als_pipeline.h"
#include "ml/als_runs.h"
#include "ml/als_store.h"
#include "storage/store.h"

static char g_dir[256];

static int setup(void **state)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/eddy-test-als-store-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    char url[300], err[256];
    snprintf(url, sizeof(url), "rocksdb:%s", g_dir);
    store_t *s;
    assert_int_equal(store_open(url, NULL, &s, err, sizeof(err)), 0);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    store_close(*state);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static als_model_t *tiny_model(uint64_t seed)
{
    als_obs_t o;
    als_obs_init(&o);
    char u[16], i[16];
    for (int a = 0; a < 20; a++)
        for (int b = 0; b < 15; b++)
            if ((a * 7 + b * 3) % 4 == 0) {
                snprintf(u, sizeof(u), "u%d", a);
                snprintf(i, sizeof(i), "i%d", b);
                als_obs_add(&o, u, strlen(u), i, strlen(i), (float)(1 + (a + b) % 5), a * 100 + b);
            }
    als_engine_t e;
    als_engine_default(&e);
    snprintf(e.app, sizeof(e.app), "shop");
    e.params.rank = 4;
    e.params.iterations = 2;
    e.params.seed = seed;
    als_model_t *m;
    als_train_stats_t st;
    char err[256];
    assert_int_equal(als_pipeline_train(&e, &o, NULL, 1, NULL, NULL, &m, &st, err, sizeof(err)), 0);
    als_obs_fini(&o);
    return m;
}

static void test_saved_models_get_increasing_versions_and_latest_loads(void **state)
{
    store_t *s = *state;
    char err[256];
    als_model_t *m, *got;
    assert_int_equal(als_store_model_load(s, "shop", "default", &got, err, sizeof(err)),
                     CORE_ERR_NOT_FOUND);
    for (int v = 1; v <= 5; v++) {
        m = tiny_model((uint64_t)v);
        assert_int_equal(als_store_model_save(s, m, err, sizeof(err)), 0);
        assert_int_equal(m->version, v);
        assert_int_equal(als_store_model_load(s, "shop", "default", &got, err, sizeof(err)), 0);
        assert_int_equal(got->version, v);
        assert_int_equal(got->params.seed, (uint64_t)v);
        assert_memory_equal(got->V.x, m->V.x, sizeof(float) * m->V.n * m->V.stride);
        als_model_release(got);
        als_model_release(m);
    }
    int64_t latest;
    assert_int_equal(als_store_latest_version(s, "shop", "default", &latest), 0);
    assert_int_equal(latest, 5);
    /* Retention: versions 1 and 2 are gone, 3..5 kept. */
    void *val;
    size_t vl;
    char key[128];
    snprintf(key, sizeof(key), "ml/als/shop/default/v/%020d/meta", 2);
    assert_int_equal(store_kv_get(s, key, strlen(key), &val, &vl), CORE_ERR_NOT_FOUND);
    snprintf(key, sizeof(key), "ml/als/shop/default/v/%020d/c/%06d", 1, 0);
    assert_int_equal(store_kv_get(s, key, strlen(key), &val, &vl), CORE_ERR_NOT_FOUND);
    snprintf(key, sizeof(key), "ml/als/shop/default/v/%020d/meta", 3);
    assert_int_equal(store_kv_get(s, key, strlen(key), &val, &vl), 0);
    free(val);
    /* Another engine id of the same app has its own versions. */
    m = tiny_model(9);
    snprintf(m->engine, sizeof(m->engine), "other");
    assert_int_equal(als_store_model_save(s, m, err, sizeof(err)), 0);
    assert_int_equal(m->version, 1);
    als_model_release(m);
}

static void test_a_damaged_model_chunk_is_refused_not_served(void **state)
{
    store_t *s = *state;
    char err[256], key[128];
    als_model_t *m = tiny_model(1), *got = NULL;
    assert_int_equal(als_store_model_save(s, m, err, sizeof(err)), 0);
    snprintf(key, sizeof(key), "ml/als/shop/default/v/%020lld/c/%06d", (long long)m->version, 0);
    void *val;
    size_t vl;
    assert_int_equal(store_kv_get(s, key, strlen(key), &val, &vl), 0);
    ((uint8_t *)val)[vl / 2] ^= 0x20;
    assert_int_equal(store_kv_put(s, key, strlen(key), val, vl), 0);
    assert_int_equal(als_store_model_load(s, "shop", "default", &got, err, sizeof(err)),
                     CORE_ERR_CORRUPT);
    assert_null(got);
    assert_non_null(strstr(err, "metadata"));
    /* Truncated chunk: also refused. */
    assert_int_equal(store_kv_put(s, key, strlen(key), val, vl - 1), 0);
    assert_int_not_equal(als_store_model_load(s, "shop", "default", &got, err, sizeof(err)), 0);
    free(val);
    als_model_release(m);
}

static void test_runs_list_newest_first_and_keep_metrics(void **state)
{
    store_t *s = *state;
    size_t n;
    for (int j = 0; j < 7; j++) {
        als_run_t r;
        memset(&r, 0, sizeof(r));
        snprintf(r.app, sizeof(r.app), "shop");
        snprintf(r.engine, sizeof(r.engine), "default");
        snprintf(r.trigger, sizeof(r.trigger), "schedule");
        r.start_ms = 1000 + j;
        r.end_ms = 2000 + j;
        r.events = 100 * j;
        r.promoted = j % 2;
        r.version = j;
        r.nmetrics = 1;
        snprintf(r.metrics[0].name, sizeof(r.metrics[0].name), "rmse");
        r.metrics[0].value = 0.9 + j / 100.0;
        assert_int_equal(als_run_record(s, &r), 0);
    }
    als_run_t *runs;
    assert_int_equal(als_run_list(s, "shop", "default", 3, &runs, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(runs[0].start_ms, 1006);
    assert_int_equal(runs[2].start_ms, 1004);
    assert_int_equal(runs[0].events, 600);
    assert_true(!runs[0].promoted && runs[1].promoted);
    assert_string_equal(runs[0].metrics[0].name, "rmse");
    free(runs);
    /* Another engine's runs are not mixed in. */
    assert_int_equal(als_run_list(s, "shop", "other", 3, &runs, &n), 0);
    assert_int_equal(n, 0);
    free(runs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_saved_models_get_increasing_versions_and_latest_loads,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_damaged_model_chunk_is_refused_not_served, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_runs_list_newest_first_and_keep_metrics, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
