#include "broker/broker_net.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>
#include <uv.h>

#include "core/core_alloc.h"
#include "core/core_conf.h"
#include "core/core_log.h"
#include "core/core_time.h"

typedef struct conn conn_t;

typedef enum {
    RQ_NEW = 0, /* not handled yet */
    RQ_WAIT,    /* long-poll Fetch (blocks later requests) */
    RQ_RETRY,   /* to run again after the flush (blocks later requests) */
    RQ_PENDING, /* held by the group coordinator (blocks later requests) */
    RQ_FLUSH,   /* answered once the flush generation completes */
    RQ_READY,   /* response complete: write when at the head */
} rq_state_t;

/* A request plus the network layer's bookkeeping. req is first so that a
 * broker_req_t * handed to a component converts back. */
typedef struct net_req {
    broker_req_t req;
    conn_t *conn;
    rq_state_t state;
    broker_proto_res_t res;
    struct net_req *next;              /* connection queue */
    struct net_req *wprev, *wnext;     /* net->waiting (WAIT/RETRY) or net->flushing (FLUSH) */
    bool linked;
    int64_t t_start_us;                /* first handling (monotonic), for /metrics latency */
} net_req_t;

typedef struct rq_list {
    net_req_t *head, *tail;
} rq_list_t;

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;          /* long-poll deadline of the head WAIT request */
    broker_net_t *net;
    conn_t *prev, *next;       /* net->conns */
    char peer[64];

    uint8_t *rbuf;             /* received bytes: [rpos, rlen) not yet framed */
    size_t rpos, rlen, rcap;
    uint8_t *big;              /* a large frame being read straight into its own buffer */
    size_t big_len, big_got;

    net_req_t *head, *tail;    /* FIFO of requests, oldest first */
    net_req_t *next_run;       /* first request not yet run */
    int nqueued;
    size_t queued_bytes;

    /* writer cursor over the head response */
    bool writing;              /* a uv_write is in flight */
    int wfile;                 /* next file part index */
    size_t wmem;               /* next byte of out to send */
    int64_t wfoff;             /* bytes of file part wfile already sent */
    uint8_t *wcopy;            /* fallback chunk being written (owned) */
    uv_write_t wreq;

    bool reading;
    bool no_more_input;        /* after a CLOSE request, EOF, or at shutdown */
    bool eof;                  /* the client half-closed: close once everything is answered */
    bool closing;              /* uv_close issued */
    int nclosing;              /* handles still to close */
};

struct broker_net {
    broker_t *b;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_check_t check;
    uv_timer_t housekeep;
    uv_timer_t drain;
    uv_signal_t sigterm, sigint;
    int port;
    conn_t *conns;
    int64_t nconns;
    rq_list_t waiting;         /* WAIT and RETRY requests */
    rq_list_t flushing;        /* FLUSH requests */
    bool flush_inflight;
    bool stopping;
    bool listening;
    /* counters (logged at shutdown) */
    uint64_t bytes_sendfile, bytes_fallback, nrequests, nconns_total;
};

typedef struct flush_job {
    uv_work_t work;
    broker_net_t *net;
    broker_log_t **logs;
    int nlogs;
    int *rc;
    uint64_t gen;
} flush_job_t;

static void conn_run(conn_t *c);
static void conn_write(conn_t *c);
static void conn_close(conn_t *c, const char *why);
static void net_maybe_finish(broker_net_t *net);
static void flush_start(broker_net_t *net);

/* ---- lists ------------------------------------------------------------------ */
static void rq_link(rq_list_t *l, net_req_t *r)
{
    r->wnext = NULL;
    r->wprev = l->tail;
    if (l->tail)
        l->tail->wnext = r;
    else
        l->head = r;
    l->tail = r;
    r->linked = true;
}

static void rq_unlink(rq_list_t *l, net_req_t *r)
{
    if (!r->linked)
        return;
    if (r->wprev)
        r->wprev->wnext = r->wnext;
    else
        l->head = r->wnext;
    if (r->wnext)
        r->wnext->wprev = r->wprev;
    else
        l->tail = r->wprev;
    r->wprev = r->wnext = NULL;
    r->linked = false;
}

