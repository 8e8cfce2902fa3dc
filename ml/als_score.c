/* als_score — see als_score.h. Built with -O3 (ml/CMakeLists.txt). */
#include "ml/als_score.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>

#include "core/core_err.h"

void als_topk__sift_up(als_topk_t *t, int32_t j)
{
    als_scored_t c = t->h[j];
    while (j > 0) {
        int32_t parent = (j - 1) / 2;
        if (!als_scored_worse(c, t->h[parent]))
            break;
        t->h[j] = t->h[parent];
        j = parent;
    }
    t->h[j] = c;
}

void als_topk__sift_down(als_topk_t *t, int32_t j)
{
    als_scored_t c = t->h[j];
    for (;;) {
        int32_t l = 2 * j + 1, m = j;
        als_scored_t mv = c;
        if (l < t->n && als_scored_worse(t->h[l], mv)) {
            m = l;
            mv = t->h[l];
        }
        if (l + 1 < t->n && als_scored_worse(t->h[l + 1], mv))
            m = l + 1;
        if (m == j)
            break;
        t->h[j] = t->h[m];
        j = m;
    }
    t->h[j] = c;
}

static int cmp_best_first(const void *a, const void *b)
{
    als_scored_t x = *(const als_scored_t *)a, y = *(const als_scored_t *)b;
    if (als_scored_worse(y, x))
        return -1;
    if (als_scored_worse(x, y))
        return 1;
    return 0;
}

void als_topk_sort(als_topk_t *t)
{
    if (t->n > 32) {
        qsort(t->h, (size_t)t->n, sizeof(als_scored_t), cmp_best_first);
        return;
    }
    /* the usual page of results: insertion sort, no calls per comparison */
    for (int32_t a = 1; a < t->n; a++) {
        als_scored_t c = t->h[a];
        int32_t b = a;
        for (; b > 0 && als_scored_worse(t->h[b - 1], c); b--)
            t->h[b] = t->h[b - 1];
        t->h[b] = c;
    }
}

/* One kernel per stride class keeps the inner loop's trip count a multiple
 * of 16 the compiler can see; the outer loop walks aligned rows. */
/* gcc only: clang 14 emits no resolver for target_clones in instrumented
 * (libFuzzer) builds, so the symbol goes missing at link time there. */
#if defined(__clang__)
#define ALS_TARGET_CLONES
#else
#define ALS_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
ALS_TARGET_CLONES void
als_score_all(const float *x, const als_factors_t *V, float *out)
{
    const int32_t stride = V->stride, n = V->n;
    const float *restrict base = __builtin_assume_aligned(V->x, 64);
    const float *restrict q = x;
    for (int32_t i = 0; i < n; i++) {
        const float *restrict y = __builtin_assume_aligned(base + (size_t)i * stride, 64);
        float s = 0;
        for (int32_t j = 0; j < stride; j++)
            s += q[j] * y[j];
        out[i] = s;
    }
}

float *als_panel_build(const als_factors_t *V)
{
    const size_t nb = ((size_t)V->n + ALS_PANEL - 1) / ALS_PANEL;
    size_t bytes = nb * (size_t)V->rank * ALS_PANEL * sizeof(float);
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return NULL;
    float *P = p;
    memset(P, 0, bytes);
    for (int32_t i = 0; i < V->n; i++) {
        const float *y = als_row(V, i);
        float *blk = P + (size_t)(i / ALS_PANEL) * V->rank * ALS_PANEL;
        for (int32_t a = 0; a < V->rank; a++)
            blk[(size_t)a * ALS_PANEL + i % ALS_PANEL] = y[a];
    }
    return P;
}

/* GCC/clang vector extension: one 16-float accumulator per block, which
 * the compiler maps to two ymm or four xmm registers (CPUs without
 * AVX-512; AVX-512 CPUs run score_panel_avx512). */
typedef float als_v16 __attribute__((vector_size(64)));

