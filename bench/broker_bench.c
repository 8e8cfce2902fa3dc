/*
 * broker_bench — librdkafka producer and consumer against a Kafka-protocol
 * broker (`eddy broker`; works against any Kafka). Not a test: it measures.
 *
 *   produce   N records of 100-byte values, acks=1 and acks=all, 1 and 8
 *             partitions, librdkafka's default batching (linger.ms=5) and a
 *             large one (linger.ms=50, up to 100,000 records / 16 MB per
 *             batch); records/s and MB/s (value bytes) from the first
 *             produce call to the last delivery report.
 *   consume   reads each topic produced with default batching back, simple
 *             consumer (no group), from offset 0 to the end; records/s, MB/s
 *             from the first record received to the last.
 *   latency   a producer paced at a fixed rate (default 10,000 msg/s,
 *             linger.ms=0) and a consumer in the same process; each value
 *             carries its send time (CLOCK_MONOTONIC), so end-to-end latency
 *             is receive time minus that; p50/p99/p99.9/max over the run.
 *
 * Output: one tab-separated line per measurement on stdout (see print_*),
 * read by bench/run-broker.sh, which prints the table.
 *
 * usage: broker_bench --broker HOST:PORT [--records N] [--rate R]
 *                     [--duration S] [--only produce|consume|latency]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define VALUE_BYTES 100

typedef struct bench {
    const char *broker;
    long records;
    long rate;
    double duration;
    const char *only;
} bench_t;

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

static void die(const char *what, const char *why)
{
    fprintf(stderr, "broker_bench: %s: %s\n", what, why);
    exit(1);
}

static rd_kafka_conf_t *conf_new(const bench_t *b, const char *const *kv)
{
    char e[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "bootstrap.servers", b->broker, e, sizeof e))
        die("conf", e);
    for (; kv && kv[0]; kv += 2)
        if (rd_kafka_conf_set(c, kv[0], kv[1], e, sizeof e))
            die(kv[0], e);
    return c;
}

static void create_topic(const bench_t *b, const char *name, int partitions)
{
    char e[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf_new(b, NULL), e, sizeof e);
    if (!rk)
        die("rd_kafka_new", e);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, partitions, 1, e, sizeof e);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev || rd_kafka_event_error(ev))
        die("create topic", ev ? rd_kafka_event_error_string(ev) : "timeout");
    size_t n;
    const rd_kafka_topic_result_t **r =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    if (n != 1 || (rd_kafka_topic_result_error(r[0]) &&
                   rd_kafka_topic_result_error(r[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS))
        die("create topic", n ? rd_kafka_topic_result_error_string(r[0]) : "no result");
    rd_kafka_event_destroy(ev);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

/* ---- produce ------------------------------------------------------------------- */

typedef struct dr_count {
    long ok, failed;
    double last;
    char err[256];
} dr_count_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    dr_count_t *c = opaque;
    if (m->err) {
        if (!c->failed++)
            snprintf(c->err, sizeof c->err, "%s", rd_kafka_err2str(m->err));
    } else
        c->ok++;
}

static void bench_produce(const bench_t *b, const char *acks, int partitions, int large)
{
    char topic[128], e[256];
    snprintf(topic, sizeof topic, "bench-p%d-acks%s-%s", partitions, acks,
             large ? "large" : "default");
    create_topic(b, topic, partitions);
    const char *def[] = {"acks", acks, "queue.buffering.max.messages", "2000000",
                         "queue.buffering.max.kbytes", "2097151", NULL};
    const char *big[] = {"acks", acks, "queue.buffering.max.messages", "2000000",
                         "queue.buffering.max.kbytes", "2097151", "linger.ms", "50",
                         "batch.num.messages", "100000", "batch.size", "16000000", NULL};
    rd_kafka_conf_t *c = conf_new(b, large ? big : def);
    dr_count_t cnt = {0};
    rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
    rd_kafka_conf_set_opaque(c, &cnt);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e);
    if (!rk)
        die("rd_kafka_new", e);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    char val[VALUE_BYTES];
    memset(val, 'v', sizeof val);
    /* spread records over partitions like a keyless producer would, but
     * deterministically: round-robin in blocks so batches stay full */
    double t0 = now_s();
    for (long i = 0; i < b->records; i++) {
        memcpy(val, &i, sizeof i);
        int32_t part = (int32_t)((i / 1000) % partitions);
        while (rd_kafka_produce(rkt, part, RD_KAFKA_MSG_F_COPY, val, sizeof val, NULL, 0, NULL)) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce", rd_kafka_err2str(rd_kafka_last_error()));
            rd_kafka_poll(rk, 1);
        }
        if ((i & 4095) == 0)
            rd_kafka_poll(rk, 0);
    }
    while (rd_kafka_outq_len(rk) > 0)
        rd_kafka_flush(rk, 100);
    double secs = now_s() - t0;
    if (cnt.failed)
        die("delivery", cnt.err);
    printf("produce\teddy acks=%s\tpartitions=%d\tbatching=%s\t%ld\t%.3f\t%.0f\t%.1f\n", acks,
           partitions, large ? "large" : "default", cnt.ok, secs, (double)cnt.ok / secs,
           (double)cnt.ok * VALUE_BYTES / secs / 1e6);
    fflush(stdout);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
}

