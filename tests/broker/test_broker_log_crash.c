/*
 * Crash test at the log level. A child process opens the log and appends
 * batches in a loop while a second thread of it runs broker_log_flush (group
 * commit, as the server does); it reports every append (batch id -> offsets)
 * and every completed flush through a pipe. The parent kills it with SIGKILL
 * at a random moment, sometimes also simulates a power cut by damaging the
 * unsynced tail of the active segment (cut at a random byte, or zeros or
 * garbage appended), reopens the log and checks:
 *   - every batch reported below a completed flush is there, exactly once,
 *     at the offsets it was given;
 *   - no batch id appears twice anywhere; offsets are contiguous;
 *   - the tail is clean: every segment holds only valid batches (no bytes
 *     after the last one), which `eddy log dump --verify` would also say.
 * Repeated >= 10 times over the same directory; the seed is printed (set
 * EDDY_TEST_SEED to replay one).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#include "batch_builder.h"
#include "broker/broker_log.h"
#include "broker/broker_log_int.h"
#include "core/core_err.h"
#include "core/core_log.h"
#include "core/core_time.h"
#include "test_util.h"

enum { MSG_APPEND = 1, MSG_FLUSHED = 2 };

typedef struct msg {
    int32_t type;
    int32_t pad;
    int64_t id;   /* MSG_APPEND: batch id */
    int64_t base; /* MSG_APPEND: base offset; MSG_FLUSHED: flushed offset */
    int64_t last;
} msg_t;

typedef struct ack {
    int64_t id, base, last;
} ack_t;

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double scale(void)
{
    const char *s = getenv("EDDY_TEST_SCALE");
    double v = s ? atof(s) : 1.0;
    return v > 0 ? v : 1.0;
}

static void conf_for_test(broker_log_conf_t *c)
{
    broker_log_conf_default(c);
    c->segment_bytes = 48 * 1024; /* rolls happen during the run */
    c->index_interval_bytes = 512;
}

/* ---- the child --------------------------------------------------------------- */

typedef struct child_ctx {
    broker_log_t *log;
    int fd;
    atomic_int stop;
} child_ctx_t;

static void send_msg(int fd, const msg_t *m)
{
    /* < PIPE_BUF: atomic even with two writer threads */
    if (write(fd, m, sizeof *m) != (ssize_t)sizeof *m)
        _exit(3);
}

static void *child_flusher(void *arg)
{
    child_ctx_t *c = arg;
    while (!atomic_load(&c->stop)) {
        if (broker_log_flush(c->log))
            _exit(4);
        msg_t m = {MSG_FLUSHED, 0, 0, broker_log_flushed(c->log), 0};
        send_msg(c->fd, &m);
    }
    return NULL;
}

static void child_main(const char *dir, int fd, int64_t first_id, uint64_t seed)
{
    core_log_set_level(CORE_LOG_ERROR);
    broker_log_conf_t conf;
    conf_for_test(&conf);
    child_ctx_t c = {.fd = fd};
    char err[256];
    if (broker_log_open(dir, &conf, &c.log, err, sizeof err)) {
        fprintf(stderr, "child: open: %s\n", err);
        _exit(2);
    }
    pthread_t th;
    pthread_create(&th, NULL, child_flusher, &c);
    core_buf_t b;
    core_buf_init(&b);
    rng_state = seed | 1;
    for (int64_t id = first_id;; id++) {
        core_buf_reset(&b);
        batch_builder_t bb;
        bb_begin(&bb, 1000 + id);
        int n = 1 + (int)(rnd() % 5);
        char v[600];
        for (int i = 0; i < n; i++) {
            size_t len = 20 + rnd() % 500;
            memset(v, 'a' + (int)(id % 26), len);
            int k = snprintf(v, sizeof v, "id=%lld;", (long long)id);
            v[k] = ';';
            bb_add(&bb, NULL, -1, v, (int32_t)len, 1000 + id);
        }
        bb_end(&bb, &b);
        int64_t base, last;
        int rc = broker_log_append(c.log, b.data, b.len, 0, &base, &last);
        if (rc)
            _exit(5);
        msg_t m = {MSG_APPEND, 0, id, base, last};
        send_msg(fd, &m);
    }
}

/* ---- the parent's checks ----------------------------------------------------- */

