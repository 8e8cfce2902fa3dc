/*
 * rt_sched: what a schedule may contain (the allow-list), recovery of runs a
 * dead driver left behind, and the runner itself — with a stand-in
 * executable (a shell script) in place of eddy, so outcomes, arguments and
 * timeouts are exact and fast.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/core_err.h"
#include "core/core_time.h"
#include "runtime/rt_plan.h"
#include "runtime/rt_sched.h"

static char g_dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/eddy-test-rt-sched-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_put_bodies_outside_the_allow_list_are_refused_with_a_reason(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *want; /* NULL = accepted, else a substring of the message */
    } cases[] = {
        {"{\"command\":\"train\",\"args\":[\"--app=shop\"],\"every_ms\":1000,\"files\":{\"engine\":"
         "\"{}\"}}",
         NULL},
        {"{\"command\":\"train\",\"args\":[\"--app=a\",\"--data=/"
         "d\",\"--threads=2\",\"--tolerance=0.1\",\"--force\"],"
         "\"cron\":\"0 3 * * *\",\"timeout_ms\":60000,\"files\":{\"engine\":\"{}\"}}",
         NULL},
        {"{\"command\":\"train\",\"args\":[\"--store=redis://h:1/"
         "0\"],\"every_ms\":31622400000,\"files\":{\"engine\":\"\"}}",
         NULL},
        {"", "invalid JSON"},
        {"[]", "JSON object"},
        {"{\"command\":\"sh\",\"every_ms\":1000}", "not allowed"},
        {"{\"command\":\"../eddy\",\"every_ms\":1000}", "not allowed"},
        {"{\"command\":1,\"every_ms\":1000}", "'command'"},
        {"{\"every_ms\":1000}", "'command'"},
        {"{\"command\":\"train\",\"args\":[\"--ratings=/etc/"
         "passwd\"],\"every_ms\":1000,\"files\":{\"engine\":\"{}\"}}",
         "not allowed"},
        {"{\"command\":\"train\",\"args\":[\"--engine=/"
         "x\"],\"every_ms\":1000,\"files\":{\"engine\":\"{}\"}}",
         "not allowed"},
        {"{\"command\":\"train\",\"args\":[\"--result-json=/"
         "x\"],\"every_ms\":1000,\"files\":{\"engine\":\"{}\"}}",
         "not allowed"},
        {"{\"command\":\"train\",\"args\":[\"--app\"],\"every_ms\":1000,\"files\":{\"engine\":\"{}"
         "\"}}",
         "not allowed"},
        {"{\"command\":\"train\",\"args\":[\"--app=\"],\"every_ms\":1000,\"files\":{\"engine\":\"{}"
         "\"}}",
         "not allowed"},
        {"{\"command\":\"train\",\"args\":[\"--force=yes\"],\"every_ms\":1000,\"files\":{"
         "\"engine\":\"{}\"}}",
         "not allowed"},
        {"{\"command\":\"train\",\"args\":[\"shop\"],\"every_ms\":1000,\"files\":{\"engine\":\"{}"
         "\"}}",
         "not allowed"},
        {"{\"command\":\"train\",\"args\":[1],\"every_ms\":1000,\"files\":{\"engine\":\"{}\"}}",
         "args[0]"},
        {"{\"command\":\"train\",\"args\":\"--app=x\",\"every_ms\":1000,\"files\":{\"engine\":\"{}"
         "\"}}",
         "array"},
        {"{\"command\":\"train\",\"files\":{\"engine\":\"{}\"}}", "exactly one"},
        {"{\"command\":\"train\",\"every_ms\":1000,\"cron\":\"* * * * "
         "*\",\"files\":{\"engine\":\"{}\"}}",
         "exactly one"},
        {"{\"command\":\"train\",\"every_ms\":999,\"files\":{\"engine\":\"{}\"}}",
         "every_ms must be"},
        {"{\"command\":\"train\",\"every_ms\":31622400001,\"files\":{\"engine\":\"{}\"}}",
         "every_ms must be"},
        {"{\"command\":\"train\",\"every_ms\":\"1h\",\"files\":{\"engine\":\"{}\"}}", "integer"},
        {"{\"command\":\"train\",\"cron\":\"* * *\",\"files\":{\"engine\":\"{}\"}}", "5 fields"},
        {"{\"command\":\"train\",\"cron\":\"0 0 30 2 *\",\"files\":{\"engine\":\"{}\"}}", "never"},
        {"{\"command\":\"train\",\"every_ms\":1000,\"timeout_ms\":999,\"files\":{\"engine\":\"{}\"}"
         "}",
         "timeout_ms"},
        {"{\"command\":\"train\",\"every_ms\":1000}", "files.engine"},
        {"{\"command\":\"train\",\"every_ms\":1000,\"files\":{\"engine\":1}}", "files.engine"},
        {"{\"command\":\"train\",\"every_ms\":1000,\"files\":{\"engine\":\"{}\",\"x\":\"\"}}",
         "files.x"},
        {"{\"command\":\"train\",\"every_ms\":1000,\"files\":{\"engine\":\"{}\"},\"exec\":\"sh\"}",
         "unknown field"},
        {"{\"command\":\"train\",\"every_ms\":1000,\"files\":{\"engine\":\"{}\"},\"next_ms\":0}",
         "unknown field"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char es[512] = "";
        int err = rt_sched__def_check(cases[i].body, strlen(cases[i].body), es, sizeof es);
        if (!cases[i].want && err)
            fail_msg("case %zu refused: %s", i, es);
        if (cases[i].want && (err != CORE_ERR_INVAL || !strstr(es, cases[i].want)))
            fail_msg("case %zu: want '%s', got %d '%s'", i, cases[i].want, err, es);
    }
    /* Limits: RT_SCHED_MAX_ARGS args is fine, one more is not. */
    for (int extra = 0; extra <= 1; extra++) {
        char body[8192] =
            "{\"command\":\"train\",\"every_ms\":1000,\"files\":{\"engine\":\"{}\"},\"args\":[";
        for (int i = 0; i < RT_SCHED_MAX_ARGS + extra; i++)
            strcat(body, i ? ",\"--force\"" : "\"--force\"");
        strcat(body, "]}");
        char es[256];
        assert_int_equal(rt_sched__def_check(body, strlen(body), es, sizeof es),
                         extra ? CORE_ERR_INVAL : 0);
    }
}

