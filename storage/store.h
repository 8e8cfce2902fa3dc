/*
 * store — Eddy's event store: PredictionIO-style events, entity properties,
 * apps/access keys and small keyed values, on an embedded RocksDB or on Redis.
 *
 * Who uses it: the HTTP Event API (storage/store_http*), `eddy import/export`,
 * the runtime (atomic batches of job outputs + offsets + job state) and ml
 * (training input, versioned model blobs). Everyone goes through this header;
 * nothing outside storage/ includes an engine file.
 *
 * ENGINES (store_open URL)
 *   rocksdb:DIR           embedded RocksDB in DIR. Takes RocksDB's LOCK: one
 *                         process per directory (docs/ARCHITECTURE.md §1).
 *   redis://HOST:PORT/DB  Redis through hiredis; every process is a client.
 *                         All keys start with "eddy:" in database DB.
 *   eddy://HOST:PORT      remote: the engine operations over the owning
 *                         event server's internal HTTP endpoint
 *                         (store_remote.h); validation, ids and record
 *                         encoding still happen in the caller's store.c.
 *   store_open_dir(DIR)   = rocksdb:DIR/store, unless another process holds
 *                         the lock and DIR/eventserver.addr exists, in which
 *                         case it uses eddy://<that address> with the token
 *                         in DIR/internal.token.
 *
 * DATA MODEL
 *   An event belongs to (app, channel): app ids are > 0, channel 0 is the
 *   app's default channel, named channels have ids > 0. Each event has an
 *   eventId unique within (app, channel).
 *
 * IDEMPOTENCY RULE (compat-apis.md A.8, [OURS])
 *   - A client eventId is 1..64 chars of [A-Za-z0-9_-]; it is an
 *     idempotency key within (app, channel). First put: created.
 *   - Same id, same content: nothing is written; the answer is the first
 *     one's (created = false, status STORE_PUT_DUPLICATE; not an error).
 *     "Same content" = every field except creationTime; eventTime takes part
 *     only when the new put sets it (event_time_given), compared as an
 *     instant (the zone offset is display only). Properties are compared as
 *     JSON values (key order and spacing do not matter).
 *   - Same id, different content: CORE_ERR_CONFLICT (STORE_PUT_CONFLICT);
 *     first write wins, the stored event is unchanged.
 *   - The rule holds per event inside a batch too, including two events with
 *     the same id in one batch, and across processes and threads (the check
 *     and the write are one atomic step: RocksDB under per-id striped locks
 *     in the one owning process; Redis inside one Lua script).
 *   - No id given: the store assigns id = 32 lowercase hex chars of a 128-bit
 *     SipHash of the canonical content (every field but creationTime, with the
 *     eventTime actually stored). So the same event put twice is stored once:
 *     retries are idempotent even without a client id, and `eddy import`
 *     re-imports add nothing. (PIO stores a second copy instead; two truly
 *     distinct events with identical content and the same millisecond
 *     eventTime are one event here — document-level difference, on purpose.)
 *     store_event_id_derive() gives the runtime the same kind of id from its
 *     own (job, topic, partition, offset, emit index) bytes.
 *   - After a delete the id may be reused.
 *
 * KEY LAYOUT (RocksDB; all integers big-endian; "str" = u16 length + bytes)
 *   T  'T' app:u32 ch:u32 time:u64 id:bytes      -> event record (primary)
 *   E  'E' app:u32 ch:u32 id:bytes               -> time:u64 (id -> primary)
 *   I  'I' app:u32 ch:u32 etype:str eid:str time:u64 id:bytes      -> ""
 *   G  'G' app:u32 ch:u32 ttype:str tid:str time:u64 id:bytes      -> ""
 *   P  'P' app:u32 ch:u32 etype:str eid:str time:u64 id:bytes
 *          -> op:u8 ('s' $set, 'u' $unset, 'd' $delete) + properties JSON
 *   K  'K' key:bytes                              -> value (store_kv_*)
 *   time is the eventTime in ms since the epoch with the sign bit flipped
 *   (u64 = ms ^ 1<<63) so byte order is time order, negatives included.
 *   Reads: one entity's events = one I range plus one MultiGet of their T
 *   records (the record is stored once; stores written before I became
 *   key-only carry a record copy as I's value, which readers ignore and
 *   `store check` still compares); a target entity = one G range + MultiGet;
 *   the whole app in time order = one T range (sequential, what training
 *   reads); get by id = E then T; all entities' properties = one P range.
 *   Redis mirrors this with a hash of records per (app, ch) and sorted sets
 *   scored by eventTime ms (details in store_redis.c).
 *
 * EVENT RECORD (value of T; shared by both engines; store.c encodes it)
 *   u8 version (1) | u8 flags (1 target, 2 prId, 4 eventTime given, 8 tags)
 *   | digest:16 (content hash without eventTime/creationTime)
 *   | eventTime i64 ms | tz i16 minutes | creationTime i64 ms
 *   | str32 event | str32 entityType | str32 entityId
 *   | [str32 targetEntityType | str32 targetEntityId] | str32 properties
 *   | [str32 prId] | [str32 tags]          (str32 = u32 length + bytes)
 *
 * ATOMICITY
 *   A batch (store_batch_*) of events and kv puts/deletes is applied in one
 *   atomic step: RocksDB WriteBatch; Redis one Lua script (every check runs
 *   before the first write). Readers see all of a batch or none of it.
 *   With STORE_BATCH_ALL_OR_NOTHING a conflict anywhere writes nothing.
 *   store_event_put is a batch of one.
 *
 * DURABILITY (store_opts_t.sync)
 *   STORE_SYNC_ALWAYS (default): a put/commit returns only after its WAL
 *   write is fsynced; concurrent commits share one fsync (a group commit in
 *   store_rocksdb.c), so write from many threads for throughput. A
 *   duplicate is answered only once the event it matched is durable.
 *   STORE_SYNC_INTERVAL: the WAL is written at once and fsynced every
 *   sync_interval_ms by a background thread: a crash of the machine (not of
 *   the process) loses at most that window.
 *   Redis: durability is the server's (appendonly/appendfsync); say so.
 *
 * THREADS
 *   A store_t is thread-safe: every function may be called from any thread
 *   concurrently (RocksDB is thread-safe; the Redis engine keeps a pool of
 *   connections). A store_batch_t belongs to one thread. Callbacks run on
 *   the calling thread; they must not call back into the same store with a
 *   batch open on that thread (no deadlock, but no isolation either).
 *
 * OWNERSHIP
 *   Strings passed in are borrowed for the call. Events returned by
 *   store_event_get/store_event_from_json own their memory: release with
 *   store_event_fini. Events passed to callbacks are borrowed until the
 *   callback returns. Buffers returned as void ** are freed with free().
 */
