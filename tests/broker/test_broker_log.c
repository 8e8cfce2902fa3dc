/*
 * broker_log: appends, validation, reads, recovery, indexes, roll,
 * retention, leader epochs, flush from another thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <sys/resource.h>

#include "batch_builder.h"
#include "broker/broker_log.h"
#include "broker/broker_log_int.h"
#include "core/core_err.h"
#include "core/core_time.h"
#include "test_util.h"

#define TS0 1700000000000LL

typedef struct fixture {
    char *dir;   /* temp root */
    char *ldir;  /* the partition directory */
    broker_log_conf_t conf;
    broker_log_t *log;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    f->ldir = malloc(4096);
    snprintf(f->ldir, 4096, "%s/t-0", f->dir);
    broker_log_conf_default(&f->conf);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->log)
        broker_log_close(f->log);
    tu_rmrf(f->dir);
    free(f->dir);
    free(f->ldir);
    free(f);
    return 0;
}

static void open_log(fixture_t *f)
{
    char err[256] = "";
    int rc = broker_log_open(f->ldir, &f->conf, &f->log, err, sizeof err);
    if (rc)
        fail_msg("open: %s: %s", core_errname(rc), err);
}

static void reopen(fixture_t *f)
{
    broker_log_close(f->log);
    f->log = NULL;
    open_log(f);
}

/* Appends one batch of n records with timestamp ts; returns its base offset. */
static int64_t append_n(fixture_t *f, int n, int64_t ts, size_t value_size)
{
    core_buf_t b;
    core_buf_init(&b);
    bb_simple(&b, n, ts, value_size);
    int64_t base = -1, last = -1;
    int rc = broker_log_append(f->log, b.data, b.len, 0, &base, &last);
    assert_int_equal(rc, 0);
    assert_int_equal(last - base + 1, n);
    core_buf_fini(&b);
    return base;
}

static char *seg_file(fixture_t *f, int64_t base, const char *suffix)
{
    static char p[4][4096];
    static int k;
    char *s = p[k++ % 4];
    snprintf(s, 4096, "%s/%020lld%s", f->ldir, (long long)base, suffix);
    return s;
}

/* Reads a slice into memory and checks it holds whole valid batches;
 * returns the number of batches and their first / last offsets. */
static int slice_batches(broker_log_slice_t *s, int64_t *first, int64_t *last)
{
    if (s->len == 0)
        return 0;
    uint8_t *buf = malloc((size_t)s->len);
    assert_int_equal(pread(s->fd, buf, (size_t)s->len, s->file_pos), s->len);
    int n = 0;
    for (int64_t pos = 0; pos < s->len;) {
        size_t total;
        assert_int_equal(broker_log__batch_check(buf + pos, (size_t)(s->len - pos), INT64_MAX,
                                                 &total, NULL),
                         0);
        broker_batch_hdr_t h;
        broker_log__hdr_decode(buf + pos, &h);
        if (n == 0)
            *first = h.base_offset;
        *last = h.base_offset + h.last_offset_delta;
        pos += (int64_t)total;
        n++;
    }
    free(buf);
    return n;
}

static void append_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static int run_dump(const char *path);

/* ------------------------------------------------------------------------- */

static void test_append_assigns_contiguous_offsets_and_reads_them_back(void **state)
{
    fixture_t *f = *state;
    open_log(f);
    assert_int_equal(broker_log_end_offset(f->log), 0);
    assert_int_equal(append_n(f, 3, TS0, 20), 0);
    assert_int_equal(append_n(f, 5, TS0, 20), 3);
    /* two batches in one blob, as in one Produce partition */
    core_buf_t b;
    core_buf_init(&b);
    bb_simple(&b, 2, TS0, 20);
    bb_simple(&b, 4, TS0, 20);
    int64_t base, last;
    assert_int_equal(broker_log_append(f->log, b.data, b.len, 0, &base, &last), 0);
    assert_int_equal(base, 8);
    assert_int_equal(last, 13);
    /* the buffer was rewritten in place: second batch's baseOffset is 10 */
    broker_batch_hdr_t h;
    broker_log__hdr_decode(b.data + core_be32(b.data + 8) + 12, &h);
    assert_int_equal(h.base_offset, 10);
    core_buf_fini(&b);
    assert_int_equal(broker_log_end_offset(f->log), 14);
    assert_int_equal(broker_log_high_watermark(f->log), 14);
    assert_int_equal(broker_log_start_offset(f->log), 0);

    broker_log_slice_t s;
    assert_int_equal(broker_log_read(f->log, 0, 1 << 20, &s), 0);
    int64_t first, lst;
    assert_int_equal(slice_batches(&s, &first, &lst), 4);
    assert_int_equal(first, 0);
    assert_int_equal(lst, 13);
    broker_log_slice_release(&s);

    reopen(f);
    assert_int_equal(broker_log_end_offset(f->log), 14);
    assert_int_equal(append_n(f, 1, TS0, 20), 14);
}