static const char *res_name(broker_proto_res_t r)
{
    static const char *names[] = {"done", "none", "flush", "wait", "retry", "pending", "close"};
    return (unsigned)r < sizeof names / sizeof *names ? names[r] : "?";
}

/* ---- requests ----------------------------------------------------------------- */
static void req_free(broker_net_t *net, net_req_t *r)
{
    if (r->state == RQ_FLUSH) {
        rq_unlink(&net->flushing, r);
        net->b->acks_all_waiting--;
    } else if (r->state == RQ_WAIT || r->state == RQ_RETRY) {
        rq_unlink(&net->waiting, r);
    } else if (r->state == RQ_PENDING && r->req.cancel) {
        r->req.cancel(&r->req, r->req.cancel_opaque);
    }
    broker_req_fini(&r->req);
    free(r);
}

/* Runs (or re-runs) one request and files it by its result. */
static void req_run(broker_net_t *net, net_req_t *r)
{
    conn_t *c = r->conn;
    r->req.now_ms = (int64_t)uv_now(&net->loop);
    if (!r->t_start_us)
        r->t_start_us = core_mono_us();
    if (net->stopping)
        r->req.final = true; /* shutdown: answer long polls now */
    broker_proto_res_t res = broker_proto_handle(net->b, &r->req);
    r->res = res;
    net->nrequests++;
    CORE_DEBUG("broker", "%s: %s v%d corr %d -> %s", c->peer,
               broker_proto_api_name(r->req.hdr.api_key), r->req.hdr.api_version, r->req.hdr.corr_id,
               res_name(res));
    switch (res) {
    case BROKER_PROTO_DONE:
    case BROKER_PROTO_NONE:
        r->state = RQ_READY;
        break;
    case BROKER_PROTO_CLOSE:
        r->state = RQ_READY;
        c->no_more_input = true;
        break;
    case BROKER_PROTO_FLUSH:
        r->state = RQ_FLUSH;
        rq_link(&net->flushing, r);
        break;
    case BROKER_PROTO_WAIT: /* the caller arms the connection's deadline timer */
        r->state = RQ_WAIT;
        rq_link(&net->waiting, r);
        break;
    case BROKER_PROTO_RETRY:
        r->state = RQ_RETRY;
        rq_link(&net->waiting, r);
        break;
    case BROKER_PROTO_PENDING:
        r->state = RQ_PENDING;
        break;
    }
}

static void on_deadline(uv_timer_t *t);

static void req_arm_deadline(conn_t *c, net_req_t *r)
{
    int64_t delay = r->req.deadline_ms - (int64_t)uv_now(&c->net->loop);
    uv_timer_start(&c->timer, on_deadline, delay > 0 ? (uint64_t)delay : 0, 0);
}

/* Leaves a waiting list and runs again. */
static void req_rerun(broker_net_t *net, net_req_t *r);

/* Re-runs every waiting request in `state` once (with only_appended: only
 * long polls reading a log that grew this round). A request that has to wait
 * again is re-linked at the tail, so the walk stops at the tail it started
 * with; walking on would revisit re-linked requests forever (two long polls
 * re-linking behind each other spun the loop at 100% CPU). */
static bool req_watches(const net_req_t *r, const broker_t *b);

static void waiting_rerun(broker_net_t *net, rq_state_t state, bool only_appended)
{
    net_req_t *r = net->waiting.head, *last = net->waiting.tail;
    while (r) {
        net_req_t *next = r->wnext;
        bool was_last = r == last;
        if (r->state == state && (!only_appended || req_watches(r, net->b)))
            req_rerun(net, r);
        if (was_last)
            break;
        r = next;
    }
}

static void req_rerun(broker_net_t *net, net_req_t *r)
{
    rq_unlink(&net->waiting, r);
    broker_req_reset(&r->req);
    req_run(net, r);
    conn_t *c = r->conn;
    if (r->state == RQ_WAIT)
        req_arm_deadline(c, r);
    else
        uv_timer_stop(&c->timer);
    conn_run(c);
}

