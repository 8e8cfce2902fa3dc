#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core_conf.h"
#include "core/core_err.h"

typedef struct {
    char *listen;
    int64_t partitions;
    bool verbose;
    int64_t segment_bytes;
    int64_t retention_ms;
    core_strlist_t config;
} t_conf;

static const core_opt_t opts[] = {
    {"listen", CORE_OPT_STR, "127.0.0.1:9092", "address", offsetof(t_conf, listen)},
    {"partitions", CORE_OPT_INT, "1", "count", offsetof(t_conf, partitions)},
    {"verbose", CORE_OPT_BOOL, NULL, "talk", offsetof(t_conf, verbose)},
    {"segment-bytes", CORE_OPT_SIZE, "1GiB", "size", offsetof(t_conf, segment_bytes)},
    {"retention", CORE_OPT_DURATION, "7d", "time", offsetof(t_conf, retention_ms)},
    {"config", CORE_OPT_LIST, NULL, "k=v", offsetof(t_conf, config)},
    CORE_OPT_END,
};

static void test_defaults_then_flags_in_both_spellings(void **state)
{
    t_conf c;
    char err[128];
    assert_int_equal(core_conf_defaults(opts, &c, err, sizeof err), 0);
    assert_string_equal(c.listen, "127.0.0.1:9092");
    assert_true(c.segment_bytes == 1LL << 30);
    assert_true(c.retention_ms == 7LL * 86400000);
    char *argv[] = {"NAME", "--partitions", "8", "--listen=0.0.0.0:1", "--verbose",
                    "--config", "a=1", "--config", "b=2", "--retention", "90s"};
    char *pos[16];
    int npos;
    bool help;
    assert_int_equal(core_conf_parse_args(opts, &c, 11, argv, pos, &npos, &help, err, sizeof err), 0);
    assert_int_equal(npos, 1);
    assert_string_equal(pos[0], "NAME");
    assert_int_equal(c.partitions, 8);
    assert_string_equal(c.listen, "0.0.0.0:1");
    assert_true(c.verbose);
    assert_int_equal(c.config.n, 2);
    assert_string_equal(c.config.v[1], "b=2");
    assert_int_equal(c.retention_ms, 90000);
    core_conf_free(opts, &c);
}

static void test_unknown_flag_and_bad_value_name_the_flag(void **state)
{
    t_conf c;
    char err[128];
    core_conf_defaults(opts, &c, err, sizeof err);
    char *a1[] = {"--nope"};
    char *pos[4];
    int npos;
    bool help;
    assert_int_equal(core_conf_parse_args(opts, &c, 1, a1, pos, &npos, &help, err, sizeof err),
                     CORE_ERR_INVAL);
    assert_non_null(strstr(err, "--nope"));
    char *a2[] = {"--partitions", "eight"};
    assert_int_equal(core_conf_parse_args(opts, &c, 2, a2, pos, &npos, &help, err, sizeof err),
                     CORE_ERR_INVAL);
    assert_non_null(strstr(err, "--partitions"));
    char *a3[] = {"--listen"};
    assert_int_equal(core_conf_parse_args(opts, &c, 1, a3, pos, &npos, &help, err, sizeof err),
                     CORE_ERR_INVAL);
    core_conf_free(opts, &c);
}

static void test_properties_file_uses_the_same_table(void **state)
{
    char path[] = "/tmp/eddy-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# comment\nbroker.listen = 127.0.0.1:19092\nbroker.segment.bytes=64MiB\n"
                       "registry.listen=ignored:1\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    t_conf c;
    char err[128];
    core_conf_defaults(opts, &c, err, sizeof err);
    assert_int_equal(core_conf_load_file(opts, &c, path, "broker", err, sizeof err), 0);
    assert_string_equal(c.listen, "127.0.0.1:19092");
    assert_true(c.segment_bytes == 64LL << 20);
    unlink(path);
    core_conf_free(opts, &c);
}

/* A line longer than the reader's old 4096-byte buffer used to be cut in
 * two: the value truncated and its tail read as a line of its own. */
