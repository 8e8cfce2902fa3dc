/*
 * it_groups_rdkafka — a librdkafka consumer group under churn: 3 members join
 * and leave (one of them twice) while a producer keeps producing. Checks that
 * no record is lost (every value is consumed at least once), and counts the
 * duplicates (at-least-once: a record consumed by a member that left before
 * its offset was committed is consumed again by its successor). A duplicate
 * delivered twice to the same member instance would be a coordinator bug and
 * fails the test.
 *
 * usage: it_groups_rdkafka BROKER TOPIC N TIME_MULT
 * Prints "produced N consumed M lost L duplicates D" and exits 0 on success.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

static const char *broker, *topic;
static int n_records;
static double mult = 1.0;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *seen;       /* delivery count per record (capped at 255) */
static int16_t *first_by;   /* member instance that first consumed it */
static long same_member_dups, consumed;
static atomic_int produced_done;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "FAIL: %s: %s\n", what, why);
    exit(1);
}

static void *producer(void *arg)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", broker, err, sizeof err);
    rd_kafka_conf_set(conf, "acks", "all", err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk)
        die("producer", err);
    /* Spread the records over ~8 s so members come and go while it runs. */
    int chunks = 40;
    for (int c = 0; c < chunks; c++) {
        for (int i = c * n_records / chunks; i < (c + 1) * n_records / chunks; i++) {
            char key[32], val[32];
            snprintf(key, sizeof key, "key-%d", i % 97);
            snprintf(val, sizeof val, "%d", i);
            while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                     RD_KAFKA_V_VALUE(val, strlen(val)),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) ==
                   RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 10);
        }
        rd_kafka_poll(rk, 0);
        usleep(200000);
    }
    if (rd_kafka_flush(rk, (int)(30000 * mult)))
        die("producer", "flush timed out");
    rd_kafka_destroy(rk);
    atomic_store(&produced_done, 1);
    return NULL;
}

typedef struct member {
    int id;          /* instance number (a restart is a new instance) */
    int64_t start_ms, stop_ms; /* relative to t0; stop_ms < 0 = run to the end */
    long got;
} member_t;

static int64_t t0;
static atomic_int stop_all;

static void *member_run(void *arg)
{
    member_t *m = arg;
    while (now_ms() - t0 < m->start_ms)
        usleep(10000);
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char cid[32];
    snprintf(cid, sizeof cid, "member-%d", m->id);
    const char *kv[][2] = {{"bootstrap.servers", broker},
                           {"group.id", "churn"},
                           {"client.id", cid},
                           {"auto.offset.reset", "earliest"},
                           {"session.timeout.ms", "6000"},
                           {"heartbeat.interval.ms", "500"},
                           {"auto.commit.interval.ms", "500"}};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, sizeof err))
            die(kv[i][0], err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk)
        die("consumer", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    fprintf(stderr, "member %d joins at %.1fs\n", m->id, (now_ms() - t0) / 1000.0);
    while (!atomic_load(&stop_all) && (m->stop_ms < 0 || now_ms() - t0 < m->stop_ms)) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 100);
        if (!msg)
            continue;
        if (!msg->err && msg->len > 0 && msg->len < 16) {
            char buf[16];
            memcpy(buf, msg->payload, msg->len);
            buf[msg->len] = 0;
            int v = atoi(buf);
            if (v >= 0 && v < n_records) {
                pthread_mutex_lock(&mu);
                if (seen[v] && first_by[v] == m->id)
                    same_member_dups++;
                if (!seen[v])
                    first_by[v] = (int16_t)m->id;
                if (seen[v] < 255)
                    seen[v]++;
                consumed++;
                pthread_mutex_unlock(&mu);
                m->got++;
            }
        }
        rd_kafka_message_destroy(msg);
    }
    fprintf(stderr, "member %d leaves at %.1fs after %ld records\n", m->id, (now_ms() - t0) / 1000.0,
            m->got);
    rd_kafka_consumer_close(rk); /* commits stored offsets, LeaveGroup */
    rd_kafka_destroy(rk);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s BROKER TOPIC N TIME_MULT\n", argv[0]);
        return 2;
    }
    broker = argv[1];
    topic = argv[2];
    n_records = atoi(argv[3]);
    mult = atof(argv[4]);
    seen = calloc((size_t)n_records, 1);
    first_by = calloc((size_t)n_records, sizeof *first_by);
    t0 = now_ms();
    /* Join/leave schedule (ms): member 1 leaves mid-run and comes back as 4. */
    member_t ms[] = {
        {1, 0, 4000, 0},
        {2, 1500, 7000, 0},
        {3, 3000, -1, 0},
        {4, 5500, -1, 0},
    };
    int nm = sizeof ms / sizeof *ms;
    pthread_t pt, mt[8];
    pthread_create(&pt, NULL, producer, NULL);
    for (int i = 0; i < nm; i++)
        pthread_create(&mt[i], NULL, member_run, &ms[i]);
    pthread_join(pt, NULL);
    /* Wait until every record was consumed (bounded). */
    int64_t deadline = now_ms() + (int64_t)(60000 * mult);
    for (;;) {
        int missing = 0;
        pthread_mutex_lock(&mu);
        for (int i = 0; i < n_records; i++)
            missing += !seen[i];
        pthread_mutex_unlock(&mu);
        if (!missing || now_ms() > deadline)
            break;
        usleep(100000);
    }
    atomic_store(&stop_all, 1);
    for (int i = 0; i < nm; i++)
        pthread_join(mt[i], NULL);
    long lost = 0, dups = 0;
    for (int i = 0; i < n_records; i++) {
        if (!seen[i])
            lost++;
        else
            dups += seen[i] - 1;
    }
    printf("produced %d consumed %ld lost %ld duplicates %ld (same-member duplicates %ld)\n",
           n_records, consumed, lost, dups, same_member_dups);
    for (int i = 0; i < nm; i++)
        printf("member %d consumed %ld\n", ms[i].id, ms[i].got);
    int rc = 0;
    if (lost) {
        fprintf(stderr, "FAIL: %ld records never consumed\n", lost);
        rc = 1;
    }
    if (same_member_dups) {
        fprintf(stderr, "FAIL: %ld records delivered twice to the same member\n", same_member_dups);
        rc = 1;
    }
    /* At-least-once bound: each leave can replay at most what its member read
     * since its last auto-commit; with clean leaves (commit on close) that is
     * small. Anything near the total means offsets were not honoured. */
    if (dups > n_records / 5) {
        fprintf(stderr, "FAIL: %ld duplicates for %d records: commits are not being honoured\n", dups,
                n_records);
        rc = 1;
    }
    for (int i = 0; i < nm; i++)
        if (!ms[i].got)
            fprintf(stderr, "note: member %d consumed nothing\n", ms[i].id);
    free(seen);
    free(first_by);
    return rc;
}
