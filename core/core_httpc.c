#include "core/core_httpc.h"

#include <pthread.h>
#include <string.h>

#include <curl/curl.h>

#include "core/core_err.h"

static pthread_once_t httpc_once = PTHREAD_ONCE_INIT;
static void httpc_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void core_httpc_resp_init(core_httpc_resp_t *resp)
{
    resp->status = 0;
    core_buf_init(&resp->body);
}

void core_httpc_resp_fini(core_httpc_resp_t *resp)
{
    core_buf_fini(&resp->body);
}

const char *core_httpc_text(core_httpc_resp_t *resp)
{
    core_buf_reserve(&resp->body, 1);
    resp->body.data[resp->body.len] = 0;
    return (const char *)resp->body.data;
}

typedef struct sink {
    core_buf_t *buf;
    size_t max;
    int overflow;
} sink_t;

static size_t on_body(char *p, size_t size, size_t n, void *opaque)
{
    sink_t *s = opaque;
    size_t len = size * n;
    if (s->buf->len + len > s->max) {
        s->overflow = 1;
        return 0; /* makes curl abort the transfer */
    }
    core_wr_raw(s->buf, p, len);
    return len;
}

int core_httpc_do(const core_httpc_req_t *req, core_httpc_resp_t *resp, char *errstr,
                  size_t errstr_size)
{
    pthread_once(&httpc_once, httpc_global_init);
    CURL *c = curl_easy_init();
    if (!c)
        return core_errf(CORE_ERR_NOMEM, errstr, errstr_size, "cannot create an HTTP client");
    struct curl_slist *hdrs = NULL;
    char ct[256];
    if (req->content_type) {
        snprintf(ct, sizeof ct, "Content-Type: %s", req->content_type);
        hdrs = curl_slist_append(hdrs, ct);
    }
    for (const char *const *h = req->headers; h && *h; h++)
        hdrs = curl_slist_append(hdrs, *h);
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    sink_t sink = {&resp->body, req->max_response ? req->max_response : (size_t)64 << 20, 0};
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms ? req->timeout_ms : 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    if (req->body || req->body_len) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    CURLcode cc = curl_easy_perform(c);
    int rc = CORE_OK;
    if (sink.overflow)
        rc = core_errf(CORE_ERR_TOO_LARGE, errstr, errstr_size, "%s %s: response larger than %zu bytes",
                       req->method, req->url, sink.max);
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        rc = core_errf(CORE_ERR_TIMEOUT, errstr, errstr_size, "%s %s: timed out", req->method, req->url);
    else if (cc != CURLE_OK)
        rc = core_errf(CORE_ERR_IO, errstr, errstr_size, "%s %s: %s", req->method, req->url,
                       curl_easy_strerror(cc));
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return rc;
}