/* Parses the batch id from the first record's value ("id=N;"). */
static int64_t batch_id(const uint8_t *batch, size_t len)
{
    const uint8_t *p = batch + BROKER_BATCH_HEADER_SIZE, *end = batch + len;
    for (; p + 3 < end; p++)
        if (p[0] == 'i' && p[1] == 'd' && p[2] == '=')
            return strtoll((const char *)p + 3, NULL, 10);
    return -1;
}

/* Position in a segment file where offset `from` starts (or the file end),
 * walking its batches. */
static int64_t pos_of_offset(const char *path, int64_t from)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    int64_t size = lseek(fd, 0, SEEK_END), pos = 0;
    uint8_t h[BROKER_BATCH_HEADER_SIZE];
    while (pos + (int64_t)sizeof h <= size && pread(fd, h, sizeof h, pos) == (ssize_t)sizeof h) {
        broker_batch_hdr_t hdr;
        broker_log__hdr_decode(h, &hdr);
        if (hdr.base_offset + hdr.last_offset_delta >= from || hdr.length < 49)
            break;
        pos += hdr.length + 12;
    }
    close(fd);
    return pos < size ? pos : size;
}

/* Segment base offsets in the directory, ascending. */
static int list_bases(const char *dir, int64_t *bases, int max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) && n < max)
        if (strlen(de->d_name) == 24 && !strcmp(de->d_name + 20, ".log"))
            bases[n++] = strtoll(de->d_name, NULL, 10);
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && bases[j - 1] > bases[j]; j--) {
            int64_t t = bases[j];
            bases[j] = bases[j - 1];
            bases[j - 1] = t;
        }
    return n;
}

static void seg_name(char *out, const char *dir, int64_t base, const char *suffix)
{
    if (snprintf(out, 4096, "%s/%020lld%s", dir, (long long)base, suffix) >= 4096)
        abort();
}

static char *last_segment(const char *dir)
{
    int64_t bases[4096];
    int n = list_bases(dir, bases, 4096);
    assert_true(n > 0);
    char *p = malloc(4096);
    seg_name(p, dir, bases[n - 1], ".log");
    return p;
}

/* Simulates a power cut: nothing below `flushed` is touched; from the first
 * unflushed batch on, the segment holding it is cut at a random byte (or
 * gets zeros or garbage after the cut), and every later segment (rolled or
 * created after the last completed flush, so never synced) is randomly
 * kept, cut or gone with its indexes. */
static void power_cut(const char *dir, int64_t flushed)
{
    /* The child may have synced more than it lived to report: every segment
     * below the recovery point was fsynced before that file was written, so
     * a power cut cannot touch those either. */
    char rpp[4096];
    snprintf(rpp, sizeof rpp, "%s/%s", dir, BROKER_RECOVERY_POINT_FILE);
    FILE *fp = fopen(rpp, "r");
    long long rp = 0;
    if (fp) {
        assert_int_equal(fscanf(fp, "0\n%lld\n", &rp), 1);
        fclose(fp);
    }
    if (rp > flushed)
        flushed = rp;
    int64_t bases[4096];
    int n = list_bases(dir, bases, 4096);
    if (n == 0)
        return; /* killed before the first segment existed */
    int k = 0;
    while (k + 1 < n && bases[k + 1] <= flushed)
        k++;
    char seg[4096];
    seg_name(seg, dir, bases[k], ".log");
    int64_t size = tu_file_size(seg);
    int64_t from = pos_of_offset(seg, flushed);
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    int64_t cut = size > from ? from + (int64_t)(rnd() % (uint64_t)(size - from + 1)) : size;
    assert_int_equal(ftruncate(fd, cut), 0);
    switch (rnd() % 3) {
    case 0:
        break;
    case 1: { /* the size was extended but the data never made it: zeros */
        static uint8_t zeros[4096];
        size_t z = 1 + rnd() % sizeof zeros;
        assert_int_equal(pwrite(fd, zeros, z, cut), (ssize_t)z);
        break;
    }
    default: { /* garbage after the end */
        uint8_t junk[777];
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (uint8_t)rnd();
        assert_int_equal(pwrite(fd, junk, sizeof junk, cut), (ssize_t)sizeof junk);
        break;
    }
    }
    close(fd);
    for (int i = k + 1; i < n; i++) {
        char p[4096];
        seg_name(p, dir, bases[i], ".log");
        switch (rnd() % 3) {
        case 0: /* survived */
            break;
        case 1:
            assert_int_equal(truncate(p, (off_t)(rnd() % (uint64_t)(tu_file_size(p) + 1))), 0);
            break;
        default: /* its directory entry never reached the disk */
            unlink(p);
            seg_name(p, dir, bases[i], ".index");
            unlink(p);
            seg_name(p, dir, bases[i], ".timeindex");
            unlink(p);
            break;
        }
    }
}

