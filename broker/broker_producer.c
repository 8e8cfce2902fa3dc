#include "broker/broker_producer.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_htab.h"
#include "broker/broker_log_int.h"
#include "core/core_alloc.h"
#include "core/core_crc.h"
#include "core/core_err.h"

#define SNAP_MAGIC 0x45505331u /* "EPS1" */

/* One producer: its epoch and its last batches, oldest first in a ring. */
typedef struct pentry {
    hnode_t node; /* first member (broker_htab.h) */
    struct pentry *lru_prev, *lru_next; /* least recently used at the head */
    int64_t producer_id;
    int16_t epoch;
    int64_t ts_ms;
    int n;     /* batches kept, 0..BROKER_PRODUCER_MAX_BATCHES */
    int first; /* ring index of the oldest */
    broker_producer_batch_t batches[BROKER_PRODUCER_MAX_BATCHES];
} pentry_t;

struct broker_producers {
    htab_t tab;
    pentry_t *lru_head, *lru_tail;
};

void broker_producer_batch_read(const uint8_t *p, broker_producer_batch_t *b)
{
    memset(b, 0, sizeof *b);
    b->producer_id = (int64_t)core_be64(p + BROKER_BATCH_OFF_PRODUCER_ID);
    b->epoch = (int16_t)(p[BROKER_BATCH_OFF_PRODUCER_EPOCH] << 8 | p[BROKER_BATCH_OFF_PRODUCER_EPOCH + 1]);
    b->first_seq = (int32_t)core_be32(p + BROKER_BATCH_OFF_BASE_SEQUENCE);
    int64_t delta = (int32_t)core_be32(p + BROKER_BATCH_OFF_LAST_OFFSET_DELTA);
    /* Sequences wrap from INT32_MAX to 0 (the Kafka rule). */
    int64_t last = (int64_t)b->first_seq + delta;
    b->last_seq = (int32_t)(last > INT32_MAX ? last - INT32_MAX - 1 : last);
}

static uint64_t pid_hash(int64_t pid)
{
    return fnv1a(FNV_INIT, &pid, sizeof pid);
}

static pentry_t *lookup(const broker_producers_t *ps, int64_t pid)
{
    if (!ps->tab.nb)
        return NULL;
    uint64_t h = pid_hash(pid);
    for (hnode_t *n = ps->tab.b[h & (ps->tab.nb - 1)]; n; n = n->next)
        if (n->hash == h && ((pentry_t *)n)->producer_id == pid)
            return (pentry_t *)n;
    return NULL;
}

