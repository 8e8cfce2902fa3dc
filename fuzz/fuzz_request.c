/*
 * fuzz_request — arbitrary bytes as one Kafka request frame, through the
 * framing check, the header decoder and every handler, against a real broker
 * state (topic registry and partition logs) in a temp directory.
 *
 * Each input is prefixed with its size and framed like the network layer
 * does; the request then runs to completion the way broker_net would drive
 * it: a long poll is re-run with `final`, an acks=all answer runs the group
 * commit flush, a RETRY runs again after it. File parts of Fetch answers are
 * read back (pread) so a bad slice shows up. Must never crash or leak.
 *
 * The group coordinator is open too (no timers: a held JoinGroup/SyncGroup
 * is cancelled as when its connection closes).
 * The state is recreated every FUZZ_RESET_EVERY inputs so topics that
 * inputs auto-create do not pile up; topics get at most 4 partitions.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/broker_groups.h"
#include "broker/broker_proto.h"
#include "core/core_alloc.h"
#include "core/core_log.h"

#define FUZZ_RESET_EVERY 500
#define FUZZ_MAX_FRAME (4 << 20)

static struct {
    broker_t *b;
    char dir[64];
    unsigned runs;
} g;

static void state_drop(void)
{
    if (!g.b)
        return;
    broker_groups_close(g.b);
    broker_close(g.b);
    g.b = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g.dir);
    if (system(cmd) != 0)
        abort();
}

static void state_make(void)
{
    snprintf(g.dir, sizeof g.dir, "/tmp/eddy-fuzz-request-XXXXXX");
    if (!mkdtemp(g.dir))
        abort();
    broker_conf_t conf;
    broker_conf_default(&conf);
    conf.data_dir = g.dir;
    conf.listen = "127.0.0.1:9092";
    conf.num_partitions = 1;
    conf.max_partitions = 4;
    conf.segment_bytes = 64 << 10;
    char err[256];
    if (broker_open(&conf, &g.b, err, sizeof err)) {
        fprintf(stderr, "fuzz_request: broker_open: %s\n", err);
        abort();
    }
    /* the group coordinator too, as `eddy broker` opens it: the group APIs are
     * part of the request decoder's surface (a fuzz finding: they were not).
     * No timers/HTTP (no loop here): a held JoinGroup/SyncGroup is cancelled
     * below, as when its connection closes. */
    if (broker_groups_open(g.b, err, sizeof err)) {
        fprintf(stderr, "fuzz_request: broker_groups_open: %s\n", err);
        abort();
    }
    if (broker_topics_create(g.b->topics, "t", 2, NULL, NULL, 0, false, err, sizeof err))
        abort();
}

static void at_exit(void)
{
    state_drop();
}

static void flush_all(broker_t *b)
{
    broker_log_t **logs;
    int n;
    uint64_t gen = broker_dirty_take(b, &logs, &n);
    for (int i = 0; i < n; i++)
        (void)broker_log_flush(logs[i]);
    broker_flush_done(b, gen);
    free(logs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g.b) {
        core_log_set_level(CORE_LOG_ERROR);
        state_make();
        atexit(at_exit);
    } else if (++g.runs % FUZZ_RESET_EVERY == 0) {
        state_drop();
        state_make();
    }
    if (size > FUZZ_MAX_FRAME)
        return 0;
    uint8_t *wire = core_xmalloc(size + 4);
    core_put_be32(wire, (uint32_t)size);
    memcpy(wire + 4, data, size);
    size_t frame_len;
    int rc = broker_proto_frame(wire, size + 4, FUZZ_MAX_FRAME, &frame_len);
    if (rc) {
        free(wire);
        return 0;
    }
    uint8_t *frame = core_xmalloc(frame_len ? frame_len : 1);
    memcpy(frame, wire + 4, frame_len);
    free(wire);

    broker_req_t req;
    if (broker_req_init(&req, frame, frame_len)) {
        broker_req_fini(&req);
        return 0;
    }
    broker_t *b = g.b;
    broker_proto_res_t res = broker_proto_handle(b, &req);
    for (int round = 0; round < 3; round++) {
        if (res == BROKER_PROTO_WAIT) {
            req.final = true;
            broker_req_reset(&req);
            res = broker_proto_handle(b, &req);
        } else if (res == BROKER_PROTO_RETRY) {
            flush_all(b);
            res = broker_proto_handle(b, &req);
        } else if (res == BROKER_PROTO_FLUSH) {
            flush_all(b);
            for (int i = 0; i < req.nwaits; i++)
                if (broker_log_flushed(req.waits[i].log) <= req.waits[i].last_offset)
                    abort(); /* a flush must cover what was appended before it */
            b->acks_all_waiting--;
            res = BROKER_PROTO_DONE;
        }
    }
    if (res == BROKER_PROTO_PENDING) {
        /* As if the connection closed while the request was held. */
        if (!req.cancel)
            abort(); /* a PENDING request must be cancellable */
        req.cancel(&req, req.cancel_opaque);
    }
    if (res == BROKER_PROTO_DONE) {
        if ((int64_t)req.out.len < 8 || broker_req_out_size(&req) - 4 != (int64_t)core_be32(req.out.data))
            abort(); /* the size prefix must count every byte sent */
        for (int i = 0; i < req.nfiles; i++) {
            broker_log_slice_t *s = &req.files[i].slice;
            uint8_t *p = core_xmalloc((size_t)s->len);
            if (pread(s->fd, p, (size_t)s->len, s->file_pos) != s->len)
                abort();
            free(p);
        }
    }
    broker_req_fini(&req);
    b->nappended = 0;
    return 0;
}
