/*
 * ALS core: solvers against a dense reference, monotone objectives, CG vs
 * Cholesky, determinism across thread counts, id maps, duplicate reduction,
 * splits and metrics on hand-computed cases. Randomised cases print their
 * seed on failure (TEST_SEED overrides it).
 */
#include <float.h>
#include <math.h>
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
#include "ml/als.h"
#include "ml/als_data.h"
#include "ml/als_eval.h"
#include "core/core_buf.h"
#include "core/core_crc.h"
#include "ml/als_engine.h"
#include "ml/als_model.h"
#include "ml/als_pipeline.h"
#include "ml/als_query.h"
#include "ml/als_score.h"

static uint64_t g_seed = 12345;

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

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond))                                                                     \
            fail_msg("%s (seed %llu)", #cond, (unsigned long long)g_seed);                \
    } while (0)

/* Random sparse ratings nu × ni with density d, values 1..5 (explicit) or
 * counts 1..3 (implicit). Every row and column gets at least one entry. */
static void random_obs(als_obs_t *o, int nu, int ni, double d, int implicit, uint64_t seed)
{
    uint64_t s = seed;
    als_obs_init(o);
    char a[16], b[16];
    for (int u = 0; u < nu; u++) {
        snprintf(a, sizeof(a), "u%d", u);
        als_idmap_intern(&o->users, a, strlen(a));
    }
    for (int i = 0; i < ni; i++) {
        snprintf(b, sizeof(b), "i%d", i);
        als_idmap_intern(&o->items, b, strlen(b));
    }
    for (int u = 0; u < nu; u++)
        for (int i = 0; i < ni; i++)
            if (rng_unit(&s) < d || i == u % ni || u == i % nu) {
                float v = implicit ? (float)(1 + rng_next(&s) % 3) : (float)(1 + rng_next(&s) % 5);
                als_obs_add_ids(o, u, i, v, (int64_t)u * 1000 + i);
            }
}

/* Gaussian elimination with partial pivoting on a dense n×n system. */
static void dense_solve(double *A, double *b, int n)
{
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r * n + c]) > fabs(A[piv * n + c]))
                piv = r;
        for (int j = 0; j < n; j++) {
            double t = A[c * n + j];
            A[c * n + j] = A[piv * n + j];
            A[piv * n + j] = t;
        }
        double t = b[c];
        b[c] = b[piv];
        b[piv] = t;
        for (int r = c + 1; r < n; r++) {
            double f = A[r * n + c] / A[c * n + c];
            for (int j = c; j < n; j++)
                A[r * n + j] -= f * A[c * n + j];
            b[r] -= f * b[c];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double s = b[r];
        for (int j = r + 1; j < n; j++)
            s -= A[r * n + j] * b[j];
        b[r] = s / A[r * n + r];
    }
}

/* Dense matrix of a CSR (0 where absent) plus a presence mask. */
static void densify(const als_csr_t *m, double *R, int *P)
{
    memset(R, 0, sizeof(double) * m->nrows * m->ncols);
    memset(P, 0, sizeof(int) * m->nrows * m->ncols);
    for (int r = 0; r < m->nrows; r++)
        for (int64_t e = m->ptr[r]; e < m->ptr[r + 1]; e++) {
            R[r * m->ncols + m->idx[e]] = m->val[e];
            P[r * m->ncols + m->idx[e]] = 1;
        }
}

/* Reference half-sweep straight from the definitions (no YᵀY trick, no
 * sparse tricks): for every row, the full normal equations over ALL columns. */
static void reference_half_sweep(const als_params_t *p, const als_csr_t *rows,
                                 const als_factors_t *fixed, double *out /* nrows×k */)
{
    const int k = p->rank, nr = rows->nrows, nc = rows->ncols;
    double *R = malloc(sizeof(double) * nr * nc);
    int *P = malloc(sizeof(int) * nr * nc);
    densify(rows, R, P);
    double *A = malloc(sizeof(double) * k * k), *b = malloc(sizeof(double) * k);
    for (int r = 0; r < nr; r++) {
        int n = 0;
        memset(A, 0, sizeof(double) * k * k);
        memset(b, 0, sizeof(double) * k);
        for (int c = 0; c < nc; c++) {
            double conf, pref;
            if (p->implicit) {
                conf = P[r * nc + c] ? 1 + p->alpha * fabs(R[r * nc + c]) : 1;
                pref = P[r * nc + c] && R[r * nc + c] > 0;
            } else {
                if (!P[r * nc + c])
                    continue;
                conf = 1;
                pref = R[r * nc + c];
            }
            n += P[r * nc + c];
            const float *y = als_row(fixed, c);
            for (int a = 0; a < k; a++) {
                for (int d = 0; d < k; d++)
                    A[a * k + d] += conf * y[a] * y[d];
                b[a] += conf * pref * y[a];
            }
        }
        for (int a = 0; a < k; a++)
            A[a * k + a] += p->lambda * n;
        dense_solve(A, b, k);
        memcpy(out + r * k, b, sizeof(double) * k);
    }
    free(A);
    free(b);
    free(R);
    free(P);
}

/* Objective from its definition, dense. */
static double reference_loss(const als_params_t *p, const als_csr_t *ui, const als_factors_t *U,
                             const als_factors_t *V)
{
    const int nu = ui->nrows, ni = ui->ncols, k = p->rank;
    double *R = malloc(sizeof(double) * nu * ni);
    int *P = malloc(sizeof(int) * nu * ni);
    densify(ui, R, P);
    double loss = 0;
    int *nu_cnt = calloc(nu, sizeof(int)), *ni_cnt = calloc(ni, sizeof(int));
    for (int u = 0; u < nu; u++)
        for (int i = 0; i < ni; i++) {
            double s = 0;
            for (int a = 0; a < k; a++)
                s += (double)als_row(U, u)[a] * als_row(V, i)[a];
            if (P[u * ni + i]) {
                nu_cnt[u]++;
                ni_cnt[i]++;
            }
            if (p->implicit) {
                double c = P[u * ni + i] ? 1 + p->alpha * fabs(R[u * ni + i]) : 1;
                double pr = P[u * ni + i] && R[u * ni + i] > 0;
                loss += c * (pr - s) * (pr - s);
            } else if (P[u * ni + i]) {
                loss += (R[u * ni + i] - s) * (R[u * ni + i] - s);
            }
        }
    for (int u = 0; u < nu; u++)
        for (int a = 0; a < k; a++)
            loss += p->lambda * nu_cnt[u] * als_row(U, u)[a] * als_row(U, u)[a];
    for (int i = 0; i < ni; i++)
        for (int a = 0; a < k; a++)
            loss += p->lambda * ni_cnt[i] * als_row(V, i)[a] * als_row(V, i)[a];
    free(R);
    free(P);
    free(nu_cnt);
    free(ni_cnt);
    return loss;
}

static void build(als_obs_t *o, als_reduce_t how, als_csr_t *ui, als_csr_t *iu)
{
    assert_int_equal(als_obs_build(o, how, ui, iu), 0);
}

/* ---- dense kernels ---------------------------------------------------------- */

static void test_cholesky_solves_spd_systems_like_gaussian_elimination(void **state)
{
    (void)state;
    uint64_t s = g_seed;
    for (int k = 1; k <= 40; k += 3) {
        double *M = malloc(sizeof(double) * k * k), *A = malloc(sizeof(double) * k * k);
        double *A2 = malloc(sizeof(double) * k * k), *b = malloc(sizeof(double) * k);
        double *b2 = malloc(sizeof(double) * k);
        for (int j = 0; j < k * k; j++)
            M[j] = rng_unit(&s) * 2 - 1;
        for (int r = 0; r < k; r++)
            for (int c = 0; c < k; c++) {
                double t = r == c ? 0.5 : 0;
                for (int j = 0; j < k; j++)
                    t += M[r * k + j] * M[c * k + j];
                A[r * k + c] = A2[r * k + c] = t;
            }
        for (int j = 0; j < k; j++)
            b[j] = b2[j] = rng_unit(&s);
        assert_int_equal(als_chol_solve(A, b, k), 0);
        dense_solve(A2, b2, k);
        for (int j = 0; j < k; j++)
            CHECK(fabs(b[j] - b2[j]) <= 1e-8 * (1 + fabs(b2[j])));
        free(M);
        free(A);
        free(A2);
        free(b);
        free(b2);
    }
}

