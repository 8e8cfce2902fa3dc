/* als_query — see als_query.h. */
#include "ml/als_query.h"

#include <math.h>
#include <pthread.h>
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

/* The plain-query scanner (als_query.h): a cursor over the body. */
typedef struct {
    const char *p, *end;
} qscan_t;

static void qscan_ws(qscan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool qscan_char(qscan_t *s, char c)
{
    qscan_ws(s);
    if (s->p == s->end || *s->p != c)
        return false;
    s->p++;
    return true;
}

/* A string of printable ASCII without escapes; *out points into the body. */
static bool qscan_string(qscan_t *s, const char **out, size_t *len)
{
    if (!qscan_char(s, '"'))
        return false;
    const char *start = s->p;
    for (; s->p < s->end && *s->p != '"'; s->p++)
        if ((unsigned char)*s->p < 0x20 || (unsigned char)*s->p > 0x7E || *s->p == '\\')
            return false;
    if (s->p == s->end)
        return false;
    *out = start;
    *len = (size_t)(s->p++ - start);
    return true;
}

/* 1..ALS_QUERY_MAX_NUM written as JSON writes an integer (no sign, no
 * leading zero, no fraction or exponent). */
static bool qscan_num(qscan_t *s, int *num)
{
    qscan_ws(s);
    if (s->p == s->end || *s->p < '1' || *s->p > '9')
        return false; /* "-1", "0", "01", "x": jansson says what is wrong */
    int n = 0;
    for (int digits = 1; s->p < s->end && *s->p >= '0' && *s->p <= '9'; s->p++, digits++) {
        if (digits > 4)
            return false;
        n = n * 10 + (*s->p - '0');
    }
    if (n > ALS_QUERY_MAX_NUM)
        return false;
    if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E'))
        return false;
    *num = n;
    return true;
}

/* {"user": "<id>", "num": <n>} in either order; false when the body is
 * anything else (including anything invalid). */
static bool parse_plain(const char *body, size_t len, als_query_t *q)
{
    qscan_t s = {body, body + len};
    const char *user = NULL;
    size_t user_len = 0;
    int num = 0;
    if (!qscan_char(&s, '{'))
        return false;
    for (int field = 0; field < 2; field++) {
        const char *key, *v;
        size_t klen, vlen;
        if ((field == 1 && !qscan_char(&s, ',')) || !qscan_string(&s, &key, &klen) ||
            !qscan_char(&s, ':'))
            return false;
        if (klen == 4 && memcmp(key, "user", 4) == 0 && !user) {
            if (!qscan_string(&s, &v, &vlen) || vlen > ALS_QUERY_PLAIN_USER_MAX)
                return false;
            user = v;
            user_len = vlen;
        } else if (klen == 3 && memcmp(key, "num", 3) == 0 && !num) {
            if (!qscan_num(&s, &num))
                return false;
        } else {
            return false;
        }
    }
    if (!qscan_char(&s, '}'))
        return false;
    qscan_ws(&s);
    if (s.p != s.end)
        return false;
    memset(q, 0, sizeof(*q));
    memcpy(q->user_buf, user, user_len);
    q->user_buf[user_len] = '\0';
    q->user = q->user_buf;
    q->num = num;
    q->kind = ALS_QUERY_USER;
    return true;
}

int als_query_parse(const char *body, size_t len, als_query_t *q, char *errstr,
                    size_t errstr_size)
{
    if (parse_plain(body, len, q))
        return CORE_OK;
    return als_query_parse_tree(body, len, q, errstr, errstr_size);
}

int als_query_parse_tree(const char *body, size_t len, als_query_t *q, char *errstr,
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
    /* e ≈ floor(log10(d)) from the binary exponent: (bexp - 1)·log10(2) ≤
     * log10(d) < bexp·log10(2), so this is the true value or one below,
     * which the digit count check below corrects (a libm log10 was a tenth
     * of this function's time) */
    int bexp;
    (void)frexp(d, &bexp); /* d = m·2^bexp, m in [0.5, 1) */
    int e = (int)floor((bexp - 1) * 0.30102999566398120);
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
    size_t clean = 0; /* ids rarely need escaping: then one copy into reserved room */
    while (clean < len && (unsigned char)s[clean] >= 0x20 && s[clean] != '"' && s[clean] != '\\')
        clean++;
    core_buf_reserve(out, len + 2);
    if (clean == len) {
        uint8_t *w = out->data + out->len;
        w[0] = '"';
        memcpy(w + 1, s, len);
        w[len + 1] = '"';
        out->len += len + 2;
        return;
    }
    core_wr_raw(out, "\"", 1);
    size_t run = 0;
    for (size_t j = clean; j < len; j++) {
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

/* Excluded items (seen by the user, named by the query, blacklisted), one
 * 16-bit mask per block of ALS_PANEL items: the layout the int8 fast path
 * tests 16 items at a time with. */
static inline void excl_set(uint16_t *excl, int32_t i)
{
    excl[i / ALS_PANEL] |= (uint16_t)(1u << (i % ALS_PANEL));
}

static inline bool excl_has(const uint16_t *excl, int32_t i)
{
    return excl[i / ALS_PANEL] >> (i % ALS_PANEL) & 1;
}

/* Excluded items carry NaN as their score on the scan path: every "keep?"
 * test below is written as !(score >= threshold), which is true for NaN, so
 * exclusion costs no extra branch in the hot loop. Real scores are finite
 * (factors are validated finite on load). */
#define ALS_EXCLUDED NAN

/* One query between its steps. */
typedef struct qrun {
    const als_model_t *m;
    const als_query_t *q;
    const uint16_t *excl;
    int32_t *cats, *cblack; /* category filters (cat_set) */
    int ncats, ncblack;
    bool positive_only; /* items queries keep only scores > 0 */
    bool cosine;        /* items queries divide by the item norm */
    als_topk_t t;       /* the answer */
} qrun_t;

/* The scan path: scores[i] is item i's exact score for every item; filters
 * and exclusions are applied while pushing into the answer. */
static void answer_scan(qrun_t *r, float *scores)
{
    const als_model_t *m = r->m;
    const als_query_t *q = r->q;
    const int32_t ni = m->items.n;
    for (int32_t b = 0; b < (ni + ALS_PANEL - 1) / ALS_PANEL; b++)
        for (unsigned mk = r->excl[b]; mk; mk &= mk - 1)
            scores[b * ALS_PANEL + __builtin_ctz(mk)] = ALS_EXCLUDED;
    if (!q->categories && !r->ncblack && !q->white) {
        /* Hot path: one compare per item against the worst kept score. */
        float thr = -INFINITY;
        for (int32_t i = 0; i < ni; i++) {
            float sc = scores[i];
            if (!(sc >= thr) || (r->positive_only && !(sc > 0)))
                continue;
            als_topk_push(&r->t, i, sc);
            if (r->t.n == r->t.k)
                thr = r->t.h[0].score;
        }
        return;
    }
#define CONSIDER(i)                                                                      \
    do {                                                                                 \
        float sc_ = scores[i];                                                           \
        if (!(sc_ >= -INFINITY) || (r->positive_only && !(sc_ > 0)))                     \
            break;                                                                       \
        if (q->categories && !shares_category(m, i, r->cats, r->ncats))                  \
            break;                                                                       \
        if (r->ncblack && shares_category(m, i, r->cblack, r->ncblack))                  \
            break;                                                                       \
        als_topk_push(&r->t, i, sc_);                                                    \
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

/* The exact scores of the query vector x for every item (the scan path). */
static int answer_scan_vector(qrun_t *r, const float *x)
{
    const als_model_t *m = r->m;
    const int32_t ni = m->items.n;
    float *scores = core_trymalloc(((size_t)ni + ALS_PANEL) * sizeof(float));
    if (!scores)
        return CORE_ERR_NOMEM;
    als_score_panel(x, m->panel, ni, m->V.rank, scores);
    if (r->cosine)
        for (int32_t i = 0; i < ni; i++)
            scores[i] = m->item_norm[i] > 0 ? scores[i] / m->item_norm[i] : 0;
    answer_scan(r, scores);
    free(scores);
    return CORE_OK;
}

/* Candidates scored per call of als_score_rows. */
#define RESCORE_CHUNK 256

/* Keeps the best k candidates by their exact score (cand: a mask per
 * block, zero-padded to whole 64-bit words, which are skipped four blocks
 * at a time; items: scratch for the candidates of 64 blocks). */
static int rescore_candidates(qrun_t *r, const float *x, const uint16_t *cand, int32_t *items)
{
    const als_model_t *m = r->m;
    const int32_t nb = (m->items.n + ALS_PANEL - 1) / ALS_PANEL;
    float sc[RESCORE_CHUNK];
    for (int32_t w0 = 0; w0 < nb;) {
        int32_t n = 0; /* gather up to RESCORE_CHUNK - 64 candidates, then score them */
        for (; w0 < nb && n <= RESCORE_CHUNK - 4 * ALS_PANEL; w0 += 4) {
            uint64_t word; /* blocks w0..w0+3, lowest block in the low bits */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            memcpy(&word, cand + w0, sizeof(word));
#else
            word = 0;
            for (int q = 0; q < 4; q++)
                word |= (uint64_t)cand[w0 + q] << (16 * q);
#endif
            for (; word; word &= word - 1)
                items[n++] = w0 * ALS_PANEL + __builtin_ctzll(word);
        }
        for (int32_t j = 0; j < n; j++) {
            const char *row = (const char *)als_row(&m->V, items[j]);
            for (int32_t off = 0; off < m->V.rank * (int32_t)sizeof(float); off += 64)
                __builtin_prefetch(row + off);
        }
        int err = als_score_rows(x, &m->V, items, n, sc);
        if (err)
            return err;
        for (int32_t j = 0; j < n; j++) {
            const int32_t i = items[j];
            float s = sc[j];
            if (r->cosine)
                s = m->item_norm[i] > 0 ? s / m->item_norm[i] : 0;
            if (r->positive_only && !(s > 0))
                continue;
            als_topk_push(&r->t, i, s);
        }
    }
    return CORE_OK;
}

/* Per-thread scratch of the fast path, kept between queries: its four
 * arrays of n floats are ~160 KB at 10,000 items, past the allocator's
 * thread cache, and allocating them per query cost ~3% of a query. Freed
 * when its thread exits (a pthread key destructor). */
typedef struct qscratch {
    size_t cap; /* bytes after the header */
    _Alignas(64) unsigned char mem[];
} qscratch_t;

static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_init(void)
{
    if (pthread_key_create(&g_scratch_key, free) != 0)
        abort(); /* only with no keys left: a broken process */
}

/* At least bytes of this thread's scratch, 64-byte aligned; NULL on OOM. */
static void *query_scratch(size_t bytes)
{
    pthread_once(&g_scratch_once, scratch_key_init);
    qscratch_t *sc = pthread_getspecific(g_scratch_key);
    if (sc && sc->cap >= bytes)
        return sc->mem;
    void *p = NULL;
    if (posix_memalign(&p, 64, sizeof(qscratch_t) + bytes) != 0)
        return NULL;
    free(sc);
    sc = p;
    sc->cap = bytes;
    pthread_setspecific(g_scratch_key, sc);
    return sc->mem;
}

/* The int8 fast path (als_score.h): the bounds single out the few items
 * that can reach the top k, the float panel scores only those. Same
 * answer as answer_scan_vector. */
static int answer_fast(qrun_t *r, const float *x)
{
    const als_model_t *m = r->m;
    /* lo, hi: n rounded up to a block, then to 64 bytes; cand: a mask per
     * block, rounded up to whole 64-bit words */
    const size_t room = ((size_t)m->items.n + ALS_PANEL + 15) / 16 * 16;
    const size_t nwords = ((size_t)m->items.n + 4 * ALS_PANEL - 1) / (4 * ALS_PANEL);
    float *lo = query_scratch(2 * room * sizeof(float) + nwords * sizeof(uint64_t) +
                              RESCORE_CHUNK * sizeof(int32_t));
    if (!lo)
        return CORE_ERR_NOMEM;
    float *hi = lo + room;
    uint16_t *cand = (uint16_t *)(hi + room);
    int32_t *items = (int32_t *)(cand + 4 * nwords);
    memset(cand, 0, nwords * sizeof(uint64_t));
    float tau;
    const als_qfilter_t f = {.excl = r->excl,
                             .div = r->cosine ? m->item_norm : NULL,
                             .k = r->t.k,
                             .positive_only = r->positive_only};
    int err = als_qpanel_candidates(&m->qpanel, x, &f, lo, hi, cand, &tau, false);
    return err ? err : rescore_candidates(r, x, cand, items);
}

/* Σ cosine: score_i = Σ_q (y_q/‖y_q‖)·y_i / ‖y_i‖ = (Σ_q ŷ_q)·y_i / ‖y_i‖.
 * Sums the normalised vectors of the known query items into acc and marks
 * them excluded; returns how many were known. */
static int items_query_vector(const als_model_t *m, const als_query_t *q, float *acc,
                              uint16_t *excl)
{
    int known = 0;
    size_t j;
    json_t *e;
    json_array_foreach(q->items, j, e)
    {
        int32_t i = als_idmap_find(&m->items, json_string_value(e), json_string_length(e));
        if (i < 0 || excl_has(excl, i))
            continue;
        excl_set(excl, i);
        known++;
        if (m->item_norm[i] > 0) {
            const float *y = als_row(&m->V, i);
            float inv = 1.0f / m->item_norm[i];
            for (int32_t a = 0; a < m->V.rank; a++)
                acc[a] += y[a] * inv;
        }
    }
    return known;
}

static void exclude_list(const als_model_t *m, json_t *list, uint16_t *excl)
{
    size_t j;
    json_t *e;
    json_array_foreach(list, j, e)
    {
        int32_t i = als_idmap_find(&m->items, json_string_value(e), json_string_length(e));
        if (i >= 0)
            excl_set(excl, i);
    }
}

static void write_answer(const als_model_t *m, als_topk_t *t, core_buf_t *out)
{
    als_topk_sort(t);
    core_buf_reserve(out, 32 + (size_t)t->n * 48);
    core_wr_raw(out, "{\"itemScores\":[", 15);
    for (int32_t j = 0; j < t->n; j++) {
        if (j)
            core_wr_raw(out, ",", 1);
        core_wr_raw(out, "{\"item\":", 8);
        int32_t i = t->h[j].item;
        als_json_str(out, m->items.names[i], m->items.lens[i]);
        char num[48] = ",\"score\":";
        int n = 9 + als_fmt_float(num + 9, t->h[j].score);
        num[n++] = '}';
        core_wr_raw(out, num, (size_t)n);
    }
    core_wr_raw(out, "]}", 2);
}

/* Blocks whose exclusion masks live on the stack (32,768 items). */
#define QUERY_STACK_BLOCKS 2048

int als_query_run(const als_model_t *m, const als_query_t *q, bool unknown_popular,
                  core_buf_t *out, als_query_info_t *info)
{
    const int32_t ni = m->items.n, nb = (ni + ALS_PANEL - 1) / ALS_PANEL;
    memset(info, 0, sizeof(*info));
    qrun_t r = {.m = m, .q = q};
    uint16_t excl_s[QUERY_STACK_BLOCKS], *excl = excl_s;
    als_scored_t *heap = NULL;
    float *acc = NULL, *scores = NULL;
    int err = CORE_OK;

    if (ni == 0)
        goto answer_empty;
    r.cats = cat_set(m, q->categories, &r.ncats);
    r.cblack = cat_set(m, q->cat_black, &r.ncblack);
    if (q->categories && r.ncats == 0)
        goto answer_empty; /* no known category: nothing can share one */
    if (nb > QUERY_STACK_BLOCKS)
        excl = core_trymalloc((size_t)nb * sizeof(uint16_t));
    heap = core_trymalloc((size_t)q->num * sizeof(als_scored_t));
    if (!excl || !heap) {
        err = CORE_ERR_NOMEM;
        goto out;
    }
    memset(excl, 0, (size_t)nb * sizeof(uint16_t));
    r.excl = excl;
    als_topk_init(&r.t, heap, q->num);

    const float *x = NULL; /* the query vector; NULL = scores come from elsewhere */
    if (q->kind == ALS_QUERY_USER) {
        int32_t u = als_idmap_find(&m->users, q->user, strlen(q->user));
        if (u >= 0) {
            x = als_row(&m->U, u);
            for (int64_t e = m->seen.ptr[u]; e < m->seen.ptr[u + 1]; e++)
                excl_set(excl, m->seen.idx[e]);
        } else {
            info->unknown_user = true;
            if (!unknown_popular)
                goto answer_empty;
        }
    } else {
        if (posix_memalign((void **)&acc, 64, (size_t)m->V.stride * sizeof(float)) != 0) {
            acc = NULL;
            err = CORE_ERR_NOMEM;
            goto out;
        }
        memset(acc, 0, (size_t)m->V.stride * sizeof(float));
        if (!items_query_vector(m, q, acc, excl))
            goto answer_empty;
        x = acc;
        r.positive_only = r.cosine = true;
    }
    if (q->black)
        exclude_list(m, q->black, excl);

    if (!x) { /* unknown user: the most popular items */
        scores = core_trymalloc(((size_t)ni + ALS_PANEL) * sizeof(float));
        if (!scores) {
            err = CORE_ERR_NOMEM;
            goto out;
        }
        memcpy(scores, m->popularity, (size_t)ni * sizeof(float));
        answer_scan(&r, scores);
    } else if (m->qpanel.q && !q->categories && !r.ncblack && !q->white) {
        /* The int8 pre-scoring pays on the plain query (category and
         * white lists touch few items anyway) when the CPU has VNNI. */
        err = answer_fast(&r, x);
        if (err == CORE_ERR_NOMEM) { /* the scan needs less memory: try it */
            als_topk_init(&r.t, heap, q->num);
            err = answer_scan_vector(&r, x);
        }
    } else {
        err = answer_scan_vector(&r, x);
    }
    if (err)
        goto out;
    write_answer(m, &r.t, out);
    info->returned = r.t.n;
    goto out;
answer_empty:
    core_wr_raw(out, "{\"itemScores\":[]}", 17);
out:
    if (excl != excl_s)
        free(excl);
    free(scores);
    free(acc);
    free(heap);
    free(r.cats);
    free(r.cblack);
    return err;
}
