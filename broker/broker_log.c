/*
 * broker_log — see broker_log.h for the on-disk format, the invariants and
 * the thread contract. Notes on the implementation:
 *
 * - The segment list (log->segs) is changed only by the loop thread, and
 *   always under log->mu, so the flush thread can take a consistent
 *   (LEO, active segment) snapshot; the loop thread reads it without the lock.
 * - Indexes are looked up with pread (binary search over fixed-width entries
 *   in the page cache), never held in memory, so memory does not grow with
 *   the amount of data kept; the last entries are cached per segment because
 *   tail reads dominate.
 * - Recovery mmaps a segment read-only and walks it with
 *   broker_log__batch_check, the same validator append uses.
 */
#include "broker/broker_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "broker/broker_log_int.h"
#include "broker/broker_producer.h"
#include "core/core_alloc.h"
#include "core/core_buf.h"
#include "core/core_crc.h"
#include "core/core_err.h"
#include "core/core_fs.h"
#include "core/core_log.h"
#include "core/core_time.h"

#define MOD "log"

/* Index entries hold u32 relative offsets and positions: a segment never
 * spans more offsets or bytes than this (roll happens first). */
#define SEG_MAX_SPAN ((int64_t)INT32_MAX)
/* Leader epochs kept in the checkpoint: each is one leadership change; the
 * cap bounds what a damaged checkpoint file can make us allocate. */
#define EPOCH_MAX_ENTRIES 100000
/* Read-path header buffer: one pread fetches the headers of many small
 * batches. Reads jump through the offset index and scan at most about one
 * index interval of headers, so this need not be large (it is per partition). */
#define HDR_BUF_SIZE (8 * 1024)
/* Appends start kernel writeback (sync_file_range, asynchronous) every this
 * many bytes, so the fsync a roll does on the loop thread, and the group
 * commit fsync, find little dirty data left: without it a roll under acks=1
 * load could stall the loop for a whole segment's worth of writeback. */
#define WRITEBACK_BYTES (4 << 20)
/* Path buffers: dir + "/" + 20 digits + suffix. */
#define LOG_PATH_MAX 4096
/* Largest producer-state snapshot read at open: BROKER_PRODUCER_MAX_IDS
 * producers of 143 bytes each, plus the header. */
#define PRODUCER_SNAPSHOT_MAX ((int64_t)BROKER_PRODUCER_MAX_IDS * 143 + 64)

struct broker_segment {
    atomic_int refs;  /* the log holds one while the segment is listed; slices and flush hold more */
    uint64_t id;      /* unique within the process (read-buffer cache key) */
    int fd;           /* .log, O_RDWR */
    int idx_fd;       /* .index */
    int tidx_fd;      /* .timeindex */
    int64_t base;     /* base offset (the file name) */
    int64_t next;     /* offset after the last batch */
    int64_t size;     /* bytes of valid batches */
    int64_t max_ts;   /* largest batch maxTimestamp, -1 if none */
    int64_t max_ts_off;
    int64_t created_ms;   /* wall clock of the first append (segment.ms roll) */
    int64_t mtime_ms;     /* last append (retention when batches carry no timestamp) */
    int64_t idx_n;        /* entries in .index */
    int64_t tidx_n;       /* entries in .timeindex */
    int64_t last_idx_off; /* last .index entry (absolute offset, position), -1 if none */
    int64_t last_idx_pos;
    int64_t last_tidx_ts; /* last .timeindex timestamp, -1 if none */
    int64_t bytes_since_idx;
    int64_t writeback_pos; /* writeback was started for [0, writeback_pos) */
    atomic_bool synced;    /* rolled and fsynced (data + indexes); set by the flush thread */
    char *path; /* .log path; the index paths derive from it */
};

typedef struct epoch_entry {
    int32_t epoch;
    int64_t start_offset;
} epoch_entry_t;

struct broker_log {
    char *dir;
    broker_log_conf_t conf;
    pthread_mutex_t mu;       /* segs/nsegs changes and the (leo, active) pair; see top */
    pthread_mutex_t flush_mu; /* serialises broker_log_flush */
    broker_segment_t **segs;  /* ascending base offsets; the last is active */
    int nsegs;
    int cap_segs;
    int64_t leo;
    int64_t hw;
    int64_t size_bytes;
    _Atomic int64_t flushed;
    atomic_int err; /* sticky storage error (CORE_ERR_IO) */
    atomic_bool dir_dirty;   /* a segment file was created since the last directory fsync */
    int64_t recovery_point;  /* persisted: every segment below it is fsynced (flush_mu) */
    int64_t deleted_below;   /* DeleteRecords: persisted in log-start-offset; 0 = none */
    uint64_t next_seg_id;
    epoch_entry_t *epochs;
    int nepochs;
    int32_t cur_epoch;
    broker_producers_t *producers; /* idempotent-producer state (broker_producer.h) */
    /* loop-thread scratch */
    core_buf_t idx_scratch;
    core_buf_t tidx_scratch;
    uint8_t *hdr_buf;
    uint64_t hdr_seg_id; /* which segment hdr_buf holds, 0 = none */
    int64_t hdr_pos;
    int64_t hdr_len;
};

/* ---- batch validation (shared with the dump tool) -------------------------- */

void broker_log__hdr_decode(const uint8_t *p, broker_batch_hdr_t *h)
{
    h->base_offset = (int64_t)core_be64(p + BROKER_BATCH_OFF_BASE_OFFSET);
    h->length = (int32_t)core_be32(p + BROKER_BATCH_OFF_LENGTH);
    h->leader_epoch = (int32_t)core_be32(p + BROKER_BATCH_OFF_LEADER_EPOCH);
    h->magic = (int8_t)p[BROKER_BATCH_OFF_MAGIC];
    h->crc = core_be32(p + BROKER_BATCH_OFF_CRC);
    h->attributes = (int16_t)((uint16_t)p[BROKER_BATCH_OFF_ATTRIBUTES] << 8 |
                              p[BROKER_BATCH_OFF_ATTRIBUTES + 1]);
    h->last_offset_delta = (int32_t)core_be32(p + BROKER_BATCH_OFF_LAST_OFFSET_DELTA);
    h->base_timestamp = (int64_t)core_be64(p + BROKER_BATCH_OFF_BASE_TIMESTAMP);
    h->max_timestamp = (int64_t)core_be64(p + BROKER_BATCH_OFF_MAX_TIMESTAMP);
    h->records_count = (int32_t)core_be32(p + BROKER_BATCH_OFF_RECORDS_COUNT);
}

int broker_log__batch_check(const uint8_t *p, size_t avail, int64_t max_bytes, size_t *total,
                            const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (avail < BROKER_BATCH_OFF_MAGIC + 1) {
        *why = "fewer bytes than a batch header";
        return CORE_ERR_AGAIN;
    }
    int8_t magic = (int8_t)p[BROKER_BATCH_OFF_MAGIC];
    int32_t length = (int32_t)core_be32(p + BROKER_BATCH_OFF_LENGTH);
    /* Length first: a run of zeros has length 0 and fails here, before the
     * magic or the CRC are even looked at. */
    if (length < BROKER_BATCH_HEADER_SIZE - BROKER_BATCH_LOG_OVERHEAD) {
        *why = "batchLength shorter than a batch header";
        return CORE_ERR_MALFORMED;
    }
    if (magic != BROKER_BATCH_MAGIC) {
        *why = magic == 0 || magic == 1 ? "legacy message format (magic 0/1)" : "bad magic";
        return magic == 0 || magic == 1 ? CORE_ERR_UNSUPPORTED : CORE_ERR_MALFORMED;
    }
    size_t need = (size_t)length + BROKER_BATCH_LOG_OVERHEAD;
    if (avail < BROKER_BATCH_HEADER_SIZE || need > avail) {
        *why = "batchLength runs past the end of the data";
        return CORE_ERR_AGAIN;
    }
    if ((int64_t)need > max_bytes) {
        *why = "batch larger than max.message.bytes";
        return CORE_ERR_TOO_LARGE;
    }
    uint32_t crc = core_be32(p + BROKER_BATCH_OFF_CRC);
    if (core_crc32c(0, p + BROKER_BATCH_CRC_START, need - BROKER_BATCH_CRC_START) != crc) {
        *why = "CRC-32C mismatch";
        return CORE_ERR_CRC;
    }
    int32_t lod = (int32_t)core_be32(p + BROKER_BATCH_OFF_LAST_OFFSET_DELTA);
    int32_t count = (int32_t)core_be32(p + BROKER_BATCH_OFF_RECORDS_COUNT);
    if (lod < 0 || count < 1 || (int64_t)count != (int64_t)lod + 1) {
        *why = "recordsCount does not match lastOffsetDelta + 1";
        return CORE_ERR_MALFORMED;
    }
    *total = need;
    return 0;
}

static void seg_path(char *out, const char *dir, int64_t base, const char *suffix)
{
    snprintf(out, LOG_PATH_MAX, "%s/%020" PRId64 "%s", dir, base, suffix);
}

/* The .index / .timeindex path next to seg->path. */
static void seg_sibling(char *out, const broker_segment_t *seg, const char *suffix)
{
    size_t n = strlen(seg->path) - strlen(BROKER_LOG_SUFFIX);
    snprintf(out, LOG_PATH_MAX, "%.*s%s", (int)n, seg->path, suffix);
}

/* ---- segments -------------------------------------------------------------- */

static void seg_keep(broker_segment_t *seg)
{
    atomic_fetch_add_explicit(&seg->refs, 1, memory_order_relaxed);
}