#if defined(__clang__)
#define ALS_PANEL_CLONES
#else
#define ALS_PANEL_CLONES __attribute__((target_clones("avx2", "default")))
#endif
ALS_PANEL_CLONES static void score_panel_generic(const float *x, const float *panel, int32_t n,
                                                 int32_t rank, float *out)
{
    const int32_t nb = (n + ALS_PANEL - 1) / ALS_PANEL;
    const als_v16 *P = __builtin_assume_aligned(panel, 64);
    int32_t b = 0;
    /* Two blocks at a time: two independent accumulators hide FMA latency. */
    for (; b + 1 < nb; b += 2) {
        const als_v16 *b0 = P + (size_t)b * rank, *b1 = b0 + rank;
        als_v16 acc0 = {0}, acc1 = {0};
        for (int32_t a = 0; a < rank; a++) {
            acc0 += x[a] * b0[a];
            acc1 += x[a] * b1[a];
        }
        memcpy(out + (size_t)b * ALS_PANEL, &acc0, sizeof(acc0));
        memcpy(out + (size_t)(b + 1) * ALS_PANEL, &acc1, sizeof(acc1));
    }
    for (; b < nb; b++) {
        const als_v16 *b0 = P + (size_t)b * rank;
        als_v16 acc0 = {0};
        for (int32_t a = 0; a < rank; a++)
            acc0 += x[a] * b0[a];
        memcpy(out + (size_t)b * ALS_PANEL, &acc0, sizeof(acc0));
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define ALS_HAVE_AVX512 1

static bool cpu_has_avx512f(void)
{
    static _Atomic int have = -1; /* every thread computes the same answer */
    int h = atomic_load_explicit(&have, memory_order_relaxed);
    if (h < 0) {
        __builtin_cpu_init();
        h = __builtin_cpu_supports("avx512f") ? 1 : 0;
        atomic_store_explicit(&have, h, memory_order_relaxed);
    }
    return h;
}

/* Each lane's score is one fused multiply-add per factor, in factor order
 * from 0 (intrinsics: the compiler may not reassociate them). That is
 * the exact score's definition on AVX-512 CPUs, which als_score_rows
 * reproduces bit for bit from the row-major factors. Four blocks at a
 * time hide the FMA latency. */
__attribute__((target("avx512f"))) static void score_panel_avx512(const float *x,
                                                                 const float *panel, int32_t n,
                                                                 int32_t rank, float *out)
{
    const int32_t nb = (n + ALS_PANEL - 1) / ALS_PANEL;
    const size_t bs = (size_t)rank * ALS_PANEL; /* floats per block */
    int32_t b = 0;
    for (; b + 3 < nb; b += 4) {
        const float *p = panel + (size_t)b * bs;
        __m512 acc[4];
        for (int j = 0; j < 4; j++)
            acc[j] = _mm512_setzero_ps();
        for (int32_t a = 0; a < rank; a++) {
            const __m512 xa = _mm512_set1_ps(x[a]);
            for (int j = 0; j < 4; j++)
                acc[j] = _mm512_fmadd_ps(
                    xa, _mm512_load_ps(p + (size_t)j * bs + (size_t)a * ALS_PANEL), acc[j]);
        }
        for (int j = 0; j < 4; j++)
            _mm512_storeu_ps(out + (size_t)(b + j) * ALS_PANEL, acc[j]);
    }
    for (; b < nb; b++) {
        const float *p = panel + (size_t)b * bs;
        __m512 acc = _mm512_setzero_ps();
        for (int32_t a = 0; a < rank; a++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(x[a]), _mm512_load_ps(p + (size_t)a * ALS_PANEL),
                                  acc);
        _mm512_storeu_ps(out + (size_t)b * ALS_PANEL, acc);
    }
}

/* score_rows_avx512 for models past 2^31 floats, where int32 gather
 * offsets would wrap: 64-bit offsets, so 8 rows per gather; the same fused
 * multiply-add chain per lane, so the same bits. */
__attribute__((target("avx512f,fma"))) static void score_rows_avx512_wide(const float *x,
                                                                         const als_factors_t *V,
                                                                         const int32_t *items,
                                                                         int32_t n, float *out)
{
    for (int32_t c = 0; c < n; c += 8) {
        const int32_t cnt = n - c < 8 ? n - c : 8;
        const __mmask8 lanes = (__mmask8)((1u << cnt) - 1);
        int32_t idx[8] = {0};
        memcpy(idx, items + c, (size_t)cnt * sizeof(int32_t));
        /* mul_epi32: each 64-bit lane's low 32 bits, signed, times the stride */
        const __m512i rows =
            _mm512_mul_epi32(_mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)idx)),
                             _mm512_set1_epi64(V->stride));
        __m256 acc = _mm256_setzero_ps();
        for (int32_t a = 0; a < V->rank; a++) {
            const __m256 y = _mm512_mask_i64gather_ps(_mm256_setzero_ps(), lanes,
                                                      _mm512_add_epi64(rows, _mm512_set1_epi64(a)),
                                                      V->x, 4);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(x[a]), y, acc);
        }
        float lane[8];
        _mm256_storeu_ps(lane, acc);
        memcpy(out + c, lane, (size_t)cnt * sizeof(float));
    }
}

/* 16 rows at a time, gathered: the same fused multiply-add chain per lane
 * as score_panel_avx512, so the same bits. Gather offsets are int32: larger
 * models take score_rows_avx512_wide. */
