/*
 * store_bench — event ingest through the store API (no HTTP), batches of 50
 * events from T threads, as the Event API's batch endpoint does:
 *   - RocksDB engine, --sync always (WAL fsync per commit, group commit)
 *   - RocksDB engine, --sync interval
 *   - Redis engine (one Lua script per batch) on a redis-server started here
 *   - peer: the same redis-server doing plain SETs of a same-size value,
 *     pipelined 50 per round trip from T threads (hiredis)
 * Prints a markdown table with events/s and the ratio to the peer.
 *
 * Then point reads (an entity's latest 20 events) from one thread per core.
 * usage: store_bench [--events N] [--threads T] [--batch B] [--read-threads R] [--dir DIR]
 * DIR defaults to a temp dir under /tmp (on the same disk as the tests).
 */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core_time.h"
#include "storage/store.h"

typedef struct job {
    store_t *s;
    const char *redis_host;
    int redis_port;
    int thread, nthreads;
    int64_t events;
    int batch;
    int64_t done;
    int failed;
} job_t;

static void *ingest_thread(void *arg)
{
    job_t *j = arg;
    char err[256], id[40], eid[24], tid[24], props[64];
    int64_t per = j->events / j->nthreads;
    for (int64_t k = 0; k < per;) {
        store_batch_t *b;
        store_batch_begin(j->s, 0, &b);
        int n = 0;
        for (; n < j->batch && k < per; n++, k++) {
            int64_t g = k * j->nthreads + j->thread;
            snprintf(id, sizeof id, "b%" PRId64, g);
            snprintf(eid, sizeof eid, "u%" PRId64, g % 10000);
            snprintf(tid, sizeof tid, "i%" PRId64, (g * 7919) % 20000);
            snprintf(props, sizeof props, "{\"rating\":%d}", (int)(g % 5) + 1);
            store_event_t e = {0};
            snprintf(e.event_id, sizeof e.event_id, "%s", id);
            e.event = "rate";
            e.entity_type = "user";
            e.entity_id = eid;
            e.target_entity_type = "item";
            e.target_entity_id = tid;
            e.properties = props;
            e.event_time_ms = INT64_C(1700000000000) + g;
            e.event_time_given = true;
            if (store_batch_put_event(b, 1, 0, &e, err, sizeof err) != 0) {
                fprintf(stderr, "put: %s\n", err);
                j->failed = 1;
            }
        }
        if (store_batch_commit(b, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "commit: %s\n", err);
            j->failed = 1;
            return NULL;
        }
        j->done += n;
    }
    return NULL;
}

static void *set_thread(void *arg)
{
    job_t *j = arg;
    redisContext *c = redisConnect(j->redis_host, j->redis_port);
    if (!c || c->err) {
        j->failed = 1;
        return NULL;
    }
    char val[200];
    memset(val, 'x', sizeof val);
    int64_t per = j->events / j->nthreads;
    for (int64_t k = 0; k < per;) {
        int n = 0;
        for (; n < j->batch && k < per; n++, k++) {
            char key[40];
            snprintf(key, sizeof key, "k%" PRId64, k * j->nthreads + j->thread);
            redisAppendCommand(c, "SET %s %b", key, val, sizeof val);
        }
        for (int i = 0; i < n; i++) {
            redisReply *r;
            if (redisGetReply(c, (void **)&r) != REDIS_OK) {
                j->failed = 1;
                redisFree(c);
                return NULL;
            }
            freeReplyObject(r);
        }
        j->done += n;
    }
    redisFree(c);
    return NULL;
}

/* ---- point reads: one entity's latest 20 events, as GET /events.json does ---- */
typedef struct reader {
    store_t *s;
    int n;
    unsigned seed;
    int64_t *lat_us; /* n latencies */
    int64_t events;
} reader_t;

static int read_cb(const store_event_t *ev, void *opaque)
{
    ++*(int64_t *)opaque;
    return 0;
}

