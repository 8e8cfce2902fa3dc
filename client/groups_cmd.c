/*
 * `eddy groups list | describe GROUP | reset-offsets GROUP | lag GROUP` —
 * consumer-group administration as a Kafka client (librdkafka Admin API),
 * so it works against any Kafka-protocol broker; `lag` reads the Burrow v3
 * endpoint of the broker's lag/metrics HTTP port (--http).
 *
 * reset-offsets refuses while the group has members, as Kafka's
 * kafka-consumer-groups tool does: offsets committed under a live member
 * would be overwritten by its next auto-commit anyway.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "cli/cli.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_httpc.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define ADMIN_TIMEOUT_MS 10000

typedef struct groups_args {
    char *broker;
    char *http;
    char *topic;
    bool to_earliest;
    bool to_latest;
    char *to_offset;
    bool dry_run;
    int64_t timeout_ms;
} groups_args_t;

/* The rows the admin subcommands (list, describe, reset-offsets) share. */
/* clang-format off */
#define OPT_BROKER                                                                                 \
    {"broker", CORE_OPT_STR, "127.0.0.1:9092", "bootstrap broker HOST:PORT",                       \
     offsetof(groups_args_t, broker)}
#define OPT_ADMIN_TIMEOUT                                                                          \
    {"timeout", CORE_OPT_DURATION, "10s", "admin request timeout",                                 \
     offsetof(groups_args_t, timeout_ms)}
/* clang-format on */

static const core_opt_t list_opts[] = {
    OPT_BROKER,
    OPT_ADMIN_TIMEOUT,
    CORE_OPT_END,
};

static const core_opt_t reset_opts[] = {
    OPT_BROKER,
    {"topic", CORE_OPT_STR, NULL, "topic whose partitions to reset (required)",
     offsetof(groups_args_t, topic)},
    {"to-earliest", CORE_OPT_BOOL, NULL, "reset to each partition's log start offset",
     offsetof(groups_args_t, to_earliest)},
    {"to-latest", CORE_OPT_BOOL, NULL, "reset to each partition's end (skip everything present)",
     offsetof(groups_args_t, to_latest)},
    {"to-offset", CORE_OPT_STR, NULL,
     "reset every partition to offset N (clamped into [start, end] as Kafka's tool does)",
     offsetof(groups_args_t, to_offset)},
    {"dry-run", CORE_OPT_BOOL, NULL, "print the new offsets without committing them",
     offsetof(groups_args_t, dry_run)},
    OPT_ADMIN_TIMEOUT,
    CORE_OPT_END,
};

static const core_opt_t lag_opts[] = {
    {"http", CORE_OPT_STR, "127.0.0.1:8085", "the broker's lag/metrics HTTP HOST:PORT",
     offsetof(groups_args_t, http)},
    {"timeout", CORE_OPT_DURATION, "10s", "request timeout", offsetof(groups_args_t, timeout_ms)},
    CORE_OPT_END,
};