static void test_append_rejects_bad_crc_and_appends_nothing(void **state)
{
    fixture_t *f = *state;
    open_log(f);
    append_n(f, 1, TS0, 20);
    int64_t size = broker_log_size_bytes(f->log);
    core_buf_t b;
    core_buf_init(&b);
    bb_simple(&b, 2, TS0, 20);
    size_t second = bb_simple(&b, 2, TS0, 20);
    b.data[second + 70] ^= 0x01; /* one bit in the second batch's records */
    int64_t base = -7, last = -7;
    assert_int_equal(broker_log_append(f->log, b.data, b.len, 0, &base, &last), CORE_ERR_CRC);
    assert_int_equal(base, -7);
    assert_int_equal(broker_log_end_offset(f->log), 1);
    assert_int_equal(broker_log_size_bytes(f->log), size);
    assert_int_equal(tu_file_size(seg_file(f, 0, ".log")), size);
    core_buf_fini(&b);
}

static void test_append_rejects_malformed_legacy_and_oversized_batches(void **state)
{
    fixture_t *f = *state;
    f->conf.max_message_bytes = 1000;
    open_log(f);
    core_buf_t b;
    core_buf_init(&b);
    int64_t base, last;
    /* batchLength past the end of the buffer */
    bb_simple(&b, 1, TS0, 20);
    assert_int_equal(broker_log_append(f->log, b.data, b.len - 1, 0, &base, &last),
                     CORE_ERR_MALFORMED);
    /* magic 1 */
    b.data[16] = 1;
    assert_int_equal(broker_log_append(f->log, b.data, b.len, 0, &base, &last),
                     CORE_ERR_UNSUPPORTED);
    b.data[16] = 2;
    /* recordsCount disagreeing with lastOffsetDelta (CRC fixed so only that is wrong) */
    core_put_be32(b.data + 57, 5);
    bb_fix_crc(b.data);
    assert_int_equal(broker_log_append(f->log, b.data, b.len, 0, &base, &last),
                     CORE_ERR_MALFORMED);
    /* over max.message.bytes */
    core_buf_reset(&b);
    bb_simple(&b, 1, TS0, 2000);
    assert_int_equal(broker_log_append(f->log, b.data, b.len, 0, &base, &last),
                     CORE_ERR_TOO_LARGE);
    /* a truncated header and an empty blob */
    assert_int_equal(broker_log_append(f->log, b.data, 10, 0, &base, &last), CORE_ERR_MALFORMED);
    assert_int_equal(broker_log_append(f->log, b.data, 0, 0, &base, &last), CORE_ERR_MALFORMED);
    assert_int_equal(broker_log_end_offset(f->log), 0);
    assert_int_equal(broker_log_size_bytes(f->log), 0);
    core_buf_fini(&b);
}

static void test_recover_truncates_torn_tail_of_active_segment(void **state)
{
    fixture_t *f = *state;
    open_log(f);
    for (int i = 0; i < 10; i++)
        append_n(f, 2, TS0, 50);
    int64_t good = broker_log_size_bytes(f->log);
    broker_log_close(f->log); /* no clean marker would matter: cut it below */
    f->log = NULL;
    /* a torn batch: the first 40 bytes of a valid one */
    core_buf_t b;
    core_buf_init(&b);
    bb_simple(&b, 3, TS0, 50);
    core_put_be64(b.data, 20);
    append_bytes(seg_file(f, 0, ".log"), b.data, 40);
    char marker[4096];
    snprintf(marker, sizeof marker, "%s/%s", f->ldir, BROKER_CLEAN_SHUTDOWN_FILE);
    unlink(marker);
    open_log(f);
    assert_int_equal(broker_log_end_offset(f->log), 20);
    assert_int_equal(tu_file_size(seg_file(f, 0, ".log")), good);
    /* a whole batch whose CRC is wrong is cut as well, and so is all after it */
    broker_log_close(f->log);
    f->log = NULL;
    b.data[100] ^= 0xff;
    append_bytes(seg_file(f, 0, ".log"), b.data, b.len);
    core_buf_reset(&b);
    bb_simple(&b, 1, TS0, 50);
    core_put_be64(b.data, 23);
    append_bytes(seg_file(f, 0, ".log"), b.data, b.len);
    unlink(marker);
    open_log(f);
    assert_int_equal(broker_log_end_offset(f->log), 20);
    assert_int_equal(tu_file_size(seg_file(f, 0, ".log")), good);
    assert_int_equal(append_n(f, 1, TS0, 50), 20);
    core_buf_fini(&b);
}

static void test_zero_filled_tail_is_not_a_batch(void **state)
{
    fixture_t *f = *state;
    open_log(f);
    append_n(f, 4, TS0, 30);
    int64_t good = broker_log_size_bytes(f->log);
    broker_log_close(f->log);
    f->log = NULL;
    /* what a crash leaves after the file size was extended but before the data hit disk */
    static uint8_t zeros[8192];
    append_bytes(seg_file(f, 0, ".log"), zeros, sizeof zeros);
    open_log(f);
    assert_int_equal(broker_log_end_offset(f->log), 4);
    assert_int_equal(tu_file_size(seg_file(f, 0, ".log")), good);
    /* and on its own, with nothing valid before it */
    size_t total;
    assert_int_not_equal(broker_log__batch_check(zeros, sizeof zeros, INT64_MAX, &total, NULL), 0);
}

