/*
 * broker_offsets — committed offsets in the internal __consumer_offsets log.
 * Format, durability and compaction: broker_offsets.h.
 */
#include "broker/broker_offsets.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core_alloc.h"
#include "core/core_buf.h"
#include "core/core_crc.h"
#include "core/core_fs.h"
#include "core/core_log.h"
#include "core/core_time.h"

#define MOD "offsets"

/* RecordBatch v2 header size and field positions (kafka-protocol.md §4.1). */
#define RB_HEADER 61
#define RB_OFF_LENGTH 8
#define RB_OFF_MAGIC 16
#define RB_OFF_CRC 17
#define RB_OFF_ATTR 21
#define RB_OFF_LAST_DELTA 23
#define RB_OFF_COUNT 57
/* Records per batch when compaction rewrites the live set. */
#define COMPACT_BATCH 1000

typedef struct pending {
    struct pending *next;
    int64_t log_offset;
    char *group, *topic;
    int32_t partition;
    bool tombstone;
    broker_cg_offset_t off;   /* off.metadata is owned (char *) */
} pending_t;

struct broker_offsets {
    broker_cg_t *cg;
    char *dir;                /* DATA/groups */
    char *log_dir;            /* DATA/groups/__consumer_offsets-0 */
    broker_log_t *log;
    broker_log_conf_t log_conf;
    int64_t load_next;        /* next log offset to replay */
    bool loaded;
    int64_t records;          /* records in the log (replayed + appended) */
    pending_t *pend_head, **pend_tail;
    int npending;
    broker_offsets_applied_fn *hook;
    void *hook_arg;
};

/* ---- small file helpers --------------------------------------------------------- */
static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- record encoding ------------------------------------------------------------- */
static void key_encode(core_buf_t *b, const char *group, const char *topic, int32_t partition)
{
    core_wr_i16(b, 1);
    core_wr_str(b, group, (int64_t)strlen(group));
    core_wr_str(b, topic, (int64_t)strlen(topic));
    core_wr_i32(b, partition);
}

static void value_encode(core_buf_t *b, const broker_cg_offset_t *off, size_t metadata_len)
{
    core_wr_i16(b, 3);
    core_wr_i64(b, off->offset);
    core_wr_i32(b, off->leader_epoch);
    core_wr_str(b, off->metadata ? off->metadata : "", (int64_t)metadata_len);
    core_wr_i64(b, off->commit_ts);
}

/* A batch under construction: header placeholder, then records. */
typedef struct batch {
    core_buf_t buf;
    int32_t count;
    int64_t base_ts;
    core_buf_t rec;           /* scratch for one record body */
    core_buf_t kv;            /* scratch for key / value */
} batch_t;

static void batch_begin(batch_t *bt, int64_t ts)
{
    core_buf_init(&bt->buf);
    core_buf_init(&bt->rec);
    core_buf_init(&bt->kv);
    bt->count = 0;
    bt->base_ts = ts;
    uint8_t zero[RB_HEADER] = {0};
    core_wr_raw(&bt->buf, zero, sizeof zero);
}

/* value_len -1 = null (tombstone). */
static void batch_add(batch_t *bt, const void *key, size_t key_len, const void *value,
                      int64_t value_len)
{
    core_buf_reset(&bt->rec);
    core_wr_i8(&bt->rec, 0);          /* attributes */
    core_wr_varlong(&bt->rec, 0);     /* timestamp delta */
    core_wr_varint(&bt->rec, bt->count);
    core_wr_varint(&bt->rec, (int32_t)key_len);
    core_wr_raw(&bt->rec, key, key_len);
    core_wr_varint(&bt->rec, (int32_t)value_len);
    if (value_len > 0)
        core_wr_raw(&bt->rec, value, (size_t)value_len);
    core_wr_varint(&bt->rec, 0);      /* headers */
    core_wr_varint(&bt->buf, (int32_t)bt->rec.len);
    core_wr_raw(&bt->buf, bt->rec.data, bt->rec.len);
    bt->count++;
}

static void batch_add_commit(batch_t *bt, const char *group, const char *topic, int32_t partition,
                             const broker_cg_offset_t *off, size_t metadata_len)
{
    core_buf_reset(&bt->kv);
    key_encode(&bt->kv, group, topic, partition);
    size_t klen = bt->kv.len;
    if (off)
        value_encode(&bt->kv, off, metadata_len);
    batch_add(bt, bt->kv.data, klen, bt->kv.data + klen, off ? (int64_t)(bt->kv.len - klen) : -1);
}

