/*
 * core_http: routing, 404/405, body limits (413), keep-alive, concurrency and
 * metrics, against a real server on a loopback port chosen by the kernel.
 * The client is a few lines of blocking sockets so each test controls the
 * exact bytes on the wire (pipelining, chunked bodies, missing lengths).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/core_http.h"

typedef struct fixture {
    core_http_t *srv;
    int port;
    atomic_int hits;
} fixture_t;

/* ---- handlers ---- */

static void h_echo(core_http_req_t *req, void *user)
{
    fixture_t *f = user;
    atomic_fetch_add(&f->hits, 1);
    const char *evs[4];
    int nev = core_http_req_query_all(req, "event", evs, 4);
    size_t len;
    const char *body = core_http_req_body(req, &len);
    json_t *j = json_pack("{s:s, s:s?, s:s?, s:i, s:I}", "path", core_http_req_path(req), "id",
                          core_http_req_param(req, "id"), "q", core_http_req_query(req, "q"),
                          "nevent", nev, "len", (json_int_t)len);
    if (nev > 0)
        json_object_set_new(j, "event0", json_string(evs[0]));
    if (nev > 1)
        json_object_set_new(j, "event1", json_string(evs[1]));
    if (len && body[len] != '\0')
        json_object_set_new(j, "unterminated", json_true());
    /* scratch from the arena: freed by the server */
    char *scratch = core_http_req_alloc(req, 10000);
    memset(scratch, 'x', 10000);
    core_http_reply_json(req, 200, j);
}

static void h_two(core_http_req_t *req, void *user)
{
    const char *a = core_http_req_param(req, "a"), *b = core_http_req_param(req, "b");
    char out[256];
    const char *peer = core_http_req_peer(req);
    if (core_http_req_peer(req) != peer) /* formatted once, then kept */
        peer = "changed";
    snprintf(out, sizeof(out), "%s|%s|%s", a, b, peer);
    core_http_reply_text(req, 200, out);
}

static void h_silent(core_http_req_t *req, void *user)
{
}

static void h_created(core_http_req_t *req, void *user)
{
    core_http_reply_error(req, 201, "made %d", 1);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    core_http_conf_t conf = {.name = "test", .threads = 2, .max_body = 1000};
    f->srv = core_http_new(&conf);
    assert_int_equal(core_http_route(f->srv, "GET", "/events/<id>.json", h_echo, f), 0);
    assert_int_equal(core_http_route(f->srv, "DELETE", "/events/<id>.json", h_echo, f), 0);
    assert_int_equal(core_http_route(f->srv, "POST", "/events.json", h_echo, f), 0);
    assert_int_equal(core_http_route(f->srv, "GET", "/events.json", h_echo, f), 0);
    assert_int_equal(core_http_route(f->srv, "GET", "/t/<a>/x/<b>", h_two, f), 0);
    assert_int_equal(core_http_route(f->srv, "GET", "/silent", h_silent, f), 0);
    assert_int_equal(core_http_route(f->srv, "PUT", "/created", h_created, f), 0);
    assert_int_equal(core_http_route_ex(f->srv, "POST", "/big", h_echo, f, 5000), 0);
    assert_int_equal(core_http_route(f->srv, "GET", "/metrics", core_http_metrics_handler,
                                     f->srv),
                     0);
    char err[256];
    assert_int_equal(core_http_start(f->srv, "127.0.0.1", 0, err, sizeof(err)), 0);
    f->port = core_http_port(f->srv);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    core_http_free(f->srv);
    free(f);
    return 0;
}

/* ---- a tiny client ---- */

static int conn_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server may close early (413); reading tells */
        s += w;
        n -= (size_t)w;
    }
}

typedef struct resp {
    int status;
    char head[4096];
    char body[65536];
    size_t body_len;
    bool closed; /* server said Connection: close */
} resp_t;