static void test_index_is_rebuilt_when_it_points_past_the_log(void **state)
{
    fixture_t *f = *state;
    f->conf.index_interval_bytes = 100;
    open_log(f);
    for (int i = 0; i < 50; i++)
        append_n(f, 1, TS0 + i, 100);
    long long isize = tu_file_size(seg_file(f, 0, ".index"));
    assert_true(isize >= 8 * 40);
    broker_log_close(f->log);
    f->log = NULL;
    /* garbage entries pointing far past the end of the log */
    uint8_t e[16];
    core_put_be32(e, 1000), core_put_be32(e + 4, 1 << 30);
    core_put_be32(e + 8, 2000), core_put_be32(e + 12, 2 << 28);
    append_bytes(seg_file(f, 0, ".index"), e, sizeof e);
    open_log(f);
    assert_int_equal(tu_file_size(seg_file(f, 0, ".index")), isize);
    /* reads through the index find every batch */
    for (int64_t o = 0; o < 50; o++) {
        broker_log_slice_t s;
        assert_int_equal(broker_log_read(f->log, o, 1, &s), 0);
        int64_t a, b;
        assert_int_equal(slice_batches(&s, &a, &b), 1);
        assert_int_equal(a, o);
        broker_log_slice_release(&s);
    }
    /* a missing index is rebuilt too */
    broker_log_close(f->log);
    f->log = NULL;
    unlink(seg_file(f, 0, ".index"));
    unlink(seg_file(f, 0, ".timeindex"));
    open_log(f);
    assert_int_equal(tu_file_size(seg_file(f, 0, ".index")), isize);
    assert_true(tu_file_size(seg_file(f, 0, ".timeindex")) > 0);
}

static void test_index_of_a_rolled_segment_is_rebuilt_after_a_clean_shutdown_too(void **state)
{
    fixture_t *f = *state;
    f->conf.index_interval_bytes = 100;
    f->conf.segment_bytes = 3000;
    open_log(f);
    for (int i = 0; i < 40; i++)
        append_n(f, 1, TS0 + i, 150);
    assert_true(tu_file_exists(seg_file(f, 0, ".log")));
    long long isize = tu_file_size(seg_file(f, 0, ".index"));
    long long tsize = tu_file_size(seg_file(f, 0, ".timeindex"));
    assert_true(isize > 8);
    broker_log_close(f->log); /* clean: rolled segments are not scanned on open */
    f->log = NULL;
    uint8_t e[8];
    core_put_be32(e, 5), core_put_be32(e + 4, 1 << 30);
    append_bytes(seg_file(f, 0, ".index"), e, sizeof e);
    assert_int_equal(truncate(seg_file(f, 0, ".timeindex"), 0), 0);
    open_log(f);
    assert_int_equal(tu_file_size(seg_file(f, 0, ".index")), isize);
    assert_int_equal(tu_file_size(seg_file(f, 0, ".timeindex")), tsize);
    int64_t ts;
    assert_int_equal(broker_log_offset_for_time(f->log, TS0 + 3, &ts), 3);
    broker_log_close(f->log);
    f->log = NULL;
    assert_int_equal(run_dump(f->ldir), 0);
}

static void test_read_returns_at_least_one_whole_batch(void **state)
{
    fixture_t *f = *state;
    open_log(f);
    append_n(f, 10, TS0, 500); /* offsets 0..9, one batch of ~5 KB */
    append_n(f, 10, TS0, 500); /* 10..19 */
    append_n(f, 10, TS0, 500); /* 20..29 */
    broker_log_slice_t s;
    int64_t a, b;
    /* max_bytes 1: still one whole batch */
    assert_int_equal(broker_log_read(f->log, 0, 1, &s), 0);
    assert_int_equal(slice_batches(&s, &a, &b), 1);
    assert_int_equal(a, 0);
    assert_int_equal(b, 9);
    broker_log_slice_release(&s);
    /* an offset in the middle of a batch starts at that batch */
    assert_int_equal(broker_log_read(f->log, 15, 1, &s), 0);
    assert_int_equal(slice_batches(&s, &a, &b), 1);
    assert_int_equal(a, 10);
    broker_log_slice_release(&s);
    /* max_bytes for two batches gives exactly two, never a partial third */
    assert_int_equal(broker_log_read(f->log, 0, 2 * s.len + 100, &s), 0);
    int64_t want = s.len;
    broker_log_slice_release(&s);
    assert_int_equal(broker_log_read(f->log, 5, 2 * want + want / 2, &s), 0);
    assert_int_equal(slice_batches(&s, &a, &b), 2);
    assert_int_equal(b, 19);
    broker_log_slice_release(&s);
    /* at the high watermark: nothing yet; past it or below start: out of range */
    assert_int_equal(broker_log_read(f->log, 30, 1 << 20, &s), 0);
    assert_int_equal(s.len, 0);
    broker_log_slice_release(&s);
    assert_int_equal(broker_log_read(f->log, 31, 1 << 20, &s), CORE_ERR_RANGE);
    assert_int_equal(broker_log_read(f->log, -1, 1 << 20, &s), CORE_ERR_RANGE);
}