static void seg_release(broker_segment_t *seg)
{
    if (atomic_fetch_sub_explicit(&seg->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (seg->fd >= 0)
        close(seg->fd);
    if (seg->idx_fd >= 0)
        close(seg->idx_fd);
    if (seg->tidx_fd >= 0)
        close(seg->tidx_fd);
    free(seg->path);
    free(seg);
}

static broker_segment_t *seg_alloc(broker_log_t *log, int64_t base)
{
    broker_segment_t *seg = core_xcalloc(1, sizeof *seg);
    atomic_init(&seg->refs, 1);
    atomic_init(&seg->synced, false);
    seg->id = ++log->next_seg_id;
    seg->fd = seg->idx_fd = seg->tidx_fd = -1;
    seg->base = seg->next = base;
    seg->max_ts = seg->last_tidx_ts = -1;
    seg->max_ts_off = base;
    seg->last_idx_off = seg->last_idx_pos = -1;
    char p[LOG_PATH_MAX];
    seg_path(p, log->dir, base, BROKER_LOG_SUFFIX);
    seg->path = core_xstrdup(p);
    return seg;
}

/* Opens the three files of seg (creating them when create). */
static int seg_open_files(broker_segment_t *seg, bool create)
{
    char p[LOG_PATH_MAX];
    int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
    seg->fd = open(seg->path, flags, 0644);
    if (seg->fd < 0)
        return errno;
    /* Index files may be missing (rebuilt later) or left over: never O_EXCL. */
    seg_sibling(p, seg, BROKER_INDEX_SUFFIX);
    seg->idx_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | (create ? O_TRUNC : 0), 0644);
    if (seg->idx_fd < 0)
        return errno;
    seg_sibling(p, seg, BROKER_TIMEINDEX_SUFFIX);
    seg->tidx_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | (create ? O_TRUNC : 0), 0644);
    if (seg->tidx_fd < 0)
        return errno;
    return 0;
}

static void put_idx_entry(core_buf_t *b, int64_t rel, int64_t pos)
{
    uint8_t e[BROKER_INDEX_ENTRY_SIZE];
    core_put_be32(e, (uint32_t)rel);
    core_put_be32(e + 4, (uint32_t)pos);
    core_wr_raw(b, e, sizeof e);
}

static void put_tidx_entry(core_buf_t *b, int64_t ts, int64_t rel)
{
    uint8_t e[BROKER_TIMEINDEX_ENTRY_SIZE];
    core_put_be64(e, (uint64_t)ts);
    core_put_be32(e + 8, (uint32_t)rel);
    core_wr_raw(b, e, sizeof e);
}

/* The index bookkeeping of a segment, saved before an append so a failed
 * write can be undone. */
typedef struct seg_index_state {
    int64_t idx_n, tidx_n, max_ts, max_ts_off, last_idx_off, last_idx_pos, last_tidx_ts,
        bytes_since_idx;
} seg_index_state_t;

static void seg_index_state_save(const broker_segment_t *seg, seg_index_state_t *st)
{
    *st = (seg_index_state_t){seg->idx_n,        seg->tidx_n,       seg->max_ts,
                              seg->max_ts_off,   seg->last_idx_off, seg->last_idx_pos,
                              seg->last_tidx_ts, seg->bytes_since_idx};
}

static void seg_index_state_restore(broker_segment_t *seg, const seg_index_state_t *st)
{
    seg->idx_n = st->idx_n;
    seg->tidx_n = st->tidx_n;
    seg->max_ts = st->max_ts;
    seg->max_ts_off = st->max_ts_off;
    seg->last_idx_off = st->last_idx_off;
    seg->last_idx_pos = st->last_idx_pos;
    seg->last_tidx_ts = st->last_tidx_ts;
    seg->bytes_since_idx = st->bytes_since_idx;
}

/* Accounts one batch at file position pos into the segment's index state,
 * appending any new entries to idx / tidx (written to the files by the
 * caller). Append and recovery both come through here, so a rebuilt index is
 * byte-identical to the one written during appends with the same interval. */
static void seg_index_batch(broker_segment_t *seg, int64_t interval, int64_t base_off,
                            int64_t pos, int64_t size, int64_t max_ts, core_buf_t *idx,
                            core_buf_t *tidx)
{
    if (max_ts > seg->max_ts) {
        seg->max_ts = max_ts;
        seg->max_ts_off = base_off;
    }
    if (seg->bytes_since_idx >= interval) {
        put_idx_entry(idx, base_off - seg->base, pos);
        seg->idx_n++;
        seg->last_idx_off = base_off;
        seg->last_idx_pos = pos;
        seg->bytes_since_idx = 0;
        if (seg->max_ts > seg->last_tidx_ts) {
            put_tidx_entry(tidx, seg->max_ts, seg->max_ts_off - seg->base);
            seg->tidx_n++;
            seg->last_tidx_ts = seg->max_ts;
        }
    }
    seg->bytes_since_idx += size;
}

/* The time index entry written when a segment stops being active, so its
 * last entry carries the segment's largest timestamp (retention by time). */
static void seg_final_time_entry(broker_segment_t *seg, core_buf_t *tidx)
{
    if (seg->max_ts > seg->last_tidx_ts) {
        put_tidx_entry(tidx, seg->max_ts, seg->max_ts_off - seg->base);
        seg->tidx_n++;
        seg->last_tidx_ts = seg->max_ts;
    }
}

