/*
 * store_rocksdb.c — the embedded engine (RocksDB C API). Key layout: store.h.
 *
 * Idempotency: RocksDB has no compare-and-set, so the check of an id and the
 * write of its event happen under a striped mutex chosen by (app, ch, id).
 * The process owning the directory (RocksDB's LOCK) is the only writer, so
 * in-process locks are enough. A batch locks its stripes in ascending order
 * (no deadlock), checks, writes one WriteBatch (WAL written, not fsynced),
 * unlocks, and only then waits for the WAL fsync (--sync always). Holding
 * the stripes across the fsync would serialise concurrent batches: two
 * 50-event batches share one of 1024 stripes 9 times in 10, so group commit
 * would rarely happen. The fsync is a group commit of our own
 * (rdb_wal_sync_wait): one thread fsyncs for every write finished before it
 * started, the others wait for that generation. A commit that wrote nothing
 * (all duplicates) waits too, so a duplicate is never acknowledged before the
 * event it matched is durable.
 *
 * Cost of an event (profiled, docs in README "Event API"): 4 memtable
 * inserts (T, E, I, G; plus P for $set/$unset/$delete) are most of the
 * ingest CPU, so values are kept small (I and G are key-only; a read fetches
 * records with one batched MultiGet), a batch's id checks are one batched
 * MultiGet (E, then T only for ids that exist), the puts go into the
 * WriteBatch sorted, and the write buffers are small enough for the skiplist
 * search to stay cheap. Tried and measured no better: combining concurrent
 * commits into one sorted WriteBatch, hash-based memtables (the sort is then
 * paid at flush), transparent huge pages for the memtable arena.
 *
 * Errors are sticky: after a failed write the engine refuses further writes
 * (CORE_ERR_IO) rather than pretend; RocksDB itself stops on background
 * errors too. Reads go on.
 */
#include <errno.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "core/core_log.h"
#include "storage/store_int.h"

#define RDB_STRIPES 1024 /* id-check locks: power of two */
/* Largest key: tag + app + ch + 2 strings + time + id. */
#define RDB_KEY_MAX (9 + 2 * (2 + STORE_NAME_MAX) + 8 + STORE_EVENT_ID_MAX)

typedef struct rdb {
    rocksdb_t *db;
    rocksdb_column_family_handle_t *cf; /* "default": for the batched MultiGet */
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *bbo;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wo; /* never sync: durability is rdb_wal_sync_wait's */
    rocksdb_readoptions_t *ro;
    /* --sync always group commit: writes finished (gen_written) and covered
     * by a completed WAL fsync (gen_synced); one fsync runs at a time. */
    pthread_mutex_t gc_mu;
    pthread_cond_t gc_cv;
    uint64_t gen_written, gen_synced;
    bool gc_syncing;
    pthread_mutex_t stripes[RDB_STRIPES];
    atomic_int sticky; /* first write error, 0 = healthy */
    /* --sync interval: a thread fsyncs the WAL every sync_interval_ms */
    pthread_t syncer;
    bool syncer_on;
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    bool stopping;
    char dir[4096];
} rdb_t;

/* ---- keys ------------------------------------------------------------------------- */
static size_t k_head(uint8_t *k, char tag, int32_t app, int32_t ch)
{
    k[0] = (uint8_t)tag;
    core_put_be32(k + 1, (uint32_t)app);
    core_put_be32(k + 5, (uint32_t)ch);
    return 9;
}

static size_t k_str(uint8_t *k, size_t o, const char *s, size_t n)
{
    k[o] = (uint8_t)(n >> 8);
    k[o + 1] = (uint8_t)n;
    memcpy(k + o + 2, s, n);
    return o + 2 + n;
}

static size_t k_time_id(uint8_t *k, size_t o, int64_t ms, const char *id, size_t idl)
{
    core_put_be64(k + o, store__time_key(ms));
    memcpy(k + o + 8, id, idl);
    return o + 8 + idl;
}

static size_t k_entity(uint8_t *k, char tag, int32_t app, int32_t ch, const char *t, size_t tl,
                       const char *i, size_t il)
{
    size_t o = k_head(k, tag, app, ch);
    o = k_str(k, o, t, tl);
    return k_str(k, o, i, il);
}

static unsigned stripe_of(int32_t app, int32_t ch, const char *id)
{
    uint8_t h[16];
    store__key_hash128(app, ch, id, h);
    return ((unsigned)h[0] | (unsigned)h[1] << 8) & (RDB_STRIPES - 1);
}