/* Fills the header; returns the finished batch in bt->buf. */
static void batch_finish(batch_t *bt)
{
    uint8_t *h = bt->buf.data;
    core_put_be64(h, 0);                                         /* baseOffset: the log sets it */
    core_put_be32(h + RB_OFF_LENGTH, (uint32_t)(bt->buf.len - 12)); /* batchLength */
    core_put_be32(h + 12, (uint32_t)-1);                          /* partitionLeaderEpoch */
    h[RB_OFF_MAGIC] = 2;
    h[RB_OFF_ATTR] = 0;
    h[RB_OFF_ATTR + 1] = 0;
    core_put_be32(h + RB_OFF_LAST_DELTA, (uint32_t)(bt->count - 1));
    core_put_be64(h + 27, (uint64_t)bt->base_ts);                 /* baseTimestamp */
    core_put_be64(h + 35, (uint64_t)bt->base_ts);                 /* maxTimestamp */
    core_put_be64(h + 43, (uint64_t)-1);                          /* producerId */
    h[51] = 0xff;                                                 /* producerEpoch -1 */
    h[52] = 0xff;
    core_put_be32(h + 53, (uint32_t)-1);                          /* baseSequence */
    core_put_be32(h + RB_OFF_COUNT, (uint32_t)bt->count);
    core_put_be32(h + RB_OFF_CRC, core_crc32c(0, h + RB_OFF_ATTR, bt->buf.len - RB_OFF_ATTR));
}

static void batch_fini(batch_t *bt)
{
    core_buf_fini(&bt->buf);
    core_buf_fini(&bt->rec);
    core_buf_fini(&bt->kv);
}

/* ---- record decoding ---------------------------------------------------------------- */
int broker_offsets_record_decode(core_slice_t key, core_slice_t value, broker_offsets_record_t *r)
{
    memset(r, 0, sizeof *r);
    if (key.len < 2)
        return CORE_ERR_MALFORMED;
    core_rd_t rd;
    core_rd_init(&rd, key.ptr, (size_t)key.len);
    int16_t kv = core_rd_i16(&rd);
    if (kv != 0 && kv != 1)
        return CORE_OK; /* group metadata (2) or newer: not ours to interpret */
    r->is_commit = true;
    r->group = core_rd_str(&rd);
    r->topic = core_rd_str(&rd);
    r->partition = core_rd_i32(&rd);
    if (rd.err)
        return CORE_ERR_MALFORMED;
    r->expire_ts = -1;
    r->leader_epoch = -1;
    if (value.len < 0) {
        r->tombstone = true;
        return CORE_OK;
    }
    core_rd_init(&rd, value.ptr, (size_t)value.len);
    int16_t vv = core_rd_i16(&rd);
    r->offset = core_rd_i64(&rd);
    if (vv >= 3)
        r->leader_epoch = core_rd_i32(&rd);
    r->metadata = core_rd_str(&rd);
    r->commit_ts = core_rd_i64(&rd);
    if (vv == 1)
        r->expire_ts = core_rd_i64(&rd);
    if (rd.err || vv < 0 || vv == 2 || vv > 3)
        return CORE_ERR_MALFORMED;
    return CORE_OK;
}

/* Applies one decoded record to the coordinator. */
static void record_apply(broker_offsets_t *o, const broker_offsets_record_t *r)
{
    char *g = core_xstrndup((const char *)r->group.ptr, (size_t)r->group.len);
    char *t = core_xstrndup((const char *)r->topic.ptr, (size_t)r->topic.len);
    if (r->tombstone) {
        broker_cg_offset_delete(o->cg, g, t, r->partition);
    } else {
        char *md = core_xstrndup(r->metadata.len > 0 ? (const char *)r->metadata.ptr : "",
                                 r->metadata.len > 0 ? (size_t)r->metadata.len : 0);
        broker_cg_offset_t off = {.offset = r->offset, .leader_epoch = r->leader_epoch,
                                  .commit_ts = r->commit_ts, .expire_ts = r->expire_ts,
                                  .metadata = md};
        broker_cg_offset_put(o->cg, g, t, r->partition, &off);
        free(md);
    }
    free(g);
    free(t);
}