#ifndef EDDY_STORE_H
#define EDDY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct store store_t;
typedef struct store_batch store_batch_t;

/* ---- limits (each caps a size that comes from outside) -------------------- */
#define STORE_EVENT_ID_MAX 64           /* client ids: A.8 */
#define STORE_NAME_MAX 1024             /* event, entity type/id, target, prId: keys stay small */
#define STORE_PROPS_MAX (256 * 1024)    /* properties JSON text: one event cannot bloat a read */
#define STORE_KV_KEY_MAX 1024           /* kv keys */
#define STORE_KV_VALUE_MAX (256u << 20) /* kv values (models: split larger blobs into chunks) */
#define STORE_APP_NAME_MAX 128
#define STORE_CHANNEL_NAME_MAX 16     /* ^[a-zA-Z0-9-]{1,16}$ (A.2) */
#define STORE_ACCESSKEY_MAX 64        /* generated keys are 64 chars of [A-Za-z0-9_-] */
#define STORE_BATCH_MAX_EVENTS 100000 /* per atomic batch: bounds one WriteBatch/script */

/* ---- opening ------------------------------------------------------------------ */
typedef enum { STORE_SYNC_ALWAYS = 0, STORE_SYNC_INTERVAL = 1 } store_sync_t;

typedef struct store_opts {
    store_sync_t sync;        /* default STORE_SYNC_ALWAYS */
    int64_t sync_interval_ms; /* STORE_SYNC_INTERVAL: WAL fsync period (default 1000) */
    int redis_pool;           /* Redis: connections kept (default 8) */
    int64_t redis_timeout_ms; /* Redis: connect/command timeout (default 5000) */
} store_opts_t;

void store_opts_default(store_opts_t *opts);

/* Opens a store by URL (see ENGINES). opts may be NULL (defaults).
 * Errors: CORE_ERR_INVAL (bad URL), CORE_ERR_STATE (RocksDB dir locked by
 * another process), CORE_ERR_IO (engine error), CORE_ERR_UNSUPPORTED (eddy://).
 * The caller closes *out with store_close. */
