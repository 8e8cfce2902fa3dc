/*
 * store_remote — the eddy:// engine (client) and the internal endpoint's
 * request executor (server). Protocol in store_remote.h.
 */
#include "storage/store_remote.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "core/core_log.h"
#include "storage/store_int.h"

/* Upper bound of an answer's header block. */
#define REMOTE_HEAD_MAX 8192
/* Wait for an answer (a big commit with --sync always may take a while). */
#define REMOTE_TIMEOUT_MS 120000

/* ------------------------------------------------------------- helpers -- */

static void wr_cstr(core_buf_t *b, const char *s)
{
    core_wr_bytes(b, s, s ? (int64_t)strlen(s) : -1);
}

/* NUL-terminated copies of slices, kept in one growing list. */
typedef struct scratch {
    char **p;
    size_t n, cap;
} scratch_t;

static char *scratch_dup(scratch_t *s, core_slice_t v)
{
    if (v.len < 0)
        return NULL;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->p = core_xrealloc(s->p, s->cap * sizeof(*s->p));
    }
    char *c = core_xmalloc((size_t)v.len + 1);
    if (v.len)
        memcpy(c, v.ptr, (size_t)v.len);
    c[v.len] = '\0';
    s->p[s->n++] = c;
    return c;
}

static void scratch_free(scratch_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->p[i]);
    free(s->p);
    memset(s, 0, sizeof(*s));
}

static bool slice_id(core_slice_t v, char out[STORE_EVENT_ID_MAX + 1])
{
    if (v.len < 0 || v.len > STORE_EVENT_ID_MAX)
        return false;
    if (v.len > 0) /* an empty slice may have a NULL ptr */
        memcpy(out, v.ptr, (size_t)v.len);
    out[v.len] = '\0';
    return true;
}

static void wr_event(core_buf_t *b, const store_event_t *ev)
{
    wr_cstr(b, ev->event_id);
    wr_cstr(b, ev->event);
    wr_cstr(b, ev->entity_type);
    wr_cstr(b, ev->entity_id);
    wr_cstr(b, ev->target_entity_type);
    wr_cstr(b, ev->target_entity_id);
    wr_cstr(b, ev->properties);
    core_wr_i64(b, ev->event_time_ms);
    core_wr_i16(b, ev->event_time_tz_min);
    core_wr_i8(b, ev->event_time_given);
    core_wr_i64(b, ev->creation_time_ms);
    wr_cstr(b, ev->pr_id);
    wr_cstr(b, ev->tags);
}

static void rd_event(core_rd_t *rd, store_event_t *ev, scratch_t *sc)
{
    memset(ev, 0, sizeof(*ev));
    if (!slice_id(core_rd_bytes(rd), ev->event_id))
        core_rd_fail(rd, CORE_ERR_MALFORMED);
    ev->event = scratch_dup(sc, core_rd_bytes(rd));
    ev->entity_type = scratch_dup(sc, core_rd_bytes(rd));
    ev->entity_id = scratch_dup(sc, core_rd_bytes(rd));
    ev->target_entity_type = scratch_dup(sc, core_rd_nbytes(rd));
    ev->target_entity_id = scratch_dup(sc, core_rd_nbytes(rd));
    ev->properties = scratch_dup(sc, core_rd_nbytes(rd));
    ev->event_time_ms = core_rd_i64(rd);
    ev->event_time_tz_min = core_rd_i16(rd);
    ev->event_time_given = core_rd_i8(rd) != 0;
    ev->creation_time_ms = core_rd_i64(rd);
    ev->pr_id = scratch_dup(sc, core_rd_nbytes(rd));
    ev->tags = scratch_dup(sc, core_rd_nbytes(rd));
}

/* ============================================================== server == */

typedef struct serve_scan {
    core_buf_t *out;
    size_t count_pos;
    int64_t n;
} serve_scan_t;

static int serve_find_cb(const store_event_t *ev, void *opaque)
{
    serve_scan_t *s = opaque;
    wr_event(s->out, ev);
    s->n++;
    return 0;
}