/* Largest .index entry whose offset <= offset: its position, or 0. */
static int64_t seg_index_lookup(broker_segment_t *seg, int64_t offset)
{
    if (seg->idx_n == 0 || offset < seg->base)
        return 0;
    if (seg->last_idx_off >= 0 && offset >= seg->last_idx_off)
        return seg->last_idx_pos;
    int64_t lo = 0, hi = seg->idx_n - 1, best = 0;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        uint8_t e[BROKER_INDEX_ENTRY_SIZE];
        if (core_fs_pread_all(seg->idx_fd, e, sizeof e, mid * BROKER_INDEX_ENTRY_SIZE))
            return 0; /* a scan from the start is always correct, only slower */
        int64_t off = seg->base + core_be32(e);
        if (off <= offset) {
            best = core_be32(e + 4);
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best < seg->size ? best : 0;
}

/* For a read starting at start_pos: the position of the last .index entry
 * with position <= limit_pos and offset < hw (a batch boundary such that
 * every batch before it belongs in the read), or -1 if none is past start_pos. */
static int64_t seg_index_jump(broker_segment_t *seg, int64_t start_pos, int64_t limit_pos,
                              int64_t hw, int64_t *off_out)
{
    if (seg->idx_n == 0 || seg->last_idx_pos <= start_pos)
        return -1;
    if (seg->last_idx_pos <= limit_pos && seg->last_idx_off < hw) {
        *off_out = seg->last_idx_off;
        return seg->last_idx_pos;
    }
    int64_t lo = 0, hi = seg->idx_n - 1, best = -1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        uint8_t e[BROKER_INDEX_ENTRY_SIZE];
        if (core_fs_pread_all(seg->idx_fd, e, sizeof e, mid * BROKER_INDEX_ENTRY_SIZE))
            return -1;
        int64_t off = seg->base + core_be32(e), pos = core_be32(e + 4);
        if (pos <= limit_pos && off < hw) {
            best = pos;
            *off_out = off;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best > start_pos && best < seg->size ? best : -1;
}

/* Largest .timeindex entry with timestamp < ts: the batch offset to scan from
 * (every batch before it has maxTimestamp < ts), or the segment base. */
static int64_t seg_time_lookup(broker_segment_t *seg, int64_t ts)
{
    int64_t lo = 0, hi = seg->tidx_n - 1, best = seg->base;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        uint8_t e[BROKER_TIMEINDEX_ENTRY_SIZE];
        if (core_fs_pread_all(seg->tidx_fd, e, sizeof e, mid * BROKER_TIMEINDEX_ENTRY_SIZE))
            return seg->base;
        if ((int64_t)core_be64(e) < ts) {
            best = seg->base + core_be32(e + 8);
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best;
}

/* ---- the read-path header reader ------------------------------------------- */

/* Reads and sanity-checks the header of the batch at pos in seg (pos <
 * seg->size). Uses log->hdr_buf so a run of small batches costs one pread.
 * Returns 0, CORE_ERR_CORRUPT (logged) or an errno. Loop thread. */
static int hdr_at(broker_log_t *log, broker_segment_t *seg, int64_t pos, broker_batch_hdr_t *h)
{
    if (pos + BROKER_BATCH_HEADER_SIZE > seg->size)
        goto corrupt;
    if (log->hdr_seg_id != seg->id || pos < log->hdr_pos ||
        pos + BROKER_BATCH_HEADER_SIZE > log->hdr_pos + log->hdr_len) {
        int64_t want = seg->size - pos < HDR_BUF_SIZE ? seg->size - pos : HDR_BUF_SIZE;
        int rc = core_fs_pread_all(seg->fd, log->hdr_buf, (size_t)want, pos);
        if (rc) {
            log->hdr_seg_id = 0;
            return rc == CORE_ERR_TRUNCATED ? CORE_ERR_CORRUPT : rc;
        }
        log->hdr_seg_id = seg->id;
        log->hdr_pos = pos;
        log->hdr_len = want;
    }
    broker_log__hdr_decode(log->hdr_buf + (pos - log->hdr_pos), h);
    if (h->magic != BROKER_BATCH_MAGIC ||
        h->length < BROKER_BATCH_HEADER_SIZE - BROKER_BATCH_LOG_OVERHEAD ||
        pos + BROKER_BATCH_LOG_OVERHEAD + h->length > seg->size || h->last_offset_delta < 0 ||
        h->base_offset < seg->base || h->base_offset >= seg->next)
        goto corrupt;
    return 0;
corrupt:
    CORE_ERROR(MOD, "%s: bad batch header at position %" PRId64 "", seg->path, pos);
    return CORE_ERR_CORRUPT;
}

static int64_t hdr_total(const broker_batch_hdr_t *h)
{
    return (int64_t)h->length + BROKER_BATCH_LOG_OVERHEAD;
}

/* Position of the batch containing offset (base <= offset <= last), via the
 * index then a forward scan. Returns 0 and *pos, or an error. */
static int seg_find(broker_log_t *log, broker_segment_t *seg, int64_t offset, int64_t *pos,
                    broker_batch_hdr_t *h)
{
    int64_t p = seg_index_lookup(seg, offset);
    bool from_index = p != 0;
    for (;;) {
        if (p >= seg->size)
            return CORE_ERR_NOT_FOUND;
        int rc = hdr_at(log, seg, p, h);
        if (rc == CORE_ERR_CORRUPT && from_index) {
            /* an index entry that does not land on a batch: scan from the start */
            CORE_WARN(MOD, "%s: index entry points inside a batch; scanning", seg->path);
            p = 0;
            from_index = false;
            continue;
        }
        if (rc)
            return rc;
        if (from_index && h->base_offset > offset) {
            p = 0;
            from_index = false;
            continue;
        }
        from_index = false;
        if (h->base_offset + h->last_offset_delta >= offset) {
            *pos = p;
            return 0;
        }
        p += hdr_total(h);
    }
}

/* ---- conf ------------------------------------------------------------------ */

void broker_log_conf_default(broker_log_conf_t *conf)
{
    conf->segment_bytes = 1LL << 30;
    conf->segment_ms = 7LL * 24 * 3600 * 1000;
    conf->retention_bytes = -1;
    conf->retention_ms = 7LL * 24 * 3600 * 1000;
    conf->max_message_bytes = 1048588; /* Kafka's default message.max.bytes */
    conf->index_interval_bytes = 4096;
}

static void conf_sanitise(broker_log_conf_t *c)
{
    /* positions in index entries are u32; keep a segment well inside that */
    if (c->segment_bytes <= 0 || c->segment_bytes > SEG_MAX_SPAN)
        c->segment_bytes = c->segment_bytes <= 0 ? 1LL << 30 : SEG_MAX_SPAN;
    if (c->segment_ms <= 0)
        c->segment_ms = INT64_MAX;
    if (c->max_message_bytes <= 0 || c->max_message_bytes > SEG_MAX_SPAN)
        c->max_message_bytes = SEG_MAX_SPAN;
    if (c->index_interval_bytes <= 0)
        c->index_interval_bytes = 4096;
}

void broker_log_set_conf(broker_log_t *log, const broker_log_conf_t *conf)
{
    log->conf = *conf;
    conf_sanitise(&log->conf);
}

/* ---- leader epoch checkpoint ----------------------------------------------- */

static int epoch_save(broker_log_t *log)
{
    core_buf_t b;
    core_buf_init(&b);
    char line[64];
    int n = snprintf(line, sizeof line, "0\n%d\n", log->nepochs);
    core_wr_raw(&b, line, (size_t)n);
    for (int i = 0; i < log->nepochs; i++) {
        n = snprintf(line, sizeof line, "%" PRId32 " %" PRId64 "\n", log->epochs[i].epoch,
                     log->epochs[i].start_offset);
        core_wr_raw(&b, line, (size_t)n);
    }
    int rc = core_fs_write_atomic(log->dir, BROKER_LEADER_EPOCH_FILE, b.data, b.len, 0644);
    core_buf_fini(&b);
    return rc;
}

/* Parses "0\nN\n(epoch offset\n){N}". Missing file = no epochs. */
static int epoch_load(broker_log_t *log, char *errstr, size_t errstr_size)
{
    char p[LOG_PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", log->dir, BROKER_LEADER_EPOCH_FILE);
    FILE *f = fopen(p, "re");
    if (!f)
        return errno == ENOENT ? 0
                               : core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: %s", p,
                                           strerror(errno));
    int version, n, rc = 0;
    if (fscanf(f, "%d\n%d\n", &version, &n) != 2 || version != 0 || n < 0 ||
        n > EPOCH_MAX_ENTRIES) {
        rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s: bad header", p);
        goto out;
    }
    log->epochs = core_xcalloc((size_t)n + 1, sizeof *log->epochs);
    for (int i = 0; i < n; i++) {
        int32_t e;
        int64_t o;
        if (fscanf(f, "%" SCNd32 " %" SCNd64 "\n", &e, &o) != 2 || e < 0 || o < 0 ||
            (i > 0 && (e <= log->epochs[i - 1].epoch || o < log->epochs[i - 1].start_offset))) {
            rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s: bad entry %d", p, i);
            goto out;
        }
        log->epochs[i].epoch = e;
        log->epochs[i].start_offset = o;
        log->nepochs = i + 1;
    }
out:
    fclose(f);
    return rc;
}

static int epoch_assign(broker_log_t *log, int32_t epoch, int64_t start)
{
    if (epoch < 0 || (log->nepochs > 0 && epoch <= log->epochs[log->nepochs - 1].epoch))
        return 0;
    log->epochs = core_xrealloc(log->epochs, sizeof *log->epochs * ((size_t)log->nepochs + 1));
    log->epochs[log->nepochs].epoch = epoch;
    log->epochs[log->nepochs].start_offset = start;
    log->nepochs++;
    log->cur_epoch = epoch;
    int rc = epoch_save(log);
    if (rc) {
        CORE_ERROR(MOD, "%s: writing %s: %s", log->dir, BROKER_LEADER_EPOCH_FILE,
                   core_strerror(rc));
        atomic_store(&log->err, CORE_ERR_IO);
        return CORE_ERR_IO;
    }
    return 0;
}

int broker_log_set_leader_epoch(broker_log_t *log, int32_t epoch)
{
    if (atomic_load(&log->err))
        return CORE_ERR_IO;
    if (epoch < 0)
        return CORE_ERR_INVAL;
    if (log->nepochs > 0 && epoch < log->epochs[log->nepochs - 1].epoch)
        return CORE_ERR_STATE; /* epochs only move forward */
    log->cur_epoch = epoch;
    return epoch_assign(log, epoch, log->leo);
}

int32_t broker_log_leader_epoch(const broker_log_t *log)
{
    return log->cur_epoch;
}

/* ---- segment list ---------------------------------------------------------- */

static broker_segment_t *active_seg(const broker_log_t *log)
{
    return log->segs[log->nsegs - 1];
}

static void segs_push(broker_log_t *log, broker_segment_t *seg)
{
    if (log->nsegs == log->cap_segs) {
        log->cap_segs = log->cap_segs ? log->cap_segs * 2 : 8;
        log->segs = core_xrealloc(log->segs, sizeof *log->segs * (size_t)log->cap_segs);
    }
    log->segs[log->nsegs++] = seg;
}

/* Index of the segment holding offset (the last with base <= offset). */
static int segs_find(const broker_log_t *log, int64_t offset)
{
    int lo = 0, hi = log->nsegs - 1, best = 0;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (log->segs[mid]->base <= offset) {
            best = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best;
}

/* ---- recovery -------------------------------------------------------------- */

typedef struct scan_res {
    int64_t valid_end;
    int64_t nbatches;
    const char *why; /* NULL when the whole file was valid */
    int err;
} scan_res_t;

/* Walks seg's file from position 0, validating every batch (length, magic,
 * CRC, counts, and base offsets contiguous from seg->base), and rebuilds the
 * segment's index state into log->idx_scratch / log->tidx_scratch. Stops at
 * the first invalid batch. Sets seg->next, size = valid end. */
static int seg_scan(broker_log_t *log, broker_segment_t *seg, int64_t file_size, scan_res_t *r)
{
    memset(r, 0, sizeof *r);
    core_buf_reset(&log->idx_scratch);
    core_buf_reset(&log->tidx_scratch);
    seg->next = seg->base;
    seg->idx_n = seg->tidx_n = 0;
    seg->max_ts = seg->last_tidx_ts = -1;
    seg->max_ts_off = seg->base;
    seg->last_idx_off = seg->last_idx_pos = -1;
    seg->bytes_since_idx = 0;
    if (file_size == 0)
        goto done;
    uint8_t *map = mmap(NULL, (size_t)file_size, PROT_READ, MAP_PRIVATE, seg->fd, 0);
    if (map == MAP_FAILED)
        return errno;
    madvise(map, (size_t)file_size, MADV_SEQUENTIAL);
    int64_t pos = 0;
    while (pos < file_size) {
        size_t total;
        const char *why;
        int rc = broker_log__batch_check(map + pos, (size_t)(file_size - pos), INT64_MAX, &total,
                                         &why);
        if (rc) {
            r->why = why;
            break;
        }
        broker_batch_hdr_t h;
        broker_log__hdr_decode(map + pos, &h);
        if (h.base_offset != seg->next) {
            r->why = seg->next == seg->base ? "first batch does not start at the segment's base offset"
                                            : "batch offsets are not contiguous";
            break;
        }
        if (h.base_offset + h.last_offset_delta + 1 - seg->base > SEG_MAX_SPAN) {
            r->why = "batch offsets exceed the segment's span";
            break;
        }
        seg_index_batch(seg, log->conf.index_interval_bytes, h.base_offset, pos, (int64_t)total,
                        h.max_timestamp, &log->idx_scratch, &log->tidx_scratch);
        seg->next = h.base_offset + h.last_offset_delta + 1;
        pos += (int64_t)total;
        r->nbatches++;
    }
    munmap(map, (size_t)file_size);
    r->valid_end = pos;
done:
    seg->size = r->valid_end;
    return 0;
}

/* Makes the index files equal to the scratch buffers (rewriting when different). */
static int seg_write_indexes(broker_log_t *log, broker_segment_t *seg)
{
    struct {
        int fd;
        core_buf_t *b;
        const char *suffix;
    } f[2] = {{seg->idx_fd, &log->idx_scratch, BROKER_INDEX_SUFFIX},
              {seg->tidx_fd, &log->tidx_scratch, BROKER_TIMEINDEX_SUFFIX}};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (fstat(f[i].fd, &st))
            return errno;
        bool same = (size_t)st.st_size == f[i].b->len;
        if (same && f[i].b->len) {
            uint8_t *cur = core_trymalloc(f[i].b->len);
            same = cur && !core_fs_pread_all(f[i].fd, cur, f[i].b->len, 0) &&
                   !memcmp(cur, f[i].b->data, f[i].b->len);
            free(cur);
        }
        if (same)
            continue;
        CORE_INFO(MOD, "%s: rebuilt %s (%zu entries)", seg->path, f[i].suffix,
                  f[i].b->len / (i == 0 ? BROKER_INDEX_ENTRY_SIZE : BROKER_TIMEINDEX_ENTRY_SIZE));
        if (ftruncate(f[i].fd, 0))
            return errno;
        int rc = core_fs_pwrite_all(f[i].fd, f[i].b->data, f[i].b->len, 0);
        if (rc)
            return rc;
        if (fdatasync(f[i].fd))
            return errno;
    }
    return 0;
}

/* For a segment that is not scanned (non-last after a clean shutdown):
 * loads the index state from the files and checks it is plausible: whole
 * entries, the last .index entry lands on a batch with that offset, the
 * last .timeindex entry is inside the segment. Returns false when the
 * indexes must be rebuilt. */
static bool seg_load_indexes(broker_log_t *log, broker_segment_t *seg)
{
    struct stat si, st;
    if (fstat(seg->idx_fd, &si) || fstat(seg->tidx_fd, &st))
        return false;
    if (si.st_size % BROKER_INDEX_ENTRY_SIZE || st.st_size % BROKER_TIMEINDEX_ENTRY_SIZE)
        return false;
    seg->idx_n = si.st_size / BROKER_INDEX_ENTRY_SIZE;
    seg->tidx_n = st.st_size / BROKER_TIMEINDEX_ENTRY_SIZE;
    if (seg->size > 0 && seg->tidx_n == 0)
        return false; /* every non-empty rolled segment has its final time entry */
    if (seg->idx_n > 0) {
        uint8_t e[BROKER_INDEX_ENTRY_SIZE];
        if (core_fs_pread_all(seg->idx_fd, e, sizeof e, (seg->idx_n - 1) * BROKER_INDEX_ENTRY_SIZE))
            return false;
        int64_t off = seg->base + core_be32(e), pos = core_be32(e + 4);
        broker_batch_hdr_t h;
        if (off >= seg->next || pos >= seg->size || hdr_at(log, seg, pos, &h) ||
            h.base_offset != off)
            return false;
        seg->last_idx_off = off;
        seg->last_idx_pos = pos;
    }
    if (seg->tidx_n > 0) {
        uint8_t e[BROKER_TIMEINDEX_ENTRY_SIZE];
        if (core_fs_pread_all(seg->tidx_fd, e, sizeof e, (seg->tidx_n - 1) * BROKER_TIMEINDEX_ENTRY_SIZE))
            return false;
        int64_t off = seg->base + core_be32(e + 8);
        if (off >= seg->next)
            return false;
        seg->max_ts = seg->last_tidx_ts = (int64_t)core_be64(e);
        seg->max_ts_off = off;
    }
    return true;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Parses "%020lld<suffix>"; returns true and *base when name matches. */
static bool parse_seg_name(const char *name, const char *suffix, int64_t *base)
{
    size_t n = strlen(name), sl = strlen(suffix);
    if (n != 20 + sl || strcmp(name + 20, suffix))
        return false;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (name[i] - '0');
    }
    *base = v;
    return true;
}

/* Lists segment base offsets (sorted) and removes leftovers: temp files and
 * index files whose segment is gone (a crash during retention). */
static int list_segments(broker_log_t *log, int64_t **basesp, int *np, char *errstr,
                         size_t errstr_size)
{
    DIR *d = opendir(log->dir);
    if (!d)
        return core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: %s", log->dir, strerror(errno));
    int64_t *bases = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    char **orphans = NULL;
    int norphans = 0;
    while ((de = readdir(d))) {
        int64_t base;
        if (parse_seg_name(de->d_name, BROKER_LOG_SUFFIX, &base)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                bases = core_xrealloc(bases, sizeof *bases * (size_t)cap);
            }
            bases[n++] = base;
        } else if (parse_seg_name(de->d_name, BROKER_INDEX_SUFFIX, &base) ||
                   parse_seg_name(de->d_name, BROKER_TIMEINDEX_SUFFIX, &base) ||
                   (strlen(de->d_name) > 4 &&
                    !strcmp(de->d_name + strlen(de->d_name) - 4, ".tmp"))) {
            orphans = core_xrealloc(orphans, sizeof *orphans * ((size_t)norphans + 1));
            orphans[norphans++] = core_xstrdup(de->d_name);
        }
    }
    closedir(d);
    if (n > 1)
        qsort(bases, (size_t)n, sizeof *bases, cmp_i64);
    for (int i = 0; i < norphans; i++) {
        int64_t base;
        bool has_log = false;
        if (parse_seg_name(orphans[i], BROKER_INDEX_SUFFIX, &base) ||
            parse_seg_name(orphans[i], BROKER_TIMEINDEX_SUFFIX, &base))
            has_log = n > 0 && bsearch(&base, bases, (size_t)n, sizeof *bases, cmp_i64) != NULL;
        if (!has_log) {
            char p[LOG_PATH_MAX];
            snprintf(p, sizeof p, "%s/%s", log->dir, orphans[i]);
            CORE_INFO(MOD, "%s: removing leftover file", p);
            unlink(p);
        }
        free(orphans[i]);
    }
    free(orphans);
    *basesp = bases;
    *np = n;
    return 0;
}

/* Creates a new, empty segment at base and makes it the active one. Its
 * directory entry is made durable by the next flush (dir_dirty), before
 * `flushed` can pass its base. */
static int seg_create(broker_log_t *log, int64_t base, int64_t now_ms)
{
    broker_segment_t *seg = seg_alloc(log, base);
    int rc = seg_open_files(seg, true);
    if (rc) {
        CORE_ERROR(MOD, "%s: create: %s", seg->path, strerror(rc));
        unlink(seg->path);
        seg_release(seg);
        return rc;
    }
    seg->created_ms = seg->mtime_ms = now_ms;
    atomic_store(&log->dir_dirty, true);
    pthread_mutex_lock(&log->mu);
    segs_push(log, seg);
    pthread_mutex_unlock(&log->mu);
    return 0;
}

/* ---- recovery point --------------------------------------------------------- */

/* Offset files ("recovery-point", "log-start-offset"): "0\n<offset>\n"
 * (format version 0), written atomically. */
static int offset_file_save(const broker_log_t *log, const char *name, int64_t off)
{
    return core_fs_i64_save(log->dir, name, off);
}

/* Reads an offset file into *off; a missing file leaves *off = 0. */
static int offset_file_load(const broker_log_t *log, const char *name, int64_t *off,
                            char *errstr, size_t errstr_size)
{
    *off = 0;
    int rc = core_fs_i64_load(log->dir, name, off);
    if (rc == ENOENT)
        return 0;
    if (rc == CORE_ERR_CORRUPT)
        return core_errf(CORE_ERR_CORRUPT, errstr, errstr_size, "%s/%s: malformed", log->dir,
                         name);
    if (rc)
        return core_errf(CORE_ERR_IO, errstr, errstr_size, "%s/%s: %s", log->dir, name,
                         rc > 0 ? strerror(rc) : core_strerror(rc));
    return 0;
}

/* "recovery-point": every segment whose base offset is below it was
 * fsynced (data and indexes) before the file was written. */
static int rp_save(broker_log_t *log, int64_t rp)
{
    int rc = offset_file_save(log, BROKER_RECOVERY_POINT_FILE, rp);
    if (!rc)
        log->recovery_point = rp;
    return rc;
}

/* Missing = nothing is known to be synced. */
static int rp_load(broker_log_t *log, char *errstr, size_t errstr_size)
{
    return offset_file_load(log, BROKER_RECOVERY_POINT_FILE, &log->recovery_point, errstr,
                            errstr_size);
}

/* "log-start-offset", written by DeleteRecords only (a log start offset
 * inside a segment; otherwise the first segment's base is the start).
 * Missing = 0. */
static int start_load(broker_log_t *log, char *errstr, size_t errstr_size)
{
    return offset_file_load(log, BROKER_LOG_START_FILE, &log->deleted_below, errstr,
                            errstr_size);
}

/* Removes segment files (recovery dropping segments after a torn one). */
static void unlink_segment_files(const char *dir, int64_t base)
{
    static const char *const suffixes[] = {BROKER_LOG_SUFFIX, BROKER_INDEX_SUFFIX,
                                           BROKER_TIMEINDEX_SUFFIX};
    for (int k = 0; k < 3; k++) {
        char p[LOG_PATH_MAX];
        seg_path(p, dir, base, suffixes[k]);
        unlink(p);
    }
}

static int64_t file_mtime_ms(int fd)
{
    struct stat st;
    if (fstat(fd, &st))
        return core_wall_ms();
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

static int log_recover(broker_log_t *log, bool clean, char *errstr, size_t errstr_size)
{
    int64_t *bases = NULL;
    int n = 0, rc = rp_load(log, errstr, errstr_size);
    if (rc)
        return rc;
    if ((rc = list_segments(log, &bases, &n, errstr, errstr_size)))
        return rc;
    for (int i = 0; i < n; i++) {
        bool last = i == n - 1;
        broker_segment_t *seg = seg_alloc(log, bases[i]);
        segs_push(log, seg); /* single-threaded during open: no lock needed */
        if ((rc = seg_open_files(seg, false))) {
            rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: %s", seg->path, strerror(rc));
            goto out;
        }
        struct stat st;
        if (fstat(seg->fd, &st)) {
            rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: %s", seg->path, strerror(errno));
            goto out;
        }
        seg->mtime_ms = seg->created_ms = file_mtime_ms(seg->fd);
        if (!last && bases[i + 1] - bases[i] > SEG_MAX_SPAN) {
            rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size,
                           "%s: next segment starts %" PRId64 " offsets later (corrupt)", seg->path,
                           bases[i + 1] - bases[i]);
            goto out;
        }
        if (!last && clean) {
            seg->size = st.st_size;
            seg->next = bases[i + 1];
            if (seg_load_indexes(log, seg))
                continue;
            CORE_WARN(MOD, "%s: index inconsistent; rebuilding", seg->path);
        }
        scan_res_t r;
        if ((rc = seg_scan(log, seg, st.st_size, &r))) {
            rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: %s", seg->path, strerror(rc));
            goto out;
        }
        bool broken = r.why || (!last && seg->next != bases[i + 1]);
        if (broken && !last) {
            if (bases[i] < log->recovery_point) {
                /* fsynced before the recovery point was written: real damage */
                rc = core_errf(CORE_ERR_CORRUPT, errstr, errstr_size,
                               "%s: corrupt at position %" PRId64 " (%s); the segment was "
                               "synced (below the recovery point %" PRId64 "), so it is not "
                               "repaired",
                               seg->path, r.valid_end,
                               r.why ? r.why : "does not end where the next segment starts",
                               log->recovery_point);
                goto out;
            }
            /* A rolled segment whose fsync never completed (invariant 3): what
             * follows it was never acknowledged as durable either. */
            CORE_WARN(MOD, "%s: torn at position %" PRId64 " (%s) past the recovery point %" PRId64
                           " (unsynced when the broker stopped); dropping the %d later segment(s)",
                      seg->path, r.valid_end,
                      r.why ? r.why : "does not end where the next segment starts",
                      log->recovery_point, n - 1 - i);
            for (int j = i + 1; j < n; j++)
                unlink_segment_files(log->dir, bases[j]);
            n = i + 1;
            last = true;
            atomic_store(&log->dir_dirty, true);
        }
        if (!last) {
            seg_final_time_entry(seg, &log->tidx_scratch);
        } else if (r.why) {
            CORE_WARN(MOD, "%s: truncating %" PRId64 " bytes at position %" PRId64
                           " (%s); %" PRId64 " batches kept",
                      seg->path, st.st_size - r.valid_end, r.valid_end, r.why, r.nbatches);
            if (ftruncate(seg->fd, r.valid_end)) {
                rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: truncate: %s", seg->path,
                               strerror(errno));
                goto out;
            }
        }
        if ((rc = seg_write_indexes(log, seg))) {
            rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: writing index: %s", seg->path,
                           strerror(rc));
            goto out;
        }
    }
    if (log->nsegs == 0) { /* a new log starts at offset 0 */
        if ((rc = seg_create(log, 0, core_wall_ms()))) {
            rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: %s", log->dir, strerror(rc));
            goto out;
        }
    }
    broker_segment_t *act = active_seg(log);
    log->leo = log->hw = act->next;
    log->size_bytes = 0;
    for (int i = 0; i < log->nsegs; i++)
        log->size_bytes += log->segs[i]->size;
    /* What is on disk now may still be only in the page cache (after kill -9,
     * or rolled segments whose fsync never ran): sync every segment from the
     * recovery point on, and the directory, so `flushed` can start at LEO and
     * the recovery point can move to the active segment. */
    for (int i = 0; i < log->nsegs; i++) {
        broker_segment_t *seg = log->segs[i];
        bool is_last = i == log->nsegs - 1;
        if (seg->base < log->recovery_point && !is_last) {
            atomic_store(&seg->synced, true);
            continue;
        }
        if (fdatasync(seg->fd) || fdatasync(seg->idx_fd) || fdatasync(seg->tidx_fd)) {
            rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: fsync: %s", seg->path,
                           strerror(errno));
            goto out;
        }
        if (!is_last)
            atomic_store(&seg->synced, true);
    }
    if (atomic_exchange(&log->dir_dirty, false) && (rc = core_fs_fsync_dir(log->dir))) {
        rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: fsync: %s", log->dir, strerror(rc));
        goto out;
    }
    if (log->recovery_point != act->base && (rc = rp_save(log, act->base))) {
        rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: writing %s: %s", log->dir,
                       BROKER_RECOVERY_POINT_FILE, strerror(rc));
        goto out;
    }
    rc = 0;