static int cmp_uint(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

static int io_err(rdb_t *r, char *e, char *errstr, size_t errstr_size, const char *what)
{
    int err = core_errf(CORE_ERR_IO, errstr, errstr_size, "rocksdb %s: %s", what, e);
    CORE_ERROR("store", "rocksdb %s failed: %s", what, e);
    rocksdb_free(e);
    return err;
}

/* The error an iteration ended with: a loop that stopped because the
 * iterator went invalid may have hit an I/O error, reported only here. */
static int iter_err(rdb_t *r, rocksdb_iterator_t *it)
{
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    return e ? io_err(r, e, NULL, 0, "iterate") : 0;
}

/* RocksDB counts every key comparison into a thread-local perf context
 * unless the thread's perf level says not to: on the ingest path that is a
 * TLS lookup per skiplist step (~5% of the server's CPU in profiles). The
 * level is per thread, so each thread that enters the engine sets it once. */
static void rdb_thread_enter(void)
{
    static __thread bool set;
    if (!set) {
        rocksdb_set_perf_level(rocksdb_disable);
        set = true;
    }
}

/* Reads the primary record of (app, ch, id), through E. With ro (snapshot). */
static int rdb_get_rec(rdb_t *r, const rocksdb_readoptions_t *ro, int32_t app, int32_t ch,
                       const char *id, size_t idl, uint8_t **rec, size_t *len)
{
    uint8_t k[RDB_KEY_MAX];
    size_t kl = k_head(k, 'E', app, ch);
    memcpy(k + kl, id, idl);
    kl += idl;
    char *e = NULL;
    size_t vl;
    char *v = rocksdb_get(r->db, ro, (char *)k, kl, &vl, &e);
    if (e)
        return io_err(r, e, NULL, 0, "get");
    if (!v)
        return CORE_ERR_NOT_FOUND;
    if (vl != 8) {
        rocksdb_free(v);
        return CORE_ERR_CORRUPT;
    }
    int64_t ms = store__time_unkey(core_be64((uint8_t *)v));
    rocksdb_free(v);
    kl = k_time_id(k, k_head(k, 'T', app, ch), ms, id, idl);
    v = rocksdb_get(r->db, ro, (char *)k, kl, &vl, &e);
    if (e)
        return io_err(r, e, NULL, 0, "get");
    if (!v)
        return CORE_ERR_CORRUPT; /* E without T */
    *rec = core_xmalloc(vl ? vl : 1);
    memcpy(*rec, v, vl);
    *len = vl;
    rocksdb_free(v);
    return 0;
}

/* RocksDB's batched MultiGet (one SuperVersion for all keys, memtable and
 * table lookups batched, values pinned instead of copied). vals[i] = NULL
 * when absent; errs[i] set on a read error. Release with rdb_mget_release. */
static void rdb_mget(rdb_t *r, const rocksdb_readoptions_t *ro, size_t n, const char *const *keys,
                     const size_t *klens, rocksdb_pinnableslice_t **vals, char **errs)
{
    rocksdb_batched_multi_get_cf(r->db, ro, r->cf, n, keys, klens, vals, errs, false);
}

/* Result i of an rdb_mget: 0 with *v (NULL when the key is absent) and *vl,
 * or CORE_ERR_IO (logged) when that read failed. */
static int rdb_mget_value(rocksdb_pinnableslice_t **vals, char **errs, size_t i, const char **v,
                          size_t *vl)
{
    *v = NULL;
    *vl = 0;
    if (errs[i]) {
        CORE_ERROR("store", "rocksdb multiget failed: %s", errs[i]);
        return CORE_ERR_IO;
    }
    if (vals[i])
        *v = rocksdb_pinnableslice_value(vals[i], vl);
    return 0;
}

static void rdb_mget_release(size_t n, rocksdb_pinnableslice_t **vals, char **errs)
{
    for (size_t i = 0; i < n; i++) {
        if (vals[i])
            rocksdb_pinnableslice_destroy(vals[i]);
        if (errs[i])
            rocksdb_free(errs[i]);
        vals[i] = NULL;
        errs[i] = NULL;
    }
}

/* Looks up the stored records of many ids at once (the id checks of a
 * commit): one MultiGet of their E entries, then one of the T records of
 * those that exist (only duplicates and conflicts get there). recs[i] gets a
 * malloc'd copy of the record (caller frees) or NULL when the id is new.
 * Returns 0, CORE_ERR_IO or CORE_ERR_CORRUPT (*bad = the failing index). */
static int rdb_get_recs(rdb_t *r, size_t n, const store__staged_t *const *evs, uint8_t **recs,
                        size_t *lens, size_t *bad)
{
    int err = 0;
    if (n == 0)
        return 0;
    uint8_t *kbuf = core_xmalloc(n * (9 + 8 + STORE_EVENT_ID_MAX));
    const char **keys = core_xmalloc(n * sizeof *keys);
    size_t *klens = core_xmalloc(n * sizeof *klens);
    rocksdb_pinnableslice_t **vals = core_xcalloc(n, sizeof *vals);
    char **errs = core_xcalloc(n, sizeof *errs);
    size_t *which = core_xmalloc(n * sizeof *which), nt = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *k = kbuf + i * (9 + 8 + STORE_EVENT_ID_MAX);
        size_t idl = strlen(evs[i]->id), kl = k_head(k, 'E', evs[i]->app, evs[i]->ch);
        memcpy(k + kl, evs[i]->id, idl);
        keys[i] = (const char *)k;
        klens[i] = kl + idl;
        recs[i] = NULL;
    }
    rdb_mget(r, r->ro, n, keys, klens, vals, errs);
    for (size_t i = 0; i < n && !err; i++) {
        const char *v;
        size_t vl;
        err = rdb_mget_value(vals, errs, i, &v, &vl);
        if (!err && v && vl != 8)
            err = CORE_ERR_CORRUPT;
        if (err) {
            *bad = i;
        } else if (v) {
            /* reuse key slot i for the T key */
            uint8_t *k = kbuf + i * (9 + 8 + STORE_EVENT_ID_MAX);
            int64_t ms = store__time_unkey(core_be64((const uint8_t *)v));
            klens[nt] = k_time_id(k, k_head(k, 'T', evs[i]->app, evs[i]->ch), ms, evs[i]->id,
                                  strlen(evs[i]->id));
            keys[nt] = (const char *)k;
            which[nt++] = i;
        }
    }
    rdb_mget_release(n, vals, errs);
    if (!err && nt > 0) { /* only duplicates and conflicts get here */
        rdb_mget(r, r->ro, nt, keys, klens, vals, errs);
        for (size_t j = 0; j < nt && !err; j++) {
            const char *v;
            size_t vl;
            err = rdb_mget_value(vals, errs, j, &v, &vl);
            if (!err && !v)
                err = CORE_ERR_CORRUPT; /* E without T */
            if (err) {
                *bad = which[j];
            } else {
                size_t i = which[j];
                recs[i] = core_xmalloc(vl ? vl : 1);
                memcpy(recs[i], v, vl);
                lens[i] = vl;
            }
        }
        rdb_mget_release(nt, vals, errs);
    }
    if (err)
        for (size_t i = 0; i < n; i++) {
            free(recs[i]);
            recs[i] = NULL;
        }
    free(kbuf);
    free(keys);
    free(klens);
    free(vals);
    free(errs);
    free(which);
    return err;
}

/* The puts of a commit, sorted by key before they go into the WriteBatch:
 * consecutive memtable inserts then land next to each other (the skiplist
 * reuses its splice) instead of alternating between the T/E/I/G ranges. */
typedef struct putent {
    size_t koff, klen;
    const uint8_t *val; /* borrowed (the staged record) or NULL: in vals */
    size_t voff, vlen;
} putent_t;

typedef struct putlist {
    core_buf_t keys, vals;
    putent_t *e;
    size_t n, cap;
} putlist_t;

static void pl_add(putlist_t *pl, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                   const uint8_t *v2, size_t v2l, bool borrow)
{
    if (pl->n == pl->cap) {
        pl->cap = pl->cap ? pl->cap * 2 : 256;
        pl->e = core_xrealloc(pl->e, pl->cap * sizeof *pl->e);
    }
    putent_t *e = &pl->e[pl->n++];
    e->koff = pl->keys.len;
    e->klen = kl;
    core_wr_raw(&pl->keys, k, kl);
    e->val = borrow ? v : NULL;
    e->voff = pl->vals.len;
    e->vlen = vl + v2l;
    if (!borrow) {
        core_wr_raw(&pl->vals, v, vl);
        if (v2l)
            core_wr_raw(&pl->vals, v2, v2l);
    }
}

