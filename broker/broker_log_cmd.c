/*
 * `eddy log dump PATH [--verify]` — the dump/check tool for the on-disk
 * partition log format (broker_log.h). PATH is a segment file (.log) or a
 * partition directory (every segment in offset order). It prints every batch
 * (offset range, leader epoch, timestamps, size, CRC) and checks, per
 * segment: batch validity and offset contiguity (the rules recovery
 * applies), then the .index and .timeindex entries against the batches.
 * Read-only: it never repairs anything (opening the log does that).
 * Exit status: 0 all consistent, 1 a problem was found, 2 usage or I/O error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker_log_int.h"
#include "broker/broker_producer.h"
#include "cli/cli.h"
#include "core/core_alloc.h"
#include "core/core_buf.h"
#include "core/core_conf.h"
#include "core/core_crc.h"
#include "core/core_err.h"
#include "core/core_fs.h"

typedef struct dump_conf {
    bool verify;
} dump_conf_t;

static const core_opt_t dump_opts[] = {
    {"verify", CORE_OPT_BOOL, NULL,
     "check only: print problems and a summary per segment, not every batch",
     offsetof(dump_conf_t, verify)},
    CORE_OPT_END,
};

typedef struct batch_pos {
    int64_t base;
    int64_t last;
    int64_t pos;
    int64_t max_ts;     /* this batch's maxTimestamp */
    int64_t running_ts; /* largest maxTimestamp up to and including this batch */
} batch_pos_t;

typedef struct seg_report {
    int problems;
    int64_t next_offset;
} seg_report_t;

#define PROBLEM(r, ...)                                                                    \
    do {                                                                                   \
        printf("  PROBLEM: " __VA_ARGS__);                                                 \
        putchar('\n');                                                                     \
        (r)->problems++;                                                                   \
    } while (0)

/* Reads a whole small file (an index); NULL with *len 0 when missing. */
static uint8_t *read_file(const char *path, size_t *len, bool *missing)
{
    *len = 0;
    *missing = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *missing = errno == ENOENT;
        return NULL;
    }
    struct stat st;
    uint8_t *p = NULL;
    if (!fstat(fd, &st) && st.st_size > 0 && (p = core_trymalloc((size_t)st.st_size))) {
        ssize_t n = pread(fd, p, (size_t)st.st_size, 0);
        *len = n > 0 ? (size_t)n : 0;
    }
    close(fd);
    return p;
}

