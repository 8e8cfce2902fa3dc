/*
 * ml_bench — training benchmarks for ml/als (README "Recommendations").
 *
 *   ml_bench kernels            per-row kernels: our Cholesky vs LAPACK dposv,
 *                               our Gram accumulation vs gather + cblas_dsyrk
 *   ml_bench train [options]    seconds per ALS iteration on ml-100k and on a
 *                               generated set, ranks × thread counts, speedup
 *     --ml100k DIR              (default $EDDY_ML100K or ../shared/data/ml-100k)
 *     --ratings N               size of the generated set (default 10000000)
 *     --ranks 10,50,100  --threads 1,2  --iters N (default 1; keep runs short)
 *     --implicit                implicit ALS (CG solver) instead of explicit
 *
 * OpenBLAS is pinned to one thread (openblas_set_num_threads(1)): inside an
 * OpenMP loop every row's call must stay on its own core.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "core/core_time.h"
#include "ml/als.h"
#include "ml/als_data.h"

void openblas_set_num_threads(int n);
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda,
            double *b, const int *ldb, int *info, size_t uplo_len);

static uint64_t g_rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static double urand(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}

/* ---- kernels ------------------------------------------------------------------------- */

static void gram_hand(const float *Y, int n, int k, double *A, double *y)
{
    memset(A, 0, sizeof(double) * k * k);
    for (int r = 0; r < n; r++) {
        for (int a = 0; a < k; a++)
            y[a] = Y[(size_t)r * k + a];
        for (int a = 0; a < k; a++) {
            double t = y[a];
            double *Aa = A + (size_t)a * k;
            for (int c = 0; c <= a; c++)
                Aa[c] += t * y[c];
        }
    }
}

static void gram_blas(const float *Y, int n, int k, double *A, double *G)
{
    for (size_t j = 0; j < (size_t)n * k; j++)
        G[j] = Y[j];
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, k, n, 1.0, G, k, 0.0, A, k);
}

static void spd(double *A, int k, const float *Y, int n)
{
    double *y = malloc(sizeof(double) * k);
    gram_hand(Y, n, k, A, y);
    for (int a = 0; a < k; a++)
        A[a * k + a] += 0.1 * n;
    for (int a = 0; a < k; a++)
        for (int c = a + 1; c < k; c++)
            A[a * k + c] = A[c * k + a];
    free(y);
}

