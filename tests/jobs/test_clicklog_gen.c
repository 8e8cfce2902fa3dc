#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jobs/clicklog/clicklog_gen.h"
#include "jobs/clicklog/clicklog_parse.h"

static void test_every_generated_line_parses(void **state)
{
    clicklog_gen_conf_t gc = {.users = 200, .items = 300, .seed = 7};
    clicklog_gen_t *g = clicklog_gen_new(&gc);
    char line[512], reason[128];
    int64_t prev_ms = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n = clicklog_gen_next(g, line, sizeof line, NULL);
        assert_true(n > 0);
        clicklog_rec_t rec;
        if (clicklog_parse(line, n, &rec, reason, sizeof reason))
            fail_msg("line %d does not parse: %s", i, reason);
        assert_true(rec.ts_ms > prev_ms); /* event time moves forward */
        prev_ms = rec.ts_ms;
        assert_non_null(clicklog_top(&rec, "userid"));
        assert_true(rec.nelems >= 1);
        assert_non_null(clicklog_elem_get(&rec, 0, "item"));
    }
    clicklog_gen_free(g);
}

static void test_same_seed_gives_identical_lines_and_other_seed_differs(void **state)
{
    clicklog_gen_conf_t gc = {.users = 50, .items = 80, .seed = 99};
    clicklog_gen_t *a = clicklog_gen_new(&gc), *b = clicklog_gen_new(&gc);
    gc.seed = 100;
    clicklog_gen_t *c = clicklog_gen_new(&gc);
    char la[512], lb[512], lc[512];
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        size_t na = clicklog_gen_next(a, la, sizeof la, NULL);
        size_t nb = clicklog_gen_next(b, lb, sizeof lb, NULL);
        size_t nc = clicklog_gen_next(c, lc, sizeof lc, NULL);
        assert_int_equal(na, nb);
        assert_memory_equal(la, lb, na);
        differ += na != nc || memcmp(la, lc, na);
    }
    assert_true(differ > 900);
    clicklog_gen_free(a);
    clicklog_gen_free(b);
    clicklog_gen_free(c);
}

static void test_users_mostly_view_items_of_their_genre(void **state)
{
    clicklog_gen_conf_t gc = {.users = 100, .items = 400, .seed = 3};
    clicklog_gen_t *g = clicklog_gen_new(&gc);
    char line[512], reason[128];
    int same = 0, total = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n = clicklog_gen_next(g, line, sizeof line, NULL);
        clicklog_rec_t rec;
        assert_int_equal(clicklog_parse(line, n, &rec, reason, sizeof reason), 0);
        int64_t u = atoll(clicklog_top(&rec, "userid")->p + 1);
        int64_t it = atoll(clicklog_elem_get(&rec, 0, "item")->p + 1);
        same += clicklog_gen_user_genre(g, u) == clicklog_gen_item_genre(g, it);
        total++;
    }
    /* 0.75 preferred + 0.25 * 1/8 by chance = about 0.78 */
    assert_true(same > total * 0.70 && same < total * 0.86);
    clicklog_gen_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_generated_line_parses),
        cmocka_unit_test(test_same_seed_gives_identical_lines_and_other_seed_differs),
        cmocka_unit_test(test_users_mostly_view_items_of_their_genre),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