__attribute__((target("avx512f"))) static void score_rows_avx512(const float *x,
                                                                const als_factors_t *V,
                                                                const int32_t *items, int32_t n,
                                                                float *out)
{
    if ((int64_t)V->n * V->stride > INT32_MAX) {
        score_rows_avx512_wide(x, V, items, n, out);
        return;
    }
    for (int32_t c = 0; c < n; c += ALS_PANEL) {
        const int32_t cnt = n - c < ALS_PANEL ? n - c : ALS_PANEL;
        const __mmask16 lanes = (__mmask16)(cnt == ALS_PANEL ? 0xFFFFu : (1u << cnt) - 1);
        const __m512i rows = _mm512_mullo_epi32(_mm512_maskz_loadu_epi32(lanes, items + c),
                                                _mm512_set1_epi32(V->stride));
        __m512 acc = _mm512_setzero_ps();
        for (int32_t a = 0; a < V->rank; a++) {
            const __m512 y = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes,
                                                      _mm512_add_epi32(rows, _mm512_set1_epi32(a)),
                                                      V->x, 4);
            acc = _mm512_fmadd_ps(_mm512_set1_ps(x[a]), y, acc);
        }
        _mm512_mask_storeu_ps(out + c, lanes, acc);
    }
}
#endif

void als_score_panel(const float *x, const float *panel, int32_t n, int32_t rank, float *out)
{
#ifdef ALS_HAVE_AVX512
    if (cpu_has_avx512f()) {
        score_panel_avx512(x, panel, n, rank, out);
        return;
    }
#endif
    score_panel_generic(x, panel, n, rank, out);
}

int als__score_rows_wide(const float *x, const als_factors_t *V, const int32_t *items,
                         int32_t n, float *out)
{
#ifdef ALS_HAVE_AVX512
    if (cpu_has_avx512f()) {
        score_rows_avx512_wide(x, V, items, n, out);
        return CORE_OK;
    }
#endif
    return als_score_rows(x, V, items, n, out);
}

int als_score_rows(const float *x, const als_factors_t *V, const int32_t *items, int32_t n,
                   float *out)
{
#ifdef ALS_HAVE_AVX512
    if (cpu_has_avx512f()) {
        score_rows_avx512(x, V, items, n, out);
        return CORE_OK;
    }
#endif
    /* elsewhere: each row as lane 0 of a one-block panel, through the
     * generic kernel itself, so the bits match its scan */
    float *blk = aligned_alloc(64, ((size_t)V->rank + 1) * ALS_PANEL * sizeof(float));
    if (!blk)
        return CORE_ERR_NOMEM;
    float lane[ALS_PANEL];
    for (int32_t j = 0; j < n; j++) {
        memset(blk, 0, (size_t)V->rank * ALS_PANEL * sizeof(float));
        for (int32_t a = 0; a < V->rank; a++)
            blk[(size_t)a * ALS_PANEL] = als_row(V, items[j])[a];
        score_panel_generic(x, blk, 1, V->rank, lane);
        out[j] = lane[0];
    }
    free(blk);
    return CORE_OK;
}

/* ---- int8 pre-scoring ---------------------------------------------------------- */

void als_qpanel_fini(als_qpanel_t *qp)
{
    free(qp->q);
    free(qp->scale);
    free(qp->qsum);
    free(qp->norm);
    free(qp->err);
    memset(qp, 0, sizeof(*qp));
}

/* Rounds a non-negative double up to the next float, so a float bound built
 * from it is never smaller than the exact value. */
static float round_up_float(double d)
{
    float f = (float)d;
    return (double)f < d ? nextafterf(f, INFINITY) : f;
}

static void quantise_row(const float *y, int32_t rank, int8_t *q_out, float *scale,
                         int32_t *qsum, float *norm, float *err)
{
    float mx = 0;
    for (int32_t a = 0; a < rank; a++)
        mx = fmaxf(mx, fabsf(y[a]));
    float s = mx > 0 ? mx / 127.0f : 0;
    double n2 = 0, e2 = 0;
    int32_t sum = 0;
    for (int32_t a = 0; a < rank; a++) {
        int32_t v = s > 0 ? (int32_t)lrintf(y[a] / s) : 0;
        v = v > 127 ? 127 : v < -127 ? -127 : v;
        q_out[a] = (int8_t)v;
        sum += v;
        double d = (double)y[a] - (double)s * v;
        n2 += (double)y[a] * y[a];
        e2 += d * d;
    }
    *scale = s;
    *qsum = sum;
    *norm = round_up_float(sqrt(n2));
    *err = round_up_float(sqrt(e2));
}

