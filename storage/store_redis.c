/*
 * store_redis.c — the Redis engine (hiredis). Every process is a client, so
 * the id check and the write must be atomic in the server: a batch is ONE
 * Lua script that first checks every id (against stored records and earlier
 * events of the same batch) and only then writes. Redis does not roll back a
 * script that fails half-way, so all checks come before the first write; the
 * writes themselves (HSET/ZADD/SET/DEL on keys of our own types) cannot fail
 * short of the server running out of memory.
 *
 * Keys (database DB of the URL; B = "eddy:e:<app>:<ch>:"):
 *   B r                hash   eventId -> event record (store.h EVENT RECORD)
 *   B t                zset   eventId scored by eventTime ms (time order)
 *   B i:<etype>\0<eid> zset   one entity's events
 *   B g:<ttype>\0<tid> zset   one target entity's events
 *   B p:<etype>\0<eid> zset   one entity's $set/$unset/$delete events
 *   B pt:<etype>       zset   (score 0) entity ids with special events, lex order
 *   eddy:k:<key>       string store_kv_* values
 *   eddy:kidx          zset   (score 0) kv keys, for ordered prefix scans
 * Scores are eventTime ms: exact in a double for years 0001..9999 (validated).
 * Members of equal score are ordered by id bytes, as in the RocksDB engine.
 *
 * Reads page through sorted sets by key (each page starts at the last score
 * read, skipping the members already seen at it; one script round trip
 * returns a page's ids and records), without a snapshot: events written
 * during a long find may or may not be seen.
 * Durability is the server's (appendonly yes + appendfsync always to match
 * --sync always); Redis Cluster is not supported (scripts touch undeclared keys).
 *
 * Threads: a mutex-protected pool of connections; a thread borrows one per
 * operation, so any number of threads may use the store.
 */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "core/core_log.h"
#include "storage/store_int.h"

#define RDS_PAGE 512 /* ids per page of a sorted-set read */
#define RDS_EV_ARGS 10
#define RDS_KV_ARGS 3

static const char COMMIT_LUA[] =
    "local aon = ARGV[1] == '1'\n"
    "local nev = tonumber(ARGV[2])\n"
    "local nkv = tonumber(ARGV[3])\n"
    "local st = {}\n"
    "local eff = {}\n"
    "local conflict = false\n"
    "local pos = 4\n"
    "for i = 1, nev do\n"
    "  local base, id, given, rec = ARGV[pos], ARGV[pos+1], ARGV[pos+3], ARGV[pos+4]\n"
    "  local k = base .. '\\0' .. id\n"
    "  local cur = eff[k]\n"
    "  if cur == nil then cur = redis.call('HGET', base .. 'r', id) end\n"
    "  if not cur then\n"
    "    st[i] = 0\n"
    "    eff[k] = rec\n"
    "  else\n"
    "    if string.sub(cur, 3, 18) == string.sub(rec, 3, 18) and\n"
    "       (given == '0' or string.sub(cur, 19, 26) == string.sub(rec, 19, 26)) then\n"
    "      st[i] = 1\n"
    "    else\n"
    "      st[i] = 2\n"
    "      conflict = true\n"
    "    end\n"
    "    eff[k] = cur\n"
    "  end\n"
    "  pos = pos + 10\n"
    "end\n"
    "if conflict and aon then return st end\n"
    "pos = 4\n"
    "for i = 1, nev do\n"
    "  if st[i] == 0 then\n"
    "    local base, id, score, rec = ARGV[pos], ARGV[pos+1], ARGV[pos+2], ARGV[pos+4]\n"
    "    local ent, tgt, op, et, eid = ARGV[pos+5], ARGV[pos+6], ARGV[pos+7], ARGV[pos+8], "
    "ARGV[pos+9]\n"
    "    redis.call('HSET', base .. 'r', id, rec)\n"
    "    redis.call('ZADD', base .. 't', score, id)\n"
    "    redis.call('ZADD', base .. 'i:' .. ent, score, id)\n"
    "    if tgt ~= '' then redis.call('ZADD', base .. 'g:' .. tgt, score, id) end\n"
    "    if op ~= '' then\n"
    "      redis.call('ZADD', base .. 'p:' .. ent, score, id)\n"
    "      redis.call('ZADD', base .. 'pt:' .. et, 0, eid)\n"
    "    end\n"
    "  end\n"
    "  pos = pos + 10\n"
    "end\n"
    "for j = 1, nkv do\n"
    "  local op, key, val = ARGV[pos], ARGV[pos+1], ARGV[pos+2]\n"
    "  if op == 'p' then\n"
    "    redis.call('SET', 'eddy:k:' .. key, val)\n"
    "    redis.call('ZADD', 'eddy:kidx', 0, key)\n"
    "  else\n"
    "    redis.call('DEL', 'eddy:k:' .. key)\n"
    "    redis.call('ZREM', 'eddy:kidx', key)\n"
    "  end\n"
    "  pos = pos + 3\n"
    "end\n"
    "return st\n";

/* ARGV: base, id, expected record, ent, tgt, op, et, eid.
 * Returns 1 deleted, 0 absent, -1 changed meanwhile (caller retries). */