static int cmd_kernels(void)
{
    openblas_set_num_threads(1);
    int ks[] = {4, 8, 10, 20, 50, 100};
    const size_t nks = sizeof(ks) / sizeof(ks[0]);
    int ns[] = {20, 200, 2000};
    printf("| k | solve: ours (µs) | LAPACK dposv (µs) | LAPACK / ours |\n|---|---|---|---|\n");
    for (size_t a = 0; a < nks; a++) {
        int k = ks[a];
        float *Y = malloc(sizeof(float) * 200 * k);
        for (int j = 0; j < 200 * k; j++)
            Y[j] = (float)(urand() - 0.5);
        double *A0 = malloc(sizeof(double) * k * k), *A = malloc(sizeof(double) * k * k);
        double *b = malloc(sizeof(double) * k);
        spd(A0, k, Y, 200);
        int reps = 200000 / (k * k / 10 + 1) + 50;
        double t_ours, t_lap, sink = 0;
        int64_t t0 = core_mono_us();
        for (int r = 0; r < reps; r++) {
            memcpy(A, A0, sizeof(double) * k * k);
            for (int j = 0; j < k; j++)
                b[j] = 1.0 + j;
            als_chol_solve(A, b, k);
            sink += b[0];
        }
        t_ours = (double)(core_mono_us() - t0) / reps;
        t0 = core_mono_us();
        for (int r = 0; r < reps; r++) {
            memcpy(A, A0, sizeof(double) * k * k);
            for (int j = 0; j < k; j++)
                b[j] = 1.0 + j;
            int n = k, nrhs = 1, info;
            dposv_("U", &n, &nrhs, A, &n, b, &n, &info, 1);
            sink += b[0];
        }
        t_lap = (double)(core_mono_us() - t0) / reps;
        printf("| %d | %.2f | %.2f | %.2f× |%s\n", k, t_ours, t_lap, t_lap / t_ours,
               sink == 12345 ? " " : "");
        free(Y);
        free(A0);
        free(A);
        free(b);
    }
    printf("\n| k | n (ratings in row) | Gram: ours (µs) | gather+cblas_dsyrk (µs) | ratio |\n"
           "|---|---|---|---|---|\n");
    for (size_t a = 2; a < nks; a++)
        for (size_t c = 0; c < 3; c++) {
            int k = ks[a], n = ns[c];
            float *Y = malloc(sizeof(float) * n * k);
            for (int j = 0; j < n * k; j++)
                Y[j] = (float)(urand() - 0.5);
            double *A = malloc(sizeof(double) * k * k), *G = malloc(sizeof(double) * n * k);
            double *y = malloc(sizeof(double) * k);
            int reps = (int)(2e8 / ((double)n * k * k) + 3);
            int64_t t0 = core_mono_us();
            for (int r = 0; r < reps; r++)
                gram_hand(Y, n, k, A, y);
            double th = (double)(core_mono_us() - t0) / reps;
            t0 = core_mono_us();
            for (int r = 0; r < reps; r++)
                gram_blas(Y, n, k, A, G);
            double tb = (double)(core_mono_us() - t0) / reps;
            printf("| %d | %d | %.1f | %.1f | %.2f× |\n", k, n, th, tb, th / tb);
            free(Y);
            free(A);
            free(G);
            free(y);
        }
    return 0;
}

/* ---- training ------------------------------------------------------------------------ */

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c)
            break;
        s = c + 1;
    }
    return n;
}

/* Generated set: nu users, ni items, popularity skewed (items drawn from a
 * power law), ratings from a rank-8 model. */
static void gen_ratings(als_obs_t *o, long n)
{
    const int nu = (int)(n / 100 > 1000 ? n / 100 : 1000), ni = nu / 5 > 500 ? nu / 5 : 500;
    char us[24], is[24];
    for (int u = 0; u < nu; u++) {
        snprintf(us, sizeof(us), "u%d", u);
        als_idmap_intern(&o->users, us, strlen(us));
    }
    for (int i = 0; i < ni; i++) {
        snprintf(is, sizeof(is), "i%d", i);
        als_idmap_intern(&o->items, is, strlen(is));
    }
    for (long j = 0; j < n; j++) {
        int u = (int)(rnd() % (uint64_t)nu);
        int i = (int)(pow(urand(), 2.0) * ni);
        if (i >= ni)
            i = ni - 1;
        als_obs_add_ids(o, u, i, (float)(1 + rnd() % 5), j);
    }
}

