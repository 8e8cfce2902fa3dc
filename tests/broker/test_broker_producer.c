/*
 * Idempotent producers: the sequence/epoch state machine (broker_producer)
 * on its own, its snapshot codec, and the partition log that uses it
 * (broker_log_produce): duplicates answered with the first copy's offsets
 * and not written twice, gaps and old epochs refused, and the state
 * surviving a clean restart (snapshot) and a crash (rebuilt from the log).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "batch_builder.h"
#include "broker/broker_log.h"
#include "broker/broker_log_int.h"
#include "broker/broker_producer.h"
#include "core/core_err.h"
#include "test_util.h"

#define TS 1700000000000LL

static broker_producer_batch_t pb(int64_t pid, int16_t epoch, int32_t first, int32_t n)
{
    broker_producer_batch_t b = {.producer_id = pid, .epoch = epoch, .first_seq = first};
    int64_t last = (int64_t)first + n - 1;
    b.last_seq = (int32_t)(last > INT32_MAX ? last - INT32_MAX - 1 : last);
    return b;
}

/* Checks b and, when OK, records it at offset *next (as the log would). */
static broker_producer_verdict_t put(broker_producers_t *ps, broker_producer_batch_t b,
                                     int64_t *next, broker_producer_batch_t *dup)
{
    broker_producer_verdict_t v = broker_producers_check(ps, &b, NULL, dup);
    if (v == BROKER_PRODUCER_OK) {
        int32_t n = (int32_t)((b.last_seq - b.first_seq + 1 + ((int64_t)INT32_MAX + 1)) %
                              ((int64_t)INT32_MAX + 1));
        b.base_offset = *next;
        b.last_offset = *next + n - 1;
        b.ts_ms = 1000;
        *next += n;
        broker_producers_apply(ps, &b);
    }
    return v;
}

static void test_sequence_rules(void **state)
{
    (void)state;
    broker_producers_t *ps = broker_producers_new();
    broker_producer_batch_t dup;
    int64_t next = 100;
    /* not idempotent: always fine, never kept */
    assert_int_equal(put(ps, pb(-1, -1, -1, 3), &next, &dup), BROKER_PRODUCER_OK);
    assert_int_equal(broker_producers_count(ps), 0);
    /* unknown producer must start at 0 */
    assert_int_equal(put(ps, pb(7, 0, 5, 1), &next, &dup), BROKER_PRODUCER_UNKNOWN);
    assert_int_equal(put(ps, pb(7, 0, 0, 3), &next, &dup), BROKER_PRODUCER_OK); /* 0..2 @103 */
    assert_int_equal(put(ps, pb(7, 0, 3, 2), &next, &dup), BROKER_PRODUCER_OK); /* 3..4 @106 */
    /* a retry of either kept batch is a duplicate with its own offsets */
    assert_int_equal(put(ps, pb(7, 0, 0, 3), &next, &dup), BROKER_PRODUCER_DUPLICATE);
    assert_int_equal(dup.base_offset, 103);
    assert_int_equal(dup.last_offset, 105);
    assert_int_equal(put(ps, pb(7, 0, 3, 2), &next, &dup), BROKER_PRODUCER_DUPLICATE);
    assert_int_equal(dup.base_offset, 106);
    /* a gap, an overlap that is not a kept batch, a batch from the past */
    assert_int_equal(put(ps, pb(7, 0, 6, 1), &next, &dup), BROKER_PRODUCER_OUT_OF_ORDER);
    assert_int_equal(put(ps, pb(7, 0, 4, 2), &next, &dup), BROKER_PRODUCER_OUT_OF_ORDER);
    assert_int_equal(put(ps, pb(7, 0, 1, 1), &next, &dup), BROKER_PRODUCER_OUT_OF_ORDER);
    assert_int_equal(next, 108); /* nothing refused was "written" */
    /* a new epoch must restart at 0; then the old epoch is fenced */
    assert_int_equal(put(ps, pb(7, 1, 5, 1), &next, &dup), BROKER_PRODUCER_OUT_OF_ORDER);
    assert_int_equal(put(ps, pb(7, 1, 0, 1), &next, &dup), BROKER_PRODUCER_OK);
    assert_int_equal(put(ps, pb(7, 0, 5, 1), &next, &dup), BROKER_PRODUCER_FENCED);
    assert_int_equal(put(ps, pb(7, 0, 0, 3), &next, &dup), BROKER_PRODUCER_FENCED);
    /* producers are independent */
    assert_int_equal(put(ps, pb(8, 0, 0, 1), &next, &dup), BROKER_PRODUCER_OK);
    assert_int_equal(broker_producers_count(ps), 2);
    /* nonsense producer fields */
    assert_int_equal(put(ps, pb(9, -1, 0, 1), &next, &dup), BROKER_PRODUCER_INVALID);
    assert_int_equal(put(ps, pb(9, 0, -5, 1), &next, &dup), BROKER_PRODUCER_INVALID);
    assert_int_equal(put(ps, pb(-2, 0, 0, 1), &next, &dup), BROKER_PRODUCER_INVALID);
    /* within one append: checked against the previous batch */
    broker_producer_batch_t prev = pb(8, 0, 1, 2), b = pb(8, 0, 3, 1);
    assert_int_equal(broker_producers_check(ps, &b, &prev, NULL), BROKER_PRODUCER_OK);
    b = pb(8, 0, 4, 1);
    assert_int_equal(broker_producers_check(ps, &b, &prev, NULL), BROKER_PRODUCER_OUT_OF_ORDER);
    broker_producers_free(ps);
}