static void on_deadline(uv_timer_t *t)
{
    conn_t *c = t->data;
    net_req_t *r = c->next_run; /* a WAIT request blocks its connection at next_run */
    if (!r || r->state != RQ_WAIT)
        return;
    r->req.final = true;
    req_rerun(c->net, r);
}

void broker_req_complete(broker_req_t *req)
{
    net_req_t *r = (net_req_t *)req;
    r->state = RQ_READY;
    r->res = BROKER_PROTO_DONE;
    conn_run(r->conn);
}

/* ---- connection: reading ---------------------------------------------------------- */
static void conn_read_start(conn_t *c);
static void conn_read_stop(conn_t *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    if (c->big) {
        /* The rest of a large frame goes straight into the request's buffer. */
        buf->base = (char *)c->big + c->big_got;
        buf->len = c->big_len - c->big_got;
        return;
    }
    /* Compact: keep the unframed tail at the start of the buffer. */
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    size_t need = BROKER_NET_READ_CHUNK;
    size_t frame_len = 0;
    /* Grow to the whole announced frame only after the size check passed. */
    if (broker_proto_frame(c->rbuf, c->rlen, c->net->b->conf.max_request_bytes, &frame_len) ==
            CORE_ERR_AGAIN &&
        frame_len + 4 > c->rlen && frame_len + 4 - c->rlen > need)
        need = frame_len + 4 - c->rlen;
    if (c->rcap - c->rlen < need) {
        uint8_t *p = core_tryrealloc(c->rbuf, c->rlen + need);
        if (!p) {
            buf->base = NULL;
            buf->len = 0; /* libuv reports UV_ENOBUFS */
            return;
        }
        c->rbuf = p;
        c->rcap = c->rlen + need;
    }
    buf->base = (char *)c->rbuf + c->rlen;
    buf->len = c->rcap - c->rlen;
}

/* Appends r to the connection's queue of requests (answered in this order);
 * it runs after the requests queued before it. */
static void conn_queue_push(conn_t *c, net_req_t *r)
{
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    if (!c->next_run)
        c->next_run = r;
    c->nqueued++;
}

/* Input that cannot be framed: log one line, read no more, and queue a
 * marker so the connection closes after the earlier responses are written. */
static void conn_fail_input(conn_t *c, const char *why)
{
    CORE_WARN("broker", "connection %s: %s; closing after earlier responses", c->peer, why);
    c->no_more_input = true;
    conn_read_stop(c);
    net_req_t *r = core_xcalloc(1, sizeof *r);
    r->conn = c;
    core_buf_init(&r->req.out);
    r->state = RQ_READY;
    r->res = BROKER_PROTO_CLOSE;
    conn_queue_push(c, r);
}

/* Queues a request for a whole frame (ownership of frame taken). Returns
 * false when the connection failed instead. */
static bool conn_enqueue(conn_t *c, uint8_t *frame, size_t frame_len)
{
    net_req_t *r = core_xcalloc(1, sizeof *r);
    r->conn = c;
    if (broker_req_init(&r->req, frame, frame_len)) {
        broker_req_fini(&r->req);
        free(r);
        conn_fail_input(c, "unparsable request header");
        return false;
    }
    r->req.peer = c->peer; /* after init, which clears the request */
    conn_queue_push(c, r);
    c->queued_bytes += frame_len;
    return true;
}

/* Cuts every whole frame out of the read buffer into a request. A frame
 * larger than BROKER_NET_BIG_FRAME that is not all here yet gets its own
 * buffer, which the following reads fill directly: a 1 MiB Produce is then
 * copied by nobody, and the shared read buffer never grows past ~2 chunks. */