/* ---- librdkafka plumbing ---------------------------------------------------------- */
static rd_kafka_t *admin_new(const char *broker, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", broker, errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "client.id", "eddy-groups", errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "log_level", "3", errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

/* Waits for the admin result event; NULL with a message on timeout/error. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, int64_t timeout_ms, char *errstr,
                                    size_t errstr_size)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)timeout_ms + 1000);
    if (!ev) {
        snprintf(errstr, errstr_size, "no answer from the broker within %lld ms",
                 (long long)timeout_ms);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "%s", rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

static rd_kafka_AdminOptions_t *admin_opts(rd_kafka_t *rk, rd_kafka_admin_op_t op, int64_t timeout_ms)
{
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
    char e[256];
    rd_kafka_AdminOptions_set_request_timeout(o, (int)timeout_ms, e, sizeof e);
    return o;
}

/* ---- list ---------------------------------------------------------------------------- */
static int groups_list(groups_args_t *a)
{
    char err[512];
    rd_kafka_t *rk = admin_new(a->broker, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "eddy groups list: %s\n", err);
        return EXIT_FAIL;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = admin_opts(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, a->timeout_ms);
    rd_kafka_ListConsumerGroups(rk, o, q);
    rd_kafka_event_t *ev = admin_wait(q, a->timeout_ms, err, sizeof err);
    int rc = EXIT_FAIL;
    if (!ev) {
        fprintf(stderr, "eddy groups list: %s\n", err);
        goto out;
    }
    const rd_kafka_ListConsumerGroups_result_t *res = rd_kafka_event_ListConsumerGroups_result(ev);
    size_t n, nerr;
    const rd_kafka_ConsumerGroupListing_t **gl = rd_kafka_ListConsumerGroups_result_valid(res, &n);
    const rd_kafka_error_t **errs = rd_kafka_ListConsumerGroups_result_errors(res, &nerr);
    /* ListGroups before v4 carries no state: describe them all for it. */
    const char **ids = calloc(n + 1, sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = rd_kafka_ConsumerGroupListing_group_id(gl[i]);
    rd_kafka_event_t *dev = NULL;
    const rd_kafka_ConsumerGroupDescription_t **gd = NULL;
    size_t nd = 0;
    if (n) {
        rd_kafka_AdminOptions_t *od =
            admin_opts(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, a->timeout_ms);
        rd_kafka_DescribeConsumerGroups(rk, ids, n, od, q);
        dev = admin_wait(q, a->timeout_ms, err, sizeof err);
        rd_kafka_AdminOptions_destroy(od);
        if (dev)
            gd = rd_kafka_DescribeConsumerGroups_result_groups(
                rd_kafka_event_DescribeConsumerGroups_result(dev), &nd);
    }
    printf("%-40s %-20s %7s  %s\n", "GROUP", "STATE", "MEMBERS", "ASSIGNOR");
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_ConsumerGroupDescription_t *d = NULL;
        for (size_t j = 0; j < nd; j++)
            if (!strcmp(rd_kafka_ConsumerGroupDescription_group_id(gd[j]), ids[i]) &&
                !rd_kafka_ConsumerGroupDescription_error(gd[j]))
                d = gd[j];
        rd_kafka_consumer_group_state_t st =
            d ? rd_kafka_ConsumerGroupDescription_state(d) : rd_kafka_ConsumerGroupListing_state(gl[i]);
        const char *asg = d ? rd_kafka_ConsumerGroupDescription_partition_assignor(d) : NULL;
        printf("%-40s %-20s %7zu  %s\n", ids[i], rd_kafka_consumer_group_state_name(st),
               d ? rd_kafka_ConsumerGroupDescription_member_count(d) : 0, asg && *asg ? asg : "-");
    }
    if (dev)
        rd_kafka_event_destroy(dev);
    free(ids);
    for (size_t i = 0; i < nerr; i++)
        fprintf(stderr, "eddy groups list: %s\n", rd_kafka_error_string(errs[i]));
    rc = nerr ? EXIT_FAIL : 0;
    rd_kafka_event_destroy(ev);
out:
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- describe ---------------------------------------------------------------------------- */
/* Committed offsets of the group on every partition of every topic; caller
 * destroys. The partitions are listed explicitly: librdkafka 2.0.2 sends an
 * empty topic array (not null, "all") for ListConsumerGroupOffsets(NULL),
 * which a Kafka broker answers with nothing. */
static rd_kafka_topic_partition_list_t *committed_offsets(rd_kafka_t *rk, const char *group,
                                                          int64_t timeout_ms, char *err, size_t errsz)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t me = rd_kafka_metadata(rk, 1, NULL, &md, (int)timeout_ms);
    if (me) {
        snprintf(err, errsz, "metadata: %s", rd_kafka_err2str(me));
        return NULL;
    }
    rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new(16);
    for (int t = 0; t < md->topic_cnt; t++)
        for (int p = 0; p < md->topics[t].partition_cnt; p++)
            rd_kafka_topic_partition_list_add(all, md->topics[t].topic, md->topics[t].partitions[p].id);
    rd_kafka_metadata_destroy(md);
    if (all->cnt == 0)
        return all;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, all);
    rd_kafka_topic_partition_list_destroy(all);
    rd_kafka_AdminOptions_t *o = admin_opts(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, timeout_ms);
    rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, o, q);
    rd_kafka_topic_partition_list_t *out = NULL;
    rd_kafka_event_t *ev = admin_wait(q, timeout_ms, err, errsz);
    if (ev) {
        size_t n;
        const rd_kafka_group_result_t **gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
            rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
        if (n == 1 && rd_kafka_group_result_error(gr[0]))
            snprintf(err, errsz, "%s", rd_kafka_error_string(rd_kafka_group_result_error(gr[0])));
        else if (n == 1)
            out = rd_kafka_topic_partition_list_copy(rd_kafka_group_result_partitions(gr[0]));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_queue_destroy(q);
    return out;
}