int store_open(const char *url, const store_opts_t *opts, store_t **out, char *errstr,
               size_t errstr_size);
/* Opens the store of a data directory (see ENGINES), creating DIR/store. */
int store_open_dir(const char *dir, const store_opts_t *opts, store_t **out, char *errstr,
                   size_t errstr_size);
/* Flushes (fsyncs the WAL) and closes. NULL is a no-op. */
void store_close(store_t *s);
/* "rocksdb", "redis" or "eddy". */
const char *store_engine(const store_t *s);

/* ---- events ------------------------------------------------------------------- */
/* An event. As input every string is borrowed (NULL = absent for the optional
 * ones). As output (store_event_get, store_event_from_json) the strings point
 * into mem, which the event owns: call store_event_fini. */
typedef struct store_event {
    char event_id[STORE_EVENT_ID_MAX + 1]; /* "" = none (the store assigns one) */
    const char *event;                     /* required, e.g. "rate", "$set" */
    const char *entity_type;               /* required */
    const char *entity_id;                 /* required */
    const char *target_entity_type;        /* optional; both or neither */
    const char *target_entity_id;          /* optional */
    const char *properties;                /* JSON object text; NULL = {} */
    int64_t event_time_ms;                 /* ms since the epoch (UTC instant) */
    int16_t event_time_tz_min;             /* original offset in minutes, display only */
    bool event_time_given;                 /* false: the store sets now, compares none */
    int64_t creation_time_ms;              /* output only: set by the store on put */
    const char *pr_id;                     /* optional */
    const char *tags;                      /* optional JSON array text (PIO: unused) */
    void *mem;                             /* owned storage of an output event, or NULL */
} store_event_t;

/* Releases what an output event owns and zeroes it. Safe on a zeroed event. */
void store_event_fini(store_event_t *ev);

/* Validates an event as compat-apis.md A.5 + A.8 (required fields, reserved
 * names, $unset properties, target pairs, id charset, limits, properties is
 * a JSON object). Returns 0 or CORE_ERR_INVAL with PIO's message in errstr. */
int store_event_validate(const store_event_t *ev, char *errstr, size_t errstr_size);

/* Writes a derived id (32 lowercase hex chars + NUL) from arbitrary bytes:
 * 128-bit SipHash. For callers that make ids from their own coordinates
 * (the runtime: job, topic, partition, offset, emit index). */
void store_event_id_derive(const void *data, size_t len, char out[STORE_EVENT_ID_MAX + 1]);

typedef enum {
    STORE_PUT_CREATED = 0,   /* stored now */
    STORE_PUT_DUPLICATE = 1, /* same id, same content: already stored, nothing written */
    STORE_PUT_CONFLICT = 2,  /* same id, different content: nothing written */
} store_put_status_t;

/* Stores one event (a batch of one). On 0, out_id (may be NULL) gets the
 * event's id and *created (may be NULL) whether it was written now (false
 * = duplicate). Errors: CORE_ERR_INVAL (validation, message in errstr),
 * CORE_ERR_CONFLICT (same id, different content), CORE_ERR_IO. */
int store_event_put(store_t *s, int32_t app, int32_t channel, const store_event_t *ev,
                    char out_id[STORE_EVENT_ID_MAX + 1], bool *created, char *errstr,
                    size_t errstr_size);
/* Reads one event by id into *out (owned: store_event_fini). CORE_ERR_NOT_FOUND. */
int store_event_get(store_t *s, int32_t app, int32_t channel, const char *event_id,
                    store_event_t *out);
/* Deletes one event and its index entries. CORE_ERR_NOT_FOUND if absent. */
int store_event_delete(store_t *s, int32_t app, int32_t channel, const char *event_id);

/* Filters of GET /events.json (A.6). Every field is optional. */
typedef struct store_find {
    int64_t start_ms;          /* eventTime >= start_ms; INT64_MIN = none */
    int64_t until_ms;          /* eventTime <  until_ms; INT64_MAX = none */
    const char *entity_type;   /* NULL = any */
    const char *entity_id;     /* NULL = any */
    const char *const *events; /* any of these event names; NULL/0 = all */
    int nevents;
    const char *target_entity_type; /* NULL = any */
    const char *target_entity_id;   /* NULL = any */
    int64_t limit;                  /* max results; -1 = all */
    bool reversed;                  /* newest first */
} store_find_t;

