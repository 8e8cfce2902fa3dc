/*
 * eddy gen clicklog — writes generated click log lines (jobs/clicklog/clicklog_gen.h)
 * to a file, stdout, or a topic (one record per line, keyed by user id so a
 * user's clicks stay in order within one partition).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "cli/cli.h"
#include "core/core_conf.h"
#include "core/core_time.h"
#include "jobs/clicklog/clicklog_gen.h"

typedef struct gen_conf {
    int64_t users, items, lines, rate, seed;
    char *output, *topic, *broker;
} gen_conf_t;

static const core_opt_t gen_opts[] = {
    {"users", CORE_OPT_INT, "1000", "number of distinct users", offsetof(gen_conf_t, users)},
    {"items", CORE_OPT_INT, "500", "number of distinct items", offsetof(gen_conf_t, items)},
    {"lines", CORE_OPT_INT, "10000", "lines to write (0 = until interrupted)",
     offsetof(gen_conf_t, lines)},
    {"rate", CORE_OPT_INT, "0", "lines per second (0 = as fast as possible)",
     offsetof(gen_conf_t, rate)},
    {"seed", CORE_OPT_INT, "42", "random seed (same seed, same lines)", offsetof(gen_conf_t, seed)},
    {"output", CORE_OPT_STR, NULL, "write to this file ('-' = stdout)", offsetof(gen_conf_t, output)},
    {"topic", CORE_OPT_STR, NULL, "produce to this topic instead of a file",
     offsetof(gen_conf_t, topic)},
    {"broker", CORE_OPT_STR, "127.0.0.1:9092", "broker HOST:PORT (with --topic)",
     offsetof(gen_conf_t, broker)},
    CORE_OPT_END,
};

static volatile sig_atomic_t gen_stop;
static void on_signal(int sig)
{
    (void)sig;
    gen_stop = 1;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err)
        ++*(int64_t *)opaque;
}

/* Sleeps so that `done` lines take done/rate seconds since start. */
static void pace(int64_t start_us, int64_t done, int64_t rate)
{
    if (rate <= 0)
        return;
    int64_t due = start_us + done * 1000000 / rate;
    int64_t now = core_mono_us();
    if (due > now) {
        struct timespec ts = {(time_t)((due - now) / 1000000), (long)((due - now) % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
}

static rd_kafka_t *gen_producer(const char *broker, int64_t *failed, char *err, size_t errsz)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    if (rd_kafka_conf_set(kc, "bootstrap.servers", broker, err, errsz) ||
        rd_kafka_conf_set(kc, "linger.ms", "20", err, errsz) ||
        rd_kafka_conf_set(kc, "acks", "all", err, errsz)) {
        rd_kafka_conf_destroy(kc);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
    rd_kafka_conf_set_opaque(kc, failed);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, errsz);
    if (!rk)
        rd_kafka_conf_destroy(kc);
    return rk;
}

static int gen_clicklog(gen_conf_t *c)
{
    char err[512];
    FILE *out = NULL;
    rd_kafka_t *rk = NULL;
    int64_t failed = 0;
    if (c->topic) {
        rk = gen_producer(c->broker, &failed, err, sizeof err);
        if (!rk) {
            fprintf(stderr, "eddy gen: %s\n", err);
            return 1;
        }
    } else if (!c->output || !strcmp(c->output, "-")) {
        out = stdout;
    } else if (!(out = fopen(c->output, "w"))) {
        fprintf(stderr, "eddy gen: cannot open %s: %s\n", c->output, strerror(errno));
        return 1;
    }
    clicklog_gen_conf_t gc = {.users = c->users, .items = c->items, .seed = (uint64_t)c->seed};
    clicklog_gen_t *g = clicklog_gen_new(&gc);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char line[512], key[32];
    int64_t n = 0, start = core_mono_us();
    int rc = 0;
    while (!gen_stop && (c->lines == 0 || n < c->lines)) {
        int64_t user;
        size_t len = clicklog_gen_next(g, line, sizeof line, &user);
        if (rk) {
            int klen = snprintf(key, sizeof key, "U%lld", (long long)user);
            for (;;) {
                rd_kafka_resp_err_t e = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(c->topic), RD_KAFKA_V_KEY(key, (size_t)klen),
                    RD_KAFKA_V_VALUE(line, len - 1), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_END);
                if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                    if (e) {
                        fprintf(stderr, "eddy gen: produce: %s\n", rd_kafka_err2str(e));
                        rc = 1;
                        gen_stop = 1;
                    }
                    break;
                }
                rd_kafka_poll(rk, 10);
            }
            rd_kafka_poll(rk, 0);
        } else if (fwrite(line, 1, len, out) != len) {
            fprintf(stderr, "eddy gen: write: %s\n", strerror(errno));
            rc = 1;
            break;
        }
        n++;
        pace(start, n, c->rate);
    }
    if (rk) {
        if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "eddy gen: timed out delivering to %s\n", c->broker);
            rc = 1;
        }
        if (failed) {
            fprintf(stderr, "eddy gen: %lld lines were not delivered\n", (long long)failed);
            rc = 1;
        }
        rd_kafka_destroy(rk);
    } else if (out != stdout) {
        if (fclose(out)) {
            fprintf(stderr, "eddy gen: close: %s\n", strerror(errno));
            rc = 1;
        }
    } else {
        fflush(stdout);
    }
    clicklog_gen_free(g);
    fprintf(stderr, "eddy gen: %lld click log lines written%s%s\n", (long long)(n - failed),
            c->topic ? " to topic " : "", c->topic ? c->topic : "");
    return rc;
}

static const core_cmd_t gen_cmd = {
    .name = "eddy gen",
    .usage = "eddy gen clicklog [--users N] [--items M] [--lines L] [--rate R] "
             "[--seed S] (--output FILE | --topic T [--broker HOST:PORT])",
    .summary = "Generates realistic click log lines (timestamp, ^B-separated pairs, a\n"
               "^C-delimited data_array of events) with skewed item popularity and\n"
               "sessions, for the demo and the benchmarks.",
    .opts = gen_opts,
    .takes_args = true,
};

int cmd_gen(int argc, char **argv)
{
    gen_conf_t c;
    char *pos[argc + 1];
    int npos;
    int rc = core_conf_begin(&gen_cmd, &c, argc, argv, pos, &npos);
    if (rc == CORE_CONF_RUN && (npos != 1 || strcmp(pos[0], "clicklog"))) {
        fprintf(stderr, "eddy gen: expected the generator name 'clicklog'\nusage: %s\n",
                gen_cmd.usage);
        rc = 2;
    }
    if (rc == CORE_CONF_RUN)
        rc = gen_clicklog(&c);
    core_conf_free(gen_opts, &c);
    return rc;
}
