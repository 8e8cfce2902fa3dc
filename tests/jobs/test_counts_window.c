/* counts_window: window assignment, watermark, lateness, exact emission,
 * and state round trips (the restart path of the counts job). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jobs/counts/counts_window.h"

#define MIN 60000

static const cw_conf_t CONF = {.tumbling_ms = MIN, .sliding_ms = 5 * MIN,
                               .slide_every_ms = MIN, .lateness_ms = 10000};

typedef struct got {
    cw_result_t r[256];
    char names[256][2][32];
    int n;
} got_t;

static int collect(void *opaque, const cw_result_t *r)
{
    got_t *g = opaque;
    assert_true(g->n < 256);
    g->r[g->n] = *r;
    snprintf(g->names[g->n][0], 32, "%s", r->user);
    snprintf(g->names[g->n][1], 32, "%s", r->event);
    g->r[g->n].user = g->names[g->n][0];
    g->r[g->n].event = g->names[g->n][1];
    g->n++;
    return 0;
}

static void test_conf_check_rejects_bad_sizes(void **state)
{
    (void)state;
    assert_int_equal(cw_conf_check(&CONF), CW_OK);
    cw_conf_t c = {0};
    assert_int_equal(cw_conf_check(&c), CW_EINVAL); /* no kind at all */
    c = CONF;
    c.slide_every_ms = 0;
    assert_int_equal(cw_conf_check(&c), CW_EINVAL);
    c.slide_every_ms = 7000; /* does not divide 5 min */
    assert_int_equal(cw_conf_check(&c), CW_EINVAL);
    c = CONF;
    c.lateness_ms = -1;
    assert_int_equal(cw_conf_check(&c), CW_EINVAL);
    c = (cw_conf_t){.tumbling_ms = MIN};
    assert_int_equal(cw_conf_check(&c), CW_OK);
}

static void test_assign_gives_one_tumbling_and_size_over_slide_sliding_windows(void **state)
{
    (void)state;
    cw_window_t w[16];
    int n = cw_assign(&CONF, 7 * MIN + 5, w, 16);
    assert_int_equal(n, 6);
    assert_int_equal(w[0].kind, CW_TUMBLING);
    assert_int_equal(w[0].start, 7 * MIN);
    assert_int_equal(w[0].end, 8 * MIN);
    for (int i = 1; i < 6; i++) {
        assert_int_equal(w[i].kind, CW_SLIDING);
        assert_int_equal(w[i].start, (3 + i - 1) * MIN);
        assert_int_equal(w[i].end, w[i].start + 5 * MIN);
        assert_true(w[i].start <= 7 * MIN + 5 && 7 * MIN + 5 < w[i].end);
    }
    /* window bounds are half-open: a record at the end belongs to the next */
    n = cw_assign(&CONF, 8 * MIN, w, 16);
    assert_int_equal(w[0].start, 8 * MIN);
    /* negative times floor correctly */
    n = cw_assign(&CONF, -1, w, 16);
    assert_int_equal(w[0].start, -MIN);
    assert_int_equal(w[0].end, 0);
}