static const char DELETE_LUA[] =
    "local base, id = ARGV[1], ARGV[2]\n"
    "local cur = redis.call('HGET', base .. 'r', id)\n"
    "if not cur then return 0 end\n"
    "if cur ~= ARGV[3] then return -1 end\n"
    "redis.call('HDEL', base .. 'r', id)\n"
    "redis.call('ZREM', base .. 't', id)\n"
    "redis.call('ZREM', base .. 'i:' .. ARGV[4], id)\n"
    "if ARGV[5] ~= '' then redis.call('ZREM', base .. 'g:' .. ARGV[5], id) end\n"
    "if ARGV[6] ~= '' then\n"
    "  redis.call('ZREM', base .. 'p:' .. ARGV[4], id)\n"
    "  if redis.call('ZCARD', base .. 'p:' .. ARGV[4]) == 0 then\n"
    "    redis.call('ZREM', base .. 'pt:' .. ARGV[7], ARGV[8])\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* One page of a find in one round trip: ARGV zset, hash, ZRANGEBYSCORE or
 * ZREVRANGEBYSCORE, from, to, skip, count. Returns id, score, record
 * triples (record nil when deleted between the two reads). */
static const char FIND_LUA[] =
    "local ids = redis.call(ARGV[3], ARGV[1], ARGV[4], ARGV[5], 'WITHSCORES', 'LIMIT', "
    "ARGV[6], ARGV[7])\n"
    "local out = {}\n"
    "local n = #ids / 2\n"
    "if n == 0 then return out end\n"
    "local names = {}\n"
    "for i = 1, n do names[i] = ids[2 * i - 1] end\n"
    "local recs = redis.call('HMGET', ARGV[2], unpack(names))\n"
    "for i = 1, n do\n"
    "  out[3 * i - 2] = ids[2 * i - 1]\n"
    "  out[3 * i - 1] = ids[2 * i]\n"
    "  out[3 * i] = recs[i]\n"
    "end\n"
    "return out\n";

typedef struct rds {
    char host[256];
    int port, db;
    int64_t timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    redisContext **idle;
    int nidle, total, max;
    char commit_sha[64], del_sha[64], find_sha[64];
} rds_t;