/* Sets every filter to "none", limit -1, not reversed. */
void store_find_init(store_find_t *f);

/* Called once per matching event in eventTime order (ties by id). ev is
 * borrowed until the callback returns. Return 0 to go on, non-zero to stop. */
typedef int (*store_event_cb)(const store_event_t *ev, void *opaque);

/* Streams matching events. Uses the narrowest index the filters allow:
 * entity (type+id) > target (type+id) > time. *count (may be NULL) gets the
 * number of events delivered. On RocksDB one call reads one consistent
 * snapshot. Returns 0, or CORE_ERR_IO / CORE_ERR_CORRUPT. */
int store_event_find(store_t *s, int32_t app, int32_t channel, const store_find_t *f,
                     store_event_cb cb, void *opaque, int64_t *count);

/* ---- atomic batches ------------------------------------------------------------ */
#define STORE_BATCH_ALL_OR_NOTHING 1u /* a conflict anywhere aborts the whole commit */

typedef struct store_put_result {
    char event_id[STORE_EVENT_ID_MAX + 1];
    store_put_status_t status;
} store_put_result_t;

/* Starts a batch (owned by the calling thread until commit or abort). */
int store_batch_begin(store_t *s, unsigned flags, store_batch_t **out);
/* Validates and copies ev into the batch (assigning its id when it has
 * none). On CORE_ERR_INVAL (message in errstr) the event is not added and
 * the batch stays usable. */
int store_batch_put_event(store_batch_t *b, int32_t app, int32_t channel, const store_event_t *ev,
                          char *errstr, size_t errstr_size);
/* Adds a kv put/delete (copied). CORE_ERR_TOO_LARGE past the limits. */
int store_batch_put_kv(store_batch_t *b, const void *key, size_t klen, const void *val,
                       size_t vlen);
int store_batch_delete_kv(store_batch_t *b, const void *key, size_t klen);
/* Number of events added so far (the length results must have). */
size_t store_batch_events(const store_batch_t *b);
/* Applies the batch in one atomic step and frees it (whatever the result).
 * results (may be NULL) gets one entry per added event, in order. Returns 0
 * (conflicting events, if any, were skipped and are flagged in results),
 * CORE_ERR_CONFLICT (only with STORE_BATCH_ALL_OR_NOTHING: nothing written;
 * results still says which), or CORE_ERR_IO (nothing written). */
int store_batch_commit(store_batch_t *b, store_put_result_t *results, char *errstr,
                       size_t errstr_size);
/* Drops the batch without writing. NULL is a no-op. */
void store_batch_abort(store_batch_t *b);

/* ---- small keyed values (job offsets and state, models, metadata) ---------- */
/* Namespaces by convention: "store/" (this module: apps, keys, channels),
 * "rt/" (runtime), "ml/" (models). Keys are bytes, up to STORE_KV_KEY_MAX. */
int store_kv_get(store_t *s, const void *key, size_t klen, void **val, size_t *vlen);
int store_kv_put(store_t *s, const void *key, size_t klen, const void *val, size_t vlen);
int store_kv_delete(store_t *s, const void *key, size_t klen); /* absent: still 0 */
/* Calls cb for every key starting with prefix, in byte order. Stop with non-zero. */
typedef int (*store_kv_cb)(const void *key, size_t klen, const void *val, size_t vlen,
                           void *opaque);
int store_kv_scan(store_t *s, const void *prefix, size_t plen, store_kv_cb cb, void *opaque);

/* ---- entity properties ($set / $unset / $delete, A.7) --------------------------- */
typedef struct store_props {
    char *properties;         /* JSON object text, owned (free with store_props_fini) */
    int64_t first_updated_ms; /* min eventTime over the special events seen */
    int64_t last_updated_ms;  /* max eventTime */
} store_props_t;

void store_props_fini(store_props_t *p);
/* Aggregates one entity's special events up to until_ms (exclusive;
 * INT64_MAX = all) in eventTime order. CORE_ERR_NOT_FOUND when the entity
 * is absent (never set, or deleted last). */
int store_props_get(store_t *s, int32_t app, int32_t channel, const char *entity_type,
                    const char *entity_id, int64_t until_ms, store_props_t *out);
/* Calls cb for every existing entity of a type (in entityId byte order).
 * props is borrowed until cb returns. Stop with non-zero. */