static int cmp_tp(const void *a, const void *b)
{
    const rd_kafka_topic_partition_t *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* Which member owns (topic, partition): index or -1. */
static int owner_of(const rd_kafka_ConsumerGroupDescription_t *d, const char *topic, int32_t p)
{
    size_t nm = rd_kafka_ConsumerGroupDescription_member_count(d);
    for (size_t i = 0; i < nm; i++) {
        const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(d, i);
        const rd_kafka_topic_partition_list_t *as =
            rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
        for (int j = 0; as && j < as->cnt; j++)
            if (as->elems[j].partition == p && !strcmp(as->elems[j].topic, topic))
                return (int)i;
    }
    return -1;
}

static int groups_describe(groups_args_t *a, const char *group)
{
    char err[512];
    rd_kafka_t *rk = admin_new(a->broker, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "eddy groups describe: %s\n", err);
        return EXIT_FAIL;
    }
    int rc = EXIT_FAIL;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = admin_opts(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, a->timeout_ms);
    const char *groups[1] = {group};
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, o, q);
    rd_kafka_event_t *ev = admin_wait(q, a->timeout_ms, err, sizeof err);
    rd_kafka_topic_partition_list_t *offs = NULL;
    if (!ev) {
        fprintf(stderr, "eddy groups describe: %s\n", err);
        goto out;
    }
    size_t n;
    const rd_kafka_ConsumerGroupDescription_t **gd =
        rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
    if (n != 1 || rd_kafka_ConsumerGroupDescription_error(gd[0])) {
        fprintf(stderr, "eddy groups describe: %s\n",
                n == 1 ? rd_kafka_error_string(rd_kafka_ConsumerGroupDescription_error(gd[0]))
                       : "no description returned");
        goto out_ev;
    }
    const rd_kafka_ConsumerGroupDescription_t *d = gd[0];
    size_t nm = rd_kafka_ConsumerGroupDescription_member_count(d);
    printf("GROUP %s  STATE %s  ASSIGNOR %s  MEMBERS %zu\n", group,
           rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d)),
           rd_kafka_ConsumerGroupDescription_partition_assignor(d), nm);
    if (nm) {
        printf("\n%-48s %-20s %-18s %s\n", "MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNED PARTITIONS");
        for (size_t i = 0; i < nm; i++) {
            const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(d, i);
            const rd_kafka_topic_partition_list_t *as =
                rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
            printf("%-48s %-20s %-18s", rd_kafka_MemberDescription_consumer_id(m),
                   rd_kafka_MemberDescription_client_id(m), rd_kafka_MemberDescription_host(m));
            if (!as || !as->cnt)
                printf(" -");
            for (int j = 0; as && j < as->cnt; j++)
                printf("%s%s-%" PRId32, j ? "," : " ", as->elems[j].topic, as->elems[j].partition);
            printf("\n");
        }
    }
    offs = committed_offsets(rk, group, a->timeout_ms, err, sizeof err);
    if (!offs) {
        fprintf(stderr, "eddy groups describe: committed offsets: %s\n", err);
        goto out_ev;
    }
    qsort(offs->elems, (size_t)offs->cnt, sizeof *offs->elems, cmp_tp);
    printf("\n%-24s %9s %14s %14s %10s  %-20s %s\n", "TOPIC", "PARTITION", "CURRENT-OFFSET",
           "LOG-END-OFFSET", "LAG", "CLIENT-ID", "HOST");
    for (int i = 0; i < offs->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &offs->elems[i];
        if (tp->offset < 0)
            continue;
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi, (int)a->timeout_ms);
        int who = owner_of(d, tp->topic, tp->partition);
        const rd_kafka_MemberDescription_t *m = who >= 0 ? rd_kafka_ConsumerGroupDescription_member(d, (size_t)who) : NULL;
        char lag[32], end[32];
        snprintf(lag, sizeof lag, "?");
        snprintf(end, sizeof end, "?");
        if (!e) {
            snprintf(lag, sizeof lag, "%" PRId64, hi > tp->offset ? hi - tp->offset : 0);
            snprintf(end, sizeof end, "%" PRId64, hi);
        }
        printf("%-24s %9" PRId32 " %14" PRId64 " %14s %10s  %-20s %s\n", tp->topic, tp->partition,
               tp->offset, end, lag,
               m ? rd_kafka_MemberDescription_client_id(m) : "-",
               m ? rd_kafka_MemberDescription_host(m) : "-");
    }
    rc = 0;