int als_qpanel_build(const als_factors_t *V, als_qpanel_t *qp)
{
    memset(qp, 0, sizeof(*qp));
    qp->n = V->n;
    qp->rank = V->rank;
    qp->r4 = (V->rank + 3) / 4;
    const size_t nb = ((size_t)V->n + ALS_PANEL - 1) / ALS_PANEL, np = nb * ALS_PANEL + ALS_PANEL;
    const size_t qbytes = nb * (size_t)qp->r4 * 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, qbytes ? qbytes : 64) != 0)
        return CORE_ERR_NOMEM;
    qp->q = p;
    memset(qp->q, 0, qbytes);
    qp->scale = calloc(np, sizeof(float));
    qp->qsum = calloc(np, sizeof(int32_t));
    qp->norm = calloc(np, sizeof(float));
    qp->err = calloc(np, sizeof(float));
    int8_t *row = malloc((size_t)qp->r4 * 4);
    if (!qp->scale || !qp->qsum || !qp->norm || !qp->err || !row) {
        free(row);
        als_qpanel_fini(qp);
        return CORE_ERR_NOMEM;
    }
    for (int32_t i = 0; i < V->n; i++) {
        memset(row, 0, (size_t)qp->r4 * 4);
        quantise_row(als_row(V, i), V->rank, row, &qp->scale[i], &qp->qsum[i], &qp->norm[i],
                     &qp->err[i]);
        int8_t *blk = qp->q + (size_t)(i / ALS_PANEL) * qp->r4 * 64;
        for (int32_t g = 0; g < qp->r4; g++)
            memcpy(blk + (size_t)g * 64 + (size_t)(i % ALS_PANEL) * 4, row + (size_t)g * 4, 4);
    }
    free(row);
    return CORE_OK;
}

/* ---- the query side ---------------------------------------------------------------- */

/* The query vector quantised as the kernels want it (unsigned: uq + 128),
 * with the two error terms of the bound (als_score.h). */
typedef struct qquery {
    uint8_t buf[1024];
    uint8_t *u; /* r4 × 4 bytes: buf, or heap memory for ranks over 1024 */
    float su;   /* the query's scale */
    float A;    /* ‖x − x̃‖ + slack: multiplies ‖V_i‖ */
    float B;    /* ‖x̃‖ + slack: multiplies ‖V_i − Ṽ_i‖ */
    float C;    /* an absolute term for underflow (subnormal sums) */
} qquery_t;

static int qquery_init(qquery_t *qq, const als_qpanel_t *qp, const float *x)
{
    const int32_t rank = qp->rank;
    float mx = 0;
    for (int32_t a = 0; a < rank; a++)
        mx = fabsf(x[a]) > mx ? fabsf(x[a]) : mx; /* fmaxf is a libm call here */
    qq->su = mx > 0 ? mx / 127.0f : 0;
    qq->u = (size_t)qp->r4 * 4 <= sizeof(qq->buf) ? qq->buf : malloc((size_t)qp->r4 * 4);
    if (!qq->u)
        return CORE_ERR_NOMEM;
    double du2 = 0, nu2 = 0, nx2 = 0;
    memset(qq->u, 128, (size_t)qp->r4 * 4);
    for (int32_t a = 0; a < rank; a++) {
        int32_t v = qq->su > 0 ? (int32_t)lrintf(x[a] / qq->su) : 0;
        v = v > 127 ? 127 : v < -127 ? -127 : v;
        qq->u[a] = (uint8_t)(v + 128);
        double deq = (double)qq->su * v, d = (double)x[a] - deq;
        du2 += d * d;
        nu2 += deq * deq;
        nx2 += (double)x[a] * x[a];
    }
    /* Slack for float rounding: of the kernel's own sum (≤ rank·ε·‖x‖‖V_i‖
     * whatever the order) and of a few operations here and in the caller
     * (a division by a norm is monotonic, so it keeps a bound a bound);
     * FLT_EPSILON is twice the unit roundoff, and 8 more covers the
     * constant terms. */
    const double slack = (rank + 8) * (double)FLT_EPSILON * (sqrt(nx2) + sqrt(nu2));
    qq->A = round_up_float(sqrt(du2) + slack);
    qq->B = round_up_float(sqrt(nu2) + slack);
    /* The slack above is relative; near zero, float steps are absolute
     * (2^-149): the kernel's sum can be off by rank such steps and su·s_i
     * by one, which d (< rank·2^15) multiplies. FLT_MIN = 2^-126 per
     * factor covers both with room and costs nothing at useful scales. */
    qq->C = (float)(rank + 8) * FLT_MIN;
    return CORE_OK;
}

static void qquery_fini(qquery_t *qq)
{
    if (qq->u != qq->buf)
        free(qq->u);
}

/* lo/hi of item i from its integer sum: a_i = su·s_i·(acc_i − 128·Σq_i) ± bound_i. */
static inline void item_bounds(const als_qpanel_t *qp, const qquery_t *qq, int32_t i, int32_t acc,
                               float *lo, float *hi)
{
    float approx = (qq->su * qp->scale[i]) * (float)(acc - 128 * qp->qsum[i]);
    float bound = qq->A * qp->norm[i] + qq->B * qp->err[i] + qq->C;
    *lo = approx - bound;
    *hi = approx + bound;
}

