/*
 * als_score — the serving hot path: score every item against one query
 * vector, keep the best k.
 *
 * Design: item factors are one contiguous, 64-byte aligned block with rows
 * padded to 16 floats (als.h), so als_score_all is a straight sequence of
 * aligned dot products the compiler vectorises (this file is built with -O3
 * and reassociation allowed; function multi-versioning picks AVX-512, AVX2
 * or SSE2 code at load time, so the binary stays portable). Scores land in
 * a caller-provided array; filters are applied while pushing into a bounded
 * min-heap of size k (O(n log k)), then the heap is sorted.
 *
 * Order: higher score first; equal scores by lower item index, so answers are
 * deterministic.
 * Threads: pure functions over caller-owned memory; any thread.
 */
#ifndef EDDY_ALS_SCORE_H
#define EDDY_ALS_SCORE_H

#include <stdint.h>

#include "ml/als.h"

typedef struct als_scored {
    int32_t item;
    float score;
} als_scored_t;

/* Bounded min-heap: the root is the worst kept candidate. */
typedef struct als_topk {
    als_scored_t *h; /* caller-owned, at least k slots */
    int32_t n;
    int32_t k;
} als_topk_t;

static inline void als_topk_init(als_topk_t *t, als_scored_t *storage, int32_t k)
{
    t->h = storage;
    t->n = 0;
    t->k = k;
}

/* a ranks below b (worse): lower score, or equal score and higher index. */
static inline int als_scored_worse(als_scored_t a, als_scored_t b)
{
    return a.score < b.score || (a.score == b.score && a.item > b.item);
}

void als_topk__sift_down(als_topk_t *t, int32_t j);
void als_topk__sift_up(als_topk_t *t, int32_t j);

static inline void als_topk_push(als_topk_t *t, int32_t item, float score)
{
    als_scored_t c = {item, score};
    if (t->n < t->k) {
        t->h[t->n] = c;
        als_topk__sift_up(t, t->n++);
    } else if (t->k > 0 && als_scored_worse(t->h[0], c)) {
        t->h[0] = c;
        als_topk__sift_down(t, 0);
    }
}

/* Sorts the kept candidates best-first in place (t->h[0..t->n)). */
void als_topk_sort(als_topk_t *t);

/* out[i] = x · V_i for every item row (x padded to V->stride with zeros). */
void als_score_all(const float *x, const als_factors_t *V, float *out);

/* Panel layout for serving: items in blocks of ALS_PANEL (16); within a
 * block, factor a of the 16 items is contiguous (P[block][a][0..15]). One
 * query then costs `rank` vertical multiply-adds per 16 items, with no
 * horizontal sums and no padding of the rank (measured ~2× faster than the
 * row dot products at rank 50; README). Tail items of the last block are
 * zero. */
#define ALS_PANEL 16

/* Builds the panel copy of V (64-byte aligned; free with free()). NULL on OOM. */
float *als_panel_build(const als_factors_t *V);
/* out[i] = x · V_i for i < n, from the panel copy; out must have room for n
 * rounded up to ALS_PANEL floats. x holds rank floats. */
void als_score_panel(const float *x, const float *panel, int32_t n, int32_t rank, float *out);

#endif
