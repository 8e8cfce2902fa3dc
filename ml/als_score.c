/* als_score — see als_score.h. Built with -O3 (ml/CMakeLists.txt). */
#include "ml/als_score.h"

#include <stdlib.h>

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
