/*
 * broker_net — the broker's network server: one libuv loop thread, a TCP
 * listener, many connections, Kafka framing, and the three kinds of waiting
 * (long-poll Fetch, acks=all group commit, held group requests).
 *
 * Per connection
 *   - Bytes are read into a per-connection buffer; broker_proto_frame checks
 *     the announced size against --max-request-bytes before anything is
 *     allocated for it. Each whole frame becomes a request (broker_req_t,
 *     owning its frame) in the connection's FIFO queue: small frames are
 *     copied out of the read buffer (many per read when pipelined), a frame
 *     over BROKER_NET_BIG_FRAME is read straight into its own allocation.
 *   - Requests run in arrival order. A request answered later only because
 *     of a flush (acks=all) does not stop the next ones from running; a
 *     long-poll Fetch (WAIT), a RETRY and a held group request (PENDING) do
 *     — Kafka handles one request per connection at a time, and that keeps
 *     the effects in request order. Responses always leave in request order.
 *     Other connections are never blocked.
 *   - Backpressure: reading stops while BROKER_NET_MAX_QUEUED requests (or
 *     BROKER_NET_MAX_QUEUED_BYTES of frames) wait on a connection.
 *   - Bad input (frame over the limit, negative/short size, unparsable
 *     header or body, unknown API key/version): one log line, the responses
 *     to earlier requests are still written, then that connection closes.
 *
 * Writing a response (zero copy for record bytes)
 *   A response is `out` bytes with segment-file ranges spliced in (Fetch).
 *   Memory parts go out with uv_try_write, the rest with uv_write. A file part
 *   is sent with sendfile(2) straight from the segment fd to the socket fd,
 *   which is only legal while libuv's write queue is empty (otherwise bytes
 *   would overtake queued ones) — the writer guarantees it by handling one
 *   part at a time and only continuing from the write callback. The socket is
 *   non-blocking, so sendfile sends what fits in the socket buffer; for the
 *   remainder (EAGAIN), or if sendfile is refused (EINVAL/ENOSYS), the writer
 *   preads at most BROKER_NET_FALLBACK_CHUNK bytes into a heap buffer and
 *   hands it to uv_write, then tries sendfile again once that chunk is
 *   written. libuv has no "wait until writable" for a stream it owns, so this
 *   chunked copy is how we wait; the counters at shutdown show the split.
 *
 * Group commit (acks=all): see broker.h. A uv_check handle runs after each
 * round of I/O callbacks: it re-runs waiting Fetches when something was
 * appended, and starts a flush job (uv_queue_work: broker_log_flush for each
 * dirty log on the threadpool) when acks=all batches are waiting and no job
 * runs. Every request covered by the finished job is answered; a partition
 * whose flush failed answers KAFKA_STORAGE_ERROR (the log stays failed).
 *
 * Shutdown (SIGTERM/SIGINT or broker_net_stop): stop accepting and reading,
 * answer long polls now, let the flush finish and the queued responses go
 * out (bounded by BROKER_NET_DRAIN_MS), close connections, return from
 * broker_net_run. The caller then closes the broker (which fsyncs the logs).
 *
 * Threads: everything runs on the loop thread except the flush work function.
 */
#ifndef EDDY_BROKER_NET_H
#define EDDY_BROKER_NET_H

#include <stddef.h>

#include "broker/broker.h"
#include "broker/broker_proto.h"

enum {
    BROKER_NET_MAX_QUEUED = 1024,              /* requests queued per connection before reading stops */
    BROKER_NET_MAX_QUEUED_BYTES = 64 << 20,    /* frame bytes queued per connection before reading stops */
    BROKER_NET_READ_CHUNK = 64 << 10,          /* free space offered to each read */
    BROKER_NET_BIG_FRAME = 64 << 10,           /* larger frames are read into their own buffer */
    BROKER_NET_FALLBACK_CHUNK = 256 << 10,     /* pread+uv_write chunk when sendfile cannot send */
    BROKER_NET_DRAIN_MS = 5000,                /* shutdown: longest wait for responses to drain */
};

typedef struct broker_net broker_net_t;

/* Binds b->conf.listen (port 0 picks a free port), updates the advertised
 * address when none was configured, logs the listen address. */
int broker_net_new(broker_t *b, broker_net_t **netp, char *errstr, size_t errstr_size);
/* Runs the loop until SIGTERM/SIGINT or broker_net_stop, then drains and
 * closes every connection. Returns 0 after a clean shutdown. */
int broker_net_run(broker_net_t *net);
/* Asks the loop to shut down (loop thread, e.g. from a component). */
void broker_net_stop(broker_net_t *net);
void broker_net_free(broker_net_t *net);
/* The bound port (useful with port 0). */
int broker_net_port(const broker_net_t *net);

/* For held requests (BROKER_PROTO_PENDING, group coordinator): the holder has
 * written the response into req->out (broker_proto_begin ... _finish) and
 * hands it back; it is sent when it reaches the head of its connection's
 * queue, and the connection's later requests then run. Loop thread only.
 * After this call the holder must forget req. */
void broker_req_complete(broker_req_t *req);

#endif