static void test_window_of_five_and_wrap(void **state)
{
    (void)state;
    broker_producers_t *ps = broker_producers_new();
    broker_producer_batch_t dup;
    int64_t next = 0;
    for (int i = 0; i < 7; i++)
        assert_int_equal(put(ps, pb(1, 0, i * 10, 10), &next, &dup), BROKER_PRODUCER_OK);
    /* batches 2..6 are kept: a retry of 2 is still known, of 1 is not */
    assert_int_equal(put(ps, pb(1, 0, 20, 10), &next, &dup), BROKER_PRODUCER_DUPLICATE);
    assert_int_equal(dup.base_offset, 20);
    assert_int_equal(put(ps, pb(1, 0, 10, 10), &next, &dup), BROKER_PRODUCER_OUT_OF_ORDER);
    /* sequences wrap from INT32_MAX to 0 */
    broker_producer_batch_t b = pb(2, 0, 0, 1);
    b.base_offset = b.last_offset = 0;
    broker_producers_apply(ps, &b);
    b = pb(2, 0, INT32_MAX - 1, 2); /* a batch ending at INT32_MAX, as if applied */
    b.base_offset = 1;
    b.last_offset = 2;
    broker_producers_apply(ps, &b);
    assert_int_equal(put(ps, pb(2, 0, 0, 5), &next, &dup), BROKER_PRODUCER_OK);
    broker_producer_batch_t w = pb(2, 0, INT32_MAX, 2); /* spans the wrap */
    assert_int_equal(w.last_seq, 0);
    broker_producers_free(ps);
}

static void test_expiry_and_snapshot_codec(void **state)
{
    (void)state;
    broker_producers_t *ps = broker_producers_new();
    int64_t next = 0;
    broker_producer_batch_t dup;
    for (int64_t pid = 0; pid < 50; pid++)
        for (int i = 0; i < 3; i++)
            assert_int_equal(put(ps, pb(pid, (int16_t)(pid % 3), i, 1), &next, &dup),
                             BROKER_PRODUCER_OK);
    core_buf_t snap;
    core_buf_init(&snap);
    broker_producers_encode(ps, next, &snap);

    broker_producers_t *back = broker_producers_new();
    int64_t off = -1;
    assert_int_equal(broker_producers_decode(back, snap.data, snap.len, &off), CORE_OK);
    assert_int_equal(off, next);
    assert_int_equal(broker_producers_count(back), 50);
    for (int64_t pid = 0; pid < 50; pid++) {
        broker_producer_batch_t b = pb(pid, (int16_t)(pid % 3), 1, 1);
        assert_int_equal(broker_producers_check(back, &b, NULL, &dup), BROKER_PRODUCER_DUPLICATE);
        assert_int_equal(dup.base_offset, pid * 3 + 1);
        b = pb(pid, (int16_t)(pid % 3), 3, 1);
        assert_int_equal(broker_producers_check(back, &b, NULL, NULL), BROKER_PRODUCER_OK);
    }
    /* every flipped bit and every truncation is refused, leaving it empty */
    for (size_t i = 0; i < snap.len; i += 7) {
        snap.data[i] ^= 0x20;
        assert_int_not_equal(broker_producers_decode(back, snap.data, snap.len, &off), CORE_OK);
        assert_int_equal(broker_producers_count(back), 0);
        snap.data[i] ^= 0x20;
    }
    for (size_t n = 0; n < snap.len; n += 5)
        assert_int_not_equal(broker_producers_decode(back, snap.data, n, &off), CORE_OK);

    /* expiry drops the idle ones (all appended at ts 1000) */
    assert_int_equal(broker_producers_expire(ps, 1000 + 10, 100), 0);
    assert_int_equal(broker_producers_expire(ps, 1000 + 101, 100), 50);
    assert_int_equal(broker_producers_count(ps), 0);
    core_buf_fini(&snap);
    broker_producers_free(back);
    broker_producers_free(ps);
}

