/*
 * Specification tests for broker_proto: framing, headers, the Produce and
 * Fetch decoders at every truncation point, oversized counts, flexible tags,
 * the exact ApiVersions bytes, and the handlers against a broker on a temp dir.
 *
 * Decoder inputs are placed so they end right before a PROT_NONE page, so an
 * overread faults even without ASan (picohttpparser's trick).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/broker.h"
#include "broker/broker_proto.h"
#include "core/core_buf.h"
#include "core/core_crc.h"

/* ---- helpers -------------------------------------------------------------- */
typedef struct guard {
    uint8_t *map;
    size_t page;
} guard_t;

/* Copies n bytes so that they end exactly at an inaccessible page. */
static const uint8_t *guard_place(guard_t *g, const void *p, size_t n)
{
    if (!g->map) {
        g->page = (size_t)sysconf(_SC_PAGESIZE);
        size_t span = g->page * 64;
        g->map = mmap(NULL, span + g->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(g->map != MAP_FAILED);
        assert_int_equal(mprotect(g->map + span, g->page, PROT_NONE), 0);
    }
    size_t span = g->page * 64;
    assert_true(n <= span);
    uint8_t *dst = g->map + span - n;
    memcpy(dst, p, n);
    return dst;
}

static void guard_free(guard_t *g)
{
    if (g->map)
        munmap(g->map, g->page * 65);
}

/* A RecordBatch v2 with one record (key, value, one header), CRC set. */
static void batch_build(core_buf_t *b, const char *key, const char *value)
{
    core_buf_t rec;
    core_buf_init(&rec);
    core_wr_i8(&rec, 0);       /* attributes */
    core_wr_varlong(&rec, 0);  /* timestamp delta */
    core_wr_varint(&rec, 0);   /* offset delta */
    core_wr_varint(&rec, (int32_t)strlen(key));
    core_wr_raw(&rec, key, strlen(key));
    core_wr_varint(&rec, (int32_t)strlen(value));
    core_wr_raw(&rec, value, strlen(value));
    core_wr_varint(&rec, 1);   /* headers */
    core_wr_varint(&rec, 1);
    core_wr_raw(&rec, "h", 1);
    core_wr_varint(&rec, 1);
    core_wr_raw(&rec, "v", 1);

    size_t start = b->len;
    core_wr_i64(b, 0);                      /* baseOffset */
    core_wr_i32(b, 0);                      /* batchLength, patched */
    core_wr_i32(b, -1);                     /* partitionLeaderEpoch */
    core_wr_i8(b, 2);                       /* magic */
    core_wr_u32(b, 0);                      /* crc, patched */
    core_wr_i16(b, 0);                      /* attributes */
    core_wr_i32(b, 0);                      /* lastOffsetDelta */
    core_wr_i64(b, 1700000000000LL);        /* baseTimestamp */
    core_wr_i64(b, 1700000000000LL);        /* maxTimestamp */
    core_wr_i64(b, -1);                     /* producerId */
    core_wr_i16(b, -1);                     /* producerEpoch */
    core_wr_i32(b, -1);                     /* baseSequence */
    core_wr_i32(b, 1);                      /* recordsCount */
    core_wr_varint(b, (int32_t)rec.len);
    core_wr_raw(b, rec.data, rec.len);
    core_wr_i32_at(b, start + 8, (int32_t)(b->len - start - 12));
    uint32_t crc = core_crc32c(0, b->data + start + 21, b->len - start - 21);
    core_put_be32(b->data + start + 17, crc);
    core_buf_fini(&rec);
}

static void hdr_write(core_buf_t *b, int16_t key, int16_t version, int32_t corr, bool flexible)
{
    core_wr_i16(b, key);
    core_wr_i16(b, version);
    core_wr_i32(b, corr);
    core_wr_str(b, "test", 4);
    if (flexible)
        core_wr_empty_tags(b);
}

/* Produce v7 body: one topic, one partition with the given records. */
static void produce_body(core_buf_t *b, const char *topic, int16_t acks, const uint8_t *records,
                         size_t len)
{
    core_wr_str(b, NULL, -1); /* transactional_id */
    core_wr_i16(b, acks);
    core_wr_i32(b, 30000);
    core_wr_i32(b, 1);
    core_wr_str(b, topic, (int64_t)strlen(topic));
    core_wr_i32(b, 1);
    core_wr_i32(b, 0);
    core_wr_bytes(b, records, (int64_t)len);
}

/* Fetch v11 body: one topic, one partition. */
static void fetch_body(core_buf_t *b, const char *topic, int64_t offset, int32_t max_wait,
                       int32_t min_bytes)
{
    core_wr_i32(b, -1);
    core_wr_i32(b, max_wait);
    core_wr_i32(b, min_bytes);
    core_wr_i32(b, 52428800);
    core_wr_i8(b, 1);
    core_wr_i32(b, 0);
    core_wr_i32(b, -1);
    core_wr_i32(b, 1);
    core_wr_str(b, topic, (int64_t)strlen(topic));
    core_wr_i32(b, 1);
    core_wr_i32(b, 0);   /* partition */
    core_wr_i32(b, -1);  /* current_leader_epoch */
    core_wr_i64(b, offset);
    core_wr_i64(b, -1);  /* log_start_offset */
    core_wr_i32(b, 1048576);
    core_wr_i32(b, 0);   /* forgotten topics */
    core_wr_str(b, "", 0);
}

/* ---- framing ---------------------------------------------------------------- */
static void test_frame_reports_complete_need_more_and_errors(void **state)
{
    uint8_t buf[16] = {0, 0, 0, 8, 0, 18, 0, 0, 0, 0, 0, 1};
    size_t fl;
    struct {
        size_t len;
        int64_t max;
        int want;
        size_t want_len;
    } cases[] = {
        {0, 100, CORE_ERR_AGAIN, 0},  {3, 100, CORE_ERR_AGAIN, 0},  {4, 100, CORE_ERR_AGAIN, 8},
        {11, 100, CORE_ERR_AGAIN, 8}, {12, 100, CORE_OK, 8},        {16, 100, CORE_OK, 8},
        {12, 8, CORE_OK, 8},          {12, 7, CORE_ERR_TOO_LARGE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = broker_proto_frame(buf, cases[i].len, cases[i].max, &fl);
        assert_int_equal(rc, cases[i].want);
        assert_int_equal(fl, cases[i].want_len);
    }
    uint8_t neg[4] = {0xff, 0xff, 0xff, 0xfe};
    assert_int_equal(broker_proto_frame(neg, 4, 100, &fl), CORE_ERR_MALFORMED);
    uint8_t tiny[4] = {0, 0, 0, 7}; /* shorter than api_key+version+corr */
    assert_int_equal(broker_proto_frame(tiny, 4, 100, &fl), CORE_ERR_MALFORMED);
    uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff}; /* checked before anything is allocated */
    assert_int_equal(broker_proto_frame(huge, 4, 100LL << 20, &fl), CORE_ERR_TOO_LARGE);
}

/* ---- headers --------------------------------------------------------------------- */
static void test_header_v2_skips_tagged_fields_for_flexible_api_versions(void **state)
{
    /* ApiVersions v3, client_id "rdkafka", header tags: one tag (7) of 2 bytes */
    const uint8_t f[] = {0, 18, 0, 3, 0, 0, 0, 1, 0, 7, 'r', 'd', 'k', 'a', 'f', 'k', 'a',
                         1, 7, 2, 0xaa, 0xbb, 0x0b};
    guard_t g = {0};
    core_rd_t rd;
    core_rd_init(&rd, guard_place(&g, f, sizeof f), sizeof f);
    broker_proto_hdr_t h;
    assert_int_equal(broker_proto_hdr_decode(&rd, &h), CORE_OK);
    assert_int_equal(h.api_key, 18);
    assert_int_equal(h.api_version, 3);
    assert_int_equal(h.corr_id, 1);
    assert_int_equal(h.hdr_version, 2);
    assert_int_equal(h.client_id.len, 7);
    assert_memory_equal(h.client_id.ptr, "rdkafka", 7);
    assert_int_equal(rd.pos, sizeof f - 1); /* at the body */
    /* every truncation of the header fails, none overreads */
    for (size_t n = 0; n < sizeof f - 1; n++) {
        core_rd_init(&rd, guard_place(&g, f, n), n);
        assert_int_not_equal(broker_proto_hdr_decode(&rd, &h), CORE_OK);
    }
    guard_free(&g);
}

static void test_header_v1_keeps_null_client_id(void **state)
{
    const uint8_t f[] = {0, 3, 0, 4, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff};
    core_rd_t rd;
    core_rd_init(&rd, f, sizeof f);
    broker_proto_hdr_t h;
    assert_int_equal(broker_proto_hdr_decode(&rd, &h), CORE_OK);
    assert_int_equal(h.hdr_version, 1);
    assert_int_equal(h.corr_id, INT32_MAX);
    assert_int_equal(h.client_id.len, -1);
}

/* ---- Produce and Fetch decoders ------------------------------------------------------ */
static void test_produce_decode_fails_at_every_truncation_point(void **state)
{
    core_buf_t batch, body;
    core_buf_init(&batch);
    core_buf_init(&body);
    batch_build(&batch, "key", "value");
    produce_body(&body, "topic", 1, batch.data, batch.len);
    guard_t g = {0};
    for (size_t n = 0; n <= body.len; n++) {
        core_rd_t rd;
        core_rd_init(&rd, guard_place(&g, body.data, n), n);
        broker_proto_produce_t p;
        int rc = broker_proto_produce_decode(&rd, 7, &p);
        if (n < body.len) {
            assert_int_not_equal(rc, CORE_OK);
        } else {
            assert_int_equal(rc, CORE_OK);
            assert_int_equal(p.acks, 1);
            assert_int_equal(p.ntopics, 1);
            assert_int_equal(p.topics[0].nparts, 1);
            assert_int_equal(p.topics[0].parts[0].records.len, batch.len);
            assert_memory_equal(p.topics[0].parts[0].records.ptr, batch.data, batch.len);
            broker_proto_produce_free(&p);
        }
    }
    guard_free(&g);
    core_buf_fini(&batch);
    core_buf_fini(&body);
}

static void test_produce_decode_rejects_counts_beyond_caps_and_bytes(void **state)
{
    struct {
        int32_t ntopics;
        int32_t nparts;
        int want;
    } cases[] = {
        {INT32_MAX, 1, CORE_ERR_TOO_LARGE},                       /* over the cap */
        {BROKER_PROTO_MAX_TOPICS, 1, CORE_ERR_TRUNCATED},         /* at the cap, not in the bytes */
        {-1, 1, CORE_ERR_MALFORMED},                              /* null array where not nullable */
        {1, INT32_MAX, CORE_ERR_TOO_LARGE},
        {1, BROKER_PROTO_MAX_PARTITIONS, CORE_ERR_TRUNCATED},
        {1, 2, CORE_ERR_TRUNCATED},                               /* one more than present */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        core_buf_t b;
        core_buf_init(&b);
        core_wr_str(&b, NULL, -1);
        core_wr_i16(&b, 1);
        core_wr_i32(&b, 1000);
        core_wr_i32(&b, cases[i].ntopics);
        core_wr_str(&b, "t", 1);
        core_wr_i32(&b, cases[i].nparts);
        core_wr_i32(&b, 0);
        core_wr_bytes(&b, NULL, -1);
        core_rd_t rd;
        core_rd_init(&rd, b.data, b.len);
        broker_proto_produce_t p;
        assert_int_equal(broker_proto_produce_decode(&rd, 7, &p), cases[i].want);
        core_buf_fini(&b);
    }
}

static void test_fetch_decode_fails_at_every_truncation_point_v4_and_v11(void **state)
{
    guard_t g = {0};
    for (int16_t v = 4; v <= 11; v += 7) {
        core_buf_t body;
        core_buf_init(&body);
        core_wr_i32(&body, -1);
        core_wr_i32(&body, 500);
        core_wr_i32(&body, 1);
        core_wr_i32(&body, 1 << 20);
        core_wr_i8(&body, 0);
        if (v >= 7) {
            core_wr_i32(&body, 0);
            core_wr_i32(&body, -1);
        }
        core_wr_i32(&body, 1);
        core_wr_str(&body, "topic", 5);
        core_wr_i32(&body, 1);
        core_wr_i32(&body, 3);
        if (v >= 9)
            core_wr_i32(&body, -1);
        core_wr_i64(&body, 42);
        if (v >= 5)
            core_wr_i64(&body, -1);
        core_wr_i32(&body, 65536);
        if (v >= 7)
            core_wr_i32(&body, 0);
        if (v >= 11)
            core_wr_str(&body, "rack", 4);
        for (size_t n = 0; n <= body.len; n++) {
            core_rd_t rd;
            core_rd_init(&rd, guard_place(&g, body.data, n), n);
            broker_proto_fetch_t f;
            int rc = broker_proto_fetch_decode(&rd, v, &f);
            if (n < body.len) {
                assert_int_not_equal(rc, CORE_OK);
                continue;
            }
            assert_int_equal(rc, CORE_OK);
            assert_int_equal(f.max_wait_ms, 500);
            assert_int_equal(f.topics[0].parts[0].index, 3);
            assert_true(f.topics[0].parts[0].fetch_offset == 42);
            assert_int_equal(f.topics[0].parts[0].max_bytes, 65536);
            assert_int_equal(rd.pos, body.len);
            broker_proto_fetch_free(&f);
        }
        core_buf_fini(&body);
    }
    guard_free(&g);
}

/* ---- ApiVersions ---------------------------------------------------------------------- */
/* The advertised table, in wire order (docs/kafka-protocol.md §3.4, implemented rows). */
static const int16_t table[][3] = {
    {0, 3, 7},  {1, 4, 11}, {2, 0, 5},  {3, 0, 8},  {8, 0, 7},  {9, 0, 5},  {10, 0, 2},
    {11, 0, 5}, {12, 0, 3}, {13, 0, 3}, {14, 0, 3}, {15, 0, 4}, {16, 0, 2}, {18, 0, 3},
    {19, 0, 4}, {20, 0, 3}, {21, 0, 1}, {22, 0, 1}, {32, 0, 2}, {33, 0, 1}, {37, 0, 1}, {42, 0, 1},
};
#define NTABLE ((int)(sizeof table / sizeof *table))

static broker_proto_res_t run(broker_t *b, const core_buf_t *frame, broker_req_t *req)
{
    uint8_t *copy = malloc(frame->len);
    memcpy(copy, frame->data, frame->len);
    assert_int_equal(broker_req_init(req, copy, frame->len), CORE_OK);
    return broker_proto_handle(b, req);
}

static void test_api_versions_unsupported_version_answers_v0_body_with_error_35(void **state)
{
    core_buf_t f, want;
    core_buf_init(&f);
    core_buf_init(&want);
    hdr_write(&f, 18, 4, 77, true);
    core_wr_cstr(&f, "x", 1);
    core_wr_cstr(&f, "1", 1);
    core_wr_empty_tags(&f);
    broker_req_t req;
    assert_int_equal(run(NULL, &f, &req), BROKER_PROTO_DONE);
    /* size | corr | error 35 | int32 count | (key,min,max)... : header v0, no throttle */
    core_wr_i32(&want, 4 + 2 + 4 + NTABLE * 6);
    core_wr_i32(&want, 77);
    core_wr_i16(&want, 35);
    core_wr_i32(&want, NTABLE);
    for (int i = 0; i < NTABLE; i++)
        for (int j = 0; j < 3; j++)
            core_wr_i16(&want, table[i][j]);
    assert_int_equal(req.out.len, want.len);
    assert_memory_equal(req.out.data, want.data, want.len);
    broker_req_fini(&req);
    core_buf_fini(&f);
    core_buf_fini(&want);
}

static void test_api_versions_v3_is_flexible_body_with_header_v0(void **state)
{
    core_buf_t f, want;
    core_buf_init(&f);
    core_buf_init(&want);
    hdr_write(&f, 18, 3, 1, true);
    core_wr_cstr(&f, "librdkafka", 10);
    core_wr_cstr(&f, "2.0.2", 5);
    core_wr_empty_tags(&f);
    broker_req_t req;
    assert_int_equal(run(NULL, &f, &req), BROKER_PROTO_DONE);
    core_wr_i32(&want, 0);
    core_wr_i32(&want, 1); /* corr id, then NO header tag byte */
    core_wr_i16(&want, 0);
    core_wr_uvarint(&want, NTABLE + 1);
    for (int i = 0; i < NTABLE; i++) {
        for (int j = 0; j < 3; j++)
            core_wr_i16(&want, table[i][j]);
        core_wr_i8(&want, 0);
    }
    core_wr_i32(&want, 0); /* throttle */
    core_wr_i8(&want, 0);  /* body tags */
    core_wr_i32_at(&want, 0, (int32_t)want.len - 4);
    assert_int_equal(req.out.len, want.len);
    assert_memory_equal(req.out.data, want.data, want.len);
    broker_req_fini(&req);

    /* v0 (kafka-python): int32 array, no throttle */
    core_buf_reset(&f);
    hdr_write(&f, 18, 0, 5, false);
    assert_int_equal(run(NULL, &f, &req), BROKER_PROTO_DONE);
    assert_int_equal(req.out.len, 4 + 4 + 2 + 4 + NTABLE * 6);
    broker_req_fini(&req);
    core_buf_fini(&f);
    core_buf_fini(&want);
}

static void test_unknown_api_key_and_version_close_the_connection(void **state)
{
    struct {
        int16_t key, version;
    } cases[] = {{99, 0}, {-1, 0}, {0, 2}, {0, 8}, {1, 3}, {1, 12}, {3, 9}, {17, 0}, {22, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        core_buf_t f;
        core_buf_init(&f);
        hdr_write(&f, cases[i].key, cases[i].version, 1, false);
        core_wr_i32(&f, 0);
        broker_req_t req;
        assert_int_equal(run(NULL, &f, &req), BROKER_PROTO_CLOSE);
        broker_req_fini(&req);
        core_buf_fini(&f);
    }
}

/* ---- handlers against a real broker ------------------------------------------------------- */
typedef struct fixture {
    char dir[64];
    broker_t *b;
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/eddy-test-proto-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    broker_conf_t conf;
    broker_conf_default(&conf);
    conf.data_dir = fx->dir;
    conf.listen = "127.0.0.1:9092";
    conf.num_partitions = 2;
    char err[256];
    if (broker_open(&conf, &fx->b, err, sizeof err)) {
        fprintf(stderr, "broker_open: %s\n", err);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    broker_close(fx->b);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    if (system(cmd) != 0)
        return -1;
    free(fx);
    return 0;
}

/* Reads the Produce v7 response's single partition: error and base offset. */
static void produce_result(const broker_req_t *req, int16_t *err, int64_t *base)
{
    core_rd_t rd;
    core_rd_init(&rd, req->out.data + 8, req->out.len - 8);
    assert_int_equal(core_rd_i32(&rd), 1);
    (void)core_rd_str(&rd);
    assert_int_equal(core_rd_i32(&rd), 1);
    assert_int_equal(core_rd_i32(&rd), 0);
    *err = core_rd_i16(&rd);
    *base = core_rd_i64(&rd);
    assert_int_equal(rd.err, 0);
}

static broker_proto_res_t produce(broker_t *b, const char *topic, int16_t acks, const core_buf_t *batch,
                                  broker_req_t *req)
{
    core_buf_t f;
    core_buf_init(&f);
    hdr_write(&f, 0, 7, 9, false);
    produce_body(&f, topic, acks, batch->data, batch->len);
    broker_proto_res_t res = run(b, &f, req);
    core_buf_fini(&f);
    return res;
}

static void test_produce_appends_and_fetch_returns_the_same_bytes(void **state)
{
    fixture_t *fx = *state;
    core_buf_t batch;
    core_buf_init(&batch);
    batch_build(&batch, "k", "binary\001\000\377");
    broker_req_t req;
    int16_t err;
    int64_t base;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(produce(fx->b, "t", 1, &batch, &req), BROKER_PROTO_DONE);
        produce_result(&req, &err, &base);
        assert_int_equal(err, 0);
        assert_true(base == i);
        broker_req_fini(&req);
    }
    broker_topic_t *t = broker_topics_find(fx->b->topics, "t", 1);
    assert_non_null(t);
    assert_int_equal(t->npartitions, 2); /* auto-created with --num-partitions */
    assert_true(broker_log_high_watermark(t->partitions[0]) == 3);

    core_buf_t f;
    core_buf_init(&f);
    hdr_write(&f, 1, 11, 10, false);
    fetch_body(&f, "t", 1, 500, 1);
    req = (broker_req_t){0};
    assert_int_equal(run(fx->b, &f, &req), BROKER_PROTO_DONE);
    assert_true(req.nfiles == 1);
    /* The file part holds whole batches starting with the one containing offset 1. */
    uint8_t *got = malloc((size_t)req.files[0].slice.len);
    assert_int_equal(pread(req.files[0].slice.fd, got, (size_t)req.files[0].slice.len,
                           req.files[0].slice.file_pos),
                     req.files[0].slice.len);
    assert_true(core_be64(got) == 1);                           /* baseOffset rewritten */
    assert_memory_equal(got + 8 + 4 + 4, batch.data + 16, batch.len - 16); /* rest verbatim */
    /* size prefix counts the spliced file bytes */
    assert_int_equal(core_be32(req.out.data), broker_req_out_size(&req) - 4);
    free(got);
    broker_req_fini(&req);

    /* At the high watermark with min_bytes 1: long poll, then an empty answer. */
    core_buf_reset(&f);
    hdr_write(&f, 1, 11, 11, false);
    fetch_body(&f, "t", 3, 500, 1);
    req = (broker_req_t){0};
    assert_int_equal(run(fx->b, &f, &req), BROKER_PROTO_WAIT);
    req.final = true;
    assert_int_equal(broker_proto_handle(fx->b, &req), BROKER_PROTO_DONE);
    assert_int_equal(req.nfiles, 0);
    broker_req_fini(&req);

    /* Past the high watermark: OFFSET_OUT_OF_RANGE, answered at once. */
    core_buf_reset(&f);
    hdr_write(&f, 1, 11, 12, false);
    fetch_body(&f, "t", 4, 500, 1);
    req = (broker_req_t){0};
    assert_int_equal(run(fx->b, &f, &req), BROKER_PROTO_DONE);
    core_rd_t rd;
    core_rd_init(&rd, req.out.data + 8, req.out.len - 8);
    core_rd_skip(&rd, 4 + 2 + 4 + 4);
    (void)core_rd_str(&rd);
    core_rd_skip(&rd, 4 + 4);
    assert_int_equal(core_rd_i16(&rd), BROKER_KERR_OFFSET_OUT_OF_RANGE);
    assert_true(core_rd_i64(&rd) == 3); /* high watermark */
    broker_req_fini(&req);
    core_buf_fini(&f);
    core_buf_fini(&batch);
}

static void test_bad_crc_batch_is_corrupt_message_and_nothing_is_appended(void **state)
{
    fixture_t *fx = *state;
    core_buf_t batch;
    core_buf_init(&batch);
    batch_build(&batch, "k", "v");
    broker_req_t req;
    int16_t err;
    int64_t base;
    assert_int_equal(produce(fx->b, "c", 1, &batch, &req), BROKER_PROTO_DONE);
    broker_req_fini(&req);
    batch.data[batch.len - 3] ^= 0x40; /* flip a bit in the value */
    assert_int_equal(produce(fx->b, "c", 1, &batch, &req), BROKER_PROTO_DONE);
    produce_result(&req, &err, &base);
    assert_int_equal(err, BROKER_KERR_CORRUPT_MESSAGE);
    assert_true(base == -1);
    broker_req_fini(&req);
    broker_topic_t *t = broker_topics_find(fx->b->topics, "c", 1);
    assert_true(broker_log_high_watermark(t->partitions[0]) == 1);
    /* acks=0 with an error: no response, the connection is closed instead */
    assert_int_equal(produce(fx->b, "c", 0, &batch, &req), BROKER_PROTO_CLOSE);
    broker_req_fini(&req);
    batch.data[batch.len - 3] ^= 0x40;
    assert_int_equal(produce(fx->b, "c", 0, &batch, &req), BROKER_PROTO_NONE);
    broker_req_fini(&req);
    assert_true(broker_log_high_watermark(t->partitions[0]) == 2);
    core_buf_fini(&batch);
}

static void test_acks_all_waits_for_the_next_flush_generation(void **state)
{
    fixture_t *fx = *state;
    core_buf_t batch;
    core_buf_init(&batch);
    batch_build(&batch, "k", "v");
    broker_req_t req;
    assert_int_equal(produce(fx->b, "a", -1, &batch, &req), BROKER_PROTO_FLUSH);
    assert_true(req.flush_gen == fx->b->flush_started + 1);
    assert_int_equal(req.nwaits, 1);
    assert_int_equal(fx->b->ndirty, 1);
    broker_log_t **logs;
    int n;
    assert_true(broker_dirty_take(fx->b, &logs, &n) == req.flush_gen);
    assert_int_equal(n, 1);
    assert_int_equal(broker_log_flush(logs[0]), CORE_OK);
    assert_true(broker_log_flushed(logs[0]) > req.waits[0].last_offset);
    broker_flush_done(fx->b, req.flush_gen);
    free(logs);
    fx->b->acks_all_waiting--;
    broker_req_fini(&req);
    /* invalid acks: INVALID_REQUIRED_ACKS, nothing appended */
    assert_int_equal(produce(fx->b, "a", 2, &batch, &req), BROKER_PROTO_DONE);
    int16_t err;
    int64_t base;
    produce_result(&req, &err, &base);
    assert_int_equal(err, BROKER_KERR_INVALID_REQUIRED_ACKS);
    broker_req_fini(&req);
    core_buf_fini(&batch);
}

static void test_metadata_v0_empty_list_means_all_topics_and_v1_means_none(void **state)
{
    fixture_t *fx = *state;
    char err[128];
    assert_int_equal(broker_topics_create(fx->b->topics, "m1", 3, NULL, NULL, 0, false, err, sizeof err), 0);
    for (int16_t v = 0; v <= 8; v++) {
        core_buf_t f;
        core_buf_init(&f);
        hdr_write(&f, 3, v, 1, false);
        core_wr_i32(&f, 0); /* empty topic list */
        if (v >= 4)
            core_wr_i8(&f, 0);
        if (v >= 8) {
            core_wr_i8(&f, 0);
            core_wr_i8(&f, 0);
        }
        broker_req_t req;
        assert_int_equal(run(fx->b, &f, &req), BROKER_PROTO_DONE);
        core_rd_t rd;
        core_rd_init(&rd, req.out.data + 8, req.out.len - 8);
        if (v >= 3)
            core_rd_skip(&rd, 4);
        assert_int_equal(core_rd_i32(&rd), 1); /* one broker */
        assert_int_equal(core_rd_i32(&rd), 0);
        core_slice_t host = core_rd_str(&rd);
        assert_int_equal(host.len, 9);
        assert_int_equal(core_rd_i32(&rd), 9092);
        if (v >= 1)
            assert_int_equal(core_rd_nstr(&rd).len, -1);
        if (v >= 2)
            (void)core_rd_nstr(&rd);
        if (v >= 1)
            assert_int_equal(core_rd_i32(&rd), 0); /* controller */
        assert_int_equal(core_rd_i32(&rd), v == 0 ? 1 : 0);
        assert_int_equal(rd.err, 0);
        broker_req_fini(&req);
        core_buf_fini(&f);
    }
}

static void test_list_offsets_answers_earliest_and_latest(void **state)
{
    fixture_t *fx = *state;
    core_buf_t batch;
    core_buf_init(&batch);
    batch_build(&batch, "k", "v");
    broker_req_t req;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(produce(fx->b, "lo", 1, &batch, &req), BROKER_PROTO_DONE);
        broker_req_fini(&req);
    }
    const int64_t ts[] = {-2, -1};
    const int64_t want[] = {0, 2};
    for (int16_t v = 0; v <= 5; v++) {
        for (int i = 0; i < 2; i++) {
            core_buf_t f;
            core_buf_init(&f);
            hdr_write(&f, 2, v, 1, false);
            core_wr_i32(&f, -1);
            if (v >= 2)
                core_wr_i8(&f, 1);
            core_wr_i32(&f, 1);
            core_wr_str(&f, "lo", 2);
            core_wr_i32(&f, 1);
            core_wr_i32(&f, 0);
            if (v >= 4)
                core_wr_i32(&f, -1);
            core_wr_i64(&f, ts[i]);
            if (v == 0)
                core_wr_i32(&f, 1);
            assert_int_equal(run(fx->b, &f, &req), BROKER_PROTO_DONE);
            core_rd_t rd;
            core_rd_init(&rd, req.out.data + 8, req.out.len - 8);
            if (v >= 2)
                core_rd_skip(&rd, 4);
            core_rd_skip(&rd, 4);
            (void)core_rd_str(&rd);
            core_rd_skip(&rd, 4 + 4);
            assert_int_equal(core_rd_i16(&rd), 0);
            if (v == 0)
                assert_int_equal(core_rd_i32(&rd), 1);
            else
                assert_true(core_rd_i64(&rd) == -1);
            assert_true(core_rd_i64(&rd) == want[i]);
            assert_int_equal(rd.err, 0);
            broker_req_fini(&req);
            core_buf_fini(&f);
        }
    }
    core_buf_fini(&batch);
}

static void test_create_topics_reports_exists_and_invalid_names(void **state)
{
    fixture_t *fx = *state;
    const struct {
        const char *name;
        int32_t parts;
        int16_t rf;
        int16_t want;
    } cases[] = {
        {"ct", 4, 1, 0},
        {"ct", 4, 1, BROKER_KERR_TOPIC_ALREADY_EXISTS},
        {"bad name", 1, 1, BROKER_KERR_INVALID_TOPIC_EXCEPTION},
        {"..", 1, 1, BROKER_KERR_INVALID_TOPIC_EXCEPTION},
        {"zero", 0, 1, BROKER_KERR_INVALID_PARTITIONS},
        {"rf3", 1, 3, BROKER_KERR_INVALID_REPLICATION_FACTOR},
        {"dflt", -1, -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        core_buf_t f;
        core_buf_init(&f);
        hdr_write(&f, 19, 4, 1, false);
        core_wr_i32(&f, 1);
        core_wr_str(&f, cases[i].name, (int64_t)strlen(cases[i].name));
        core_wr_i32(&f, cases[i].parts);
        core_wr_i16(&f, cases[i].rf);
        core_wr_i32(&f, 0);
        core_wr_i32(&f, 0);
        core_wr_i32(&f, 1000);
        core_wr_i8(&f, 0);
        broker_req_t req;
        assert_int_equal(run(fx->b, &f, &req), BROKER_PROTO_DONE);
        core_rd_t rd;
        core_rd_init(&rd, req.out.data + 8, req.out.len - 8);
        core_rd_skip(&rd, 4);
        assert_int_equal(core_rd_i32(&rd), 1);
        (void)core_rd_str(&rd);
        assert_int_equal(core_rd_i16(&rd), cases[i].want);
        core_slice_t msg = core_rd_nstr(&rd);
        assert_true(cases[i].want ? msg.len > 0 : msg.len == -1);
        broker_req_fini(&req);
        core_buf_fini(&f);
    }
    assert_int_equal(broker_topics_find(fx->b->topics, "ct", 2)->npartitions, 4);
    assert_int_equal(broker_topics_find(fx->b->topics, "dflt", 4)->npartitions, 2);
}

/* CreatePartitions v1 for one topic; assign < 0 = null assignment, else that
 * many single-broker lists naming `node`. Returns the error code. */
static int16_t create_partitions(broker_t *b, const char *name, int32_t count, int assign,
                                 int32_t node, bool validate_only)
{
    core_buf_t f;
    core_buf_init(&f);
    hdr_write(&f, 37, 1, 1, false);
    core_wr_i32(&f, 1);
    core_wr_str(&f, name, (int64_t)strlen(name));
    core_wr_i32(&f, count);
    core_wr_i32(&f, assign);
    for (int i = 0; i < assign; i++) {
        core_wr_i32(&f, 1);
        core_wr_i32(&f, node);
    }
    core_wr_i32(&f, 1000);
    core_wr_i8(&f, validate_only);
    broker_req_t req;
    assert_int_equal(run(b, &f, &req), BROKER_PROTO_DONE);
    core_rd_t rd;
    core_rd_init(&rd, req.out.data + 8, req.out.len - 8);
    assert_int_equal(core_rd_i32(&rd), 0); /* throttle */
    assert_int_equal(core_rd_i32(&rd), 1);
    core_slice_t n = core_rd_str(&rd);
    assert_int_equal(n.len, (int64_t)strlen(name));
    int16_t err = core_rd_i16(&rd);
    core_slice_t msg = core_rd_nstr(&rd);
    assert_true(err ? msg.len > 0 : msg.len == -1);
    assert_int_equal(rd.err, 0);
    assert_int_equal(core_rd_remain(&rd), 0);
    broker_req_fini(&req);
    core_buf_fini(&f);
    return err;
}

static void test_create_partitions_grows_only_with_a_valid_assignment(void **state)
{
    fixture_t *fx = *state;
    char err[256];
    assert_int_equal(
        broker_topics_create(fx->b->topics, "cp", 1, NULL, NULL, 0, false, err, sizeof err), 0);
    broker_topic_t *t = broker_topics_find(fx->b->topics, "cp", 2);
    assert_int_equal(create_partitions(fx->b, "cp", 3, -1, 0, true), 0);
    assert_int_equal(t->npartitions, 1);
    assert_int_equal(create_partitions(fx->b, "cp", 1, -1, 0, false),
                     BROKER_KERR_INVALID_PARTITIONS);
    assert_int_equal(create_partitions(fx->b, "none", 2, -1, 0, false),
                     BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(create_partitions(fx->b, "cp", 3, 2, 7, false),
                     BROKER_KERR_INVALID_REPLICA_ASSIGNMENT); /* unknown broker */
    assert_int_equal(create_partitions(fx->b, "cp", 3, 1, 0, false),
                     BROKER_KERR_INVALID_REPLICA_ASSIGNMENT); /* one list for two partitions */
    assert_int_equal(create_partitions(fx->b, "cp", 3, 2, 0, false), 0);
    assert_int_equal(t->npartitions, 3);
    assert_int_equal(create_partitions(fx->b, "cp", 5, -1, 0, false), 0);
    assert_int_equal(t->npartitions, 5);
    assert_int_equal(broker_log_leader_epoch(t->partitions[4]), 0);
}

static int16_t alter_configs(broker_t *b, int8_t type, const char *name, const char *key,
                             const char *value)
{
    core_buf_t f;
    core_buf_init(&f);
    hdr_write(&f, 33, 0, 1, false);
    core_wr_i32(&f, 1);
    core_wr_i8(&f, type);
    core_wr_str(&f, name, (int64_t)strlen(name));
    core_wr_i32(&f, 1);
    core_wr_str(&f, key, (int64_t)strlen(key));
    core_wr_str(&f, value, value ? (int64_t)strlen(value) : -1);
    core_wr_i8(&f, 0);
    broker_req_t req;
    assert_int_equal(run(b, &f, &req), BROKER_PROTO_DONE);
    core_rd_t rd;
    core_rd_init(&rd, req.out.data + 8, req.out.len - 8);
    core_rd_skip(&rd, 4);
    assert_int_equal(core_rd_i32(&rd), 1);
    int16_t err = core_rd_i16(&rd);
    core_slice_t msg = core_rd_nstr(&rd);
    assert_true(err ? msg.len > 0 : msg.len == -1);
    assert_int_equal(core_rd_i8(&rd), type);
    assert_int_equal(core_rd_str(&rd).len, (int64_t)strlen(name));
    assert_int_equal(core_rd_remain(&rd), 0);
    broker_req_fini(&req);
    core_buf_fini(&f);
    return err;
}

static void test_alter_configs_topics_only_validated(void **state)
{
    fixture_t *fx = *state;
    char err[256];
    assert_int_equal(
        broker_topics_create(fx->b->topics, "ac", 1, NULL, NULL, 0, false, err, sizeof err), 0);
    assert_int_equal(alter_configs(fx->b, 2, "ac", "retention.ms", "60000"), 0);
    assert_int_equal(broker_topics_find(fx->b->topics, "ac", 2)->conf.retention_ms, 60000);
    assert_int_equal(alter_configs(fx->b, 2, "ac", "retention.ms", NULL),
                     BROKER_KERR_INVALID_CONFIG);
    assert_int_equal(alter_configs(fx->b, 2, "ac", "bogus", "1"), BROKER_KERR_INVALID_CONFIG);
    assert_int_equal(alter_configs(fx->b, 2, "nope", "retention.ms", "1"),
                     BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(alter_configs(fx->b, 4, "0", "num.partitions", "3"),
                     BROKER_KERR_INVALID_REQUEST);
    assert_int_equal(broker_topics_find(fx->b->topics, "ac", 2)->conf.retention_ms, 60000);
}

/* DeleteRecords v1 for one partition; returns the error, *low the answer. */
static int16_t delete_records(broker_t *b, const char *name, int32_t part, int64_t off,
                              int64_t *low)
{
    core_buf_t f;
    core_buf_init(&f);
    hdr_write(&f, 21, 1, 1, false);
    core_wr_i32(&f, 1);
    core_wr_str(&f, name, (int64_t)strlen(name));
    core_wr_i32(&f, 1);
    core_wr_i32(&f, part);
    core_wr_i64(&f, off);
    core_wr_i32(&f, 1000);
    broker_req_t req;
    assert_int_equal(run(b, &f, &req), BROKER_PROTO_DONE);
    core_rd_t rd;
    core_rd_init(&rd, req.out.data + 8, req.out.len - 8);
    assert_int_equal(core_rd_i32(&rd), 0); /* throttle */
    assert_int_equal(core_rd_i32(&rd), 1);
    assert_int_equal(core_rd_str(&rd).len, (int64_t)strlen(name));
    assert_int_equal(core_rd_i32(&rd), 1);
    assert_int_equal(core_rd_i32(&rd), part);
    *low = core_rd_i64(&rd);
    int16_t err = core_rd_i16(&rd);
    assert_int_equal(rd.err, 0);
    assert_int_equal(core_rd_remain(&rd), 0);
    broker_req_fini(&req);
    core_buf_fini(&f);
    return err;
}

static void test_delete_records_moves_the_low_watermark(void **state)
{
    fixture_t *fx = *state;
    core_buf_t batch;
    core_buf_init(&batch);
    batch_build(&batch, "k", "v");
    broker_req_t req;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(produce(fx->b, "dr", 1, &batch, &req), BROKER_PROTO_DONE);
        broker_req_fini(&req);
    }
    core_buf_fini(&batch);
    int64_t low;
    assert_int_equal(delete_records(fx->b, "nope", 0, 1, &low),
                     BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(low, -1);
    assert_int_equal(delete_records(fx->b, "dr", 9, 1, &low),
                     BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(delete_records(fx->b, "dr", 0, 4, &low), BROKER_KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(delete_records(fx->b, "dr", 0, 2, &low), 0);
    assert_int_equal(low, 2);
    assert_int_equal(delete_records(fx->b, "dr", 0, 1, &low), 0); /* lower: no change */
    assert_int_equal(low, 2);
    assert_int_equal(delete_records(fx->b, "dr", 0, -1, &low), 0); /* -1 = high watermark */
    assert_int_equal(low, 3);
    broker_topic_t *t = broker_topics_find(fx->b->topics, "dr", 2);
    assert_int_equal(broker_log_start_offset(t->partitions[0]), 3);
}

static broker_proto_res_t delete_topic(broker_t *b, const char *name, broker_req_t *req)
{
    core_buf_t f;
    core_buf_init(&f);
    hdr_write(&f, 20, 3, 1, false);
    core_wr_i32(&f, 2);
    core_wr_str(&f, name, (int64_t)strlen(name));
    core_wr_str(&f, "never", 5);
    core_wr_i32(&f, 1000);
    broker_proto_res_t res = run(b, &f, req);
    core_buf_fini(&f);
    return res;
}

static void test_delete_topics_waits_only_for_its_own_partitions_flush(void **state)
{
    fixture_t *fx = *state;
    core_buf_t batch;
    core_buf_init(&batch);
    batch_build(&batch, "k", "v");
    broker_req_t req, del;
    /* acks=all data of another topic waiting for a flush does not delay it */
    assert_int_equal(produce(fx->b, "busy", -1, &batch, &req), BROKER_PROTO_FLUSH);
    char err[128];
    assert_int_equal(broker_topics_create(fx->b->topics, "gone", 1, NULL, NULL, 0, false, err, sizeof err), 0);
    assert_int_equal(delete_topic(fx->b, "gone", &del), BROKER_PROTO_DONE);
    core_rd_t rd;
    core_rd_init(&rd, del.out.data + 8, del.out.len - 8);
    core_rd_skip(&rd, 4);
    assert_int_equal(core_rd_i32(&rd), 2);
    (void)core_rd_str(&rd);
    assert_int_equal(core_rd_i16(&rd), 0);
    (void)core_rd_str(&rd);
    assert_int_equal(core_rd_i16(&rd), BROKER_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_null(broker_topics_find(fx->b->topics, "gone", 4));
    broker_req_fini(&del);
    /* its own partition: retried while dirty and while the flush runs */
    assert_int_equal(delete_topic(fx->b, "busy", &del), BROKER_PROTO_RETRY);
    broker_log_t **logs;
    int n;
    uint64_t gen = broker_dirty_take(fx->b, &logs, &n);
    assert_int_equal(broker_proto_handle(fx->b, &del), BROKER_PROTO_RETRY);
    assert_int_equal(broker_log_flush(logs[0]), CORE_OK);
    fx->b->acks_all_waiting--;
    broker_req_fini(&req);
    broker_flush_done(fx->b, gen);
    free(logs);
    assert_int_equal(broker_proto_handle(fx->b, &del), BROKER_PROTO_DONE);
    assert_null(broker_topics_find(fx->b->topics, "busy", 4));
    broker_req_fini(&del);
    core_buf_fini(&batch);
}

static void test_malformed_bodies_close_without_side_effects(void **state)
{
    fixture_t *fx = *state;
    /* A Produce whose records length runs past the frame. */
    core_buf_t f;
    core_buf_init(&f);
    hdr_write(&f, 0, 7, 1, false);
    core_wr_str(&f, NULL, -1);
    core_wr_i16(&f, 1);
    core_wr_i32(&f, 1000);
    core_wr_i32(&f, 1);
    core_wr_str(&f, "mal", 3);
    core_wr_i32(&f, 1);
    core_wr_i32(&f, 0);
    core_wr_i32(&f, 1000); /* announces 1000 bytes, none follow */
    broker_req_t req;
    assert_int_equal(run(fx->b, &f, &req), BROKER_PROTO_CLOSE);
    broker_req_fini(&req);
    assert_null(broker_topics_find(fx->b->topics, "mal", 3)); /* not even auto-created */
    core_buf_fini(&f);
}

/* Runs every cut of frame short of its end (body bytes from body_off on):
 * each must close the connection, and check() must still hold after it. */
static void every_cut_closes(fixture_t *fx, const core_buf_t *frame, size_t body_off,
                             void (*check)(broker_t *b))
{
    for (size_t cut = body_off; cut < frame->len; cut++) {
        core_buf_t f;
        core_buf_init(&f);
        core_wr_raw(&f, frame->data, cut);
        broker_req_t req;
        assert_int_equal(run(fx->b, &f, &req), BROKER_PROTO_CLOSE);
        broker_req_fini(&req);
        core_buf_fini(&f);
        check(fx->b);
    }
}

/* The whole (validate_only) frame is answered, and check() still holds. */
static void assert_answered_without_acting(fixture_t *fx, const core_buf_t *frame,
                                           void (*check)(broker_t *b))
{
    broker_req_t req;
    assert_int_equal(run(fx->b, frame, &req), BROKER_PROTO_DONE);
    broker_req_fini(&req);
    check(fx->b);
}

static void check_nothing_created(broker_t *b)
{
    assert_null(broker_topics_find(b->topics, "first", 5));
    assert_int_equal(broker_topics_find(b->topics, "kept", 4)->npartitions, 1);
}

static void check_nothing_altered(broker_t *b)
{
    const broker_topic_t *t = broker_topics_find(b->topics, "kept", 4);
    assert_non_null(t);
    assert_int_equal(t->npartitions, 1);
    assert_int_equal(t->nconfigs, 0);
}

static void test_admin_bodies_cut_anywhere_close_before_acting_on_any_entry(void **state)
{
    fixture_t *fx = *state;
    char err[256];
    assert_int_equal(
        broker_topics_create(fx->b->topics, "kept", 1, NULL, NULL, 0, false, err, sizeof err), 0);
    const size_t body_off = 14; /* key, version, correlation id, client id "test" */
    core_buf_t f;

    /* CreateTopics v4: a valid first topic, then a second one */
    core_buf_init(&f);
    hdr_write(&f, 19, 4, 1, false);
    core_wr_i32(&f, 2);
    core_wr_str(&f, "first", 5);
    core_wr_i32(&f, 1);
    core_wr_i16(&f, 1);
    core_wr_i32(&f, 1); /* assignment: partition 0 on node 0 */
    core_wr_i32(&f, 0);
    core_wr_i32(&f, 1);
    core_wr_i32(&f, 0);
    core_wr_i32(&f, 1); /* one config */
    core_wr_str(&f, "retention.ms", 12);
    core_wr_str(&f, "1000", 4);
    core_wr_str(&f, "second", 6);
    core_wr_i32(&f, 1);
    core_wr_i16(&f, 1);
    core_wr_i32(&f, 0);
    core_wr_i32(&f, 0);
    core_wr_i32(&f, 1000);
    core_wr_i8(&f, 1); /* validate_only */
    assert_answered_without_acting(fx, &f, check_nothing_created);
    every_cut_closes(fx, &f, body_off, check_nothing_created);
    core_buf_fini(&f);

    /* CreatePartitions v1: grow "kept" with an explicit assignment */
    core_buf_init(&f);
    hdr_write(&f, 37, 1, 1, false);
    core_wr_i32(&f, 1);
    core_wr_str(&f, "kept", 4);
    core_wr_i32(&f, 2);
    core_wr_i32(&f, 1);
    core_wr_i32(&f, 1);
    core_wr_i32(&f, 0);
    core_wr_i32(&f, 1000);
    core_wr_i8(&f, 1); /* validate_only */
    assert_answered_without_acting(fx, &f, check_nothing_altered);
    every_cut_closes(fx, &f, body_off, check_nothing_altered);
    core_buf_fini(&f);

    /* AlterConfigs v1: set a config on "kept" */
    core_buf_init(&f);
    hdr_write(&f, 33, 1, 1, false);
    core_wr_i32(&f, 1);
    core_wr_i8(&f, 2);
    core_wr_str(&f, "kept", 4);
    core_wr_i32(&f, 1);
    core_wr_str(&f, "retention.ms", 12);
    core_wr_str(&f, "1000", 4);
    core_wr_i8(&f, 1); /* validate_only */
    assert_answered_without_acting(fx, &f, check_nothing_altered);
    every_cut_closes(fx, &f, body_off, check_nothing_altered);
    core_buf_fini(&f);

    /* DeleteTopics v3 (it has no validate_only: only the cuts) */
    core_buf_init(&f);
    hdr_write(&f, 20, 3, 1, false);
    core_wr_i32(&f, 1);
    core_wr_str(&f, "kept", 4);
    core_wr_i32(&f, 1000);
    every_cut_closes(fx, &f, body_off, check_nothing_altered);
    core_buf_fini(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_reports_complete_need_more_and_errors),
        cmocka_unit_test(test_header_v2_skips_tagged_fields_for_flexible_api_versions),
        cmocka_unit_test(test_header_v1_keeps_null_client_id),
        cmocka_unit_test(test_produce_decode_fails_at_every_truncation_point),
        cmocka_unit_test(test_produce_decode_rejects_counts_beyond_caps_and_bytes),
        cmocka_unit_test(test_fetch_decode_fails_at_every_truncation_point_v4_and_v11),
        cmocka_unit_test(test_api_versions_unsupported_version_answers_v0_body_with_error_35),
        cmocka_unit_test(test_api_versions_v3_is_flexible_body_with_header_v0),
        cmocka_unit_test(test_unknown_api_key_and_version_close_the_connection),
        cmocka_unit_test_setup_teardown(test_produce_appends_and_fetch_returns_the_same_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_crc_batch_is_corrupt_message_and_nothing_is_appended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acks_all_waits_for_the_next_flush_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_v0_empty_list_means_all_topics_and_v1_means_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_offsets_answers_earliest_and_latest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_topics_reports_exists_and_invalid_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_topics_waits_only_for_its_own_partitions_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_bodies_close_without_side_effects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_partitions_grows_only_with_a_valid_assignment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alter_configs_topics_only_validated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_records_moves_the_low_watermark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_bodies_cut_anywhere_close_before_acting_on_any_entry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
