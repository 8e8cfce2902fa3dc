/* als_query — see als_query.h. */
#include "ml/als_query.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "ml/als_score.h"

#define QFAIL(...)                                                                       \
    do {                                                                                 \
        core_errf(CORE_ERR_INVAL, errstr, errstr_size, __VA_ARGS__);                     \
        goto fail;                                                                       \
    } while (0)

static int check_list(json_t *v, const char *name, char *errstr, size_t errstr_size)
{
    if (!json_is_array(v))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "%s must be an array of strings",
                         name);
    if (json_array_size(v) > ALS_QUERY_MAX_LIST)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "%s has more than %d entries",
                         name, ALS_QUERY_MAX_LIST);
    size_t j;
    json_t *e;
    json_array_foreach(v, j, e)
    {
        if (!json_is_string(e))
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                             "%s must be an array of strings", name);
    }
    return 0;
}

int als_query_parse(const char *body, size_t len, als_query_t *q, char *errstr,
                    size_t errstr_size)
{
    memset(q, 0, sizeof(*q));
    json_error_t jerr;
    q->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!q->root)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "malformed JSON: %s", jerr.text);
    if (!json_is_object(q->root))
        QFAIL("query must be a JSON object");
    const char *key;
    json_t *v;
    bool have_num = false;
    json_object_foreach(q->root, key, v)
    {
        if (strcmp(key, "user") == 0) {
            if (!json_is_string(v))
                QFAIL("user must be a string");
            q->user = json_string_value(v);
        } else if (strcmp(key, "items") == 0) {
            if (check_list(v, "items", errstr, errstr_size))
                goto fail;
            q->items = v;
        } else if (strcmp(key, "num") == 0) {
            if (!json_is_integer(v))
                QFAIL("num must be an integer");
            json_int_t n = json_integer_value(v);
            if (n <= 0 || n > ALS_QUERY_MAX_NUM)
                QFAIL("num must be 1..%d", ALS_QUERY_MAX_NUM);
            q->num = (int)n;
            have_num = true;
        } else if (strcmp(key, "categories") == 0) {
            if (check_list(v, "categories", errstr, errstr_size))
                goto fail;
            q->categories = v;
        } else if (strcmp(key, "categoryBlackList") == 0) {
            if (check_list(v, "categoryBlackList", errstr, errstr_size))
                goto fail;
            q->cat_black = v;
        } else if (strcmp(key, "whiteList") == 0) {
            if (check_list(v, "whiteList", errstr, errstr_size))
                goto fail;
            q->white = v;
        } else if (strcmp(key, "blackList") == 0) {
            if (check_list(v, "blackList", errstr, errstr_size))
                goto fail;
            q->black = v;
        } else {
            QFAIL("unknown field \"%.64s\" (known: user, items, num, categories, "
                  "categoryBlackList, whiteList, blackList)",
                  key);
        }
    }
    if (!have_num)
        QFAIL("num is required");
    if (!!q->user == !!q->items)
        QFAIL("give exactly one of \"user\" or \"items\"");
    q->kind = q->user ? ALS_QUERY_USER : ALS_QUERY_ITEMS;
    return CORE_OK;
fail:
    json_decref(q->root);
    memset(q, 0, sizeof(*q));
    return CORE_ERR_INVAL;
}

void als_query_fini(als_query_t *q)
{
    json_decref(q->root);
    memset(q, 0, sizeof(*q));
}

/* 10^k for k = -30..53: what scaling a float to 9 significant digits needs
 * (floats span 1e-45..3.4e38). Literals, so each is the correctly rounded
 * double. */
static const double pow10_tab[] = {1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39, 1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47, 1e48, 1e49, 1e50, 1e51, 1e52, 1e53};

/* Writes f as printf's "%.9g" would, without printf (which was ~5% of a
 * query's CPU): 9 significant digits, trailing zeros dropped, exponent form
 * below 1e-4 or from 1e9. Nine digits identify a float exactly, so clients
 * parse back the score we computed. Ties round to even, as printf's do.
 * The scaling is done in double; its rounding could only matter when the
 * 10th digit is a 5 followed by ~7 zeros (then the 9th digit is off by one
 * unit, still well within a float's spacing; 2M random floats in the unit
 * test print exactly as printf's). -0 may print as 0 (this file is built with -fno-signed-zeros).
 * Returns the length (at most 16). */
