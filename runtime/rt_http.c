#include "runtime/rt_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core_alloc.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_time.h"

static int wait_fd(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - core_mono_ms();
        if (left <= 0)
            return CORE_ERR_TIMEOUT;
        struct pollfd p = {.fd = fd, .events = ev};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return errno;
    }
}

static int send_all(int fd, const void *p, size_t n, int64_t deadline)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            int e = wait_fd(fd, POLLOUT, deadline);
            if (e)
                return e;
            continue;
        }
        if (w < 0)
            return errno;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int rt_http_request(const char *host, int port, const char *method, const char *path,
                    const char *token, const char *content_type, const void *body, size_t len,
                    int64_t timeout_ms, size_t max_resp, rt_http_resp_t *resp, char *errstr,
                    size_t errstr_size)
{
    memset(resp, 0, sizeof *resp);
    int64_t deadline = core_mono_ms() + timeout_ms;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    int gr = getaddrinfo(host, ports, &hints, &ai);
    if (gr)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "resolve %s: %s", host,
                         gai_strerror(gr));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    char *buf = NULL;
    if (fd < 0) {
        err = errno;
        goto fail;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS) {
            err = errno;
            goto fail;
        }
        if ((err = wait_fd(fd, POLLOUT, deadline)))
            goto fail;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
            err = soerr;
            goto fail;
        }
    }
    char hdr[2048];
    int h = snprintf(hdr, sizeof hdr,
                     "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n%s%s%s%s%s%s\r\n",
                     method, path, host, port, len, token ? "Authorization: Bearer " : "",
                     token ? token : "", token ? "\r\n" : "",
                     content_type ? "Content-Type: " : "", content_type ? content_type : "",
                     content_type ? "\r\n" : "");
    if (h >= (int)sizeof hdr) {
        err = CORE_ERR_TOO_LARGE;
        goto fail;
    }
    if ((err = send_all(fd, hdr, (size_t)h, deadline)) ||
        (len && (err = send_all(fd, body, len, deadline))))
        goto fail;
    /* Read until the headers end, then Content-Length bytes (or close). */
    size_t cap = 16384, have = 0;
    buf = core_xmalloc(cap + 1);
    size_t hdr_end = 0, want = SIZE_MAX;
    for (;;) {
        if (hdr_end && have - hdr_end >= want)
            break;
        if (have == cap) {
            if (cap > max_resp + 65536) {
                err = CORE_ERR_TOO_LARGE;
                goto fail;
            }
            cap *= 2;
            buf = core_xrealloc(buf, cap + 1);
        }
        ssize_t r = recv(fd, buf + have, cap - have, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
            if ((err = wait_fd(fd, POLLIN, deadline)))
                goto fail;
            continue;
        }
        if (r < 0) {
            err = errno;
            goto fail;
        }
        if (r == 0) {
            if (hdr_end && want == SIZE_MAX)
                break;
            err = CORE_ERR_TRUNCATED;
            goto fail;
        }
        have += (size_t)r;
        buf[have] = 0;
        if (!hdr_end) {
            char *e = strstr(buf, "\r\n\r\n");
            if (!e)
                continue;
            hdr_end = (size_t)(e - buf) + 4;
            if (sscanf(buf, "HTTP/1.%*d %d", &resp->status) != 1) {
                err = CORE_ERR_MALFORMED;
                goto fail;
            }
            for (char *l = strstr(buf, "\r\n") + 2; l < e; l = strstr(l, "\r\n") + 2) {
                if (!strncasecmp(l, "Content-Length:", 15)) {
                    want = strtoull(l + 15, NULL, 10);
                    if (want > max_resp) {
                        err = CORE_ERR_TOO_LARGE;
                        goto fail;
                    }
                } else if (!strncasecmp(l, "Transfer-Encoding:", 18)) {
                    err = CORE_ERR_UNSUPPORTED;
                    goto fail;
                }
            }
        }
    }
    size_t blen = have - hdr_end;
    if (want != SIZE_MAX && blen > want)
        blen = want;
    memmove(buf, buf + hdr_end, blen);
    buf[blen] = 0;
    resp->body = buf;
    resp->len = blen;
    close(fd);
    freeaddrinfo(ai);
    return 0;
fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    memset(resp, 0, sizeof *resp);
    return core_errf(err, errstr, errstr_size, "%s http://%s:%d%s: %s", method, host, port, path,
                     core_strerror(err));
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