static void conn_frame(conn_t *c)
{
    broker_net_t *net = c->net;
    while (!c->no_more_input && !c->big) {
        if (c->nqueued >= BROKER_NET_MAX_QUEUED || c->queued_bytes >= BROKER_NET_MAX_QUEUED_BYTES) {
            conn_read_stop(c);
            return;
        }
        size_t frame_len;
        int rc = broker_proto_frame(c->rbuf + c->rpos, c->rlen - c->rpos,
                                    net->b->conf.max_request_bytes, &frame_len);
        if (rc == CORE_ERR_AGAIN) {
            if (frame_len > BROKER_NET_BIG_FRAME) {
                size_t have = c->rlen - c->rpos - 4;
                c->big = core_trymalloc(frame_len); /* frame_len passed the size limit */
                if (!c->big) {
                    conn_close(c, "out of memory for a request");
                    return;
                }
                memcpy(c->big, c->rbuf + c->rpos + 4, have);
                c->big_len = frame_len;
                c->big_got = have;
                c->rpos = c->rlen = 0;
            }
            break;
        }
        if (rc) {
            char why[128];
            snprintf(why, sizeof why, "%s frame size %d (limit %lld)",
                     rc == CORE_ERR_TOO_LARGE ? "oversized" : "invalid",
                     (int32_t)core_be32(c->rbuf + c->rpos), (long long)net->b->conf.max_request_bytes);
            conn_fail_input(c, why);
            return;
        }
        uint8_t *frame = core_trymalloc(frame_len);
        if (!frame) {
            conn_close(c, "out of memory for a request");
            return;
        }
        memcpy(frame, c->rbuf + c->rpos + 4, frame_len);
        c->rpos += 4 + frame_len;
        if (!conn_enqueue(c, frame, frame_len))
            return;
    }
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (nread < 0) {
        if (nread == UV_EOF) {
            /* Half-close: answer what was received (tools like nc do this). */
            c->eof = c->no_more_input = true;
            conn_read_stop(c);
            conn_write(c);
        } else {
            conn_close(c, uv_strerror((int)nread));
        }
        return;
    }
    if (c->big) {
        c->big_got += (size_t)nread;
        if (c->big_got < c->big_len)
            return;
        uint8_t *frame = c->big;
        c->big = NULL;
        if (!conn_enqueue(c, frame, c->big_len))
            return;
    } else {
        c->rlen += (size_t)nread;
    }
    conn_frame(c);
    if (!c->closing)
        conn_run(c);
}

static void conn_read_start(conn_t *c)
{
    if (!c->reading && !c->no_more_input && !c->closing) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
    }
}

/* Runs queued requests in order until one blocks, then writes what is ready. */
static void conn_run(conn_t *c)
{
    broker_net_t *net = c->net;
    while (!c->closing && c->next_run) {
        net_req_t *r = c->next_run;
        if (r->state == RQ_NEW) {
            req_run(net, r);
            if (r->state == RQ_WAIT)
                req_arm_deadline(c, r);
        }
        if (r->state == RQ_WAIT || r->state == RQ_RETRY || r->state == RQ_PENDING)
            break;
        c->next_run = r->next;
        if (r->res == BROKER_PROTO_CLOSE) {
            /* Nothing after an unparsable request can be trusted. */
            c->next_run = NULL;
            conn_read_stop(c);
            break;
        }
    }
    if (!c->closing)
        conn_write(c);
}

/* ---- connection: writing ------------------------------------------------------------ */
static void on_write(uv_write_t *w, int status)
{
    conn_t *c = w->data;
    c->writing = false;
    free(c->wcopy);
    c->wcopy = NULL;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    conn_write(c);
}

static void write_async(conn_t *c, const uint8_t *p, size_t n)
{
    uv_buf_t buf = uv_buf_init((char *)p, (unsigned)n);
    c->writing = true;
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc) {
        c->writing = false;
        conn_close(c, uv_strerror(rc));
    }
}

/* Sends file part f from wfoff on. Returns 1 when the part is done, 0 when a
 * write is in flight (continue in on_write), -1 when the connection closed. */