static int serve_props_cb(const store__propev_t *pe, void *opaque)
{
    serve_scan_t *s = opaque;
    core_wr_bytes(s->out, pe->eid, (int64_t)pe->eid_len);
    core_wr_i64(s->out, pe->time_ms);
    core_wr_bytes(s->out, pe->id, (int64_t)pe->id_len);
    core_wr_i8(s->out, (int8_t)pe->op);
    core_wr_bytes(s->out, pe->props, (int64_t)pe->props_len);
    s->n++;
    return 0;
}

static int serve_kv_cb(const void *key, size_t klen, const void *val, size_t vlen, void *opaque)
{
    serve_scan_t *s = opaque;
    core_wr_bytes(s->out, key, (int64_t)klen);
    core_wr_bytes(s->out, val, (int64_t)vlen);
    s->n++;
    return 0;
}

/* The (app, channel, event id) a GET or DEL names; false when malformed or
 * followed by anything. */
static bool serve_rd_event_key(core_rd_t *rd, int32_t *app, int32_t *ch,
                               char id[STORE_EVENT_ID_MAX + 1])
{
    *app = core_rd_i32(rd);
    *ch = core_rd_i32(rd);
    return slice_id(core_rd_bytes(rd), id) && !rd->err && !core_rd_remain(rd);
}

/* A lookup's answer: rc, then the value when rc is 0. */
static void serve_wr_value(core_buf_t *out, int rc, const void *val, size_t len)
{
    core_wr_i32(out, rc);
    if (rc == 0)
        core_wr_bytes(out, val, (int64_t)len);
}

/* A scan's answer is rc, an i32 count, the entries: the count is known only
 * at the end, so a placeholder is written first (the offset returned) and
 * patched by serve_scan_end, or the whole answer becomes just rc. */
static size_t serve_scan_begin(core_buf_t *out)
{
    size_t head = out->len;
    core_wr_i32(out, 0);
    core_wr_i32(out, 0);
    return head;
}

static void serve_scan_end(core_buf_t *out, size_t head, int rc, const serve_scan_t *scan)
{
    if (rc) {
        out->len = head;
        core_wr_i32(out, rc);
        return;
    }
    core_wr_i32_at(out, head + 4, (int32_t)scan->n);
}

/* Decodes a COMMIT into a batch the local engine can apply. The staged
 * records were built by store.c in the client; the engine re-checks ids. */
