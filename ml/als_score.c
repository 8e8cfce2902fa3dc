/* als_score — see als_score.h. Built with -O3 (ml/CMakeLists.txt). */
#include "ml/als_score.h"

#include <stdlib.h>
#include <string.h>

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