static void test_cholesky_reports_a_matrix_that_is_not_positive_definite(void **state)
{
    (void)state;
    double A[4] = {1, 2, 2, 1}, b[2] = {1, 1};
    assert_int_equal(als_chol_solve(A, b, 2), -1);
}

/* ---- half sweeps against the dense reference --------------------------------- */

static void half_sweep_matches_reference_rank(int implicit, als_solver_t solver, int rank)
{
    als_obs_t o;
    /* Rows with more ratings than a Gram block (256) at the larger rank. */
    if (rank > 8)
        random_obs(&o, 12, 300, 0.9, implicit, g_seed);
    else
        random_obs(&o, 9, 7, 0.35, implicit, g_seed);
    als_csr_t ui, iu;
    build(&o, ALS_REDUCE_LATEST, &ui, &iu);
    als_params_t p;
    als_params_default(&p);
    p.rank = rank;
    p.lambda = 0.3;
    p.alpha = 2.0;
    p.implicit = implicit;
    p.solver = solver;
    p.cg_steps = p.rank * 3; /* enough for CG to converge on a k×k system */
    als_factors_t U, V;
    assert_int_equal(als_factors_init(&U, ui.nrows, p.rank), 0);
    assert_int_equal(als_factors_init(&V, ui.ncols, p.rank), 0);
    als_factors_randomize(&U, 1, 1);
    als_factors_randomize(&V, 1, 2);
    double *ref = malloc(sizeof(double) * ui.nrows * p.rank);
    reference_half_sweep(&p, &ui, &V, ref);
    assert_int_equal(als_half_sweep(&p, &ui, &V, &U), 0);
    for (int u = 0; u < ui.nrows; u++)
        for (int a = 0; a < p.rank; a++)
            CHECK(fabs(als_row(&U, u)[a] - ref[u * p.rank + a]) <= 1e-4 * (1 + fabs(ref[u * p.rank + a])));
    /* Padding stays zero. */
    for (int u = 0; u < ui.nrows; u++)
        for (int a = p.rank; a < U.stride; a++)
            assert_true(als_row(&U, u)[a] == 0.0f);
    free(ref);
    als_factors_fini(&U);
    als_factors_fini(&V);
    als_csr_fini(&ui);
    als_csr_fini(&iu);
    als_obs_fini(&o);
}

static void half_sweep_matches_reference(int implicit, als_solver_t solver)
{
    half_sweep_matches_reference_rank(implicit, solver, 4);
}

/* Rank ≥ 6 solves with LAPACK's dposv instead of our Cholesky, and rows
 * longer than 256 ratings take several dsyrk blocks. */
static void test_explicit_blas_lapack_half_sweep_matches_dense_reference(void **state)
{
    (void)state;
    half_sweep_matches_reference_rank(0, ALS_SOLVER_CHOLESKY, 24);
}
static void test_implicit_blas_lapack_half_sweep_matches_dense_reference(void **state)
{
    (void)state;
    half_sweep_matches_reference_rank(1, ALS_SOLVER_CHOLESKY, 24);
}

static void test_explicit_cholesky_half_sweep_matches_dense_reference(void **state)
{
    (void)state;
    half_sweep_matches_reference(0, ALS_SOLVER_CHOLESKY);
}
static void test_implicit_cholesky_half_sweep_matches_dense_reference(void **state)
{
    (void)state;
    half_sweep_matches_reference(1, ALS_SOLVER_CHOLESKY);
}
static void test_implicit_cg_half_sweep_converges_to_dense_reference(void **state)
{
    (void)state;
    half_sweep_matches_reference(1, ALS_SOLVER_CG);
}
static void test_explicit_cg_half_sweep_converges_to_dense_reference(void **state)
{
    (void)state;
    half_sweep_matches_reference(0, ALS_SOLVER_CG);
}

/* ---- objectives --------------------------------------------------------------- */

static void objective_decreases(int implicit, als_solver_t solver)
{
    als_obs_t o;
    random_obs(&o, 60, 45, 0.15, implicit, g_seed);
    als_csr_t ui, iu;
    build(&o, implicit ? ALS_REDUCE_SUM : ALS_REDUCE_LATEST, &ui, &iu);
    als_params_t p;
    als_params_default(&p);
    p.rank = 6;
    p.iterations = 12;
    p.lambda = 0.05;
    p.implicit = implicit;
    p.solver = solver;
    p.alpha = 3;
    als_factors_t U, V;
    double loss[12];
    char err[128];
    assert_int_equal(als_train(&p, &ui, &iu, &U, &V, loss, NULL, NULL, err, sizeof(err)), 0);
    for (int it = 1; it < p.iterations; it++) {
        if (!(loss[it] <= loss[it - 1] * (1 + 1e-6)))
            fail_msg("iteration %d: loss %.9g > %.9g (seed %llu)", it + 1, loss[it], loss[it - 1],
                     (unsigned long long)g_seed);
    }
    CHECK(loss[p.iterations - 1] < loss[0]);
    /* The sparse objective (YᵀY trick) equals its dense definition. */
    double ref = reference_loss(&p, &ui, &U, &V);
    CHECK(fabs(ref - loss[p.iterations - 1]) <= 1e-6 * fabs(ref) + 1e-6);
    als_factors_fini(&U);
    als_factors_fini(&V);
    als_csr_fini(&ui);
    als_csr_fini(&iu);
    als_obs_fini(&o);
}

static void test_explicit_objective_decreases_every_iteration(void **state)
{
    (void)state;
    objective_decreases(0, ALS_SOLVER_CHOLESKY);
}
static void test_implicit_objective_decreases_every_iteration_cholesky(void **state)
{
    (void)state;
    objective_decreases(1, ALS_SOLVER_CHOLESKY);
}
static void test_implicit_objective_decreases_every_iteration_cg(void **state)
{
    (void)state;
    objective_decreases(1, ALS_SOLVER_CG);
}

static void test_cg_training_matches_cholesky_within_tolerance(void **state)
{
    (void)state;
    als_obs_t o;
    random_obs(&o, 80, 60, 0.1, 1, g_seed);
    als_csr_t ui, iu;
    build(&o, ALS_REDUCE_SUM, &ui, &iu);
    als_params_t p;
    als_params_default(&p);
    p.rank = 8;
    p.iterations = 15;
    p.implicit = true;
    als_factors_t U1, V1, U2, V2;
    double l1[15], l2[15];
    char err[128];
    assert_int_equal(als_train(&p, &ui, &iu, &U1, &V1, l1, NULL, NULL, err, sizeof(err)), 0);
    p.solver = ALS_SOLVER_CG;
    p.cg_steps = 3;
    assert_int_equal(als_train(&p, &ui, &iu, &U2, &V2, l2, NULL, NULL, err, sizeof(err)), 0);
    /* Few warm-started CG steps per sweep end within 1% of the exact solver. */
    CHECK(fabs(l1[14] - l2[14]) <= 0.01 * l1[14]);
    /* And predictions agree. */
    double diff = 0, norm = 0;
    for (int u = 0; u < ui.nrows; u++)
        for (int i = 0; i < ui.ncols; i++) {
            double a = als_dot(als_row(&U1, u), als_row(&V1, i), U1.stride);
            double b = als_dot(als_row(&U2, u), als_row(&V2, i), U2.stride);
            diff += (a - b) * (a - b);
            norm += a * a;
        }
    CHECK(sqrt(diff / norm) < 0.05);
    als_factors_fini(&U1);
    als_factors_fini(&V1);
    als_factors_fini(&U2);
    als_factors_fini(&V2);
    als_csr_fini(&ui);
    als_csr_fini(&iu);
    als_obs_fini(&o);
}