static int serve_commit(store_t *st, core_rd_t *rd, core_buf_t *out)
{
    store_batch_t b;
    memset(&b, 0, sizeof(b));
    b.s = st;
    b.flags = core_rd_u32(rd);
    int32_t nev = core_rd_array(rd, STORE_BATCH_MAX_EVENTS, 40);
    int rc = CORE_OK;
    store_put_result_t *results = NULL;
    if (nev > 0) {
        b.ev = core_xcalloc((size_t)nev, sizeof(*b.ev));
        b.capev = (size_t)nev;
    }
    for (int32_t i = 0; i < nev && !rd->err; i++) {
        store__staged_t *s = &b.ev[b.nev++];
        s->prior = -1;
        s->app = core_rd_i32(rd);
        s->ch = core_rd_i32(rd);
        if (!slice_id(core_rd_bytes(rd), s->id))
            core_rd_fail(rd, CORE_ERR_MALFORMED);
        s->time_ms = core_rd_i64(rd);
        s->time_given = core_rd_i8(rd) != 0;
        s->op = (uint8_t)core_rd_i8(rd);
        scratch_t one = {0};
        s->etype = scratch_dup(&one, core_rd_bytes(rd));
        s->eid = scratch_dup(&one, core_rd_bytes(rd));
        s->ttype = scratch_dup(&one, core_rd_nbytes(rd));
        s->tid = scratch_dup(&one, core_rd_nbytes(rd));
        s->props = scratch_dup(&one, core_rd_nbytes(rd));
        free(one.p); /* the strings now belong to the staged event */
        core_slice_t rec = core_rd_bytes(rd);
        if (rec.len > 0) {
            s->rec = core_xmalloc((size_t)rec.len);
            memcpy(s->rec, rec.ptr, (size_t)rec.len);
            s->rec_len = (size_t)rec.len;
        } else {
            core_rd_fail(rd, CORE_ERR_MALFORMED);
        }
        s->prior = core_rd_i32(rd);
        if (s->prior < -1 || s->prior >= i)
            core_rd_fail(rd, CORE_ERR_MALFORMED);
    }
    int32_t nkv = core_rd_array(rd, STORE_BATCH_MAX_EVENTS, 8);
    if (nkv > 0) {
        b.kv = core_xcalloc((size_t)nkv, sizeof(*b.kv));
        b.capkv = (size_t)nkv;
    }
    for (int32_t i = 0; i < nkv && !rd->err; i++) {
        core_slice_t k = core_rd_bytes(rd), v = core_rd_nbytes(rd);
        if (rd->err || k.len > STORE_KV_KEY_MAX || v.len > (int64_t)STORE_KV_VALUE_MAX) {
            core_rd_fail(rd, CORE_ERR_MALFORMED);
            break;
        }
        store__kvop_t *op = &b.kv[b.nkv++];
        op->key = core_xmalloc((size_t)k.len + 1);
        memcpy(op->key, k.ptr, (size_t)k.len);
        op->klen = (size_t)k.len;
        if (v.len >= 0) {
            op->val = core_xmalloc((size_t)v.len + 1);
            memcpy(op->val, v.ptr, (size_t)v.len);
            op->vlen = (size_t)v.len;
        }
    }
    if (rd->err || core_rd_remain(rd) != 0) {
        rc = CORE_ERR_MALFORMED;
        goto cleanup;
    }
    results = core_xcalloc(b.nev ? b.nev : 1, sizeof(*results));
    char err[512] = "";
    int crc = st->eng->commit(st, &b, results, err, sizeof(err));
    core_wr_i32(out, crc);
    wr_cstr(out, err);
    if (crc == 0 || crc == CORE_ERR_CONFLICT) {
        for (size_t i = 0; i < b.nev; i++) {
            /* the engine may leave ids to store.c: staged ids are final */
            const char *id = results[i].event_id[0] ? results[i].event_id : b.ev[i].id;
            wr_cstr(out, id);
            core_wr_i8(out, (int8_t)results[i].status);
        }
    }
cleanup:
    for (size_t i = 0; i < b.nev; i++) {
        store__staged_t *s = &b.ev[i];
        free(s->etype);
        free(s->eid);
        free(s->ttype);
        free(s->tid);
        free(s->props);
        free(s->rec);
    }
    for (size_t i = 0; i < b.nkv; i++) {
        free(b.kv[i].key);
        free(b.kv[i].val);
    }
    free(b.ev);
    free(b.kv);
    free(results);
    return rc;
}