int als_fmt_float(char *buf, float f)
{
    double d = f;
    if (!isfinite(d))
        return snprintf(buf, 24, "%.9g", d);
    char *p = buf;
    if (signbit(d)) {
        *p++ = '-';
        d = -d;
    }
    if (d == 0) {
        *p++ = '0';
        return (int)(p - buf);
    }
    int e = (int)floor(log10(d));
    long long m = llrint(d * pow10_tab[8 - e + 30]);
    if (m >= 1000000000LL) {
        e++;
        m = llrint(d * pow10_tab[8 - e + 30]);
    } else if (m < 100000000LL) {
        e--;
        m = llrint(d * pow10_tab[8 - e + 30]);
    }
    if (m >= 1000000000LL) { /* rounding carried into a tenth digit */
        m /= 10;
        e++;
    }
    char dig[9];
    for (int k = 8; k >= 0; k--, m /= 10)
        dig[k] = (char)('0' + m % 10);
    int nd = 9;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    if (e < -4 || e >= 9) {
        *p++ = dig[0];
        if (nd > 1) {
            *p++ = '.';
            memcpy(p, dig + 1, (size_t)nd - 1);
            p += nd - 1;
        }
        *p++ = 'e';
        *p++ = e < 0 ? '-' : '+';
        int ae = e < 0 ? -e : e;
        *p++ = (char)('0' + ae / 10);
        *p++ = (char)('0' + ae % 10);
    } else if (e >= 0) {
        int ip = e + 1; /* digits before the point; pad with zeros past nd */
        for (int k = 0; k < ip; k++)
            *p++ = k < nd ? dig[k] : '0';
        if (nd > ip) {
            *p++ = '.';
            memcpy(p, dig + ip, (size_t)(nd - ip));
            p += nd - ip;
        }
    } else {
        *p++ = '0';
        *p++ = '.';
        for (int k = 0; k < -e - 1; k++)
            *p++ = '0';
        memcpy(p, dig, (size_t)nd);
        p += nd;
    }
    return (int)(p - buf);
}

void als_json_str(core_buf_t *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    core_buf_reserve(out, len + 2);
    core_wr_raw(out, "\"", 1);
    size_t run = 0;
    for (size_t j = 0; j < len; j++) {
        unsigned char c = (unsigned char)s[j];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        core_wr_raw(out, s + run, j - run);
        run = j + 1;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            core_wr_raw(out, esc, 2);
        } else {
            core_wr_raw(out, esc, 6);
        }
    }
    core_wr_raw(out, s + run, len - run);
    core_wr_raw(out, "\"", 1);
}

/* Sorted, de-duplicated category indices named in a query list. */
static int32_t *cat_set(const als_model_t *m, json_t *list, int *n)
{
    *n = 0;
    if (!list)
        return NULL;
    int32_t *v = core_xmalloc((json_array_size(list) + 1) * sizeof(int32_t));
    size_t j;
    json_t *e;
    json_array_foreach(list, j, e)
    {
        int32_t c = als_idmap_find(&m->cats, json_string_value(e), json_string_length(e));
        if (c >= 0)
            v[(*n)++] = c;
    }
    /* tiny lists: insertion sort */
    for (int a = 1; a < *n; a++)
        for (int b = a; b > 0 && v[b - 1] > v[b]; b--) {
            int32_t t = v[b];
            v[b] = v[b - 1];
            v[b - 1] = t;
        }
    return v;
}

static bool shares_category(const als_model_t *m, int32_t item, const int32_t *set, int n)
{
    int64_t a = m->cat_ptr[item], ae = m->cat_ptr[item + 1];
    int b = 0;
    while (a < ae && b < n) {
        if (m->cat_idx[a] == set[b])
            return true;
        if (m->cat_idx[a] < set[b])
            a++;
        else
            b++;
    }
    return false;
}