static void test_training_is_bit_identical_for_any_thread_count(void **state)
{
    (void)state;
    als_obs_t o;
    /* Enough rows that the reductions span several chunks. */
    random_obs(&o, 2600, 1300, 0.01, 1, g_seed);
    als_csr_t ui, iu;
    build(&o, ALS_REDUCE_SUM, &ui, &iu);
    for (int mode = 0; mode < 3; mode++) {
        als_params_t p;
        als_params_default(&p);
        p.rank = mode == 1 ? 4 : 7; /* 4: our Cholesky; 7: LAPACK's dposv */
        p.iterations = 3;
        p.implicit = mode > 0;
        p.solver = mode == 2 ? ALS_SOLVER_CG : ALS_SOLVER_CHOLESKY;
        als_factors_t U[3], V[3];
        double loss[3][3];
        char err[128];
        int threads[3] = {1, 2, 3};
        for (int t = 0; t < 3; t++) {
            p.threads = threads[t];
            assert_int_equal(als_train(&p, &ui, &iu, &U[t], &V[t], loss[t], NULL, NULL, err,
                                       sizeof(err)), 0);
        }
        for (int t = 1; t < 3; t++) {
            assert_memory_equal(U[0].x, U[t].x, sizeof(float) * U[0].n * U[0].stride);
            assert_memory_equal(V[0].x, V[t].x, sizeof(float) * V[0].n * V[0].stride);
            assert_memory_equal(loss[0], loss[t], sizeof(loss[0]));
        }
        for (int t = 0; t < 3; t++) {
            als_factors_fini(&U[t]);
            als_factors_fini(&V[t]);
        }
    }
    als_csr_fini(&ui);
    als_csr_fini(&iu);
    als_obs_fini(&o);
}

static void test_different_seeds_give_different_factors(void **state)
{
    (void)state;
    als_obs_t o;
    random_obs(&o, 30, 20, 0.2, 0, g_seed);
    als_csr_t ui, iu;
    build(&o, ALS_REDUCE_LATEST, &ui, &iu);
    als_params_t p;
    als_params_default(&p);
    p.rank = 4;
    p.iterations = 2;
    als_factors_t U1, V1, U2, V2;
    char err[128];
    assert_int_equal(als_train(&p, &ui, &iu, &U1, &V1, NULL, NULL, NULL, err, sizeof(err)), 0);
    p.seed++;
    assert_int_equal(als_train(&p, &ui, &iu, &U2, &V2, NULL, NULL, NULL, err, sizeof(err)), 0);
    assert_memory_not_equal(U1.x, U2.x, sizeof(float) * U1.n * U1.stride);
    als_factors_fini(&U1);
    als_factors_fini(&V1);
    als_factors_fini(&U2);
    als_factors_fini(&V2);
    als_csr_fini(&ui);
    als_csr_fini(&iu);
    als_obs_fini(&o);
}

static void test_params_out_of_range_are_rejected(void **state)
{
    (void)state;
    als_params_t p;
    char err[128];
    als_params_default(&p);
    assert_int_equal(als_params_check(&p, err, sizeof(err)), 0);
    p.rank = 0;
    assert_int_not_equal(als_params_check(&p, err, sizeof(err)), 0);
    als_params_default(&p);
    p.lambda = NAN;
    assert_int_not_equal(als_params_check(&p, err, sizeof(err)), 0);
    als_params_default(&p);
    p.rank = ALS_MAX_RANK + 1;
    assert_int_not_equal(als_params_check(&p, err, sizeof(err)), 0);
}

/* ---- data --------------------------------------------------------------------- */

static void test_idmap_interns_ids_densely_in_first_seen_order(void **state)
{
    (void)state;
    als_idmap_t m;
    als_idmap_init(&m);
    char id[32];
    for (int j = 0; j < 5000; j++) {
        snprintf(id, sizeof(id), "id-%d", j);
        assert_int_equal(als_idmap_intern(&m, id, strlen(id)), j);
    }
    for (int j = 4999; j >= 0; j--) {
        snprintf(id, sizeof(id), "id-%d", j);
        assert_int_equal(als_idmap_find(&m, id, strlen(id)), j);
        assert_int_equal(als_idmap_intern(&m, id, strlen(id)), j);
        assert_string_equal(als_idmap_name(&m, j), id);
    }
    assert_int_equal(als_idmap_find(&m, "nope", 4), -1);
    /* Found by fuzz_model: an id with a NUL inside was stored shorter than
     * its length and later compared past its end. */
    assert_int_equal(als_idmap_intern(&m, "ab\0cd", 5), -1);
    /* Length is part of the key: "id-1" is not a prefix match of "id-12". */
    assert_int_equal(als_idmap_find(&m, "id-12", 4), 1);
    assert_int_equal(m.n, 5000);
    char big[ALS_MAX_ID_LEN + 2];
    memset(big, 'x', sizeof(big));
    assert_int_equal(als_idmap_intern(&m, big, sizeof(big)), -1);
    als_idmap_fini(&m);
}

static void test_latest_rating_per_user_item_wins_by_event_time(void **state)
{
    (void)state;
    als_obs_t o;
    als_obs_init(&o);
    /* Added out of time order; the value with the largest time wins. */
    assert_int_equal(als_obs_add(&o, "u1", 2, "a", 1, 5.0f, 300), 0);
    assert_int_equal(als_obs_add(&o, "u1", 2, "a", 1, 1.0f, 100), 0);
    assert_int_equal(als_obs_add(&o, "u1", 2, "b", 1, 2.0f, 100), 0);
    assert_int_equal(als_obs_add(&o, "u2", 2, "a", 1, 4.0f, 50), 0);
    assert_int_equal(als_obs_add(&o, "u1", 2, "a", 1, 3.0f, 200), 0);
    /* Equal times: the one added last wins. */
    assert_int_equal(als_obs_add(&o, "u2", 2, "b", 1, 1.0f, 70), 0);
    assert_int_equal(als_obs_add(&o, "u2", 2, "b", 1, 2.5f, 70), 0);
    als_csr_t ui, iu;
    build(&o, ALS_REDUCE_LATEST, &ui, &iu);
    assert_int_equal(ui.nrows, 2);
    assert_int_equal(ui.ncols, 2);
    assert_int_equal(ui.nnz, 4);
    /* u1 (0): a(0)=5, b(1)=2; u2 (1): a=4, b=2.5 */
    assert_int_equal(ui.idx[0], 0);
    assert_true(ui.val[0] == 5.0f);
    assert_true(ui.val[1] == 2.0f);
    assert_true(ui.val[2] == 4.0f);
    assert_true(ui.val[3] == 2.5f);
    assert_int_equal(als_csr_validate(&ui), 0);
    /* Transpose: item a → users 0, 1. */
    assert_int_equal(iu.ptr[1], 2);
    assert_int_equal(iu.idx[0], 0);
    assert_int_equal(iu.idx[1], 1);
    assert_true(iu.val[1] == 4.0f);
    als_csr_fini(&ui);
    als_csr_fini(&iu);
    /* Implicit weights add up. */
    build(&o, ALS_REDUCE_SUM, &ui, &iu);
    assert_true(ui.val[0] == 9.0f);
    assert_true(ui.val[3] == 3.5f);
    als_csr_fini(&ui);
    als_csr_fini(&iu);
    /* Bad values are refused. */
    assert_int_not_equal(als_obs_add(&o, "u", 1, "i", 1, NAN, 0), 0);
    als_obs_fini(&o);
}

static void test_csr_validate_rejects_out_of_order_or_out_of_range_columns(void **state)
{
    (void)state;
    int64_t ptr[3] = {0, 2, 3};
    int32_t idx[3] = {1, 0, 2};
    float val[3] = {1, 1, 1};
    als_csr_t m = {2, 3, 3, ptr, idx, val};
    assert_int_equal(als_csr_validate(&m), CORE_ERR_CORRUPT);
    idx[0] = 0;
    idx[1] = 1;
    assert_int_equal(als_csr_validate(&m), 0);
    idx[2] = 3;
    assert_int_equal(als_csr_validate(&m), CORE_ERR_CORRUPT);
    idx[2] = 2;
    ptr[1] = 4;
    assert_int_equal(als_csr_validate(&m), CORE_ERR_CORRUPT);
}

static void test_random_split_is_reproducible_and_keeps_pairs_together(void **state)
{
    (void)state;
    als_obs_t o;
    random_obs(&o, 100, 80, 0.1, 0, g_seed);
    size_t n0 = o.n;
    for (size_t j = 0; j < n0; j += 3) /* duplicates of some pairs */
        als_obs_add_ids(&o, o.u[j], o.i[j], 1.0f, 99999999);
    uint8_t *a = calloc(o.n, 1), *b = calloc(o.n, 1);
    als_split_mark(&o, ALS_SPLIT_RANDOM, 0.2, 7, a);
    als_split_mark(&o, ALS_SPLIT_RANDOM, 0.2, 7, b);
    assert_memory_equal(a, b, o.n);
    size_t ntest = 0;
    for (size_t j = 0; j < o.n; j++)
        ntest += a[j];
    CHECK(ntest > o.n * 0.12 && ntest < o.n * 0.28);
    for (size_t j = 0; j < n0; j += 3)
        assert_int_equal(a[j], a[n0 + j / 3]);
    als_split_mark(&o, ALS_SPLIT_RANDOM, 0.2, 8, b);
    assert_memory_not_equal(a, b, o.n);
    free(a);
    free(b);
    als_obs_fini(&o);
}

