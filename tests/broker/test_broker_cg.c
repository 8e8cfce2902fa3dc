/*
 * test_broker_cg — the group coordinator state machine, driven with a fake
 * clock and recorded callbacks (no sockets).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker_cg.h"

#define S(x) ((core_slice_t){(const uint8_t *)(x), (int64_t)strlen(x)})
#define NUL_SLICE ((core_slice_t){NULL, -1})

/* A recorded JoinGroup/SyncGroup answer. */
typedef struct rec {
    int calls;
    int16_t err;
    int32_t gen;
    char member_id[256];
    char leader[256];
    char protocol[64];
    int nmembers;
    char assignment[64];
} rec_t;

static void join_cb(void *arg, const broker_cg_join_resp_t *r)
{
    rec_t *rec = arg;
    rec->calls++;
    rec->err = r->error_code;
    rec->gen = r->generation_id;
    snprintf(rec->member_id, sizeof rec->member_id, "%s", r->member_id);
    snprintf(rec->leader, sizeof rec->leader, "%s", r->leader);
    snprintf(rec->protocol, sizeof rec->protocol, "%s", r->protocol_name);
    rec->nmembers = r->nmembers;
}

static void sync_cb(void *arg, const broker_cg_sync_resp_t *r)
{
    rec_t *rec = arg;
    rec->calls++;
    rec->err = r->error_code;
    snprintf(rec->assignment, sizeof rec->assignment, "%.*s", (int)r->assignment_len,
             r->assignment ? (const char *)r->assignment : "");
}

static broker_cg_t *new_cg(int64_t delay)
{
    broker_cg_conf_t conf;
    broker_cg_conf_default(&conf);
    conf.initial_rebalance_delay_ms = delay;
    broker_cg_t *cg;
    assert_int_equal(broker_cg_new(&conf, &cg), 0);
    return cg;
}

static void join_ex(broker_cg_t *cg, int16_t version, const char *group, const char *member,
                    const char *client, const char **protos, int nprotos, int64_t now, rec_t *rec)
{
    char mid[256];
    snprintf(mid, sizeof mid, "%s", member); /* member may point into *rec */
    broker_cg_protocol_t p[8];
    for (int i = 0; i < nprotos; i++) {
        p[i].name = S(protos[i]);
        p[i].metadata = S(protos[i]); /* metadata = name, to check relaying */
    }
    broker_cg_join_req_t req = {
        .version = version, .group_id = S(group), .session_timeout_ms = 10000,
        .rebalance_timeout_ms = 30000, .member_id = S(mid), .group_instance_id = NUL_SLICE,
        .protocol_type = S("consumer"), .nprotocols = nprotos, .protocols = p,
        .client_id = S(client), .client_host = "/127.0.0.1"};
    memset(rec, 0, sizeof *rec);
    broker_cg_join(cg, &req, now, join_cb, rec);
}

static const char *RANGE[] = {"range", "roundrobin"};

static void join(broker_cg_t *cg, int16_t v, const char *group, const char *member, int64_t now,
                 rec_t *rec)
{
    join_ex(cg, v, group, member, "c", RANGE, 2, now, rec);
}

static void sync_(broker_cg_t *cg, const char *group, int32_t gen, const char *member,
                  broker_cg_assignment_t *as, int nas, int64_t now, rec_t *rec)
{
    char mid[256];
    snprintf(mid, sizeof mid, "%s", member);
    broker_cg_sync_req_t req = {.version = 3, .group_id = S(group), .generation_id = gen,
                                .member_id = S(mid), .group_instance_id = NUL_SLICE,
                                .nassignments = nas, .assignments = as};
    memset(rec, 0, sizeof *rec);
    broker_cg_sync(cg, &req, now, sync_cb, rec);
}

static int16_t hb(broker_cg_t *cg, const char *group, int32_t gen, const char *member, int64_t now)
{
    broker_cg_heartbeat_req_t req = {.version = 3, .group_id = S(group), .generation_id = gen,
                                     .member_id = S(member), .group_instance_id = NUL_SLICE};
    return broker_cg_heartbeat(cg, &req, now);
}