/* ---- through the partition log ------------------------------------------------ */

/* One batch of n records from producer pid/epoch starting at seq. */
static void idem_batch(core_buf_t *out, int64_t pid, int16_t epoch, int32_t seq, int n)
{
    core_buf_reset(out);
    batch_builder_t bb;
    bb_begin(&bb, TS);
    for (int i = 0; i < n; i++) {
        char v[32];
        int len = snprintf(v, sizeof v, "p%lld-s%d", (long long)pid, seq + i);
        bb_add(&bb, NULL, -1, v, len, TS);
    }
    bb.producer_id = pid;
    bb.producer_epoch = epoch;
    bb.base_sequence = seq;
    bb_end(&bb, out);
}

static int produce(broker_log_t *log, int64_t pid, int16_t epoch, int32_t seq, int n,
                   broker_log_append_res_t *res)
{
    core_buf_t b;
    core_buf_init(&b);
    idem_batch(&b, pid, epoch, seq, n);
    int rc = broker_log_produce(log, b.data, b.len, 0, res);
    core_buf_fini(&b);
    return rc;
}

static broker_log_t *open_log(const char *dir)
{
    broker_log_conf_t conf;
    broker_log_conf_default(&conf);
    conf.segment_bytes = 4096; /* several segments, so the replay crosses them */
    broker_log_t *log = NULL;
    char err[256];
    assert_int_equal(broker_log_open(dir, &conf, &log, err, sizeof err), 0);
    return log;
}

/* Writes 40 batches of 3 for producer 5 and a few for producer 6. */
static void fill(broker_log_t *log)
{
    broker_log_append_res_t r;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(produce(log, 5, 0, i * 3, 3, &r), 0);
        assert_int_equal(r.producer, BROKER_PRODUCER_OK);
        if (i % 10 == 0) {
            assert_int_equal(produce(log, 6, 2, (i / 10) * 2, 2, &r), 0);
            assert_int_equal(r.producer, BROKER_PRODUCER_OK);
        }
    }
}

/* The last batch of producer 5 (seqs 117..119) and of 6 (6..7) are
 * recognised; the next ones are accepted; gaps and old epochs refused. */
static void check_state(broker_log_t *log)
{
    int64_t leo = broker_log_end_offset(log);
    broker_log_append_res_t r, first;
    assert_int_equal(produce(log, 5, 0, 117, 3, &r), 0);
    assert_int_equal(r.producer, BROKER_PRODUCER_DUPLICATE);
    assert_int_equal(r.last_offset - r.base_offset, 2);
    first = r;
    assert_int_equal(produce(log, 5, 0, 114, 3, &r), 0);
    assert_int_equal(r.producer, BROKER_PRODUCER_DUPLICATE);
    assert_true(r.base_offset < first.base_offset);
    assert_int_equal(produce(log, 6, 2, 6, 2, &r), 0);
    assert_int_equal(r.producer, BROKER_PRODUCER_DUPLICATE);
    assert_int_equal(broker_log_end_offset(log), leo); /* nothing written twice */
    assert_int_equal(produce(log, 5, 0, 121, 1, &r), CORE_ERR_CONFLICT);
    assert_int_equal(r.producer, BROKER_PRODUCER_OUT_OF_ORDER);
    assert_int_equal(produce(log, 6, 1, 8, 1, &r), CORE_ERR_CONFLICT);
    assert_int_equal(r.producer, BROKER_PRODUCER_FENCED);
    assert_int_equal(produce(log, 99, 0, 4, 1, &r), CORE_ERR_CONFLICT);
    assert_int_equal(r.producer, BROKER_PRODUCER_UNKNOWN);
    assert_int_equal(broker_log_end_offset(log), leo);
}