out:
    free(bases);
    return rc;
}

/* ---- producer state (broker_producer.h; see "Producer state" in broker_log.h) ---- */

/* Reads the producer-state snapshot into log->producers. Returns the offset
 * it covers, or -1 when it is missing or unusable (logged; ps left empty). */
static int64_t producers_snapshot_load(broker_log_t *log)
{
    char p[LOG_PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", log->dir, BROKER_PRODUCER_STATE_FILE);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            CORE_WARN(MOD, "%s: %s; rebuilding from the log", p, strerror(errno));
        return -1;
    }
    struct stat st;
    int64_t off = -1;
    uint8_t *data = NULL;
    const char *why = NULL;
    if (fstat(fd, &st) || st.st_size > PRODUCER_SNAPSHOT_MAX) {
        why = "unreadable or too large";
    } else {
        data = core_xmalloc((size_t)st.st_size + 1);
        int rc = core_fs_pread_all(fd, data, (size_t)st.st_size, 0);
        if (!rc)
            rc = broker_producers_decode(log->producers, data, (size_t)st.st_size, &off);
        if (rc) {
            why = core_strerror(rc);
            off = -1;
        } else if (off > log->leo) {
            /* it describes batches the log no longer holds */
            why = "covers offsets past the log end";
            off = -1;
        }
    }
    close(fd);
    free(data);
    if (why) {
        CORE_WARN(MOD, "%s: %s; rebuilding from the log", p, why);
        broker_producers_free(log->producers);
        log->producers = broker_producers_new();
    }
    return off;
}

