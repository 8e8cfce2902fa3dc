/*
 * test_broker_proto_group — the group API codec. A table of (api, version)
 * requests, each decoded whole and then cut at every byte: every cut must be
 * reported as an error, never read past the end (inputs are placed right
 * before a PROT_NONE page, so an overread crashes even without ASan).
 * Encoders are checked byte for byte against hand-written layouts.
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

#include "broker/broker_proto_group.h"

#define S(x) ((core_slice_t){(const uint8_t *)(x), (int64_t)strlen(x)})

/* ---- guarded buffers ---- */
static uint8_t *guard_base;
static size_t guard_len;

static const uint8_t *guarded_copy(const uint8_t *p, size_t n)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t data_pages = (n + (size_t)pg - 1) / (size_t)pg + 1;
    guard_len = (data_pages + 1) * (size_t)pg;
    guard_base = mmap(NULL, guard_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(guard_base != MAP_FAILED);
    uint8_t *guard = guard_base + data_pages * (size_t)pg;
    assert_int_equal(mprotect(guard, (size_t)pg, PROT_NONE), 0);
    uint8_t *dst = guard - n;
    if (n)
        memcpy(dst, p, n);
    return dst;
}

static void guarded_free(void)
{
    munmap(guard_base, guard_len);
}

/* ---- request builders ---- */
static void wstr(core_buf_t *b, const char *s)
{
    core_wr_str(b, s, s ? (int64_t)strlen(s) : -1);
}

static void build(core_buf_t *b, int16_t api, int16_t v)
{
    switch (api) {
    case BROKER_API_FIND_COORDINATOR:
        wstr(b, "grp");
        if (v >= 1)
            core_wr_i8(b, 0);
        break;
    case BROKER_API_JOIN_GROUP:
        wstr(b, "grp");
        core_wr_i32(b, 10000);
        if (v >= 1)
            core_wr_i32(b, 30000);
        wstr(b, "m-1");
        if (v >= 5)
            wstr(b, NULL);
        wstr(b, "consumer");
        core_wr_i32(b, 2);
        wstr(b, "range");
        core_wr_bytes(b, "\0\1", 2);
        wstr(b, "roundrobin");
        core_wr_bytes(b, "\0\1", 2);
        break;
    case BROKER_API_SYNC_GROUP:
        wstr(b, "grp");
        core_wr_i32(b, 3);
        wstr(b, "m-1");
        if (v >= 3)
            wstr(b, NULL);
        core_wr_i32(b, 1);
        wstr(b, "m-1");
        core_wr_bytes(b, "abc", 3);
        break;
    case BROKER_API_HEARTBEAT:
        wstr(b, "grp");
        core_wr_i32(b, 3);
        wstr(b, "m-1");
        if (v >= 3)
            wstr(b, "inst");
        break;
    case BROKER_API_LEAVE_GROUP:
        wstr(b, "grp");
        if (v < 3) {
            wstr(b, "m-1");
        } else {
            core_wr_i32(b, 2);
            wstr(b, "m-1");
            wstr(b, NULL);
            wstr(b, "m-2");
            wstr(b, "i");
        }
        break;
    case BROKER_API_OFFSET_COMMIT:
        wstr(b, "grp");
        if (v >= 1) {
            core_wr_i32(b, 3);
            wstr(b, "m-1");
        }
        if (v >= 7)
            wstr(b, NULL);
        if (v >= 2 && v <= 4)
            core_wr_i64(b, -1);
        core_wr_i32(b, 1);
        wstr(b, "t");
        core_wr_i32(b, 2);
        for (int p = 0; p < 2; p++) {
            core_wr_i32(b, p);
            core_wr_i64(b, 100 + p);
            if (v >= 6)
                core_wr_i32(b, 5);
            if (v == 1)
                core_wr_i64(b, 1234);
            wstr(b, p ? NULL : "meta");
        }
        break;
    case BROKER_API_OFFSET_FETCH:
        wstr(b, "grp");
        core_wr_i32(b, 1);
        wstr(b, "t");
        core_wr_i32(b, 2);
        core_wr_i32(b, 0);
        core_wr_i32(b, 1);
        break;
    case BROKER_API_LIST_GROUPS:
        break;
    case BROKER_API_DESCRIBE_GROUPS:
        core_wr_i32(b, 2);
        wstr(b, "a");
        wstr(b, "bb");
        if (v >= 3)
            core_wr_i8(b, 1);
        break;
    case BROKER_API_DELETE_GROUPS:
        core_wr_i32(b, 2);
        wstr(b, "gone");
        wstr(b, "g2");
        break;
    }
}