static void *read_thread(void *arg)
{
    reader_t *rd = arg;
    char eid[24];
    for (int i = 0; i < rd->n; i++) {
        snprintf(eid, sizeof eid, "u%u", rand_r(&rd->seed) % 10000);
        store_find_t f;
        store_find_init(&f);
        f.entity_type = "user";
        f.entity_id = eid;
        f.limit = 20;
        f.reversed = true;
        int64_t t0 = core_mono_us();
        store_event_find(rd->s, 1, 0, &f, read_cb, &rd->events, NULL);
        rd->lat_us[i] = core_mono_us() - t0;
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Returns reads/s; *p99_us gets the 99th percentile latency. */
static double run_reads(store_t *s, int threads, int per_thread, double *p99_us)
{
    reader_t rd[64];
    pthread_t th[64];
    int64_t *lat = calloc((size_t)threads * (size_t)per_thread, sizeof *lat);
    int64_t t0 = core_mono_us();
    for (int i = 0; i < threads; i++) {
        rd[i] = (reader_t){.s = s,
                           .n = per_thread,
                           .seed = 42u + (unsigned)i,
                           .lat_us = lat + (size_t)i * (size_t)per_thread};
        pthread_create(&th[i], NULL, read_thread, &rd[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(core_mono_us() - t0) / 1e6;
    size_t n = (size_t)threads * (size_t)per_thread;
    qsort(lat, n, sizeof *lat, cmp_i64);
    *p99_us = (double)lat[n * 99 / 100];
    free(lat);
    return (double)n / secs;
}

static double run(void *(*fn)(void *), store_t *s, const char *host, int port, int threads,
                  int64_t events, int batch)
{
    job_t j[64];
    pthread_t th[64];
    int64_t t0 = core_mono_us();
    for (int i = 0; i < threads; i++) {
        j[i] = (job_t){.s = s,
                       .redis_host = host,
                       .redis_port = port,
                       .thread = i,
                       .nthreads = threads,
                       .events = events,
                       .batch = batch};
        pthread_create(&th[i], NULL, fn, &j[i]);
    }
    int64_t done = 0;
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        done += j[i].done;
        failed |= j[i].failed;
    }
    double secs = (double)(core_mono_us() - t0) / 1e6;
    return failed ? -1 : (double)done / secs;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l)) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

int main(int argc, char **argv)
{
    int64_t events = 200000;
    int threads = 8, batch = 50;
    int rthreads = (int)sysconf(_SC_NPROCESSORS_ONLN); /* readers: one per core */
    char dir[512] = "";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--events"))
            events = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--read-threads"))
            rthreads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            snprintf(dir, sizeof dir, "%s", argv[i + 1]);
    }
    if (threads < 1 || threads > 64 || batch < 1 || events < threads) {
        fprintf(stderr,
                "usage: store_bench [--events N] [--threads 1..64] [--batch B] [--dir D]\n");
        return 2;
    }
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/eddy-store-bench-XXXXXX");
        if (!mkdtemp(dir))
            return 1;
    }
    char url[600], err[256];
    double r_always = 0, r_interval = 0, r_redis = 0, r_set = 0;
    double reads_rocks = 0, p99_rocks = 0, reads_redis = 0, p99_redis = 0;
    if (rthreads < 1 || rthreads > 64)
        rthreads = 2;
    int nreads = 20000 / rthreads;
    for (int mode = 0; mode < 2; mode++) {
        store_opts_t o;
        store_opts_default(&o);
        o.sync = mode == 0 ? STORE_SYNC_ALWAYS : STORE_SYNC_INTERVAL;
        snprintf(url, sizeof url, "rocksdb:%s/%s", dir, mode == 0 ? "always" : "interval");
        store_t *s;
        if (store_open(url, &o, &s, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        double r = run(ingest_thread, s, NULL, 0, threads, events, batch);
        if (mode == 1)
            reads_rocks = run_reads(s, rthreads, nreads, &p99_rocks);
        store_close(s);
        if (mode == 0)
            r_always = r;
        else
            r_interval = r;
    }
    int port = free_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        execlp("redis-server", "redis-server", "--port", ports, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    store_t *s = NULL;
    for (int64_t dl = core_mono_ms() + 5000; core_mono_ms() < dl; usleep(20000))
        if (store_open(url, NULL, &s, err, sizeof err) == 0)
            break;
    if (s) {
        r_redis = run(ingest_thread, s, NULL, 0, threads, events, batch);
        reads_redis = run_reads(s, rthreads, nreads, &p99_redis);
        store_close(s);
        r_set = run(set_thread, NULL, "127.0.0.1", port, threads, events, batch);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");

    printf("| store ingest (%" PRId64 " events, %d threads, batches of %d, %ld cores) | events/s "
           "| vs redis SET |\n|---|---|---|\n",
           events, threads, batch, sysconf(_SC_NPROCESSORS_ONLN));
    printf("| RocksDB engine, --sync always | %.0f | %.2f |\n", r_always, r_always / r_set);
    printf("| RocksDB engine, --sync interval | %.0f | %.2f |\n", r_interval, r_interval / r_set);
    printf("| Redis engine (Lua batch, no persistence) | %.0f | %.2f |\n", r_redis,
           r_redis / r_set);
    printf("| peer: redis-server SET, 200 B, pipelined %d | %.0f | 1.00 |\n", batch, r_set);
    printf("\n| point read: an entity's latest 20 events (%d threads) | reads/s | p99 |\n"
           "|---|---|---|\n",
           rthreads);
    printf("| RocksDB engine | %.0f | %.2f ms |\n", reads_rocks, p99_rocks / 1000.0);
    printf("| Redis engine | %.0f | %.2f ms |\n", reads_redis, p99_redis / 1000.0);
    return 0;
}