int store_remote_serve(store_t *st, const void *body, size_t len, core_buf_t *out)
{
    core_rd_t rd;
    core_rd_init(&rd, body, len);
    int version = core_rd_i8(&rd);
    int op = core_rd_i8(&rd);
    if (rd.err || version != STORE_REMOTE_VERSION)
        goto malformed;
    scratch_t sc = {0};
    serve_scan_t scan = {.out = out};
    int rc;
    switch (op) {
    case STORE_REMOTE_OP_COMMIT:
        if (serve_commit(st, &rd, out) != 0)
            goto malformed;
        return 200;
    case STORE_REMOTE_OP_GET: {
        int32_t app, ch;
        char id[STORE_EVENT_ID_MAX + 1];
        if (!serve_rd_event_key(&rd, &app, &ch, id))
            goto malformed;
        uint8_t *rec = NULL;
        size_t rlen = 0;
        rc = st->eng->get(st, app, ch, id, &rec, &rlen);
        serve_wr_value(out, rc, rec, rlen);
        free(rec);
        return 200;
    }
    case STORE_REMOTE_OP_DEL: {
        int32_t app, ch;
        char id[STORE_EVENT_ID_MAX + 1];
        if (!serve_rd_event_key(&rd, &app, &ch, id))
            goto malformed;
        core_wr_i32(out, st->eng->del(st, app, ch, id));
        return 200;
    }
    case STORE_REMOTE_OP_FIND: {
        store_find_t f;
        store_find_init(&f);
        int32_t app = core_rd_i32(&rd), ch = core_rd_i32(&rd);
        f.start_ms = core_rd_i64(&rd);
        f.until_ms = core_rd_i64(&rd);
        f.entity_type = scratch_dup(&sc, core_rd_nbytes(&rd));
        f.entity_id = scratch_dup(&sc, core_rd_nbytes(&rd));
        int32_t nev = core_rd_array(&rd, 1024, 4);
        const char **names = nev > 0 ? core_xcalloc((size_t)nev, sizeof(*names)) : NULL;
        for (int32_t i = 0; i < nev && !rd.err; i++)
            names[i] = scratch_dup(&sc, core_rd_bytes(&rd));
        f.events = names;
        f.nevents = nev > 0 ? nev : 0;
        f.target_entity_type = scratch_dup(&sc, core_rd_nbytes(&rd));
        f.target_entity_id = scratch_dup(&sc, core_rd_nbytes(&rd));
        f.limit = core_rd_i64(&rd);
        f.reversed = core_rd_i8(&rd) != 0;
        if (rd.err || core_rd_remain(&rd)) {
            free(names);
            scratch_free(&sc);
            goto malformed;
        }
        size_t head = out->len;
        core_wr_i32(out, 0);
        core_wr_i64(out, 0);
        int64_t found = 0; /* engines' find writes *count unconditionally */
        rc = st->eng->find(st, app, ch, &f, serve_find_cb, &scan, &found);
        free(names);
        scratch_free(&sc);
        if (rc) {
            out->len = head;
            core_wr_i32(out, rc);
            return 200;
        }
        core_wr_i32_at(out, head, 0);
        /* patch the count (i64 big-endian after rc) */
        for (int i = 0; i < 8; i++)
            out->data[head + 4 + (size_t)i] = (uint8_t)((uint64_t)scan.n >> (56 - 8 * i));
        return 200;
    }
    case STORE_REMOTE_OP_PROPS: {
        int32_t app = core_rd_i32(&rd), ch = core_rd_i32(&rd);
        const char *etype = scratch_dup(&sc, core_rd_bytes(&rd));
        const char *eid = scratch_dup(&sc, core_rd_nbytes(&rd));
        if (rd.err || core_rd_remain(&rd)) {
            scratch_free(&sc);
            goto malformed;
        }
        size_t head = serve_scan_begin(out);
        rc = st->eng->props_scan(st, app, ch, etype, eid, serve_props_cb, &scan);
        scratch_free(&sc);
        serve_scan_end(out, head, rc, &scan);
        return 200;
    }
    case STORE_REMOTE_OP_KV_GET: {
        core_slice_t k = core_rd_bytes(&rd);
        if (rd.err || core_rd_remain(&rd))
            goto malformed;
        void *val = NULL;
        size_t vlen = 0;
        rc = st->eng->kv_get(st, k.ptr, (size_t)k.len, &val, &vlen);
        serve_wr_value(out, rc, val, vlen);
        free(val);
        return 200;
    }
    case STORE_REMOTE_OP_KV_SCAN: {
        core_slice_t p = core_rd_bytes(&rd);
        if (rd.err || core_rd_remain(&rd))
            goto malformed;
        size_t head = serve_scan_begin(out);
        rc = st->eng->kv_scan(st, p.ptr, (size_t)p.len, serve_kv_cb, &scan);
        serve_scan_end(out, head, rc, &scan);
        return 200;
    }
    case STORE_REMOTE_OP_DATA_DEL: {
        int32_t app = core_rd_i32(&rd), ch = core_rd_i32(&rd);
        if (rd.err || core_rd_remain(&rd))
            goto malformed;
        core_wr_i32(out, st->eng->data_delete(st, app, ch));
        return 200;
    }
    default:
        break;
    }
malformed:
    out->len = 0;
    core_wr_raw(out, "malformed internal store request", 32);
    return 400;
}

int store_remote_token_read(const char *dir, char *tok, size_t toksz)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, STORE_REMOTE_TOKEN_FILE);
    FILE *f = fopen(path, "r");
    if (!f)
        return errno;
    if (!fgets(tok, (int)toksz, f))
        tok[0] = '\0';
    fclose(f);
    tok[strcspn(tok, "\r\n")] = '\0';
    return tok[0] ? 0 : EINVAL;
}

/* ============================================================== client == */

typedef struct remote {
    char host[256];
    int port;
    char token[128];
    pthread_mutex_t lock;
    int pool[STORE_REMOTE_POOL];
    int npool;
} remote_t;

