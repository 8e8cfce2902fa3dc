/* als — see als.h for the design. */
#include "ml/als.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include <cblas.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "core/core_time.h"

/* Rows per chunk in the fixed-order reductions (YᵀY, loss). Independent of
 * the thread count: that is what makes the sums bit-identical. */
#define ALS_REDUCE_CHUNK 1024
/* Rows per OpenMP work unit: rows differ a lot in cost (n_u), so dynamic. */
#define ALS_SCHED_CHUNK 16
/* Fixed-side rows gathered per dsyrk call (bounds the per-thread buffer:
 * 256 × k doubles, 200 KiB at k = 100, whatever a row's count). */
#define ALS_GRAM_BLOCK 256
/* Below this rank our Cholesky beats LAPACK's call overhead (measured,
 * bench/ml_bench kernels: ours 1.1–1.7× faster at k = 4; LAPACK's dposv
 * 1.15× faster at k = 8, 1.35× at 10, 2× at 20, 2.2–2.4× at 50–100). */
#define ALS_HAND_CHOL_MAX_K 6

/* OpenBLAS must not start threads of its own inside our OpenMP loops (the
 * OpenMP build we link already runs serially inside a parallel region; this
 * covers the pthread fallback of ml/CMakeLists.txt). */
void openblas_set_num_threads(int num_threads);
/* LAPACK (bundled in OpenBLAS), Fortran calling convention. */
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda,
            double *b, const int *ldb, int *info, size_t uplo_len);

void als_params_default(als_params_t *p)
{
    memset(p, 0, sizeof(*p));
    p->rank = 20;
    p->iterations = 15;
    p->lambda = 0.12;
    p->alpha = 1.0;
    p->implicit = false;
    p->solver = ALS_SOLVER_CHOLESKY;
    p->cg_steps = 3;
    p->seed = 42;
    p->threads = 0;
}

int als_params_check(const als_params_t *p, char *errstr, size_t errstr_size)
{
    if (p->rank < 1 || p->rank > ALS_MAX_RANK)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "rank must be 1..%d", ALS_MAX_RANK);
    if (p->iterations < 0 || p->iterations > ALS_MAX_ITERATIONS)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "iterations must be 0..%d",
                         ALS_MAX_ITERATIONS);
    if (!(p->lambda >= 0) || !isfinite(p->lambda))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "lambda must be a finite number >= 0");
    if (!(p->alpha >= 0) || !isfinite(p->alpha))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "alpha must be a finite number >= 0");
    if (p->solver != ALS_SOLVER_CHOLESKY && p->solver != ALS_SOLVER_CG)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "unknown solver");
    if (p->solver == ALS_SOLVER_CG && (p->cg_steps < 1 || p->cg_steps > ALS_MAX_RANK))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "cg_steps must be 1..%d",
                         ALS_MAX_RANK);
    if (p->threads < 0 || p->threads > 1024)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "threads must be 0..1024");
    return CORE_OK;
}

/* ---- CSR ------------------------------------------------------------------- */

void als_csr_fini(als_csr_t *m)
{
    free(m->ptr);
    free(m->idx);
    free(m->val);
    memset(m, 0, sizeof(*m));
}

int als_csr_transpose(const als_csr_t *m, als_csr_t *out)
{
    memset(out, 0, sizeof(*out));
    out->nrows = m->ncols;
    out->ncols = m->nrows;
    out->nnz = m->nnz;
    out->ptr = core_trymalloc(((size_t)m->ncols + 1) * sizeof(int64_t));
    out->idx = core_trymalloc((size_t)(m->nnz ? m->nnz : 1) * sizeof(int32_t));
    out->val = core_trymalloc((size_t)(m->nnz ? m->nnz : 1) * sizeof(float));
    if (!out->ptr || !out->idx || !out->val) {
        als_csr_fini(out);
        return CORE_ERR_NOMEM;
    }
    memset(out->ptr, 0, ((size_t)m->ncols + 1) * sizeof(int64_t));
    for (int64_t e = 0; e < m->nnz; e++)
        out->ptr[m->idx[e] + 1]++;
    for (int32_t c = 0; c < m->ncols; c++)
        out->ptr[c + 1] += out->ptr[c];
    /* Counting sort: visiting source rows in order keeps each output row's
     * column indices (source row numbers) increasing. */
    int64_t *fill = core_trymalloc(((size_t)m->ncols + 1) * sizeof(int64_t));
    if (!fill) {
        als_csr_fini(out);
        return CORE_ERR_NOMEM;
    }
    memcpy(fill, out->ptr, ((size_t)m->ncols + 1) * sizeof(int64_t));
    for (int32_t r = 0; r < m->nrows; r++) {
        for (int64_t e = m->ptr[r]; e < m->ptr[r + 1]; e++) {
            int64_t d = fill[m->idx[e]]++;
            out->idx[d] = r;
            out->val[d] = m->val[e];
        }
    }
    free(fill);
    return CORE_OK;
}