static void test_time_split_puts_the_latest_fraction_in_test(void **state)
{
    (void)state;
    als_obs_t o;
    als_obs_init(&o);
    for (int j = 0; j < 10; j++)
        als_obs_add(&o, "u", 1, "i", 1, 1.0f, (int64_t)(9 - j) * 10);
    uint8_t sel[10];
    als_split_mark(&o, ALS_SPLIT_TIME, 0.3, 0, sel);
    /* Times 90, 80, 70 are the first three added. */
    for (int j = 0; j < 10; j++)
        assert_int_equal(sel[j], j < 3);
    als_obs_fini(&o);
}

/* ---- metrics ------------------------------------------------------------------- */

static void test_ranking_metrics_match_hand_computed_values(void **state)
{
    (void)state;
    int32_t ranked[5] = {1, 2, 3, 4, 5}, rel[3] = {2, 5, 9};
    double p, r, ap, ndcg;
    als_rank_one(ranked, 5, rel, 3, 5, &p, &r, &ap, &ndcg);
    /* hits at positions 2 and 5 */
    assert_true(fabs(p - 0.4) < 1e-12);
    assert_true(fabs(r - 2.0 / 3) < 1e-12);
    assert_true(fabs(ap - (0.5 + 0.4) / 3) < 1e-12);
    double dcg = 1 / log2(3.0) + 1 / log2(6.0), idcg = 1 + 1 / log2(3.0) + 0.5;
    assert_true(fabs(ndcg - dcg / idcg) < 1e-12);
    /* Perfect list. */
    int32_t best[2] = {2, 5};
    als_rank_one(best, 2, rel, 3, 2, &p, &r, &ap, &ndcg);
    assert_true(p == 1.0 && fabs(ap - 1.0) < 1e-12 && fabs(ndcg - 1.0) < 1e-12);
    assert_true(fabs(r - 2.0 / 3) < 1e-12);
    /* No hits. */
    int32_t none[2] = {7, 8};
    als_rank_one(none, 2, rel, 3, 2, &p, &r, &ap, &ndcg);
    assert_true(p == 0 && r == 0 && ap == 0 && ndcg == 0);
}

static void test_rating_metrics_skip_cold_pairs_and_match_hand_values(void **state)
{
    (void)state;
    als_obs_t o;
    als_obs_init(&o);
    als_obs_add(&o, "u0", 2, "i0", 2, 3.0f, 0); /* train */
    als_obs_add(&o, "u1", 2, "i1", 2, 2.0f, 0); /* train */
    als_obs_add(&o, "u0", 2, "i1", 2, 4.0f, 1); /* test */
    als_obs_add(&o, "u1", 2, "i0", 2, 1.0f, 1); /* test */
    als_obs_add(&o, "u2", 2, "i0", 2, 5.0f, 1); /* test, cold user */
    uint8_t sel[5] = {0, 0, 1, 1, 1};
    als_csr_t tr_ui, tr_iu, te_ui;
    assert_int_equal(als_obs_build_sel(&o, ALS_REDUCE_LATEST, sel, 0, &tr_ui, &tr_iu), 0);
    assert_int_equal(als_obs_build_sel(&o, ALS_REDUCE_LATEST, sel, 1, &te_ui, NULL), 0);
    als_factors_t U, V;
    als_factors_init(&U, 3, 1);
    als_factors_init(&V, 2, 1);
    U.x[0] = 1;
    U.x[U.stride] = 2;
    V.x[0] = 1.5f;
    V.x[V.stride] = 1;
    /* predictions: (u0,i1) = 1 vs 4 → err 3; (u1,i0) = 3 vs 1 → err 2 */
    als_rating_metrics_t m;
    als_eval_rating(&tr_ui, &tr_iu, &te_ui, &U, &V, &m);
    assert_int_equal(m.n, 2);
    assert_int_equal(m.skipped, 1);
    assert_true(fabs(m.rmse - sqrt((9 + 4) / 2.0)) < 1e-9);
    assert_true(fabs(m.mae - 2.5) < 1e-9);
    als_factors_fini(&U);
    als_factors_fini(&V);
    als_csr_fini(&tr_ui);
    als_csr_fini(&tr_iu);
    als_csr_fini(&te_ui);
    als_obs_fini(&o);
}

static void test_topk_keeps_the_best_k_in_order_with_index_tie_break(void **state)
{
    (void)state;
    als_scored_t st[4];
    als_topk_t t;
    als_topk_init(&t, st, 4);
    float s[10] = {0.5f, 2, 9, 1, 2, 7, -1, 9, 3, 0};
    for (int i = 0; i < 10; i++)
        als_topk_push(&t, i, s[i]);
    als_topk_sort(&t);
    assert_int_equal(t.n, 4);
    int want[4] = {2, 7, 5, 8};
    for (int j = 0; j < 4; j++)
        assert_int_equal(t.h[j].item, want[j]);
}

static void test_score_all_panel_and_rows_match_scalar_dot_products(void **state)
{
    (void)state;
    uint64_t s = g_seed;
    als_factors_t V;
    assert_int_equal(als_factors_init(&V, 1001, 50), 0);
    als_factors_randomize(&V, 3, 2);
    float *x = aligned_alloc(64, sizeof(float) * V.stride), *out = malloc(sizeof(float) * 1001);
    memset(x, 0, sizeof(float) * V.stride);
    for (int a = 0; a < 50; a++)
        x[a] = (float)(rng_unit(&s) - 0.5);
    als_score_all(x, &V, out);
    for (int i = 0; i < 1001; i++) {
        double ref = 0;
        for (int a = 0; a < 50; a++)
            ref += (double)x[a] * als_row(&V, i)[a];
        CHECK(fabs(out[i] - ref) < 1e-5);
    }
    /* The serving panel layout gives the same scores (1001 = 62 full blocks + a tail). */
    float *P = als_panel_build(&V), *out2 = malloc(sizeof(float) * (1001 + ALS_PANEL));
    als_score_panel(x, P, 1001, 50, out2);
    for (int i = 0; i < 1001; i++)
        CHECK(fabs(out2[i] - out[i]) < 1e-5);
    /* Scoring chosen rows gives the panel's bits exactly (serving rescores
     * candidates this way and must answer as the full scan does): 37 items
     * = two gathers of 16 and a tail, in no particular order. */
    int32_t items[37];
    float out3[37];
    for (int j = 0; j < 37; j++)
        items[j] = (int32_t)((j * 389 + 11) % 1001);
    als_score_rows(x, &V, items, 37, out3);
    for (int j = 0; j < 37; j++)
        CHECK(memcmp(&out3[j], &out2[items[j]], sizeof(float)) == 0);
    /* so does the path of models past 2^31 floats (64-bit offsets, 8 rows
     * a gather: 37 = four full gathers and a tail) */
    memset(out3, 0, sizeof(out3));
    als__score_rows_wide(x, &V, items, 37, out3);
    for (int j = 0; j < 37; j++)
        CHECK(memcmp(&out3[j], &out2[items[j]], sizeof(float)) == 0);
    free(P);
    free(out2);
    free(x);
    free(out);
    als_factors_fini(&V);
}


/* The int8 bounds enclose the float panel's own scores, with both kernels,
 * and are tight enough to prune. */