/* Walks the records of one uncompressed batch body (after the 61-byte header). */
static int batch_replay(broker_offsets_t *o, const uint8_t *p, size_t n, int32_t count)
{
    core_rd_t rd;
    core_rd_init(&rd, p, n);
    for (int32_t i = 0; i < count; i++) {
        int32_t len = core_rd_varint(&rd);
        if (rd.err || len < 0 || (size_t)len > core_rd_remain(&rd))
            return CORE_ERR_CORRUPT;
        core_rd_t rr;
        core_rd_init(&rr, core_rd_ptr(&rd), (size_t)len);
        core_rd_skip(&rd, (size_t)len);
        (void)core_rd_i8(&rr);       /* attributes */
        (void)core_rd_varlong(&rr);  /* timestamp delta */
        (void)core_rd_varint(&rr);   /* offset delta */
        core_slice_t key = core_rd_varbytes(&rr);
        core_slice_t value = core_rd_varbytes(&rr);
        if (rr.err || key.len < 0)
            return CORE_ERR_CORRUPT;
        broker_offsets_record_t r;
        if (broker_offsets_record_decode(key, value, &r) != CORE_OK) {
            CORE_WARN(MOD, "skipping an undecodable record in %s", BROKER_OFFSETS_TOPIC);
            continue;
        }
        o->records++;
        if (r.is_commit)
            record_apply(o, &r);
    }
    return rd.err ? CORE_ERR_CORRUPT : CORE_OK;
}

/* ---- open / close ------------------------------------------------------------------- */
static int log_open(const char *dir, const broker_log_conf_t *conf, broker_log_t **log,
                    char *errstr, size_t errstr_size)
{
    return broker_log_open(dir, conf, log, errstr, errstr_size);
}

int broker_offsets_open(const char *data_dir, broker_cg_t *cg, broker_offsets_t **op,
                        char *errstr, size_t errstr_size)
{
    broker_offsets_t *o = core_xcalloc(1, sizeof *o);
    o->cg = cg;
    o->pend_tail = &o->pend_head;
    size_t n = strlen(data_dir) + 64;
    o->dir = core_xmalloc(n);
    snprintf(o->dir, n, "%s/groups", data_dir);
    o->log_dir = core_xmalloc(n + 32);
    snprintf(o->log_dir, n + 32, "%s/%s-0", o->dir, BROKER_OFFSETS_TOPIC);
    broker_log_conf_default(&o->log_conf);
    o->log_conf.retention_bytes = -1; /* compaction, not retention, bounds this log */
    o->log_conf.retention_ms = -1;
    o->log_conf.segment_bytes = 64LL << 20;

    int rc;
    if (mkdir(o->dir, 0755) != 0 && errno != EEXIST) {
        rc = core_errf(errno, errstr, errstr_size, "mkdir %s: %s", o->dir, strerror(errno));
        goto fail;
    }
    /* Finish or undo an interrupted compaction (see the header). */
    char tmp[4096], old[4096];
    snprintf(tmp, sizeof tmp, "%s.compact", o->log_dir);
    snprintf(old, sizeof old, "%s.old", o->log_dir);
    if (exists(tmp)) {
        CORE_WARN(MOD, "removing unfinished compaction output %s", tmp);
        core_fs_rm_rf(tmp);
    }
    if (exists(old)) {
        if (!exists(o->log_dir)) {
            CORE_WARN(MOD, "restoring %s (crash during compaction swap)", old);
            if (rename(old, o->log_dir) != 0) {
                rc = core_errf(errno, errstr, errstr_size, "rename %s: %s", old, strerror(errno));
                goto fail;
            }
        } else {
            core_fs_rm_rf(old);
        }
        core_fs_fsync_dir(o->dir);
    }
    rc = log_open(o->log_dir, &o->log_conf, &o->log, errstr, errstr_size);
    if (rc)
        goto fail;
    o->load_next = broker_log_start_offset(o->log);
    broker_cg_set_loading(cg, true);
    *op = o;
    return CORE_OK;
fail:
    free(o->dir);
    free(o->log_dir);
    free(o);
    return rc;
}

static void pending_free(pending_t *p)
{
    free(p->group);
    free(p->topic);
    free((char *)p->off.metadata);
    free(p);
}