int als_csr_validate(const als_csr_t *m)
{
    if (m->nrows < 0 || m->ncols < 0 || m->nnz < 0 || !m->ptr)
        return CORE_ERR_CORRUPT;
    if (m->ptr[0] != 0 || m->ptr[m->nrows] != m->nnz)
        return CORE_ERR_CORRUPT;
    for (int32_t r = 0; r < m->nrows; r++) {
        if (m->ptr[r + 1] < m->ptr[r] || m->ptr[r + 1] > m->nnz)
            return CORE_ERR_CORRUPT;
        int32_t prev = -1;
        for (int64_t e = m->ptr[r]; e < m->ptr[r + 1]; e++) {
            if (m->idx[e] <= prev || m->idx[e] >= m->ncols || !isfinite(m->val[e]))
                return CORE_ERR_CORRUPT;
            prev = m->idx[e];
        }
    }
    return CORE_OK;
}

/* ---- factors --------------------------------------------------------------- */

int als_factors_init(als_factors_t *f, int32_t n, int32_t rank)
{
    memset(f, 0, sizeof(*f));
    if (n < 0 || n > ALS_MAX_ROWS || rank < 1 || rank > ALS_MAX_RANK)
        return CORE_ERR_INVAL;
    f->n = n;
    f->rank = rank;
    f->stride = als_stride(rank);
    size_t bytes = (size_t)n * (size_t)f->stride * sizeof(float);
    if (bytes == 0)
        bytes = 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0)
        return CORE_ERR_NOMEM;
    memset(p, 0, bytes);
    f->x = p;
    return CORE_OK;
}

void als_factors_fini(als_factors_t *f)
{
    free(f->x);
    memset(f, 0, sizeof(*f));
}