static void check_qpanel_bounds(int32_t n, int32_t rank, uint64_t seed)
{
    uint64_t s = seed;
    als_factors_t V;
    assert_int_equal(als_factors_init(&V, n, rank), 0);
    als_factors_randomize(&V, seed, 2);
    float *P = als_panel_build(&V);
    als_qpanel_t qp;
    assert_int_equal(als_qpanel_build(&V, &qp), 0);
    size_t room = (size_t)n + ALS_PANEL;
    float *x = aligned_alloc(64, sizeof(float) * (size_t)V.stride);
    float *ex = malloc(sizeof(float) * room), *lo = malloc(sizeof(float) * room),
          *hi = malloc(sizeof(float) * room), *lo2 = malloc(sizeof(float) * room),
          *hi2 = malloc(sizeof(float) * room);
    for (int trial = 0; trial < 8; trial++) {
        memset(x, 0, sizeof(float) * (size_t)V.stride);
        /* trials 6, 7: scores among the subnormal floats, where rounding
         * steps are absolute, not relative */
        const float scale = trial == 5 ? 1e4f : trial == 6 ? 1e-39f : trial == 7 ? 1e-42f : 1.0f;
        for (int32_t a = 0; a < rank; a++)
            x[a] = trial == 0 ? 0 : (float)(rng_unit(&s) - 0.5) * scale;
        if (trial == 4)
            x[0] = 100; /* one dominant component: coarse quantisation of the rest */
        als_score_panel(x, P, n, rank, ex);
        als_qpanel_bounds(&qp, x, lo, hi, true);
        als_qpanel_bounds(&qp, x, lo2, hi2, false);
        /* The kernels round differently (FMA, order): they agree to float
         * precision of the terms, ‖x‖·‖V_i‖, not of lo itself, which may be
         * a small difference of two large numbers. */
        double nx = 0, nvmax = 0;
        for (int32_t a = 0; a < rank; a++)
            nx += (double)x[a] * x[a];
        nx = sqrt(nx);
        for (int32_t i = 0; i < n; i++) {
            double nv = 0;
            for (int32_t a = 0; a < rank; a++)
                nv += (double)als_row(&V, i)[a] * als_row(&V, i)[a];
            nvmax = fmax(nvmax, sqrt(nv));
        }
        const double tol = 1e-5 * nx * nvmax + 1e-30;
        for (int32_t i = 0; i < n; i++) {
            CHECK(lo[i] <= ex[i] && ex[i] <= hi[i]);
            CHECK(lo2[i] <= ex[i] && ex[i] <= hi2[i]);
            CHECK(fabs((double)lo[i] - lo2[i]) <= tol && fabs((double)hi[i] - hi2[i]) <= tol);
            double nv = 0;
            for (int32_t a = 0; a < rank; a++)
                nv += (double)als_row(&V, i)[a] * als_row(&V, i)[a];
            /* 8-bit steps: the interval is ~1% of ‖x‖‖V_i‖; a loose bound
             * would rescore everything */
            if (trial != 4 && trial < 6)
                CHECK(hi[i] - lo[i] <= 0.03 * nx * sqrt(nv) + 2.0 * (rank + 8) * FLT_MIN);
        }
    }
    free(x);
    free(ex);
    free(lo);
    free(hi);
    free(lo2);
    free(hi2);
    free(P);
    als_qpanel_fini(&qp);
    als_factors_fini(&V);
}

static void test_qpanel_bounds_enclose_float_scores_with_both_kernels(void **state)
{
    (void)state;
    check_qpanel_bounds(1001, 50, g_seed);
    check_qpanel_bounds(77, 7, g_seed + 1); /* rank not a multiple of 4, one partial block */
    check_qpanel_bounds(16 * 9, 100, g_seed + 2);
}

/* The candidate masks hold every item of the exact top k, with both
 * kernels and every filter (exclusions, > 0 only, cosine divisors, small k
 * with the lane tops and large k with the sampled quickselect); tau is
 * never above the exact k-th best; excluded items are never candidates;
 * and for small k the masks prune most items. */
static void check_qpanel_candidates(int32_t n, int32_t rank, uint64_t seed, bool lane_heavy)
{
    uint64_t s = seed;
    als_factors_t V;
    assert_int_equal(als_factors_init(&V, n, rank), 0);
    als_factors_randomize(&V, seed, 2);
    for (int32_t i = 0; i < n; i++)
        ((float *)als_row(&V, i))[0] += lane_heavy && i % ALS_PANEL == 0
                                            ? 3.0f /* the best items all in SIMD lane 0 */
                                            : 0.5f; /* a shared direction, as trained factors have */
    float *P = als_panel_build(&V);
    als_qpanel_t qp;
    assert_int_equal(als_qpanel_build(&V, &qp), 0);
    const int32_t nb = (n + ALS_PANEL - 1) / ALS_PANEL, room = nb * ALS_PANEL + ALS_PANEL;
    float *x = aligned_alloc(64, sizeof(float) * (size_t)V.stride);
    float *ex = malloc(sizeof(float) * (size_t)room), *lo = malloc(sizeof(float) * (size_t)room),
          *hi = malloc(sizeof(float) * (size_t)room), *norm = malloc(sizeof(float) * (size_t)n);
    uint16_t *excl = calloc((size_t)nb, sizeof(uint16_t)), *cand = calloc((size_t)nb, 2);
    for (int32_t i = 0; i < n; i++) {
        double q = 0;
        for (int32_t a = 0; a < rank; a++)
            q += (double)als_row(&V, i)[a] * als_row(&V, i)[a];
        norm[i] = i % 97 == 5 ? 0 : (float)sqrt(q); /* a few zero norms: cosine answers 0 */
    }
    static const int32_t ks[] = {1, 10, 16, 17, 100};
    for (int trial = 0; trial < 20; trial++) {
        const int32_t k = ks[trial % 5];
        const bool positive_only = trial & 1, cosine = trial & 2;
        memset(x, 0, sizeof(float) * (size_t)V.stride);
        for (int32_t a = 0; a < rank; a++)
            x[a] = (float)(rng_unit(&s) - 0.5);
        x[0] += trial % 3 == 0 || lane_heavy ? 1.0f : 0;
        if (trial % 7 == 6) /* scores near the bottom of floats: subnormal steps */
            for (int32_t a = 0; a < rank; a++)
                x[a] *= 1e-39f;
        memset(excl, 0, (size_t)nb * sizeof(uint16_t));
        for (int32_t i = 0; i < n; i++)
            if (rng_unit(&s) < 0.1)
                excl[i / ALS_PANEL] |= (uint16_t)(1u << (i % ALS_PANEL));
        als_score_panel(x, P, n, rank, ex);
        if (cosine)
            for (int32_t i = 0; i < n; i++)
                ex[i] = norm[i] > 0 ? ex[i] / norm[i] : 0;
        /* the exact answer's k-th score among eligible items */
        int32_t eligible = 0;
        float *sorted = malloc(sizeof(float) * (size_t)n);
        for (int32_t i = 0; i < n; i++)
            if (!(excl[i / ALS_PANEL] >> (i % ALS_PANEL) & 1) && (!positive_only || ex[i] > 0))
                sorted[eligible++] = ex[i];
        for (int32_t a = 1; a < eligible; a++) /* insertion sort, descending */
            for (int32_t b = a; b > 0 && sorted[b - 1] < sorted[b]; b--) {
                float t = sorted[b];
                sorted[b] = sorted[b - 1];
                sorted[b - 1] = t;
            }
        const float kth = eligible >= k ? sorted[k - 1] : -INFINITY;
        free(sorted);
        const als_qfilter_t f = {.excl = excl, .div = cosine ? norm : NULL, .k = k,
                                 .positive_only = positive_only};
        for (int portable = 0; portable < 2; portable++) {
            float tau;
            memset(cand, 0, (size_t)nb * 2);
            assert_int_equal(als_qpanel_candidates(&qp, x, &f, lo, hi, cand, &tau, portable), 0);
            CHECK(!(tau > kth));
            int32_t ncand = 0;
            for (int32_t i = 0; i < n; i++) {
                const bool is_cand = cand[i / ALS_PANEL] >> (i % ALS_PANEL) & 1;
                const bool excluded = excl[i / ALS_PANEL] >> (i % ALS_PANEL) & 1;
                ncand += is_cand;
                CHECK(!(is_cand && excluded));
                if (!excluded && ex[i] >= kth && (!positive_only || ex[i] > 0))
                    CHECK(is_cand); /* in the exact top k (ties at the k-th included) */
            }
            for (int32_t b = 0; b < nb; b++) /* tail lanes of the last block stay clear */
                CHECK((cand[b] & ~((1u << (n - b * ALS_PANEL < 16 ? n - b * ALS_PANEL : 16)) - 1u)) == 0);
            if (k <= 16 && !positive_only && trial % 7 != 6)
                CHECK(ncand < n / 4);
        }
    }
    free(x);
    free(ex);
    free(lo);
    free(hi);
    free(norm);
    free(excl);
    free(cand);
    free(P);
    als_qpanel_fini(&qp);
    als_factors_fini(&V);
}