static void lru_unlink(broker_producers_t *ps, pentry_t *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        ps->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        ps->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_tail(broker_producers_t *ps, pentry_t *e)
{
    e->lru_prev = ps->lru_tail;
    e->lru_next = NULL;
    if (ps->lru_tail)
        ps->lru_tail->lru_next = e;
    else
        ps->lru_head = e;
    ps->lru_tail = e;
}

static void entry_drop(broker_producers_t *ps, pentry_t *e)
{
    lru_unlink(ps, e);
    htab_del(&ps->tab, &e->node);
    free(e);
}

broker_producers_t *broker_producers_new(void)
{
    return core_xcalloc(1, sizeof(broker_producers_t));
}

static void producers_clear(broker_producers_t *ps)
{
    while (ps->lru_head)
        entry_drop(ps, ps->lru_head);
}

void broker_producers_free(broker_producers_t *ps)
{
    if (!ps)
        return;
    producers_clear(ps);
    htab_fini(&ps->tab);
    free(ps);
}

size_t broker_producers_count(const broker_producers_t *ps)
{
    return ps->tab.n;
}

/* True when `next` is the sequence right after `last`. */
static bool in_sequence(int32_t last, int32_t next)
{
    return last == INT32_MAX ? next == 0 : next == last + 1;
}

static const broker_producer_batch_t *entry_batch(const pentry_t *e, int i)
{
    return &e->batches[(e->first + i) % BROKER_PRODUCER_MAX_BATCHES];
}

broker_producer_verdict_t broker_producers_check(const broker_producers_t *ps,
                                                 const broker_producer_batch_t *b,
                                                 const broker_producer_batch_t *prev,
                                                 broker_producer_batch_t *dup)
{
    if (b->producer_id == -1)
        return BROKER_PRODUCER_OK;
    if (b->producer_id < 0 || b->epoch < 0 || b->first_seq < 0)
        return BROKER_PRODUCER_INVALID;
    if (prev) {
        if (b->epoch != prev->epoch)
            return b->epoch < prev->epoch ? BROKER_PRODUCER_FENCED : BROKER_PRODUCER_OUT_OF_ORDER;
        return in_sequence(prev->last_seq, b->first_seq) ? BROKER_PRODUCER_OK
                                                         : BROKER_PRODUCER_OUT_OF_ORDER;
    }
    const pentry_t *e = lookup(ps, b->producer_id);
    if (!e || e->n == 0)
        return b->first_seq == 0 ? BROKER_PRODUCER_OK : BROKER_PRODUCER_UNKNOWN;
    if (b->epoch < e->epoch)
        return BROKER_PRODUCER_FENCED;
    if (b->epoch > e->epoch)
        return b->first_seq == 0 ? BROKER_PRODUCER_OK : BROKER_PRODUCER_OUT_OF_ORDER;
    for (int i = 0; i < e->n; i++) {
        const broker_producer_batch_t *k = entry_batch(e, i);
        if (k->first_seq == b->first_seq && k->last_seq == b->last_seq) {
            if (dup)
                *dup = *k;
            return BROKER_PRODUCER_DUPLICATE;
        }
    }
    return in_sequence(entry_batch(e, e->n - 1)->last_seq, b->first_seq)
               ? BROKER_PRODUCER_OK
               : BROKER_PRODUCER_OUT_OF_ORDER;
}

static pentry_t *entry_add(broker_producers_t *ps, int64_t pid, int16_t epoch)
{
    if (ps->tab.n >= BROKER_PRODUCER_MAX_IDS && ps->lru_head)
        entry_drop(ps, ps->lru_head);
    pentry_t *e = core_xcalloc(1, sizeof *e);
    e->producer_id = pid;
    e->epoch = epoch;
    htab_add(&ps->tab, &e->node, pid_hash(pid));
    lru_push_tail(ps, e);
    return e;
}

static void entry_push(pentry_t *e, const broker_producer_batch_t *b)
{
    if (e->n == BROKER_PRODUCER_MAX_BATCHES) {
        e->batches[e->first] = *b; /* overwrite the oldest */
        e->first = (e->first + 1) % BROKER_PRODUCER_MAX_BATCHES;
    } else {
        e->batches[(e->first + e->n) % BROKER_PRODUCER_MAX_BATCHES] = *b;
        e->n++;
    }
}

void broker_producers_apply(broker_producers_t *ps, const broker_producer_batch_t *b)
{
    if (b->producer_id < 0 || b->epoch < 0)
        return;
    pentry_t *e = lookup(ps, b->producer_id);
    if (!e) {
        e = entry_add(ps, b->producer_id, b->epoch);
    } else {
        if (b->epoch < e->epoch)
            return;
        if (b->epoch > e->epoch) {
            e->epoch = b->epoch;
            e->n = e->first = 0;
        }
        lru_unlink(ps, e);
        lru_push_tail(ps, e);
    }
    e->ts_ms = b->ts_ms;
    entry_push(e, b);
}

size_t broker_producers_expire(broker_producers_t *ps, int64_t now_ms, int64_t max_age_ms)
{
    /* The LRU order is the order of the last appends, so the expired ones
     * are at the head (clock steps aside: a stale one further in waits for
     * the next call, or for eviction). */
    size_t n = 0;
    while (ps->lru_head && ps->lru_head->ts_ms < now_ms - max_age_ms) {
        entry_drop(ps, ps->lru_head);
        n++;
    }
    return n;
}

void broker_producers_encode(const broker_producers_t *ps, int64_t offset, core_buf_t *out)
{
    size_t start = out->len;
    core_wr_u32(out, SNAP_MAGIC);
    core_wr_i64(out, offset);
    core_wr_i32(out, (int32_t)ps->tab.n);
    for (const pentry_t *e = ps->lru_head; e; e = e->lru_next) {
        core_wr_i64(out, e->producer_id);
        core_wr_i16(out, e->epoch);
        core_wr_i64(out, e->ts_ms);
        core_wr_i8(out, (int8_t)e->n);
        for (int i = 0; i < e->n; i++) {
            const broker_producer_batch_t *k = entry_batch(e, i);
            core_wr_i32(out, k->first_seq);
            core_wr_i32(out, k->last_seq);
            core_wr_i64(out, k->base_offset);
            core_wr_i64(out, k->last_offset);
        }
    }
    core_wr_u32(out, core_crc32c(0, out->data + start, out->len - start));
}

int broker_producers_decode(broker_producers_t *ps, const uint8_t *p, size_t len, int64_t *offset)
{
    producers_clear(ps);
    *offset = 0;
    if (len < 4)
        return CORE_ERR_TRUNCATED;
    if (core_crc32c(0, p, len - 4) != core_be32(p + len - 4))
        return CORE_ERR_CRC;
    core_rd_t rd;
    core_rd_init(&rd, p, len - 4);
    if (core_rd_u32(&rd) != SNAP_MAGIC && !rd.err)
        core_rd_fail(&rd, CORE_ERR_MALFORMED);
    int64_t off = core_rd_i64(&rd);
    /* an entry is >= 8 + 2 + 8 + 1 + 24 bytes */
    int32_t count = core_rd_array(&rd, BROKER_PRODUCER_MAX_IDS, 43);
    if (!rd.err && off < 0)
        core_rd_fail(&rd, CORE_ERR_MALFORMED);
    for (int32_t i = 0; i < count && !rd.err; i++) {
        int64_t pid = core_rd_i64(&rd);
        int16_t epoch = core_rd_i16(&rd);
        int64_t ts = core_rd_i64(&rd);
        int8_t n = core_rd_i8(&rd);
        if (rd.err)
            break;
        if (pid < 0 || epoch < 0 || n < 1 || n > BROKER_PRODUCER_MAX_BATCHES || lookup(ps, pid)) {
            core_rd_fail(&rd, CORE_ERR_MALFORMED);
            break;
        }
        pentry_t *e = entry_add(ps, pid, epoch);
        e->ts_ms = ts;
        for (int j = 0; j < n && !rd.err; j++) {
            broker_producer_batch_t k = {.producer_id = pid, .epoch = epoch, .ts_ms = ts};
            k.first_seq = core_rd_i32(&rd);
            k.last_seq = core_rd_i32(&rd);
            k.base_offset = core_rd_i64(&rd);
            k.last_offset = core_rd_i64(&rd);
            if (!rd.err && (k.first_seq < 0 || k.last_seq < 0 || k.base_offset < 0 ||
                            k.last_offset < k.base_offset || k.last_offset >= off))
                core_rd_fail(&rd, CORE_ERR_MALFORMED);
            entry_push(e, &k);
        }
    }
    if (!rd.err && core_rd_remain(&rd))
        core_rd_fail(&rd, CORE_ERR_MALFORMED);
    if (rd.err) {
        producers_clear(ps);
        return rd.err;
    }
    *offset = off;
    return CORE_OK;
}