/* ---- connections --------------------------------------------------------------- */
static int rds_connect(rds_t *r, redisContext **out, char *errstr, size_t errstr_size)
{
    struct timeval tv = {(time_t)(r->timeout_ms / 1000),
                         (suseconds_t)(r->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);
    if (!c || c->err) {
        int err = core_errf(CORE_ERR_IO, errstr, errstr_size, "redis %s:%d: %s", r->host, r->port,
                            c ? c->errstr : "cannot allocate a context");
        if (c)
            redisFree(c);
        return err;
    }
    redisSetTimeout(c, tv);
    redisReply *rep = redisCommand(c, "SELECT %d", r->db);
    bool ok = rep && rep->type == REDIS_REPLY_STATUS;
    if (rep)
        freeReplyObject(rep);
    if (!ok) {
        redisFree(c);
        return core_errf(CORE_ERR_IO, errstr, errstr_size, "redis: SELECT %d failed", r->db);
    }
    *out = c;
    return 0;
}

static redisContext *pool_get(rds_t *r, char *errstr, size_t errstr_size)
{
    redisContext *c = NULL;
    pthread_mutex_lock(&r->mu);
    while (r->nidle == 0 && r->total >= r->max)
        pthread_cond_wait(&r->cv, &r->mu);
    if (r->nidle > 0) {
        c = r->idle[--r->nidle];
        pthread_mutex_unlock(&r->mu);
        return c;
    }
    r->total++;
    pthread_mutex_unlock(&r->mu);
    if (rds_connect(r, &c, errstr, errstr_size) != 0) {
        pthread_mutex_lock(&r->mu);
        r->total--;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        return NULL;
    }
    return c;
}

/* Returns a connection; a broken one (c->err) is dropped. */
static void pool_put(rds_t *r, redisContext *c)
{
    pthread_mutex_lock(&r->mu);
    if (c->err) {
        redisFree(c);
        r->total--;
    } else {
        r->idle[r->nidle++] = c;
    }
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Runs argv on a pooled connection: *out is the reply, an error reply
 * included. A NULL reply (connection error) is CORE_ERR_IO. */
static int rds_send(rds_t *r, int argc, const char **argv, const size_t *argvlen, redisReply **out,
                    char *errstr, size_t errstr_size)
{
    redisContext *c = pool_get(r, errstr, errstr_size);
    if (!c)
        return CORE_ERR_IO;
    *out = redisCommandArgv(c, argc, argv, argvlen);
    int err = *out ? 0 : core_errf(CORE_ERR_IO, errstr, errstr_size, "redis: %s", c->errstr);
    pool_put(r, c);
    return err;
}

/* rds_send with an error reply turned into CORE_ERR_IO (logged); the reply
 * is returned for the caller to check and free. */
static int rds_cmd(rds_t *r, int argc, const char **argv, const size_t *argvlen, redisReply **out,
                   char *errstr, size_t errstr_size)
{
    redisReply *rep;
    int err = rds_send(r, argc, argv, argvlen, &rep, errstr, errstr_size);
    if (err)
        return err;
    if (rep->type == REDIS_REPLY_ERROR) {
        int err = core_errf(CORE_ERR_IO, errstr, errstr_size, "redis: %s", rep->str);
        CORE_WARN("store", "redis error: %s", rep->str);
        freeReplyObject(rep);
        return err;
    }
    *out = rep;
    return 0;
}

static int rds_load_scripts(rds_t *r, char *errstr, size_t errstr_size)
{
    const char *scripts[3] = {COMMIT_LUA, DELETE_LUA, FIND_LUA};
    char *shas[3] = {r->commit_sha, r->del_sha, r->find_sha};
    for (int i = 0; i < 3; i++) {
        const char *argv[3] = {"SCRIPT", "LOAD", scripts[i]};
        size_t lens[3] = {6, 4, strlen(scripts[i])};
        redisReply *rep = NULL;
        int err = rds_cmd(r, 3, argv, lens, &rep, errstr, errstr_size);
        if (err)
            return err;
        if (rep->type != REDIS_REPLY_STRING || rep->len >= 64) {
            freeReplyObject(rep);
            return core_errf(CORE_ERR_IO, errstr, errstr_size, "redis: SCRIPT LOAD failed");
        }
        memcpy(shas[i], rep->str, (size_t)rep->len);
        shas[i][rep->len] = '\0';
        freeReplyObject(rep);
    }
    return 0;
}

/* EVALSHA, reloading the scripts once if the server lost them (restart, SCRIPT FLUSH). */
static int rds_eval(rds_t *r, const char *sha, int argc, const char **argv, size_t *argvlen,
                    redisReply **out, char *errstr, size_t errstr_size)
{
    for (int attempt = 0;; attempt++) {
        argv[0] = "EVALSHA";
        argvlen[0] = 7;
        argv[1] = sha;
        argvlen[1] = strlen(sha);
        argv[2] = "0";
        argvlen[2] = 1;
        redisReply *rep;
        int err = rds_send(r, argc, argv, argvlen, &rep, errstr, errstr_size);
        if (err)
            return err;
        if (rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8) && attempt == 0) {
            freeReplyObject(rep);
            if ((err = rds_load_scripts(r, errstr, errstr_size)))
                return err;
            continue;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            err = core_errf(CORE_ERR_IO, errstr, errstr_size, "redis: %s", rep->str);
            freeReplyObject(rep);
            return err;
        }
        *out = rep;
        return 0;
    }
}

/* ---- helpers ----------------------------------------------------------------------- */
static int base_key(char *out, size_t n, int32_t app, int32_t ch)
{
    return snprintf(out, n, "eddy:e:%" PRId32 ":%" PRId32 ":", app, ch);
}

/* "<base><tag><a>\0<b>" as a heap buffer */
static char *ent_key(const char *base, const char *tag, const char *a, size_t al, const char *b,
                     size_t bl, size_t *len)
{
    size_t n = strlen(base), tl = strlen(tag);
    char *k = core_xmalloc(n + tl + al + 1 + bl + 1);
    memcpy(k, base, n);
    memcpy(k + n, tag, tl);
    memcpy(k + n + tl, a, al);
    k[n + tl + al] = '\0';
    memcpy(k + n + tl + al + 1, b, bl);
    *len = n + tl + al + 1 + bl;
    return k;
}

/* ---- engine ops ------------------------------------------------------------------- */
static int rds_commit(store_t *s, store_batch_t *b, store_put_result_t *res, char *errstr,
                      size_t errstr_size)
{
    rds_t *r = s->impl;
    size_t argc = 3 + 3 + RDS_EV_ARGS * b->nev + RDS_KV_ARGS * b->nkv;
    const char **argv = core_xmalloc(argc * sizeof *argv);
    size_t *lens = core_xmalloc(argc * sizeof *lens);
    /* per event: base (32) + score (24) text, plus the two entity keys */
    char *txt = core_xmalloc((b->nev ? b->nev : 1) * 64);
    char **heap = core_xcalloc(2 * b->nev + 1, sizeof *heap);
    char nev[24], nkv[24];
    size_t a = 3;
    argv[a] = (b->flags & STORE_BATCH_ALL_OR_NOTHING) ? "1" : "0";
    lens[a++] = 1;
    lens[a] = (size_t)snprintf(nev, sizeof nev, "%zu", b->nev);
    argv[a++] = nev;
    lens[a] = (size_t)snprintf(nkv, sizeof nkv, "%zu", b->nkv);
    argv[a++] = nkv;
    for (size_t i = 0; i < b->nev; i++) {
        store__staged_t *e = &b->ev[i];
        char *base = txt + i * 64, *score = base + 32;
        size_t el, tl = 0;
        lens[a] = (size_t)base_key(base, 32, e->app, e->ch);
        argv[a++] = base;
        argv[a] = e->id;
        lens[a++] = strlen(e->id);
        lens[a] = (size_t)snprintf(score, 32, "%" PRId64, e->time_ms);
        argv[a++] = score;
        argv[a] = e->time_given ? "1" : "0";
        lens[a++] = 1;
        argv[a] = (const char *)e->rec;
        lens[a++] = e->rec_len;
        heap[2 * i] = ent_key("", "", e->etype, strlen(e->etype), e->eid, strlen(e->eid), &el);
        argv[a] = heap[2 * i];
        lens[a++] = el;
        if (e->ttype)
            heap[2 * i + 1] =
                ent_key("", "", e->ttype, strlen(e->ttype), e->tid, strlen(e->tid), &tl);
        argv[a] = heap[2 * i + 1] ? heap[2 * i + 1] : "";
        lens[a++] = tl;
        argv[a] = e->op == STORE_OP_NONE ? "" : "x";
        lens[a++] = e->op == STORE_OP_NONE ? 0 : 1;
        argv[a] = e->etype;
        lens[a++] = strlen(e->etype);
        argv[a] = e->eid;
        lens[a++] = strlen(e->eid);
    }
    for (size_t i = 0; i < b->nkv; i++) {
        argv[a] = b->kv[i].val ? "p" : "d";
        lens[a++] = 1;
        argv[a] = (const char *)b->kv[i].key;
        lens[a++] = b->kv[i].klen;
        argv[a] = b->kv[i].val ? (const char *)b->kv[i].val : "";
        lens[a++] = b->kv[i].vlen;
    }
    redisReply *rep = NULL;
    int err = rds_eval(r, r->commit_sha, (int)argc, argv, lens, &rep, errstr, errstr_size);
    if (!err) {
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != b->nev) {
            err = core_errf(CORE_ERR_IO, errstr, errstr_size, "redis: unexpected commit reply");
        } else {
            bool conflict = false;
            for (size_t i = 0; i < b->nev; i++) {
                long long v = rep->element[i]->integer;
                res[i].status = v == 0   ? STORE_PUT_CREATED
                                : v == 1 ? STORE_PUT_DUPLICATE
                                         : STORE_PUT_CONFLICT;
                conflict |= v == 2;
            }
            if (conflict && (b->flags & STORE_BATCH_ALL_OR_NOTHING))
                err = core_errf(CORE_ERR_CONFLICT, errstr, errstr_size,
                                "an eventId of the batch exists with different content");
        }
        freeReplyObject(rep);
    }
    for (size_t i = 0; i < 2 * b->nev; i++)
        free(heap[i]);
    free(heap);
    free(txt);
    free(argv);
    free(lens);
    return err;
}