static int remote_connect(remote_t *r)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    if (getaddrinfo(r->host, port, &hints, &ai) != 0 || !ai)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

static int remote_take(remote_t *r, bool *pooled)
{
    pthread_mutex_lock(&r->lock);
    int fd = r->npool ? r->pool[--r->npool] : -1;
    pthread_mutex_unlock(&r->lock);
    *pooled = fd >= 0;
    return fd >= 0 ? fd : remote_connect(r);
}

static void remote_give(remote_t *r, int fd)
{
    pthread_mutex_lock(&r->lock);
    if (r->npool < STORE_REMOTE_POOL) {
        r->pool[r->npool++] = fd;
        fd = -1;
    }
    pthread_mutex_unlock(&r->lock);
    if (fd >= 0)
        close(fd);
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads with a deadline. Returns bytes read, 0 at EOF, -1 on error/timeout. */
static ssize_t recv_some(int fd, void *p, size_t n)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int pr = poll(&pfd, 1, REMOTE_TIMEOUT_MS);
    if (pr <= 0)
        return -1;
    ssize_t got;
    do
        got = recv(fd, p, n, 0);
    while (got < 0 && errno == EINTR);
    return got;
}

/* One exchange on fd. Returns 0 with the answer, CORE_ERR_AGAIN when the
 * connection was closed before any answer byte (safe to retry), or
 * CORE_ERR_IO. */
static int remote_exchange(remote_t *r, int fd, const core_buf_t *req, int *status,
                           uint8_t **body, size_t *blen, bool *keep)
{
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "POST " STORE_REMOTE_PATH " HTTP/1.1\r\nHost: %s:%d\r\n"
                      STORE_REMOTE_TOKEN_HEADER ": %s\r\n"
                      "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
                      r->host, r->port, r->token, req->len);
    if (send_all(fd, head, (size_t)hl) || send_all(fd, req->data, req->len))
        return CORE_ERR_AGAIN;
    char hbuf[REMOTE_HEAD_MAX + 1];
    size_t have = 0;
    char *eoh = NULL;
    while (!eoh) {
        if (have == REMOTE_HEAD_MAX)
            return CORE_ERR_IO;
        ssize_t n = recv_some(fd, hbuf + have, REMOTE_HEAD_MAX - have);
        if (n <= 0)
            return have == 0 && n == 0 ? CORE_ERR_AGAIN : CORE_ERR_IO;
        have += (size_t)n;
        hbuf[have] = '\0';
        eoh = strstr(hbuf, "\r\n\r\n");
    }
    if (strncmp(hbuf, "HTTP/1.", 7) != 0)
        return CORE_ERR_IO;
    *status = atoi(hbuf + 9);
    size_t hlen = (size_t)(eoh - hbuf) + 4;
    const char *cl = strcasestr(hbuf, "\r\nContent-Length:");
    if (!cl || cl > eoh)
        return CORE_ERR_IO;
    unsigned long long clen = strtoull(cl + 17, NULL, 10);
    if (clen > STORE_REMOTE_MAX_RESPONSE)
        return CORE_ERR_IO;
    const char *conn = strcasestr(hbuf, "\r\nConnection: close");
    *keep = !(conn && conn < eoh);
    uint8_t *b = core_trymalloc(clen + 1);
    if (!b)
        return CORE_ERR_NOMEM;
    size_t got = have - hlen;
    if (got > clen)
        got = clen; /* no pipelining: extra bytes would be a protocol error */
    memcpy(b, hbuf + hlen, got);
    while (got < clen) {
        ssize_t n = recv_some(fd, b + got, clen - got);
        if (n <= 0) {
            free(b);
            return CORE_ERR_IO;
        }
        got += (size_t)n;
    }
    *body = b;
    *blen = clen;
    return CORE_OK;
}

/* Sends one request and returns the answer body (malloc'd) after checking
 * the status. */