/* Rebuilds the producer state at open: from the snapshot (clean shutdown
 * only: after a crash it may be stale or describe a log tail recovery cut
 * away) plus
 * the batches after it, or else by replaying the header of every batch in
 * the log. Each batch's time is its segment's mtime, never earlier than its
 * append, so a producer is not expired sooner than it would have been. */
static int producers_load(broker_log_t *log, bool clean, char *errstr, size_t errstr_size)
{
    int64_t from = clean ? producers_snapshot_load(log) : -1;
    bool snap = from >= 0;
    /* Like the clean-shutdown marker, the snapshot lives only from a clean
     * close to the next open (the marker's removal fsyncs the directory). */
    char p[LOG_PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", log->dir, BROKER_PRODUCER_STATE_FILE);
    if (unlink(p) && errno != ENOENT)
        CORE_WARN(MOD, "%s: %s", p, strerror(errno));
    if (!snap)
        from = log->segs[0]->base;
    int64_t nbatches = 0;
    for (int i = segs_find(log, from); from < log->leo && i < log->nsegs; i++) {
        broker_segment_t *seg = log->segs[i];
        for (int64_t pos = 0; pos < seg->size;) {
            broker_batch_hdr_t h;
            int rc = hdr_at(log, seg, pos, &h);
            if (rc)
                return core_errf(rc == CORE_ERR_CORRUPT ? rc : CORE_ERR_IO, errstr, errstr_size,
                                 "%s: reading producer state at position %" PRId64 ": %s",
                                 seg->path, pos, rc == CORE_ERR_CORRUPT ? "corrupt" : strerror(rc));
            if (h.base_offset >= from) {
                broker_producer_batch_t pb;
                /* hdr_at left the whole header in hdr_buf */
                broker_producer_batch_read(log->hdr_buf + (pos - log->hdr_pos), &pb);
                if (pb.producer_id >= 0) {
                    pb.base_offset = h.base_offset;
                    pb.last_offset = h.base_offset + h.last_offset_delta;
                    pb.ts_ms = seg->mtime_ms;
                    broker_producers_apply(log->producers, &pb);
                    nbatches++;
                }
            }
            pos += hdr_total(&h);
        }
    }
    if (broker_producers_count(log->producers))
        CORE_INFO(MOD, "%s: producer state: %zu idempotent producers (%s, %" PRId64
                       " batches replayed)",
                  log->dir, broker_producers_count(log->producers),
                  snap ? "snapshot" : "rebuilt from the log", nbatches);
    return 0;
}

/* At clean shutdown, after the final flush: the state as of LEO, so the
 * next open replays nothing. A failure only costs that open a replay. */
static void producers_save(broker_log_t *log)
{
    core_buf_t b;
    core_buf_init(&b);
    broker_producers_encode(log->producers, log->leo, &b);
    int rc = core_fs_write_atomic(log->dir, BROKER_PRODUCER_STATE_FILE, b.data, b.len, 0644);
    if (rc) {
        CORE_WARN(MOD, "%s: writing %s: %s (the next open replays the log)", log->dir,
                  BROKER_PRODUCER_STATE_FILE, core_strerror(rc));
        char p[LOG_PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", log->dir, BROKER_PRODUCER_STATE_FILE);
        unlink(p);
    }
    core_buf_fini(&b);
}

size_t broker_log_producers(const broker_log_t *log)
{
    return broker_producers_count(log->producers);
}

void broker_log__free(broker_log_t *log)
{
    for (int i = 0; i < log->nsegs; i++)
        seg_release(log->segs[i]);
    free(log->segs);
    free(log->epochs);
    broker_producers_free(log->producers);
    core_buf_fini(&log->idx_scratch);
    core_buf_fini(&log->tidx_scratch);
    free(log->hdr_buf);
    pthread_mutex_destroy(&log->mu);
    pthread_mutex_destroy(&log->flush_mu);
    free(log->dir);
    free(log);
}

int broker_log_open(const char *dir, const broker_log_conf_t *conf, broker_log_t **logp,
                    char *errstr, size_t errstr_size)
{
    *logp = NULL;
    if (mkdir(dir, 0755) == 0) {
        /* make the new directory's entry durable before anything is acknowledged in it */
        char parent[LOG_PATH_MAX];
        snprintf(parent, sizeof parent, "%s", dir);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent)
            *slash = 0;
        else
            snprintf(parent, sizeof parent, "%s", slash ? "/" : ".");
        int rc = core_fs_fsync_dir(parent);
        if (rc)
            return core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: fsync: %s", parent,
                             strerror(rc));
    } else if (errno != EEXIST) {
        return core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: mkdir: %s", dir, strerror(errno));
    }
    broker_log_t *log = core_xcalloc(1, sizeof *log);
    log->dir = core_xstrdup(dir);
    broker_log_set_conf(log, conf);
    pthread_mutex_init(&log->mu, NULL);
    pthread_mutex_init(&log->flush_mu, NULL);
    atomic_init(&log->err, 0);
    atomic_init(&log->flushed, 0);
    atomic_init(&log->dir_dirty, false);
    core_buf_init(&log->idx_scratch);
    core_buf_init(&log->tidx_scratch);
    log->hdr_buf = core_xmalloc(HDR_BUF_SIZE);
    log->cur_epoch = -1;
    log->producers = broker_producers_new();

    char marker[LOG_PATH_MAX];
    snprintf(marker, sizeof marker, "%s/%s", dir, BROKER_CLEAN_SHUTDOWN_FILE);
    bool clean = access(marker, F_OK) == 0;
    int rc = epoch_load(log, errstr, errstr_size);
    if (!rc)
        rc = start_load(log, errstr, errstr_size);
    if (!rc)
        rc = log_recover(log, clean, errstr, errstr_size);
    if (rc)
        goto fail;
    /* A start past a (truncated) end means everything up to the end went. */
    if (log->deleted_below > log->leo)
        log->deleted_below = log->leo;
    /* Drop epochs that start past the (possibly truncated) log end. */
    int keep = log->nepochs;
    while (keep > 0 && log->epochs[keep - 1].start_offset > log->leo)
        keep--;
    if (keep != log->nepochs) {
        log->nepochs = keep;
        if ((rc = epoch_save(log))) {
            rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: %s", dir, strerror(rc));
            goto fail;
        }
    }
    if (log->nepochs)
        log->cur_epoch = log->epochs[log->nepochs - 1].epoch;
    if ((rc = producers_load(log, clean, errstr, errstr_size)))
        goto fail;
    /* From here on a crash is an unclean shutdown: the marker must be gone
     * from disk before the first append can happen. */
    if (clean && (unlink(marker) || core_fs_fsync_dir(dir))) {
        rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s: %s", marker, strerror(errno));
        goto fail;
    }
    atomic_store(&log->flushed, log->leo);
    CORE_DEBUG(MOD, "%s: opened (%s shutdown), %d segments, offsets %" PRId64 "..%" PRId64, dir,
               clean ? "clean" : "unclean", log->nsegs, log->segs[0]->base, log->leo);
    *logp = log;
    return 0;
fail:
    broker_log__free(log);
    return rc;
}

