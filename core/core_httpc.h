/*
 * core_httpc — the one HTTP *client* helper, on libcurl (Debian), for the
 * CLI commands that talk to Eddy's HTTP roles (registry, driver, broker lag
 * port, event server) and for roles that call each other.
 *
 * One call = one request with a whole body in and a whole body out. The
 * response body is collected up to max_response bytes (0 = 64 MiB); beyond
 * that the call fails with CORE_ERR_TOO_LARGE rather than grow without bound.
 *
 * Ownership: the caller owns req (borrowed during the call) and resp (init
 * with core_httpc_resp_init, release with core_httpc_resp_fini).
 * Threads: any thread; each call uses its own curl handle.
 */
#ifndef EDDY_CORE_HTTPC_H
#define EDDY_CORE_HTTPC_H

#include <stddef.h>

#include "core/core_buf.h"

typedef struct core_httpc_req {
    const char *method;       /* "GET", "POST", "PUT", "DELETE" */
    const char *url;          /* "http://127.0.0.1:8081/subjects" */
    const char *content_type; /* NULL = none */
    const void *body;         /* NULL with body_len 0 = no body */
    size_t body_len;
    const char *const *headers; /* NULL-terminated "Name: value" list, or NULL */
    long timeout_ms;          /* 0 = 30 s */
    size_t max_response;      /* 0 = 64 MiB */
} core_httpc_req_t;

typedef struct core_httpc_resp {
    long status;              /* HTTP status, 0 when no response arrived */
    core_buf_t body;          /* the response body (not NUL-terminated; see core_httpc_text) */
} core_httpc_resp_t;

void core_httpc_resp_init(core_httpc_resp_t *resp);
void core_httpc_resp_fini(core_httpc_resp_t *resp);
/* The body as a NUL-terminated string (adds the NUL once). */
const char *core_httpc_text(core_httpc_resp_t *resp);

/* Performs the request. Returns 0 when an HTTP response arrived (any status;
 * check resp->status), else CORE_ERR_IO / CORE_ERR_TIMEOUT / CORE_ERR_TOO_LARGE
 * with a message ("connection refused to 127.0.0.1:8081"). */
int core_httpc_do(const core_httpc_req_t *req, core_httpc_resp_t *resp, char *errstr,
                  size_t errstr_size);

#endif