/* Reads one response (Content-Length framed). Returns 0, or -1 on EOF/error. */
static int read_resp(int fd, resp_t *r)
{
    static __thread char buf[1 << 17];
    static __thread size_t have;
    static __thread int buf_fd = -1;
    if (buf_fd != fd) {
        have = 0;
        buf_fd = fd;
    }
    memset(r, 0, sizeof(*r));
    for (;;) {
        buf[have] = '\0';
        char *eoh = strstr(buf, "\r\n\r\n");
        if (eoh) {
            size_t hl = (size_t)(eoh - buf) + 4;
            const char *cl = strcasestr(buf, "Content-Length:");
            size_t blen = cl && cl < eoh ? strtoul(cl + 15, NULL, 10) : 0;
            if (have >= hl + blen) {
                memcpy(r->head, buf, hl < sizeof(r->head) - 1 ? hl : sizeof(r->head) - 1);
                memcpy(r->body, buf + hl, blen < sizeof(r->body) - 1 ? blen : sizeof(r->body) - 1);
                r->body_len = blen;
                r->status = atoi(buf + 9);
                r->closed = strcasestr(r->head, "Connection: close") != NULL;
                memmove(buf, buf + hl + blen, have - hl - blen);
                have -= hl + blen;
                return 0;
            }
        }
        ssize_t n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
}

static int request(int port, const char *raw, resp_t *r)
{
    int fd = conn_open(port);
    send_all(fd, raw, strlen(raw));
    int rc = read_resp(fd, r);
    close(fd);
    return rc;
}

/* ---- tests ---- */

static void test_route_captures_id_and_query(void **state)
{
    fixture_t *f = *state;
    resp_t r;
    assert_int_equal(request(f->port,
                             "GET /events/ab-C_9.json?q=x%20y&event=a&event=b HTTP/1.1\r\n"
                             "Host: x\r\n\r\n",
                             &r),
                     0);
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.head, "Content-Type: application/json; charset=UTF-8"));
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "ab-C_9");
    assert_string_equal(json_string_value(json_object_get(j, "q")), "x y");
    assert_int_equal(json_integer_value(json_object_get(j, "nevent")), 2);
    assert_string_equal(json_string_value(json_object_get(j, "event0")), "a");
    assert_string_equal(json_string_value(json_object_get(j, "event1")), "b");
    json_decref(j);
}

