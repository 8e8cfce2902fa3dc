/*
 * broker_cg — group coordinator state machine. See broker_cg.h for the rules.
 */
#include "broker/broker_cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/core_alloc.h"
#include "core/core_log.h"
#include "broker/broker_htab.h"

#define CG "groups"

/* ---- arena ---------------------------------------------------------------- */
struct broker_cg_arena_blk {
    struct broker_cg_arena_blk *next;
    size_t used, cap;
    max_align_t data[];
};

#define ARENA_BLOCK 4096

void *broker_cg_arena_alloc(broker_cg_arena_t *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    struct broker_cg_arena_blk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        if (cap > SIZE_MAX / 2)
            return NULL;
        b = core_trymalloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

void broker_cg_arena_free(broker_cg_arena_t *a)
{
    struct broker_cg_arena_blk *b = a->head, *next;
    for (; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
}

/* ---- state ------------------------------------------------------------------ */
typedef struct cg_proto {
    char *name;
    uint8_t *meta;
    size_t meta_len;
} cg_proto_t;

typedef struct cg_member {
    char *id;
    char *instance_id;      /* NULL = none */
    char *client_id;
    char *client_host;
    int32_t session_ms;
    int32_t rebalance_ms;
    int nprotos;
    cg_proto_t *protos;
    uint8_t *assignment;
    size_t assignment_len;
    int64_t deadline;       /* session expiry (monotonic ms) */
    broker_cg_join_cb *join_cb; /* held JoinGroup, or NULL */
    void *join_arg;
    broker_cg_sync_cb *sync_cb; /* held SyncGroup, or NULL */
    void *sync_arg;
} cg_member_t;

typedef struct cg_pending {
    char *id;
    int64_t deadline;
} cg_pending_t;

typedef struct cg_offset {
    hnode_t node;
    char *topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    int64_t commit_ts;
    int64_t expire_ts;
    char *metadata;
} cg_offset_t;

typedef struct cg_group {
    hnode_t node;
    char *id;
    broker_cg_state_t state;
    int32_t generation;
    char *protocol_type;    /* NULL until the first member joins */
    char *protocol;         /* selected assignor; NULL when none */
    char *leader;           /* member id; NULL when none */
    cg_member_t **members;  /* in join order (oldest first) */
    int nmembers, members_cap;
    cg_pending_t *pending;
    int npending, pending_cap;
    int64_t rebalance_deadline;
    bool in_delay;          /* initial rebalance delay of an Empty group running */
    bool delay_joined;      /* a new member arrived during the current delay slice */
    int64_t delay_start;
    int64_t delay_deadline;
    htab_t offsets;         /* cg_offset_t by (topic, partition) */
} cg_group_t;

struct broker_cg {
    broker_cg_conf_t conf;
    bool loading;
    htab_t groups;          /* cg_group_t by id */
};

const char *broker_cg_state_name(broker_cg_state_t s)
{
    switch (s) {
    case BROKER_CG_EMPTY: return "Empty";
    case BROKER_CG_PREPARING_REBALANCE: return "PreparingRebalance";
    case BROKER_CG_COMPLETING_REBALANCE: return "CompletingRebalance";
    case BROKER_CG_STABLE: return "Stable";
    case BROKER_CG_DEAD: return "Dead";
    }
    return "Unknown";
}

void broker_cg_conf_default(broker_cg_conf_t *conf)
{
    conf->min_session_timeout_ms = 6000;
    conf->max_session_timeout_ms = 1800000;
    conf->initial_rebalance_delay_ms = 3000;
    conf->offsets_retention_ms = 7LL * 24 * 3600 * 1000;
    conf->offset_metadata_max_bytes = 4096;
}

int broker_cg_new(const broker_cg_conf_t *conf, broker_cg_t **cgp)
{
    broker_cg_t *cg = core_xcalloc(1, sizeof *cg);
    if (conf)
        cg->conf = *conf;
    else
        broker_cg_conf_default(&cg->conf);
    *cgp = cg;
    return CORE_OK;
}

void broker_cg_set_loading(broker_cg_t *cg, bool loading)
{
    cg->loading = loading;
}

bool broker_cg_loading(const broker_cg_t *cg)
{
    return cg->loading;
}

int broker_cg_group_count(const broker_cg_t *cg)
{
    return (int)cg->groups.n;
}

/* ---- helpers ------------------------------------------------------------------ */
static bool slice_eq(core_slice_t s, const char *c)
{
    if (!c)
        return s.len < 0;
    size_t n = strlen(c);
    return s.len >= 0 && (size_t)s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

static char *slice_dup(core_slice_t s)
{
    if (s.len < 0)
        return NULL;
    return core_xstrndup(s.len ? (const char *)s.ptr : "", (size_t)s.len);
}

/* A group / member id is usable as a C string when it has no NUL inside. */
static bool slice_cstr_ok(core_slice_t s)
{
    return s.len >= 0 && s.len <= BROKER_CG_MAX_ID_LEN && (s.len == 0 || !memchr(s.ptr, 0, (size_t)s.len));
}

static uint64_t str_hash(const char *s, size_t n)
{
    return fnv1a(FNV_INIT, s, n);
}

static cg_group_t *group_find(broker_cg_t *cg, const char *id, size_t n)
{
    if (!cg->groups.nb)
        return NULL;
    uint64_t h = str_hash(id, n);
    for (hnode_t *x = cg->groups.b[h & (cg->groups.nb - 1)]; x; x = x->next) {
        cg_group_t *g = (cg_group_t *)x;
        if (x->hash == h && strlen(g->id) == n && memcmp(g->id, id, n) == 0)
            return g;
    }
    return NULL;
}

static cg_group_t *group_find_slice(broker_cg_t *cg, core_slice_t s)
{
    if (!slice_cstr_ok(s))
        return NULL;
    return group_find(cg, (const char *)s.ptr, (size_t)s.len);
}

static cg_group_t *group_create(broker_cg_t *cg, const char *id, size_t n)
{
    cg_group_t *g = core_xcalloc(1, sizeof *g);
    g->id = core_xstrndup(id, n);
    g->state = BROKER_CG_EMPTY;
    htab_add(&cg->groups, &g->node, str_hash(id, n));
    return g;
}

static void member_free(cg_member_t *m)
{
    free(m->id);
    free(m->instance_id);
    free(m->client_id);
    free(m->client_host);
    for (int i = 0; i < m->nprotos; i++) {
        free(m->protos[i].name);
        free(m->protos[i].meta);
    }
    free(m->protos);
    free(m->assignment);
    free(m);
}

static void offset_free(cg_offset_t *o)
{
    free(o->topic);
    free(o->metadata);
    free(o);
}

static void group_free(cg_group_t *g)
{
    for (int i = 0; i < g->nmembers; i++)
        member_free(g->members[i]);
    free(g->members);
    for (int i = 0; i < g->npending; i++)
        free(g->pending[i].id);
    free(g->pending);
    HTAB_FOREACH(&g->offsets, x) offset_free((cg_offset_t *)x);
    free(g->offsets.b);
    free(g->id);
    free(g->protocol_type);
    free(g->protocol);
    free(g->leader);
    free(g);
}

void broker_cg_free(broker_cg_t *cg)
{
    if (!cg)
        return;
    HTAB_FOREACH(&cg->groups, x) group_free((cg_group_t *)x);
    free(cg->groups.b);
    free(cg);
}

/* Frees a group that has nothing left to remember (Kafka: Dead). */
static bool group_maybe_gc(broker_cg_t *cg, cg_group_t *g)
{
    if (g->nmembers || g->npending || g->offsets.n || g->state != BROKER_CG_EMPTY)
        return false;
    htab_del(&cg->groups, &g->node);
    group_free(g);
    return true;
}

static int member_index(const cg_group_t *g, const char *id, size_t n)
{
    for (int i = 0; i < g->nmembers; i++)
        if (strlen(g->members[i]->id) == n && memcmp(g->members[i]->id, id, n) == 0)
            return i;
    return -1;
}

static cg_member_t *member_find(cg_group_t *g, core_slice_t id)
{
    if (id.len <= 0)
        return NULL;
    int i = member_index(g, (const char *)id.ptr, (size_t)id.len);
    return i < 0 ? NULL : g->members[i];
}

static int pending_index(const cg_group_t *g, core_slice_t id)
{
    for (int i = 0; i < g->npending; i++)
        if (slice_eq(id, g->pending[i].id))
            return i;
    return -1;
}

static void pending_remove(cg_group_t *g, int i)
{
    free(g->pending[i].id);
    g->pending[i] = g->pending[--g->npending];
}

/* client_id + "-" + random UUID (v4), as Kafka forms member ids. */
static char *member_id_new(core_slice_t client_id)
{
    uint8_t u[16];
    if (getrandom(u, sizeof u, 0) != (ssize_t)sizeof u) {
        /* getrandom on Linux does not fail for 16 bytes once seeded; fall back anyway. */
        for (size_t i = 0; i < sizeof u; i++)
            u[i] = (uint8_t)random();
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    int cl = client_id.len > 0 ? (int)(client_id.len > 200 ? 200 : client_id.len) : 0;
    char *s = core_xmalloc((size_t)cl + 48);
    snprintf(s, (size_t)cl + 48,
             "%.*s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", cl,
             cl ? (const char *)client_id.ptr : "", u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
             u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    /* Non-printable client ids would make an unreadable id; keep it ASCII. */
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '_';
    return s;
}

static const cg_proto_t *member_proto(const cg_member_t *m, const char *name)
{
    for (int i = 0; i < m->nprotos; i++)
        if (!strcmp(m->protos[i].name, name))
            return &m->protos[i];
    return NULL;
}

/* Is `name` offered by every member except `skip`? */
static bool proto_supported_by_all(const cg_group_t *g, const char *name, const cg_member_t *skip)
{
    for (int i = 0; i < g->nmembers; i++)
        if (g->members[i] != skip && !member_proto(g->members[i], name))
            return false;
    return true;
}

static bool protos_equal(const cg_member_t *m, const broker_cg_join_req_t *req)
{
    if (m->nprotos != req->nprotocols)
        return false;
    for (int i = 0; i < m->nprotos; i++) {
        const broker_cg_protocol_t *p = &req->protocols[i];
        if (!slice_eq(p->name, m->protos[i].name))
            return false;
        int64_t ml = p->metadata.len < 0 ? 0 : p->metadata.len;
        if ((size_t)ml != m->protos[i].meta_len ||
            (ml && memcmp(p->metadata.ptr, m->protos[i].meta, (size_t)ml)))
            return false;
    }
    return true;
}

static void member_set_protos(cg_member_t *m, const broker_cg_join_req_t *req)
{
    for (int i = 0; i < m->nprotos; i++) {
        free(m->protos[i].name);
        free(m->protos[i].meta);
    }
    free(m->protos);
    m->nprotos = req->nprotocols;
    m->protos = core_xcalloc((size_t)req->nprotocols, sizeof *m->protos);
    for (int i = 0; i < req->nprotocols; i++) {
        const broker_cg_protocol_t *p = &req->protocols[i];
        m->protos[i].name = slice_dup(p->name);
        size_t ml = p->metadata.len < 0 ? 0 : (size_t)p->metadata.len;
        m->protos[i].meta = core_xmalloc(ml ? ml : 1);
        if (ml)
            memcpy(m->protos[i].meta, p->metadata.ptr, ml);
        m->protos[i].meta_len = ml;
    }
}

/* ---- rebalance machinery ---------------------------------------------------------- */
static void join_answer(cg_member_t *m, const broker_cg_join_resp_t *resp)
{
    broker_cg_join_cb *cb = m->join_cb;
    void *arg = m->join_arg;
    m->join_cb = NULL;
    m->join_arg = NULL;
    if (cb)
        cb(arg, resp);
}

static void join_answer_error(cg_member_t *m, int16_t err)
{
    broker_cg_join_resp_t r = {.error_code = err, .generation_id = -1, .protocol_name = "",
                               .leader = "", .member_id = m->id};
    join_answer(m, &r);
}

static void sync_answer(cg_member_t *m, int16_t err)
{
    broker_cg_sync_cb *cb = m->sync_cb;
    void *arg = m->sync_arg;
    m->sync_cb = NULL;
    m->sync_arg = NULL;
    if (!cb)
        return;
    broker_cg_sync_resp_t r = {.error_code = err};
    if (!err) {
        r.assignment = m->assignment;
        r.assignment_len = m->assignment_len;
    }
    cb(arg, &r);
}

static int32_t group_max_rebalance_ms(const cg_group_t *g)
{
    int32_t mx = 0;
    for (int i = 0; i < g->nmembers; i++)
        if (g->members[i]->rebalance_ms > mx)
            mx = g->members[i]->rebalance_ms;
    return mx;
}

static void group_set_state(cg_group_t *g, broker_cg_state_t s)
{
    g->state = s;
}

static void prepare_rebalance(cg_group_t *g, int64_t now, const char *reason)
{
    /* Held SyncGroups belong to a generation that is now over. */
    for (int i = 0; i < g->nmembers; i++)
        if (g->members[i]->sync_cb)
            sync_answer(g->members[i], BROKER_CG_ERR_REBALANCE_IN_PROGRESS);
    if (g->state == BROKER_CG_PREPARING_REBALANCE)
        return;
    CORE_INFO(CG, "group %s: preparing rebalance (generation %d, %d members): %s", g->id,
              g->generation, g->nmembers, reason);
    group_set_state(g, BROKER_CG_PREPARING_REBALANCE);
    g->rebalance_deadline = now + group_max_rebalance_ms(g);
}

/* Picks the assignor: names every member offered; each member votes for its
 * first such name; most votes wins, ties go to the earlier in the leader's list. */
static const char *select_protocol(const cg_group_t *g, const cg_member_t *leader)
{
    const char *best = NULL;
    int best_votes = -1;
    for (int i = 0; i < leader->nprotos; i++) {
        const char *cand = leader->protos[i].name;
        if (!proto_supported_by_all(g, cand, NULL))
            continue;
        int votes = 0;
        for (int j = 0; j < g->nmembers; j++) {
            const cg_member_t *m = g->members[j];
            for (int k = 0; k < m->nprotos; k++)
                if (proto_supported_by_all(g, m->protos[k].name, NULL)) {
                    if (!strcmp(m->protos[k].name, cand))
                        votes++;
                    break;
                }
        }
        if (votes > best_votes) {
            best = cand;
            best_votes = votes;
        }
    }
    return best;
}

static void member_remove_at(cg_group_t *g, int i, int16_t err_for_held)
{
    cg_member_t *m = g->members[i];
    if (m->join_cb)
        join_answer_error(m, err_for_held);
    if (m->sync_cb)
        sync_answer(m, err_for_held);
    memmove(&g->members[i], &g->members[i + 1], (size_t)(g->nmembers - i - 1) * sizeof *g->members);
    g->nmembers--;
    if (g->leader && !strcmp(g->leader, m->id)) {
        free(g->leader);
        g->leader = NULL;
    }
    member_free(m);
}

static void join_respond_current(cg_group_t *g, cg_member_t *m, broker_cg_arena_t *scratch);

static void complete_join(cg_group_t *g, int64_t now)
{
    /* Stragglers that did not rejoin in time are dropped, as are pending ids. */
    for (int i = g->nmembers - 1; i >= 0; i--)
        if (!g->members[i]->join_cb) {
            CORE_INFO(CG, "group %s: removing member %s (did not rejoin within the rebalance timeout)",
                      g->id, g->members[i]->id);
            member_remove_at(g, i, BROKER_CG_ERR_UNKNOWN_MEMBER_ID);
        }
    while (g->npending)
        pending_remove(g, 0);
    g->in_delay = false;
    g->generation++;
    if (g->nmembers == 0) {
        group_set_state(g, BROKER_CG_EMPTY);
        free(g->protocol);
        g->protocol = NULL;
        free(g->protocol_type);
        g->protocol_type = NULL;
        CORE_INFO(CG, "group %s: generation %d is empty", g->id, g->generation);
        return;
    }
    /* Leader: keep the previous one if it is still here, else the oldest member. */
    cg_member_t *leader = NULL;
    if (g->leader) {
        int li = member_index(g, g->leader, strlen(g->leader));
        if (li >= 0)
            leader = g->members[li];
    }
    if (!leader) {
        leader = g->members[0];
        free(g->leader);
        g->leader = core_xstrdup(leader->id);
    }
    const char *proto = select_protocol(g, leader);
    free(g->protocol);
    g->protocol = core_xstrdup(proto ? proto : "");
    group_set_state(g, BROKER_CG_COMPLETING_REBALANCE);
    for (int i = 0; i < g->nmembers; i++) {
        free(g->members[i]->assignment);
        g->members[i]->assignment = NULL;
        g->members[i]->assignment_len = 0;
    }
    CORE_INFO(CG, "group %s: generation %d with %d members, protocol %s, leader %s", g->id,
              g->generation, g->nmembers, g->protocol, g->leader);
    broker_cg_arena_t scratch = {0};
    for (int i = 0; i < g->nmembers; i++) {
        cg_member_t *m = g->members[i];
        m->deadline = now + m->session_ms;
        join_respond_current(g, m, &scratch);
    }
    broker_cg_arena_free(&scratch);
}

/* Answers m's held JoinGroup with the current generation (leader gets members). */
static void join_respond_current(cg_group_t *g, cg_member_t *m, broker_cg_arena_t *scratch)
{
    broker_cg_join_resp_t r = {.error_code = 0, .generation_id = g->generation,
                               .protocol_name = g->protocol ? g->protocol : "",
                               .leader = g->leader ? g->leader : "", .member_id = m->id};
    if (g->leader && !strcmp(g->leader, m->id)) {
        broker_cg_join_member_t *mm = broker_cg_arena_alloc(scratch, sizeof *mm * (size_t)g->nmembers);
        if (mm) {
            for (int j = 0; j < g->nmembers; j++) {
                const cg_proto_t *p = member_proto(g->members[j], g->protocol ? g->protocol : "");
                mm[j].member_id = g->members[j]->id;
                mm[j].group_instance_id = g->members[j]->instance_id;
                mm[j].metadata = p ? p->meta : NULL;
                mm[j].metadata_len = p ? p->meta_len : 0;
            }
            r.members = mm;
            r.nmembers = g->nmembers;
        }
    }
    join_answer(m, &r);
}

static bool all_joined(const cg_group_t *g)
{
    if (g->npending)
        return false;
    for (int i = 0; i < g->nmembers; i++)
        if (!g->members[i]->join_cb)
            return false;
    return true;
}

static void try_complete_join(cg_group_t *g, int64_t now)
{
    if (g->state != BROKER_CG_PREPARING_REBALANCE || g->in_delay)
        return;
    if (all_joined(g))
        complete_join(g, now);
}

/* After members left: rebalance the rest, or fall back to Empty. */
static void group_members_changed(cg_group_t *g, int64_t now, const char *reason)
{
    switch (g->state) {
    case BROKER_CG_STABLE:
    case BROKER_CG_COMPLETING_REBALANCE:
        if (g->nmembers == 0 && g->npending == 0) {
            g->generation++;
            group_set_state(g, BROKER_CG_EMPTY);
            free(g->protocol);
            g->protocol = NULL;
            free(g->protocol_type);
            g->protocol_type = NULL;
            CORE_INFO(CG, "group %s: empty (%s), generation %d", g->id, reason, g->generation);
        } else {
            prepare_rebalance(g, now, reason);
        }
        break;
    case BROKER_CG_PREPARING_REBALANCE:
        try_complete_join(g, now);
        break;
    default:
        break;
    }
}

/* ---- JoinGroup ------------------------------------------------------------------------- */
static void join_fail(broker_cg_join_cb *cb, void *arg, int16_t err, const char *member_id)
{
    broker_cg_join_resp_t r = {.error_code = err, .generation_id = -1, .protocol_name = "",
                               .leader = "", .member_id = member_id ? member_id : ""};
    cb(arg, &r);
}

static void warn_if_mixed(const cg_group_t *g, const cg_member_t *m)
{
    for (int i = 0; i < g->nmembers; i++) {
        const cg_member_t *o = g->members[i];
        if (o == m)
            continue;
        if (strcmp(o->client_id, m->client_id) || strcmp(o->client_host, m->client_host)) {
            CORE_WARN(CG,
                      "group %s: new member %s (client_id \"%s\", host %s) joins a group whose member "
                      "%s runs client_id \"%s\" on host %s; are two different applications "
                      "sharing one group id?",
                      g->id, m->id, m->client_id, m->client_host, o->id, o->client_id,
                      o->client_host);
            return;
        }
    }
}

void broker_cg_join(broker_cg_t *cg, const broker_cg_join_req_t *req, int64_t now,
                    broker_cg_join_cb *cb, void *arg)
{
    if (cg->loading) {
        join_fail(cb, arg, BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS, NULL);
        return;
    }
    if (req->group_id.len <= 0 || !slice_cstr_ok(req->group_id)) {
        join_fail(cb, arg, BROKER_CG_ERR_INVALID_GROUP_ID, NULL);
        return;
    }
    if (req->session_timeout_ms < cg->conf.min_session_timeout_ms ||
        req->session_timeout_ms > cg->conf.max_session_timeout_ms) {
        join_fail(cb, arg, BROKER_CG_ERR_INVALID_SESSION_TIMEOUT, NULL);
        return;
    }
    if (req->protocol_type.len <= 0 || req->nprotocols <= 0 ||
        req->nprotocols > BROKER_CG_MAX_PROTOCOLS) {
        join_fail(cb, arg, BROKER_CG_ERR_INCONSISTENT_GROUP_PROTOCOL, NULL);
        return;
    }
    for (int i = 0; i < req->nprotocols; i++)
        if (!slice_cstr_ok(req->protocols[i].name)) {
            join_fail(cb, arg, BROKER_CG_ERR_INCONSISTENT_GROUP_PROTOCOL, NULL);
            return;
        }
    if (!slice_cstr_ok(req->member_id) || (req->client_id.len > 0 && !slice_cstr_ok(req->client_id))) {
        join_fail(cb, arg, BROKER_CG_ERR_UNKNOWN_MEMBER_ID, NULL);
        return;
    }

    cg_group_t *g = group_find_slice(cg, req->group_id);
    if (!g) {
        if (req->member_id.len > 0) {
            join_fail(cb, arg, BROKER_CG_ERR_UNKNOWN_MEMBER_ID, NULL);
            return;
        }
        g = group_create(cg, (const char *)req->group_id.ptr, (size_t)req->group_id.len);
    }

    cg_member_t *m = member_find(g, req->member_id);

    /* A non-empty group only admits the same protocol type and a member that
     * shares an assignor with everyone else. */
    if (g->nmembers > (m ? 1 : 0)) {
        bool ok = g->protocol_type && slice_eq(req->protocol_type, g->protocol_type);
        if (ok) {
            ok = false;
            for (int i = 0; i < req->nprotocols && !ok; i++) {
                char *name = slice_dup(req->protocols[i].name);
                ok = proto_supported_by_all(g, name, m);
                free(name);
            }
        }
        if (!ok) {
            CORE_WARN(CG, "group %s: member rejected: protocol type or assignors (%.*s) not shared "
                          "with the current members",
                      g->id, (int)(req->protocols[0].name.len > 0 ? req->protocols[0].name.len : 0),
                      (const char *)req->protocols[0].name.ptr);
            join_fail(cb, arg, BROKER_CG_ERR_INCONSISTENT_GROUP_PROTOCOL, NULL);
            group_maybe_gc(cg, g);
            return;
        }
    }

    bool is_new = false;
    if (!m) {
        if (req->member_id.len == 0) {
            if (g->nmembers + g->npending >= BROKER_CG_MAX_MEMBERS) {
                join_fail(cb, arg, BROKER_CG_ERR_UNKNOWN_MEMBER_ID, NULL); /* GROUP_MAX_SIZE_REACHED needs v5+ clients only */
                group_maybe_gc(cg, g);
                return;
            }
            char *id = member_id_new(req->client_id);
            if (req->version >= 4) {
                /* KIP-394: hand out the id, admit on the rejoin. */
                if (g->npending == g->pending_cap) {
                    g->pending_cap = g->pending_cap ? g->pending_cap * 2 : 4;
                    g->pending = core_xrealloc(g->pending, (size_t)g->pending_cap * sizeof *g->pending);
                }
                g->pending[g->npending].id = id;
                g->pending[g->npending].deadline = now + req->session_timeout_ms;
                g->npending++;
                join_fail(cb, arg, BROKER_CG_ERR_MEMBER_ID_REQUIRED, id);
                return;
            }
            m = core_xcalloc(1, sizeof *m);
            m->id = id;
        } else {
            int pi = pending_index(g, req->member_id);
            if (pi < 0) {
                join_fail(cb, arg, BROKER_CG_ERR_UNKNOWN_MEMBER_ID, NULL);
                group_maybe_gc(cg, g);
                return;
            }
            m = core_xcalloc(1, sizeof *m);
            m->id = g->pending[pi].id;
            g->pending[pi].id = NULL;
            pending_remove(g, pi);
        }
        is_new = true;
        if (g->nmembers == g->members_cap) {
            g->members_cap = g->members_cap ? g->members_cap * 2 : 4;
            g->members = core_xrealloc(g->members, (size_t)g->members_cap * sizeof *g->members);
        }
        g->members[g->nmembers++] = m;
    }

    bool changed = is_new || !protos_equal(m, req);
    free(m->client_id);
    m->client_id = req->client_id.len > 0 ? slice_dup(req->client_id) : core_xstrdup("");
    free(m->client_host);
    m->client_host = core_xstrdup(req->client_host ? req->client_host : "");
    free(m->instance_id);
    m->instance_id = slice_dup(req->group_instance_id);
    m->session_ms = req->session_timeout_ms;
    m->rebalance_ms = req->version >= 1 ? req->rebalance_timeout_ms : req->session_timeout_ms;
    if (m->rebalance_ms < m->session_ms && req->version == 0)
        m->rebalance_ms = m->session_ms;
    if (changed)
        member_set_protos(m, req);
    if (!g->protocol_type)
        g->protocol_type = slice_dup(req->protocol_type);
    m->deadline = now + m->session_ms;
    if (is_new) {
        CORE_INFO(CG, "group %s: member %s joined (client_id \"%s\", host %s)", g->id, m->id,
                  m->client_id, m->client_host);
        warn_if_mixed(g, m);
    }

    if (m->join_cb) /* the same member joins again on another connection: the old wait is over */
        join_answer_error(m, BROKER_CG_ERR_REBALANCE_IN_PROGRESS);

    switch (g->state) {
    case BROKER_CG_EMPTY:
    case BROKER_CG_DEAD:
        m->join_cb = cb;
        m->join_arg = arg;
        prepare_rebalance(g, now, "first member joined an empty group");
        if (cg->conf.initial_rebalance_delay_ms > 0) {
            g->in_delay = true;
            g->delay_joined = false;
            g->delay_start = now;
            int64_t d = cg->conf.initial_rebalance_delay_ms;
            if (d > m->rebalance_ms)
                d = m->rebalance_ms;
            g->delay_deadline = now + d;
        }
        try_complete_join(g, now);
        break;
    case BROKER_CG_PREPARING_REBALANCE:
        m->join_cb = cb;
        m->join_arg = arg;
        if (is_new && g->in_delay)
            g->delay_joined = true;
        {
            int64_t dl = now + m->rebalance_ms;
            if (is_new && dl > g->rebalance_deadline)
                g->rebalance_deadline = dl;
        }
        try_complete_join(g, now);
        break;
    case BROKER_CG_COMPLETING_REBALANCE:
    case BROKER_CG_STABLE:
        m->join_cb = cb;
        m->join_arg = arg;
        if (!changed && !(g->state == BROKER_CG_STABLE && g->leader && !strcmp(g->leader, m->id))) {
            /* An unchanged member asking again (e.g. its response got lost):
             * give it the current generation instead of disturbing everyone. */
            broker_cg_arena_t scratch = {0};
            join_respond_current(g, m, &scratch);
            broker_cg_arena_free(&scratch);
        } else {
            prepare_rebalance(g, now, is_new ? "new member joined" : "member rejoined with new metadata");
            try_complete_join(g, now);
        }
        break;
    }
}

/* ---- SyncGroup -------------------------------------------------------------------------- */
static void sync_fail(broker_cg_sync_cb *cb, void *arg, int16_t err)
{
    broker_cg_sync_resp_t r = {.error_code = err};
    cb(arg, &r);
}

void broker_cg_sync(broker_cg_t *cg, const broker_cg_sync_req_t *req, int64_t now,
                    broker_cg_sync_cb *cb, void *arg)
{
    if (cg->loading) {
        sync_fail(cb, arg, BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS);
        return;
    }
    if (req->group_id.len <= 0) {
        sync_fail(cb, arg, BROKER_CG_ERR_INVALID_GROUP_ID);
        return;
    }
    cg_group_t *g = group_find_slice(cg, req->group_id);
    cg_member_t *m = g ? member_find(g, req->member_id) : NULL;
    if (!m) {
        sync_fail(cb, arg, BROKER_CG_ERR_UNKNOWN_MEMBER_ID);
        return;
    }
    if (req->generation_id != g->generation) {
        sync_fail(cb, arg, BROKER_CG_ERR_ILLEGAL_GENERATION);
        return;
    }
    m->deadline = now + m->session_ms;
    switch (g->state) {
    case BROKER_CG_PREPARING_REBALANCE:
        sync_fail(cb, arg, BROKER_CG_ERR_REBALANCE_IN_PROGRESS);
        return;
    case BROKER_CG_STABLE: {
        broker_cg_sync_resp_t r = {.error_code = 0, .assignment = m->assignment,
                                   .assignment_len = m->assignment_len};
        cb(arg, &r);
        return;
    }
    case BROKER_CG_COMPLETING_REBALANCE:
        if (m->sync_cb)
            sync_answer(m, BROKER_CG_ERR_REBALANCE_IN_PROGRESS);
        m->sync_cb = cb;
        m->sync_arg = arg;
        if (g->leader && !strcmp(g->leader, m->id)) {
            for (int i = 0; i < g->nmembers; i++) {
                cg_member_t *x = g->members[i];
                free(x->assignment);
                x->assignment = NULL;
                x->assignment_len = 0;
                for (int j = 0; j < req->nassignments; j++) {
                    const broker_cg_assignment_t *a = &req->assignments[j];
                    if (slice_eq(a->member_id, x->id) && a->assignment.len > 0) {
                        x->assignment = core_xmalloc((size_t)a->assignment.len);
                        memcpy(x->assignment, a->assignment.ptr, (size_t)a->assignment.len);
                        x->assignment_len = (size_t)a->assignment.len;
                        break;
                    }
                }
            }
            group_set_state(g, BROKER_CG_STABLE);
            CORE_INFO(CG, "group %s: stable at generation %d", g->id, g->generation);
            for (int i = 0; i < g->nmembers; i++)
                sync_answer(g->members[i], 0);
        }
        return;
    default:
        sync_fail(cb, arg, BROKER_CG_ERR_UNKNOWN_MEMBER_ID);
        return;
    }
}

int broker_cg_fail_held(broker_cg_t *cg, int16_t err)
{
    int n = 0;
    HTAB_FOREACH(&cg->groups, x) {
        cg_group_t *g = (cg_group_t *)x;
        for (int i = 0; i < g->nmembers; i++) {
            cg_member_t *m = g->members[i];
            if (m->join_cb) {
                join_answer_error(m, err);
                n++;
            }
            if (m->sync_cb) {
                sync_answer(m, err);
                n++;
            }
        }
    }
    return n;
}

void broker_cg_cancel(broker_cg_t *cg, void *arg)
{
    HTAB_FOREACH(&cg->groups, x) {
        cg_group_t *g = (cg_group_t *)x;
        for (int i = 0; i < g->nmembers; i++) {
            cg_member_t *m = g->members[i];
            if (m->join_cb && m->join_arg == arg) {
                /* The member stays; it simply no longer counts as rejoined. */
                m->join_cb = NULL;
                m->join_arg = NULL;
            }
            if (m->sync_cb && m->sync_arg == arg) {
                m->sync_cb = NULL;
                m->sync_arg = NULL;
            }
        }
    }
}

/* ---- Heartbeat / LeaveGroup ------------------------------------------------------------- */
int16_t broker_cg_heartbeat(broker_cg_t *cg, const broker_cg_heartbeat_req_t *req, int64_t now)
{
    if (cg->loading)
        return BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS;
    if (req->group_id.len <= 0)
        return BROKER_CG_ERR_INVALID_GROUP_ID;
    cg_group_t *g = group_find_slice(cg, req->group_id);
    cg_member_t *m = g ? member_find(g, req->member_id) : NULL;
    if (!m)
        return BROKER_CG_ERR_UNKNOWN_MEMBER_ID;
    if (req->generation_id != g->generation)
        return BROKER_CG_ERR_ILLEGAL_GENERATION;
    m->deadline = now + m->session_ms;
    if (g->state == BROKER_CG_PREPARING_REBALANCE)
        return BROKER_CG_ERR_REBALANCE_IN_PROGRESS;
    return 0;
}

int16_t broker_cg_leave(broker_cg_t *cg, broker_cg_leave_req_t *req, int64_t now)
{
    int16_t top = 0;
    if (cg->loading)
        top = BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS;
    else if (req->group_id.len <= 0)
        top = BROKER_CG_ERR_INVALID_GROUP_ID;
    cg_group_t *g = top ? NULL : group_find_slice(cg, req->group_id);
    int removed = 0;
    for (int i = 0; i < req->nmembers; i++) {
        broker_cg_leave_member_t *lm = &req->members[i];
        if (top) {
            lm->error_code = top;
            continue;
        }
        int mi = g && lm->member_id.len > 0
                     ? member_index(g, (const char *)lm->member_id.ptr, (size_t)lm->member_id.len)
                     : -1;
        if (mi < 0) {
            int pi = g ? pending_index(g, lm->member_id) : -1;
            if (pi >= 0) {
                pending_remove(g, pi);
                removed++;
                lm->error_code = 0;
            } else {
                lm->error_code = BROKER_CG_ERR_UNKNOWN_MEMBER_ID;
            }
            continue;
        }
        CORE_INFO(CG, "group %s: member %s left", g->id, g->members[mi]->id);
        member_remove_at(g, mi, BROKER_CG_ERR_UNKNOWN_MEMBER_ID);
        lm->error_code = 0;
        removed++;
    }
    if (g && removed)
        group_members_changed(g, now, "member left");
    if (g)
        group_maybe_gc(cg, g);
    if (!top && req->version < 3 && req->nmembers == 1)
        top = req->members[0].error_code;
    return top;
}

/* ---- offsets -------------------------------------------------------------------------------- */
static uint64_t offset_hash(const char *topic, size_t n, int32_t partition)
{
    uint64_t h = fnv1a(FNV_INIT, topic, n);
    return fnv1a(h, &partition, sizeof partition);
}

static cg_offset_t *offset_find(cg_group_t *g, const char *topic, size_t n, int32_t partition)
{
    if (!g->offsets.nb)
        return NULL;
    uint64_t h = offset_hash(topic, n, partition);
    for (hnode_t *x = g->offsets.b[h & (g->offsets.nb - 1)]; x; x = x->next) {
        cg_offset_t *o = (cg_offset_t *)x;
        if (x->hash == h && o->partition == partition && strlen(o->topic) == n &&
            memcmp(o->topic, topic, n) == 0)
            return o;
    }
    return NULL;
}

int broker_cg_commit_check(broker_cg_t *cg, broker_cg_commit_req_t *req, int64_t now)
{
    int16_t gerr = 0;
    if (cg->loading)
        gerr = BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS;
    else if (req->group_id.len <= 0 || !slice_cstr_ok(req->group_id))
        gerr = BROKER_CG_ERR_INVALID_GROUP_ID;
    cg_group_t *g = NULL;
    if (!gerr) {
        g = group_find_slice(cg, req->group_id);
        if (!g) {
            if (req->generation_id < 0)
                g = group_create(cg, (const char *)req->group_id.ptr, (size_t)req->group_id.len);
            else
                gerr = BROKER_CG_ERR_ILLEGAL_GENERATION;
        } else if (req->generation_id < 0 && g->nmembers == 0) {
            /* simple (non-member) commit on a group without members */
        } else if (g->state == BROKER_CG_COMPLETING_REBALANCE) {
            gerr = BROKER_CG_ERR_REBALANCE_IN_PROGRESS;
        } else {
            cg_member_t *m = member_find(g, req->member_id);
            if (!m)
                gerr = BROKER_CG_ERR_UNKNOWN_MEMBER_ID;
            else if (req->generation_id != g->generation)
                gerr = BROKER_CG_ERR_ILLEGAL_GENERATION;
            else
                m->deadline = now + m->session_ms;
        }
    }
    int accepted = 0;
    for (int t = 0; t < req->ntopics; t++) {
        broker_cg_commit_topic_t *ct = &req->topics[t];
        for (int p = 0; p < ct->npartitions; p++) {
            broker_cg_commit_part_t *cp = &ct->partitions[p];
            if (gerr)
                cp->error_code = gerr;
            else if (cp->error_code)
                ; /* the caller's verdict (unknown topic/partition) stands */
            else if (cp->metadata.len > cg->conf.offset_metadata_max_bytes)
                cp->error_code = BROKER_CG_ERR_OFFSET_METADATA_TOO_LARGE;
            else if (!slice_cstr_ok(ct->name) || ct->name.len == 0)
                cp->error_code = BROKER_CG_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            else
                accepted++;
        }
    }
    return accepted;
}

void broker_cg_offset_put(broker_cg_t *cg, const char *group, const char *topic, int32_t partition,
                          const broker_cg_offset_t *off)
{
    size_t gl = strlen(group), tl = strlen(topic);
    cg_group_t *g = group_find(cg, group, gl);
    if (!g)
        g = group_create(cg, group, gl);
    cg_offset_t *o = offset_find(g, topic, tl, partition);
    if (!o) {
        o = core_xcalloc(1, sizeof *o);
        o->topic = core_xstrdup(topic);
        o->partition = partition;
        htab_add(&g->offsets, &o->node, offset_hash(topic, tl, partition));
    }
    o->offset = off->offset;
    o->leader_epoch = off->leader_epoch;
    o->commit_ts = off->commit_ts;
    o->expire_ts = off->expire_ts;
    free(o->metadata);
    o->metadata = core_xstrdup(off->metadata ? off->metadata : "");
}

void broker_cg_offset_delete(broker_cg_t *cg, const char *group, const char *topic,
                             int32_t partition)
{
    cg_group_t *g = group_find(cg, group, strlen(group));
    if (!g)
        return;
    cg_offset_t *o = offset_find(g, topic, strlen(topic), partition);
    if (o) {
        htab_del(&g->offsets, &o->node);
        offset_free(o);
    }
    group_maybe_gc(cg, g);
}

static void offset_export(const cg_offset_t *o, broker_cg_offset_t *off)
{
    off->offset = o->offset;
    off->leader_epoch = o->leader_epoch;
    off->commit_ts = o->commit_ts;
    off->expire_ts = o->expire_ts;
    off->metadata = o->metadata;
}

int broker_cg_offset_get(broker_cg_t *cg, const char *group, const char *topic, int32_t partition,
                         broker_cg_offset_t *off)
{
    cg_group_t *g = group_find(cg, group, strlen(group));
    cg_offset_t *o = g ? offset_find(g, topic, strlen(topic), partition) : NULL;
    if (!o)
        return CORE_ERR_NOT_FOUND;
    offset_export(o, off);
    return CORE_OK;
}

static void group_offsets_foreach(cg_group_t *g, broker_cg_offset_fn *fn, void *arg)
{
    HTAB_FOREACH(&g->offsets, x) {
        cg_offset_t *o = (cg_offset_t *)x;
        broker_cg_offset_t off;
        offset_export(o, &off);
        fn(arg, g->id, o->topic, o->partition, &off);
    }
}

void broker_cg_offset_foreach(broker_cg_t *cg, const char *group, broker_cg_offset_fn *fn, void *arg)
{
    if (group) {
        cg_group_t *g = group_find(cg, group, strlen(group));
        if (g)
            group_offsets_foreach(g, fn, arg);
        return;
    }
    HTAB_FOREACH(&cg->groups, x) group_offsets_foreach((cg_group_t *)x, fn, arg);
}

int broker_cg_expire_offsets(broker_cg_t *cg, int64_t now_wall, broker_cg_offset_fn *fn, void *arg)
{
    int n = 0;
    HTAB_FOREACH(&cg->groups, x) {
        cg_group_t *g = (cg_group_t *)x;
        if (g->nmembers || g->npending || g->state != BROKER_CG_EMPTY)
            continue;
        HTAB_FOREACH(&g->offsets, y) {
            cg_offset_t *o = (cg_offset_t *)y;
            int64_t exp = o->expire_ts >= 0 ? o->expire_ts
                                             : o->commit_ts + cg->conf.offsets_retention_ms;
            if (exp > now_wall)
                continue;
            broker_cg_offset_t off;
            offset_export(o, &off);
            if (fn)
                fn(arg, g->id, o->topic, o->partition, &off);
            htab_del(&g->offsets, &o->node);
            offset_free(o);
            n++;
        }
        if (n && !g->offsets.n)
            CORE_INFO(CG, "group %s: committed offsets expired (empty group, retention)", g->id);
        group_maybe_gc(cg, g);
    }
    return n;
}

void broker_cg_offset_fetch(broker_cg_t *cg, broker_cg_fetch_req_t *req)
{
    req->error_code = 0;
    if (cg->loading) {
        req->error_code = BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS;
    } else if (req->group_id.len <= 0) {
        req->error_code = BROKER_CG_ERR_INVALID_GROUP_ID;
    }
    cg_group_t *g = req->error_code ? NULL : group_find_slice(cg, req->group_id);
    if (req->ntopics < 0) {
        /* All committed partitions of the group, grouped by topic. */
        req->ntopics = 0;
        req->topics = NULL;
        if (!g || !g->offsets.n)
            return;
        broker_cg_fetch_topic_t *topics =
            broker_cg_arena_alloc(&req->arena, g->offsets.n * sizeof *topics);
        if (!topics) {
            req->error_code = -1;
            return;
        }
        int nt = 0;
        HTAB_FOREACH(&g->offsets, x) {
            cg_offset_t *o = (cg_offset_t *)x;
            int t;
            for (t = 0; t < nt; t++)
                if (slice_eq(topics[t].name, o->topic))
                    break;
            if (t == nt) {
                topics[nt].name.ptr = (const uint8_t *)o->topic;
                topics[nt].name.len = (int64_t)strlen(o->topic);
                topics[nt].partitions =
                    broker_cg_arena_alloc(&req->arena, g->offsets.n * sizeof *topics[nt].partitions);
                if (!topics[nt].partitions) {
                    req->error_code = -1;
                    return;
                }
                nt++;
            }
            broker_cg_fetch_part_t *fp = &topics[t].partitions[topics[t].npartitions++];
            fp->partition = o->partition;
            fp->offset = o->offset;
            fp->leader_epoch = o->leader_epoch;
            fp->metadata = o->metadata;
            fp->error_code = 0;
        }
        req->topics = topics;
        req->ntopics = nt;
        return;
    }
    for (int t = 0; t < req->ntopics; t++) {
        broker_cg_fetch_topic_t *ft = &req->topics[t];
        for (int p = 0; p < ft->npartitions; p++) {
            broker_cg_fetch_part_t *fp = &ft->partitions[p];
            fp->offset = -1;
            fp->leader_epoch = -1;
            fp->metadata = "";
            fp->error_code = req->error_code;
            cg_offset_t *o = g && slice_cstr_ok(ft->name)
                                 ? offset_find(g, (const char *)ft->name.ptr, (size_t)ft->name.len,
                                               fp->partition)
                                 : NULL;
            if (o) {
                fp->offset = o->offset;
                fp->leader_epoch = o->leader_epoch;
                fp->metadata = o->metadata;
            }
        }
    }
}

/* ---- ListGroups / DescribeGroups ---------------------------------------------------------- */
int16_t broker_cg_list(broker_cg_t *cg, broker_cg_arena_t *arena, broker_cg_listed_t **groups,
                       int32_t *ngroups)
{
    *groups = NULL;
    *ngroups = 0;
    if (cg->loading)
        return BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS;
    if (!cg->groups.n)
        return 0;
    broker_cg_listed_t *v = broker_cg_arena_alloc(arena, cg->groups.n * sizeof *v);
    if (!v)
        return -1;
    int n = 0;
    HTAB_FOREACH(&cg->groups, x) {
        cg_group_t *g = (cg_group_t *)x;
        v[n].group_id = g->id;
        v[n].protocol_type = g->protocol_type ? g->protocol_type : "";
        v[n].state = g->state;
        n++;
    }
    *groups = v;
    *ngroups = n;
    return 0;
}

void broker_cg_describe(broker_cg_t *cg, broker_cg_describe_req_t *req)
{
    req->out = req->ngroups > 0 ? broker_cg_arena_alloc(&req->arena, (size_t)req->ngroups * sizeof *req->out)
                                : NULL;
    if (req->ngroups > 0 && !req->out) {
        req->ngroups = 0;
        return;
    }
    for (int i = 0; i < req->ngroups; i++) {
        broker_cg_described_t *d = &req->out[i];
        d->group_id = req->groups[i];
        d->state = "Dead";
        d->protocol_type = "";
        d->protocol = "";
        if (cg->loading) {
            d->error_code = BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS;
            continue;
        }
        if (req->groups[i].len <= 0) {
            d->error_code = BROKER_CG_ERR_INVALID_GROUP_ID;
            continue;
        }
        cg_group_t *g = group_find_slice(cg, req->groups[i]);
        if (!g)
            continue;
        d->state = broker_cg_state_name(g->state);
        d->protocol_type = g->protocol_type ? g->protocol_type : "";
        d->protocol = g->protocol && g->state != BROKER_CG_PREPARING_REBALANCE ? g->protocol : "";
        if (!g->nmembers)
            continue;
        d->members = broker_cg_arena_alloc(&req->arena, (size_t)g->nmembers * sizeof *d->members);
        if (!d->members)
            continue;
        d->nmembers = g->nmembers;
        for (int j = 0; j < g->nmembers; j++) {
            cg_member_t *m = g->members[j];
            broker_cg_described_member_t *dm = &d->members[j];
            dm->member_id = m->id;
            dm->group_instance_id = m->instance_id;
            dm->client_id = m->client_id;
            dm->client_host = m->client_host;
            /* Kafka sends the metadata of the selected protocol (empty while rebalancing). */
            const cg_proto_t *p = g->protocol && g->state != BROKER_CG_PREPARING_REBALANCE
                                      ? member_proto(m, g->protocol)
                                      : NULL;
            dm->metadata = p ? p->meta : NULL;
            dm->metadata_len = p ? p->meta_len : 0;
            if (g->state == BROKER_CG_STABLE) {
                dm->assignment = m->assignment;
                dm->assignment_len = m->assignment_len;
            }
        }
    }
}

/* ---- time ------------------------------------------------------------------------------- */
int broker_cg_tick(broker_cg_t *cg, int64_t now)
{
    int changed = 0;
    HTAB_FOREACH(&cg->groups, x) {
        cg_group_t *g = (cg_group_t *)x;
        broker_cg_state_t before = g->state;
        int32_t gen_before = g->generation;
        bool lost = false;
        for (int i = g->npending - 1; i >= 0; i--)
            if (g->pending[i].deadline <= now) {
                pending_remove(g, i);
                lost = true;
            }
        for (int i = g->nmembers - 1; i >= 0; i--) {
            cg_member_t *m = g->members[i];
            if (m->join_cb || m->deadline > now)
                continue;
            CORE_INFO(CG, "group %s: member %s expired (no heartbeat for %d ms)", g->id, m->id,
                      m->session_ms);
            member_remove_at(g, i, BROKER_CG_ERR_UNKNOWN_MEMBER_ID);
            lost = true;
        }
        if (lost)
            group_members_changed(g, now, "member session expired");
        if (g->state == BROKER_CG_PREPARING_REBALANCE) {
            if (g->in_delay && now >= g->delay_deadline) {
                int64_t maxr = group_max_rebalance_ms(g);
                if (g->delay_joined &&
                    now + cg->conf.initial_rebalance_delay_ms <= g->delay_start + maxr) {
                    g->delay_joined = false;
                    g->delay_deadline = now + cg->conf.initial_rebalance_delay_ms;
                } else {
                    g->in_delay = false;
                }
            }
            if (!g->in_delay) {
                if (all_joined(g) || now >= g->rebalance_deadline)
                    complete_join(g, now);
            }
        }
        if (g->state != before || g->generation != gen_before)
            changed++;
        group_maybe_gc(cg, g);
    }
    return changed;
}

/* ---- introspection ------------------------------------------------------------------------- */
int16_t broker_cg_delete_group(broker_cg_t *cg, core_slice_t group)
{
    if (cg->loading)
        return BROKER_CG_ERR_COORDINATOR_LOAD_IN_PROGRESS;
    if (group.len <= 0)
        return BROKER_CG_ERR_INVALID_GROUP_ID;
    cg_group_t *g = group_find_slice(cg, group);
    if (!g)
        return BROKER_CG_ERR_GROUP_ID_NOT_FOUND;
    if (g->state != BROKER_CG_EMPTY || g->nmembers || g->npending)
        return BROKER_CG_ERR_NON_EMPTY_GROUP;
    group_maybe_gc(cg, g);
    return BROKER_CG_ERR_NONE;
}

int broker_cg_group_info(broker_cg_t *cg, const char *group, broker_cg_info_t *info)
{
    cg_group_t *g = group_find(cg, group, strlen(group));
    if (!g)
        return CORE_ERR_NOT_FOUND;
    info->state = g->state;
    info->generation_id = g->generation;
    info->nmembers = g->nmembers;
    info->protocol = g->protocol ? g->protocol : "";
    info->leader = g->leader ? g->leader : "";
    return CORE_OK;
}

/* Does a consumer-protocol Assignment (version, [topic, [partition]], user_data)
 * list (topic, partition)? Malformed bytes simply do not match. */
bool broker_cg__assignment_has(const uint8_t *p, size_t n, const char *topic,
                               int32_t partition)
{
    if (!p || n < 2)
        return false;
    core_rd_t rd;
    core_rd_init(&rd, p, n);
    (void)core_rd_i16(&rd);
    int32_t nt = core_rd_array(&rd, 100000, 6);
    for (int32_t i = 0; i < nt && !rd.err; i++) {
        core_slice_t t = core_rd_str(&rd);
        int32_t np = core_rd_array(&rd, 1000000, 4);
        bool same = !rd.err && slice_eq(t, topic);
        for (int32_t j = 0; j < np && !rd.err; j++)
            if (core_rd_i32(&rd) == partition && same && !rd.err)
                return true;
    }
    return false;
}

bool broker_cg_owner(broker_cg_t *cg, const char *group, const char *topic, int32_t partition,
                     const char **client_id, const char **client_host)
{
    cg_group_t *g = group_find(cg, group, strlen(group));
    if (!g || g->state != BROKER_CG_STABLE)
        return false;
    for (int i = 0; i < g->nmembers; i++)
        if (broker_cg__assignment_has(g->members[i]->assignment, g->members[i]->assignment_len, topic,
                           partition)) {
            *client_id = g->members[i]->client_id;
            *client_host = g->members[i]->client_host;
            return true;
        }
    return false;
}
