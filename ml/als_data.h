/*
 * als_data — from (user, item, value, time) observations to the CSR matrices
 * als_train consumes, plus the string-id ↔ dense-int maps a model keeps.
 *
 * Id maps (als_idmap_t): ids are interned in first-seen order (dense 0..n-1),
 * like PredictionIO's BiMap.stringInt: the order is arbitrary but stable for
 * one model, and the model stores the map so answers turn ints back into
 * the caller's ids. Open addressing with FNV-1a; strings copied into the map.
 *
 * Observations (als_obs_t) are appended as they are read (any order). Building
 * reduces duplicates of one (user, item) pair:
 *   ALS_REDUCE_LATEST  the value with the largest time wins; on equal times
 *                      the one added last wins (explicit `rate` data, as the
 *                      train-with-rate-event PredictionIO variants do);
 *   ALS_REDUCE_SUM     values are summed (implicit view/buy weights).
 *
 * Loaders: MovieLens files (u.data, u1.base, u1.test: "user\titem\trating\t
 * unix-seconds"), and the event store (als_store.h, once store.h exists).
 *
 * Threads: none; one owner at a time. Ownership: everything here owns its
 * arrays; *_fini frees them.
 */
#ifndef EDDY_ALS_DATA_H
#define EDDY_ALS_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "ml/als.h"

/* Longest id we accept (PredictionIO entity ids are short; a longer one in a
 * file or event is rejected rather than bloating the model). */
#define ALS_MAX_ID_LEN 1024

typedef struct als_idmap {
    char **names;     /* dense index → NUL-terminated id (owned) */
    uint32_t *lens;   /* dense index → length */
    int32_t n;
    int32_t cap;      /* names capacity */
    int32_t *slots;   /* hash slots: dense index or -1 */
    uint32_t nslots;  /* power of two */
} als_idmap_t;

void als_idmap_init(als_idmap_t *m);
void als_idmap_fini(als_idmap_t *m);
/* Returns the dense index of id (adding it when new), or -1 when the map is
 * full (ALS_MAX_ROWS), the id is longer than ALS_MAX_ID_LEN or contains a
 * NUL byte. */
int32_t als_idmap_intern(als_idmap_t *m, const char *id, size_t len);
/* Dense index of id, or -1. */
int32_t als_idmap_find(const als_idmap_t *m, const char *id, size_t len);
static inline const char *als_idmap_name(const als_idmap_t *m, int32_t i)
{
    return m->names[i];
}

typedef enum { ALS_REDUCE_LATEST = 0, ALS_REDUCE_SUM = 1 } als_reduce_t;

/* Raw observations with their own id maps. */
typedef struct als_obs {
    als_idmap_t users;
    als_idmap_t items;
    int32_t *u;
    int32_t *i;
    float *v;
    int64_t *t; /* event time, ms since the epoch (any monotone clock works) */
    size_t n;
    size_t cap;
} als_obs_t;

void als_obs_init(als_obs_t *o);
void als_obs_fini(als_obs_t *o);
/* Largest |rating| or event weight training takes. ALS squares values and
 * sums them per row in float; a value near float's limit would overflow
 * there (and past it, converting the double to float is undefined), and far
 * below that one event still outweighs a user's whole history. */
#define ALS_MAX_ABS_VALUE 1e6
/* Appends one observation; returns 0 or CORE_ERR_INVAL (id too long, too
 * many ids, a value that is not finite or past ±ALS_MAX_ABS_VALUE). */
int als_obs_add(als_obs_t *o, const char *user, size_t ulen, const char *item, size_t ilen,
                double value, int64_t time_ms);
/* Appends with already-interned dense ids (used by the split helpers). */
void als_obs_add_ids(als_obs_t *o, int32_t u, int32_t i, float value, int64_t time_ms);

/* Reduces duplicates and builds ui (users × items) and, if iu is non-NULL,
 * its transpose. Shapes use the full id maps of o (rows with no entries are
 * allowed). Returns 0 or CORE_ERR_NOMEM. */
int als_obs_build(const als_obs_t *o, als_reduce_t how, als_csr_t *ui, als_csr_t *iu);
/* The same over the observations with sel[j] == which only (sel NULL = all);
 * the shape is still the whole id space (used for holdout splits). */
int als_obs_build_sel(const als_obs_t *o, als_reduce_t how, const uint8_t *sel, uint8_t which,
                      als_csr_t *ui, als_csr_t *iu);

/* Reads a MovieLens ratings file (tab-separated user, item, rating, seconds)
 * into o, appending. Returns 0, an errno value (open/read) or
 * CORE_ERR_MALFORMED with the line number in errstr. */
int als_load_movielens(als_obs_t *o, const char *path, char *errstr, size_t errstr_size);

#endif
