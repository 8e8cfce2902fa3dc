/*
 * ALS quality on MovieLens 100K (u1.base → u1.test), or — when the data set
 * is absent — the same checks on generated low-rank data with known factors.
 * Data dir: $EDDY_ML100K, else $EDDY_SOURCE_DIR/../shared/data/ml-100k.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "ml/als.h"
#include "ml/als_data.h"
#include "ml/als_eval.h"

static char g_dir[4096];
static int g_have_ml100k;

static void find_data(void)
{
    const char *env = getenv("EDDY_ML100K");
    const char *src = getenv("EDDY_SOURCE_DIR");
    if (env && *env)
        snprintf(g_dir, sizeof(g_dir), "%s", env);
    else
        snprintf(g_dir, sizeof(g_dir), "%s/../shared/data/ml-100k", src ? src : ".");
    char p[4200];
    struct stat st;
    if (!(env && *env) && stat(g_dir, &st) != 0) /* a worktree sits one level deeper */
        snprintf(g_dir, sizeof(g_dir), "%s/../../shared/data/ml-100k", src ? src : ".");
    snprintf(p, sizeof(p), "%s/u1.base", g_dir);
    g_have_ml100k = stat(p, &st) == 0;
    snprintf(p, sizeof(p), "%s/u1.test", g_dir);
    g_have_ml100k = g_have_ml100k && stat(p, &st) == 0;
    if (!g_have_ml100k)
        printf("# SKIP ml-100k: %s not found; running the same checks on generated "
               "low-rank data\n", g_dir);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

/* Generated data: 600 users × 500 items, true rank 4; each user rates ~8% of
 * items, biased towards items it likes (so ranking has signal). Rating =
 * clamp(3 + 1.2·u·v + noise(σ 0.3), 1, 5). Rows with index ≥ 80% of a user's
 * list go to test (marked by time). */
static void gen_lowrank(als_obs_t *o, uint8_t **sel_out, uint64_t seed)
{
    enum { NU = 600, NI = 500, K = 4 };
    static double U[NU][K], V[NI][K];
    uint64_t s = seed;
    for (int u = 0; u < NU; u++)
        for (int a = 0; a < K; a++)
            U[u][a] = (rng_unit(&s) * 2 - 1);
    for (int i = 0; i < NI; i++)
        for (int a = 0; a < K; a++)
            V[i][a] = (rng_unit(&s) * 2 - 1);
    for (int u = 0; u < NU; u++) {
        for (int i = 0; i < NI; i++) {
            double d = 0;
            for (int a = 0; a < K; a++)
                d += U[u][a] * V[i][a];
            double p = 0.02 + 0.12 * (d > 0.3);
            if (rng_unit(&s) >= p)
                continue;
            double noise = (rng_unit(&s) + rng_unit(&s) + rng_unit(&s) - 1.5) * 0.35;
            double r = 3 + 1.2 * d + noise;
            r = r < 1 ? 1 : r > 5 ? 5 : r;
            char us[16], is[16];
            snprintf(us, sizeof(us), "u%d", u);
            snprintf(is, sizeof(is), "i%d", i);
            als_obs_add(o, us, strlen(us), is, strlen(is), (float)r, (int64_t)(rng_next(&s) % 1000000));
        }
    }
    *sel_out = calloc(o->n, 1);
    als_split_mark(o, ALS_SPLIT_RANDOM, 0.2, seed, *sel_out);
}

static void load(als_obs_t *o, uint8_t **sel)
{
    als_obs_init(o);
    if (!g_have_ml100k) {
        gen_lowrank(o, sel, 7);
        return;
    }
    char p[4200], err[256];
    snprintf(p, sizeof(p), "%s/u1.base", g_dir);
    assert_int_equal(als_load_movielens(o, p, err, sizeof(err)), 0);
    size_t nbase = o->n;
    snprintf(p, sizeof(p), "%s/u1.test", g_dir);
    assert_int_equal(als_load_movielens(o, p, err, sizeof(err)), 0);
    assert_int_equal(nbase, 80000);
    assert_int_equal(o->n, 100000);
    *sel = calloc(o->n, 1);
    for (size_t j = nbase; j < o->n; j++)
        (*sel)[j] = 1;
}

static double env_d(const char *name, double def)
{
    const char *v = getenv(name);
    return v && *v ? atof(v) : def;
}