static void test_properties_long_line_is_one_line(void **state)
{
    char path[] = "/tmp/eddy-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    enum { LONG = 6000 };
    char *text = malloc(LONG + 64);
    int n = sprintf(text, "broker.config = ");
    memset(text + n, 'a', LONG);
    memcpy(text + n + 4100, "=x", 2); /* the old tail even looked like key=value */
    strcpy(text + n + LONG, "\nbroker.partitions=3\n");
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    t_conf c;
    char err[256];
    core_conf_defaults(opts, &c, err, sizeof err);
    int rc = core_conf_load_file(opts, &c, path, "broker", err, sizeof err);
    if (rc)
        fail_msg("refused: %s", err);
    assert_int_equal(c.config.n, 1);
    assert_int_equal(strlen(c.config.v[0]), LONG);
    assert_int_equal(c.partitions, 3);
    /* and a refusal still names file and line */
    assert_int_equal(core_conf__load_text(opts, &c, "a=1\nbroker.nope=1\n", 18, "F", "broker",
                                          err, sizeof err),
                     CORE_ERR_INVAL);
    assert_non_null(strstr(err, "F:2: unknown setting 'nope'"));
    unlink(path);
    free(text);
    core_conf_free(opts, &c);
}

/* Runs core_conf_begin with stdout and stderr captured into out and err. */
static int begin_captured(const core_cmd_t *cmd, t_conf *c, int argc, char **argv, char *out,
                          char *err, size_t size)
{
    char *pos[8];
    int npos;
    FILE *fo = tmpfile(), *fe = tmpfile();
    assert_non_null(fo);
    assert_non_null(fe);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    int rc = core_conf_begin(cmd, c, argc, argv, pos, &npos);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    FILE *files[2] = {fo, fe};
    char *bufs[2] = {out, err};
    for (int i = 0; i < 2; i++) {
        rewind(files[i]);
        size_t n = fread(bufs[i], 1, size - 1, files[i]);
        bufs[i][n] = 0;
        fclose(files[i]);
    }
    return rc;
}

static void test_command_start_runs_helps_and_names_usage_errors(void **state)
{
    const core_cmd_t cmd = {
        .name = "eddy t", .usage = "eddy t [--partitions N]", .summary = "Tests.", .opts = opts};
    t_conf c;
    char out[4096], err[4096];
    char *ok[] = {"--partitions", "3"};
    assert_int_equal(begin_captured(&cmd, &c, 2, ok, out, err, sizeof out), CORE_CONF_RUN);
    assert_int_equal(c.partitions, 3);
    assert_string_equal(out, "");
    assert_string_equal(err, "");
    core_conf_free(opts, &c);

    /* --help prints the table to stdout, and wins over a bad flag after it */
    char *help[] = {"--help", "--nope"};
    assert_int_equal(begin_captured(&cmd, &c, 2, help, out, err, sizeof out), 0);
    assert_non_null(strstr(out, "usage: eddy t [--partitions N]\n\nTests.\n"));
    assert_non_null(strstr(out, "--segment-bytes SIZE"));
    assert_string_equal(err, "");
    core_conf_free(opts, &c);

    char *bad[] = {"--nope"};
    assert_int_equal(begin_captured(&cmd, &c, 1, bad, out, err, sizeof out), 2);
    assert_string_equal(err, "eddy t: unknown option '--nope'\nusage: eddy t [--partitions N]\n");
    core_conf_free(opts, &c);

    char *stray[] = {"stray"};
    assert_int_equal(begin_captured(&cmd, &c, 1, stray, out, err, sizeof out), 2);
    assert_string_equal(err,
                        "eddy t: unexpected argument 'stray'\nusage: eddy t [--partitions N]\n");
    core_conf_free(opts, &c);

    const core_cmd_t with_args = {.name = "eddy t",
                                  .usage = "eddy t NAME",
                                  .summary = "Tests.",
                                  .opts = opts,
                                  .takes_args = true};
    assert_int_equal(begin_captured(&with_args, &c, 1, stray, out, err, sizeof out), CORE_CONF_RUN);
    core_conf_free(opts, &c);
}

static void test_hostport_parsing(void **state)
{
    char host[64];
    int port;
    assert_int_equal(core_parse_hostport("127.0.0.1:9092", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9092);
    assert_int_not_equal(core_parse_hostport("nohost", host, sizeof host, &port), 0);
    assert_int_not_equal(core_parse_hostport("h:99999", host, sizeof host, &port), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_then_flags_in_both_spellings),
        cmocka_unit_test(test_unknown_flag_and_bad_value_name_the_flag),
        cmocka_unit_test(test_properties_file_uses_the_same_table),
        cmocka_unit_test(test_properties_long_line_is_one_line),
        cmocka_unit_test(test_hostport_parsing),
        cmocka_unit_test(test_command_start_runs_helps_and_names_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
