/*
 * core_fs: atomic writes replace whole files and leave no temp behind,
 * refuse when the directory is missing, rm_rf removes trees (and a missing
 * path is fine), pread_all reports a short file, read_file reads whole files
 * up to a cap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core_err.h"
#include "core/core_fs.h"

static char g_dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/eddy-core-fs-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return core_fs_rm_rf(g_dir);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_write_atomic_replaces_the_whole_file_and_leaves_no_temp(void **state)
{
    (void)state;
    assert_int_equal(core_fs_write_atomic(g_dir, "f", "a long first version", 20, 0600), 0);
    assert_int_equal(core_fs_write_atomic(g_dir, "f", "short", 5, 0600), 0);
    char path[300], buf[64];
    snprintf(path, sizeof path, "%s/f", g_dir);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "short", 5);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_entries(g_dir), 1);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no/such/dir", g_dir);
    assert_int_equal(core_fs_write_atomic(missing, "f", "x", 1, 0644), ENOENT);
}

static void test_rm_rf_removes_a_tree_and_accepts_a_missing_path(void **state)
{
    (void)state;
    char p[300];
    snprintf(p, sizeof p, "%s/t", g_dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/t/a", g_dir);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_equal(core_fs_write_atomic(p, "x", "1", 1, 0644), 0);
    snprintf(p, sizeof p, "%s/t/link", g_dir);
    assert_int_equal(symlink(g_dir, p), 0); /* must not be followed */
    snprintf(p, sizeof p, "%s/t", g_dir);
    assert_int_equal(core_fs_rm_rf(p), 0);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(count_entries(g_dir), 0);
    assert_int_equal(core_fs_rm_rf(p), 0);
}

static void test_pread_all_reports_a_short_file(void **state)
{
    (void)state;
    assert_int_equal(core_fs_write_atomic(g_dir, "g", "0123456789", 10, 0644), 0);
    char path[300], buf[16];
    snprintf(path, sizeof path, "%s/g", g_dir);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(core_fs_pread_all(fd, buf, 4, 6), 0);
    assert_memory_equal(buf, "6789", 4);
    assert_int_equal(core_fs_pread_all(fd, buf, 5, 6), CORE_ERR_TRUNCATED);
    assert_int_equal(core_fs_pwrite_all(fd, "AB", 2, 10), 0);
    assert_int_equal(core_fs_pread_all(fd, buf, 12, 0), 0);
    assert_memory_equal(buf, "0123456789AB", 12);
    close(fd);
}

/* The counter file round-trips; a missing one is ENOENT; anything but
 * "0\n<value ≥ 0>\n" is corrupt and leaves the value untouched. */
static void test_i64_file_round_trips_and_refuses_any_other_form(void **state)
{
    (void)state;
    int64_t v = 7;
    assert_int_equal(core_fs_i64_load(g_dir, "ctr", &v), ENOENT);
    assert_int_equal(core_fs_i64_save(g_dir, "ctr", INT64_MAX - 1), 0);
    assert_int_equal(core_fs_i64_load(g_dir, "ctr", &v), 0);
    assert_true(v == INT64_MAX - 1);
    static const char *bad[] = {"1\n5\n", "0\n-5\n", "0\n5\nx", "0\n", "", "0\nfive\n", "0\n+5\n",
                                "0\n9223372036854775808\n" /* INT64_MAX + 1 */,
                                "0\n99999999999999999999999999999999999999999999999999999999\n"
                                "9999999999999\n"};
    char p[512];
    snprintf(p, sizeof p, "%s/ctr", g_dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(bad[i], f);
        fclose(f);
        v = 7;
        assert_int_equal(core_fs_i64_load(g_dir, "ctr", &v), CORE_ERR_CORRUPT);
        assert_true(v == 7);
    }
}

static void test_read_file_reads_up_to_max_bytes_and_refuses_one_more(void **state)
{
    (void)state;
    /* larger than the first read buffer, so growth is exercised */
    static char text[10000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 26);
    assert_int_equal(core_fs_write_atomic(g_dir, "f", text, sizeof text, 0600), 0);
    char path[300];
    snprintf(path, sizeof path, "%s/f", g_dir);
    char *data;
    size_t len;
    assert_int_equal(core_fs_read_file(path, sizeof text, &data, &len), 0);
    assert_int_equal(len, sizeof text);
    assert_memory_equal(data, text, sizeof text);
    assert_int_equal(data[len], '\0');
    free(data);
    assert_int_equal(core_fs_read_file(path, SIZE_MAX, &data, &len), 0);
    assert_int_equal(len, sizeof text);
    free(data);
    assert_int_equal(core_fs_read_file(path, sizeof text - 1, &data, &len), CORE_ERR_TOO_LARGE);
    assert_int_equal(core_fs_write_atomic(g_dir, "empty", "", 0, 0600), 0);
    snprintf(path, sizeof path, "%s/empty", g_dir);
    assert_int_equal(core_fs_read_file(path, 0, &data, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);
    snprintf(path, sizeof path, "%s/missing", g_dir);
    assert_int_equal(core_fs_read_file(path, 100, &data, &len), ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_write_atomic_replaces_the_whole_file_and_leaves_no_temp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rm_rf_removes_a_tree_and_accepts_a_missing_path, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pread_all_reports_a_short_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_i64_file_round_trips_and_refuses_any_other_form,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file_reads_up_to_max_bytes_and_refuses_one_more,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