static int write_file_part(conn_t *c, const broker_proto_file_t *f)
{
    broker_net_t *net = c->net;
    uv_os_fd_t sock;
    uv_fileno((uv_handle_t *)&c->tcp, &sock);
    bool try_sendfile = true;
    while (c->wfoff < f->slice.len) {
        int64_t remain = f->slice.len - c->wfoff;
        if (try_sendfile) {
            off_t off = (off_t)(f->slice.file_pos + c->wfoff);
            ssize_t n = sendfile(sock, f->slice.fd, &off, (size_t)remain);
            if (n > 0) {
                c->wfoff += n;
                net->bytes_sendfile += (uint64_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
                conn_close(c, strerror(errno));
                return -1;
            }
            if (n == 0) {
                conn_close(c, "segment file shorter than its index says");
                return -1;
            }
            /* EAGAIN (socket buffer full), or sendfile refused: copy a chunk. */
            try_sendfile = false;
        }
        size_t chunk = remain > BROKER_NET_FALLBACK_CHUNK ? BROKER_NET_FALLBACK_CHUNK : (size_t)remain;
        uint8_t *p = core_trymalloc(chunk);
        if (!p) {
            conn_close(c, "out of memory for a fetch response");
            return -1;
        }
        size_t got = 0;
        while (got < chunk) {
            ssize_t n = pread(f->slice.fd, p + got, chunk - got,
                              (off_t)(f->slice.file_pos + c->wfoff + (int64_t)got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                free(p);
                CORE_ERROR("broker", "reading segment for a fetch failed: %s",
                           n < 0 ? strerror(errno) : "unexpected end of file");
                conn_close(c, "segment read failed");
                return -1;
            }
            got += (size_t)n;
        }
        c->wfoff += (int64_t)chunk;
        net->bytes_fallback += chunk;
        c->wcopy = p;
        write_async(c, p, chunk);
        return c->closing ? -1 : 0;
    }
    return 1;
}

/* Writes READY responses at the head, strictly in order. */
static void conn_write(conn_t *c)
{
    broker_net_t *net = c->net;
    while (!c->writing && !c->closing && c->head && c->head->state == RQ_READY &&
           c->head != c->next_run) {
        net_req_t *r = c->head;
        broker_req_t *q = &r->req;
        if (r->res == BROKER_PROTO_CLOSE) {
            conn_close(c, NULL); /* the reason was logged when it was handled */
            return;
        }
        if (r->res != BROKER_PROTO_NONE) {
            for (;;) {
                size_t mem_end = c->wfile < q->nfiles ? q->files[c->wfile].at : q->out.len;
                if (c->wmem < mem_end) {
                    uv_buf_t buf = uv_buf_init((char *)q->out.data + c->wmem, (unsigned)(mem_end - c->wmem));
                    int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
                    if (n > 0)
                        c->wmem += (size_t)n;
                    else if (n != UV_EAGAIN) {
                        conn_close(c, uv_strerror(n));
                        return;
                    }
                    if (c->wmem < mem_end) {
                        size_t from = c->wmem;
                        c->wmem = mem_end;
                        write_async(c, q->out.data + from, mem_end - from);
                        return;
                    }
                }
                if (c->wfile == q->nfiles)
                    break;
                int rc = write_file_part(c, &q->files[c->wfile]);
                if (rc < 0)
                    return;
                if (rc == 0) {
                    if (c->wfoff == q->files[c->wfile].slice.len) {
                        c->wfile++;
                        c->wfoff = 0;
                    }
                    return;
                }
                c->wfile++;
                c->wfoff = 0;
            }
        }
        /* The head response is fully handed to the kernel / libuv. */
        if (r->t_start_us && q->hdr.api_key >= 0 && q->hdr.api_key <= BROKER_API_MAX)
            broker_api_stats_add(&net->b->api_stats[q->hdr.api_key], core_mono_us() - r->t_start_us);
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        c->nqueued--;
        c->queued_bytes -= r->req.frame_len;
        c->wmem = 0;
        c->wfile = 0;
        c->wfoff = 0;
        r->state = RQ_NEW; /* nothing to unlink */
        req_free(net, r);
    }
    if (c->closing)
        return;
    if (net->stopping || c->eof) {
        if (!c->head && !c->writing)
            conn_close(c, NULL);
        return;
    }
    /* Backpressure released: read and frame again. */
    if (!c->reading && !c->no_more_input && c->nqueued < BROKER_NET_MAX_QUEUED / 2 &&
        c->queued_bytes < BROKER_NET_MAX_QUEUED_BYTES / 2) {
        conn_read_start(c);
        if (c->rlen > c->rpos) {
            size_t before = (size_t)c->nqueued;
            conn_frame(c);
            if (!c->closing && (size_t)c->nqueued != before)
                conn_run(c);
        }
    }
}

/* ---- connection: lifecycle --------------------------------------------------------- */
static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->nclosing > 0)
        return;
    broker_net_t *net = c->net;
    net_req_t *r = c->head;
    while (r) {
        net_req_t *next = r->next;
        req_free(net, r);
        r = next;
    }
    free(c->wcopy);
    free(c->rbuf);
    free(c->big);
    free(c);
    net_maybe_finish(net);
}

