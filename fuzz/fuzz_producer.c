/*
 * fuzz_producer — the idempotent-producer decoders and state machine.
 * Byte 0 picks what the rest of the input is:
 *   0: an InitProducerId request body (v0 and v1), decoded;
 *   1: a producer-state snapshot (broker_producers_decode); whatever decodes
 *      must encode back to the same bytes;
 *   2: a run of batch producer fields, 15 bytes each (producerId i64 |
 *      epoch i16 | baseSequence i32 | lastOffsetDelta u8), checked and, when
 *      accepted, applied at increasing offsets, as broker_log does. Checked
 *      invariants: an applied batch is a duplicate of itself right after,
 *      with its own offsets; the table never holds more than
 *      BROKER_PRODUCER_MAX_IDS producers; the snapshot round-trips.
 * Must never crash, leak or trip a sanitizer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_log_int.h"
#include "broker/broker_producer.h"
#include "broker/broker_proto.h"
#include "core/core_buf.h"

static void snapshot_roundtrip(const uint8_t *p, size_t n)
{
    broker_producers_t *ps = broker_producers_new();
    int64_t off;
    if (broker_producers_decode(ps, p, n, &off) == CORE_OK) {
        core_buf_t b;
        core_buf_init(&b);
        broker_producers_encode(ps, off, &b);
        if (b.len != n || memcmp(b.data, p, n))
            abort(); /* decode and encode disagree */
        core_buf_fini(&b);
    }
    broker_producers_free(ps);
}

static void run_batches(const uint8_t *p, size_t n)
{
    broker_producers_t *ps = broker_producers_new();
    int64_t next = 0;
    for (; n >= 15; p += 15, n -= 15) {
        /* a real batch header, so broker_producer_batch_read is exercised too */
        uint8_t h[BROKER_BATCH_HEADER_SIZE] = {0};
        memcpy(h + BROKER_BATCH_OFF_PRODUCER_ID, p, 14);
        h[BROKER_BATCH_OFF_LAST_OFFSET_DELTA + 3] = p[14];
        broker_producer_batch_t b, dup;
        broker_producer_batch_read(h, &b);
        broker_producer_verdict_t v = broker_producers_check(ps, &b, NULL, &dup);
        if (v == BROKER_PRODUCER_DUPLICATE && (dup.first_seq != b.first_seq || dup.last_seq != b.last_seq))
            abort();
        if (v != BROKER_PRODUCER_OK || b.producer_id < 0)
            continue;
        b.base_offset = next;
        b.last_offset = next + p[14];
        b.ts_ms = next;
        next += p[14] + 1;
        broker_producers_apply(ps, &b);
        if (broker_producers_check(ps, &b, NULL, &dup) != BROKER_PRODUCER_DUPLICATE ||
            dup.base_offset != b.base_offset || dup.last_offset != b.last_offset)
            abort(); /* a retry right after the write must be recognised */
        if (broker_producers_count(ps) > BROKER_PRODUCER_MAX_IDS)
            abort();
    }
    core_buf_t s;
    core_buf_init(&s);
    broker_producers_encode(ps, next, &s);
    snapshot_roundtrip(s.data, s.len);
    core_buf_fini(&s);
    broker_producers_expire(ps, next, next / 2);
    broker_producers_free(ps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0:
        for (int16_t v = 0; v <= 1; v++) {
            core_rd_t rd;
            core_rd_init(&rd, p, n);
            broker_proto_init_pid_t r;
            if (broker_proto_init_pid_decode(&rd, v, &r) == CORE_OK &&
                r.transactional_id.len > (int64_t)n)
                abort();
        }
        break;
    case 1:
        snapshot_roundtrip(p, n);
        break;
    default:
        run_batches(p, n);
        break;
    }
    return 0;
}