void broker_offsets_close(broker_offsets_t *o)
{
    if (!o)
        return;
    if (o->log) {
        broker_log_flush(o->log);
        broker_offsets_apply(o);
        broker_log_close(o->log);
    }
    pending_t *p = o->pend_head, *next;
    for (; p; p = next) {
        next = p->next;
        pending_free(p);
    }
    free(o->dir);
    free(o->log_dir);
    free(o);
}

void broker_offsets_set_hook(broker_offsets_t *o, broker_offsets_applied_fn *fn, void *arg)
{
    o->hook = fn;
    o->hook_arg = arg;
}

broker_log_t *broker_offsets_log(broker_offsets_t *o)
{
    return o->log;
}

int broker_offsets_pending(const broker_offsets_t *o)
{
    return o->npending;
}

/* ---- load ---------------------------------------------------------------------------- */
static int count_live(broker_offsets_t *o);

int broker_offsets_load(broker_offsets_t *o, int64_t max_bytes, bool *done, char *errstr,
                        size_t errstr_size)
{
    *done = o->loaded;
    if (o->loaded)
        return CORE_OK;
    int64_t t0 = core_mono_ms();
    int64_t budget = max_bytes;
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = CORE_OK;
    while (budget > 0) {
        int64_t hw = broker_log_high_watermark(o->log);
        if (o->load_next >= hw)
            break;
        broker_log_slice_t sl;
        rc = broker_log_read(o->log, o->load_next, BROKER_OFFSETS_READ_CHUNK, &sl);
        if (rc) {
            core_errf(rc, errstr, errstr_size, "%s: read at offset %lld: %s", BROKER_OFFSETS_TOPIC,
                      (long long)o->load_next, core_strerror(rc));
            goto out;
        }
        if (sl.len <= 0) {
            broker_log_slice_release(&sl);
            break;
        }
        if ((size_t)sl.len > cap) {
            free(buf);
            cap = (size_t)sl.len;
            buf = core_xmalloc(cap);
        }
        ssize_t want = (ssize_t)sl.len;
        ssize_t got = pread(sl.fd, buf, (size_t)sl.len, sl.file_pos);
        broker_log_slice_release(&sl); /* clears sl */
        if (got != want) {
            rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: short read", BROKER_OFFSETS_TOPIC);
            goto out;
        }
        size_t pos = 0;
        while (pos + RB_HEADER <= (size_t)got) {
            const uint8_t *h = buf + pos;
            int64_t base = (int64_t)core_be64(h);
            int32_t blen = (int32_t)core_be32(h + RB_OFF_LENGTH);
            if (blen < RB_HEADER - 12 || pos + 12 + (size_t)blen > (size_t)got)
                break;
            int32_t last_delta = (int32_t)core_be32(h + RB_OFF_LAST_DELTA);
            int32_t count = (int32_t)core_be32(h + RB_OFF_COUNT);
            int16_t attr = (int16_t)(h[RB_OFF_ATTR] << 8 | h[RB_OFF_ATTR + 1]);
            if (base + last_delta >= o->load_next) { /* skip batches already replayed */
                if (attr & 0x7) {
                    CORE_WARN(MOD, "%s: skipping a compressed batch at %lld (we never write one)",
                              BROKER_OFFSETS_TOPIC, (long long)base);
                } else if (batch_replay(o, h + RB_HEADER, (size_t)blen + 12 - RB_HEADER, count)) {
                    rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size,
                                   "%s: undecodable batch at offset %lld", BROKER_OFFSETS_TOPIC,
                                   (long long)base);
                    goto out;
                }
                o->load_next = base + last_delta + 1;
            }
            pos += 12 + (size_t)blen;
        }
        if (pos == 0) {
            rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s: no whole batch at %lld",
                           BROKER_OFFSETS_TOPIC, (long long)o->load_next);
            goto out;
        }
        budget -= (int64_t)pos;
    }
    if (o->load_next >= broker_log_high_watermark(o->log)) {
        o->loaded = true;
        *done = true;
        int live = count_live(o);
        CORE_INFO(MOD, "loaded %lld records of %s (%d committed offsets live)",
                  (long long)o->records, BROKER_OFFSETS_TOPIC, live);
        char e[256];
        if (broker_offsets_maybe_compact(o, false, e, sizeof e))
            CORE_WARN(MOD, "compaction after load failed: %s", e);
        broker_cg_set_loading(o->cg, false);
    }
    (void)t0;
out:
    free(buf);
    return rc;
}