/* ---- on-disk fixtures ---------------------------------------------------------- */

static void write_schedule(const char *name, const char *extra_fields)
{
    char dir[512], rec[2048];
    snprintf(dir, sizeof dir, "%s/%s", g_dir, name);
    assert_int_equal(rt_mkdirs(dir, 0755), 0);
    snprintf(rec, sizeof rec,
             "{\"name\":\"%s\",\"command\":\"train\",\"args\":[\"--app=shop\"],\"files\":"
             "{\"engine\":\"{\\\"id\\\":\\\"v1\\\"}\"},\"created_ms\":1%s}",
             name, extra_fields);
    char es[256];
    assert_int_equal(rt_record_write(dir, "schedule", rec, es, sizeof es), 0);
}

static void write_run(const char *name, int n, const char *json)
{
    char dir[512], file[32], es[256];
    snprintf(dir, sizeof dir, "%s/%s/runs", g_dir, name);
    assert_int_equal(rt_mkdirs(dir, 0755), 0);
    snprintf(file, sizeof file, "%d", n);
    assert_int_equal(rt_record_write(dir, file, json, es, sizeof es), 0);
}

static json_t *read_run(const char *name, int n)
{
    char dir[512], file[32], es[256];
    snprintf(dir, sizeof dir, "%s/%s/runs", g_dir, name);
    snprintf(file, sizeof file, "%d", n);
    char *txt = NULL;
    if (rt_record_read(dir, file, &txt, NULL, es, sizeof es))
        return NULL;
    json_t *o = json_loads(txt, 0, NULL);
    free(txt);
    return o;
}

static const char *status_of(json_t *run)
{
    return json_string_value(json_object_get(run, "status"));
}

static rt_sched_t *open_sched(const char *exe, const char *store_arg)
{
    rt_sched_conf_t conf = {.dir = g_dir, .exe = exe, .store_arg = store_arg};
    rt_sched_t *s = NULL;
    char es[512];
    if (rt_sched_open(&conf, &s, es, sizeof es))
        fail_msg("open: %s", es);
    return s;
}

static void test_a_run_left_running_by_a_dead_driver_is_recorded_as_interrupted(void **state)
{
    (void)state;
    write_schedule("s1", ",\"every_ms\":3600000,\"next_ms\":99999999999999,\"last_run\":2");
    write_run("s1", 1, "{\"run\":1,\"status\":\"ok\",\"start_ms\":5,\"end_ms\":6}");
    write_run("s1", 2, "{\"run\":2,\"status\":\"running\",\"start_ms\":7,\"end_ms\":null}");
    rt_sched_close(open_sched("/bin/false", NULL));
    json_t *r1 = read_run("s1", 1), *r2 = read_run("s1", 2);
    assert_string_equal(status_of(r1), "ok"); /* finished runs are never touched */
    assert_int_equal(json_integer_value(json_object_get(r1, "end_ms")), 6);
    assert_string_equal(status_of(r2), "interrupted");
    assert_non_null(strstr(json_string_value(json_object_get(r2, "error")), "crashed"));
    assert_true(json_integer_value(json_object_get(r2, "end_ms")) >= 7);
    json_decref(r1);
    json_decref(r2);
}