/* Excluded items carry NaN as their score: every "keep?" test below is
 * written as !(score >= threshold), which is true for NaN, so exclusion
 * costs no extra branch or mask in the hot loop. Real scores are finite
 * (factors are validated finite on load). */
#define ALS_EXCLUDED NAN

/* Marks item i excluded; on the fast path, also refreshes its block's maximum
 * lower bound, which kth_block_max relies on being a real candidate's. */
static void exclude(float *scores, int32_t ni, int32_t i, float *bmax)
{
    scores[i] = ALS_EXCLUDED;
    if (bmax) {
        const int32_t b = i / ALS_PANEL, end = (b + 1) * ALS_PANEL < ni ? (b + 1) * ALS_PANEL : ni;
        float mx = -INFINITY;
        for (int32_t j = b * ALS_PANEL; j < end; j++)
            mx = scores[j] > mx ? scores[j] : mx; /* NaN never wins */
        bmax[b] = mx;
    }
}

/* A starting threshold for pass A: the k-th largest block maximum of the
 * lower bounds. Each block maximum belongs to a distinct, non-excluded item,
 * so at least k items reach it and tau (the k-th best lower bound) is at
 * least this; pass A then skips every block below it. Items that only pass
 * if positive count only when their lower bound is > 0. heap is k slots of
 * scratch. -inf when fewer than k blocks qualify. */
static float kth_block_max(const float *bmax, int32_t nb, int k, bool positive_only,
                           als_scored_t *heap)
{
    als_topk_t t;
    als_topk_init(&t, heap, k);
    float thr = -INFINITY;
    for (int32_t b = 0; b < nb; b++) {
        float v = bmax[b];
        if (!(v >= thr) || v == -INFINITY || (positive_only && !(v > 0)))
            continue;
        als_topk_push(&t, b, v);
        if (t.n == t.k)
            thr = t.h[0].score;
    }
    return t.n == t.k ? thr : -INFINITY;
}

/* Pass B of the int8 fast path (als_score.h): rescores with the float panel
 * every block holding an item whose upper bound reaches tau, and keeps the
 * best k of those exactly. lo[i] is NaN for excluded items. cosine divides by
 * the item norm, as the items query does. */
static void rescore_candidates(const als_model_t *m, const float *x, const float *lo,
                               const float *hi, const float *bmax_hi, float tau,
                               bool positive_only, bool cosine, als_topk_t *t)
{
    const int32_t ni = m->items.n, rank = m->V.rank;
    float blk[ALS_PANEL];
    for (int32_t i0 = 0, b = 0; i0 < ni; i0 += ALS_PANEL, b++) {
        if (!(bmax_hi[b] >= tau))
            continue;
        const int32_t cnt = ni - i0 < ALS_PANEL ? ni - i0 : ALS_PANEL;
        bool any = false;
        for (int32_t j = 0; j < cnt; j++)
            any |= lo[i0 + j] == lo[i0 + j] && hi[i0 + j] >= tau;
        if (!any)
            continue;
        als_score_panel(x, m->panel + (size_t)i0 * rank, cnt, rank, blk);
        for (int32_t j = 0; j < cnt; j++) {
            const int32_t i = i0 + j;
            if (!(lo[i] == lo[i] && hi[i] >= tau))
                continue;
            float sc = blk[j];
            if (cosine)
                sc = m->item_norm[i] > 0 ? sc / m->item_norm[i] : 0;
            if (positive_only && !(sc > 0))
                continue;
            als_topk_push(t, i, sc);
        }
    }
}