void broker_log_close(broker_log_t *log)
{
    if (!log)
        return;
    /* Everything synced (rolled segments, directory, recovery point, active
     * segment and its indexes) before the marker says so (invariant 6). */
    if (broker_log_flush(log) == 0) {
        producers_save(log);
        broker_segment_t *act = active_seg(log);
        char marker[LOG_PATH_MAX];
        snprintf(marker, sizeof marker, "%s/%s", log->dir, BROKER_CLEAN_SHUTDOWN_FILE);
        int fd = -1;
        if (!fdatasync(act->fd) && !fdatasync(act->idx_fd) && !fdatasync(act->tidx_fd) &&
            (fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) >= 0 &&
            !fsync(fd)) {
            close(fd);
            fd = -1;
            core_fs_fsync_dir(log->dir);
        } else {
            CORE_WARN(MOD, "%s: could not mark a clean shutdown: %s", log->dir, strerror(errno));
            if (fd >= 0) {
                close(fd);
                unlink(marker);
            }
        }
    }
    broker_log__free(log);
}

/* ---- append ---------------------------------------------------------------- */

static int log_fail(broker_log_t *log, const char *what, int e)
{
    CORE_ERROR(MOD, "%s: %s: %s; the partition refuses further writes", log->dir, what,
               strerror(e));
    atomic_store(&log->err, CORE_ERR_IO);
    return CORE_ERR_IO;
}

/* Closes the active segment for appends (final time entry) and starts a new
 * one at LEO. No fsync here, on the loop thread: the next broker_log_flush
 * syncs the rolled segment and the directory, then moves the recovery point
 * past it (invariant 3). */
static int log_roll(broker_log_t *log, int64_t now_ms)
{
    broker_segment_t *old = active_seg(log);
    core_buf_reset(&log->tidx_scratch);
    seg_final_time_entry(old, &log->tidx_scratch);
    int rc;
    if (log->tidx_scratch.len &&
        (rc = core_fs_pwrite_all(old->tidx_fd, log->tidx_scratch.data, log->tidx_scratch.len,
                         (old->tidx_n - 1) * BROKER_TIMEINDEX_ENTRY_SIZE)))
        return log_fail(log, "writing time index", rc);
    /* start writing back what the flush will have to wait for */
    (void)sync_file_range(old->fd, old->writeback_pos, 0, SYNC_FILE_RANGE_WRITE);
    if ((rc = seg_create(log, log->leo, now_ms))) {
        /* Nothing was written, so nothing is in doubt: not sticky; the next
         * append tries the roll again (EMFILE, ENOSPC may pass). */
        CORE_ERROR(MOD, "%s: cannot roll: %s", log->dir, strerror(rc));
        return CORE_ERR_IO;
    }
    CORE_DEBUG(MOD, "%s: rolled segment at offset %" PRId64, log->dir, log->leo);
    return 0;
}

bool broker_log_needs_flush(const broker_log_t *log)
{
    for (int i = log->nsegs - 2; i >= 0; i--)
        if (!atomic_load(&log->segs[i]->synced))
            return true;
    return atomic_load(&((broker_log_t *)log)->flushed) < log->leo;
}

int broker_log_append(broker_log_t *log, uint8_t *records, size_t len, int32_t leader_epoch,
                      int64_t *base_offset, int64_t *last_offset)
{
    broker_log_append_res_t res;
    int rc = broker_log_produce(log, records, len, leader_epoch, &res);
    if (!rc) { /* outputs untouched on error */
        *base_offset = res.base_offset;
        *last_offset = res.last_offset;
    }
    return rc;
}

/* The idempotence check of an append (after every batch was validated):
 * each batch with a producer id against the table, or against the previous
 * batch of the same append (one producer per append). A duplicate makes the
 * whole append a duplicate, as in Kafka: clients send one batch per
 * partition per request. */
static int producers_check(broker_log_t *log, const uint8_t *records, size_t len,
                           broker_log_append_res_t *res)
{
    broker_producer_batch_t prev = {.producer_id = -1};
    for (size_t pos = 0; pos < len;) {
        const uint8_t *b = records + pos;
        broker_producer_batch_t pb, dup;
        broker_producer_batch_read(b, &pb);
        pos += (size_t)core_be32(b + BROKER_BATCH_OFF_LENGTH) + BROKER_BATCH_LOG_OVERHEAD;
        if (b[BROKER_BATCH_OFF_ATTRIBUTES + 1] &
            (BROKER_BATCH_ATTR_TRANSACTIONAL | BROKER_BATCH_ATTR_CONTROL)) {
            res->producer = BROKER_PRODUCER_INVALID; /* no transactions here */
            return CORE_ERR_CONFLICT;
        }
        if (pb.producer_id == -1)
            continue;
        broker_producer_verdict_t v;
        if (prev.producer_id != -1 && prev.producer_id != pb.producer_id)
            v = BROKER_PRODUCER_INVALID;
        else
            v = broker_producers_check(log->producers, &pb, prev.producer_id == -1 ? NULL : &prev,
                                       &dup);
        if (v == BROKER_PRODUCER_DUPLICATE) {
            res->producer = v;
            res->base_offset = dup.base_offset;
            res->last_offset = dup.last_offset;
            return 0;
        }
        if (v != BROKER_PRODUCER_OK) {
            res->producer = v;
            return CORE_ERR_CONFLICT;
        }
        prev = pb;
    }
    return 0;
}

