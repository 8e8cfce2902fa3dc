/*
 * als_model — a trained recommender as one immutable, refcounted object, and
 * its serialized form (the blob stored in the event store's kv space).
 *
 * A model holds everything serving needs, so any server can load it without
 * reading events: factors (users, items), both id maps, each item's
 * categories (from `$set` properties at training time, as PredictionIO's
 * templates keep them in their model), each user's training items (to exclude
 * what the user already saw), the parameters, evaluation metrics and when it
 * was trained. Derived arrays (item norms for cosine, item popularity) are
 * rebuilt on load, never stored.
 *
 * BLOB FORMAT (version 1; integers big-endian; str = i16 length + bytes)
 *   magic "EDDYALS1" | u32 format (1) | u32 flags (1 = implicit)
 *   | str app | str engine | i64 version | i64 trained_at_ms | i64 nevents
 *   | i32 rank | i32 iterations | u64 lambda (IEEE bits) | u64 alpha
 *   | i8 solver | i32 cg_steps | i64 seed
 *   | i32 nmetrics, nmetrics × (str name, u64 value bits)
 *   | i32 nusers, nusers × str | i32 nitems, nitems × str
 *   | i32 ncats, ncats × str | nitems × (uvarint n, n × uvarint category)
 *   | nusers × rank × u32 float bits | nitems × rank × u32 float bits
 *   | nusers × (uvarint n, n × uvarint gap)   seen items, gap-coded ascending
 *   | u32 CRC-32C of every byte before it
 * The decoder checks the CRC first, then every count against a cap and the
 * bytes that remain before allocating, ids for length and uniqueness, floats
 * for finiteness, indices for range and order, and that the CRC ends the
 * blob exactly. A damaged blob is CORE_ERR_CORRUPT/CRC, never UB.
 *
 * Threads: a decoded model is immutable; any number of threads may read it.
 * als_model_keep/release are atomic; the last release frees it (a query
 * holding a reference keeps an old model alive across a swap).
 */
#ifndef EDDY_ALS_MODEL_H
#define EDDY_ALS_MODEL_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/core_buf.h"
#include "ml/als.h"
#include "ml/als_score.h"
#include "ml/als_data.h"

#define ALS_MODEL_MAGIC "EDDYALS1"
#define ALS_MODEL_FORMAT 1
#define ALS_MODEL_MAX_METRICS 32
#define ALS_MODEL_MAX_NAME 128      /* app / engine id / metric name */
#define ALS_MODEL_MAX_CATS 1000000  /* distinct categories */
#define ALS_MODEL_MAX_ITEM_CATS 1024 /* categories of one item */

typedef struct als_metric {
    char name[ALS_MODEL_MAX_NAME + 1];
    double value;
} als_metric_t;

typedef struct als_model {
    atomic_int refs;
    char app[ALS_MODEL_MAX_NAME + 1];
    char engine[ALS_MODEL_MAX_NAME + 1];
    int64_t version;
    int64_t trained_at_ms;
    int64_t nevents;
    als_params_t params;
    int nmetrics;
    als_metric_t metrics[ALS_MODEL_MAX_METRICS];
    als_idmap_t users;
    als_idmap_t items;
    als_idmap_t cats;     /* category names */
    int64_t *cat_ptr;     /* nitems + 1 */
    int32_t *cat_idx;     /* category indices of each item, ascending */
    als_factors_t U;
    als_factors_t V;
    als_csr_t seen;       /* users × items, values unused (NULL) */
    /* derived on load / build */
    float *item_norm;     /* ‖V_i‖ */
    float *popularity;    /* training users per item */
    float *panel;         /* V in als_score.h panel layout (serving scans it) */
    als_qpanel_t qpanel;  /* int8 copy for pre-scoring; q == NULL when the CPU
                             lacks the instructions (als_qpanel_worthwhile) */
} als_model_t;

/* A new empty model with one reference. */
als_model_t *als_model_new(void);
/* Adds a reference (returns m). Any thread. */
als_model_t *als_model_keep(als_model_t *m);
/* Drops a reference; frees on the last. NULL is a no-op. Any thread. */
void als_model_release(als_model_t *m);

/* Sets a metric (replacing one of the same name). */
void als_model_set_metric(als_model_t *m, const char *name, double value);
/* Looks a metric up; returns 1 and *value, or 0. */
int als_model_get_metric(const als_model_t *m, const char *name, double *value);

/* Computes item_norm and popularity from V and seen (after building or
 * decoding). Returns 0 or CORE_ERR_NOMEM. */
int als_model_derive(als_model_t *m);

/* Appends the blob to out. */
void als_model_encode(const als_model_t *m, core_buf_t *out);
/* Decodes and validates a blob (borrowed; nothing points into it after).
 * On 0, *out is a new model with one reference. Errors: CORE_ERR_CRC,
 * CORE_ERR_CORRUPT, CORE_ERR_UNSUPPORTED (newer format), CORE_ERR_NOMEM;
 * errstr says what was wrong. */
int als_model_decode(const void *blob, size_t len, als_model_t **out, char *errstr,
                     size_t errstr_size);

#endif
