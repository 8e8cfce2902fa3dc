/*
 * clicklog_bench — the clicklog job's own work per core: parse + Avro encode
 * (clicklog_parse + clicklog_avro_encode, every click of every line), next to
 * the ceiling in the same run: a plain loop that only splits the same lines
 * on ^B/^C (touches every byte, records where each field starts, builds
 * nothing: no key=value split, no timestamp, no encoding).
 *
 * Input: generated lines (clicklog_gen, fixed seed), all in memory, so no
 * I/O is measured. One thread. Each loop runs ROUNDS times over the lines;
 * the best round counts (least disturbed by the other processes on the box).
 *
 * Usage: clicklog_bench [LINES] (default 200000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/clicklog/clicklog_avro.h"
#include "jobs/clicklog/clicklog_gen.h"
#include "jobs/clicklog/clicklog_parse.h"

#define ROUNDS 5

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 200000;
    clicklog_gen_conf_t gc = {.users = 100000, .items = 20000, .seed = 42};
    clicklog_gen_t *g = clicklog_gen_new(&gc);
    char **lines = malloc(n * sizeof *lines);
    size_t *lens = malloc(n * sizeof *lens), bytes = 0;
    for (size_t i = 0; i < n; i++) {
        char buf[512];
        lens[i] = clicklog_gen_next(g, buf, sizeof buf, NULL);
        lines[i] = malloc(lens[i]);
        memcpy(lines[i], buf, lens[i]);
        bytes += lens[i];
    }
    clicklog_gen_free(g);
    uint8_t out[4096];
    char why[128];
    volatile uint64_t sink = 0;
    double best_split = 1e9, best_job = 1e9;
    uint64_t clicks = 0;
    for (int r = 0; r < ROUNDS; r++) {
        /* ceiling: split on ^B / ^C only */
        double t0 = now_s();
        uint64_t fields = 0;
        for (size_t i = 0; i < n; i++) {
            /* record where each field starts, as any splitter must */
            uint32_t at[CLICKLOG_MAX_PAIRS * 2];
            size_t k = 0;
            for (size_t b = 0; b < lens[i] && k < sizeof at / sizeof at[0]; b++)
                if (lines[i][b] == '\x02' || lines[i][b] == '\x03')
                    at[k++] = (uint32_t)b + 1;
            fields += k + (k ? at[k - 1] : 0);
        }
        double t1 = now_s();
        sink += fields;
        /* the job's work: parse + encode every click */
        clicks = 0;
        for (size_t i = 0; i < n; i++) {
            clicklog_rec_t rec;
            if (clicklog_parse(lines[i], lens[i], &rec, why, sizeof why)) {
                fprintf(stderr, "line %zu does not parse: %s\n", i, why);
                return 1;
            }
            int k = rec.nelems ? rec.nelems : 1;
            for (int e = 0; e < k; e++) {
                size_t len = clicklog_avro_encode(&rec, rec.nelems ? e : -1, 1, out, sizeof out,
                                                  why, sizeof why);
                sink += len;
                clicks++;
            }
        }
        double t2 = now_s();
        if (t1 - t0 < best_split)
            best_split = t1 - t0;
        if (t2 - t1 < best_job)
            best_job = t2 - t1;
    }
    double split_rate = (double)n / best_split, job_rate = (double)n / best_job;
    printf("clicklog_bench: %zu generated lines (%.1f bytes/line, %.2f clicks/line), best of %d, 1 core\n",
           n, (double)bytes / (double)n, (double)clicks / (double)n, ROUNDS);
    printf("%-34s %14s %10s\n", "loop", "lines/s", "MB/s");
    printf("%-34s %14.0f %10.1f\n", "split on ^B/^C only (ceiling)", split_rate,
           split_rate * (double)bytes / (double)n / 1e6);
    printf("%-34s %14.0f %10.1f\n", "clicklog parse + Avro encode", job_rate,
           job_rate * (double)bytes / (double)n / 1e6);
    printf("ratio parse+encode / split: %.2f; target >= 1,000,000 lines/s: %s\n",
           job_rate / split_rate, job_rate >= 1e6 ? "met" : "NOT met");
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    free(lens);
    return sink == 0;
}