/* Finds the batch starting exactly at pos (binary search; batches sorted by pos). */
static const batch_pos_t *batch_at(const batch_pos_t *b, int64_t n, int64_t pos)
{
    int64_t lo = 0, hi = n - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (b[mid].pos == pos)
            return &b[mid];
        if (b[mid].pos < pos)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static const batch_pos_t *batch_with_base(const batch_pos_t *b, int64_t n, int64_t off)
{
    int64_t lo = 0, hi = n - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (b[mid].base == off)
            return &b[mid];
        if (b[mid].base < off)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static void check_indexes(const char *log_path, int64_t seg_base, const batch_pos_t *b,
                          int64_t n, bool last_segment, seg_report_t *r)
{
    char p[4096];
    size_t plen = strlen(log_path) - strlen(BROKER_LOG_SUFFIX);
    size_t len;
    bool missing;

    snprintf(p, sizeof p, "%.*s%s", (int)plen, log_path, BROKER_INDEX_SUFFIX);
    uint8_t *idx = read_file(p, &len, &missing);
    if (missing) {
        PROBLEM(r, ".index missing (open rebuilds it)");
    } else if (len % BROKER_INDEX_ENTRY_SIZE) {
        PROBLEM(r, ".index size %zu is not a multiple of %d", len, BROKER_INDEX_ENTRY_SIZE);
    } else {
        int64_t prev_off = -1, prev_pos = -1, bad = 0;
        for (size_t i = 0; i < len / BROKER_INDEX_ENTRY_SIZE; i++) {
            const uint8_t *e = idx + i * BROKER_INDEX_ENTRY_SIZE;
            int64_t off = seg_base + core_be32(e), pos = core_be32(e + 4);
            const batch_pos_t *bp = batch_at(b, n, pos);
            if (off <= prev_off || pos <= prev_pos || !bp || bp->base != off) {
                if (bad++ < 5)
                    PROBLEM(r, ".index entry %zu (offset %" PRId64 ", position %" PRId64 ") %s",
                            i, off, pos,
                            off <= prev_off || pos <= prev_pos ? "is not increasing"
                            : !bp                              ? "is not at a batch start"
                                                               : "names another batch's offset");
            }
            prev_off = off;
            prev_pos = pos;
        }
        printf("  .index: %zu entries, %s\n", len / BROKER_INDEX_ENTRY_SIZE,
               bad ? "INCONSISTENT" : "consistent");
    }
    free(idx);

    snprintf(p, sizeof p, "%.*s%s", (int)plen, log_path, BROKER_TIMEINDEX_SUFFIX);
    uint8_t *tidx = read_file(p, &len, &missing);
    if (missing) {
        PROBLEM(r, ".timeindex missing (open rebuilds it)");
    } else if (len % BROKER_TIMEINDEX_ENTRY_SIZE) {
        PROBLEM(r, ".timeindex size %zu is not a multiple of %d", len,
                BROKER_TIMEINDEX_ENTRY_SIZE);
    } else {
        int64_t prev_ts = INT64_MIN, prev_off = -1, bad = 0, cnt = (int64_t)len / BROKER_TIMEINDEX_ENTRY_SIZE;
        for (int64_t i = 0; i < cnt; i++) {
            const uint8_t *e = tidx + i * BROKER_TIMEINDEX_ENTRY_SIZE;
            int64_t ts = (int64_t)core_be64(e), off = seg_base + core_be32(e + 8);
            const batch_pos_t *bp = batch_with_base(b, n, off);
            const char *why = NULL;
            if (ts <= prev_ts || off < prev_off)
                why = "is not increasing";
            else if (!bp)
                why = "names no batch";
            else if (bp->max_ts != ts || bp->running_ts != ts)
                why = "does not match the batch's running max timestamp";
            if (why && bad++ < 5)
                PROBLEM(r, ".timeindex entry %" PRId64 " (ts %" PRId64 ", offset %" PRId64 ") %s",
                        i, ts, off, why);
            prev_ts = ts;
            prev_off = off;
        }
        /* A rolled segment's last entry carries its max timestamp (retention). */
        if (!last_segment && n > 0 && b[n - 1].running_ts >= 0 &&
            (cnt == 0 || prev_ts != b[n - 1].running_ts))
            PROBLEM(r, ".timeindex lacks the final entry with the segment's max timestamp %" PRId64,
                    b[n - 1].running_ts);
        printf("  .timeindex: %" PRId64 " entries, %s\n", cnt, bad ? "INCONSISTENT" : "consistent");
    }
    free(tidx);
}

static const char *codec_name(int16_t attributes)
{
    static const char *names[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    int c = attributes & 7;
    return c < 5 ? names[c] : "?";
}

/* Dumps one segment file. expect_base: the offset the previous segment
 * ended at (-1 when unknown). Returns 0, or 2 on an I/O error. */
static int dump_segment(const char *path, bool verify, bool last_segment, int64_t expect_base,
                        int64_t recovery_point, seg_report_t *r)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    int64_t seg_base = -1;
    if (strlen(name) == 20 + strlen(BROKER_LOG_SUFFIX) &&
        !strcmp(name + 20, BROKER_LOG_SUFFIX)) {
        char digits[21];
        memcpy(digits, name, 20);
        digits[20] = 0;
        char *end;
        seg_base = strtoll(digits, &end, 10);
        if (*end)
            seg_base = -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "eddy log dump: %s: %s\n", path, strerror(errno));
        return 2;
    }
    struct stat st;
    if (fstat(fd, &st)) {
        fprintf(stderr, "eddy log dump: %s: %s\n", path, strerror(errno));
        close(fd);
        return 2;
    }
    printf("segment %s (%lld bytes)\n", path, (long long)st.st_size);
    if (seg_base < 0)
        PROBLEM(r, "file name is not <20-digit base offset>.log");
    if (expect_base >= 0 && seg_base >= 0 && seg_base != expect_base)
        PROBLEM(r, "base offset %" PRId64 " but the previous segment ends at %" PRId64, seg_base,
                expect_base);
    const uint8_t *map = NULL;
    if (st.st_size > 0) {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            fprintf(stderr, "eddy log dump: %s: mmap: %s\n", path, strerror(errno));
            close(fd);
            return 2;
        }
    }
    batch_pos_t *b = NULL;
    int64_t n = 0, cap = 0, pos = 0, next = seg_base, records = 0, running = -1;
    while (pos < st.st_size) {
        size_t total;
        const char *why;
        int rc = broker_log__batch_check(map + pos, (size_t)(st.st_size - pos), INT64_MAX, &total,
                                         &why);
        if (rc) {
            PROBLEM(r, "invalid batch at position %" PRId64 ": %s; %lld bytes from there are %s",
                    pos, why, (long long)(st.st_size - pos),
                    last_segment ? "a torn tail (open truncates it)"
                    : seg_base >= 0 && recovery_point >= 0 && seg_base >= recovery_point
                        ? "an unsynced tail (open truncates it and drops later segments)"
                        : "corruption (open refuses this log)");
            break;
        }
        broker_batch_hdr_t h;
        broker_log__hdr_decode(map + pos, &h);
        if (next >= 0 && h.base_offset != next) {
            PROBLEM(r, "batch at position %" PRId64 " has base offset %" PRId64
                       ", expected %" PRId64,
                    pos, h.base_offset, next);
            break;
        }
        if (h.max_timestamp > running)
            running = h.max_timestamp;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            b = core_xrealloc(b, sizeof *b * (size_t)cap);
        }
        b[n++] = (batch_pos_t){h.base_offset, h.base_offset + h.last_offset_delta, pos,
                               h.max_timestamp, running};
        if (!verify) {
            /* idempotent batches also show their producer fields */
            broker_producer_batch_t pb;
            broker_producer_batch_read(map + pos, &pb);
            char prod[96] = "";
            if (pb.producer_id >= 0)
                snprintf(prod, sizeof prod, " producer %" PRId64 " (epoch %d) seq %" PRId32 "..%" PRId32,
                         pb.producer_id, pb.epoch, pb.first_seq, pb.last_seq);
            printf("  offsets %" PRId64 "..%" PRId64 " pos %" PRId64 " size %zu epoch %" PRId32
                   " ts %" PRId64 "..%" PRId64 " records %" PRId32 " codec %s crc %08" PRIx32
                   "%s ok\n",
                   h.base_offset, h.base_offset + h.last_offset_delta, pos, total,
                   h.leader_epoch, h.base_timestamp, h.max_timestamp, h.records_count,
                   codec_name(h.attributes), h.crc, prod);
        }
        records += h.records_count;
        next = h.base_offset + h.last_offset_delta + 1;
        pos += (int64_t)total;
    }
    if (map)
        munmap((void *)map, (size_t)st.st_size);
    close(fd);
    printf("  %" PRId64 " batches, %" PRId64 " records, offsets %" PRId64 "..%" PRId64
           ", %" PRId64 " valid bytes\n",
           n, records, seg_base, next - 1, pos);
    if (seg_base >= 0)
        check_indexes(path, seg_base, b, n, last_segment, r);
    free(b);
    r->next_offset = next;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The idempotent-producer snapshot, if any. Not a problem when unusable:
 * the broker then rebuilds the state from the batches (broker_log.h). */