static void test_qpanel_candidates_hold_the_exact_top_k(void **state)
{
    (void)state;
    check_qpanel_candidates(2003, 50, g_seed, false);
    check_qpanel_candidates(77, 7, g_seed + 1, false); /* fewer items than the sample, one partial block */
    check_qpanel_candidates(16 * 40, 100, g_seed + 2, false); /* rank past the unrolled kernels */
    check_qpanel_candidates(2003, 50, g_seed + 3, true); /* one lane holds more than 4 of the best */
}


/* Answers of the int8 fast path and of the float scan, byte for byte, over
 * every query kind on one model; returns how many answers had items. */
static int compare_fast_and_scan(als_model_t *m)
{
    als_qpanel_fini(&m->qpanel);
    als_qpanel_t qp;
    assert_int_equal(als_qpanel_build(&m->V, &qp), 0);
    char err[256];
    const char *bodies[] = {"{\"user\":\"%s\",\"num\":10}", "{\"user\":\"%s\",\"num\":1}",
                            "{\"user\":\"%s\",\"num\":17}", "{\"user\":\"%s\",\"num\":32}",
                            "{\"user\":\"%s\",\"num\":200}", "{\"user\":\"%s\",\"num\":1000}",
                            "{\"user\":\"%s\",\"num\":5,\"blackList\":[\"i1\",\"i2\",\"i3\"]}",
                            "{\"items\":[\"i%.0s4\",\"i9\"],\"num\":20}",
                            "{\"items\":[\"i%.0s4\"],\"num\":7,\"blackList\":[\"i5\"]}",
                            "{\"items\":[\"i%.0s3\"],\"num\":100}",
                            "{\"user\":\"nobody%.0s\",\"num\":10,\"blackList\":[\"i1\"]}"};
    int nonempty = 0;
    for (int32_t u = 0; u < m->users.n; u += 3) {
        for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
            char body[256];
            snprintf(body, sizeof(body), bodies[b], als_idmap_name(&m->users, u));
            als_query_t q;
            assert_int_equal(als_query_parse(body, strlen(body), &q, err, sizeof(err)), 0);
            core_buf_t ra, rb;
            core_buf_init(&ra);
            core_buf_init(&rb);
            als_query_info_t info;
            m->qpanel = (als_qpanel_t){0};
            assert_int_equal(als_query_run(m, &q, true, &ra, &info), 0);
            m->qpanel = qp;
            assert_int_equal(als_query_run(m, &q, true, &rb, &info), 0);
            m->qpanel = (als_qpanel_t){0};
            /* same items, same order, same score bits (printed with 9 digits) */
            if (ra.len != rb.len || memcmp(ra.data, rb.data, ra.len) != 0)
                fail_msg("%s: float scan %.*s\nfast path %.*s", body, (int)ra.len,
                         (const char *)ra.data, (int)rb.len, (const char *)rb.data);
            nonempty += info.returned > 0;
            core_buf_fini(&ra);
            core_buf_fini(&rb);
            als_query_fini(&q);
        }
    }
    m->qpanel = qp;
    return nonempty;
}

/* Parses body both ways (the plain-query scanner with jansson behind it,
 * and jansson alone) and fails unless they agree; returns whether the
 * scanner took it (no jansson tree). */
static bool query_parsers_agree(const char *body, size_t len)
{
    char ea[256] = "", eb[256] = "";
    als_query_t a, b;
    const int ra = als_query_parse(body, len, &a, ea, sizeof ea);
    const int rb = als_query_parse_tree(body, len, &b, eb, sizeof eb);
    if (ra != rb)
        fail_msg("%.*s: scanner says %d (%s), jansson %d (%s)", (int)len, body, ra, ea, rb, eb);
    if (ra != 0) {
        if (strcmp(ea, eb) != 0)
            fail_msg("%.*s: '%s' vs '%s'", (int)len, body, ea, eb);
        return false;
    }
    const bool plain = a.root == NULL;
    if (a.kind != b.kind || a.num != b.num || !a.user != !b.user ||
        (a.user && strcmp(a.user, b.user) != 0) || !a.items != !b.items || !a.black != !b.black)
        fail_msg("%.*s: the two parsers read it differently", (int)len, body);
    als_query_fini(&a);
    als_query_fini(&b);
    return plain;
}

static void test_plain_query_scanner_agrees_with_jansson(void **state)
{
    (void)state;
    /* the plain path must be taken where it should, or it saves nothing */
    const char *plain[] = {"{\"user\":\"u1\",\"num\":10}", " {\n\t\"num\" : 1000 ,\r\"user\":\"\"} ",
                           "{\"user\":\"a b~!\",\"num\":1}"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        if (!query_parsers_agree(plain[i], strlen(plain[i])))
            fail_msg("%s: not taken by the scanner", plain[i]);
    const char *bodies[] = {
        "{\"user\":\"u1\",\"num\":10}",
        "{\"num\":7,\"user\":\"u2\"}",
        "{\"user\":\"u1\",\"num\":010}",
        "{\"user\":\"u1\",\"num\":1001}",
        "{\"user\":\"u1\",\"num\":99999}",
        "{\"user\":\"u1\",\"num\":0}",
        "{\"user\":\"u1\",\"num\":-3}",
        "{\"user\":\"u1\",\"num\":1.0}",
        "{\"user\":\"u1\",\"num\":1e2}",
        "{\"user\":\"u1\",\"num\":\"10\"}",
        "{\"user\":\"u1\",\"user\":\"u2\",\"num\":3}",
        "{\"user\":\"u1\",\"num\":3,\"num\":4}",
        "{\"user\":\"\\u00e9\\\"x\",\"num\":2}",
        "{\"user\":\"\xc3\xa9\",\"num\":2}",
        "{\"user\":\"\xff\",\"num\":2}",
        "{\"user\":7,\"num\":2}",
        "{\"user\":\"u1\",\"num\":10,\"blackList\":[\"i1\"]}",
        "{\"items\":[\"i1\",\"i2\"],\"num\":5}",
        "{\"user\":\"u1\",\"items\":[\"i1\"],\"num\":5}",
        "{\"user\":\"u1\"}",
        "{\"num\":5}",
        "{\"user\":\"u1\",\"num\":10,}",
        "{\"user\":\"u1\" \"num\":10}",
        "{\"user\":\"u1\",\"num\":10}}",
        "[{\"user\":\"u1\",\"num\":10}]",
        "{\"user\":\"0123456789012345678901234567890123456789012345678901234567890123\",\"num\":1}",
        "{\"user\":\"012345678901234567890123456789012345678901234567890123456789012\",\"num\":1}",
    };
    const char subst[] = "\"{}:,0159-.e \\u\x7f";
    int plain_taken = 0;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        const size_t len = strlen(bodies[i]);
        char buf[160];
        for (size_t cut = 0; cut <= len; cut++) /* every prefix */
            plain_taken += query_parsers_agree(bodies[i], cut);
        for (size_t at = 0; at < len; at++) /* every byte replaced */
            for (size_t c = 0; c < sizeof(subst) - 1; c++) {
                memcpy(buf, bodies[i], len);
                buf[at] = subst[c];
                plain_taken += query_parsers_agree(buf, len);
            }
        const char *nul = "{\"user\":\"u\0\",\"num\":1}"; /* a NUL byte inside */
        plain_taken += query_parsers_agree(nul, 22);
    }
    assert_true(plain_taken > 100);
}

static void test_fast_query_path_answers_like_the_float_scan(void **state)
{
    (void)state;
    /* users, items, rank: the unrolled kernel (rank 16); a rank past the
     * unrolled ones and not a multiple of 4, more items than before on the
     * same thread (the scratch grows); fewer items than one block */
    static const int shapes[][3] = {{120, 700, 16}, {60, 1500, 70}, {30, 9, 5}};
    int nonempty = 0;
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        als_obs_t o;
        random_obs(&o, shapes[k][0], shapes[k][1], shapes[k][1] < 16 ? 0.5 : 0.04, 0,
                   g_seed + k);
        als_catlist_t cats;
        als_catlist_init(&cats);
        als_engine_t e;
        als_engine_default(&e);
        e.params.rank = shapes[k][2];
        e.params.iterations = 2;
        als_model_t *m;
        als_train_stats_t st;
        char err[256];
        assert_int_equal(
            als_pipeline_train(&e, &o, &cats, 1, NULL, NULL, &m, &st, err, sizeof(err)), 0);
        nonempty += compare_fast_and_scan(m);
        als_model_release(m);
        als_catlist_fini(&cats);
        als_obs_fini(&o);
    }
    assert_true(nonempty > 300);
}