static inline uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double unit_uniform(uint64_t *s)
{
    return ((double)(splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

void als_factors_randomize(als_factors_t *f, uint64_t seed, uint32_t side)
{
    for (int32_t r = 0; r < f->n; r++) {
        uint64_t s = seed ^ ((uint64_t)side << 56) ^ ((uint64_t)r * 0xD1B54A32D192ED03ull);
        float *x = f->x + (size_t)r * f->stride;
        double nrm = 0;
        for (int32_t a = 0; a < f->rank; a += 2) {
            /* Box-Muller: two Gaussians per pair of uniforms. */
            double u1 = unit_uniform(&s), u2 = unit_uniform(&s);
            double rad = sqrt(-2.0 * log(u1));
            x[a] = (float)(rad * cos(2 * M_PI * u2));
            if (a + 1 < f->rank)
                x[a + 1] = (float)(rad * sin(2 * M_PI * u2));
        }
        for (int32_t a = 0; a < f->rank; a++)
            nrm += (double)x[a] * x[a];
        nrm = nrm > 0 ? 1.0 / sqrt(nrm) : 0;
        for (int32_t a = 0; a < f->rank; a++)
            x[a] = (float)(x[a] * nrm);
    }
}

float als_dot(const float *a, const float *b, int32_t stride)
{
    float s = 0;
    for (int32_t j = 0; j < stride; j++)
        s += a[j] * b[j];
    return s;
}

/* ---- dense kernels ----------------------------------------------------------- */

int als_chol_solve(double *A, double *b, int k)
{
    /* Right-looking is not needed at this size: a plain row-oriented
     * Cholesky–Crout, inner loops over contiguous memory. */
    for (int i = 0; i < k; i++) {
        double *Ai = A + (size_t)i * k;
        for (int j = 0; j <= i; j++) {
            const double *Aj = A + (size_t)j * k;
            double s = Ai[j];
            for (int p = 0; p < j; p++)
                s -= Ai[p] * Aj[p];
            if (j == i) {
                if (!(s > 0))
                    return -1;
                Ai[i] = sqrt(s);
            } else {
                Ai[j] = s / Aj[j];
            }
        }
    }
    /* L y = b */
    for (int i = 0; i < k; i++) {
        const double *Ai = A + (size_t)i * k;
        double s = b[i];
        for (int p = 0; p < i; p++)
            s -= Ai[p] * b[p];
        b[i] = s / Ai[i];
    }
    /* Lᵀ x = y */
    for (int i = k - 1; i >= 0; i--) {
        double s = b[i];
        for (int p = i + 1; p < k; p++)
            s -= A[(size_t)p * k + i] * b[p];
        b[i] = s / A[(size_t)i * k + i];
    }
    return 0;
}

/* Thread count for a parallel loop of about `flops` multiply-adds. An
 * explicit p->threads is obeyed; with 0 (auto) small loops stay on fewer
 * threads, because below a few milliseconds of work the barrier and the
 * spin-waiting of idle OpenMP threads cost more than they save (measured on
 * ml-100k: rank 10 took 3× longer on 2 threads). Results do not depend on
 * the choice (see als.h, Determinism). */
#define ALS_FLOPS_PER_THREAD 2e7
static int pick_threads(const als_params_t *p, double flops)
{
    if (p->threads > 0)
        return p->threads;
    int max = omp_get_max_threads();
    double want = 1 + flops / ALS_FLOPS_PER_THREAD;
    return want >= max ? max : (int)want;
}

/* Per-thread scratch for one row's solve. */
typedef struct als_scratch {
    double *A;  /* k*k */
    double *b;  /* k */
    double *y;  /* k: one fixed-side row in double */
    double *x;  /* k */
    double *r;  /* k (CG) */
    double *pv; /* k (CG) */
    double *Ap; /* k (CG) */
    double *G;  /* ALS_GRAM_BLOCK × k: weighted fixed-side rows for dsyrk */
} als_scratch_t;

static int scratch_init(als_scratch_t *s, int k)
{
    double *m = core_trymalloc(((size_t)k * k + 6 * (size_t)k + (size_t)ALS_GRAM_BLOCK * k) *
                               sizeof(double));
    if (!m)
        return CORE_ERR_NOMEM;
    s->A = m;
    s->b = m + (size_t)k * k;
    s->y = s->b + k;
    s->x = s->y + k;
    s->r = s->x + k;
    s->pv = s->r + k;
    s->Ap = s->pv + k;
    s->G = s->Ap + k;
    return 0;
}

/* Weight of an observed entry in the Gram matrix and the right-hand side. */
static inline void entry_weights(const als_params_t *p, float v, double *gram_w, double *rhs_w)
{
    if (p->implicit) {
        double c = 1.0 + p->alpha * fabs((double)v);
        *gram_w = c - 1.0;
        *rhs_w = v > 0 ? c : 0.0;
    } else {
        *gram_w = 1.0;
        *rhs_w = v;
    }
}

/* Accumulates the lower triangle of base + Σ w y yᵀ + reg·I into A (row-major)
 * and Σ rhs_w y into b. The Σ w y yᵀ part gathers √w·y rows into blocks and
 * hands each block to cblas_dsyrk: 1.3–3.5× faster than our best loop at
 * every (k, n) we measured (bench/ml_bench kernels). */
static void form_normal(const als_params_t *p, const als_csr_t *rows, int32_t r,
                        const als_factors_t *fixed, const double *base, double reg,
                        als_scratch_t *s)
{
    const int k = p->rank;
    if (base)
        memcpy(s->A, base, (size_t)k * k * sizeof(double));
    else
        memset(s->A, 0, (size_t)k * k * sizeof(double));
    memset(s->b, 0, (size_t)k * sizeof(double));
    int nb = 0;
    for (int64_t e = rows->ptr[r]; e < rows->ptr[r + 1]; e++) {
        const float *yf = als_row(fixed, rows->idx[e]);
        double gw, rw;
        entry_weights(p, rows->val[e], &gw, &rw);
        double sw = sqrt(gw);
        double *g = s->G + (size_t)nb * k;
        for (int a = 0; a < k; a++) {
            g[a] = sw * yf[a];
            s->b[a] += rw * yf[a];
        }
        if (++nb == ALS_GRAM_BLOCK) {
            cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, k, nb, 1.0, s->G, k, 1.0, s->A, k);
            nb = 0;
        }
    }
    if (nb)
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, k, nb, 1.0, s->G, k, 1.0, s->A, k);
    for (int a = 0; a < k; a++)
        s->A[(size_t)a * k + a] += reg;
}

/* Solves the normal equations in s (A lower, row-major; b). 0 or -1 (not
 * positive definite). A row-major lower triangle is a column-major upper
 * one, so LAPACK's dposv reads it in place (no transposed copy). */
static int solve_normal(als_scratch_t *s, int k)
{
    if (k < ALS_HAND_CHOL_MAX_K)
        return als_chol_solve(s->A, s->b, k);
    int n = k, nrhs = 1, info = 0;
    dposv_("U", &n, &nrhs, s->A, &n, s->b, &n, &info, 1);
    return info == 0 ? 0 : -1;
}

/* out = (base + reg I + Σ w y yᵀ) v without forming the matrix. base is full
 * symmetric (both triangles) when given. */
static void implicit_matvec(const als_params_t *p, const als_csr_t *rows, int32_t r,
                            const als_factors_t *fixed, const double *base, double reg,
                            const double *v, double *out)
{
    const int k = p->rank;
    if (base) {
        for (int a = 0; a < k; a++) {
            const double *Ba = base + (size_t)a * k;
            double t = 0;
            for (int c = 0; c < k; c++)
                t += Ba[c] * v[c];
            out[a] = t + reg * v[a];
        }
    } else {
        for (int a = 0; a < k; a++)
            out[a] = reg * v[a];
    }
    for (int64_t e = rows->ptr[r]; e < rows->ptr[r + 1]; e++) {
        const float *yf = als_row(fixed, rows->idx[e]);
        double gw, rw;
        entry_weights(p, rows->val[e], &gw, &rw);
        if (gw == 0)
            continue;
        double t = 0;
        for (int a = 0; a < k; a++)
            t += (double)yf[a] * v[a];
        t *= gw;
        for (int a = 0; a < k; a++)
            out[a] += t * yf[a];
    }
}

static void solve_row_cg(const als_params_t *p, const als_csr_t *rows, int32_t r,
                         const als_factors_t *fixed, const double *base, double reg, float *xrow,
                         als_scratch_t *s)
{
    const int k = p->rank;
    /* b = Σ rhs_w y */
    memset(s->b, 0, (size_t)k * sizeof(double));
    for (int64_t e = rows->ptr[r]; e < rows->ptr[r + 1]; e++) {
        const float *yf = als_row(fixed, rows->idx[e]);
        double gw, rw;
        entry_weights(p, rows->val[e], &gw, &rw);
        for (int a = 0; a < k; a++)
            s->b[a] += rw * yf[a];
    }
    for (int a = 0; a < k; a++)
        s->x[a] = xrow[a];
    implicit_matvec(p, rows, r, fixed, base, reg, s->x, s->Ap);
    double rr = 0;
    for (int a = 0; a < k; a++) {
        s->r[a] = s->b[a] - s->Ap[a];
        s->pv[a] = s->r[a];
        rr += s->r[a] * s->r[a];
    }
    for (int it = 0; it < p->cg_steps && rr > 1e-30; it++) {
        implicit_matvec(p, rows, r, fixed, base, reg, s->pv, s->Ap);
        double pAp = 0;
        for (int a = 0; a < k; a++)
            pAp += s->pv[a] * s->Ap[a];
        if (!(pAp > 0))
            break;
        double step = rr / pAp, rr_new = 0;
        for (int a = 0; a < k; a++) {
            s->x[a] += step * s->pv[a];
            s->r[a] -= step * s->Ap[a];
            rr_new += s->r[a] * s->r[a];
        }
        double beta = rr_new / rr;
        for (int a = 0; a < k; a++)
            s->pv[a] = s->r[a] + beta * s->pv[a];
        rr = rr_new;
    }
    for (int a = 0; a < k; a++)
        xrow[a] = (float)s->x[a];
}

/* YᵀY (full symmetric, k×k double) of `fixed`, summed over fixed chunks in
 * order so the result does not depend on the thread count. */
static int compute_gram(const als_params_t *p, const als_factors_t *fixed, double *G)
{
    const int k = p->rank;
    const int32_t nchunks = (fixed->n + ALS_REDUCE_CHUNK - 1) / ALS_REDUCE_CHUNK;
    double *parts = core_trymalloc(((size_t)nchunks + 1) * (size_t)k * k * sizeof(double));
    if (!parts)
        return CORE_ERR_NOMEM;
    int threads = pick_threads(p, (double)fixed->n * k * k);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int32_t c = 0; c < nchunks; c++) {
        double *P = parts + (size_t)c * k * k;
        double y[ALS_MAX_RANK];
        memset(P, 0, (size_t)k * k * sizeof(double));
        int32_t end = (c + 1) * ALS_REDUCE_CHUNK;
        if (end > fixed->n)
            end = fixed->n;
        for (int32_t r = c * ALS_REDUCE_CHUNK; r < end; r++) {
            const float *yf = als_row(fixed, r);
            for (int a = 0; a < k; a++)
                y[a] = yf[a];
            for (int a = 0; a < k; a++) {
                double t = y[a];
                double *Pa = P + (size_t)a * k;
                for (int b = 0; b <= a; b++)
                    Pa[b] += t * y[b];
            }
        }
    }
    memset(G, 0, (size_t)k * k * sizeof(double));
    for (int32_t c = 0; c < nchunks; c++) {
        const double *P = parts + (size_t)c * k * k;
        for (size_t j = 0; j < (size_t)k * k; j++)
            G[j] += P[j];
    }
    for (int a = 0; a < k; a++)
        for (int b = a + 1; b < k; b++)
            G[(size_t)a * k + b] = G[(size_t)b * k + a];
    free(parts);
    return CORE_OK;
}