/* Decodes with the right decoder; frees what it allocated. */
static int decode(int16_t api, int16_t v, const uint8_t *p, size_t n, size_t *consumed)
{
    core_rd_t rd;
    core_rd_init(&rd, p, n);
    int err = 0;
    switch (api) {
    case BROKER_API_FIND_COORDINATOR: {
        broker_proto_findcoord_req_t r = {0};
        err = broker_proto_findcoord_decode(&rd, v, &r);
        break;
    }
    case BROKER_API_JOIN_GROUP: {
        broker_cg_join_req_t r = {0};
        err = broker_proto_join_decode(&rd, v, &r);
        broker_cg_arena_free(&r.arena);
        break;
    }
    case BROKER_API_SYNC_GROUP: {
        broker_cg_sync_req_t r = {0};
        err = broker_proto_sync_decode(&rd, v, &r);
        broker_cg_arena_free(&r.arena);
        break;
    }
    case BROKER_API_HEARTBEAT: {
        broker_cg_heartbeat_req_t r = {0};
        err = broker_proto_heartbeat_decode(&rd, v, &r);
        break;
    }
    case BROKER_API_LEAVE_GROUP: {
        broker_cg_leave_req_t r = {0};
        err = broker_proto_leave_decode(&rd, v, &r);
        broker_cg_arena_free(&r.arena);
        break;
    }
    case BROKER_API_OFFSET_COMMIT: {
        broker_cg_commit_req_t r = {0};
        err = broker_proto_commit_decode(&rd, v, &r);
        broker_cg_arena_free(&r.arena);
        break;
    }
    case BROKER_API_OFFSET_FETCH: {
        broker_cg_fetch_req_t r = {0};
        err = broker_proto_offset_fetch_decode(&rd, v, &r);
        broker_cg_arena_free(&r.arena);
        break;
    }
    case BROKER_API_LIST_GROUPS:
        err = broker_proto_list_groups_decode(&rd, v);
        break;
    case BROKER_API_DESCRIBE_GROUPS: {
        broker_cg_describe_req_t r = {0};
        err = broker_proto_describe_decode(&rd, v, &r);
        broker_cg_arena_free(&r.arena);
        break;
    }
    case BROKER_API_DELETE_GROUPS: {
        broker_proto_delete_groups_req_t r = {0};
        err = broker_proto_delete_groups_decode(&rd, v, &r);
        broker_cg_arena_free(&r.arena);
        break;
    }
    }
    *consumed = rd.pos;
    return err;
}

static const struct {
    int16_t api, min, max;
} APIS[] = {
#define ROW(key, min, max) {key, min, max},
    BROKER_PROTO_GROUP_APIS(ROW)
#undef ROW
};

static void test_every_version_decodes_whole_and_fails_at_every_truncation_point(void **state)
{
    int cases = 0;
    for (size_t a = 0; a < sizeof APIS / sizeof *APIS; a++)
        for (int16_t v = APIS[a].min; v <= APIS[a].max; v++) {
            core_buf_t b;
            core_buf_init(&b);
            build(&b, APIS[a].api, v);
            const uint8_t *p = guarded_copy(b.data, b.len);
            size_t consumed;
            int err = decode(APIS[a].api, v, p, b.len, &consumed);
            if (err || consumed != b.len)
                fail_msg("api %d v%d: full body: err %d consumed %zu of %zu", APIS[a].api, v, err,
                         consumed, b.len);
            guarded_free();
            for (size_t cut = 0; cut < b.len; cut++) {
                p = guarded_copy(b.data, cut);
                err = decode(APIS[a].api, v, p, cut, &consumed);
                if (err == 0)
                    fail_msg("api %d v%d: cut at %zu of %zu accepted", APIS[a].api, v, cut, b.len);
                guarded_free();
                cases++;
            }
            core_buf_fini(&b);
        }
    assert_true(cases > 300);
}

