/*
 * eddy eventserver — serves the PredictionIO Event API (store_http.h) on a
 * store, and owns the embedded store of its data directory
 * (docs/ARCHITECTURE.md §1).
 *
 * Start-up order matters for the other processes of the data directory:
 *   1. open the store (takes RocksDB's LOCK: a second event server fails);
 *   2. write DIR/internal.token (0600, temp + rename) — before the address,
 *      so a process that sees the address can always read a valid token;
 *   3. start HTTP, then write DIR/eventserver.addr (temp + rename): from then
 *      on store_open_dir() in other processes uses the eddy:// engine.
 * Clean stop (SIGINT/SIGTERM): remove eventserver.addr first, stop HTTP
 * (waits for running requests), close the store (fsyncs), remove the token.
 * After a kill -9 the address file stays behind; store_open_dir notices that
 * the lock is free again and opens the store itself.
 * Steps 2 and 3's files exist only for an embedded (RocksDB) store: with
 * --store redis://... every process talks to Redis directly.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_fs.h"
#include "core/core_log.h"
#include "storage/store.h"
#include "storage/store_http.h"
#include "storage/store_remote.h"

typedef struct es_conf {
    char *data;
    char *store;
    char *listen;
    char *sync;
    int64_t sync_interval_ms;
    int64_t max_body;
    int64_t threads;
    char *ip;     /* pio eventserver --ip */
    int64_t port; /* pio eventserver --port */
} es_conf_t;

static const core_opt_t es_opts[] = {
    {"data", CORE_OPT_STR, NULL, "data directory (embedded RocksDB in DIR/store; addr/token files)",
     offsetof(es_conf_t, data)},
    {"store", CORE_OPT_STR, NULL,
     "store URL instead of DIR/store: redis://HOST:PORT/DB or rocksdb:PATH",
     offsetof(es_conf_t, store)},
    {"listen", CORE_OPT_STR, "127.0.0.1:7070", "HOST:PORT to serve on (port 0 = any free port)",
     offsetof(es_conf_t, listen)},
    {"sync", CORE_OPT_STR, "always",
     "always = an acknowledged event is fsynced (group commit); interval = fsync every "
     "--sync-interval",
     offsetof(es_conf_t, sync)},
    {"sync-interval", CORE_OPT_DURATION, "1s", "WAL fsync period with --sync interval",
     offsetof(es_conf_t, sync_interval_ms)},
    {"max-body-bytes", CORE_OPT_SIZE, "4MiB", "largest request body accepted (else 413)",
     offsetof(es_conf_t, max_body)},
    {"threads", CORE_OPT_INT, "0", "HTTP worker threads (0 = 8 per CPU)",
     offsetof(es_conf_t, threads)},
    {"ip", CORE_OPT_STR, NULL, "as `pio eventserver --ip`: overrides --listen's host",
     offsetof(es_conf_t, ip)},
    {"port", CORE_OPT_INT, "-1", "as `pio eventserver --port`: overrides --listen's port",
     offsetof(es_conf_t, port)},
    CORE_OPT_END,
};

/* 32 random bytes as URL-safe base64 without padding (43 chars). */
static int make_token(char *out, size_t outsz)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[33];
    if (getrandom(raw, 32, 0) != 32)
        return errno ? errno : EIO;
    raw[32] = 0;
    size_t n = 0;
    for (int i = 0; i < 33 && n + 4 < outsz; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)(i + 1 < 33 ? raw[i + 1] : 0) << 8 |
                     (unsigned)(i + 2 < 33 ? raw[i + 2] : 0);
        out[n++] = alphabet[(v >> 18) & 63];
        out[n++] = alphabet[(v >> 12) & 63];
        out[n++] = alphabet[(v >> 6) & 63];
        out[n++] = alphabet[v & 63];
    }
    out[43 < n ? 43 : n] = '\0';
    return 0;
}

static const core_cmd_t es_cmd = {
    .name = "eddy eventserver",
    .usage = "eddy eventserver --data DIR [--store URL] [--listen 127.0.0.1:7070] "
             "[--sync always|interval]",
    .summary = "Serves the PredictionIO Event API (events, batches, filters, access\n"
               "keys, channels) on the embedded RocksDB store of DIR or on Redis.\n"
               "Other eddy processes reach DIR's store through it while it runs.",
    .opts = es_opts,
};