static int pl_cmp(const void *a, const void *b, void *arg)
{
    const putent_t *x = a, *y = b;
    const uint8_t *base = arg;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(base + x->koff, base + y->koff, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static void pl_flush(putlist_t *pl, rocksdb_writebatch_t *wb)
{
    if (pl->n > 1)
        qsort_r(pl->e, pl->n, sizeof *pl->e, pl_cmp, pl->keys.data);
    for (size_t i = 0; i < pl->n; i++) {
        putent_t *e = &pl->e[i];
        const uint8_t *v = e->val ? e->val : pl->vals.data + e->voff;
        rocksdb_writebatch_put(wb, (const char *)pl->keys.data + e->koff, e->klen, (const char *)v,
                               e->vlen);
    }
}

static void pl_fini(putlist_t *pl)
{
    core_buf_fini(&pl->keys);
    core_buf_fini(&pl->vals);
    free(pl->e);
}

/* Adds the puts (to pl) or the deletes (to wb) of one event's keys. */
static void wb_event(rocksdb_writebatch_t *wb, putlist_t *pl, bool del, int32_t app, int32_t ch,
                     const char *id, size_t idl, int64_t ms, const char *et, size_t etl,
                     const char *ei, size_t eil, const char *tt, size_t ttl, const char *ti,
                     size_t til, uint8_t op, const uint8_t *rec, size_t rec_len, const char *props,
                     size_t props_len)
{
    uint8_t k[RDB_KEY_MAX], tv[8];
    size_t kl = k_time_id(k, k_head(k, 'T', app, ch), ms, id, idl);
    if (del)
        rocksdb_writebatch_delete(wb, (char *)k, kl);
    else
        pl_add(pl, k, kl, rec, rec_len, NULL, 0, true);
    kl = k_head(k, 'E', app, ch);
    memcpy(k + kl, id, idl);
    kl += idl;
    core_put_be64(tv, store__time_key(ms));
    if (del)
        rocksdb_writebatch_delete(wb, (char *)k, kl);
    else
        pl_add(pl, k, kl, tv, 8, NULL, 0, false);
    /* I is key-only: an entity read is one range scan of I plus one
     * MultiGet of the T records (rdb_find). Carrying a record copy here, as
     * the first layout did, doubled the bytes of every event for that. */
    kl = k_time_id(k, k_entity(k, 'I', app, ch, et, etl, ei, eil), ms, id, idl);
    if (del)
        rocksdb_writebatch_delete(wb, (char *)k, kl);
    else
        pl_add(pl, k, kl, NULL, 0, NULL, 0, false);
    if (tt) {
        kl = k_time_id(k, k_entity(k, 'G', app, ch, tt, ttl, ti, til), ms, id, idl);
        if (del)
            rocksdb_writebatch_delete(wb, (char *)k, kl);
        else
            pl_add(pl, k, kl, NULL, 0, NULL, 0, false);
    }
    if (op != STORE_OP_NONE) {
        kl = k_time_id(k, k_entity(k, 'P', app, ch, et, etl, ei, eil), ms, id, idl);
        if (del)
            rocksdb_writebatch_delete(wb, (char *)k, kl);
        else
            pl_add(pl, k, kl, &op, 1, (const uint8_t *)props, props_len, false);
    }
}

/* ---- engine ops ---------------------------------------------------------------- */
/* --sync always: returns once every write this thread finished before the
 * call is fsynced in the WAL. Group commit: the first waiter fsyncs for all
 * writes finished so far; later ones wait for a generation that covers them.
 * Returns 0 or CORE_ERR_IO (then sticky). @locks none held on entry. */
static int rdb_wal_sync_wait(store_t *s)
{
    rdb_t *r = s->impl;
    if (s->opts.sync != STORE_SYNC_ALWAYS)
        return 0;
    int err = 0;
    pthread_mutex_lock(&r->gc_mu);
    uint64_t mine = ++r->gen_written;
    while (r->gen_synced < mine && !err) {
        if (r->gc_syncing) {
            pthread_cond_wait(&r->gc_cv, &r->gc_mu);
            continue;
        }
        r->gc_syncing = true;
        uint64_t target = r->gen_written;
        pthread_mutex_unlock(&r->gc_mu);
        char *e = NULL;
        rocksdb_flush_wal(r->db, 1, &e);
        pthread_mutex_lock(&r->gc_mu);
        r->gc_syncing = false;
        if (e) {
            CORE_ERROR("store", "WAL fsync failed: %s", e);
            rocksdb_free(e);
            int expect = 0;
            atomic_compare_exchange_strong(&r->sticky, &expect, CORE_ERR_IO);
        } else if (target > r->gen_synced) {
            r->gen_synced = target;
        }
        pthread_cond_broadcast(&r->gc_cv);
    }
    if (atomic_load(&r->sticky))
        err = CORE_ERR_IO; /* an fsync failed: nothing after it is durable */
    pthread_mutex_unlock(&r->gc_mu);
    return err;
}

static int rdb_commit(store_t *s, store_batch_t *b, store_put_result_t *res, char *errstr,
                      size_t errstr_size)
{
    rdb_t *r = s->impl;
    rdb_thread_enter();
    int err = atomic_load(&r->sticky);
    if (err)
        return core_errf(err, errstr, errstr_size, "the store refuses writes after an error");
    unsigned *st = core_xmalloc((b->nev ? b->nev : 1) * sizeof *st);
    size_t nst = 0;
    for (size_t i = 0; i < b->nev; i++)
        st[i] = stripe_of(b->ev[i].app, b->ev[i].ch, b->ev[i].id);
    qsort(st, b->nev, sizeof *st, cmp_uint);
    for (size_t i = 0; i < b->nev; i++)
        if (i == 0 || st[i] != st[i - 1])
            st[nst++] = st[i];
    /* eff[i]: the record that event i's id stands for after the check */
    const uint8_t **eff = core_xmalloc((b->nev ? b->nev : 1) * sizeof *eff);
    size_t *efflen = core_xmalloc((b->nev ? b->nev : 1) * sizeof *efflen);
    uint8_t **fetched = core_xcalloc(b->nev ? b->nev : 1, sizeof *fetched);
    bool conflict = false;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    putlist_t pl;
    memset(&pl, 0, sizeof pl);
    core_buf_init(&pl.keys);
    core_buf_init(&pl.vals);

    for (size_t i = 0; i < nst; i++)
        pthread_mutex_lock(&r->stripes[st[i]]);
    /* every id not staged earlier in this batch: checked in one MultiGet */
    {
        const store__staged_t **q = core_xmalloc((b->nev ? b->nev : 1) * sizeof *q);
        uint8_t **qrec = core_xmalloc((b->nev ? b->nev : 1) * sizeof *qrec);
        size_t *qlen = core_xcalloc(b->nev ? b->nev : 1, sizeof *qlen), nq = 0, bad = 0;
        for (size_t i = 0; i < b->nev; i++)
            if (b->ev[i].prior < 0)
                q[nq++] = &b->ev[i];
        err = rdb_get_recs(r, nq, q, qrec, qlen, &bad);
        for (size_t j = 0, i = 0; j < nq; j++) {
            while (b->ev[i].prior >= 0)
                i++;
            fetched[i] = qrec[j];
            efflen[i] = qlen[j];
            i++;
        }
        if (err)
            core_errf(err, errstr, errstr_size, "reading event %s: %s", q[bad]->id,
                      core_strerror(err));
        free(q);
        free(qrec);
        free(qlen);
        if (err)
            goto unlock;
    }
    for (size_t i = 0; i < b->nev; i++) {
        store__staged_t *e = &b->ev[i];
        if (e->prior >= 0) {
            eff[i] = eff[e->prior];
            efflen[i] = efflen[e->prior];
            res[i].status =
                store__rec_same(eff[i], efflen[i], e) ? STORE_PUT_DUPLICATE : STORE_PUT_CONFLICT;
        } else if (!fetched[i]) {
            eff[i] = e->rec;
            efflen[i] = e->rec_len;
            res[i].status = STORE_PUT_CREATED;
        } else {
            eff[i] = fetched[i];
            res[i].status = store__rec_same(fetched[i], efflen[i], e) ? STORE_PUT_DUPLICATE
                                                                       : STORE_PUT_CONFLICT;
        }
        if (res[i].status == STORE_PUT_CONFLICT)
            conflict = true;
        if (res[i].status == STORE_PUT_CREATED)
            wb_event(wb, &pl, false, e->app, e->ch, e->id, strlen(e->id), e->time_ms, e->etype,
                     strlen(e->etype), e->eid, strlen(e->eid), e->ttype,
                     e->ttype ? strlen(e->ttype) : 0, e->tid, e->tid ? strlen(e->tid) : 0, e->op,
                     e->rec, e->rec_len, e->props, strlen(e->props));
    }
    if (conflict && (b->flags & STORE_BATCH_ALL_OR_NOTHING)) {
        err = core_errf(CORE_ERR_CONFLICT, errstr, errstr_size,
                        "an eventId of the batch exists with different content");
        goto unlock;
    }
    pl_flush(&pl, wb); /* the events' puts, in key order */
    for (size_t i = 0; i < b->nkv; i++) {
        store__kvop_t *op = &b->kv[i];
        uint8_t k[1 + STORE_KV_KEY_MAX];
        k[0] = 'K';
        memcpy(k + 1, op->key, op->klen);
        if (op->val)
            rocksdb_writebatch_put(wb, (char *)k, op->klen + 1, (char *)op->val, op->vlen);
        else
            rocksdb_writebatch_delete(wb, (char *)k, op->klen + 1);
    }
    if (rocksdb_writebatch_count(wb) > 0) {
        char *e = NULL;
        rocksdb_write(r->db, r->wo, wb, &e);
        if (e) {
            err = io_err(r, e, errstr, errstr_size, "write");
            int expect = 0;
            atomic_compare_exchange_strong(&r->sticky, &expect, CORE_ERR_IO);
        }
    }
unlock:
    for (size_t i = nst; i-- > 0;)
        pthread_mutex_unlock(&r->stripes[st[i]]);
    if ((err == 0 || err == CORE_ERR_CONFLICT) && rdb_wal_sync_wait(s) != 0)
        err = core_errf(CORE_ERR_IO, errstr, errstr_size, "WAL fsync failed");
    rocksdb_writebatch_destroy(wb);
    pl_fini(&pl);
    for (size_t i = 0; i < b->nev; i++)
        free(fetched[i]);
    free(fetched);
    free(eff);
    free(efflen);
    free(st);
    return err;
}

static int rdb_get(store_t *s, int32_t app, int32_t ch, const char *id, uint8_t **rec, size_t *len)
{
    rdb_t *r = s->impl;
    return rdb_get_rec(r, r->ro, app, ch, id, strlen(id), rec, len);
}

static int rdb_del(store_t *s, int32_t app, int32_t ch, const char *id)
{
    rdb_t *r = s->impl;
    int err = atomic_load(&r->sticky);
    if (err)
        return err;
    unsigned stripe = stripe_of(app, ch, id);
    uint8_t *rec;
    size_t len;
    size_t idl = strlen(id);
    pthread_mutex_lock(&r->stripes[stripe]);
    err = rdb_get_rec(r, r->ro, app, ch, id, idl, &rec, &len);
    if (err)
        goto unlock;
    core_slice_t et, ei, tt, ti;
    uint8_t op;
    int64_t ms;
    if ((err = store__rec_keys(rec, len, &et, &ei, &tt, &ti, &op, &ms)) == 0) {
        rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
        wb_event(wb, NULL, true, app, ch, id, idl, ms, (const char *)et.ptr, (size_t)et.len,
                 (const char *)ei.ptr, (size_t)ei.len, tt.len >= 0 ? (const char *)tt.ptr : NULL,
                 tt.len >= 0 ? (size_t)tt.len : 0, (const char *)ti.ptr,
                 ti.len >= 0 ? (size_t)ti.len : 0, op, NULL, 0, NULL, 0);
        char *e = NULL;
        rocksdb_write(r->db, r->wo, wb, &e);
        rocksdb_writebatch_destroy(wb);
        if (e) {
            err = io_err(r, e, NULL, 0, "delete");
            int expect = 0;
            atomic_compare_exchange_strong(&r->sticky, &expect, CORE_ERR_IO);
        }
    }
    free(rec);
unlock:
    pthread_mutex_unlock(&r->stripes[stripe]);
    if (err == 0 && rdb_wal_sync_wait(s) != 0)
        err = CORE_ERR_IO;
    return err;
}

/* Records fetched per MultiGet when an index (I, G) is scanned. */
#define RDB_FIND_CHUNK 64

static int rdb_find(store_t *s, int32_t app, int32_t ch, const store_find_t *f, store_event_cb cb,
                    void *opaque, int64_t *count)
{
    rdb_t *r = s->impl;
    rdb_thread_enter();
    uint8_t lo[RDB_KEY_MAX], hi[RDB_KEY_MAX];
    size_t pl;
    char tag;
    const char *names[4] = {f->entity_type, f->entity_id, f->target_entity_type,
                            f->target_entity_id};
    for (int i = 0; i < 4; i++)
        if (names[i] && strlen(names[i]) > STORE_NAME_MAX)
            return 0; /* longer than any stored name: nothing matches */
    if (f->entity_type && f->entity_id) {
        tag = 'I';
        pl = k_entity(lo, 'I', app, ch, f->entity_type, strlen(f->entity_type), f->entity_id,
                      strlen(f->entity_id));
    } else if (f->target_entity_type && f->target_entity_id) {
        tag = 'G';
        pl = k_entity(lo, 'G', app, ch, f->target_entity_type, strlen(f->target_entity_type),
                      f->target_entity_id, strlen(f->target_entity_id));
    } else {
        tag = 'T';
        pl = k_head(lo, 'T', app, ch);
    }
    memcpy(hi, lo, pl);
    core_put_be64(lo + pl, store__time_key(f->start_ms));
    core_put_be64(hi + pl, store__time_key(f->until_ms));

    /* T values are records: the iterator's implicit snapshot is enough. I
     * and G entries are keys only: the records' MultiGets read the same
     * snapshot as the index scan. */
    const rocksdb_snapshot_t *snap = tag != 'T' ? rocksdb_create_snapshot(r->db) : NULL;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    if (snap)
        rocksdb_readoptions_set_snapshot(ro, snap);
    rocksdb_readoptions_set_iterate_lower_bound(ro, (char *)lo, pl + 8);
    rocksdb_readoptions_set_iterate_upper_bound(ro, (char *)hi, pl + 8);
    rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, ro);
    core_buf_t scratch;
    core_buf_init(&scratch);
    int err = 0;
    bool stop = false;
    /* index scans: T keys of the next chunk of entries */
    uint8_t *tkeys = tag != 'T' ? core_xmalloc(RDB_FIND_CHUNK * (9 + 8 + STORE_EVENT_ID_MAX)) : NULL;
    const char *kp[RDB_FIND_CHUNK];
    size_t kls[RDB_FIND_CHUNK];
    rocksdb_pinnableslice_t *vals[RDB_FIND_CHUNK] = {0};
    char *errs[RDB_FIND_CHUNK] = {0};
    if (f->reversed)
        rocksdb_iter_seek_to_last(it);
    else
        rocksdb_iter_seek_to_first(it);
    while (!stop && rocksdb_iter_valid(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        if (kl < pl + 8 || kl - pl - 8 > STORE_EVENT_ID_MAX || kl - pl - 8 == 0) {
            err = CORE_ERR_CORRUPT;
            break;
        }
        store_event_t ev;
        if (tag == 'T') {
            const char *iv = rocksdb_iter_value(it, &vl);
            err = store__rec_decode((const uint8_t *)iv, vl, (const char *)k + pl + 8,
                                    kl - pl - 8, &ev, &scratch);
            if (err)
                break;
            if (store__find_match(f, &ev)) {
                (*count)++;
                if (cb(&ev, opaque) || (f->limit >= 0 && *count >= f->limit))
                    break;
            }
            if (f->reversed)
                rocksdb_iter_prev(it);
            else
                rocksdb_iter_next(it);
            continue;
        }
        /* I or G: gather a chunk of entries (no more than the limit still
         * needs, if every one matches), then fetch their records at once */
        size_t want = RDB_FIND_CHUNK;
        if (f->limit >= 0 && (int64_t)want > f->limit - *count)
            want = (size_t)(f->limit - *count);
        size_t n = 0;
        while (n < want && rocksdb_iter_valid(it)) {
            k = (const uint8_t *)rocksdb_iter_key(it, &kl);
            if (kl < pl + 8 || kl - pl - 8 > STORE_EVENT_ID_MAX || kl - pl - 8 == 0) {
                err = CORE_ERR_CORRUPT;
                break;
            }
            uint8_t *tk = tkeys + n * (9 + 8 + STORE_EVENT_ID_MAX);
            size_t tkl = k_head(tk, 'T', app, ch);
            memcpy(tk + tkl, k + pl, kl - pl);
            kp[n] = (const char *)tk;
            kls[n++] = tkl + kl - pl;
            if (f->reversed)
                rocksdb_iter_prev(it);
            else
                rocksdb_iter_next(it);
        }
        if (err || n == 0)
            break;
        rdb_mget(r, ro, n, kp, kls, vals, errs);
        for (size_t j = 0; j < n && !err && !stop; j++) {
            const char *v;
            size_t vl2;
            err = rdb_mget_value(vals, errs, j, &v, &vl2);
            if (!err && !v)
                err = CORE_ERR_CORRUPT; /* index entry without its record */
            if (!err) {
                err = store__rec_decode((const uint8_t *)v, vl2, kp[j] + 17, kls[j] - 17, &ev,
                                        &scratch);
                if (!err && store__find_match(f, &ev)) {
                    (*count)++;
                    if (cb(&ev, opaque) || (f->limit >= 0 && *count >= f->limit))
                        stop = true;
                }
            }
        }
        rdb_mget_release(n, vals, errs);
        if (err)
            break;
    }
    if (!err)
        err = iter_err(r, it);
    free(tkeys);
    core_buf_fini(&scratch);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (snap)
        rocksdb_release_snapshot(r->db, snap);
    return err;
}

static int rdb_props_scan(store_t *s, int32_t app, int32_t ch, const char *etype, const char *eid,
                          store__propev_cb cb, void *opaque)
{
    rdb_t *r = s->impl;
    uint8_t p[RDB_KEY_MAX];
    size_t tl = strlen(etype);
    if (tl > STORE_NAME_MAX || (eid && strlen(eid) > STORE_NAME_MAX))
        return 0;
    size_t pl = k_str(p, k_head(p, 'P', app, ch), etype, tl);
    size_t etend = pl;
    if (eid)
        pl = k_str(p, pl, eid, strlen(eid));
    rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, r->ro);
    int err = 0;
    for (rocksdb_iter_seek(it, (char *)p, pl); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        if (kl < pl || memcmp(k, p, pl) != 0)
            break;
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        if (kl < etend + 2) {
            err = CORE_ERR_CORRUPT;
            break;
        }
        size_t il = (size_t)k[etend] << 8 | k[etend + 1];
        size_t o = etend + 2 + il;
        if (kl < o + 8 || vl < 1) {
            err = CORE_ERR_CORRUPT;
            break;
        }
        store__propev_t pe = {
            .eid = (const char *)k + etend + 2,
            .eid_len = il,
            .time_ms = store__time_unkey(core_be64(k + o)),
            .id = (const char *)k + o + 8,
            .id_len = kl - o - 8,
            .op = v[0],
            .props = (const char *)v + 1,
            .props_len = vl - 1,
        };
        if (cb(&pe, opaque))
            break;
    }
    if (!err)
        err = iter_err(r, it);
    rocksdb_iter_destroy(it);
    return err;
}

static int rdb_kv_get(store_t *s, const void *key, size_t klen, void **val, size_t *vlen)
{
    rdb_t *r = s->impl;
    uint8_t k[1 + STORE_KV_KEY_MAX];
    k[0] = 'K';
    memcpy(k + 1, key, klen);
    char *e = NULL;
    size_t vl;
    char *v = rocksdb_get(r->db, r->ro, (char *)k, klen + 1, &vl, &e);
    if (e)
        return io_err(r, e, NULL, 0, "get");
    if (!v)
        return CORE_ERR_NOT_FOUND;
    *val = core_trymalloc(vl ? vl : 1);
    if (!*val) {
        rocksdb_free(v);
        return CORE_ERR_NOMEM;
    }
    memcpy(*val, v, vl);
    *vlen = vl;
    rocksdb_free(v);
    return 0;
}

static int rdb_kv_scan(store_t *s, const void *prefix, size_t plen, store_kv_cb cb, void *opaque)
{
    rdb_t *r = s->impl;
    uint8_t p[1 + STORE_KV_KEY_MAX];
    if (plen > STORE_KV_KEY_MAX)
        return 0;
    p[0] = 'K';
    memcpy(p + 1, prefix, plen);
    rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, r->ro);
    for (rocksdb_iter_seek(it, (char *)p, plen + 1); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl < plen + 1 || memcmp(k, p, plen + 1) != 0)
            break;
        const char *v = rocksdb_iter_value(it, &vl);
        if (cb(k + 1, kl - 1, v, vl, opaque))
            break;
    }
    int err = iter_err(r, it);
    rocksdb_iter_destroy(it);
    return err;
}