static int rds_get(store_t *s, int32_t app, int32_t ch, const char *id, uint8_t **rec, size_t *len)
{
    rds_t *r = s->impl;
    char key[40];
    int kl = base_key(key, sizeof key, app, ch);
    key[kl++] = 'r';
    const char *argv[3] = {"HGET", key, id};
    size_t lens[3] = {4, (size_t)kl, strlen(id)};
    redisReply *rep;
    int err = rds_cmd(r, 3, argv, lens, &rep, NULL, 0);
    if (err)
        return err;
    if (rep->type == REDIS_REPLY_NIL) {
        freeReplyObject(rep);
        return CORE_ERR_NOT_FOUND;
    }
    if (rep->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        return CORE_ERR_CORRUPT;
    }
    *rec = core_xmalloc(rep->len ? (size_t)rep->len : 1);
    memcpy(*rec, rep->str, (size_t)rep->len);
    *len = (size_t)rep->len;
    freeReplyObject(rep);
    return 0;
}

static int rds_del(store_t *s, int32_t app, int32_t ch, const char *id)
{
    rds_t *r = s->impl;
    for (int attempt = 0; attempt < 8; attempt++) {
        uint8_t *rec;
        size_t len;
        int err = rds_get(s, app, ch, id, &rec, &len);
        if (err)
            return err;
        core_slice_t et, ei, tt, ti;
        uint8_t op;
        int64_t ms;
        if ((err = store__rec_keys(rec, len, &et, &ei, &tt, &ti, &op, &ms))) {
            free(rec);
            return err;
        }
        char base[32];
        size_t el, tl = 0;
        char *ent = ent_key("", "", (const char *)et.ptr, (size_t)et.len, (const char *)ei.ptr,
                            (size_t)ei.len, &el);
        char *tgt = tt.len >= 0 ? ent_key("", "", (const char *)tt.ptr, (size_t)tt.len,
                                          (const char *)ti.ptr, (size_t)ti.len, &tl)
                                : NULL;
        const char *argv[11];
        size_t lens[11];
        lens[3] = (size_t)base_key(base, sizeof base, app, ch);
        argv[3] = base;
        argv[4] = id;
        lens[4] = strlen(id);
        argv[5] = (const char *)rec;
        lens[5] = len;
        argv[6] = ent;
        lens[6] = el;
        argv[7] = tgt ? tgt : "";
        lens[7] = tl;
        argv[8] = op == STORE_OP_NONE ? "" : "x";
        lens[8] = op == STORE_OP_NONE ? 0 : 1;
        argv[9] = (const char *)et.ptr;
        lens[9] = (size_t)et.len;
        argv[10] = (const char *)ei.ptr;
        lens[10] = (size_t)ei.len;
        redisReply *rep = NULL;
        err = rds_eval(r, r->del_sha, 11, argv, lens, &rep, NULL, 0);
        free(ent);
        free(tgt);
        free(rec);
        if (err)
            return err;
        long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -2;
        freeReplyObject(rep);
        if (v == 1)
            return 0;
        if (v == 0)
            return CORE_ERR_NOT_FOUND;
        if (v != -1)
            return CORE_ERR_IO;
    }
    return CORE_ERR_AGAIN;
}

/* Fetches records for ids (an array reply) with HMGET and calls fn for each. */
typedef int (*rec_fn)(const char *id, size_t idl, const uint8_t *rec, size_t len, double score,
                      void *opaque);

static int rds_fetch(rds_t *r, const char *base, size_t bl, redisReply *ids, bool with_scores,
                     rec_fn fn, void *opaque, int *stop)
{
    size_t step = with_scores ? 2 : 1, n = ids->elements / step;
    if (n == 0)
        return 0;
    const char **argv = core_xmalloc((n + 2) * sizeof *argv);
    size_t *lens = core_xmalloc((n + 2) * sizeof *lens);
    char key[40];
    memcpy(key, base, bl);
    key[bl] = 'r';
    argv[0] = "HMGET";
    lens[0] = 5;
    argv[1] = key;
    lens[1] = bl + 1;
    for (size_t i = 0; i < n; i++) {
        argv[2 + i] = ids->element[i * step]->str;
        lens[2 + i] = (size_t)ids->element[i * step]->len;
    }
    redisReply *rep;
    int err = rds_cmd(r, (int)(n + 2), argv, lens, &rep, NULL, 0);
    free(argv);
    free(lens);
    if (err)
        return err;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
        freeReplyObject(rep);
        return CORE_ERR_IO;
    }
    for (size_t i = 0; i < n && !*stop; i++) {
        redisReply *v = rep->element[i];
        if (v->type != REDIS_REPLY_STRING)
            continue; /* deleted between the two reads */
        double score = with_scores ? strtod(ids->element[i * 2 + 1]->str, NULL) : 0;
        int rc = fn(ids->element[i * step]->str, (size_t)ids->element[i * step]->len,
                    (const uint8_t *)v->str, (size_t)v->len, score, opaque);
        if (rc < 0) {
            err = CORE_ERR_CORRUPT;
            break;
        }
        if (rc > 0)
            *stop = 1;
    }
    freeReplyObject(rep);
    return err;
}