static int remote_call(store_t *s, const core_buf_t *req, uint8_t **body, size_t *blen)
{
    remote_t *r = s->impl;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool pooled;
        int fd = remote_take(r, &pooled);
        if (fd < 0) {
            CORE_WARN("store", "remote: cannot connect to %s:%d: %s", r->host, r->port,
                      strerror(errno));
            return CORE_ERR_IO;
        }
        int status = 0;
        bool keep = false;
        int rc = remote_exchange(r, fd, req, &status, body, blen, &keep);
        if (rc == CORE_ERR_AGAIN && pooled) {
            close(fd); /* a stale keep-alive connection: retry on a fresh one */
            continue;
        }
        if (rc) {
            close(fd);
            return rc == CORE_ERR_AGAIN ? CORE_ERR_IO : rc;
        }
        if (keep)
            remote_give(r, fd);
        else
            close(fd);
        if (status != 200) {
            CORE_WARN("store", "remote: %s:%d answered %d: %.*s", r->host, r->port, status,
                      (int)(*blen > 200 ? 200 : *blen), (const char *)*body);
            free(*body);
            *body = NULL;
            return status == 401 ? CORE_ERR_AUTH : CORE_ERR_IO;
        }
        return CORE_OK;
    }
    return CORE_ERR_IO;
}

static void req_head(core_buf_t *b, int op)
{
    core_buf_init(b);
    core_wr_i8(b, STORE_REMOTE_VERSION);
    core_wr_i8(b, (int8_t)op);
}

/* The head of a request about one app's channel. */
static void req_head_channel(core_buf_t *b, int op, int32_t app, int32_t ch)
{
    req_head(b, op);
    core_wr_i32(b, app);
    core_wr_i32(b, ch);
}

/* Sends req (and finalises it), reads rc; on 0, *rd views the rest of body
 * (the caller frees *body). */
static int remote_rpc(store_t *s, core_buf_t *req, uint8_t **body, core_rd_t *rd)
{
    size_t blen = 0;
    *body = NULL;
    int rc = remote_call(s, req, body, &blen);
    core_buf_fini(req);
    if (rc)
        return rc;
    core_rd_init(rd, *body, blen);
    rc = core_rd_i32(rd);
    if (rd->err) {
        free(*body);
        *body = NULL;
        return CORE_ERR_IO;
    }
    return rc;
}

/* remote_rpc for a request whose answer is only rc. */
static int remote_rpc_rc(store_t *s, core_buf_t *req)
{
    uint8_t *body;
    core_rd_t rd;
    int rc = remote_rpc(s, req, &body, &rd);
    free(body);
    return rc;
}

/* A lookup answer's value as a NUL-terminated heap copy (the caller frees
 * it), or NULL when the answer is cut short. */
static void *rd_value_copy(core_rd_t *rd, size_t *len)
{
    core_slice_t v = core_rd_bytes(rd);
    if (rd->err)
        return NULL;
    char *c = core_xmalloc((size_t)v.len + 1);
    memcpy(c, v.ptr, (size_t)v.len);
    c[v.len] = '\0';
    *len = (size_t)v.len;
    return c;
}

static int r_commit(store_t *s, store_batch_t *b, store_put_result_t *results, char *errstr,
                    size_t errstr_size)
{
    core_buf_t req;
    req_head(&req, STORE_REMOTE_OP_COMMIT);
    core_wr_u32(&req, b->flags);
    core_wr_i32(&req, (int32_t)b->nev);
    for (size_t i = 0; i < b->nev; i++) {
        const store__staged_t *e = &b->ev[i];
        core_wr_i32(&req, e->app);
        core_wr_i32(&req, e->ch);
        wr_cstr(&req, e->id);
        core_wr_i64(&req, e->time_ms);
        core_wr_i8(&req, e->time_given);
        core_wr_i8(&req, (int8_t)e->op);
        wr_cstr(&req, e->etype);
        wr_cstr(&req, e->eid);
        wr_cstr(&req, e->ttype);
        wr_cstr(&req, e->tid);
        wr_cstr(&req, e->props);
        core_wr_bytes(&req, e->rec, (int64_t)e->rec_len);
        core_wr_i32(&req, e->prior);
    }
    core_wr_i32(&req, (int32_t)b->nkv);
    for (size_t i = 0; i < b->nkv; i++) {
        core_wr_bytes(&req, b->kv[i].key, (int64_t)b->kv[i].klen);
        core_wr_bytes(&req, b->kv[i].val, b->kv[i].val ? (int64_t)b->kv[i].vlen : -1);
    }
    uint8_t *body;
    core_rd_t rd;
    int rc = remote_rpc(s, &req, &body, &rd);
    if (!body)
        return core_errf(rc ? rc : CORE_ERR_IO, errstr, errstr_size,
                         "remote store: request failed: %s", core_strerror(rc));
    core_slice_t err = core_rd_bytes(&rd);
    if (err.len > 0 && errstr)
        snprintf(errstr, errstr_size, "%.*s", (int)err.len, (const char *)err.ptr);
    if (rc == 0 || rc == CORE_ERR_CONFLICT) {
        for (size_t i = 0; i < b->nev; i++) {
            char id[STORE_EVENT_ID_MAX + 1];
            if (!slice_id(core_rd_bytes(&rd), id))
                core_rd_fail(&rd, CORE_ERR_MALFORMED);
            int st = core_rd_i8(&rd);
            if (results && !rd.err) {
                memcpy(results[i].event_id, id, sizeof(id));
                results[i].status = (store_put_status_t)st;
            }
        }
        if (rd.err)
            rc = CORE_ERR_IO;
    }
    free(body);
    return rc;
}