/* The hand-written "%.9g": the same text as printf for nearly every float
 * (a last-digit difference is allowed only when the 10th digit sits on a
 * rounding tie), and always a text that parses back to the same float. */
static void test_fmt_float_matches_printf_and_round_trips(void **state)
{
    (void)state;
    uint64_t s = g_seed;
    int differ = 0, n = 0;
    const float fixed[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.1f, 1e-4f, 9.99999e-5f, 1e9f, 999999999.0f,
                           123456789.0f, 3.4028235e38f, 1.4e-45f, 1.17549435e-38f, 4.5f,
                           0.30000001f, 2.5e-5f, 100.0f, 1234.5f, 0.000123456789f};
    for (int k = 0; k < 2000000; k++) {
        float f;
        if (k < (int)(sizeof fixed / sizeof fixed[0])) {
            f = fixed[k];
        } else {
            uint32_t bits = (uint32_t)rng_next(&s);
            memcpy(&f, &bits, 4);
            if (!isfinite(f))
                continue;
        }
        char a[32], b[32];
        int la = als_fmt_float(a, f);
        a[la] = 0;
        snprintf(b, sizeof b, "%.9g", (double)f);
        n++;
        CHECK(strtof(a, NULL) == f || (f != f));
        if (f != 0 && !!signbit(strtof(a, NULL)) != !!signbit(f)) /* -0 may print as 0 */
            fail_msg("sign: %s for %.9g", a, (double)f);
        if (strcmp(a, b) != 0 && differ++ < 5)
            print_message("fmt: ours %s printf %s\n", a, b);
    }
    CHECK(differ * 100000 <= n); /* at most 1 in 100,000 */
}

/* ---- models --------------------------------------------------------------------- */

static als_model_t *small_model(void)
{
    als_obs_t o;
    random_obs(&o, 40, 30, 0.15, 0, g_seed);
    als_catlist_t cats;
    als_catlist_init(&cats);
    als_catlist_add(&cats, "i3", "drama");
    als_catlist_add(&cats, "i3", "comedy");
    als_catlist_add(&cats, "i3", "drama");
    als_catlist_add(&cats, "i4", "comedy");
    als_catlist_add(&cats, "no-such-item", "horror");
    als_engine_t e;
    als_engine_default(&e);
    snprintf(e.app, sizeof(e.app), "shop");
    e.params.rank = 5;
    e.params.iterations = 3;
    als_model_t *m;
    als_train_stats_t st;
    char err[256];
    assert_int_equal(als_pipeline_train(&e, &o, &cats, 1, NULL, NULL, &m, &st, err, sizeof(err)), 0);
    m->version = 7;
    m->trained_at_ms = 1700000000123;
    als_catlist_fini(&cats);
    als_obs_fini(&o);
    return m;
}

static void test_model_encode_decode_round_trips_everything(void **state)
{
    (void)state;
    als_model_t *m = small_model();
    double rmse;
    assert_true(als_model_get_metric(m, "rmse", &rmse));
    /* "horror" belonged to an unknown item: dropped; i3's duplicate drama merged. */
    assert_int_equal(m->cats.n, 2);
    int32_t i3 = als_idmap_find(&m->items, "i3", 2);
    assert_int_equal(m->cat_ptr[i3 + 1] - m->cat_ptr[i3], 2);
    core_buf_t b;
    core_buf_init(&b);
    als_model_encode(m, &b);
    als_model_t *d;
    char err[256];
    assert_int_equal(als_model_decode(b.data, b.len, &d, err, sizeof(err)), 0);
    assert_string_equal(d->app, "shop");
    assert_string_equal(d->engine, "default");
    assert_int_equal(d->version, 7);
    assert_int_equal(d->trained_at_ms, 1700000000123);
    assert_int_equal(d->params.rank, 5);
    assert_true(d->params.lambda == m->params.lambda);
    assert_int_equal(d->users.n, m->users.n);
    assert_int_equal(d->items.n, m->items.n);
    for (int32_t j = 0; j < m->items.n; j++)
        assert_string_equal(als_idmap_name(&d->items, j), als_idmap_name(&m->items, j));
    assert_memory_equal(d->U.x, m->U.x, sizeof(float) * m->U.n * m->U.stride);
    assert_memory_equal(d->V.x, m->V.x, sizeof(float) * m->V.n * m->V.stride);
    assert_int_equal(d->seen.nnz, m->seen.nnz);
    assert_memory_equal(d->seen.ptr, m->seen.ptr, sizeof(int64_t) * (m->users.n + 1));
    assert_memory_equal(d->seen.idx, m->seen.idx, sizeof(int32_t) * m->seen.nnz);
    assert_memory_equal(d->cat_ptr, m->cat_ptr, sizeof(int64_t) * (m->items.n + 1));
    assert_memory_equal(d->popularity, m->popularity, sizeof(float) * m->items.n);
    double r2;
    assert_true(als_model_get_metric(d, "rmse", &r2) && r2 == rmse);
    /* Encoding the decoded model gives the same bytes. */
    core_buf_t b2;
    core_buf_init(&b2);
    als_model_encode(d, &b2);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    core_buf_fini(&b2);
    core_buf_fini(&b);
    als_model_release(d);
    als_model_release(m);
}

static void test_model_decode_rejects_every_truncation_and_bit_flip(void **state)
{
    (void)state;
    als_model_t *m = small_model();
    core_buf_t b;
    core_buf_init(&b);
    als_model_encode(m, &b);
    char err[256];
    als_model_t *d;
    for (size_t n = 0; n < b.len; n += (n < 200 ? 1 : 97)) {
        /* Each truncation sits right before the end of its own heap block. */
        uint8_t *cp = malloc(n ? n : 1);
        memcpy(cp, b.data, n);
        if (als_model_decode(cp, n, &d, err, sizeof(err)) == 0)
            fail_msg("truncation at %zu of %zu decoded", n, b.len);
        free(cp);
    }
    uint64_t s = g_seed;
    for (int t = 0; t < 300; t++) {
        size_t pos = rng_next(&s) % b.len;
        uint8_t bit = (uint8_t)(1u << (rng_next(&s) % 8));
        b.data[pos] ^= bit;
        int rc = als_model_decode(b.data, b.len, &d, err, sizeof(err));
        if (rc == 0)
            fail_msg("bit flip at %zu decoded (seed %llu)", pos, (unsigned long long)g_seed);
        b.data[pos] ^= bit;
    }
    /* A structurally bad body with a valid CRC is still refused: an item
     * count far beyond the bytes that follow. */
    assert_int_equal(als_model_decode(b.data, b.len, &d, err, sizeof(err)), 0);
    als_model_release(d);
    uint8_t zeros[256] = {0};
    assert_int_not_equal(als_model_decode(zeros, sizeof(zeros), &d, err, sizeof(err)), 0);
    core_buf_fini(&b);
    als_model_release(m);
}

static void test_model_decode_rejects_bad_structure_under_a_valid_crc(void **state)
{
    (void)state;
    als_model_t *m = small_model();
    /* Corrupt the in-memory model, then encode it: the CRC is valid but the
     * content is not. */
    m->seen.idx[1] = m->seen.idx[0]; /* not strictly increasing: gap underflows */
    core_buf_t b;
    core_buf_init(&b);
    als_model_encode(m, &b);
    char err[256];
    als_model_t *d;
    assert_int_not_equal(als_model_decode(b.data, b.len, &d, err, sizeof(err)), 0);
    core_buf_fini(&b);
    als_model_release(m);
    m = small_model();
    m->U.x[0] = NAN;
    core_buf_init(&b);
    als_model_encode(m, &b);
    assert_int_equal(als_model_decode(b.data, b.len, &d, err, sizeof(err)), CORE_ERR_CORRUPT);
    assert_non_null(strstr(err, "factors"));
    core_buf_fini(&b);
    als_model_release(m);
}

