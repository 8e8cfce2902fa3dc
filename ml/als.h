/*
 * als — matrix factorisation by alternating least squares (the training core).
 *
 * Two forms, one driver:
 *   explicit  Zhou et al. 2008 ("weighted-λ"), as Spark MLlib does it:
 *               min Σ_obs (r_ui − x_u·y_i)² + λ (Σ_u n_u‖x_u‖² + Σ_i n_i‖y_i‖²)
 *             each row solves (Y_Iᵀ Y_I + λ n_u I) x_u = Y_Iᵀ r_u.
 *   implicit  Hu, Koren & Volinsky 2008: preference p = [r > 0], confidence
 *             c = 1 + α|r|, objective over ALL (u, i) pairs
 *               min Σ_{u,i} c_ui (p_ui − x_u·y_i)² + λ (Σ_u n_u‖x_u‖² + Σ_i n_i‖y_i‖²)
 *             (regularisation scaled by n_u as Spark does, so λ means the same
 *             thing in both forms), solved with the YᵀY trick:
 *               (YᵀY + Σ_{i∈I_u} (c−1) y_i y_iᵀ + λ n_u I) x_u = Σ_{i∈I_u} c p y_i
 *             YᵀY is computed once per half-sweep.
 * Solvers: ALS_SOLVER_CHOLESKY forms the k×k normal equations and factors
 * them exactly; ALS_SOLVER_CG runs a few conjugate-gradient steps
 * (Takács, Pilászy & Tikk 2011) warm-started from the row's previous factor,
 * never forming the matrix: a product costs O(k² + n_u·k) instead of the
 * O(n_u·k²) of forming it. Both minimise the same objective, so the loss never
 * increases from one sweep to the next (CG from a warm start lowers the
 * row's quadratic at every step).
 *
 * Data: ratings in compressed sparse rows for both directions (user→items and
 * item→users, built by als_csr_transpose). Factors are float, one row per
 * user/item, rows padded to a multiple of 16 floats (stride) so every row
 * starts on a 64-byte cache line and the whole array is one contiguous,
 * 64-byte aligned block (serving scans it with vector loads); the padding is
 * always zero. Normal equations are accumulated and solved in double.
 *
 * Kernels, chosen by measurement (bench/ml_bench kernels, README
 * "Recommendations"): the Gram part Σ w y yᵀ gathers √w·y rows into blocks
 * of 256 and calls OpenBLAS cblas_dsyrk (1.2–4× faster than our best loop
 * at every rank and row length measured); the k×k solve is our Cholesky for
 * k < 6 (LAPACK's call overhead dominates there) and LAPACK's dposv above
 * (1.15× faster at k = 8, 2× and more from k = 20). OpenBLAS is
 * its OpenMP build: single-threaded and safe inside our OpenMP loop, and no
 * thread pool of its own in every eddy process (ml/CMakeLists.txt).
 *
 * Determinism: every row's solve reads only the other side's factors and the
 * row's own ratings, and every reduction (YᵀY, loss) is summed over fixed
 * chunks in a fixed order, so for a given seed the result is bit-identical
 * for ANY thread count (tested). Initial factors come from a counter-based
 * generator keyed by (seed, side, row).
 *
 * Threads: als_train runs OpenMP parallel loops over rows (p->threads, 0 =
 * OpenMP's default). All functions are reentrant; objects belong to one
 * caller at a time.
 */
#ifndef EDDY_ALS_H
#define EDDY_ALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits: a factor model larger than these is refused (a rank or count from a
 * file or a flag must not make us allocate unbounded memory). */
#define ALS_MAX_RANK 1024
#define ALS_MAX_ITERATIONS 1000
#define ALS_MAX_ROWS 100000000 /* users or items */
#define ALS_STRIDE_ALIGN 16    /* floats per 64-byte cache line */

typedef enum { ALS_SOLVER_CHOLESKY = 0, ALS_SOLVER_CG = 1 } als_solver_t;

typedef struct als_params {
    int rank;            /* k, latent factors per row */
    int iterations;      /* full sweeps (users then items) */
    double lambda;       /* regularisation, scaled by the row's count */
    double alpha;        /* implicit confidence slope: c = 1 + α|r| */
    bool implicit;       /* Hu-Koren-Volinsky instead of explicit ratings */
    als_solver_t solver; /* exact Cholesky or warm-started CG */
    int cg_steps;        /* CG steps per row per half-sweep (CG solver only) */
    uint64_t seed;       /* initial factors */
    int threads;         /* OpenMP threads; 0 = OpenMP default */
} als_params_t;