/* ---- consume ------------------------------------------------------------------- */

static void bench_consume(const bench_t *b, int partitions)
{
    char topic[128], e[256];
    snprintf(topic, sizeof topic, "bench-p%d-acks1-default", partitions);
    /* librdkafka 2.0 stops fetching while its local queue is over
     * queued.min.messages / queued.max.messages.kbytes and looks again only
     * about once a second, which shows up as ~0.9 s stalls: let the queue
     * hold the whole run instead (this measures the broker, not that pause). */
    const char *kv[] = {"queued.min.messages", "10000000", "queued.max.messages.kbytes", "2097151",
                        "enable.partition.eof", "false", NULL};
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf_new(b, kv), e, sizeof e);
    if (!rk)
        die("rd_kafka_new", e);
    long want = 0;
    for (int p = 0; p < partitions; p++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000))
            die("watermarks", topic);
        want += (long)(hi - lo);
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    for (int p = 0; p < partitions; p++)
        rd_kafka_consume_start_queue(rkt, p, RD_KAFKA_OFFSET_BEGINNING, q);
    /* the clock starts at the first record: client start-up (metadata,
     * offset lookup; librdkafka sometimes idles 0.5 s there) is not the
     * broker's throughput */
    double t0 = 0, t_start = now_s();
    long got = 0;
    size_t bytes = 0;
    rd_kafka_message_t *batch[10000];
    while (got < want) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 1000, batch, 10000);
        if (n < 0)
            die("consume", rd_kafka_err2str(rd_kafka_last_error()));
        if (n == 0 && now_s() - t_start > 120)
            die("consume", "stalled");
        if (n > 0 && !t0)
            t0 = now_s();
        for (ssize_t i = 0; i < n; i++) {
            if (batch[i]->err)
                die("consume", rd_kafka_message_errstr(batch[i]));
            got++;
            bytes += batch[i]->len;
            rd_kafka_message_destroy(batch[i]);
        }
    }
    double secs = now_s() - t0;
    printf("consume\teddy\tpartitions=%d\t%ld\t%.3f\t%.0f\t%.1f\n", partitions, got, secs,
           (double)got / secs, (double)bytes / secs / 1e6);
    fflush(stdout);
    for (int p = 0; p < partitions; p++)
        rd_kafka_consume_stop(rkt, p);
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
}

/* ---- end-to-end latency ---------------------------------------------------------- */

typedef struct lat {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    long expect;
    int32_t *us;   /* one sample per record, microseconds */
    long n;
    volatile int ready, done;
} lat_t;