static void test_read_through_the_index_stops_on_the_last_batch_that_fits(void **state)
{
    fixture_t *f = *state;
    f->conf.index_interval_bytes = 150;
    open_log(f);
    enum { N = 120 };
    int64_t sizes[N], pos[N + 1];
    pos[0] = 0;
    for (int i = 0; i < N; i++) {
        int64_t before = broker_log_size_bytes(f->log);
        append_n(f, 1, TS0, 16 + (size_t)((i * 37) % 200));
        sizes[i] = broker_log_size_bytes(f->log) - before;
        pos[i + 1] = pos[i] + sizes[i];
    }
    for (int start = 0; start < N; start += 7) {
        for (int64_t max = 1; max < 6000; max = max * 3 + 11) {
            /* expected: whole batches from start while the total fits, at least one */
            int end = start + 1;
            while (end < N && pos[end + 1] - pos[start] <= max)
                end++;
            broker_log_slice_t s;
            assert_int_equal(broker_log_read(f->log, start, max, &s), 0);
            if (s.file_pos != pos[start] || s.len != pos[end] - pos[start])
                fail_msg("read(%d, %lld): got pos %lld len %lld, want pos %lld len %lld", start,
                         (long long)max, (long long)s.file_pos, (long long)s.len,
                         (long long)pos[start], (long long)(pos[end] - pos[start]));
            broker_log_slice_release(&s);
        }
    }
}

static void test_roll_by_size(void **state)
{
    fixture_t *f = *state;
    f->conf.segment_bytes = 2000;
    open_log(f);
    for (int i = 0; i < 20; i++)
        append_n(f, 1, TS0, 400); /* ~470 bytes each: 4 per segment */
    assert_true(tu_file_exists(seg_file(f, 0, ".log")));
    assert_true(tu_file_exists(seg_file(f, 4, ".log")));
    assert_true(tu_file_exists(seg_file(f, 8, ".log")));
    assert_true(tu_file_exists(seg_file(f, 16, ".log")));
    assert_true(tu_file_size(seg_file(f, 0, ".log")) <= 2000);
    /* a read never crosses a segment */
    broker_log_slice_t s;
    int64_t a, b;
    assert_int_equal(broker_log_read(f->log, 2, 1 << 20, &s), 0);
    assert_int_equal(slice_batches(&s, &a, &b), 2);
    assert_int_equal(b, 3);
    broker_log_slice_release(&s);
    /* reopen after a clean shutdown keeps all segments and their offsets */
    reopen(f);
    assert_int_equal(broker_log_end_offset(f->log), 20);
    for (int64_t o = 0; o < 20; o++) {
        assert_int_equal(broker_log_read(f->log, o, 1, &s), 0);
        assert_int_equal(slice_batches(&s, &a, &b), 1);
        assert_int_equal(a, o);
        broker_log_slice_release(&s);
    }
}

static void test_roll_by_time(void **state)
{
    fixture_t *f = *state;
    f->conf.segment_ms = 1000;
    open_log(f);
    append_n(f, 1, TS0, 20);
    assert_int_equal(broker_log_housekeep(f->log, core_wall_ms()), 0);
    assert_false(tu_file_exists(seg_file(f, 1, ".log")));
    broker_log_housekeep(f->log, core_wall_ms() + 2000);
    assert_true(tu_file_exists(seg_file(f, 1, ".log")));
    /* an empty active segment is never rolled */
    broker_log_housekeep(f->log, core_wall_ms() + 4000);
    assert_int_equal(append_n(f, 1, TS0, 20), 1);
}

static void test_retention_by_size_and_time_deletes_whole_segments(void **state)
{
    fixture_t *f = *state;
    f->conf.segment_bytes = 1000;
    open_log(f);
    /* 3 segments of 2 batches each with old timestamps, then newer ones */
    for (int i = 0; i < 6; i++)
        append_n(f, 1, TS0 + i * 1000, 400);
    for (int i = 0; i < 6; i++)
        append_n(f, 1, TS0 + 100000 + i * 1000, 400);
    assert_true(tu_file_exists(seg_file(f, 10, ".log")));
    int64_t seg_size = tu_file_size(seg_file(f, 0, ".log"));
    /* by time: segments whose newest batch is older than now - retention.ms */
    broker_log_conf_t c = f->conf;
    c.retention_ms = 50000;
    broker_log_set_conf(f->log, &c);
    int64_t now = TS0 + 100000 + 40000; /* keeps segments with max ts >= TS0 + 90000 */
    assert_int_equal(broker_log_housekeep(f->log, now), 3);
    assert_int_equal(broker_log_start_offset(f->log), 6);
    assert_false(tu_file_exists(seg_file(f, 0, ".log")));
    assert_false(tu_file_exists(seg_file(f, 0, ".index")));
    assert_false(tu_file_exists(seg_file(f, 4, ".timeindex")));
    assert_true(tu_file_exists(seg_file(f, 6, ".log")));
    broker_log_slice_t s;
    assert_int_equal(broker_log_read(f->log, 3, 100, &s), CORE_ERR_RANGE);
    /* by size: keep at most ~2 segments' worth; the active one always stays */
    c.retention_ms = -1;
    c.retention_bytes = 2 * seg_size;
    broker_log_set_conf(f->log, &c);
    assert_int_equal(broker_log_housekeep(f->log, now), 1);
    assert_int_equal(broker_log_start_offset(f->log), 8);
    assert_true(broker_log_size_bytes(f->log) <= 2 * seg_size);
    c.retention_bytes = 0;
    broker_log_set_conf(f->log, &c);
    assert_int_equal(broker_log_housekeep(f->log, now), 1);
    assert_int_equal(broker_log_start_offset(f->log), 10);
    assert_int_equal(broker_log_end_offset(f->log), 12);
    /* the start offset survives a reopen */
    reopen(f);
    assert_int_equal(broker_log_start_offset(f->log), 10);
    assert_int_equal(broker_log_end_offset(f->log), 12);
}

