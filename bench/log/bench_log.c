/*
 * bench_log — the partition log against the floor any log has to pay: the
 * same bytes written with plain pwrite(2) to one file (and read back with
 * pread), in the same run, on the same disk. The ratio is the cost of what
 * broker_log adds: validation (CRC-32C of every batch), offset assignment,
 * sparse indexes, segment rolls (each fsyncs the old segment) and slice
 * bookkeeping on reads. The log also starts kernel writeback every 4 MiB
 * (sync_file_range) so rolls and group commits find little dirty data; the
 * raw writer leaves everything dirty in the page cache, so the write ratio
 * includes that disk traffic. "longest append" is the worst stall an append
 * caused the loop thread (rolls included: they do not fsync).
 *
 *   bench_log [DIR] [MiB]      (default: ./bench-log-data, 256 MiB per case)
 *
 * Cases: batches of 100 records x 100-byte values (a lingering producer)
 * and of 1 record (linger 0); group commit: one fsync per 1 MiB appended,
 * fsync latency percentiles. Not a test: prints a table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch_builder.h"
#include "broker/broker_log.h"
#include "core/core_log.h"
#include "core/core_time.h"

static void rmrf_dir(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_log: could not remove %s\n", dir);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct result {
    double append_s, read_s, raw_write_s, raw_read_s;
    int64_t max_append_us; /* the longest single append: a roll's fsync stalls the loop */
    int64_t records, bytes;
} result_t;

static void run_case(const char *root, int recs_per_batch, int64_t total_bytes, result_t *r)
{
    core_buf_t pool;
    core_buf_init(&pool);
    bb_simple(&pool, recs_per_batch, core_wall_ms(), 100);
    size_t blen = pool.len;
    int64_t nbatches = total_bytes / (int64_t)blen;
    uint8_t *buf = malloc(blen);
    r->records = nbatches * recs_per_batch;
    r->bytes = nbatches * (int64_t)blen;

    /* --- broker_log --- */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/log", root);
    rmrf_dir(dir);
    broker_log_conf_t conf;
    broker_log_conf_default(&conf);
    conf.segment_bytes = getenv("SEG_MB") ? atoll(getenv("SEG_MB")) << 20 : 64 << 20;
    broker_log_t *log;
    char err[256];
    if (broker_log_open(dir, &conf, &log, err, sizeof err)) {
        fprintf(stderr, "open: %s\n", err);
        exit(1);
    }
    int64_t t0 = core_mono_us();
    r->max_append_us = 0;
    for (int64_t i = 0; i < nbatches; i++) {
        memcpy(buf, pool.data, blen); /* append rewrites the header in place */
        int64_t base, last, a0 = core_mono_us();
        if (broker_log_append(log, buf, blen, 0, &base, &last)) {
            fprintf(stderr, "append failed\n");
            exit(1);
        }
        int64_t d = core_mono_us() - a0;
        if (d > r->max_append_us)
            r->max_append_us = d;
    }
    r->append_s = (double)(core_mono_us() - t0) / 1e6;
    uint8_t *rbuf = malloc(1 << 20);
    t0 = core_mono_us();
    int64_t off = 0, got = 0;
    while (off < broker_log_high_watermark(log)) {
        broker_log_slice_t s;
        if (broker_log_read(log, off, 1 << 20, &s) || s.len == 0)
            break;
        if (pread(s.fd, rbuf, (size_t)s.len, s.file_pos) != s.len)
            exit(1);
        got += s.len;
        /* next offset: the last batch in the slice ends it; with equal
         * batches that is len / blen batches on */
        off += (s.len / (int64_t)blen) * recs_per_batch;
        broker_log_slice_release(&s);
    }
    r->read_s = (double)(core_mono_us() - t0) / 1e6;
    if (got != r->bytes)
        fprintf(stderr, "read %lld of %lld bytes\n", (long long)got, (long long)r->bytes);
    broker_log_close(log);
    rmrf_dir(dir);

    /* --- raw pwrite / pread of the same bytes --- */
    char path[4200];
    snprintf(path, sizeof path, "%s/raw", root);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    t0 = core_mono_us();
    for (int64_t i = 0; i < nbatches; i++) {
        memcpy(buf, pool.data, blen);
        if (pwrite(fd, buf, blen, i * (int64_t)blen) != (ssize_t)blen)
            exit(1);
    }
    r->raw_write_s = (double)(core_mono_us() - t0) / 1e6;
    t0 = core_mono_us();
    for (int64_t pos = 0; pos < r->bytes; pos += 1 << 20) {
        int64_t n = r->bytes - pos < (1 << 20) ? r->bytes - pos : (1 << 20);
        if (pread(fd, rbuf, (size_t)n, pos) != n)
            exit(1);
    }
    r->raw_read_s = (double)(core_mono_us() - t0) / 1e6;
    close(fd);
    unlink(path);
    free(rbuf);
    free(buf);
    core_buf_fini(&pool);
}

