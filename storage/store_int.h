/*
 * store_int — what store.c shares with the engines (store_rocksdb.c,
 * store_redis.c). Not for use outside storage/.
 *
 * Split of work: store.c validates, canonicalises, assigns ids, encodes the
 * event record and stages batches (including the in-batch duplicate map);
 * an engine only checks stored ids, writes atomically, and scans its indexes.
 * Entity-property aggregation and apps/keys live in store.c on top of the
 * engine's props_scan and kv operations, so both engines share one
 * implementation of those rules.
 */
#ifndef EDDY_STORE_INT_H
#define EDDY_STORE_INT_H

#include <pthread.h>

#include "core/core_buf.h"
#include "storage/store.h"

/* Event record header offsets (see store.h EVENT RECORD). */
#define STORE_REC_VERSION 1
#define STORE_REC_OFF_FLAGS 1
#define STORE_REC_OFF_DIGEST 2
#define STORE_REC_OFF_TIME 18
#define STORE_REC_OFF_TZ 26
#define STORE_REC_OFF_CTIME 28
#define STORE_REC_HDR 36
#define STORE_REC_F_TARGET 1
#define STORE_REC_F_PRID 2
#define STORE_REC_F_TIME_GIVEN 4
#define STORE_REC_F_TAGS 8

/* Special-event ops as stored in the P index. */
#define STORE_OP_NONE 0
#define STORE_OP_SET 's'
#define STORE_OP_UNSET 'u'
#define STORE_OP_DELETE 'd'

/* One staged event: everything an engine needs, already validated. */
typedef struct store__staged {
    int32_t app, ch;
    char id[STORE_EVENT_ID_MAX + 1];
    int64_t time_ms;
    bool time_given;
    uint8_t op;        /* STORE_OP_* */
    char *etype, *eid; /* owned */
    char *ttype, *tid; /* owned, NULL = no target */
    char *props;       /* canonical properties (owned; for the P index) */
    uint8_t *rec;      /* encoded record (owned) */
    size_t rec_len;
    int prior; /* index of an earlier staged event with the same
                  (app, ch, id), or -1 */
} store__staged_t;

typedef struct store__kvop {
    uint8_t *key;
    size_t klen;
    uint8_t *val; /* NULL = delete */
    size_t vlen;
} store__kvop_t;

struct store_batch {
    store_t *s;
    unsigned flags;
    store__staged_t *ev;
    size_t nev, capev;
    store__kvop_t *kv;
    size_t nkv, capkv;
    /* open-addressing map (app, ch, id) -> last staged index, for `prior` */
    int32_t *slots;
    size_t nslots;
};

/* A special event seen by props_scan (borrowed views, valid during the cb). */
typedef struct store__propev {
    const char *eid;
    size_t eid_len;
    int64_t time_ms;
    const char *id;
    size_t id_len;
    uint8_t op;
    const char *props; /* canonical JSON object text */
    size_t props_len;
} store__propev_t;
typedef int (*store__propev_cb)(const store__propev_t *pe, void *opaque);

typedef struct store__engine {
    const char *name;
    void (*close)(store_t *s);
    /* Checks every staged event against stored ids and earlier staged ones
     * (ev[i].prior), fills results[i].status, and writes the created events
     * plus every kv op in one atomic step (none if ALL_OR_NOTHING and a
     * conflict). Returns 0, CORE_ERR_CONFLICT, CORE_ERR_IO. */
    int (*commit)(store_t *s, store_batch_t *b, store_put_result_t *results, char *errstr,
                  size_t errstr_size);
    /* The stored record of an id (malloc'd, caller frees). NOT_FOUND. */
    int (*get)(store_t *s, int32_t app, int32_t ch, const char *id, uint8_t **rec, size_t *len);
    int (*del)(store_t *s, int32_t app, int32_t ch, const char *id);
    int (*find)(store_t *s, int32_t app, int32_t ch, const store_find_t *f, store_event_cb cb,
                void *opaque, int64_t *count);
    /* Special events of one entity (eid != NULL) or of every entity of etype
     * (eid NULL), grouped by entity in eid byte order, each in time order. */
    int (*props_scan)(store_t *s, int32_t app, int32_t ch, const char *etype, const char *eid,
                      store__propev_cb cb, void *opaque);
    int (*kv_get)(store_t *s, const void *key, size_t klen, void **val, size_t *vlen);
    int (*kv_scan)(store_t *s, const void *prefix, size_t plen, store_kv_cb cb, void *opaque);
    /* Removes all events of (app, ch), or of every channel with ch == -1. */
    int (*data_delete)(store_t *s, int32_t app, int32_t ch);
    /* store_check; NULL = not supported by this engine (remote). */
    int (*check)(store_t *s, store_check_t *rep);
} store__engine_t;