static void test_window_is_reported_once_when_watermark_passes_its_end(void **state)
{
    (void)state;
    cw_conf_t c = {.tumbling_ms = MIN, .lateness_ms = 10000};
    cw_t *w = cw_new(&c);
    int dropped;
    assert_int_equal(cw_add(w, "u1", "view", 1000, &dropped), CW_OK);
    assert_int_equal(cw_add(w, "u1", "view", 2000, &dropped), CW_OK);
    assert_int_equal(cw_add(w, "u2", "buy", 3000, &dropped), CW_OK);
    got_t g = {0};
    assert_int_equal(cw_emit_closed(w, collect, &g), 0);
    assert_int_equal(g.n, 0); /* watermark -7 s: nothing closed */
    /* 69.999 s - 10 s < 60 s: the first window is still open */
    assert_int_equal(cw_add(w, "u1", "view", MIN + 9999, &dropped), CW_OK);
    assert_int_equal(cw_emit_closed(w, collect, &g), 0);
    assert_int_equal(g.n, 0);
    /* watermark reaches the end exactly: closed */
    assert_int_equal(cw_add(w, "u3", "view", MIN + 10000, &dropped), CW_OK);
    assert_int_equal(cw_emit_closed(w, collect, &g), 0);
    assert_int_equal(g.n, 2);
    /* ordered by (end, kind, user, event) */
    assert_string_equal(g.r[0].user, "u1");
    assert_string_equal(g.r[0].event, "view");
    assert_int_equal(g.r[0].count, 2);
    assert_int_equal(g.r[0].start, 0);
    assert_int_equal(g.r[0].end, MIN);
    assert_string_equal(g.r[1].user, "u2");
    assert_int_equal(g.r[1].count, 1);
    /* never twice */
    g.n = 0;
    assert_int_equal(cw_emit_closed(w, collect, &g), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(cw_open_count(w), 2);
    cw_free(w);
}

static void test_record_within_lateness_is_counted_and_beyond_it_is_late(void **state)
{
    (void)state;
    cw_conf_t c = {.tumbling_ms = MIN, .lateness_ms = 10000};
    cw_t *w = cw_new(&c);
    int dropped;
    assert_int_equal(cw_add(w, "u", "view", MIN + 5000, &dropped), CW_OK);
    /* out of order by 6 s, window [0,60s) still open (watermark 55 s) */
    assert_int_equal(cw_add(w, "u", "view", 59000, &dropped), CW_OK);
    assert_int_equal(dropped, 0);
    assert_int_equal(cw_add(w, "u", "view", 2 * MIN, &dropped), CW_OK); /* watermark 110 s */
    got_t g = {0};
    assert_int_equal(cw_emit_closed(w, collect, &g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.r[0].count, 1);
    /* a record for the closed window is late: not counted, window not reopened */
    assert_int_equal(cw_add(w, "u", "view", 30000, &dropped), CW_ELATE);
    assert_int_equal(dropped, 1);
    g.n = 0;
    assert_int_equal(cw_add(w, "u", "view", 10 * MIN, &dropped), CW_OK);
    assert_int_equal(cw_emit_closed(w, collect, &g), 0);
    assert_int_equal(g.n, 2); /* [60,120) with 1 and [120,180) with 1; no [0,60) again */
    assert_int_equal(g.r[0].start, MIN);
    assert_int_equal(g.r[0].count, 1);
    assert_int_equal(g.r[1].start, 2 * MIN);
    cw_free(w);
}

static void test_sliding_record_late_for_some_windows_counts_in_the_open_ones(void **state)
{
    (void)state;
    cw_conf_t c = {.sliding_ms = 3 * MIN, .slide_every_ms = MIN};
    cw_t *w = cw_new(&c);
    int dropped;
    assert_int_equal(cw_add(w, "u", "e", 5 * MIN, &dropped), CW_OK); /* watermark 5 min */
    /* ts 3.5 min: windows start 1,2,3 min -> ends 4,5,6 min; 4 and 5 are closed */
    assert_int_equal(cw_add(w, "u", "e", 3 * MIN + 30000, &dropped), CW_OK);
    assert_int_equal(dropped, 2);
    got_t g = {0};
    assert_int_equal(cw_add(w, "u", "e", 100 * MIN, &dropped), CW_OK);
    assert_int_equal(cw_emit_closed(w, collect, &g), 0);
    int64_t total = 0;
    for (int i = 0; i < g.n; i++) {
        total += g.r[i].count;
        if (g.r[i].start == 3 * MIN)
            assert_int_equal(g.r[i].count, 2);
    }
    assert_int_equal(total, 3 + 1); /* 3 windows of the first, 1 of the second */
    cw_free(w);
}

static void test_state_round_trip_continues_exactly(void **state)
{
    (void)state;
    /* Feeding records in two halves with a save/load in between (a restart)
     * gives the same reports as feeding them in one go. */
    cw_t *a = cw_new(&CONF), *b = cw_new(&CONF);
    got_t ga = {0}, gb = {0};
    int dropped;
    const char *users[] = {"u1", "u2", "u3"}, *events[] = {"view", "buy"};
    for (int i = 0; i < 60; i++) {
        int64_t ts = (int64_t)i * 17000 + (i % 5) * 3000;
        cw_add(a, users[i % 3], events[i % 2], ts, &dropped);
        cw_add(b, users[i % 3], events[i % 2], ts, &dropped);
        if (i == 29) {
            uint8_t *blob;
            size_t len;
            assert_int_equal(cw_emit_closed(b, collect, &gb), 0);
            assert_int_equal(cw_save(b, &blob, &len), CW_OK);
            cw_free(b);
            b = cw_new(&CONF);
            assert_int_equal(cw_load(b, blob, len), CW_OK);
            free(blob);
        }
    }
    cw_add(a, "z", "view", 1000 * MIN, &dropped);
    cw_add(b, "z", "view", 1000 * MIN, &dropped);
    assert_int_equal(cw_emit_closed(a, collect, &ga), 0);
    assert_int_equal(cw_emit_closed(b, collect, &gb), 0);
    assert_int_equal(ga.n, gb.n);
    int64_t ta = 0, tb = 0;
    for (int i = 0; i < ga.n; i++) {
        ta += ga.r[i].count;
        tb += gb.r[i].count;
    }
    assert_int_equal(ta, tb);
    assert_int_equal(ta, 60 * 6); /* every record in 1 tumbling + 5 sliding windows */
    cw_free(a);
    cw_free(b);
}

static void test_load_rejects_every_truncation_and_bad_fields(void **state)
{
    (void)state;
    cw_t *w = cw_new(&CONF);
    int dropped;
    cw_add(w, "user", "view", 5000, &dropped);
    uint8_t *blob;
    size_t len;
    assert_int_equal(cw_save(w, &blob, &len), CW_OK);
    cw_t *x = cw_new(&CONF);
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(cw_load(x, blob, cut), CW_ECORRUPT);
    assert_int_equal(cw_load(x, blob, len), CW_OK);
    assert_int_equal(cw_open_count(x), 6);
    assert_int_equal(cw_watermark(x), 5000 - 10000);
    uint8_t *bad = malloc(len + 1);
    memcpy(bad, blob, len);
    bad[0] ^= 1; /* magic */
    assert_int_equal(cw_load(x, bad, len), CW_ECORRUPT);
    assert_int_equal(cw_open_count(x), 0);
    memcpy(bad, blob, len);
    bad[20] = 9; /* kind of the first window */
    assert_int_equal(cw_load(x, bad, len), CW_ECORRUPT);
    memcpy(bad, blob, len);
    bad[len] = 0; /* trailing byte */
    assert_int_equal(cw_load(x, bad, len + 1), CW_ECORRUPT);
    memcpy(bad, blob, len);
    bad[12] = 0xff; /* huge window count */
    assert_int_equal(cw_load(x, bad, len), CW_ECORRUPT);
    free(bad);
    free(blob);
    cw_free(w);
    cw_free(x);
}

/* A record's time is any int64 a producer wrote, and a state blob any bytes:
 * times near the int64 ends used to overflow the window and watermark
 * arithmetic (found by fuzz_counts_state under -fno-sanitize-recover). */
static void test_times_beyond_the_limit_are_refused_not_overflowed(void **state)
{
    (void)state;
    cw_t *w = cw_new(&CONF);
    int dropped;
    assert_int_equal(cw_add(w, "u", "view", INT64_MIN + 3, &dropped), CW_EINVAL);
    assert_int_equal(cw_add(w, "u", "view", INT64_MAX, &dropped), CW_EINVAL);
    assert_int_equal(cw_add(w, "u", "view", CW_TIME_MAX + 1, &dropped), CW_EINVAL);
    assert_int_equal(cw_open_count(w), 0);
    assert_int_equal(cw_watermark(w), CW_NO_TIME);
    /* the extremes allowed work, with the exact windows */
    assert_int_equal(cw_add(w, "u", "view", -CW_TIME_MAX, &dropped), CW_OK);
    assert_int_equal(cw_watermark(w), -CW_TIME_MAX - CONF.lateness_ms);
    assert_int_equal(cw_add(w, "u", "view", CW_TIME_MAX, &dropped), CW_OK);
    assert_int_equal(cw_watermark(w), CW_TIME_MAX - CONF.lateness_ms);
    /* a saved state whose max time is out of range does not load */
    uint8_t *blob;
    size_t len;
    assert_int_equal(cw_save(w, &blob, &len), CW_OK);
    cw_t *x = cw_new(&CONF);
    assert_int_equal(cw_load(x, blob, len), CW_OK);
    uint64_t bad_ts = (uint64_t)INT64_MIN + 3;
    for (int i = 0; i < 8; i++) /* the blob is little-endian; max time follows the magic */
        blob[4 + i] = (uint8_t)(bad_ts >> (8 * i));
    assert_int_equal(cw_load(x, blob, len), CW_ECORRUPT);
    cw_conf_t c = CONF;
    c.lateness_ms = INT64_MAX;
    assert_int_equal(cw_conf_check(&c), CW_EINVAL);
    free(blob);
    cw_free(w);
    cw_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_check_rejects_bad_sizes),
        cmocka_unit_test(test_assign_gives_one_tumbling_and_size_over_slide_sliding_windows),
        cmocka_unit_test(test_window_is_reported_once_when_watermark_passes_its_end),
        cmocka_unit_test(test_record_within_lateness_is_counted_and_beyond_it_is_late),
        cmocka_unit_test(test_sliding_record_late_for_some_windows_counts_in_the_open_ones),
        cmocka_unit_test(test_state_round_trip_continues_exactly),
        cmocka_unit_test(test_load_rejects_every_truncation_and_bad_fields),
        cmocka_unit_test(test_times_beyond_the_limit_are_refused_not_overflowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