out_ev:
    rd_kafka_event_destroy(ev);
out:
    if (offs)
        rd_kafka_topic_partition_list_destroy(offs);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- reset-offsets -------------------------------------------------------------------------- */
static int groups_reset(groups_args_t *a, const char *group)
{
    int modes = a->to_earliest + a->to_latest + (a->to_offset != NULL);
    if (!a->topic || modes != 1) {
        fprintf(stderr, "eddy groups reset-offsets: needs --topic T and exactly one of "
                        "--to-earliest, --to-latest, --to-offset N\n");
        return EXIT_USAGE;
    }
    int64_t to = 0;
    if (a->to_offset && (core_parse_int(a->to_offset, &to) || to < 0)) {
        fprintf(stderr, "eddy groups reset-offsets: --to-offset expects a number >= 0\n");
        return EXIT_USAGE;
    }
    char err[512];
    rd_kafka_t *rk = admin_new(a->broker, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "eddy groups reset-offsets: %s\n", err);
        return EXIT_FAIL;
    }
    int rc = EXIT_FAIL;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_topic_partition_list_t *tps = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_AlterConsumerGroupOffsets_t *alter = NULL;
    rd_kafka_AdminOptions_t *o = admin_opts(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, a->timeout_ms);

    /* 1. Only an empty group may be reset (Kafka's tool refuses too). */
    const char *groups[1] = {group};
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, o, q);
    rd_kafka_event_t *ev = admin_wait(q, a->timeout_ms, err, sizeof err);
    if (!ev) {
        fprintf(stderr, "eddy groups reset-offsets: %s\n", err);
        goto out;
    }
    size_t n;
    const rd_kafka_ConsumerGroupDescription_t **gd =
        rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
    if (n == 1 && !rd_kafka_ConsumerGroupDescription_error(gd[0])) {
        rd_kafka_consumer_group_state_t st = rd_kafka_ConsumerGroupDescription_state(gd[0]);
        size_t members = rd_kafka_ConsumerGroupDescription_member_count(gd[0]);
        if (members > 0 || (st != RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY &&
                            st != RD_KAFKA_CONSUMER_GROUP_STATE_DEAD)) {
            fprintf(stderr,
                    "eddy groups reset-offsets: group '%s' is %s with %zu active member(s); stop "
                    "its consumers first (offsets can only be reset while the group is empty)\n",
                    group, rd_kafka_consumer_group_state_name(st), members);
            rd_kafka_event_destroy(ev);
            goto out;
        }
    }
    rd_kafka_event_destroy(ev);

    /* 2. The topic's partitions and their bounds. */
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, a->topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, (int)a->timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (e || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "eddy groups reset-offsets: topic '%s': %s\n", a->topic,
                rd_kafka_err2str(e ? e : md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
        goto out;
    }
    tps = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    printf("%-24s %9s %14s\n", "TOPIC", "PARTITION", "NEW-OFFSET");
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo, hi;
        e = rd_kafka_query_watermark_offsets(rk, a->topic, p, &lo, &hi, (int)a->timeout_ms);
        if (e) {
            fprintf(stderr, "eddy groups reset-offsets: %s [%d]: %s\n", a->topic, p, rd_kafka_err2str(e));
            goto out;
        }
        int64_t off = a->to_earliest ? lo : a->to_latest ? hi : to < lo ? lo : to > hi ? hi : to;
        rd_kafka_topic_partition_list_add(tps, a->topic, p)->offset = off;
        printf("%-24s %9d %14" PRId64 "\n", a->topic, p, off);
    }
    qsort(tps->elems, (size_t)tps->cnt, sizeof *tps->elems, cmp_tp);
    if (a->dry_run) {
        printf("(dry run: nothing committed)\n");
        rc = 0;
        goto out;
    }

    /* 3. Commit them (OffsetCommit with generation -1, accepted for an empty group). */
    alter = rd_kafka_AlterConsumerGroupOffsets_new(group, tps);
    rd_kafka_AdminOptions_destroy(o);
    o = admin_opts(rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, a->timeout_ms);
    rd_kafka_AlterConsumerGroupOffsets(rk, &alter, 1, o, q);
    ev = admin_wait(q, a->timeout_ms, err, sizeof err);
    if (!ev) {
        fprintf(stderr, "eddy groups reset-offsets: %s\n", err);
        goto out;
    }
    const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
        rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
    rc = 0;
    if (n != 1 || rd_kafka_group_result_error(gr[0])) {
        fprintf(stderr, "eddy groups reset-offsets: %s\n",
                n == 1 ? rd_kafka_error_string(rd_kafka_group_result_error(gr[0])) : "no result");
        rc = EXIT_FAIL;
    } else {
        const rd_kafka_topic_partition_list_t *res = rd_kafka_group_result_partitions(gr[0]);
        for (int i = 0; res && i < res->cnt; i++)
            if (res->elems[i].err) {
                fprintf(stderr, "eddy groups reset-offsets: %s [%d]: %s\n", res->elems[i].topic,
                        res->elems[i].partition, rd_kafka_err2str(res->elems[i].err));
                rc = EXIT_FAIL;
            }
    }
    rd_kafka_event_destroy(ev);
    if (!rc)
        printf("committed new offsets for group '%s'\n", group);
