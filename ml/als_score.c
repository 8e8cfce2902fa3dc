/* als_score — see als_score.h. Built with -O3 (ml/CMakeLists.txt). */
#include "ml/als_score.h"

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
    qsort(t->h, (size_t)t->n, sizeof(als_scored_t), cmp_best_first);
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
 * the compiler maps to one zmm (AVX-512), two ymm or four xmm registers. */
typedef float als_v16 __attribute__((vector_size(64)));

ALS_TARGET_CLONES void als_score_panel(const float *x, const float *panel, int32_t n,
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

/* acc[i] = Σ_a u8[a]·q_ia over all items, in plain C (any CPU). */
static void qdot_portable(const als_qpanel_t *qp, const uint8_t *u8, int32_t *acc)
{
    const int32_t nb = (qp->n + ALS_PANEL - 1) / ALS_PANEL;
    for (int32_t b = 0; b < nb; b++) {
        const int8_t *blk = qp->q + (size_t)b * qp->r4 * 64;
        int32_t s[ALS_PANEL] = {0};
        for (int32_t g = 0; g < qp->r4; g++)
            for (int32_t j = 0; j < ALS_PANEL; j++)
                for (int32_t t = 0; t < 4; t++)
                    s[j] += (int32_t)u8[g * 4 + t] * blk[(size_t)g * 64 + j * 4 + t];
        memcpy(acc + (size_t)b * ALS_PANEL, s, sizeof(s));
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define ALS_HAVE_VNNI 1
/* lo/hi and the two block maxima of one block from its 16 integer sums. */
__attribute__((target("avx512f"))) static inline void
qepilogue_avx512(const als_qpanel_t *qp, int32_t b, __m512i sum, __m512 su, __m512 A, __m512 B,
                 float *lo, float *hi, float *bmax_lo, float *bmax_hi)
{
    const size_t i0 = (size_t)b * ALS_PANEL;
    const __m512i corr = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(qp->qsum + i0)), 7);
    const __m512 d = _mm512_cvtepi32_ps(_mm512_sub_epi32(sum, corr));
    const __m512 approx = _mm512_mul_ps(_mm512_mul_ps(su, _mm512_loadu_ps(qp->scale + i0)), d);
    const __m512 bound = _mm512_fmadd_ps(A, _mm512_loadu_ps(qp->norm + i0),
                                         _mm512_mul_ps(B, _mm512_loadu_ps(qp->err + i0)));
    const __m512 l = _mm512_sub_ps(approx, bound), h = _mm512_add_ps(approx, bound);
    _mm512_storeu_ps(lo + i0, l);
    _mm512_storeu_ps(hi + i0, h);
    /* tail items of the last block are zero rows: mask them out of the max */
    const int32_t cnt = qp->n - (int32_t)i0 < ALS_PANEL ? qp->n - (int32_t)i0 : ALS_PANEL;
    const __mmask16 k = (__mmask16)(cnt == ALS_PANEL ? 0xFFFFu : (1u << cnt) - 1);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    bmax_lo[b] = _mm512_reduce_max_ps(_mm512_mask_mov_ps(ninf, k, l));
    bmax_hi[b] = _mm512_reduce_max_ps(_mm512_mask_mov_ps(ninf, k, h));
}

/* The integer sums with AVX-512 VNNI (one vpdpbusd per 4 factors × 16
 * items; four blocks in flight hide its latency), fused with the bounds so
 * the sums never leave registers. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void
qbounds_vnni(const als_qpanel_t *qp, const uint8_t *u8, float su_, float A_, float B_, float *lo,
             float *hi, float *bmax_lo, float *bmax_hi)
{
    const int32_t nb = (qp->n + ALS_PANEL - 1) / ALS_PANEL, r4 = qp->r4;
    const size_t bstride = (size_t)r4 * 64;
    const __m512 su = _mm512_set1_ps(su_), A = _mm512_set1_ps(A_), B = _mm512_set1_ps(B_);
    int32_t b = 0;
    for (; b + 3 < nb; b += 4) {
        const int8_t *p0 = qp->q + (size_t)b * bstride;
        __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
        for (int32_t g = 0; g < r4; g++) {
            int32_t w;
            memcpy(&w, u8 + (size_t)g * 4, 4);
            const __m512i x = _mm512_set1_epi32(w);
            const int8_t *pg = p0 + (size_t)g * 64;
            s0 = _mm512_dpbusd_epi32(s0, x, _mm512_load_si512((const void *)pg));
            s1 = _mm512_dpbusd_epi32(s1, x, _mm512_load_si512((const void *)(pg + bstride)));
            s2 = _mm512_dpbusd_epi32(s2, x, _mm512_load_si512((const void *)(pg + 2 * bstride)));
            s3 = _mm512_dpbusd_epi32(s3, x, _mm512_load_si512((const void *)(pg + 3 * bstride)));
        }
        qepilogue_avx512(qp, b, s0, su, A, B, lo, hi, bmax_lo, bmax_hi);
        qepilogue_avx512(qp, b + 1, s1, su, A, B, lo, hi, bmax_lo, bmax_hi);
        qepilogue_avx512(qp, b + 2, s2, su, A, B, lo, hi, bmax_lo, bmax_hi);
        qepilogue_avx512(qp, b + 3, s3, su, A, B, lo, hi, bmax_lo, bmax_hi);
    }
    for (; b < nb; b++) {
        const int8_t *p0 = qp->q + (size_t)b * bstride;
        __m512i s0 = _mm512_setzero_si512();
        for (int32_t g = 0; g < r4; g++) {
            int32_t w;
            memcpy(&w, u8 + (size_t)g * 4, 4);
            s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(w),
                                     _mm512_load_si512((const void *)(p0 + (size_t)g * 64)));
        }
        qepilogue_avx512(qp, b, s0, su, A, B, lo, hi, bmax_lo, bmax_hi);
    }
}
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

/* lo/hi from the integer sums: a_i = su·s_i·(acc_i − 128·Σq_i) ± bound_i. */
static void block_max_portable(const float *v, int32_t n, float *bmax);

static void bounds_from_sums(const als_qpanel_t *qp, const int32_t *acc, float su, float A,
                             float B, float *restrict lo, float *restrict hi, float *bmax_lo,
                             float *bmax_hi)
{
    for (int32_t i = 0; i < qp->n; i++) {
        float approx = (su * qp->scale[i]) * (float)(acc[i] - 128 * qp->qsum[i]);
        float bound = A * qp->norm[i] + B * qp->err[i];
        lo[i] = approx - bound;
        hi[i] = approx + bound;
    }
    block_max_portable(lo, qp->n, bmax_lo);
    block_max_portable(hi, qp->n, bmax_hi);
}

/* Bounds that admit everything (when scratch memory runs out). */
static void bounds_unknown(const als_qpanel_t *qp, float *lo, float *hi, float *bmax_lo,
                           float *bmax_hi)
{
    for (int32_t i = 0; i < qp->n; i++) {
        lo[i] = -INFINITY;
        hi[i] = INFINITY;
    }
    for (int32_t b = 0; b < (qp->n + ALS_PANEL - 1) / ALS_PANEL; b++) {
        bmax_lo[b] = -INFINITY;
        bmax_hi[b] = INFINITY;
    }
}

void als_qpanel_bounds(const als_qpanel_t *qp, const float *x, float *lo, float *hi,
                       float *bmax_lo, float *bmax_hi, bool portable)
{
    const int32_t rank = qp->rank;
    float mx = 0;
    for (int32_t a = 0; a < rank; a++)
        mx = fmaxf(mx, fabsf(x[a]));
    const float su = mx > 0 ? mx / 127.0f : 0;
    uint8_t u8[1024];
    uint8_t *u = (size_t)qp->r4 * 4 <= sizeof(u8) ? u8 : malloc((size_t)qp->r4 * 4);
    if (!u) {
        bounds_unknown(qp, lo, hi, bmax_lo, bmax_hi);
        return;
    }
    double du2 = 0, nu2 = 0, nx2 = 0;
    memset(u, 128, (size_t)qp->r4 * 4);
    for (int32_t a = 0; a < rank; a++) {
        int32_t v = su > 0 ? (int32_t)lrintf(x[a] / su) : 0;
        v = v > 127 ? 127 : v < -127 ? -127 : v;
        u[a] = (uint8_t)(v + 128);
        double deq = (double)su * v, d = (double)x[a] - deq;
        du2 += d * d;
        nu2 += deq * deq;
        nx2 += (double)x[a] * x[a];
    }
    /* Slack for float rounding: of the kernel's own sum (≤ rank·ε·‖x‖‖V_i‖
     * whatever the order) and of a few operations here; FLT_EPSILON is
     * twice the unit roundoff, and 8 more covers the constant terms. */
    const double slack = (rank + 8) * (double)FLT_EPSILON * (sqrt(nx2) + sqrt(nu2));
    const float A = round_up_float(sqrt(du2) + slack), B = round_up_float(sqrt(nu2) + slack);
#ifdef ALS_HAVE_VNNI
    if (!portable && als_qpanel_worthwhile()) {
        qbounds_vnni(qp, u, su, A, B, lo, hi, bmax_lo, bmax_hi);
        goto out;
    }
#endif
    (void)portable;
    int32_t *acc = malloc((((size_t)qp->n + ALS_PANEL - 1) / ALS_PANEL * ALS_PANEL + 1) *
                          sizeof(int32_t));
    if (acc) {
        qdot_portable(qp, u, acc);
        bounds_from_sums(qp, acc, su, A, B, lo, hi, bmax_lo, bmax_hi);
        free(acc);
    } else {
        bounds_unknown(qp, lo, hi, bmax_lo, bmax_hi);
    }
out:
    if (u != u8)
        free(u);
}

static void block_max_portable(const float *v, int32_t n, float *bmax)
{
    for (int32_t i0 = 0, b = 0; i0 < n; i0 += ALS_PANEL, b++) {
        const int32_t cnt = n - i0 < ALS_PANEL ? n - i0 : ALS_PANEL;
        float mx = -INFINITY;
        for (int32_t j = 0; j < cnt; j++)
            mx = v[i0 + j] > mx ? v[i0 + j] : mx;
        bmax[b] = mx;
    }
}

#ifdef ALS_HAVE_VNNI
/* vmaxps returns its second operand when either is NaN, so NaN lanes give
 * way to -inf. */
__attribute__((target("avx512f"))) static void block_max_avx512(const float *v, int32_t n,
                                                                 float *bmax)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    int32_t b = 0, i0 = 0;
    for (; i0 + ALS_PANEL <= n; i0 += ALS_PANEL, b++)
        bmax[b] = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_loadu_ps(v + i0), ninf));
    if (i0 < n) {
        __mmask16 k = (__mmask16)((1u << (n - i0)) - 1);
        bmax[b] = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_mask_loadu_ps(ninf, k, v + i0), ninf));
    }
}
#endif

void als_block_max(const float *v, int32_t n, float *bmax)
{
#ifdef ALS_HAVE_VNNI
    static _Atomic int avx512 = -1; /* every thread computes the same answer */
    int h = atomic_load_explicit(&avx512, memory_order_relaxed);
    if (h < 0) {
        __builtin_cpu_init();
        h = __builtin_cpu_supports("avx512f") ? 1 : 0;
        atomic_store_explicit(&avx512, h, memory_order_relaxed);
    }
    if (h) {
        block_max_avx512(v, n, bmax);
        return;
    }
#endif
    block_max_portable(v, n, bmax);
}