/* ---- append / apply --------------------------------------------------------------------- */
static void pending_push(broker_offsets_t *o, pending_t *p)
{
    p->next = NULL;
    *o->pend_tail = p;
    o->pend_tail = &p->next;
    o->npending++;
}

int broker_offsets_append(broker_offsets_t *o, const broker_cg_commit_req_t *req,
                          int64_t now_wall, int64_t *last_offset)
{
    *last_offset = -1;
    char *group = core_xstrndup((const char *)req->group_id.ptr, (size_t)req->group_id.len);
    batch_t bt;
    batch_begin(&bt, now_wall);
    pending_t *first = NULL, **tail = &first;
    for (int t = 0; t < req->ntopics; t++) {
        const broker_cg_commit_topic_t *ct = &req->topics[t];
        for (int p = 0; p < ct->npartitions; p++) {
            const broker_cg_commit_part_t *cp = &ct->partitions[p];
            if (cp->error_code)
                continue;
            pending_t *pe = core_xcalloc(1, sizeof *pe);
            pe->group = core_xstrdup(group);
            pe->topic = core_xstrndup((const char *)ct->name.ptr, (size_t)ct->name.len);
            pe->partition = cp->partition;
            size_t mlen = cp->metadata.len > 0 ? (size_t)cp->metadata.len : 0;
            pe->off.metadata = core_xstrndup(mlen ? (const char *)cp->metadata.ptr : "", mlen);
            pe->off.offset = cp->offset;
            pe->off.leader_epoch = cp->leader_epoch;
            pe->off.commit_ts = cp->commit_timestamp >= 0 ? cp->commit_timestamp : now_wall;
            pe->off.expire_ts = -1;
            batch_add_commit(&bt, pe->group, pe->topic, pe->partition, &pe->off, mlen);
            *tail = pe;
            tail = &pe->next;
        }
    }
    free(group);
    int rc = CORE_OK;
    if (bt.count == 0)
        goto out;
    batch_finish(&bt);
    int64_t base, last;
    rc = broker_log_append(o->log, bt.buf.data, bt.buf.len, -1, &base, &last);
    if (rc) {
        CORE_ERROR(MOD, "%s: append failed: %s", BROKER_OFFSETS_TOPIC, core_strerror(rc));
        goto out;
    }
    o->records += bt.count;
    for (pending_t *pe = first, *next; pe; pe = next) {
        next = pe->next;
        pe->log_offset = last;
        pending_push(o, pe);
    }
    first = NULL;
    *last_offset = last;
out:
    for (pending_t *pe = first, *next; pe; pe = next) {
        next = pe->next;
        pending_free(pe);
    }
    batch_fini(&bt);
    return rc;
}

int broker_offsets_append_delete(broker_offsets_t *o, const char *group, const char *topic,
                                 int32_t partition, int64_t *last_offset)
{
    batch_t bt;
    batch_begin(&bt, core_wall_ms());
    batch_add_commit(&bt, group, topic, partition, NULL, 0);
    batch_finish(&bt);
    int64_t base;
    int rc = broker_log_append(o->log, bt.buf.data, bt.buf.len, -1, &base, last_offset);
    batch_fini(&bt);
    if (rc)
        return rc;
    o->records++;
    pending_t *pe = core_xcalloc(1, sizeof *pe);
    pe->group = core_xstrdup(group);
    pe->topic = core_xstrdup(topic);
    pe->partition = partition;
    pe->tombstone = true;
    pe->log_offset = *last_offset;
    pending_push(o, pe);
    return CORE_OK;
}

int broker_offsets_apply(broker_offsets_t *o)
{
    int64_t flushed = broker_log_flushed(o->log);
    int n = 0;
    while (o->pend_head && o->pend_head->log_offset < flushed) {
        pending_t *pe = o->pend_head;
        o->pend_head = pe->next;
        if (!o->pend_head)
            o->pend_tail = &o->pend_head;
        o->npending--;
        if (pe->tombstone) {
            broker_cg_offset_delete(o->cg, pe->group, pe->topic, pe->partition);
            if (o->hook)
                o->hook(o->hook_arg, pe->group, pe->topic, pe->partition, NULL);
        } else {
            broker_cg_offset_put(o->cg, pe->group, pe->topic, pe->partition, &pe->off);
            if (o->hook)
                o->hook(o->hook_arg, pe->group, pe->topic, pe->partition, &pe->off);
        }
        pending_free(pe);
        n++;
    }
    return n;
}

