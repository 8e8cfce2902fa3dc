/*
 * Fuzzes log recovery and the read path with arbitrary segment files: the
 * input becomes the files of one partition directory, the log is opened
 * (recovery validates, truncates, rebuilds indexes, or refuses with an
 * error), then everything is read back, offsets are looked up by time and
 * one batch is appended. Nothing may crash, hang or overread; whatever the
 * log serves must be whole valid batches. Before the open, the same files go
 * through `eddy log dump --verify` (the offline checker reads them too).
 *
 * Input layout: byte 0 = flags, then the payload.
 *   flags & 1  a clean-shutdown marker is present (non-last segments are
 *              then trusted and only their index tails are checked)
 *   flags & 2  the payload's first (byte 1 % 8) * 8 bytes become the first
 *              segment's .index, the next (byte 2 % 8) * 12 its .timeindex
 *   flags & 4  the rest is split in two segments, the second named by the
 *              base offset in byte 3 (so index / offset mismatches occur)
 *   flags & 8  a recovery-point file puts the first segment below it (so
 *              damage there must be refused, not repaired)
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker_log.h"
#include "broker/broker_log_int.h"
#include "core/core_log.h"

static char g_dir[256];

int cmd_log(int argc, char **argv); /* broker/broker_log_cmd.c */

static void write_file(const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        abort();
    if (n && write(fd, p, n) != (ssize_t)n)
        abort();
    close(fd);
}

static void clear_dir(void)
{
    static const char *names[] = {"00000000000000000000.log", "00000000000000000000.index",
                                  "00000000000000000000.timeindex", "leader-epoch-checkpoint",
                                  "clean-shutdown", "recovery-point", "recovery-point.tmp",
                                  "leader-epoch-checkpoint.tmp", NULL};
    char path[512];
    for (int i = 0; names[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, names[i]);
        unlink(path);
    }
    for (int b = 0; b < 256; b++) {
        static const char *suf[] = {".log", ".index", ".timeindex"};
        for (int s = 0; s < 3; s++) {
            snprintf(path, sizeof path, "%s/%020d%s", g_dir, b, suf[s]);
            unlink(path);
        }
    }
}

static void read_all(broker_log_t *log)
{
    int64_t off = broker_log_start_offset(log), hw = broker_log_high_watermark(log);
    for (int iter = 0; off < hw && iter < 10000; iter++) {
        broker_log_slice_t s;
        if (broker_log_read(log, off, 4096, &s) || s.len == 0) {
            broker_log_slice_release(&s);
            break;
        }
        uint8_t *buf = malloc((size_t)s.len);
        if (pread(s.fd, buf, (size_t)s.len, s.file_pos) != s.len)
            abort();
        int64_t next = off;
        for (int64_t p = 0; p < s.len;) {
            size_t total;
            /* a trusted (clean) non-last segment is not CRC-checked at open,
             * so only the framing is certain here */
            if (s.len - p < BROKER_BATCH_HEADER_SIZE)
                abort();
            broker_batch_hdr_t h;
            broker_log__hdr_decode(buf + p, &h);
            total = (size_t)h.length + BROKER_BATCH_LOG_OVERHEAD;
            if (h.length < 49 || (int64_t)total > s.len - p)
                abort();
            next = h.base_offset + h.last_offset_delta + 1;
            p += (int64_t)total;
        }
        free(buf);
        broker_log_slice_release(&s);
        if (next <= off)
            break;
        off = next;
    }
}

static void remove_dir(void)
{
    clear_dir();
    rmdir(g_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_dir[0]) {
        atexit(remove_dir);
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(g_dir, sizeof g_dir, "%s/eddy-fuzz-segment-%d", base, (int)getpid());
        mkdir(g_dir, 0755);
        remove_dir(); /* a previous run with the same pid */
        mkdir(g_dir, 0755);
        core_log_set_level(CORE_LOG_ERROR + 1);
        /* the dump tool's report is not interesting here */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            close(devnull);
        }
    }
    clear_dir();
    if (size < 4)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *p = data + 4;
    size_t n = size - 4;
    if (flags & 2) {
        size_t ni = (size_t)(data[1] % 8) * 8, nt = (size_t)(data[2] % 8) * 12;
        if (ni + nt <= n) {
            write_file("00000000000000000000.index", p, ni);
            write_file("00000000000000000000.timeindex", p + ni, nt);
            p += ni + nt;
            n -= ni + nt;
        }
    }
    if (flags & 4) {
        size_t half = n / 2;
        char name[64];
        snprintf(name, sizeof name, "%020d.log", data[3] ? data[3] : 1);
        write_file("00000000000000000000.log", p, half);
        write_file(name, p + half, n - half);
    } else {
        write_file("00000000000000000000.log", p, n);
    }
    if (flags & 1)
        write_file("clean-shutdown", NULL, 0);
    if (flags & 8) {
        char rp[32];
        int len = snprintf(rp, sizeof rp, "0\n%d\n", data[3] ? data[3] : 1);
        write_file("recovery-point", (const uint8_t *)rp, (size_t)len);
    }

    char *argv[] = {"dump", g_dir, "--verify", NULL};
    cmd_log(3, argv);
    fflush(stdout);

    broker_log_conf_t conf;
    broker_log_conf_default(&conf);
    conf.index_interval_bytes = 64;
    broker_log_t *log = NULL;
    char err[256];
    if (broker_log_open(g_dir, &conf, &log, err, sizeof err) == 0) {
        read_all(log);
        int64_t ts;
        broker_log_offset_for_time(log, 0, &ts);
        broker_log_offset_for_time(log, INT64_MAX, &ts);
        uint8_t batch[BROKER_BATCH_HEADER_SIZE] = {0};
        int64_t a, b;
        broker_log_append(log, batch, sizeof batch, 0, &a, &b); /* invalid: must be refused */
        broker_log_housekeep(log, 0);
        broker_log_close(log);
    }
    return 0;
}