/* Defaults (grid-searched on ml-100k u1.base → u1.test, README
 * "Recommendations"): rank 20, 15 iterations, λ 0.12, α 1, Cholesky,
 * 3 CG steps, seed 42, threads 0. Explicit: RMSE 0.927; implicit: P@10 0.36
 * against most-popular's 0.21. */
void als_params_default(als_params_t *p);
/* Checks ranges; returns 0 or CORE_ERR_INVAL with a message. */
int als_params_check(const als_params_t *p, char *errstr, size_t errstr_size);

/* Compressed sparse rows: row r holds columns idx[ptr[r] .. ptr[r+1]) with
 * values val[...], column indices strictly increasing within a row. Owned
 * arrays (malloc); als_csr_fini frees them. */
typedef struct als_csr {
    int32_t nrows;
    int32_t ncols;
    int64_t nnz;
    int64_t *ptr; /* nrows + 1 */
    int32_t *idx; /* nnz */
    float *val;   /* nnz */
} als_csr_t;

void als_csr_fini(als_csr_t *m);
/* out = transpose of m (columns become rows, sorted). Returns 0 or NOMEM. */
int als_csr_transpose(const als_csr_t *m, als_csr_t *out);
/* Structural check for CSR from outside (a model blob): monotone ptr,
 * in-range strictly increasing idx, finite values. 0 or CORE_ERR_CORRUPT. */
int als_csr_validate(const als_csr_t *m);

/* Factor matrix: n rows of `rank` floats at x + r*stride (64-byte aligned). */
typedef struct als_factors {
    int32_t n;
    int32_t rank;
    int32_t stride; /* rank rounded up to ALS_STRIDE_ALIGN */
    float *x;       /* n*stride floats, 64-byte aligned, padding zero; als_factors_fini */
} als_factors_t;

static inline int32_t als_stride(int32_t rank)
{
    return (rank + ALS_STRIDE_ALIGN - 1) / ALS_STRIDE_ALIGN * ALS_STRIDE_ALIGN;
}
/* Zeroed factors; returns 0 or CORE_ERR_NOMEM / CORE_ERR_INVAL (size caps). */
int als_factors_init(als_factors_t *f, int32_t n, int32_t rank);
void als_factors_fini(als_factors_t *f);
/* Fills rows with unit-norm Gaussian vectors keyed by (seed, side, row). */
void als_factors_randomize(als_factors_t *f, uint64_t seed, uint32_t side);

static inline const float *als_row(const als_factors_t *f, int32_t r)
{
    return f->x + (size_t)r * (size_t)f->stride;
}

/* Per-iteration report: iteration (1-based), objective after the sweep,
 * seconds since training began. Called on the training thread. */
typedef void (*als_progress_fn)(void *opaque, int iter, double loss, double elapsed_s);

/* Trains U (ui->nrows × rank) and V (ui->ncols × rank) from ratings ui and
 * its transpose iu. U and V are initialised here (caller fini's them, also on
 * error). loss_out, if non-NULL, receives p->iterations losses. Returns 0,
 * CORE_ERR_INVAL (params/shape) or CORE_ERR_NOMEM. */
int als_train(const als_params_t *p, const als_csr_t *ui, const als_csr_t *iu, als_factors_t *U,
              als_factors_t *V, double *loss_out, als_progress_fn progress, void *opaque,
              char *errstr, size_t errstr_size);

/* One half-sweep: solves every row of `out` (rows of `rows`) against the fixed
 * factors `fixed`. Exposed for tests and warm starts. Returns 0 or NOMEM. */
int als_half_sweep(const als_params_t *p, const als_csr_t *rows, const als_factors_t *fixed,
                   als_factors_t *out);

/* The objective above for the given factors (explicit or implicit per p). */
double als_loss(const als_params_t *p, const als_csr_t *ui, const als_csr_t *iu,
                const als_factors_t *U, const als_factors_t *V);

/* Dot product of two factor rows over the padded stride (padding is zero). */
float als_dot(const float *a, const float *b, int32_t stride);

/* Small dense kernels, exposed for the kernel benchmark and tests.
 * als_chol_solve: solves A x = b for symmetric positive definite A (k×k,
 * row-major, lower triangle read and overwritten by its Cholesky factor);
 * b is overwritten by x. Returns 0, or -1 if A is not positive definite. */
int als_chol_solve(double *A, double *b, int k);

#endif