static int16_t commit(broker_cg_t *cg, const char *group, int32_t gen, const char *member,
                      int64_t now)
{
    broker_cg_commit_part_t part = {.partition = 0, .offset = 42, .leader_epoch = -1,
                                    .commit_timestamp = -1, .metadata = S("")};
    broker_cg_commit_topic_t topic = {.name = S("t"), .npartitions = 1, .partitions = &part};
    broker_cg_commit_req_t req = {.version = 7, .group_id = S(group), .generation_id = gen,
                                  .member_id = S(member), .group_instance_id = NUL_SLICE,
                                  .retention_time_ms = -1, .ntopics = 1, .topics = &topic};
    broker_cg_commit_check(cg, &req, now);
    return part.error_code;
}

/* Forms a stable one-member group "g" (v5 dance) and returns its member id in id. */
static void stable_one(broker_cg_t *cg, char *id, size_t idsz, int64_t *now)
{
    rec_t j, s;
    join(cg, 5, "g", "", *now, &j);
    assert_int_equal(j.err, BROKER_CG_ERR_MEMBER_ID_REQUIRED);
    snprintf(id, idsz, "%s", j.member_id);
    join(cg, 5, "g", id, *now, &j);
    assert_int_equal(j.calls, 0); /* held for the initial delay */
    *now += 100;
    broker_cg_tick(cg, *now);
    assert_int_equal(j.calls, 1);
    assert_int_equal(j.err, 0);
    assert_int_equal(j.gen, 1);
    broker_cg_assignment_t a = {S(id), S("A")};
    sync_(cg, "g", 1, id, &a, 1, *now, &s);
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.assignment, "A");
}

static void test_join_v4_plus_with_empty_member_id_requires_member_id(void **state)
{
    broker_cg_t *cg = new_cg(0);
    rec_t r;
    join(cg, 4, "g", "", 0, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, BROKER_CG_ERR_MEMBER_ID_REQUIRED);
    assert_true(strncmp(r.member_id, "c-", 2) == 0);
    assert_int_equal(strlen(r.member_id), 2 + 36);
    char id[256];
    snprintf(id, sizeof id, "%s", r.member_id);
    join(cg, 4, "g", id, 0, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.member_id, id);
    assert_string_equal(r.leader, id);
    assert_int_equal(r.nmembers, 1);
    broker_cg_free(cg);
}

static void test_join_v0_to_v3_admits_a_new_member_directly(void **state)
{
    broker_cg_t *cg = new_cg(0);
    for (int v = 0; v <= 3; v++) {
        char g[8];
        snprintf(g, sizeof g, "g%d", v);
        rec_t r;
        join(cg, (int16_t)v, g, "", 0, &r);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.err, 0);
        assert_int_equal(r.gen, 1);
        assert_string_equal(r.leader, r.member_id);
    }
    broker_cg_free(cg);
}

static void test_join_rejects_unknown_member_id(void **state)
{
    broker_cg_t *cg = new_cg(0);
    rec_t r;
    join(cg, 5, "g", "nobody", 0, &r);
    assert_int_equal(r.err, BROKER_CG_ERR_UNKNOWN_MEMBER_ID);
    broker_cg_free(cg);
}

static void test_join_rejects_session_timeout_out_of_bounds(void **state)
{
    broker_cg_t *cg = new_cg(0);
    broker_cg_protocol_t p = {S("range"), S("")};
    broker_cg_join_req_t req = {.version = 2, .group_id = S("g"), .session_timeout_ms = 5999,
                                .rebalance_timeout_ms = 30000, .member_id = S(""),
                                .group_instance_id = NUL_SLICE, .protocol_type = S("consumer"),
                                .nprotocols = 1, .protocols = &p, .client_id = S("c"),
                                .client_host = "/h"};
    rec_t r = {0};
    broker_cg_join(cg, &req, 0, join_cb, &r);
    assert_int_equal(r.err, BROKER_CG_ERR_INVALID_SESSION_TIMEOUT);
    req.session_timeout_ms = 6000; /* the minimum itself is fine (pitfall 18) */
    memset(&r, 0, sizeof r);
    broker_cg_join(cg, &req, 0, join_cb, &r);
    assert_int_equal(r.err, 0);
    broker_cg_free(cg);
}