/* Records one problem found by a check (counts it; prints the first ones). */
void store__check_problem(store_check_t *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

struct store {
    const store__engine_t *eng;
    store_opts_t opts;
    pthread_mutex_t meta_lock; /* serialises app/channel/key creation in this process */
    void *impl;                /* the engine's state */
};

/* Engine constructors (fill s->eng and s->impl). */
int store__rocksdb_open(store_t *s, const char *dir, char *errstr, size_t errstr_size);
int store__redis_open(store_t *s, const char *host, int port, int db, char *errstr,
                      size_t errstr_size);

/* The eddy:// engine (store_remote.c): the engine operations over the owning
 * event server's internal endpoint, authenticated by its token. */
int store__remote_open(store_t *s, const char *host, int port, const char *token, char *errstr,
                       size_t errstr_size);

/* Record codec. decode writes NUL-terminated copies of the strings into
 * scratch (reset first) and points ev's fields at them; id is copied into
 * ev->event_id. ev->mem stays NULL (the strings live in scratch).
 * Returns 0 or CORE_ERR_CORRUPT. */
int store__rec_decode(const uint8_t *rec, size_t len, const char *id, size_t id_len,
                      store_event_t *ev, core_buf_t *scratch);
/* Whether a stored record answers a new staged put as a duplicate (true) or
 * conflict (false): digest equal, and eventTime equal when the new one gives it. */
bool store__rec_same(const uint8_t *stored, size_t stored_len, const store__staged_t *st);
/* Decodes the entity and target of a stored record (for deletes): views into rec. */
int store__rec_keys(const uint8_t *rec, size_t len, core_slice_t *etype, core_slice_t *eid,
                    core_slice_t *ttype, core_slice_t *tid, uint8_t *op, int64_t *time_ms);

/* Whether a decoded event passes the filters that the chosen index did not
 * already apply (event names, target, entity type/id, time). */
bool store__find_match(const store_find_t *f, const store_event_t *ev);

struct json_t;
/* Validates an event whose properties were parsed by the caller: props is
 * that parsed value (NULL = absent, i.e. {}) and ev->properties its
 * canonical text. Same rules and messages as store_event_validate. */
int store__event_check(const store_event_t *ev, const struct json_t *props, char *errstr,
                       size_t errstr_size);
/* The part of store__event_check that does not look at the properties'
 * value (for store_event_batch_parse_fast's output, whose parser already
 * enforced the property rules). */
int store__event_check_fields(const store_event_t *ev, char *errstr, size_t errstr_size);
/* store_batch_put_event for an event that passed store__event_check with
 * canonical properties text (store_event_from_json/jansson output): the
 * properties are not parsed and re-serialised again. */
int store__batch_put_checked(store_batch_t *b, int32_t app, int32_t channel,
                             const store_event_t *ev, char *errstr, size_t errstr_size);
/* store_event_put for such an event (POST /events.json). */
int store__event_put_checked(store_t *s, int32_t app, int32_t channel, const store_event_t *ev,
                             char out_id[STORE_EVENT_ID_MAX + 1], bool *created, char *errstr,
                             size_t errstr_size);

/* Canonical JSON: sorted keys, compact, shortest round-trip reals (malloc'd). */
char *store__json_canon(const struct json_t *j);
/* Appends s[0..n) as a JSON string literal (quotes, escapes; UTF-8 kept). */
void store__json_str(core_buf_t *b, const char *s, size_t n);

/* 128-bit SipHash-2-4 with the store's fixed key. */
void store__hash128(const void *data, size_t len, uint8_t out[16]);
/* store__hash128 of an event's key (app, channel, id): one definition for
 * store.c's staging dedup and the RocksDB engine's lock stripes. */
void store__key_hash128(int32_t app, int32_t ch, const char *id, uint8_t out[16]);

/* Time in keys: sign bit flipped so unsigned big-endian order = time order. */
static inline uint64_t store__time_key(int64_t ms)
{
    return (uint64_t)ms ^ (UINT64_C(1) << 63);
}
static inline int64_t store__time_unkey(uint64_t k)
{
    return (int64_t)(k ^ (UINT64_C(1) << 63));
}

#endif
