/*
 * als_score — scoring items against one query vector and keeping the best k:
 * the serving hot path, and evaluation's full scans.
 *
 * Three layouts of the item factors, each for one use:
 *   - rows (als.h: contiguous, 64-byte aligned, padded to 16 floats):
 *     als_score_all for evaluation, als_score_rows for a few chosen items;
 *   - the float panel (16 items interleaved per factor): als_score_panel,
 *     a full scan with no horizontal sums;
 *   - the int8 panel (als_qpanel_*): bounds for every item in one VNNI pass,
 *     so that serving scores exactly only the few items that can reach the
 *     top k (als_qpanel_candidates).
 * This file is built with -O3 and reassociation allowed; AVX-512 code is
 * chosen at run time, so the binary stays portable. Where the exact score
 * matters (serving), it is one fused multiply-add per factor in factor
 * order, computed by intrinsics the compiler may not reorder, so the full
 * scan and the rescored candidates agree to the bit.
 *
 * Top k: a bounded min-heap (O(n log k)), then sorted. Order: higher score
 * first; equal scores by lower item index, so answers are deterministic.
 * Threads: pure functions over caller-owned memory; any thread.
 */
#ifndef EDDY_ALS_SCORE_H
#define EDDY_ALS_SCORE_H

#include <stdbool.h>
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
 * rounded up to ALS_PANEL floats. x holds rank floats. On AVX-512 CPUs each
 * score is one fused multiply-add per factor in factor order (the exact
 * score serving answers with). */
void als_score_panel(const float *x, const float *panel, int32_t n, int32_t rank, float *out);
/* out[j] = x · V_items[j], bit for bit what als_score_panel gives those
 * items (gathered from the row-major factors: a few cache lines per item
 * instead of a whole panel block). */
int als_score_rows(const float *x, const als_factors_t *V, const int32_t *items, int32_t n,
                   float *out); /* CORE_OK, or CORE_ERR_NOMEM (CPUs without AVX-512 only) */
/* als_score_rows's path for models past 2^31 floats (64-bit gather
 * offsets), callable on any model so tests can hold it to the same bits. */
int als__score_rows_wide(const float *x, const als_factors_t *V, const int32_t *items,
                         int32_t n, float *out);

/* ---- int8 pre-scoring with exact bounds (the serving fast path) ---------------
 *
 * Why: at 10,000 items × rank 50 the float panel is 2 MB, more than one
 * core's L2, so a full scan is bound by L3 bandwidth. Most items cannot
 * reach the top k; finding which ones can does not need float precision.
 *
 * How: each item row is quantised to int8 with its own scale
 * (q_i = round(V_i / s_i), s_i = max|V_i| / 127) — 4× less memory — and a
 * query vector x to 8 bits the same way. One pass of integer dot products
 * (AVX-512 VNNI: 64 multiply-adds per instruction) gives an approximation
 * a_i of x·V_i together with a rigorous bound:
 *     |x·V_i − a_i| ≤ ‖x − x̃‖·‖V_i‖ + ‖x̃‖·‖V_i − Ṽ_i‖ + rounding slack
 * (Cauchy–Schwarz twice; x̃, Ṽ_i the dequantised vectors; the slack covers
 * float rounding of both a_i and the float kernel's own sum, so the bound
 * holds against the score als_score_panel computes, not just the real
 * one). Serving then needs the float score only of items whose UPPER
 * bound reaches τ, the k-th best LOWER bound: every item of the true top k
 * has score ≥ τ, so rescoring those with the float panel gives exactly the
 * full scan's answer (same scores, same order) at a fraction of the memory
 * traffic; typically a few dozen items qualify (als_qpanel_candidates).
 *
 * Layout: blocks of ALS_PANEL items as in the float panel; within a block,
 * for each group of 4 factors, the 4 bytes of item 0, then item 1, ... (64
 * bytes = one VNNI operand). The rank is padded to a multiple of 4 with
 * zero bytes. The user side is offset to unsigned (uq + 128) as VNNI wants;
 * the per-item sum of q corrects for the offset exactly (all integer sums
 * fit in int32: rank × 255 × 127 < 2^31 for rank ≤ 66,000).
 */