int broker_log_produce(broker_log_t *log, uint8_t *records, size_t len, int32_t leader_epoch,
                       broker_log_append_res_t *res)
{
    res->base_offset = res->last_offset = -1;
    res->producer = BROKER_PRODUCER_OK;
    if (atomic_load(&log->err))
        return CORE_ERR_IO;
    if (len == 0)
        return CORE_ERR_MALFORMED;
    /* 1. Validate every batch before touching anything. */
    int64_t count = 0;
    for (size_t pos = 0; pos < len;) {
        size_t total;
        int rc = broker_log__batch_check(records + pos, len - pos, log->conf.max_message_bytes,
                                         &total, NULL);
        if (rc)
            return rc == CORE_ERR_AGAIN ? CORE_ERR_MALFORMED : rc;
        count += (int64_t)core_be32(records + pos + BROKER_BATCH_OFF_LAST_OFFSET_DELTA) + 1;
        pos += total;
    }
    if ((int64_t)len > SEG_MAX_SPAN || count > SEG_MAX_SPAN)
        return CORE_ERR_TOO_LARGE;
    int prc = producers_check(log, records, len, res);
    if (prc || res->producer == BROKER_PRODUCER_DUPLICATE)
        return prc;

    /* 2. Roll when this append would overflow the segment (size, offsets) or it is too old. */
    int64_t now = core_wall_ms();
    broker_segment_t *seg = active_seg(log);
    if (seg->size > 0 &&
        (seg->size + (int64_t)len > log->conf.segment_bytes ||
         log->leo + count - seg->base > SEG_MAX_SPAN || now - seg->created_ms >= log->conf.segment_ms)) {
        int rc = log_roll(log, now);
        if (rc)
            return rc;
        seg = active_seg(log);
    }
    if (leader_epoch >= 0 && (log->nepochs == 0 || leader_epoch > log->epochs[log->nepochs - 1].epoch)) {
        int rc = epoch_assign(log, leader_epoch, log->leo);
        if (rc)
            return rc;
    }

    /* 3. Assign offsets and stamp the epoch (both outside the CRC), and work
     * out the index entries; the segment's index state is only committed
     * after the data write succeeded. */
    seg_index_state_t saved;
    seg_index_state_save(seg, &saved);
    core_buf_reset(&log->idx_scratch);
    core_buf_reset(&log->tidx_scratch);
    int64_t next = log->leo;
    for (size_t pos = 0; pos < len;) {
        uint8_t *b = records + pos;
        int64_t total = (int64_t)core_be32(b + BROKER_BATCH_OFF_LENGTH) + BROKER_BATCH_LOG_OVERHEAD;
        core_put_be64(b + BROKER_BATCH_OFF_BASE_OFFSET, (uint64_t)next);
        core_put_be32(b + BROKER_BATCH_OFF_LEADER_EPOCH, (uint32_t)leader_epoch);
        seg_index_batch(seg, log->conf.index_interval_bytes, next, seg->size + (int64_t)pos,
                        total, (int64_t)core_be64(b + BROKER_BATCH_OFF_MAX_TIMESTAMP),
                        &log->idx_scratch, &log->tidx_scratch);
        next += (int64_t)core_be32(b + BROKER_BATCH_OFF_LAST_OFFSET_DELTA) + 1;
        pos += (size_t)total;
    }

    /* 4. One write for the data, then the index entries (which point only at
     * data already written, invariant 4). On any failure the data file is cut
     * back, so what the producer was told failed does not reappear after a
     * restart (unless the cut fails too: the log is read-only from here on,
     * and a later recovery decides). */
    const char *what = "write";
    int rc = core_fs_pwrite_all(seg->fd, records, len, seg->size);
    if (!rc && log->idx_scratch.len) {
        what = "writing index";
        rc = core_fs_pwrite_all(seg->idx_fd, log->idx_scratch.data, log->idx_scratch.len,
                        saved.idx_n * BROKER_INDEX_ENTRY_SIZE);
    }
    if (!rc && log->tidx_scratch.len) {
        what = "writing time index";
        rc = core_fs_pwrite_all(seg->tidx_fd, log->tidx_scratch.data, log->tidx_scratch.len,
                        saved.tidx_n * BROKER_TIMEINDEX_ENTRY_SIZE);
    }
    if (rc) {
        if (ftruncate(seg->fd, seg->size))
            CORE_ERROR(MOD, "%s: cutting a failed append: %s", seg->path, strerror(errno));
        seg_index_state_restore(seg, &saved);
        return log_fail(log, what, rc);
    }

    if (seg->size == 0)
        seg->created_ms = now;
    seg->mtime_ms = now;
    seg->size += (int64_t)len;
    seg->next = next;
    log->size_bytes += (int64_t)len;
    if (seg->size - seg->writeback_pos >= WRITEBACK_BYTES) {
        /* only a hint: failure here is found by the next fsync */
        (void)sync_file_range(seg->fd, seg->writeback_pos, seg->size - seg->writeback_pos,
                              SYNC_FILE_RANGE_WRITE);
        seg->writeback_pos = seg->size;
    }
    /* Only now that the batches are in the log do they count for idempotence. */
    int64_t off = log->leo;
    for (size_t pos = 0; pos < len;) {
        const uint8_t *b = records + pos;
        broker_producer_batch_t pb;
        broker_producer_batch_read(b, &pb);
        int64_t n = (int64_t)core_be32(b + BROKER_BATCH_OFF_LAST_OFFSET_DELTA) + 1;
        if (pb.producer_id >= 0) {
            pb.base_offset = off;
            pb.last_offset = off + n - 1;
            pb.ts_ms = now;
            broker_producers_apply(log->producers, &pb);
        }
        off += n;
        pos += (size_t)core_be32(b + BROKER_BATCH_OFF_LENGTH) + BROKER_BATCH_LOG_OVERHEAD;
    }
    res->base_offset = log->leo;
    res->last_offset = next - 1;
    pthread_mutex_lock(&log->mu);
    log->leo = next;
    pthread_mutex_unlock(&log->mu);
    log->hw = next; /* single node: everything appended is committed */
    return 0;
}

/* ---- flush ----------------------------------------------------------------- */

int broker_log_flush(broker_log_t *log)
{
    pthread_mutex_lock(&log->flush_mu);
    /* Snapshot under mu: LEO, the active segment, and the rolled segments
     * not yet synced (references kept, so retention may unlink them meanwhile). */
    broker_segment_t *stack[16], **todo = stack;
    int ntodo = 0;
    pthread_mutex_lock(&log->mu);
    int64_t target = log->leo;
    broker_segment_t *act = active_seg(log);
    int nunsynced = 0;
    for (int i = 0; i < log->nsegs - 1; i++)
        nunsynced += !atomic_load(&log->segs[i]->synced);
    if (nunsynced > (int)(sizeof stack / sizeof stack[0]))
        todo = core_xmalloc(sizeof *todo * (size_t)nunsynced);
    for (int i = 0; i < log->nsegs - 1; i++)
        if (!atomic_load(&log->segs[i]->synced)) {
            seg_keep(log->segs[i]);
            todo[ntodo++] = log->segs[i];
        }
    seg_keep(act);
    bool dir = atomic_exchange(&log->dir_dirty, false);
    pthread_mutex_unlock(&log->mu);

    int rc = atomic_load(&log->err);
    /* Rolled segments first, then the directory (their successors' names),
     * then the active segment; only then may `flushed` and the recovery
     * point move (invariants 2 and 3). */
    for (int i = 0; i < ntodo && !rc; i++) {
        broker_segment_t *seg = todo[i];
        if (fdatasync(seg->fd) || fdatasync(seg->idx_fd) || fdatasync(seg->tidx_fd))
            rc = log_fail(log, "fsync of a rolled segment", errno);
        else
            atomic_store(&seg->synced, true);
    }
    if (!rc && dir && (rc = core_fs_fsync_dir(log->dir)))
        rc = log_fail(log, "fsync of the directory", rc);
    if (!rc && target > atomic_load(&log->flushed)) {
        if (fdatasync(act->fd))
            rc = log_fail(log, "fsync", errno);
        else
            atomic_store(&log->flushed, target);
    }
    /* Every segment before `act` is synced now. */
    if (!rc && act->base > log->recovery_point) {
        int e = rp_save(log, act->base);
        if (e)
            rc = log_fail(log, "writing " BROKER_RECOVERY_POINT_FILE, e);
    }
    for (int i = 0; i < ntodo; i++)
        seg_release(todo[i]);
    if (todo != stack)
        free(todo);
    seg_release(act);
    pthread_mutex_unlock(&log->flush_mu);
    return rc;
}

/* ---- accessors ------------------------------------------------------------- */

int64_t broker_log_start_offset(const broker_log_t *log)
{
    int64_t base = log->segs[0]->base;
    return log->deleted_below > base ? log->deleted_below : base;
}
int64_t broker_log_end_offset(const broker_log_t *log)
{
    return log->leo;
}
int64_t broker_log_high_watermark(const broker_log_t *log)
{
    return log->hw;
}
int64_t broker_log_flushed(const broker_log_t *log)
{
    return atomic_load(&((broker_log_t *)log)->flushed);
}
int64_t broker_log_size_bytes(const broker_log_t *log)
{
    return log->size_bytes;
}