int als_half_sweep(const als_params_t *p, const als_csr_t *rows, const als_factors_t *fixed,
                   als_factors_t *out)
{
    const int k = p->rank;
    double *G = NULL;
    int err = CORE_OK;
    if (p->implicit) {
        G = core_trymalloc((size_t)k * k * sizeof(double));
        if (!G)
            return CORE_ERR_NOMEM;
        if ((err = compute_gram(p, fixed, G)) != CORE_OK) {
            free(G);
            return err;
        }
    }
    int threads = pick_threads(p, (double)rows->nnz * k * k + (double)rows->nrows * k * k * k / 3);
    int failed = 0;
    openblas_set_num_threads(1);
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        als_scratch_t s;
        if (scratch_init(&s, k) != 0) {
            failed = 1;
        } else {
#pragma omp for schedule(dynamic, ALS_SCHED_CHUNK)
            for (int32_t r = 0; r < rows->nrows; r++) {
                float *xrow = out->x + (size_t)r * out->stride;
                int64_t n = rows->ptr[r + 1] - rows->ptr[r];
                if (n == 0) {
                    /* No observations: the minimiser is 0 in both forms. */
                    memset(xrow, 0, (size_t)k * sizeof(float));
                    continue;
                }
                double reg = p->lambda * (double)n;
                if (p->solver == ALS_SOLVER_CG) {
                    solve_row_cg(p, rows, r, fixed, G, reg, xrow, &s);
                } else {
                    form_normal(p, rows, r, fixed, G, reg, &s);
                    if (solve_normal(&s, k) == 0) {
                        for (int a = 0; a < k; a++)
                            xrow[a] = (float)s.b[a];
                    }
                    /* else: singular (λ = 0 and too few observations);
                     * keep the previous factor rather than emit NaN. */
                }
            }
            free(s.A);
        }
    }
    free(G);
    return failed ? CORE_ERR_NOMEM : CORE_OK;
}