static int rdb_data_delete(store_t *s, int32_t app, int32_t ch)
{
    rdb_t *r = s->impl;
    static const char tags[] = "TEIGP";
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    for (const char *t = tags; *t; t++) {
        uint8_t lo[9], hi[9];
        size_t n;
        if (ch >= 0) {
            n = k_head(lo, *t, app, ch);
            k_head(hi, *t, app, ch + 1);
        } else {
            n = 5;
            k_head(lo, *t, app, 0);
            k_head(hi, *t, app + 1, 0);
        }
        rocksdb_writebatch_delete_range(wb, (char *)lo, n, (char *)hi, n);
    }
    char *e = NULL;
    rocksdb_write(r->db, r->wo, wb, &e);
    rocksdb_writebatch_destroy(wb);
    return e ? io_err(r, e, NULL, 0, "delete range") : rdb_wal_sync_wait(s);
}

/* ---- check ------------------------------------------------------------------------ */
/* Reads key k under ro: 1 found (value copied into *v when v != NULL, caller
 * frees), 0 absent, -1 error. */
static int rdb_probe(rdb_t *r, const rocksdb_readoptions_t *ro, const uint8_t *k, size_t kl,
                     char **v, size_t *vl)
{
    char *e = NULL;
    size_t n;
    char *val = rocksdb_get(r->db, ro, (const char *)k, kl, &n, &e);
    if (e) {
        rocksdb_free(e);
        return -1;
    }
    if (!val)
        return 0;
    if (v) {
        *v = val;
        *vl = n;
    } else {
        rocksdb_free(val);
    }
    return 1;
}