/* ---- read ------------------------------------------------------------------ */

int broker_log_read(broker_log_t *log, int64_t offset, int64_t max_bytes,
                    broker_log_slice_t *slice)
{
    memset(slice, 0, sizeof *slice);
    slice->fd = -1;
    if (offset < broker_log_start_offset(log) || offset > log->hw)
        return CORE_ERR_RANGE;
    if (offset == log->hw)
        return 0;
    int i = segs_find(log, offset);
    while (i < log->nsegs - 1 && offset >= log->segs[i]->next)
        i++;
    broker_segment_t *seg = log->segs[i];
    broker_batch_hdr_t h;
    int64_t start;
    int rc = seg_find(log, seg, offset, &start, &h);
    if (rc == CORE_ERR_NOT_FOUND) {
        CORE_ERROR(MOD, "%s: offset %" PRId64 " below the high watermark is missing", seg->path,
                   offset);
        return CORE_ERR_CORRUPT;
    }
    if (rc)
        return rc;
    /* Whole batches from start: the first unconditionally, then while they
     * fit in max_bytes and begin below the high watermark. */
    int64_t end = start + hdr_total(&h);
    /* Skip over whole runs of batches with the index, then scan the rest. */
    int64_t limit = max_bytes > INT64_MAX - start ? INT64_MAX : start + max_bytes;
    int64_t jump_off = -1;
    int64_t jump = seg_index_jump(seg, end, limit, log->hw, &jump_off);
    if (jump > end) {
        broker_batch_hdr_t j;
        if (hdr_at(log, seg, jump, &j) == 0 && j.base_offset == jump_off)
            end = jump; /* else: a bad entry; scanning on from end is always right */
    }
    while (end < seg->size) {
        if (hdr_at(log, seg, end, &h))
            break; /* serve what is known good; the header was logged */
        if (h.base_offset >= log->hw || end + hdr_total(&h) - start > max_bytes)
            break;
        end += hdr_total(&h);
    }
    seg_keep(seg);
    slice->seg = seg;
    slice->fd = seg->fd;
    slice->file_pos = start;
    slice->len = end - start;
    return 0;
}

void broker_log_slice_release(broker_log_slice_t *slice)
{
    if (slice->seg)
        seg_release(slice->seg);
    slice->seg = NULL;
    slice->fd = -1;
    slice->len = 0;
}

/* ---- time lookups ---------------------------------------------------------- */

/* Largest batch read back to find a record inside it by time; a bigger one
 * is answered at batch granularity. */
#define FOR_TIME_MAX_BATCH (16 << 20)

/* Kafka answers a timestamp lookup with the first *record* whose timestamp
 * is >= ts, not its batch: in an uncompressed CreateTime batch (the batch
 * at pos, whose max timestamp is >= ts) walk the records' timestamp deltas.
 * Returns false (the caller answers with the batch: exact for LogAppendTime,
 * where every record has the batch's time) for a compressed batch (we do not
 * decompress on the broker), one too large, or records that do not parse. */
static bool batch_record_for_time(broker_segment_t *seg, int64_t pos, const broker_batch_hdr_t *h,
                                  int64_t ts, int64_t min_off, int64_t *off, int64_t *rec_ts)
{
    if ((h->attributes & 0x07) || (h->attributes & 0x08))
        return false;
    int64_t total = hdr_total(h);
    if (total > FOR_TIME_MAX_BATCH)
        return false;
    uint8_t *buf = core_trymalloc((size_t)total);
    if (!buf)
        return false;
    bool found = false;
    if (core_fs_pread_all(seg->fd, buf, (size_t)total, pos) == 0) {
        core_rd_t rd;
        core_rd_init(&rd, buf + BROKER_BATCH_HEADER_SIZE,
                     (size_t)(total - BROKER_BATCH_HEADER_SIZE));
        for (int32_t i = 0; i < h->records_count && !rd.err; i++) {
            int32_t len = core_rd_varint(&rd);
            size_t start = rd.pos;
            (void)core_rd_i8(&rd); /* record attributes */
            int64_t tsd = core_rd_varlong(&rd);
            int32_t od = core_rd_varint(&rd);
            if (rd.err || len < 0 || start + (size_t)len > rd.len || od < 0 ||
                od > h->last_offset_delta)
                break;
            if (h->base_timestamp + tsd >= ts && h->base_offset + od >= min_off) {
                *off = h->base_offset + od;
                *rec_ts = h->base_timestamp + tsd;
                found = true;
                break;
            }
            rd.pos = start + (size_t)len;
        }
    }
    free(buf);
    return found;
}

int64_t broker_log_offset_for_time(broker_log_t *log, int64_t ts, int64_t *ts_out)
{
    if (ts_out)
        *ts_out = -1;
    int64_t start = broker_log_start_offset(log);
    for (int i = 0; i < log->nsegs; i++) {
        broker_segment_t *seg = log->segs[i];
        if (seg->max_ts < ts || seg->size == 0)
            continue;
        int64_t from = seg_time_lookup(seg, ts);
        int64_t pos;
        broker_batch_hdr_t h;
        if (seg_find(log, seg, from, &pos, &h))
            continue;
        for (;;) {
            if (h.base_offset >= log->hw)
                return -1;
            if (h.max_timestamp >= ts && h.base_offset + h.last_offset_delta >= start) {
                int64_t off = h.base_offset, rec_ts = h.max_timestamp;
                if (batch_record_for_time(seg, pos, &h, ts, start, &off, &rec_ts) && off >= log->hw)
                    return -1;
                if (off < start)
                    off = start; /* compressed batch holding the start: answer the start */
                if (ts_out)
                    *ts_out = rec_ts;
                return off;
            }
            pos += hdr_total(&h);
            if (pos >= seg->size || hdr_at(log, seg, pos, &h))
                break;
        }
    }
    return -1;
}

/* ---- housekeeping ---------------------------------------------------------- */

/* Removes the oldest segment: out of the list first (so no new reader finds
 * it), then its files (.log first: an index without a log is a leftover that
 * open removes). Open slices keep its fd alive. */
static void log_delete_oldest(broker_log_t *log, const char *why)
{
    broker_segment_t *seg = log->segs[0];
    pthread_mutex_lock(&log->mu);
    memmove(log->segs, log->segs + 1, sizeof *log->segs * (size_t)(log->nsegs - 1));
    log->nsegs--;
    pthread_mutex_unlock(&log->mu);
    log->size_bytes -= seg->size;
    if (log->hdr_seg_id == seg->id)
        log->hdr_seg_id = 0;
    char p[LOG_PATH_MAX];
    unlink(seg->path);
    seg_sibling(p, seg, BROKER_INDEX_SUFFIX);
    unlink(p);
    seg_sibling(p, seg, BROKER_TIMEINDEX_SUFFIX);
    unlink(p);
    CORE_INFO(MOD, "%s: deleted segment %" PRId64 "..%" PRId64 " (%" PRId64 " bytes, %s); "
                   "log start offset now %" PRId64,
              log->dir, seg->base, seg->next - 1, seg->size, why, log->segs[0]->base);
    seg_release(seg);
}

int broker_log_delete_records(broker_log_t *log, int64_t offset, int64_t *low)
{
    *low = broker_log_start_offset(log);
    if (offset < 0 || offset > log->hw)
        return CORE_ERR_RANGE;
    if (offset <= *low)
        return 0;
    int rc = offset_file_save(log, BROKER_LOG_START_FILE, offset);
    if (rc) {
        CORE_ERROR(MOD, "%s: writing %s: %s", log->dir, BROKER_LOG_START_FILE, strerror(rc));
        return CORE_ERR_IO;
    }
    log->deleted_below = offset;
    while (log->nsegs > 1 && log->segs[0]->next <= offset)
        log_delete_oldest(log, "DeleteRecords");
    *low = broker_log_start_offset(log);
    CORE_INFO(MOD, "%s: records below %" PRId64 " deleted (DeleteRecords)", log->dir, offset);
    return 0;
}

int broker_log_housekeep(broker_log_t *log, int64_t now_ms)
{
    int deleted = 0;
    broker_segment_t *act = active_seg(log);
    if (!atomic_load(&log->err) && act->size > 0 && now_ms - act->created_ms >= log->conf.segment_ms)
        (void)log_roll(log, now_ms); /* failure is sticky and logged */
    while (log->nsegs > 1) {
        broker_segment_t *seg = log->segs[0];
        if (log->conf.retention_bytes >= 0 &&
            log->size_bytes - seg->size >= log->conf.retention_bytes) {
            log_delete_oldest(log, "retention.bytes");
        } else if (log->conf.retention_ms >= 0 &&
                   (seg->max_ts >= 0 ? seg->max_ts : seg->mtime_ms) < now_ms - log->conf.retention_ms) {
            log_delete_oldest(log, "retention.ms");
        } else {
            break;
        }
        deleted++;
    }
    if (deleted)
        core_fs_fsync_dir(log->dir);
    broker_producers_expire(log->producers, now_ms, BROKER_PRODUCER_EXPIRE_MS);
    return deleted;
}

int broker_log_destroy(broker_log_t *log)
{
    char *dir = core_xstrdup(log->dir);
    broker_log__free(log);
    int rc = 0;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char p[LOG_PATH_MAX];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            if (unlink(p) && !rc)
                rc = errno;
        }
        closedir(d);
    }
    if (rmdir(dir) && !rc)
        rc = errno;
    free(dir);
    return rc ? CORE_ERR_IO : 0;
}
