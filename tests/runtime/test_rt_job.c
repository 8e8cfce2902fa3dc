/* rt_job: loading job shared objects and refusing bad ones. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core_err.h"
#include "runtime/rt_job.h"

static char jobdir[1024], exe[1024];

static const char *job_path(const char *name)
{
    static char p[1200];
    snprintf(p, sizeof p, "%s/%s.so", jobdir, name);
    return p;
}

static void test_valid_job_loads_with_its_descriptor(void **state)
{
    rt_job_t j;
    char es[512];
    assert_int_equal(rt_job_load(job_path("copy_to_events"), &j, es, sizeof es), 0);
    assert_string_equal(j.desc->name, "copy-to-events");
    assert_int_equal(j.desc->abi_version, EDDY_JOB_ABI_VERSION);
    assert_non_null(j.desc->process);
    rt_job_unload(&j);
    assert_int_equal(rt_job_load(job_path("running_count"), &j, es, sizeof es), 0);
    assert_true(j.desc->flags & EDDY_JOB_F_STATEFUL);
    rt_job_unload(&j);
}

static void test_wrong_abi_version_is_refused_with_a_message(void **state)
{
    rt_job_t j;
    char es[512];
    assert_int_equal(rt_job_load(job_path("wrong_abi"), &j, es, sizeof es), CORE_ERR_ABI);
    assert_non_null(strstr(es, "ABI version 2"));
    assert_non_null(strstr(es, "rebuild"));
    assert_null(j.handle);
}

static void test_future_descriptor_symbol_is_refused_naming_its_version(void **state)
{
    rt_job_t j;
    char es[512];
    assert_int_equal(rt_job_load(job_path("future_abi"), &j, es, sizeof es), CORE_ERR_ABI);
    assert_non_null(strstr(es, "eddy_job_v2"));
}

static void test_non_elf_file_is_refused_before_dlopen(void **state)
{
    char path[] = "/tmp/test_rt_job.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "#!/bin/sh\necho hi\n", 18), 18);
    close(fd);
    rt_job_t j;
    char es[512];
    assert_int_equal(rt_job_load(path, &j, es, sizeof es), CORE_ERR_UNSUPPORTED);
    assert_non_null(strstr(es, "not a shared object"));
    /* An empty file too. */
    assert_int_equal(truncate(path, 0), 0);
    assert_int_equal(rt_job_check_elf(path, es, sizeof es), CORE_ERR_UNSUPPORTED);
    unlink(path);
    assert_int_equal(rt_job_load("/nonexistent/job.so", &j, es, sizeof es), ENOENT);
}

static void test_isolated_check_reports_child_verdicts(void **state)
{
    if (access(exe, X_OK)) {
        skip();
        return;
    }
    char name[64], es[512];
    unsigned flags = 0;
    assert_int_equal(rt_job_check_isolated(exe, job_path("running_count"), 10000, name,
                                           sizeof name, &flags, es, sizeof es),
                     0);
    assert_string_equal(name, "running-count");
    assert_int_equal(flags, EDDY_JOB_F_STATEFUL);
    assert_int_equal(rt_job_check_isolated(exe, job_path("wrong_abi"), 10000, name, sizeof name,
                                           &flags, es, sizeof es),
                     CORE_ERR_ABI);
    assert_non_null(strstr(es, "ABI version 2"));
}

int main(void)
{
    const char *bin = getenv("EDDY_BINARY_DIR");
    snprintf(jobdir, sizeof jobdir, "%s/tests/runtime/jobs", bin ? bin : "build");
    snprintf(exe, sizeof exe, "%s/eddy", bin ? bin : "build");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_job_loads_with_its_descriptor),
        cmocka_unit_test(test_wrong_abi_version_is_refused_with_a_message),
        cmocka_unit_test(test_future_descriptor_symbol_is_refused_naming_its_version),
        cmocka_unit_test(test_non_elf_file_is_refused_before_dlopen),
        cmocka_unit_test(test_isolated_check_reports_child_verdicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