double als_loss(const als_params_t *p, const als_csr_t *ui, const als_csr_t *iu,
                const als_factors_t *U, const als_factors_t *V)
{
    const int k = p->rank;
    const int32_t nu = ui->nrows, ni = iu->nrows;
    double *G = NULL;
    if (p->implicit) {
        G = core_xmalloc((size_t)k * k * sizeof(double));
        if (compute_gram(p, V, G) != CORE_OK) {
            free(G);
            return NAN;
        }
    }
    const int32_t nchunks_u = (nu + ALS_REDUCE_CHUNK - 1) / ALS_REDUCE_CHUNK;
    const int32_t nchunks_i = (ni + ALS_REDUCE_CHUNK - 1) / ALS_REDUCE_CHUNK;
    double *parts = core_xcalloc((size_t)nchunks_u + nchunks_i + 1, sizeof(double));
    int threads = pick_threads(p, (double)ui->nnz * k + (double)nu * k * k);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int32_t c = 0; c < nchunks_u + nchunks_i; c++) {
        double acc = 0;
        if (c < nchunks_u) {
            int32_t end = (c + 1) * ALS_REDUCE_CHUNK;
            if (end > nu)
                end = nu;
            for (int32_t u = c * ALS_REDUCE_CHUNK; u < end; u++) {
                const float *x = als_row(U, u);
                int64_t n = ui->ptr[u + 1] - ui->ptr[u];
                double xx = 0;
                for (int a = 0; a < k; a++)
                    xx += (double)x[a] * x[a];
                acc += p->lambda * (double)n * xx;
                if (p->implicit) {
                    /* Σ_all (x·y)² = xᵀ G x, then correct observed pairs:
                     * + c(p − s)² − s². */
                    double q = 0;
                    for (int a = 0; a < k; a++) {
                        double t = 0;
                        for (int b = 0; b < k; b++)
                            t += G[(size_t)a * k + b] * x[b];
                        q += x[a] * t;
                    }
                    acc += q;
                }
                for (int64_t e = ui->ptr[u]; e < ui->ptr[u + 1]; e++) {
                    const float *y = als_row(V, ui->idx[e]);
                    double s = 0;
                    for (int a = 0; a < k; a++)
                        s += (double)x[a] * y[a];
                    double v = ui->val[e];
                    if (p->implicit) {
                        double conf = 1.0 + p->alpha * fabs(v);
                        double pref = v > 0 ? 1.0 : 0.0;
                        acc += conf * (pref - s) * (pref - s) - s * s;
                    } else {
                        acc += (v - s) * (v - s);
                    }
                }
            }
        } else {
            int32_t ci = c - nchunks_u;
            int32_t end = (ci + 1) * ALS_REDUCE_CHUNK;
            if (end > ni)
                end = ni;
            for (int32_t i = ci * ALS_REDUCE_CHUNK; i < end; i++) {
                const float *y = als_row(V, i);
                int64_t n = iu->ptr[i + 1] - iu->ptr[i];
                double yy = 0;
                for (int a = 0; a < k; a++)
                    yy += (double)y[a] * y[a];
                acc += p->lambda * (double)n * yy;
            }
        }
        parts[c] = acc;
    }
    double total = 0;
    for (int32_t c = 0; c < nchunks_u + nchunks_i; c++)
        total += parts[c];
    free(parts);
    free(G);
    return total;
}