typedef struct find_ctx {
    const store_find_t *f;
    store_event_cb cb;
    void *opaque;
    int64_t *count;
    core_buf_t scratch;
} find_ctx_t;

static int find_one(const char *id, size_t idl, const uint8_t *rec, size_t len, double score,
                    void *opaque)
{
    find_ctx_t *fc = opaque;
    store_event_t ev;
    if (store__rec_decode(rec, len, id, idl, &ev, &fc->scratch))
        return -1;
    if (!store__find_match(fc->f, &ev))
        return 0;
    (*fc->count)++;
    if (fc->cb(&ev, fc->opaque))
        return 1;
    if (fc->f->limit >= 0 && *fc->count >= fc->f->limit)
        return 1;
    return 0;
}

static int rds_find(store_t *s, int32_t app, int32_t ch, const store_find_t *f, store_event_cb cb,
                    void *opaque, int64_t *count)
{
    rds_t *r = s->impl;
    char base[32];
    size_t bl = (size_t)base_key(base, sizeof base, app, ch), kl;
    char *key;
    if (f->entity_type && f->entity_id)
        key = ent_key(base, "i:", f->entity_type, strlen(f->entity_type), f->entity_id,
                      strlen(f->entity_id), &kl);
    else if (f->target_entity_type && f->target_entity_id)
        key = ent_key(base, "g:", f->target_entity_type, strlen(f->target_entity_type),
                      f->target_entity_id, strlen(f->target_entity_id), &kl);
    else {
        kl = bl + 1;
        key = core_xmalloc(kl + 1);
        memcpy(key, base, bl);
        key[bl] = 't';
    }
    char lo[32], hi[32], off[24], cnt[24];
    if (f->start_ms == INT64_MIN)
        strcpy(lo, "-inf");
    else
        snprintf(lo, sizeof lo, "%" PRId64, f->start_ms);
    if (f->until_ms == INT64_MAX)
        strcpy(hi, "+inf");
    else
        snprintf(hi, sizeof hi, "(%" PRId64, f->until_ms);
    find_ctx_t fc = {.f = f, .cb = cb, .opaque = opaque, .count = count};
    core_buf_init(&fc.scratch);
    int err = 0, stop = 0;
    /* Keyset paging: each page starts at the score of the last one read
     * (its bound moves), skipping the members already read at that score,
     * so reading N events costs O(N log N) instead of O(N^2) for offsets. */
    long long skip = 0;
    char hkey[40];
    memcpy(hkey, base, bl);
    hkey[bl] = 'r';
    for (; !stop;) {
        snprintf(off, sizeof off, "%lld", skip);
        snprintf(cnt, sizeof cnt, "%d", RDS_PAGE);
        const char *argv[10] = {NULL,
                                NULL,
                                NULL,
                                key,
                                hkey,
                                f->reversed ? "ZREVRANGEBYSCORE" : "ZRANGEBYSCORE",
                                f->reversed ? hi : lo,
                                f->reversed ? lo : hi,
                                off,
                                cnt};
        size_t lens[10];
        for (int i = 3; i < 10; i++)
            lens[i] = i == 3 ? kl : i == 4 ? bl + 1 : strlen(argv[i]);
        redisReply *rep;
        if ((err = rds_eval(r, r->find_sha, 10, argv, lens, &rep, NULL, 0)))
            break;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 3) {
            freeReplyObject(rep);
            err = CORE_ERR_IO;
            break;
        }
        size_t n = rep->elements / 3;
        for (size_t i = 0; i < n && !stop; i++) {
            redisReply *id = rep->element[3 * i], *v = rep->element[3 * i + 2];
            if (v->type != REDIS_REPLY_STRING)
                continue; /* deleted meanwhile */
            int rc =
                find_one(id->str, (size_t)id->len, (const uint8_t *)v->str, (size_t)v->len, 0, &fc);
            if (rc < 0) {
                err = CORE_ERR_CORRUPT;
                break;
            }
            stop = rc > 0;
        }
        if (!err && n == RDS_PAGE) {
            /* the next page starts at the last score, inclusive */
            const char *last = rep->element[3 * n - 2]->str;
            long long same = 0;
            for (size_t i = n; i-- > 0 && !strcmp(rep->element[3 * i + 1]->str, last);)
                same++;
            char *bound = f->reversed ? hi : lo;
            skip = (size_t)same == n && !strcmp(bound, last) ? skip + same : same;
            snprintf(bound, 32, "%s", last);
        }
        freeReplyObject(rep);
        if (err || n < RDS_PAGE)
            break;
    }
    core_buf_fini(&fc.scratch);
    free(key);
    return err;
}

typedef struct props_ctx {
    store__propev_cb cb;
    void *opaque;
    const char *eid;
    size_t eid_len;
    core_buf_t scratch;
} props_ctx_t;

static int props_one(const char *id, size_t idl, const uint8_t *rec, size_t len, double score,
                     void *opaque)
{
    props_ctx_t *pc = opaque;
    store_event_t ev;
    if (store__rec_decode(rec, len, id, idl, &ev, &pc->scratch))
        return -1;
    uint8_t op = !strcmp(ev.event, "$set")      ? STORE_OP_SET
                 : !strcmp(ev.event, "$unset")  ? STORE_OP_UNSET
                 : !strcmp(ev.event, "$delete") ? STORE_OP_DELETE
                                                : STORE_OP_NONE;
    if (op == STORE_OP_NONE)
        return 0;
    store__propev_t pe = {pc->eid, pc->eid_len, ev.event_time_ms, id,
                          idl,     op,          ev.properties,    strlen(ev.properties)};
    return pc->cb(&pe, pc->opaque) ? 1 : 0;
}