static void test_supported_matches_the_advertised_table(void **state)
{
    assert_true(broker_proto_group_supported(BROKER_API_JOIN_GROUP, 5));
    assert_false(broker_proto_group_supported(BROKER_API_JOIN_GROUP, 6)); /* flexible */
    assert_true(broker_proto_group_supported(BROKER_API_OFFSET_COMMIT, 0));
    assert_false(broker_proto_group_supported(BROKER_API_OFFSET_COMMIT, 8));
    assert_false(broker_proto_group_supported(BROKER_API_OFFSET_FETCH, 6));
    assert_false(broker_proto_group_supported(BROKER_API_LIST_GROUPS, 3));
    assert_false(broker_proto_group_supported(BROKER_API_DESCRIBE_GROUPS, 5));
    assert_true(broker_proto_group_supported(BROKER_API_DELETE_GROUPS, 1));
    assert_false(broker_proto_group_supported(BROKER_API_DELETE_GROUPS, 2)); /* flexible */
    assert_false(broker_proto_group_supported(3, 0));
}

static void test_join_decode_v5_reads_instance_id_and_protocols(void **state)
{
    core_buf_t b;
    core_buf_init(&b);
    build(&b, BROKER_API_JOIN_GROUP, 5);
    core_rd_t rd;
    core_rd_init(&rd, b.data, b.len);
    broker_cg_join_req_t r = {0};
    assert_int_equal(broker_proto_join_decode(&rd, 5, &r), 0);
    assert_int_equal(r.session_timeout_ms, 10000);
    assert_int_equal(r.rebalance_timeout_ms, 30000);
    assert_int_equal(r.group_instance_id.len, -1);
    assert_int_equal(r.nprotocols, 2);
    assert_memory_equal(r.protocols[1].name.ptr, "roundrobin", 10);
    broker_cg_arena_free(&r.arena);
    core_buf_fini(&b);
}

static void test_join_v0_uses_session_timeout_as_rebalance_timeout(void **state)
{
    core_buf_t b;
    core_buf_init(&b);
    build(&b, BROKER_API_JOIN_GROUP, 0);
    core_rd_t rd;
    core_rd_init(&rd, b.data, b.len);
    broker_cg_join_req_t r = {0};
    assert_int_equal(broker_proto_join_decode(&rd, 0, &r), 0);
    assert_int_equal(r.rebalance_timeout_ms, 10000);
    broker_cg_arena_free(&r.arena);
    core_buf_fini(&b);
}

static void test_commit_decode_picks_fields_by_version(void **state)
{
    for (int16_t v = 0; v <= 7; v++) {
        core_buf_t b;
        core_buf_init(&b);
        build(&b, BROKER_API_OFFSET_COMMIT, v);
        core_rd_t rd;
        core_rd_init(&rd, b.data, b.len);
        broker_cg_commit_req_t r = {0};
        assert_int_equal(broker_proto_commit_decode(&rd, v, &r), 0);
        assert_int_equal(r.generation_id, v >= 1 ? 3 : -1);
        assert_int_equal(r.ntopics, 1);
        assert_int_equal(r.topics[0].npartitions, 2);
        assert_int_equal(r.topics[0].partitions[1].offset, 101);
        assert_int_equal(r.topics[0].partitions[0].leader_epoch, v >= 6 ? 5 : -1);
        assert_int_equal(r.topics[0].partitions[0].commit_timestamp, v == 1 ? 1234 : -1);
        assert_int_equal(r.topics[0].partitions[1].metadata.len, -1);
        broker_cg_arena_free(&r.arena);
        core_buf_fini(&b);
    }
}

static void test_offset_fetch_v2_accepts_null_topics_v1_does_not(void **state)
{
    uint8_t body[] = {0, 1, 'g', 0xff, 0xff, 0xff, 0xff};
    core_rd_t rd;
    core_rd_init(&rd, body, sizeof body);
    broker_cg_fetch_req_t r = {0};
    assert_int_equal(broker_proto_offset_fetch_decode(&rd, 2, &r), 0);
    assert_int_equal(r.ntopics, -1);
    core_rd_init(&rd, body, sizeof body);
    broker_cg_fetch_req_t r1 = {0};
    assert_int_not_equal(broker_proto_offset_fetch_decode(&rd, 1, &r1), 0);
}