int cmd_eventserver(int argc, char **argv)
{
    es_conf_t c;
    char err[512];
    char *pos[argc + 1];
    int npos;
    int ret = 1;
    store_t *st = NULL;
    store_http_t *sh = NULL;
    char addr_path[PATH_MAX] = "", token_path[PATH_MAX] = "";
    int rc = core_conf_begin(&es_cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN) {
        core_conf_free(es_opts, &c);
        return rc;
    }
    rc = 0;
    if (!c.data && !c.store)
        rc = core_errf(CORE_ERR_INVAL, err, sizeof err, "--data DIR (or --store URL) is required");
    store_opts_t so;
    store_opts_default(&so);
    if (!rc && !strcmp(c.sync, "interval"))
        so.sync = STORE_SYNC_INTERVAL;
    else if (!rc && strcmp(c.sync, "always"))
        rc = core_errf(CORE_ERR_INVAL, err, sizeof err, "--sync must be always or interval");
    so.sync_interval_ms = c.sync_interval_ms;
    char host[256];
    int port = 0;
    if (!rc && core_parse_hostport(c.listen, host, sizeof host, &port))
        rc = core_errf(CORE_ERR_INVAL, err, sizeof err, "--listen: expected HOST:PORT, got '%s'",
                       c.listen);
    if (!rc && c.ip)
        snprintf(host, sizeof host, "%s", c.ip);
    if (!rc && c.port >= 0) {
        if (c.port > 65535)
            rc = core_errf(CORE_ERR_INVAL, err, sizeof err, "--port: 0..65535");
        port = (int)c.port;
    }
    if (!rc && (c.max_body <= 0 || c.max_body > (int64_t)1 << 30))
        rc = core_errf(CORE_ERR_INVAL, err, sizeof err, "--max-body-bytes: 1 byte .. 1 GiB");
    if (rc) {
        fprintf(stderr, "eddy eventserver: %s\nusage: %s\n", err, es_cmd.usage);
        core_conf_free(es_opts, &c);
        return 2;
    }

    if (c.data && mkdir(c.data, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "eddy eventserver: cannot create %s: %s\n", c.data, strerror(errno));
        goto out;
    }
    /* 1. The store: the embedded one of DIR unless a URL is given. Never
     * the remote engine: the event server is the owner. */
    char url[PATH_MAX + 16];
    if (c.store)
        snprintf(url, sizeof url, "%s", c.store);
    else
        snprintf(url, sizeof url, "rocksdb:%s/store", c.data);
    rc = store_open(url, &so, &st, err, sizeof err);
    if (rc) {
        fprintf(stderr, "eddy eventserver: cannot open the store %s: %s\n", url, err);
        goto out;
    }
    /* 2. The internal token. Only an embedded store needs the internal
     * endpoint (and the address file): with Redis every process is a client
     * of Redis itself, so several event servers may share one --data. */
    char token[64];
    bool owner = c.data && !strcmp(store_engine(st), "rocksdb");
    if (owner) {
        if ((rc = make_token(token, sizeof token)) ||
            (rc = core_fs_write_atomic(c.data, STORE_REMOTE_TOKEN_FILE, token, strlen(token), 0600))) {
            fprintf(stderr, "eddy eventserver: cannot write %s/%s: %s\n", c.data,
                    STORE_REMOTE_TOKEN_FILE, strerror(rc));
            goto out;
        }
        snprintf(token_path, sizeof token_path, "%s/%s", c.data, STORE_REMOTE_TOKEN_FILE);
    }
    /* Signals are taken synchronously by this thread (sigwait) so a
     * handler never runs inside a store or HTTP call; the HTTP threads
     * created next inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* 3. HTTP, then the address. */
    store_http_conf_t hc = {
        .host = host,
        .port = port,
        .threads = (int)c.threads,
        .max_body = (size_t)c.max_body,
        .token = owner ? token : NULL,
    };
    rc = store_http_start(st, &hc, &sh, err, sizeof err);
    if (rc) {
        fprintf(stderr, "eddy eventserver: %s\n", err);
        goto out;
    }
    char addr[300];
    snprintf(addr, sizeof addr, "%s:%d\n", host, store_http_port(sh));
    if (owner) {
        if ((rc = core_fs_write_atomic(c.data, STORE_REMOTE_ADDR_FILE, addr, strlen(addr), 0644))) {
            fprintf(stderr, "eddy eventserver: cannot write %s/%s: %s\n", c.data,
                    STORE_REMOTE_ADDR_FILE, strerror(rc));
            goto out;
        }
        snprintf(addr_path, sizeof addr_path, "%s/%s", c.data, STORE_REMOTE_ADDR_FILE);
    }
    CORE_INFO("eventserver", "serving %s on %s:%d (store %s, sync %s)", c.data ? c.data : url,
              host, store_http_port(sh), store_engine(st), c.sync);
    printf("Event Server listening on %s", addr);
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    CORE_INFO("eventserver", "signal %d: stopping", sig);
    ret = 0;
out:
    if (addr_path[0])
        unlink(addr_path); /* first: new clients stop coming to us */
    store_http_free(sh);
    store_close(st);
    if (token_path[0])
        unlink(token_path);
    core_conf_free(es_opts, &c);
    return ret;
}
