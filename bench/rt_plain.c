/*
 * rt_plain — the peer of bench/runtime_bench.py: the same work as the
 * runtime's bench jobs, done by one process with a plain librdkafka consume
 * loop (the ceiling the runtime is compared against).
 *
 *   rt_plain passthrough BROKER IN OUT N     consume N records, produce each to OUT
 *   rt_plain count BROKER IN N STORE_URL     consume N records, parse "user,item,action",
 *                                            count per item, write one event per item
 * Prints "records=N seconds=S rate=R".
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_time.h"
#include "storage/store.h"

typedef struct item {
    char name[48];
    long count;
} item_t;

static item_t *items;
static size_t items_cap = 1 << 16, items_n;

static void count_value(const char *v, size_t len)
{
    const char *a = v ? memchr(v, ',', len) : NULL;
    if (!a)
        return;
    const char *item = a + 1;
    const char *b = memchr(item, ',', len - (size_t)(item - v));
    size_t il = b ? (size_t)(b - item) : len - (size_t)(item - v);
    if (il == 0 || il >= 48)
        return;
    unsigned long h = 5381;
    for (size_t i = 0; i < il; i++)
        h = h * 33 + (unsigned char)item[i];
    size_t j = h & (items_cap - 1);
    while (items[j].name[0] && (strlen(items[j].name) != il || memcmp(items[j].name, item, il)))
        j = (j + 1) & (items_cap - 1);
    if (!items[j].name[0]) {
        memcpy(items[j].name, item, il);
        items_n++;
    }
    items[j].count++;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: rt_plain passthrough BROKER IN OUT N | count BROKER IN N STORE_URL\n");
        return 2;
    }
    int pass = !strcmp(argv[1], "passthrough");
    const char *broker = argv[2], *in = argv[3];
    long long n = atoll(pass ? argv[5] : argv[4]);
    char es[512];
    rd_kafka_conf_t *cc = rd_kafka_conf_new();
    rd_kafka_conf_set(cc, "bootstrap.servers", broker, es, sizeof es);
    rd_kafka_conf_set(cc, "queued.min.messages", "200000", es, sizeof es);
    rd_kafka_conf_set(cc, "fetch.wait.max.ms", "50", es, sizeof es);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, cc, es, sizeof es);
    rd_kafka_t *prod = NULL;
    if (pass) {
        rd_kafka_conf_t *pc = rd_kafka_conf_new();
        rd_kafka_conf_set(pc, "bootstrap.servers", broker, es, sizeof es);
        rd_kafka_conf_set(pc, "linger.ms", "5", es, sizeof es);
        rd_kafka_conf_set(pc, "queue.buffering.max.messages", "1000000", es, sizeof es);
        rd_kafka_conf_set(pc, "batch.num.messages", "10000", es, sizeof es);
        prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, es, sizeof es);
    }
    items = calloc(items_cap, sizeof *items);
    int64_t t0 = core_mono_us();
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, in, NULL);
    const struct rd_kafka_metadata *md;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1) {
        fprintf(stderr, "no metadata for %s\n", in);
        return 1;
    }
    int np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    for (int p = 0; p < np; p++)
        rd_kafka_consume_start_queue(rkt, p, RD_KAFKA_OFFSET_BEGINNING, q);
    rd_kafka_message_t *msgs[4096];
    long long got = 0;
    while (got < n) {
        ssize_t k = rd_kafka_consume_batch_queue(q, 1000, msgs, 4096);
        for (ssize_t i = 0; i < k; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (!m->err) {
                got++;
                if (pass) {
                    while (rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(argv[4]),
                                             RD_KAFKA_V_KEY(m->key, m->key_len),
                                             RD_KAFKA_V_VALUE(m->payload, m->len),
                                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                             RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        rd_kafka_poll(prod, 10);
                } else {
                    count_value(m->payload, m->len);
                }
            }
            rd_kafka_message_destroy(m);
        }
        if (prod)
            rd_kafka_poll(prod, 0);
    }
    if (prod)
        rd_kafka_flush(prod, 60000);
    else {
        store_t *s;
        if (store_open(argv[5], NULL, &s, es, sizeof es)) {
            fprintf(stderr, "store: %s\n", es);
            return 1;
        }
        store_batch_t *b;
        store_batch_begin(s, 0, &b);
        for (size_t j = 0; j < items_cap; j++) {
            if (!items[j].name[0])
                continue;
            char props[64];
            snprintf(props, sizeof props, "{\"count\":%ld}", items[j].count);
            store_event_t ev = {.event = "$set", .entity_type = "item", .entity_id = items[j].name,
                                .properties = props, .event_time_given = true};
            store_batch_put_event(b, 1, 0, &ev, es, sizeof es);
        }
        if (store_batch_commit(b, NULL, es, sizeof es))
            fprintf(stderr, "commit: %s\n", es);
        store_close(s);
    }
    double sec = (core_mono_us() - t0) / 1e6;
    printf("records=%lld seconds=%.3f rate=%.0f\n", got, sec, got / sec);
    for (int p = 0; p < np; p++)
        rd_kafka_consume_stop(rkt, p);
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    if (prod)
        rd_kafka_destroy(prod);
    free(items);
    return 0;
}