static void test_huge_array_count_is_rejected_before_allocation(void **state)
{
    /* DescribeGroups claiming 1000 groups in 6 bytes */
    uint8_t body[] = {0, 0, 0x03, 0xe8, 0, 0};
    core_rd_t rd;
    core_rd_init(&rd, body, sizeof body);
    broker_cg_describe_req_t r = {0};
    assert_int_not_equal(broker_proto_describe_decode(&rd, 0, &r), 0);
    assert_null(r.arena.head);
    /* and one over the cap */
    uint8_t body2[] = {0, 0, 0x03, 0xe9};
    core_rd_init(&rd, body2, sizeof body2);
    broker_cg_describe_req_t r2 = {0};
    assert_int_equal(broker_proto_describe_decode(&rd, 0, &r2), CORE_ERR_TOO_LARGE);
}

static void test_join_response_members_only_with_instance_id_in_v5(void **state)
{
    broker_cg_join_member_t m = {.member_id = "m", .group_instance_id = NULL,
                                 .metadata = (const uint8_t *)"x", .metadata_len = 1};
    broker_cg_join_resp_t r = {.error_code = 0, .generation_id = 2, .protocol_name = "range",
                               .leader = "m", .member_id = "m", .nmembers = 1, .members = &m};
    core_buf_t b;
    core_buf_init(&b);
    broker_proto_join_encode(&b, 5, &r);
    const uint8_t want[] = {0, 0, 0, 0, /* throttle */ 0, 0, /* error */ 0, 0, 0, 2,
                            0, 5, 'r', 'a', 'n', 'g', 'e', 0, 1, 'm', 0, 1, 'm',
                            0, 0, 0, 1, 0, 1, 'm', 0xff, 0xff, 0, 0, 0, 1, 'x'};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    core_buf_reset(&b);
    broker_proto_join_encode(&b, 1, &r); /* no throttle, no instance id */
    assert_int_equal(b.len, sizeof want - 4 - 2);
    core_buf_fini(&b);
}

static void test_findcoordinator_response_layout_by_version(void **state)
{
    broker_proto_findcoord_resp_t r = {.error_code = 0, .error_message = NULL, .node_id = 1,
                                       .host = "h", .port = 9092};
    core_buf_t b;
    core_buf_init(&b);
    broker_proto_findcoord_encode(&b, 0, &r);
    const uint8_t v0[] = {0, 0, 0, 0, 0, 1, 0, 1, 'h', 0, 0, 0x23, 0x84};
    assert_int_equal(b.len, sizeof v0);
    assert_memory_equal(b.data, v0, sizeof v0);
    core_buf_reset(&b);
    broker_proto_findcoord_encode(&b, 2, &r);
    const uint8_t v2[] = {0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1, 0, 1, 'h', 0, 0, 0x23, 0x84};
    assert_int_equal(b.len, sizeof v2);
    assert_memory_equal(b.data, v2, sizeof v2);
    core_buf_fini(&b);
}

static void test_offset_fetch_v1_repeats_group_error_per_partition(void **state)
{
    broker_cg_fetch_part_t p = {.partition = 0, .offset = -1, .metadata = ""};
    broker_cg_fetch_topic_t t = {.name = S("t"), .npartitions = 1, .partitions = &p};
    broker_cg_fetch_req_t r = {.version = 1, .ntopics = 1, .topics = &t, .error_code = 14};
    core_buf_t b;
    core_buf_init(&b);
    broker_proto_offset_fetch_encode(&b, 1, &r);
    const uint8_t want[] = {0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 1, 0, 0, 0, 0,
                            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 14};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    core_buf_reset(&b);
    broker_proto_offset_fetch_encode(&b, 5, &r);
    /* throttle + ... + leader epoch + top-level error at the end */
    assert_int_equal(b.len, 4 + sizeof want + 4 + 2);
    assert_int_equal(b.data[b.len - 1], 14);
    assert_int_equal(b.data[b.len - 3], 0); /* the partition's own code stays 0 */
    core_buf_fini(&b);
}