/* CPU time of the whole process: on a shared machine, wall time also
 * measures the neighbours; CPU seconds measure only us. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bench_set(const char *name, const als_obs_t *o, const int *ranks, int nr,
                      const int *threads, int nt, int iters, int implicit)
{
    als_csr_t ui, iu;
    if (als_obs_build(o, implicit ? ALS_REDUCE_SUM : ALS_REDUCE_LATEST, &ui, &iu)) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    printf("\n%s: %d users, %d items, %lld ratings, %s ALS (%s), %d iteration(s) per run\n\n", name,
           ui.nrows, ui.ncols, (long long)ui.nnz, implicit ? "implicit" : "explicit",
           implicit ? "CG, 3 steps" : "Cholesky", iters);
    printf("| rank |");
    for (int t = 0; t < nt; t++)
        printf(" %d thread%s: s/iter (CPU-s/iter) |", threads[t], threads[t] > 1 ? "s" : "");
    printf(" speedup |\n|---|");
    for (int t = 0; t <= nt; t++)
        printf("---|");
    printf("\n");
    for (int r = 0; r < nr; r++) {
        double secs[8] = {0}, cpu[8] = {0};
        for (int t = 0; t < nt && t < 8; t++) {
            als_params_t p;
            als_params_default(&p);
            p.rank = ranks[r];
            p.iterations = iters;
            p.implicit = implicit;
            p.solver = implicit ? ALS_SOLVER_CG : ALS_SOLVER_CHOLESKY;
            p.threads = threads[t];
            als_factors_t U, V;
            char err[256];
            int64_t t0 = core_mono_us();
            double c0 = cpu_seconds();
            if (als_train(&p, &ui, &iu, &U, &V, NULL, NULL, NULL, err, sizeof(err))) {
                fprintf(stderr, "%s\n", err);
                exit(1);
            }
            secs[t] = (double)(core_mono_us() - t0) / 1e6 / iters;
            cpu[t] = (cpu_seconds() - c0) / iters;
            als_factors_fini(&U);
            als_factors_fini(&V);
        }
        printf("| %d |", ranks[r]);
        for (int t = 0; t < nt; t++)
            printf(" %.3f (%.3f) |", secs[t], cpu[t]);
        printf(" %.2f× |\n", nt > 1 ? secs[0] / secs[nt - 1] : 1.0);
        fflush(stdout);
    }
    als_csr_fini(&ui);
    als_csr_fini(&iu);
}

static int cmd_train(int argc, char **argv)
{
    openblas_set_num_threads(1);
    const char *dir = getenv("EDDY_ML100K");
    long nratings = 10000000;
    int ranks[8] = {10, 50, 100}, nr = 3, threads[8] = {1, 2}, nt = 2, iters = 1, implicit = 0;
    for (int j = 0; j < argc; j++) {
        if (!strcmp(argv[j], "--ml100k") && j + 1 < argc)
            dir = argv[++j];
        else if (!strcmp(argv[j], "--ratings") && j + 1 < argc)
            nratings = atol(argv[++j]);
        else if (!strcmp(argv[j], "--ranks") && j + 1 < argc)
            nr = parse_list(argv[++j], ranks, 8);
        else if (!strcmp(argv[j], "--threads") && j + 1 < argc)
            nt = parse_list(argv[++j], threads, 8);
        else if (!strcmp(argv[j], "--iters") && j + 1 < argc)
            iters = atoi(argv[++j]);
        else if (!strcmp(argv[j], "--implicit"))
            implicit = 1;
        else {
            fprintf(stderr, "ml_bench train: unknown argument %s\n", argv[j]);
            return 2;
        }
    }
    if (iters < 1)
        iters = 1;
    char path[4096];
    snprintf(path, sizeof(path), "%s/u.data", dir ? dir : "../shared/data/ml-100k");
    als_obs_t o;
    als_obs_init(&o);
    char err[256];
    if (als_load_movielens(&o, path, err, sizeof(err)) == 0)
        bench_set("ml-100k u.data", &o, ranks, nr, threads, nt, iters * 5, implicit);
    else
        printf("ml-100k not found (%s): skipped\n", err);
    als_obs_fini(&o);
    if (nratings > 0) {
        als_obs_init(&o);
        gen_ratings(&o, nratings);
        char name[64];
        snprintf(name, sizeof(name), "generated %ldM ratings", nratings / 1000000);
        bench_set(name, &o, ranks, nr, threads, nt, iters, implicit);
        als_obs_fini(&o);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "kernels"))
        return cmd_kernels();
    if (argc >= 2 && !strcmp(argv[1], "train"))
        return cmd_train(argc - 2, argv + 2);
    fprintf(stderr, "usage: ml_bench kernels | train [--ml100k DIR] [--ratings N] [--ranks 10,50,100] "
                    "[--threads 1,2] [--iters N] [--implicit]\n");
    return 2;
}