static void conn_close(conn_t *c, const char *why)
{
    if (c->closing)
        return;
    broker_net_t *net = c->net;
    if (why)
        CORE_WARN("broker", "connection %s closed: %s", c->peer, why);
    else
        CORE_DEBUG("broker", "connection %s closed", c->peer);
    c->closing = true;
    c->reading = false;
    /* Requests stay owned by the connection until both handles closed; take
     * the waiting ones off the broker-wide lists now so nothing re-runs them. */
    for (net_req_t *r = c->head; r; r = r->next) {
        if (r->state == RQ_WAIT || r->state == RQ_RETRY)
            rq_unlink(&net->waiting, r);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        net->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    net->nconns--;
    c->nclosing = 2;
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    broker_net_t *net = server->data;
    if (status < 0) {
        CORE_WARN("broker", "accept failed: %s", uv_strerror(status));
        return;
    }
    conn_t *c = core_xcalloc(1, sizeof *c);
    c->net = net;
    uv_tcp_init(&net->loop, &c->tcp);
    uv_timer_init(&net->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
        c->nclosing = 2;
        c->closing = true;
        uv_close((uv_handle_t *)&c->timer, on_conn_closed);
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[48] = "";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    }
    c->next = net->conns;
    if (net->conns)
        net->conns->prev = c;
    net->conns = c;
    net->nconns++;
    net->nconns_total++;
    if (net->nconns > net->b->conf.max_connections) {
        conn_close(c, "too many connections");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    CORE_DEBUG("broker", "connection from %s", c->peer);
    conn_read_start(c);
}

/* ---- group commit ------------------------------------------------------------------ */
static void flush_work(uv_work_t *w)
{
    flush_job_t *job = w->data;
    for (int i = 0; i < job->nlogs; i++)
        job->rc[i] = broker_log_flush(job->logs[i]);
}

static void flush_after(uv_work_t *w, int status)
{
    flush_job_t *job = w->data;
    broker_net_t *net = job->net;
    broker_t *b = net->b;
    for (int i = 0; i < job->nlogs; i++)
        if (job->rc[i])
            CORE_ERROR("broker", "fsync of a partition log failed: %s (acks=all batches get "
                       "KAFKA_STORAGE_ERROR)", core_strerror(job->rc[i]));
    uint64_t gen = job->gen;
    net->flush_inflight = false;

    net_req_t *r = net->flushing.head;
    while (r) {
        net_req_t *next = r->wnext;
        if (r->req.flush_gen <= gen) {
            for (int i = 0; i < r->req.nwaits; i++) {
                broker_proto_flushwait_t *fw = &r->req.waits[i];
                if (broker_log_flushed(fw->log) <= fw->last_offset) {
                    uint8_t *e = r->req.out.data + fw->err_pos;
                    e[0] = 0;
                    e[1] = BROKER_KERR_KAFKA_STORAGE_ERROR;
                }
            }
            rq_unlink(&net->flushing, r);
            b->acks_all_waiting--;
            r->state = RQ_READY;
            conn_run(r->conn);
        }
        r = next;
    }
    /* Every waiter of this job is answered: its logs may go now. */
    broker_flush_done(b, gen);
    free(job->logs);
    free(job->rc);
    free(job);
    /* Requests that could not run during the flush (DeleteTopics). */
    waiting_rerun(net, RQ_RETRY, false);
    if (b->ndirty > 0)
        flush_start(net);
    net_maybe_finish(net);
}

static void flush_start(broker_net_t *net)
{
    if (net->flush_inflight || net->b->ndirty == 0)
        return;
    flush_job_t *job = core_xcalloc(1, sizeof *job);
    job->net = net;
    job->gen = broker_dirty_take(net->b, &job->logs, &job->nlogs);
    job->rc = core_xcalloc((size_t)job->nlogs, sizeof *job->rc);
    job->work.data = job;
    net->flush_inflight = true;
    int rc = uv_queue_work(&net->loop, &job->work, flush_work, flush_after);
    if (rc) {
        /* Cannot happen with a live loop; flush inline rather than lose acks. */
        flush_work(&job->work);
        flush_after(&job->work, 0);
    }
}

/* True when a log the waiting Fetch reads grew in this round. */
static bool req_watches(const net_req_t *r, const broker_t *b)
{
    for (int i = 0; i < r->req.nwatch; i++)
        for (int j = 0; j < b->nappended; j++)
            if (r->req.watch[i] == b->appended[j])
                return true;
    return false;
}

/* After every round of I/O: wake long polls if data arrived, start a flush. */
static void on_check(uv_check_t *h)
{
    broker_net_t *net = h->data;
    broker_t *b = net->b;
    if (b->nappended > 0) {
        waiting_rerun(net, RQ_WAIT, true);
        b->nappended = 0;
    }
    flush_start(net);
}

/* ---- housekeeping and shutdown ------------------------------------------------------- */
/* Partitions written only with acks=0/1 are never put in the dirty set by a
 * produce, so their recovery point would not move until shutdown. Each
 * housekeeping round hands those with unsynced bytes to the same flush job
 * acks=all uses (off the loop thread), bounding what a crash can cut. */
static void housekeep_flush_idle(broker_net_t *net)
{
    broker_topics_t *t = net->b->topics;
    for (int i = 0; i < broker_topics_count(t); i++) {
        broker_topic_t *topic = broker_topics_at(t, i);
        for (int p = 0; p < topic->npartitions; p++)
            if (broker_log_needs_flush(topic->partitions[p]))
                broker_dirty_add(net->b, topic->partitions[p]);
    }
    flush_start(net);
}

static void on_housekeep(uv_timer_t *t)
{
    broker_net_t *net = t->data;
    if (net->flush_inflight)
        return; /* retention must not delete a segment the flush job holds */
    broker_topics_housekeep(net->b->topics, core_wall_ms());
    housekeep_flush_idle(net);
}

static void net_maybe_finish(broker_net_t *net)
{
    if (net->stopping && net->nconns == 0 && !net->flush_inflight)
        uv_stop(&net->loop);
}

static void on_drain_timeout(uv_timer_t *t)
{
    broker_net_t *net = t->data;
    CORE_WARN("broker", "shutdown: %lld connection(s) did not drain in %d ms, closing them",
              (long long)net->nconns, BROKER_NET_DRAIN_MS);
    while (net->conns)
        conn_close(net->conns, NULL);
    net_maybe_finish(net);
}

void broker_net_stop(broker_net_t *net)
{
    if (net->stopping)
        return;
    net->stopping = true;
    if (net->listening) {
        uv_close((uv_handle_t *)&net->listener, NULL);
        net->listening = false;
    }
    /* Answer long polls now; stop reading; close idle connections. */
    conn_t *c = net->conns;
    while (c) {
        conn_t *next = c->next;
        c->no_more_input = true;
        conn_read_stop(c);
        c = next;
    }
    net_req_t *r = net->waiting.head;
    while (r) {
        net_req_t *next = r->wnext;
        if (r->state == RQ_WAIT) {
            r->req.final = true;
            req_rerun(net, r);
        }
        r = next;
    }
    c = net->conns;
    while (c) {
        conn_t *next = c->next;
        if (!c->head && !c->writing)
            conn_close(c, NULL);
        else
            conn_write(c);
        c = next;
    }
    uv_timer_start(&net->drain, on_drain_timeout, BROKER_NET_DRAIN_MS, 0);
    flush_start(net);
    net_maybe_finish(net);
}

static void on_signal(uv_signal_t *s, int signum)
{
    broker_net_t *net = s->data;
    CORE_INFO("broker", "received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    broker_net_stop(net);
}

int broker_net_new(broker_t *b, broker_net_t **netp, char *errstr, size_t errstr_size)
{
    char host[256];
    int port;
    if (core_parse_hostport(b->conf.listen, host, sizeof host, &port))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "--listen: expected HOST:PORT, got '%s'",
                         b->conf.listen ? b->conf.listen : "");
    broker_net_t *net = core_xcalloc(1, sizeof *net);
    net->b = b;
    int rc = uv_loop_init(&net->loop);
    if (rc) {
        free(net);
        return core_errf(CORE_ERR_IO, errstr, errstr_size, "uv_loop_init: %s", uv_strerror(rc));
    }
    struct sockaddr_storage addr;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)) {
        /* A host name (e.g. localhost): resolve once, synchronously (no callback). */
        uv_getaddrinfo_t gai;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        rc = uv_getaddrinfo(&net->loop, &gai, NULL, host, NULL, &hints);
        if (rc || !gai.addrinfo) {
            uv_loop_close(&net->loop);
            free(net);
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "--listen: cannot resolve '%s': %s",
                             host, rc ? uv_strerror(rc) : "no address");
        }
        memcpy(&addr, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen);
        uv_freeaddrinfo(gai.addrinfo);
        if (addr.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)port);
    }
    uv_tcp_init(&net->loop, &net->listener);
    net->listener.data = net;
    rc = uv_tcp_bind(&net->listener, (struct sockaddr *)&addr, 0);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&net->listener, 1024, on_connection);
    if (rc) {
        uv_close((uv_handle_t *)&net->listener, NULL);
        uv_run(&net->loop, UV_RUN_DEFAULT);
        uv_loop_close(&net->loop);
        free(net);
        return core_errf(CORE_ERR_IO, errstr, errstr_size, "cannot listen on %s: %s", b->conf.listen,
                         uv_strerror(rc));
    }
    net->listening = true;
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&net->listener, (struct sockaddr *)&bound, &blen);
    net->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                             : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (!b->conf.advertised)
        broker_set_advertised(b, host, net->port);

    uv_check_init(&net->loop, &net->check);
    net->check.data = net;
    uv_check_start(&net->check, on_check);
    uv_timer_init(&net->loop, &net->housekeep);
    net->housekeep.data = net;
    if (b->conf.housekeeping_ms > 0)
        uv_timer_start(&net->housekeep, on_housekeep, (uint64_t)b->conf.housekeeping_ms,
                       (uint64_t)b->conf.housekeeping_ms);
    uv_timer_init(&net->loop, &net->drain);
    net->drain.data = net;
    uv_signal_init(&net->loop, &net->sigterm);
    uv_signal_init(&net->loop, &net->sigint);
    net->sigterm.data = net->sigint.data = net;
    uv_signal_start(&net->sigterm, on_signal, SIGTERM);
    uv_signal_start(&net->sigint, on_signal, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    b->loop = &net->loop;
    CORE_INFO("broker", "listening on %s:%d (advertised %s:%d)", host, net->port, b->host, b->port);
    *netp = net;
    return CORE_OK;
}

int broker_net_port(const broker_net_t *net)
{
    return net->port;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int broker_net_run(broker_net_t *net)
{
    uv_run(&net->loop, UV_RUN_DEFAULT);
    /* Stopped: close the remaining handles (timers, check, signals). */
    uv_walk(&net->loop, close_walk, NULL);
    uv_run(&net->loop, UV_RUN_DEFAULT);
    CORE_INFO("broker", "network stopped: %llu connections served, %llu requests, fetch bytes "
              "%llu via sendfile, %llu via copy",
              (unsigned long long)net->nconns_total, (unsigned long long)net->nrequests,
              (unsigned long long)net->bytes_sendfile, (unsigned long long)net->bytes_fallback);
    return 0;
}

void broker_net_free(broker_net_t *net)
{
    if (!net)
        return;
    uv_walk(&net->loop, close_walk, NULL);
    uv_run(&net->loop, UV_RUN_DEFAULT);
    uv_loop_close(&net->loop);
    net->b->loop = NULL;
    free(net);
}