static void dump_producer_state(const char *dir, bool clean)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, BROKER_PRODUCER_STATE_FILE);
    if (access(p, F_OK))
        return;
    char *data = NULL;
    size_t len = 0;
    int rc = core_fs_read_file(p, 64 << 20, &data, &len);
    broker_producers_t *ps = broker_producers_new();
    int64_t off = -1;
    if (!rc)
        rc = broker_producers_decode(ps, (const uint8_t *)data, len, &off);
    if (rc)
        printf("%s: unusable (%s); the broker replays the log instead\n", p, core_strerror(rc));
    else
        printf("%s: %zu idempotent producers as of offset %" PRId64 "%s\n", p,
               broker_producers_count(ps), off,
               clean ? "" : " (stale without the clean shutdown marker: the broker ignores it)");
    broker_producers_free(ps);
    free(data);
}

static int dump_path(const char *path, bool verify)
{
    struct stat st;
    if (stat(path, &st)) {
        fprintf(stderr, "eddy log dump: %s: %s\n", path, strerror(errno));
        return 2;
    }
    seg_report_t r = {0, -1};
    int nsegs = 0;
    if (!S_ISDIR(st.st_mode)) {
        if (dump_segment(path, verify, true, -1, -1, &r))
            return 2;
        nsegs = 1;
    } else {
        DIR *d = opendir(path);
        if (!d) {
            fprintf(stderr, "eddy log dump: %s: %s\n", path, strerror(errno));
            return 2;
        }
        char **names = NULL;
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t l = strlen(de->d_name);
            if (l == 20 + strlen(BROKER_LOG_SUFFIX) && !strcmp(de->d_name + 20, BROKER_LOG_SUFFIX)) {
                names = core_xrealloc(names, sizeof *names * ((size_t)nsegs + 1));
                names[nsegs++] = core_xstrdup(de->d_name);
            }
        }
        closedir(d);
        if (nsegs > 1)
            qsort(names, (size_t)nsegs, sizeof *names, cmp_str); /* zero-padded: text order = offset order */
        int rc = 0;
        int64_t expect = -1;
        long long rp = 0; /* no file: nothing is known to be synced */
        char rpp[4096];
        snprintf(rpp, sizeof rpp, "%s/%s", path, BROKER_RECOVERY_POINT_FILE);
        FILE *fp = fopen(rpp, "re");
        if (fp) {
            if (fscanf(fp, "0\n%lld\n", &rp) != 1) {
                printf("  PROBLEM: %s is malformed\n", rpp);
                r.problems++;
                rp = -1;
            }
            fclose(fp);
        }
        for (int i = 0; i < nsegs && !rc; i++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, names[i]);
            rc = dump_segment(p, verify, i == nsegs - 1, expect, rp, &r);
            expect = r.next_offset;
        }
        for (int i = 0; i < nsegs; i++)
            free(names[i]);
        free(names);
        if (rc)
            return rc;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, BROKER_CLEAN_SHUTDOWN_FILE);
        bool clean = access(p, F_OK) == 0;
        printf("%s: %d segments, recovery point %lld, %s shutdown marker\n", path, nsegs, rp,
               clean ? "clean" : "no clean");
        dump_producer_state(path, clean);
    }
    if (r.problems)
        printf("%d problem(s) found\n", r.problems);
    else
        printf("ok\n");
    return r.problems ? 1 : 0;
}

static const core_cmd_t log_cmd = {
    .name = "eddy log",
    .usage = "eddy log dump PATH [--verify]",
    .summary = "Prints and checks a partition log: PATH is a segment file (NNN.log) or a\n"
               "partition directory. Each batch is validated as recovery does (length, magic,\n"
               "CRC-32C, contiguous offsets), and the .index/.timeindex entries are checked\n"
               "against the batches. Read-only. Exit status 0 ok, 1 problems found, 2 error.",
    .opts = dump_opts,
    .takes_args = true,
};

int cmd_log(int argc, char **argv)
{
    dump_conf_t c;
    char **pos = core_xcalloc((size_t)argc + 1, sizeof *pos);
    int npos;
    int rc = core_conf_begin(&log_cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    rc = 2;
    if (npos != 2 || strcmp(pos[0], "dump")) {
        core_conf_usage(stderr, log_cmd.usage, log_cmd.summary, dump_opts);
        goto out;
    }
    rc = dump_path(pos[1], c.verify);
out:
    core_conf_free(dump_opts, &c);
    free(pos);
    return rc;
}