static void test_route_with_two_captures(void **state)
{
    fixture_t *f = *state;
    resp_t r;
    assert_int_equal(request(f->port, "GET /t/one/x/two HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "one|two|127.0.0.1"); /* with the peer's address */
    /* an empty capture does not match */
    assert_int_equal(request(f->port, "GET /t//x/two HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 404);
    /* a capture never spans a '/' */
    assert_int_equal(request(f->port, "GET /events/a/b.json HTTP/1.1\r\nHost: x\r\n\r\n", &r),
                     0);
    assert_int_equal(r.status, 404);
}

static void test_unknown_path_is_404_json(void **state)
{
    fixture_t *f = *state;
    resp_t r;
    assert_int_equal(request(f->port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"message\":\"Not Found\"}");
}

static void test_wrong_method_is_405_with_allow(void **state)
{
    fixture_t *f = *state;
    resp_t r;
    assert_int_equal(request(f->port, "PUT /events/x.json HTTP/1.1\r\nHost: x\r\n"
                                      "Content-Length: 0\r\n\r\n",
                             &r),
                     0);
    assert_int_equal(r.status, 405);
    assert_non_null(strcasestr(r.head, "Allow: GET, DELETE"));
}

static void test_body_is_collected_and_terminated(void **state)
{
    fixture_t *f = *state;
    resp_t r;
    char raw[2048];
    char body[1001];
    memset(body, 'b', 1000);
    body[1000] = '\0';
    snprintf(raw, sizeof(raw), "POST /events.json HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%s",
             body);
    assert_int_equal(request(f->port, raw, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "len")), 1000);
    assert_null(json_object_get(j, "unterminated"));
    json_decref(j);
}

static void test_body_over_limit_by_length_is_413_before_reading(void **state)
{
    fixture_t *f = *state;
    resp_t r;
    int before = atomic_load(&f->hits);
    /* Announce 1001 bytes but send none: the answer must come anyway. */
    assert_int_equal(request(f->port, "POST /events.json HTTP/1.1\r\nHost: x\r\n"
                                      "Content-Length: 1001\r\n\r\n",
                             &r),
                     0);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "\"message\""));
    assert_int_equal(atomic_load(&f->hits), before); /* the handler never ran */
}

static void test_route_body_limit_overrides_the_server_limit(void **state)
{
    fixture_t *f = *state;
    resp_t r;
    static char raw[8192];
    char body[6001];
    memset(body, 'b', 6000);
    body[4000] = '\0';
    snprintf(raw, sizeof(raw), "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n%s", body);
    assert_int_equal(request(f->port, raw, &r), 0);
    assert_int_equal(r.status, 200); /* over the server's 1000, under the route's 5000 */
    assert_non_null(strstr(r.body, "\"len\":4000"));
    body[4000] = 'b';
    body[6000] = '\0';
    snprintf(raw, sizeof(raw), "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 6000\r\n\r\n%s", body);
    assert_int_equal(request(f->port, raw, &r), 0);
    assert_int_equal(r.status, 413);
}

static void test_chunked_body_over_limit_is_413(void **state)
{
    fixture_t *f = *state;
    resp_t r;
    char raw[8192];
    size_t n = (size_t)snprintf(raw, sizeof(raw),
                                "POST /events.json HTTP/1.1\r\nHost: x\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        n += (size_t)snprintf(raw + n, sizeof(raw) - n, "258\r\n"); /* 600 bytes */
        memset(raw + n, 'c', 600);
        n += 600;
        n += (size_t)snprintf(raw + n, sizeof(raw) - n, "\r\n");
    }
    n += (size_t)snprintf(raw + n, sizeof(raw) - n, "0\r\n\r\n");
    int fd = conn_open(f->port);
    send_all(fd, raw, n);
    assert_int_equal(read_resp(fd, &r), 0);
    assert_int_equal(r.status, 413);
    /* the connection still works: the excess was consumed, not left behind */
    const char *next = "GET /events.json HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, next, strlen(next));
    assert_int_equal(read_resp(fd, &r), 0);
    assert_int_equal(r.status, 200);
    close(fd);
}

static void test_keep_alive_serves_many_requests_on_one_connection(void **state)
{
    fixture_t *f = *state;
    int fd = conn_open(f->port);
    resp_t r;
    for (int i = 0; i < 50; i++) {
        char raw[256];
        snprintf(raw, sizeof(raw), "GET /events/k%d.json HTTP/1.1\r\nHost: x\r\n\r\n", i);
        send_all(fd, raw, strlen(raw));
        assert_int_equal(read_resp(fd, &r), 0);
        assert_int_equal(r.status, 200);
        assert_false(r.closed);
        char want[64];
        snprintf(want, sizeof(want), "\"id\":\"k%d\"", i);
        assert_non_null(strstr(r.body, want));
    }
    /* pipelined: three requests in one write */
    const char *three = "GET /events/p1.json HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /events/p3.json HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, three, strlen(three));
    assert_int_equal(read_resp(fd, &r), 0);
    assert_non_null(strstr(r.body, "p1"));
    assert_int_equal(read_resp(fd, &r), 0);
    assert_int_equal(r.status, 404);
    assert_int_equal(read_resp(fd, &r), 0);
    assert_non_null(strstr(r.body, "p3"));
    close(fd);
}

static void test_handler_without_reply_gives_500(void **state)
{
    fixture_t *f = *state;
    resp_t r;
    assert_int_equal(request(f->port, "GET /silent HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body, "did not reply"));
    assert_int_equal(request(f->port, "PUT /created HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, "{\"message\":\"made 1\"}");
}

typedef struct client_arg {
    int port;
    int n;
    int ok;
} client_arg_t;

static void *client_thread(void *p)
{
    client_arg_t *a = p;
    int fd = conn_open(a->port);
    resp_t *r = malloc(sizeof(*r));
    for (int i = 0; i < a->n; i++) {
        const char *raw = "POST /events.json HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        send_all(fd, raw, strlen(raw));
        if (read_resp(fd, r) == 0 && r->status == 200 && strstr(r->body, "\"len\":5"))
            a->ok++;
    }
    free(r);
    close(fd);
    return NULL;
}

static void test_concurrent_clients_are_all_served(void **state)
{
    fixture_t *f = *state;
    enum { NCLIENTS = 64, NREQ = 50 }; /* more clients than MHD threads */
    pthread_t th[NCLIENTS];
    client_arg_t args[NCLIENTS];
    int before = atomic_load(&f->hits);
    for (int i = 0; i < NCLIENTS; i++) {
        args[i] = (client_arg_t){f->port, NREQ, 0};
        pthread_create(&th[i], NULL, client_thread, &args[i]);
    }
    for (int i = 0; i < NCLIENTS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].ok, NREQ);
    }
    assert_int_equal(atomic_load(&f->hits) - before, NCLIENTS * NREQ);
}

static void test_metrics_count_by_route_and_status(void **state)
{
    fixture_t *f = *state;
    resp_t r;
    for (int i = 0; i < 3; i++)
        request(f->port, "GET /events/m.json HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    request(f->port, "GET /zzz HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    core_buf_t b;
    core_buf_init(&b);
    core_http_metrics_write(f->srv, &b);
    core_wr_raw(&b, "", 1);
    const char *text = (const char *)b.data;
    assert_non_null(strstr(text, "eddy_http_requests_total{server=\"test\",method=\"GET\","
                                 "route=\"/events/<id>.json\",status=\"200\"} 3\n"));
    assert_non_null(strstr(text, "route=\"(none)\",status=\"404\"} 1\n"));
    assert_non_null(strstr(text, "eddy_http_request_duration_seconds_count{server=\"test\","
                                 "method=\"GET\",route=\"/events/<id>.json\"} 3\n"));
    assert_non_null(strstr(text, "le=\"+Inf\"} 3\n"));
    core_buf_fini(&b);
    /* and over HTTP */
    assert_int_equal(request(f->port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "# TYPE eddy_http_request_duration_seconds histogram"));
}

static void test_bad_patterns_are_refused_and_port_in_use_reports_errno(void **state)
{
    fixture_t *f = *state;
    core_http_t *s = core_http_new(NULL);
    assert_int_equal(core_http_route(s, "GET", "no-slash", h_silent, NULL), CORE_ERR_INVAL);
    assert_int_equal(core_http_route(s, "GET", "/a/<>", h_silent, NULL), CORE_ERR_INVAL);
    assert_int_equal(core_http_route(s, "GET", "/a/<x><y>", h_silent, NULL), CORE_ERR_INVAL);
    assert_int_equal(core_http_route(s, "GET", "/a/<x", h_silent, NULL), CORE_ERR_INVAL);
    char err[256];
    int rc = core_http_start(s, "127.0.0.1", f->port, err, sizeof(err));
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err, "in use"));
    core_http_free(s);
}

static void test_stop_then_free_is_clean_and_idempotent(void **state)
{
    core_http_t *s = core_http_new(NULL);
    char err[256];
    assert_int_equal(core_http_start(s, "127.0.0.1", 0, err, sizeof(err)), 0);
    int port = core_http_port(s);
    core_http_stop(s);
    core_http_stop(s);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_not_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    core_http_free(s);
}

static void test_json_text_replaces_invalid_utf8(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},               /* valid 2-byte */
        {"a\xff" "b", "a\xef\xbf\xbd" "b"},               /* stray byte */
        {"cut \xe2\x82", "cut \xef\xbf\xbd\xef\xbf\xbd"}, /* truncated 3-byte */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},        /* overlong '/' */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},       /* 4-byte emoji */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = core_http_json_text(cases[i].in);
        assert_non_null(j);
        assert_string_equal(json_string_value(j), cases[i].out);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_text_replaces_invalid_utf8),
        cmocka_unit_test_setup_teardown(test_route_captures_id_and_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_with_two_captures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_path_is_404_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_method_is_405_with_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_is_collected_and_terminated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_over_limit_by_length_is_413_before_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_body_limit_overrides_the_server_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body_over_limit_is_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_serves_many_requests_on_one_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_without_reply_gives_500, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_clients_are_all_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_count_by_route_and_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_patterns_are_refused_and_port_in_use_reports_errno, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_then_free_is_clean_and_idempotent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
