/*
 * it_rdkafka_1m — librdkafka against a real `eddy broker`: 1,000,000 records
 * (times EDDY_TEST_SCALE) over 8 partitions with acks=all, read back with no
 * consumer group and checked record by record:
 *   - every record acknowledged, none failed;
 *   - read back byte-identical (key and value regenerated from the sequence
 *     number the value carries; lengths 1..200, arbitrary bytes);
 *   - exactly once: no sequence twice, none missing, each partition's high
 *     watermark equal to the records it got;
 *   - in per-partition order: offsets dense from 0 and sequence numbers
 *     increasing within each partition, at the offset the delivery report gave;
 *   - the same key always in the same partition, and that partition is what
 *     librdkafka's default partitioner (consistent_random) promises for a
 *     non-empty key: crc32(key) % 8, CRC-32 as in zlib (checked here with our
 *     own table, not librdkafka's code). Null and empty keys go anywhere.
 * The broker runs as a child process on 127.0.0.1:0 with a temp data dir;
 * the group teardown stops it and removes the directory even on failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#define NPART 8
#define MAX_VALUE 200
#define NKEYS 5003 /* distinct non-empty keys */
#define BASE_RECORDS 1000000

typedef struct it_state {
    pid_t broker;
    char *dir;
    char bootstrap[64];
    double mult;
    int64_t n;            /* records */
    int32_t *dr_part;     /* per sequence: partition and offset from the delivery report */
    int64_t *dr_off;
    int64_t delivered, failed;
    char first_err[256];
} it_state_t;

/* ---- deterministic record contents ------------------------------------------ */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Value of record seq: 8 bytes of seq (little-endian) then pseudo-random
 * bytes; total length 8..MAX_VALUE. Returns the length. */
static size_t make_value(uint64_t seq, unsigned char *buf)
{
    uint64_t h = splitmix64(seq);
    size_t len = 8 + h % (MAX_VALUE - 8 + 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(seq >> (8 * i));
    for (size_t i = 8; i < len; i++) {
        if ((i & 7) == 0)
            h = splitmix64(h);
        buf[i] = (unsigned char)(h >> (8 * (i & 7)));
    }
    return len;
}

/* Key of record seq: NULL (1 in 16), empty (1 in 16), else "k<n>". */
static const char *make_key(uint64_t seq, char *buf, size_t *len)
{
    if (seq % 16 == 0) {
        *len = 0;
        return NULL;
    }
    if (seq % 16 == 1) {
        *len = 0;
        return "";
    }
    *len = (size_t)snprintf(buf, 32, "k%u", (unsigned)(seq % NKEYS));
    return buf;
}

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320, init and xorout 0xFFFFFFFF). */
static uint32_t crc32_ieee(const void *data, size_t n)
{
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    while (n--)
        c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the broker child process -------------------------------------------------- */

static int broker_start(it_state_t *st)
{
    const char *eddy = getenv("EDDY");
    char path[4096], data[4096], logp[4096];
    if (eddy && *eddy)
        snprintf(path, sizeof path, "%s", eddy);
    else
        snprintf(path, sizeof path, "%s/eddy",
                 getenv("EDDY_BINARY_DIR") ? getenv("EDDY_BINARY_DIR") : "build");
    st->dir = tu_tmpdir();
    snprintf(data, sizeof data, "%s/data", st->dir);
    snprintf(logp, sizeof logp, "%s/broker.log", st->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(path, "eddy", "broker", "--data", data, "--listen", "127.0.0.1:0", (char *)NULL);
        _exit(127);
    }
    st->broker = pid;
    double deadline = now_s() + 15 * st->mult;
    while (now_s() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            st->broker = 0;
            fprintf(stderr, "broker exited during start-up (status %d); see %s\n", status, logp);
            return -1;
        }
        FILE *f = fopen(logp, "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f)) {
            const char *m = strstr(line, "listening on 127.0.0.1:");
            if (m) {
                int port = atoi(m + strlen("listening on 127.0.0.1:"));
                snprintf(st->bootstrap, sizeof st->bootstrap, "127.0.0.1:%d", port);
                fclose(f);
                return 0;
            }
        }
        if (f)
            fclose(f);
        usleep(20000);
    }
    fprintf(stderr, "broker did not start listening within %.0f s\n", 15 * st->mult);
    return -1;
}

static void broker_stop(it_state_t *st)
{
    if (st->broker > 0) {
        kill(st->broker, SIGTERM);
        double deadline = now_s() + 20 * st->mult;
        int status;
        while (waitpid(st->broker, &status, WNOHANG) == 0) {
            if (now_s() > deadline) {
                fprintf(stderr, "broker ignored SIGTERM; killing it\n");
                kill(st->broker, SIGKILL);
                waitpid(st->broker, &status, 0);
                break;
            }
            usleep(20000);
        }
        st->broker = 0;
    }
    if (st->dir) {
        tu_rmrf(st->dir);
        free(st->dir);
        st->dir = NULL;
    }
}