static int r_get(store_t *s, int32_t app, int32_t ch, const char *id, uint8_t **rec,
                 size_t *len)
{
    core_buf_t req;
    req_head_channel(&req, STORE_REMOTE_OP_GET, app, ch);
    wr_cstr(&req, id);
    uint8_t *body;
    core_rd_t rd;
    int rc = remote_rpc(s, &req, &body, &rd);
    if (rc == 0 && !(*rec = rd_value_copy(&rd, len)))
        rc = CORE_ERR_IO;
    free(body);
    return rc;
}

static int r_del(store_t *s, int32_t app, int32_t ch, const char *id)
{
    core_buf_t req;
    req_head_channel(&req, STORE_REMOTE_OP_DEL, app, ch);
    wr_cstr(&req, id);
    return remote_rpc_rc(s, &req);
}

static int r_find(store_t *s, int32_t app, int32_t ch, const store_find_t *f, store_event_cb cb,
                  void *opaque, int64_t *count)
{
    core_buf_t req;
    req_head_channel(&req, STORE_REMOTE_OP_FIND, app, ch);
    core_wr_i64(&req, f->start_ms);
    core_wr_i64(&req, f->until_ms);
    wr_cstr(&req, f->entity_type);
    wr_cstr(&req, f->entity_id);
    int nev = f->events ? f->nevents : 0;
    core_wr_i32(&req, nev);
    for (int i = 0; i < nev; i++)
        wr_cstr(&req, f->events[i]);
    wr_cstr(&req, f->target_entity_type);
    wr_cstr(&req, f->target_entity_id);
    core_wr_i64(&req, f->limit);
    core_wr_i8(&req, f->reversed);
    uint8_t *body;
    core_rd_t rd;
    int rc = remote_rpc(s, &req, &body, &rd);
    int64_t delivered = 0;
    if (rc == 0) {
        int64_t n = core_rd_i64(&rd);
        for (int64_t i = 0; i < n && !rd.err; i++) {
            store_event_t ev;
            scratch_t sc = {0};
            rd_event(&rd, &ev, &sc);
            int stop = rd.err ? 0 : cb(&ev, opaque);
            if (!rd.err)
                delivered++;
            scratch_free(&sc);
            if (stop)
                break;
        }
        if (rd.err)
            rc = CORE_ERR_IO;
    }
    if (count)
        *count = delivered;
    free(body);
    return rc;
}

static int r_props_scan(store_t *s, int32_t app, int32_t ch, const char *etype, const char *eid,
                        store__propev_cb cb, void *opaque)
{
    core_buf_t req;
    req_head_channel(&req, STORE_REMOTE_OP_PROPS, app, ch);
    wr_cstr(&req, etype);
    wr_cstr(&req, eid);
    uint8_t *body;
    core_rd_t rd;
    int rc = remote_rpc(s, &req, &body, &rd);
    if (rc == 0) {
        int32_t n = core_rd_array(&rd, INT32_MAX, 25);
        for (int32_t i = 0; i < n && !rd.err; i++) {
            store__propev_t pe;
            core_slice_t e = core_rd_bytes(&rd);
            pe.time_ms = core_rd_i64(&rd);
            core_slice_t id = core_rd_bytes(&rd);
            pe.op = (uint8_t)core_rd_i8(&rd);
            core_slice_t p = core_rd_bytes(&rd);
            if (rd.err)
                break;
            pe.eid = (const char *)e.ptr;
            pe.eid_len = (size_t)e.len;
            pe.id = (const char *)id.ptr;
            pe.id_len = (size_t)id.len;
            pe.props = (const char *)p.ptr;
            pe.props_len = (size_t)p.len;
            if (cb(&pe, opaque))
                break;
        }
        if (rd.err)
            rc = CORE_ERR_IO;
    }
    free(body);
    return rc;
}