static void hexid(char *out, size_t n, const uint8_t *id, size_t idl)
{
    snprintf(out, n, "%.*s", (int)(idl > 64 ? 64 : idl), (const char *)id);
}

/* T record: decodes and has its E, I, [G], [P] entries. */
static void check_t(rdb_t *r, const rocksdb_readoptions_t *ro, const uint8_t *k, size_t kl,
                    const uint8_t *v, size_t vl, store_check_t *rep)
{
    char idtxt[72];
    if (kl < 9 + 8 + 1 || kl > 9 + 8 + STORE_EVENT_ID_MAX) {
        store__check_problem(rep, "T key of bad length %zu", kl);
        return;
    }
    int32_t app = (int32_t)core_be32(k + 1), ch = (int32_t)core_be32(k + 5);
    int64_t kt = store__time_unkey(core_be64(k + 9));
    const char *id = (const char *)k + 17;
    size_t idl = kl - 17;
    hexid(idtxt, sizeof idtxt, k + 17, idl);
    core_slice_t et, ei, tt, ti;
    uint8_t op;
    int64_t t;
    if (store__rec_keys(v, vl, &et, &ei, &tt, &ti, &op, &t) != 0) {
        store__check_problem(rep, "app %d ch %d event %s: record does not decode", app, ch, idtxt);
        return;
    }
    rep->events++;
    if (t != kt)
        store__check_problem(rep, "app %d ch %d event %s: record time %lld, key time %lld", app, ch,
                             idtxt, (long long)t, (long long)kt);
    uint8_t x[RDB_KEY_MAX];
    size_t xl = k_head(x, 'E', app, ch);
    memcpy(x + xl, id, idl);
    xl += idl;
    char *ev = NULL;
    size_t evl;
    int rc = rdb_probe(r, ro, x, xl, &ev, &evl);
    if (rc != 1 || evl != 8 || store__time_unkey(core_be64((uint8_t *)ev)) != kt)
        store__check_problem(rep, "app %d ch %d event %s: id entry (E) %s", app, ch, idtxt,
                             rc == 1 ? "points elsewhere" : "missing");
    if (rc == 1)
        rocksdb_free(ev);
    if ((size_t)et.len > STORE_NAME_MAX || (size_t)ei.len > STORE_NAME_MAX ||
        (tt.len >= 0 && ((size_t)tt.len > STORE_NAME_MAX || (size_t)ti.len > STORE_NAME_MAX))) {
        store__check_problem(rep, "app %d ch %d event %s: names over the limit", app, ch, idtxt);
        return;
    }
    xl = k_time_id(x,
                   k_entity(x, 'I', app, ch, (const char *)et.ptr, (size_t)et.len,
                            (const char *)ei.ptr, (size_t)ei.len),
                   kt, id, idl);
    if (rdb_probe(r, ro, x, xl, NULL, NULL) != 1)
        store__check_problem(rep, "app %d ch %d event %s: entity entry (I) missing", app, ch,
                             idtxt);
    if (tt.len >= 0) {
        xl = k_time_id(x,
                       k_entity(x, 'G', app, ch, (const char *)tt.ptr, (size_t)tt.len,
                                (const char *)ti.ptr, (size_t)ti.len),
                       kt, id, idl);
        if (rdb_probe(r, ro, x, xl, NULL, NULL) != 1)
            store__check_problem(rep, "app %d ch %d event %s: target entry (G) missing", app, ch,
                                 idtxt);
    }
    if (op != STORE_OP_NONE) {
        xl = k_time_id(x,
                       k_entity(x, 'P', app, ch, (const char *)et.ptr, (size_t)et.len,
                                (const char *)ei.ptr, (size_t)ei.len),
                       kt, id, idl);
        char *pv = NULL;
        size_t pvl;
        rc = rdb_probe(r, ro, x, xl, &pv, &pvl);
        if (rc != 1 || pvl < 1 || (uint8_t)pv[0] != op)
            store__check_problem(rep, "app %d ch %d event %s: property entry (P) %s", app, ch,
                                 idtxt, rc == 1 ? "has another op" : "missing");
        if (rc == 1)
            rocksdb_free(pv);
    }
}