static void test_slice_keeps_deleted_segment_readable(void **state)
{
    fixture_t *f = *state;
    f->conf.segment_bytes = 1000;
    open_log(f);
    for (int i = 0; i < 6; i++)
        append_n(f, 1, TS0, 400);
    broker_log_slice_t s;
    assert_int_equal(broker_log_read(f->log, 0, 1 << 20, &s), 0);
    int64_t a, b;
    broker_log_conf_t c = f->conf;
    c.retention_bytes = 0;
    broker_log_set_conf(f->log, &c);
    assert_true(broker_log_housekeep(f->log, TS0) >= 2);
    assert_false(tu_file_exists(seg_file(f, 0, ".log")));
    /* the file is gone from the directory, but the slice still reads it */
    assert_int_equal(slice_batches(&s, &a, &b), 2);
    assert_int_equal(a, 0);
    broker_log_slice_release(&s);
}

static void test_offset_for_time(void **state)
{
    fixture_t *f = *state;
    f->conf.index_interval_bytes = 200;
    f->conf.segment_bytes = 3000;
    open_log(f);
    /* timestamps 10, 20, ..., 300 at offsets 0..29, several segments */
    for (int i = 0; i < 30; i++)
        append_n(f, 1, (i + 1) * 10, 150);
    int64_t ts;
    assert_int_equal(broker_log_offset_for_time(f->log, 0, &ts), 0);
    assert_int_equal(ts, 10);
    assert_int_equal(broker_log_offset_for_time(f->log, 10, &ts), 0);
    assert_int_equal(broker_log_offset_for_time(f->log, 11, &ts), 1);
    assert_int_equal(ts, 20);
    for (int i = 0; i < 30; i++)
        assert_int_equal(broker_log_offset_for_time(f->log, (i + 1) * 10, &ts), i);
    assert_int_equal(broker_log_offset_for_time(f->log, 301, &ts), -1);
    assert_int_equal(ts, -1);
    /* the same answers from the indexes loaded after a clean reopen */
    reopen(f);
    for (int i = 0; i < 30; i++)
        assert_int_equal(broker_log_offset_for_time(f->log, (i + 1) * 10 - 5, &ts), i);
}

/* Kafka answers with the record, not its batch: records at 100, 110, ...,
 * 190 in one batch, then a compressed-flagged batch (answered per batch). */
static void test_offset_for_time_finds_the_record_inside_a_batch(void **state)
{
    fixture_t *f = *state;
    open_log(f);
    append_n(f, 2, 50, 20); /* offsets 0, 1 at ts 50 */
    core_buf_t b;
    core_buf_init(&b);
    batch_builder_t bb;
    bb_begin(&bb, 100);
    for (int i = 0; i < 10; i++)
        bb_add_h(&bb, "k", 1, "value", 5, 100 + 10 * i, i % 2 ? "h" : NULL, "x", 1);
    bb_end(&bb, &b);
    size_t second = b.len;
    bb_begin(&bb, 300);
    for (int i = 0; i < 4; i++)
        bb_add(&bb, NULL, -1, "v", 1, 300 + 10 * i);
    bb.attributes = 1; /* "gzip": only the header is looked at here */
    bb_end(&bb, &b);
    bb_fix_crc(b.data + second);
    int64_t base, last;
    assert_int_equal(broker_log_append(f->log, b.data, b.len, 0, &base, &last), 0);
    core_buf_fini(&b);
    int64_t ts;
    assert_int_equal(broker_log_offset_for_time(f->log, 100, &ts), 2);
    assert_int_equal(ts, 100);
    assert_int_equal(broker_log_offset_for_time(f->log, 101, &ts), 3);
    assert_int_equal(ts, 110);
    assert_int_equal(broker_log_offset_for_time(f->log, 150, &ts), 7);
    assert_int_equal(ts, 150);
    assert_int_equal(broker_log_offset_for_time(f->log, 190, &ts), 11);
    assert_int_equal(broker_log_offset_for_time(f->log, 191, &ts), 12);
    assert_int_equal(ts, 330); /* compressed: the batch, with its max timestamp */
    assert_int_equal(broker_log_offset_for_time(f->log, 331, &ts), -1);
}

static void test_delete_records_moves_the_start_durably_and_drops_whole_segments(void **state)
{
    fixture_t *f = *state;
    f->conf.segment_bytes = 1000;
    open_log(f);
    /* offsets 0..29, one record per batch, ts 10..300, several segments */
    for (int i = 0; i < 30; i++)
        append_n(f, 1, (i + 1) * 10, 150);
    assert_true(tu_file_exists(seg_file(f, 0, ".log")));
    int64_t low;
    assert_int_equal(broker_log_delete_records(f->log, 31, &low), CORE_ERR_RANGE);
    assert_int_equal(broker_log_delete_records(f->log, -1, &low), CORE_ERR_RANGE);
    assert_int_equal(low, 0);
    assert_int_equal(broker_log_delete_records(f->log, 12, &low), 0);
    assert_int_equal(low, 12);
    assert_int_equal(broker_log_start_offset(f->log), 12);
    assert_false(tu_file_exists(seg_file(f, 0, ".log"))); /* wholly below 12 */
    broker_log_slice_t sl;
    assert_int_equal(broker_log_read(f->log, 11, 1 << 20, &sl), CORE_ERR_RANGE);
    assert_int_equal(broker_log_read(f->log, 12, 1 << 20, &sl), 0);
    int64_t a, b;
    assert_true(slice_batches(&sl, &a, &b) >= 1);
    assert_true(a <= 12 && b >= 12);
    broker_log_slice_release(&sl);
    int64_t ts;
    assert_int_equal(broker_log_offset_for_time(f->log, 0, &ts), 12);
    assert_int_equal(ts, 130);
    assert_int_equal(broker_log_offset_for_time(f->log, 200, &ts), 19);
    /* lower or equal: nothing changes */
    assert_int_equal(broker_log_delete_records(f->log, 5, &low), 0);
    assert_int_equal(low, 12);
    /* durable across a reopen, clean or not */
    reopen(f);
    assert_int_equal(broker_log_start_offset(f->log), 12);
    assert_int_equal(broker_log_end_offset(f->log), 30);
    /* up to the end: the log is empty but keeps its offsets */
    assert_int_equal(broker_log_delete_records(f->log, 30, &low), 0);
    assert_int_equal(low, 30);
    assert_int_equal(append_n(f, 1, 400, 20), 30);
    assert_int_equal(broker_log_start_offset(f->log), 30);
    assert_int_equal(broker_log_offset_for_time(f->log, 0, &ts), 30);
}

