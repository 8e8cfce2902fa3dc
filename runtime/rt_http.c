#include "runtime/rt_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_conf.h"
#include "core/core_buf.h"
#include "core/core_err.h"
#include "core/core_httpc.h"

int rt_http_request(const char *host, int port, const char *method, const char *path,
                    const char *token, const char *content_type, const void *body, size_t len,
                    int64_t timeout_ms, size_t max_resp, rt_http_resp_t *resp, char *errstr,
                    size_t errstr_size)
{
    memset(resp, 0, sizeof *resp);
    char auth[300];
    size_t usz = strlen(host) + strlen(path) + 32;
    char *url = core_xmalloc(usz);
    snprintf(url, usz, "http://%s:%d%s", host, port, path);
    const char *hdrs[2] = {NULL, NULL};
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hdrs[0] = auth;
    }
    core_httpc_req_t req = {.method = method,
                            .url = url,
                            .content_type = content_type,
                            .body = body,
                            .body_len = len,
                            .headers = hdrs,
                            .timeout_ms = (long)timeout_ms,
                            .max_response = max_resp ? max_resp : 1};
    core_httpc_resp_t r;
    core_httpc_resp_init(&r);
    int err = core_httpc_do(&req, &r, errstr, errstr_size);
    free(url);
    if (err) {
        core_httpc_resp_fini(&r);
        return err;
    }
    resp->status = (int)r.status;
    core_wr_raw(&r.body, "", 1); /* NUL terminator, not counted */
    size_t n;
    resp->body = (char *)core_buf_detach(&r.body, &n);
    resp->len = n - 1;
    core_httpc_resp_fini(&r);
    return 0;
}

int rt_http_request_addr(const char *addr, const char *method, const char *path,
                         const char *token, const char *content_type, const void *body,
                         size_t len, int64_t timeout_ms, size_t max_resp, rt_http_resp_t *resp,
                         char *errstr, size_t errstr_size)
{
    char host[256];
    int port;
    if (core_parse_hostport(addr, host, sizeof host, &port))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "bad address '%s' (HOST:PORT)",
                         addr);
    return rt_http_request(host, port, method, path, token, content_type, body, len, timeout_ms,
                           max_resp, resp, errstr, errstr_size);
}

void rt_http_resp_fini(rt_http_resp_t *resp)
{
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

char *rt_http_urlencode(const char *s, char *out, size_t out_size)
{
    static const char x[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < out_size; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = x[ch >> 4];
            out[o++] = x[ch & 15];
        }
    }
    out[o] = 0;
    return out;
}