static void test_a_run_whose_child_finished_takes_its_outcome_from_the_result_file(void **state)
{
    (void)state;
    /* The driver died between writing runs/3 and the schedule's last_run. */
    write_schedule("s2", ",\"every_ms\":3600000,\"next_ms\":99999999999999,\"last_run\":2");
    write_run("s2", 3, "{\"run\":3,\"status\":\"running\",\"start_ms\":7}");
    char p[512];
    snprintf(p, sizeof p, "%s/s2/results", g_dir);
    assert_int_equal(rt_mkdirs(p, 0755), 0);
    snprintf(p, sizeof p, "%s/s2/results/3", g_dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("{\"failed\":false,\"promoted\":true,\"version\":4,\"events\":10,\"endMs\":9}", f);
    fclose(f);
    rt_sched_close(open_sched("/bin/false", NULL));
    json_t *r = read_run("s2", 3);
    assert_string_equal(status_of(r), "ok");
    assert_int_equal(json_integer_value(json_object_get(r, "end_ms")), 9);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "result"), "version")),
                     4);
    assert_int_equal(access(p, F_OK), -1); /* folded into the record */
    json_decref(r);
}

static void test_damaged_and_half_deleted_schedules_are_skipped_or_removed(void **state)
{
    (void)state;
    char p[512];
    snprintf(p, sizeof p, "%s/.deleted-old-123/runs", g_dir);
    assert_int_equal(rt_mkdirs(p, 0755), 0);
    snprintf(p, sizeof p, "%s/bad", g_dir);
    assert_int_equal(rt_mkdirs(p, 0755), 0);
    snprintf(p, sizeof p, "%s/bad/schedule", g_dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("garbage", f);
    fclose(f);
    /* A record that passes its CRC but asks for a command outside the allow-list. */
    snprintf(p, sizeof p, "%s/evil", g_dir);
    assert_int_equal(rt_mkdirs(p, 0755), 0);
    char es[256];
    assert_int_equal(rt_record_write(p, "schedule",
                                     "{\"name\":\"evil\",\"command\":\"sh\",\"args\":[],"
                                     "\"every_ms\":1000}",
                                     es, sizeof es),
                     0);
    rt_sched_close(open_sched("/bin/false", NULL));
    snprintf(p, sizeof p, "%s/.deleted-old-123", g_dir);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof p, "%s/bad/schedule", g_dir);
    assert_int_equal(access(p, F_OK), 0); /* kept for a human to look at */
}

/* ---- the runner, with a stand-in for eddy ---------------------------------------- */

/* A fake `eddy`: records its arguments and the engine file in the result
 * JSON; --app=exit3 exits 3 (train's "kept the deployed model"), --app=sleep
 * sleeps past any timeout, --app=crash exits 1 with a failure result. */
static void write_fake_eddy(char *path, size_t size)
{
    snprintf(path, size, "%s/fake-eddy.sh", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(
        "#!/bin/sh\n"
        "res=; eng=; app=\n"
        "for a in \"$@\"; do case \"$a\" in\n"
        "  --result-json=*) res=${a#--result-json=} ;;\n"
        "  --engine=*) eng=${a#--engine=} ;;\n"
        "  --app=*) app=${a#--app=} ;;\n"
        "esac; done\n"
        "echo \"fake eddy $*\"\n"
        "[ \"$app\" = sleep ] && exec sleep 30\n"
        "failed=false; [ \"$app\" = crash ] && failed=true\n"
        "printf '{\"failed\":%s,\"reason\":\"boom\",\"promoted\":true,\"events\":7,\"args\":\"%s\","
        "\"engine\":\"%s\"}' \"$failed\" \"$*\" \"$(cat \"$eng\" | tr -d '\\\"')\" > \"$res\"\n"
        "[ \"$app\" = exit3 ] && exit 3\n"
        "[ \"$app\" = crash ] && exit 1\n"
        "exit 0\n",
        f);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);
}

static json_t *wait_run_done(const char *name, int n)
{
    for (int i = 0; i < 400; i++) { /* 20 s */
        json_t *r = read_run(name, n);
        if (r && strcmp(status_of(r), "running"))
            return r;
        json_decref(r);
        usleep(50000);
    }
    fail_msg("run %d of %s did not finish", n, name);
    return NULL;
}