static void test_leader_epoch_is_stamped_and_checkpointed(void **state)
{
    fixture_t *f = *state;
    open_log(f);
    assert_int_equal(broker_log_leader_epoch(f->log), -1);
    assert_int_equal(broker_log_set_leader_epoch(f->log, 0), 0);
    append_n(f, 2, TS0, 20); /* epoch 0 (append_n passes 0) */
    assert_int_equal(broker_log_set_leader_epoch(f->log, 3), 0);
    core_buf_t b;
    core_buf_init(&b);
    bb_simple(&b, 1, TS0, 20);
    int64_t base, last;
    assert_int_equal(broker_log_append(f->log, b.data, b.len, 3, &base, &last), 0);
    core_buf_fini(&b);
    broker_log_slice_t s;
    assert_int_equal(broker_log_read(f->log, 2, 1 << 20, &s), 0);
    uint8_t hdr[61];
    assert_int_equal(pread(s.fd, hdr, sizeof hdr, s.file_pos), 61);
    assert_int_equal((int32_t)core_be32(hdr + 12), 3);
    broker_log_slice_release(&s);
    char p[4096], text[256] = "";
    snprintf(p, sizeof p, "%s/%s", f->ldir, BROKER_LEADER_EPOCH_FILE);
    FILE *fp = fopen(p, "r");
    assert_non_null(fp);
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = 0;
    assert_string_equal(text, "0\n2\n0 0\n3 2\n");
    assert_int_equal(broker_log_set_leader_epoch(f->log, 2), CORE_ERR_STATE);
    reopen(f);
    assert_int_equal(broker_log_leader_epoch(f->log), 3);
}

static void test_corrupt_non_last_segment_is_reported_not_repaired(void **state)
{
    fixture_t *f = *state;
    f->conf.segment_bytes = 1000;
    open_log(f);
    for (int i = 0; i < 6; i++)
        append_n(f, 1, TS0, 400);
    broker_log_close(f->log);
    f->log = NULL;
    /* flip a byte inside the first segment's second batch and force a full scan */
    char marker[4096];
    snprintf(marker, sizeof marker, "%s/%s", f->ldir, BROKER_CLEAN_SHUTDOWN_FILE);
    unlink(marker);
    long long size = tu_file_size(seg_file(f, 0, ".log"));
    int fd = open(seg_file(f, 0, ".log"), O_RDWR);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, size - 10), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, size - 10), 1);
    close(fd);
    char err[256] = "";
    broker_log_t *log = NULL;
    assert_int_equal(broker_log_open(f->ldir, &f->conf, &log, err, sizeof err), CORE_ERR_CORRUPT);
    assert_null(log);
    assert_non_null(strstr(err, "00000000000000000000.log"));
    assert_int_equal(tu_file_size(seg_file(f, 0, ".log")), size); /* untouched */
}

static void test_unsynced_rolled_segment_torn_by_a_crash_is_cut_with_what_follows(void **state)
{
    fixture_t *f = *state;
    f->conf.segment_bytes = 1000;
    open_log(f);
    for (int i = 0; i < 2; i++)
        append_n(f, 1, TS0, 400);
    assert_int_equal(broker_log_flush(f->log), 0); /* offsets 0..1 durable */
    for (int i = 0; i < 6; i++)
        append_n(f, 1, TS0, 400); /* segments 2.., rolled but never synced */
    assert_true(broker_log_needs_flush(f->log));
    broker_log__free(f->log); /* the process dies: no flush, no marker */
    f->log = NULL;
    /* the power cut tore segment 2 (its fsync never ran) */
    long long size = tu_file_size(seg_file(f, 2, ".log"));
    assert_int_equal(truncate(seg_file(f, 2, ".log"), size - 30), 0);
    open_log(f);
    assert_int_equal(broker_log_end_offset(f->log), 3);
    assert_false(tu_file_exists(seg_file(f, 4, ".log")));
    assert_false(tu_file_exists(seg_file(f, 6, ".index")));
    /* what recovery kept is synced before the log is used */
    assert_int_equal(broker_log_flushed(f->log), 3);
    assert_false(broker_log_needs_flush(f->log));
    assert_int_equal(append_n(f, 1, TS0, 400), 3);
}