/* ---- fixtures -------------------------------------------------------------------- */

static rd_kafka_conf_t *base_conf(const it_state_t *st)
{
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", st->bootstrap, e, sizeof e))
        fail_msg("%s", e);
    return conf;
}

static void conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char e[256];
    if (rd_kafka_conf_set(conf, k, v, e, sizeof e))
        fail_msg("%s=%s: %s", k, v, e);
}

static int group_setup(void **state)
{
    it_state_t *st = calloc(1, sizeof *st);
    const char *m = getenv("TEST_TIMEOUT_MULT"), *s = getenv("EDDY_TEST_SCALE");
    st->mult = m && atof(m) > 0 ? atof(m) : 1;
    double scale = s && atof(s) > 0 ? atof(s) : 1;
    st->n = (int64_t)(BASE_RECORDS * scale);
    if (st->n < 1000)
        st->n = 1000;
    st->dr_part = malloc(sizeof *st->dr_part * (size_t)st->n);
    st->dr_off = malloc(sizeof *st->dr_off * (size_t)st->n);
    for (int64_t i = 0; i < st->n; i++)
        st->dr_part[i] = -1;
    *state = st;
    if (broker_start(st)) {
        broker_stop(st);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    it_state_t *st = *state;
    broker_stop(st);
    free(st->dr_part);
    free(st->dr_off);
    free(st);
    return 0;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_create_topic_with_8_partitions(void **state)
{
    it_state_t *st = *state;
    char e[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, base_conf(st), e, sizeof e);
    assert_non_null(rk);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new("million", NPART, 1, e, sizeof e);
    assert_non_null(nt);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)(30000 * st->mult));
    assert_non_null(ev);
    assert_int_equal(rd_kafka_event_error(ev), 0);
    size_t cnt;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
    assert_int_equal(cnt, 1);
    if (rd_kafka_topic_result_error(res[0]))
        fail_msg("CreateTopics: %s", rd_kafka_topic_result_error_string(res[0]));
    rd_kafka_event_destroy(ev);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    it_state_t *st = opaque;
    uint64_t seq = (uint64_t)(uintptr_t)m->_private;
    if (m->err) {
        if (st->failed++ == 0)
            snprintf(st->first_err, sizeof st->first_err, "record %llu: %s",
                     (unsigned long long)seq, rd_kafka_err2str(m->err));
        return;
    }
    st->delivered++;
    st->dr_part[seq] = m->partition;
    st->dr_off[seq] = m->offset;
}