typedef struct als_qpanel {
    int32_t n, rank, r4; /* items, rank, ceil(rank / 4) */
    int8_t *q;           /* nblocks × r4 × 64 bytes, 64-byte aligned */
    float *scale;        /* s_i (n rounded up to ALS_PANEL) */
    int32_t *qsum;       /* Σ_a q_ia */
    float *norm;         /* ‖V_i‖, rounded up */
    float *err;          /* ‖V_i − s_i·q_i‖, rounded up */
} als_qpanel_t;

/* Builds the quantised copy of V; 0 or CORE_ERR_NOMEM (qp then empty). */
int als_qpanel_build(const als_factors_t *V, als_qpanel_t *qp);
void als_qpanel_fini(als_qpanel_t *qp);
/* True when this CPU has the instructions that make the fast path pay
 * (AVX-512 VNNI); elsewhere serving scans the float panel. */
bool als_qpanel_worthwhile(void);
/* lo[i] ≤ score_i ≤ hi[i] for i < n, where score_i is what
 * als_score_panel(x, ...) computes; lo, hi have room for n rounded up to
 * ALS_PANEL. portable forces the plain-C kernel. Serving uses the streaming
 * form below; this one lays every bound out, for tests of the arithmetic
 * both share. */
void als_qpanel_bounds(const als_qpanel_t *qp, const float *x, float *lo, float *hi,
                       bool portable);

/* What a query admits, for als_qpanel_candidates. */
typedef struct als_qfilter {
    const uint16_t *excl; /* NULL, or one mask per block: bit j set = item
                             b·ALS_PANEL + j is excluded (seen, blacklisted) */
    const float *div;     /* NULL, or per-item divisors (cosine: ‖V_i‖): a
                             bound v becomes div_i > 0 ? v / div_i : 0, as
                             the caller treats exact scores */
    int32_t k;            /* the answer's size, ≥ 1 */
    bool positive_only;   /* the answer keeps only scores > 0 */
} als_qfilter_t;

/* The serving fast path: which items can reach the top k.
 *
 * Three passes, each branch-free over 16 items at a time: the int8 bounds
 * of every item into lo/hi; tau = the k-th best lower bound of the items
 * that count (not excluded; lo > 0 when positive_only); then the
 * candidates, every item not excluded whose upper bound reaches tau. At
 * least k counting items have score ≥ lo ≥ tau, so every item of the exact
 * top k has score ≥ tau and is a candidate: callers that rescore the
 * candidates with the float panel (als_score_panel on their blocks) and
 * keep the best k get exactly the full scan's answer. (Selecting against a
 * running threshold during the integer pass measured ~2× slower: its
 * data-dependent branches stall the overlap of blocks.)
 *
 * tau for k ≤ 16 comes from each of the 16 lanes keeping its 4 best lower
 * bounds while scanning (a min/max network; exact unless one lane holds
 * more than 4 of the k best, and never above the true k-th best); for
 * larger k, from quickselect over the lower bounds at or above the k-th
 * best of a sample of max(512, 16k) items (a subset's k-th best is never
 * above the whole set's), or over all of them when that is every item.
 *
 * lo, hi: scratch for n rounded up to ALS_PANEL floats (lo is consumed).
 * cand: one mask per block of ALS_PANEL items (bit j = item b·16 + j).
 * Returns CORE_OK and *tau (-inf when fewer than k items count), or
 * CORE_ERR_NOMEM. portable forces the plain-C passes. */
int als_qpanel_candidates(const als_qpanel_t *qp, const float *x, const als_qfilter_t *f,
                          float *lo, float *hi, uint16_t *cand, float *tau, bool portable);

#endif