int als_query_run(const als_model_t *m, const als_query_t *q, bool unknown_popular,
                  core_buf_t *out, als_query_info_t *info)
{
    const int32_t ni = m->items.n;
    memset(info, 0, sizeof(*info));
    float *scores = NULL, *hi = NULL, *acc = NULL;
    float *bmax = NULL; /* fast path: block maxima of lo (nb floats), then of hi */
    const float *qx = NULL; /* query vector of the fast path; NULL = scores are exact */
    uint8_t *qmask = NULL;
    als_scored_t *heap = NULL;
    int32_t *cats = NULL, *cblack = NULL;
    int ncats = 0, ncblack = 0;
    bool positive_only = false, cosine = false;
    als_topk_t t;
    int err = CORE_OK;

    if (ni == 0)
        goto answer_empty;
    cats = cat_set(m, q->categories, &ncats);
    cblack = cat_set(m, q->cat_black, &ncblack);
    if (q->categories && ncats == 0)
        goto answer_empty; /* no known category: nothing can share one */
    /* The int8 pre-scoring pays on the plain query (no category or white
     * list, which touch few items anyway) when the CPU has VNNI. */
    const bool fast = m->qpanel.q && !q->categories && !ncblack && !q->white;
    const int32_t nb = (ni + ALS_PANEL - 1) / ALS_PANEL;
    scores = core_trymalloc(((size_t)ni + ALS_PANEL) * sizeof(float));
    hi = fast ? core_trymalloc(((size_t)ni + ALS_PANEL) * sizeof(float)) : NULL;
    bmax = fast ? core_trymalloc(2 * (size_t)nb * sizeof(float)) : NULL;
    heap = core_trymalloc((size_t)q->num * sizeof(als_scored_t));
    if (!scores || !heap || (fast && (!hi || !bmax))) {
        err = CORE_ERR_NOMEM;
        goto out;
    }

    if (q->kind == ALS_QUERY_USER) {
        int32_t u = als_idmap_find(&m->users, q->user, strlen(q->user));
        if (u >= 0) {
            const float *x = als_row(&m->U, u);
            if (fast) {
                als_qpanel_bounds(&m->qpanel, x, scores, hi, bmax, bmax + nb, false);
                qx = x;
            } else {
                als_score_panel(x, m->panel, ni, m->V.rank, scores);
            }
            for (int64_t e = m->seen.ptr[u]; e < m->seen.ptr[u + 1]; e++)
                exclude(scores, ni, m->seen.idx[e], bmax);
        } else {
            info->unknown_user = true;
            if (!unknown_popular)
                goto answer_empty;
            memcpy(scores, m->popularity, (size_t)ni * sizeof(float));
        }
    } else {
        /* Σ cosine: score_i = Σ_q (y_q/‖y_q‖)·y_i / ‖y_i‖ = (Σ_q ŷ_q)·y_i / ‖y_i‖. */
        qmask = core_trymalloc((size_t)ni);
        if (!qmask || posix_memalign((void **)&acc, 64, (size_t)m->V.stride * sizeof(float)) != 0) {
            err = CORE_ERR_NOMEM;
            goto out;
        }
        memset(qmask, 0, (size_t)ni);
        memset(acc, 0, (size_t)m->V.stride * sizeof(float));
        int known = 0;
        size_t j;
        json_t *e;
        json_array_foreach(q->items, j, e)
        {
            int32_t i = als_idmap_find(&m->items, json_string_value(e), json_string_length(e));
            if (i < 0 || qmask[i])
                continue;
            qmask[i] = 1;
            known++;
            if (m->item_norm[i] > 0) {
                const float *y = als_row(&m->V, i);
                float inv = 1.0f / m->item_norm[i];
                for (int32_t a = 0; a < m->V.rank; a++)
                    acc[a] += y[a] * inv;
            }
        }
        if (!known)
            goto answer_empty;
        if (fast) {
            /* Dividing both bounds by the (positive) norm keeps them bounds:
             * float division is monotonic. */
            als_qpanel_bounds(&m->qpanel, acc, scores, hi, bmax, bmax + nb, false);
            qx = acc;
            for (int32_t i = 0; i < ni; i++) {
                float n = m->item_norm[i];
                scores[i] = qmask[i] ? ALS_EXCLUDED : n > 0 ? scores[i] / n : 0;
                hi[i] = n > 0 ? hi[i] / n : 0;
            }
            als_block_max(scores, ni, bmax);
            als_block_max(hi, ni, bmax + nb);
        } else {
            als_score_panel(acc, m->panel, ni, m->V.rank, scores);
            for (int32_t i = 0; i < ni; i++)
                scores[i] = qmask[i]                ? ALS_EXCLUDED
                            : m->item_norm[i] > 0 ? scores[i] / m->item_norm[i]
                                                  : 0;
        }
        positive_only = true;
        cosine = true;
    }
    if (q->black) {
        size_t j;
        json_t *e;
        json_array_foreach(q->black, j, e)
        {
            int32_t i = als_idmap_find(&m->items, json_string_value(e), json_string_length(e));
            if (i >= 0)
                exclude(scores, ni, i, qx ? bmax : NULL);
        }
    }

    als_topk_init(&t, heap, q->num);
    if (!q->categories && !ncblack && !q->white) {
        /* Hot path: one compare per item against the worst kept score. On
         * the fast path scores are lower bounds and this pass only finds
         * tau, the k-th best lower bound (an item counts only if it surely
         * passes the > 0 rule); rescore_candidates then decides exactly. */
        float thr = qx ? kth_block_max(bmax, nb, q->num, positive_only, heap) : -INFINITY;
        for (int32_t i0 = 0, b = 0; i0 < ni; i0 += ALS_PANEL, b++) {
            if (qx && !(bmax[b] >= thr))
                continue;
            const int32_t end = ni - i0 < ALS_PANEL ? ni : i0 + ALS_PANEL;
            for (int32_t i = i0; i < end; i++) {
                float sc = scores[i];
                if (!(sc >= thr) || (positive_only && !(sc > 0)))
                    continue;
                als_topk_push(&t, i, sc);
                if (t.n == t.k)
                    thr = t.h[0].score;
            }
        }
        if (qx) {
            float tau = t.n == t.k ? t.h[0].score : -INFINITY;
            als_topk_init(&t, heap, q->num);
            rescore_candidates(m, qx, scores, hi, bmax + nb, tau, positive_only, cosine, &t);
        }
    } else {
#define CONSIDER(i)                                                                      \
    do {                                                                                 \
        float sc_ = scores[i];                                                           \
        if (!(sc_ >= -INFINITY) || (positive_only && !(sc_ > 0)))                        \
            break;                                                                       \
        if (q->categories && !shares_category(m, i, cats, ncats))                        \
            break;                                                                       \
        if (ncblack && shares_category(m, i, cblack, ncblack))                           \
            break;                                                                       \
        als_topk_push(&t, i, sc_);                                                       \
    } while (0)
        if (q->white) {
            size_t j;
            json_t *e;
            json_array_foreach(q->white, j, e)
            {
                int32_t i = als_idmap_find(&m->items, json_string_value(e), json_string_length(e));
                if (i < 0)
                    continue;
                CONSIDER(i);
                scores[i] = ALS_EXCLUDED; /* a repeated whitelist id is considered once */
            }
        } else {
            for (int32_t i = 0; i < ni; i++)
                CONSIDER(i);
        }
#undef CONSIDER
    }
    als_topk_sort(&t);
    core_buf_reserve(out, 32 + (size_t)t.n * 48);
    core_wr_raw(out, "{\"itemScores\":[", 15);
    for (int32_t j = 0; j < t.n; j++) {
        if (j)
            core_wr_raw(out, ",", 1);
        core_wr_raw(out, "{\"item\":", 8);
        int32_t i = t.h[j].item;
        als_json_str(out, m->items.names[i], m->items.lens[i]);
        char num[48] = ",\"score\":";
        int n = 9 + als_fmt_float(num + 9, t.h[j].score);
        num[n++] = '}';
        core_wr_raw(out, num, (size_t)n);
    }
    core_wr_raw(out, "]}", 2);
    info->returned = t.n;
    goto out;
answer_empty:
    core_wr_raw(out, "{\"itemScores\":[]}", 17);
out:
    free(scores);
    free(hi);
    free(bmax);
    free(acc);
    free(qmask);
    free(heap);
    free(cats);
    free(cblack);
    return err;
}