static void test_produce_records_with_acks_all(void **state)
{
    it_state_t *st = *state;
    char e[256];
    rd_kafka_conf_t *conf = base_conf(st);
    conf_set(conf, "acks", "all");
    conf_set(conf, "queue.buffering.max.messages", "1000000");
    conf_set(conf, "message.timeout.ms", "120000");
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, st);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    assert_non_null(rk);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, "million", NULL);

    double t0 = now_s();
    unsigned char val[MAX_VALUE];
    char keybuf[32];
    for (int64_t i = 0; i < st->n; i++) {
        size_t vlen = make_value((uint64_t)i, val), klen;
        const char *key = make_key((uint64_t)i, keybuf, &klen);
        while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, val, vlen, key,
                                klen, (void *)(uintptr_t)i) == -1) {
            rd_kafka_resp_err_t err = rd_kafka_last_error();
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                fail_msg("produce %lld: %s", (long long)i, rd_kafka_err2str(err));
            rd_kafka_poll(rk, 10);
        }
        if ((i & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    double deadline = now_s() + 180 * st->mult;
    while (rd_kafka_outq_len(rk) > 0 && now_s() < deadline)
        rd_kafka_flush(rk, 100);
    double secs = now_s() - t0;
    int left = rd_kafka_outq_len(rk);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    print_message("produced %lld records with acks=all in %.2f s (%.0f records/s)\n",
                  (long long)st->n, secs, (double)st->n / secs);
    assert_int_equal(left, 0);
    if (st->failed)
        fail_msg("%lld records failed; first: %s", (long long)st->failed, st->first_err);
    assert_int_equal(st->delivered, st->n);

    /* the same key always in the same partition: crc32(key) % NPART */
    for (int64_t i = 0; i < st->n; i++) {
        size_t klen;
        const char *key = make_key((uint64_t)i, keybuf, &klen);
        assert_in_range(st->dr_part[i], 0, NPART - 1);
        if (key && klen) {
            int32_t want = (int32_t)(crc32_ieee(key, klen) % NPART);
            if (st->dr_part[i] != want)
                fail_msg("record %lld key %s in partition %d, crc32 %% %d = %d", (long long)i,
                         key, st->dr_part[i], NPART, want);
        }
    }
}

static void test_consume_back_byte_identical_in_order_exactly_once(void **state)
{
    it_state_t *st = *state;
    char e[256];
    rd_kafka_conf_t *conf = base_conf(st);
    conf_set(conf, "enable.partition.eof", "false");
    conf_set(conf, "fetch.message.max.bytes", "4194304");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    assert_non_null(rk);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, "million", NULL);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    for (int p = 0; p < NPART; p++)
        assert_int_equal(rd_kafka_consume_start_queue(rkt, p, RD_KAFKA_OFFSET_BEGINNING, q), 0);

    int64_t expect_end[NPART] = {0}, next_off[NPART] = {0}, last_seq[NPART];
    for (int p = 0; p < NPART; p++)
        last_seq[p] = -1;
    for (int64_t i = 0; i < st->n; i++)
        if (st->dr_off[i] + 1 > expect_end[st->dr_part[i]])
            expect_end[st->dr_part[i]] = st->dr_off[i] + 1;
    uint8_t *seen = calloc((size_t)st->n, 1);
    int64_t got = 0;
    unsigned char val[MAX_VALUE];
    char keybuf[32];
    rd_kafka_message_t *batch[8192];
    double t0 = now_s(), deadline = t0 + 180 * st->mult;
    while (got < st->n) {
        if (now_s() > deadline)
            fail_msg("consumed %lld of %lld records before the deadline", (long long)got,
                     (long long)st->n);
        ssize_t cnt = rd_kafka_consume_batch_queue(q, 100, batch, 8192);
        assert_true(cnt >= 0);
        for (ssize_t j = 0; j < cnt; j++) {
            rd_kafka_message_t *m = batch[j];
            if (m->err)
                fail_msg("consume error on partition %d: %s", m->partition,
                         rd_kafka_message_errstr(m));
            int32_t p = m->partition;
            assert_in_range(p, 0, NPART - 1);
            if (m->offset != next_off[p])
                fail_msg("partition %d: offset %lld where %lld was next", p,
                         (long long)m->offset, (long long)next_off[p]);
            next_off[p]++;
            assert_true(m->len >= 8);
            uint64_t seq = 0;
            for (int b = 0; b < 8; b++)
                seq |= (uint64_t)((unsigned char *)m->payload)[b] << (8 * b);
            if (seq >= (uint64_t)st->n)
                fail_msg("partition %d offset %lld: sequence %llu out of range", p,
                         (long long)m->offset, (unsigned long long)seq);
            if (seen[seq]++)
                fail_msg("record %llu delivered twice", (unsigned long long)seq);
            if ((int64_t)seq <= last_seq[p])
                fail_msg("partition %d: record %llu after %lld (order broken)", p,
                         (unsigned long long)seq, (long long)last_seq[p]);
            last_seq[p] = (int64_t)seq;
            if (p != st->dr_part[seq] || m->offset != st->dr_off[seq])
                fail_msg("record %llu at %d/%lld; its delivery report said %d/%lld",
                         (unsigned long long)seq, p, (long long)m->offset, st->dr_part[seq],
                         (long long)st->dr_off[seq]);
            size_t vlen = make_value(seq, val), klen;
            const char *key = make_key(seq, keybuf, &klen);
            if (m->len != vlen || memcmp(m->payload, val, vlen))
                fail_msg("record %llu: value differs (%zu bytes, want %zu)",
                         (unsigned long long)seq, m->len, vlen);
            if (key == NULL ? m->key != NULL
                            : (m->key == NULL || m->key_len != klen || memcmp(m->key, key, klen)))
                fail_msg("record %llu: key differs", (unsigned long long)seq);
            got++;
            rd_kafka_message_destroy(m);
        }
    }
    double secs = now_s() - t0;
    print_message("consumed %lld records in %.2f s (%.0f records/s)\n", (long long)got, secs,
                  (double)got / secs);
    for (int p = 0; p < NPART; p++) {
        rd_kafka_consume_stop(rkt, p);
        assert_int_equal(next_off[p], expect_end[p]);
        int64_t lo, hi;
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, "million", p, &lo, &hi,
                                                          (int)(10000 * st->mult)),
                         0);
        assert_int_equal(lo, 0);
        assert_int_equal(hi, expect_end[p]); /* nothing beyond what was acknowledged */
    }
    free(seen);
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_topic_with_8_partitions),
        cmocka_unit_test(test_produce_records_with_acks_all),
        cmocka_unit_test(test_consume_back_byte_identical_in_order_exactly_once),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