static void test_log_dedups_and_refuses(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char p[4200];
    snprintf(p, sizeof p, "%s/t-0", dir);
    broker_log_t *log = open_log(p);
    fill(log);
    int64_t leo = broker_log_end_offset(log);
    assert_int_equal(leo, 40 * 3 + 4 * 2);
    check_state(log);
    /* in sequence after all that */
    broker_log_append_res_t r;
    assert_int_equal(produce(log, 5, 0, 120, 2, &r), 0);
    assert_int_equal(r.producer, BROKER_PRODUCER_OK);
    assert_int_equal(r.base_offset, leo);
    /* the old plain API reports the first copy's offsets on a retry */
    core_buf_t b;
    core_buf_init(&b);
    idem_batch(&b, 5, 0, 120, 2);
    int64_t base = -1, last = -1;
    assert_int_equal(broker_log_append(log, b.data, b.len, 0, &base, &last), 0);
    assert_int_equal(base, leo);
    assert_int_equal(last, leo + 1);
    assert_int_equal(broker_log_end_offset(log), leo + 2);
    /* a transactional batch is refused (no transactions) */
    idem_batch(&b, 5, 0, 122, 1);
    b.data[BROKER_BATCH_OFF_ATTRIBUTES + 1] |= BROKER_BATCH_ATTR_TRANSACTIONAL;
    bb_fix_crc(b.data);
    assert_int_equal(broker_log_produce(log, b.data, b.len, 0, &r), CORE_ERR_CONFLICT);
    assert_int_equal(r.producer, BROKER_PRODUCER_INVALID);
    /* two batches of one producer in one append: must follow each other */
    core_buf_reset(&b);
    core_buf_t two;
    core_buf_init(&two);
    idem_batch(&two, 5, 0, 122, 1);
    core_wr_raw(&b, two.data, two.len);
    idem_batch(&two, 5, 0, 124, 1);
    core_wr_raw(&b, two.data, two.len);
    assert_int_equal(broker_log_produce(log, b.data, b.len, 0, &r), CORE_ERR_CONFLICT);
    assert_int_equal(r.producer, BROKER_PRODUCER_OUT_OF_ORDER);
    core_buf_reset(&b);
    idem_batch(&two, 5, 0, 122, 1);
    core_wr_raw(&b, two.data, two.len);
    idem_batch(&two, 5, 0, 123, 1);
    core_wr_raw(&b, two.data, two.len);
    assert_int_equal(broker_log_produce(log, b.data, b.len, 0, &r), 0);
    assert_int_equal(r.producer, BROKER_PRODUCER_OK);
    assert_int_equal(r.last_offset - r.base_offset, 1);
    core_buf_fini(&two);
    core_buf_fini(&b);
    broker_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_state_survives_clean_restart_via_snapshot(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char p[4200], snap[4300];
    snprintf(p, sizeof p, "%s/t-0", dir);
    snprintf(snap, sizeof snap, "%s/%s", p, BROKER_PRODUCER_STATE_FILE);
    broker_log_t *log = open_log(p);
    fill(log);
    broker_log_close(log);
    assert_true(tu_file_exists(snap));
    log = open_log(p);
    assert_int_equal(broker_log_producers(log), 2);
    check_state(log);
    broker_log_close(log);

    /* a damaged snapshot is not trusted: the log is replayed instead */
    FILE *f = fopen(snap, "r+b");
    assert_non_null(f);
    fseek(f, 20, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    log = open_log(p);
    assert_int_equal(broker_log_producers(log), 2);
    check_state(log);
    broker_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_state_rebuilt_from_log_after_crash(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char p[4200], snap[4300];
    snprintf(p, sizeof p, "%s/t-0", dir);
    snprintf(snap, sizeof snap, "%s/%s", p, BROKER_PRODUCER_STATE_FILE);
    broker_log_t *log = open_log(p);
    broker_log_append_res_t r;
    /* a clean shutdown's snapshot that knows only producer 5's first batch */
    assert_int_equal(produce(log, 5, 0, 0, 3, &r), 0);
    broker_log_close(log);
    FILE *f = fopen(snap, "rb");
    assert_non_null(f);
    uint8_t stale[4096];
    size_t nstale = fread(stale, 1, sizeof stale, f);
    fclose(f);
    assert_true(nstale > 0);
    log = open_log(p);
    assert_false(tu_file_exists(snap)); /* consumed by the open, like clean-shutdown */
    for (int i = 1; i < 40; i++)
        assert_int_equal(produce(log, 5, 0, i * 3, 3, &r), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(produce(log, 6, 2, i * 2, 2, &r), 0);
    /* crash: no flush, no snapshot, no clean-shutdown marker (kill -9); a
     * stale snapshot lying around must be ignored without the marker */
    broker_log__free(log);
    f = fopen(snap, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(stale, 1, nstale, f), nstale);
    fclose(f);
    log = open_log(p);
    assert_int_equal(broker_log_producers(log), 2);
    check_state(log);
    broker_log__free(log); /* crash again right after recovery: same answer */
    log = open_log(p);
    check_state(log);
    broker_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequence_rules),
        cmocka_unit_test(test_window_of_five_and_wrap),
        cmocka_unit_test(test_expiry_and_snapshot_codec),
        cmocka_unit_test(test_log_dedups_and_refuses),
        cmocka_unit_test(test_state_survives_clean_restart_via_snapshot),
        cmocka_unit_test(test_state_rebuilt_from_log_after_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