/* Group commit: append 1 MiB, flush, repeat; fsync latency percentiles,
 * next to write + fdatasync of the same bytes to a plain file. */
static void run_flush(const char *root, int rounds)
{
    core_buf_t pool;
    core_buf_init(&pool);
    bb_simple(&pool, 100, core_wall_ms(), 100);
    int per = (1 << 20) / (int)pool.len;
    int64_t *lat = malloc(sizeof *lat * (size_t)rounds), *raw = malloc(sizeof *raw * (size_t)rounds);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/flush", root);
    rmrf_dir(dir);
    broker_log_conf_t conf;
    broker_log_conf_default(&conf);
    broker_log_t *log;
    char err[256];
    if (broker_log_open(dir, &conf, &log, err, sizeof err))
        exit(1);
    uint8_t *buf = malloc(pool.len);
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < per; i++) {
            memcpy(buf, pool.data, pool.len);
            int64_t b, l;
            broker_log_append(log, buf, pool.len, 0, &b, &l);
        }
        int64_t t0 = core_mono_us();
        broker_log_flush(log);
        lat[r] = core_mono_us() - t0;
    }
    broker_log_close(log);
    rmrf_dir(dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/raw-flush", root);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    int64_t pos = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < per; i++) {
            if (pwrite(fd, pool.data, pool.len, pos) != (ssize_t)pool.len)
                exit(1);
            pos += (int64_t)pool.len;
        }
        int64_t t0 = core_mono_us();
        fdatasync(fd);
        raw[r] = core_mono_us() - t0;
    }
    close(fd);
    unlink(path);
    qsort(lat, (size_t)rounds, sizeof *lat, cmp_i64);
    qsort(raw, (size_t)rounds, sizeof *raw, cmp_i64);
    printf("\ngroup commit, 1 MiB appended per flush, %d flushes:\n", rounds);
    printf("  %-22s p50 %6.2f ms  p99 %6.2f ms\n", "broker_log_flush", lat[rounds / 2] / 1e3,
           lat[rounds * 99 / 100] / 1e3);
    printf("  %-22s p50 %6.2f ms  p99 %6.2f ms\n", "pwrite + fdatasync", raw[rounds / 2] / 1e3,
           raw[rounds * 99 / 100] / 1e3);
    free(buf);
    free(lat);
    free(raw);
    core_buf_fini(&pool);
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : "./bench-log-data";
    int64_t mib = argc > 2 ? atoll(argv[2]) : 256;
    mkdir(root, 0755);
    core_log_set_level(CORE_LOG_WARN);
    printf("bench_log: %lld MiB per case in %s (no fsync in the append cases)\n",
           (long long)mib, root);
    printf("%-26s %14s %10s %14s %10s\n", "case", "log rec/s", "log MB/s", "raw MB/s",
           "log/raw");
    int cases[] = {100, 1};
    for (int c = 0; c < 2; c++) {
        /* alternate and keep the best of 2, so page-cache and writeback
         * state do not favour whichever runs first */
        result_t r, r2;
        run_case(root, cases[c], mib << 20, &r);
        run_case(root, cases[c], mib << 20, &r2);
        if (r2.append_s < r.append_s)
            r.append_s = r2.append_s;
        if (r2.max_append_us > r.max_append_us)
            r.max_append_us = r2.max_append_us;
        if (r2.raw_write_s < r.raw_write_s)
            r.raw_write_s = r2.raw_write_s;
        if (r2.read_s < r.read_s)
            r.read_s = r2.read_s;
        if (r2.raw_read_s < r.raw_read_s)
            r.raw_read_s = r2.raw_read_s;
        char name[64];
        snprintf(name, sizeof name, "%d rec x 100 B / batch", cases[c]);
        printf("%-26s %14.0f %10.0f %14.0f %9.2fx\n", name, r.records / r.append_s,
               r.bytes / r.append_s / 1e6, r.bytes / r.raw_write_s / 1e6,
               r.raw_write_s / r.append_s);
        printf("%-26s %14.2f ms (64 MiB segments, rolls included)\n", "  longest append",
               r.max_append_us / 1e3);
        printf("%-26s %14.0f %10.0f %14.0f %9.2fx\n", "  read (1 MiB slices)", r.records / r.read_s,
               r.bytes / r.read_s / 1e6, r.bytes / r.raw_read_s / 1e6, r.raw_read_s / r.read_s);
    }
    run_flush(root, 200);
    rmdir(root);
    return 0;
}
