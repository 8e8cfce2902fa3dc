/*
 * rt_http — a minimal blocking HTTP/1.1 client for the runtime's own
 * endpoints (CLI -> driver, worker <-> driver). Servers are core_http.
 *
 * One request per connection ("Connection: close"): the runtime's requests
 * are few and small per batch (a task, a result), so connection reuse is not
 * worth a pool. The response must carry Content-Length or end at close;
 * chunked responses are not accepted (core_http never sends them). Bodies
 * are capped by max_resp (a misbehaving peer cannot exhaust memory).
 *
 * Threads: every call is independent; safe from any thread.
 */
#ifndef EDDY_RT_HTTP_H
#define EDDY_RT_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_http_resp {
    int status;
    char *body; /* NUL-terminated, malloc'd; caller frees */
    size_t len;
} rt_http_resp_t;

/* Sends METHOD path to host:port with an optional bearer token and body.
 * Returns 0 with *resp filled (any status), or an errno/CORE_ERR_* value when
 * no complete response arrived within timeout_ms (message in errstr). */
int rt_http_request(const char *host, int port, const char *method, const char *path,
                    const char *token, const char *content_type, const void *body, size_t len,
                    int64_t timeout_ms, size_t max_resp, rt_http_resp_t *resp, char *errstr,
                    size_t errstr_size);

/* Same, with "HOST:PORT" as the address. */
int rt_http_request_addr(const char *addr, const char *method, const char *path,
                         const char *token, const char *content_type, const void *body,
                         size_t len, int64_t timeout_ms, size_t max_resp, rt_http_resp_t *resp,
                         char *errstr, size_t errstr_size);

void rt_http_resp_fini(rt_http_resp_t *resp);

/* Percent-encodes s into out (for query values). Returns out. */
char *rt_http_urlencode(const char *s, char *out, size_t out_size);

#endif