int als_train(const als_params_t *p, const als_csr_t *ui, const als_csr_t *iu, als_factors_t *U,
              als_factors_t *V, double *loss_out, als_progress_fn progress, void *opaque,
              char *errstr, size_t errstr_size)
{
    int err;
    memset(U, 0, sizeof(*U));
    memset(V, 0, sizeof(*V));
    if ((err = als_params_check(p, errstr, errstr_size)) != CORE_OK)
        return err;
    if (ui->nrows != iu->ncols || ui->ncols != iu->nrows || ui->nnz != iu->nnz)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "user→item and item→user matrices disagree");
    if ((err = als_factors_init(U, ui->nrows, p->rank)) != CORE_OK ||
        (err = als_factors_init(V, ui->ncols, p->rank)) != CORE_OK)
        return core_errf(err, errstr, errstr_size, "cannot allocate factors (%d users, %d items)",
                         ui->nrows, ui->ncols);
    /* U is random too: the CG solver warm-starts from it. */
    als_factors_randomize(U, p->seed, 1);
    als_factors_randomize(V, p->seed, 2);
    int64_t t0 = core_mono_us();
    for (int it = 0; it < p->iterations; it++) {
        if ((err = als_half_sweep(p, ui, V, U)) != CORE_OK ||
            (err = als_half_sweep(p, iu, U, V)) != CORE_OK)
            return core_errf(err, errstr, errstr_size, "out of memory in sweep %d", it + 1);
        if (loss_out || progress) {
            double loss = als_loss(p, ui, iu, U, V);
            if (loss_out)
                loss_out[it] = loss;
            if (progress)
                progress(opaque, it + 1, loss, (double)(core_mono_us() - t0) / 1e6);
        }
    }
    return CORE_OK;
}