static void test_gate_promotes_only_when_not_worse_than_tolerance(void **state)
{
    (void)state;
    als_model_t *old = als_model_new(), *cand = als_model_new();
    char why[256];
    assert_true(als_gate_check(cand, NULL, 0.02, why, sizeof(why)));
    als_model_set_metric(old, "rmse", 0.90);
    als_model_set_metric(cand, "rmse", 0.915);
    assert_true(als_gate_check(cand, old, 0.02, why, sizeof(why)));
    als_model_set_metric(cand, "rmse", 0.95);
    assert_false(als_gate_check(cand, old, 0.02, why, sizeof(why)));
    assert_non_null(strstr(why, "keeping"));
    als_model_release(old);
    als_model_release(cand);
    old = als_model_new();
    cand = als_model_new();
    als_model_set_metric(old, "precision@10", 0.30);
    als_model_set_metric(cand, "precision@10", 0.25);
    assert_false(als_gate_check(cand, old, 0.05, why, sizeof(why)));
    als_model_set_metric(cand, "precision@10", 0.29);
    assert_true(als_gate_check(cand, old, 0.05, why, sizeof(why)));
    als_model_release(old);
    als_model_release(cand);
}

static void test_engine_json_reads_pio_shape_and_rejects_unknown_params(void **state)
{
    (void)state;
    const char *txt = "{\"id\":\"v2\",\"engineFactory\":\"x\",\"datasource\":{\"params\":"
                      "{\"appName\":\"MyApp\"}},\"algorithms\":[{\"name\":\"als\",\"params\":"
                      "{\"rank\":12,\"numIterations\":7,\"lambda\":0.05,\"alpha\":3.5,"
                      "\"implicitPrefs\":true,\"seed\":9}}]}";
    als_engine_t e;
    char err[256];
    assert_int_equal(als_engine_parse(txt, strlen(txt), &e, err, sizeof(err)), 0);
    assert_string_equal(e.id, "v2");
    assert_string_equal(e.app, "MyApp");
    assert_int_equal(e.params.rank, 12);
    assert_int_equal(e.params.iterations, 7);
    assert_true(e.params.lambda == 0.05 && e.params.alpha == 3.5 && e.params.implicit);
    assert_int_equal(e.params.seed, 9);
    assert_int_equal(e.nevents, 2);
    assert_string_equal(e.events[0].name, "view");
    /* Empty object: every default. */
    assert_int_equal(als_engine_parse("{}", 2, &e, err, sizeof(err)), 0);
    als_params_t def;
    als_params_default(&def);
    assert_int_equal(e.params.rank, def.rank);
    assert_string_equal(e.id, "default");
    assert_string_equal(e.events[0].name, "rate");
    assert_true(e.events[0].use_rating);
    const char *bad[] = {
        "{\"algorithms\":[{\"name\":\"als\",\"params\":{\"rnak\":3}}]}",
        "{\"algorithms\":[{\"name\":\"als\",\"params\":{\"rank\":0}}]}",
        "{\"algorithms\":[{\"name\":\"als\",\"params\":{\"lambda\":\"x\"}}]}",
        "{\"algorithms\":[{\"name\":\"nb\"}]}",
        "{\"id\":\"a/b\"}",
        "[1]",
        "{",
    };
    for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
        if (als_engine_parse(bad[j], strlen(bad[j]), &e, err, sizeof(err)) == 0)
            fail_msg("accepted: %s", bad[j]);
    /* event weights: within ±ALS_MAX_ABS_VALUE, or null for the rating */
    const char *w_ok = "{\"datasource\":{\"params\":{\"eventWeights\":{\"buy\":-1e6,\"rate\":null}}}}";
    assert_int_equal(als_engine_parse(w_ok, strlen(w_ok), &e, err, sizeof(err)), 0);
    const char *w_big = "{\"datasource\":{\"params\":{\"eventWeights\":{\"buy\":1e300}}}}";
    assert_int_not_equal(als_engine_parse(w_big, strlen(w_big), &e, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "eventWeights.buy"));
}

/* Ratings past ±ALS_MAX_ABS_VALUE (or past float's range, where converting
 * them would be undefined) are refused, from events and from rating files. */
static void test_ratings_out_of_range_are_refused(void **state)
{
    (void)state;
    als_obs_t o;
    als_obs_init(&o);
    assert_int_equal(als_obs_add(&o, "u", 1, "a", 1, ALS_MAX_ABS_VALUE, 1), 0);
    assert_int_equal(als_obs_add(&o, "u", 1, "b", 1, -ALS_MAX_ABS_VALUE, 1), 0);
    const double bad[] = {ALS_MAX_ABS_VALUE * 1.0000001, -2e6, 3.5e38, 1e300, -1e300,
                          INFINITY, NAN};
    for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
        if (als_obs_add(&o, "u", 1, "c", 1, bad[j], 1) != CORE_ERR_INVAL)
            fail_msg("accepted %g", bad[j]);
    assert_int_equal((int)o.n, 2);
    als_obs_fini(&o);

    char path[] = "/tmp/eddy-test-ratings-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *txt = "u1\ta\t4\t100\nu2\tb\t1e39\t200\n";
    assert_int_equal(write(fd, txt, strlen(txt)), (ssize_t)strlen(txt));
    close(fd);
    char err[256];
    als_obs_init(&o);
    assert_int_not_equal(als_load_movielens(&o, path, err, sizeof(err)), 0);
    assert_non_null(strstr(err, ":2: bad rating '1e39'"));
    als_obs_fini(&o);
    unlink(path);
}

int main(void)
{
    const char *seed = getenv("TEST_SEED");
    if (seed)
        g_seed = strtoull(seed, NULL, 10);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cholesky_solves_spd_systems_like_gaussian_elimination),
        cmocka_unit_test(test_cholesky_reports_a_matrix_that_is_not_positive_definite),
        cmocka_unit_test(test_explicit_cholesky_half_sweep_matches_dense_reference),
        cmocka_unit_test(test_implicit_cholesky_half_sweep_matches_dense_reference),
        cmocka_unit_test(test_implicit_cg_half_sweep_converges_to_dense_reference),
        cmocka_unit_test(test_explicit_cg_half_sweep_converges_to_dense_reference),
        cmocka_unit_test(test_explicit_blas_lapack_half_sweep_matches_dense_reference),
        cmocka_unit_test(test_implicit_blas_lapack_half_sweep_matches_dense_reference),
        cmocka_unit_test(test_explicit_objective_decreases_every_iteration),
        cmocka_unit_test(test_implicit_objective_decreases_every_iteration_cholesky),
        cmocka_unit_test(test_implicit_objective_decreases_every_iteration_cg),
        cmocka_unit_test(test_cg_training_matches_cholesky_within_tolerance),
        cmocka_unit_test(test_training_is_bit_identical_for_any_thread_count),
        cmocka_unit_test(test_different_seeds_give_different_factors),
        cmocka_unit_test(test_params_out_of_range_are_rejected),
        cmocka_unit_test(test_idmap_interns_ids_densely_in_first_seen_order),
        cmocka_unit_test(test_latest_rating_per_user_item_wins_by_event_time),
        cmocka_unit_test(test_csr_validate_rejects_out_of_order_or_out_of_range_columns),
        cmocka_unit_test(test_random_split_is_reproducible_and_keeps_pairs_together),
        cmocka_unit_test(test_time_split_puts_the_latest_fraction_in_test),
        cmocka_unit_test(test_ranking_metrics_match_hand_computed_values),
        cmocka_unit_test(test_rating_metrics_skip_cold_pairs_and_match_hand_values),
        cmocka_unit_test(test_topk_keeps_the_best_k_in_order_with_index_tie_break),
        cmocka_unit_test(test_score_all_panel_and_rows_match_scalar_dot_products),
        cmocka_unit_test(test_qpanel_bounds_enclose_float_scores_with_both_kernels),
        cmocka_unit_test(test_qpanel_candidates_hold_the_exact_top_k),
        cmocka_unit_test(test_plain_query_scanner_agrees_with_jansson),
        cmocka_unit_test(test_fast_query_path_answers_like_the_float_scan),
        cmocka_unit_test(test_fmt_float_matches_printf_and_round_trips),
        cmocka_unit_test(test_model_encode_decode_round_trips_everything),
        cmocka_unit_test(test_model_decode_rejects_every_truncation_and_bit_flip),
        cmocka_unit_test(test_model_decode_rejects_bad_structure_under_a_valid_crc),
        cmocka_unit_test(test_gate_promotes_only_when_not_worse_than_tolerance),
        cmocka_unit_test(test_engine_json_reads_pio_shape_and_rejects_unknown_params),
        cmocka_unit_test(test_ratings_out_of_range_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