static void test_roll_defers_its_fsync_to_the_next_flush(void **state)
{
    fixture_t *f = *state;
    f->conf.segment_bytes = 1000;
    open_log(f);
    for (int i = 0; i < 6; i++)
        append_n(f, 1, TS0, 400);
    assert_true(broker_log_needs_flush(f->log));
    assert_int_equal(broker_log_flush(f->log), 0);
    assert_false(broker_log_needs_flush(f->log));
    assert_int_equal(broker_log_flushed(f->log), 6);
    char p[4096], text[64] = "";
    snprintf(p, sizeof p, "%s/%s", f->ldir, BROKER_RECOVERY_POINT_FILE);
    FILE *fp = fopen(p, "r");
    assert_non_null(fp);
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = 0;
    assert_string_equal(text, "0\n4\n"); /* the active segment's base */
}

typedef struct flusher {
    broker_log_t *log;
    atomic_int stop;
    atomic_int nflush;
    int err;
} flusher_t;

static void *flush_thread(void *arg)
{
    flusher_t *fl = arg;
    while (!atomic_load(&fl->stop)) {
        int rc = broker_log_flush(fl->log);
        if (rc)
            fl->err = rc;
        atomic_fetch_add(&fl->nflush, 1);
    }
    return NULL;
}

static void test_flush_from_another_thread_while_appending_and_rolling(void **state)
{
    fixture_t *f = *state;
    f->conf.segment_bytes = 32 * 1024;
    open_log(f);
    flusher_t fl = {.log = f->log};
    atomic_init(&fl.stop, 0);
    atomic_init(&fl.nflush, 0);
    pthread_t th;
    pthread_create(&th, NULL, flush_thread, &fl);
    int64_t prev_flushed = 0;
    /* at least 2000 appends (~20 rolls), and on until the flusher has
     * completed a few flushes concurrently; bounded in appends (each segment
     * holds 3 fds) and in time, for a loaded machine */
    int64_t deadline = core_mono_ms() + 20000;
    for (int i = 0; i < 2000 || (atomic_load(&fl.nflush) < 3 && i < 20000 && core_mono_ms() < deadline);
         i++) {
        append_n(f, 2, TS0, 100);
        int64_t fo = broker_log_flushed(f->log);
        assert_true(fo >= prev_flushed);
        assert_true(fo <= broker_log_end_offset(f->log));
        prev_flushed = fo;
    }
    atomic_store(&fl.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(fl.err, 0);
    assert_true(atomic_load(&fl.nflush) >= 1);
    int64_t leo = broker_log_end_offset(f->log);
    assert_int_equal(broker_log_flush(f->log), 0);
    assert_int_equal(broker_log_flushed(f->log), leo);
}

static void test_write_error_is_sticky_and_appends_nothing(void **state)
{
    fixture_t *f = *state;
    open_log(f);
    append_n(f, 1, TS0, 20);
    int64_t size = broker_log_size_bytes(f->log);
    /* a file size limit makes the next write fail with EFBIG */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)size + 10;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    core_buf_t b;
    core_buf_init(&b);
    bb_simple(&b, 1, TS0, 200);
    int64_t base, last;
    int rc = broker_log_append(f->log, b.data, b.len, 0, &base, &last);
    setrlimit(RLIMIT_FSIZE, &old);
    assert_int_equal(rc, CORE_ERR_IO);
    assert_int_equal(tu_file_size(seg_file(f, 0, ".log")), size);
    /* sticky: even now that writes would work */
    assert_int_equal(broker_log_append(f->log, b.data, b.len, 0, &base, &last), CORE_ERR_IO);
    assert_int_equal(broker_log_flush(f->log), CORE_ERR_IO);
    assert_int_equal(broker_log_end_offset(f->log), 1);
    /* reads still work */
    broker_log_slice_t s;
    assert_int_equal(broker_log_read(f->log, 0, 100, &s), 0);
    assert_true(s.len > 0);
    broker_log_slice_release(&s);
    core_buf_fini(&b);
    /* reopening recovers a writable log with the data that was appended */
    reopen(f);
    assert_int_equal(append_n(f, 1, TS0, 20), 1);
}

static void test_failing_roll_refuses_the_append_but_is_not_sticky(void **state)
{
    fixture_t *f = *state;
    f->conf.segment_bytes = 1000;
    open_log(f);
    append_n(f, 1, TS0, 400);
    append_n(f, 1, TS0, 400);
    /* no file descriptors left for the next segment's files */
    struct rlimit old, lim;
    getrlimit(RLIMIT_NOFILE, &old);
    int probe = open("/dev/null", O_RDONLY);
    close(probe);
    lim = old;
    lim.rlim_cur = (rlim_t)probe; /* the lowest free fd is probe: none above it */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
    core_buf_t b;
    core_buf_init(&b);
    bb_simple(&b, 1, TS0, 400);
    int64_t base, last;
    int rc = broker_log_append(f->log, b.data, b.len, 0, &base, &last);
    setrlimit(RLIMIT_NOFILE, &old);
    assert_int_equal(rc, CORE_ERR_IO);
    assert_int_equal(broker_log_end_offset(f->log), 2);
    assert_false(tu_file_exists(seg_file(f, 2, ".log")));
    /* nothing was written, so the log is still writable */
    assert_int_equal(broker_log_append(f->log, b.data, b.len, 0, &base, &last), 0);
    assert_int_equal(base, 2);
    assert_true(tu_file_exists(seg_file(f, 2, ".log")));
    core_buf_fini(&b);
}

