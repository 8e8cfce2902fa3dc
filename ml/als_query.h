/*
 * als_query — PredictionIO engine-server queries against one model
 * (compat-apis.md B.2), independent of HTTP so it can be tested directly.
 *
 * Query JSON (an object; any other key is an error, so a typo is a 400, not
 * a silently ignored filter):
 *   {"user": "u1", "num": 10, ...filters}        recommendations for a user
 *   {"items": ["i1","i2"], "num": 10, ...}       items similar to these
 *   filters (optional, both kinds): "categories": [..], "categoryBlackList":
 *   [..], "whiteList": [..], "blackList": [..]   (arrays of strings)
 * Exactly one of user/items; num is an integer 1..ALS_QUERY_MAX_NUM.
 *
 * Answers {"itemScores":[{"item":"…","score":…}, …]}: at most num entries,
 * best first (equal scores: lower internal index first).
 *   user, known     score = x_u·y_i (explicit engines: the predicted
 *                   rating); items the user has in the training data are
 *                   excluded.
 *   user, unknown   engine "unknownUser": "popular" (default) → the most
 *                   popular items (score = number of training users of the
 *                   item), filters applied; "empty" → []. (PredictionIO's
 *                   Recommendation template answers []; its E-Commerce
 *                   template falls back to popularity: we default to the
 *                   latter because an empty page is rarely what a shop wants.)
 *   items           score = Σ cosine(y_q, y_i) over the known query items;
 *                   the query items themselves are excluded; only score > 0
 *                   is kept; unknown query items are ignored (none known →
 *                   []), as PredictionIO's Similar Product template does.
 * Filters: categories keeps items sharing at least one category (items
 * without categories are dropped); categoryBlackList drops items sharing one;
 * whiteList keeps only these; blackList drops these. Unknown ids in any list
 * are ignored.
 *
 * Threads: als_query_run only reads the model; any number of threads may
 * run queries on one model at once.
 */
#ifndef EDDY_ALS_QUERY_H
#define EDDY_ALS_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/core_buf.h"
#include "ml/als_model.h"

/* Largest num: top-k keeps a k-entry heap and the answer grows with k. */
#define ALS_QUERY_MAX_NUM 1000
/* Longest id list in a query (items, whiteList, blackList, categories). */
#define ALS_QUERY_MAX_LIST 10000

typedef enum { ALS_QUERY_USER = 0, ALS_QUERY_ITEMS = 1 } als_query_kind_t;

/* Longest user id the plain-query parser takes itself (longer ones go the
 * jansson way, with the same result). */
#define ALS_QUERY_PLAIN_USER_MAX 63

typedef struct als_query {
    json_t *root;        /* owned (NULL for a plain query); every pointer
                            below is borrowed from it or from user_buf */
    als_query_kind_t kind;
    const char *user;
    int num;
    json_t *items;       /* arrays of strings or NULL */
    json_t *categories;
    json_t *cat_black;
    json_t *white;
    json_t *black;
    char user_buf[ALS_QUERY_PLAIN_USER_MAX + 1];
} als_query_t;

/* Parses and validates a query. On error returns CORE_ERR_INVAL with the
 * message a 400 answer should carry; *q needs no fini then.
 *
 * The query nearly every request sends, {"user": "<id>", "num": <n>}, is
 * read by a small scanner without building a jansson tree (which costs
 * half a dozen allocations per request): plain ASCII strings without
 * escapes, a positive integer in range, each key once, JSON whitespace.
 * Anything outside that subset, valid or not, is parsed by jansson, so
 * both ways accept the same queries with the same meaning and every error
 * message comes from one place. */
int als_query_parse(const char *body, size_t len, als_query_t *q, char *errstr,
                    size_t errstr_size);
/* The jansson parser alone (what als_query_parse falls back to); for tests
 * that hold the two ways to the same answers. */
int als_query_parse_tree(const char *body, size_t len, als_query_t *q, char *errstr,
                         size_t errstr_size);
void als_query_fini(als_query_t *q);

/* f as printf("%.9g") writes it, without printf; buf needs 24 bytes.
 * Returns the length. */
int als_fmt_float(char *buf, float f);

typedef struct als_query_info {
    bool unknown_user;   /* answered by the unknown-user rule */
    int returned;
} als_query_info_t;

/* Runs q on m and appends the answer JSON to out. Returns 0 or
 * CORE_ERR_NOMEM. */
int als_query_run(const als_model_t *m, const als_query_t *q, bool unknown_popular,
                  core_buf_t *out, als_query_info_t *info);

/* Appends s as a JSON string literal (quotes included, escaped). */
void als_json_str(core_buf_t *out, const char *s, size_t len);

#endif