/* I/G/P entry: parses and points at a record that agrees with it. */
static void check_index(rdb_t *r, const rocksdb_readoptions_t *ro, const uint8_t *k, size_t kl,
                        const uint8_t *v, size_t vl, store_check_t *rep)
{
    char tag = (char)k[0];
    rep->index_entries++;
    if (kl < 9 + 2) {
        store__check_problem(rep, "%c key of bad length %zu", tag, kl);
        return;
    }
    int32_t app = (int32_t)core_be32(k + 1), ch = (int32_t)core_be32(k + 5);
    size_t o = 9;
    size_t al = (size_t)k[o] << 8 | k[o + 1];
    const uint8_t *a = k + o + 2;
    o += 2 + al;
    if (o + 2 > kl) {
        store__check_problem(rep, "%c key truncated", tag);
        return;
    }
    size_t bl = (size_t)k[o] << 8 | k[o + 1];
    const uint8_t *bb = k + o + 2;
    o += 2 + bl;
    if (o + 8 + 1 > kl || kl - o - 8 > STORE_EVENT_ID_MAX) {
        store__check_problem(rep, "%c key truncated", tag);
        return;
    }
    uint8_t x[RDB_KEY_MAX];
    size_t xl = k_head(x, 'T', app, ch);
    memcpy(x + xl, k + o, kl - o);
    xl += kl - o;
    char idtxt[72];
    hexid(idtxt, sizeof idtxt, k + o + 8, kl - o - 8);
    char *rec = NULL;
    size_t rl;
    if (rdb_probe(r, ro, x, xl, &rec, &rl) != 1) {
        store__check_problem(rep, "app %d ch %d: %c entry for event %s without its record", app, ch,
                             tag, idtxt);
        return;
    }
    core_slice_t et, ei, tt, ti;
    uint8_t op;
    int64_t t;
    if (store__rec_keys((uint8_t *)rec, rl, &et, &ei, &tt, &ti, &op, &t) == 0) {
        core_slice_t wa = tag == 'G' ? tt : et, wb = tag == 'G' ? ti : ei;
        if (wa.len != (int64_t)al || wb.len != (int64_t)bl || memcmp(wa.ptr, a, al) ||
            memcmp(wb.ptr, bb, bl))
            store__check_problem(rep, "app %d ch %d: %c entry of event %s names another entity",
                                 app, ch, tag, idtxt);
        if (tag == 'I' && vl > 0 && (vl != rl || memcmp(v, rec, rl) != 0))
            store__check_problem(rep, "app %d ch %d: I entry of event %s holds another record", app,
                                 ch, idtxt);
        if (tag == 'P' && (vl < 1 || v[0] != op))
            store__check_problem(rep, "app %d ch %d: P entry of event %s has another op", app, ch,
                                 idtxt);
    }
    rocksdb_free(rec);
}

