/*
 * redis_streams_bench — the peer for broker_bench: the same 100-byte values
 * through Redis Streams with hiredis, on the same machine in the same run.
 *
 *   produce   XADD stream * v <value>, pipelined 1,000 commands deep, into 1
 *             stream and into 8 streams (blocks of 1,000, as broker_bench
 *             spreads over partitions); records/s from first send to last reply.
 *   consume   XRANGE in pages of 10,000 over every stream written above.
 *   latency   one connection XADDs at a fixed rate (each waits for its reply,
 *             like acks=1), another blocks in XREAD; end-to-end latency from
 *             the CLOCK_MONOTONIC send time carried in the value.
 *
 * Output lines have the same shape as broker_bench's (run-broker.sh joins them).
 * usage: redis_streams_bench --port P [--records N] [--rate R] [--duration S]
 *                            [--only throughput|latency]
 */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VALUE_BYTES 100
#define PIPELINE 1000

static int port = 6379;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static redisContext *conn(void)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        fprintf(stderr, "redis_streams_bench: connect: %s\n", c ? c->errstr : "no memory");
        exit(1);
    }
    return c;
}

static void check(redisReply *r, const char *what)
{
    if (!r || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "redis_streams_bench: %s: %s\n", what, r ? r->str : "connection lost");
        exit(1);
    }
}

static void bench_produce(long records, int streams)
{
    redisContext *c = conn();
    char val[VALUE_BYTES], name[32];
    memset(val, 'v', sizeof val);
    for (int s = 0; s < streams; s++) {
        snprintf(name, sizeof name, "bench-s%d-%d", streams, s);
        freeReplyObject(redisCommand(c, "DEL %s", name));
    }
    double t0 = now_s();
    for (long i = 0; i < records; i += PIPELINE) {
        long n = records - i < PIPELINE ? records - i : PIPELINE;
        snprintf(name, sizeof name, "bench-s%d-%ld", streams, (i / 1000) % streams);
        for (long j = 0; j < n; j++) {
            long seq = i + j;
            memcpy(val, &seq, sizeof seq);
            redisAppendCommand(c, "XADD %s * v %b", name, val, (size_t)VALUE_BYTES);
        }
        for (long j = 0; j < n; j++) {
            redisReply *r;
            if (redisGetReply(c, (void **)&r) != REDIS_OK)
                check(NULL, "XADD");
            check(r, "XADD");
            freeReplyObject(r);
        }
    }
    double secs = now_s() - t0;
    printf("produce\tredis-xadd-pipelined\tstreams=%d\t-\t%ld\t%.3f\t%.0f\t%.1f\n", streams, records,
           secs, (double)records / secs, (double)records * VALUE_BYTES / secs / 1e6);
    fflush(stdout);
    redisFree(c);
}

static void bench_consume(int streams)
{
    redisContext *c = conn();
    char name[32], start[64];
    long got = 0;
    size_t bytes = 0;
    double t0 = now_s();
    for (int s = 0; s < streams; s++) {
        snprintf(name, sizeof name, "bench-s%d-%d", streams, s);
        snprintf(start, sizeof start, "-");
        for (;;) {
            redisReply *r = redisCommand(c, "XRANGE %s %s + COUNT 10000", name, start);
            check(r, "XRANGE");
            if (r->elements == 0) {
                freeReplyObject(r);
                break;
            }
            for (size_t i = 0; i < r->elements; i++) {
                redisReply *e = r->element[i];
                bytes += e->element[1]->element[1]->len;
                got++;
            }
            snprintf(start, sizeof start, "(%s", r->element[r->elements - 1]->element[0]->str);
            freeReplyObject(r);
        }
    }
    double secs = now_s() - t0;
    printf("consume\tredis-xrange\tstreams=%d\t%ld\t%.3f\t%.0f\t%.1f\n", streams, got, secs,
           (double)got / secs, (double)bytes / secs / 1e6);
    fflush(stdout);
    redisFree(c);
}

typedef struct lat {
    long expect, n;
    int32_t *us;
    volatile int ready;
} lat_t;

static void *lat_reader(void *arg)
{
    lat_t *l = arg;
    redisContext *c = conn();
    char last[64] = "$";
    l->ready = 1; /* XREAD with $ only sees entries added after the call */
    double give_up = now_s() + 120;
    while (l->n < l->expect && now_s() < give_up) {
        redisReply *r = redisCommand(c, "XREAD BLOCK 1000 COUNT 1000 STREAMS bench-latency %s", last);
        check(r, "XREAD");
        int64_t now = now_ns();
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            redisReply *entries = r->element[0]->element[1];
            for (size_t i = 0; i < entries->elements; i++) {
                redisReply *v = entries->element[i]->element[1]->element[1];
                int64_t sent;
                memcpy(&sent, v->str, sizeof sent);
                if (l->n < l->expect)
                    l->us[l->n++] = (int32_t)((now - sent) / 1000);
            }
            if (entries->elements)
                snprintf(last, sizeof last, "%s",
                         entries->element[entries->elements - 1]->element[0]->str);
        }
        freeReplyObject(r);
    }
    redisFree(c);
    return NULL;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

static void bench_latency(long rate, double duration)
{
    lat_t l = {.expect = (long)(rate * duration)};
    l.us = calloc((size_t)l.expect, sizeof *l.us);
    redisContext *c = conn();
    freeReplyObject(redisCommand(c, "DEL bench-latency"));
    pthread_t th;
    pthread_create(&th, NULL, lat_reader, &l);
    while (!l.ready)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    nanosleep(&(struct timespec){0, 200000000}, NULL); /* let XREAD block before the first XADD */
    char val[VALUE_BYTES];
    memset(val, 'l', sizeof val);
    int64_t interval = 1000000000 / rate, t = now_ns();
    for (long i = 0; i < l.expect; i++) {
        t += interval;
        struct timespec ts = {t / 1000000000, t % 1000000000};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        int64_t sent = now_ns();
        memcpy(val, &sent, sizeof sent);
        redisReply *r = redisCommand(c, "XADD bench-latency * v %b", val, (size_t)VALUE_BYTES);
        check(r, "XADD");
        freeReplyObject(r);
    }
    pthread_join(th, NULL);
    long n = l.n;
    qsort(l.us, (size_t)n, sizeof *l.us, cmp_i32);
#define PCT(p) (n ? l.us[(long)((double)(n - 1) * (p))] / 1000.0 : -1)
    printf("latency\tredis-xadd-xread\tstreams=1\trate=%ld\t%ld\t%.3f\t%.3f\t%.3f\t%.3f\n", rate, n,
           PCT(0.50), PCT(0.99), PCT(0.999), n ? l.us[n - 1] / 1000.0 : -1);
    fflush(stdout);
    free(l.us);
    redisFree(c);
}

int main(int argc, char **argv)
{
    long records = 1000000, rate = 10000;
    double duration = 5;
    const char *only = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--records"))
            records = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate"))
            rate = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration"))
            duration = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--only"))
            only = argv[i + 1];
        else {
            fprintf(stderr, "usage: redis_streams_bench --port P [--records N] [--rate R] "
                            "[--duration S] [--only throughput|latency]\n");
            return 2;
        }
    }
    if (rate < 1 || duration <= 0 || records < 1) {
        fprintf(stderr, "redis_streams_bench: --records, --rate and --duration must be positive\n");
        return 2;
    }
    if (!only || !strcmp(only, "throughput")) {
        bench_produce(records, 1);
        bench_produce(records, 8);
        bench_consume(1);
        bench_consume(8);
    }
    if (!only || !strcmp(only, "latency"))
        bench_latency(rate, duration);
    return 0;
}