out:
    if (alter)
        rd_kafka_AlterConsumerGroupOffsets_destroy(alter);
    if (tps)
        rd_kafka_topic_partition_list_destroy(tps);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- lag (Burrow v3 from the broker's HTTP port) ---------------------------------------------- */
static void print_entry(const char *label, json_t *e)
{
    (void)label;
    if (!json_is_object(e)) {
        printf(" %12s", "-");
        return;
    }
    printf(" %12" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(e, "offset")));
}

static int groups_lag(groups_args_t *a, const char *group)
{
    char url[1024], err[512];
    /* Group ids are opaque bytes; escape what a URL path cannot carry. */
    char esc[768];
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)group; *p && k + 4 < sizeof esc; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            esc[k++] = (char)*p;
        else
            k += (size_t)snprintf(esc + k, sizeof esc - k, "%%%02X", *p);
    }
    esc[k] = 0;
    snprintf(url, sizeof url, "http://%s/v3/kafka/local/consumer/%s/lag", a->http, esc);
    core_httpc_req_t req = {.method = "GET", .url = url, .timeout_ms = (long)a->timeout_ms};
    core_httpc_resp_t resp;
    core_httpc_resp_init(&resp);
    int rc = EXIT_FAIL;
    if (core_httpc_do(&req, &resp, err, sizeof err)) {
        fprintf(stderr, "eddy groups lag: %s (is the broker's --http-listen at %s?)\n", err, a->http);
        goto out;
    }
    json_error_t je;
    json_t *doc = json_loads(core_httpc_text(&resp), 0, &je);
    json_t *st = doc ? json_object_get(doc, "status") : NULL;
    if (!json_is_object(st)) {
        fprintf(stderr, "eddy groups lag: unexpected answer (HTTP %ld) from %s\n", resp.status, url);
        json_decref(doc);
        goto out;
    }
    const char *status = json_string_value(json_object_get(st, "status"));
    if (status && !strcmp(status, "NOTFOUND")) {
        fprintf(stderr, "eddy groups lag: group '%s' has no committed offsets the broker has seen\n",
                group);
        json_decref(doc);
        goto out;
    }
    printf("GROUP %s  STATUS %s  TOTAL-LAG %" JSON_INTEGER_FORMAT "  PARTITIONS %" JSON_INTEGER_FORMAT
           "  COMPLETE %.2f\n\n",
           group, status ? status : "?", json_integer_value(json_object_get(st, "totallag")),
           json_integer_value(json_object_get(st, "partition_count")),
           json_number_value(json_object_get(st, "complete")));
    printf("%-24s %9s %-7s %12s %12s %12s  %-20s %s\n", "TOPIC", "PARTITION", "STATUS",
           "CURRENT-LAG", "START", "END", "CLIENT-ID", "OWNER");
    json_t *parts = json_object_get(st, "partitions");
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p)
    {
        const char *cid = json_string_value(json_object_get(p, "client_id"));
        const char *owner = json_string_value(json_object_get(p, "owner"));
        printf("%-24s %9" JSON_INTEGER_FORMAT " %-7s %12" JSON_INTEGER_FORMAT,
               json_string_value(json_object_get(p, "topic")),
               json_integer_value(json_object_get(p, "partition")),
               json_string_value(json_object_get(p, "status")),
               json_integer_value(json_object_get(p, "current_lag")));
        print_entry("start", json_object_get(p, "start"));
        print_entry("end", json_object_get(p, "end"));
        printf("  %-20s %s\n", cid && *cid ? cid : "-", owner && *owner ? owner : "-");
    }
    json_decref(doc);
    rc = 0;