static int r_kv_get(store_t *s, const void *key, size_t klen, void **val, size_t *vlen)
{
    core_buf_t req;
    req_head(&req, STORE_REMOTE_OP_KV_GET);
    core_wr_bytes(&req, key, (int64_t)klen);
    uint8_t *body;
    core_rd_t rd;
    int rc = remote_rpc(s, &req, &body, &rd);
    if (rc == 0 && !(*val = rd_value_copy(&rd, vlen)))
        rc = CORE_ERR_IO;
    free(body);
    return rc;
}

static int r_kv_scan(store_t *s, const void *prefix, size_t plen, store_kv_cb cb, void *opaque)
{
    core_buf_t req;
    req_head(&req, STORE_REMOTE_OP_KV_SCAN);
    core_wr_bytes(&req, prefix, (int64_t)plen);
    uint8_t *body;
    core_rd_t rd;
    int rc = remote_rpc(s, &req, &body, &rd);
    if (rc == 0) {
        int32_t n = core_rd_array(&rd, INT32_MAX, 8);
        for (int32_t i = 0; i < n && !rd.err; i++) {
            core_slice_t k = core_rd_bytes(&rd), v = core_rd_bytes(&rd);
            if (rd.err)
                break;
            if (cb(k.ptr, (size_t)k.len, v.ptr, (size_t)v.len, opaque))
                break;
        }
        if (rd.err)
            rc = CORE_ERR_IO;
    }
    free(body);
    return rc;
}

static int r_data_delete(store_t *s, int32_t app, int32_t ch)
{
    core_buf_t req;
    req_head_channel(&req, STORE_REMOTE_OP_DATA_DEL, app, ch);
    return remote_rpc_rc(s, &req);
}

static void r_close(store_t *s)
{
    remote_t *r = s->impl;
    if (!r)
        return;
    for (int i = 0; i < r->npool; i++)
        close(r->pool[i]);
    pthread_mutex_destroy(&r->lock);
    free(r);
    s->impl = NULL;
}

static const store__engine_t remote_engine = {
    .name = "eddy",
    .close = r_close,
    .commit = r_commit,
    .get = r_get,
    .del = r_del,
    .find = r_find,
    .props_scan = r_props_scan,
    .kv_get = r_kv_get,
    .kv_scan = r_kv_scan,
    .data_delete = r_data_delete,
};

int store__remote_open(store_t *s, const char *host, int port, const char *token, char *errstr,
                       size_t errstr_size)
{
    if (!token || !*token || strlen(token) >= sizeof(((remote_t *)0)->token) ||
        strlen(host) >= sizeof(((remote_t *)0)->host))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "remote store %s:%d: missing or bad internal token", host, port);
    remote_t *r = core_xcalloc(1, sizeof(*r));
    snprintf(r->host, sizeof(r->host), "%s", host);
    r->port = port;
    snprintf(r->token, sizeof(r->token), "%s", token);
    pthread_mutex_init(&r->lock, NULL);
    s->impl = r;
    s->eng = &remote_engine;
    /* Check reachability and the token now, not at the first write. */
    void *v = NULL;
    size_t vl;
    int rc = r_kv_get(s, "store/", 6, &v, &vl);
    free(v);
    if (rc != 0 && rc != CORE_ERR_NOT_FOUND) {
        r_close(s);
        s->eng = NULL;
        return core_errf(rc, errstr, errstr_size, "remote store %s:%d: %s", host, port,
                         rc == CORE_ERR_AUTH ? "internal token refused" : core_strerror(rc));
    }
    return CORE_OK;
}