static int props_entity(rds_t *r, const char *base, size_t bl, const char *etype, const char *eid,
                        size_t eidl, props_ctx_t *pc, int *stop)
{
    size_t kl;
    char *key = ent_key(base, "p:", etype, strlen(etype), eid, eidl, &kl);
    const char *argv[4] = {"ZRANGE", key, "0", "-1"};
    size_t lens[4] = {6, kl, 1, 2};
    redisReply *ids;
    int err = rds_cmd(r, 4, argv, lens, &ids, NULL, 0);
    free(key);
    if (err)
        return err;
    pc->eid = eid;
    pc->eid_len = eidl;
    if (ids->type == REDIS_REPLY_ARRAY)
        err = rds_fetch(r, base, bl, ids, false, props_one, pc, stop);
    freeReplyObject(ids);
    return err;
}

static int rds_props_scan(store_t *s, int32_t app, int32_t ch, const char *etype, const char *eid,
                          store__propev_cb cb, void *opaque)
{
    rds_t *r = s->impl;
    char base[32];
    size_t bl = (size_t)base_key(base, sizeof base, app, ch);
    props_ctx_t pc = {.cb = cb, .opaque = opaque};
    core_buf_init(&pc.scratch);
    int err = 0, stop = 0;
    if (eid) {
        err = props_entity(r, base, bl, etype, eid, strlen(eid), &pc, &stop);
        core_buf_fini(&pc.scratch);
        return err;
    }
    size_t tl = strlen(etype);
    char *key = core_xmalloc(bl + 3 + tl + 1);
    memcpy(key, base, bl);
    memcpy(key + bl, "pt:", 3);
    memcpy(key + bl + 3, etype, tl);
    size_t kl = bl + 3 + tl;
    char cnt[24];
    core_buf_t from; /* keyset paging: "(" + the last member read */
    core_buf_init(&from);
    core_wr_raw(&from, "-", 1);
    snprintf(cnt, sizeof cnt, "%d", RDS_PAGE);
    while (!stop && !err) {
        const char *argv[7] = {"ZRANGEBYLEX", key, (const char *)from.data, "+", "LIMIT", "0", cnt};
        size_t lens[7] = {11, kl, from.len, 1, 5, 1, strlen(cnt)};
        redisReply *eids;
        if ((err = rds_cmd(r, 7, argv, lens, &eids, NULL, 0)))
            break;
        size_t n = eids->type == REDIS_REPLY_ARRAY ? eids->elements : 0;
        for (size_t i = 0; i < n && !stop && !err; i++)
            err = props_entity(r, base, bl, etype, eids->element[i]->str,
                               (size_t)eids->element[i]->len, &pc, &stop);
        if (n == RDS_PAGE) {
            core_buf_reset(&from);
            core_wr_raw(&from, "(", 1);
            core_wr_raw(&from, eids->element[n - 1]->str, (size_t)eids->element[n - 1]->len);
        }
        freeReplyObject(eids);
        if (n < RDS_PAGE)
            break;
    }
    core_buf_fini(&from);
    free(key);
    core_buf_fini(&pc.scratch);
    return err;
}

static int rds_kv_get(store_t *s, const void *key, size_t klen, void **val, size_t *vlen)
{
    rds_t *r = s->impl;
    char k[8 + STORE_KV_KEY_MAX];
    memcpy(k, "eddy:k:", 7);
    memcpy(k + 7, key, klen);
    const char *argv[2] = {"GET", k};
    size_t lens[2] = {3, klen + 7};
    redisReply *rep;
    int err = rds_cmd(r, 2, argv, lens, &rep, NULL, 0);
    if (err)
        return err;
    if (rep->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        return CORE_ERR_NOT_FOUND;
    }
    *val = core_trymalloc(rep->len ? (size_t)rep->len : 1);
    if (!*val) {
        freeReplyObject(rep);
        return CORE_ERR_NOMEM;
    }
    memcpy(*val, rep->str, (size_t)rep->len);
    *vlen = (size_t)rep->len;
    freeReplyObject(rep);
    return 0;
}

static int rds_kv_scan(store_t *s, const void *prefix, size_t plen, store_kv_cb cb, void *opaque)
{
    rds_t *r = s->impl;
    char lo[2 + STORE_KV_KEY_MAX], cnt[24];
    if (plen > STORE_KV_KEY_MAX)
        return 0;
    /* keyset paging: "[prefix" first, then "(" + the last key read */
    lo[0] = '[';
    memcpy(lo + 1, prefix, plen);
    size_t lol = plen + 1;
    int err = 0, stop = 0;
    snprintf(cnt, sizeof cnt, "%d", RDS_PAGE);
    while (!stop && !err) {
        const char *argv[7] = {"ZRANGEBYLEX", "eddy:kidx", lo, "+", "LIMIT", "0", cnt};
        size_t lens[7] = {11, 9, lol, 1, 5, 1, strlen(cnt)};
        redisReply *keys;
        if ((err = rds_cmd(r, 7, argv, lens, &keys, NULL, 0)))
            break;
        size_t n = keys->type == REDIS_REPLY_ARRAY ? keys->elements : 0;
        size_t m = 0; /* keys still under the prefix */
        while (m < n && (size_t)keys->element[m]->len >= plen &&
               !memcmp(keys->element[m]->str, prefix, plen))
            m++;
        if (m > 0) {
            const char **argv2 = core_xmalloc((m + 1) * sizeof *argv2);
            size_t *lens2 = core_xmalloc((m + 1) * sizeof *lens2);
            char **names = core_xmalloc(m * sizeof *names);
            argv2[0] = "MGET";
            lens2[0] = 4;
            for (size_t i = 0; i < m; i++) {
                size_t l = (size_t)keys->element[i]->len;
                names[i] = core_xmalloc(l + 7);
                memcpy(names[i], "eddy:k:", 7);
                memcpy(names[i] + 7, keys->element[i]->str, l);
                argv2[1 + i] = names[i];
                lens2[1 + i] = l + 7;
            }
            redisReply *vals;
            err = rds_cmd(r, (int)(m + 1), argv2, lens2, &vals, NULL, 0);
            for (size_t i = 0; i < m; i++)
                free(names[i]);
            free(names);
            free(argv2);
            free(lens2);
            if (!err) {
                for (size_t i = 0; i < m && i < vals->elements && !stop; i++) {
                    redisReply *v = vals->element[i];
                    if (v->type != REDIS_REPLY_STRING)
                        continue;
                    stop = cb(keys->element[i]->str, (size_t)keys->element[i]->len, v->str,
                              (size_t)v->len, opaque);
                }
                freeReplyObject(vals);
            }
        }
        if (m == n && n == RDS_PAGE && (size_t)keys->element[n - 1]->len <= STORE_KV_KEY_MAX) {
            lo[0] = '(';
            memcpy(lo + 1, keys->element[n - 1]->str, (size_t)keys->element[n - 1]->len);
            lol = (size_t)keys->element[n - 1]->len + 1;
        }
        freeReplyObject(keys);
        if (m < n || n < RDS_PAGE)
            break;
    }
    return err;
}