static void test_leftovers_of_an_interrupted_retention_are_removed_at_open(void **state)
{
    fixture_t *f = *state;
    f->conf.segment_bytes = 1000;
    open_log(f);
    for (int i = 0; i < 6; i++)
        append_n(f, 1, TS0, 400);
    broker_log_close(f->log);
    f->log = NULL;
    /* retention unlinks .log first: a crash right after leaves its indexes */
    assert_int_equal(unlink(seg_file(f, 0, ".log")), 0);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", f->ldir, BROKER_LEADER_EPOCH_FILE);
    FILE *fp = fopen(tmp, "w");
    fputs("0\n1\n", fp); /* a torn temp file from an interrupted checkpoint */
    fclose(fp);
    open_log(f);
    assert_false(tu_file_exists(seg_file(f, 0, ".index")));
    assert_false(tu_file_exists(seg_file(f, 0, ".timeindex")));
    assert_false(tu_file_exists(tmp));
    assert_int_equal(broker_log_start_offset(f->log), 2);
    assert_int_equal(broker_log_end_offset(f->log), 6);
}

static void test_destroy_removes_every_file(void **state)
{
    fixture_t *f = *state;
    open_log(f);
    append_n(f, 1, TS0, 20);
    assert_int_equal(broker_log_set_leader_epoch(f->log, 1), 0);
    assert_int_equal(broker_log_destroy(f->log), 0);
    f->log = NULL;
    assert_false(tu_file_exists(f->ldir));
}

int cmd_log(int argc, char **argv); /* broker_log_cmd.c, linked into this test */

/* Runs `eddy log dump PATH --verify` with stdout discarded; returns its exit status. */
static int run_dump(const char *path)
{
    char *argv[] = {"dump", (char *)path, "--verify", NULL};
    fflush(stdout);
    int saved = dup(1), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    int rc = cmd_log(3, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(devnull);
    return rc;
}

static void test_dump_tool_passes_a_good_log_and_flags_damage(void **state)
{
    fixture_t *f = *state;
    f->conf.segment_bytes = 2000;
    f->conf.index_interval_bytes = 300;
    open_log(f);
    for (int i = 0; i < 20; i++)
        append_n(f, 2, TS0 + i, 200);
    assert_int_equal(run_dump(f->ldir), 0);
    assert_int_equal(run_dump(seg_file(f, 0, ".log")), 0);
    broker_log_close(f->log);
    f->log = NULL;
    assert_int_equal(run_dump(f->ldir), 0);
    /* an index entry moved off its batch */
    int fd = open(seg_file(f, 0, ".index"), O_RDWR);
    uint8_t e[8];
    assert_int_equal(pread(fd, e, 8, 0), 8);
    core_put_be32(e + 4, core_be32(e + 4) + 1);
    assert_int_equal(pwrite(fd, e, 8, 0), 8);
    close(fd);
    assert_int_equal(run_dump(f->ldir), 1);
    /* opening the log notices only the last entry; the read path copes anyway */
    assert_int_equal(run_dump(seg_file(f, 0, ".log")), 1);
    unlink(seg_file(f, 0, ".index"));
    /* a flipped byte in a batch */
    fd = open(seg_file(f, 0, ".log"), O_RDWR);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, 100), 1);
    c ^= 1;
    assert_int_equal(pwrite(fd, &c, 1, 100), 1);
    close(fd);
    assert_int_equal(run_dump(seg_file(f, 0, ".log")), 1);
    assert_int_equal(run_dump("/nonexistent/eddy"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_append_assigns_contiguous_offsets_and_reads_them_back),
        T(test_append_rejects_bad_crc_and_appends_nothing),
        T(test_append_rejects_malformed_legacy_and_oversized_batches),
        T(test_recover_truncates_torn_tail_of_active_segment),
        T(test_zero_filled_tail_is_not_a_batch),
        T(test_index_is_rebuilt_when_it_points_past_the_log),
        T(test_index_of_a_rolled_segment_is_rebuilt_after_a_clean_shutdown_too),
        T(test_read_returns_at_least_one_whole_batch),
        T(test_read_through_the_index_stops_on_the_last_batch_that_fits),
        T(test_roll_by_size),
        T(test_roll_by_time),
        T(test_retention_by_size_and_time_deletes_whole_segments),
        T(test_slice_keeps_deleted_segment_readable),
        T(test_offset_for_time),
        T(test_offset_for_time_finds_the_record_inside_a_batch),
        T(test_delete_records_moves_the_start_durably_and_drops_whole_segments),
        T(test_leader_epoch_is_stamped_and_checkpointed),
        T(test_corrupt_non_last_segment_is_reported_not_repaired),
        T(test_unsynced_rolled_segment_torn_by_a_crash_is_cut_with_what_follows),
        T(test_roll_defers_its_fsync_to_the_next_flush),
        T(test_flush_from_another_thread_while_appending_and_rolling),
        T(test_write_error_is_sticky_and_appends_nothing),
        T(test_failing_roll_refuses_the_append_but_is_not_sticky),
        T(test_leftovers_of_an_interrupted_retention_are_removed_at_open),
        T(test_destroy_removes_every_file),
        T(test_dump_tool_passes_a_good_log_and_flags_damage),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