static void *lat_consumer(void *arg)
{
    lat_t *l = arg;
    /* one message at a time: consume_batch_queue would hold a partial batch
     * until its timeout, which is exactly the delay being measured */
    while (!l->done && l->n < l->expect) {
        rd_kafka_message_t *m = rd_kafka_consume_queue(l->q, 100);
        if (!m)
            continue;
        int64_t now = now_ns(), sent = 0;
        if (!m->err && m->len >= 8)
            memcpy(&sent, m->payload, sizeof sent);
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            l->ready = 1;
        else if (sent && l->n < l->expect) /* sent == 0: the warm-up record */
            l->us[l->n++] = (int32_t)((now - sent) / 1000);
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

static void bench_latency(const bench_t *b, const char *acks)
{
    char topic[128], e[256];
    snprintf(topic, sizeof topic, "bench-latency-acks%s", acks);
    create_topic(b, topic, 1);
    lat_t l = {0};
    l.expect = (long)(b->rate * b->duration);
    l.us = calloc((size_t)l.expect, sizeof *l.us);
    const char *ckv[] = {"enable.partition.eof", "true", "fetch.wait.max.ms", "100", NULL};
    l.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf_new(b, ckv), e, sizeof e);
    if (!l.rk)
        die("rd_kafka_new", e);
    rd_kafka_topic_t *crkt = rd_kafka_topic_new(l.rk, topic, NULL);
    l.q = rd_kafka_queue_new(l.rk);
    rd_kafka_consume_start_queue(crkt, 0, RD_KAFKA_OFFSET_END, l.q);
    pthread_t th;
    pthread_create(&th, NULL, lat_consumer, &l);
    double t_ready = now_s();
    while (!l.ready && now_s() - t_ready < 30)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    if (!l.ready)
        die("latency", "consumer never reached the end of the topic");

    const char *pkv[] = {"acks", acks, "linger.ms", "0", NULL};
    dr_count_t cnt = {0};
    rd_kafka_conf_t *pc = conf_new(b, pkv);
    rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
    rd_kafka_conf_set_opaque(pc, &cnt);
    rd_kafka_t *prk = rd_kafka_new(RD_KAFKA_PRODUCER, pc, e, sizeof e);
    rd_kafka_topic_t *prkt = rd_kafka_topic_new(prk, topic, NULL);
    /* warm the connection and metadata before the clock starts */
    char val[VALUE_BYTES];
    memset(val, 'l', sizeof val);
    int64_t zero = 0;
    memcpy(val, &zero, sizeof zero);
    rd_kafka_produce(prkt, 0, RD_KAFKA_MSG_F_COPY, val, sizeof val, NULL, 0, NULL);
    rd_kafka_flush(prk, 10000);

    int64_t interval = 1000000000 / b->rate, t = now_ns();
    for (long i = 0; i < l.expect; i++) {
        t += interval;
        struct timespec ts = {t / 1000000000, t % 1000000000};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        int64_t sent = now_ns();
        memcpy(val, &sent, sizeof sent);
        rd_kafka_produce(prkt, 0, RD_KAFKA_MSG_F_COPY, val, sizeof val, NULL, 0, NULL);
        rd_kafka_poll(prk, 0);
    }
    rd_kafka_flush(prk, 30000);
    double wait_until = now_s() + 30;
    while (l.n < l.expect && now_s() < wait_until)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    l.done = 1;
    pthread_join(th, NULL);
    long n = l.n;
    qsort(l.us, (size_t)n, sizeof *l.us, cmp_i32);
#define PCT(p) (n ? l.us[(long)((double)(n - 1) * (p))] / 1000.0 : -1)
    printf("latency\teddy acks=%s\tpartitions=1\trate=%ld\t%ld\t%.3f\t%.3f\t%.3f\t%.3f\n", acks, b->rate,
           n, PCT(0.50), PCT(0.99), PCT(0.999), n ? l.us[n - 1] / 1000.0 : -1);
    fflush(stdout);
    rd_kafka_consume_stop(crkt, 0);
    rd_kafka_topic_destroy(prkt);
    rd_kafka_destroy(prk);
    rd_kafka_queue_destroy(l.q);
    rd_kafka_topic_destroy(crkt);
    rd_kafka_destroy(l.rk);
    free(l.us);
}

int main(int argc, char **argv)
{
    bench_t b = {.broker = "127.0.0.1:9092", .records = 1000000, .rate = 10000, .duration = 5};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--broker"))
            b.broker = argv[i + 1];
        else if (!strcmp(argv[i], "--records"))
            b.records = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate"))
            b.rate = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration"))
            b.duration = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--only"))
            b.only = argv[i + 1];
        else {
            fprintf(stderr, "usage: broker_bench --broker HOST:PORT [--records N] [--rate R] "
                            "[--duration S] [--only produce|consume|latency]\n");
            return 2;
        }
    }
    if (b.records < 1 || b.rate < 1 || b.duration <= 0) {
        fprintf(stderr, "broker_bench: --records, --rate and --duration must be positive\n");
        return 2;
    }
    int all = !b.only;
    if (all || !strcmp(b.only, "produce"))
        for (int large = 0; large < 2; large++)
            for (int pi = 0; pi < 2; pi++) {
                bench_produce(&b, "1", pi ? 8 : 1, large);
                bench_produce(&b, "all", pi ? 8 : 1, large);
            }
    if (all || !strcmp(b.only, "consume")) {
        bench_consume(&b, 1);
        bench_consume(&b, 8);
    }
    if (all || !strcmp(b.only, "latency")) {
        bench_latency(&b, "1");
        bench_latency(&b, "all");
    }
    return 0;
}
