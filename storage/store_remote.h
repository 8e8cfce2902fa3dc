/*
 * store_remote — the "eddy://HOST:PORT" engine: the store's engine
 * operations (store_int.h store__engine_t) carried over the owning event
 * server's internal HTTP endpoint (docs/ARCHITECTURE.md §1).
 *
 * Why at the engine layer: store.c already validates, canonicalises, assigns
 * ids and encodes records in the caller's process; what must happen in the
 * process that holds the RocksDB lock is only the engine's part (the
 * idempotency check + atomic write, index scans, kv). So the remote engine
 * ships staged batches and scan requests, and the owner runs its own engine
 * on them: the same idempotency and atomicity rules hold for remote writers
 * (one atomic WriteBatch per commit, under the owner's striped id locks).
 *
 * Wire protocol (version 1). Every call is one HTTP/1.1 request
 *   POST /internal/store   X-Eddy-Token: <DIR/internal.token>
 *   Content-Type: application/octet-stream
 * with a body written and read with core_buf (big-endian, "bytes" = i32
 * length + data, -1 = null) and answered 200 with a body that starts with
 * i32 rc (a core_err_t) followed by the op's results when rc is 0 (commit:
 * also when rc is CORE_ERR_CONFLICT) and bytes errstr otherwise.
 * A malformed request answers 400 (text). The token is a random 43-char
 * URL-safe string the event server writes (mode 0600) at start; it keeps
 * other local users, and pages in a browser, from writing the store.
 *   request  = i8 version(1) | i8 op | op fields
 *   COMMIT   u32 flags | i32 nev | nev x staged | i32 nkv | nkv x (bytes key, bytes val|null)
 *            staged = i32 app | i32 ch | bytes id | i64 time | i8 given | i8 op | bytes etype
 *                     | bytes eid | bytes ttype|null | bytes tid|null | bytes props|null
 *                     | bytes rec | i32 prior
 *            -> i32 rc | bytes errstr | nev x (bytes id | i8 status)
 *   GET      i32 app | i32 ch | bytes id              -> i32 rc | bytes rec
 *   DEL      i32 app | i32 ch | bytes id              -> i32 rc
 *   FIND     i32 app | i32 ch | i64 start | i64 until | bytes etype|null | bytes eid|null
 *            | i32 nevents x bytes | bytes ttype|null | bytes tid|null | i64 limit | i8 reversed
 *            -> i32 rc | i64 count | count x event
 *            event = bytes id | bytes event | bytes etype | bytes eid | bytes ttype|null
 *                    | bytes tid|null | bytes props|null | i64 time | i16 tz | i8 given
 *                    | i64 ctime | bytes prid|null | bytes tags|null
 *   PROPS    i32 app | i32 ch | bytes etype | bytes eid|null
 *            -> i32 rc | i32 n | n x (bytes eid | i64 time | bytes id | i8 op | bytes props)
 *   KV_GET   bytes key                                -> i32 rc | bytes val
 *   KV_SCAN  bytes prefix                             -> i32 rc | i32 n | n x (bytes key | bytes val)
 *   DATA_DEL i32 app | i32 ch                         -> i32 rc
 * Scans are answered whole in one response (bounded by the store's own
 * limits); a callback that stops early just stops the local delivery.
 * Calls are retried once on a fresh connection when a pooled keep-alive
 * connection turns out closed before any answer byte arrived: every op is
 * idempotent (staged events carry their ids; kv puts are overwrites).
 *
 * Durability is the owner's: its --sync mode applies to remote commits (the
 * client's store_opts_t.sync is ignored). When the owner stops, calls fail
 * with CORE_ERR_IO (CORE_ERR_AUTH if a new owner has a new token): reopen
 * with store_open_dir, which then takes the embedded store or the new owner.
 *
 * Limits: a request body is at most STORE_REMOTE_MAX_BODY (the endpoint's
 * own core_http limit); responses are read up to STORE_REMOTE_MAX_RESPONSE.
 * Threads: the client engine is thread-safe (a mutex-guarded pool of
 * connections, one request per connection at a time).
 */
#ifndef EDDY_STORE_REMOTE_H
#define EDDY_STORE_REMOTE_H

#include <stddef.h>

#include "core/core_buf.h"
#include "storage/store.h"

#define STORE_REMOTE_PATH "/internal/store"
#define STORE_REMOTE_TOKEN_HEADER "X-Eddy-Token"
#define STORE_REMOTE_VERSION 1
/* One remote commit: STORE_BATCH_MAX_EVENTS events of typical size. */
#define STORE_REMOTE_MAX_BODY (256u << 20)
/* A scan answer (kv values include model chunks). */
#define STORE_REMOTE_MAX_RESPONSE (1u << 30)
/* Connections kept per client. */
#define STORE_REMOTE_POOL 8

/* Files in a data directory that the owning event server maintains. */
#define STORE_REMOTE_ADDR_FILE "eventserver.addr"
#define STORE_REMOTE_TOKEN_FILE "internal.token"

enum {
    STORE_REMOTE_OP_COMMIT = 1,
    STORE_REMOTE_OP_GET = 2,
    STORE_REMOTE_OP_DEL = 3,
    STORE_REMOTE_OP_FIND = 4,
    STORE_REMOTE_OP_PROPS = 5,
    STORE_REMOTE_OP_KV_GET = 6,
    STORE_REMOTE_OP_KV_SCAN = 7,
    STORE_REMOTE_OP_DATA_DEL = 8,
};

/* Server side: decodes one request body, runs it on st's engine, and writes
 * the answer body into out. Returns the HTTP status (200, or 400 for a
 * malformed request with a text message in out). Thread-safe. */
int store_remote_serve(store_t *st, const void *body, size_t len, core_buf_t *out);

/* Reads DIR/internal.token into tok (size toksz). 0, or an errno. */
int store_remote_token_read(const char *dir, char *tok, size_t toksz);

#endif
