/*
 * rt_http — the runtime's HTTP calls (CLI -> driver, worker <-> driver) as
 * one function over core_httpc (libcurl): host/port + path + bearer token
 * in, status + NUL-terminated body out. Servers are core_http.
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