/* ---- retention ------------------------------------------------------------------------------ */
static void expire_cb(void *arg, const char *group, const char *topic, int32_t partition,
                      const broker_cg_offset_t *off)
{
    broker_offsets_t *o = arg;
    int64_t last;
    int rc = broker_offsets_append_delete(o, group, topic, partition, &last);
    if (rc)
        CORE_WARN(MOD, "tombstone for %s/%s/%d failed: %s", group, topic, partition,
                  core_strerror(rc));
}

int broker_offsets_expire(broker_offsets_t *o, int64_t now_wall)
{
    if (!o->loaded)
        return 0;
    return broker_cg_expire_offsets(o->cg, now_wall, expire_cb, o);
}

/* ---- compaction ------------------------------------------------------------------------------ */
static void count_cb(void *arg, const char *g, const char *t, int32_t p, const broker_cg_offset_t *off)
{
    (*(int *)arg)++;
}

static int count_live(broker_offsets_t *o)
{
    int n = 0;
    broker_cg_offset_foreach(o->cg, NULL, count_cb, &n);
    return n;
}

typedef struct compact_ctx {
    broker_log_t *log;
    batch_t bt;
    int rc;
    int64_t written;
} compact_ctx_t;

static void compact_flush_batch(compact_ctx_t *c)
{
    if (c->bt.count == 0 || c->rc)
        return;
    batch_finish(&c->bt);
    int64_t base, last;
    c->rc = broker_log_append(c->log, c->bt.buf.data, c->bt.buf.len, -1, &base, &last);
    c->written += c->bt.count;
    batch_fini(&c->bt);
    batch_begin(&c->bt, core_wall_ms());
}

static void compact_cb(void *arg, const char *g, const char *t, int32_t p, const broker_cg_offset_t *off)
{
    compact_ctx_t *c = arg;
    if (c->rc)
        return;
    batch_add_commit(&c->bt, g, t, p, off, strlen(off->metadata));
    if (c->bt.count >= COMPACT_BATCH)
        compact_flush_batch(c);
}

int broker_offsets_maybe_compact(broker_offsets_t *o, bool force, char *errstr, size_t errstr_size)
{
    if (o->npending || !o->loaded)
        return CORE_OK;
    int live = count_live(o);
    if (!force && o->records <= 2LL * live + BROKER_OFFSETS_COMPACT_SLACK)
        return CORE_OK;
    char tmp[4096], old[4096];
    snprintf(tmp, sizeof tmp, "%s.compact", o->log_dir);
    snprintf(old, sizeof old, "%s.old", o->log_dir);
    core_fs_rm_rf(tmp);
    compact_ctx_t c = {0};
    int rc = log_open(tmp, &o->log_conf, &c.log, errstr, errstr_size);
    if (rc)
        return rc;
    batch_begin(&c.bt, core_wall_ms());
    broker_cg_offset_foreach(o->cg, NULL, compact_cb, &c);
    compact_flush_batch(&c);
    batch_fini(&c.bt);
    if (!c.rc)
        c.rc = broker_log_flush(c.log);
    broker_log_close(c.log);
    if (c.rc) {
        core_fs_rm_rf(tmp);
        return core_errf(c.rc, errstr, errstr_size, "writing %s: %s", tmp, core_strerror(c.rc));
    }
    /* The swap: live -> .old, .compact -> live, fsync the directory, drop .old. */
    broker_log_close(o->log);
    o->log = NULL;
    if (rename(o->log_dir, old) != 0 || rename(tmp, o->log_dir) != 0) {
        rc = core_errf(errno, errstr, errstr_size, "compaction swap: %s", strerror(errno));
        if (!exists(o->log_dir) && exists(old))
            rename(old, o->log_dir);
    }
    core_fs_fsync_dir(o->dir);
    if (!rc)
        core_fs_rm_rf(old);
    int rc2 = log_open(o->log_dir, &o->log_conf, &o->log, errstr, errstr_size);
    if (rc2)
        return rc2; /* the log is unusable: commits will fail with storage errors */
    if (!rc) {
        CORE_INFO(MOD, "compacted %s: %lld records -> %lld", BROKER_OFFSETS_TOPIC,
                  (long long)o->records, (long long)c.written);
        o->records = c.written;
    }
    o->load_next = broker_log_end_offset(o->log);
    return rc;
}
