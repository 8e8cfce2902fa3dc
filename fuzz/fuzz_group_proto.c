/*
 * fuzz_group_proto — the group API decoders (broker_proto_group) and the
 * coordinator behind them. Input: byte 0 picks the API, byte 1 the version,
 * the rest is the request body. Whatever decodes is fed to a coordinator
 * (JoinGroup/SyncGroup/Heartbeat/LeaveGroup/OffsetCommit/OffsetFetch/
 * DescribeGroups/DeleteGroups) and the response is encoded, so the state machine also
 * sees hostile ids, counts and strings.
 */
#include <stddef.h>
#include <stdint.h>

#include "broker/broker_offsets.h"
#include "broker/broker_proto_group.h"

/* New APIs go at the end so existing seeds keep their meaning. */
static const int16_t apis[] = {8, 9, 10, 11, 12, 13, 14, 15, 16, -1 /* __consumer_offsets record */,
                               42};

static void join_cb(void *arg, const broker_cg_join_resp_t *r)
{
    broker_proto_join_encode(arg, 5, r);
}

static void sync_cb(void *arg, const broker_cg_sync_resp_t *r)
{
    broker_proto_sync_encode(arg, 3, r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int16_t api = apis[data[0] % (sizeof apis / sizeof *apis)];
    int16_t v = (int16_t)(data[1] % 8);
    if (api < 0) {
        /* key length (byte 1), key, then value (rest; empty = tombstone) */
        size_t klen = data[1];
        if (klen > size - 2)
            klen = size - 2;
        core_slice_t key = {data + 2, (int64_t)klen};
        size_t vlen = size - 2 - klen;
        core_slice_t val = {vlen ? data + 2 + klen : NULL, vlen ? (int64_t)vlen : -1};
        broker_offsets_record_t r;
        broker_offsets_record_decode(key, val, &r);
        return 0;
    }
    if (!broker_proto_group_supported(api, v))
        return 0;
    core_rd_t rd;
    core_rd_init(&rd, data + 2, size - 2);
    core_buf_t out;
    core_buf_init(&out);
    broker_cg_conf_t conf;
    broker_cg_conf_default(&conf);
    conf.initial_rebalance_delay_ms = 0;
    conf.min_session_timeout_ms = 0;
    broker_cg_t *cg;
    broker_cg_new(&conf, &cg);
    switch (api) {
    case 10: {
        broker_proto_findcoord_req_t r = {0};
        broker_proto_findcoord_decode(&rd, v, &r);
        break;
    }
    case 11: {
        broker_cg_join_req_t r = {0};
        if (!broker_proto_join_decode(&rd, v, &r)) {
            r.client_host = "/127.0.0.1";
            broker_cg_join(cg, &r, 0, join_cb, &out);
            broker_cg_tick(cg, 1000000);
        }
        broker_cg_arena_free(&r.arena);
        break;
    }
    case 14: {
        broker_cg_sync_req_t r = {0};
        if (!broker_proto_sync_decode(&rd, v, &r))
            broker_cg_sync(cg, &r, 0, sync_cb, &out);
        broker_cg_arena_free(&r.arena);
        break;
    }
    case 12: {
        broker_cg_heartbeat_req_t r = {0};
        if (!broker_proto_heartbeat_decode(&rd, v, &r))
            broker_proto_heartbeat_encode(&out, v, broker_cg_heartbeat(cg, &r, 0));
        break;
    }
    case 13: {
        broker_cg_leave_req_t r = {0};
        if (!broker_proto_leave_decode(&rd, v, &r))
            broker_proto_leave_encode(&out, v, broker_cg_leave(cg, &r, 0), &r);
        broker_cg_arena_free(&r.arena);
        break;
    }
    case 8: {
        broker_cg_commit_req_t r = {0};
        if (!broker_proto_commit_decode(&rd, v, &r)) {
            broker_cg_commit_check(cg, &r, 0);
            broker_proto_commit_encode(&out, v, &r, NULL);
        }
        broker_cg_arena_free(&r.arena);
        break;
    }
    case 9: {
        broker_cg_fetch_req_t r = {0};
        if (!broker_proto_offset_fetch_decode(&rd, v, &r)) {
            broker_cg_offset_fetch(cg, &r);
            broker_proto_offset_fetch_encode(&out, v, &r);
        }
        broker_cg_arena_free(&r.arena);
        break;
    }
    case 15: {
        broker_cg_describe_req_t r = {0};
        if (!broker_proto_describe_decode(&rd, v, &r)) {
            broker_cg_describe(cg, &r);
            broker_proto_describe_encode(&out, v, &r);
        }
        broker_cg_arena_free(&r.arena);
        break;
    }
    case 16:
        broker_proto_list_groups_decode(&rd, v);
        break;
    case 42: {
        broker_cg_offset_t o = {.offset = 1, .leader_epoch = -1, .expire_ts = -1, .metadata = ""};
        broker_cg_offset_put(cg, "g", "t", 0, &o);
        broker_proto_delete_groups_req_t r = {0};
        if (!broker_proto_delete_groups_decode(&rd, v, &r)) {
            for (int32_t i = 0; i < r.ngroups; i++)
                r.error_codes[i] = broker_cg_delete_group(cg, r.groups[i]);
            broker_proto_delete_groups_encode(&out, v, &r, NULL);
        }
        broker_cg_arena_free(&r.arena);
        break;
    }
    }
    broker_cg_free(cg);
    core_buf_fini(&out);
    return 0;
}