typedef int (*store_props_cb)(const char *entity_id, const store_props_t *props, void *opaque);
int store_props_all(store_t *s, int32_t app, int32_t channel, const char *entity_type,
                    int64_t until_ms, store_props_cb cb, void *opaque);

/* ---- consistency check (the dump/check tool of the on-disk format) ---------- */
typedef struct store_check {
    FILE *out;             /* problems are printed here (NULL = silent) */
    int64_t max_print;     /* at most this many problem lines (default 20) */
    int64_t events;        /* primary records (T) that decode */
    int64_t index_entries; /* E, I, G, P entries checked */
    int64_t kv;            /* kv entries */
    int64_t problems;      /* every inconsistency found */
} store_check_t;

/* Reads the whole store and checks every invariant of the key layout: each
 * record decodes; each record has its id, entity (and target, property)
 * index entries; each index entry points at a record that agrees with it.
 * Read-only; on RocksDB it reads one snapshot. Returns 0 (look at
 * rep->problems), CORE_ERR_UNSUPPORTED (remote engine: run it where the
 * store is opened directly), or CORE_ERR_IO. */
int store_check(store_t *s, store_check_t *rep);

/* ---- apps, channels, access keys (kept in the kv space under "store/") --------- */
typedef struct store_app {
    int32_t id;
    char name[STORE_APP_NAME_MAX + 1];
    char description[256];
} store_app_t;

/* Creates an app. id 0 = next free id. CORE_ERR_EXISTS (name or id taken),
 * CORE_ERR_INVAL (name: 1..128 chars of [A-Za-z0-9_.-]). */
int store_app_new(store_t *s, const char *name, int32_t id, const char *description,
                  store_app_t *out, char *errstr, size_t errstr_size);
int store_app_get(store_t *s, const char *name, store_app_t *out); /* NOT_FOUND */
int store_app_get_by_id(store_t *s, int32_t id, store_app_t *out); /* NOT_FOUND */
/* All apps by id; *apps is freed with free(). */
int store_app_list(store_t *s, store_app_t **apps, size_t *n);
/* Removes the app, its channels, its access keys and all its events. */
int store_app_delete(store_t *s, const char *name);
/* Removes events (and properties) of one channel (0 = default), or of every
 * channel with channel = -1. The app, its keys and channels stay. */
int store_app_data_delete(store_t *s, int32_t app, int32_t channel);

/* Channels: name per A.2. CORE_ERR_EXISTS, CORE_ERR_INVAL, CORE_ERR_NOT_FOUND. */
int store_channel_new(store_t *s, int32_t app, const char *name, int32_t *id, char *errstr,
                      size_t errstr_size);
int store_channel_get(store_t *s, int32_t app, const char *name, int32_t *id);
typedef struct store_channel {
    int32_t id;
    char name[STORE_CHANNEL_NAME_MAX + 1];
} store_channel_t;
int store_channel_list(store_t *s, int32_t app, store_channel_t **chans, size_t *n); /* free() */
/* Deletes the channel and its events. */
int store_channel_delete(store_t *s, int32_t app, const char *name);

typedef struct store_accesskey {
    char key[STORE_ACCESSKEY_MAX + 1];
    int32_t app;
    int nevents;   /* 0 = every event allowed */
    char **events; /* owned: store_accesskey_fini */
} store_accesskey_t;

/* Creates a key for app (key NULL = generate 64 chars from 48 random bytes,
 * URL-safe base64, never starting with '-'), limited to events[0..nevents)
 * when nevents > 0. out_key gets the key. CORE_ERR_EXISTS, CORE_ERR_INVAL. */
int store_accesskey_new(store_t *s, int32_t app, const char *key, const char *const *events,
                        int nevents, char out_key[STORE_ACCESSKEY_MAX + 1], char *errstr,
                        size_t errstr_size);
/* Looks a key up (the Event API does this per request). CORE_ERR_NOT_FOUND. */
int store_accesskey_get(store_t *s, const char *key, store_accesskey_t *out);
void store_accesskey_fini(store_accesskey_t *k);
/* Keys of one app (app -1 = all), by key. Free with store_accesskey_list_free. */
int store_accesskey_list(store_t *s, int32_t app, store_accesskey_t **keys, size_t *n);
void store_accesskey_list_free(store_accesskey_t *keys, size_t n);
int store_accesskey_delete(store_t *s, const char *key); /* NOT_FOUND */
/* Whether the key's whitelist admits this event name. */
bool store_accesskey_allows(const store_accesskey_t *k, const char *event);

#endif