static int rdb_check(store_t *s, store_check_t *rep)
{
    rdb_t *r = s->impl;
    const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(r->db);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(ro, snap);
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, ro);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        switch (kl ? k[0] : 0) {
        case 'T':
            check_t(r, ro, k, kl, v, vl, rep);
            break;
        case 'E': {
            rep->index_entries++;
            if (kl < 10 || vl != 8) {
                store__check_problem(rep, "E entry of bad size");
                break;
            }
            uint8_t x[RDB_KEY_MAX];
            size_t xl =
                k_time_id(x, k_head(x, 'T', (int32_t)core_be32(k + 1), (int32_t)core_be32(k + 5)),
                          store__time_unkey(core_be64(v)), (const char *)k + 9, kl - 9);
            if (kl - 9 > STORE_EVENT_ID_MAX || rdb_probe(r, ro, x, xl, NULL, NULL) != 1) {
                char idtxt[72];
                hexid(idtxt, sizeof idtxt, k + 9, kl - 9);
                store__check_problem(rep, "E entry of event %s without its record", idtxt);
            }
            break;
        }
        case 'I':
        case 'G':
        case 'P':
            check_index(r, ro, k, kl, v, vl, rep);
            break;
        case 'K':
            rep->kv++;
            break;
        default:
            store__check_problem(rep, "key with unknown tag 0x%02x", kl ? k[0] : 0);
        }
    }
    int err = iter_err(r, it);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (snap)
        rocksdb_release_snapshot(r->db, snap);
    return err;
}