/* The 16 integer sums of block b, in plain C (any CPU). */
static void qdot_block_portable(const als_qpanel_t *qp, const uint8_t *u8, int32_t b,
                                int32_t s[ALS_PANEL])
{
    const int8_t *blk = qp->q + (size_t)b * qp->r4 * 64;
    memset(s, 0, ALS_PANEL * sizeof(int32_t));
    for (int32_t g = 0; g < qp->r4; g++)
        for (int32_t j = 0; j < ALS_PANEL; j++)
            for (int32_t t = 0; t < 4; t++)
                s[j] += (int32_t)u8[g * 4 + t] * blk[(size_t)g * 64 + j * 4 + t];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define ALS_HAVE_VNNI 1

/* Lanes of block b that hold items (tail lanes of the last block are zero rows). */
static inline unsigned block_lanes(int32_t n, int32_t b)
{
    const int32_t cnt = n - b * ALS_PANEL;
    return cnt >= ALS_PANEL ? 0xFFFFu : (1u << cnt) - 1;
}

/* lo/hi of one block's 16 items from their integer sums (item_bounds, 16 wide). */
__attribute__((target("avx512f"))) static inline void
qblock_bounds_avx512(const als_qpanel_t *qp, int32_t b, __m512i sum, __m512 su, __m512 A,
                     __m512 B, __m512 C, float *lo, float *hi)
{
    const size_t i0 = (size_t)b * ALS_PANEL;
    const __m512i corr = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(qp->qsum + i0)), 7);
    const __m512 d = _mm512_cvtepi32_ps(_mm512_sub_epi32(sum, corr));
    const __m512 approx = _mm512_mul_ps(_mm512_mul_ps(su, _mm512_loadu_ps(qp->scale + i0)), d);
    const __m512 bound = _mm512_fmadd_ps(
        A, _mm512_loadu_ps(qp->norm + i0), _mm512_fmadd_ps(B, _mm512_loadu_ps(qp->err + i0), C));
    _mm512_storeu_ps(lo + i0, _mm512_sub_ps(approx, bound));
    _mm512_storeu_ps(hi + i0, _mm512_add_ps(approx, bound));
}

/* The integer sums with AVX-512 VNNI (one vpdpbusd per 4 factors × 16
 * items; four blocks in flight hide its latency), each block's bounds made
 * while its sums are still in registers. Branch-free: selecting while
 * scanning (tests against a running threshold) measured ~2× slower, as
 * every data-dependent branch stalls the overlap of blocks.
 *
 * r4 is a compile-time constant in each inlined copy (qbounds_vnni
 * dispatches): the group loop unrolls and the r4 broadcast query words stay
 * in registers, which measured ~30% faster than the runtime loop (where GCC
 * also shuffles the accumulators through extra moves). */
#define QB_FIXED_MAX_R4 16 /* rank ≤ 64 */
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
qbounds_fixed(const als_qpanel_t *qp, const qquery_t *qq, float *lo, float *hi, const int32_t r4)
{
    const int32_t nb = (qp->n + ALS_PANEL - 1) / ALS_PANEL;
    const size_t bstride = (size_t)r4 * 64;
    const __m512 su = _mm512_set1_ps(qq->su), A = _mm512_set1_ps(qq->A), B = _mm512_set1_ps(qq->B),
                 C = _mm512_set1_ps(qq->C);
    __m512i xs[QB_FIXED_MAX_R4];
    for (int32_t g = 0; g < r4; g++) {
        int32_t w;
        memcpy(&w, qq->u + (size_t)g * 4, 4);
        xs[g] = _mm512_set1_epi32(w);
    }
    int32_t b = 0;
    for (; b + 3 < nb; b += 4) {
        const int8_t *p0 = qp->q + (size_t)b * bstride;
        __m512i s[4];
        for (int j = 0; j < 4; j++)
            s[j] = _mm512_setzero_si512();
        /* written as base + constant offsets: with a lea per group instead
         * (what the explicit four-statement form compiled to) the loop
         * measured ~25% slower */
        for (int32_t g = 0; g < r4; g++)
            for (int j = 0; j < 4; j++)
                s[j] = _mm512_dpbusd_epi32(
                    s[j], xs[g],
                    _mm512_load_si512((const void *)(p0 + (size_t)j * bstride + (size_t)g * 64)));
        for (int j = 0; j < 4; j++)
            qblock_bounds_avx512(qp, b + j, s[j], su, A, B, C, lo, hi);
    }
    for (; b < nb; b++) {
        const int8_t *p0 = qp->q + (size_t)b * bstride;
        __m512i s0 = _mm512_setzero_si512();
        for (int32_t g = 0; g < r4; g++)
            s0 = _mm512_dpbusd_epi32(s0, xs[g],
                                     _mm512_load_si512((const void *)(p0 + (size_t)g * 64)));
        qblock_bounds_avx512(qp, b, s0, su, A, B, C, lo, hi);
    }
}

