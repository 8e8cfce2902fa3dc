/*
 * fuzz_conf — core_conf's readers: the properties file of `eddy up --config`
 * (core_conf__load_text, the text core_conf_load_file reads) and the value
 * parsers it shares with HTTP query parameters (core_parse_int / _size /
 * _duration_ms / _hostport). Byte 0 picks: properties with the "broker"
 * prefix, properties without one, or the rest as one value for every parser.
 *   - a refused file says where ("NAME:LINE: ...");
 *   - an accepted file holds no negative size or duration, and the settings
 *     it produced, written back as properties, load to the same settings;
 *   - an accepted int prints and parses back to itself; an accepted
 *     HOST:PORT has a port in 0..65535 and re-joins to a string that parses
 *     to the same host and port.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_buf.h"
#include "core/core_conf.h"

typedef struct {
    char *listen;
    int64_t partitions;
    bool verbose;
    int64_t segment_bytes;
    int64_t retention_ms;
    core_strlist_t config;
} f_conf;

static const core_opt_t opts[] = {
    {"listen", CORE_OPT_STR, "127.0.0.1:9092", "address", offsetof(f_conf, listen)},
    {"partitions", CORE_OPT_INT, "1", "count", offsetof(f_conf, partitions)},
    {"verbose", CORE_OPT_BOOL, NULL, "talk", offsetof(f_conf, verbose)},
    {"segment-bytes", CORE_OPT_SIZE, "1GiB", "size", offsetof(f_conf, segment_bytes)},
    {"log-retention", CORE_OPT_DURATION, "7d", "time", offsetof(f_conf, retention_ms)},
    {"config", CORE_OPT_LIST, NULL, "k=v", offsetof(f_conf, config)},
    CORE_OPT_END,
};

static void properties(const char *text, size_t len, const char *prefix)
{
    f_conf a, b;
    char err[512] = "";
    core_conf_defaults(opts, &a, err, sizeof err);
    if (core_conf__load_text(opts, &a, text, len, "F", prefix, err, sizeof err) != 0) {
        if (strncmp(err, "F:", 2) != 0)
            abort(); /* a refusal names the file and line */
        core_conf_free(opts, &a);
        return;
    }
    if (a.segment_bytes < 0 || a.retention_ms < 0)
        abort();
    /* Write the settings back (no prefix) and read them again. */
    core_buf_t w;
    core_buf_init(&w);
    char num[256]; /* four int64s and their names */
    core_wr_raw(&w, "listen=", 7);
    core_wr_raw(&w, a.listen, strlen(a.listen));
    int n = snprintf(num, sizeof num, "\npartitions=%" PRId64 "\nverbose=%s\nsegment.bytes=%" PRId64
                     "\nlog-retention=%" PRId64 "ms\n",
                     a.partitions, a.verbose ? "true" : "false", a.segment_bytes, a.retention_ms);
    core_wr_raw(&w, num, (size_t)n);
    for (int i = 0; i < a.config.n; i++) {
        core_wr_raw(&w, "config = ", 9);
        core_wr_raw(&w, a.config.v[i], strlen(a.config.v[i]));
        core_wr_raw(&w, "\n", 1);
    }
    core_conf_defaults(opts, &b, err, sizeof err);
    if (core_conf__load_text(opts, &b, (const char *)w.data, w.len, "W", NULL, err, sizeof err))
        abort(); /* what we accepted, written back, must load */
    if (strcmp(a.listen, b.listen) || a.partitions != b.partitions || a.verbose != b.verbose ||
        a.segment_bytes != b.segment_bytes || a.retention_ms != b.retention_ms ||
        a.config.n != b.config.n)
        abort();
    for (int i = 0; i < a.config.n; i++)
        if (strcmp(a.config.v[i], b.config.v[i]))
            abort();
    core_buf_fini(&w);
    core_conf_free(opts, &a);
    core_conf_free(opts, &b);
}

static void values(const char *s)
{
    int64_t v, v2;
    char buf[64];
    if (core_parse_int(s, &v) == 0) {
        snprintf(buf, sizeof buf, "%" PRId64, v);
        if (core_parse_int(buf, &v2) || v2 != v)
            abort();
    }
    if (core_parse_size(s, &v) == 0 && v < 0)
        abort();
    if (core_parse_duration_ms(s, &v) == 0 && v < 0)
        abort();
    char host[256], host2[256];
    int port, port2;
    if (core_parse_hostport(s, host, sizeof host, &port) == 0) {
        if (port < 0 || port > 65535 || strncmp(s, host, strlen(host)))
            abort();
        char *again = malloc(strlen(host) + 16);
        sprintf(again, "%s:%d", host, port);
        if (core_parse_hostport(again, host2, sizeof host2, &port2) || port2 != port ||
            strcmp(host, host2))
            abort();
        free(again);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    char *text = malloc(size); /* exact size, NUL-terminated for the value parsers */
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    switch (data[0] % 3) {
    case 0:
        properties(text, size - 1, "broker");
        break;
    case 1:
        properties(text, size - 1, NULL);
        break;
    default:
        values(text);
    }
    free(text);
    return 0;
}