/* One SCAN page of the keys matching pattern: advances cursor (back to "0"
 * when the walk is complete) and returns the reply, whose element[1] holds
 * the page's keys (the caller frees it). */
static int rds_scan_page(rds_t *r, const char *pattern, char *cursor, size_t cursor_size,
                         redisReply **rep)
{
    const char *argv[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    int err = rds_cmd(r, 6, argv, lens, rep, NULL, 0);
    if (err)
        return err;
    if ((*rep)->type != REDIS_REPLY_ARRAY || (*rep)->elements != 2) {
        freeReplyObject(*rep);
        return CORE_ERR_IO;
    }
    snprintf(cursor, cursor_size, "%s", (*rep)->element[0]->str);
    return 0;
}

static int rds_data_delete(store_t *s, int32_t app, int32_t ch)
{
    rds_t *r = s->impl;
    char pat[64];
    if (ch >= 0)
        snprintf(pat, sizeof pat, "eddy:e:%" PRId32 ":%" PRId32 ":*", app, ch);
    else
        snprintf(pat, sizeof pat, "eddy:e:%" PRId32 ":*", app);
    char cursor[32] = "0";
    int err = 0;
    do {
        redisReply *rep;
        if ((err = rds_scan_page(r, pat, cursor, sizeof cursor, &rep)))
            break;
        redisReply *keys = rep->element[1];
        if (keys->elements > 0) {
            const char **argv2 = core_xmalloc((keys->elements + 1) * sizeof *argv2);
            size_t *lens2 = core_xmalloc((keys->elements + 1) * sizeof *lens2);
            argv2[0] = "UNLINK";
            lens2[0] = 6;
            for (size_t i = 0; i < keys->elements; i++) {
                argv2[1 + i] = keys->element[i]->str;
                lens2[1 + i] = (size_t)keys->element[i]->len;
            }
            redisReply *d;
            err = rds_cmd(r, (int)keys->elements + 1, argv2, lens2, &d, NULL, 0);
            if (!err)
                freeReplyObject(d);
            free(argv2);
            free(lens2);
        }
        freeReplyObject(rep);
    } while (!err && strcmp(cursor, "0") != 0);
    return err;
}

/* ---- check -------------------------------------------------------------------------- */
/* For every record hash B r: each record decodes and is a member of B t,
 * its entity set, its target set and (special events) its property set at
 * its time; and B t holds exactly as many members as B r. */
static double zscore(rds_t *r, const char *key, size_t kl, const char *id, size_t idl, int *found)
{
    const char *argv[3] = {"ZSCORE", key, id};
    size_t lens[3] = {6, kl, idl};
    redisReply *rep;
    *found = -1;
    if (rds_cmd(r, 3, argv, lens, &rep, NULL, 0))
        return 0;
    double v = 0;
    *found = rep->type == REDIS_REPLY_STRING;
    if (*found)
        v = strtod(rep->str, NULL);
    freeReplyObject(rep);
    return v;
}

static void check_member(rds_t *r, store_check_t *rep, const char *base, const char *tag,
                         core_slice_t a, core_slice_t b, const char *id, size_t idl, int64_t t,
                         const char *what)
{
    size_t kl;
    char *key = ent_key(base, tag, (const char *)a.ptr, (size_t)a.len, (const char *)b.ptr,
                        (size_t)b.len, &kl);
    int found;
    double sc = zscore(r, key, kl, id, idl, &found);
    if (found != 1 || (int64_t)sc != t)
        store__check_problem(rep, "%s event %.*s: %s entry %s", base, (int)idl, id, what,
                             found == 1 ? "has another time" : "missing");
    rep->index_entries++;
    free(key);
}

static int check_hash(rds_t *r, const char *hkey, size_t hl, store_check_t *rep)
{
    char base[64];
    if (hl < 2 || hl - 1 >= sizeof base)
        return 0;
    memcpy(base, hkey, hl - 1);
    base[hl - 1] = '\0';
    char tkey[72];
    int tl = snprintf(tkey, sizeof tkey, "%st", base);
    char cursor[32] = "0";
    int64_t nrec = 0;
    int err = 0;
    do {
        const char *argv[5] = {"HSCAN", hkey, cursor, "COUNT", "500"};
        size_t lens[5] = {5, hl, strlen(cursor), 5, 3};
        redisReply *rp;
        if ((err = rds_cmd(r, 5, argv, lens, &rp, NULL, 0)))
            break;
        if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 2) {
            freeReplyObject(rp);
            err = CORE_ERR_IO;
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", rp->element[0]->str);
        redisReply *kv = rp->element[1];
        for (size_t i = 0; i + 1 < kv->elements; i += 2) {
            const char *id = kv->element[i]->str;
            size_t idl = (size_t)kv->element[i]->len;
            const uint8_t *rec = (const uint8_t *)kv->element[i + 1]->str;
            size_t rl = (size_t)kv->element[i + 1]->len;
            core_slice_t et, ei, tt, ti;
            uint8_t op;
            int64_t t;
            nrec++;
            if (store__rec_keys(rec, rl, &et, &ei, &tt, &ti, &op, &t) != 0) {
                store__check_problem(rep, "%s event %.*s: record does not decode", base, (int)idl,
                                     id);
                continue;
            }
            rep->events++;
            int found;
            double sc = zscore(r, tkey, (size_t)tl, id, idl, &found);
            if (found != 1 || (int64_t)sc != t)
                store__check_problem(rep, "%s event %.*s: time entry %s", base, (int)idl, id,
                                     found == 1 ? "has another time" : "missing");
            rep->index_entries++;
            check_member(r, rep, base, "i:", et, ei, id, idl, t, "entity");
            if (tt.len >= 0)
                check_member(r, rep, base, "g:", tt, ti, id, idl, t, "target");
            if (op != STORE_OP_NONE)
                check_member(r, rep, base, "p:", et, ei, id, idl, t, "property");
        }
        freeReplyObject(rp);
    } while (strcmp(cursor, "0") != 0);
    if (!err) {
        const char *argv[2] = {"ZCARD", tkey};
        size_t lens[2] = {5, (size_t)tl};
        redisReply *rp;
        if ((err = rds_cmd(r, 2, argv, lens, &rp, NULL, 0)) == 0) {
            if (rp->type == REDIS_REPLY_INTEGER && rp->integer != nrec)
                store__check_problem(rep, "%s %lld time entries for %lld records", base,
                                     rp->integer, (long long)nrec);
            freeReplyObject(rp);
        }
    }
    return err;
}

static int rds_check(store_t *s, store_check_t *rep)
{
    rds_t *r = s->impl;
    char cursor[32] = "0";
    int err = 0;
    do {
        redisReply *rp;
        if ((err = rds_scan_page(r, "eddy:e:*:r", cursor, sizeof cursor, &rp)))
            break;
        for (size_t i = 0; i < rp->element[1]->elements && !err; i++)
            err = check_hash(r, rp->element[1]->element[i]->str,
                             (size_t)rp->element[1]->element[i]->len, rep);
        freeReplyObject(rp);
    } while (!err && strcmp(cursor, "0") != 0);
    if (!err) {
        const char *argv[2] = {"ZCARD", "eddy:kidx"};
        size_t lens[2] = {5, 9};
        redisReply *rp;
        if ((err = rds_cmd(r, 2, argv, lens, &rp, NULL, 0)) == 0) {
            rep->kv = rp->type == REDIS_REPLY_INTEGER ? rp->integer : 0;
            freeReplyObject(rp);
        }
    }
    return err;
}

static void rds_close(store_t *s)
{
    rds_t *r = s->impl;
    for (int i = 0; i < r->nidle; i++)
        redisFree(r->idle[i]);
    free(r->idle);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static const store__engine_t rds_engine = {
    .name = "redis",
    .close = rds_close,
    .commit = rds_commit,
    .get = rds_get,
    .del = rds_del,
    .find = rds_find,
    .props_scan = rds_props_scan,
    .kv_get = rds_kv_get,
    .kv_scan = rds_kv_scan,
    .data_delete = rds_data_delete,
    .check = rds_check,
};

int store__redis_open(store_t *s, const char *host, int port, int db, char *errstr,
                      size_t errstr_size)
{
    rds_t *r = core_xcalloc(1, sizeof *r);
    snprintf(r->host, sizeof r->host, "%s", host);
    r->port = port;
    r->db = db;
    r->timeout_ms = s->opts.redis_timeout_ms;
    r->max = s->opts.redis_pool;
    r->idle = core_xcalloc((size_t)r->max, sizeof *r->idle);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    s->impl = r;
    s->eng = &rds_engine;
    int err = rds_load_scripts(r, errstr, errstr_size);
    if (err) {
        rds_close(s);
        s->impl = NULL;
        return err;
    }
    /* --sync always promises durable acknowledgements; with Redis that is the
     * server's setting, so say so when the server does not provide it. */
    if (s->opts.sync == STORE_SYNC_ALWAYS) {
        char aof[16] = "?", fsync[16] = "?";
        const char *names[2] = {"appendonly", "appendfsync"};
        char *vals[2] = {aof, fsync};
        for (int i = 0; i < 2; i++) {
            const char *argv[3] = {"CONFIG", "GET", names[i]};
            size_t lens[3] = {6, 3, strlen(names[i])};
            redisReply *rep;
            if (rds_cmd(r, 3, argv, lens, &rep, NULL, 0) == 0) {
                if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                    rep->element[1]->type == REDIS_REPLY_STRING)
                    snprintf(vals[i], 16, "%s", rep->element[1]->str);
                freeReplyObject(rep);
            }
        }
        if (strcmp(aof, "yes") != 0 || strcmp(fsync, "always") != 0)
            CORE_WARN("store",
                      "redis %s:%d has appendonly=%s appendfsync=%s: acknowledged events are "
                      "durable only as far as that server's persistence goes (set appendonly "
                      "yes, appendfsync always for the guarantee of --sync always)",
                      host, port, aof, fsync);
    }
    CORE_INFO("store", "opened redis store %s:%d/%d", host, port, db);
    return 0;
}