static void test_due_schedules_run_and_record_outcome_args_and_result(void **state)
{
    (void)state;
    char exe[512];
    write_fake_eddy(exe, sizeof exe);
    write_schedule("ok", ",\"every_ms\":3600000,\"next_ms\":0,\"last_run\":0");
    write_schedule("kept",
                   ",\"args\":[\"--app=exit3\"],\"every_ms\":3600000,\"next_ms\":0,\"last_run\":0");
    write_schedule("fails", ",\"args\":[\"--app=crash\",\"--data=/"
                            "mine\"],\"every_ms\":3600000,\"next_ms\":0,\"last_run\":0");
    write_schedule("slow", ",\"args\":[\"--app=sleep\"],\"every_ms\":3600000,\"timeout_ms\":1000,"
                           "\"next_ms\":0,\"last_run\":0");
    rt_sched_t *s = open_sched(exe, "--data=/driver-store");
    char es[256];
    assert_int_equal(rt_sched_start(s, es, sizeof es), 0);
    json_t *ok = wait_run_done("ok", 1), *kept = wait_run_done("kept", 1);
    json_t *fails = wait_run_done("fails", 1), *slow = wait_run_done("slow", 1);
    rt_sched_close(s);

    assert_string_equal(status_of(ok), "ok");
    assert_string_equal(json_string_value(json_object_get(ok, "trigger")), "schedule");
    json_t *res = json_object_get(ok, "result");
    assert_int_equal(json_integer_value(json_object_get(res, "events")), 7);
    const char *args = json_string_value(json_object_get(res, "args"));
    /* The driver's store when the schedule names none, its file, its fixed flags. */
    assert_non_null(strstr(args, "--app=shop --data=/driver-store --engine="));
    assert_non_null(strstr(args, "--quiet --trigger=schedule"));
    assert_string_equal(json_string_value(json_object_get(res, "engine")), "{id:v1}");
    assert_non_null(strstr(json_string_value(json_object_get(ok, "output")), "fake eddy train"));

    assert_string_equal(status_of(kept), "ok"); /* train's exit 3 is a successful run */
    assert_int_equal(json_integer_value(json_object_get(kept, "exit_code")), 3);

    assert_string_equal(status_of(fails), "failed");
    assert_string_equal(json_string_value(json_object_get(fails, "error")), "exit status 1: boom");
    args = json_string_value(json_object_get(json_object_get(fails, "result"), "args"));
    assert_null(strstr(args, "/driver-store")); /* its own --data wins */

    assert_string_equal(status_of(slow), "timeout");
    assert_int_equal(json_integer_value(json_object_get(slow, "signal")), 9);
    assert_true(json_integer_value(json_object_get(slow, "duration_ms")) >= 1000);

    /* Every schedule moved on by its period: no run 2 within the hour. */
    const char *names[] = {"ok", "kept", "fails", "slow"};
    for (int i = 0; i < 4; i++) {
        json_t *r2 = read_run(names[i], 2);
        assert_null(r2);
    }
    json_decref(ok);
    json_decref(kept);
    json_decref(fails);
    json_decref(slow);
}

static void test_stopping_the_driver_kills_the_run_and_records_it(void **state)
{
    (void)state;
    char exe[512];
    write_fake_eddy(exe, sizeof exe);
    write_schedule("long",
                   ",\"args\":[\"--app=sleep\"],\"every_ms\":3600000,\"next_ms\":0,\"last_run\":0");
    rt_sched_t *s = open_sched(exe, NULL);
    char es[256];
    assert_int_equal(rt_sched_start(s, es, sizeof es), 0);
    char log[512];
    snprintf(log, sizeof log, "%s/long/logs/1", g_dir);
    for (int i = 0; i < 200; i++) { /* until the child has started and written its line */
        struct stat st;
        if (stat(log, &st) == 0 && st.st_size > 0)
            break;
        usleep(50000);
    }
    int64_t t0 = core_mono_ms();
    rt_sched_close(s);
    assert_true(core_mono_ms() - t0 < 5000); /* killed, not waited for */
    json_t *r = read_run("long", 1);
    assert_string_equal(status_of(r), "interrupted");
    assert_non_null(strstr(json_string_value(json_object_get(r, "error")), "driver stopped"));
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_bodies_outside_the_allow_list_are_refused_with_a_reason),
        cmocka_unit_test_setup_teardown(
            test_a_run_left_running_by_a_dead_driver_is_recorded_as_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_run_whose_child_finished_takes_its_outcome_from_the_result_file, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_damaged_and_half_deleted_schedules_are_skipped_or_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_due_schedules_run_and_record_outcome_args_and_result,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopping_the_driver_kills_the_run_and_records_it,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