static void test_describe_response_v4_layout(void **state)
{
    broker_cg_described_member_t m = {.member_id = "m", .client_id = "c", .client_host = "/h",
                                      .metadata = NULL, .metadata_len = 0,
                                      .assignment = (const uint8_t *)"A", .assignment_len = 1};
    broker_cg_described_t d = {.error_code = 0, .group_id = S("g"), .state = "Stable",
                               .protocol_type = "consumer", .protocol = "range", .nmembers = 1,
                               .members = &m};
    broker_cg_describe_req_t r = {.ngroups = 1, .out = &d};
    core_buf_t b;
    core_buf_init(&b);
    broker_proto_describe_encode(&b, 4, &r);
    core_rd_t rd;
    core_rd_init(&rd, b.data, b.len);
    assert_int_equal(core_rd_i32(&rd), 0);
    assert_int_equal(core_rd_array(&rd, 10, 1), 1);
    assert_int_equal(core_rd_i16(&rd), 0);
    assert_int_equal(core_rd_str(&rd).len, 1);
    assert_memory_equal(core_rd_str(&rd).ptr, "Stable", 6);
    core_rd_str(&rd);
    core_rd_str(&rd);
    assert_int_equal(core_rd_array(&rd, 10, 1), 1);
    core_rd_str(&rd);
    assert_int_equal(core_rd_nstr(&rd).len, -1);
    assert_int_equal(core_rd_str(&rd).len, 1);
    assert_int_equal(core_rd_str(&rd).len, 2);
    assert_int_equal(core_rd_bytes(&rd).len, 0);
    assert_int_equal(core_rd_bytes(&rd).len, 1);
    core_rd_i32(&rd);
    assert_int_equal(rd.err, 0);
    assert_int_equal(core_rd_remain(&rd), 0);
    core_buf_fini(&b);
}

static void test_delete_groups_round_trip_and_error_positions(void **state)
{
    core_buf_t b;
    core_buf_init(&b);
    core_wr_i32(&b, 2);
    wstr(&b, "gone");
    wstr(&b, "busy");
    core_rd_t rd;
    core_rd_init(&rd, b.data, b.len);
    broker_proto_delete_groups_req_t r = {0};
    assert_int_equal(broker_proto_delete_groups_decode(&rd, 1, &r), 0);
    assert_int_equal(r.ngroups, 2);
    assert_int_equal(r.groups[1].len, 4);
    assert_memory_equal(r.groups[1].ptr, "busy", 4);
    assert_int_equal(r.error_codes[0], 0);
    r.error_codes[1] = BROKER_CG_ERR_NON_EMPTY_GROUP;
    core_buf_t o;
    core_buf_init(&o);
    size_t pos[2];
    broker_proto_delete_groups_encode(&o, 1, &r, pos);
    /* throttle_time_ms, [group_id, error_code] */
    static const uint8_t want[] = {0, 0, 0, 0, 0, 0, 0, 2, 0, 4, 'g', 'o', 'n', 'e', 0, 0,
                                   0, 4, 'b', 'u', 's', 'y', 0, 68};
    assert_int_equal(o.len, sizeof want);
    assert_memory_equal(o.data, want, sizeof want);
    assert_int_equal(pos[0], 14);
    assert_int_equal(pos[1], 22);
    core_buf_fini(&o);
    broker_cg_arena_free(&r.arena);
    core_buf_fini(&b);
    /* a null array is not a valid DeleteGroups body */
    core_buf_init(&b);
    core_wr_i32(&b, -1);
    core_rd_init(&rd, b.data, b.len);
    broker_proto_delete_groups_req_t n = {0};
    assert_int_not_equal(broker_proto_delete_groups_decode(&rd, 0, &n), 0);
    broker_cg_arena_free(&n.arena);
    core_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_version_decodes_whole_and_fails_at_every_truncation_point),
        cmocka_unit_test(test_supported_matches_the_advertised_table),
        cmocka_unit_test(test_join_decode_v5_reads_instance_id_and_protocols),
        cmocka_unit_test(test_join_v0_uses_session_timeout_as_rebalance_timeout),
        cmocka_unit_test(test_commit_decode_picks_fields_by_version),
        cmocka_unit_test(test_offset_fetch_v2_accepts_null_topics_v1_does_not),
        cmocka_unit_test(test_huge_array_count_is_rejected_before_allocation),
        cmocka_unit_test(test_join_response_members_only_with_instance_id_in_v5),
        cmocka_unit_test(test_findcoordinator_response_layout_by_version),
        cmocka_unit_test(test_offset_fetch_v1_repeats_group_error_per_partition),
        cmocka_unit_test(test_describe_response_v4_layout),
        cmocka_unit_test(test_delete_groups_round_trip_and_error_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