/* Any rank: the query words are broadcast from memory in the loop. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void
qbounds_any_rank(const als_qpanel_t *qp, const qquery_t *qq, float *lo, float *hi)
{
    const int32_t nb = (qp->n + ALS_PANEL - 1) / ALS_PANEL, r4 = qp->r4;
    const size_t bstride = (size_t)r4 * 64;
    const __m512 su = _mm512_set1_ps(qq->su), A = _mm512_set1_ps(qq->A), B = _mm512_set1_ps(qq->B),
                 C = _mm512_set1_ps(qq->C);
    for (int32_t b = 0; b < nb; b++) {
        const int8_t *p0 = qp->q + (size_t)b * bstride;
        __m512i s0 = _mm512_setzero_si512();
        for (int32_t g = 0; g < r4; g++) {
            int32_t w;
            memcpy(&w, qq->u + (size_t)g * 4, 4);
            s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(w),
                                     _mm512_load_si512((const void *)(p0 + (size_t)g * 64)));
        }
        qblock_bounds_avx512(qp, b, s0, su, A, B, C, lo, hi);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void
qbounds_vnni(const als_qpanel_t *qp, const qquery_t *qq, float *lo, float *hi)
{
    switch (qp->r4) {
#define QB_CASE(r)                                                                       \
    case r:                                                                              \
        qbounds_fixed(qp, qq, lo, hi, r);                                                \
        return;
        QB_CASE(1) QB_CASE(2) QB_CASE(3) QB_CASE(4) QB_CASE(5) QB_CASE(6) QB_CASE(7) QB_CASE(8)
        QB_CASE(9) QB_CASE(10) QB_CASE(11) QB_CASE(12) QB_CASE(13) QB_CASE(14) QB_CASE(15)
        QB_CASE(16)
#undef QB_CASE
    default:
        qbounds_any_rank(qp, qq, lo, hi);
    }
}

/* Lanes of block b that selection may pick: items, not excluded. */
static inline __mmask16 open_lanes(const als_qfilter_t *f, int32_t n, int32_t b)
{
    return (__mmask16)(block_lanes(n, b) & (f->excl ? ~(unsigned)f->excl[b] : 0xFFFFu));
}

/* collect_lows, 16 items per compare, compacting lo in place (a block is
 * loaded before anything is stored at or below its position). */
__attribute__((target("avx512f"))) static int32_t collect_lows_avx512(const als_qfilter_t *f,
                                                                      float *lo, int32_t n,
                                                                      float thr)
{
    const int32_t nb = (n + ALS_PANEL - 1) / ALS_PANEL;
    const __m512 tv = _mm512_set1_ps(thr), zero = _mm512_setzero_ps();
    int32_t cnt = 0;
    for (int32_t b = 0; b < nb; b++) {
        const __mmask16 open = open_lanes(f, n, b);
        const __m512 v = _mm512_maskz_loadu_ps(open, lo + (size_t)b * ALS_PANEL);
        __mmask16 m = _mm512_mask_cmp_ps_mask(open, v, tv, _CMP_GE_OQ);
        if (f->positive_only)
            m = _mm512_mask_cmp_ps_mask(m, v, zero, _CMP_GT_OQ);
        /* register compress + masked store: the memory form of compress
         * is slow on some CPUs; the mask keeps the store within lo */
        _mm512_mask_storeu_ps(lo + cnt, (__mmask16)((1u << __builtin_popcount(m)) - 1),
                              _mm512_maskz_compress_ps(m, v));
        cnt += __builtin_popcount(m);
    }
    return cnt;
}

/* cand[b] = the lanes of block b not excluded whose upper bound reaches
 * tau: one compare per 16 items, no branch. */
__attribute__((target("avx512f"))) static void candidate_masks_avx512(const als_qfilter_t *f,
                                                                     const float *hi, int32_t n,
                                                                     float tau, uint16_t *cand)
{
    const int32_t nb = (n + ALS_PANEL - 1) / ALS_PANEL;
    const __m512 tv = _mm512_set1_ps(tau);
    for (int32_t b = 0; b < nb; b++) {
        const __mmask16 open = open_lanes(f, n, b);
        cand[b] = (uint16_t)_mm512_mask_cmp_ps_mask(
            open, _mm512_maskz_loadu_ps(open, hi + (size_t)b * ALS_PANEL), tv, _CMP_GE_OQ);
    }
}

/* A threshold for k ≤ LANE_TOPS_K without sorting: each of the 16 lanes
 * keeps its 4 best counting lower bounds (a branch-free insertion network,
 * 8 min/max per block), then a 16-way merge of those sorted lists pops the
 * k-th best. The 64 kept values are a subset of all lower bounds, so that
 * is never above the true k-th best, and is equal unless one lane held more
 * than 4 of the k best. -inf when fewer than k counting items were kept. */
/* Inserts v into a lane-wise sorted top-4 (r[0] ≥ r[1] ≥ r[2] ≥ r[3]):
 * a branch-free network of 7 min/max. */
__attribute__((target("avx512f"), always_inline)) static inline void lane_tops_insert(__m512 r[4],
                                                                                     __m512 v)
{
    for (int j = 0; j < 3; j++) {
        const __m512 t = _mm512_min_ps(r[j], v);
        r[j] = _mm512_max_ps(r[j], v);
        v = t;
    }
    r[3] = _mm512_max_ps(r[3], v);
}