static void test_join_rejects_empty_group_id(void **state)
{
    broker_cg_t *cg = new_cg(0);
    rec_t r;
    join(cg, 5, "", "", 0, &r);
    assert_int_equal(r.err, BROKER_CG_ERR_INVALID_GROUP_ID);
    broker_cg_free(cg);
}

static void test_two_members_leader_gets_member_list_follower_gets_none(void **state)
{
    broker_cg_t *cg = new_cg(3000);
    rec_t a, b;
    join(cg, 2, "g", "", 0, &a);
    join(cg, 2, "g", "", 500, &b);
    assert_int_equal(a.calls + b.calls, 0); /* initial delay holds both */
    broker_cg_tick(cg, 3000);
    assert_int_equal(a.calls, 0); /* b arrived during the delay: extended */
    broker_cg_tick(cg, 6000);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.gen, 1);
    assert_int_equal(b.gen, 1);
    assert_string_equal(a.leader, a.member_id);
    assert_string_equal(b.leader, a.member_id);
    assert_int_equal(a.nmembers, 2);
    assert_int_equal(b.nmembers, 0);
    assert_string_equal(a.protocol, "range");
    broker_cg_free(cg);
}

static void test_follower_sync_is_held_until_leader_syncs(void **state)
{
    broker_cg_t *cg = new_cg(0);
    rec_t a, b, sa, sb;
    join(cg, 2, "g", "", 0, &a); /* gen 1 alone */
    join(cg, 2, "g", "", 10, &b); /* new member: rebalance, b held */
    assert_int_equal(b.calls, 0);
    assert_int_equal(hb(cg, "g", 1, a.member_id, 20), BROKER_CG_ERR_REBALANCE_IN_PROGRESS);
    join(cg, 2, "g", a.member_id, 30, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.gen, 2);
    sync_(cg, "g", 2, b.member_id, NULL, 0, 40, &sb);
    assert_int_equal(sb.calls, 0); /* held */
    broker_cg_assignment_t as[2] = {{S(a.member_id), S("PA")}, {S(b.member_id), S("PB")}};
    sync_(cg, "g", 2, a.member_id, as, 2, 50, &sa);
    assert_int_equal(sa.calls, 1);
    assert_int_equal(sb.calls, 1);
    assert_string_equal(sa.assignment, "PA");
    assert_string_equal(sb.assignment, "PB");
    assert_int_equal(hb(cg, "g", 2, b.member_id, 60), 0);
    broker_cg_info_t info;
    assert_int_equal(broker_cg_group_info(cg, "g", &info), 0);
    assert_int_equal(info.state, BROKER_CG_STABLE);
    broker_cg_free(cg);
}

static void test_held_sync_gets_rebalance_in_progress_when_a_new_rebalance_starts(void **state)
{
    broker_cg_t *cg = new_cg(0);
    rec_t a, b, c, sb;
    join(cg, 2, "g", "", 0, &a);
    join(cg, 2, "g", "", 1, &b);
    join(cg, 2, "g", a.member_id, 2, &a);
    sync_(cg, "g", 2, b.member_id, NULL, 0, 3, &sb);
    assert_int_equal(sb.calls, 0);
    join(cg, 2, "g", "", 4, &c); /* a third member arrives before the leader synced */
    assert_int_equal(sb.calls, 1);
    assert_int_equal(sb.err, BROKER_CG_ERR_REBALANCE_IN_PROGRESS);
    broker_cg_free(cg);
}