out:
    core_httpc_resp_fini(&resp);
    return rc;
}

/* ---- dispatch -------------------------------------------------------------------------------- */
int cmd_groups(int argc, char **argv)
{
    static const char summary[] =
        "Consumer groups: list, describe (members with client id, host and partitions; committed\n"
        "offsets and lag), reset-offsets (only while the group is empty), lag (Burrow status from\n"
        "the broker's HTTP port).";
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        printf("usage: eddy groups list | describe GROUP | reset-offsets GROUP --topic T "
               "(--to-earliest|--to-latest|--to-offset N) | lag GROUP\n\n%s\n\n"
               "Run `eddy groups SUBCOMMAND --help` for options.\n",
               summary);
        return argc < 1 ? EXIT_USAGE : 0;
    }
    const char *sub = argv[0];
    const core_opt_t *opts = !strcmp(sub, "list")            ? list_opts
                             : !strcmp(sub, "describe")      ? list_opts
                             : !strcmp(sub, "reset-offsets") ? reset_opts
                             : !strcmp(sub, "lag")           ? lag_opts
                                                             : NULL;
    if (!opts) {
        fprintf(stderr, "eddy groups: unknown subcommand '%s' (list, describe, reset-offsets, lag)\n", sub);
        return EXIT_USAGE;
    }
    groups_args_t a;
    memset(&a, 0, sizeof a);
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    char usage[128];
    snprintf(usage, sizeof usage, "eddy groups %s%s [OPTIONS]", sub, strcmp(sub, "list") ? " GROUP" : "");
    const core_cmd_t cmd = {.name = "eddy groups",
                            .usage = usage,
                            .summary = summary,
                            .opts = opts,
                            .takes_args = true};
    int rc = core_conf_begin(&cmd, &a, argc - 1, argv + 1, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    int want = strcmp(sub, "list") ? 1 : 0;
    if (npos != want) {
        fprintf(stderr, "eddy groups: usage: %s\n", usage);
        rc = EXIT_USAGE;
        goto out;
    }
    if (!strcmp(sub, "list"))
        rc = groups_list(&a);
    else if (!strcmp(sub, "describe"))
        rc = groups_describe(&a, pos[0]);
    else if (!strcmp(sub, "reset-offsets"))
        rc = groups_reset(&a, pos[0]);
    else
        rc = groups_lag(&a, pos[0]);
out:
    free(pos);
    core_conf_free(opts, &a);
    return rc;
}