/* Block b's lower bounds that count toward tau, -inf elsewhere. */
__attribute__((target("avx512f"), always_inline)) static inline __m512
counting_lows(const als_qfilter_t *f, const float *lo, int32_t n, int32_t b)
{
    __mmask16 open = open_lanes(f, n, b);
    const __m512 v = _mm512_maskz_loadu_ps(open, lo + (size_t)b * ALS_PANEL);
    if (f->positive_only)
        open = _mm512_mask_cmp_ps_mask(open, v, _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), open, v);
}

__attribute__((target("avx512f"))) static float lane_tops_threshold(const als_qfilter_t *f,
                                                                    const float *lo, int32_t n)
{
    const int32_t nb = (n + ALS_PANEL - 1) / ALS_PANEL;
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    /* two independent top-4 sets (even and odd blocks) halve the chain of
     * dependent min/max; merged at the end */
    __m512 r[4] = {ninf, ninf, ninf, ninf}, q[4] = {ninf, ninf, ninf, ninf};
    int32_t b = 0;
    for (; b + 1 < nb; b += 2) {
        lane_tops_insert(r, counting_lows(f, lo, n, b));
        lane_tops_insert(q, counting_lows(f, lo, n, b + 1));
    }
    if (b < nb)
        lane_tops_insert(r, counting_lows(f, lo, n, b));
    for (int j = 0; j < 4; j++)
        lane_tops_insert(r, q[j]);
    __m512 r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
    float kth = -INFINITY;
    for (int32_t j = 0; j < f->k; j++) {
        kth = _mm512_reduce_max_ps(r0);
        if (kth == -INFINITY)
            return -INFINITY;
        /* advance the lowest lane holding the maximum */
        const __mmask16 at = _mm512_cmp_ps_mask(r0, _mm512_set1_ps(kth), _CMP_EQ_OQ);
        const __mmask16 one = (__mmask16)(at & -at);
        r0 = _mm512_mask_mov_ps(r0, one, r1);
        r1 = _mm512_mask_mov_ps(r1, one, r2);
        r2 = _mm512_mask_mov_ps(r2, one, r3);
        r3 = _mm512_mask_mov_ps(r3, one, ninf);
    }
    return kth;
}
#define LANE_TOPS_K 16
#endif

bool als_qpanel_worthwhile(void)
{
#ifdef ALS_HAVE_VNNI
    static _Atomic int have = -1; /* every thread computes the same answer */
    int h = atomic_load_explicit(&have, memory_order_relaxed);
    if (h < 0) {
        __builtin_cpu_init();
        h = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
        atomic_store_explicit(&have, h, memory_order_relaxed);
    }
    return h;
#else
    return false;
#endif
}

static void bounds_portable(const als_qpanel_t *qp, const qquery_t *qq, float *lo, float *hi)
{
    for (int32_t b = 0, nb = (qp->n + ALS_PANEL - 1) / ALS_PANEL; b < nb; b++) {
        int32_t acc[ALS_PANEL];
        qdot_block_portable(qp, qq->u, b, acc);
        for (int32_t j = 0; j < ALS_PANEL && b * ALS_PANEL + j < qp->n; j++)
            item_bounds(qp, qq, b * ALS_PANEL + j, acc[j], &lo[b * ALS_PANEL + j],
                        &hi[b * ALS_PANEL + j]);
    }
}

static void bounds_any(const als_qpanel_t *qp, const qquery_t *qq, float *lo, float *hi,
                       bool portable)
{
#ifdef ALS_HAVE_VNNI
    if (!portable && als_qpanel_worthwhile()) {
        qbounds_vnni(qp, qq, lo, hi);
        return;
    }
#endif
    (void)portable;
    bounds_portable(qp, qq, lo, hi);
}

void als_qpanel_bounds(const als_qpanel_t *qp, const float *x, float *lo, float *hi,
                       bool portable)
{
    qquery_t qq;
    if (qquery_init(&qq, qp, x) != CORE_OK) { /* bounds that admit everything */
        for (int32_t i = 0; i < qp->n; i++) {
            lo[i] = -INFINITY;
            hi[i] = INFINITY;
        }
        return;
    }
    bounds_any(qp, &qq, lo, hi, portable);
    qquery_fini(&qq);
}

/* ---- selection (als_qpanel_candidates) ---------------------------------------------- */