static void test_heartbeat_errors_in_kafka_order(void **state)
{
    broker_cg_t *cg = new_cg(100);
    int64_t now = 0;
    char id[256];
    stable_one(cg, id, sizeof id, &now);
    assert_int_equal(hb(cg, "nogroup", 1, id, now), BROKER_CG_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(hb(cg, "g", 1, "stranger", now), BROKER_CG_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(hb(cg, "g", 7, id, now), BROKER_CG_ERR_ILLEGAL_GENERATION);
    assert_int_equal(hb(cg, "g", 1, id, now), 0);
    broker_cg_free(cg);
}

static void test_session_expiry_removes_member_and_rebalances_the_rest(void **state)
{
    broker_cg_t *cg = new_cg(0);
    rec_t a, b, sa, sb;
    join(cg, 2, "g", "", 0, &a);
    join(cg, 2, "g", "", 1, &b);
    join(cg, 2, "g", a.member_id, 2, &a);
    broker_cg_assignment_t as[2] = {{S(a.member_id), S("PA")}, {S(b.member_id), S("PB")}};
    sync_(cg, "g", 2, b.member_id, NULL, 0, 3, &sb);
    sync_(cg, "g", 2, a.member_id, as, 2, 3, &sa);
    /* a keeps heartbeating, b goes silent */
    for (int64_t t = 1000; t <= 12000; t += 1000) {
        int16_t e = hb(cg, "g", 2, a.member_id, t);
        broker_cg_tick(cg, t);
        if (e)
            break;
    }
    assert_int_equal(hb(cg, "g", 2, a.member_id, 12100), BROKER_CG_ERR_REBALANCE_IN_PROGRESS);
    join(cg, 2, "g", a.member_id, 12200, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.gen, 3);
    assert_int_equal(a.nmembers, 1);
    broker_cg_free(cg);
}

static void test_member_that_never_rejoins_is_dropped_at_rebalance_timeout(void **state)
{
    broker_cg_t *cg = new_cg(0);
    rec_t a, b, c;
    join(cg, 2, "g", "", 0, &a);
    join(cg, 2, "g", "", 1, &b);
    join(cg, 2, "g", a.member_id, 2, &a); /* gen 2: a, b */
    join(cg, 2, "g", "", 3, &c);          /* rebalance; a rejoins, b never does */
    join(cg, 2, "g", a.member_id, 4, &a);
    assert_int_equal(a.calls, 0);
    /* b keeps heartbeating (getting 27) but never rejoins; deadline = 3 + 30000 */
    for (int64_t t = 5000; t <= 30000; t += 5000) {
        assert_int_equal(hb(cg, "g", 2, b.member_id, t), BROKER_CG_ERR_REBALANCE_IN_PROGRESS);
        broker_cg_tick(cg, t);
    }
    broker_cg_tick(cg, 30002);
    assert_int_equal(a.calls, 0);
    broker_cg_tick(cg, 30004);
    assert_int_equal(a.calls, 1);
    assert_int_equal(c.calls, 1);
    assert_int_equal(a.gen, 3);
    assert_int_equal(a.nmembers, 2);
    assert_int_equal(hb(cg, "g", 3, b.member_id, 30005), BROKER_CG_ERR_UNKNOWN_MEMBER_ID);
    broker_cg_free(cg);
}

static void test_leave_of_last_member_makes_group_empty(void **state)
{
    broker_cg_t *cg = new_cg(100);
    int64_t now = 0;
    char id[256];
    stable_one(cg, id, sizeof id, &now);
    broker_cg_leave_member_t lm = {.member_id = S(id), .group_instance_id = NUL_SLICE};
    broker_cg_leave_req_t req = {.version = 1, .group_id = S("g"), .nmembers = 1, .members = &lm};
    assert_int_equal(broker_cg_leave(cg, &req, now), 0);
    /* the group had no offsets: it is gone */
    broker_cg_info_t info;
    assert_int_equal(broker_cg_group_info(cg, "g", &info), CORE_ERR_NOT_FOUND);
    assert_int_equal(broker_cg_leave(cg, &req, now), BROKER_CG_ERR_UNKNOWN_MEMBER_ID);
    broker_cg_free(cg);
}

static void test_inconsistent_protocol_is_rejected(void **state)
{
    broker_cg_t *cg = new_cg(0);
    rec_t a, b;
    join(cg, 2, "g", "", 0, &a);
    const char *rr[] = {"RoundRobinAssigner"};
    join_ex(cg, 2, "g", "", "kafkajs", rr, 1, 1, &b);
    assert_int_equal(b.err, BROKER_CG_ERR_INCONSISTENT_GROUP_PROTOCOL);
    broker_cg_free(cg);
}

static void test_protocol_selection_picks_one_every_member_supports(void **state)
{
    broker_cg_t *cg = new_cg(1000);
    rec_t a, b;
    const char *pa[] = {"range", "roundrobin"};
    const char *pb[] = {"sticky", "roundrobin"};
    join_ex(cg, 2, "g", "", "c", pa, 2, 0, &a);
    join_ex(cg, 2, "g", "", "c", pb, 2, 1, &b);
    broker_cg_tick(cg, 1000); /* b arrived during the delay: one more delay slice */
    assert_int_equal(a.calls, 0);
    broker_cg_tick(cg, 2000);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, 0);
    assert_string_equal(a.protocol, "roundrobin");
    assert_string_equal(b.protocol, "roundrobin");
    broker_cg_free(cg);
}

static void test_commit_rules_follow_pitfall_15(void **state)
{
    broker_cg_t *cg = new_cg(0);
    /* simple commit to an unknown group creates it */
    assert_int_equal(commit(cg, "simple", -1, "", 0), 0);
    /* unknown group with a generation: illegal generation */
    assert_int_equal(commit(cg, "nope", 3, "m", 0), BROKER_CG_ERR_ILLEGAL_GENERATION);

    rec_t a, b;
    join(cg, 2, "g", "", 0, &a); /* gen 1, CompletingRebalance */
    assert_int_equal(commit(cg, "g", 1, a.member_id, 1), BROKER_CG_ERR_REBALANCE_IN_PROGRESS);
    rec_t sa;
    broker_cg_assignment_t as = {S(a.member_id), S("x")};
    sync_(cg, "g", 1, a.member_id, &as, 1, 2, &sa); /* Stable */
    assert_int_equal(commit(cg, "g", 1, a.member_id, 3), 0);
    assert_int_equal(commit(cg, "g", 1, "stranger", 3), BROKER_CG_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(commit(cg, "g", 9, a.member_id, 3), BROKER_CG_ERR_ILLEGAL_GENERATION);
    assert_int_equal(commit(cg, "g", -1, "", 3), BROKER_CG_ERR_UNKNOWN_MEMBER_ID); /* has members */
    join(cg, 2, "g", "", 4, &b); /* PreparingRebalance: members may still commit */
    assert_int_equal(commit(cg, "g", 1, a.member_id, 5), 0);
    broker_cg_free(cg);
}

static void test_commit_metadata_over_limit_is_rejected(void **state)
{
    broker_cg_t *cg = new_cg(0);
    char *big = malloc(5000);
    memset(big, 'm', 4999);
    big[4999] = 0;
    broker_cg_commit_part_t part = {.partition = 0, .offset = 1, .leader_epoch = -1,
                                    .metadata = S(big)};
    broker_cg_commit_topic_t topic = {.name = S("t"), .npartitions = 1, .partitions = &part};
    broker_cg_commit_req_t req = {.version = 2, .group_id = S("g"), .generation_id = -1,
                                  .member_id = S(""), .group_instance_id = NUL_SLICE,
                                  .ntopics = 1, .topics = &topic};
    assert_int_equal(broker_cg_commit_check(cg, &req, 0), 0);
    assert_int_equal(part.error_code, BROKER_CG_ERR_OFFSET_METADATA_TOO_LARGE);
    free(big);
    broker_cg_free(cg);
}

static void test_loading_answers_coordinator_load_in_progress(void **state)
{
    broker_cg_t *cg = new_cg(0);
    broker_cg_set_loading(cg, true);
    rec_t r;
    join(cg, 5, "g", "", 0, &r);
    assert_int_equal(r.err, BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    assert_int_equal(hb(cg, "g", 1, "m", 0), BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    assert_int_equal(commit(cg, "g", -1, "", 0), BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    broker_cg_fetch_req_t f = {.version = 5, .group_id = S("g"), .ntopics = -1};
    broker_cg_offset_fetch(cg, &f);
    assert_int_equal(f.error_code, BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    broker_cg_arena_free(&f.arena);
    broker_cg_set_loading(cg, false);
    join(cg, 5, "g", "", 0, &r);
    assert_int_equal(r.err, BROKER_CG_ERR_MEMBER_ID_REQUIRED);
    broker_cg_free(cg);
}

static void test_offset_fetch_returns_minus_one_for_uncommitted_and_all_for_null(void **state)
{
    broker_cg_t *cg = new_cg(0);
    broker_cg_offset_t o = {.offset = 7, .leader_epoch = 3, .commit_ts = 1000, .expire_ts = -1,
                            .metadata = "md"};
    broker_cg_offset_put(cg, "g", "t", 1, &o);
    o.offset = 9;
    broker_cg_offset_put(cg, "g", "u", 0, &o);
    broker_cg_fetch_part_t parts[2] = {{.partition = 0}, {.partition = 1}};
    broker_cg_fetch_topic_t topic = {.name = S("t"), .npartitions = 2, .partitions = parts};
    broker_cg_fetch_req_t f = {.version = 5, .group_id = S("g"), .ntopics = 1, .topics = &topic};
    broker_cg_offset_fetch(cg, &f);
    assert_int_equal(parts[0].offset, -1);
    assert_int_equal(parts[1].offset, 7);
    assert_int_equal(parts[1].leader_epoch, 3);
    assert_string_equal(parts[1].metadata, "md");
    broker_cg_fetch_req_t all = {.version = 5, .group_id = S("g"), .ntopics = -1};
    broker_cg_offset_fetch(cg, &all);
    assert_int_equal(all.ntopics, 2);
    int total = 0;
    for (int i = 0; i < all.ntopics; i++)
        total += all.topics[i].npartitions;
    assert_int_equal(total, 2);
    broker_cg_arena_free(&all.arena);
    broker_cg_free(cg);
}

static int expired;
static void count_expired(void *arg, const char *g, const char *t, int32_t p,
                          const broker_cg_offset_t *o)
{
    expired++;
}

static void test_offsets_of_empty_group_expire_after_retention(void **state)
{
    broker_cg_t *cg = new_cg(0);
    broker_cg_offset_t o = {.offset = 7, .leader_epoch = -1, .commit_ts = 1000, .expire_ts = -1,
                            .metadata = ""};
    broker_cg_offset_put(cg, "g", "t", 0, &o);
    int64_t week = 7LL * 24 * 3600 * 1000;
    expired = 0;
    assert_int_equal(broker_cg_expire_offsets(cg, 1000 + week - 1, count_expired, NULL), 0);
    assert_int_equal(broker_cg_expire_offsets(cg, 1000 + week, count_expired, NULL), 1);
    assert_int_equal(expired, 1);
    broker_cg_info_t info;
    assert_int_equal(broker_cg_group_info(cg, "g", &info), CORE_ERR_NOT_FOUND);
    broker_cg_free(cg);
}

static void test_offsets_of_active_group_do_not_expire(void **state)
{
    broker_cg_t *cg = new_cg(0);
    rec_t a;
    join(cg, 2, "g", "", 0, &a);
    broker_cg_offset_t o = {.offset = 7, .leader_epoch = -1, .commit_ts = 0, .expire_ts = -1,
                            .metadata = ""};
    broker_cg_offset_put(cg, "g", "t", 0, &o);
    assert_int_equal(broker_cg_expire_offsets(cg, INT64_MAX / 2, NULL, NULL), 0);
    broker_cg_free(cg);
}

static void test_describe_reports_members_and_unknown_group_as_dead(void **state)
{
    broker_cg_t *cg = new_cg(100);
    int64_t now = 0;
    char id[256];
    stable_one(cg, id, sizeof id, &now);
    core_slice_t names[2] = {S("g"), S("zzz")};
    broker_cg_describe_req_t req = {.version = 4, .ngroups = 2, .groups = names};
    broker_cg_describe(cg, &req);
    assert_string_equal(req.out[0].state, "Stable");
    assert_string_equal(req.out[0].protocol, "range");
    assert_int_equal(req.out[0].nmembers, 1);
    assert_string_equal(req.out[0].members[0].member_id, id);
    assert_string_equal(req.out[0].members[0].client_id, "c");
    assert_string_equal(req.out[0].members[0].client_host, "/127.0.0.1");
    assert_int_equal(req.out[0].members[0].assignment_len, 1);
    assert_int_equal(req.out[1].error_code, 0);
    assert_string_equal(req.out[1].state, "Dead");
    broker_cg_arena_free(&req.arena);
    broker_cg_free(cg);
}

static void test_delete_group_checks_in_kafka_order_and_waits_for_tombstones(void **state)
{
    broker_cg_t *cg = new_cg(100);
    int64_t now = 0;
    char id[256];
    stable_one(cg, id, sizeof id, &now);
    broker_cg_offset_t o = {.offset = 7, .leader_epoch = -1, .commit_ts = 0, .expire_ts = -1,
                            .metadata = ""};
    broker_cg_offset_put(cg, "g", "t", 0, &o);
    broker_cg_offset_put(cg, "g", "t", 1, &o);
    assert_int_equal(broker_cg_delete_group(cg, S("g")), BROKER_CG_ERR_NON_EMPTY_GROUP);
    assert_int_equal(broker_cg_delete_group(cg, S("nope")), BROKER_CG_ERR_GROUP_ID_NOT_FOUND);
    assert_int_equal(broker_cg_delete_group(cg, S("")), BROKER_CG_ERR_INVALID_GROUP_ID);
    broker_cg_leave_member_t lm = {.member_id = S(id), .group_instance_id = NUL_SLICE};
    broker_cg_leave_req_t req = {.version = 1, .group_id = S("g"), .nmembers = 1, .members = &lm};
    assert_int_equal(broker_cg_leave(cg, &req, now), 0);
    /* Empty with offsets: accepted, but the group stays until its tombstones apply */
    assert_int_equal(broker_cg_delete_group(cg, S("g")), 0);
    broker_cg_info_t info;
    assert_int_equal(broker_cg_group_info(cg, "g", &info), 0);
    broker_cg_offset_delete(cg, "g", "t", 0);
    assert_int_equal(broker_cg_group_info(cg, "g", &info), 0);
    broker_cg_offset_delete(cg, "g", "t", 1);
    assert_int_equal(broker_cg_group_info(cg, "g", &info), CORE_ERR_NOT_FOUND);
    assert_int_equal(broker_cg_delete_group(cg, S("g")), BROKER_CG_ERR_GROUP_ID_NOT_FOUND);
    /* a group that only has pending member ids is not empty */
    rec_t j;
    join(cg, 5, "p", "", now, &j);
    assert_int_equal(j.err, BROKER_CG_ERR_MEMBER_ID_REQUIRED);
    assert_int_equal(broker_cg_delete_group(cg, S("p")), BROKER_CG_ERR_NON_EMPTY_GROUP);
    broker_cg_set_loading(cg, true);
    assert_int_equal(broker_cg_delete_group(cg, S("p")), BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    broker_cg_free(cg);
}

static void test_owner_decodes_consumer_assignment(void **state)
{
    broker_cg_t *cg = new_cg(0);
    rec_t a, s;
    join(cg, 2, "g", "", 0, &a);
    /* Assignment v0: version 0, [ "t" -> [0, 2] ], user_data null */
    const uint8_t asg[] = {0, 0, 0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2,
                           0xff, 0xff, 0xff, 0xff};
    broker_cg_assignment_t as = {S(a.member_id), {asg, sizeof asg}};
    sync_(cg, "g", 1, a.member_id, &as, 1, 1, &s);
    const char *cid, *host;
    assert_true(broker_cg_owner(cg, "g", "t", 2, &cid, &host));
    assert_string_equal(cid, "c");
    assert_false(broker_cg_owner(cg, "g", "t", 1, &cid, &host));
    broker_cg_free(cg);
}

static void test_cancel_forgets_held_join(void **state)
{
    broker_cg_t *cg = new_cg(1000);
    rec_t a;
    join(cg, 2, "g", "", 0, &a);
    broker_cg_cancel(cg, &a);
    broker_cg_tick(cg, 2000);
    assert_int_equal(a.calls, 0);
    broker_cg_free(cg);
}

static void test_fail_held_answers_waiting_join_and_sync(void **state)
{
    broker_cg_t *cg = new_cg(0);
    rec_t a, b, sb;
    join(cg, 2, "g", "", 0, &a);
    join(cg, 2, "g", "", 1, &b); /* b held: a has not rejoined */
    assert_int_equal(b.calls, 0);
    assert_int_equal(broker_cg_fail_held(cg, BROKER_CG_ERR_NOT_COORDINATOR), 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.err, BROKER_CG_ERR_NOT_COORDINATOR);
    join(cg, 2, "g", a.member_id, 2, &a);
    join(cg, 2, "g", b.member_id, 3, &b);
    sync_(cg, "g", a.gen, b.member_id, NULL, 0, 4, &sb); /* follower sync held */
    assert_int_equal(sb.calls, 0);
    assert_int_equal(broker_cg_fail_held(cg, BROKER_CG_ERR_NOT_COORDINATOR), 1);
    assert_int_equal(sb.err, BROKER_CG_ERR_NOT_COORDINATOR);
    broker_cg_free(cg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_v4_plus_with_empty_member_id_requires_member_id),
        cmocka_unit_test(test_join_v0_to_v3_admits_a_new_member_directly),
        cmocka_unit_test(test_join_rejects_unknown_member_id),
        cmocka_unit_test(test_join_rejects_session_timeout_out_of_bounds),
        cmocka_unit_test(test_join_rejects_empty_group_id),
        cmocka_unit_test(test_two_members_leader_gets_member_list_follower_gets_none),
        cmocka_unit_test(test_follower_sync_is_held_until_leader_syncs),
        cmocka_unit_test(test_held_sync_gets_rebalance_in_progress_when_a_new_rebalance_starts),
        cmocka_unit_test(test_heartbeat_errors_in_kafka_order),
        cmocka_unit_test(test_session_expiry_removes_member_and_rebalances_the_rest),
        cmocka_unit_test(test_member_that_never_rejoins_is_dropped_at_rebalance_timeout),
        cmocka_unit_test(test_leave_of_last_member_makes_group_empty),
        cmocka_unit_test(test_inconsistent_protocol_is_rejected),
        cmocka_unit_test(test_protocol_selection_picks_one_every_member_supports),
        cmocka_unit_test(test_commit_rules_follow_pitfall_15),
        cmocka_unit_test(test_commit_metadata_over_limit_is_rejected),
        cmocka_unit_test(test_loading_answers_coordinator_load_in_progress),
        cmocka_unit_test(test_offset_fetch_returns_minus_one_for_uncommitted_and_all_for_null),
        cmocka_unit_test(test_offsets_of_empty_group_expire_after_retention),
        cmocka_unit_test(test_offsets_of_active_group_do_not_expire),
        cmocka_unit_test(test_describe_reports_members_and_unknown_group_as_dead),
        cmocka_unit_test(test_delete_group_checks_in_kafka_order_and_waits_for_tombstones),
        cmocka_unit_test(test_owner_decodes_consumer_assignment),
        cmocka_unit_test(test_cancel_forgets_held_join),
        cmocka_unit_test(test_fail_held_answers_waiting_join_and_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