static void test_explicit_als_reaches_rmse_target_on_holdout(void **state)
{
    (void)state;
    als_obs_t o;
    uint8_t *sel;
    load(&o, &sel);
    als_csr_t tr_ui, tr_iu, te_ui;
    assert_int_equal(als_obs_build_sel(&o, ALS_REDUCE_LATEST, sel, 0, &tr_ui, &tr_iu), 0);
    assert_int_equal(als_obs_build_sel(&o, ALS_REDUCE_LATEST, sel, 1, &te_ui, NULL), 0);
    als_params_t p;
    als_params_default(&p);
    p.rank = (int)env_d("ALS_RANK", p.rank);
    p.lambda = env_d("ALS_LAMBDA", p.lambda);
    p.iterations = (int)env_d("ALS_ITERS", p.iterations);
    als_factors_t U, V;
    char err[256];
    assert_int_equal(als_train(&p, &tr_ui, &tr_iu, &U, &V, NULL, NULL, NULL, err, sizeof(err)), 0);
    als_rating_metrics_t m;
    als_eval_rating(&tr_ui, &tr_iu, &te_ui, &U, &V, &m);
    double target = g_have_ml100k ? 0.93 : 0.45;
    printf("# explicit rank %d lambda %g iters %d: RMSE %.4f MAE %.4f (n %ld, cold %ld), target <= %.2f\n",
           p.rank, p.lambda, p.iterations, m.rmse, m.mae, (long)m.n, (long)m.skipped, target);
    assert_true(m.n > 0);
    assert_true(m.rmse <= target);
    als_factors_fini(&U);
    als_factors_fini(&V);
    als_csr_fini(&tr_ui);
    als_csr_fini(&tr_iu);
    als_csr_fini(&te_ui);
    free(sel);
    als_obs_fini(&o);
}

static void test_implicit_als_beats_most_popular_on_precision_at_10(void **state)
{
    (void)state;
    als_obs_t o;
    uint8_t *sel;
    load(&o, &sel);
    /* Implicit feedback: every rating is one interaction of weight 1. */
    for (size_t j = 0; j < o.n; j++)
        if (!sel[j])
            o.v[j] = 1.0f;
    als_csr_t tr_ui, tr_iu, te_ui;
    assert_int_equal(als_obs_build_sel(&o, ALS_REDUCE_SUM, sel, 0, &tr_ui, &tr_iu), 0);
    assert_int_equal(als_obs_build_sel(&o, ALS_REDUCE_LATEST, sel, 1, &te_ui, NULL), 0);
    als_params_t p;
    als_params_default(&p);
    p.implicit = true;
    p.rank = (int)env_d("ALS_IRANK", p.rank);
    p.lambda = env_d("ALS_ILAMBDA", p.lambda);
    p.alpha = env_d("ALS_IALPHA", p.alpha);
    p.iterations = (int)env_d("ALS_IITERS", p.iterations);
    p.solver = (als_solver_t)(int)env_d("ALS_ISOLVER", ALS_SOLVER_CG);
    als_factors_t U, V;
    char err[256];
    assert_int_equal(als_train(&p, &tr_ui, &tr_iu, &U, &V, NULL, NULL, NULL, err, sizeof(err)), 0);
    als_rank_metrics_t als, pop;
    /* Relevant: rated 4 or 5 in the test set. */
    assert_int_equal(als_eval_ranking(&tr_ui, &tr_iu, &te_ui, &U, &V, 10, 3.5f, 0, &als), 0);
    assert_int_equal(als_eval_ranking(&tr_ui, &tr_iu, &te_ui, NULL, NULL, 10, 3.5f, 0, &pop), 0);
    printf("# implicit rank %d lambda %g alpha %g: P@10 %.4f R@10 %.4f MAP@10 %.4f NDCG@10 %.4f (users %ld)\n",
           p.rank, p.lambda, p.alpha, als.precision, als.recall, als.map, als.ndcg, (long)als.users);
    printf("# most-popular:                 P@10 %.4f R@10 %.4f MAP@10 %.4f NDCG@10 %.4f\n",
           pop.precision, pop.recall, pop.map, pop.ndcg);
    assert_true(als.users > 50);
    /* "A clear margin": at least 20% relative better. */
    assert_true(als.precision >= 1.2 * pop.precision);
    assert_true(als.ndcg > pop.ndcg);
    als_factors_fini(&U);
    als_factors_fini(&V);
    als_csr_fini(&tr_ui);
    als_csr_fini(&tr_iu);
    als_csr_fini(&te_ui);
    free(sel);
    als_obs_fini(&o);
}

int main(void)
{
    find_data();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_explicit_als_reaches_rmse_target_on_holdout),
        cmocka_unit_test(test_implicit_als_beats_most_popular_on_precision_at_10),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