static void *rdb_syncer(void *arg)
{
    store_t *s = arg;
    rdb_t *r = s->impl;
    pthread_mutex_lock(&r->sync_mu);
    while (!r->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (s->opts.sync_interval_ms % 1000) * 1000000;
        ts.tv_sec += s->opts.sync_interval_ms / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&r->sync_cv, &r->sync_mu, &ts);
        if (r->stopping)
            break;
        pthread_mutex_unlock(&r->sync_mu);
        char *e = NULL;
        rocksdb_flush_wal(r->db, 1, &e);
        if (e) {
            CORE_ERROR("store", "WAL fsync failed: %s", e);
            rocksdb_free(e);
            int expect = 0;
            atomic_compare_exchange_strong(&r->sticky, &expect, CORE_ERR_IO);
        }
        pthread_mutex_lock(&r->sync_mu);
    }
    pthread_mutex_unlock(&r->sync_mu);
    return NULL;
}

static void rdb_close(store_t *s)
{
    rdb_t *r = s->impl;
    if (r->syncer_on) {
        pthread_mutex_lock(&r->sync_mu);
        r->stopping = true;
        pthread_cond_signal(&r->sync_cv);
        pthread_mutex_unlock(&r->sync_mu);
        pthread_join(r->syncer, NULL);
    }
    if (r->db) {
        char *e = NULL;
        rocksdb_flush_wal(r->db, 1, &e);
        if (e) {
            CORE_ERROR("store", "WAL fsync at close failed: %s", e);
            rocksdb_free(e);
        }
        if (r->cf)
            rocksdb_column_family_handle_destroy(r->cf);
        rocksdb_close(r->db);
    }
    if (r->wo)
        rocksdb_writeoptions_destroy(r->wo);
    if (r->ro)
        rocksdb_readoptions_destroy(r->ro);
    if (r->opts)
        rocksdb_options_destroy(r->opts);
    if (r->bbo)
        rocksdb_block_based_options_destroy(r->bbo);
    if (r->cache)
        rocksdb_cache_destroy(r->cache);
    for (int i = 0; i < RDB_STRIPES; i++)
        pthread_mutex_destroy(&r->stripes[i]);
    pthread_mutex_destroy(&r->sync_mu);
    pthread_cond_destroy(&r->sync_cv);
    pthread_mutex_destroy(&r->gc_mu);
    pthread_cond_destroy(&r->gc_cv);
    free(r);
}

static const store__engine_t rdb_engine = {
    .name = "rocksdb",
    .close = rdb_close,
    .commit = rdb_commit,
    .get = rdb_get,
    .del = rdb_del,
    .find = rdb_find,
    .props_scan = rdb_props_scan,
    .kv_get = rdb_kv_get,
    .kv_scan = rdb_kv_scan,
    .data_delete = rdb_data_delete,
    .check = rdb_check,
};

int store__rocksdb_open(store_t *s, const char *dir, char *errstr, size_t errstr_size)
{
    rdb_t *r = core_xcalloc(1, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    for (int i = 0; i < RDB_STRIPES; i++)
        pthread_mutex_init(&r->stripes[i], NULL);
    pthread_mutex_init(&r->sync_mu, NULL);
    pthread_cond_init(&r->sync_cv, NULL);
    pthread_mutex_init(&r->gc_mu, NULL);
    pthread_cond_init(&r->gc_cv, NULL);
    s->impl = r;
    s->eng = &rdb_engine;

    r->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(r->opts, 1);
    rocksdb_options_increase_parallelism(r->opts, 2);
    rocksdb_options_set_max_background_jobs(r->opts, 2);
    rocksdb_options_set_compression(r->opts, rocksdb_lz4_compression);
    /* Ingest cost is dominated by memtable (skiplist) inserts, whose price
     * grows with the memtable's size (deeper search, fewer levels in cache):
     * at 64 MiB the skiplist took ~60% of the server's CPU, at 16 MiB about
     * half of that, the rest moving to flushes and compactions, which run on
     * RocksDB's background threads next to the writers (bench: +25-40%
     * events/s on 2 cores at about the same CPU per event). Four buffers let
     * writes go on while two flush. */
    rocksdb_options_set_write_buffer_size(r->opts, 16 << 20);
    rocksdb_options_set_max_write_buffer_number(r->opts, 4);
    /* Leveled compaction sized as RocksDB's tuning guide says for write-heavy
     * loads: L1 as large as L0 at its compaction trigger (4 x 16 MiB), so an
     * L0->L1 compaction (every key of an event lands all over the key space,
     * so each one rewrites most of L1) stays small; L0 and L1 are not
     * compressed (their data is rewritten soon anyway), deeper levels LZ4. */
    rocksdb_options_set_max_bytes_for_level_base(r->opts, 64 << 20);
    rocksdb_options_set_target_file_size_base(r->opts, 16 << 20);
    {
        int levels[7] = {rocksdb_no_compression, rocksdb_no_compression,
                         rocksdb_lz4_compression, rocksdb_lz4_compression,
                         rocksdb_lz4_compression, rocksdb_lz4_compression,
                         rocksdb_lz4_compression};
        rocksdb_options_set_num_levels(r->opts, 7);
        rocksdb_options_set_compression_per_level(r->opts, levels, 7);
    }
    rocksdb_options_set_max_open_files(r->opts, 512);

    /* Most id checks are for new ids: a memtable bloom filter answers them
     * without a skiplist search. */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(r->opts, 0.02);
    rocksdb_options_set_memtable_whole_key_filtering(r->opts, 1);
    r->cache = rocksdb_cache_create_lru(128 << 20);
    r->bbo = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(r->bbo, r->cache);
    rocksdb_block_based_options_set_filter_policy(r->bbo, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(r->opts, r->bbo);

    char *e = NULL;
    const char *cfname = "default";
    const rocksdb_options_t *cfopts = r->opts;
    r->db = rocksdb_open_column_families(r->opts, dir, 1, &cfname, &cfopts, &r->cf, &e);
    if (e) {
        int err = strstr(e, "lock") || strstr(e, "LOCK") ? CORE_ERR_STATE : CORE_ERR_IO;
        core_errf(err, errstr, errstr_size, "%s%s", e,
                  err == CORE_ERR_STATE ? " (another process owns this store)" : "");
        rocksdb_free(e);
        r->db = NULL;
        rdb_close(s);
        s->impl = NULL;
        return err;
    }
    r->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(r->wo, 0);
    r->ro = rocksdb_readoptions_create();
    if (s->opts.sync == STORE_SYNC_INTERVAL) {
        if (pthread_create(&r->syncer, NULL, rdb_syncer, s) == 0)
            r->syncer_on = true;
    }
    CORE_INFO("store", "opened rocksdb store %s (sync %s)", dir,
              s->opts.sync == STORE_SYNC_ALWAYS ? "always" : "interval");
    return 0;
}