/* The k-th largest of v[0..n), 1 ≤ k ≤ n, by quickselect (reorders v; no NaN). */
static float kth_largest(float *v, int32_t n, int32_t k)
{
    int32_t l = 0, r = n - 1;
    const int32_t want = k - 1; /* index in descending order */
    while (l < r) {
        const float pivot = v[l + (r - l) / 2];
        int32_t i = l, j = r;
        while (i <= j) { /* Hoare: [l..j] ≥ pivot, [i..r] ≤ pivot, between = pivot */
            while (v[i] > pivot)
                i++;
            while (v[j] < pivot)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if (want <= j)
            r = j;
        else if (want >= i)
            l = i;
        else
            return pivot;
    }
    return v[want];
}

static inline bool qf_excluded(const als_qfilter_t *f, int32_t i)
{
    return f->excl && (f->excl[i / ALS_PANEL] >> (i % ALS_PANEL) & 1);
}

/* May item i's lower bound count toward tau? */
static inline bool qf_counts(const als_qfilter_t *f, int32_t i, float lo)
{
    return !qf_excluded(f, i) && (!f->positive_only || lo > 0);
}

/* A first threshold from a sample: the k-th best lower bound among every
 * stride-th item. A subset's k-th best is never above the whole set's, so
 * the items at or above it are at least k and include the k best. -inf
 * when the sample has fewer than k. */
static float sample_threshold(const als_qfilter_t *f, const float *lo, int32_t n)
{
    /* 16 samples per wanted item: about 16 lower bounds per answer item
     * then pass the threshold, few to select among */
    const int64_t want = (int64_t)f->k * 16 > 512 ? (int64_t)f->k * 16 : 512;
    if (want >= n)
        return -INFINITY; /* as many as the items: select over everything */
    float stack[512];
    float *v = want <= 512 ? stack : malloc((size_t)want * sizeof(float));
    if (!v)
        return -INFINITY;
    const int32_t stride = (int32_t)(n / want);
    int32_t m = 0;
    for (int32_t i = 0; i < n && m < want; i += stride)
        if (qf_counts(f, i, lo[i]))
            v[m++] = lo[i];
    const float t = m >= f->k ? kth_largest(v, m, f->k) : -INFINITY;
    if (v != stack)
        free(v);
    return t;
}

/* Moves every counting lower bound ≥ thr to the front of lo; returns how
 * many. */
static int32_t collect_lows(const als_qfilter_t *f, float *lo, int32_t n, float thr,
                            bool portable)
{
#ifdef ALS_HAVE_VNNI
    if (!portable && als_qpanel_worthwhile())
        return collect_lows_avx512(f, lo, n, thr);
#endif
    (void)portable;
    int32_t cnt = 0;
    for (int32_t i = 0; i < n; i++)
        if (lo[i] >= thr && qf_counts(f, i, lo[i]))
            lo[cnt++] = lo[i];
    return cnt;
}

static void candidate_masks(const als_qfilter_t *f, const float *hi, int32_t n, float tau,
                            uint16_t *cand, bool portable)
{
#ifdef ALS_HAVE_VNNI
    if (!portable && als_qpanel_worthwhile()) {
        candidate_masks_avx512(f, hi, n, tau, cand);
        return;
    }
#endif
    (void)portable;
    for (int32_t b = 0; b < (n + ALS_PANEL - 1) / ALS_PANEL; b++) {
        unsigned m = 0;
        for (int32_t j = 0; j < ALS_PANEL && b * ALS_PANEL + j < n; j++) {
            const int32_t i = b * ALS_PANEL + j;
            if (hi[i] >= tau && !qf_excluded(f, i))
                m |= 1u << j;
        }
        cand[b] = (uint16_t)m;
    }
}

/* Cosine: v / div_i when div_i > 0, else 0 — as the caller treats exact scores. */
static void divide_bounds(const float *div, int32_t n, float *lo, float *hi)
{
    for (int32_t i = 0; i < n; i++) {
        lo[i] = div[i] > 0 ? lo[i] / div[i] : 0;
        hi[i] = div[i] > 0 ? hi[i] / div[i] : 0;
    }
}

int als_qpanel_candidates(const als_qpanel_t *qp, const float *x, const als_qfilter_t *f,
                          float *lo, float *hi, uint16_t *cand, float *tau, bool portable)
{
    *tau = -INFINITY;
    qquery_t qq;
    if (qquery_init(&qq, qp, x) != CORE_OK)
        return CORE_ERR_NOMEM;
    bounds_any(qp, &qq, lo, hi, portable);
    qquery_fini(&qq);
    const int32_t n = qp->n;
    if (f->div)
        divide_bounds(f->div, n, lo, hi);
    float t;
#ifdef ALS_HAVE_VNNI
    if (!portable && f->k <= LANE_TOPS_K && als_qpanel_worthwhile()) {
        t = lane_tops_threshold(f, lo, n);
        goto candidates;
    }
#endif
    /* tau: the k-th best counting lower bound, by quickselect over those at
     * or above a sample's k-th best (lo is consumed as the scratch) */
    const int32_t nlows = collect_lows(f, lo, n, sample_threshold(f, lo, n), portable);
    t = nlows >= f->k ? kth_largest(lo, nlows, f->k) : -INFINITY;
#ifdef ALS_HAVE_VNNI
candidates:
#endif
    candidate_masks(f, hi, n, t, cand, portable);
    *tau = t;
    return CORE_OK;
}