static int cmp_ack(const void *a, const void *b)
{
    const ack_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Checks that every batch in want[0..n) is in seen[0..nb) (sorted by id) at its offsets. */
static int expect_all(const ack_t *want, int64_t n, int64_t below, const ack_t *seen, int64_t nb)
{
    int checked = 0;
    for (int64_t i = 0; i < n; i++) {
        if (want[i].last >= below)
            continue; /* not acknowledged by a flush */
        ack_t key = {want[i].id, 0, 0};
        const ack_t *hit = bsearch(&key, seen, (size_t)nb, sizeof *seen, cmp_ack);
        if (!hit)
            fail_msg("flushed batch id %lld (offsets %lld..%lld) lost", (long long)want[i].id,
                     (long long)want[i].base, (long long)want[i].last);
        assert_int_equal(hit->base, want[i].base);
        assert_int_equal(hit->last, want[i].last);
        checked++;
    }
    return checked;
}

/* Reopens the log and checks the invariants against this round's acks and
 * every batch found durable in earlier rounds (*durable, replaced by what is
 * in the log now: recovery fsyncs it). Returns the next batch id to use. */
static int64_t check_log(const char *dir, ack_t *acks, int nacks, int64_t max_flushed,
                         ack_t **durable, int64_t *ndurable, int64_t *leo_out)
{
    broker_log_conf_t conf;
    conf_for_test(&conf);
    broker_log_t *log;
    char err[256] = "";
    int rc = broker_log_open(dir, &conf, &log, err, sizeof err);
    if (rc)
        fail_msg("reopen after crash: %s", err);
    assert_true(broker_log_end_offset(log) >= max_flushed);
    /* read everything, batch by batch */
    int64_t off = broker_log_start_offset(log), leo = broker_log_end_offset(log);
    int64_t nb = 0, cap = 1024, max_id = -1;
    ack_t *seen = malloc(sizeof *seen * (size_t)cap);
    while (off < leo) {
        broker_log_slice_t s;
        assert_int_equal(broker_log_read(log, off, 1 << 20, &s), 0);
        assert_true(s.len > 0);
        uint8_t *buf = malloc((size_t)s.len);
        assert_int_equal(pread(s.fd, buf, (size_t)s.len, s.file_pos), s.len);
        for (int64_t p = 0; p < s.len;) {
            size_t total;
            assert_int_equal(broker_log__batch_check(buf + p, (size_t)(s.len - p), INT64_MAX,
                                                     &total, NULL),
                             0);
            broker_batch_hdr_t h;
            broker_log__hdr_decode(buf + p, &h);
            if (h.base_offset + h.last_offset_delta >= off) {
                assert_int_equal(h.base_offset, off); /* contiguous */
                if (nb == cap)
                    seen = realloc(seen, sizeof *seen * (size_t)(cap *= 2));
                seen[nb++] = (ack_t){batch_id(buf + p, total), h.base_offset,
                                     h.base_offset + h.last_offset_delta};
                if (seen[nb - 1].id > max_id)
                    max_id = seen[nb - 1].id;
                off = h.base_offset + h.last_offset_delta + 1;
            }
            p += (int64_t)total;
        }
        free(buf);
        broker_log_slice_release(&s);
    }
    /* exactly once */
    qsort(seen, (size_t)nb, sizeof *seen, cmp_ack);
    for (int64_t i = 1; i < nb; i++)
        if (seen[i].id == seen[i - 1].id)
            fail_msg("batch id %lld appears twice (offsets %lld and %lld)",
                     (long long)seen[i].id, (long long)seen[i - 1].base, (long long)seen[i].base);
    int checked = expect_all(acks, nacks, max_flushed, seen, nb);
    int earlier = expect_all(*durable, *ndurable, INT64_MAX, seen, nb);
    free(*durable);
    *durable = seen;
    *ndurable = nb;
    *leo_out = leo;
    broker_log_close(log);
    /* the tail is clean: the active segment holds exactly its batches */
    char *seg = last_segment(dir);
    int64_t size = tu_file_size(seg);
    assert_int_equal(pos_of_offset(seg, INT64_MAX), size);
    free(seg);
    printf("    reopened: LEO %lld, %d acknowledged batches of this round and %d earlier ones "
           "verified\n",
           (long long)leo, checked, earlier);
    return max_id + 1;
}

/* The directory lives in the fixture so it is removed even when a check fails. */
static int setup_root(void **state)
{
    *state = tu_tmpdir();
    return 0;
}

static int teardown_root(void **state)
{
    tu_rmrf(*state);
    free(*state);
    return 0;
}

static void test_kill_9_during_appends_keeps_every_flushed_batch_exactly_once(void **state)
{
    const char *env = getenv("EDDY_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)core_wall_ms() ^ (uint64_t)getpid();
    printf("    seed %llu (EDDY_TEST_SEED=%llu to replay)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    fflush(stdout);
    rng_state = seed | 1;
    int rounds = (int)(20 * scale());
    if (rounds < 10)
        rounds = 10;
    const char *root = *state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/p-0", root);
    int64_t next_id = 0, total_acked = 0, ndurable = 0, durable_leo = 0;
    ack_t *durable = NULL;
    for (int round = 0; round < rounds; round++) {
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        uint64_t child_seed = rnd();
        fflush(stdout);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            child_main(dir, pfd[1], next_id, child_seed);
            _exit(0);
        }
        close(pfd[1]);
        /* a random moment: anywhere from during recovery to well into the appends */
        int64_t delay_us = (int64_t)(rnd() % 60000);
        int64_t deadline = core_mono_us() + delay_us;
        ack_t *acks = NULL;
        int nacks = 0, cap = 0;
        int64_t max_flushed = durable_leo; /* the last reopen synced everything */
        msg_t m;
        fcntl(pfd[0], F_SETFL, O_NONBLOCK);
        for (;;) {
            ssize_t n = read(pfd[0], &m, sizeof m);
            if (n == (ssize_t)sizeof m) {
                if (m.type == MSG_APPEND) {
                    if (nacks == cap)
                        acks = realloc(acks, sizeof *acks * (size_t)(cap = cap ? cap * 2 : 1024));
                    acks[nacks++] = (ack_t){m.id, m.base, m.last};
                } else if (m.base > max_flushed) {
                    max_flushed = m.base;
                }
                continue;
            }
            assert_true(n < 0 || n == 0); /* messages are never split */
            if (core_mono_us() >= deadline)
                break;
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail_msg("child ended by itself (status %d) before the kill", status);
        /* drain what the child wrote before it died */
        fcntl(pfd[0], F_SETFL, 0);
        ssize_t n;
        while ((n = read(pfd[0], &m, sizeof m)) == (ssize_t)sizeof m) {
            if (m.type == MSG_APPEND) {
                if (nacks == cap)
                    acks = realloc(acks, sizeof *acks * (size_t)(cap = cap ? cap * 2 : 1024));
                acks[nacks++] = (ack_t){m.id, m.base, m.last};
            } else if (m.base > max_flushed) {
                max_flushed = m.base;
            }
        }
        close(pfd[0]);
        bool cut = rnd() % 2 == 0 && tu_file_exists(dir);
        printf("  round %d: killed after %lld us, %d appends, flushed < %lld%s\n", round,
               (long long)delay_us, nacks, (long long)max_flushed,
               cut ? ", power cut of the unsynced tail" : "");
        if (cut)
            power_cut(dir, max_flushed);
        if (tu_file_exists(dir)) {
            int64_t id = check_log(dir, acks, nacks, max_flushed, &durable, &ndurable, &durable_leo);
            for (int i = 0; i < nacks; i++)
                total_acked += acks[i].last < max_flushed;
            if (id > next_id)
                next_id = id;
        }
        for (int i = 0; i < nacks; i++)
            if (acks[i].id >= next_id)
                next_id = acks[i].id + 1;
        free(acks);
    }
    printf("    %d rounds, %lld acknowledged batches checked in total\n", rounds,
           (long long)total_acked);
    assert_true(total_acked > 0);
    free(durable);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_9_during_appends_keeps_every_flushed_batch_exactly_once,
                                        setup_root, teardown_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
